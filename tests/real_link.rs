//! Downloads across a real network of namespaces, with the real binaries and default flags:
//! the copy is byte-identical, the downloader exits 0, and no IP fragment is made anywhere
//! (`Ip: FragCreates` of every namespace, hosts and routers, does not grow). This locks in
//! the path-MTU work of `src/mtu.rs`: pieces sized per peer, control datagrams within 1,232
//! bytes off loopback, and a search that survives a path dropping ICMP.
//!
//! The network is `bench/netlab.py`'s (which measures speed; nothing here does), built for
//! each test in namespaces of its own named `rl<pid><test>-<role>`. Every link is a veth pair
//! at MTU 1,500 with offloads off, so every packet on a link is wire-sized:
//!
//! ```text
//!  tr (tracker) 10.77.0.2  ─┐
//!  h  (holder)  10.77.0.11 ─┼─ br0 (namespace br) ── pd ── d (downloader) 10.77.0.21
//!  r  (router)  10.77.0.254 ┘── 1,280-byte link ── r2 (router) ── dr (downloader) 10.79.0.2
//! ```
//!
//! A test makes either `d` (the bridge cases) or `r`, `r2` and `dr` (the routed cases, where
//! neither end's own link tells it the path's MTU). Impairments sit on the path into the
//! downloader: loss and a policer are nftables rules in its `prerouting` hook at priority
//! -450, which sees single IP fragments before reassembly; the bottleneck is `tc tbf` on the
//! bridge's port toward `d`; the black hole drops ICMP "destination unreachable" at both
//! routers' output hook.
//!
//! Needs root, `ip`, `nft`, `tc` and `ethtool`; prints `SKIPPED: ...` and passes without
//! them. Addresses are from 10.77.0.0/16 to 10.79.0.0/16 and exist only inside the test's
//! namespaces; nothing is sent anywhere else.

mod common;

use common::netns::{self, Netns, veth};
use common::*;
use std::fs;
use std::net::SocketAddr;
use std::time::Instant;

/// About 11,700 pieces at path-MTU sizes (1,436 bytes), in a second or two. Smaller files
/// end before the transfer's rate reaches the policer's (8 MiB: nothing dropped), and a
/// policer that drops nothing tests nothing.
const FILE_BYTES: usize = 16 << 20;
const FILE_NAME: &str = "real_link.bin";
const TOOLS: [&str; 4] = ["ip", "nft", "tc", "ethtool"];
const INSTALL: &str = "apt-get install -y iproute2 nftables ethtool";

const LINK_MTU: u32 = 1_500;
/// The r–r2 link: IPv6's minimum MTU, narrower than either end's own link.
const NARROW_MTU: u32 = 1_280;

const TRACKER_IP: &str = "10.77.0.2";
const HOLDER_IP: &str = "10.77.0.11";
const DOWNLOADER_IP: &str = "10.77.0.21";
const ROUTER_IP: &str = "10.77.0.254";
const ROUTED_DOWNLOADER_IP: &str = "10.79.0.2";
/// The bridge's port toward `d`, where the bottleneck's queue sits.
const BOTTLENECK_PORT: &str = "pd";

/// Which downloader a test has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `d`, on the bridge with the holder.
    Bridge,
    /// `dr`, behind r, the 1,280-byte link and r2.
    Routed,
}

/// One test's namespaces. Every one is deleted on drop.
struct Network {
    bridge: Netns,
    tracker: Netns,
    holder: Netns,
    downloader: Netns,
    /// r and r2 on the routed path.
    routers: Vec<Netns>,
    downloader_ip: &'static str,
}

