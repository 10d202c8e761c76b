//! The harness of the integration tests: start the real `torrent` binary, read what it
//! prints, wait for a line or a condition with a deadline, and clean up.
//!
//! Rules every test follows: ports are chosen by the kernel (`127.0.0.1:0`, then read from
//! the first stdout line); nothing sleeps to synchronise (a test waits for a line, an exit
//! or a file condition, each with a deadline); every child is killed by its PID when its
//! [`Proc`] is dropped, and every scratch directory is removed when its [`Scratch`] is.
//!
//! Each test binary uses a part of this module, so unused items are allowed.
#![allow(dead_code)]

pub mod netns;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a process may take to print a line we wait for, by default. Generous: a
/// loaded CI machine with two cores runs several tests at once.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a download may take in a test.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Granularity of loops that also watch a condition outside stdout (files, exits).
const WATCH_INTERVAL: Duration = Duration::from_millis(2);

// ---- scratch directories ------------------------------------------------------------------

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct Scratch {
    pub root: PathBuf,
}

impl Scratch {
    /// `$TMP/torrent-it-<pid>-<n>-<label>`: unique per process and per call.
    pub fn new(label: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("torrent-it-{}-{n}-{label}", std::process::id()));
        if root.exists() {
            fs::remove_dir_all(&root).expect("clear an old scratch directory");
        }
        fs::create_dir_all(&root).expect("create the scratch directory");
        Scratch { root }
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn db(&self) -> PathBuf {
        self.root.join("tracker_db")
    }

    /// The parent of every node directory.
    pub fn nodes(&self) -> PathBuf {
        self.root.join("nodes")
    }

    pub fn node_dir(&self, id: u32) -> PathBuf {
        self.nodes().join(format!("node{id}"))
    }

    /// Writes `data` as `name` in node `id`'s directory (created if needed).
    pub fn put_file(&self, id: u32, name: &str, data: &[u8]) -> PathBuf {
        let dir = self.node_dir(id);
        fs::create_dir_all(&dir).expect("create a node directory");
        let path = dir.join(name);
        fs::write(&path, data).expect("write a test file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: show the end of every log, which is where the reason usually is.
            if let Ok(entries) = fs::read_dir(self.logs()) {
                for entry in entries.flatten() {
                    let text = fs::read_to_string(entry.path()).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(40)..];
                    eprintln!(
                        "---- {} (last {} lines)",
                        entry.path().display(),
                        tail.len()
                    );
                    for line in tail {
                        eprintln!("{line}");
                    }
                }
            }
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The Python that has Debian's `python3-libtorrent` (another `python3` may come first on
/// PATH).
pub const PYTHON: &str = "/usr/bin/python3";

/// Whether [`PYTHON`] imports libtorrent; tests that need it print SKIPPED otherwise.
pub fn libtorrent_available() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `len` bytes of a seeded xorshift64* stream: incompressible, and the same for a seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Asserts that `path` holds exactly `expected`, without printing megabytes on failure.
pub fn assert_file_is(path: &Path, expected: &[u8]) {
    let actual = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(
        actual.len(),
        expected.len(),
        "{} has the wrong length",
        path.display()
    );
    if let Some(at) = actual.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("{} differs from the original at byte {at}", path.display());
    }
}

/// Verified chunks of every download in progress in node directory `dir`: the bits set in
/// its `.torrent/partial/*.have` files.
pub fn verified_chunks(dir: &Path) -> u32 {
    let Ok(entries) = fs::read_dir(dir.join(".torrent").join("partial")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".have"))
        .filter_map(|e| fs::read(e.path()).ok())
        .flatten()
        .map(u8::count_ones)
        .sum()
}

/// Every file below `root`: its path below it, its bytes and whether it is executable,
/// sorted by path (what `diff -r` and a checksum list compare of two trees). Anything but a
/// directory or a regular file (a link) fails the test.
pub fn tree_listing(root: &Path) -> Vec<(String, Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            assert!(meta.is_file(), "{} is no regular file", path.display());
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let executable = meta.permissions().mode() & 0o100 != 0;
            out.push((relative, fs::read(&path).unwrap(), executable));
        }
    }
    out.sort();
    out
}

