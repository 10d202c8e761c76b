//! How fast this node's pieces actually leave, measured while pieces wait to be sent: the
//! upload budget when one is set, else whatever the link or the socket lets through. What
//! it is for: a slow uploader serves fewer peers at once, so that each still gets whole
//! chunks soon enough to pass them on (see [`slots_for`]).

use std::time::{Duration, Instant};

/// Shortest stretch of continuous sending that makes one measurement.
const MEASURE_MIN: Duration = Duration::from_millis(250);
/// How long a peer holding an upload slot should wait for a whole chunk at most: a node
/// serves as many peers at once as it can send a chunk each in this time.
pub const SLOT_CHUNK_TIME: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
pub struct RateMeter {
    /// First piece of the current stretch of sending, and bytes sent after it.
    stretch: Option<(Instant, u64)>,
    /// Smoothed measurements, in bytes per second.
    bytes_per_s: Option<u64>,
}

impl RateMeter {
    /// A piece of `bytes` left at `now`; `backlog` whether more wait behind it.
    pub fn on_sent(&mut self, now: Instant, bytes: u64, backlog: bool) {
        match &mut self.stretch {
            None => self.stretch = Some((now, 0)),
            Some((start, sent)) => {
                *sent += bytes;
                let elapsed = now.saturating_duration_since(*start);
                if elapsed >= MEASURE_MIN {
                    let sample = (u128::from(*sent) * 1_000_000_000 / elapsed.as_nanos().max(1))
                        .min(u128::from(u64::MAX)) as u64;
                    self.bytes_per_s = Some(
                        self.bytes_per_s
                            .map_or(sample, |smooth| (smooth / 4) * 3 + sample / 4),
                    );
                    self.stretch = Some((now, 0));
                }
            }
        }
        if !backlog {
            // Idle from here: the time until the next piece says nothing of the rate.
            self.stretch = None;
        }
    }

    pub fn bytes_per_s(&self) -> Option<u64> {
        self.bytes_per_s
    }
}

/// Peers to serve at once, within `1..=slots_max`: as many as get a chunk of `chunk_bytes`
/// each within [`SLOT_CHUNK_TIME`] at `bytes_per_s` (all of them while it is not known).
pub fn slots_for(bytes_per_s: Option<u64>, chunk_bytes: u32, slots_max: usize) -> usize {
    let Some(bytes_per_s) = bytes_per_s else {
        return slots_max;
    };
    let per_window = u128::from(bytes_per_s) * SLOT_CHUNK_TIME.as_nanos() / 1_000_000_000;
    let slots = per_window / u128::from(chunk_bytes.max(1));
    (slots.min(slots_max as u128) as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn measures_only_while_sending_continuously() {
        let start = Instant::now();
        let mut meter = RateMeter::default();
        // 1,000 bytes every 10 ms: 100,000 bytes/s.
        for step in 0..=25u32 {
            meter.on_sent(start + step * 10 * MS, 1_000, true);
        }
        assert_eq!(meter.bytes_per_s(), Some(100_000));
        // A pause with nothing queued is not slowness.
        meter.on_sent(start + 260 * MS, 1_000, false);
        meter.on_sent(start + 5_000 * MS, 1_000, true);
        assert_eq!(meter.bytes_per_s(), Some(100_000));
    }

    #[test]
    fn slow_uploaders_serve_fewer_peers() {
        // 1 MiB/s and 64 KiB chunks: four chunks in 250 ms.
        assert_eq!(slots_for(Some(1 << 20), 64 << 10, 4), 4);
        assert_eq!(slots_for(Some(100 << 10), 64 << 10, 4), 1);
        assert_eq!(slots_for(Some(1 << 30), 64 << 10, 4), 4);
        assert_eq!(slots_for(None, 64 << 10, 4), 4);
    }
}
