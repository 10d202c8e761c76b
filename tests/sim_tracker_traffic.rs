//! How many datagrams each downloader sends the tracker, counted in virtual time by the
//! simulation (issue 14's goal: "back off to 1 per 10 s while nothing changes; ≤ 2 per
//! second averaged over any 10 s, stalls included").
//!
//! * During a swarm download: at most [`WINDOW_SENDS_MAX`] in any [`WINDOW`], for every
//!   downloader, from its start to well after its end; and once done, nothing changes, so
//!   only its heartbeat is left.
//! * During a stall (the only holder is gone, so no holder is alive): at most
//!   [`WINDOW_SENDS_MAX`] in any window, and once backed off at most one per [`WINDOW`] on
//!   average; when the holder comes back, the download still completes.
//!
//! `SIM_SEED=n` picks the seed; `--nocapture` shows the figures.

use std::collections::VecDeque;
use std::time::Duration;
use torrent::console::Command;
use torrent::node::NodeConfig;
use torrent::sim::{Capacity, Fault, NetConfig, Sim};

const NAME: &str = "file_R.bin";
/// The window of the goal, and the most datagrams to the tracker in it (2 a second).
const WINDOW: Duration = Duration::from_secs(10);
const WINDOW_SENDS_MAX: usize = 20;

fn seed() -> u64 {
    std::env::var("SIM_SEED").ok().map_or(1, |text| {
        text.trim().parse().expect("SIM_SEED must be a number")
    })
}

/// Content that differs at every offset, so a misplaced piece shows.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = torrent::rng::Rng::new(seed ^ 0x7ac4);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// The most sends in any window of `WINDOW` within `[from, to]`.
fn busiest_window(sends: &VecDeque<Duration>, from: Duration, to: Duration) -> usize {
    let times: Vec<Duration> = sends
        .iter()
        .copied()
        .filter(|&t| t >= from && t <= to)
        .collect();
    let mut busiest = 0;
    let mut first = 0;
    for (last, &t) in times.iter().enumerate() {
        while t - times[first] >= WINDOW {
            first += 1;
        }
        busiest = busiest.max(last + 1 - first);
    }
    busiest
}

fn count_between(sends: &VecDeque<Duration>, from: Duration, to: Duration) -> usize {
    sends.iter().filter(|&&t| t >= from && t < to).count()
}

fn limited(sim: &mut Sim, node: usize, upload_bytes_per_s: u64) {
    sim.set_capacity(
        node,
        Capacity {
            upload_bytes_per_s: Some(upload_bytes_per_s),
            download_bytes_per_s: None,
        },
    );
}

/// Sim with a holder sharing `bytes` and `downloaders` registered nodes, all configured by
/// `configure`; returns (sim, holder, downloaders).
fn swarm(
    seed: u64,
    bytes: &[u8],
    downloaders: usize,
    upload_bytes_per_s: u64,
    configure: impl Fn(&mut NodeConfig) + Copy,
) -> (Sim, usize, Vec<usize>) {
    let net = NetConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_micros(200),
        ..NetConfig::default()
    };
    let mut sim = Sim::new(seed, net);
    let holder = sim.add_node(configure);
    limited(&mut sim, holder, upload_bytes_per_s);
    let downloaders: Vec<usize> = (0..downloaders)
        .map(|_| {
            let node = sim.add_node(configure);
            limited(&mut sim, node, upload_bytes_per_s);
            node
        })
        .collect();
    sim.write_file(holder, NAME, bytes);
    sim.command(
        holder,
        Command::Send {
            name: NAME.to_string(),
        },
    );
    sim.run_until(
        |sim| {
            sim.said_starting(holder, "sharing ")
                && downloaders
                    .iter()
                    .all(|&node| sim.said_starting(node, "registered with tracker "))
        },
        Duration::from_secs(30),
    )
    .unwrap_or_else(|error| panic!("sharing: {error}"));
    (sim, holder, downloaders)
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

/// A swarm of `downloaders` at 256 KiB/s each, in 64 KiB chunks of 8 KiB pieces, every
/// download begun together; returns the sim, the downloaders and when they began.
fn swarm_downloading(seed: u64, bytes: &[u8], downloaders: usize) -> (Sim, Vec<usize>, Duration) {
    let configure = |config: &mut NodeConfig| {
        config.chunk_bytes = 64 << 10;
        config.piece_bytes = 8 << 10;
    };
    let (mut sim, _holder, downloaders) = swarm(seed, bytes, downloaders, 256 << 10, configure);
    let start = sim.elapsed();
    for &node in &downloaders {
        download(&mut sim, node);
    }
    (sim, downloaders, start)
}

