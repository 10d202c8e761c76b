//! Each node's access link: a propagation delay, and one queue each way (upload, download)
//! drained at the link's capacity, with an optional byte limit past which it drops, and the
//! counters a congestion-control test asserts on.
//!
//! A datagram from node A to node B takes this path:
//!
//! ```text
//! A's upload queue ─▶ A's one_way_delay + latency + jitter + B's one_way_delay ─▶ B's download queue ─▶ B
//! ```
//!
//! so with no queueing the round trip between A and B is
//! `2 × (A.one_way_delay + NetConfig::latency + B.one_way_delay)` plus jitter and the time on
//! the wire. The download queue is the last hop, as a `tc tbf` on the downloader's link is: it
//! sees datagrams in the order they reach it, however far each came from.
//!
//! Every default is today's link: no capacity (no queue), no delay, no limit.

use std::time::Duration;

/// How fast a node's link moves bytes, each way, in bytes per second (`None`: no limit, as
/// every link is by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    pub upload_bytes_per_s: Option<u64>,
    pub download_bytes_per_s: Option<u64>,
}

/// Everything that shapes one node's link ([`super::Sim::set_link`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkSpec {
    pub capacity: Capacity,
    /// Propagation delay of this node's link, each way: every datagram it sends or receives
    /// spends this long on it, after its upload queue and before the receiver's download
    /// queue. Two nodes with 5 ms each and no `NetConfig::latency` are 20 ms apart in RTT.
    pub one_way_delay: Duration,
    /// Most bytes the upload queue holds (tail drop). It is also the node's send buffer,
    /// which stops asking the node for datagrams once [`SEND_BUFFER_TIME`] of sending is
    /// queued; a limit below that drops instead, as a shallow uplink queue would. Only
    /// meaningful with an upload capacity. `None`: no limit but the send buffer.
    pub upload_queue_bytes_max: Option<u64>,
    /// Most bytes the download queue holds (tail drop, like `tc tbf ... limit 256kb`): a
    /// datagram that would take it past this is dropped, so congestion shows as loss as
    /// well as delay. Only meaningful with a download capacity. `None`: it never drops (a
    /// router with an endless buffer).
    pub download_queue_bytes_max: Option<u64>,
}

/// What a link with an upload capacity holds before the node's socket refuses more (the
/// reactor then keeps the datagram and waits for the socket to be writable): what the link
/// sends in this long. A time rather than a byte count, so that a scaled-down simulation
/// (small files, slow links) queues as long as the real thing does.
pub const SEND_BUFFER_TIME: Duration = Duration::from_millis(20);

/// What one direction of a link did since the simulation began. A datagram's queueing delay
/// is the time it waits behind the datagrams ahead of it (not its own time on the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStats {
    /// Datagrams and bytes that went through (with or without a capacity).
    pub datagrams_forwarded: u64,
    pub bytes_forwarded: u64,
    /// Datagrams and bytes dropped because the queue was full.
    pub datagrams_dropped: u64,
    pub bytes_dropped: u64,
    /// Most bytes ever waiting (the datagram on the wire included).
    pub backlog_bytes_peak: u64,
    /// Longest and summed queueing delay of the datagrams forwarded.
    pub queueing_delay_max: Duration,
    pub queueing_delay_total: Duration,
    /// Integral over time of the bytes waiting, in byte-seconds.
    pub backlog_byte_seconds: f64,
    /// Integral over time of the queueing delay a datagram arriving at that instant would
    /// have had, in seconds × seconds: what a `ping` through the queue samples.
    pub queueing_delay_seconds_squared: f64,
}

impl QueueStats {
    /// Queueing delay averaged over the datagrams forwarded.
    pub fn queueing_delay_mean_per_datagram(&self) -> Duration {
        match self.datagrams_forwarded {
            0 => Duration::ZERO,
            count => self.queueing_delay_total / count.min(u64::from(u32::MAX)) as u32,
        }
    }

    /// Queueing delay averaged over `window` of time (a probe's view, as a `ping` through
    /// the queue would measure it), assuming the queue was empty before the window.
    pub fn queueing_delay_mean_over(&self, window: Duration) -> Duration {
        if window.is_zero() {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.queueing_delay_seconds_squared / window.as_secs_f64())
    }

