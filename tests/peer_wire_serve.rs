//! A standard client downloads from one of our nodes over the peer wire (BEP 3 over TCP):
//! a real tracker and a real node process share a file of several chunks (the last chunk
//! and its last block short) and export its `.torrent` and magnet link; libtorrent
//! (Debian's `python3-libtorrent`, run by `/usr/bin/python3`) is given the node's address
//! as its only peer and downloads the file, by the `.torrent`, and by the magnet link alone
//! (the info dictionary from our node by BEP 9). The bytes must be identical. libtorrent
//! downloads a directory our node shares, every file; rqbit, where installed, downloads the
//! file by the `.torrent` and by the magnet link. Then hostile input against the node's TCP port, from Rust: the node closes the
//! connection and counts it in `status`.
//!
//! The libtorrent cases are skipped, with a visible message, when the package is missing
//! (`apt-get install -y python3-libtorrent`), the rqbit case without rqbit (`cargo install
//! rqbit --locked`, minutes: `.ci/run` does not install it). Every wait is bounded.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use torrent::peer_wire::{self, Handshake};

/// How long libtorrent may take to download, on a loaded machine.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(90);
/// 3 MiB and a few bytes: 13 chunks of 256 KiB, the last one 5,000 bytes (one short block).
const FILE_BYTES: usize = 3 * 1024 * 1024 + 5_000;
const CHUNK_SIZE: &str = "256K";
const NAME: &str = "served.bin";

/// Downloads argv[1] (a `.torrent` path, or a magnet link) into argv[2] from the one peer
/// argv[3]:argv[4], and prints whether it has the metadata and is seeding (has it all).
const DOWNLOADER: &str = r#"
import sys, time, libtorrent as lt
source, directory, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
session = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'out_enc_policy': 2, 'in_enc_policy': 2,
})
if source.startswith('magnet:'):
    params = lt.parse_magnet_uri(source)
else:
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(source)
params.save_path = directory
handle = session.add_torrent(params)
handle.connect_peer((host, port))
deadline = time.time() + 75
while time.time() < deadline and not handle.status().is_seeding:
    # Woken by libtorrent's next alert, at most 100 ms later.
    session.wait_for_alert(100)
    session.pop_alerts()
status = handle.status()
print('DONE', status.has_metadata, status.is_seeding, flush=True)
"#;

/// A tracker and node 1 holding a file of [`FILE_BYTES`], exported: the node, the file's
/// bytes, the `.torrent`'s path and the magnet link.
fn holder_with_export(scratch: &Scratch) -> (Tracker, Node, Vec<u8>, PathBuf, String) {
    let tracker = tracker(scratch);
    let content = random_bytes(18, FILE_BYTES);
    scratch.put_file(1, NAME, &content);
    let flags = ["--chunk-size", CHUNK_SIZE, "--export", NAME];
    let mut node = holder(scratch, 1, tracker.addr, NAME, &flags);
    let exported = node.proc.expect_line(&format!("exported {NAME} to "));
    let magnet = exported
        .split_once("(magnet:")
        .map(|(_, rest)| format!("magnet:{}", rest.trim_end_matches(')')))
        .unwrap_or_else(|| panic!("no magnet link in {exported:?}"));
    let torrent = scratch.node_dir(1).join(format!("{NAME}.torrent"));
    assert!(torrent.exists(), "{exported}");
    (tracker, node, content, torrent, magnet)
}

/// Runs libtorrent's download of `source` into `out` from `node`; asserts it ended with
/// the whole file.
fn libtorrent_downloads(source: &str, out: &Path, node: SocketAddr) {
    std::fs::create_dir_all(out).unwrap();
    let mut command = Command::new(PYTHON);
    command.arg("-c").arg(DOWNLOADER).arg(source).arg(out);
    command
        .arg(node.ip().to_string())
        .arg(node.port().to_string());
    let mut process = spawn_command("python3 (libtorrent)", Path::new("/"), command);
    let code = process.expect_exit(PYTHON_TIMEOUT);
    assert_eq!(
        code,
        0,
        "libtorrent's script failed\n{}",
        process.describe()
    );
    let done = process
        .stdout_lines()
        .iter()
        .find(|line| line.starts_with("DONE "))
        .cloned()
        .unwrap_or_default();
    assert_eq!(done, "DONE True True", "\n{}", process.describe());
}

/// The node's counters, by `torrent ctl --json status`.
fn counters(scratch: &Scratch) -> serde_json::Value {
    let (code, out, err) = ctl(scratch, &scratch.node_dir(1), &["--json", "status"]);
    assert_eq!(code, 0, "{out:?} {err:?}");
    last_reply(&out)["status"]["counters"].clone()
}

