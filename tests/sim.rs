//! Whole swarms in one process: a tracker and nodes driven by `torrent::sim` from a seed.
//!
//! `SIM_SEED=n cargo test --test sim` replays seed `n` in every test that sweeps seeds;
//! `SIM_SEEDS=n` sweeps seeds `0..n` instead of the default 8. A failing run's message names
//! its seed.

use std::time::Duration;
use torrent::console::Command;
use torrent::node::{NodeConfig, PaceMode};
use torrent::sim::{Capacity, NetConfig, Sim};

const NAME: &str = "file_A.bin";
/// Seeds swept by default.
const SEEDS: u64 = 8;

/// The seeds to run: `SIM_SEED` alone when set, else `0..SIM_SEEDS` (default [`SEEDS`]).
fn seeds() -> Vec<u64> {
    let number = |var: &str| {
        std::env::var(var).ok().map(|text| {
            text.trim()
                .parse::<u64>()
                .expect("SIM_SEED(S) must be a number")
        })
    };
    match number("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..number("SIM_SEEDS").unwrap_or(SEEDS)).collect(),
    }
}

/// Content that differs at every offset, so a misplaced piece shows.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = torrent::rng::Rng::new(seed ^ 0x5eed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn small_chunks(piece_bytes: u32) -> impl Fn(&mut NodeConfig) {
    move |config: &mut NodeConfig| {
        config.chunk_bytes = 64 * 1024;
        config.piece_bytes = piece_bytes;
    }
}

struct Swarm {
    sim: Sim,
    holders: Vec<usize>,
    downloader: usize,
    bytes: Vec<u8>,
}

/// A tracker, `holders` nodes sharing one file of `len` bytes (each has said "sharing"), and
/// a node that will download it.
fn swarm(seed: u64, net: NetConfig, len: usize, holders: usize, piece_bytes: u32) -> Swarm {
    swarm_with(seed, net, len, holders, piece_bytes, |_| {})
}

/// [`swarm`], with `holder_config` applied to the holders' configuration.
fn swarm_with(
    seed: u64,
    net: NetConfig,
    len: usize,
    holders: usize,
    piece_bytes: u32,
    holder_config: impl Fn(&mut NodeConfig),
) -> Swarm {
    let mut sim = Sim::new(seed, net);
    let bytes = content(len, seed);
    let holders: Vec<usize> = (0..holders)
        .map(|_| {
            sim.add_node(|config| {
                small_chunks(piece_bytes)(config);
                holder_config(config);
            })
        })
        .collect();
    let downloader = sim.add_node(small_chunks(piece_bytes));
    for &holder in &holders {
        sim.write_file(holder, NAME, &bytes);
        sim.command(
            holder,
            Command::Send {
                name: NAME.to_string(),
            },
        );
    }
    let sharing = holders.clone();
    sim.run_until(
        |sim| sharing.iter().all(|&h| sim.said_starting(h, "sharing ")),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|error| panic!("sharing: {error}"));
    Swarm {
        sim,
        holders,
        downloader,
        bytes,
    }
}

impl Swarm {
    fn download(&mut self) {
        self.sim.command(
            self.downloader,
            Command::Download {
                name: NAME.to_string(),
                pin: None,
            },
        );
    }

    /// Runs until the downloader said "downloaded", then checks the bytes.
    fn finish(&mut self, virtual_limit: Duration) {
        let downloader = self.downloader;
        let result = self.sim.run_until(
            |sim| {
                sim.said_starting(downloader, "downloaded ")
                    || sim.said_starting(downloader, "download ")
            },
            virtual_limit,
        );
        if let Err(error) = result {
            panic!("download: {error}");
        }
        let seed = self.sim.seed();
        assert!(
            self.sim.said_starting(downloader, "downloaded "),
            "seed {seed}: download failed: {:?}",
            self.sim.said(downloader)
        );
        if std::env::var_os("SIM_VERBOSE").is_some() {
            eprintln!(
                "seed {seed}: {} bytes in virtual {:?}; {:?}; {:?}",
                self.bytes.len(),
                self.sim.elapsed(),
                self.sim.stats,
                self.sim.said(downloader)
            );
        }
        let got = self.sim.file(downloader, NAME);
        assert!(got.is_some(), "seed {seed}: {NAME} is not in the directory");
        assert!(
            got.as_deref() == Some(&self.bytes[..]),
            "seed {seed}: {NAME} differs from the original ({} bytes, expected {})",
            got.map_or(0, |g| g.len()),
            self.bytes.len()
        );
    }
}