impl Network {
    /// Builds the network of the module doc for `path`. The error says what failed, and
    /// whether it was the very first namespace (`true`): then this machine cannot make any
    /// (root in a container without the right), and the test is skipped.
    fn build(test: &str, path: Path) -> Result<Network, (bool, String)> {
        let prefix = format!("rl{}{test}", std::process::id());
        let name = |role: &str| format!("{prefix}-{role}");
        // The first failure to make a namespace means this machine cannot: a skip.
        let bridge = Netns::add(&name("br")).map_err(|e| (true, e))?;
        let fail = |e: String| (false, e);
        bridge
            .ip(&["link", "add", "br0", "type", "bridge"])
            .map_err(fail)?;
        bridge.ip(&["link", "set", "br0", "up"]).map_err(fail)?;
        let host = |role: &str, port: &str, addr: &str| -> Result<Netns, String> {
            let netns = Netns::add(&name(role))?;
            veth(&netns, "eth0", &bridge, port, LINK_MTU)?;
            bridge.ip(&["link", "set", port, "master", "br0"])?;
            netns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            Ok(netns)
        };
        let tracker = host("tr", "ptr", TRACKER_IP).map_err(fail)?;
        let holder = host("h", "ph", HOLDER_IP).map_err(fail)?;
        if path == Path::Bridge {
            let downloader = host("d", BOTTLENECK_PORT, DOWNLOADER_IP).map_err(fail)?;
            return Ok(Network {
                bridge,
                tracker,
                holder,
                downloader,
                routers: Vec::new(),
                downloader_ip: DOWNLOADER_IP,
            });
        }
        let routed = || -> Result<(Vec<Netns>, Netns), String> {
            let r = host("r", "pr", ROUTER_IP)?;
            let r2 = Netns::add(&name("r2"))?;
            let dr = Netns::add(&name("dr"))?;
            veth(&r, "eth1", &r2, "eth0", NARROW_MTU)?;
            veth(&r2, "eth1", &dr, "eth0", LINK_MTU)?;
            r.ip(&["addr", "add", "10.78.0.1/24", "dev", "eth1"])?;
            r2.ip(&["addr", "add", "10.78.0.2/24", "dev", "eth0"])?;
            r2.ip(&["addr", "add", "10.79.0.1/24", "dev", "eth1"])?;
            dr.ip(&[
                "addr",
                "add",
                &format!("{ROUTED_DOWNLOADER_IP}/24"),
                "dev",
                "eth0",
            ])?;
            dr.ip(&["route", "add", "default", "via", "10.79.0.1"])?;
            r2.ip(&["route", "add", "default", "via", "10.78.0.1"])?;
            r.ip(&["route", "add", "10.79.0.0/24", "via", "10.78.0.2"])?;
            for hosts in [&tracker, &holder] {
                hosts.ip(&["route", "add", "10.78.0.0/15", "via", ROUTER_IP])?;
            }
            r.forward()?;
            r2.forward()?;
            Ok((vec![r, r2], dr))
        };
        let (routers, downloader) = routed().map_err(fail)?;
        Ok(Network {
            bridge,
            tracker,
            holder,
            downloader,
            routers,
            downloader_ip: ROUTED_DOWNLOADER_IP,
        })
    }

    fn all(&self) -> Vec<&Netns> {
        let mut all = vec![&self.bridge, &self.tracker, &self.holder, &self.downloader];
        all.extend(&self.routers);
        all
    }

    /// `FragCreates` of every namespace, by name.
    fn frag_creates(&self) -> Vec<(String, u64)> {
        self.all()
            .into_iter()
            .map(|netns| {
                let count = netns
                    .frag_creates()
                    .unwrap_or_else(|e| panic!("cannot read {}'s counters: {e}", netns.name));
                (netns.name.clone(), count)
            })
            .collect()
    }
}

/// The node command line: default flags but for its tracker, directory and log directory.
/// Where it listens is the default too: its address that routes to the tracker.
fn node_command(scratch: &Scratch, id: u32, tracker: SocketAddr) -> Vec<String> {
    let dir = scratch.node_dir(id).display().to_string();
    let logs = scratch.logs().display().to_string();
    let tracker = tracker.to_string();
    args(&[
        "node",
        "--id",
        &id.to_string(),
        "--tracker",
        &tracker,
        "--dir",
        &dir,
        "--log-dir",
        &logs,
    ])
}

