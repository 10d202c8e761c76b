//! The control socket: a running node driven by scripts and tools, as `torrent ctl` does.
//!
//! A Unix domain socket in the node's private state directory (`DIR/.torrent/control`,
//! mode 0600 inside a 0700 directory). The node also checks each connecting process's
//! credentials (`SO_PEERCRED`): only its own user, or root, is served.
//!
//! The protocol is one JSON object per line each way, versioned ([`PROTOCOL_VERSION`]):
//!
//! ```text
//!   → {"version":1,"command":"status","text":true}
//!   ← {"version":1,"ok":true,"status":{...},"text":"node 1 (registered ..."}
//!   → {"version":1,"command":"download","target":"big.iso"}
//!   ← {"version":1,"ok":true,"message":"...","download":{"id":1,"name":"big.iso",...}}
//!   → {"version":1,"command":"download-state","id":1}
//!   ← {"version":1,"ok":true,"download":{"id":1,"state":"done",...}}
//!   → {"version":1,"command":"send","name":"x.bin"}
//!   ← {"version":1,"ok":false,"error":"cannot share \"x.bin\": ..."}
//!   → {"version":1,"command":"list","from":"b.bin","page_entries":2}
//!   ← {"version":1,"ok":true,"list":{"id":1,"state":"waiting","entries":[]}}
//!   → {"version":1,"command":"list-state","id":1}
//!   ← {"version":1,"ok":true,"list":{"id":1,"state":"done","entries":[{"name":"b.bin",...}],
//!      "next":{"name":"c.bin","info_hash":"..."},"files_total":9}}
//! ```
//!
//! `list` is answered before the tracker's page comes: the reply carries the request's id,
//! and `list-state` its page once it came (see `node/listing.rs`).
//!
//! The commands are [`Request`]'s variants; the answers are [`Reply`] and the types it holds.
//! A line that is not JSON, names an unknown command or a newer version gets `ok: false`
//! with the reason, and the connection stays open; a line longer than
//! [`REQUEST_BYTES_MAX`] gets that answer and the connection is closed.
//!
//! Threads, not the reactor, do the socket work: one accepts, one per connection (at most
//! [`CONNECTIONS_MAX`]) reads a line, parses it into an [`Order`] (the same typed commands
//! the console produces) and hands it to the reactor through a bounded channel, waking it;
//! the reactor answers within its turn.

mod client;
pub use client::{CtlArgs, run_ctl};

use crate::console::{self, Command};
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The version of the JSON shapes. A request with a higher one is refused; fields may be
/// added to replies without a new version, never removed or changed.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line, in bytes.
pub const REQUEST_BYTES_MAX: u64 = 64 * 1024;
/// Connections served at once; more are answered with an error and closed.
pub const CONNECTIONS_MAX: usize = 16;
/// Orders waiting for the reactor; a connection thread waits when it is full.
pub const ORDERS_QUEUED_MAX: usize = 64;
/// A connection that sends nothing (or reads nothing of its replies) for this long is closed.
pub const IDLE_MAX: Duration = Duration::from_secs(300);
/// How long the accepting thread tries to tell a refused client why.
pub const REFUSAL_WRITE_MAX: Duration = Duration::from_secs(1);
/// How long the accepting thread waits after `accept` failed before it tries again.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The socket's name inside the node's state directory.
pub const SOCKET_NAME: &str = "control";

