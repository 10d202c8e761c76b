//! `--advertise ADDR[:PORT]` and self-recognition, with the real binary.
//!
//! * Behind a NAT, our tracker sees a node at the port the NAT mapped, which other peers
//!   cannot reach. The NAT here is a relay in the test process that forwards the holder's
//!   datagrams to the tracker from a socket of its own and lets only the tracker answer there,
//!   as Linux's conntrack does. Without `--advertise` the download fails; advertising the
//!   holder's own port (the port forward) makes it succeed, byte-identical.
//! * A multi-homed holder (network namespaces: the tracker sees it on one network, the
//!   downloader reaches it only on another) is given to peers at its advertised address once
//!   the tracker's challenge sent there reached it: without `--advertise` the download fails,
//!   with it, it succeeds. An advertised address that never answers (loopback, no root
//!   needed) is never given out, and only the tracker's small challenges go there.
//! * A node bound to all addresses, with opentracker at a non-loopback address of a network
//!   namespace made for the test, never takes itself for a peer (needs root and opentracker;
//!   SKIPPED otherwise).
//! * A tracker and a holder bound to all addresses answer each datagram from the address it
//!   was sent to, not the one the kernel's routes pick: with the tracker asked at a second
//!   address and the holder advertised at a third, the download completes (needs root for a
//!   network namespace whose only link is its loopback; SKIPPED otherwise).
//! * Bad values are refused with one line and exit code 2.

mod common;

use common::netns::{Netns, missing_requirement, veth};
use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use torrent::wire::{self, Message};

const NAME: &str = "file_A.bin";
const FILE_BYTES: usize = 3 << 20;
/// How long a relay thread blocks in one receive before it looks at its stop flag.
const RELAY_POLL: Duration = Duration::from_millis(20);

/// A NAT in front of one node: the node sends to `inside`; the relay forwards from
/// `outside` (its own port, as a NAT maps one) to the tracker, and forwards to the node only
/// what comes to `outside` from the tracker. Everything else arriving at `outside` (a peer
/// that was given that address) is dropped and counted.
struct Nat {
    inside: SocketAddr,
    outside: SocketAddr,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Nat {
    fn new(tracker: SocketAddr) -> Nat {
        let inside = UdpSocket::bind("127.0.0.1:0").unwrap();
        let outside = UdpSocket::bind("127.0.0.1:0").unwrap();
        for socket in [&inside, &outside] {
            socket.set_read_timeout(Some(RELAY_POLL)).unwrap();
        }
        let (inside_addr, outside_addr) =
            (inside.local_addr().unwrap(), outside.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        // The node's address, learnt from its first datagram.
        let node = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let (inside, outside) = (Arc::new(inside), Arc::new(outside));
        let mut threads = Vec::new();
        {
            let (inside, outside, stop, node) =
                (inside.clone(), outside.clone(), stop.clone(), node.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, from)) = inside.recv_from(&mut buf) {
                        *node.lock().unwrap() = Some(from);
                        let _ = outside.send_to(&buf[..len], tracker);
                    }
                }
            }));
        }
        {
            let (stop, dropped) = (stop.clone(), dropped.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, from)) = outside.recv_from(&mut buf) {
                        let node = *node.lock().unwrap();
                        match node {
                            Some(node) if from == tracker => {
                                let _ = inside.send_to(&buf[..len], node);
                            }
                            _ => {
                                dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }));
        }
        Nat {
            inside: inside_addr,
            outside: outside_addr,
            dropped,
            stop,
            threads,
        }
    }
}

impl Drop for Nat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The command line of node `id` with `tracker` and exactly the `extra` flags (no default
/// `--listen`).
fn node_command(scratch: &Scratch, id: u32, tracker: &str, extra: &[&str]) -> Vec<String> {
    let mut list = args(&["node", "--id", &id.to_string(), "--tracker", tracker]);
    list.push("--dir".into());
    list.push(scratch.node_dir(id).display().to_string());
    list.push("--log-dir".into());
    list.push(scratch.logs().display().to_string());
    list.extend(args(extra));
    list
}

/// Starts a node; returns it and the address it listens on (from its first line).
fn start_node(scratch: &Scratch, id: u32, list: &[String]) -> (Proc, SocketAddr) {
    let mut proc = spawn(&format!("node{id}"), &scratch.root, list);
    let prefix = format!("node {id} listening on ");
    let first = proc.expect_line(&prefix);
    let addr = first
        .trim_start_matches(&prefix)
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("bad address in '{first}': {e}"));
    (proc, addr)
}

