//! The simulation with round trips this sandbox cannot emulate (issue 14): links with a
//! propagation delay, and a bottleneck queue with a byte limit that drops its tail.
//!
//! * downloads at RTT 20 ms, at RTT 100 ms, and with every node at its own distance (pair
//!   RTTs from 1 to 100 ms) complete byte-identical;
//! * one holder, one downloader behind a 100 Mbit/s bottleneck with a 256 KiB queue (as
//!   `tc tbf rate 100mbit limit 256kb` in `bench/netlab.py`), at RTT 1, 20 and 100 ms: the
//!   download completes byte-identical, and the test prints the goodput as a fraction of the
//!   bottleneck rate, the drops at the queue and the queueing delay it added. These figures
//!   are not asserted yet: congestion control (issue 14) will assert "drops at the queue
//!   ≤ 1% of packets" and "queueing delay added ≤ 25 ms" on them; the same with a deep
//!   (4 MB) queue at RTT 1 and 20 ms;
//! * the 200-node swarm of `tests/sim_tstar.rs` at RTT 20 ms completes within 2 T* (the
//!   issue's goal, at seeds 1 to 10; ignored by default for its run time), and the shape of
//!   the loopback scenario S3 at RTT 20 ms takes about one copy from the holder.
//!
//! `SIM_SEED=n` replays one seed (a failure names it); `cargo test --release --test
//! sim_delay -- --nocapture` shows the figures; the ignored T* run is `cargo test --release
//! --test sim_delay -- --ignored --nocapture` (add `SIM_SEEDS=10` for seeds 1 to 10).

use std::time::{Duration, Instant};
use torrent::console::Command;
use torrent::node::NodeConfig;
use torrent::rng::Rng;
use torrent::sim::{Capacity, LinkSpec, NetConfig, Sim};

const NAME: &str = "file_D.bin";
const MS: Duration = Duration::from_millis(1);
/// The piece size of a 1,500-byte link (what issue 14 makes the default off loopback).
const MTU_PIECE_BYTES: u32 = 1400;

/// The seeds to run: `SIM_SEED` alone when set, else `1..=SIM_SEEDS` (default `default`).
fn seeds(default: u64) -> Vec<u64> {
    let number = |var: &str| {
        std::env::var(var).ok().map(|text| {
            text.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{var} must be a number"))
        })
    };
    match number("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=number("SIM_SEEDS").unwrap_or(default)).collect(),
    }
}

/// Content that differs at every offset, so a misplaced piece shows.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn pieces(chunk_bytes: u32, piece_bytes: u32) -> impl Fn(&mut NodeConfig) {
    move |config: &mut NodeConfig| {
        config.chunk_bytes = chunk_bytes;
        config.piece_bytes = piece_bytes;
    }
}

/// A network with no delay of its own: every delay is on the nodes' links.
fn links_only() -> NetConfig {
    NetConfig::default()
}

/// Has `holder` share `bytes` and waits until it says so.
fn share(sim: &mut Sim, holder: usize, bytes: &[u8]) {
    sim.write_file(holder, NAME, bytes);
    sim.command(
        holder,
        Command::Send {
            name: NAME.to_string(),
        },
    );
    sim.run_until(
        |sim| sim.said_starting(holder, "sharing "),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|error| panic!("sharing: {error}"));
}

fn download(sim: &mut Sim, node: usize) {
    sim.command(
        node,
        Command::Download {
            name: NAME.to_string(),
            pin: None,
        },
    );
}

/// Runs until every downloader has said "downloaded" (or one said its download failed),
/// then checks that each holds the original.
fn finish(sim: &mut Sim, downloaders: &[usize], bytes: &[u8], label: &str, limit: Duration) {
    let seed = sim.seed();
    let result = sim.run_until(
        |sim| {
            downloaders.iter().all(|&n| sim.completed(n, NAME))
                || downloaders
                    .iter()
                    .any(|&n| sim.said_starting(n, "download "))
        },
        limit,
    );
    if let Err(error) = result {
        panic!("{label}: {error}");
    }
    sim.check()
        .unwrap_or_else(|error| panic!("{label}: {error}"));
    for &node in downloaders {
        assert!(
            sim.completed(node, NAME),
            "seed {seed} (replay with SIM_SEED={seed}), {label}: node index {node} failed: {:?}",
            sim.said(node)
        );
        assert!(
            sim.file(node, NAME).as_deref() == Some(bytes),
            "seed {seed} (replay with SIM_SEED={seed}), {label}: node index {node} does not hold the original"
        );
    }
}

