//! A deterministic, in-process simulation of one tracker and many nodes.
//!
//! Everything a real reactor would take from the outside world comes from here instead:
//!
//! * **Time.** A virtual clock: `base` (one `Instant` read at creation, never again) plus an
//!   offset that only the step loop advances. Every `now` handed to a core comes from it.
//! * **Randomness.** One seeded [`Rng`]: the cores' seeds, and every latency, loss and
//!   duplicate decision of the network. The same seed replays the same run exactly.
//! * **Network.** Each datagram is delivered at `now + latency + jitter` unless it is lost;
//!   some are duplicated; jitter reorders them. In-flight datagrams wait in a priority queue
//!   ordered by delivery time, ties broken by a sequence number, so that the order never
//!   depends on anything but the seed.
//! * **Hasher threads.** A [`NodeEvent::Job`] is run inline with [`node::run_job`]; its
//!   result is handed back after [`Sim::job_delay`].
//!
//! The step loop: find the earliest of the next delivery, the next job result and every
//! core's `poll_timeout`; advance the clock to it; deliver, complete or fire what is due;
//! then drain every core's `poll_transmit` into the network and its events into the log.
//!
//! Nodes keep their files in a scratch directory,
//! `temp_dir()/torrent-sim-<seed>-<pid>-<instance>/node<id>`, removed on drop.

use crate::console::Command;
use crate::node::{self, JobDone, Node, NodeConfig, NodeEvent};
use crate::rng::Rng;
use crate::storage::StateDir;
use crate::tracker::{Tracker, TrackerConfig};
use crate::wire;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

/// Most datagrams in flight at once; more are dropped (a full socket buffer) and counted.
pub const IN_FLIGHT_MAX: usize = 1 << 16;
/// Most datagrams drained from one core in one step, so a core that never stops sending
/// fails the run instead of hanging it.
pub const TRANSMITS_PER_STEP_MAX: usize = 1 << 16;
/// Default bound on the steps of one [`Sim::run_until`].
pub const STEPS_MAX: u64 = 2_000_000;
/// Bound on the wall-clock time of one [`Sim::run_until`], so a test never hangs.
pub const REAL_TIME_MAX: Duration = Duration::from_secs(120);
/// Where the tracker listens.
pub const TRACKER_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 12345));

