//! Issue 13's flood goals, measured with real processes in network namespaces of the
//! test's own:
//!
//! * A flood of 100,000 unauthenticated datagrams a second (our protocol's Register, random
//!   node ids, no token), first from one address, then from 1,000 addresses: the tracker
//!   writes its registry at most once a second (and the flood adds nobody to it); at least
//!   99% of registered nodes' look-ups are answered within their normal retries (here: every
//!   one of 20 nodes' downloads, started by the console during the flood, completes before the
//!   flood ends); the tracker's peak memory stays below a bound derived from the named limits.
//! * While one client announces random info hashes to the BEP 15 side at full speed (the same
//!   100,000 a second), another client's announce to a real swarm succeeds within 2 s, in
//!   every round of several during the flood.
//!
//! Needs root and `ip` (iproute2); prints `SKIPPED: ...` and passes without them. Topology
//! (addresses from 10.77.0.0/16, which exist only inside the two namespaces; nothing is sent
//! to any other address):
//!
//! ```text
//!  namespace tfl<pid>t                      namespace tfl<pid>c
//!  tracker 10.77.0.1 ──── veth pair ──── 10.77.0.2  (the way to the 1,000 sources)
//!                                         10.77.0.11-30  20 nodes, an address each
//!                                         10.77.0.3  the flood from one address
//!                                         10.77.2.0/24 on lo (a `local` route): well-behaved
//!                                                    BEP 15 clients, an address each
//!                                         10.77.4.0/22 on lo (a `local` route): the flood
//!                                                    from 1,000 addresses
//! ```
//!
//! The test's thread enters a namespace with `setns` (only that thread moves) to start the
//! tracker there, then the nodes and the flood sender ([`torrent::flood`], `sendmmsg`) in
//! the other; a guard deletes both namespaces (after every process started here was killed by
//! its PID) even when the test fails. About 40 s in all: three floods of 10 s each.
//!
//! Figures are printed (`cargo test --test flood -- --nocapture`); every failed goal is
//! listed in the failure message. Goals that today's tracker misses, and that the tracker
//! work of issue 13 (stateless cookies for Registers, saves coalesced to one a second,
//! unauthenticated requests and BEP 15 swarms bounded per source) is there to meet, say
//! `[needs the tracker's flood defences]`.

mod common;

use common::*;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use torrent::bep15;
use torrent::flood::{self, FloodConfig, FloodControl, FloodKind, FloodReport};
use torrent::wire::{Hash, U16, U32, U64};

/// The flood's rate and length, per phase.
const FLOOD_RATE_PER_S: u32 = 100_000;
const FLOOD_DURATION: Duration = Duration::from_secs(10);
/// Below this (80% of the goal's rate) the sender did not flood as asked (the machine was
/// too busy to send it): the run did not measure the goals, and fails as inconclusive.
const FLOOD_RATE_MIN_PER_S: f64 = 80_000.0;
/// Registered nodes: each shares one small file and downloads another in each flood.
const NODES: u32 = 20;
const FILE_BYTES: usize = 64 << 10;
/// When the look-ups start, after the flood's start (so that they meet a tracker already
/// under the flood, its queues full).
const LOOKUPS_AFTER: Duration = Duration::from_millis(1500);
/// Share of look-ups that must be answered (issue 13: 99%; with 20 nodes, all of them).
const LOOKUPS_ANSWERED_MIN: f64 = 0.99;
/// The BEP 15 goal: a well-behaved client's announce is answered within this.
const BEP15_ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// A well-behaved BEP 15 client sends its request again after this long without a reply.
const BEP15_RETRY: Duration = Duration::from_millis(250);
/// Saves "at most once a second": two saves' log lines at least this far apart. The line
/// is written when a save ends, and a save of a big registry takes longer than the next
/// small one, so the gap between the lines may be a little shorter than between the saves.
const SAVE_GAP_MIN: Duration = Duration::from_millis(900);

const TRACKER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Node n (from 1) listens on 10.77.0.(10 + n): nodes are separate hosts, as in a real
/// deployment, so that a bound per source address treats them as such.
fn node_ip(id: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 10 + id as u8)
}
const FLOOD_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
/// Well-behaved BEP 15 clients: each from its own address, as separate clients are, so
/// that a bound on swarms per source address never sees two of them as one.
fn client_ip(index: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 2, 1 + index as u8)
}
const FLOOD_SOURCES_BASE: Ipv4Addr = Ipv4Addr::new(10, 77, 4, 0);
const FLOOD_SOURCES: usize = 1_000;