/// One holder and three downloaders, each node's link `one_way_delay(seed, node)` from the
/// network; the downloads start together and must all complete byte-identical.
fn swarm_at_distance(label: &str, seed: u64, one_way_delay: impl Fn(&mut Rng) -> Duration) {
    const DOWNLOADERS: usize = 3;
    let mut rng = Rng::new(seed ^ 0xde1a_0000);
    let mut sim = Sim::new(seed, links_only());
    let len = (1 << 20) + 1 + rng.below(64 << 10) as usize;
    let bytes = content(len, seed);
    let nodes: Vec<usize> = (0..=DOWNLOADERS)
        .map(|_| sim.add_node(pieces(64 << 10, MTU_PIECE_BYTES)))
        .collect();
    let mut delays = Vec::new();
    for &node in &nodes {
        let delay = one_way_delay(&mut rng);
        delays.push(delay);
        sim.set_link(
            node,
            LinkSpec {
                one_way_delay: delay,
                ..LinkSpec::default()
            },
        );
    }
    let (holder, downloaders) = (nodes[0], &nodes[1..]);
    share(&mut sim, holder, &bytes);
    let start = sim.elapsed();
    for &node in downloaders {
        download(&mut sim, node);
    }
    finish(
        &mut sim,
        downloaders,
        &bytes,
        label,
        Duration::from_secs(120),
    );
    // Each download needs at least one round trip to the holder (a request, its pieces).
    let took = sim.elapsed() - start;
    let nearest_downloader = delays[1..].iter().min().copied().unwrap_or_default();
    let rtt_least = 2 * (delays[0] + nearest_downloader);
    assert!(
        took >= rtt_least,
        "seed {seed} (replay with SIM_SEED={seed}), {label}: done in {took:?}, less than a round trip ({rtt_least:?})"
    );
    eprintln!(
        "{label}: seed {seed}, {len} bytes to {DOWNLOADERS} downloaders in virtual {took:?}; one-way delays {delays:?}; {:?}",
        sim.stats
    );
}

#[test]
fn downloads_complete_at_rtt_20_ms() {
    // Two nodes 5 ms from the network each: 2 × (5 + 5) = 20 ms between them.
    for seed in seeds(2) {
        swarm_at_distance("RTT 20 ms", seed, |_| 5 * MS);
    }
}

#[test]
fn downloads_complete_at_rtt_100_ms() {
    for seed in seeds(2) {
        swarm_at_distance("RTT 100 ms", seed, |_| 25 * MS);
    }
}

/// Every node at its own distance, drawn from the seed: pair RTTs from 1 to 100 ms, so
/// that a downloader's peers answer at different paces.
#[test]
fn downloads_complete_with_rtts_from_1_to_100_ms() {
    for seed in seeds(2) {
        swarm_at_distance("RTT 1-100 ms", seed, |rng| {
            Duration::from_micros(250 + rng.below(24_750 + 1))
        });
    }
}

/// The bottleneck of `bench/netlab.py`: 100 Mbit/s, 256 KiB of queue.
const BOTTLENECK_BYTES_PER_S: u64 = 100_000_000 / 8;
const BOTTLENECK_QUEUE_BYTES: u64 = 256 * 1024;
/// The deep queue of the goals ("queueing delay added ≤ 25 ms"): 4 MB, 335 ms of
/// the bottleneck's rate.
const DEEP_QUEUE_BYTES: u64 = 4_000_000;
const BOTTLENECK_FILE_BYTES: usize = 16 << 20;
/// The receive buffer a real node asks for and gets here (`--socket-buffer`, `rmem_max`).
const SOCKET_BUFFER_BYTES: u64 = 4 << 20;

