//! A deterministic, in-process simulation of one tracker and many nodes.
//!
//! Everything a real reactor would take from the outside world comes from here instead:
//!
//! * **Time.** A virtual clock: `base` (one `Instant` read at creation, never again) plus an
//!   offset that only the step loop advances. Every `now` handed to a core comes from it.
//! * **Randomness.** One seeded [`Rng`]: the cores' seeds, every latency, loss and duplicate
//!   decision of the network, and the random faults of [`Sim::schedule_chaos`]. The same
//!   seed replays the same run exactly.
//! * **Network.** Each datagram is delivered at `now + latency + jitter` unless it is lost;
//!   some are duplicated; jitter reorders them. A node may be given a link ([`LinkSpec`],
//!   `sim/link.rs`): a delay, a [`Capacity`] and a queue each way (with a byte limit past
//!   which it drops); unlimited and instant by default. In-flight datagrams wait in a
//!   priority queue ordered by due time (at a download queue, then at the node), ties
//!   broken by a sequence number, so that the order never depends on anything but the
//!   seed. Partitions drop what crosses them until they heal.
//! * **Hasher threads.** A [`NodeEvent::Job`] is run inline with [`node::run_job`]; its
//!   result is handed back after [`Sim::job_delay`].
//! * **Faults** ([`Fault`]): node crashes and restarts (the directory survives), tracker
//!   crashes and restarts (from its last persisted snapshot), partitions that heal.
//!
//! The step loop: find the earliest of the next fault, delivery, job result and every
//! core's `poll_timeout`; advance the clock to it; inject, deliver, complete or fire what
//! is due; check every queue against its limit; then drain every core's `poll_transmit`
//! into the network and its events into the log. The checkers of `check` run as it goes;
//! the first violation ends the run with a message that names the seed.
//!
//! Nodes keep their files in memory ([`MemoryStorage`], one per node, kept across its
//! crashes as a directory is): no file system is needed, and a run leaves nothing behind.
//! Only the tracker's database goes through a disk, written and read back the way the
//! reactor does (that is what a tracker restart tests), in a scratch directory,
//! `<root>/torrent-sim-<seed>-<pid>-<instance>/tracker_db`, removed on drop; the root is
//! `SIM_DIR`, else `/dev/shm` when there is one (the tracker syncs what it saves, which on a
//! disk would cost more than the rest of the run), else `temp_dir()`.

mod check;
mod fault;
mod link;
mod net;

pub use fault::{Chaos, Fault};
pub use link::{Capacity, LinkSpec, LinkStats, QueueStats, SEND_BUFFER_TIME};
pub use net::{Endpoint, NetConfig, NetStats};

use crate::console::Command;
use crate::mtu::Routes;
use crate::node::{self, JobDone, Node, NodeConfig, NodeEvent};
use crate::rng::Rng;
use crate::storage::MemoryStorage;
use crate::tracker::{Snapshot, Tracker, TrackerConfig};
use crate::wire::{self, Hash};
use check::Originals;
use link::Link;
use net::{Datagram, Partition, Timed};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

/// The simulated network carries datagrams of any size (it has no MTU yet): its routes are
/// loopback-class, so the nodes skip the path MTU search and send what they sent before it.
pub const SIM_ROUTE_MTU: u32 = crate::mtu::LOOPBACK_MTU_MIN + 1;

/// Most datagrams in flight at once; more are dropped (a full socket buffer) and counted.
pub const IN_FLIGHT_MAX: usize = 1 << 16;
/// Most datagrams drained from one core in one step, so a core that never stops sending
/// fails the run instead of hanging it.
pub const TRANSMITS_PER_STEP_MAX: usize = 1 << 16;
/// Tracker saves kept for [`Sim::lose_tracker_saves`].
pub const SAVES_KEPT: usize = 8;
/// Default bound on the steps of one [`Sim::run_until`].
pub const STEPS_MAX: u64 = 2_000_000;
/// Bound on the wall-clock time of one [`Sim::run_until`], so a test never hangs. Generous:
/// the 200-node swarms take 20–45 s alone, and over 120 s on a 2-core machine shared with
/// other builds, where a tighter bound failed runs that were only slow.
pub const REAL_TIME_MAX: Duration = Duration::from_secs(300);
/// Where the tracker listens.
pub const TRACKER_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 12345));
/// Steps between two looks at the directories ("nothing published early"): a stat per
/// running download.
const CHECK_UNPUBLISHED_STEPS: u64 = 64;
/// A node drained without emitting an event (it only exchanged datagrams) has its directory
/// looked at again only this long after the last look: a stat per delivered piece was most
/// of a 200-node run. A publication comes with its events (a "downloaded" line), so it is
/// still checked at the moment it happens; a silent one is found within this much.
const CHECK_UNPUBLISHED_QUIET: Duration = Duration::from_millis(1);
/// Steps between two re-reads of every completed file.
const CHECK_CLAIMS_STEPS: u64 = 16_384;
/// Most send times of datagrams to the tracker kept per node (the oldest are forgotten):
/// at the goal of issue 14 (2 a second) some 9 hours of them.
pub const TRACKER_SENDS_KEPT_MAX: usize = 1 << 16;

