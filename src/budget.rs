//! Per-sender budgets at a process's door: each sender, keyed by (address, port), may send
//! [`SENDER_BURST`] datagrams at once and [`SENDER_RATE_PER_S`] a second after that; the
//! rest are dropped before they are decoded, so that one flooding socket cannot take the
//! whole of the process's time. Peers that share a host (as on loopback) are separate
//! senders, so one of them flooding does not punish the others.
//!
//! * **Bounded, allocated once.** The table is a fixed array ([`TRACKER_SENDERS_MAX`] or
//!   [`NODE_SENDERS_MAX`] entries) in sets of [`SET_WAYS`] (a set-associative cache, as a
//!   CPU's): a sender lives in the set its keyed hash picks, and a new sender takes the place
//!   of the idlest entry of that set (the one nearest its full burst; an idle entry holds
//!   nothing worth keeping). Nothing grows with the number of senders; a flood of distinct
//!   senders only recycles entries, and an evicted sender comes back with a full burst,
//!   which is what it would have had if idle. A flooder's own entry is the busiest of its
//!   set, so it is the last to go.
//! * **Cheap.** One keyed hash and at most [`SET_WAYS`] compares of 32-byte entries per
//!   datagram, no allocation: about 25 ns for a known sender and 40 ns among 100,000
//!   distinct ones (busy 2-core machine), against about 7 µs for the tracker's whole answer.
//! * **Exact and sans-IO.** Each entry is a GCRA ("generic cell rate algorithm", the token
//!   bucket kept as one number): the theoretical arrival time of the sender's next datagram,
//!   in nanoseconds since the budget was made. `now` is passed in.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Most senders the tracker remembers at once (32 bytes each: 512 KiB).
pub const TRACKER_SENDERS_MAX: usize = 16_384;
/// Most senders a node remembers at once: it serves peers of at most 64 downloads of
/// others, but a table too small only lets a flooder's entry be evicted by honest peers.
pub const NODE_SENDERS_MAX: usize = 1_024;
/// Entries per set: a new sender evicts the idlest of these.
pub const SET_WAYS: usize = 8;
/// Datagrams one sender may send at once.
pub const SENDER_BURST: u32 = 16_384;
/// Datagrams one sender may send per second, sustained. Generous: a node sends a few a
/// second and a credit per verified chunk; the load benchmark's generator sends about
/// 45,000 a second from each of its sockets (see README, "Limits").
pub const SENDER_RATE_PER_S: u32 = 131_072;

/// Registers the tracker cannot accept from a known node's token (they get a cookie to
/// echo, or make a new node) that one source address, all its ports together, may send at
/// once, and per second sustained: a flood of them from one host, however many ports it
/// uses, costs the tracker little, while a thousand nodes behind one address still join.
pub const UNPROVEN_BURST: u32 = 1_024;
pub const UNPROVEN_RATE_PER_S: u32 = 4_096;

const _: () = assert!((TRACKER_SENDERS_MAX / SET_WAYS).is_power_of_two());
const _: () = assert!((NODE_SENDERS_MAX / SET_WAYS).is_power_of_two());
const _: () = assert!(std::mem::size_of::<Entry>() == 32);

/// A sender as two integers: compared and hashed faster than a `SocketAddr`. IPv4 is kept
/// as IPv4-mapped IPv6, so that both forms of one address are one sender.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    // Two halves, not a u128: alignment 8 keeps an entry at 32 bytes.
    ip_high: u64,
    ip_low: u64,
    port: u16,
}

impl Key {
    fn of(sender: SocketAddr) -> Key {
        let ip = match sender.ip() {
            IpAddr::V4(ip) => ip.to_ipv6_mapped(),
            IpAddr::V6(ip) => ip,
        };
        let bits = ip.to_bits();
        Key {
            ip_high: (bits >> 64) as u64,
            ip_low: bits as u64,
            port: sender.port(),
        }
    }
}