    /// Bytes waiting, averaged over `window` of time (same assumption).
    pub fn backlog_bytes_mean_over(&self, window: Duration) -> f64 {
        if window.is_zero() {
            return 0.0;
        }
        self.backlog_byte_seconds / window.as_secs_f64()
    }

    /// Datagrams dropped over datagrams offered.
    pub fn drop_fraction(&self) -> f64 {
        let offered = self.datagrams_forwarded + self.datagrams_dropped;
        match offered {
            0 => 0.0,
            _ => self.datagrams_dropped as f64 / offered as f64,
        }
    }
}

/// A node's two queues, as [`super::Sim::link_stats`] reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkStats {
    pub upload: QueueStats,
    pub download: QueueStats,
}

/// One direction of a link: a FIFO drained at `bytes_per_s`, tail-dropping past
/// `bytes_max`. Offers must come in time order (the upload side is offered at `now`, the
/// download side when each datagram reaches it), which keeps the model a plain FIFO: the
/// bytes waiting at `t` are what `free_at - t` of sending moves.
#[derive(Clone, Debug, Default)]
struct Queue {
    bytes_per_s: Option<u64>,
    bytes_max: Option<u64>,
    /// Virtual time the last accepted datagram's last byte has left.
    free_at: Duration,
    /// The time integrals of the stats cover the time up to here.
    integrated_until: Duration,
    stats: QueueStats,
}

impl Queue {
    /// A datagram of `len` bytes reaching the queue at `at`: when its last byte has left,
    /// or `None` when the queue is full and drops it.
    fn offer(&mut self, at: Duration, len: usize) -> Option<Duration> {
        let len_bytes = len as u64;
        let Some(bytes_per_s) = self.bytes_per_s else {
            self.stats.datagrams_forwarded += 1;
            self.stats.bytes_forwarded += len_bytes;
            return Some(at);
        };
        self.integrate_until(at);
        let wait = self.free_at.saturating_sub(at);
        let backlog_bytes = bytes_moved(wait, bytes_per_s);
        if self
            .bytes_max
            .is_some_and(|max| backlog_bytes + len_bytes > max)
        {
            self.stats.datagrams_dropped += 1;
            self.stats.bytes_dropped += len_bytes;
            return None;
        }
        self.free_at = at.max(self.free_at) + wire_time(len, bytes_per_s);
        let stats = &mut self.stats;
        stats.datagrams_forwarded += 1;
        stats.bytes_forwarded += len_bytes;
        stats.backlog_bytes_peak = stats.backlog_bytes_peak.max(backlog_bytes + len_bytes);
        stats.queueing_delay_max = stats.queueing_delay_max.max(wait);
        stats.queueing_delay_total += wait;
        Some(self.free_at)
    }

    /// Adds the area under the queueing delay (which falls by a second a second until the
    /// queue is empty) from `integrated_until` to `until`.
    fn integrate_until(&mut self, until: Duration) {
        if until <= self.integrated_until {
            return;
        }
        let Some(bytes_per_s) = self.bytes_per_s else {
            self.integrated_until = until;
            return;
        };
        let wait = self
            .free_at
            .saturating_sub(self.integrated_until)
            .as_secs_f64();
        let span = (until - self.integrated_until).as_secs_f64();
        let area = if wait <= span {
            wait * wait / 2.0
        } else {
            (wait - span / 2.0) * span
        };
        self.stats.queueing_delay_seconds_squared += area;
        self.stats.backlog_byte_seconds += area * bytes_per_s as f64;
        self.integrated_until = until;
    }

    /// The stats, with the integrals carried up to `now`.
    fn stats(&self, now: Duration) -> QueueStats {
        let mut queue = self.clone();
        queue.integrate_until(now);
        queue.stats
    }
}

/// One node's link: its delay and its two queues.
#[derive(Clone, Debug, Default)]
pub(super) struct Link {
    spec: LinkSpec,
    upload: Queue,
    download: Queue,
}

impl Link {
    pub fn spec(&self) -> LinkSpec {
        self.spec
    }

    /// Changes the link from now on; datagrams already queued keep their times.
    pub fn set_spec(&mut self, spec: LinkSpec) {
        self.spec = spec;
        self.upload.bytes_per_s = spec.capacity.upload_bytes_per_s;
        self.upload.bytes_max = spec.upload_queue_bytes_max;
        self.download.bytes_per_s = spec.capacity.download_bytes_per_s;
        self.download.bytes_max = spec.download_queue_bytes_max;
    }