/// Names in `dir`, sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- processes ----------------------------------------------------------------------------

/// Where a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A running `torrent` process: stdin piped to the test, stdout and stderr read by threads.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Stream, String)>,
    /// Every stdout line so far, and whether a [`Proc::wait_line`] returned it already.
    stdout: Vec<String>,
    taken: Vec<bool>,
    stderr: Vec<String>,
    /// Set once both output pipes reached end of file.
    closed: bool,
    status: Option<ExitStatus>,
}

/// Starts `torrent ARGS...` in `cwd` (so that any default path stays in the scratch dir).
pub fn spawn(name: &str, cwd: &Path, args: &[String]) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_torrent"));
    command.args(args);
    spawn_command(name, cwd, command)
}

/// Starts `command` (the binary, or a wrapper that execs it, such as `ip netns exec`, so
/// that the PID is still the binary's) in `cwd`, its pipes read as [`spawn`]'s are.
pub fn spawn_command(name: &str, cwd: &Path, mut command: Command) -> Proc {
    let mut child = command
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let (tx, lines) = crossbeam_channel::unbounded();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let tx_err = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Stream::Stdout, line)).is_err() {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx_err.send((Stream::Stderr, line)).is_err() {
                return;
            }
        }
    });
    Proc {
        name: name.to_string(),
        stdin: child.stdin.take(),
        child,
        lines,
        stdout: Vec::new(),
        taken: Vec::new(),
        stderr: Vec::new(),
        closed: false,
        status: None,
    }
}

/// Args from string slices.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes one line from the pipes into the history; false on timeout or when both pipes
    /// are closed.
    fn pump(&mut self, timeout: Duration) -> bool {
        if self.closed {
            return false;
        }
        match self.lines.recv_timeout(timeout) {
            Ok((Stream::Stdout, line)) => {
                self.stdout.push(line);
                self.taken.push(false);
                true
            }
            Ok((Stream::Stderr, line)) => {
                self.stderr.push(line);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                false
            }
        }
    }

    fn history(&self) -> String {
        let mut text = format!("{} printed on stdout:\n", self.name);
        for line in &self.stdout {
            text.push_str("  | ");
            text.push_str(line);
            text.push('\n');
        }
        if !self.stderr.is_empty() {
            text.push_str("and on stderr:\n");
            for line in &self.stderr {
                text.push_str("  ! ");
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// Waits for a stdout line for which `pred` holds and returns it: the earliest one no
    /// wait returned before, so that lines of independent events (two nodes registering) can
    /// be awaited in any order. To wait for a line printed again after an action, take the
    /// earlier one first. The error says what was awaited and lists every line seen so far.
    pub fn wait_line(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        self.wait_line_watching(pred, timeout, |_| Ok(()))
    }

    /// [`Proc::wait_line`], also calling `watch` every few milliseconds and on every line;
    /// an error from `watch` ends the wait with that error.
    pub fn wait_line_watching(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
        mut watch: impl FnMut(&Proc) -> Result<(), String>,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            watch(self).map_err(|e| format!("{e}\n{}", self.history()))?;
            let found = (0..self.stdout.len()).find(|&i| !self.taken[i] && pred(&self.stdout[i]));
            if let Some(index) = found {
                self.taken[index] = true;
                return Ok(self.stdout[index].clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} printed no awaited line within {:.1} s\n{}",
                    self.name,
                    timeout.as_secs_f64(),
                    self.history()
                ));
            }
            if self.closed {
                return Err(format!(
                    "{} closed its output without the awaited line\n{}",
                    self.name,
                    self.history()
                ));
            }
            self.pump(left.min(WATCH_INTERVAL * 50));
        }
    }

    /// [`Proc::wait_line`] for a line starting with `prefix`, panicking on failure.
    pub fn expect_line(&mut self, prefix: &str) -> String {
        self.wait_line(|line| line.starts_with(prefix), LINE_TIMEOUT)
            .unwrap_or_else(|e| panic!("waiting for '{prefix}...': {e}"))
    }

    /// Waits for a tracker's first line and returns the address it says it listens on.
    pub fn expect_tracker_addr(&mut self) -> SocketAddr {
        let first = self.expect_line("tracker listening on ");
        first
            .trim_start_matches("tracker listening on ")
            .parse()
            .unwrap_or_else(|e| panic!("bad address in '{first}': {e}"))
    }

    /// Reads output for `duration` (or until the pipes close), taking no line.
    pub fn read_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || (!self.pump(left) && self.closed) {
                return;
            }
        }
    }

    /// Every stdout line seen so far.
    pub fn stdout_lines(&self) -> &[String] {
        &self.stdout
    }

    pub fn stderr_lines(&self) -> &[String] {
        &self.stderr
    }

    /// Writes a line to the process's stdin.
    pub fn send_line(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("write to the child's stdin");
        stdin.flush().expect("flush the child's stdin");
    }

    /// Closes stdin (end of input for the console).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until the process exits (reading its output meanwhile); returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            // Output closed means the process is gone (or about to be): reap it.
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                // Collect what is still in the pipes before reporting.
                while self.pump(Duration::from_millis(200)) {}
                self.status = Some(status);
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not exit within {:.1} s\n{}",
                    self.name,
                    timeout.as_secs_f64(),
                    self.history()
                ));
            }
            if !self.pump(WATCH_INTERVAL * 5) && self.closed {
                // Both pipes are closed; the exit follows at once. Block for it.
                let status = self.child.wait().map_err(|e| e.to_string())?;
                self.status = Some(status);
                return Ok(status);
            }
        }
    }

    /// [`Proc::wait_exit`] that panics on timeout and returns the exit code (-1 for a signal).
    pub fn expect_exit(&mut self, timeout: Duration) -> i32 {
        let status = self.wait_exit(timeout).unwrap_or_else(|e| panic!("{e}"));
        status.code().unwrap_or(-1)
    }

    /// Whether the process has not exited yet (checked now, without waiting).
    pub fn running(&mut self) -> bool {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status);
        }
        self.status.is_none()
    }

    /// Sends SIGTERM (by the child's PID) without waiting: the process stops cleanly.
    pub fn terminate(&mut self) {
        if self.running()
            && let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }

    /// Kills the process with SIGKILL (by its PID; only this child) and reaps it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.status = Some(status);
            }
        }
    }

    /// The history, for assertion messages.
    pub fn describe(&self) -> String {
        self.history()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Read what is left and show it: the failing test's message may not include it.
            while self.pump(Duration::ZERO) {}
            eprintln!("{}", self.history());
        }
        self.kill();
    }
}