/// The tracker's peak resident memory may not pass this: what an unauthenticated flood can
/// make it hold, from the limits named in the code, each entry counted generously.
///
/// * The node registry: [`torrent::tracker::NODES_MAX`] nodes of at most 256 bytes each (a
///   node in a hash map: address 32, token 8, credit 8, last seen 16, an empty holdings map
///   24, flags; its entry in the expiry order, a B-tree of (time, id), 24; the maps' spare
///   room). Files need a token, which a flood does not have.
/// * That registry's snapshot while it is saved: 512 bytes a node (a `NodeEntry` with two
///   strings, about 128, its JSON text, about 120, and the vectors' growth, doubled).
/// * BEP 15: [`torrent::tracker::BEP15_PEERS_MAX`] peers of at most 200 bytes (a 56-byte peer
///   in a vector and a 40-byte entry in the swarm's index, both up to twice by growth), and
///   [`torrent::tracker::BEP15_SWARMS_MAX`] swarms of at most 1 KiB (the swarm and its key in
///   the map, the first allocations of its vector and index).
/// * The per-sender budgets, a fixed table: [`torrent::budget::TRACKER_SENDERS_MAX`] × 32.
/// * Queues: [`torrent::tracker::TRANSMIT_QUEUE_MAX`] replies of at most 5 KiB (the largest,
///   a look-up reply: 8 versions and 64 holders of 36 bytes, a name), and
///   [`torrent::tracker::EVENT_QUEUE_MAX`] events of at most 128 bytes.
/// * Batched I/O: `recvmmsg`'s [`torrent::udp::RECV_SLOTS`] × [`torrent::udp::RECV_SLOT_BYTES`],
///   and the send batch, [`torrent::udp::SEND_BATCH_BYTES_MAX`] plus one datagram, twice
///   (its scratch copy for grouping).
/// * The process itself (code, libraries, stacks, the log's buffer): 8 MiB; an idle tracker
///   peaks at about 4 MiB.
fn tracker_memory_bound_bytes() -> usize {
    use torrent::tracker as t;
    let registry = t::NODES_MAX * 256;
    let snapshot = t::NODES_MAX * 512;
    let bep15 = t::BEP15_PEERS_MAX * 200 + t::BEP15_SWARMS_MAX * 1024;
    let budgets = torrent::budget::TRACKER_SENDERS_MAX * 32;
    let queues = t::TRANSMIT_QUEUE_MAX * (5 << 10) + t::EVENT_QUEUE_MAX * 128;
    let io = torrent::udp::RECV_SLOTS * torrent::udp::RECV_SLOT_BYTES
        + 2 * (torrent::udp::SEND_BATCH_BYTES_MAX + torrent::udp::DATAGRAM_BYTES_MAX);
    let process = 8 << 20;
    registry + snapshot + bep15 + budgets + queues + io + process
}

// ---- namespaces ---------------------------------------------------------------------------

/// The test's namespaces: deleted on drop, after the calling thread went back to where it
/// started. Declared before any process, so that it is dropped after them all.
struct Namespaces {
    /// The thread's own network namespace, to go back to.
    original: File,
    names: Vec<String>,
}

impl Namespaces {
    fn new() -> Result<Namespaces, String> {
        let original = File::open("/proc/thread-self/ns/net")
            .map_err(|e| format!("cannot open this thread's network namespace: {e}"))?;
        Ok(Namespaces {
            original,
            names: Vec::new(),
        })
    }

    fn add(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.names.push(name.to_string());
        Ok(())
    }

    /// Moves the calling thread (only it) into namespace `name`; processes and threads it
    /// starts from now on are there too.
    fn enter(&self, name: &str) {
        let file = File::open(Path::new("/var/run/netns").join(name))
            .unwrap_or_else(|e| panic!("cannot open namespace {name}: {e}"));
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("cannot enter namespace {name}: {e}"));
    }

    fn leave(&self) {
        let _ = rustix::thread::move_into_link_name_space(
            self.original.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        );
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.leave();
        for name in self.names.iter().rev() {
            if let Err(error) = ip(&["netns", "del", name]) {
                eprintln!("could not delete namespace {name}: {error}");
            }
        }
    }
}

