//! A file in a node's directory changed by its owner while the node shares it: written to in
//! place (same length), replaced by another file, removed, truncated after a download. The
//! node notices, stops serving the old version, tells the tracker, hashes the new version and
//! shares it; downloaders get the new bytes, never a mix; nothing crashes.

mod common;

use common::*;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

/// The info hash in a `sharing NAME (HASH) ...` line.
fn shared_hash(line: &str) -> String {
    line.split(['(', ')'])
        .nth(1)
        .unwrap_or_else(|| panic!("no info hash in {line:?}"))
        .to_string()
}

/// Downloads `name` on a new node `id` and returns its exit code.
fn download(scratch: &Scratch, id: u32, tracker: &Tracker, name: &str) -> i32 {
    let mut downloader = downloader(scratch, id, tracker.addr, name, &["--give-up-after", "3"]);
    downloader.proc.expect_exit(DOWNLOAD_TIMEOUT)
}

#[test]
fn a_shared_file_rewritten_replaced_or_removed_is_noticed_and_the_new_version_served() {
    let scratch = Scratch::new("changed");
    let name = "versions.bin";
    let first = random_bytes(21, 1 << 20);
    let path = scratch.put_file(1, name, &first);
    let tracker = tracker(&scratch);
    let mut holder1 = holder(&scratch, 1, tracker.addr, name, &["--chunk-size", "64K"]);
    let hash_of = |holder: &mut Node| {
        let line = holder.proc.expect_line(&format!("sharing {name} "));
        shared_hash(&line)
    };
    let first_hash = holder1
        .proc
        .stdout_lines()
        .iter()
        .find(|line| line.starts_with(&format!("sharing {name} ")))
        .map(|line| shared_hash(line))
        .unwrap_or_else(|| panic!("no sharing line\n{}", holder1.proc.describe()));

    // Written in place: same length, one block changed.
    let mut second = first.clone();
    second[300_000..304_096].copy_from_slice(&random_bytes(22, 4096));
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&second[300_000..304_096], 300_000)
        .unwrap();
    holder1.proc.expect_line(&format!(
        "{name} changed on disk (written to in place); no longer sharing the old version"
    ));
    let second_hash = hash_of(&mut holder1);
    assert_ne!(second_hash, first_hash);
    assert_eq!(download(&scratch, 2, &tracker, name), 0);
    assert_file_is(&scratch.node_dir(2).join(name), &second);

    // Replaced: another file renamed over the name.
    let third = random_bytes(23, 700_000);
    let staged = scratch.node_dir(1).join("staged.tmp");
    fs::write(&staged, &third).unwrap();
    fs::rename(&staged, &path).unwrap();
    holder1.proc.expect_line(&format!(
        "{name} changed on disk (replaced by another file); no longer sharing the old version"
    ));
    let third_hash = hash_of(&mut holder1);
    assert!(third_hash != second_hash && third_hash != first_hash);
    assert_eq!(download(&scratch, 3, &tracker, name), 0);
    assert_file_is(&scratch.node_dir(3).join(name), &third);

    // Removed: no version is offered any more; a downloader finds nobody and says so.
    fs::remove_file(&path).unwrap();
    holder1.proc.expect_line(&format!(
        "{name} changed on disk (removed); no longer sharing it"
    ));
    assert_ne!(download(&scratch, 4, &tracker, name), 0);
    assert!(!scratch.node_dir(4).join(name).exists());
    holder1.proc.send_line("status");
    holder1.proc.expect_line("datagrams: ");
    assert!(holder1.proc.running());
}

#[test]
fn a_downloaded_file_truncated_while_served_is_withdrawn_not_a_sigbus() {
    let scratch = Scratch::new("truncated-download");
    let name = "served.bin";
    let data = random_bytes(24, 4 << 20);
    scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    let small = ["--chunk-size", "64K"];
    let mut holder1 = holder(&scratch, 1, tracker.addr, name, &small);
    // Node 2 downloads the file, then serves it slowly: it is read while it is truncated.
    let mut relay = node(
        &scratch,
        2,
        tracker.addr,
        &[&["--download", name, "--max-upload-rate", "1M"][..], &small].concat(),
    );
    relay
        .proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let published = scratch.node_dir(2).join(name);
    assert_file_is(&published, &data);
    holder1.proc.kill();

    let mut downloader = downloader(
        &scratch,
        3,
        tracker.addr,
        name,
        &[&["--give-up-after", "2"][..], &small].concat(),
    );
    let dir3 = scratch.node_dir(3);
    downloader.wait_verified(&dir3, 2);
    OpenOptions::new()
        .write(true)
        .open(&published)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    relay.proc.expect_line(&format!("{name} changed on disk"));
    // Node 3 cannot finish (nobody holds the old version whole), says so, publishes nothing.
    assert_ne!(downloader.proc.expect_exit(DOWNLOAD_TIMEOUT), 0);
    assert!(!dir3.join(name).exists());
    relay.proc.send_line("status");
    relay.proc.expect_line("datagrams: ");
    assert!(relay.proc.running(), "{}", relay.proc.describe());
}
