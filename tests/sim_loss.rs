//! How a paced download finds its lost pieces, in the simulation: a holder sends each peer's
//! pieces in the order asked, so a piece overtaken by one asked later is lost, found in about a
//! round trip instead of a timeout (see `node::download::timers::scan_timeouts`).
//!
//! `SIM_SEED=n cargo test --test sim_loss` replays seed `n`; the default sweeps 0..4.

use std::time::Duration;
use torrent::console::Command;
use torrent::node::PaceMode;
use torrent::sim::{NetConfig, Sim};

const NAME: &str = "file_L.bin";

fn seeds() -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.trim().parse().expect("SIM_SEED must be a number")],
        Err(_) => (0..4).collect(),
    }
}

struct Outcome {
    timed_out: u64,
    out_of_order: u64,
    duplicate: u64,
    received: u64,
}

/// One holder, one downloader that paces it (as toward a peer across a network), `net`
/// between them; returns the downloader's counts once the file arrived byte for byte.
fn paced_download(seed: u64, net: NetConfig) -> Outcome {
    paced_download_of(seed, net, 2 << 20, None)
}

/// [`paced_download`] of a file of `file_bytes`, from a holder whose upload is capped at
/// `holder_cap` bytes a second when given.
fn paced_download_of(
    seed: u64,
    net: NetConfig,
    file_bytes: usize,
    holder_cap: Option<u64>,
) -> Outcome {
    let mut sim = Sim::new(seed, net);
    let mut rng = torrent::rng::Rng::new(seed ^ 0x1055);
    let bytes: Vec<u8> = (0..file_bytes).map(|_| rng.next_u64() as u8).collect();
    let configure = |config: &mut torrent::node::NodeConfig| {
        config.chunk_bytes = 64 * 1024;
        config.piece_bytes = 1400;
        config.pace = PaceMode::Always;
    };
    let holder = sim.add_node(|config| {
        configure(config);
        config.max_upload_bytes_per_s = holder_cap;
    });
    let downloader = sim.add_node(configure);
    sim.write_file(holder, NAME, &bytes);
    sim.command(
        holder,
        Command::Send {
            name: NAME.to_string(),
        },
    );
    sim.run_until(
        |sim| sim.said_starting(holder, "sharing "),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|error| panic!("seed {seed}: sharing: {error}"));
    sim.command(
        downloader,
        Command::Download {
            name: NAME.to_string(),
            pin: None,
        },
    );
    sim.run_until(
        |sim| sim.said_starting(downloader, "download"),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|error| panic!("seed {seed}: download: {error}"));
    assert!(
        sim.file(downloader, NAME).as_deref() == Some(&bytes[..]),
        "seed {seed}: the file differs or is missing: {:?}",
        sim.said(downloader)
    );
    let stats = sim.node(downloader).stats();
    Outcome {
        timed_out: stats.pieces_timed_out,
        out_of_order: stats.pieces_lost_out_of_order,
        duplicate: stats.pieces_duplicate,
        received: stats.pieces_received,
    }
}

/// 3% loss on a path of 20 ms round trip that keeps order: most losses are found because a
/// later piece arrived, not by their timeout (four round trips and more), and none of those
/// finds was wrong (a piece taken for lost that arrives after all is a duplicate).
#[test]
fn losses_are_found_by_the_pieces_that_overtake_them() {
    for seed in seeds() {
        let out = paced_download(
            seed,
            NetConfig {
                latency: Duration::from_millis(10),
                jitter: Duration::ZERO,
                loss: 0.03,
                duplicate: 0.0,
                corrupt_piece: 0.0,
            },
        );
        let lost = out.timed_out + out.out_of_order;
        assert!(lost > 0, "seed {seed}: nothing was lost at 3%");
        assert!(
            out.out_of_order >= lost * 3 / 4,
            "seed {seed}: {} of {lost} losses found out of order, {} by timeout",
            out.out_of_order,
            out.timed_out
        );
        assert_eq!(
            out.duplicate, 0,
            "seed {seed}: pieces taken for lost arrived after all ({} received)",
            out.received
        );
    }
}

/// A path that reorders (jitter of 2 ms on 10 ms): the download still completes, and pieces
/// taken for lost that arrive after all stay a small share.
#[test]
fn reordering_costs_few_duplicates() {
    for seed in seeds() {
        let out = paced_download(
            seed,
            NetConfig {
                latency: Duration::from_millis(10),
                jitter: Duration::from_millis(2),
                loss: 0.01,
                duplicate: 0.0,
                corrupt_piece: 0.0,
            },
        );
        assert!(
            out.duplicate * 50 <= out.received,
            "seed {seed}: {} duplicates of {} pieces received ({} lost out of order, {} \
             timed out)",
            out.duplicate,
            out.received,
            out.out_of_order,
            out.timed_out
        );
    }
}

/// A quarter of all datagrams lost, and a holder capped at 256 KiB/s (which shows its
/// chunks a few at a time): the download completes. A chunk started from such a holder
/// waits for its first piece before the rest is asked; when the request, or every piece it
/// brought, was lost, that first piece is asked again. It was not, and the download
/// stalled for good with nothing in flight (here at seed 4; with 1 MiB chunks and 4 MiB,
/// 2 seeds in 20; the namespace test `diagnosis::a_lossy_holder_is_named_and_never_called_gone`
/// now and then).
#[test]
fn a_capped_holder_behind_heavy_loss_never_stalls() {
    let seeds = match std::env::var("SIM_SEED") {
        Ok(_) => seeds(),
        Err(_) => (0..12).collect(),
    };
    for seed in seeds {
        let out = paced_download_of(
            seed,
            NetConfig {
                latency: Duration::from_millis(1),
                jitter: Duration::ZERO,
                loss: 0.25,
                duplicate: 0.0,
                corrupt_piece: 0.0,
            },
            1 << 20,
            Some(256 << 10),
        );
        assert!(
            out.timed_out + out.out_of_order > 0,
            "seed {seed}: nothing lost"
        );
    }
}
