//! A property of the tracker's registry (issue 13, finding 3), checked with the real
//! `Tracker` and real `Node`s in the simulation: random sequences of shares, node crashes and
//! restarts, expiry (a node cut off from the tracker for longer than the expiry), exits and
//! tracker restarts, each round ended by a tracker that loses its last saves (0 to 3 of them,
//! or all: an empty database). Invariant: one heartbeat interval (plus the one-second save
//! delay of a new token and a few round trips) after the tracker is back, it again knows
//! every file every live node holds, with the node's chunk count.
//!
//! `SIM_SEED=n cargo test --test sim_registry` replays seed `n`; `SIM_SEEDS=n` sweeps `0..n`
//! (default 64). A failure names its seed.

use std::collections::BTreeMap;
use std::time::Duration;
use torrent::console::Command;
use torrent::rng::Rng;
use torrent::sim::{Endpoint, Fault, NetConfig, SAVES_KEPT, Sim};
use torrent::tracker::{REGISTRY_SAVE_DELAY, TrackerConfig};
use torrent::wire::{self, Hash};

const SEEDS: u64 = 64;
const HEARTBEAT: Duration = Duration::from_secs(2);
const EXPIRY: Duration = Duration::from_secs(5);
/// The node's longest retry back-off (`node.rs`): after an outage, a heartbeat may wait this
/// long before the node tries again.
const NODE_RETRY_MAX: Duration = Duration::from_secs(8);
const ROUNDS: usize = 4;

fn seeds() -> Vec<u64> {
    let number = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|text| text.trim().parse::<u64>().expect("a number"))
    };
    match number("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..number("SIM_SEEDS").unwrap_or(SEEDS)).collect(),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Whether the tracker records every file each live node holds, with its chunk count.
fn converged(sim: &Sim, live: &[bool]) -> Result<(), String> {
    for (index, _) in live.iter().enumerate().filter(|(_, live)| **live) {
        let node_id = index as u32 + 1;
        let held = sim.node(index).inspect().announceable();
        let recorded = sim.tracker().debug_holdings(node_id).unwrap_or_default();
        let missing: BTreeMap<&Hash, &u32> = held
            .iter()
            .filter(|(hash, chunks)| recorded.get(*hash) != Some(*chunks))
            .collect();
        if !missing.is_empty() {
            let show = |map: &BTreeMap<Hash, u32>| {
                map.iter()
                    .map(|(hash, chunks)| format!("{}:{chunks}", &wire::hex(hash)[..8]))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            return Err(format!(
                "node {node_id} holds [{}], the tracker records [{}]",
                show(&held),
                show(&recorded)
            ));
        }
    }
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0x7e61_57e7);
    let config = TrackerConfig {
        expiry: EXPIRY,
        heartbeat_interval: HEARTBEAT,
        ..TrackerConfig::default()
    };
    let net = NetConfig {
        latency: ms(1),
        jitter: ms(1),
        loss: 0.0,
        duplicate: 0.0,
        corrupt_piece: 0.0,
    };
    let mut sim = Sim::with_tracker(seed, net, config);
    let nodes = 3 + rng.below(4) as usize;
    let mut live = vec![true; nodes];
    let mut next_file = 0u64;
    let share = |sim: &mut Sim, rng: &mut Rng, node: usize, next_file: &mut u64| {
        let name = format!("f{}.bin", *next_file);
        let len = 1 + rng.below(40_000) as usize;
        let bytes: Vec<u8> = (0..len).map(|i| (i as u64 ^ *next_file) as u8).collect();
        *next_file += 1;
        sim.write_file(node, &name, &bytes);
        sim.command(node, Command::Send { name });
    };
    for node in 0..nodes {
        sim.add_node(|config| config.heartbeat_interval = HEARTBEAT);
        share(&mut sim, &mut rng, node, &mut next_file);
    }
    sim.run_for(Duration::from_secs(3));
    converged(&sim, &live).map_err(|e| format!("at start: {e}"))?;

    for round in 0..ROUNDS {
        let mut done = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let alive: Vec<usize> = (0..nodes).filter(|&i| live[i]).collect();
            let node = alive[rng.below(alive.len() as u64) as usize];
            match rng.below(5) {
                0 => {
                    share(&mut sim, &mut rng, node, &mut next_file);
                    done.push(format!("node {} shares", node + 1));
                }
                1 => {
                    sim.schedule(Duration::ZERO, Fault::Crash(node));
                    sim.schedule(ms(rng.below(3000)), Fault::Start(node));
                    done.push(format!("node {} restarts", node + 1));
                }
                2 => {
                    let sides = [vec![Endpoint::Node(node)], vec![Endpoint::Tracker]];
                    let heal_after = EXPIRY + ms(500 + rng.below(2000));
                    sim.schedule(Duration::ZERO, Fault::Partition { sides, heal_after });
                    done.push(format!("node {} expires", node + 1));
                }
                3 => {
                    sim.schedule(Duration::ZERO, Fault::TrackerCrash);
                    sim.schedule(ms(rng.below(1500)), Fault::TrackerStart);
                    done.push("tracker restarts".to_string());
                }
                _ if alive.len() > 2 => {
                    sim.command(node, Command::Exit);
                    live[node] = false;
                    done.push(format!("node {} exits", node + 1));
                }
                _ => {}
            }
            sim.run_for(ms(rng.below(2000)));
        }
        // Every fault is over, every back-off came round.
        sim.run_for(EXPIRY + Duration::from_secs(3) + NODE_RETRY_MAX + HEARTBEAT);
        converged(&sim, &live).map_err(|e| format!("round {round} ({done:?}), settled: {e}"))?;

        // The tracker dies and comes back without its last saves.
        let lost = match rng.below(5) {
            4 => SAVES_KEPT,
            n => n as usize,
        };
        sim.schedule(Duration::ZERO, Fault::TrackerCrash);
        sim.run_for(ms(1));
        sim.lose_tracker_saves(lost);
        sim.schedule(Duration::ZERO, Fault::TrackerStart);
        sim.run_for(HEARTBEAT + REGISTRY_SAVE_DELAY + ms(100));
        converged(&sim, &live).map_err(|e| {
            format!("round {round} ({done:?}), one heartbeat after losing {lost} saves: {e}")
        })?;
    }
    sim.check()
}

#[test]
fn the_tracker_relearns_every_file_within_a_heartbeat() {
    for seed in seeds() {
        if let Err(error) = run(seed) {
            panic!("seed {seed} (replay with SIM_SEED={seed}): {error}");
        }
    }
}