/// Runs `ip ARGS`; the error has its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Why this test cannot run here, if it cannot.
fn missing_requirement() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(output) if output.status.success() => None,
        _ => Some("needs 'ip' (iproute2)".into()),
    }
}

/// Two namespaces joined by a veth pair, addressed as in the module doc.
fn build_network(namespaces: &mut Namespaces) -> Result<(String, String), String> {
    let pid = std::process::id();
    let (tracker_ns, clients_ns) = (format!("tfl{pid}t"), format!("tfl{pid}c"));
    let (tracker_link, clients_link) = (format!("tfl{pid}a"), format!("tfl{pid}b"));
    namespaces.add(&tracker_ns)?;
    namespaces.add(&clients_ns)?;
    // Made inside the tracker's namespace, its peer moved straight to the other: the pair is
    // never in the namespace the test was started in.
    ip(&[
        "-n",
        &tracker_ns,
        "link",
        "add",
        &tracker_link,
        "type",
        "veth",
        "peer",
        "name",
        &clients_link,
        "netns",
        &clients_ns,
    ])?;
    ip(&[
        "-n",
        &tracker_ns,
        "addr",
        "add",
        "10.77.0.1/24",
        "dev",
        &tracker_link,
    ])?;
    let mut addresses: Vec<String> = ["10.77.0.2", "10.77.0.3"].map(String::from).to_vec();
    addresses.extend((1..=NODES).map(|id| node_ip(id).to_string()));
    for address in addresses {
        let address = format!("{address}/24");
        ip(&[
            "-n",
            &clients_ns,
            "addr",
            "add",
            &address,
            "dev",
            &clients_link,
        ])?;
    }
    for (ns, link) in [(&tracker_ns, &tracker_link), (&clients_ns, &clients_link)] {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "link", "set", link, "up"])?;
    }
    // The 1,000 flood sources and the BEP 15 clients: every address of 10.77.4.0/22 and of
    // 10.77.2.0/24 is local in the clients' namespace (one route instead of an address each),
    // and routed there from the tracker's.
    for prefix in ["10.77.4.0/22", "10.77.2.0/24"] {
        ip(&[
            "-n",
            &clients_ns,
            "route",
            "add",
            "local",
            prefix,
            "dev",
            "lo",
        ])?;
        ip(&[
            "-n",
            &tracker_ns,
            "route",
            "add",
            prefix,
            "via",
            "10.77.0.2",
        ])?;
    }
    Ok((tracker_ns, clients_ns))
}

// ---- the tracker ---------------------------------------------------------------------------

/// The tracker, its stdout in a file: under a flood it may print a line per datagram, which
/// the test has no use for and should not hold in memory. Killed by its PID on drop.
struct TrackerProc {
    child: Child,
    addr: SocketAddr,
    stdout: PathBuf,
}

impl TrackerProc {
    fn start(scratch: &Scratch) -> TrackerProc {
        let stdout = scratch.root.join("tracker.out");
        let mut child = Command::new(env!("CARGO_BIN_EXE_torrent"))
            .args(["tracker", "--listen", &format!("{TRACKER_IP}:0")])
            .arg("--db-dir")
            .arg(scratch.db())
            .arg("--log-dir")
            .arg(scratch.logs())
            .current_dir(&scratch.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the tracker");
        // A thread hands over the first line and copies the rest to the file, so that the
        // test waits on the line itself (with a deadline), not on a file it polls.
        let pipe = child.stdout.take().expect("piped stdout");
        let mut file = File::create(&stdout).expect("create the tracker's stdout file");
        let (first_tx, first_rx) = crossbeam_channel::bounded::<String>(1);
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(pipe);
            let mut first = String::new();
            if std::io::BufRead::read_line(&mut reader, &mut first).is_ok() {
                let _ = std::io::Write::write_all(&mut file, first.as_bytes());
                let _ = first_tx.send(first);
            }
            let _ = std::io::copy(&mut reader, &mut file);
        });
        let first = match first_rx.recv_timeout(LINE_TIMEOUT) {
            Ok(first) => first,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the tracker never said where it listens");
            }
        };
        let Some(addr) = first.trim_end().strip_prefix("tracker listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the tracker's first line is not where it listens: {first:?}");
        };
        let addr = addr.parse().expect("the tracker's address");
        TrackerProc {
            child,
            addr,
            stdout,
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// (peak, current) resident memory in bytes, from `/proc/PID/status`.
    fn memory_bytes(&self) -> (usize, usize) {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .map_or(0, |kib| kib << 10)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for TrackerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = fs::read_to_string(&self.stdout).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("---- tracker stdout (last 20 of {} lines)", lines.len());
            for line in &lines[lines.len().saturating_sub(20)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// The timestamps (as the log writes them: `2026-12-06T19:29:01.123Z`, which sort as
/// strings) of the registry saves logged from `since` on.
fn saves_since(log: &Path, since: &str) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("registry saved"))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|stamp| *stamp >= since)
        .map(str::to_string)
        .collect()
}

