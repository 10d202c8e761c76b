//! The exit code of every way a scripted node (`--download`, `--send`, `--export` with
//! `--exit-when-done`) can end: 0 only when everything asked for was done, 1 with a line
//! that says why otherwise, including a signal before the end.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

/// Runs node `id` with `extra` flags to its end; returns its exit code and the process.
fn run_node(scratch: &Scratch, id: u32, tracker: &Tracker, extra: &[&str]) -> (i32, Proc) {
    let mut proc = spawn(
        &format!("node{id}"),
        &scratch.root,
        &node_args(scratch, id, tracker.addr, extra),
    );
    let code = proc.expect_exit(DOWNLOAD_TIMEOUT);
    (code, proc)
}

/// The stdout line that starts with `prefix`, or a panic that shows everything printed.
fn line_starting(proc: &Proc, prefix: &str) -> String {
    proc.stdout_lines()
        .iter()
        .find(|line| line.starts_with(prefix))
        .cloned()
        .unwrap_or_else(|| panic!("no line '{prefix}...'\n{}", proc.describe()))
}

#[test]
fn a_name_that_already_exists_with_other_content_fails_with_1() {
    let scratch = Scratch::new("exit-exists");
    let tracker = tracker(&scratch);
    let name = "d.bin";
    scratch.put_file(1, name, &random_bytes(1, 100_000));
    let _holder = holder(&scratch, 1, tracker.addr, name, &[]);
    let mine = random_bytes(2, 5_000);
    let path = scratch.put_file(2, name, &mine);
    let (code, proc) = run_node(
        &scratch,
        2,
        &tracker,
        &["--download", name, "--exit-when-done"],
    );
    assert_eq!(code, 1, "{}", proc.describe());
    let line = line_starting(&proc, &format!("download {name} failed: "));
    assert!(line.contains("already exists"), "{line}");
    // The user's file is untouched.
    assert_file_is(&path, &mine);
}

#[test]
fn downloading_a_name_the_node_shares_fails_with_1() {
    let scratch = Scratch::new("exit-shares");
    let tracker = tracker(&scratch);
    let name = "s.bin";
    let data = random_bytes(3, 100_000);
    scratch.put_file(1, name, &data);
    let (code, proc) = run_node(
        &scratch,
        1,
        &tracker,
        &["--send", name, "--download", name, "--exit-when-done"],
    );
    assert_eq!(code, 1, "{}", proc.describe());
    let line = line_starting(&proc, &format!("download {name} failed: "));
    assert!(line.contains("already exists"), "{line}");
    assert_file_is(&scratch.node_dir(1).join(name), &data);
}

#[test]
fn a_missing_send_or_an_impossible_export_fails_with_1() {
    let scratch = Scratch::new("exit-send-export");
    let tracker = tracker(&scratch);
    let (code, proc) = run_node(
        &scratch,
        1,
        &tracker,
        &["--send", "missing.bin", "--exit-when-done"],
    );
    assert_eq!(code, 1, "{}", proc.describe());
    line_starting(&proc, "cannot share missing.bin");

    let (code, proc) = run_node(
        &scratch,
        2,
        &tracker,
        &["--export", "nothing.bin", "--exit-when-done"],
    );
    assert_eq!(code, 1, "{}", proc.describe());
    line_starting(&proc, "cannot export nothing.bin");

    // What succeeds still exits 0: a file shared and exported.
    scratch.put_file(3, "e.bin", &random_bytes(4, 50_000));
    let (code, proc) = run_node(
        &scratch,
        3,
        &tracker,
        &["--send", "e.bin", "--export", "e.bin", "--exit-when-done"],
    );
    assert_eq!(code, 0, "{}", proc.describe());
    assert!(scratch.node_dir(3).join("e.bin.torrent").exists());
}

/// Verified chunks of the download of `dir`, and whether its partial file is there.
fn partial_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(".torrent").join("partial"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn sigterm_during_a_download_exits_1_and_says_what_is_kept() {
    let scratch = Scratch::new("exit-sigterm");
    let tracker = tracker(&scratch);
    let name = "slow.bin";
    // 32 chunks of 64 KiB at 256 KiB/s: about 8 s, so the signal comes mid-way.
    let data = random_bytes(5, 2 << 20);
    scratch.put_file(1, name, &data);
    let _holder = holder(
        &scratch,
        1,
        tracker.addr,
        name,
        &["--chunk-size", "64K", "--max-upload-rate", "256K"],
    );
    let mut node = downloader(&scratch, 2, tracker.addr, name, &[]);
    node.wait_verified(&scratch.node_dir(2), 2);
    node.proc.terminate();
    let code = node.proc.expect_exit(LINE_TIMEOUT);
    assert_eq!(code, 1, "{}", node.proc.describe());
    let line = line_starting(&node.proc, &format!("download {name} interrupted at "));
    assert!(line.contains('%') && line.contains("kept"), "{line}");
    // What it says is true: the partial file is there, and the name is not published.
    assert_eq!(partial_files(&scratch.node_dir(2)), 1);
    assert!(!scratch.node_dir(2).join(name).exists());
}

#[test]
fn sigint_before_a_transfer_exits_1_with_exit_when_done_and_0_without() {
    let scratch = Scratch::new("exit-sigint");
    let tracker = tracker(&scratch);
    for (id, extra, expected) in [(1, &["--exit-when-done"][..], 1), (2, &[][..], 0)] {
        let mut flags = vec!["--download", "nobody-has-it.bin", "--give-up-after", "60"];
        flags.extend_from_slice(extra);
        let mut node = node(&scratch, id, tracker.addr, &flags);
        node.proc.expect_line("registered with tracker ");
        node.proc.interrupt();
        let code = node.proc.expect_exit(LINE_TIMEOUT);
        assert_eq!(code, expected, "{}", node.proc.describe());
        node.proc
            .wait_line(
                |line| line.starts_with("download nobody-has-it.bin interrupted before"),
                Duration::ZERO,
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
