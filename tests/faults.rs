//! Faults with the real binary: a file nobody holds, a holder killed mid-transfer, nodes that
//! stop heartbeating, a tracker killed and restarted, garbage datagrams.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use torrent::wire;

#[test]
fn unknown_file_fails_within_give_up_after() {
    let scratch = Scratch::new("unknown-file");
    let tracker = tracker(&scratch);
    let started = Instant::now();
    let mut node = downloader(
        &scratch,
        1,
        tracker.addr,
        "nosuch",
        &["--give-up-after", "2"],
    );
    let code = node.proc.expect_exit(LINE_TIMEOUT);
    assert_ne!(code, 0, "{}", node.proc.describe());
    node.proc
        .wait_line(
            |line| line.starts_with("download nosuch failed: "),
            Duration::ZERO,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // Not before --give-up-after, and not much later either.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "gave up after {took:?}");
    assert!(took < Duration::from_secs(15), "gave up after {took:?}");
    assert!(!scratch.node_dir(1).join("nosuch").exists());
}

#[test]
fn holder_killed_mid_transfer() {
    let scratch = Scratch::new("holder-killed");
    let name = "big.bin";
    let size = 4 << 20;
    let data = random_bytes(20, size);
    scratch.put_file(1, name, &data);
    scratch.put_file(2, name, &data);
    let tracker = tracker(&scratch);
    // Throttled (about 2 s for the file from both, 4 s from one) so that the kill lands mid-transfer.
    let slow = ["--max-upload-rate", "1M", "--chunk-size", "64K"];
    let mut holder1 = holder(&scratch, 1, tracker.addr, name, &slow);
    let _holder2 = holder(&scratch, 2, tracker.addr, name, &slow);
    let mut node3 = downloader(&scratch, 3, tracker.addr, name, &["--progress"]);
    let dir3 = scratch.node_dir(3);
    // Both holders are serving once a few chunks verified.
    node3.wait_verified(&dir3, 8);
    holder1.proc.kill();
    let verified_at_kill = verified_chunks(&dir3);
    assert!(
        !dir3.join(name).exists() && verified_at_kill < 64,
        "the download finished before the holder was killed; slow it down"
    );
    let line = node3
        .proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains("node 2: "), "{line}");
    assert_eq!(node3.proc.expect_exit(LINE_TIMEOUT), 0);
    assert_file_is(&dir3.join(name), &data);
}

#[test]
fn silent_nodes_expire_and_leaving_nodes_exit() {
    let scratch = Scratch::new("expiry");
    // Debug logs: a failure here prints their tails, which show each datagram's fate.
    let mut tracker = tracker_on(
        &scratch,
        "127.0.0.1:0",
        &[
            "--expiry",
            "1",
            "--heartbeat-interval",
            "0.3",
            "--log-level",
            "debug",
        ],
    );
    let heartbeat = ["--heartbeat-interval", "0.3", "--log-level", "debug"];
    let mut node1 = node(&scratch, 1, tracker.addr, &heartbeat);
    let mut node2 = node(&scratch, 2, tracker.addr, &heartbeat);
    tracker.proc.expect_line("node 1 registered from ");
    tracker.proc.expect_line("node 2 registered from ");
    node1.proc.expect_line("registered with tracker ");
    // Heartbeats keep both alive for well over the expiry.
    let quiet = tracker.proc.wait_line(
        |line| line.contains(" expired") || line.contains(" exited"),
        Duration::from_millis(2500),
    );
    assert!(quiet.is_err(), "a heartbeating node left: {quiet:?}");

    let killed_at = Instant::now();
    node1.proc.kill();
    tracker.proc.expect_line("node 1 expired");
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(5), "expired after {took:?}");

    let exit_at = Instant::now();
    node2.proc.send_line("torrent -setMode exit");
    tracker.proc.expect_line("node 2 exited");
    assert!(exit_at.elapsed() < Duration::from_secs(1));
    assert_eq!(node2.proc.expect_exit(LINE_TIMEOUT), 0);
}

#[test]
fn tracker_restarted_mid_swarm() {
    let scratch = Scratch::new("tracker-restart");
    let name = "file_A.bin";
    let data = random_bytes(30, (3 << 20) + 17);
    scratch.put_file(1, name, &data);
    scratch.put_file(2, name, &data);
    let mut first = tracker(&scratch);
    let addr = first.addr;
    let quick = ["--heartbeat-interval", "0.2"];
    let mut holder1 = holder(&scratch, 1, addr, name, &quick);
    let _holder2 = holder(&scratch, 2, addr, name, &quick);
    first.proc.expect_line("node 2 announced ");
    // Taken now, so that the wait after the restart sees the new one.
    holder1.proc.expect_line("registered with tracker ");
    // The tracker saves its registry up to a second after a change: a crash before that
    // would forget the nodes, which is not what this test is about.
    let deadline = Instant::now() + LINE_TIMEOUT;
    while !saved_both_holders(&scratch) {
        assert!(
            Instant::now() < deadline,
            "the registry was never saved with both holders\n{}",
            first.proc.describe()
        );
        first.proc.read_for(Duration::from_millis(5));
    }

    first.proc.kill();
    holder1.proc.expect_line(&format!(
        "tracker {addr} is not answering; retrying with backoff"
    ));
    // The same address (read from the first tracker, not fixed) and the same database.
    let mut second = tracker_on(&scratch, &addr.to_string(), &[]);
    assert_eq!(second.addr, addr);
    let restored = second.proc.expect_line("restored ");
    assert!(
        restored.starts_with("restored 2 nodes and 1 files from "),
        "{restored}"
    );
    holder1.proc.expect_line("registered with tracker ");

    let mut node3 = downloader(&scratch, 3, addr, name, &[]);
    node3
        .proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(node3.proc.expect_exit(LINE_TIMEOUT), 0);
    assert_file_is(&scratch.node_dir(3).join(name), &data);
}

