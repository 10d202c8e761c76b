//! The node's directory under a hostile local user and a careless operator (real
//! processes): links planted where the node keeps its state, FIFOs and sockets given to
//! share, two processes on one directory, two ids one after another, a download that
//! fails, an export over an existing file.
//!
//! Each test checks the outcome on disk (a link's target byte for byte, nothing made
//! outside the node's directory), the exit code and the line that names the problem.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

/// The info hash in a `sharing NAME (HASH, N bytes, K chunks)` line.
fn shared_hash(line: &str) -> String {
    line.split('(')
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no info hash in '{line}'"))
        .to_string()
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Waits (reading the node's output meanwhile) until `condition` holds.
fn wait_until(node: &mut Node, what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + LINE_TIMEOUT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s\n{}",
            LINE_TIMEOUT.as_secs(),
            node.proc.describe()
        );
        node.proc.read_for(Duration::from_millis(5));
    }
}

/// Finding 1: a link planted at `.torrent/partial/HASH.part` is never written through,
/// never renamed into place: the download fails naming it, and the target is untouched.
#[test]
fn a_link_planted_as_the_partial_file_is_never_written_through() {
    let scratch = Scratch::new("planted-part");
    let name = "f.bin";
    let data = random_bytes(5, 256 << 10);
    scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    let mut holder = node(&scratch, 1, tracker.addr, &["--send", name]);
    let hash = shared_hash(&holder.proc.expect_line(&format!("sharing {name} ")));

    let outside = scratch.root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let target = outside.join("precious");
    fs::write(&target, b"the user's file").unwrap();
    let partial = scratch.node_dir(2).join(".torrent").join("partial");
    fs::create_dir_all(&partial).unwrap();
    symlink(&target, partial.join(format!("{hash}.part"))).unwrap();

    let mut downloader = downloader(&scratch, 2, tracker.addr, name, &["--give-up-after", "2"]);
    let line = downloader
        .proc
        .expect_line(&format!("download {name} failed: "));
    assert!(line.contains("is a symbolic link"), "{line}");
    assert_eq!(downloader.proc.expect_exit(LINE_TIMEOUT), 1);
    assert_eq!(fs::read(&target).unwrap(), b"the user's file");
    assert!(
        !scratch.node_dir(2).join(name).exists(),
        "something was published"
    );
    assert!(
        fs::symlink_metadata(partial.join(format!("{hash}.part")))
            .is_ok_and(|meta| meta.is_symlink()),
        "the link itself was renamed"
    );
}

/// Finding 1: a state directory that is a link (to somewhere outside) stops the node at
/// start with a line naming it, before anything is made where it points.
#[test]
fn state_directories_that_are_links_stop_the_node_before_anything_is_made() {
    let scratch = Scratch::new("linked-state");
    let name = "f.bin";
    scratch.put_file(1, name, &random_bytes(6, 64 << 10));
    let tracker = tracker(&scratch);
    let _holder = holder(&scratch, 1, tracker.addr, name, &[]);
    let outside = scratch.root.join("outside");
    fs::create_dir_all(&outside).unwrap();

    // `.torrent/partial` a link (node 2), `.torrent` itself a link (node 3).
    let state2 = scratch.node_dir(2).join(".torrent");
    fs::create_dir_all(&state2).unwrap();
    symlink(&outside, state2.join("partial")).unwrap();
    fs::create_dir_all(scratch.node_dir(3)).unwrap();
    symlink(&outside, scratch.node_dir(3).join(".torrent")).unwrap();
    for (id, what) in [(2, ".torrent/partial"), (3, ".torrent")] {
        let mut proc = spawn(
            &format!("node{id}"),
            &scratch.root,
            &node_args(
                &scratch,
                id,
                tracker.addr,
                &["--download", name, "--exit-when-done"],
            ),
        );
        let code = proc.expect_exit(LINE_TIMEOUT);
        assert_eq!(code, 1, "{}", proc.describe());
        let said = proc.stderr_lines().join("\n");
        assert!(
            said.contains(&format!("{what} is a symbolic link")),
            "{}",
            proc.describe()
        );
    }
    assert_eq!(
        list_dir(&outside),
        Vec::<String>::new(),
        "files made outside"
    );
}

/// Finding 1: a state directory owned by another user is refused (only root can make
/// one for the test: skipped otherwise).
#[test]
fn a_state_directory_of_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: not root, cannot give a directory to another user");
        return;
    }
    let scratch = Scratch::new("foreign-state");
    let tracker = tracker(&scratch);
    let state = scratch.node_dir(1).join(".torrent");
    fs::create_dir_all(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let mut proc = spawn(
        "node1",
        &scratch.root,
        &node_args(&scratch, 1, tracker.addr, &[]),
    );
    assert_eq!(proc.expect_exit(LINE_TIMEOUT), 1, "{}", proc.describe());
    let said = proc.stderr_lines().join("\n");
    assert!(
        said.contains(".torrent is owned by user 65534"),
        "{}",
        proc.describe()
    );
}

