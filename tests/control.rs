//! The control socket with the real binary: a script drives nodes with `torrent ctl` alone
//! (share, download with `--wait`, status as JSON, unshare, exit), and the socket refuses what it
//! must (garbage, overlong lines, too many connections, another user).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn socket_of(dir: &Path) -> std::path::PathBuf {
    dir.join(".torrent").join("control")
}

#[test]
fn a_script_drives_nodes_through_the_control_socket() {
    let scratch = Scratch::new("control");
    let data = random_bytes(31, 700_000);
    scratch.put_file(1, "f.bin", &data);
    let tracker = tracker(&scratch);
    let mut node1 = node(&scratch, 1, tracker.addr, &[]);
    let mut node2 = node(&scratch, 2, tracker.addr, &["--give-up-after", "2"]);
    let (dir1, dir2) = (scratch.node_dir(1), scratch.node_dir(2));

    let (code, out, _) = ctl(&scratch, &dir1, &["--json", "send", "f.bin"]);
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(last_reply(&out)["ok"], true);
    node1.proc.expect_line("sharing f.bin ");

    let (code, out, err) = ctl(&scratch, &dir2, &["--json", "download", "f.bin", "--wait"]);
    assert_eq!(code, 0, "{out:?} {err:?}\n{}", node2.proc.describe());
    let reply = last_reply(&out);
    assert_eq!(reply["version"], 1);
    assert_eq!(reply["download"]["state"], "done", "{reply}");
    assert_eq!(reply["download"]["verified_bytes"], data.len() as u64);
    assert_file_is(&dir2.join("f.bin"), &data);

    let (code, out, _) = ctl(&scratch, &dir2, &["--json", "status"]);
    assert_eq!(code, 0);
    let status = &last_reply(&out)["status"];
    assert_eq!(status["node_id"], 2);
    let files = status["files"].as_array().expect("files");
    assert!(
        files
            .iter()
            .any(|f| f["name"] == "f.bin" && f["complete"] == true),
        "{status}"
    );
    assert!(status["counters"]["datagrams_received"].as_u64() > Some(0));
    let (code, out, _) = ctl(&scratch, &dir2, &["status"]);
    assert_eq!(code, 0);
    assert!(out[0].starts_with("node 2 "), "the text status: {out:?}");
    for line in out.iter().filter(|l| !l.contains("magnet:")) {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
    }
    assert!(
        out.iter()
            .any(|l| l.trim_start().starts_with("requests over budget"))
    );

    // The upload limit changes while the node runs, and status says so.
    let (code, out, _) = ctl(&scratch, &dir1, &["limit", "--up", "8M"]);
    assert_eq!((code, out[0].as_str()), (0, "upload limit: 8.0 MiB/s"));
    let (_, out, _) = ctl(&scratch, &dir1, &["status"]);
    assert!(
        out.iter().any(|l| l.contains("limit 8.0 MiB/s;")),
        "{out:?}"
    );
    let (code, out, _) = ctl(&scratch, &dir1, &["limit", "--up", "off"]);
    assert_eq!((code, out[0].as_str()), (0, "upload limit: none"));
    assert_eq!(ctl(&scratch, &dir1, &["limit", "--up", "fast"]).0, 1);
    assert_eq!(ctl(&scratch, &dir1, &["limit"]).0, 2);
    // The download limit too, both at once, and status shows them.
    let (code, out, _) = ctl(&scratch, &dir1, &["limit", "--down", "2M", "--up", "1M"]);
    assert_eq!(
        (code, out[0].as_str()),
        (0, "upload limit: 1.0 MiB/s; download limit: 2.0 MiB/s")
    );
    let (_, out, _) = ctl(&scratch, &dir1, &["--json", "status"]);
    let status = &last_reply(&out)["status"];
    assert_eq!(status["download_limit_bytes_per_s"], 2 << 20, "{status}");
    assert_eq!(status["upload_limit_bytes_per_s"], 1 << 20, "{status}");
    let (_, out, _) = ctl(&scratch, &dir1, &["status"]);
    assert!(
        out.iter().any(|l| l == "download limit 2.0 MiB/s"),
        "{out:?}"
    );
    let (code, out, _) = ctl(&scratch, &dir1, &["limit", "--down", "off", "--up", "off"]);
    assert_eq!(
        (code, out[0].as_str()),
        (0, "upload limit: none; download limit: none")
    );

    // A download that cannot succeed: the waiting script hears of the failure.
    let (code, out, _) = ctl(
        &scratch,
        &dir2,
        &["--json", "download", "absent.bin", "--wait"],
    );
    assert_eq!(code, 1, "{out:?}");
    assert_eq!(last_reply(&out)["download"]["state"], "failed");
    // Refusals: exit code 1, the reason on stderr.
    let (code, _, err) = ctl(&scratch, &dir2, &["export", "absent.bin"]);
    assert_eq!(code, 1);
    node2.proc.expect_line("cannot export absent.bin");
    assert!(
        err.iter().any(|l| l.contains("does not hold it")),
        "{err:?}"
    );
    let (code, _, err) = ctl(&scratch, &dir2, &["download-state", "999"]);
    assert_eq!(code, 1);
    assert!(
        err.iter().any(|l| l.contains("no download has id 999")),
        "{err:?}"
    );
    // A bad command line is exit 2, and nothing reaches the node.
    assert_eq!(ctl(&scratch, &dir2, &["downlod", "x"]).0, 2);
    assert_eq!(ctl(&scratch, &dir2, &["status", "--wait"]).0, 2);

    // Unshared by both holders: the tracker is told and the file stays where it is, so a
    // third node finds no holder.
    for dir in [&dir1, &dir2] {
        let (code, out, err) = ctl(&scratch, dir, &["unshare", "f.bin"]);
        assert_eq!(code, 0, "{out:?} {err:?}");
        assert!(out[0].starts_with("no longer sharing f.bin"), "{out:?}");
        assert_file_is(&dir.join("f.bin"), &data);
    }
    assert_eq!(
        ctl(&scratch, &dir1, &["unshare", "f.bin"]).0,
        1,
        "not shared any more"
    );
    let mut node3 = node(&scratch, 3, tracker.addr, &["--give-up-after", "2"]);
    let (code, out, _) = ctl(
        &scratch,
        &scratch.node_dir(3),
        &["download", "f.bin", "--wait"],
    );
    assert_eq!(code, 1, "{out:?}\n{}", node3.proc.describe());
    assert!(!scratch.node_dir(3).join("f.bin").exists());
    node3.proc.terminate();

    for (node, dir) in [(&mut node1, &dir1), (&mut node2, &dir2)] {
        let (code, out, err) = ctl(&scratch, dir, &["exit"]);
        assert_eq!(code, 0, "{out:?} {err:?}");
        assert_eq!(node.proc.expect_exit(CTL_TIMEOUT), 0);
    }
    // No node: a clear message and exit 1.
    let (code, _, err) = ctl(&scratch, &dir2, &["status"]);
    assert_eq!(code, 1);
    assert!(err[0].contains("is a node running"), "{err:?}");
}