#[derive(Clone, Copy)]
struct Entry {
    sender: Key,
    /// When the sender's bucket is full again, in ns since `start`; at or before now means
    /// idle. Zero: never used.
    full_at_ns: u64,
}

/// What [`SenderBudgets::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Over budget: drop the datagram without decoding it.
    Drop,
}

pub struct SenderBudgets {
    entries: Box<[Entry]>,
    /// Sets in the table, minus one (their number is a power of two).
    set_mask: usize,
    hash_key: u64,
    start: Instant,
    interval_ns: u64,
    /// How far ahead of now a sender's `full_at_ns` may be and still admit one more.
    tolerance_ns: u64,
    /// The latest `now` seen, in ns since `start`: time never goes back for the budgets.
    latest_ns: u64,
}

impl SenderBudgets {
    /// Budgets of [`SENDER_BURST`] and [`SENDER_RATE_PER_S`] for up to `senders_max`
    /// senders ([`TRACKER_SENDERS_MAX`], [`NODE_SENDERS_MAX`]); `hash_key` keys the choice
    /// of set (a secret: from the OS in a process, seeded in a simulation so that it replays).
    pub fn new(senders_max: usize, hash_key: u64, now: Instant) -> SenderBudgets {
        SenderBudgets::with_limits(senders_max, hash_key, now, SENDER_BURST, SENDER_RATE_PER_S)
    }

    /// Budgets of `burst` datagrams at once and `rate_per_s` a second (both at least 1).
    /// `senders_max` is rounded up to a power of two, at least [`SET_WAYS`].
    pub fn with_limits(
        senders_max: usize,
        hash_key: u64,
        now: Instant,
        burst: u32,
        rate_per_s: u32,
    ) -> Self {
        let senders_max = senders_max.max(SET_WAYS).next_power_of_two();
        let interval_ns = 1_000_000_000 / u64::from(rate_per_s.max(1));
        let empty = Entry {
            sender: Key {
                ip_high: 0,
                ip_low: 0,
                port: 0,
            },
            full_at_ns: 0,
        };
        SenderBudgets {
            entries: vec![empty; senders_max].into_boxed_slice(),
            set_mask: senders_max / SET_WAYS - 1,
            hash_key,
            start: now,
            interval_ns,
            tolerance_ns: interval_ns * u64::from(burst.max(1) - 1),
            latest_ns: 1,
        }
    }

    /// Counts one datagram from `sender` at `now` against its budget.
    pub fn admit(&mut self, now: Instant, sender: SocketAddr) -> Verdict {
        let sender = Key::of(sender);
        let now_ns = self.now_ns(now);
        self.latest_ns = now_ns;
        let base = self.set_of(&sender) * SET_WAYS;
        let set = &mut self.entries[base..base + SET_WAYS];
        let index = match set.iter().position(|e| e.sender == sender) {
            Some(index) => index,
            None => {
                // The idlest entry: the one whose bucket is (or soonest will be) full again.
                let (index, _) = set
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.full_at_ns)
                    .expect("a set is never empty");
                set[index] = Entry {
                    sender,
                    full_at_ns: now_ns,
                };
                index
            }
        };
        let entry = &mut set[index];
        let full_at = entry.full_at_ns.max(now_ns);
        if full_at - now_ns > self.tolerance_ns {
            return Verdict::Drop;
        }
        entry.full_at_ns = full_at + self.interval_ns;
        Verdict::Admit
    }

    /// Senders whose budget is not full at `now` (the rest are as good as forgotten).
    pub fn busy_senders(&self, now: Instant) -> usize {
        let now_ns = self.now_ns(now);
        self.entries
            .iter()
            .filter(|e| e.full_at_ns > now_ns)
            .count()
    }

    /// Entries in the table, used or not: fixed when it was made.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// `now` in ns since `start`, plus one (zero marks an entry never used); never earlier
    /// than the latest `now` seen (a reactor's clock does not go back; a test's may).
    fn now_ns(&self, now: Instant) -> u64 {
        let since_start = duration_ns(now.saturating_duration_since(self.start));
        (since_start + 1).max(self.latest_ns)
    }

    fn set_of(&self, sender: &Key) -> usize {
        let mut h = self.hash_key ^ u64::from(sender.port);
        h = mix(h ^ sender.ip_low ^ sender.ip_high.rotate_left(32));
        (h as usize) & self.set_mask
    }
}

