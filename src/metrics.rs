//! Metrics for Prometheus: `--metrics ADDR` serves `GET /metrics` in the Prometheus text
//! format (version 0.0.4), from the reactor's own mio loop (one reactor per process).
//!
//! [`Exposition`] writes the text; [`MetricsServer`] is a small HTTP/1.1 responder: it
//! accepts at most [`CONNECTIONS_MAX`] connections (a new one past that closes the oldest),
//! reads a request of at most [`REQUEST_BYTES_MAX`] bytes, answers it and closes. It runs only
//! when one of its sockets is ready, so a node that is not scraped pays nothing, and one that
//! is pays for one text of a few kilobytes per scrape.

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// The listener's token; connections take the tokens after it.
pub const LISTENER: Token = Token(16);
/// The server's tokens end here: the node's peer wire connections have those above.
pub const TOKENS_END: usize = usize::MAX / 2;
/// Connections open at once.
pub const CONNECTIONS_MAX: usize = 8;
/// Longest request (line and headers) read.
pub const REQUEST_BYTES_MAX: usize = 8192;

/// The text of one scrape: metrics in the Prometheus text format.
pub struct Exposition {
    text: String,
}

impl Default for Exposition {
    fn default() -> Exposition {
        Exposition::new()
    }
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition {
            text: String::with_capacity(4096),
        }
    }

    /// A counter: only ever grows while the process runs.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.metric(name, "counter", help, &value.to_string());
    }

    /// A gauge: a value now.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.metric(name, "gauge", help, &value.to_string());
    }

    /// A gauge with one label, one sample per value of it.
    pub fn gauge_by(&mut self, name: &str, help: &str, label: &str, samples: &[(&str, f64)]) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (value, sample) in samples {
            let _ = writeln!(self.text, "{name}{{{label}=\"{value}\"}} {sample}");
        }
    }

    /// Every whole-number field of `counters` (a struct of `u64`s) as a counter named
    /// `{prefix}_{field}_total`.
    pub fn counters_of(&mut self, prefix: &str, what: &str, counters: &impl Serialize) {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(counters) else {
            return;
        };
        for (field, value) in fields {
            if let Some(value) = value.as_u64() {
                let help = format!("{what}: {}", field.replace('_', " "));
                self.counter(&format!("{prefix}_{field}_total"), &help, value);
            }
        }
    }

    fn metric(&mut self, name: &str, kind: &str, help: &str, value: &str) {
        let _ = writeln!(
            self.text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

/// Datagrams and UDP payload bytes through the process's socket, counted by the reactor:
/// what the kernel's counters see, less 8 bytes of UDP header per datagram.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct UdpCounters {
    pub udp_datagrams_received: u64,
    pub udp_payload_bytes_received: u64,
    pub udp_datagrams_sent: u64,
    pub udp_payload_bytes_sent: u64,
}

/// One scrape being served.
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    /// The response, once the request is complete; `written` bytes of it sent.
    response: Option<Vec<u8>>,
    written: usize,
}

/// Serves `GET /metrics` (see the module documentation).
pub struct MetricsServer {
    listener: TcpListener,
    conns: Vec<Conn>,
    next_token: usize,
}

