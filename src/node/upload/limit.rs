//! The node's upload limit (`--max-upload-rate`): a token bucket of bytes, shared by every
//! peer the node serves.

use crate::wire;
use std::time::{Duration, Instant};

/// Largest burst of the upload limit: about 100 ms worth.
const BURST: Duration = Duration::from_millis(100);

/// A token bucket of bytes.
pub struct UploadLimit {
    bytes_per_s: u64,
    /// At least one datagram's worth, so that any piece can be sent.
    burst_bytes: u64,
    tokens: u64,
    refilled_at: Instant,
}

impl UploadLimit {
    /// A full bucket for `bytes_per_s`.
    pub fn new(bytes_per_s: u64, now: Instant) -> UploadLimit {
        let burst_bytes =
            (bytes_per_s / (1_000 / BURST.as_millis() as u64)).max(wire::DATAGRAM_BYTES_MAX as u64);
        UploadLimit {
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
        let nanos = u128::from(missing) * 1_000_000_000 / u128::from(self.bytes_per_s.max(1));
        self.refilled_at + Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
    }

    /// When a piece of `bytes` may be sent, if it must wait.
    pub fn waiting_until(&self, bytes: u64) -> Option<Instant> {
        (self.tokens < bytes.min(self.burst_bytes)).then(|| self.ready_at(bytes))
    }
}