fn transfer(seed: u64, net: NetConfig, len: usize, piece_bytes: u32, limit: Duration) {
    let mut swarm = swarm(seed, net, len, 2, piece_bytes);
    swarm.download();
    swarm.finish(limit);
}

const PERFECT: NetConfig = NetConfig {
    latency: Duration::from_micros(100),
    jitter: Duration::ZERO,
    loss: 0.0,
    duplicate: 0.0,
    corrupt_piece: 0.0,
};

fn lossy(loss: f64) -> NetConfig {
    NetConfig {
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(3),
        loss,
        duplicate: loss / 2.0,
        corrupt_piece: 0.0,
    }
}

const MIB: usize = 1024 * 1024;

#[test]
fn empty_file() {
    let mut swarm = swarm(1, PERFECT, 0, 2, 1400);
    swarm.download();
    swarm.finish(Duration::from_secs(30));
    let said = swarm.sim.said(swarm.downloader);
    assert!(
        said.iter().any(|l| l.ends_with("(the file is empty)")),
        "{said:?}"
    );
}

#[test]
fn one_byte_file() {
    transfer(2, PERFECT, 1, 1400, Duration::from_secs(30));
}

#[test]
fn many_chunks_large_pieces() {
    transfer(3, PERFECT, MIB + 1, 64 * 1024 - 64, Duration::from_secs(30));
}

#[test]
fn many_chunks_small_pieces() {
    transfer(4, PERFECT, MIB + 1, 1400, Duration::from_secs(30));
}

#[test]
fn five_percent_loss_sweep() {
    for seed in seeds() {
        transfer(seed, lossy(0.05), MIB + 1, 1400, Duration::from_secs(60));
    }
}

#[test]
fn twenty_percent_loss_sweep() {
    for seed in seeds() {
        let len = [0, 1, 200_000, MIB + 1][seed as usize % 4];
        let piece_bytes = if seed % 2 == 0 { 1400 } else { 16 * 1024 };
        transfer(seed, lossy(0.2), len, piece_bytes, Duration::from_secs(120));
    }
}

#[test]
fn holder_vanishes_mid_transfer() {
    for seed in seeds() {
        let mut swarm = swarm(seed, lossy(0.01), MIB + 1, 2, 1400);
        swarm.download();
        let downloader = swarm.downloader;
        // Let some pieces arrive from both holders, then cut one off.
        let name = NAME.to_string();
        swarm
            .sim
            .run_until(
                |sim| {
                    sim.node(downloader)
                        .progress(sim.now())
                        .iter()
                        .any(|p| p.name == name && p.verified_bytes >= 4 * 64 * 1024)
                },
                Duration::from_secs(30),
            )
            .unwrap_or_else(|error| panic!("progress: {error}"));
        let gone = swarm.holders[seed as usize % 2];
        swarm.sim.disconnect(gone);
        swarm.finish(Duration::from_secs(60));
    }
}

/// A seed replays its run exactly: the same datagrams at the same virtual times (the trace
/// digest that issue 15's redesign is checked by), and another seed gives another run.
#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut swarm = swarm(seed, lossy(0.05), 300_000, 2, 1400);
        swarm.download();
        swarm.finish(Duration::from_secs(60));
        (
            swarm.sim.elapsed(),
            swarm.sim.stats.delivered,
            swarm.sim.trace_digest(),
        )
    };
    let first = run(7);
    assert_eq!(first, run(7));
    assert_ne!(first.2, run(8).2, "another seed, another trace");
}