/// Whether the tracker database in `scratch` holds two nodes and one file they both hold.
fn saved_both_holders(scratch: &Scratch) -> bool {
    // A read racing a save sees the old file or the new one (renamed into place), never half.
    let Ok(Some(snapshot)) = torrent::tracker::db::load(&scratch.db()) else {
        return false;
    };
    snapshot.nodes.len() == 2 && snapshot.files.len() == 1 && snapshot.files[0].holders.len() == 2
}

/// Datagrams no peer or tracker should accept: random bytes of many lengths, headers cut
/// short, wrong magic, wrong version, unknown kinds, valid headers with truncated bodies.
fn garbage() -> Vec<Vec<u8>> {
    let mut list: Vec<Vec<u8>> = vec![Vec::new(), vec![0], b"TRN".to_vec()];
    let noise = random_bytes(40, 70_000);
    let mut at = 0;
    for len in [1, 2, 7, 8, 9, 16, 31, 64, 100, 512, 1400, 9000, 65_507] {
        list.push(noise[at % 4096..at % 4096 + len].to_vec());
        at += 997;
    }
    let header = |magic: &[u8; 4], version: u8, kind: u8| {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&[version, kind, 0, 0]);
        bytes
    };
    for kind in [
        wire::Kind::Register,
        wire::Kind::Announce,
        wire::Kind::Lookup,
        wire::Kind::HaveRequest,
        wire::Kind::PieceRequest,
        wire::Kind::Piece,
    ] {
        let good = header(&wire::MAGIC, wire::VERSION, kind as u8);
        for cut in 0..good.len() {
            list.push(good[..cut].to_vec());
        }
        // A whole header and a body too short for the kind.
        let mut short = good.clone();
        short.extend_from_slice(&noise[..3]);
        list.push(short);
        let mut wrong_magic = header(b"TRNX", wire::VERSION, kind as u8);
        wrong_magic.extend_from_slice(&noise[..60]);
        list.push(wrong_magic);
        let mut wrong_version = header(&wire::MAGIC, wire::VERSION.wrapping_add(1), kind as u8);
        wrong_version.extend_from_slice(&noise[..60]);
        list.push(wrong_version);
    }
    for kind in [0x00, 0x0b, 0x18, 0x7f, 0xff] {
        let mut unknown = header(&wire::MAGIC, wire::VERSION, kind);
        unknown.extend_from_slice(&noise[..60]);
        list.push(unknown);
    }
    list
}

/// A counter in a line like `datagrams: 12 received, 3 malformed, ...` (node) or
/// `tracker stopping (received 12, malformed 3, ...)` (tracker).
fn counter(line: &str, word: &str) -> u64 {
    line.split([',', ':', '(', ')'])
        .find_map(
            |part| match part.split_whitespace().collect::<Vec<_>>()[..] {
                [number, name] | [name, number] if name == word => number.parse().ok(),
                _ => None,
            },
        )
        .unwrap_or_else(|| panic!("no '{word}' counter in '{line}'"))
}

#[test]
fn garbage_datagrams_are_dropped_and_counted() {
    let scratch = Scratch::new("garbage");
    let name = "file_G.bin";
    let data = random_bytes(41, 500_000);
    scratch.put_file(1, name, &data);
    let mut tracker = tracker(&scratch);
    let mut holder1 = holder(&scratch, 1, tracker.addr, name, &[]);

    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a test socket");
    let list = garbage();
    for datagram in &list {
        for to in [tracker.addr, holder1.addr] {
            // A datagram the kernel refuses (none should be) is not the binary's concern.
            let _ = socket.send_to(datagram, to);
        }
    }
    // Both still serve: a download goes through the tracker and the holder.
    let mut node2 = downloader(&scratch, 2, tracker.addr, name, &[]);
    assert_eq!(
        node2.proc.expect_exit(DOWNLOAD_TIMEOUT),
        0,
        "{}",
        node2.proc.describe()
    );
    assert_file_is(&scratch.node_dir(2).join(name), &data);

    holder1.proc.send_line("status");
    let line = holder1.proc.expect_line("datagrams: ");
    // Every datagram of the list fails to decode except the empty one, which the kernel may
    // or may not deliver; all that arrived must be counted as malformed.
    let malformed = counter(&line, "malformed");
    assert!(malformed >= list.len() as u64 - 1, "{line}");

    tracker.proc.terminate();
    let stopping = tracker.proc.expect_line("tracker stopping (");
    let malformed = counter(&stopping, "malformed");
    assert!(malformed >= list.len() as u64 - 1, "{stopping}");
    assert_eq!(tracker.proc.expect_exit(LINE_TIMEOUT), 0);
}