/// One connection to a node's control socket, line by line.
struct Conn {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    fn open(dir: &Path) -> Conn {
        let stream = UnixStream::connect(socket_of(dir)).expect("connect to the control socket");
        stream.set_read_timeout(Some(CTL_TIMEOUT)).unwrap();
        Conn {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Sends `line` and reads the reply. A node that refuses the connection answers and
    /// closes at once, perhaps before the line is written: the answer is read all the same.
    fn ask(&mut self, line: &[u8]) -> serde_json::Value {
        let _ = self.writer.write_all(line);
        let _ = self.writer.write_all(b"\n");
        self.reply()
    }

    fn reply(&mut self) -> serde_json::Value {
        let mut answer = String::new();
        self.reader.read_line(&mut answer).expect("a reply");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
    }

    /// Whether the node closed the connection (end of file, or reset).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0) | Err(_))
    }
}

const STATUS: &[u8] = br#"{"version":1,"command":"status"}"#;

#[test]
fn the_control_socket_refuses_what_it_must() {
    let scratch = Scratch::new("control-hostile");
    let tracker = tracker(&scratch);
    let mut node1 = node(&scratch, 1, tracker.addr, &[]);
    let dir = scratch.node_dir(1);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket_of(&dir)), 0o600);
    assert_eq!(mode(&dir.join(".torrent")), 0o700);

    // Garbage gets an answer and the connection goes on.
    let mut conn = Conn::open(&dir);
    for junk in [
        &b"garbage"[..],
        b"{}",
        b"\xff\xfe",
        br#"{"version":1,"command":"fly"}"#,
    ] {
        let reply = conn.ask(junk);
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(conn.ask(STATUS)["ok"], true);
    // An overlong line: refused, then closed.
    // (The node may close before it read all of it: the write's error is not the point.)
    let _ = conn.writer.write_all(&[b'x'; 100_000]);
    let reply = conn.reply();
    assert!(
        reply["error"].as_str().unwrap().contains("at most"),
        "{reply}"
    );
    assert!(conn.closed());

    // Too many connections: the one past the limit is refused; closing one makes room.
    let mut open: Vec<Conn> = (0..16).map(|_| Conn::open(&dir)).collect();
    for conn in open.iter_mut() {
        assert_eq!(conn.ask(STATUS)["ok"], true);
    }
    let mut extra = Conn::open(&dir);
    let refused = extra.reply();
    assert!(
        refused["error"].as_str().unwrap().contains("open already"),
        "{refused}"
    );
    drop(open.pop());
    let deadline = Instant::now() + CTL_TIMEOUT;
    loop {
        let mut conn = Conn::open(&dir);
        if conn.ask(STATUS)["ok"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection's place never came back"
        );
        node1.proc.read_for(Duration::from_millis(20));
    }
    drop(open);

    // Another user, even given the way in, is refused by its credentials.
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(dir.join(".torrent"), PermissionsExt::from_mode(0o711)).unwrap();
        std::fs::set_permissions(socket_of(&dir), PermissionsExt::from_mode(0o666)).unwrap();
        std::fs::set_permissions(&scratch.root, PermissionsExt::from_mode(0o755)).unwrap();
        for parent in [scratch.nodes(), dir.clone()] {
            std::fs::set_permissions(parent, PermissionsExt::from_mode(0o755)).unwrap();
        }
        use std::os::unix::process::CommandExt;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_torrent"));
        command
            .args(["ctl", "--dir", &dir.display().to_string(), "status"])
            .uid(65534)
            .gid(65534);
        let mut proc = spawn_command("ctl-nobody", &scratch.root, command);
        assert_eq!(proc.expect_exit(CTL_TIMEOUT), 1);
        assert!(
            proc.stderr_lines()
                .iter()
                .any(|l| l.contains("may not control")),
            "{}",
            proc.describe()
        );
    } else {
        println!("SKIPPED: another user's access needs root (run the tests as root)");
    }
    // The node served through all of it.
    assert_eq!(Conn::open(&dir).ask(STATUS)["ok"], true);
    assert!(node1.proc.running());
}