/// The addresses node `id`'s log says it used as peers (`NAME: using node N at ADDR`).
fn peers_used(scratch: &Scratch, id: u32) -> Vec<String> {
    let log =
        std::fs::read_to_string(scratch.logs().join(format!("node{id}.log"))).unwrap_or_default();
    log.lines()
        .filter_map(|line| line.split_once(": using node ").map(|(_, rest)| rest))
        .filter_map(|rest| {
            rest.split_once(" at ")
                .map(|(_, addr)| addr.trim().to_string())
        })
        .collect()
}

/// Node 1 behind the NAT holds the file; node 2 downloads it straight from the tracker.
/// Returns node 2's exit code, what the NAT dropped, and the addresses node 2 used.
fn through_nat(advertise: bool) -> (i32, u64, Vec<String>) {
    let scratch = Scratch::new(if advertise {
        "nat-advertised"
    } else {
        "nat-plain"
    });
    let data = random_bytes(14, FILE_BYTES);
    scratch.put_file(1, NAME, &data);
    let tracker = tracker(&scratch);
    let nat = Nat::new(tracker.addr);
    let mut flags = vec!["--listen", "127.0.0.1:0", "--send", NAME];
    if advertise {
        // The port forward: the NAT's address (here the same host) and the node's own port.
        flags.extend(["--advertise", "127.0.0.1"]);
    }
    let (mut holder, holder_addr) = start_node(
        &scratch,
        1,
        &node_command(&scratch, 1, &nat.inside.to_string(), &flags),
    );
    holder.expect_line(&format!("sharing {NAME} "));
    if advertise {
        holder.expect_line(&format!(
            "the tracker gives peers our advertised address {holder_addr}"
        ));
    }
    let (mut downloader, _) = start_node(
        &scratch,
        2,
        &node_command(
            &scratch,
            2,
            &tracker.addr.to_string(),
            &[
                "--listen",
                "127.0.0.1:0",
                "--download",
                NAME,
                "--exit-when-done",
                "--give-up-after",
                "3",
            ],
        ),
    );
    let code = downloader.expect_exit(DOWNLOAD_TIMEOUT);
    if code == 0 {
        assert_file_is(&scratch.node_dir(2).join(NAME), &data);
    }
    let used = peers_used(&scratch, 2);
    let expected = if advertise { holder_addr } else { nat.outside };
    assert!(
        used.iter().all(|addr| *addr == expected.to_string()),
        "node 2 used {used:?}, not only {expected}"
    );
    (code, nat.dropped.load(Ordering::Relaxed), used)
}

#[test]
fn behind_a_nat_the_download_works_only_with_advertise() {
    let (code, dropped, used) = through_nat(false);
    assert_eq!(code, 1, "the NAT's mapped port cannot be reached by peers");
    assert!(
        dropped > 0,
        "node 2 never tried the NAT's port (used {used:?})"
    );
    let (code, dropped, used) = through_nat(true);
    assert_eq!(code, 0, "used {used:?}");
    assert_eq!(dropped, 0, "nothing went to the NAT's mapped port");
    assert!(!used.is_empty());
}

/// A multi-homed holder: three namespaces, the tracker's (T), the holder's (H) and the
/// downloader's (D). H reaches T on network A (10.61.1.0/24) and D on network B
/// (10.61.2.0/24); D reaches T on network C (10.61.3.0/24) and has no route to A. T routes
/// to B through H, so the tracker's challenge reaches H's B address.
struct MultiHomed {
    // The processes of a run live in `multi_homed` and end before these are deleted.
    tracker_ns: Netns,
    holder_ns: Netns,
    downloader_ns: Netns,
}

const T_ON_A: &str = "10.61.1.1";
const H_ON_A: &str = "10.61.1.2";
const H_ON_B: &str = "10.61.2.2";
const T_ON_C: &str = "10.61.3.1";