/// A request, as sent on the socket (with `"version"` beside `"command"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// What the node holds and does, structured; with `"text": true`, also as the console's
    /// `status` text.
    Status {
        #[serde(default)]
        text: bool,
    },
    /// Share a file of the node's directory (a directory as one tree); with `torrent`, the
    /// tree under the info hash of that multi-file `.torrent` made elsewhere.
    Send {
        name: String,
        #[serde(default)]
        torrent: Option<String>,
    },
    /// Download what the console's `download` takes: a name (`name@<info hash>` pins a
    /// version), a 40-hex info hash, a magnet link or a `.torrent` path.
    Download {
        target: String,
        /// Publish it in this directory (created if missing) instead of the node's.
        #[serde(default)]
        output: Option<String>,
    },
    /// A download's state, by the id `download` answered with.
    DownloadState { id: u64 },
    /// Write `<name>.torrent` into the node's directory.
    Export { name: String },
    /// Stop sharing a file (it stays in the directory).
    Unshare { name: String },
    /// The node's upload and/or download limit from now on: a rate as the flags take it
    /// (`"8M"`), or `"off"`; a side not given is left as it is.
    Limit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        up: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        down: Option<String>,
    },
    /// The peers each running download uses, and those the node uploaded to; with
    /// `"text": true`, also as the console's `peers` text.
    Peers {
        #[serde(default)]
        text: bool,
    },
    /// Stop a running download for now: `target` is its id (digits) or the name (or hex info
    /// hash) it fetches. Its partial file stays; chunks verified are still served.
    Pause { target: String },
    /// Go on with a paused download.
    Resume { target: String },
    /// Stop a running or paused download for good; its partial file is removed unless
    /// `keep_partial`.
    Cancel {
        target: String,
        #[serde(default)]
        keep_partial: bool,
    },
    /// A page of what the tracker offers, by name then info hash: from the first file (no
    /// `from` or `after`), from the name `from` on, or just after `after` (the `next` of the
    /// page before). `page_entries` (1 to [`crate::wire::LIST_ENTRIES_MAX`]) asks for
    /// smaller pages. Answered with the list request's id, whose page `list-state` gives.
    List {
        #[serde(default)]
        from: Option<String>,
        #[serde(default)]
        after: Option<ListCursor>,
        #[serde(default)]
        page_entries: Option<u8>,
    },
    /// A list request's state and, once the tracker answered, its page.
    ListState { id: u64 },
    /// Tell the tracker the node leaves, then stop.
    Exit,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    version: u32,
    #[serde(flatten)]
    body: T,
}

/// What the reactor is asked to do: a request, parsed and checked by a connection thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Order {
    Status {
        text: bool,
    },
    DownloadState {
        id: u64,
    },
    ListState {
        id: u64,
    },
    Peers {
        text: bool,
    },
    /// A command the console could also give.
    Command(Command),
}

/// An answer. `ok` says whether the node did what was asked; `error` says why not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<PeersInfo>,
    /// The console's `status` (or `peers`) text, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The answer to `list` and `list-state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListInfo>,
}

impl Reply {
    /// Done, saying `message` (if any) and, for a download, where it is.
    pub fn done(message: Option<String>, download: Option<DownloadInfo>) -> Reply {
        Reply {
            ok: true,
            message,
            download,
            ..Reply::default()
        }
    }

    /// The answer to `status`.
    pub fn status(status: StatusInfo, text: Option<String>) -> Reply {
        Reply {
            ok: true,
            status: Some(status),
            text,
            ..Reply::default()
        }
    }

    /// The answer to `list` and `list-state`.
    pub fn listed(list: ListInfo) -> Reply {
        Reply {
            ok: true,
            list: Some(list),
            ..Reply::default()
        }
    }

    /// The answer to `peers`.
    pub fn peers(peers: PeersInfo, text: Option<String>) -> Reply {
        Reply {
            ok: true,
            peers: Some(peers),
            text,
            ..Reply::default()
        }
    }

    pub fn refused(error: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(error.into()),
            ..Reply::default()
        }
    }
}

/// Where a download is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownloadState {
    Running,
    /// Stopped by `pause` (nothing asked or taken for it), its partial file kept: `resume`
    /// goes on.
    Paused,
    /// Every chunk verified and the file published under its name.
    Done,
    Failed,
    /// Stopped by `cancel`: its partial file removed (or kept, with `--keep-partial`).
    Cancelled,
}

/// One download.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DownloadInfo {
    /// Given when it started; unique while the node runs.
    pub id: u64,
    pub name: String,
    /// 40 hex digits, once known.
    pub info_hash: Option<String>,
    pub state: DownloadState,
    pub verified_bytes: u64,
    /// `None` until a holder says how large the file is.
    pub total_bytes: Option<u64>,
    pub bytes_per_s: f64,
    pub peers: usize,
}

