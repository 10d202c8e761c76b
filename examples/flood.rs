//! A flood of small unauthenticated datagrams at a tracker, batched with `sendmmsg`
//! ([`torrent::flood`]): for measuring what a flood does to the tracker (issue 13), here and
//! in `tests/flood.rs`.
//!
//! ```text
//! cargo build --release --example flood
//! flood --target ADDR:PORT --rate DATAGRAMS_PER_S --duration SECS
//!       [--kind register|garbage|bep15-announce]
//!       [--sources A-B | --sources A,B,... | --source-count N --source-base A] [--seed N]
//! ```
//!
//! Sources default to one socket on the unspecified address. Many source addresses must be
//! local: in a network namespace of your own, `ip route add local 10.77.4.0/22 dev lo` makes
//! all 1,024 of them so (never flood an address that is not yours). Prints one line:
//! `flood: sent N datagrams in S s (R/s) from K sockets; EAGAIN .., ENOBUFS .., ...`.
//! Exits 1 when it cannot start, 2 on a bad flag.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use torrent::flood::{self, FloodConfig, FloodControl, FloodKind};

const USAGE: &str = "flood --target ADDR:PORT --rate DATAGRAMS_PER_S --duration SECS \
     [--kind register|garbage|bep15-announce] \
     [--sources A-B | --sources A,B,... | --source-count N --source-base A] [--seed N]";

fn parse_args() -> Result<FloodConfig, String> {
    let mut target: Option<SocketAddr> = None;
    let mut rate_per_s: Option<u32> = None;
    let mut duration: Option<Duration> = None;
    let mut kind = FloodKind::Register;
    let mut sources: Option<Vec<IpAddr>> = None;
    let mut source_count: Option<usize> = None;
    let mut source_base: Option<Ipv4Addr> = None;
    let mut seed = torrent::rng::Rng::os_seed();
    let mut list = std::env::args().skip(1);
    while let Some(flag) = list.next() {
        let mut value = || list.next().ok_or(format!("{flag} needs a value"));
        match flag.trim_start_matches('-') {
            "target" => {
                let text = value()?;
                target = Some(
                    text.parse()
                        .map_err(|e| format!("bad --target '{text}': {e}"))?,
                );
            }
            "rate" => {
                let text = value()?;
                rate_per_s = Some(text.parse().map_err(|_| format!("bad --rate '{text}'"))?);
            }
            "duration" => {
                let text = value()?;
                let secs: f64 = text
                    .parse()
                    .map_err(|_| format!("bad --duration '{text}'"))?;
                if !(secs > 0.0 && secs <= flood::DURATION_MAX.as_secs_f64()) {
                    return Err(format!(
                        "--duration must be above 0 and at most {} s",
                        flood::DURATION_MAX.as_secs()
                    ));
                }
                duration = Some(Duration::from_secs_f64(secs));
            }
            "kind" => kind = FloodKind::parse(&value()?)?,
            "sources" => sources = Some(flood::parse_sources(&value()?)?),
            "source-count" => {
                let text = value()?;
                source_count = Some(
                    text.parse()
                        .map_err(|_| format!("bad --source-count '{text}'"))?,
                );
            }
            "source-base" => {
                let text = value()?;
                source_base = Some(
                    text.parse()
                        .map_err(|e| format!("bad --source-base '{text}': {e}"))?,
                );
            }
            "seed" => {
                let text = value()?;
                seed = text.parse().map_err(|_| format!("bad --seed '{text}'"))?;
            }
            "help" | "h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let target = target.ok_or("--target is required")?;
    let sources = match (sources, source_count, source_base) {
        (Some(_), Some(_), _) => return Err("--sources or --source-count, not both".into()),
        (Some(list), None, _) => list,
        (None, Some(count), Some(base)) => flood::consecutive_sources(base, count)?,
        (None, Some(_), None) => return Err("--source-count needs --source-base".into()),
        (None, None, _) => vec![match target {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }],
    };
    Ok(FloodConfig {
        target,
        kind,
        rate_per_s: rate_per_s.ok_or("--rate is required")?,
        duration: duration.ok_or("--duration is required")?,
        sources,
        seed,
    })
}

fn main() {
    let config = match parse_args() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("flood: {error}\nusage: {USAGE}");
            std::process::exit(2);
        }
    };
    match flood::run(&config, &FloodControl::default()) {
        Ok(report) => println!("flood: {report}"),
        Err(error) => {
            eprintln!("flood: {error}");
            std::process::exit(1);
        }
    }
}
