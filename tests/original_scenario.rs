//! The original's scenario with the real binary: a tracker; nodes 1 and 2 hold a file; node 3
//! downloads it and exits. The copy must be byte-identical, and must never be visible under
//! its final name before it is complete (the partial file lives in `DIR/.torrent/partial/`).

mod common;

use common::*;
use std::fs;

fn original_scenario(label: &str, size: usize, seed: u64) {
    let scratch = Scratch::new(label);
    let name = "file_A.bin";
    let data = random_bytes(seed, size);
    scratch.put_file(1, name, &data);
    scratch.put_file(2, name, &data);

    let mut tracker = tracker(&scratch);
    // A large transfer is held to about a second (two holders at 32 MiB/s each), so that it
    // is surely seen in progress: unhindered, 64 MiB take 70 ms on loopback.
    let pace: &[&str] = if size >= 64 << 20 {
        &["--max-upload-rate", "32M"]
    } else {
        &[]
    };
    let _holder1 = holder(&scratch, 1, tracker.addr, name, pace);
    let _holder2 = holder(&scratch, 2, tracker.addr, name, pace);
    let mut node3 = downloader(&scratch, 3, tracker.addr, name, &["--progress"]);

    let final_path = scratch.node_dir(3).join(name);
    let partial_dir = scratch.node_dir(3).join(".torrent").join("partial");
    let mut saw_partial = false;
    let line = node3
        .proc
        .wait_line_watching(
            |line| is_downloaded(line, name),
            DOWNLOAD_TIMEOUT,
            |_| {
                // The final name appears by an atomic rename of a complete, verified file.
                if let Ok(meta) = fs::metadata(&final_path)
                    && meta.len() != size as u64
                {
                    return Err(format!(
                        "{} is visible with {} of {size} bytes before completion",
                        final_path.display(),
                        meta.len()
                    ));
                }
                if let Ok(entries) = fs::read_dir(&partial_dir) {
                    saw_partial |= entries
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".part"));
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains(&format!(" {size} bytes ")), "{line}");
    assert_eq!(
        node3.proc.expect_exit(LINE_TIMEOUT),
        0,
        "{}",
        node3.proc.describe()
    );
    assert_file_is(&final_path, &data);
    // Published: nothing of the download is left in the partial directory.
    assert_eq!(list_dir(&partial_dir), Vec::<String>::new());
    if size >= 64 << 20 {
        assert!(
            saw_partial,
            "never saw the partial file in {}",
            partial_dir.display()
        );
    }
    tracker.proc.expect_line("node 3 exited");
}

#[test]
fn empty_file() {
    original_scenario("empty", 0, 1);
}

#[test]
fn one_byte() {
    original_scenario("one-byte", 1, 2);
}

#[test]
fn one_mebibyte_and_one() {
    original_scenario("1m-plus-1", (1 << 20) + 1, 3);
}

#[test]
fn sixty_four_mebibytes() {
    original_scenario("64m", 64 << 20, 4);
}
