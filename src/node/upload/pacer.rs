//! Pacing one peer's pieces at the rate that peer asked for.
//!
//! A downloader measures what reaches it and asks each holder for a pace (see
//! `node::download::congestion`); the holder spreads that peer's pieces over time instead of
//! sending a whole window at line rate, which a shallow bottleneck queue would drop. As in
//! quinn-proto's pacer, a new pace starts with a short burst ([`BURST`], at least
//! [`BURST_DATAGRAMS_MIN`] datagrams), because timers fire in milliseconds and a send of one
//! datagram per wake-up could not reach a gigabyte per second.
//!
//! **A late wake-up does not lose the pace.** A pacer exists only while its peer has pieces
//! waiting, so every token it earns is owed to them. The reactor's timer says when the next
//! datagram may go, but on a busy machine (two cores shared by the holder, the downloader
//! and the kernel's network work) it fires 2 to 5 ms late; a bucket capped at one 2 ms burst
//! then threw away what it earned meanwhile, and measured on the clean netlab link the holder
//! sent 72% of the pace asked (28% of the credit capped away, 2026-12-07). The downloader's
//! model, seeing less than it asked, lowered the pace and the next round lost as much again.
//! The bucket therefore keeps up to [`CREDIT_MAX`] of credit: a wake-up that late sends what
//! was owed in one burst. A shallow bottleneck queue is no worse off for it: the downloader
//! never has more than about 20 ms of its pace requested (`congestion::IN_FLIGHT_EXTRA`),
//! and 10 ms at the bottleneck's rate is half of that.
//!
//! **Every send is a whole burst.** Once the bucket is empty the peer waits until a whole
//! burst ([`BURST`] at its pace) is earned again, as quinn-proto's pacer waits for its
//! bucket to fill, instead of sending each datagram as soon as its own bytes are earned.
//! The holder wakes for every request that arrives, not only for its pacing timer; each
//! wake-up sent the few datagrams earned since the last, so the pieces of a fast peer left
//! in GSO sends of a few segments and reached the receiver as as many separate datagrams
//! (at 1,400-byte pieces on loopback, 10-20% more datagrams received than unpaced,
//! 2026-12-07). The average pace is the same: the bucket keeps what it earns. Only a burst
//! that fills a GSO send ([`BURST_GATED_BYTES_MIN`]) is waited for.
//!
//! **Never wait for more than is queued.** The whole burst waited for is at most what the
//! peer has asked for and not received. A downloader keeps a window of pieces in flight, and
//! on loopback that window (21 pieces of 64 KiB, 1.4 MB) is smaller than a 2 ms burst at its
//! pace (1.9 MB at 937 MB/s): waiting for a whole burst then sent one window per 2 ms,
//! whatever the pace, and a paced transfer delivered 650-750 MB/s of the 937 it asked
//! (2026-12-07). Once what is queued is earned, it goes, in one send as before.

use std::time::{Duration, Instant};

/// How long a burst may last at the peer's pace.
pub const BURST: Duration = Duration::from_millis(2);
/// A burst is at least this many datagrams, however slow the pace.
pub const BURST_DATAGRAMS_MIN: u64 = 2;
/// A peer whose bucket ran empty waits for a whole burst only when the burst fills at
/// least this: one GSO send (64 KiB), at 2 ms a pace of 32 MB/s and more.
pub const BURST_GATED_BYTES_MIN: u64 = crate::udp::GSO_BYTES_MAX as u64;
/// Most credit the bucket keeps, in time at the peer's pace: what a timer that fires this
/// late still sends (at least [`BURST`]).
pub const CREDIT_MAX: Duration = Duration::from_millis(10);

/// A token bucket of bytes for one peer. A pace of zero means unpaced.
#[derive(Clone, Debug)]
pub struct Pacer {
    bytes_per_s: u64,
    tokens: u64,
    refilled_at: Instant,
    /// Paced since the last unpaced moment: a new pace starts with a full burst.
    started: bool,
    /// The bucket ran empty: nothing goes until a whole burst is earned again.
    refilling: bool,
}