impl MultiHomed {
    fn new() -> Result<MultiHomed, String> {
        let name = |role: &str| format!("adv-{role}-{}", std::process::id());
        let net = MultiHomed {
            tracker_ns: Netns::add(&name("t"))?,
            holder_ns: Netns::add(&name("h"))?,
            downloader_ns: Netns::add(&name("d"))?,
        };
        let (t, h, d) = (&net.tracker_ns, &net.holder_ns, &net.downloader_ns);
        veth(t, "a0", h, "a1", 1500)?;
        veth(h, "b0", d, "b1", 1500)?;
        veth(t, "c0", d, "c1", 1500)?;
        for (netns, dev, addr) in [
            (t, "a0", T_ON_A),
            (h, "a1", H_ON_A),
            (h, "b0", H_ON_B),
            (d, "b1", "10.61.2.3"),
            (t, "c0", T_ON_C),
            (d, "c1", "10.61.3.3"),
        ] {
            netns.ip(&["addr", "add", &format!("{addr}/24"), "dev", dev])?;
        }
        t.ip(&["route", "add", "10.61.2.0/24", "via", H_ON_A])?;
        for key in ["all", "default", "a1", "b0"] {
            h.run(
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("net.ipv4.conf.{key}.rp_filter=0"),
                ],
                None,
            )?;
        }
        Ok(net)
    }
}

/// In [`MultiHomed`], H shares the file bound to all addresses, advertising its B address
/// or not; D downloads it. Returns D's exit code and the holder addresses it used.
fn multi_homed(net: &MultiHomed, advertise: bool) -> (i32, Vec<String>) {
    let scratch = Scratch::new(if advertise {
        "multi-homed-advertised"
    } else {
        "multi-homed"
    });
    let data = random_bytes(15, FILE_BYTES);
    scratch.put_file(1, NAME, &data);
    let mut tracker = net.tracker_ns.spawn(
        "tracker",
        &scratch.root,
        &args(&[
            "tracker",
            "--listen",
            "0.0.0.0:0",
            "--db-dir",
            &scratch.db().display().to_string(),
            "--log-dir",
            &scratch.logs().display().to_string(),
        ]),
    );
    let first = tracker.expect_line("tracker listening on ");
    let port = first.rsplit(':').next().unwrap().to_string();
    let mut flags = vec!["--listen", "0.0.0.0:0", "--send", NAME];
    if advertise {
        flags.extend(["--advertise", H_ON_B]);
    }
    let mut holder = net.holder_ns.spawn(
        "node1",
        &scratch.root,
        &node_command(&scratch, 1, &format!("{T_ON_A}:{port}"), &flags),
    );
    let first = holder.expect_line("node 1 listening on ");
    let holder_port = first
        .split(',')
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    holder.expect_line(&format!("sharing {NAME} "));
    let seen = format!("{H_ON_A}:{holder_port}");
    let advertised = format!("{H_ON_B}:{holder_port}");
    tracker.expect_line(&format!("node 1 registered from {seen}"));
    if advertise {
        holder.expect_line(&format!(
            "the tracker gives peers our advertised address {advertised}"
        ));
        tracker.expect_line(&format!(
            "node 1 is given to peers at {advertised} (its advertised address)"
        ));
    }
    let mut downloader = net.downloader_ns.spawn(
        "node2",
        &scratch.root,
        &node_command(
            &scratch,
            2,
            &format!("{T_ON_C}:{port}"),
            &[
                "--listen",
                "0.0.0.0:0",
                "--download",
                NAME,
                "--exit-when-done",
                "--give-up-after",
                "3",
            ],
        ),
    );
    let code = downloader.expect_exit(DOWNLOAD_TIMEOUT);
    if code == 0 {
        assert_file_is(&scratch.node_dir(2).join(NAME), &data);
    }
    let used = peers_used(&scratch, 2);
    let expected = if advertise { advertised } else { seen };
    assert!(
        !used.is_empty() && used.iter().all(|addr| *addr == expected),
        "node 2 used {used:?}, not only {expected}"
    );
    (code, used)
}

#[test]
fn a_multi_homed_holder_is_reached_at_its_advertised_address() {
    if let Some(why) = missing_requirement(&["ip", "sysctl"]) {
        println!("SKIPPED: {why}");
        return;
    }
    let net = MultiHomed::new().unwrap();
    let (code, used) = multi_homed(&net, false);
    assert_eq!(
        code, 1,
        "the address the tracker sees is not routed from D: {used:?}"
    );
    let (code, used) = multi_homed(&net, true);
    assert_eq!(code, 0, "{used:?}");
}