/// One file the node holds, whole or in part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub info_hash: String,
    pub file_bytes: u64,
    pub chunks_held: u32,
    pub chunk_count: u32,
    pub complete: bool,
}

/// What `status` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub node_id: u32,
    pub tracker: String,
    pub uptime_s: u64,
    pub dir: String,
    pub files: Vec<FileInfo>,
    /// Running downloads, then finished ones (the most recent [`crate::node::FINISHED_KEPT_MAX`]).
    pub downloads: Vec<DownloadInfo>,
    /// The node's counters (bytes, pieces, datagrams dropped by reason).
    pub counters: crate::node::NodeStats,
    /// The limits in force (bytes a second), `None` for none.
    #[serde(default)]
    pub upload_limit_bytes_per_s: Option<u64>,
    #[serde(default)]
    pub download_limit_bytes_per_s: Option<u64>,
}

/// What `peers` answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeersInfo {
    /// Each running download, with the peers it used (dropped ones too, marked).
    pub downloads: Vec<DownloadPeers>,
    /// The peers the node sent pieces to, by node id.
    pub uploads: Vec<UploadPeer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DownloadPeers {
    pub id: u64,
    pub name: String,
    pub peers: Vec<PeerInfo>,
}

/// One peer of a download, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub node_id: u32,
    pub addr: String,
    /// No longer used (it stopped answering, sent bad chunks, or was replaced).
    pub dropped: bool,
    pub bytes_received: u64,
    pub chunks_verified: u32,
    pub pieces_received: u64,
    pub pieces_lost: u64,
    /// The smoothed round trip, once measured.
    pub round_trip_ms: Option<f64>,
    /// The pace it is asked to send at, when it is paced.
    pub pace_bytes_per_s: Option<u64>,
    pub window_pieces: u32,
    pub in_flight_pieces: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadPeer {
    pub node_id: u32,
    pub bytes_sent: u64,
}

/// Where a list request is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListState {
    /// Sent; the tracker has not answered yet.
    #[default]
    Waiting,
    /// The tracker answered: `entries` and `next` hold its page.
    Done,
    /// The tracker did not answer in time, or cannot list (`error` says which).
    Failed,
}

/// A place in the tracker's list: the last entry of a page, from which the next goes on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCursor {
    pub name: String,
    /// 40 hex digits.
    pub info_hash: String,
}

/// One file the tracker offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub name: String,
    /// 40 hex digits.
    pub info_hash: String,
    pub file_bytes: u64,
    pub chunk_bytes: u32,
    /// Nodes that announced some of it, and of those, the ones that hold all of it.
    pub holders: u32,
    pub complete_holders: u32,
}

impl ListEntry {
    /// The entry as one line for a person: name, size, holders, info hash.
    pub fn line(&self) -> String {
        let holders = match self.holders {
            1 => "1 holder".to_string(),
            n => format!("{n} holders"),
        };
        format!(
            "{}  {}  {holders} ({} complete)  {}",
            self.name,
            crate::units::bytes(self.file_bytes),
            self.complete_holders,
            self.info_hash
        )
    }
}

/// A list request and, once answered, its page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListInfo {
    /// Given when it was asked; unique while the node runs.
    pub id: u64,
    pub state: ListState,
    #[serde(default)]
    pub entries: Vec<ListEntry>,
    /// Where the next page starts (`after` of the next `list`); `None` at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<ListCursor>,
    /// Files the tracker knows in all, once it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_total: Option<u32>,
}