    pub fn one_way_delay(&self) -> Duration {
        self.spec.one_way_delay
    }

    /// A datagram of `len` bytes handed to the network at `now`: when its last byte has
    /// left the sender, or `None` when the upload queue drops it.
    pub fn depart(&mut self, now: Duration, len: usize) -> Option<Duration> {
        self.upload.offer(now, len)
    }

    /// Whether datagrams for this node wait in a download queue: they must then be offered
    /// to it when they reach it ([`Link::arrive`]), in that order.
    pub fn download_queued(&self) -> bool {
        self.download.bytes_per_s.is_some()
    }

    /// A datagram of `len` bytes reaching this node's download queue at `at`: when the node
    /// has it, or `None` when the queue drops it.
    pub fn arrive(&mut self, at: Duration, len: usize) -> Option<Duration> {
        self.download.offer(at, len)
    }

    /// When the node's send buffer has room again, if it is full at `now`: until then the
    /// node is not asked for datagrams.
    pub fn blocked_until(&self, now: Duration) -> Option<Duration> {
        self.upload.bytes_per_s?;
        let writable_at = self.upload.free_at.saturating_sub(SEND_BUFFER_TIME);
        (writable_at > now).then_some(writable_at)
    }

    pub fn stats(&self, now: Duration) -> LinkStats {
        LinkStats {
            upload: self.upload.stats(now),
            download: self.download.stats(now),
        }
    }
}

/// How long `len` bytes take on a link of `bytes_per_s` (at least a nanosecond, so that
/// datagrams on one link never leave at the same instant).
fn wire_time(len: usize, bytes_per_s: u64) -> Duration {
    let nanos = (len as u128 * 1_000_000_000 / u128::from(bytes_per_s.max(1))).max(1);
    Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
}