#[test]
fn an_address_that_never_answers_is_never_given_out() {
    let scratch = Scratch::new("advertise-unverified");
    let data = random_bytes(16, FILE_BYTES);
    scratch.put_file(1, NAME, &data);
    let tracker = tracker(&scratch);
    let tracker_text = tracker.addr.to_string();
    // Someone else's address: the test listens there and never answers.
    let victim = UdpSocket::bind("127.0.0.3:0").unwrap();
    victim.set_nonblocking(true).unwrap();
    let victim_addr = victim.local_addr().unwrap();
    let (mut holder, holder_addr) = start_node(
        &scratch,
        1,
        &node_command(
            &scratch,
            1,
            &tracker_text,
            &[
                "--listen",
                "127.0.0.1:0",
                "--advertise",
                &victim_addr.to_string(),
                "--heartbeat-interval",
                "1",
                "--send",
                NAME,
            ],
        ),
    );
    let told = holder.expect_line("the tracker could not verify our advertised address");
    assert!(
        told.contains(&victim_addr.to_string()) && told.contains(&holder_addr.to_string()),
        "{told}"
    );
    holder.expect_line(&format!("sharing {NAME} "));
    let (mut downloader, _) = start_node(
        &scratch,
        2,
        &node_command(
            &scratch,
            2,
            &tracker_text,
            &[
                "--listen",
                "127.0.0.1:0",
                "--download",
                NAME,
                "--exit-when-done",
            ],
        ),
    );
    assert_eq!(downloader.expect_exit(DOWNLOAD_TIMEOUT), 0);
    assert_file_is(&scratch.node_dir(2).join(NAME), &data);
    let used = peers_used(&scratch, 2);
    assert!(
        !used.is_empty() && used.iter().all(|addr| *addr == holder_addr.to_string()),
        "node 2 used {used:?}, not {holder_addr}"
    );
    // What reached the claimed address: the tracker's challenges only, each for that
    // address and smaller than the Register that caused it; no peer ever sent a request.
    let mut buf = [0u8; 65_536];
    let mut challenges = 0;
    let register_bytes = 8 + size_of::<wire::Register>();
    while let Ok((len, from)) = victim.recv_from(&mut buf) {
        assert_eq!(from, tracker.addr, "a datagram from {from}");
        assert!(len <= register_bytes, "{len} bytes: amplified");
        match wire::decode(&buf[..len]) {
            Ok(Message::Challenge(challenge)) => assert_eq!(challenge.addr(), victim_addr),
            other => panic!("not a challenge: {other:?}"),
        }
        challenges += 1;
    }
    assert!(challenges >= 1, "the tracker never tried the address");
}

