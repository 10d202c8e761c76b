//! A disk that is full, or fills, under a downloading node (real processes; the node's
//! directory is a small tmpfs). Needs root to mount it: otherwise each test prints
//! `SKIPPED` and passes.
//!
//! * Full before the download can reserve its space: the node says so once (how much is
//!   missing), publishes nothing, does not give up, and finishes once space is freed.
//! * No inode left for the small state files: the same, waited out.
//! * Filling after the reservation: the download finishes, byte for byte (the space was
//!   allocated up front, so no write into the mapping needs room: no SIGBUS).

mod common;

use common::*;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs mounted on a directory for one test; unmounted on drop, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it) on `dir`, or says why not.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not root: cannot mount a small file system".into());
        }
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // The nodes are gone by now (declared later, dropped first); lazily if still busy.
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn skip(reason: &str) {
    eprintln!("SKIPPED disk_full: {reason}");
}

fn free_bytes(dir: &Path) -> u64 {
    let stat = rustix::fs::statvfs(dir).expect("statvfs");
    stat.f_bavail * stat.f_frsize
}

/// Writes zeros into `path` until `len` bytes or the disk is full; returns bytes written.
fn fill(path: &Path, len: u64) -> u64 {
    let mut file = File::create(path).expect("create the filler");
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    while written < len {
        let part = block.len().min((len - written) as usize);
        match file.write(&block[..part]) {
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
            Err(e) => panic!("writing the filler: {e}"),
        }
    }
    written
}

#[test]
fn a_full_disk_is_said_publishes_nothing_and_the_download_goes_on_once_space_is_free() {
    let scratch = Scratch::new("disk-full");
    let name = "full.bin";
    let data = random_bytes(31, 8 << 20);
    scratch.put_file(1, name, &data);
    let dir = scratch.node_dir(2);
    let _tmpfs = match Tmpfs::mount(&dir, "16m") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => return skip(&reason),
    };
    // Leave 4 MiB: room for the node's small state files, not for the 8 MiB download.
    let filler = dir.join("filler");
    let free = free_bytes(&dir);
    fill(&filler, free - (4 << 20));

    let tracker = tracker(&scratch);
    let _holder = holder(&scratch, 1, tracker.addr, name, &["--chunk-size", "256K"]);
    let mut node = downloader(&scratch, 2, tracker.addr, name, &["--give-up-after", "3"]);
    let said = node
        .proc
        .wait_line(
            |line| line.starts_with(&format!("download {name} waiting for disk space: ")),
            LINE_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        said.contains("more bytes needed") && said.contains(&dir.display().to_string()),
        "the line does not say where and how much: {said}"
    );
    // Longer than --give-up-after: the node neither gives up nor publishes anything.
    node.proc.read_for(Duration::from_millis(2500));
    assert!(node.proc.running(), "{}", node.proc.describe());
    node.proc.send_line("status");
    node.proc
        .wait_line(
            |line| {
                line.contains(&format!("downloading {name} "))
                    && line.ends_with(", waiting for disk space")
            },
            LINE_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("status does not say the download waits for disk space: {e}"));
    let lines = node.proc.stdout_lines();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("failed") || is_downloaded(l, name)),
        "{}",
        node.proc.describe()
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("download {name} waiting for disk space")))
            .count(),
        1,
        "said more than once\n{}",
        node.proc.describe()
    );
    assert!(!dir.join(name).exists(), "published on a full disk");

    fs::remove_file(&filler).expect("remove the filler");
    node.proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(node.proc.expect_exit(LINE_TIMEOUT), 0);
    assert_file_is(&dir.join(name), &data);
}