/// A request line parsed into an order, or why it is refused.
pub fn parse_request(line: &str) -> Result<Order, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|error| format!("not a JSON object: {error}"))?;
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    match version {
        Some(v) if v <= u64::from(PROTOCOL_VERSION) && v > 0 => {}
        Some(v) => {
            return Err(format!(
                "protocol version {v} is not known here (this node speaks {PROTOCOL_VERSION})"
            ));
        }
        None => return Err("a request needs \"version\": 1".into()),
    }
    let request: Request = serde_json::from_value(value).map_err(|error| {
        format!("{error} (commands: status, peers, send, download, download-state, export, unshare, pause, resume, cancel, limit, list, list-state, exit)")
    })?;
    let checked_name = |name: &str| match crate::wire::name_problem(name.as_bytes()) {
        Some(problem) => Err(format!("bad name {name:?}: {problem}")),
        None => Ok(name.to_string()),
    };
    Ok(match request {
        Request::Status { text } => Order::Status { text },
        Request::DownloadState { id } => Order::DownloadState { id },
        Request::Peers { text } => Order::Peers { text },
        // A path (with a '/') is shared where it is.
        Request::Send {
            name,
            torrent: None,
        } if name.contains('/') => Order::Command(Command::SendAt { path: name }),
        Request::Send {
            name,
            torrent: None,
        } => Order::Command(Command::Send {
            name: checked_name(&name)?,
        }),
        Request::Send {
            name,
            torrent: Some(path),
        } => Order::Command(Command::ShareTorrent {
            name: Some(checked_name(&name)?),
            path,
        }),
        Request::Export { name } => Order::Command(Command::Export {
            name: checked_name(&name)?,
        }),
        Request::Unshare { name } => Order::Command(Command::Unshare {
            name: checked_name(&name)?,
        }),
        Request::Limit { up, down } => {
            let rate = |text: Option<String>| {
                text.map(|text| console::parse_rate(&text).map_err(|error| error.to_string()))
                    .transpose()
            };
            let (up, down) = (rate(up)?, rate(down)?);
            if up.is_none() && down.is_none() {
                return Err(
                    "limit needs \"up\" or \"down\" (a rate like \"8M\", or \"off\")".into(),
                );
            }
            Order::Command(Command::Limit { up, down })
        }
        Request::Download { target, output } => {
            let download = console::parse_download(&target).map_err(|error| error.to_string())?;
            Order::Command(match output {
                Some(output) => console::Command::DownloadTo {
                    download: Box::new(download),
                    output,
                },
                None => download,
            })
        }
        Request::ListState { id } => Order::ListState { id },
        Request::List {
            from,
            after,
            page_entries,
        } => {
            let from = match (from, after) {
                (Some(_), Some(_)) => return Err("give \"from\" or \"after\", not both".into()),
                (Some(name), None) => console::ListFrom::Name(checked_name(&name)?),
                (None, Some(cursor)) => console::ListFrom::After {
                    name: checked_name(&cursor.name)?,
                    info_hash: crate::wire::parse_hex(&cursor.info_hash).ok_or_else(|| {
                        format!("bad info hash {:?}: 40 hex digits", cursor.info_hash)
                    })?,
                },
                (None, None) => console::ListFrom::Start,
            };
            let page_entries = match page_entries {
                None => 0,
                Some(n) if (1..=crate::wire::LIST_ENTRIES_MAX).contains(&usize::from(n)) => n,
                Some(n) => {
                    return Err(format!(
                        "page_entries {n}: from 1 to {}",
                        crate::wire::LIST_ENTRIES_MAX
                    ));
                }
            };
            Order::Command(Command::List { from, page_entries })
        }
        Request::Pause { target } => Order::Command(Command::Pause { target }),
        Request::Resume { target } => Order::Command(Command::Resume { target }),
        Request::Cancel {
            target,
            keep_partial,
        } => Order::Command(Command::Cancel {
            target,
            keep_partial,
        }),
        Request::Exit => Order::Command(Command::Exit),
    })
}

/// One line of JSON: `reply` with the version.
pub fn reply_line(reply: Reply) -> String {
    line_with_version(reply)
}

/// One line of JSON: `request` with the version.
pub fn request_line(request: &Request) -> String {
    line_with_version(request)
}

fn line_with_version(body: impl Serialize) -> String {
    let envelope = Envelope {
        version: PROTOCOL_VERSION,
        body,
    };
    // Serialising plain structs of strings and numbers cannot fail.
    let mut line = serde_json::to_string(&envelope).unwrap_or_default();
    line.push('\n');
    line
}

/// An order for the reactor, with where its reply goes.
pub struct Call {
    pub order: Order,
    pub reply: Sender<Reply>,
}

