//! Faults injected into real processes: a network that loses, duplicates and reorders
//! datagrams (`--impair`), a holder whose file no longer matches its manifest, and a shared
//! file truncated while it is served.

mod common;

use common::*;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

#[test]
fn a_lossy_network_still_delivers_identical_bytes() {
    let scratch = Scratch::new("impaired");
    let name = "lossy.bin";
    let data = random_bytes(5, 6 << 20);
    scratch.put_file(1, name, &data);
    scratch.put_file(2, name, &data);
    let impair = |seed: u32| format!("loss=0.1,duplicate=0.05,reorder=0.1,delay-ms=5,seed={seed}");
    let tracker = tracker_on(&scratch, "127.0.0.1:0", &["--impair", &impair(1)]);
    let (i2, i3, i4) = (impair(2), impair(3), impair(4));
    let small = ["--chunk-size", "256K", "--piece-size", "8192"];
    let _h1 = holder(
        &scratch,
        1,
        tracker.addr,
        name,
        &[&["--impair", &i2][..], &small].concat(),
    );
    let _h2 = holder(
        &scratch,
        2,
        tracker.addr,
        name,
        &[&["--impair", &i3][..], &small].concat(),
    );
    let mut downloader = downloader(
        &scratch,
        3,
        tracker.addr,
        name,
        &[&["--impair", &i4][..], &small].concat(),
    );
    downloader
        .proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(downloader.proc.expect_exit(LINE_TIMEOUT), 0);
    assert_file_is(&scratch.node_dir(3).join(name), &data);
}

#[test]
fn a_holder_serving_bad_chunks_is_avoided() {
    let scratch = Scratch::new("bad-holder");
    let name = "bad.bin";
    let data = random_bytes(6, 2 << 20);
    let path1 = scratch.put_file(1, name, &data);
    scratch.put_file(2, name, &data);
    let tracker = tracker(&scratch);
    let chunk = ["--chunk-size", "64K"];
    let _h1 = holder(&scratch, 1, tracker.addr, name, &chunk);
    // The honest holder is slow, so that the downloader surely asks the other one too.
    let _h2 = holder(
        &scratch,
        2,
        tracker.addr,
        name,
        &[&chunk[..], &["--max-upload-rate", "2M"]].concat(),
    );
    let mut downloader = node(&scratch, 3, tracker.addr, &chunk);
    downloader.proc.expect_line("registered with tracker ");
    // Holder 1's file changes under it, same size, and its modification time is set back:
    // its change watcher cannot see it (storage::FileStamp says so), so it keeps serving,
    // and every chunk it serves is now wrong. Only the downloader's SHA-1 checks can catch
    // it, however late this test's steps run on a loaded machine.
    let file = OpenOptions::new().write(true).open(&path1).unwrap();
    let modified = file.metadata().unwrap().modified().unwrap();
    for offset in (0..data.len() as u64).step_by(64 * 1024) {
        file.write_all_at(b"corrupted", offset + 100).unwrap();
    }
    file.set_modified(modified).unwrap();
    drop(file);
    downloader
        .proc
        .send_line(&format!("torrent -setMode download {name}"));
    let line = downloader
        .proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    downloader.proc.send_line("torrent -setMode exit");
    assert_eq!(downloader.proc.expect_exit(LINE_TIMEOUT), 0);
    // Every chunk verified came from the honest holder.
    assert!(!line.contains("node 1: "), "{line}");
    assert_file_is(&scratch.node_dir(3).join(name), &data);
    let log = fs::read_to_string(scratch.logs().join("node3.log")).unwrap();
    assert!(
        log.contains("failed its SHA-1"),
        "no bad chunk was detected:\n{log}"
    );
    assert!(
        log.contains("sent 3 bad chunks; dropping it"),
        "the bad holder was not dropped:\n{log}"
    );
}

#[test]
fn a_shared_file_truncated_while_served_is_withdrawn_not_a_crash() {
    let scratch = Scratch::new("truncated");
    let name = "shrinks.bin";
    let data = random_bytes(7, 4 << 20);
    let path = scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    let mut holder1 = holder(
        &scratch,
        1,
        tracker.addr,
        name,
        &["--max-upload-rate", "1M", "--chunk-size", "64K"],
    );
    let mut downloader = downloader(
        &scratch,
        2,
        tracker.addr,
        name,
        &["--give-up-after", "2", "--chunk-size", "64K"],
    );
    let dir2 = scratch.node_dir(2);
    downloader.wait_verified(&dir2, 2);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    holder1
        .proc
        .wait_line(
            |line| line.starts_with(&format!("{name} changed on disk")),
            LINE_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // The downloader cannot finish, says so, and publishes nothing.
    assert_ne!(downloader.proc.expect_exit(DOWNLOAD_TIMEOUT), 0);
    assert!(!dir2.join(name).exists());
    // The holder is still alive and answers.
    holder1.proc.send_line("status");
    holder1
        .proc
        .wait_line(|line| line.starts_with("datagrams: "), LINE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(holder1.proc.running());
}