/// One seeder and several nodes downloading at once: they also trade chunks among
/// themselves, and every one ends with the whole file.
#[test]
fn one_seeder_many_downloaders_at_once() {
    for seed in seeds() {
        // A slow seeder, so that downloaders spend a while holding part of the file.
        let slow = |config: &mut NodeConfig| config.max_upload_bytes_per_s = Some(1_000_000);
        let mut swarm = swarm_with(seed, lossy(0.02), MIB + 1, 1, 1400, slow);
        if std::env::var_os("SIM_VERBOSE").is_some() {
            eprintln!("seed {seed}");
        }
        let mut downloaders = vec![swarm.downloader];
        for _ in 0..4 {
            downloaders.push(swarm.sim.add_node(small_chunks(1400)));
        }
        // Staggered starts: later nodes find earlier ones holding part of the file.
        for &node in &downloaders {
            swarm.sim.command(
                node,
                Command::Download {
                    name: NAME.to_string(),
                    pin: None,
                },
            );
            swarm.sim.run_for(Duration::from_millis(150));
        }
        let all = downloaders.clone();
        let result = swarm.sim.run_until(
            |sim| {
                all.iter()
                    .all(|&n| sim.said(n).iter().any(|l| l.starts_with("download")))
            },
            Duration::from_secs(120),
        );
        if let Err(error) = result {
            panic!("swarm: {error}");
        }
        for &node in &downloaders {
            if std::env::var_os("SIM_VERBOSE").is_some() {
                eprintln!("  {:?}", swarm.sim.said(node));
            }
            assert!(
                swarm.sim.file(node, NAME).as_deref() == Some(&swarm.bytes[..]),
                "seed {seed}: node index {node} does not have the file: {:?}",
                swarm.sim.said(node)
            );
        }
    }
}

/// Downloads that pace every peer (`--pace all`: the simulation's routes are loopback-class,
/// which the default leaves unpaced) complete byte for byte through loss and duplication,
/// with paced requests and stamped pieces on the wire, and a holder's upload cap still holds
/// on top of the pace its peers ask for.
#[test]
fn paced_downloads_complete_and_the_upload_cap_holds() {
    const CAP_BYTES_PER_S: u64 = 200_000;
    for seed in seeds() {
        let capped = |config: &mut NodeConfig| {
            config.max_upload_bytes_per_s = Some(CAP_BYTES_PER_S);
        };
        let mut swarm = swarm_with(seed, lossy(0.02), MIB + 1, 1, 1400, capped);
        let holder = swarm.holders[0];
        let paced = |config: &mut NodeConfig| {
            small_chunks(1400)(config);
            config.pace = PaceMode::Always;
        };
        let downloaders: Vec<usize> = (0..2).map(|_| swarm.sim.add_node(paced)).collect();
        let sent_before = swarm.sim.node(holder).stats().bytes_sent;
        let started = swarm.sim.elapsed();
        for &node in &downloaders {
            swarm.sim.command(
                node,
                Command::Download {
                    name: NAME.to_string(),
                    pin: None,
                },
            );
        }
        let all = downloaders.clone();
        swarm
            .sim
            .run_until(
                |sim| {
                    all.iter()
                        .all(|&n| sim.said(n).iter().any(|l| l.starts_with("download")))
                },
                Duration::from_secs(120),
            )
            .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
        for &node in &downloaders {
            assert!(
                swarm.sim.file(node, NAME).as_deref() == Some(&swarm.bytes[..]),
                "seed {seed}: node index {node} does not have the file: {:?}",
                swarm.sim.said(node)
            );
        }
        let seconds = (swarm.sim.elapsed() - started).as_secs_f64();
        let sent = swarm.sim.node(holder).stats().bytes_sent - sent_before;
        // The budget's first burst comes on top of the rate.
        let allowed = CAP_BYTES_PER_S as f64 * seconds * 1.05 + 256.0 * 1024.0;
        assert!(
            (sent as f64) <= allowed,
            "seed {seed}: the holder sent {sent} bytes in {seconds:.2} s under a cap of \
             {CAP_BYTES_PER_S} bytes/s"
        );
    }
}