// ---- tracker and nodes --------------------------------------------------------------------

/// A running tracker and the address it listens on.
pub struct Tracker {
    pub proc: Proc,
    pub addr: SocketAddr,
}

/// Starts a tracker on a port the kernel picks, with the scratch dir's db and logs.
pub fn tracker(scratch: &Scratch) -> Tracker {
    tracker_on(scratch, "127.0.0.1:0", &[])
}

/// Starts a tracker listening on `listen`, with `extra` flags; waits for its first line.
pub fn tracker_on(scratch: &Scratch, listen: &str, extra: &[&str]) -> Tracker {
    let mut list = args(&["tracker", "--listen", listen]);
    list.push("--db-dir".into());
    list.push(scratch.db().display().to_string());
    list.push("--log-dir".into());
    list.push(scratch.logs().display().to_string());
    list.extend(args(extra));
    let mut proc = spawn("tracker", &scratch.root, &list);
    let addr = proc.expect_tracker_addr();
    Tracker { proc, addr }
}

/// The command line of node `id`: its own directory and the shared log dir, any free port.
pub fn node_args(scratch: &Scratch, id: u32, tracker: SocketAddr, extra: &[&str]) -> Vec<String> {
    let mut list = args(&["node", "--id", &id.to_string(), "--tracker"]);
    list.push(tracker.to_string());
    list.push("--dir".into());
    list.push(scratch.node_dir(id).display().to_string());
    list.push("--log-dir".into());
    list.push(scratch.logs().display().to_string());
    list.extend(args(&["--listen", "127.0.0.1:0"]));
    list.extend(args(extra));
    list
}

/// A running node and the address it listens on.
pub struct Node {
    pub proc: Proc,
    pub id: u32,
    pub addr: SocketAddr,
}