impl MetricsServer {
    /// Listens on `addr`, registered with `registry` under [`LISTENER`].
    pub fn bind(addr: SocketAddr, registry: &Registry) -> io::Result<MetricsServer> {
        let mut listener = TcpListener::bind(addr)?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(MetricsServer {
            listener,
            conns: Vec::new(),
            next_token: LISTENER.0 + 1,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` is one of the server's.
    pub fn owns(token: Token) -> bool {
        (LISTENER.0..TOKENS_END).contains(&token.0)
    }

    /// Accepts, reads and answers whatever is ready; `render` makes the metrics text.
    pub fn serve(&mut self, registry: &Registry, render: &mut dyn FnMut() -> String) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() == CONNECTIONS_MAX {
                        // The oldest is the likeliest to be stuck: it makes room.
                        let mut oldest = self.conns.remove(0);
                        let _ = registry.deregister(&mut oldest.stream);
                    }
                    let token = Token(self.next_token);
                    // Wraps long after any connection with an old token is gone.
                    self.next_token = (self.next_token + 1).max(LISTENER.0 + 1);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if registry.register(&mut stream, token, interest).is_ok() {
                        self.conns.push(Conn {
                            stream,
                            request: Vec::new(),
                            response: None,
                            written: 0,
                        });
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    log::debug!("metrics accept: {error}");
                    break;
                }
            }
        }
        let mut index = 0;
        while index < self.conns.len() {
            if self.conns[index].progress(render) {
                index += 1;
            } else {
                let mut done = self.conns.remove(index);
                let _ = registry.deregister(&mut done.stream);
            }
        }
    }
}

impl Conn {
    /// Reads and writes what the socket allows; false once the connection is done.
    fn progress(&mut self, render: &mut dyn FnMut() -> String) -> bool {
        while self.response.is_none() {
            let mut buf = [0u8; 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.request.extend_from_slice(&buf[..n]);
                    if let Some(response) = respond(&self.request, render) {
                        self.response = Some(response);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        let response = self.response.as_deref().unwrap_or_default();
        while self.written < response.len() {
            match self.stream.write(&response[self.written..]) {
                Ok(n) => self.written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        false
    }
}

/// The response to `request` once it is whole (or too long): `GET /metrics` gets the text.
fn respond(request: &[u8], render: &mut dyn FnMut() -> String) -> Option<Vec<u8>> {
    let whole = request.windows(4).any(|w| w == b"\r\n\r\n");
    if !whole && request.len() < REQUEST_BYTES_MAX {
        return None;
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next(), words.next());
    let (status, body) = if !whole {
        ("431 Request Header Fields Too Large", String::new())
    } else if method != Some(b"GET") && method != Some(b"HEAD") {
        ("405 Method Not Allowed", String::new())
    } else if path != Some(b"/metrics") && path.is_some_and(|p| !p.starts_with(b"/metrics?")) {
        ("404 Not Found", "see /metrics\n".to_string())
    } else {
        ("200 OK", render())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut response = head.into_bytes();
    if method != Some(b"HEAD") {
        response.extend_from_slice(body.as_bytes());
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_each_metric_once_with_its_type() {
        #[derive(Serialize)]
        struct Counts {
            pieces_sent: u64,
            bytes_sent: u64,
        }
        let mut e = Exposition::new();
        e.counters_of(
            "torrent_node",
            "node",
            &Counts {
                pieces_sent: 3,
                bytes_sent: 4096,
            },
        );
        e.gauge("torrent_node_peers", "peers", 2.0);
        e.gauge_by(
            "torrent_node_downloads",
            "downloads by state",
            "state",
            &[("running", 1.0), ("done", 0.0)],
        );
        let text = e.into_text();
        assert!(text.contains(
            "# TYPE torrent_node_pieces_sent_total counter\ntorrent_node_pieces_sent_total 3\n"
        ));
        assert!(text.contains("torrent_node_bytes_sent_total 4096\n"));
        assert!(text.contains("# TYPE torrent_node_peers gauge\ntorrent_node_peers 2\n"));
        assert!(text.contains("torrent_node_downloads{state=\"running\"} 1\n"));
    }

    #[test]
    fn requests_get_the_metrics_or_a_refusal() {
        let mut render = || "m 1\n".to_string();
        let text = |r: Option<Vec<u8>>| String::from_utf8(r.expect("answered")).unwrap();
        assert_eq!(respond(b"GET /metrics HTTP/1.1\r\nHost", &mut render), None);
        let ok = text(respond(b"GET /metrics HTTP/1.1\r\n\r\n", &mut render));
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nm 1\n"),
            "{ok}"
        );
        assert!(ok.contains("Content-Length: 4\r\n"));
        let missing = text(respond(b"GET / HTTP/1.1\r\n\r\n", &mut render));
        assert!(missing.starts_with("HTTP/1.1 404"));
        let post = text(respond(b"POST /metrics HTTP/1.1\r\n\r\n", &mut render));
        assert!(post.starts_with("HTTP/1.1 405"));
        let long = text(respond(&[b'x'; REQUEST_BYTES_MAX], &mut render));
        assert!(long.starts_with("HTTP/1.1 431"));
    }
}