fn counter(counters: &serde_json::Value, name: &str) -> u64 {
    counters[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {counters}"))
}

#[test]
fn libtorrent_downloads_a_file_from_our_node_by_its_torrent() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED libtorrent_downloads_a_file_from_our_node_by_its_torrent: {PYTHON} \
             cannot import libtorrent (apt-get install -y python3-libtorrent)"
        );
        return;
    }
    let scratch = Scratch::new("peer-wire-serve-torrent");
    let (_tracker, node, content, torrent, _) = holder_with_export(&scratch);
    let out = scratch.root.join("libtorrent");
    libtorrent_downloads(torrent.to_str().unwrap(), &out, node.addr);
    assert_file_is(&out.join(NAME), &content);
    let counters = counters(&scratch);
    assert!(
        counter(&counters, "peer_wire_connections") >= 1,
        "{counters}"
    );
    assert!(
        counter(&counters, "peer_wire_bytes_sent") >= FILE_BYTES as u64,
        "{counters}"
    );
}

#[test]
fn libtorrent_downloads_a_file_from_our_node_by_its_magnet_link() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED libtorrent_downloads_a_file_from_our_node_by_its_magnet_link: {PYTHON} \
             cannot import libtorrent (apt-get install -y python3-libtorrent)"
        );
        return;
    }
    let scratch = Scratch::new("peer-wire-serve-magnet");
    let (_tracker, node, content, _, magnet) = holder_with_export(&scratch);
    let out = scratch.root.join("libtorrent");
    libtorrent_downloads(&magnet, &out, node.addr);
    assert_file_is(&out.join(NAME), &content);
    let counters = counters(&scratch);
    assert!(
        counter(&counters, "peer_wire_metadata_pieces_sent") >= 1,
        "{counters}"
    );
}

/// Reads until the node closes the connection (end of file or a reset), within a deadline;
/// returns what arrived.
fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the node kept the connection open");
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => panic!("reading from the node: {error}"),
        }
    }
}

#[test]
fn hostile_peer_wire_input_is_closed_and_counted() {
    let scratch = Scratch::new("peer-wire-serve-hostile");
    let (_tracker, node, _, torrent, _) = holder_with_export(&scratch);
    let deadline = Instant::now() + LINE_TIMEOUT;

    // A handshake for a file the node does not hold: closed without an answer.
    let mut stream = TcpStream::connect(node.addr).expect("connect to the node's TCP port");
    let unknown = Handshake::ours([0xab; 20], peer_wire::peer_id([1; 12]));
    stream.write_all(unknown.as_bytes()).unwrap();
    assert_eq!(read_until_closed(&mut stream, deadline), Vec::<u8>::new());

    // A good handshake, answered; then a length prefix over the limit: closed.
    let info_hash = torrent::metainfo::parse_torrent(&std::fs::read(&torrent).unwrap())
        .unwrap()
        .info_hash;
    let mut stream = TcpStream::connect(node.addr).unwrap();
    let ours = Handshake::ours(info_hash, peer_wire::peer_id([2; 12]));
    stream.write_all(ours.as_bytes()).unwrap();
    let mut answer = [0u8; peer_wire::HANDSHAKE_BYTES];
    stream.set_read_timeout(Some(LINE_TIMEOUT)).unwrap();
    stream
        .read_exact(&mut answer)
        .expect("the node's handshake");
    assert_eq!(
        &answer[28..48],
        &info_hash,
        "the node's handshake names the file"
    );
    assert_eq!(&answer[48..56], &peer_wire::PEER_ID_PREFIX, "our peer id");
    let too_long = (peer_wire::MESSAGE_BYTES_MAX as u32).to_be_bytes();
    stream.write_all(&too_long).unwrap();
    stream.write_all(&[peer_wire::Id::Piece as u8]).unwrap();
    // Whatever followed the handshake (extended handshake, have all), then the close.
    read_until_closed(&mut stream, deadline);

    // Not BitTorrent at all.
    let mut stream = TcpStream::connect(node.addr).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_until_closed(&mut stream, deadline), Vec::<u8>::new());

    // One address may open a few connections, not more: the one past the limit is closed
    // at once (the others stay open, waiting for a handshake).
    let limit = torrent::node::PEER_WIRE_CONNECTIONS_PER_ADDRESS_MAX;
    let open: Vec<TcpStream> = (0..limit)
        .map(|_| TcpStream::connect(node.addr).unwrap())
        .collect();
    let mut over = TcpStream::connect(node.addr).unwrap();
    assert_eq!(read_until_closed(&mut over, deadline), Vec::<u8>::new());

    // The node counted each (it closed them before we saw the close: counted already).
    let counters = counters(&scratch);
    assert_eq!(
        counter(&counters, "peer_wire_refused_over_limit"),
        1,
        "{counters}"
    );
    drop(open);
    assert_eq!(
        counter(&counters, "peer_wire_connections"),
        3 + limit as u64,
        "{counters}"
    );
    assert_eq!(
        counter(&counters, "peer_wire_unknown_info_hash"),
        1,
        "{counters}"
    );
    assert_eq!(
        counter(&counters, "peer_wire_bad_messages"),
        1,
        "{counters}"
    );
    assert_eq!(
        counter(&counters, "peer_wire_bad_handshakes"),
        1,
        "{counters}"
    );
    drop(node);
}

