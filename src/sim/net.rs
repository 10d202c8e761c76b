//! The simulated network's values: how it treats datagrams, what it counted, what is in
//! flight, and partitions. Each node's own link (capacity, delay, queues) is in `link.rs`.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// How the simulated network treats datagrams. Probabilities are in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetConfig {
    /// Fixed one-way delay between any two endpoints (each node's link may add its own:
    /// [`super::LinkSpec::one_way_delay`]).
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

/// What the network did, for assertions and for bench reports.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    /// Dropped because [`IN_FLIGHT_MAX`](super::IN_FLIGHT_MAX) datagrams were in flight.
    pub dropped_full: u64,
    /// Dropped by a node's full upload or download queue (each link counts its own in
    /// [`super::LinkStats`]).
    pub dropped_at_queue: u64,
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
    /// It is due at the receiver's download queue, not yet at the receiver.
    pub before_download_queue: bool,
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
