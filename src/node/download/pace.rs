//! How fast each peer delivers to us, and what follows from it: the size of its request
//! window, and whether an idle peer should take a chunk over from it in the endgame.
//!
//! * **Window by delay** (as LEDBAT does). A peer's upload queue is shared by everyone it
//!   serves; a window that grows with every piece received keeps filling it, and a request
//!   then waits behind seconds of other requests (on a peer uploading 100 KiB/s, 64 pieces of
//!   8 KiB are five seconds). Every round trip is compared with the smallest one seen from
//!   that peer: while the difference (the time the request spent queued) stays under
//!   [`QUEUE_DELAY_TARGET`] the window grows by a piece, above it the window shrinks by one.
//!   The queue then stays short whatever the peer's rate, and a chunk asked from it comes
//!   back in about the time the peer needs to send it.
//! * **Endgame by pace.** When an idle peer has nothing left to start, it takes over a chunk
//!   whose owner would need more than [`OUTPACED_FACTOR`] times as long as itself to deliver
//!   the missing pieces, judged by the time between pieces of each ([`Pace::piece_gap`]).
//!   Pieces already on their way from the old owner still count when they arrive first.

use super::peer::Peer;
use crate::wire;
use std::time::{Duration, Instant};

/// Queueing delay above a peer's smallest round trip past which its window shrinks.
pub const QUEUE_DELAY_TARGET: Duration = Duration::from_millis(100);
/// The delay rule never shrinks a window below this (stop-and-wait; several downloaders
/// share every uploader, so its queue stays busy).
pub const WINDOW_DELAY_MIN: u32 = 1;
/// Most pieces in flight from one peer, whatever their size.
pub const WINDOW_PIECES_CAP: u32 = 4096;
/// An owner projected to need this many times longer than an idle peer loses its chunk.
const OUTPACED_FACTOR: u32 = 2;

/// What this download measured of one peer's delivery.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pace {
    /// Smallest round trip seen: the round trip without queueing.
    pub rtt_min: Option<Duration>,
    /// Smoothed time between two pieces from this peer while more were on their way: how
    /// long it takes to deliver one piece to us.
    pub piece_gap: Option<Duration>,
    /// When its last piece arrived, and whether more were outstanding then.
    last_piece: Option<(Instant, bool)>,
}

impl Pace {
    /// A piece arrived at `now`; `sample` is its round trip, when it answered a request
    /// still counted; `more_outstanding` whether pieces remain in flight from this peer.
    /// Returns whether the request waited longer than [`QUEUE_DELAY_TARGET`] in a queue.
    pub fn on_piece(
        &mut self,
        now: Instant,
        sample: Option<Duration>,
        more_outstanding: bool,
    ) -> bool {
        if let Some((last, true)) = self.last_piece {
            let gap = now.saturating_duration_since(last);
            self.piece_gap = Some(self.piece_gap.map_or(gap, |smooth| (smooth * 7 + gap) / 8));
        }
        self.last_piece = Some((now, more_outstanding));
        let Some(sample) = sample else {
            return false;
        };
        let rtt_min = self.rtt_min.map_or(sample, |min| min.min(sample));
        self.rtt_min = Some(rtt_min);
        sample.saturating_sub(rtt_min) > QUEUE_DELAY_TARGET
    }

    /// How long this peer would take for `pieces` more, at its measured pace.
    fn time_for(&self, pieces: u32) -> Option<Duration> {
        self.piece_gap.map(|gap| gap * pieces)
    }
}

/// The window after a piece answered a request: one more while the queueing delay stays
/// under the target, one less above it, within `WINDOW_DELAY_MIN..=window_max`.
pub fn next_window(window: u32, queued_too_long: bool, window_max: u32) -> u32 {
    let window = if queued_too_long {
        window.saturating_sub(1)
    } else {
        window + 1
    };
    window.clamp(WINDOW_DELAY_MIN, window_max.max(WINDOW_DELAY_MIN))
}

/// Most pieces in flight from one peer when its pieces carry `piece_bytes`: as many as fit
/// the socket-buffer room of `window_pieces_max` pieces of `configured_piece_bytes` (pieces
/// on a 1,500-byte path are 1/45 of loopback's, and a window counted in pieces would shrink
/// their bytes in flight by as much). Each datagram also costs the kernel about a kilobyte of
/// bookkeeping, as in the reactor's sizing of the window.
pub fn window_max(window_pieces_max: u32, configured_piece_bytes: u32, piece_bytes: u32) -> u32 {
    let cost = |bytes: u32| u64::from(bytes) + wire::PIECE_OVERHEAD_BYTES as u64 + 1024;
    let budget = u64::from(window_pieces_max) * cost(configured_piece_bytes);
    (budget / cost(piece_bytes)).clamp(u64::from(window_pieces_max), u64::from(WINDOW_PIECES_CAP))
        as u32
}

/// Whether `candidate`, idle, would deliver `missing` pieces of a chunk more than
/// [`OUTPACED_FACTOR`] times sooner than its `owner` at their measured paces. A candidate
/// not measured yet is assumed to go at `typical_gap` per piece.
pub fn outpaced(owner: &Peer, candidate: &Peer, missing: u32, typical_gap: Duration) -> bool {
    let Some(owner_time) = owner.pace.time_for(missing) else {
        return false;
    };
    let candidate_time = candidate
        .pace
        .time_for(missing)
        .unwrap_or(typical_gap * missing);
    owner_time > candidate_time * OUTPACED_FACTOR
}

/// The median time between pieces over the peers measured so far, if any.
pub fn typical_gap(peers: &[Peer]) -> Option<Duration> {
    let mut gaps: Vec<Duration> = peers
        .iter()
        .filter(|p| !p.dropped)
        .filter_map(|p| p.pace.piece_gap)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    Some(gaps[gaps.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn window_shrinks_only_when_requests_queue() {
        assert_eq!(next_window(8, false, 64), 9);
        assert_eq!(next_window(64, false, 64), 64);
        assert_eq!(next_window(8, true, 64), 7);
        assert_eq!(next_window(1, true, 64), WINDOW_DELAY_MIN);
    }

    #[test]
    fn queueing_is_measured_against_the_smallest_round_trip() {
        let start = Instant::now();
        let mut pace = Pace::default();
        assert!(!pace.on_piece(start, Some(80 * MS), true));
        assert!(!pace.on_piece(start + 10 * MS, Some(170 * MS), true));
        assert!(pace.on_piece(start + 20 * MS, Some(200 * MS), false));
        assert_eq!(pace.rtt_min, Some(80 * MS));
        // Two gaps of 10 ms, measured while pieces were outstanding.
        assert_eq!(pace.piece_gap, Some(10 * MS));
        // The last piece left nothing outstanding: the pause after it is not a gap.
        assert!(!pace.on_piece(start + 900 * MS, None, true));
        assert_eq!(pace.piece_gap, Some(10 * MS));
    }
}