/// Milliseconds since the epoch of a log timestamp (`2026-12-06T19:29:01.123Z`).
fn stamp_ms(stamp: &str) -> Option<i64> {
    let (date, time) = stamp.trim_end_matches('Z').split_once('T')?;
    let mut date = date.split('-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let mut parts = time.split(':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(((days * 24 + hours) * 60 + minutes) * 60_000 + (seconds * 1000.0).round() as i64)
}

#[test]
fn log_timestamps_convert_to_milliseconds() {
    assert_eq!(stamp_ms("1970-01-01T00:00:01.500Z"), Some(1_500));
    let stamp = torrent::logging::utc_timestamp(
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_592_541_123),
    );
    assert_eq!(stamp_ms(&stamp), Some(1_796_592_541_123), "{stamp}");
    assert_eq!(
        stamp_ms("2026-03-01T00:00:00.000Z").unwrap()
            - stamp_ms("2026-02-28T23:59:59.999Z").unwrap(),
        1
    );
}

/// Nodes in the saved registry, and the file's size.
fn registry_nodes(db: &Path) -> (usize, u64) {
    let path = db.join("nodes.json");
    let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let nodes = fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|value| value.as_array().map(Vec::len))
        .unwrap_or(0);
    (nodes, bytes)
}

// ---- the flood ----------------------------------------------------------------------------

/// A flood on its own thread (in the namespace the calling thread is in); stopped early if
/// the test fails meanwhile.
struct Flood {
    control: Arc<FloodControl>,
    thread: Option<std::thread::JoinHandle<Result<FloodReport, String>>>,
    /// When its first datagram went (after any BEP 15 handshake).
    sending_since: Instant,
}