/// Finding 5 (and 1 for shared files): FIFOs, a socket and a link given to `send` are
/// refused at once, each with what it is, and never hold a hasher: a regular file shared
/// after them is hashed, shared and downloaded by another node. A FIFO given to `download`
/// as a `.torrent` does not hold the reactor either.
#[test]
fn fifos_sockets_and_links_are_refused_without_blocking_a_hasher() {
    let scratch = Scratch::new("special-files");
    let dir = scratch.node_dir(1);
    let data = random_bytes(8, 300 << 10);
    scratch.put_file(1, "real.bin", &data);
    mkfifo(&dir.join("fifo1"));
    mkfifo(&dir.join("fifo2"));
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    let outside = scratch.root.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"not to be shared").unwrap();
    symlink(outside.join("secret"), dir.join("link")).unwrap();

    let tracker = tracker(&scratch);
    let mut node = node(&scratch, 1, tracker.addr, &[]);
    node.proc.expect_line("registered with tracker ");
    for name in ["fifo1", "fifo2", "sock", "link", "real.bin"] {
        node.proc
            .send_line(&format!("torrent -setMode send {name}"));
    }
    for (name, what) in [
        ("fifo1", "fifo1 is a FIFO, not a regular file"),
        ("fifo2", "fifo2 is a FIFO, not a regular file"),
        ("sock", "sock is a socket, not a regular file"),
        ("link", "link is a symbolic link; share the file itself"),
    ] {
        let line = node.proc.expect_line(&format!("cannot share {name}: "));
        assert!(line.contains(what), "{line}");
    }
    node.proc.expect_line("sharing real.bin ");
    // A FIFO named as a `.torrent` to download: refused, the reactor never waits on it.
    mkfifo(&dir.join("planted.torrent"));
    node.proc.send_line("download planted.torrent");
    let line = node.proc.expect_line("cannot download planted.torrent: ");
    assert!(line.contains("is a FIFO, not a regular file"), "{line}");
    // Another node gets the regular file: the hashers and the reactor are free.
    let mut downloader = downloader(&scratch, 2, tracker.addr, "real.bin", &[]);
    downloader
        .proc
        .wait_line(|line| is_downloaded(line, "real.bin"), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(downloader.proc.expect_exit(LINE_TIMEOUT), 0);
    assert_file_is(&scratch.node_dir(2).join("real.bin"), &data);
}

/// Finding 5: FIFOs planted as the node's state files (its identity, a cached manifest)
/// block neither the start nor a hasher: they are passed over, and replaced when written.
#[test]
fn fifos_planted_as_state_files_block_nothing() {
    let scratch = Scratch::new("state-fifos");
    let data = random_bytes(12, 100 << 10);
    scratch.put_file(1, "real.bin", &data);
    let state = scratch.node_dir(1).join(".torrent");
    fs::create_dir_all(state.join("manifests")).unwrap();
    mkfifo(&state.join("manifests").join("real.bin"));
    mkfifo(&state.join("identity"));
    let tracker = tracker(&scratch);
    let mut node = node(&scratch, 1, tracker.addr, &["--send", "real.bin"]);
    node.proc.expect_line("registered with tracker ");
    node.proc.expect_line("sharing real.bin ");
    // The cache and the identity are regular files now.
    wait_until(&mut node, "the manifest is cached", || {
        fs::symlink_metadata(state.join("manifests").join("real.bin"))
            .is_ok_and(|meta| meta.is_file())
    });
    assert!(fs::symlink_metadata(state.join("identity.1")).is_ok_and(|meta| meta.is_file()));
}

/// Finding 6: a second process on a node's directory exits with 2 and names the process
/// that holds it; the first goes on.
#[test]
fn a_second_process_on_one_directory_exits_2_naming_the_first() {
    let scratch = Scratch::new("two-processes");
    let tracker = tracker(&scratch);
    let mut first = node(&scratch, 1, tracker.addr, &[]);
    first.proc.expect_line("registered with tracker ");
    for id in [1, 2] {
        // The same directory: node 1's, under id 1 (a hijack) and id 2.
        let mut list = node_args(&scratch, id, tracker.addr, &[]);
        let dir_at = list.iter().position(|a| a == "--dir").unwrap() + 1;
        list[dir_at] = scratch.node_dir(1).display().to_string();
        let mut second = spawn(&format!("second{id}"), &scratch.root, &list);
        assert_eq!(second.expect_exit(LINE_TIMEOUT), 2, "{}", second.describe());
        let said = second.stderr_lines().join("\n");
        assert!(
            said.contains(&format!("is in use by process {}", first.proc.pid())),
            "{}",
            second.describe()
        );
    }
    assert!(first.proc.running());
    first.proc.send_line("status");
    first.proc.expect_line("node 1 (registered with tracker");
}