/// Simulations made by this process so far: gives each its own scratch directory.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

struct SimNode {
    node: Node,
    config: NodeConfig,
    addr: SocketAddr,
    /// Its directory: its files and its state, kept when it crashes.
    storage: Arc<MemoryStorage>,
    said: Vec<String>,
    exited: Option<i32>,
    /// Cut off from the network: nothing reaches it, nothing it sends leaves.
    disconnected: bool,
    /// Crashed and not started again: it neither runs nor receives.
    down: bool,
    /// Names it was told to share, and to download (with the pin), in this or an earlier life.
    shares: BTreeSet<String>,
    downloads: BTreeMap<String, Option<Hash>>,
    /// Names it said it downloaded.
    completed: BTreeSet<String>,
    /// Given an input since the last drain: only such nodes have anything to send, and
    /// only their `poll_timeout` can have changed.
    dirty: bool,
    /// Its `poll_timeout` after the last drain, as virtual time.
    timeout: Option<Duration>,
    /// Its capacity, delay and queues, and what is queued on it.
    link: Link,
    /// Its send buffer is full: it is asked for datagrams again at this virtual time.
    blocked_until: Option<Duration>,
    /// When its directory was last checked for files published early.
    unpublished_checked_at: Option<Duration>,
    /// Virtual times at which it sent a datagram to the tracker, oldest first (at most
    /// [`TRACKER_SENDS_KEPT_MAX`]), lost ones included: what the tracker is asked to bear.
    tracker_sends: std::collections::VecDeque<Duration>,
}

impl SimNode {
    fn running(&self) -> bool {
        self.exited.is_none() && !self.down
    }
}

/// Bytes of each delivered datagram that go into the trace digest ([`Sim::trace_digest`]):
/// every header of ours is shorter.
pub const TRACE_BYTES_MAX: usize = 96;

pub struct Sim {
    seed: u64,
    rng: Rng,
    net: NetConfig,
    base: Instant,
    now: Duration,
    seq: u64,
    in_flight: BinaryHeap<Reverse<Timed<Datagram>>>,
    jobs: BinaryHeap<Reverse<Timed<(usize, JobDone)>>>,
    faults: BinaryHeap<Reverse<Timed<Fault>>>,
    partitions: Vec<Partition>,
    tracker: Tracker,
    tracker_config: TrackerConfig,
    tracker_down: bool,
    /// The tracker's last snapshot, as the reactor would have persisted it.
    tracker_snapshot: Option<Snapshot>,
    /// The last [`SAVES_KEPT`] snapshots, oldest first, for [`Sim::lose_tracker_saves`].
    tracker_saves: std::collections::VecDeque<Snapshot>,
    tracker_log: Vec<String>,
    nodes: Vec<SimNode>,
    addrs: BTreeMap<SocketAddr, Endpoint>,
    scratch: PathBuf,
    buf: Vec<u8>,
    originals: Originals,
    /// The first checker failure, if any: the run stops there.
    violation: Option<String>,
    steps: u64,
    /// Every delivery so far, digested: see [`Sim::trace_digest`].
    trace: crate::hash::Sha1,
    /// How long a hashing job takes in virtual time.
    pub job_delay: Duration,
    /// Bound on the steps of one [`Sim::run_until`].
    pub steps_max: u64,
    pub stats: NetStats,
}

