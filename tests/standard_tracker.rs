//! Our nodes with a standard BitTorrent tracker (`--tracker udp://HOST:PORT`, BEP 15): a
//! holder announces its file under its info hash, downloaders announce and learn it from the
//! tracker, fetch and check the manifest from it, and download as usual; by `.torrent`, by a
//! bare info hash (the name then comes from the manifest) and by magnet link.
//!
//! Against real trackers: Debian's `opentracker` (whitelist-only build: the info hash is
//! written to a whitelist) and `aquatic_udp` (`cargo install aquatic_udp`). Each is skipped
//! with a visible message when not installed. Neither binds port 0: a free port is picked just
//! before the start (bind 0, read, drop), and the start is tried once more if it failed to
//! bind; readiness is a BEP 15 connect answered, never a sleep. The same scenario also runs
//! against our own tracker's BEP 15 side, which needs nothing installed.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OPENTRACKER: &str = "/usr/bin/opentracker";
const AQUATIC: &str = "/root/.cargo/bin/aquatic_udp";
/// How long an external tracker may take to answer its first connect.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const NAME: &str = "file_A.bin";
const CHUNK_BYTES: usize = 64 * 1024;

/// An external tracker process, killed (by its PID, through `Child`) when the test ends.
struct External {
    child: Child,
    addr: SocketAddr,
}

impl Drop for External {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    socket.local_addr().unwrap().port()
}

fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
    listener.local_addr().unwrap().port()
}

/// Whether `addr` answers a BEP 15 connect within a short wait.
fn answers_connect(addr: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a probe socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let transaction_id = 0x5eed_1234u32;
    let mut request = 0x0417_2710_1980u64.to_be_bytes().to_vec();
    request.extend_from_slice(&0u32.to_be_bytes());
    request.extend_from_slice(&transaction_id.to_be_bytes());
    if socket.send_to(&request, addr).is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    match socket.recv_from(&mut reply) {
        Ok((16, from)) if from == addr => {
            reply[..4] == [0, 0, 0, 0] && reply[4..8] == transaction_id.to_be_bytes()
        }
        _ => false,
    }
}

/// Starts `command` (built for `port`) and waits until it answers a connect; `None` if it
/// exited first (the port was taken meanwhile) or never answered.
fn start_external(
    name: &str,
    mut command: impl FnMut(u16) -> Command,
    log: &Path,
) -> Result<External, String> {
    let mut problems = Vec::new();
    for _attempt in 0..2 {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let out = std::fs::File::create(log).expect("create the tracker's log");
        let child = command(port)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let mut external = External { child, addr };
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut exited = None;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = external.child.try_wait() {
                exited = Some(status);
                break;
            }
            if answers_connect(addr) {
                return Ok(external);
            }
        }
        let output = std::fs::read_to_string(log).unwrap_or_default();
        problems.push(match exited {
            Some(status) => format!("{name} on port {port} exited ({status}): {output}"),
            None => format!("{name} on port {port} did not answer a connect: {output}"),
        });
    }
    Err(problems.join("\n"))
}

fn start_opentracker(scratch: &Scratch, info_hash: &str) -> Result<External, String> {
    // Debian's build only serves whitelisted info hashes, and refuses to run as root: it
    // chroots to -d (where the whitelist is read) and drops to -u.
    let dir = scratch.root.join("opentracker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("whitelist.txt"), format!("{info_hash}\n")).unwrap();
    std::fs::write(
        dir.join("opentracker.conf"),
        "access.whitelist /whitelist.txt\n",
    )
    .unwrap();
    set_mode(&scratch.root, 0o755);
    set_mode(&dir, 0o755);
    set_mode(&dir.join("whitelist.txt"), 0o644);
    let user = if user_exists("_opentracker") {
        "_opentracker"
    } else {
        "nobody"
    };
    let log = scratch.root.join("opentracker.log");
    start_external(
        "opentracker",
        |port| {
            let mut command = Command::new(OPENTRACKER);
            command
                .arg("-f")
                .arg(dir.join("opentracker.conf"))
                .args(["-i", "127.0.0.1", "-P", &port.to_string()])
                .args(["-p", &free_tcp_port().to_string()])
                .arg("-d")
                .arg(&dir)
                .args(["-u", user]);
            command
        },
        &log,
    )
}

fn start_aquatic(scratch: &Scratch) -> Result<External, String> {
    let default = Command::new(AQUATIC)
        .arg("-p")
        .output()
        .map_err(|e| format!("aquatic_udp -p: {e}"))?;
    let default = String::from_utf8_lossy(&default.stdout).into_owned();
    let config = scratch.root.join("aquatic_udp.toml");
    let log = scratch.root.join("aquatic_udp.log");
    start_external(
        "aquatic_udp",
        |port| {
            // aquatic_udp's own default configuration, with our address and one worker.
            let text: String = default
                .lines()
                .map(
                    |line| match line.split('=').next().unwrap_or_default().trim() {
                        "address" | "address_ipv4" => format!("address = \"127.0.0.1:{port}\""),
                        "socket_workers" | "swarm_workers" => "socket_workers = 1".to_string(),
                        "use_ipv6" => "use_ipv6 = false".to_string(),
                        _ => line.to_string(),
                    },
                )
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(&config, text + "\n").unwrap();
            let mut command = Command::new(AQUATIC);
            command.arg("-c").arg(&config);
            command
        },
        &log,
    )
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn user_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(':').next() == Some(name))
}

