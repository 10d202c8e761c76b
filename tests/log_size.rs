//! The logs stay bounded: `status` output is not copied into them, and a log that reaches
//! `--log-size` is moved to `NAME.1` (one old file kept), for nodes and the tracker alike.

mod common;

use common::*;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn status_is_not_copied_into_the_log() {
    let scratch = Scratch::new("log-status");
    let tracker = tracker(&scratch);
    let mut node = node(&scratch, 1, tracker.addr, &[]);
    node.proc.expect_line("registered with tracker ");
    let log = scratch.logs().join("node1.log");
    let before = size(&log);
    const ASKED: usize = 1000;
    for _ in 0..ASKED {
        node.proc.send_line("status");
    }
    for asked in 0..ASKED {
        node.proc
            .wait_line(|line| line.starts_with("datagrams: "), LINE_TIMEOUT)
            .unwrap_or_else(|e| panic!("status {asked}: {e}"));
    }
    node.proc.send_line("exit");
    assert_eq!(node.proc.expect_exit(LINE_TIMEOUT), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("datagrams: "), "status was logged");
    // Each status is about 1 KB: 1,000 of them copied would be a megabyte.
    let grown = size(&log) - before;
    assert!(grown < 20_000, "the log grew by {grown} bytes");
}

#[test]
fn node_and_tracker_logs_rotate_at_log_size_keeping_one_old_file() {
    let scratch = Scratch::new("log-rotate");
    let bound: u64 = 16 << 10;
    let tracker = tracker_on(
        &scratch,
        "127.0.0.1:0",
        &["--log-size", "16K", "--log-level", "debug"],
    );
    let mut node = node(&scratch, 1, tracker.addr, &["--log-size", "16K"]);
    node.proc.expect_line("registered with tracker ");
    // Each refused line is logged (about 90 bytes): 2,000 of them are 11 times the bound.
    const JUNK: usize = 2000;
    for i in 0..JUNK {
        node.proc.send_line(&format!("blah{i}"));
    }
    let last = format!("unknown command 'blah{}'", JUNK - 1);
    node.proc
        .wait_line(|line| line.starts_with(&last), LINE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // The tracker logs every malformed datagram at debug level.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2000 {
        socket
            .send_to(b"not a datagram of ours, long enough to log", tracker.addr)
            .unwrap();
    }
    let logs = scratch.logs();
    let tracker_old = logs.join("_tracker.log.1");
    let deadline = Instant::now() + LINE_TIMEOUT;
    while size(&tracker_old) == 0 {
        assert!(Instant::now() < deadline, "the tracker's log never rotated");
        node.proc.read_for(Duration::from_millis(10));
    }
    node.proc.send_line("exit");
    assert_eq!(node.proc.expect_exit(LINE_TIMEOUT), 0);
    for name in ["node1.log", "_tracker.log"] {
        let current = logs.join(name);
        let old = logs.join(format!("{name}.1"));
        assert!(size(&current) <= bound, "{name}: {} bytes", size(&current));
        assert!(size(&old) > bound / 2, "{name}.1: {} bytes", size(&old));
        assert!(size(&old) <= bound, "{name}.1: {} bytes", size(&old));
        assert!(!logs.join(format!("{name}.2")).exists());
    }
    // The newest lines are in the current file.
    let text = std::fs::read_to_string(logs.join("node1.log")).unwrap();
    assert!(text.contains("exits with code 0"), "{text}");
}
