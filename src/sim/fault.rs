//! Faults the simulation can inject at a virtual time, and a seeded plan of random ones.

use super::Sim;
use super::net::{Endpoint, Partition};
use crate::console::Command;
use crate::node::Node;
use crate::rng::Rng;
use crate::tracker::{self, Tracker};
use crate::wire::Hash;
use std::time::Duration;

/// Something that goes wrong (or right again) at a scheduled virtual time.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The node's process dies: its memory, sockets and pending hashing jobs are gone; its
    /// directory stays. Nothing reaches it until [`Fault::Start`].
    Crash(usize),
    /// A crashed node starts again on its directory and address, with the start-up commands
    /// a supervisor would give it (as `--send`/`--download` flags): `send` for every file it
    /// shared or finished downloading, `download` for every download it had not finished.
    Start(usize),
    /// The tracker's process dies; datagrams to it vanish until [`Fault::TrackerStart`].
    TrackerCrash,
    /// The tracker starts again at its address from its last persisted snapshot, as the
    /// reactor does (written with `db::save`, read with `db::load`).
    TrackerStart,
    /// Datagrams between the two sides are dropped (both ways) for `heal_after`.
    Partition {
        sides: [Vec<Endpoint>; 2],
        heal_after: Duration,
    },
}

/// How many random faults [`super::Sim::schedule_chaos`] draws from the seed, and how long
/// each may last. Every fault is over by the time it returns.
#[derive(Clone, Debug)]
pub struct Chaos {
    /// Faults begin within this long from now.
    pub window: Duration,
    /// Node crashes, each followed by a restart after a delay up to `down_max`.
    pub crashes: usize,
    pub down_max: Duration,
    /// Partitions: a random group of nodes (up to half, sometimes with the tracker) cut off
    /// from everyone else, healed after up to `partition_max`.
    pub partitions: usize,
    pub partition_max: Duration,
    /// Tracker crashes, each followed by a restart after up to `tracker_down_max`.
    pub tracker_restarts: usize,
    pub tracker_down_max: Duration,
}

impl Sim {
    /// Schedules the random faults `chaos` asks for among `nodes`, drawn from the seed.
    /// Returns the virtual time (as [`Sim::elapsed`] counts it) when the last is over.
    pub fn schedule_chaos(&mut self, chaos: &Chaos, nodes: &[usize]) -> Duration {
        let mut over = self.now;
        let window_ns = chaos.window.as_nanos() as u64;
        let pick = |rng: &mut Rng, max: Duration| {
            Duration::from_nanos(rng.below(max.as_nanos() as u64 + 1))
        };
        let mut plan = Vec::new();
        for _ in 0..chaos.crashes {
            if nodes.is_empty() {
                break;
            }
            let node = nodes[self.rng.below(nodes.len() as u64) as usize];
            let at = Duration::from_nanos(self.rng.below(window_ns + 1));
            let down = pick(&mut self.rng, chaos.down_max);
            plan.push((at, Fault::Crash(node)));
            plan.push((at + down, Fault::Start(node)));
        }
        for _ in 0..chaos.partitions {
            let at = Duration::from_nanos(self.rng.below(window_ns + 1));
            let heal_after = pick(&mut self.rng, chaos.partition_max);
            let cut_count = 1 + self.rng.below((nodes.len() as u64 / 2).max(1)) as usize;
            let mut rest: Vec<Endpoint> = nodes.iter().map(|&n| Endpoint::Node(n)).collect();
            let mut cut = Vec::new();
            for _ in 0..cut_count.min(rest.len()) {
                cut.push(rest.remove(self.rng.below(rest.len() as u64) as usize));
            }
            // Now and then the tracker is on the small side, cut off from most nodes.
            if self.rng.below(4) == 0 {
                cut.push(Endpoint::Tracker);
            } else {
                rest.push(Endpoint::Tracker);
            }
            plan.push((
                at,
                Fault::Partition {
                    sides: [cut, rest],
                    heal_after,
                },
            ));
            over = over.max(self.now + at + heal_after);
        }
        for _ in 0..chaos.tracker_restarts {
            let at = Duration::from_nanos(self.rng.below(window_ns + 1));
            let down = pick(&mut self.rng, chaos.tracker_down_max);
            plan.push((at, Fault::TrackerCrash));
            plan.push((at + down, Fault::TrackerStart));
        }
        for (at, fault) in plan {
            if matches!(fault, Fault::Start(_) | Fault::TrackerStart) {
                over = over.max(self.now + at);
            }
            self.schedule(at, fault);
        }
        over
    }