/// The download limit holds whatever the holders could send (paced or not): the file takes
/// at least its size over the limit (less a burst), and not much longer.
#[test]
fn the_download_limit_holds() {
    const LIMIT_BYTES_PER_S: u64 = 300_000;
    for seed in seeds() {
        for pace in [PaceMode::Off, PaceMode::Always] {
            let mut swarm = swarm(seed, lossy(0.01), MIB + 1, 2, 1400);
            let limited = |config: &mut NodeConfig| {
                small_chunks(1400)(config);
                config.pace = pace;
                config.max_download_bytes_per_s = Some(LIMIT_BYTES_PER_S);
            };
            swarm.downloader = swarm.sim.add_node(limited);
            let started = swarm.sim.elapsed();
            swarm.download();
            swarm.finish(Duration::from_secs(60));
            let seconds = (swarm.sim.elapsed() - started).as_secs_f64();
            let bytes = swarm.bytes.len() as f64;
            // Within a burst (100 ms worth) of the limit, never past it.
            let at_most = LIMIT_BYTES_PER_S as f64 * (seconds + 0.1);
            assert!(
                bytes <= at_most,
                "seed {seed}, {pace:?}: {bytes} bytes in {seconds:.2} s under a limit of {LIMIT_BYTES_PER_S} bytes/s"
            );
            assert!(
                seconds < 2.0 * bytes / LIMIT_BYTES_PER_S as f64 + 2.0,
                "seed {seed}, {pace:?}: {seconds:.2} s for {bytes} bytes: the limit is not used"
            );
        }
    }
}

/// `exit` tells the tracker, which forgets the node and its files.
#[test]
fn exit_leaves_the_tracker() {
    let mut swarm = swarm(5, lossy(0.05), 1000, 1, 1400);
    let holder = swarm.holders[0];
    assert_eq!(swarm.sim.tracker().file_count(), 1);
    swarm.sim.command(holder, Command::Exit);
    swarm
        .sim
        .run_until(|sim| sim.exited(holder).is_some(), Duration::from_secs(5))
        .unwrap_or_else(|error| panic!("exit: {error}"));
    assert_eq!(swarm.sim.exited(holder), Some(0));
    swarm.sim.run_for(Duration::from_secs(1));
    // Lost exits are possible at 5% loss; but the file's only holder is gone either way
    // once its registration expires.
    swarm.sim.run_for(Duration::from_secs(30));
    assert_eq!(swarm.sim.tracker().file_count(), 0);
    assert_eq!(swarm.sim.tracker().node_count(), 1);
}

/// Heartbeats keep nodes registered through a long quiet spell on a lossy network.
#[test]
fn heartbeats_keep_nodes_alive() {
    for seed in seeds() {
        let mut swarm = swarm(seed, lossy(0.2), 1000, 2, 1400);
        swarm.sim.run_for(Duration::from_secs(300));
        assert_eq!(swarm.sim.tracker().node_count(), 3, "seed {seed}");
        assert_eq!(swarm.sim.tracker().file_count(), 1, "seed {seed}");
    }
}

/// A downloader that crashes mid-transfer resumes from its partial file after a restart.
#[test]
fn downloader_restarts_and_resumes() {
    for seed in seeds() {
        let mut swarm = swarm(seed, lossy(0.02), MIB + 1, 2, 1400);
        swarm.download();
        let downloader = swarm.downloader;
        let name = NAME.to_string();
        swarm
            .sim
            .run_until(
                |sim| {
                    sim.node(downloader)
                        .progress(sim.now())
                        .iter()
                        .any(|p| p.name == name && p.verified_bytes >= 6 * 64 * 1024)
                },
                Duration::from_secs(30),
            )
            .unwrap_or_else(|error| panic!("progress: {error}"));
        swarm.sim.restart(downloader);
        swarm.download();
        swarm.finish(Duration::from_secs(60));
        let done = swarm
            .sim
            .said(downloader)
            .last()
            .cloned()
            .unwrap_or_default();
        assert!(
            !done.contains("node 1: 17 chunks") && !done.contains("node 2: 17 chunks"),
            "seed {seed}: nothing was resumed: {done}"
        );
    }
}