/// Starts node `id` with `extra` flags and waits for `node N listening on ADDR`.
pub fn node(scratch: &Scratch, id: u32, tracker: SocketAddr, extra: &[&str]) -> Node {
    let mut proc = spawn(
        &format!("node{id}"),
        &scratch.root,
        &node_args(scratch, id, tracker, extra),
    );
    let prefix = format!("node {id} listening on ");
    let first = proc.expect_line(&prefix);
    let addr = first
        .trim_start_matches(&prefix)
        .parse()
        .unwrap_or_else(|e| panic!("bad address in '{first}': {e}"));
    Node { proc, id, addr }
}

/// Starts node `id` sharing `name` (already in its directory) and waits until the tracker
/// acknowledged it (`sharing NAME ...`).
pub fn holder(scratch: &Scratch, id: u32, tracker: SocketAddr, name: &str, extra: &[&str]) -> Node {
    let mut flags = vec!["--send", name];
    flags.extend_from_slice(extra);
    let mut node = node(scratch, id, tracker, &flags);
    node.proc.expect_line(&format!("sharing {name} "));
    node
}

/// Starts node `id` downloading `name` and exiting when done (0) or given up (1), with
/// `extra` flags.
pub fn downloader(
    scratch: &Scratch,
    id: u32,
    tracker: SocketAddr,
    name: &str,
    extra: &[&str],
) -> Node {
    let mut flags = vec!["--download", name, "--exit-when-done"];
    flags.extend_from_slice(extra);
    node(scratch, id, tracker, &flags)
}

impl Node {
    /// Waits until this node's downloads in `dir` have at least `chunks` chunks verified
    /// (reading its output meanwhile, so it never blocks on a full pipe).
    pub fn wait_verified(&mut self, dir: &Path, chunks: u32) {
        let deadline = Instant::now() + LINE_TIMEOUT;
        while verified_chunks(dir) < chunks {
            assert!(
                Instant::now() < deadline,
                "no progress to {chunks} verified chunks\n{}",
                self.proc.describe()
            );
            self.proc.read_for(Duration::from_millis(5));
        }
    }
}

impl Node {
    /// Waits for this downloader's `downloaded NAME ...` line, then for its exit with 0;
    /// returns the line.
    pub fn expect_downloaded(&mut self, name: &str) -> String {
        let line = self
            .proc
            .wait_line(|line| is_downloaded(line, name), DOWNLOAD_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(self.proc.expect_exit(LINE_TIMEOUT), 0, "{line}");
        line
    }

    /// Kills this node (SIGKILL, by its PID) and waits until it is gone.
    pub fn kill_and_wait(&mut self) {
        self.proc.kill();
        self.proc
            .wait_exit(LINE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Chunks node `node_id` is said to have sent in a `downloaded ... from node N: K chunks`
/// line (0 when it is not named).
pub fn chunks_from(line: &str, node_id: u32) -> u32 {
    let marker = format!("node {node_id}: ");
    line.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

/// Whether `line` is a node's report of a finished download of `name`.
pub fn is_downloaded(line: &str, name: &str) -> bool {
    line.starts_with(&format!("downloaded {name} "))
}

impl Proc {
    /// Sends SIGINT (by the child's PID), as Ctrl-C at a terminal would, without waiting.
    pub fn interrupt(&mut self) {
        if self.running()
            && let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
    }
}

/// How long one `torrent ctl` may take.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(40);

/// Runs `torrent ctl --dir DIR ARGS...`: its exit code, stdout and stderr lines.
pub fn ctl(scratch: &Scratch, dir: &Path, list: &[&str]) -> (i32, Vec<String>, Vec<String>) {
    let mut all = args(&["ctl", "--dir"]);
    all.push(dir.display().to_string());
    all.extend(args(list));
    let mut proc = spawn("ctl", &scratch.root, &all);
    let code = proc.expect_exit(CTL_TIMEOUT);
    (
        code,
        proc.stdout_lines().to_vec(),
        proc.stderr_lines().to_vec(),
    )
}

/// The JSON reply a `torrent ctl --json` printed last.
pub fn last_reply(lines: &[String]) -> serde_json::Value {
    let line = lines.last().expect("ctl --json prints its reply");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}