/// The tracker in `tr` and node 1 in `h` sharing [`FILE_NAME`] (already in its directory),
/// both with default flags but for their directories; returns once the tracker acknowledged
/// the file.
fn tracker_and_holder(network: &Network, scratch: &Scratch) -> (Proc, SocketAddr, Proc) {
    let logs = scratch.logs().display().to_string();
    let listen = format!("{TRACKER_IP}:0");
    let mut tracker = network.tracker.spawn(
        "tracker",
        &scratch.root,
        &args(&["tracker", "--listen", &listen, "--log-dir", &logs]),
    );
    let tracker_addr = tracker.expect_tracker_addr();
    let mut command = node_command(scratch, 1, tracker_addr);
    command.extend(args(&["--send", FILE_NAME]));
    let mut holder = network.holder.spawn("holder", &scratch.root, &command);
    // Not told where to listen, a node listens on its address toward the tracker.
    holder.expect_line(&format!("node 1 listening on {HOLDER_IP}:"));
    holder.expect_line(&format!("sharing {FILE_NAME} "));
    (tracker, tracker_addr, holder)
}

/// One download of a [`FILE_BYTES`] file from `h` to the downloader across `path`, through
/// `impairment`; asserts the outcomes of the module doc.
fn transfer(test: &str, path: Path, impairment: Impairment) {
    if let Some(reason) = netns::missing_requirement(&TOOLS) {
        println!("SKIPPED: {reason} ({INSTALL})");
        return;
    }
    let network = match Network::build(test, path) {
        Ok(network) => network,
        Err((true, error)) => {
            println!("SKIPPED: cannot create network namespaces: {error} ({INSTALL})");
            return;
        }
        Err((false, error)) => panic!("cannot build the test network: {error}"),
    };
    impairment
        .apply(&network)
        .unwrap_or_else(|e| panic!("cannot impair the network: {e}"));
    let scratch = Scratch::new(&format!("real_link-{test}"));
    let data = random_bytes(0x14, FILE_BYTES);
    scratch.put_file(1, FILE_NAME, &data);
    fs::create_dir_all(scratch.node_dir(2)).expect("create the downloader's directory");
    let frags_before = network.frag_creates();

    let (mut tracker, tracker_addr, mut holder) = tracker_and_holder(&network, &scratch);

    let started = Instant::now();
    let mut command = node_command(&scratch, 2, tracker_addr);
    command.extend(args(&["--download", FILE_NAME, "--exit-when-done"]));
    let mut downloader = network
        .downloader
        .spawn("downloader", &scratch.root, &command);
    downloader.expect_line(&format!("node 2 listening on {}:", network.downloader_ip));
    let code = downloader.expect_exit(DOWNLOAD_TIMEOUT);
    let took = started.elapsed();
    // The holder and tracker go on answering; stop them before reading the counters, so
    // that nothing is sent after the last look.
    holder.kill();
    tracker.kill();
    let frags_after = network.frag_creates();
    let dropped = impairment
        .dropped(&network)
        .unwrap_or_else(|e| panic!("cannot read the impairment's counters: {e}"));

    let mut failures = Vec::new();
    if code != 0 {
        failures.push(format!(
            "the downloader exited with {code}, not 0\n{}",
            downloader.describe()
        ));
    }
    let copy = scratch.node_dir(2).join(FILE_NAME);
    match fs::read(&copy) {
        Ok(bytes) if bytes == data => {}
        Ok(bytes) => failures.push(format!(
            "the copy differs from the original: {} bytes of {}, first difference at byte {:?}",
            bytes.len(),
            data.len(),
            bytes.iter().zip(&data).position(|(a, b)| a != b)
        )),
        Err(error) => failures.push(format!("no copy at {}: {error}", copy.display())),
    }
    if impairment.always_drops() && dropped == 0 {
        failures.push("the impairment dropped nothing: it was not in the way".to_string());
    }
    let mut fragments = 0;
    for ((name, before), (_, after)) in frags_before.iter().zip(&frags_after) {
        fragments += after - before;
        if after != before {
            failures.push(format!(
                "{name} created {} IP fragments during the transfer (FragCreates {before} -> \
                 {after})",
                after - before
            ));
        }
    }
    // What the path search found, from the downloader's log: for the report, not asserted
    // (the counters and the copy are the outcome).
    let log = fs::read_to_string(scratch.logs().join("node2.log")).unwrap_or_default();
    let paths: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("carries") || line.contains("stopped arriving"))
        .collect();
    println!(
        "{test}: exit {code} after {:.2} s; {dropped} packets dropped by the impairment; \
         {fragments} fragments created in {} namespaces; path: {}",
        took.as_secs_f64(),
        frags_after.len(),
        if paths.is_empty() {
            "(nothing logged)".to_string()
        } else {
            paths.join(" | ")
        }
    );
    assert!(failures.is_empty(), "{test}:\n- {}", failures.join("\n- "));
}