/// The info hash our node gives `data` shared as [`NAME`] in chunks of [`CHUNK_BYTES`].
fn info_hash_of(data: &[u8]) -> String {
    let hashes: Vec<[u8; 20]> = data.chunks(CHUNK_BYTES).map(torrent::hash::sha1).collect();
    let info_hash =
        torrent::storage::info_hash(NAME, data.len() as u64, CHUNK_BYTES as u32, &hashes);
    torrent::wire::hex(&info_hash)
}

/// Starts node `id` with tracker `udp://ADDR` and `extra` flags; waits for its first line.
fn standard_node(scratch: &Scratch, id: u32, tracker: SocketAddr, extra: &[&str]) -> Proc {
    let mut list = vec!["--tracker".to_string(), format!("udp://{tracker}/announce")];
    list.extend(args(extra));
    let list: Vec<&str> = list.iter().map(String::as_str).collect();
    node_without_tracker_flag(scratch, id, &list)
}

/// Starts node `id` with `extra` flags only (a `.torrent` may name the tracker).
fn node_without_tracker_flag(scratch: &Scratch, id: u32, extra: &[&str]) -> Proc {
    let mut list = args(&["node", "--id", &id.to_string()]);
    list.push("--dir".into());
    list.push(scratch.node_dir(id).display().to_string());
    list.push("--log-dir".into());
    list.push(scratch.logs().display().to_string());
    list.extend(args(&["--listen", "127.0.0.1:0", "--chunk-size", "64K"]));
    list.extend(args(extra));
    let mut proc = spawn(&format!("node{id}"), &scratch.root, &list);
    proc.expect_line(&format!("node {id} listening on "));
    proc
}

/// The scenario: node 1 shares and exports the file; node 2 downloads it by `.torrent`
/// (without `--tracker`: the `.torrent`'s udp:// announce URL names it), node 3 by bare info
/// hash, node 4 by magnet link; each copy is byte-identical.
fn swarm_through(tracker: SocketAddr, scratch: &Scratch, data: &[u8], info_hash: &str) {
    scratch.put_file(1, NAME, data);
    let mut holder = standard_node(scratch, 1, tracker, &["--send", NAME, "--export", NAME]);
    holder.expect_line(&format!("connected to tracker udp://{tracker}"));
    let sharing = holder.expect_line(&format!("sharing {NAME} "));
    assert!(sharing.contains(info_hash), "{sharing}");
    holder.expect_line(&format!("exported {NAME} "));
    let torrent_file: PathBuf = scratch.node_dir(1).join(format!("{NAME}.torrent"));
    let magnet = format!("magnet:?xt=urn:btih:{info_hash}&dn={NAME}");
    let torrent_arg = torrent_file.display().to_string();
    let ways = [
        (2, torrent_arg.as_str()),
        (3, info_hash),
        (4, magnet.as_str()),
    ];
    let mut downloaders: Vec<(u32, Proc)> = ways
        .iter()
        .map(|&(id, spec)| {
            let extra = ["--download", spec, "--exit-when-done"];
            let proc = if id == 2 {
                node_without_tracker_flag(scratch, id, &extra)
            } else {
                standard_node(scratch, id, tracker, &extra)
            };
            (id, proc)
        })
        .collect();
    for (id, proc) in &mut downloaders {
        proc.expect_line(&format!("connected to tracker udp://{tracker} "));
        let line = proc
            .wait_line(|line| is_downloaded(line, NAME), DOWNLOAD_TIMEOUT)
            .unwrap_or_else(|e| panic!("node {id}: {e}"));
        assert!(line.contains(info_hash), "{line}");
        assert_eq!(proc.expect_exit(LINE_TIMEOUT), 0, "node {id}");
        assert_file_is(&scratch.node_dir(*id).join(NAME), data);
    }
    holder.send_line("exit");
    holder.expect_line("node 1 leaving: 'stopped' announces sent to the tracker");
    assert_eq!(holder.expect_exit(LINE_TIMEOUT), 0);
}

