//! `torrent node --json` with the real binary: a tracker, a holder, and a downloader whose
//! stdout must be JSON lines only, one event each (see `src/node/events.rs`): what it shares,
//! the progress of its download, the download's end, a failed download's reason, the answers
//! to console commands, and a peer dropped when its holder is killed mid-transfer.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// Node 1's upload limit: the 2 MiB file takes about two seconds, so that the downloader
/// reports progress with the size known (it reports once a second, the first time at once).
const HOLDER_RATE: &str = "1M";
const FILE_BYTES: usize = 2 << 20;

/// A JSON event line, or `None` for any other line.
fn event(line: &str) -> Option<Value> {
    serde_json::from_str::<Value>(line)
        .ok()
        .filter(|v| v["event"].is_string())
}

/// Whether `line` is the event `kind` and `matches` holds for it.
fn is_event(line: &str, kind: &str, matches: impl Fn(&Value) -> bool) -> bool {
    event(line).is_some_and(|v| v["event"] == kind && matches(&v))
}

#[test]
fn a_node_with_json_prints_each_event_as_a_json_line() {
    let scratch = Scratch::new("json-events");
    let data = random_bytes(16, FILE_BYTES);
    scratch.put_file(1, "f.bin", &data);
    let own = random_bytes(17, 300_000);
    scratch.put_file(2, "own.bin", &own);
    let tracker = tracker(&scratch);
    let mut holder = holder(
        &scratch,
        1,
        tracker.addr,
        "f.bin",
        &["--chunk-size", "256K", "--max-upload-rate", HOLDER_RATE],
    );
    // "sharing f.bin (HEX, ...)", which `holder` waited for: the info hash the downloader's
    // events must name.
    let lines = holder.proc.stdout_lines();
    let sharing = lines
        .iter()
        .find(|l| l.starts_with("sharing f.bin ("))
        .unwrap();
    let info_hash = sharing["sharing f.bin (".len()..][..40].to_string();

    let flags = [
        "--json",
        "--send",
        "own.bin",
        "--download",
        "f.bin",
        "--give-up-after",
        "2",
    ];
    let mut node = spawn(
        "node2",
        &scratch.root,
        &node_args(&scratch, 2, tracker.addr, &flags),
    );
    let wait = |node: &mut Proc, kind: &str, matches: &dyn Fn(&Value) -> bool| -> Value {
        let line = node
            .wait_line(|line| is_event(line, kind, matches), DOWNLOAD_TIMEOUT)
            .unwrap_or_else(|e| panic!("waiting for a {kind} event: {e}"));
        event(&line).expect("an event")
    };
    let listening = wait(&mut node, "message", &|v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("node 2 listening on "))
    });
    assert_eq!(listening["version"], 1);

    // Its own file, hashed and shared.
    let own_shared = wait(&mut node, "sharing", &|v| v["name"] == "own.bin");
    assert_eq!(own_shared["bytes"], own.len() as u64);
    let own_hash = own_shared["info_hash"].as_str().expect("a hex info hash");
    assert!(
        own_hash.len() == 40 && own_hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{own_shared}"
    );
    assert_ne!(own_hash, info_hash);

    // The download: progress with the size known, then its end.
    let progress = wait(&mut node, "progress", &|v| {
        v["name"] == "f.bin" && v["total_bytes"] == FILE_BYTES as u64
    });
    assert_eq!(progress["id"], 1, "{progress}");
    assert_eq!(progress["info_hash"], info_hash.as_str(), "{progress}");
    assert!(progress["verified_bytes"].as_u64() <= Some(FILE_BYTES as u64));
    assert!(progress["bytes_per_s"].is_number() && progress["peers"].is_number());
    let downloaded = wait(&mut node, "downloaded", &|v| v["name"] == "f.bin");
    assert_eq!(downloaded["id"], 1, "{downloaded}");
    assert_eq!(downloaded["info_hash"], info_hash.as_str(), "{downloaded}");
    assert_eq!(downloaded["bytes"], FILE_BYTES as u64, "{downloaded}");
    assert!(downloaded["seconds"].as_f64() > Some(0.0), "{downloaded}");
    let sources = downloaded["sources"].as_array().expect("sources");
    assert_eq!(sources.len(), 1, "{downloaded}");
    assert_eq!(sources[0]["node"], 1);
    assert_eq!(sources[0]["chunks"], downloaded["chunks"]);
    assert_file_is(&scratch.node_dir(2).join("f.bin"), &data);

    // A name nobody holds: given up after two seconds, with a reason.
    node.send_line("download absent.bin");
    let failed = wait(&mut node, "failed", &|v| v["name"] == "absent.bin");
    assert_eq!(failed["id"], 2, "{failed}");
    let reason = failed["reason"].as_str().expect("a reason");
    assert!(reason.contains("absent.bin"), "{failed}");
    assert_eq!(failed["info_hash"], Value::Null, "{failed}");
    assert_eq!(failed["partial"]["fate"], "none", "{failed}");

    // A console command's answer is an event too, however many lines it has.
    node.send_line("status");
    let status = wait(&mut node, "output", &|v| {
        v["text"].as_str().is_some_and(|t| t.starts_with("node 2 "))
    });
    assert!(status["text"].as_str().unwrap().contains('\n'), "{status}");

    node.send_line("exit");
    assert_eq!(node.expect_exit(LINE_TIMEOUT), 0, "{}", node.describe());
    let lines = node.stdout_lines();
    for line in lines {
        assert!(event(line).is_some(), "not a JSON event: {line:?}");
    }
    let leaving = lines.last().and_then(|l| event(l)).expect("a last line");
    assert!(
        leaving["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("node 2 leaving")),
        "{leaving}"
    );
    assert!(
        !lines.iter().any(|l| l.contains('\r')),
        "a progress redraw in JSON mode"
    );
    holder.proc.terminate();
    assert_eq!(holder.proc.expect_exit(Duration::from_secs(20)), 0);
}

