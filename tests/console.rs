//! The console path with the real binary: nodes started without `--send`/`--download` are
//! driven by the original's commands on stdin, survive junk, and leave on `exit`.

mod common;

use common::*;

/// Lines that are no command: each is refused (or ignored) and the node keeps running.
const JUNK: &[&str] = &[
    "",
    "   ",
    "\t \t",
    "blah",
    "torrent",
    "torrent -setMode",
    "torrent -setMode fly file_A.bin",
    "torrent -setMode send",
    "send a b c",
    "download bad@notahash",
    "\u{1b}[2J\u{7}",
];

#[test]
fn seed_commands_on_stdin() {
    let scratch = Scratch::new("console");
    let name = "file_A.bin";
    let data = random_bytes(10, 300_000);
    scratch.put_file(1, name, &data);
    let mut tracker = tracker(&scratch);
    let mut node1 = node(&scratch, 1, tracker.addr, &[]);
    let mut node2 = node(&scratch, 2, tracker.addr, &[]);
    node1.proc.expect_line("registered with tracker ");
    node2.proc.expect_line("registered with tracker ");

    for line in JUNK {
        node1.proc.send_line(line);
    }
    // Not UTF-8, and a line longer than the console accepts.
    node1.proc.send_bytes(b"\xff\xfe\xfd download \xc3\n");
    node1.proc.send_line(&"x".repeat(10_000));
    // Extra spaces and tabs around the words of a real command.
    node1
        .proc
        .send_line(&format!("   torrent  -setMode \t send   {name}   "));
    node1.proc.expect_line(&format!("sharing {name} "));
    // Every refusal was one line, and none was taken for a command.
    for line in node1.proc.stdout_lines() {
        assert!(!line.starts_with("downloaded"), "{line}");
    }
    assert!(
        node1
            .proc
            .stdout_lines()
            .iter()
            .any(|line| line.starts_with("unknown command 'blah'")),
        "{}",
        node1.proc.describe()
    );

    node2
        .proc
        .send_line(&format!("torrent -setMode download {name}"));
    node2
        .proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_file_is(&scratch.node_dir(2).join(name), &data);

    node2.proc.send_line("help");
    node2.proc.expect_line("commands:");
    node2.proc.expect_line("  torrent -setMode exit");
    node2.proc.send_line("status");
    node2.proc.expect_line("node 2 (registered with tracker");
    node2.proc.expect_line("files held: 1");
    node2.proc.expect_line("datagrams: ");

    node2.proc.send_line("torrent -setMode exit");
    assert_eq!(node2.proc.expect_exit(LINE_TIMEOUT), 0);
    tracker.proc.expect_line("node 2 exited");

    // Short forms, in any case, work too.
    node1.proc.send_line("  EXIT ");
    assert_eq!(node1.proc.expect_exit(LINE_TIMEOUT), 0);
    tracker.proc.expect_line("node 1 exited");
}

#[test]
fn end_of_input_keeps_the_node_serving() {
    let scratch = Scratch::new("console-eof");
    let name = "file_B.bin";
    let data = random_bytes(11, 70_000);
    scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    let mut holder = node(&scratch, 1, tracker.addr, &["--send", name]);
    holder.proc.expect_line(&format!("sharing {name} "));
    holder.proc.close_stdin();
    let mut downloader = downloader(&scratch, 2, tracker.addr, name, &[]);
    assert_eq!(downloader.proc.expect_exit(DOWNLOAD_TIMEOUT), 0);
    assert_file_is(&scratch.node_dir(2).join(name), &data);
    // The holder served the whole download after its input ended, and is still running.
    assert!(
        holder.proc.running(),
        "the holder stopped at the end of its input"
    );
}