/// A node as a service runs it: flags from `--config`, no console (stdin at end of file),
/// driven only through the socket, and SIGTERM a clean exit.
#[test]
fn a_node_configured_by_file_runs_without_a_console() {
    let scratch = Scratch::new("control-config");
    let data = random_bytes(51, 200_000);
    scratch.put_file(1, "c.bin", &data);
    let tracker = tracker(&scratch);
    let dir = scratch.node_dir(1);
    let config = scratch.root.join("node1.toml");
    let text = format!(
        "id = 1\ntracker = \"{}\"\ndir = \"{}\"\nlog-dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nsend = [\"c.bin\"]\n",
        tracker.addr,
        dir.display(),
        scratch.logs().display()
    );
    std::fs::write(&config, text).unwrap();
    // The command line wins over the file: the id given here is the one used.
    let list = args(&[
        "node",
        "--config",
        &config.display().to_string(),
        "--id",
        "9",
    ]);
    let mut node = spawn("node9", &scratch.root, &list);
    node.close_stdin();
    node.expect_line("sharing c.bin ");
    let (code, out, _) = ctl(&scratch, &dir, &["--json", "status"]);
    assert_eq!(code, 0);
    let status = &last_reply(&out)["status"];
    assert_eq!(status["node_id"], 9, "{status}");
    assert_eq!(status["files"][0]["name"], "c.bin");
    node.terminate();
    assert_eq!(node.expect_exit(CTL_TIMEOUT), 0);
}

/// Polls download `id` on the node in `dir` until `done` says its JSON state is reached;
/// the last state. Bounded by `CTL_TIMEOUT`.
fn poll_download(
    scratch: &Scratch,
    dir: &Path,
    id: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + CTL_TIMEOUT;
    loop {
        let (_, out, _) = ctl(scratch, dir, &["--json", "download-state", &id.to_string()]);
        let download = last_reply(&out)["download"].clone();
        if done(&download) {
            return download;
        }
        assert!(
            Instant::now() < deadline,
            "download {id} stuck at {download}"
        );
    }
}