/// How many bytes a link of `bytes_per_s` sends in `time` (rounded down).
fn bytes_moved(time: Duration, bytes_per_s: u64) -> u64 {
    let bytes = time.as_nanos() * u128::from(bytes_per_s) / 1_000_000_000;
    bytes.min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn link(spec: LinkSpec) -> Link {
        let mut link = Link::default();
        link.set_spec(spec);
        link
    }

    fn capacity(upload: Option<u64>, download: Option<u64>) -> Capacity {
        Capacity {
            upload_bytes_per_s: upload,
            download_bytes_per_s: download,
        }
    }

    #[test]
    fn unlimited_link_adds_nothing() {
        let mut link = Link::default();
        assert_eq!(link.depart(5 * MS, 1 << 20), Some(5 * MS));
        assert_eq!(link.arrive(7 * MS, 1 << 20), Some(7 * MS));
        assert_eq!(link.blocked_until(5 * MS), None);
        assert!(!link.download_queued());
        let stats = link.stats(10 * MS);
        assert_eq!(stats.upload.bytes_forwarded, 1 << 20);
        assert_eq!(stats.download.datagrams_forwarded, 1);
        assert_eq!(stats.download.queueing_delay_seconds_squared, 0.0);
    }

    #[test]
    fn datagrams_queue_on_the_upload_side() {
        // 1,000 bytes/s: a 10-byte datagram takes 10 ms on the wire.
        let mut link = link(LinkSpec {
            capacity: capacity(Some(1_000), None),
            ..LinkSpec::default()
        });
        assert_eq!(link.depart(Duration::ZERO, 10), Some(10 * MS));
        assert_eq!(link.depart(Duration::ZERO, 10), Some(20 * MS));
        // Queued up to 20 ms ahead: exactly the send buffer, not yet full.
        assert_eq!(link.blocked_until(Duration::ZERO), None);
        assert_eq!(link.depart(Duration::ZERO, 10), Some(30 * MS));
        assert_eq!(link.blocked_until(Duration::ZERO), Some(10 * MS));
        assert_eq!(link.blocked_until(10 * MS), None);
        // An idle link starts afresh.
        assert_eq!(link.depart(100 * MS, 10), Some(110 * MS));
    }

    #[test]
    fn datagrams_queue_on_the_download_side() {
        let mut link = link(LinkSpec {
            capacity: capacity(None, Some(1_000)),
            ..LinkSpec::default()
        });
        assert!(link.download_queued());
        assert_eq!(link.arrive(5 * MS, 10), Some(15 * MS));
        assert_eq!(link.arrive(6 * MS, 10), Some(25 * MS));
        assert_eq!(link.arrive(50 * MS, 1), Some(51 * MS));
        // Sending is not limited.
        assert_eq!(link.depart(Duration::ZERO, 10), Some(Duration::ZERO));
        let stats = link.stats(100 * MS).download;
        // The second waited 9 ms behind the first; the others found the queue empty.
        assert_eq!(stats.queueing_delay_max, 9 * MS);
        assert_eq!(stats.queueing_delay_total, 9 * MS);
        assert_eq!(stats.queueing_delay_mean_per_datagram(), 3 * MS);
        assert_eq!(stats.backlog_bytes_peak, 19);
    }

    #[test]
    fn a_full_download_queue_drops_the_tail() {
        // 1,000 bytes/s, at most 25 bytes waiting.
        let mut link = link(LinkSpec {
            capacity: capacity(None, Some(1_000)),
            download_queue_bytes_max: Some(25),
            ..LinkSpec::default()
        });
        assert_eq!(link.arrive(Duration::ZERO, 10), Some(10 * MS));
        assert_eq!(link.arrive(Duration::ZERO, 10), Some(20 * MS));
        // 20 bytes waiting: 10 more would make 30.
        assert_eq!(link.arrive(Duration::ZERO, 10), None);
        assert_eq!(link.arrive(Duration::ZERO, 5), Some(25 * MS));
        // 5 ms later 5 bytes have left: room for 5 again, not for 6.
        assert_eq!(link.arrive(5 * MS, 6), None);
        assert_eq!(link.arrive(5 * MS, 5), Some(30 * MS));
        let stats = link.stats(30 * MS).download;
        assert_eq!(stats.datagrams_dropped, 2);
        assert_eq!(stats.bytes_dropped, 16);
        assert_eq!(stats.datagrams_forwarded, 4);
        assert_eq!(stats.backlog_bytes_peak, 25);
        assert!((stats.drop_fraction() - 2.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn a_full_upload_queue_drops_the_tail() {
        let mut link = link(LinkSpec {
            capacity: capacity(Some(1_000), None),
            upload_queue_bytes_max: Some(15),
            ..LinkSpec::default()
        });
        assert_eq!(link.depart(Duration::ZERO, 10), Some(10 * MS));
        assert_eq!(link.depart(Duration::ZERO, 10), None);
        assert_eq!(link.stats(Duration::ZERO).upload.datagrams_dropped, 1);
    }

    #[test]
    fn the_time_average_is_what_a_probe_sees() {
        // 1,000 bytes/s: 20 bytes at 0 keep the queue busy for 20 ms, during which the
        // delay a probe would see falls from 20 ms to 0: 10 ms on average over those 20 ms,
        // 5 ms over 40.
        let mut link = link(LinkSpec {
            capacity: capacity(None, Some(1_000)),
            ..LinkSpec::default()
        });
        assert_eq!(link.arrive(Duration::ZERO, 20), Some(20 * MS));
        let stats = link.stats(40 * MS).download;
        let close = |a: Duration, b: Duration| a.abs_diff(b) < Duration::from_micros(1);
        assert!(close(stats.queueing_delay_mean_over(40 * MS), 5 * MS));
        // The bytes waiting fall from 20 to 0 over 20 ms: 10 on average, 5 over 40 ms.
        assert!((stats.backlog_bytes_mean_over(40 * MS) - 5.0).abs() < 1e-6);
        // Half way, and then another arrival: the integral is carried to each arrival.
        let mut halves = link.clone();
        let before = halves
            .stats(10 * MS)
            .download
            .queueing_delay_seconds_squared;
        // 20 ms falling to 10 ms over 10 ms: 150 ms·ms.
        assert!((before - 150e-6).abs() < 1e-12);
        assert_eq!(halves.arrive(10 * MS, 10), Some(30 * MS));
        // From 20 ms at 10 ms to empty at 30 ms: 200 ms·ms more.
        let after = halves
            .stats(40 * MS)
            .download
            .queueing_delay_seconds_squared;
        assert!((after - 350e-6).abs() < 1e-12);
    }
}