#[test]
fn nodes_swarm_through_opentracker() {
    if !Path::new(OPENTRACKER).exists() {
        eprintln!(
            "SKIPPED nodes_swarm_through_opentracker: {OPENTRACKER} is not installed (apt-get install -y opentracker)"
        );
        return;
    }
    let scratch = Scratch::new("opentracker");
    let data = random_bytes(15, 5 * CHUNK_BYTES + 1234);
    let info_hash = info_hash_of(&data);
    let tracker = start_opentracker(&scratch, &info_hash).unwrap_or_else(|e| panic!("{e}"));
    swarm_through(tracker.addr, &scratch, &data, &info_hash);
}

#[test]
fn nodes_swarm_through_aquatic_udp() {
    if !Path::new(AQUATIC).exists() {
        eprintln!(
            "SKIPPED nodes_swarm_through_aquatic_udp: {AQUATIC} is not installed (cargo install aquatic_udp)"
        );
        return;
    }
    let scratch = Scratch::new("aquatic");
    let data = random_bytes(16, 7 * CHUNK_BYTES + 99);
    let info_hash = info_hash_of(&data);
    let tracker = start_aquatic(&scratch).unwrap_or_else(|e| panic!("{e}"));
    swarm_through(tracker.addr, &scratch, &data, &info_hash);
}

/// Our own tracker answers BEP 15 too: the same scenario, with nothing to install.
#[test]
fn nodes_swarm_through_our_tracker_as_a_standard_one() {
    let scratch = Scratch::new("standard-ours");
    let data = random_bytes(17, 3 * CHUNK_BYTES + 7);
    let info_hash = info_hash_of(&data);
    let tracker = common::tracker(&scratch);
    swarm_through(tracker.addr, &scratch, &data, &info_hash);
}

/// opentracker drops announces of an info hash missing from its whitelist (no error reply
/// over UDP): the user is told the announces go unanswered.
#[test]
fn opentracker_silence_about_an_unlisted_file_is_shown() {
    if !Path::new(OPENTRACKER).exists() {
        eprintln!(
            "SKIPPED opentracker_silence_about_an_unlisted_file_is_shown: {OPENTRACKER} is not installed"
        );
        return;
    }
    let scratch = Scratch::new("opentracker-unlisted");
    let data = random_bytes(18, CHUNK_BYTES);
    let tracker = start_opentracker(&scratch, &"00".repeat(20)).unwrap_or_else(|e| panic!("{e}"));
    scratch.put_file(1, NAME, &data);
    let mut holder = standard_node(&scratch, 1, tracker.addr, &["--send", NAME]);
    let line = holder.expect_line(&format!(
        "tracker udp://{} does not answer announces of {}",
        tracker.addr,
        info_hash_of(&data)
    ));
    assert!(line.contains("whitelist"), "{line}");
    holder.send_line("exit");
    assert_eq!(holder.expect_exit(LINE_TIMEOUT), 0);
}

/// A BEP 15 tracker in a few lines of this test (so it binds port 0): it answers every
/// connect, answers announces with `error` (as an error reply) or with no peers, and sends
/// each announce's (event, num_want) to the test. Stopped (and joined) on drop.
struct FakeTracker {
    addr: SocketAddr,
    announces: crossbeam_channel::Receiver<(u32, u32)>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeTracker {
    fn start(error: Option<&'static str>) -> FakeTracker {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_fake = stop.clone();
        let (tx, announces) = crossbeam_channel::unbounded();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop_fake.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let request = &buf[..len];
                let mut reply = Vec::new();
                if len == 16 && request[8..12] == [0, 0, 0, 0] {
                    reply.extend_from_slice(&[0, 0, 0, 0]);
                    reply.extend_from_slice(&request[12..16]);
                    reply.extend_from_slice(&[9; 8]);
                } else if len >= 98 && request[8..12] == [0, 0, 0, 1] {
                    let at = |i: usize| u32::from_be_bytes(request[i..i + 4].try_into().unwrap());
                    let _ = tx.send((at(80), at(92)));
                    match error {
                        Some(message) => {
                            reply.extend_from_slice(&[0, 0, 0, 3]);
                            reply.extend_from_slice(&request[12..16]);
                            reply.extend_from_slice(message.as_bytes());
                        }
                        None => {
                            reply.extend_from_slice(&[0, 0, 0, 1]);
                            reply.extend_from_slice(&request[12..16]);
                            reply.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 0]);
                        }
                    }
                }
                if !reply.is_empty() {
                    socket.send_to(&reply, from).unwrap();
                }
            }
        });
        FakeTracker {
            addr,
            announces,
            stop,
            thread: Some(thread),
        }
    }

    /// The next announce's (event, num_want), within `limit`.
    fn next_announce(&self, limit: Duration) -> (u32, u32) {
        self.announces
            .recv_timeout(limit)
            .expect("an announce at the fake tracker")
    }
}