fn duration_ns(duration: Duration) -> u64 {
    // Not as_nanos(): u128 arithmetic on every datagram for 584 years of range we never use.
    duration
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(duration.subsec_nanos()))
        .min(u64::MAX - 1)
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn admitted(budgets: &mut SenderBudgets, now: Instant, sender: SocketAddr, n: u32) -> u32 {
        (0..n)
            .filter(|_| budgets.admit(now, sender) == Verdict::Admit)
            .count() as u32
    }

    #[test]
    fn a_flood_from_one_port_is_cut_to_the_budget_and_a_second_port_is_not() {
        let start = Instant::now();
        let mut budgets = SenderBudgets::with_limits(64, 7, start, 100, 1_000);
        // At once: the burst, then nothing.
        assert_eq!(admitted(&mut budgets, start, at(4000), 10_000), 100);
        // Another port of the same address has its own budget.
        assert_eq!(admitted(&mut budgets, start, at(4001), 50), 50);
        // Over the next second, 1,000 datagrams a second: the flood gets the rate.
        let mut flood = 0;
        let mut other = 0;
        for ms in 1..=1_000u64 {
            let now = start + Duration::from_millis(ms);
            flood += admitted(&mut budgets, now, at(4000), 100);
            other += admitted(&mut budgets, now, at(4001), 1);
        }
        assert!((999..=1_001).contains(&flood), "flood admitted {flood}");
        assert_eq!(other, 1_000, "the other port lost datagrams");
        // Quiet for a while: the full burst is back.
        let later = start + Duration::from_secs(5);
        assert_eq!(admitted(&mut budgets, later, at(4000), 1_000), 100);
    }

    #[test]
    fn the_table_stays_at_its_size_under_distinct_senders_and_the_flooder_stays_cut() {
        let start = Instant::now();
        const SENDERS_MAX: usize = NODE_SENDERS_MAX;
        let mut budgets = SenderBudgets::with_limits(SENDERS_MAX, 99, start, 10, 100);
        let flooder = SocketAddr::from(([10, 0, 0, 1], 6881));
        assert_eq!(admitted(&mut budgets, start, flooder, 1_000), 10);
        // Four times the table's size in distinct senders, the flooder still sending between
        // them: every distinct sender is admitted, the flooder is not.
        let mut flooder_admitted = 0;
        for i in 0..(4 * SENDERS_MAX) as u32 {
            let ip = std::net::Ipv6Addr::from(u128::from(i) << 16 | 0xfd00 << 112);
            let sender = SocketAddr::from((ip, (i % 60_000) as u16 + 1));
            assert_eq!(budgets.admit(start, sender), Verdict::Admit);
            flooder_admitted += admitted(&mut budgets, start, flooder, 1);
            assert!(budgets.busy_senders(start) <= SENDERS_MAX);
        }
        assert_eq!(flooder_admitted, 0);
        assert_eq!(budgets.capacity(), SENDERS_MAX);
        assert_eq!(budgets.busy_senders(start), SENDERS_MAX);
    }

    #[test]
    fn defaults_admit_the_load_generators_rate_per_socket() {
        // aquatic_udp_load_test's sockets each send about 45,000 a second to our tracker;
        // two seconds of 60,000 a second, in 1 ms steps, all admitted.
        let start = Instant::now();
        let mut budgets = SenderBudgets::new(TRACKER_SENDERS_MAX, 1, start);
        for ms in 0..2_000u64 {
            let now = start + Duration::from_millis(ms);
            assert_eq!(admitted(&mut budgets, now, at(5000), 60), 60, "at {ms} ms");
        }
    }
}