/// Simulations made by this process so far: gives each its own scratch directory.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// How the simulated network treats datagrams. Probabilities are in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetConfig {
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`; reorders datagrams.
    pub jitter: Duration,
    /// Chance a datagram is dropped.
    pub loss: f64,
    /// Chance a datagram is delivered twice (each copy with its own delay).
    pub duplicate: f64,
}

/// What the network did, for assertions and for bench reports.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub dropped_full: u64,
    pub dropped_disconnected: u64,
    pub bytes_delivered: u64,
}

/// An item due at a virtual time; the heap pops the earliest, then the first queued.
struct Timed<T> {
    at: Duration,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Timed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Timed<T> {}
impl<T> PartialOrd for Timed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Timed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// Who owns an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Tracker,
    Node(usize),
}

struct SimNode {
    node: Node,
    config: NodeConfig,
    addr: SocketAddr,
    dir: PathBuf,
    said: Vec<String>,
    exited: Option<i32>,
    /// Cut off from the network: nothing reaches it, nothing it sends leaves.
    disconnected: bool,
}

pub struct Sim {
    seed: u64,
    rng: Rng,
    net: NetConfig,
    base: Instant,
    now: Duration,
    seq: u64,
    in_flight: BinaryHeap<Reverse<Timed<Datagram>>>,
    jobs: BinaryHeap<Reverse<Timed<(usize, JobDone)>>>,
    tracker: Tracker,
    tracker_log: Vec<String>,
    nodes: Vec<SimNode>,
    addrs: BTreeMap<SocketAddr, Endpoint>,
    scratch: PathBuf,
    buf: Vec<u8>,
    /// How long a hashing job takes in virtual time.
    pub job_delay: Duration,
    /// Bound on the steps of one [`Sim::run_until`].
    pub steps_max: u64,
    pub stats: NetStats,
}

impl Sim {
    pub fn new(seed: u64, net: NetConfig) -> Sim {
        Sim::with_tracker(seed, net, TrackerConfig::default())
    }

    pub fn with_tracker(seed: u64, net: NetConfig, tracker_config: TrackerConfig) -> Sim {
        let mut rng = Rng::new(seed);
        let base = Instant::now();
        let tracker = Tracker::new(tracker_config, rng.next_u64(), base);
        let instance = INSTANCES.fetch_add(1, AtomicOrdering::Relaxed);
        let scratch = std::env::temp_dir().join(format!(
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
            tracker,
            tracker_log: Vec::new(),
            nodes: Vec::new(),
            addrs,
            scratch,
            buf: vec![0u8; wire::DATAGRAM_BYTES_MAX],
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
        configure(&mut config);
        let dir = self.scratch.join(format!("node{node_id}"));
        let state = StateDir::open(&dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        // 10.0.x.y, starting at 10.0.0.2 so that no node takes the tracker's address.
        let host = index + 2;
        let ip = Ipv4Addr::new(10, 0, (host / 256) as u8, (host % 256) as u8);
        let addr = SocketAddr::V4(SocketAddrV4::new(ip, 4000));
        let node = Node::new(config.clone(), state, self.rng.next_u64(), self.now());
        self.addrs.insert(addr, Endpoint::Node(index));
        self.nodes.push(SimNode {
            node,
            config,
            addr,
            dir,
            said: Vec::new(),
            exited: None,
            disconnected: false,
        });
        self.flush();
        index
    }

    /// Writes a file into a node's directory (as a user would before `send`).
    pub fn write_file(&self, node: usize, name: &str, bytes: &[u8]) {
        let path = self.nodes[node].dir.join(name);
        std::fs::write(&path, bytes)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    }

    /// A file of a node's directory, if it exists.
    pub fn file(&self, node: usize, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.nodes[node].dir.join(name)).ok()
    }

    /// Types a command at a node's console.
    pub fn command(&mut self, node: usize, command: Command) {
        let now = self.now();
        self.nodes[node].node.handle_command(now, command);
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
    /// results the old process was waiting for are dropped.
    pub fn restart(&mut self, node: usize) {
        let sim_node = &mut self.nodes[node];
        let state = StateDir::open(&sim_node.dir)
            .unwrap_or_else(|error| panic!("cannot open {}: {error}", sim_node.dir.display()));
        let now = self.base + self.now;
        sim_node.node = Node::new(sim_node.config.clone(), state, self.rng.next_u64(), now);
        sim_node.exited = None;
        sim_node.said.push("(restarted)".to_string());
        let jobs = std::mem::take(&mut self.jobs);
        self.jobs = jobs.into_iter().filter(|j| j.0.item.0 != node).collect();
        self.flush();
    }

    /// Runs until `done(self)` holds, for at most `virtual_limit` more virtual time.
    pub fn run_until(
        &mut self,
        mut done: impl FnMut(&Sim) -> bool,
        virtual_limit: Duration,
    ) -> Result<(), String> {
        let deadline = self.now + virtual_limit;
        let started = Instant::now();
        let mut steps = 0u64;
        while !done(self) {
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
        Ok(())
    }

    /// Runs for `duration` of virtual time, whatever happens.
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = self.now + duration;
        let mut steps = 0u64;
        while let Some(next) = self.next_due() {
            if next > deadline || steps >= self.steps_max {
                break;
            }
            self.step(next);
            steps += 1;
        }
        self.now = self.now.max(deadline);
    }

    /// An error that says how to replay the run, and what each node said last.
    fn failure(&self, why: &str) -> String {
        let mut text = format!(
            "simulation seed {} (replay with SIM_SEED={}): {why} at virtual {:?}; network {:?}",
            self.seed, self.seed, self.now, self.stats
        );
        for (index, sim_node) in self.nodes.iter().enumerate() {
            let tail = sim_node.said.len().saturating_sub(4);
            text.push_str(&format!(
                "\n  node {} (index {index}){}: {:?}",
                sim_node.node.node_id(),
                if sim_node.disconnected {
                    " disconnected"
                } else {
                    ""
                },
                &sim_node.said[tail..]
            ));
        }
        text
    }

    /// The earliest virtual time anything is due.
    fn next_due(&self) -> Option<Duration> {
        let offset = |t: Instant| t.saturating_duration_since(self.base);
        let mut times = Vec::with_capacity(self.nodes.len() + 3);
        times.extend(self.in_flight.peek().map(|Reverse(d)| d.at));
        times.extend(self.jobs.peek().map(|Reverse(j)| j.at));
        times.extend(self.tracker.poll_timeout().map(offset));
        for sim_node in self.nodes.iter().filter(|n| n.exited.is_none()) {
            times.extend(sim_node.node.poll_timeout().map(offset));
        }
        times.into_iter().min()
    }

    /// Advances the clock to `at`, delivers and fires everything due, then drains outputs.
    fn step(&mut self, at: Duration) {
        self.now = self.now.max(at);
        let now = self.now();
        while self.in_flight.peek().is_some_and(|d| d.0.at <= self.now) {
            let Some(Reverse(Timed { item, .. })) = self.in_flight.pop() else {
                break;
            };
            self.deliver(now, item);
        }
        while self.jobs.peek().is_some_and(|j| j.0.at <= self.now) {
            let Some(Reverse(Timed {
                item: (index, done),
                ..
            })) = self.jobs.pop()
            else {
                break;
            };
            if self.nodes[index].exited.is_none() {
                self.nodes[index].node.handle_job_done(now, done);
            }
        }
        if self.tracker.poll_timeout().is_some_and(|t| t <= now) {
            self.tracker.handle_timeout(now);
        }
        for sim_node in self.nodes.iter_mut().filter(|n| n.exited.is_none()) {
            if sim_node.node.poll_timeout().is_some_and(|t| t <= now) {
                sim_node.node.handle_timeout(now);
            }
        }
        self.flush();
    }

    fn deliver(&mut self, now: Instant, datagram: Datagram) {
        let target = self.addrs.get(&datagram.to).copied();
        let disconnected = |sim: &Sim, endpoint: Option<Endpoint>| match endpoint {
            Some(Endpoint::Node(index)) => sim.nodes[index].disconnected,
            _ => false,
        };
        let source = self.addrs.get(&datagram.from).copied();
        if disconnected(self, target) || disconnected(self, source) {
            self.stats.dropped_disconnected += 1;
            return;
        }
        self.stats.delivered += 1;
        self.stats.bytes_delivered += datagram.bytes.len() as u64;
        match target {
            Some(Endpoint::Tracker) => {
                self.tracker
                    .handle_datagram(now, datagram.from, &datagram.bytes)
            }
            Some(Endpoint::Node(index)) if self.nodes[index].exited.is_none() => self.nodes[index]
                .node
                .handle_datagram(now, datagram.from, &datagram.bytes),
            // Nobody listens there (any more): the datagram vanishes, as UDP's would.
            _ => {}
        }
    }

    /// Moves every core's waiting datagrams into the network and its events into the logs,
    /// until nothing is waiting (a job result due now waits for the next step).
    fn flush(&mut self) {
        let now = self.now();
        for _ in 0..TRANSMITS_PER_STEP_MAX {
            let Some(transmit) = self.tracker.poll_transmit(&mut self.buf) else {
                break;
            };
            let bytes = self.buf[..transmit.len].to_vec();
            self.send(TRACKER_ADDR, transmit.to, bytes);
        }
        while let Some(event) = self.tracker.poll_event() {
            self.tracker_log.push(event.to_string());
        }
        // Snapshots would be written by the reactor; the simulation keeps none.
        let _ = self.tracker.poll_snapshot();
        for index in 0..self.nodes.len() {
            if self.nodes[index].exited.is_some() {
                continue;
            }
            for _ in 0..TRANSMITS_PER_STEP_MAX {
                let Some(transmit) = self.nodes[index].node.poll_transmit(now, &mut self.buf)
                else {
                    break;
                };
                let bytes = self.buf[..transmit.len].to_vec();
                let from = self.nodes[index].addr;
                self.send(from, transmit.to, bytes);
            }
            while let Some(event) = self.nodes[index].node.poll_event() {
                match event {
                    NodeEvent::Say(line) => self.nodes[index].said.push(line),
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
        }
    }

    /// Puts a datagram on the simulated network: lost, delayed, maybe duplicated.
    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.stats.sent += 1;
        if matches!(self.addrs.get(&from), Some(Endpoint::Node(index)) if self.nodes[*index].disconnected)
        {
            self.stats.dropped_disconnected += 1;
            return;
        }
        if self.chance(self.net.loss) {
            self.stats.lost += 1;
            return;
        }
        if self.chance(self.net.duplicate) {
            self.stats.duplicated += 1;
            self.enqueue(from, to, bytes.clone());
        }
        self.enqueue(from, to, bytes);
    }

    /// Queues one copy of a datagram for delivery after the latency and a random jitter.
    fn enqueue(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        if self.in_flight.len() >= IN_FLIGHT_MAX {
            self.stats.dropped_full += 1;
            return;
        }
        let jitter_ns = self.net.jitter.as_nanos() as u64;
        let jitter = match jitter_ns {
            0 => Duration::ZERO,
            _ => Duration::from_nanos(self.rng.below(jitter_ns + 1)),
        };
        self.seq += 1;
        self.in_flight.push(Reverse(Timed {
            at: self.now + self.net.latency + jitter,
            seq: self.seq,
            item: Datagram { from, to, bytes },
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
        remove_scratch(&self.scratch);
    }
}

fn remove_scratch(path: &Path) {
    // Already gone is fine; anything else only leaves litter in the temp directory.
    let _ = std::fs::remove_dir_all(path);
}