#[test]
fn a_disk_that_fills_after_the_reservation_does_not_stop_the_download() {
    let scratch = Scratch::new("disk-fills");
    let name = "fills.bin";
    let chunks = 32usize;
    let data = random_bytes(32, chunks * 256 * 1024);
    scratch.put_file(1, name, &data);
    let dir = scratch.node_dir(2);
    let _tmpfs = match Tmpfs::mount(&dir, "16m") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => return skip(&reason),
    };
    let tracker = tracker(&scratch);
    // Throttled (8 MiB at 2 MiB/s), so that the disk fills mid-transfer.
    let _holder = holder(
        &scratch,
        1,
        tracker.addr,
        name,
        &["--chunk-size", "256K", "--max-upload-rate", "2M"],
    );
    let mut node = downloader(&scratch, 2, tracker.addr, name, &[]);
    node.wait_verified(&dir, 2);
    // Every free byte taken while pieces are still being written into the mapping.
    let filled = fill(&dir.join("filler"), u64::MAX);
    assert!(free_bytes(&dir) < 64 * 1024, "the disk is not full");
    assert!(
        verified_chunks(&dir) < chunks as u32 && !dir.join(name).exists(),
        "the download finished before the disk filled; slow it down (filled {filled} bytes)"
    );
    node.proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(node.proc.expect_exit(LINE_TIMEOUT), 0);
    assert_file_is(&dir.join(name), &data);
}

#[test]
fn no_room_for_the_state_files_is_waited_out_too() {
    let scratch = Scratch::new("no-inodes");
    let name = "inodes.bin";
    let data = random_bytes(33, 1 << 20);
    scratch.put_file(1, name, &data);
    let dir = scratch.node_dir(2);
    // Plenty of bytes, few files.
    let _tmpfs = match Tmpfs::mount(&dir, "16m,nr_inodes=64") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => return skip(&reason),
    };
    let tracker = tracker(&scratch);
    let _holder = holder(&scratch, 1, tracker.addr, name, &["--chunk-size", "64K"]);
    let mut node = node(&scratch, 2, tracker.addr, &[]);
    node.proc.expect_line("registered with tracker ");
    // Every inode taken: the download's manifest and have-file cannot be created.
    let fillers = dir.join("fillers");
    fs::create_dir(&fillers).expect("create the fillers' directory");
    let mut taken = 0;
    while File::create(fillers.join(taken.to_string())).is_ok() {
        taken += 1;
        assert!(taken < 1_000, "nr_inodes is not enforced");
    }
    node.proc
        .send_line(&format!("torrent -setMode download {name}"));
    let said = node
        .proc
        .wait_line(
            |line| line.starts_with(&format!("download {name} waiting for disk space: ")),
            LINE_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(said.contains("no file (inode) free"), "{said}");
    assert!(!dir.join(name).exists(), "published without room");

    fs::remove_dir_all(&fillers).expect("remove the fillers");
    node.proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_file_is(&dir.join(name), &data);
}

#[test]
fn a_tree_waits_for_disk_space_as_a_file_does() {
    let scratch = Scratch::new("disk-full-tree");
    let tree = scratch.node_dir(1).join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    let (a, b) = (random_bytes(41, 4 << 20), random_bytes(42, 4 << 20));
    fs::write(tree.join("a.bin"), &a).unwrap();
    fs::write(tree.join("sub/b.bin"), &b).unwrap();
    let dir = scratch.node_dir(2);
    let _tmpfs = match Tmpfs::mount(&dir, "16m") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => return skip(&reason),
    };
    // Room for the first file of the tree, not for both.
    let filler = dir.join("filler");
    let free = free_bytes(&dir);
    fill(&filler, free - (5 << 20));
    let tracker = tracker(&scratch);
    let _holder = holder(&scratch, 1, tracker.addr, "tree", &["--chunk-size", "256K"]);
    let mut node = downloader(&scratch, 2, tracker.addr, "tree", &["--give-up-after", "3"]);
    let said = node
        .proc
        .expect_line("download tree waiting for disk space: ");
    assert!(said.contains("more bytes needed"), "{said}");
    assert!(!dir.join("tree").exists(), "published on a full disk");
    fs::remove_file(&filler).expect("remove the filler");
    node.expect_downloaded("tree");
    assert_file_is(&dir.join("tree/a.bin"), &a);
    assert_file_is(&dir.join("tree/sub/b.bin"), &b);
}