    pub(super) fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::Crash(node) => self.crash(node),
            Fault::Start(node) => self.boot(node, true),
            Fault::TrackerCrash => {
                self.tracker_down = true;
                self.tracker_log.push("(crashed)".to_string());
            }
            Fault::TrackerStart => self.start_tracker(),
            Fault::Partition { sides, heal_after } => {
                let [a, b] = sides;
                self.partitions.retain(|p| p.heal_at > self.now);
                self.partitions.push(Partition {
                    sides: [a.into_iter().collect(), b.into_iter().collect()],
                    heal_at: self.now + heal_after,
                });
            }
        }
    }

    /// The node's process dies; its pending job results are dropped.
    pub(super) fn crash(&mut self, node: usize) {
        if self.nodes[node].down {
            return;
        }
        self.nodes[node].down = true;
        self.nodes[node].said.push("(crashed)".to_string());
        let jobs = std::mem::take(&mut self.jobs);
        self.jobs = jobs.into_iter().filter(|j| j.0.item.0 != node).collect();
    }

    /// A crashed node starts again on its directory; with `replay`, it is given its
    /// start-up commands (see [`Fault::Start`]).
    pub(super) fn boot(&mut self, node: usize, replay: bool) {
        let now = self.now();
        let sim_node = &mut self.nodes[node];
        if !sim_node.down {
            return;
        }
        sim_node.node = Node::new(
            sim_node.config.clone(),
            std::sync::Arc::clone(&sim_node.storage) as std::sync::Arc<dyn crate::storage::Storage>,
            self.rng.next_u64(),
            now,
        );
        sim_node.down = false;
        sim_node.exited = None;
        sim_node.dirty = true;
        sim_node.said.push("(restarted)".to_string());
        if !replay {
            return;
        }
        let shared = sim_node.shares.union(&sim_node.completed);
        for name in shared.cloned().collect::<Vec<_>>() {
            sim_node.node.handle_command(now, Command::Send { name });
        }
        let unfinished: Vec<(String, Option<Hash>)> = sim_node
            .downloads
            .iter()
            .filter(|(name, _)| {
                !sim_node.completed.contains(*name) && !sim_node.shares.contains(*name)
            })
            .map(|(name, pin)| (name.clone(), *pin))
            .collect();
        for (name, pin) in unfinished {
            sim_node
                .node
                .handle_command(now, Command::Download { name, pin });
        }
    }

    /// The tracker starts again from its last snapshot, written and read back the way the
    /// reactor does, at the same address.
    fn start_tracker(&mut self) {
        if !self.tracker_down {
            return;
        }
        let now = self.now();
        let db_dir = self.scratch.join("tracker_db");
        let snapshot = self.tracker_snapshot.as_ref().map(|snapshot| {
            tracker::db::save(&db_dir, snapshot)
                .and_then(|()| tracker::db::load(&db_dir))
                .unwrap_or_else(|error| panic!("tracker database {}: {error}", db_dir.display()))
                .unwrap_or_else(|| panic!("tracker database {} is empty", db_dir.display()))
        });
        let config = self.tracker_config.clone();
        let rng_seed = self.rng.next_u64();
        self.tracker = match snapshot {
            Some(snapshot) => Tracker::from_snapshot(config, rng_seed, now, snapshot),
            None => Tracker::new(config, rng_seed, now),
        };
        self.tracker_down = false;
        self.tracker_log.push("(restarted)".to_string());
    }
}