#[test]
fn bad_advertise_values_exit_2_with_one_line() {
    for (value, mentions) in [
        ("0.0.0.0", "unspecified address"),
        ("[::]:7000", "unspecified address"),
        ("127.0.0.1:0", "port 0"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255:7000", "broadcast"),
        ("[::1]:7000", "IPv6 address but the tracker"),
        ("no-such-host.invalid", "no-such-host.invalid"),
        ("127.0.0.1:99999", "port 99999 is not one of 1 to 65535"),
    ] {
        let scratch = Scratch::new("advertise-refused");
        let list = args(&["node", "--id", "1", "--advertise", value]);
        let mut proc = spawn("node", &scratch.root, &list);
        assert_eq!(
            proc.expect_exit(LINE_TIMEOUT),
            2,
            "{value}\n{}",
            proc.describe()
        );
        let stderr = proc.stderr_lines();
        assert_eq!(stderr.len(), 1, "{value}\n{}", proc.describe());
        assert!(
            stderr[0].starts_with("torrent: --advertise: "),
            "{}",
            stderr[0]
        );
        assert!(stderr[0].contains(mentions), "{value}: {}", stderr[0]);
        assert!(proc.stdout_lines().is_empty());
        assert_eq!(list_dir(&scratch.root), Vec::<String>::new(), "{value}");
    }
}

// ---- a node bound to all addresses, with opentracker -------------------------------------

const OPENTRACKER: &str = "/usr/bin/opentracker";
const CHUNK_BYTES: usize = 64 * 1024;
/// The namespace's one non-loopback address, where opentracker listens.
const NETNS_IP: &str = "10.77.0.1";

/// Opentracker, killed (by its PID, through `Child`) when dropped.
struct External(Child);

impl Drop for External {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether opentracker at `addr` answers a BEP 15 connect within a short wait.
fn answers_connect(addr: SocketAddr) -> bool {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("bind a probe socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut request = 0x0417_2710_1980u64.to_be_bytes().to_vec();
    request.extend_from_slice(&[0, 0, 0, 0, 0x5e, 0xed, 0x12, 0x34]);
    if socket.send_to(&request, addr).is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    matches!(socket.recv_from(&mut reply), Ok((16, from)) if from == addr && reply[4..8] == [0x5e, 0xed, 0x12, 0x34])
}

/// Starts opentracker on `ip` (whitelist-only Debian build: the info hash is written to its
/// whitelist; it refuses root, so it chroots to its directory and drops to another user).
fn start_opentracker(
    scratch: &Scratch,
    ip: &str,
    info_hash: &str,
) -> Result<(External, SocketAddr), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch.root.join("opentracker");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("whitelist.txt"), format!("{info_hash}\n")).unwrap();
    std::fs::write(
        dir.join("opentracker.conf"),
        "access.whitelist /whitelist.txt\n",
    )
    .unwrap();
    for (path, mode) in [
        (&scratch.root, 0o755),
        (&dir, 0o755),
        (&dir.join("whitelist.txt"), 0o644),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let user = if passwd.lines().any(|l| l.starts_with("_opentracker:")) {
        "_opentracker"
    } else {
        "nobody"
    };
    let mut problems = Vec::new();
    for _attempt in 0..2 {
        // Opentracker cannot bind port 0: a port free a moment ago, tried twice.
        let port = UdpSocket::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tcp_port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let log = std::fs::File::create(scratch.root.join("opentracker.log")).unwrap();
        let child = Command::new(OPENTRACKER)
            .arg("-f")
            .arg(dir.join("opentracker.conf"))
            .args([
                "-i",
                ip,
                "-P",
                &port.to_string(),
                "-p",
                &tcp_port.to_string(),
            ])
            .arg("-d")
            .arg(&dir)
            .args(["-u", user])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start opentracker: {e}"))?;
        let mut external = External(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = external.0.try_wait() {
                problems.push(format!("opentracker on port {port} exited ({status})"));
                break;
            }
            if answers_connect(addr) {
                return Ok((external, addr));
            }
        }
        problems.push(format!("opentracker on port {port} did not answer"));
    }
    Err(problems.join("\n"))
}

/// Moves the calling thread (only it, and the processes it starts) into `netns`.
fn enter(netns: &Netns) {
    use std::os::fd::AsFd;
    let file = std::fs::File::open(Path::new("/var/run/netns").join(&netns.name)).unwrap();
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap_or_else(|e| panic!("cannot enter namespace {}: {e}", netns.name));
}

#[test]
fn bound_to_all_addresses_a_node_never_asks_itself() {
    if let Some(why) = missing_requirement(&["ip"]) {
        println!("SKIPPED: {why}");
        return;
    }
    if !Path::new(OPENTRACKER).exists() {
        println!("SKIPPED: needs {OPENTRACKER}");
        return;
    }
    let netns = Netns::add(&format!("adv-self-{}", std::process::id())).unwrap();
    // One address besides loopback, as on a LAN: the tracker sees every node there.
    // (A veth pair with both ends here: this kernel may lack the dummy device.)
    netns
        .ip(&[
            "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
        ])
        .unwrap();
    netns
        .ip(&["addr", "add", &format!("{NETNS_IP}/24"), "dev", "lan0"])
        .unwrap();
    for dev in ["lan0", "lan1"] {
        netns.ip(&["link", "set", dev, "up"]).unwrap();
    }
    // The scenario runs on a thread of its own inside the namespace; the namespace outlives it.
    let scenario = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(&netns);
                self_scenario()
            })
            .join()
    });
    if let Err(panic) = scenario {
        std::panic::resume_unwind(panic);
    }
}

