//! `--metrics ADDR` with the real binary: the tracker and nodes serve the Prometheus text
//! format, the counters say what happened (a download's bytes, its state), a standard
//! parser reads it, and junk requests or idle connections do not stop it.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address in the `metrics at http://ADDR/metrics` line.
fn metrics_addr(proc: &mut Proc) -> SocketAddr {
    let line = proc.expect_line("metrics at http://");
    let addr = line
        .trim_start_matches("metrics at http://")
        .trim_end_matches("/metrics");
    addr.parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
}

/// Sends `request` and reads the whole response.
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics port");
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT)).unwrap();
    stream.write_all(request).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    response
}

/// The samples of a scrape, by name with labels, after checking the text format: every
/// sample belongs to a family with a `# TYPE` line before it, and every value is a number.
fn scrape(addr: SocketAddr) -> (String, BTreeMap<String, f64>) {
    let response = http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let mut typed = Vec::new();
    let mut samples = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
        let family = series.split('{').next().unwrap();
        assert!(typed.iter().any(|t| t == family), "no # TYPE before {line}");
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
        samples.insert(series.to_string(), value);
    }
    (body.to_string(), samples)
}

#[test]
fn tracker_and_nodes_serve_metrics_that_say_what_happened() {
    let scratch = Scratch::new("metrics");
    let data = random_bytes(41, 1_500_000);
    scratch.put_file(1, "m.bin", &data);
    let metrics = ["--metrics", "127.0.0.1:0"];
    let mut tracker = tracker_on(&scratch, "127.0.0.1:0", &metrics);
    let tracker_metrics = metrics_addr(&mut tracker.proc);
    let mut holder = node(&scratch, 1, tracker.addr, &["--send", "m.bin"]);
    holder.proc.expect_line("sharing m.bin ");
    let mut flags = vec!["--download", "m.bin"];
    flags.extend_from_slice(&metrics);
    let mut getter = node(&scratch, 2, tracker.addr, &flags);
    let getter_metrics = metrics_addr(&mut getter.proc);
    getter.proc.expect_line("downloaded m.bin ");
    assert_file_is(&scratch.node_dir(2).join("m.bin"), &data);

    let (text, node) = scrape(getter_metrics);
    let at_least = |name: &str, floor: f64| {
        let value = node.get(name).copied().unwrap_or(-1.0);
        assert!(
            value >= floor,
            "{name} = {value}, expected at least {floor}\n{text}"
        );
    };
    at_least(
        "torrent_node_udp_payload_bytes_received_total",
        data.len() as f64,
    );
    at_least("torrent_node_pieces_received_total", 1.0);
    at_least("torrent_node_udp_datagrams_sent_total", 1.0);
    assert_eq!(
        node["torrent_node_downloads{state=\"done\"}"], 1.0,
        "{text}"
    );
    assert_eq!(node["torrent_node_downloads{state=\"running\"}"], 0.0);
    assert_eq!(node["torrent_node_chunks_failed_hash_total"], 0.0);
    assert_eq!(node["torrent_node_files"], 1.0);

    let (text, tracker_samples) = scrape(tracker_metrics);
    assert_eq!(tracker_samples["torrent_tracker_nodes"], 2.0, "{text}");
    assert_eq!(tracker_samples["torrent_tracker_files"], 1.0, "{text}");
    assert!(tracker_samples["torrent_tracker_replies_sent_total"] >= 2.0);

    // A standard parser agrees, where one is installed.
    let python = "/usr/bin/python3";
    let parsed = std::process::Command::new(python)
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as f\nprint(sum(1 for _ in f(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        });
    match parsed {
        Ok(out) if out.status.success() => {
            let families: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            let typed = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
            assert_eq!(
                families, typed,
                "prometheus_client read another number of families"
            );
        }
        _ => println!(
            "SKIPPED: the standard parser check needs python3-prometheus-client (apt-get install python3-prometheus-client)"
        ),
    }
}

#[test]
fn junk_requests_and_idle_connections_do_not_stop_the_metrics() {
    let scratch = Scratch::new("metrics-junk");
    let mut tracker = tracker_on(&scratch, "127.0.0.1:0", &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&mut tracker.proc);
    assert!(http(addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(addr, b"DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    let long = [b'x'; 20_000];
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT)).unwrap();
    let _ = stream.write_all(&long);
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // Idle connections past the limit: the oldest make room, and scrapes go on.
    let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (_, samples) = scrape(addr);
    assert!(samples.contains_key("torrent_tracker_datagrams_received_total"));
    drop(idle);
    assert!(tracker.proc.running());
}
