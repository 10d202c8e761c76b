//! `--output DIR`: a download (a file or a tree) is published where the user says, its
//! partial data and resume state kept there too (on the target's file system), nothing
//! written in the node's own directory but its state; a download killed halfway resumes
//! from there; and links planted in the target are never followed.

mod common;

use common::*;
use std::fs;

#[test]
fn downloads_go_where_the_user_says() {
    let scratch = Scratch::new("output");
    let file = random_bytes(1, 300_000);
    let shard = random_bytes(2, 200_000);
    scratch.put_file(1, "f.bin", &file);
    let tree = scratch.node_dir(1).join("model");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("sub/shard.bin"), &shard).unwrap();
    let tracker = tracker(&scratch);
    let mut holder = node(
        &scratch,
        1,
        tracker.addr,
        &["--send", "f.bin", "--send", "model"],
    );
    holder.proc.expect_line("sharing f.bin ");
    holder.proc.expect_line("sharing model ");
    let out = scratch.root.join("elsewhere").join("in");
    let out_arg = out.display().to_string();
    let mut downloader = node(
        &scratch,
        2,
        tracker.addr,
        &[
            "--download",
            "f.bin",
            "--download",
            "model",
            "--output",
            &out_arg,
            "--exit-when-done",
        ],
    );
    assert_eq!(downloader.proc.expect_exit(DOWNLOAD_TIMEOUT), 0);
    assert_file_is(&out.join("f.bin"), &file);
    assert_file_is(&out.join("model/sub/shard.bin"), &shard);
    // The node's own directory holds its state only; the target, the downloads and its
    // own state, whose partial directory is empty again.
    assert_eq!(list_dir(&scratch.node_dir(2)), [".torrent"]);
    assert!(list_dir(&scratch.node_dir(2).join(".torrent/partial")).is_empty());
    assert_eq!(list_dir(&out), [".torrent", "f.bin", "model"]);
    assert!(list_dir(&out.join(".torrent/partial")).is_empty());
}

#[test]
fn a_killed_download_resumes_in_its_output_directory() {
    let scratch = Scratch::new("output-resume");
    let data = random_bytes(3, 64 * 64 * 1024);
    scratch.put_file(1, "big.bin", &data);
    let tracker = tracker(&scratch);
    let _holder = holder(
        &scratch,
        1,
        tracker.addr,
        "big.bin",
        &["--max-upload-rate", "1M", "--chunk-size", "64K"],
    );
    let out = scratch.root.join("out");
    let out_arg = out.display().to_string();
    let mut first = downloader(
        &scratch,
        2,
        tracker.addr,
        "big.bin",
        &["--output", &out_arg],
    );
    first.wait_verified(&out, 8);
    first.kill_and_wait();
    let verified_before = verified_chunks(&out);
    assert!(
        verified_before < 64 && !out.join("big.bin").exists(),
        "finished before the kill"
    );
    assert_eq!(
        verified_chunks(&scratch.node_dir(2)),
        0,
        "partial state in the node's directory"
    );
    let mut second = downloader(
        &scratch,
        2,
        tracker.addr,
        "big.bin",
        &["--output", &out_arg],
    );
    let line = second.expect_downloaded("big.bin");
    assert_file_is(&out.join("big.bin"), &data);
    let fetched = chunks_from(&line, 1);
    assert!(
        fetched <= 64 - verified_before,
        "fetched {fetched} chunks after the restart, {} were missing: {line}",
        64 - verified_before
    );
}

#[test]
fn links_planted_in_the_output_directory_are_never_followed() {
    let scratch = Scratch::new("output-links");
    let data = random_bytes(4, 100_000);
    scratch.put_file(1, "f.bin", &data);
    let tracker = tracker(&scratch);
    let _holder = holder(&scratch, 1, tracker.addr, "f.bin", &[]);
    let outside = scratch.root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    // The target's state directory is a link out of it: refused, nothing written there.
    let out = scratch.root.join("out");
    fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&outside, out.join(".torrent")).unwrap();
    let out_arg = out.display().to_string();
    let mut refused = downloader(&scratch, 2, tracker.addr, "f.bin", &["--output", &out_arg]);
    assert_eq!(refused.proc.expect_exit(LINE_TIMEOUT), 1);
    let said = refused.proc.stdout_lines().join("\n");
    assert!(said.contains("cannot download f.bin into"), "{said}");
    assert!(tree_listing(&outside).is_empty(), "written outside");
    // The published name is a link to a file outside: the download does not replace it,
    // and nothing is written through it.
    let out = scratch.root.join("out2");
    fs::create_dir_all(&out).unwrap();
    let target = outside.join("target.bin");
    fs::write(&target, b"theirs").unwrap();
    std::os::unix::fs::symlink(&target, out.join("f.bin")).unwrap();
    let out_arg = out.display().to_string();
    let mut refused = downloader(&scratch, 3, tracker.addr, "f.bin", &["--output", &out_arg]);
    assert_eq!(refused.proc.expect_exit(LINE_TIMEOUT), 1);
    assert_eq!(fs::read(&target).unwrap(), b"theirs");
    assert!(
        fs::symlink_metadata(out.join("f.bin"))
            .unwrap()
            .is_symlink()
    );
}