/// Node 1 shares, node 2 downloads and node 3 downloads while node 2 also serves, all bound
/// to all addresses: the tracker lists each of them at 10.77.0.1, which no node may take
/// for a peer when it is itself.
fn self_scenario() {
    let scratch = Scratch::new("advertise-self");
    let data = random_bytes(17, FILE_BYTES);
    let hashes: Vec<[u8; 20]> = data.chunks(CHUNK_BYTES).map(torrent::hash::sha1).collect();
    let info_hash =
        torrent::storage::info_hash(NAME, data.len() as u64, CHUNK_BYTES as u32, &hashes);
    let info_hash = wire::hex(&info_hash);
    let (_opentracker, tracker) = match start_opentracker(&scratch, NETNS_IP, &info_hash) {
        Ok(started) => started,
        Err(problem) => panic!("{problem}"),
    };
    let tracker_text = format!("udp://{tracker}/announce");
    scratch.put_file(1, NAME, &data);
    let common = ["--listen", "0.0.0.0:0", "--chunk-size", "64K"];
    let mut flags = common.to_vec();
    flags.extend(["--send", NAME]);
    let (mut holder, holder_addr) = start_node(
        &scratch,
        1,
        &node_command(&scratch, 1, &tracker_text, &flags),
    );
    holder.expect_line(&format!("sharing {NAME} "));
    let mut downloaders = Vec::new();
    for id in [2, 3] {
        let mut flags = common.to_vec();
        flags.extend(["--download", &info_hash, "--exit-when-done"]);
        downloaders.push((
            id,
            start_node(
                &scratch,
                id,
                &node_command(&scratch, id, &tracker_text, &flags),
            ),
        ));
    }
    for (id, (proc, _)) in &mut downloaders {
        assert_eq!(proc.expect_exit(DOWNLOAD_TIMEOUT), 0, "node {id}");
        assert_file_is(&scratch.node_dir(*id).join(NAME), &data);
    }
    let lan_holder = format!("{NETNS_IP}:{}", holder_addr.port());
    for (id, (_, addr)) in &downloaders {
        let me = format!("{NETNS_IP}:{}", addr.port());
        let used = peers_used(&scratch, *id);
        assert!(used.contains(&lan_holder), "node {id} used {used:?}");
        assert!(
            !used.contains(&me),
            "node {id} took itself ({me}) for a peer: {used:?}"
        );
    }
}

#[test]
fn bound_to_all_addresses_replies_leave_from_the_address_asked() {
    if let Some(why) = missing_requirement(&["ip"]) {
        println!("SKIPPED: {why}");
        return;
    }
    // Only loopback: binding to all addresses here opens nothing outside the test.
    let netns = Netns::add(&format!("adv-reply-{}", std::process::id())).unwrap();
    let scenario = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(&netns);
                reply_source_scenario()
            })
            .join()
    });
    if let Err(panic) = scenario {
        std::panic::resume_unwind(panic);
    }
}

/// The tracker listens on 0.0.0.0 and is asked at 127.0.0.2, which the kernel would answer
/// from 127.0.0.1 (its source for loopback); the holder listens on 0.0.0.0 and is given to
/// peers at 127.0.0.3 (its `status` says so). Every answer must come from the address
/// asked, or the asker drops it: the nodes could not register, nor the download get a piece.
fn reply_source_scenario() {
    let scratch = Scratch::new("advertise-reply-source");
    let data = random_bytes(18, FILE_BYTES);
    scratch.put_file(1, NAME, &data);
    let mut tracker = tracker_on(&scratch, "0.0.0.0:0", &[]);
    let tracker_text = format!("127.0.0.2:{}", tracker.addr.port());
    let (mut holder, _) = start_node(
        &scratch,
        1,
        &node_command(
            &scratch,
            1,
            &tracker_text,
            &[
                "--listen",
                "0.0.0.0:0",
                "--advertise",
                "127.0.0.3",
                "--send",
                NAME,
            ],
        ),
    );
    holder.expect_line("the tracker gives peers our advertised address");
    holder.expect_line(&format!("sharing {NAME} "));
    // `status` says where peers are sent.
    holder.send_line("status");
    let listed = holder.expect_line("the tracker gives peers 127.0.0.3:");
    assert!(listed.ends_with(" (our advertised address)"), "{listed}");
    let (mut downloader, _) = start_node(
        &scratch,
        2,
        &node_command(
            &scratch,
            2,
            &tracker_text,
            &[
                "--listen",
                "127.0.0.1:0",
                "--download",
                NAME,
                "--exit-when-done",
            ],
        ),
    );
    assert_eq!(downloader.expect_exit(DOWNLOAD_TIMEOUT), 0);
    assert_file_is(&scratch.node_dir(2).join(NAME), &data);
    let used = peers_used(&scratch, 2);
    assert!(
        !used.is_empty() && used.iter().all(|addr| addr.starts_with("127.0.0.3:")),
        "node 2 used {used:?}, not the advertised 127.0.0.3"
    );
    holder.kill();
    tracker.proc.kill();
}