/// The window a real node runs with: what `reactor.rs` derives from the receive buffer the
/// kernel granted (half of it for pieces, shared by `peers_max` peers). The simulation's
/// default (`NodeConfig::new`, 64 pieces) would hide what the bottleneck does to a real
/// node's window: 64 pieces of 1,400 bytes never fill a 256 KiB queue.
fn reactor_window_pieces(config: &NodeConfig) -> u32 {
    let piece_cost =
        u64::from(config.piece_bytes) + torrent::wire::PIECE_OVERHEAD_BYTES as u64 + 1024;
    ((SOCKET_BUFFER_BYTES / 2 / piece_cost) / config.peers_max as u64).clamp(4, 4096) as u32
}

fn bottleneck_node(config: &mut NodeConfig) {
    pieces(256 << 10, MTU_PIECE_BYTES)(config);
    config.window_pieces_max = reactor_window_pieces(config);
}

/// One holder with a fast link sends to a downloader behind the bottleneck (its download
/// queue), both `rtt / 4` from the network, with a real node's window. Returns nothing:
/// the figures are printed.
fn bottleneck(seed: u64, rtt: Duration, queue_bytes_max: u64) {
    let label = format!("bottleneck 100 Mbit/s, {queue_bytes_max}-byte queue, RTT {rtt:?}");
    let started = Instant::now();
    let mut sim = Sim::new(seed, links_only());
    let holder = sim.add_node(bottleneck_node);
    let downloader = sim.add_node(bottleneck_node);
    sim.set_link(
        holder,
        LinkSpec {
            one_way_delay: rtt / 4,
            ..LinkSpec::default()
        },
    );
    sim.set_link(
        downloader,
        LinkSpec {
            capacity: Capacity {
                upload_bytes_per_s: None,
                download_bytes_per_s: Some(BOTTLENECK_BYTES_PER_S),
            },
            one_way_delay: rtt / 4,
            download_queue_bytes_max: Some(queue_bytes_max),
            ..LinkSpec::default()
        },
    );
    let bytes = content(BOTTLENECK_FILE_BYTES, seed);
    share(&mut sim, holder, &bytes);
    let before = sim.link_stats(downloader).download;
    let start = sim.elapsed();
    download(&mut sim, downloader);
    finish(
        &mut sim,
        &[downloader],
        &bytes,
        &label,
        Duration::from_secs(120),
    );
    let took = sim.elapsed() - start;
    let queue = sim.link_stats(downloader).download;
    let least =
        Duration::from_secs_f64(BOTTLENECK_FILE_BYTES as f64 / BOTTLENECK_BYTES_PER_S as f64);
    assert!(
        took >= least,
        "seed {seed}, {label}: {took:?}, faster than the bottleneck allows ({least:?})"
    );
    let goodput_fraction = least.as_secs_f64() / took.as_secs_f64();
    let offered = queue.datagrams_forwarded + queue.datagrams_dropped
        - before.datagrams_forwarded
        - before.datagrams_dropped;
    let dropped = queue.datagrams_dropped - before.datagrams_dropped;
    let window = took;
    let delay_integral =
        queue.queueing_delay_seconds_squared - before.queueing_delay_seconds_squared;
    let holder_copies = sim.node(holder).stats().bytes_sent as f64 / BOTTLENECK_FILE_BYTES as f64;
    eprintln!(
        "{label}: seed {seed}: {BOTTLENECK_FILE_BYTES} bytes in virtual {took:.3?} \
         (the link allows {least:.3?}): goodput {goodput_fraction:.3} of the rate; \
         at the queue {dropped} of {offered} datagrams dropped ({:.2}%); queueing delay \
         {:.2?} averaged over time, {:.2?} per datagram, {:.2?} at most; backlog peak {} bytes; \
         the holder sent {holder_copies:.2} copies; {:.1} s of real time",
        dropped as f64 * 100.0 / offered.max(1) as f64,
        Duration::from_secs_f64(delay_integral / window.as_secs_f64()),
        queue.queueing_delay_mean_per_datagram(),
        queue.queueing_delay_max,
        queue.backlog_bytes_peak,
        started.elapsed().as_secs_f64(),
    );
}

/// Near the network of namespaces (RTT well under a millisecond there), to hold the model
/// against `bench/netlab.py`'s figures: there the window alone overfills the queue.
#[test]
fn bottleneck_at_rtt_1_ms() {
    for seed in seeds(1) {
        bottleneck(seed, MS, BOTTLENECK_QUEUE_BYTES);
    }
}