/// Serves `listener` on threads of its own; the orders come out of the receiver, and `wake`
/// is called after each is queued.
pub fn serve(listener: UnixListener, wake: impl Fn() + Send + Sync + 'static) -> Receiver<Call> {
    let (calls_tx, calls_rx) = crossbeam_channel::bounded::<Call>(ORDERS_QUEUED_MAX);
    let wake = Arc::new(wake);
    let open = Arc::new(AtomicUsize::new(0));
    let _ = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let mut stream = match stream {
                    Ok(stream) => stream,
                    Err(error) => {
                        // Out of file descriptors, say: it fails again at once, so wait
                        // rather than spin a core.
                        log::warn!("control socket: cannot accept: {error}");
                        std::thread::sleep(ACCEPT_RETRY);
                        continue;
                    }
                };
                if let Err(line) = admit(&stream, &open) {
                    log::warn!("control connection refused: {line}");
                    // A refused client that does not read cannot hold the accepting thread.
                    let _ = stream.set_write_timeout(Some(REFUSAL_WRITE_MAX));
                    let _ = stream.write_all(reply_line(Reply::refused(line)).as_bytes());
                    continue;
                }
                let (calls, wake, open) = (calls_tx.clone(), Arc::clone(&wake), Arc::clone(&open));
                let spawned = std::thread::Builder::new()
                    .name("control-conn".into())
                    .spawn(move || {
                        let _ = converse(&stream, &calls, &*wake);
                        // The place is given back before the client sees the connection
                        // close, so that it may connect again at once.
                        open.fetch_sub(1, Ordering::SeqCst);
                        drop(stream);
                    });
                if spawned.is_err() {
                    // The count taken for it is never given back: fewer connections later,
                    // never more.
                    log::warn!("cannot start a control connection thread");
                }
            }
        });
    calls_rx
}

/// Whether the process at the other end may talk to us: our own user or root, and fewer
/// than [`CONNECTIONS_MAX`] connections open (the count is taken when it may).
fn admit(stream: &UnixStream, open: &AtomicUsize) -> Result<(), String> {
    let peer = rustix::net::sockopt::socket_peercred(stream)
        .map_err(|error| format!("cannot read the peer's credentials: {error}"))?;
    let me = rustix::process::geteuid();
    if peer.uid != me && !peer.uid.is_root() {
        return Err(format!(
            "user {} may not control a node of user {}",
            peer.uid.as_raw(),
            me.as_raw()
        ));
    }
    let taken = open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        (n < CONNECTIONS_MAX).then_some(n + 1)
    });
    taken
        .map(|_| ())
        .map_err(|_| format!("{CONNECTIONS_MAX} control connections are open already"))
}

/// Reads requests and writes replies until the peer closes, idles, or oversteps a limit.
fn converse(stream: &UnixStream, calls: &Sender<Call>, wake: &dyn Fn()) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_MAX))?;
    stream.set_write_timeout(Some(IDLE_MAX))?;
    let mut writer = stream;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        let read = (&mut reader)
            .take(REQUEST_BYTES_MAX + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && line.len() as u64 > REQUEST_BYTES_MAX {
            let refusal = format!("a request line is at most {REQUEST_BYTES_MAX} bytes");
            writer.write_all(reply_line(Reply::refused(refusal)).as_bytes())?;
            return Ok(());
        }
        let reply = match std::str::from_utf8(&line) {
            Err(_) => Reply::refused("a request line is UTF-8 JSON"),
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => match parse_request(text) {
                Err(refusal) => Reply::refused(refusal),
                Ok(order) => {
                    let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
                    let call = Call {
                        order,
                        reply: reply_tx,
                    };
                    if calls.send(call).is_err() {
                        return Ok(()); // the node is gone
                    }
                    wake();
                    match reply_rx.recv() {
                        Ok(reply) => reply,
                        Err(_) => return Ok(()),
                    }
                }
            },
        };
        writer.write_all(reply_line(reply).as_bytes())?;
    }
}

#[cfg(test)]
mod tests;
