//! The node's rate limits: token buckets of bytes. The upload limit (`--max-upload-rate`)
//! is spent by the pieces the uploader sends, to every peer it serves; the download limit
//! (`--max-download-rate`) by the pieces the downloads ask for, of every peer, so that what
//! arrives never runs ahead of it (by more than a burst).

use crate::wire;
use std::time::{Duration, Instant};

/// Largest burst of a limit: about 100 ms worth.
const BURST: Duration = Duration::from_millis(100);

/// A token bucket of bytes.
pub struct RateLimit {
    bytes_per_s: u64,
    /// At least one datagram's worth, so that any piece can be sent.
    burst_bytes: u64,
    tokens: u64,
    refilled_at: Instant,
}

impl RateLimit {
    /// A full bucket for `bytes_per_s`.
    pub fn new(bytes_per_s: u64, now: Instant) -> RateLimit {
        let burst_bytes =
            (bytes_per_s / (1_000 / BURST.as_millis() as u64)).max(wire::DATAGRAM_BYTES_MAX as u64);
        RateLimit {
            bytes_per_s,
            burst_bytes,
            tokens: burst_bytes,
            refilled_at: now,
        }
    }

    pub fn bytes_per_s(&self) -> u64 {
        self.bytes_per_s
    }

    pub fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let earned = (u128::from(self.bytes_per_s) * elapsed.as_nanos() / 1_000_000_000) as u64;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(self.burst_bytes);
            self.refilled_at = now;
        }
    }

    /// Takes `bytes` for a piece if the bucket allows it now (a piece larger than the burst
    /// waits only for a full bucket).
    pub fn try_spend(&mut self, now: Instant, bytes: u64) -> bool {
        self.refill(now);
        if self.tokens < bytes.min(self.burst_bytes) {
            return false;
        }
        self.tokens = self.tokens.saturating_sub(bytes);
        true
    }

    /// When a piece of `bytes` may be sent (now or earlier if it may already).
    pub fn ready_at(&self, bytes: u64) -> Instant {
        let missing = bytes.min(self.burst_bytes).saturating_sub(self.tokens);
        // Rounded up: by then the refill (which rounds down) has earned them all, so that a
        // wake at this moment finds the bytes there and does not come back at once.
        let nanos =
            (u128::from(missing) * 1_000_000_000).div_ceil(u128::from(self.bytes_per_s.max(1)));
        self.refilled_at + Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
    }

    /// When a piece of `bytes` may be sent, if it must wait.
    pub fn waiting_until(&self, bytes: u64) -> Option<Instant> {
        (self.tokens < bytes.min(self.burst_bytes)).then(|| self.ready_at(bytes))
    }
}

/// The download limit: the bucket the downloads' piece requests spend, and whether a request
/// waits on it (then the node wakes when it allows one again).
pub struct RequestLimit {
    bucket: RateLimit,
    /// The piece size a request waits to afford, if one waits.
    waiting_for: Option<u64>,
    /// Bytes asked beyond what the bucket held (a request's pieces may be larger than the
    /// size it was allowed by): paid before anything else is allowed.
    debt: u64,
}

impl RequestLimit {
    pub fn new(bytes_per_s: u64, now: Instant) -> RequestLimit {
        RequestLimit {
            bucket: RateLimit::new(bytes_per_s, now),
            waiting_for: None,
            debt: 0,
        }
    }

    pub fn bytes_per_s(&self) -> u64 {
        self.bucket.bytes_per_s()
    }

    /// Forgets the request that waited: every download is about to ask again (see
    /// `Downloads::fill_windows`), and notes a wait anew if one must.
    pub fn new_round(&mut self) {
        self.waiting_for = None;
    }

    /// How many pieces of `piece_bytes` may be asked now, at most `wanted`: as many as the
    /// bucket holds. None noted as a wait.
    pub fn pieces_allowed(&mut self, now: Instant, piece_bytes: u32, wanted: u32) -> u32 {
        self.bucket.refill(now);
        let paid = self.debt.min(self.bucket.tokens);
        self.bucket.tokens -= paid;
        self.debt -= paid;
        let piece_bytes = u64::from(piece_bytes.max(1));
        // With a debt left, the bucket is empty.
        let affordable = self.bucket.tokens / piece_bytes;
        let allowed = u32::try_from(affordable).unwrap_or(u32::MAX).min(wanted);
        self.waiting_for = (allowed == 0 && wanted > 0).then_some(piece_bytes + self.debt);
        allowed
    }

    /// Pays for a request of `bytes`: what the bucket does not hold is owed, and paid first
    /// from what it gains.
    pub fn spend(&mut self, bytes: u64) {
        let paid = bytes.min(self.bucket.tokens);
        self.bucket.tokens -= paid;
        self.debt += bytes - paid;
    }

    /// When the request that waits may be asked, if one waits.
    pub fn waiting_until(&self) -> Option<Instant> {
        let bytes = self.waiting_for?;
        Some(self.bucket.ready_at(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_never_run_ahead_of_the_download_limit() {
        let start = Instant::now();
        let rate = 1 << 20;
        let mut limit = RequestLimit::new(rate, start);
        let piece_bytes = 1400;
        let (mut asked, mut now) = (0u64, start);
        // Ask as fast as allowed for ten seconds, waking only when the limit says.
        while now < start + Duration::from_secs(10) {
            let pieces = limit.pieces_allowed(now, piece_bytes, 64);
            let bytes = u64::from(pieces * piece_bytes);
            limit.spend(bytes);
            asked += bytes;
            now = match limit.waiting_until() {
                Some(at) => at.max(now + Duration::from_micros(1)),
                None => now + Duration::from_millis(1),
            };
        }
        let elapsed = now.duration_since(start).as_secs_f64();
        let burst = rate / 10;
        assert!(
            asked <= burst + (rate as f64 * elapsed) as u64,
            "{asked} bytes in {elapsed} s"
        );
        assert!(
            asked as f64 >= 0.95 * rate as f64 * elapsed,
            "{asked} bytes in {elapsed} s"
        );
    }
}