#[test]
fn a_script_pauses_resumes_and_cancels_downloads() {
    let scratch = Scratch::new("control-lifecycle");
    let data = random_bytes(32, 6 << 20);
    let other = random_bytes(33, 6 << 20);
    scratch.put_file(1, "f.bin", &data);
    scratch.put_file(1, "g.bin", &other);
    let tracker = tracker(&scratch);
    // A slow holder (1 MiB/s), so that each download is caught half way.
    let limit = ["--max-upload-rate", "1M", "--chunk-size", "256K"];
    let mut node1 = holder(&scratch, 1, tracker.addr, "f.bin", &limit);
    let (code, _, _) = ctl(&scratch, &scratch.node_dir(1), &["send", "g.bin"]);
    assert_eq!(code, 0);
    node1.proc.expect_line("sharing g.bin ");
    let mut node2 = node(&scratch, 2, tracker.addr, &[]);
    let dir2 = scratch.node_dir(2);
    let partials = dir2.join(".torrent").join("partial");

    let (code, out, _) = ctl(&scratch, &dir2, &["--json", "download", "f.bin"]);
    assert_eq!(code, 0, "{out:?}");
    let id = last_reply(&out)["download"]["id"].as_u64().expect("an id");
    poll_download(&scratch, &dir2, id, |d| {
        d["verified_bytes"].as_u64() > Some(0)
    });

    // Its peer, as `peers` shows it: structured, and as text.
    let (code, out, _) = ctl(&scratch, &dir2, &["--json", "peers"]);
    assert_eq!(code, 0, "{out:?}");
    let downloads = &last_reply(&out)["peers"]["downloads"];
    assert_eq!(downloads[0]["id"].as_u64(), Some(id), "{downloads}");
    let peer = &downloads[0]["peers"][0];
    assert_eq!(peer["node_id"], 1, "{downloads}");
    assert!(peer["bytes_received"].as_u64() > Some(0), "{downloads}");
    let (_, out, _) = ctl(&scratch, &dir2, &["peers"]);
    assert_eq!(out[0], format!("download {id} (f.bin):"));
    assert!(out[1].starts_with("  node 1 127.0.0.1:"), "{out:?}");
    let (_, out, _) = ctl(&scratch, &scratch.node_dir(1), &["--json", "peers"]);
    let uploads = &last_reply(&out)["peers"]["uploads"];
    assert_eq!(uploads[0]["node_id"], 2, "{uploads}");

    // Paused: the state says so, status lists it, and a new `download` of it points to
    // `resume` instead of starting a second one.
    let (code, out, _) = ctl(&scratch, &dir2, &["--json", "pause", "f.bin"]);
    assert_eq!(code, 0, "{out:?}");
    let paused = &last_reply(&out)["download"];
    assert_eq!(
        (paused["id"].as_u64(), &paused["state"]),
        (Some(id), &"paused".into())
    );
    let (_, out, _) = ctl(&scratch, &dir2, &["status"]);
    assert!(
        out.iter()
            .any(|l| l.contains(&format!("paused download {id} (f.bin)"))),
        "{out:?}"
    );
    let (code, out, _) = ctl(&scratch, &dir2, &["download", "f.bin"]);
    assert_eq!(code, 0);
    assert_eq!(out[0], format!("f.bin is paused: `resume {id}` goes on"));
    assert_eq!(
        ctl(&scratch, &dir2, &["pause", &id.to_string()]).0,
        1,
        "paused twice"
    );
    assert!(
        fs_entries(&partials) > 0,
        "the partial file stays while paused"
    );

    // Resumed under the same id, it completes, and the file is whole.
    let (code, out, _) = ctl(&scratch, &dir2, &["resume", &id.to_string()]);
    assert_eq!(
        (code, out[0].as_str()),
        (0, format!("resumed download {id} (f.bin)").as_str())
    );
    let (code, out, _) = ctl(
        &scratch,
        &dir2,
        &["--json", "download-state", &id.to_string(), "--wait"],
    );
    assert_eq!(code, 0, "{out:?}\n{}", node2.proc.describe());
    assert_eq!(last_reply(&out)["download"]["state"], "done");
    assert_file_is(&dir2.join("f.bin"), &data);

    // Cancelled half way: nothing of it is left, and waiting for it fails.
    let (_, out, _) = ctl(&scratch, &dir2, &["--json", "download", "g.bin"]);
    let id = last_reply(&out)["download"]["id"].as_u64().expect("an id");
    poll_download(&scratch, &dir2, id, |d| {
        d["verified_bytes"].as_u64() > Some(0)
    });
    let (code, out, _) = ctl(&scratch, &dir2, &["--json", "cancel", &id.to_string()]);
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(last_reply(&out)["download"]["state"], "cancelled");
    node2.proc.expect_line(&format!(
        "cancelled download {id} (g.bin); its partial file is removed"
    ));
    assert!(!dir2.join("g.bin").exists());
    assert_eq!(
        fs_entries(&partials),
        0,
        "nothing of the cancelled download is left"
    );
    let (code, _, err) = ctl(
        &scratch,
        &dir2,
        &["download-state", &id.to_string(), "--wait"],
    );
    assert_eq!(code, 1, "{err:?}");
    assert_eq!(ctl(&scratch, &dir2, &["resume", &id.to_string()]).0, 1);
    assert_eq!(ctl(&scratch, &dir2, &["cancel", "nothing.bin"]).0, 1);
    assert_eq!(
        ctl(&scratch, &dir2, &["pause"]).0,
        2,
        "pause needs a download"
    );

    // Cancelled with --keep-partial: the partial file stays, and `download` goes on from it.
    let (_, out, _) = ctl(&scratch, &dir2, &["--json", "download", "g.bin"]);
    let id = last_reply(&out)["download"]["id"].as_u64().expect("an id");
    poll_download(&scratch, &dir2, id, |d| {
        d["verified_bytes"].as_u64() > Some(0)
    });
    let (code, _, _) = ctl(&scratch, &dir2, &["cancel", "g.bin", "--keep-partial"]);
    assert_eq!(code, 0);
    node2
        .proc
        .expect_line(&format!("cancelled download {id} (g.bin); kept "));
    assert!(fs_entries(&partials) > 0);
    let (code, out, _) = ctl(&scratch, &dir2, &["download", "g.bin", "--wait"]);
    assert_eq!(code, 0, "{out:?}");
    assert_file_is(&dir2.join("g.bin"), &other);
    assert_eq!(
        fs_entries(&partials),
        0,
        "published: the partial state is gone"
    );

    for node in [&mut node1, &mut node2] {
        node.proc.terminate();
    }
}