impl Pacer {
    pub fn new(now: Instant) -> Pacer {
        Pacer {
            bytes_per_s: 0,
            tokens: 0,
            refilled_at: now,
            started: false,
            refilling: false,
        }
    }

    /// Whether the peer asked for a pace.
    pub fn paced(&self) -> bool {
        self.bytes_per_s > 0
    }

    /// The pace the peer asked for last (bytes per second; 0: unpaced).
    pub fn set_rate(&mut self, bytes_per_s: u64) {
        self.bytes_per_s = bytes_per_s;
        self.started &= bytes_per_s > 0;
    }

    /// Bytes the pace earns in `time`, and at least [`BURST_DATAGRAMS_MIN`] datagrams.
    fn bytes_in(&self, time: Duration, datagram_bytes: u64) -> u64 {
        let bytes = u128::from(self.bytes_per_s) * time.as_nanos() / 1_000_000_000;
        (bytes.min(u128::from(u64::MAX)) as u64).max(BURST_DATAGRAMS_MIN * datagram_bytes)
    }

    /// Adds the tokens earned since the last refill (at most [`CREDIT_MAX`] of them);
    /// `datagram_bytes` is the peer's next datagram, `queued_bytes` all of its queued
    /// datagrams (see [`Pacer::needed`]).
    pub fn refill(&mut self, now: Instant, datagram_bytes: u64, queued_bytes: u64) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let earned = u128::from(self.bytes_per_s) * elapsed.as_nanos() / 1_000_000_000;
        if earned > 0 {
            let credit_max = self.bytes_in(CREDIT_MAX, datagram_bytes);
            self.tokens = (u128::from(self.tokens) + earned).min(u128::from(credit_max)) as u64;
            self.refilled_at = now;
        }
        self.refilling &= self.tokens < self.needed(datagram_bytes, queued_bytes);
    }

    /// Whether the next datagram waits for a whole burst (or all that is queued, if less):
    /// only then does what is queued count (see [`Pacer::needed`]).
    pub fn waits_for_burst(&self) -> bool {
        self.refilling && self.burst_bytes() >= BURST_GATED_BYTES_MIN
    }

    /// Bytes of a whole burst at the pace: a queue holding this much holds enough to wait
    /// for (see [`Pacer::needed`]).
    pub fn burst_bytes(&self) -> u64 {
        let burst = u128::from(self.bytes_per_s) * BURST.as_nanos() / 1_000_000_000;
        burst.min(u128::from(u64::MAX)) as u64
    }

    /// Tokens the next datagram of `bytes` waits for: its own bytes, or when the bucket ran
    /// empty and a burst fills at least one GSO send ([`BURST_GATED_BYTES_MIN`]), a whole
    /// burst, or everything queued (`queued_bytes`, the next datagram's included) when that
    /// is less. A smaller burst gains no batching by waiting, only delay: on slow paths the
    /// next datagram goes as soon as it is earned, as before (the simulation's 1 MiB/s
    /// uploads in 8 KiB pieces waited 16 ms for every second piece, and its swarms finished
    /// up to 0.2 T* later).
    fn needed(&self, bytes: u64, queued_bytes: u64) -> u64 {
        if !self.refilling {
            return bytes;
        }
        let burst = self.burst_bytes();
        if burst < BURST_GATED_BYTES_MIN {
            return bytes;
        }
        burst.min(queued_bytes).max(bytes)
    }

    /// Takes `bytes` for one datagram if the pace allows it now (`queued_bytes`: as in
    /// [`Pacer::refill`]).
    pub fn try_take(&mut self, now: Instant, bytes: u64, queued_bytes: u64) -> bool {
        if self.bytes_per_s == 0 {
            return true;
        }
        if !self.started {
            self.started = true;
            self.refilling = false;
            self.tokens = self.bytes_in(BURST, bytes);
            self.refilled_at = now;
        }
        self.refill(now, bytes, queued_bytes);
        if self.tokens < self.needed(bytes, queued_bytes) {
            self.refilling = true;
            return false;
        }
        self.tokens -= bytes;
        // Another datagram like it no longer fits: the burst is over.
        self.refilling = self.tokens < bytes;
        true
    }

    /// When a datagram of `bytes` may go, as of the last refill: `None` when unpaced, not
    /// started or allowed already (at once, not a timer).
    pub fn ready_at(&self, bytes: u64, queued_bytes: u64) -> Option<Instant> {
        let needed = self.needed(bytes, queued_bytes);
        if self.bytes_per_s == 0 || !self.started || self.tokens >= needed {
            return None;
        }
        // Tokens grow linearly from `refilled_at`, and a burst never needs more than the
        // credit the bucket keeps, so its cap cannot delay it. Rounded up, so that a refill
        // then has enough.
        let missing = u128::from(needed - self.tokens);
        let nanos = (missing * 1_000_000_000).div_ceil(u128::from(self.bytes_per_s));
        Some(self.refilled_at + Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64))
    }

    /// Whether a datagram of `bytes` may go at `now`.
    pub fn ready(&self, now: Instant, bytes: u64, queued_bytes: u64) -> bool {
        self.ready_at(bytes, queued_bytes)
            .is_none_or(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    /// More queued for the peer than any burst.
    const QUEUED: u64 = u64::MAX;

    #[test]
    fn unpaced_sends_at_once() {
        let now = Instant::now();
        let mut pacer = Pacer::new(now);
        assert!((0..1000).all(|_| pacer.try_take(now, 1_436, QUEUED)));
        assert_eq!(pacer.ready_at(1_436, QUEUED), None);
    }

    #[test]
    fn a_pace_spreads_datagrams_in_short_bursts() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        // 12.5 MB/s, 1,436-byte datagrams: 25 KB per 2 ms burst, 8,700 datagrams a second.
        pacer.set_rate(12_500_000);
        let mut sent = 0u64;
        let mut now = start;
        let mut largest_burst = 0;
        while now < start + Duration::from_secs(1) {
            let mut burst = 0;
            while pacer.try_take(now, 1_436, QUEUED) {
                sent += 1_436;
                burst += 1;
            }
            largest_burst = largest_burst.max(burst);
            let next = pacer.ready_at(1_436, QUEUED).expect("paced");
            assert!(next > now, "not ready right after it refused");
            assert!(!pacer.ready(now, 1_436, QUEUED));
            now = next.max(now + MS / 10);
            pacer.refill(now, 1_436, QUEUED);
            assert!(
                pacer.ready(now, 1_436, QUEUED) && pacer.ready_at(1_436, QUEUED).is_none(),
                "on time"
            );
        }
        assert!(
            (12_000_000..=12_600_000).contains(&sent),
            "{sent} bytes in a second"
        );
        assert!(largest_burst <= 18, "a burst of {largest_burst} datagrams");
    }

    #[test]
    fn wake_ups_between_bursts_send_nothing_until_a_whole_burst_is_earned() {
        // 250 MB/s in 1,436-byte datagrams, the holder woken every 50 us by requests as
        // well as by its timer: each send is a whole 2 ms burst (348 datagrams, several
        // full GSO sends), not the three or four datagrams earned since the last wake-up.
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        pacer.set_rate(250_000_000);
        let burst_datagrams = 250_000_000 * 2 / 1_000 / 1_436;
        let mut sent = 0u64;
        let mut bursts = Vec::new();
        let mut now = start;
        while now < start + Duration::from_secs(1) {
            pacer.refill(now, 1_436, QUEUED);
            let mut burst = 0u64;
            while pacer.ready(now, 1_436, QUEUED) && pacer.try_take(now, 1_436, QUEUED) {
                burst += 1;
            }
            if burst > 0 {
                bursts.push(burst);
            }
            sent += burst * 1_436;
            now += Duration::from_micros(50);
        }
        assert!(
            (248_000_000..=252_000_000).contains(&sent),
            "{sent} bytes in a second"
        );
        let smallest = bursts.iter().copied().min().unwrap_or(0);
        assert!(
            smallest >= burst_datagrams - 1,
            "a burst of {smallest} datagrams, {burst_datagrams} earned in 2 ms"
        );
        assert!(bursts.len() <= 501, "{} bursts in a second", bursts.len());
    }

    #[test]
    fn a_queue_smaller_than_a_burst_goes_once_it_is_earned() {
        // Loopback: 937 MB/s in 64 KiB datagrams, a 2 ms burst is 1.9 MB, but the peer keeps
        // only 21 pieces (1.4 MB) in flight. Once the bucket ran empty, what is queued goes
        // as soon as its bytes are earned, not when a whole burst is.
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        pacer.set_rate(937_000_000);
        let datagram = 65_507;
        let queued = 21 * datagram;
        assert!(queued < pacer.burst_bytes());
        while pacer.try_take(start, datagram, QUEUED) {}
        let at = pacer.ready_at(datagram, queued).expect("paced");
        let earned_in = Duration::from_nanos(queued * 1_000_000_000 / 937_000_000);
        assert!(
            at <= start + earned_in + MS / 10,
            "the queue waits {:?}, its bytes are earned in {earned_in:?}",
            at - start
        );
        pacer.refill(at, datagram, queued);
        let mut sent = 0;
        while sent < queued && pacer.try_take(at, datagram, queued - sent) {
            sent += datagram;
        }
        assert_eq!(sent, queued, "the whole queue goes in one send");
        // With more queued than a burst, the whole burst is waited for, as before.
        assert!(pacer.ready_at(datagram, QUEUED).expect("paced") >= at + BURST - MS / 10);
    }

    #[test]
    fn a_burst_too_small_for_a_gso_send_is_not_waited_for() {
        // 1 MiB/s in 8 KiB pieces (the simulation's swarms): a 2 ms burst is 2 KiB, less
        // than a datagram, so each piece goes as soon as its own bytes are earned.
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        pacer.set_rate(1 << 20);
        while pacer.try_take(start, 8 << 10, QUEUED) {}
        let next = pacer.ready_at(8 << 10, QUEUED).expect("paced");
        assert!(
            next <= start + 8 * MS,
            "the next piece waits until {:?}",
            next - start
        );
        assert!(pacer.try_take(next, 8 << 10, QUEUED), "earned, not sent");
    }

    #[test]
    fn a_late_timer_does_not_lose_the_pace() {
        // A holder woken 4 ms after each datagram was due (a busy machine) still sends the
        // pace: what it earned meanwhile goes in one burst. With a 2 ms cap it sent half.
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        pacer.set_rate(200_000_000);
        let mut sent = 0u64;
        let mut now = start;
        while now < start + Duration::from_secs(1) {
            while pacer.try_take(now, 1_472, QUEUED) {
                sent += 1_472;
            }
            now = pacer.ready_at(1_472, QUEUED).expect("paced") + 4 * MS;
        }
        assert!(
            (195_000_000..=205_000_000).contains(&sent),
            "{sent} bytes in a second"
        );
        // Later than that, the rest is lost: one burst never exceeds CREDIT_MAX.
        let mut burst = 0u64;
        let late = now + Duration::from_secs(1);
        while pacer.try_take(late, 1_472, QUEUED) {
            burst += 1_472;
        }
        assert!(burst <= 2_000_000 + 1_472, "a burst of {burst} bytes");
        assert!(burst >= 2_000_000 - 1_472, "a burst of {burst} bytes");
    }

    #[test]
    fn a_slow_pace_still_allows_two_datagrams() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        pacer.set_rate(10_000);
        assert!(pacer.try_take(start, 1_436, QUEUED) && pacer.try_take(start, 1_436, QUEUED));
        assert!(
            !pacer.try_take(start, 1_436, QUEUED),
            "a new pace starts with one burst"
        );
        let later = start + Duration::from_secs(10);
        assert!(pacer.try_take(later, 1_436, QUEUED) && pacer.try_take(later, 1_436, QUEUED));
        assert!(
            !pacer.try_take(later, 1_436, QUEUED),
            "the burst is two datagrams"
        );
    }
}