/// A holder and 24 downloaders, every upload at 256 KiB/s: the swarm takes some 20 s of
/// virtual time, long enough for many windows. Every downloader keeps to the goal from its
/// start until 40 s after the last one finished; in that last stretch nothing changes, and
/// each sends at most a heartbeat and the last of its reports.
#[test]
fn swarm_download_keeps_tracker_traffic_under_two_a_second() {
    const DOWNLOADERS: usize = 24;
    const FILE_BYTES: usize = 3 << 20;
    let seed = seed();
    let bytes = content(FILE_BYTES, seed);
    let (mut sim, downloaders, start) = swarm_downloading(seed, &bytes, DOWNLOADERS);
    sim.run_until(
        |sim| downloaders.iter().all(|&node| sim.completed(node, NAME)),
        Duration::from_secs(300),
    )
    .unwrap_or_else(|error| panic!("downloads: {error}"));
    let done = sim.elapsed();
    const QUIET_AFTER: Duration = Duration::from_secs(10);
    const QUIET_FOR: Duration = Duration::from_secs(30);
    sim.run_for(QUIET_AFTER + QUIET_FOR);
    for &node in &downloaders {
        assert_eq!(sim.file(node, NAME).as_deref(), Some(&bytes[..]));
    }
    let mut busiest = Vec::new();
    let mut quiet = Vec::new();
    let mut totals = Vec::new();
    for &node in &downloaders {
        let sends = sim.tracker_sends(node);
        busiest.push(busiest_window(sends, start, sim.elapsed()));
        quiet.push(count_between(
            sends,
            done + QUIET_AFTER,
            done + QUIET_AFTER + QUIET_FOR,
        ));
        totals.push(count_between(sends, start, done));
    }
    eprintln!(
        "seed {seed}: swarm of {DOWNLOADERS} done in {:.1} s; datagrams to the tracker per \
         downloader: busiest {WINDOW:?} window {busiest:?}; during the download {totals:?}; \
         in the {QUIET_FOR:?} after {QUIET_AFTER:?} of quiet {quiet:?}",
        (done - start).as_secs_f64()
    );
    for (index, &count) in busiest.iter().enumerate() {
        assert!(
            count <= WINDOW_SENDS_MAX,
            "seed {seed}: downloader {index} sent the tracker {count} datagrams in one \
             {WINDOW:?} window (goal {WINDOW_SENDS_MAX}); busiest windows {busiest:?}"
        );
    }
    // The heartbeat (every 20 s) at most twice in 30 s, nothing else.
    for (index, &count) in quiet.iter().enumerate() {
        assert!(
            count <= 2,
            "seed {seed}: downloader {index} sent the tracker {count} datagrams in \
             {QUIET_FOR:?} after its download was done: {quiet:?}"
        );
    }
}

/// Downloads that begin together do not ask the tracker in step. Each look-up's reply
/// comes a moment after the same command, so look-ups scheduled a fixed time after it went
/// to the tracker in rounds, every downloader at once, and a partial holder that appeared
/// between two rounds stayed unknown to all until the next (the 200-node swarm of
/// tests/sim_tstar.rs spread its first chunks several times slower). Over the first
/// seconds of a 24-downloader swarm, no [`STEP`] holds the datagrams of more than a third
/// of the downloaders (in step: all 24 at every round).
#[test]
fn downloads_begun_together_ask_the_tracker_out_of_step() {
    const DOWNLOADERS: usize = 24;
    const FILE_BYTES: usize = 3 << 20;
    /// Datagrams sent within this of each other count as sent together.
    const STEP: Duration = Duration::from_millis(20);
    /// The stretch looked at: after the first look-up, while the swarm forms.
    const FROM: Duration = Duration::from_millis(100);
    const TO: Duration = Duration::from_secs(3);
    let seed = seed();
    let bytes = content(FILE_BYTES, seed);
    let (mut sim, downloaders, start) = swarm_downloading(seed, &bytes, DOWNLOADERS);
    sim.run_for(TO);
    let mut per_step = std::collections::BTreeMap::<u128, usize>::new();
    let mut sends = 0;
    for &node in &downloaders {
        for &at in sim.tracker_sends(node) {
            if at >= start + FROM && at < start + TO {
                *per_step
                    .entry((at - start).as_nanos() / STEP.as_nanos())
                    .or_default() += 1;
                sends += 1;
            }
        }
    }
    let together = per_step.values().copied().max().unwrap_or(0);
    eprintln!(
        "seed {seed}: {sends} datagrams to the tracker from {DOWNLOADERS} downloaders between \
         {FROM:?} and {TO:?} after they began; at most {together} within one {STEP:?}"
    );
    assert!(
        sends >= DOWNLOADERS,
        "seed {seed}: the downloaders asked the tracker only {sends} times"
    );
    assert!(
        together <= DOWNLOADERS / 3,
        "seed {seed}: {together} datagrams to the tracker within one {STEP:?} from \
         {DOWNLOADERS} downloaders: they ask in step"
    );
}

