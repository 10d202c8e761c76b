//! A directory shared as one item and downloaded as the same tree: every file's bytes, the
//! executable bits, empty files, deep and unicode paths, inner dot-files; a download killed
//! halfway resumes; and a link planted where the partial tree goes is never followed.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A tree of real-looking content in `top`: files spanning chunk boundaries, an empty file,
/// an executable, a deep path, unicode names and an inner dot-file. Returns its byte count.
fn make_tree(top: &Path, seed: u64) -> u64 {
    let files: [(&str, usize); 9] = [
        ("config.json", 311),
        ("weights/shard-00001.bin", 150_000),
        ("weights/shard-00002.bin", 65_536),
        ("weights/shard-00003.bin", 1),
        ("empty.txt", 0),
        (".gitattributes", 40),
        ("a/b/c/d/e/deep.bin", 70_001),
        ("données/ünïcode ☃.txt", 12),
        ("run.sh", 30),
    ];
    let mut total = 0;
    for (i, (path, len)) in files.iter().enumerate() {
        let path = top.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, random_bytes(seed + i as u64, *len)).unwrap();
        total += *len as u64;
    }
    fs::set_permissions(top.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    total
}

/// What the holder printed: `sharing NAME (HASH, ...)` gives the tree's info hash.
fn info_hash_in(line: &str) -> String {
    line.split('(')
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no info hash in '{line}'"))
        .to_string()
}

#[test]
fn a_tree_is_shared_and_downloaded_whole() {
    let scratch = Scratch::new("tree");
    let original = scratch.node_dir(1).join("model");
    make_tree(&original, 1);
    let tracker = tracker(&scratch);
    let _holder = holder(&scratch, 1, tracker.addr, "model", &["--chunk-size", "64K"]);
    downloader(&scratch, 2, tracker.addr, "model", &[]).expect_downloaded("model");
    let dir = scratch.node_dir(2);
    assert_eq!(tree_listing(&dir.join("model")), tree_listing(&original));
    // Nothing else was written: the tree, and the node's own state, whose partial
    // directory is empty again.
    assert_eq!(list_dir(&dir), [".torrent", "model"]);
    assert!(list_dir(&dir.join(".torrent").join("partial")).is_empty());
}

#[test]
fn a_killed_tree_download_resumes_where_it_was() {
    let scratch = Scratch::new("tree-resume");
    let original = scratch.node_dir(1).join("data");
    // Sixteen 64 KiB chunks' worth, sent at 256 KiB/s: the kill lands mid-transfer.
    let mut total = make_tree(&original, 2);
    fs::write(original.join("bulk.bin"), random_bytes(9, 1 << 20)).unwrap();
    total += 1 << 20;
    let chunks = total.div_ceil(64 << 10) as u32;
    let tracker = tracker(&scratch);
    let _holder = holder(
        &scratch,
        1,
        tracker.addr,
        "data",
        &["--chunk-size", "64K", "--max-upload-rate", "256K"],
    );
    let dir = scratch.node_dir(2);
    let mut first = downloader(&scratch, 2, tracker.addr, "data", &[]);
    first.wait_verified(&dir, 4);
    first.kill_and_wait();
    let verified_before = verified_chunks(&dir);
    assert!(
        verified_before < chunks && !dir.join("data").exists(),
        "the download finished before the kill; slow it down"
    );
    let line = downloader(&scratch, 2, tracker.addr, "data", &[]).expect_downloaded("data");
    assert_eq!(tree_listing(&dir.join("data")), tree_listing(&original));
    let fetched = chunks_from(&line, 1);
    assert!(fetched >= 1, "nothing fetched after the restart? {line}");
    assert!(
        fetched <= chunks - verified_before,
        "fetched {fetched} chunks after the restart, but only {} were missing: {line}",
        chunks - verified_before
    );
}

#[test]
fn a_link_planted_in_the_partial_tree_is_never_followed() {
    let scratch = Scratch::new("tree-link");
    let original = scratch.node_dir(1).join("model");
    make_tree(&original, 3);
    let tracker = tracker(&scratch);
    let mut holder = node(&scratch, 1, tracker.addr, &["--send", "model"]);
    let sharing = holder.proc.expect_line("sharing model ");
    let info_hash = info_hash_in(&sharing);
    // A local user plants a link where the downloader's partial tree goes, to a directory
    // outside the node's.
    let outside = scratch.root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let partial = scratch.node_dir(2).join(".torrent").join("partial");
    fs::create_dir_all(&partial).unwrap();
    std::os::unix::fs::symlink(&outside, partial.join(format!("{info_hash}.d"))).unwrap();
    downloader(&scratch, 2, tracker.addr, "model", &[]).expect_downloaded("model");
    assert_eq!(
        tree_listing(&scratch.node_dir(2).join("model")),
        tree_listing(&original)
    );
    assert!(
        list_dir(&outside).is_empty(),
        "written through the planted link: {:?}",
        list_dir(&outside)
    );
}

#[test]
fn a_change_deep_in_a_shared_tree_is_noticed_and_hashed_again() {
    let scratch = Scratch::new("tree-change");
    let original = scratch.node_dir(1).join("model");
    make_tree(&original, 4);
    let tracker = tracker(&scratch);
    let mut holder = node(&scratch, 1, tracker.addr, &["--send", "model"]);
    let first = info_hash_in(&holder.proc.expect_line("sharing model "));
    // A file written to in place, four levels down.
    fs::write(original.join("a/b/c/d/e/deep.bin"), b"rewritten").unwrap();
    holder
        .proc
        .expect_line("model changed on disk (written to in place)");
    let second = info_hash_in(&holder.proc.expect_line("sharing model "));
    assert_ne!(first, second);
    // A file removed from a directory below the top.
    fs::remove_file(original.join("weights/shard-00003.bin")).unwrap();
    holder.proc.expect_line("model changed on disk");
    let third = info_hash_in(&holder.proc.expect_line("sharing model "));
    assert_ne!(second, third);
    // What a downloader gets is the tree as it is now.
    downloader(&scratch, 2, tracker.addr, "model", &[]).expect_downloaded("model");
    assert_eq!(
        tree_listing(&scratch.node_dir(2).join("model")),
        tree_listing(&original)
    );
}
