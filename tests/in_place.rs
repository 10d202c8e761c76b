//! Files where they are: `send /abs/path/file` and `send /abs/path/dir` share in place,
//! without a copy in the node's directory and without writing where they are; the node
//! shares them again when it starts again; a change to such a file is noticed as for a file
//! in the node's directory; `unshare` forgets them for good.

mod common;

use common::*;
use std::fs;

/// Stops a node (SIGTERM) and waits until it is gone, its directory's lock released.
fn stop(node: &mut Node) {
    node.proc.terminate();
    node.proc
        .wait_exit(LINE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn files_and_trees_are_shared_where_they_are_and_again_after_a_restart() {
    let scratch = Scratch::new("in-place");
    let data = scratch.root.join("data");
    fs::create_dir_all(data.join("model/sub")).unwrap();
    let weights = random_bytes(1, 300_000);
    let shard = random_bytes(2, 100_000);
    fs::write(data.join("weights.bin"), &weights).unwrap();
    fs::write(data.join("model/sub/shard.bin"), &shard).unwrap();
    let weights_path = data.join("weights.bin").display().to_string();
    let model_path = data.join("model").display().to_string();
    let tracker = tracker(&scratch);
    let mut holder = node(
        &scratch,
        1,
        tracker.addr,
        &["--send", &weights_path, "--send", &model_path],
    );
    holder.proc.expect_line("sharing weights.bin ");
    holder.proc.expect_line("sharing model ");
    downloader(&scratch, 2, tracker.addr, "weights.bin", &[]).expect_downloaded("weights.bin");
    downloader(&scratch, 3, tracker.addr, "model", &[]).expect_downloaded("model");
    assert_file_is(&scratch.node_dir(2).join("weights.bin"), &weights);
    assert_file_is(&scratch.node_dir(3).join("model/sub/shard.bin"), &shard);
    // No copy in the holder's directory, nothing written where the files are.
    assert_eq!(list_dir(&scratch.node_dir(1)), [".torrent"]);
    assert_eq!(list_dir(&data), ["model", "weights.bin"]);

    // Started again with no --send: both are shared again.
    stop(&mut holder);
    let mut again = node(&scratch, 1, tracker.addr, &[]);
    again.proc.expect_line("sharing weights.bin ");
    again.proc.expect_line("sharing model ");

    // A change in place is noticed and hashed again, as in the node's directory.
    let mut changed = weights.clone();
    changed[0] ^= 1;
    changed.extend_from_slice(b"more");
    fs::write(data.join("weights.bin"), &changed).unwrap();
    again.proc.expect_line("weights.bin changed on disk");
    again.proc.expect_line("sharing weights.bin ");
    downloader(&scratch, 4, tracker.addr, "weights.bin", &[]).expect_downloaded("weights.bin");
    assert_file_is(&scratch.node_dir(4).join("weights.bin"), &changed);

    // Unshared, it is forgotten: the next start shares only the tree.
    again.proc.send_line("unshare weights.bin");
    again.proc.expect_line("no longer sharing weights.bin");
    stop(&mut again);
    let mut third = node(&scratch, 1, tracker.addr, &[]);
    third.proc.expect_line("sharing model ");
    third.proc.send_line("status");
    third.proc.expect_line("uploaded ");
    let said = third.proc.stdout_lines().join("\n");
    assert!(!said.contains("weights.bin"), "{said}");
    assert_eq!(fs::read(data.join("weights.bin")).unwrap(), changed);
}

#[test]
fn what_cannot_be_shared_in_place_is_refused_with_its_reason() {
    let scratch = Scratch::new("in-place-refused");
    let data = scratch.root.join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a.bin"), b"a").unwrap();
    scratch.put_file(1, "a.bin", b"mine");
    let tracker = tracker(&scratch);
    let mut holder = node(&scratch, 1, tracker.addr, &["--send", "a.bin"]);
    holder.proc.expect_line("sharing a.bin ");
    // The same name as a file the node shares already.
    holder
        .proc
        .send_line(&format!("send {}", data.join("a.bin").display()));
    let refused = holder.proc.expect_line("cannot share ");
    assert!(
        refused.contains("shares or fetches a a.bin already"),
        "{refused}"
    );
    // Nothing there, and a hidden name.
    holder
        .proc
        .send_line(&format!("send {}", data.join("missing.bin").display()));
    holder.proc.expect_line("cannot share missing.bin");
    holder
        .proc
        .send_line(&format!("send {}", data.join(".hidden").display()));
    let refused = holder.proc.expect_line("cannot share ");
    assert!(refused.contains(".hidden"), "{refused}");
    // The node's own file is still the one it shares.
    assert_eq!(
        fs::read(scratch.node_dir(1).join("a.bin")).unwrap(),
        b"mine"
    );
}