impl Drop for FakeTracker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A tracker's error reply reaches the user.
#[test]
fn an_error_from_the_tracker_is_shown() {
    let scratch = Scratch::new("standard-error");
    let fake = FakeTracker::start(Some("torrent not registered here"));
    let tracker = fake.addr;
    let data = random_bytes(19, CHUNK_BYTES);
    scratch.put_file(1, NAME, &data);
    let mut holder = standard_node(&scratch, 1, tracker, &["--send", NAME]);
    let line = holder.expect_line(&format!("tracker udp://{tracker} refused "));
    assert!(line.contains(&info_hash_of(&data)), "{line}");
    assert!(line.ends_with(": torrent not registered here"), "{line}");
    holder.send_line("exit");
    assert_eq!(holder.expect_exit(LINE_TIMEOUT), 0);
}

/// A download that finds no peer announces `started` asking for peers, fails, then tells
/// the tracker `stopped` while the node goes on running.
#[test]
fn a_failed_download_stops_announcing() {
    let scratch = Scratch::new("standard-failed");
    let fake = FakeTracker::start(None);
    let info_hash = "12".repeat(20);
    let extra = ["--download", info_hash.as_str(), "--give-up-after", "1"];
    let mut node = standard_node(&scratch, 1, fake.addr, &extra);
    assert_eq!(
        fake.next_announce(LINE_TIMEOUT),
        (2, 64),
        "started, wanting peers"
    );
    node.expect_line(&format!("download {info_hash} failed: "));
    loop {
        // Re-announces for peers may come first; `stopped` comes without an exit.
        let (event, _) = fake.next_announce(LINE_TIMEOUT);
        if event == 3 {
            break;
        }
        assert_eq!(event, 0, "only periodic announces before 'stopped'");
    }
    assert!(node.running(), "the node stopped announcing by leaving");
    node.send_line("exit");
    assert_eq!(node.expect_exit(LINE_TIMEOUT), 0);
}

/// Bad tracker forms are usage errors (exit 2), and a name alone cannot be found through a
/// standard tracker.
#[test]
fn bad_tracker_forms_and_names_alone_are_refused() {
    let scratch = Scratch::new("standard-forms");
    for form in ["http://127.0.0.1:0/announce", "udp://", "udp://127.0.0.1"] {
        let mut proc = spawn(
            "node",
            &scratch.root,
            &args(&["node", "--id", "1", "--tracker", form]),
        );
        assert_eq!(proc.expect_exit(LINE_TIMEOUT), 2, "{form}");
    }
    let port = free_port();
    let tracker: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut node = standard_node(
        &scratch,
        1,
        tracker,
        &["--download", NAME, "--exit-when-done"],
    );
    node.expect_line(&format!(
        "cannot download {NAME} by name from a standard tracker"
    ));
    assert_eq!(node.expect_exit(LINE_TIMEOUT), 1);
}

/// With our own tracker (plain HOST:PORT) a `.torrent` is a download pinned to its info
/// hash; a bare info hash is refused (our tracker finds files by name), exit code 1.
#[test]
fn our_tracker_takes_a_torrent_but_not_a_bare_info_hash() {
    let scratch = Scratch::new("ours-torrent");
    let data = random_bytes(20, 2 * CHUNK_BYTES + 5);
    let info_hash = info_hash_of(&data);
    let tracker = common::tracker(&scratch);
    scratch.put_file(1, NAME, &data);
    let extra = ["--chunk-size", "64K", "--export", NAME];
    let mut holder = common::holder(&scratch, 1, tracker.addr, NAME, &extra);
    holder.proc.expect_line(&format!("exported {NAME} "));
    let torrent_file = scratch.node_dir(1).join(format!("{NAME}.torrent"));
    let torrent_arg = torrent_file.display().to_string();
    let mut by_torrent = common::downloader(&scratch, 2, tracker.addr, &torrent_arg, &[]);
    let line = by_torrent
        .proc
        .wait_line(|line| is_downloaded(line, NAME), DOWNLOAD_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains(&info_hash), "{line}");
    assert_eq!(by_torrent.proc.expect_exit(LINE_TIMEOUT), 0);
    assert_file_is(&scratch.node_dir(2).join(NAME), &data);
    let mut by_hash = common::downloader(&scratch, 3, tracker.addr, &info_hash, &[]);
    by_hash
        .proc
        .expect_line(&format!("cannot download {info_hash} by info hash alone"));
    assert_eq!(by_hash.proc.expect_exit(LINE_TIMEOUT), 1);
}