/// One holder and one downloader; the holder crashes a few seconds into the download, so
/// no holder is alive. The downloader (told to wait for 10 minutes) keeps to the goal
/// throughout, and after a minute of backing off sends at most one datagram per 10 s on
/// average. When the holder starts again, the download completes.
#[test]
fn stalled_download_backs_off_to_one_per_ten_seconds() {
    const FILE_BYTES: usize = 2 << 20;
    const STALL: Duration = Duration::from_secs(180);
    const SETTLED_AFTER: Duration = Duration::from_secs(60);
    const RECOVERY_MAX: Duration = Duration::from_secs(90);
    let seed = seed();
    let bytes = content(FILE_BYTES, seed);
    let configure = |config: &mut NodeConfig| {
        config.chunk_bytes = 64 << 10;
        config.piece_bytes = 8 << 10;
        config.give_up_after = Duration::from_secs(600);
    };
    let (mut sim, holder, downloaders) = swarm(seed, &bytes, 1, 128 << 10, configure);
    let downloader = downloaders[0];
    let start = sim.elapsed();
    download(&mut sim, downloader);
    // Some chunks arrive, then the holder dies.
    sim.run_until(
        |sim| {
            sim.node(downloader)
                .chunks_held(NAME)
                .is_some_and(|have| have.count() >= 3)
        },
        Duration::from_secs(30),
    )
    .unwrap_or_else(|error| panic!("first chunks: {error}"));
    sim.schedule(Duration::ZERO, Fault::Crash(holder));
    let crashed = sim.elapsed();
    sim.run_for(STALL);
    assert!(
        !sim.completed(downloader, NAME) && !sim.said_starting(downloader, "download "),
        "the download ended during the stall: {:?}",
        sim.said(downloader)
    );
    let sends = sim.tracker_sends(downloader).clone();
    let busiest = busiest_window(&sends, start, sim.elapsed());
    let settled = count_between(&sends, crashed + SETTLED_AFTER, crashed + STALL);
    let settled_windows = ((STALL - SETTLED_AFTER).as_secs() / WINDOW.as_secs()) as usize;
    let per_window: Vec<usize> = (0..STALL.as_secs() / WINDOW.as_secs())
        .map(|i| {
            let from = crashed + WINDOW * i as u32;
            count_between(&sends, from, from + WINDOW)
        })
        .collect();
    eprintln!(
        "seed {seed}: datagrams to the tracker per {WINDOW:?} of the stall {per_window:?}; \
         busiest window {busiest}; {settled} in the {:?} after the first {SETTLED_AFTER:?}",
        STALL - SETTLED_AFTER
    );
    assert!(
        busiest <= WINDOW_SENDS_MAX,
        "seed {seed}: {busiest} datagrams to the tracker in one {WINDOW:?} window (goal \
         {WINDOW_SENDS_MAX}): {per_window:?}"
    );
    assert!(
        settled <= settled_windows,
        "seed {seed}: {settled} datagrams to the tracker in {:?} of a settled stall (goal: \
         one per {WINDOW:?}, {settled_windows}): {per_window:?}",
        STALL - SETTLED_AFTER
    );
    // The holder comes back: the backed-off look-ups still find it.
    sim.schedule(Duration::ZERO, Fault::Start(holder));
    sim.run_until(|sim| sim.completed(downloader, NAME), RECOVERY_MAX)
        .unwrap_or_else(|error| panic!("after the holder returned: {error}"));
    assert_eq!(sim.file(downloader, NAME).as_deref(), Some(&bytes[..]));
}

/// While a swarm forms, a downloader keeps asking for new holders: look-ups back off only
/// once the tracker's answer has not changed for a while (2 s), not from the first answer
/// that repeats. In the first seconds the answer often stays the same for half a second
/// before the holder's first chunks verify; backing off then (0.25, 0.5, 1 s, ...) left
/// partial holders unknown for seconds (the 200-node swarm of tests/sim_tstar.rs spread its
/// first chunks several times slower). Over the first 2 s, every downloader asks at least
/// `EARLY_SENDS_MIN` times, within the goal's budget all the same (at seeds 1 to 3: 6 to 9
/// with the rule, 4 to 8 when look-ups double from the first repeated answer).
#[test]
fn a_forming_swarm_keeps_asking_for_new_holders() {
    const DOWNLOADERS: usize = 24;
    const FILE_BYTES: usize = 3 << 20;
    const EARLY: Duration = Duration::from_secs(2);
    const EARLY_SENDS_MIN: usize = 6;
    let seed = seed();
    let bytes = content(FILE_BYTES, seed);
    let (mut sim, downloaders, start) = swarm_downloading(seed, &bytes, DOWNLOADERS);
    sim.run_for(EARLY);
    let mut early: Vec<usize> = downloaders
        .iter()
        .map(|&node| count_between(sim.tracker_sends(node), start, start + EARLY))
        .collect();
    early.sort_unstable();
    eprintln!("seed {seed}: datagrams to the tracker in the first {EARLY:?}, sorted: {early:?}");
    assert!(
        early[0] >= EARLY_SENDS_MIN,
        "seed {seed}: a downloader asked the tracker only {} times in the first {EARLY:?} of a \
         forming swarm (at least {EARLY_SENDS_MIN}): {early:?}",
        early[0]
    );
}
