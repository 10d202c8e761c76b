//! A faulty network on demand: loss, duplication and reordering of received datagrams.
//!
//! `tc netem` is not available everywhere (not on our CI machines), so a node or tracker
//! started with `--impair loss=0.05,duplicate=0.01,reorder=0.02,delay-ms=20` passes every
//! datagram it receives through an [`Impairment`] first: some are dropped, some delivered
//! twice, some held back and delivered later, after datagrams that arrived behind them.
//! Decisions come from a seeded [`Rng`], so a failing run can be repeated with its seed.

use crate::rng::Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most datagrams held back at once; beyond it a held datagram is dropped (counted as loss).
pub const HELD_MAX: usize = 4096;

/// Probabilities (0 to 1) of what happens to each received datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImpairConfig {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    /// How long a reordered datagram is held.
    pub delay: Duration,
    pub seed: u64,
}

impl ImpairConfig {
    /// Parses `loss=0.05,duplicate=0.01,reorder=0.02,delay-ms=20,seed=7`.
    pub fn parse(text: &str) -> Result<ImpairConfig, String> {
        let mut config = ImpairConfig {
            delay: Duration::from_millis(20),
            ..ImpairConfig::default()
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not key=value"))?;
            let number: f64 = value
                .parse()
                .map_err(|_| format!("'{value}' is not a number"))?;
            let probability = || {
                if (0.0..=1.0).contains(&number) {
                    Ok(number)
                } else {
                    Err(format!("{key} must be from 0 to 1"))
                }
            };
            match key {
                "loss" => config.loss = probability()?,
                "duplicate" => config.duplicate = probability()?,
                "reorder" => config.reorder = probability()?,
                "delay-ms" if (0.0..=60_000.0).contains(&number) => {
                    config.delay = Duration::from_secs_f64(number / 1e3)
                }
                "seed" if number >= 0.0 => config.seed = number as u64,
                _ => {
                    return Err(format!(
                        "'{key}' is not one of loss, duplicate, reorder, delay-ms, seed (or out of range)"
                    ));
                }
            }
        }
        Ok(config)
    }
}

/// Counters of what the impairment did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairStats {
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

/// What to do with one received datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Deliver,
    /// Deliver it twice.
    DeliverTwice,
    /// Held; it comes back from [`Impairment::poll_held`] later.
    Held,
}

/// A held datagram: when it is due, a sequence number (keeps equal times in arrival order),
/// its sender and its bytes.
type Held = Reverse<(Instant, u64, SocketAddr, Vec<u8>)>;

pub struct Impairment {
    config: ImpairConfig,
    rng: Rng,
    held: BinaryHeap<Held>,
    sequence: u64,
    pub stats: ImpairStats,
}

impl Impairment {
    pub fn new(config: ImpairConfig) -> Impairment {
        Impairment {
            config,
            rng: Rng::new(config.seed),
            held: BinaryHeap::new(),
            sequence: 0,
            stats: ImpairStats::default(),
        }
    }

    fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0 && (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= probability
    }

    /// Decides the fate of a datagram that just arrived.
    pub fn judge(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Verdict {
        if self.chance(self.config.loss) {
            self.stats.dropped += 1;
            return Verdict::Drop;
        }
        if self.chance(self.config.reorder) {
            if self.held.len() >= HELD_MAX {
                self.stats.dropped += 1;
                return Verdict::Drop;
            }
            self.stats.reordered += 1;
            self.sequence += 1;
            self.held.push(Reverse((
                now + self.config.delay,
                self.sequence,
                from,
                bytes.to_vec(),
            )));
            return Verdict::Held;
        }
        if self.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            return Verdict::DeliverTwice;
        }
        Verdict::Deliver
    }

    /// A held datagram whose time has come.
    pub fn poll_held(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        let Reverse((due, _, _, _)) = self.held.peek()?;
        if *due > now {
            return None;
        }
        let Reverse((_, _, from, bytes)) = self.held.pop()?;
        Some((from, bytes))
    }

    /// When the next held datagram is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse((due, ..))| *due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let config =
            ImpairConfig::parse("loss=0.1, duplicate=0.02,reorder=0.5,delay-ms=5,seed=9").unwrap();
        assert_eq!(config.loss, 0.1);
        assert_eq!(config.delay, Duration::from_millis(5));
        assert_eq!(config.seed, 9);
        assert!(ImpairConfig::parse("loss=2").is_err());
        assert!(ImpairConfig::parse("jitter=1").is_err());
        assert!(ImpairConfig::parse("loss").is_err());
    }

    #[test]
    fn rates_are_roughly_honoured_and_held_datagrams_come_back_in_order() {
        let config = ImpairConfig {
            loss: 0.2,
            duplicate: 0.1,
            reorder: 0.1,
            delay: Duration::from_millis(10),
            seed: 3,
        };
        let mut impairment = Impairment::new(config);
        let now = Instant::now();
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut verdicts = [0u32; 4];
        for i in 0..10_000u32 {
            let index = match impairment.judge(now, from, &i.to_be_bytes()) {
                Verdict::Drop => 0,
                Verdict::Deliver => 1,
                Verdict::DeliverTwice => 2,
                Verdict::Held => 3,
            };
            verdicts[index] += 1;
        }
        assert!((1_800..2_200).contains(&verdicts[0]), "{verdicts:?}");
        assert!((600..1_000).contains(&verdicts[3]), "{verdicts:?}");
        assert!(
            impairment.poll_held(now).is_none(),
            "nothing is due before the delay"
        );
        let later = now + Duration::from_millis(10);
        let mut previous = None;
        let mut count = 0;
        while let Some((_, bytes)) = impairment.poll_held(later) {
            let value = u32::from_be_bytes(bytes.try_into().unwrap());
            assert!(
                previous < Some(value),
                "held datagrams keep their order among themselves"
            );
            previous = Some(value);
            count += 1;
        }
        assert_eq!(count, verdicts[3]);
        assert_eq!(impairment.stats.reordered, u64::from(verdicts[3]));
    }
}