/// `export` waits for the file being hashed or downloaded, then writes `<file>.torrent`
/// whose info-hash is ours; `status` shows a magnet link for complete files.
#[test]
fn export_writes_a_standard_torrent() {
    let mut sim = Sim::new(1, NetConfig::default());
    let holder = sim.add_node(small_chunks(16 * 1024));
    let downloader = sim.add_node(small_chunks(16 * 1024));
    let bytes = content(300_000, 1);
    sim.write_file(holder, NAME, &bytes);
    sim.command(
        holder,
        Command::Export {
            name: NAME.to_string(),
        },
    );
    assert!(sim.said_starting(
        holder,
        "cannot export file_A.bin: this node does not hold it"
    ));
    sim.command(
        holder,
        Command::Send {
            name: NAME.to_string(),
        },
    );
    sim.command(
        holder,
        Command::Export {
            name: NAME.to_string(),
        },
    );
    sim.run_until(
        |sim| sim.said_starting(holder, "sharing "),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|error| panic!("sharing: {error}"));
    assert!(sim.said_starting(holder, "exported file_A.bin to "));
    let torrent = sim
        .file(holder, "file_A.bin.torrent")
        .expect("the .torrent is in the node's directory");
    let torrent = torrent::bencode::decode(&torrent).expect("the .torrent is bencode");
    let announce = torrent.get("announce").and_then(|v| v.as_bytes()).unwrap();
    assert!(announce.starts_with(b"udp://") && announce.ends_with(b"/announce"));
    let info = torrent.get("info").unwrap();
    assert_eq!(info.get("length").and_then(|v| v.as_int()), Some(300_000));
    let info_hash = sha1_of(&info.to_bytes());
    let manifest = torrent::storage::Manifest::new(
        NAME.into(),
        300_000,
        64 * 1024,
        (0..5)
            .map(|chunk| {
                let start = chunk * 64 * 1024;
                sha1_of(&bytes[start..(start + 64 * 1024).min(bytes.len())])
            })
            .collect(),
    );
    assert_eq!(info_hash, manifest.info_hash);

    sim.command(holder, Command::Status);
    let hex = torrent::wire::hex(&info_hash);
    let magnet = format!("magnet:?xt=urn:btih:{hex}&dn=file_A.bin&tr=udp%3A%2F%2F");
    assert!(
        sim.said(holder).iter().any(|line| line.contains(&magnet)),
        "no magnet link in status: {:?}",
        sim.said(holder)
    );

    // A downloader exports too, once it holds the file.
    sim.command(
        downloader,
        Command::Download {
            name: NAME.to_string(),
            pin: None,
        },
    );
    sim.command(
        downloader,
        Command::Export {
            name: NAME.to_string(),
        },
    );
    sim.run_until(
        |sim| sim.said_starting(downloader, "downloaded "),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|error| panic!("download: {error}"));
    assert!(sim.said_starting(downloader, "exported file_A.bin to "));
    assert_eq!(
        sim.file(downloader, "file_A.bin.torrent"),
        sim.file(holder, "file_A.bin.torrent")
    );
    sim.cleanup();
}

fn sha1_of(bytes: &[u8]) -> [u8; 20] {
    torrent::hash::sha1(bytes)
}

/// A partition cuts the downloader off from every holder mid-transfer (the tracker stays
/// reachable); once it heals, the download finishes from the same holders.
#[test]
fn partition_from_every_holder_heals() {
    use torrent::sim::{Endpoint, Fault};
    for seed in seeds() {
        let mut swarm = swarm(seed, lossy(0.02), MIB + 1, 2, 1400);
        swarm.download();
        let downloader = swarm.downloader;
        let name = NAME.to_string();
        swarm
            .sim
            .run_until(
                |sim| {
                    sim.node(downloader)
                        .progress(sim.now())
                        .iter()
                        .any(|p| p.name == name && p.verified_bytes >= 4 * 64 * 1024)
                },
                Duration::from_secs(30),
            )
            .unwrap_or_else(|error| panic!("progress: {error}"));
        let holders = swarm.holders.iter().map(|&h| Endpoint::Node(h)).collect();
        swarm.sim.schedule(
            Duration::ZERO,
            Fault::Partition {
                sides: [vec![Endpoint::Node(downloader)], holders],
                heal_after: Duration::from_secs(5),
            },
        );
        swarm.finish(Duration::from_secs(25));
    }
}