#[test]
fn bottleneck_at_rtt_20_ms() {
    for seed in seeds(1) {
        bottleneck(seed, 20 * MS, BOTTLENECK_QUEUE_BYTES);
    }
}

#[test]
fn bottleneck_at_rtt_100_ms() {
    for seed in seeds(1) {
        bottleneck(seed, 100 * MS, BOTTLENECK_QUEUE_BYTES);
    }
}

// ---- T* at RTT 20 ms ------------------------------------------------------------------------

/// The swarm of `tests/sim_tstar.rs` (equal capacities): one holder and 200 downloaders,
/// each uploading 1 MiB/s, a 4 MiB file in 64 KiB chunks of 8 KiB pieces.
const TSTAR_DOWNLOADERS: usize = 200;
const TSTAR_FILE_BYTES: usize = 4 << 20;
const TSTAR_UPLOAD_BYTES_PER_S: u64 = 1 << 20;

/// All 200 downloads at RTT 20 ms between every two nodes (4.5 ms on each node's link, the
/// 1 ms latency and 0.2 ms jitter of `sim_tstar.rs`); prints the time over T*.
fn tstar_at_rtt_20_ms(seed: u64) -> f64 {
    let started = Instant::now();
    let net = NetConfig {
        latency: MS,
        jitter: Duration::from_micros(200),
        ..NetConfig::default()
    };
    let mut sim = Sim::new(seed, net);
    let link = LinkSpec {
        capacity: Capacity {
            upload_bytes_per_s: Some(TSTAR_UPLOAD_BYTES_PER_S),
            download_bytes_per_s: None,
        },
        one_way_delay: Duration::from_micros(4_500),
        ..LinkSpec::default()
    };
    let nodes: Vec<usize> = (0..=TSTAR_DOWNLOADERS)
        .map(|_| {
            let node = sim.add_node(pieces(64 << 10, 8 << 10));
            sim.set_link(node, link);
            node
        })
        .collect();
    let (holder, downloaders) = (nodes[0], &nodes[1..]);
    let bytes = content(TSTAR_FILE_BYTES, seed);
    share(&mut sim, holder, &bytes);
    let start = sim.elapsed();
    for &node in downloaders {
        download(&mut sim, node);
    }
    // Every node uploads at the same rate: T* = N·F / ((N + 1)·u), or F / u if larger.
    let file = TSTAR_FILE_BYTES as f64;
    let upload = TSTAR_UPLOAD_BYTES_PER_S as f64;
    let n = TSTAR_DOWNLOADERS as f64;
    let t_star = (file / upload).max(n * file / ((n + 1.0) * upload));
    let limit = Duration::from_secs_f64(t_star * 20.0 + 30.0);
    let mut trace = std::env::var_os("SIM_TRACE").map(|_| Trace::new(downloaders.len()));
    if let Some(trace) = &mut trace {
        let result = sim.run_until(|sim| trace.sample(sim, holder, downloaders, start), limit);
        if let Err(error) = result {
            panic!("T* at RTT 20 ms: {error}");
        }
    }
    finish(&mut sim, downloaders, &bytes, "T* at RTT 20 ms", limit);
    if let Some(trace) = &trace {
        trace.print(seed);
        let sum = |f: fn(&torrent::node::NodeStats) -> u64| -> u64 {
            downloaders.iter().map(|&n| f(sim.node(n).stats())).sum()
        };
        let chunk_bytes = 64u64 << 10;
        let sends: Vec<String> = sim
            .node(holder)
            .inspect()
            .chunk_sends(NAME)
            .unwrap_or_default()
            .iter()
            .map(|&bytes| format!("{:.1}", bytes as f64 / chunk_bytes as f64))
            .collect();
        let stats = sim.node(holder).stats();
        eprintln!(
            "trace seed {seed}: downloaders' pieces timed out {}, duplicate {}, unrequested {}, \
             refused busy {}; the holder refused {} elsewhere, {} busy, sent {} pieces; copies of \
             each chunk the holder queued: {}",
            sum(|s| s.pieces_timed_out),
            sum(|s| s.pieces_duplicate),
            sum(|s| s.pieces_unrequested),
            sum(|s| s.requests_busy),
            stats.requests_elsewhere,
            stats.requests_busy,
            stats.pieces_sent,
            sends.join(" ")
        );
    }
    let took = (sim.elapsed() - start).as_secs_f64();
    let ratio = took / t_star;
    eprintln!(
        "T* at RTT 20 ms: seed {seed}, {TSTAR_DOWNLOADERS} downloaders: all verified at virtual \
         {took:.2} s; T* = {t_star:.2} s; ratio {ratio:.2} (goal 2); the holder uploaded {:.2} \
         copies; {:.1} s of real time; {:?}",
        sim.node(holder).stats().bytes_sent as f64 / file,
        started.elapsed().as_secs_f64(),
        sim.stats
    );
    ratio
}