/// What stands in the way of the transfer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Impairment {
    None,
    /// 1% of the packets into the downloader dropped at random.
    Loss,
    /// A policer on the packets into the downloader: 12 MiB/s, 600 KiB of burst.
    Policer,
    /// `tc tbf` on the bridge's port toward the downloader: a real queue at 100 Mbit/s.
    Bottleneck,
    /// The routers drop the ICMP "destination unreachable" they send (among them
    /// "fragmentation needed"): large datagrams vanish without a word.
    BlackHole,
}

impl Impairment {
    /// The nftables rule of loss and the policer, in the downloader's namespace. Its
    /// prerouting hook at priority -450 comes before defragmentation (-400), so the rule sees
    /// and drops single fragments, as a lossy wire or a policer on the way would.
    fn prerouting_rule(self) -> Option<&'static str> {
        match self {
            Impairment::Loss => Some("numgen random mod 1000 < 10"),
            Impairment::Policer => Some("limit rate over 12 mbytes/second burst 600 kbytes"),
            _ => None,
        }
    }

    /// Whether a transfer always meets this impairment. If loss or the black hole dropped
    /// nothing, they were not in the way and the test proved nothing; a policer or a queue
    /// that a paced sender never overflows drops nothing, and rightly so.
    fn always_drops(self) -> bool {
        matches!(self, Impairment::Loss | Impairment::BlackHole)
    }

    fn apply(self, network: &Network) -> Result<(), String> {
        if let Some(rule) = self.prerouting_rule() {
            return network.downloader.nft(&format!(
                "table ip t {{\n chain pre {{\n  type filter hook prerouting priority -450;\n  \
                 {rule} counter drop\n }}\n}}\n"
            ));
        }
        match self {
            Impairment::Bottleneck => network
                .bridge
                .run(
                    &[
                        "tc",
                        "qdisc",
                        "add",
                        "dev",
                        BOTTLENECK_PORT,
                        "root",
                        "tbf",
                        "rate",
                        "100mbit",
                        "burst",
                        "32kb",
                        "limit",
                        "256kb",
                    ],
                    None,
                )
                .map(drop),
            Impairment::BlackHole => {
                for router in &network.routers {
                    router.nft(
                        "table ip t {\n chain out {\n  type filter hook output priority 0;\n  \
                         icmp type destination-unreachable counter drop\n }\n}\n",
                    )?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Packets the impairment dropped, by the kernel's counters (nftables', tc's).
    fn dropped(self, network: &Network) -> Result<u64, String> {
        let counted = |netns: &Netns, argv: &[&str], after: &str| -> Result<u64, String> {
            let text = netns.run(argv, None)?;
            Ok(text
                .split(after)
                .skip(1)
                .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .sum())
        };
        let nft_list = ["nft", "list", "table", "ip", "t"];
        match self {
            Impairment::None => Ok(0),
            Impairment::Loss | Impairment::Policer => {
                counted(&network.downloader, &nft_list, "packets ")
            }
            Impairment::Bottleneck => counted(
                &network.bridge,
                &["tc", "-s", "qdisc", "show", "dev", BOTTLENECK_PORT],
                "(dropped ",
            ),
            Impairment::BlackHole => network
                .routers
                .iter()
                .map(|router| counted(router, &nft_list, "packets "))
                .sum(),
        }
    }
}

#[test]
fn clean_bridge() {
    transfer("clean", Path::Bridge, Impairment::None);
}

#[test]
fn one_percent_loss() {
    transfer("loss", Path::Bridge, Impairment::Loss);
}

#[test]
fn policer() {
    transfer("police", Path::Bridge, Impairment::Policer);
}

#[test]
fn tbf_bottleneck() {
    transfer("tbf", Path::Bridge, Impairment::Bottleneck);
}

#[test]
fn routed_1280_with_icmp() {
    transfer("routed", Path::Routed, Impairment::None);
}

/// Only the probing search of `src/mtu.rs` finds the size that passes the 1,280-byte link;
/// the transfer completing (exit 0, the same bytes) is the point.
#[test]
fn routed_1280_black_hole() {
    transfer("blackhole", Path::Routed, Impairment::BlackHole);
}

#[test]
fn frag_creates_is_read_from_the_ip_lines() {
    let snmp = "Ip: Forwarding DefaultTTL FragOKs FragFails FragCreates OutTransmits\n\
                Ip: 1 64 0 0 45 10\n\
                Icmp: InMsgs FragCreates\n\
                Icmp: 0 7\n";
    assert_eq!(netns::frag_creates_in(snmp), Some(45));
    assert_eq!(netns::frag_creates_in("Icmp: InMsgs\nIcmp: 0\n"), None);
}

/// `--metrics`' UDP counters say what the kernel counted: nftables counts every UDP packet
/// into and out of the downloader's namespace, and its bytes less 28 a packet (IPv4 and UDP
/// headers, no options) are the payload the node's counters report, within 1%.
#[test]
fn metrics_count_the_udp_payload_the_kernel_counted() {
    let mut tools = TOOLS.to_vec();
    tools.push("curl");
    if let Some(reason) = netns::missing_requirement(&tools) {
        println!("SKIPPED: {reason} ({INSTALL} curl)");
        return;
    }
    let network = match Network::build("metrics", Path::Bridge) {
        Ok(network) => network,
        Err((true, error)) => {
            println!("SKIPPED: cannot create network namespaces: {error} ({INSTALL})");
            return;
        }
        Err((false, error)) => panic!("cannot build the test network: {error}"),
    };
    network
        .downloader
        .nft(
            "table ip m {\n chain in {\n  type filter hook input priority 0;\n  \
             meta l4proto udp counter\n }\n chain out {\n  type filter hook output priority 0;\n  \
             meta l4proto udp counter\n }\n}\n",
        )
        .unwrap_or_else(|e| panic!("cannot count packets: {e}"));
    let scratch = Scratch::new("real_link-metrics");
    let data = random_bytes(0x15, 4 << 20);
    scratch.put_file(1, FILE_NAME, &data);
    let (mut tracker, tracker_addr, mut holder) = tracker_and_holder(&network, &scratch);
    let mut command = node_command(&scratch, 2, tracker_addr);
    command.extend(args(&["--download", FILE_NAME, "--metrics", "127.0.0.1:0"]));
    let mut downloader = network
        .downloader
        .spawn("downloader", &scratch.root, &command);
    let line = downloader.expect_line("metrics at http://");
    let url = line.trim_start_matches("metrics at ").to_string();
    downloader.expect_line(&format!("downloaded {FILE_NAME} "));
    assert_file_is(&scratch.node_dir(2).join(FILE_NAME), &data);
    // Nothing more reaches the downloader once the others are gone.
    holder.kill();
    tracker.kill();
    let scrape = network
        .downloader
        .run(&["curl", "-s", "--max-time", "10", &url], None)
        .unwrap_or_else(|e| panic!("cannot scrape {url}: {e}"));
    let counter = |name: &str| -> f64 {
        let line = scrape
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{scrape}"));
        line[name.len()..].trim().parse().unwrap()
    };
    let listed = network
        .downloader
        .run(&["nft", "list", "table", "ip", "m"], None)
        .unwrap_or_else(|e| panic!("cannot read the counters: {e}"));
    // `counter packets N bytes M`, input chain first.
    let counts: Vec<f64> = listed
        .split("packets ")
        .skip(1)
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (packets, bytes): (f64, f64) =
                (words[0].parse().unwrap(), words[2].parse().unwrap());
            bytes - 28.0 * packets
        })
        .collect();
    let (kernel_in, kernel_out) = (counts[0], counts[1]);
    let ours_in = counter("torrent_node_udp_payload_bytes_received_total");
    let ours_out = counter("torrent_node_udp_payload_bytes_sent_total");
    println!(
        "payload in: kernel {kernel_in}, ours {ours_in}; out: kernel {kernel_out}, ours {ours_out}"
    );
    assert!(kernel_in >= data.len() as f64, "{listed}");
    for (kernel, ours) in [(kernel_in, ours_in), (kernel_out, ours_out)] {
        assert!(
            (ours - kernel).abs() <= kernel * 0.01,
            "ours {ours} against the kernel's {kernel}\n{listed}\n{scrape}"
        );
    }
}