#[test]
fn names_that_leave_the_node_directory_are_refused() {
    let scratch = Scratch::new("console-names");
    let tracker = tracker(&scratch);
    let mut node1 = node(&scratch, 1, tracker.addr, &[]);
    node1.proc.expect_line("registered with tracker ");
    for (command, refused) in [
        ("torrent -setMode download ../x", "../x"),
        // (`send ../x` shares the file x of the parent directory in place: a path is the
        // console user's to name; tests/in_place.rs.)
        ("torrent -setMode send .x", ".x"),
        ("download ../../x", "../../x"),
        ("download /etc/passwd", "/etc/passwd"),
        ("download .torrent", ".torrent"),
        ("send ..", ".."),
    ] {
        node1.proc.send_line(command);
        let line = node1
            .proc
            .wait_line(|line| line.starts_with("cannot use the name"), LINE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        assert!(line.contains(&format!("'{refused}'")), "{command}: {line}");
    }
    // Still alive and answering.
    node1.proc.send_line("status");
    node1.proc.expect_line("datagrams: ");
    node1.proc.send_line("exit");
    // `exit` says that the node leaves, and that the tracker knows.
    node1
        .proc
        .expect_line("node 1 leaving: the tracker was told");
    assert_eq!(node1.proc.expect_exit(LINE_TIMEOUT), 0);
    drop(node1);
    // Nothing was written beside the node's directory, nor beside the scratch dirs.
    assert_eq!(list_dir(&scratch.nodes()), vec!["node1".to_string()]);
    assert_eq!(
        list_dir(&scratch.root),
        ["logs", "nodes", "tracker_db"].map(String::from)
    );
    assert_eq!(list_dir(&scratch.node_dir(1)), vec![".torrent".to_string()]);
}

#[test]
fn names_with_spaces_are_quoted_as_in_a_shell() {
    let scratch = Scratch::new("console-quotes");
    let name = "my file.bin";
    let data = random_bytes(12, 200_000);
    scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    let mut node1 = node(&scratch, 1, tracker.addr, &[]);
    let mut node2 = node(&scratch, 2, tracker.addr, &[]);
    node1.proc.expect_line("registered with tracker ");
    node2.proc.expect_line("registered with tracker ");

    // An unterminated quote: a clear line that points to help; nothing is shared.
    node1.proc.send_line("send \"my file.bin");
    let line = node1.proc.expect_line("unterminated \" quote");
    assert!(line.contains("help"), "{line}");
    // Quoting does not let a bad name through.
    node1.proc.send_line("send \".my file.bin\"");
    node1.proc.expect_line("cannot use the name '.my file.bin'");

    node1
        .proc
        .send_line("torrent -setMode send \"my file.bin\"");
    node1.proc.expect_line(&format!("sharing {name} "));
    node2.proc.send_line("download 'my file.bin'");
    node2
        .proc
        .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_file_is(&scratch.node_dir(2).join(name), &data);
    // A backslash before the space works too: the node already holds that version.
    node2.proc.send_line("export my\\ file.bin");
    node2.proc.expect_line(&format!("exported {name} to "));
    assert!(scratch.node_dir(2).join("my file.bin.torrent").exists());
    node2.proc.send_line("exit");
    assert_eq!(node2.proc.expect_exit(LINE_TIMEOUT), 0);
}

/// `status` during a download shows, for each peer, its rate, round trip, the pieces of it
/// that were lost, the piece size its path carries, and its pace (none on loopback, which
/// `--pace net` leaves unpaced).
#[test]
fn status_shows_each_peers_round_trip_loss_and_rate() {
    let scratch = Scratch::new("console-peer-status");
    let name = "peers.bin";
    let data = random_bytes(21, 16 << 20);
    scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    // Slow enough that the download is surely still running when `status` is asked.
    let _holder = holder(
        &scratch,
        1,
        tracker.addr,
        name,
        &["--max-upload-rate", "4M"],
    );
    let mut node2 = node(&scratch, 2, tracker.addr, &[]);
    node2.proc.send_line(&format!("download {name}"));
    node2.wait_verified(&scratch.node_dir(2), 1);
    node2.proc.send_line("status");
    let line = node2.proc.expect_line("    node 1 ");
    for part in [
        "MiB/s",
        "round trip ",
        " ms",
        "pieces lost (",
        "-byte pieces",
        ", unpaced,",
    ] {
        assert!(line.contains(part), "'{part}' missing from: {line}");
    }
    node2.proc.kill();
}