/// Some 25-45 s of real time a seed, release, on a shared machine: ignored by default;
/// `cargo test --release --test sim_delay -- --ignored --nocapture` runs it (`SIM_TRACE=1`
/// prints where the time goes: see [`Trace`]). The goal is ≤ 2 T* at seeds 1 to 10.
/// At seeds 1 to 10 (2026-12-06): 2.03, 1.97, 2.00, 1.96, 2.05, 1.96, 2.01, 2.05, 1.99,
/// 1.94 T*. With the tracker-traffic backoff (2026-12-07, 02:52 UTC): 2.02, 2.09, 2.01, 1.92,
/// 2.01, 2.06, 2.02, 2.01, 2.00, 2.07 (mean 2.02; missed at 8 seeds). Most of the time over
/// T* was the holder sending chunks twice or more before every chunk had reached the swarm
/// once (1.8 copies, the last chunk first verified at 7.3 s of 8.4, seed 2). Since a
/// downloader starts one chunk at a time from a spreading holder and keeps its upload slot
/// while its pieces travel (2026-12-07, 04:30 UTC): 1.83, 1.88, 1.89, 1.80, 1.84, 1.87, 1.83,
/// 1.84, 1.91, 1.84 (mean 1.85): met at every seed, asserted.
#[test]
#[ignore = "over 60 s of real time; run with --ignored"]
fn tstar_swarm_at_rtt_20_ms() {
    let ratios: Vec<(u64, f64)> = seeds(2)
        .into_iter()
        .map(|seed| (seed, tstar_at_rtt_20_ms(seed)))
        .collect();
    eprintln!("T* at RTT 20 ms: (seed, ratio to T*) {ratios:.2?}");
    for (seed, ratio) in ratios {
        assert!(
            ratio <= 2.0,
            "seed {seed} (replay with SIM_SEED={seed}): {ratio:.2} × T* at RTT 20 ms, the goal is 2"
        );
    }
}

/// The shape of the loopback scenario S3 (`tests/sim_tstar.rs`,
/// `fast_downloaders_take_one_copy_from_the_holder`) at RTT 20 ms: a holder uploading
/// 1 MiB/s and 8 downloaders uploading 64 times faster, so that the holder's upload is all
/// that limits the swarm (T* = F / u_holder = 4 s). A spreading holder must send each chunk
/// about once; more copies are its upload spent twice on the same chunk.
fn fast_downloaders_at_rtt_20_ms(seed: u64) -> (f64, f64) {
    const DOWNLOADERS: usize = 8;
    const FAST_FACTOR: u64 = 64;
    let net = NetConfig {
        latency: MS,
        jitter: Duration::from_micros(200),
        ..NetConfig::default()
    };
    let mut sim = Sim::new(seed, net);
    let link = |upload_bytes_per_s| LinkSpec {
        capacity: Capacity {
            upload_bytes_per_s: Some(upload_bytes_per_s),
            download_bytes_per_s: None,
        },
        one_way_delay: Duration::from_micros(4_500),
        ..LinkSpec::default()
    };
    let holder = sim.add_node(pieces(64 << 10, 8 << 10));
    sim.set_link(holder, link(TSTAR_UPLOAD_BYTES_PER_S));
    let downloaders: Vec<usize> = (0..DOWNLOADERS)
        .map(|_| {
            let node = sim.add_node(pieces(64 << 10, 8 << 10));
            sim.set_link(node, link(TSTAR_UPLOAD_BYTES_PER_S * FAST_FACTOR));
            node
        })
        .collect();
    let bytes = content(TSTAR_FILE_BYTES, seed);
    share(&mut sim, holder, &bytes);
    let start = sim.elapsed();
    for &node in &downloaders {
        download(&mut sim, node);
    }
    let t_star = TSTAR_FILE_BYTES as f64 / TSTAR_UPLOAD_BYTES_PER_S as f64;
    let limit = Duration::from_secs_f64(t_star * 20.0 + 30.0);
    finish(
        &mut sim,
        &downloaders,
        &bytes,
        "S3 shape at RTT 20 ms",
        limit,
    );
    let ratio = (sim.elapsed() - start).as_secs_f64() / t_star;
    let copies = sim.node(holder).stats().bytes_sent as f64 / TSTAR_FILE_BYTES as f64;
    eprintln!(
        "S3 shape at RTT 20 ms: seed {seed}: all verified at {ratio:.2} T*; the holder \
         uploaded {copies:.2} copies"
    );
    (ratio, copies)
}

