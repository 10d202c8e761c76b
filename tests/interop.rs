//! Interoperability with a real BitTorrent client: libtorrent (Debian's
//! `python3-libtorrent`, run by `/usr/bin/python3`) loads the `.torrent` our node exported,
//! announces to our tracker over BEP 15, and must be told our node's address.
//!
//! Skipped, with a visible message, when the package is missing (`apt-get install -y
//! python3-libtorrent`). Processes are started on port 0 and waited for by condition, each
//! wait bounded.

mod common;

use common::{PYTHON, libtorrent_available};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A libtorrent session that adds the torrent, then reports the tracker's reply and whether
/// any alert names the address we expect (it tries to connect to it).
const CLIENT: &str = r#"
import sys, time, libtorrent as lt
torrent_path, save_path, want = sys.argv[1], sys.argv[2], sys.argv[3]
s = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'alert_mask': lt.alert.category_t.all_categories,
})
info = lt.torrent_info(torrent_path)
print('INFOHASH', str(info.info_hash()), flush=True)
h = s.add_torrent({'ti': info, 'save_path': save_path})
deadline = time.time() + 20
replied = seen = False
while time.time() < deadline and not (replied and seen):
    s.wait_for_alert(500)
    for a in s.pop_alerts():
        name = type(a).__name__
        if name == 'tracker_reply_alert':
            print('REPLY', a.num_peers, flush=True)
            replied = True
        elif name in ('tracker_error_alert', 'tracker_warning_alert'):
            print('TRACKER_PROBLEM', name, a.message(), flush=True)
        if want in a.message() and not seen:
            print('PEER', a.message(), flush=True)
            seen = True
print('DONE', replied, seen, flush=True)
"#;

/// Kills the child when the test ends, pass or fail.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `torrent ARGS`, with its stdout lines sent to the returned channel.
fn start(args: &[&str], dir: &Path) -> (Process, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_torrent"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start torrent");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (Process(child), rx)
}

/// The first line starting with `prefix`, within `limit`.
fn wait_line(rx: &Receiver<String>, prefix: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => {}
            Err(error) => panic!("no line starting with {prefix:?}: {error}"),
        }
    }
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("torrent-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("node1")).expect("scratch dir");
    dir
}

#[test]
fn libtorrent_learns_our_node_from_our_tracker() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED libtorrent_learns_our_node_from_our_tracker: {PYTHON} cannot import \
             libtorrent (apt-get install -y python3-libtorrent)"
        );
        return;
    }
    let dir = scratch_dir();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(dir.join("node1/file_A.txt"), &content).unwrap();

    let (_tracker, tracker_out) = start(
        &[
            "tracker",
            "--listen",
            "127.0.0.1:0",
            "--db-dir",
            "db",
            "--log-dir",
            "logs",
            // Standard announces are logged at debug level (one line each, under load).
            "--log-level",
            "debug",
        ],
        &dir,
    );
    let line = wait_line(
        &tracker_out,
        "tracker listening on ",
        Duration::from_secs(10),
    );
    let tracker_addr = line["tracker listening on ".len()..].trim().to_string();

    let (_node, node_out) = start(
        &[
            "node",
            "--id",
            "1",
            "--tracker",
            &tracker_addr,
            "--dir",
            "node1",
            "--log-dir",
            "logs",
            "--chunk-size",
            "256K",
            "--send",
            "file_A.txt",
            "--export",
            "file_A.txt",
        ],
        &dir,
    );
    let line = wait_line(&node_out, "node 1 listening on ", Duration::from_secs(10));
    let node_addr = line["node 1 listening on ".len()..].trim().to_string();
    let exported = wait_line(
        &node_out,
        "exported file_A.txt to ",
        Duration::from_secs(30),
    );
    // The tracker has the file before libtorrent asks.
    wait_line(&node_out, "sharing file_A.txt", Duration::from_secs(30));
    assert!(exported.contains("magnet:?xt=urn:btih:"), "{exported}");

    let torrent = dir.join("node1/file_A.txt.torrent");
    let output = Command::new(PYTHON)
        .args(["-c", CLIENT])
        .arg(&torrent)
        .arg(dir.join("client"))
        .arg(&node_addr)
        .output()
        .expect("run libtorrent");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "libtorrent said:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the client failed");
    // libtorrent computes the same info hash as we do.
    let info_hash = exported
        .split("urn:btih:")
        .nth(1)
        .and_then(|rest| rest.get(..40))
        .unwrap();
    assert!(
        stdout.contains(&format!("INFOHASH {info_hash}")),
        "{stdout}"
    );
    let peers_in_reply: Vec<u32> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("REPLY "))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    assert!(
        peers_in_reply.iter().any(|&n| n >= 1),
        "the tracker's reply listed no peer: {stdout}"
    );
    assert!(
        stdout.contains("DONE True True"),
        "libtorrent never named our node {node_addr}: {stdout}"
    );
    let log = std::fs::read_to_string(dir.join("logs/_tracker.log")).unwrap_or_default();
    assert!(
        log.contains("BEP 15 announce from 127.0.0.1:")
            && log.contains(&format!("for {info_hash} (event Started): 1 peers listed")),
        "the tracker logged no valid announce:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