impl Sim {
    pub fn new(seed: u64, net: NetConfig) -> Sim {
        let tracker_config = TrackerConfig {
            routes: Routes::fixed(SIM_ROUTE_MTU),
            ..TrackerConfig::default()
        };
        Sim::with_tracker(seed, net, tracker_config)
    }

    pub fn with_tracker(seed: u64, net: NetConfig, tracker_config: TrackerConfig) -> Sim {
        let mut rng = Rng::new(seed);
        let base = Instant::now();
        let tracker = Tracker::new(tracker_config.clone(), rng.next_u64(), base);
        let instance = INSTANCES.fetch_add(1, AtomicOrdering::Relaxed);
        let scratch = scratch_root().join(format!(
            "torrent-sim-{seed}-{}-{instance}",
            std::process::id()
        ));
        let mut addrs = BTreeMap::new();
        addrs.insert(TRACKER_ADDR, Endpoint::Tracker);
        Sim {
            seed,
            rng,
            net,
            base,
            now: Duration::ZERO,
            seq: 0,
            in_flight: BinaryHeap::new(),
            jobs: BinaryHeap::new(),
            faults: BinaryHeap::new(),
            partitions: Vec::new(),
            tracker,
            tracker_config,
            tracker_down: false,
            tracker_snapshot: None,
            tracker_saves: std::collections::VecDeque::new(),
            tracker_log: Vec::new(),
            nodes: Vec::new(),
            addrs,
            scratch,
            buf: vec![0u8; wire::DATAGRAM_BYTES_MAX],
            originals: Originals::default(),
            violation: None,
            steps: 0,
            trace: crate::hash::Sha1::new(),
            job_delay: Duration::ZERO,
            steps_max: STEPS_MAX,
            stats: NetStats::default(),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.base + self.now
    }

    /// Virtual time since the simulation began.
    pub fn elapsed(&self) -> Duration {
        self.now
    }

    /// Adds a node with id `index + 1`; `configure` may change its defaults. Returns its index.
    pub fn add_node(&mut self, configure: impl FnOnce(&mut NodeConfig)) -> usize {
        let index = self.nodes.len();
        let node_id = index as u32 + 1;
        let mut config = NodeConfig::new(node_id, TRACKER_ADDR);
        config.routes = Routes::fixed(SIM_ROUTE_MTU);
        configure(&mut config);
        // The path only names the directory in the node's messages.
        let storage = Arc::new(MemoryStorage::new(format!("memory/node{node_id}")));
        // 10.0.x.y, starting at 10.0.0.2 so that no node takes the tracker's address.
        let host = index + 2;
        let ip = Ipv4Addr::new(10, 0, (host / 256) as u8, (host % 256) as u8);
        let addr = SocketAddr::V4(SocketAddrV4::new(ip, 4000));
        let node = Node::new(
            config.clone(),
            Arc::clone(&storage) as Arc<dyn crate::storage::Storage>,
            self.rng.next_u64(),
            self.now(),
        );
        self.addrs.insert(addr, Endpoint::Node(index));
        self.nodes.push(SimNode {
            node,
            config,
            addr,
            storage,
            said: Vec::new(),
            exited: None,
            disconnected: false,
            down: false,
            shares: BTreeSet::new(),
            downloads: BTreeMap::new(),
            completed: BTreeSet::new(),
            dirty: true,
            timeout: None,
            link: Link::default(),
            blocked_until: None,
            unpublished_checked_at: None,
            tracker_sends: std::collections::VecDeque::new(),
        });
        self.flush();
        index
    }

    /// Limits how fast a node's link sends and receives, from now on. Datagrams already
    /// queued keep their times.
    pub fn set_capacity(&mut self, node: usize, capacity: Capacity) {
        let link = &mut self.nodes[node].link;
        link.set_spec(LinkSpec {
            capacity,
            ..link.spec()
        });
    }

    /// Shapes a node's link (capacity, delay, queue limits) from now on. Datagrams already
    /// queued or in flight keep their times.
    pub fn set_link(&mut self, node: usize, spec: LinkSpec) {
        self.nodes[node].link.set_spec(spec);
    }

    /// What a node's upload and download queues did since the simulation began.
    pub fn link_stats(&self, node: usize) -> LinkStats {
        self.nodes[node].link.stats(self.now)
    }

    /// Virtual times (since the simulation began) at which a node sent a datagram to the
    /// tracker, oldest first, in every life of the node (see [`TRACKER_SENDS_KEPT_MAX`]).
    pub fn tracker_sends(&self, node: usize) -> &std::collections::VecDeque<Duration> {
        &self.nodes[node].tracker_sends
    }

    /// Writes a file into a node's directory (as a user would before `send`). Its bytes
    /// become an original that every download of the name is checked against.
    pub fn write_file(&mut self, node: usize, name: &str, bytes: &[u8]) {
        self.originals.add(name, bytes);
        self.nodes[node]
            .storage
            .put_file(name, bytes)
            .unwrap_or_else(|error| panic!("cannot write {name}: {error}"));
    }

    /// A file of a node's directory, if it exists.
    pub fn file(&self, node: usize, name: &str) -> Option<Vec<u8>> {
        self.nodes[node].storage.file(name)
    }

    /// Types a command at a node's console. `send` and `download` are remembered as the
    /// node's start-up commands for [`Fault::Start`].
    pub fn command(&mut self, node: usize, command: Command) {
        let now = self.now();
        let sim_node = &mut self.nodes[node];
        match &command {
            Command::Send { name } => {
                sim_node.shares.insert(name.clone());
            }
            Command::Download { name, pin } => {
                sim_node.downloads.insert(name.clone(), *pin);
            }
            _ => {}
        }
        sim_node.node.handle_command(now, command);
        sim_node.dirty = true;
        self.flush();
    }

    /// Lines the node said so far.
    pub fn said(&self, node: usize) -> &[String] {
        &self.nodes[node].said
    }

    /// Whether the node said a line starting with `prefix`.
    pub fn said_starting(&self, node: usize, prefix: &str) -> bool {
        self.said(node).iter().any(|line| line.starts_with(prefix))
    }

    /// Whether the node said it downloaded `name` (in this life or an earlier one).
    pub fn completed(&self, node: usize, name: &str) -> bool {
        self.nodes[node].completed.contains(name)
    }

    /// The tracker's events so far, as log lines.
    pub fn tracker_log(&self) -> &[String] {
        &self.tracker_log
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn node(&self, node: usize) -> &Node {
        &self.nodes[node].node
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn exited(&self, node: usize) -> Option<i32> {
        self.nodes[node].exited
    }

    /// Cuts a node off: from now on nothing reaches it and nothing it sends leaves
    /// (datagrams already in flight to it are lost too).
    pub fn disconnect(&mut self, node: usize) {
        self.nodes[node].disconnected = true;
    }

    /// Kills a node and starts it again on the same directory and address, as a crash and
    /// a restart would: everything in memory is lost, what it wrote to disk stays. Job
    /// results the old process was waiting for are dropped. Unlike [`Fault::Start`], no
    /// start-up command is given: the caller types what it wants.
    pub fn restart(&mut self, node: usize) {
        self.crash(node);
        self.boot(node, false);
        self.flush();
    }

    /// Forgets the tracker's last `count` saves, as if they never reached the disk: a
    /// tracker started next starts from the one before (from an empty database when
    /// there is none).
    pub fn lose_tracker_saves(&mut self, count: usize) {
        for _ in 0..count {
            self.tracker_saves.pop_back();
        }
        self.tracker_snapshot = self.tracker_saves.back().cloned();
    }

    /// Injects `fault` after `after` of virtual time (at once for zero: on the next step).
    pub fn schedule(&mut self, after: Duration, fault: Fault) {
        self.seq += 1;
        self.faults.push(Reverse(Timed {
            at: self.now + after,
            seq: self.seq,
            item: fault,
        }));
    }

    /// Runs until `done(self)` holds, for at most `virtual_limit` more virtual time. Fails
    /// (with a message naming the seed) when a checker finds something wrong.
    pub fn run_until(
        &mut self,
        mut done: impl FnMut(&Sim) -> bool,
        virtual_limit: Duration,
    ) -> Result<(), String> {
        let deadline = self.now + virtual_limit;
        let started = Instant::now();
        let mut steps = 0u64;
        loop {
            if let Some(violation) = &self.violation {
                return Err(self.failure(&format!("checker: {violation}")));
            }
            if done(self) {
                self.check_files(true);
                return match &self.violation {
                    Some(violation) => Err(self.failure(&format!("checker: {violation}"))),
                    None => Ok(()),
                };
            }
            if steps >= self.steps_max {
                return Err(self.failure(&format!("{steps} steps taken")));
            }
            if steps.is_multiple_of(1024) && started.elapsed() > REAL_TIME_MAX {
                return Err(self.failure(&format!("{REAL_TIME_MAX:?} of real time spent")));
            }
            let Some(next) = self.next_due() else {
                return Err(self.failure("nothing left to do"));
            };
            if next > deadline {
                self.now = deadline;
                return Err(self.failure(&format!("virtual deadline {deadline:?} reached")));
            }
            self.step(next);
            steps += 1;
        }
    }

    /// Runs for `duration` of virtual time, whatever happens. Panics (naming the seed) when
    /// a checker finds something wrong.
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = self.now + duration;
        let mut steps = 0u64;
        while let Some(next) = self.next_due() {
            if next > deadline || steps >= self.steps_max || self.violation.is_some() {
                break;
            }
            self.step(next);
            steps += 1;
        }
        self.now = self.now.max(deadline);
        self.check_files(false);
        if let Some(violation) = &self.violation {
            panic!("{}", self.failure(&format!("checker: {violation}")));
        }
    }

    /// Runs every checker now; the first violation so far, if any, as a failure message.
    pub fn check(&mut self) -> Result<(), String> {
        self.check_files(true);
        match &self.violation {
            Some(violation) => Err(self.failure(&format!("checker: {violation}"))),
            None => Ok(()),
        }
    }

    /// An error that says how to replay the run, and what each node said last.
    fn failure(&self, why: &str) -> String {
        let mut text = format!(
            "simulation seed {} (replay with SIM_SEED={}): {why} at virtual {:?}; network {:?}",
            self.seed, self.seed, self.now, self.stats
        );
        for (index, sim_node) in self.nodes.iter().enumerate() {
            let tail = sim_node.said.len().saturating_sub(4);
            let state = match (sim_node.disconnected, sim_node.down) {
                (true, _) => " disconnected",
                (_, true) => " down",
                _ => "",
            };
            text.push_str(&format!(
                "\n  node {} (index {index}){state}: {:?}",
                sim_node.node.node_id(),
                &sim_node.said[tail..]
            ));
        }
        text
    }

    /// The earliest virtual time anything is due.
    fn next_due(&self) -> Option<Duration> {
        let offset = |t: Instant| t.saturating_duration_since(self.base);
        let mut times = Vec::with_capacity(self.nodes.len() + 4);
        times.extend(self.in_flight.peek().map(|Reverse(d)| d.at));
        times.extend(self.jobs.peek().map(|Reverse(j)| j.at));
        times.extend(self.faults.peek().map(|Reverse(f)| f.at));
        if !self.tracker_down {
            times.extend(self.tracker.poll_timeout().map(offset));
        }
        for sim_node in self.nodes.iter().filter(|n| n.running()) {
            times.extend(sim_node.timeout);
            times.extend(sim_node.blocked_until);
        }
        times.into_iter().min()
    }

    /// Advances the clock to `at`, injects, delivers and fires everything due, checks the
    /// bounds, then drains outputs.
    fn step(&mut self, at: Duration) {
        self.now = self.now.max(at);
        self.steps += 1;
        let now = self.now();
        while self.faults.peek().is_some_and(|f| f.0.at <= self.now) {
            let Some(Reverse(Timed { item, .. })) = self.faults.pop() else {
                break;
            };
            self.inject(item);
        }
        while self.in_flight.peek().is_some_and(|d| d.0.at <= self.now) {
            let Some(Reverse(Timed { at, item, .. })) = self.in_flight.pop() else {
                break;
            };
            if item.before_download_queue {
                self.through_download_queue(at, item);
            } else {
                self.deliver(now, item);
            }
        }
        while self.jobs.peek().is_some_and(|j| j.0.at <= self.now) {
            let Some(Reverse(Timed {
                item: (index, done),
                ..
            })) = self.jobs.pop()
            else {
                break;
            };
            if self.nodes[index].running() {
                self.nodes[index].node.handle_job_done(now, done);
                self.nodes[index].dirty = true;
            }
        }
        if !self.tracker_down && self.tracker.poll_timeout().is_some_and(|t| t <= now) {
            self.tracker.handle_timeout(now);
        }
        let virtual_now = self.now;
        for sim_node in self.nodes.iter_mut().filter(|n| n.running()) {
            if sim_node.timeout.is_some_and(|t| t <= virtual_now) {
                sim_node.node.handle_timeout(now);
                sim_node.dirty = true;
            }
            if sim_node.blocked_until.is_some_and(|t| t <= virtual_now) {
                // Its send buffer has room again: drain it.
                sim_node.blocked_until = None;
                sim_node.dirty = true;
            }
        }
        self.flush();
        if self.steps.is_multiple_of(CHECK_UNPUBLISHED_STEPS) {
            self.check_files(self.steps.is_multiple_of(CHECK_CLAIMS_STEPS));
        }
    }

    fn deliver(&mut self, now: Instant, datagram: Datagram) {
        let target = self.addrs.get(&datagram.to).copied();
        let source = self.addrs.get(&datagram.from).copied();
        let disconnected = |sim: &Sim, endpoint: Option<Endpoint>| match endpoint {
            Some(Endpoint::Node(index)) => sim.nodes[index].disconnected,
            _ => false,
        };
        if disconnected(self, target) || disconnected(self, source) {
            self.stats.dropped_disconnected += 1;
            return;
        }
        if let (Some(source), Some(target)) = (source, target)
            && self
                .partitions
                .iter()
                .any(|p| p.separates(self.now, source, target))
        {
            self.stats.dropped_partitioned += 1;
            return;
        }
        match target {
            Some(Endpoint::Tracker) if !self.tracker_down => {
                self.count_delivered(&datagram);
                self.tracker
                    .handle_datagram(now, datagram.from, &datagram.bytes)
            }
            Some(Endpoint::Node(index)) if self.nodes[index].running() => {
                self.count_delivered(&datagram);
                let sim_node = &mut self.nodes[index];
                sim_node
                    .node
                    .handle_datagram(now, datagram.from, &datagram.bytes);
                sim_node.dirty = true;
            }
            // Nobody listens there (any more): the datagram vanishes, as UDP's would.
            _ => self.stats.dropped_down += 1,
        }
    }

    fn count_delivered(&mut self, datagram: &Datagram) {
        self.stats.delivered += 1;
        self.stats.bytes_delivered += datagram.bytes.len() as u64;
        // When, between whom, how long, and the header: a piece's data is the file's, so
        // its first bytes say as much as all of them, at a fraction of the hashing.
        let head = &datagram.bytes[..datagram.bytes.len().min(TRACE_BYTES_MAX)];
        self.trace.update(&self.now.as_nanos().to_be_bytes());
        for addr in [datagram.from, datagram.to] {
            match addr.ip() {
                std::net::IpAddr::V4(ip) => self.trace.update(&ip.octets()),
                std::net::IpAddr::V6(ip) => self.trace.update(&ip.octets()),
            }
            self.trace.update(&addr.port().to_be_bytes());
        }
        self.trace
            .update(&(datagram.bytes.len() as u64).to_be_bytes());
        self.trace.update(head);
    }

    /// A digest of every datagram delivered so far: its virtual time, sender, receiver,
    /// length and first [`TRACE_BYTES_MAX`] bytes. Two runs of the same seed that behave
    /// alike to the nanosecond give the same digest, so a change meant to alter no
    /// behaviour (the node redesign of issue 15) can show that it did not.
    pub fn trace_digest(&self) -> String {
        wire::hex(&self.trace.clone().finish())
    }

    /// With `SIM_FINGERPRINT=FILE`, appends this run's line to FILE: the test (the
    /// thread's name), the seed, the virtual time, the datagrams and bytes delivered and the
    /// trace digest. `bench/sim_fingerprint.py` collects them for seeds 1 to 20.
    fn record_fingerprint(&self) {
        let Some(path) = std::env::var_os("SIM_FINGERPRINT") else {
            return;
        };
        let test = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let line = format!(
            "{test} seed {} at {:.6} s: {} datagrams, {} bytes delivered, trace {}\n",
            self.seed,
            self.now.as_secs_f64(),
            self.stats.delivered,
            self.stats.bytes_delivered,
            self.trace_digest()
        );
        // O_APPEND: tests running at once each add whole lines.
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
        if let Err(error) = appended {
            eprintln!("SIM_FINGERPRINT {}: {error}", Path::new(&path).display());
        }
    }

    /// Moves every core's waiting datagrams into the network and its events into the logs,
    /// until nothing is waiting (a job result due now waits for the next step). Queues are
    /// checked against their limits first, when they are at their longest.
    fn flush(&mut self) {
        let now = self.now();
        if !self.tracker_down {
            self.check_tracker_bounds();
            // What the reactor would write to the tracker database, before the replies that
            // wait for it (as the reactor does).
            if let Some(snapshot) = self.tracker.poll_snapshot() {
                if self.tracker_saves.len() >= SAVES_KEPT {
                    self.tracker_saves.pop_front();
                }
                self.tracker_saves.push_back(snapshot.clone());
                self.tracker_snapshot = Some(snapshot);
                self.tracker.snapshot_written(now, true);
            }
            for _ in 0..TRANSMITS_PER_STEP_MAX {
                let Some(transmit) = self.tracker.poll_transmit(now, &mut self.buf) else {
                    break;
                };
                let bytes = self.buf[..transmit.len].to_vec();
                self.send(TRACKER_ADDR, transmit.to, bytes);
            }
            while let Some(event) = self.tracker.poll_event() {
                self.tracker_log.push(event.to_string());
            }
        }
        for index in 0..self.nodes.len() {
            if !self.nodes[index].running() || !self.nodes[index].dirty {
                continue;
            }
            self.check_node_bounds(index);
            for _ in 0..TRANSMITS_PER_STEP_MAX {
                let blocked_until = self.nodes[index].link.blocked_until(self.now);
                self.nodes[index].blocked_until = blocked_until;
                if blocked_until.is_some() {
                    break;
                }
                let Some(transmit) = self.nodes[index].node.poll_transmit(now, &mut self.buf)
                else {
                    break;
                };
                let bytes = self.buf[..transmit.len].to_vec();
                let from = self.nodes[index].addr;
                self.send(from, transmit.to, bytes);
            }
            let mut eventful = false;
            while let Some(event) = self.nodes[index].node.poll_event() {
                eventful = true;
                match event {
                    NodeEvent::Report(event) => self.hear(index, event.to_string()),
                    NodeEvent::Print(line) => self.hear(index, line),
                    NodeEvent::Job(job) => {
                        let done = node::run_job(job);
                        let at = self.now + self.job_delay;
                        self.seq += 1;
                        self.jobs.push(Reverse(Timed {
                            at,
                            seq: self.seq,
                            item: (index, done),
                        }));
                    }
                    NodeEvent::Exit(code) => self.nodes[index].exited = Some(code),
                }
            }
            // After the events: a file published in this drain was also announced in it.
            if eventful
                || self.nodes[index]
                    .unpublished_checked_at
                    .is_none_or(|t| self.now >= t + CHECK_UNPUBLISHED_QUIET)
            {
                self.nodes[index].unpublished_checked_at = Some(self.now);
                self.check_node_unpublished(index);
            }
            let sim_node = &mut self.nodes[index];
            sim_node.dirty = false;
            sim_node.timeout = sim_node
                .node
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.base));
        }
    }