/// The link model: a holder whose upload capacity is C, or a downloader whose download
/// capacity is C, cannot move a file of F bytes in less than F / C of virtual time, and a
/// single download keeps such a link busy (done within twice that).
#[test]
fn link_capacity_bounds_a_download() {
    const CAPACITY: u64 = 512 * 1024;
    let len = MIB + 1;
    let least = Duration::from_secs_f64(len as f64 / CAPACITY as f64);
    for upload_side in [true, false] {
        let mut swarm = swarm(11, PERFECT, len, 1, 16 * 1024);
        let (node, capacity) = if upload_side {
            let capacity = Capacity {
                upload_bytes_per_s: Some(CAPACITY),
                download_bytes_per_s: None,
            };
            (swarm.holders[0], capacity)
        } else {
            let capacity = Capacity {
                upload_bytes_per_s: None,
                download_bytes_per_s: Some(CAPACITY),
            };
            (swarm.downloader, capacity)
        };
        swarm.sim.set_capacity(node, capacity);
        let start = swarm.sim.elapsed();
        swarm.download();
        swarm.finish(Duration::from_secs(60));
        let took = swarm.sim.elapsed() - start;
        assert!(
            took >= least && took <= least * 2,
            "{capacity:?}: {len} bytes took {took:?}; the link allows no less than {least:?}"
        );
    }
}

/// A paused download asks nothing and takes nothing: once the pieces already asked have
/// come (or timed out), the holders send no more pieces and the downloader receives none,
/// whatever the length of the pause. Resumed, it finishes from where it stood, and the file
/// is whole.
#[test]
fn a_paused_download_takes_nothing_and_resumed_finishes() {
    for seed in seeds() {
        let mut swarm = swarm(seed, lossy(0.01), 2 * MIB + 7, 2, 1400);
        swarm.download();
        let downloader = swarm.downloader;
        let name = NAME.to_string();
        let verified = |sim: &Sim| {
            let progress = sim.node(downloader).progress(sim.now());
            progress
                .iter()
                .find(|p| p.name == name)
                .map_or(0, |p| p.verified_bytes)
        };
        swarm
            .sim
            .run_until(
                |sim| verified(sim) >= 4 * 64 * 1024,
                Duration::from_secs(30),
            )
            .unwrap_or_else(|error| panic!("progress: {error}"));
        swarm
            .sim
            .command(downloader, Command::Pause { target: "1".into() });
        assert!(
            swarm
                .sim
                .said_starting(downloader, "paused download 1 (file_A.bin)"),
            "seed {seed}: {:?}",
            swarm.sim.said(downloader)
        );
        // What was asked before the pause may still arrive: let it.
        swarm.sim.run_for(Duration::from_secs(3));
        let sent = |sim: &Sim, holders: &[usize]| -> u64 {
            holders
                .iter()
                .map(|&h| sim.node(h).stats().pieces_sent)
                .sum()
        };
        let received = swarm.sim.node(downloader).stats().pieces_received;
        let holders_sent = sent(&swarm.sim, &swarm.holders);
        swarm.sim.run_for(Duration::from_secs(60));
        assert_eq!(
            (
                swarm.sim.node(downloader).stats().pieces_received,
                sent(&swarm.sim, &swarm.holders)
            ),
            (received, holders_sent),
            "seed {seed}: pieces moved while the download was paused"
        );
        assert!(!swarm.sim.node(downloader).downloading(), "seed {seed}");
        swarm.sim.command(
            downloader,
            Command::Resume {
                target: NAME.into(),
            },
        );
        assert!(
            swarm
                .sim
                .said_starting(downloader, "resumed download 1 (file_A.bin)")
        );
        swarm.finish(Duration::from_secs(60));
    }
}
