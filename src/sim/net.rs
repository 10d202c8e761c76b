//! The simulated network's values: how it treats datagrams, what it counted, what is in
//! flight, partitions, and each node's link (its upload and download capacity).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// How the simulated network treats datagrams. Probabilities are in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetConfig {
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`; reorders datagrams.
    pub jitter: Duration,
    /// Chance a datagram is dropped.
    pub loss: f64,
    /// Chance a datagram is delivered twice (each copy with its own delay).
    pub duplicate: f64,
    /// Chance a piece datagram arrives with one data byte flipped (a checksum that missed,
    /// a peer's bad disk): what chunk verification is there to catch.
    pub corrupt_piece: f64,
}

/// How fast a node's link moves bytes, each way, in bytes per second (`None`: no limit, as
/// every link is by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    pub upload_bytes_per_s: Option<u64>,
    pub download_bytes_per_s: Option<u64>,
}

/// What a link with an upload capacity holds before the node's socket refuses more (the
/// reactor then keeps the datagram and waits for the socket to be writable): what the link
/// sends in this long. A time rather than a byte count, so that a scaled-down simulation
/// (small files, slow links) queues as long as the real thing does.
pub const SEND_BUFFER_TIME: Duration = Duration::from_millis(20);

/// One node's link: a serialisation queue each way. A datagram leaves the sender once the
/// ones before it have (`upload_free_at`), taking `len / capacity` on the wire; on the far
/// side it waits likewise for the receiver's download capacity. The download side is
/// computed when the datagram is sent (first sent, first received), and never drops: it is
/// a router with a deep buffer.
#[derive(Clone, Debug, Default)]
pub(super) struct Link {
    pub capacity: Capacity,
    /// Virtual time the last queued datagram has left the sender.
    upload_free_at: Duration,
    /// Virtual time the last datagram queued for this node has arrived.
    download_free_at: Duration,
}

impl Link {
    /// A datagram of `len` bytes handed to the network at `now`: when its last byte has
    /// left the sender.
    pub fn depart(&mut self, now: Duration, len: usize) -> Duration {
        let Some(bytes_per_s) = self.capacity.upload_bytes_per_s else {
            return now;
        };
        self.upload_free_at = now.max(self.upload_free_at) + wire_time(len, bytes_per_s);
        self.upload_free_at
    }

    /// A datagram of `len` bytes reaching this node's link at `at`: when the node has it.
    pub fn arrive(&mut self, at: Duration, len: usize) -> Duration {
        let Some(bytes_per_s) = self.capacity.download_bytes_per_s else {
            return at;
        };
        self.download_free_at = at.max(self.download_free_at) + wire_time(len, bytes_per_s);
        self.download_free_at
    }

    /// When the node's send buffer has room again, if it is full at `now`: until then the
    /// node is not asked for datagrams.
    pub fn blocked_until(&self, now: Duration) -> Option<Duration> {
        self.capacity.upload_bytes_per_s?;
        let writable_at = self.upload_free_at.saturating_sub(SEND_BUFFER_TIME);
        (writable_at > now).then_some(writable_at)
    }
}

/// How long `len` bytes take on a link of `bytes_per_s` (at least a nanosecond, so that
/// datagrams on one link never leave at the same instant).
fn wire_time(len: usize, bytes_per_s: u64) -> Duration {
    let nanos = (len as u128 * 1_000_000_000 / u128::from(bytes_per_s.max(1))).max(1);
    Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
}

/// What the network did, for assertions and for bench reports.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub dropped_full: u64,
    pub dropped_disconnected: u64,
    /// Dropped because a partition separated sender and receiver at delivery time.
    pub dropped_partitioned: u64,
    /// Sent to, or due at, a process that was down (crashed, not yet restarted).
    pub dropped_down: u64,
    pub bytes_delivered: u64,
}

/// Who owns an address: the tracker, or the node with this index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    Tracker,
    Node(usize),
}

/// An item due at a virtual time; the heap pops the earliest, then the first queued.
pub(super) struct Timed<T> {
    pub at: Duration,
    pub seq: u64,
    pub item: T,
}

impl<T> PartialEq for Timed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Timed<T> {}
impl<T> PartialOrd for Timed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Timed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub(super) struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Two groups of endpoints that cannot reach each other (either way) until `heal_at`.
/// Datagrams within a group, and to or from endpoints in neither, pass.
#[derive(Clone, Debug)]
pub(super) struct Partition {
    pub sides: [BTreeSet<Endpoint>; 2],
    pub heal_at: Duration,
}

impl Partition {
    /// Whether this partition drops a datagram between `a` and `b` at virtual time `now`.
    pub fn separates(&self, now: Duration, a: Endpoint, b: Endpoint) -> bool {
        let [left, right] = &self.sides;
        now < self.heal_at
            && ((left.contains(&a) && right.contains(&b))
                || (left.contains(&b) && right.contains(&a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn unlimited_link_adds_nothing() {
        let mut link = Link::default();
        assert_eq!(link.depart(5 * MS, 1 << 20), 5 * MS);
        assert_eq!(link.arrive(7 * MS, 1 << 20), 7 * MS);
        assert_eq!(link.blocked_until(5 * MS), None);
    }

    #[test]
    fn datagrams_queue_on_the_upload_side() {
        // 1,000 bytes/s: a 10-byte datagram takes 10 ms on the wire.
        let mut link = Link {
            capacity: Capacity {
                upload_bytes_per_s: Some(1_000),
                download_bytes_per_s: None,
            },
            ..Link::default()
        };
        assert_eq!(link.depart(Duration::ZERO, 10), 10 * MS);
        assert_eq!(link.depart(Duration::ZERO, 10), 20 * MS);
        // Queued up to 20 ms ahead: exactly the send buffer, not yet full.
        assert_eq!(link.blocked_until(Duration::ZERO), None);
        assert_eq!(link.depart(Duration::ZERO, 10), 30 * MS);
        assert_eq!(link.blocked_until(Duration::ZERO), Some(10 * MS));
        assert_eq!(link.blocked_until(10 * MS), None);
        // An idle link starts afresh.
        assert_eq!(link.depart(100 * MS, 10), 110 * MS);
    }

    #[test]
    fn datagrams_queue_on_the_download_side() {
        let mut link = Link {
            capacity: Capacity {
                upload_bytes_per_s: None,
                download_bytes_per_s: Some(1_000),
            },
            ..Link::default()
        };
        assert_eq!(link.arrive(5 * MS, 10), 15 * MS);
        assert_eq!(link.arrive(6 * MS, 10), 25 * MS);
        assert_eq!(link.arrive(50 * MS, 1), 51 * MS);
        // Sending is not limited.
        assert_eq!(link.depart(Duration::ZERO, 10), Duration::ZERO);
    }
}