/// A downloader that started a chunk from a spreading holder waits for its first piece
/// before asking for the rest; meanwhile it used to start chunk after chunk, and its upload
/// slot went to another peer while that first piece was on its way. The chunks it held up
/// were offered to others again. At seeds 1-10 (2026-12-07) the holder sent 1.07-1.23
/// copies (median 1.14) and the swarm took 1.09-1.25 T* (median 1.17); since a downloader
/// starts one chunk at a time there and keeps its slot while its pieces travel, 1.04-1.08
/// copies and 1.06-1.11 T*; at seeds 1-20 (2026-12-07, `SIM_SEEDS=20`), 1.02-1.10 copies
/// (seed 16 the most) and 1.06-1.13 T*. The bound of 1.12 copies still fails the median
/// before the change (1.14).
#[test]
fn fast_downloaders_take_one_copy_from_the_holder_at_rtt_20_ms() {
    for seed in seeds(2) {
        let (ratio, copies) = fast_downloaders_at_rtt_20_ms(seed);
        assert!(
            copies <= 1.12,
            "seed {seed} (replay with SIM_SEED={seed}): the holder sent {copies:.2} copies"
        );
        assert!(
            ratio <= 1.15,
            "seed {seed} (replay with SIM_SEED={seed}): {ratio:.2} × T*"
        );
    }
}

/// A deep queue: what the window alone adds to the delay of everything else on the link.
#[test]
fn deep_queue_at_rtt_1_and_20_ms() {
    for seed in seeds(1) {
        bottleneck(seed, MS, DEEP_QUEUE_BYTES);
        bottleneck(seed, 20 * MS, DEEP_QUEUE_BYTES);
    }
}

/// What `SIM_TRACE=1` prints of the T* swarm at RTT 20 ms: where the time over T* goes.
/// Every [`Trace::EVERY`] of virtual time it looks at how busy the holder's upload was,
/// how many distinct chunks the downloaders hold between them, how many copies they
/// verified, and how busy their uploads were; at the end, when each downloader got its
/// first chunk and finished, and when each chunk first reached a downloader.
struct Trace {
    next: Duration,
    holder_sent_bytes: u64,
    downloaders_sent_bytes: u64,
    /// Per line: (t, holder busy, downloaders busy, distinct chunks in the swarm, copies
    /// verified, done).
    lines: Vec<(f64, f64, f64, u32, f64, usize)>,
    /// Holder bytes and downloader bytes sent since the last line, and samples in it.
    window: (u64, u64, u32),
    first_chunk_s: Vec<Option<f64>>,
    done_s: Vec<Option<f64>>,
    chunk_first_s: Vec<Option<f64>>,
    holder_idle_s: f64,
}

impl Trace {
    const EVERY: Duration = Duration::from_millis(10);
    const LINE_SAMPLES: u32 = 25;

    fn new(downloaders: usize) -> Trace {
        let chunks = TSTAR_FILE_BYTES / (64 << 10);
        Trace {
            next: Duration::ZERO,
            holder_sent_bytes: 0,
            downloaders_sent_bytes: 0,
            lines: Vec::new(),
            window: (0, 0, 0),
            first_chunk_s: vec![None; downloaders],
            done_s: vec![None; downloaders],
            chunk_first_s: vec![None; chunks],
            holder_idle_s: 0.0,
        }
    }