    /// Logs a line of a node; a completion claim is checked against the original at once.
    fn hear(&mut self, index: usize, line: String) {
        if let Some(name) = check::downloaded_name(&line) {
            let sim_node = &mut self.nodes[index];
            sim_node.completed.insert(name.to_string());
            if let Err(error) = self.originals.check_claim(&sim_node.storage, name) {
                let node_id = sim_node.config.node_id;
                self.violated(format!("node {node_id}: {error}"));
            }
        }
        self.nodes[index].said.push(line);
    }

    /// Puts a datagram on the simulated network: queued on the sender's link, lost,
    /// delayed, maybe duplicated.
    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.stats.sent += 1;
        if to == TRACKER_ADDR
            && let Some(Endpoint::Node(index)) = self.addrs.get(&from)
        {
            let sends = &mut self.nodes[*index].tracker_sends;
            if sends.len() >= TRACKER_SENDS_KEPT_MAX {
                sends.pop_front();
            }
            sends.push_back(self.now);
        }
        let departs = match self.addrs.get(&from) {
            Some(Endpoint::Node(index)) if self.nodes[*index].disconnected => {
                self.stats.dropped_disconnected += 1;
                return;
            }
            // A datagram lost on the way used the sender's link all the same.
            Some(Endpoint::Node(index)) => {
                let link = &mut self.nodes[*index].link;
                let Some(departs) = link.depart(self.now, bytes.len()) else {
                    self.stats.dropped_at_queue += 1;
                    return;
                };
                departs + link.one_way_delay()
            }
            _ => self.now,
        };
        if self.chance(self.net.loss) {
            self.stats.lost += 1;
            return;
        }
        let mut bytes = bytes;
        if self.net.corrupt_piece > 0.0 && self.chance(self.net.corrupt_piece) {
            self.corrupt_piece(&mut bytes);
        }
        if self.chance(self.net.duplicate) {
            self.stats.duplicated += 1;
            self.enqueue(from, to, bytes.clone(), departs);
        }
        self.enqueue(from, to, bytes, departs);
    }

    /// Flips one random data byte of a piece datagram; other datagrams pass untouched.
    fn corrupt_piece(&mut self, bytes: &mut [u8]) {
        let data_bytes = match wire::decode(bytes) {
            Ok(wire::Message::Piece { data, .. } | wire::Message::StampedPiece { data, .. }) => {
                data.len()
            }
            _ => return,
        };
        if data_bytes == 0 {
            return;
        }
        let at = bytes.len() - data_bytes + self.rng.below(data_bytes as u64) as usize;
        bytes[at] ^= 1 << self.rng.below(8);
        self.stats.corrupted += 1;
    }

    /// Queues one copy of a datagram, which left its sender's link at `departs`, for
    /// delivery after the latency, a random jitter and the receiver's link (its delay, then
    /// its download queue).
    fn enqueue(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>, departs: Duration) {
        if self.in_flight.len() >= IN_FLIGHT_MAX {
            self.stats.dropped_full += 1;
            return;
        }
        let jitter_ns = self.net.jitter.as_nanos() as u64;
        let jitter = match jitter_ns {
            0 => Duration::ZERO,
            _ => Duration::from_nanos(self.rng.below(jitter_ns + 1)),
        };
        let mut at = departs + self.net.latency + jitter;
        let mut before_download_queue = false;
        if let Some(Endpoint::Node(index)) = self.addrs.get(&to) {
            let link = &mut self.nodes[*index].link;
            at += link.one_way_delay();
            // A queue must see datagrams in the order they reach it, which is not the order
            // they were sent when senders are at different distances: it is offered each
            // one when it is due there.
            if link.download_queued() {
                before_download_queue = true;
            } else if let Some(arrives) = link.arrive(at, bytes.len()) {
                at = arrives;
            }
        }
        self.seq += 1;
        self.in_flight.push(Reverse(Timed {
            at,
            seq: self.seq,
            item: Datagram {
                from,
                to,
                bytes,
                before_download_queue,
            },
        }));
    }

    /// A datagram due at its receiver's download queue at `at`: dropped if the queue is
    /// full, else due at the receiver once through.
    fn through_download_queue(&mut self, at: Duration, mut datagram: Datagram) {
        let Some(Endpoint::Node(index)) = self.addrs.get(&datagram.to) else {
            return;
        };
        let Some(arrives) = self.nodes[*index].link.arrive(at, datagram.bytes.len()) else {
            self.stats.dropped_at_queue += 1;
            return;
        };
        datagram.before_download_queue = false;
        self.seq += 1;
        self.in_flight.push(Reverse(Timed {
            at: arrives,
            seq: self.seq,
            item: datagram,
        }));
    }

    /// True with probability `p`, drawn from the simulation's generator.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.below(1 << 24) as f64) < p * f64::from(1u32 << 24)
    }

    /// Removes the scratch directory (also done on drop).
    pub fn cleanup(&mut self) {
        remove_scratch(&self.scratch);
    }

    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.record_fingerprint();
        }
        remove_scratch(&self.scratch);
    }
}

/// Where scratch directories go: `SIM_DIR` when set, else `/dev/shm` when it exists (the
/// cores sync what they write, which on a disk costs far more than the whole simulation),
/// else the temp directory.
fn scratch_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("SIM_DIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

fn remove_scratch(path: &Path) {
    // Already gone is fine; anything else only leaves litter in the temp directory.
    let _ = std::fs::remove_dir_all(path);
}