impl Flood {
    /// Starts the flood and waits until it is sending.
    fn start(target: SocketAddr, kind: FloodKind, sources: Vec<IpAddr>) -> Flood {
        let control = Arc::new(FloodControl::default());
        let config = FloodConfig {
            target,
            kind,
            rate_per_s: FLOOD_RATE_PER_S,
            duration: FLOOD_DURATION,
            sources,
            seed: u64::from(std::process::id()),
        };
        let shared = control.clone();
        let thread = std::thread::spawn(move || flood::run(&config, &shared));
        let mut flood = Flood {
            control,
            thread: Some(thread),
            sending_since: Instant::now(),
        };
        if !flood.control.wait_sending(LINE_TIMEOUT) {
            if flood.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let report = flood.finish();
                panic!("the flood ended before it sent anything: {report}");
            }
            panic!("the flood never started sending");
        }
        flood.sending_since = Instant::now();
        flood
    }

    fn ends_at(&self) -> Instant {
        self.sending_since + FLOOD_DURATION
    }

    fn finish(&mut self) -> FloodReport {
        let thread = self.thread.take().expect("joined once");
        thread
            .join()
            .expect("the flood thread panicked")
            .unwrap_or_else(|e| panic!("the flood could not start: {e}"))
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.control.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sleeps until `at`: pacing by the clock, not synchronisation.
fn pace_until(at: Instant) {
    let left = at.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
}

// ---- a well-behaved BEP 15 client ---------------------------------------------------------

/// Connects and announces `info_hash` (event `started`, its own port) from `socket`,
/// sending again every [`BEP15_RETRY`] until `deadline`; returns the listed peers, or why not.
fn bep15_announce(
    socket: &UdpSocket,
    tracker: SocketAddr,
    info_hash: Hash,
    transaction_id: u32,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, String> {
    let mut buf = [0u8; 2048];
    let mut last_error = "no reply".to_string();
    // The connect handshake.
    let len = bep15::encode_connect_request(&mut buf, transaction_id).expect("fits");
    let connect = buf[..len].to_vec();
    let connection_id =
        exchange(
            socket,
            tracker,
            &connect,
            deadline,
            |reply| match bep15::decode_response(reply, false) {
                Ok(bep15::Response::Connect(c))
                    if c.header.transaction_id.get() == transaction_id =>
                {
                    Some(c.connection_id.get())
                }
                _ => None,
            },
        )
        .ok_or("the connect was not answered")?;
    let mut announce: bep15::AnnounceRequest = bytemuck::Zeroable::zeroed();
    announce.header.connection_id = U64::new(connection_id);
    announce.header.action = U32::new(bep15::ACTION_ANNOUNCE);
    announce.header.transaction_id = U32::new(transaction_id.wrapping_add(1));
    announce.info_hash = info_hash;
    announce.peer_id = *b"-FLOODTEST-000000000";
    announce.left_bytes = U64::new(1 << 20);
    announce.event = U32::new(2); // started
    announce.num_want = U32::new(200);
    announce.port = U16::new(socket.local_addr().expect("bound").port());
    let request = bytemuck::bytes_of(&announce).to_vec();
    exchange(socket, tracker, &request, deadline, |reply| {
        match bep15::decode_response(reply, false) {
            Ok(bep15::Response::Announce { fixed, peers })
                if fixed.header.transaction_id.get() == transaction_id.wrapping_add(1) =>
            {
                Some(peers.to_addrs())
            }
            Ok(bep15::Response::Error {
                transaction_id: id,
                message,
            }) if id == transaction_id.wrapping_add(1) => {
                // An error is an answer, but not the one wanted; a client tries again.
                last_error = format!("error reply '{message}'");
                None
            }
            _ => None,
        }
    })
    .ok_or(last_error)
}

/// Sends `request` every [`BEP15_RETRY`] until `pick` accepts a reply or `deadline` passes.
fn exchange<T>(
    socket: &UdpSocket,
    to: SocketAddr,
    request: &[u8],
    deadline: Instant,
    mut pick: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        // A failed send is a lost request: the next attempt sends it again.
        let _ = socket.send_to(request, to);
        let resend_at = (Instant::now() + BEP15_RETRY).min(deadline);
        loop {
            let left = resend_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left)).expect("a timeout");
            match socket.recv_from(&mut buf) {
                Ok((len, from)) if from == to => {
                    if let Some(value) = pick(&buf[..len]) {
                        return Some(value);
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    None
}

// ---- the test -----------------------------------------------------------------------------

/// What one flood phase measured.
struct Phase {
    name: String,
    report: FloodReport,
    /// Look-ups answered (downloads done before the flood ended) of those started.
    lookups_answered: usize,
    lookups: usize,
    /// The slowest answered look-up (download), from its start.
    slowest_lookup: Duration,
    saves: usize,
    save_gap_min: Option<Duration>,
    registry_nodes: usize,
    registry_bytes: u64,
    peak_rss: usize,
    bep15_rounds: usize,
    bep15_ok: usize,
    bep15_slowest: Duration,
    bep15_failures: Vec<String>,
}

impl Phase {
    fn new(name: &str, report: FloodReport) -> Phase {
        Phase {
            name: name.to_string(),
            report,
            lookups_answered: 0,
            lookups: 0,
            slowest_lookup: Duration::ZERO,
            saves: 0,
            save_gap_min: None,
            registry_nodes: 0,
            registry_bytes: 0,
            peak_rss: 0,
            bep15_rounds: 0,
            bep15_ok: 0,
            bep15_slowest: Duration::ZERO,
            bep15_failures: Vec::new(),
        }
    }
}

/// A running node with what the test needs of it.
struct HonestNode {
    node: Node,
    info_hash: Hash,
}

fn start_nodes(scratch: &Scratch, tracker: SocketAddr) -> Vec<HonestNode> {
    let mut nodes: Vec<HonestNode> = Vec::new();
    let mut started = Vec::new();
    for id in 1..=NODES {
        let name = format!("file_{id}");
        scratch.put_file(id, &name, &random_bytes(u64::from(id), FILE_BYTES));
        let mut list = args(&["node", "--id", &id.to_string(), "--tracker"]);
        list.push(tracker.to_string());
        list.push("--dir".into());
        list.push(scratch.node_dir(id).display().to_string());
        list.push("--log-dir".into());
        list.push(scratch.logs().display().to_string());
        list.extend(args(&[
            "--listen",
            &format!("{}:0", node_ip(id)),
            "--send",
            &name,
        ]));
        started.push((id, spawn(&format!("node{id}"), &scratch.root, &list)));
    }
    for (id, mut proc) in started {
        let prefix = format!("node {id} listening on ");
        let line = proc.expect_line(&prefix);
        let addr: SocketAddr = line[prefix.len()..].parse().expect("a node's address");
        let sharing = proc.expect_line(&format!("sharing file_{id} ("));
        let hex = sharing
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(','))
            .map(|(hex, _)| hex.to_string())
            .expect("an info hash");
        let info_hash = torrent::wire::parse_hex(&hex).expect("a hex info hash");
        nodes.push(HonestNode {
            node: Node { proc, id, addr },
            info_hash,
        });
    }
    nodes
}

/// Each node downloads another's file (node i the file of node i + `shift`), by the console;
/// returns how many finished before `until`, and the slowest of those.
fn lookups_during(nodes: &mut [HonestNode], shift: u32, until: Instant) -> (usize, Duration) {
    let started = Instant::now();
    let names: Vec<String> = nodes
        .iter()
        .map(|n| format!("file_{}", (n.node.id - 1 + shift) % NODES + 1))
        .collect();
    for (node, name) in nodes.iter_mut().zip(&names) {
        node.node.proc.send_line(&format!("download {name}"));
    }
    let mut done: Vec<Option<Duration>> = vec![None; nodes.len()];
    let mut failed = vec![false; nodes.len()];
    while Instant::now() < until && done.iter().zip(&failed).any(|(d, f)| d.is_none() && !f) {
        for (index, node) in nodes.iter_mut().enumerate() {
            if done[index].is_some() || failed[index] {
                continue;
            }
            let name = &names[index];
            let failed_prefix = format!("download {name} failed");
            if let Ok(line) = node.node.proc.wait_line(
                |line| is_downloaded(line, name) || line.starts_with(&failed_prefix),
                Duration::from_millis(5),
            ) {
                if is_downloaded(&line, name) {
                    done[index] = Some(started.elapsed());
                } else {
                    failed[index] = true;
                }
            }
        }
    }
    let answered: Vec<Duration> = done.into_iter().flatten().collect();
    (
        answered.len(),
        answered.iter().max().copied().unwrap_or_default(),
    )
}

/// The saves logged since `since` (a log timestamp) and the least gap between two.
fn saves_in(log: &Path, since: &str) -> (usize, Option<Duration>) {
    let stamps: Vec<i64> = saves_since(log, since)
        .iter()
        .filter_map(|s| stamp_ms(s))
        .collect();
    let gap = stamps
        .windows(2)
        .map(|w| Duration::from_millis((w[1] - w[0]).max(0) as u64))
        .min();
    (stamps.len(), gap)
}

fn now_stamp() -> String {
    torrent::logging::utc_timestamp(SystemTime::now())
}

/// Rounds of the BEP 15 goal, one a second from a second into the flood while it lasts:
/// a client announces a fresh info hash (making a new swarm) and a second client must then
/// see the first among its peers; and a client announces the info hash of a file one of our
/// nodes holds, never announced over BEP 15 before, and must see that node. Each announce
/// must be answered within [`BEP15_ANSWER_WITHIN`]; one that could not finish before the
/// flood ends is not made.
fn bep15_rounds(phase: &mut Phase, tracker: SocketAddr, nodes: &[HonestNode], flood: &Flood) {
    let until = flood.ends_at();
    for round in 0..NODES {
        let round_at = flood.sending_since + Duration::from_secs(1 + u64::from(round));
        if round_at + BEP15_ANSWER_WITHIN > until {
            break;
        }
        pace_until(round_at);
        let first = UdpSocket::bind((client_ip(2 * round), 0)).expect("a client socket");
        let second = UdpSocket::bind((client_ip(2 * round + 1), 0)).expect("a client socket");
        let first_addr = first.local_addr().expect("bound");
        let mut fresh: Hash = [0; 20];
        fresh[..4].copy_from_slice(b"FLD!");
        fresh[4..8].copy_from_slice(&round.to_be_bytes());
        fresh[8..12].copy_from_slice(&std::process::id().to_be_bytes());
        let holder = &nodes[round as usize % nodes.len()];
        let attempts: [(&str, &UdpSocket, Hash, SocketAddr); 3] = [
            ("a new swarm's first peer", &first, fresh, first_addr),
            ("a new swarm's second peer", &second, fresh, first_addr),
            (
                "our nodes' file",
                &first,
                holder.info_hash,
                holder.node.addr,
            ),
        ];
        for (index, (what, socket, info_hash, expect)) in attempts.into_iter().enumerate() {
            let start = Instant::now();
            let deadline = start + BEP15_ANSWER_WITHIN;
            if deadline > until {
                break;
            }
            phase.bep15_rounds += 1;
            let transaction_id = (round << 8) | (index as u32) << 2;
            let result = bep15_announce(socket, tracker, info_hash, transaction_id, deadline);
            let took = start.elapsed();
            let outcome = match result {
                // The first peer of a new swarm sees nobody else; the others must see theirs.
                Ok(_) if index == 0 => Ok(()),
                Ok(peers) if peers.contains(&expect) => Ok(()),
                Ok(peers) => Err(format!("answered without {expect}: {peers:?}")),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(()) => {
                    phase.bep15_ok += 1;
                    phase.bep15_slowest = phase.bep15_slowest.max(took);
                }
                Err(error) => phase.bep15_failures.push(format!(
                    "round {}, {what}: {error} ({:.2} s)",
                    round + 1,
                    took.as_secs_f64()
                )),
            }
        }
    }
}

#[test]
fn tracker_under_flood() {
    if let Some(reason) = missing_requirement() {
        println!("SKIPPED: {reason}");
        return;
    }
    let mut namespaces = Namespaces::new().unwrap_or_else(|e| panic!("{e}"));
    let (tracker_ns, clients_ns) = match build_network(&mut namespaces) {
        Ok(names) => names,
        // Root without the right to make namespaces (a container): nothing to measure here.
        Err(error) if namespaces.names.is_empty() => {
            println!("SKIPPED: cannot create network namespaces: {error}");
            return;
        }
        Err(error) => panic!("cannot build the test network: {error}"),
    };
    let scratch = Scratch::new("flood");
    namespaces.enter(&tracker_ns);
    let mut tracker = TrackerProc::start(&scratch);
    namespaces.enter(&clients_ns);
    let mut nodes = start_nodes(&scratch, tracker.addr);
    let log = scratch.logs().join("_tracker.log");
    let mut phases = Vec::new();

    // Phases 1 and 2: Registers from one address, then from 1,000.
    let one = vec![IpAddr::V4(FLOOD_IP)];
    let many = flood::consecutive_sources(FLOOD_SOURCES_BASE, FLOOD_SOURCES).expect("sources");
    for (shift, name, sources) in [
        (1, "Register flood from 1 address", one.clone()),
        (2, "Register flood from 1,000 addresses", many),
    ] {
        let since = now_stamp();
        let mut flood = Flood::start(tracker.addr, FloodKind::Register, sources);
        pace_until(flood.sending_since + LOOKUPS_AFTER);
        let (answered, slowest) = lookups_during(&mut nodes, shift, flood.ends_at());
        let report = flood.finish();
        let mut phase = Phase::new(name, report);
        phase.lookups = nodes.len();
        phase.lookups_answered = answered;
        phase.slowest_lookup = slowest;
        (phase.saves, phase.save_gap_min) = saves_in(&log, &since);
        (phase.registry_nodes, phase.registry_bytes) = registry_nodes(&scratch.db());
        phase.peak_rss = tracker.memory_bytes().0;
        phases.push(phase);
        assert!(tracker.running(), "the tracker died during the {name}");
    }

    // Phase 3: random BEP 15 announces from one address, while well-behaved clients
    // announce to real swarms.
    let since = now_stamp();
    let mut flood = Flood::start(tracker.addr, FloodKind::Bep15Announce, one);
    let mut bep15_phase = Phase::new(
        "BEP 15 announce flood from 1 address",
        FloodReport::default(),
    );
    bep15_rounds(&mut bep15_phase, tracker.addr, &nodes, &flood);
    bep15_phase.report = flood.finish();
    (bep15_phase.saves, bep15_phase.save_gap_min) = saves_in(&log, &since);
    (bep15_phase.registry_nodes, bep15_phase.registry_bytes) = registry_nodes(&scratch.db());
    bep15_phase.peak_rss = tracker.memory_bytes().0;
    phases.push(bep15_phase);
    assert!(
        tracker.running(),
        "the tracker died during the BEP 15 flood"
    );
    namespaces.leave();

    // The figures, then every goal missed.
    let bound = tracker_memory_bound_bytes();
    let mut figures = String::new();
    let mut failures = Vec::new();
    for phase in &phases {
        let r = &phase.report;
        let _ = writeln!(
            figures,
            "{}:\n  flood: {r}\n  look-ups answered {}/{} (slowest {:.2} s); registry saves {} \
             (least gap {}); registry {} nodes, {} bytes; tracker peak RSS {:.1} MiB (bound \
             {:.0} MiB)",
            phase.name,
            phase.lookups_answered,
            phase.lookups,
            phase.slowest_lookup.as_secs_f64(),
            phase.saves,
            phase
                .save_gap_min
                .map_or("-".to_string(), |g| format!("{:.3} s", g.as_secs_f64())),
            phase.registry_nodes,
            phase.registry_bytes,
            phase.peak_rss as f64 / f64::from(1 << 20),
            bound as f64 / f64::from(1 << 20),
        );
        if phase.bep15_rounds > 0 {
            let _ = writeln!(
                figures,
                "  BEP 15 announces answered within {} s: {}/{} (slowest {:.2} s)",
                BEP15_ANSWER_WITHIN.as_secs(),
                phase.bep15_ok,
                phase.bep15_rounds,
                phase.bep15_slowest.as_secs_f64()
            );
        }
        if r.rate_per_s() < FLOOD_RATE_MIN_PER_S {
            failures.push(format!(
                "{}: inconclusive: the sender reached only {:.0} datagrams/s of {} (machine \
                 too busy?)",
                phase.name,
                r.rate_per_s(),
                FLOOD_RATE_PER_S
            ));
        }
        if let Some(gap) = phase.save_gap_min
            && gap < SAVE_GAP_MIN
        {
            failures.push(format!(
                "{}: the registry was saved {} times, two saves only {:.3} s apart (goal: at \
                 most once a second) [needs the tracker's flood defences]",
                phase.name,
                phase.saves,
                gap.as_secs_f64()
            ));
        }
        if phase.registry_nodes > NODES as usize {
            failures.push(format!(
                "{}: after it, the saved registry holds {} nodes ({} bytes) for {} real ones: \
                 unauthenticated Registers cost state and disk (goal: none until a cookie is \
                 echoed) [needs the tracker's flood defences]",
                phase.name, phase.registry_nodes, phase.registry_bytes, NODES
            ));
        }
        if phase.lookups > 0
            && (phase.lookups_answered as f64) < LOOKUPS_ANSWERED_MIN * phase.lookups as f64
        {
            failures.push(format!(
                "{}: only {} of {} look-ups were answered during the flood (goal: 99%) [needs \
                 the tracker's flood defences]",
                phase.name, phase.lookups_answered, phase.lookups
            ));
        }
        if phase.peak_rss > bound {
            failures.push(format!(
                "{}: the tracker's peak RSS {} bytes passed the bound {} bytes derived from \
                 the named limits",
                phase.name, phase.peak_rss, bound
            ));
        }
        if !phase.bep15_failures.is_empty() {
            failures.push(format!(
                "{}: {} of {} well-behaved announces not answered within {} s (goal: all) \
                 [needs the tracker's flood defences]: {}",
                phase.name,
                phase.bep15_failures.len(),
                phase.bep15_rounds,
                BEP15_ANSWER_WITHIN.as_secs(),
                phase.bep15_failures.join("; ")
            ));
        }
    }
    println!("{figures}");
    assert!(
        failures.is_empty(),
        "flood goals missed:\n- {}\n\nfigures:\n{figures}",
        failures.join("\n- ")
    );
}