    /// Takes a sample when one is due; true once every downloader is done.
    fn sample(&mut self, sim: &Sim, holder: usize, downloaders: &[usize], start: Duration) -> bool {
        let elapsed = sim.elapsed() - start;
        if elapsed < self.next {
            return false;
        }
        if self.next == Duration::ZERO {
            self.holder_sent_bytes = sim.node(holder).stats().bytes_sent;
            self.downloaders_sent_bytes = downloaders
                .iter()
                .map(|&n| sim.node(n).stats().bytes_sent)
                .sum();
        }
        self.next = elapsed + Self::EVERY;
        let t = elapsed.as_secs_f64();
        let holder_sent = sim.node(holder).stats().bytes_sent;
        let holder_delta = holder_sent - self.holder_sent_bytes;
        self.holder_sent_bytes = holder_sent;
        let capacity = TSTAR_UPLOAD_BYTES_PER_S as f64 * Self::EVERY.as_secs_f64();
        self.holder_idle_s +=
            (1.0 - holder_delta as f64 / capacity).max(0.0) * Self::EVERY.as_secs_f64();
        let sent: u64 = downloaders
            .iter()
            .map(|&n| sim.node(n).stats().bytes_sent)
            .sum();
        let downloaders_delta = sent - self.downloaders_sent_bytes;
        self.downloaders_sent_bytes = sent;
        let mut copies = 0.0;
        let mut present = vec![false; self.chunk_first_s.len()];
        let mut done = 0;
        for (i, &n) in downloaders.iter().enumerate() {
            if sim.completed(n, NAME) {
                self.done_s[i].get_or_insert(t);
                self.first_chunk_s[i].get_or_insert(t);
                present.iter_mut().for_each(|p| *p = true);
                copies += 1.0;
                done += 1;
                continue;
            }
            if let Some(have) = sim.node(n).chunks_held(NAME) {
                let held = have.count();
                if held > 0 {
                    self.first_chunk_s[i].get_or_insert(t);
                }
                copies += f64::from(held) / present.len() as f64;
                for (chunk, slot) in present.iter_mut().enumerate() {
                    *slot |= have.get(chunk as u32);
                }
            }
        }
        for (chunk, &held) in present.iter().enumerate() {
            if held {
                self.chunk_first_s[chunk].get_or_insert(t);
            }
        }
        self.window.0 += holder_delta;
        self.window.1 += downloaders_delta;
        self.window.2 += 1;
        if self.window.2 == Self::LINE_SAMPLES || done == downloaders.len() {
            let span = capacity * f64::from(self.window.2);
            self.lines.push((
                t,
                self.window.0 as f64 / span,
                self.window.1 as f64 / (span * downloaders.len() as f64),
                present.iter().filter(|&&p| p).count() as u32,
                copies,
                done,
            ));
            self.window = (0, 0, 0);
        }
        done == downloaders.len()
    }

    fn print(&self, seed: u64) {
        for &(t, holder, peers, distinct, copies, done) in &self.lines {
            eprintln!(
                "trace seed {seed} t={t:.2}: holder busy {holder:.2}, downloaders busy \
                 {peers:.2}, {distinct} distinct chunks in the swarm, {copies:.1} copies, {done} done"
            );
        }
        let sorted = |values: &[Option<f64>]| {
            let mut v: Vec<f64> = values.iter().flatten().copied().collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let at = |v: &[f64], share: f64| v[((v.len() - 1) as f64 * share) as usize];
        let firsts = sorted(&self.first_chunk_s);
        let done = sorted(&self.done_s);
        let chunks = sorted(&self.chunk_first_s);
        eprintln!(
            "trace seed {seed}: first chunk at p10 {:.2} median {:.2} p90 {:.2} max {:.2} s; \
             done at first {:.2} p10 {:.2} median {:.2} p90 {:.2} last {:.2} s; every chunk in \
             the swarm by {:.2} s (half by {:.2}); holder idle {:.2} s",
            at(&firsts, 0.1),
            at(&firsts, 0.5),
            at(&firsts, 0.9),
            at(&firsts, 1.0),
            at(&done, 0.0),
            at(&done, 0.1),
            at(&done, 0.5),
            at(&done, 0.9),
            at(&done, 1.0),
            at(&chunks, 1.0),
            at(&chunks, 0.5),
            self.holder_idle_s,
        );
    }
}