fn fs_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

/// `tests/scripts/drive_by_ctl.sh`: a shell script drives two running nodes with `torrent ctl
/// --json` alone (share, download and wait, list, limits, pause, resume, cancel, unshare, exit),
/// checking every JSON answer and exit code.
#[test]
fn a_shell_script_drives_nodes_by_ctl_alone() {
    if std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED: the script needs jq (apt install jq)");
        return;
    }
    let scratch = Scratch::new("control-script");
    let files = [("f.bin", 34), ("g.bin", 35), ("h.bin", 36)];
    for (name, seed) in files {
        scratch.put_file(1, name, &random_bytes(seed, 4 << 20));
    }
    let tracker = tracker(&scratch);
    let mut node1 = node(&scratch, 1, tracker.addr, &["--chunk-size", "256K"]);
    let mut node2 = node(&scratch, 2, tracker.addr, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/drive_by_ctl.sh");
    let mut command = std::process::Command::new("bash");
    command
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_torrent"))
        .arg(scratch.node_dir(1))
        .arg(scratch.node_dir(2));
    let mut run = spawn_command("drive_by_ctl", &scratch.root, command);
    let code = run.expect_exit(Duration::from_secs(120));
    assert_eq!(
        code,
        0,
        "{}\n{}\n{}",
        run.describe(),
        node1.proc.describe(),
        node2.proc.describe()
    );
    assert_eq!(
        run.stdout_lines().last().map(String::as_str),
        Some("drive_by_ctl: every answer as expected")
    );
    for node in [&mut node1, &mut node2] {
        assert_eq!(
            node.proc.expect_exit(CTL_TIMEOUT),
            0,
            "`exit` ends the node"
        );
    }
}