/// A holder killed mid-transfer: the downloader reports the peer dropped (silent), then the
/// download failed, with the partial file kept and the command that resumes it.
#[test]
fn a_dropped_peer_and_a_kept_partial_file_are_events() {
    let scratch = Scratch::new("json-dropped");
    let tracker = tracker(&scratch);
    let name = "big.bin";
    scratch.put_file(1, name, &random_bytes(21, 4 << 20));
    // About 4 s for the file: the kill lands mid-transfer.
    let mut holder = holder(
        &scratch,
        1,
        tracker.addr,
        name,
        &["--max-upload-rate", "1M", "--chunk-size", "64K"],
    );
    let flags = [
        "--json",
        "--download",
        name,
        "--exit-when-done",
        "--give-up-after",
        "3",
    ];
    let mut node = spawn(
        "node2",
        &scratch.root,
        &node_args(&scratch, 2, tracker.addr, &flags),
    );
    let dir = scratch.node_dir(2);
    let deadline = std::time::Instant::now() + DOWNLOAD_TIMEOUT;
    while verified_chunks(&dir) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no chunk verified\n{}",
            node.describe()
        );
        node.read_for(Duration::from_millis(5));
    }
    holder.proc.kill();
    assert_eq!(node.expect_exit(LINE_TIMEOUT), 1, "{}", node.describe());
    let events: Vec<Value> = node
        .stdout_lines()
        .iter()
        .map(|line| event(line).unwrap_or_else(|| panic!("not a JSON event: {line:?}")))
        .collect();
    let dropped = events
        .iter()
        .find(|v| v["event"] == "peer_dropped")
        .unwrap_or_else(|| panic!("no peer_dropped event\n{}", node.describe()));
    assert_eq!(dropped["download"], name, "{dropped}");
    assert_eq!(dropped["peer"], 1, "{dropped}");
    assert_eq!(dropped["addr"], holder.addr.to_string(), "{dropped}");
    assert_eq!(dropped["cause"], "silent", "{dropped}");
    assert!(
        dropped["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("stopped answering")),
        "{dropped}"
    );
    let failed = events
        .iter()
        .find(|v| v["event"] == "failed")
        .unwrap_or_else(|| panic!("no failed event\n{}", node.describe()));
    assert_eq!(failed["name"], name, "{failed}");
    assert!(failed["info_hash"].is_string(), "{failed}");
    let partial = &failed["partial"];
    assert_eq!(partial["fate"], "kept", "{failed}");
    assert_eq!(partial["file_bytes"], 4 << 20, "{failed}");
    assert!(
        partial["verified_bytes"].as_u64() >= Some(4 * 64 * 1024),
        "{failed}"
    );
    assert_eq!(partial["resume"], format!("download {name}"), "{failed}");
    let path = partial["path"].as_str().expect("the partial file's path");
    assert!(std::path::Path::new(path).exists(), "{failed}");
}