/// A directory our node shares: libtorrent downloads it by the `.torrent` our node exports,
/// every file byte for byte (pieces of 16 KiB that span files, an empty file, a nested one).
#[test]
fn libtorrent_downloads_a_directory_from_our_node() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED libtorrent_downloads_a_directory_from_our_node: {PYTHON} cannot import \
             libtorrent (apt-get install -y python3-libtorrent)"
        );
        return;
    }
    let scratch = Scratch::new("peer-wire-serve-tree");
    let files: [(&str, Vec<u8>); 4] = [
        ("a.txt", random_bytes(21, 20_000)),
        ("data/empty", Vec::new()),
        ("data/deep/x.bin", random_bytes(22, 70_001)),
        ("z.bin", random_bytes(23, 300_000)),
    ];
    let top = scratch.node_dir(1).join("top");
    for (path, bytes) in &files {
        let path = top.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let tracker = tracker(&scratch);
    let mut node = node(
        &scratch,
        1,
        tracker.addr,
        &["--send", "top", "--export", "top", "--chunk-size", "16K"],
    );
    node.proc.expect_line("exported top to ");
    let torrent = scratch.node_dir(1).join("top.torrent");
    let out = scratch.root.join("libtorrent");
    libtorrent_downloads(torrent.to_str().unwrap(), &out, node.addr);
    for (path, bytes) in &files {
        assert_file_is(&out.join("top").join(path), bytes);
    }
}

/// rqbit, where installed (`cargo install rqbit --locked`), or the path in `RQBIT`.
fn rqbit() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RQBIT").map(PathBuf::from),
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/rqbit")),
    ];
    candidates.into_iter().flatten().find(|path| path.is_file())
}

/// Runs rqbit's download of `source` (a `.torrent` path or a magnet link) into `out`, given
/// `node` as its only peer (no DHT, no trackers); asserts it ended well.
fn rqbit_downloads(rqbit: &Path, source: &str, out: &Path, node: SocketAddr) {
    std::fs::create_dir_all(out).unwrap();
    let mut command = Command::new(rqbit);
    command
        .args([
            "--disable-dht",
            "--disable-dht-persistence",
            "--disable-lsd",
        ])
        .args(["--disable-trackers", "--disable-upnp-port-forward"])
        .args(["--listen-ip", "127.0.0.1", "--listen-port", "0"])
        // `download` serves an HTTP API unless told not to, after this is read: loopback.
        .args(["--http-api-listen-addr", "127.0.0.1:0"])
        .args(["download", "--disable-http-api", "--exit-on-finish"])
        .arg("--output-folder")
        .arg(out)
        .arg("--initial-peers")
        .arg(node.to_string())
        .arg(source);
    let mut process = spawn_command("rqbit", Path::new("/"), command);
    let code = process.expect_exit(PYTHON_TIMEOUT);
    assert_eq!(code, 0, "rqbit failed\n{}", process.describe());
}

/// rqbit downloads a file from our node, by the `.torrent` it exports and by its magnet
/// link alone (the info dictionary from our node by BEP 9): byte for byte.
#[test]
fn rqbit_downloads_a_file_from_our_node() {
    let Some(rqbit) = rqbit() else {
        eprintln!(
            "SKIPPED rqbit_downloads_a_file_from_our_node: no rqbit (cargo install rqbit --locked)"
        );
        return;
    };
    let scratch = Scratch::new("peer-wire-serve-rqbit");
    let (_tracker, node, content, torrent, magnet) = holder_with_export(&scratch);
    let by_torrent = scratch.root.join("rqbit-torrent");
    rqbit_downloads(&rqbit, torrent.to_str().unwrap(), &by_torrent, node.addr);
    assert_file_is(&by_torrent.join(NAME), &content);
    let by_magnet = scratch.root.join("rqbit-magnet");
    rqbit_downloads(&rqbit, &magnet, &by_magnet, node.addr);
    assert_file_is(&by_magnet.join(NAME), &content);
}