/// Finding 6: two node ids used one after another on one directory keep their own
/// identities: the first comes back as itself.
#[test]
fn two_ids_one_after_another_on_one_directory_keep_their_identities() {
    let scratch = Scratch::new("two-ids");
    let tracker = tracker(&scratch);
    let shared_dir = scratch.node_dir(1).display().to_string();
    let on_shared_dir = |id: u32| {
        let mut list = node_args(&scratch, id, tracker.addr, &[]);
        let dir_at = list.iter().position(|a| a == "--dir").unwrap() + 1;
        list[dir_at] = shared_dir.clone();
        list
    };
    for id in [1, 2, 1] {
        let mut proc = spawn(&format!("node{id}"), &scratch.root, &on_shared_dir(id));
        // Killed, not exited: the tracker keeps the id and its token.
        let line = proc
            .wait_line(
                |line| line.starts_with("registered with tracker ") || line.contains("refused"),
                LINE_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            line.ends_with(&format!("as node {id}")),
            "{line}\n{}",
            proc.describe()
        );
        proc.kill();
    }
}

/// Finding 7: a download that fails after verifying chunks says that its partial file is
/// kept and how to resume it; after a restart, `status` lists it with its size. One that
/// verified nothing releases its space and says so.
#[test]
fn a_failed_download_says_what_became_of_its_partial_and_status_shows_it() {
    let scratch = Scratch::new("failed-partial");
    let name = "kept.bin";
    let chunks = 64u32;
    let data = random_bytes(9, chunks as usize * (64 << 10));
    scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    let mut seeder = holder(
        &scratch,
        1,
        tracker.addr,
        name,
        &["--max-upload-rate", "1M", "--chunk-size", "64K"],
    );
    let dir = scratch.node_dir(2);
    let mut first = downloader(&scratch, 2, tracker.addr, name, &["--give-up-after", "3"]);
    first.wait_verified(&dir, 4);
    seeder.proc.kill();
    let line = first.proc.expect_line(&format!("download {name} failed: "));
    assert!(
        line.contains("; kept ") && line.contains(&format!("`download {name}` resumes it")),
        "{line}"
    );
    assert_eq!(first.proc.expect_exit(LINE_TIMEOUT), 1);

    let mut again = node(&scratch, 2, tracker.addr, &[]);
    again.proc.send_line("status");
    let line = again.proc.expect_line(&format!("  partial {name}: "));
    assert!(
        line.contains(&format!("of {} bytes verified", data.len()))
            && line.contains(&format!("resumes with `download {name}`")),
        "{line}"
    );
    again.proc.kill();

    // Nothing verified (an upload too slow for one chunk): the space is released.
    let name = "released.bin";
    scratch.put_file(3, name, &random_bytes(10, 4 << 20));
    let mut slow = holder(
        &scratch,
        3,
        tracker.addr,
        name,
        &["--max-upload-rate", "1K", "--chunk-size", "1M"],
    );
    let dir = scratch.node_dir(4);
    let partial = dir.join(".torrent").join("partial");
    let mut second = downloader(&scratch, 4, tracker.addr, name, &["--give-up-after", "3"]);
    let has_part = || {
        fs::read_dir(&partial).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".part"))
        })
    };
    wait_until(&mut second, "the partial file is made", has_part);
    slow.proc.kill();
    let line = second
        .proc
        .expect_line(&format!("download {name} failed: "));
    assert!(
        line.contains("nothing was verified, so its partial file is removed"),
        "{line}"
    );
    assert_eq!(second.proc.expect_exit(LINE_TIMEOUT), 1);
    assert_eq!(list_dir(&partial), Vec::<String>::new());
}

/// Finding 8: `export` never replaces an existing `NAME.torrent`; with `--exit-when-done`
/// that is a failure (exit 1).
#[test]
fn export_never_replaces_an_existing_torrent_file() {
    let scratch = Scratch::new("export-exists");
    let name = "e.bin";
    scratch.put_file(1, name, &random_bytes(11, 100 << 10));
    let mine = scratch.put_file(1, "e.bin.torrent", b"the user's own notes");
    let tracker = tracker(&scratch);
    let mut node = node(
        &scratch,
        1,
        tracker.addr,
        &["--send", name, "--export", name, "--exit-when-done"],
    );
    let line = node.proc.expect_line(&format!("cannot export {name}: "));
    assert!(line.contains("already exists; not replacing it"), "{line}");
    assert_eq!(node.proc.expect_exit(LINE_TIMEOUT), 1);
    assert_eq!(fs::read(&mine).unwrap(), b"the user's own notes");
}
