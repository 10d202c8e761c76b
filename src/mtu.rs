//! Datagram sizes that cross a path whole: no IP fragmentation, ever.
//!
//! A 64 KiB datagram on a 1,500-byte link travels as 45 IP fragments, and one lost fragment
//! loses it all and leaves the rest in the receiver's reassembly memory for 30 s; about 30 such
//! datagrams fill that memory and then every fragment is dropped. So the sockets set "don't
//! fragment" (`IP_PMTUDISC_PROBE`, `IPV6_DONTFRAG`, set by quinn-udp in [`crate::udp`]): a
//! datagram larger than the local link fails with `EMSGSIZE`, one larger than a link further on
//! is dropped there. Every datagram we build must therefore fit the path it takes:
//!
//! * **Loopback** (and any route the kernel gives a 64 KiB MTU) carries the largest datagrams:
//!   our fast path keeps its 64 KiB pieces.
//! * **Control datagrams** (have-maps, manifest parts, look-up replies, BEP 15 replies) never
//!   exceed [`SAFE_DATAGRAM_BYTES`] off such routes: IPv6's minimum link MTU guarantees it.
//! * **Pieces** are sized per peer by [`PathMtu`], a small DPLPMTUD (RFC 8899) search run by
//!   the downloader: it starts at the safe size, probes once at what the route's MTU allows
//!   (probes are padded datagrams the holder echoes at the size asked, [`wire::MtuProbe`]),
//!   and searches between the two when that is lost, so that a path whose router drops ICMP
//!   "fragmentation needed" (a black hole) still works. Pieces that stop arriving while the
//!   peer still answers send it back to the safe size ([`PathMtu::on_black_hole`]).
//!
//! The route's MTU comes from a [`Routes`]: the kernel's, read by the reactor, or a fixed one
//! in simulations. A core asks it and never opens a socket itself.

use crate::wire;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest UDP payload every IPv6 path carries (its minimum link MTU, 1,280, less 40 bytes
/// of IPv6 and 8 of UDP), and so every IPv4 path we expect on a LAN too.
pub const SAFE_DATAGRAM_BYTES: u32 = 1_232;
/// A route whose MTU is at least this is loopback-class: no search, the largest datagrams.
pub const LOOPBACK_MTU_MIN: u32 = 65_535;
/// Smallest payload a path is believed to carry: IPv4's minimum MTU (576) less headers.
pub const ROUTE_PAYLOAD_MIN: u32 = 548;
/// The route MTU assumed when none is known (Ethernet).
pub const ROUTE_MTU_DEFAULT: u32 = 1_500;
/// Probes of one size sent before that size counts as too big (RFC 8899's MAX_PROBES).
pub const PROBES_MAX: u32 = 3;
/// The search stops when what works and what does not are this close.
pub const SEARCH_STEP_MIN: u32 = 16;
/// How long after large pieces stopped arriving the search starts again from the route's
/// size: a burst of losses taken for a narrowed path costs this long at the safe size.
pub const BLACK_HOLE_RETRY: Duration = Duration::from_secs(30);
/// Least time a probe is given before it counts as lost (a peer's timeout can be 40 ms on a
/// LAN, less than a busy holder takes to answer).
pub const PROBE_TIMEOUT_MIN: Duration = Duration::from_millis(200);

/// Where the route MTU toward an address comes from.
pub trait RouteMtu: Send + Sync {
    /// The MTU of the route to `to` (IP packet bytes), if known.
    fn mtu(&self, to: SocketAddr) -> Option<u32>;
}

/// A shared [`RouteMtu`], cheap to clone into each core's configuration.
#[derive(Clone)]
pub struct Routes(Arc<dyn RouteMtu>);

impl Routes {
    pub fn new(source: impl RouteMtu + 'static) -> Routes {
        Routes(Arc::new(source))
    }

    /// Loopback addresses get a loopback MTU, every other route [`ROUTE_MTU_DEFAULT`]: what a
    /// core assumes without a kernel to ask.
    pub fn assumed() -> Routes {
        Routes::new(Assumed)
    }

    /// Every route has this MTU (simulations).
    pub fn fixed(mtu: u32) -> Routes {
        Routes::new(Fixed(mtu))
    }

    pub fn mtu(&self, to: SocketAddr) -> u32 {
        self.0
            .mtu(to)
            .unwrap_or_else(|| Assumed.mtu(to).unwrap_or(ROUTE_MTU_DEFAULT))
    }

    /// The largest control datagram (anything but a piece) to send to `to`.
    pub fn control_bytes_max(&self, to: SocketAddr) -> usize {
        if self.mtu(to) >= LOOPBACK_MTU_MIN {
            wire::DATAGRAM_BYTES_MAX
        } else {
            SAFE_DATAGRAM_BYTES as usize
        }
    }
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Routes")
    }
}

struct Assumed;

impl RouteMtu for Assumed {
    fn mtu(&self, to: SocketAddr) -> Option<u32> {
        Some(if is_loopback(to.ip()) {
            LOOPBACK_MTU_MIN + 1
        } else {
            ROUTE_MTU_DEFAULT
        })
    }
}

struct Fixed(u32);

impl RouteMtu for Fixed {
    fn mtu(&self, _to: SocketAddr) -> Option<u32> {
        Some(self.0)
    }
}

/// 127.0.0.0/8, `::1`, and IPv4-mapped loopback.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Bytes of IP and UDP header in front of a UDP payload to `to`.
pub fn ip_udp_overhead(to: SocketAddr) -> u32 {
    match to {
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_none() => 40 + 8,
        _ => 20 + 8,
    }
}

/// A probe on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    bytes: u32,
    sent_at: Instant,
    /// Probes of this size sent so far (1..=PROBES_MAX).
    attempts: u32,
}

/// What the downloader knows of the path to one peer: the largest datagram known to arrive,
/// and the search for a larger one. Sans-IO: probes go out through [`PathMtu::poll_probe`],
/// their replies come in through [`PathMtu::on_probe_reply`].
#[derive(Clone, Debug)]
pub struct PathMtu {
    /// Largest UDP payload known to reach us whole (never below the safe size).
    confirmed: u32,
    /// Smallest payload known not to (or one past what the route allows): the search stays
    /// below it.
    too_big: u32,
    /// A probe was lost: the search goes by halves from then on.
    lost_before: bool,
    /// The largest payload the route allows: where a search starts.
    route_payload: u32,
    probe: Option<Probe>,
    /// When the next probe may go (none while the search is over).
    next_probe_at: Option<Instant>,
}

impl PathMtu {
    /// The path to `to`, whose route MTU is `route_mtu`.
    pub fn new(to: SocketAddr, route_mtu: u32, now: Instant) -> PathMtu {
        let largest = wire::DATAGRAM_BYTES_MAX as u32;
        if route_mtu >= LOOPBACK_MTU_MIN {
            return PathMtu {
                confirmed: largest,
                too_big: largest + 1,
                lost_before: false,
                route_payload: largest,
                probe: None,
                next_probe_at: None,
            };
        }
        let route_payload = route_mtu.saturating_sub(ip_udp_overhead(to)).min(largest);
        // A route narrower than IPv6's minimum (IPv4 allows 576) is believed as it is.
        let confirmed = SAFE_DATAGRAM_BYTES
            .min(route_payload)
            .max(ROUTE_PAYLOAD_MIN);
        PathMtu {
            confirmed,
            too_big: route_payload.max(confirmed) + 1,
            lost_before: false,
            route_payload,
            probe: None,
            next_probe_at: (route_payload > confirmed).then_some(now),
        }
    }

    /// Largest UDP payload to send to this peer now.
    pub fn datagram_bytes(&self) -> u32 {
        self.confirmed
    }

    /// Whether a probe is on its way or due.
    pub fn searching(&self) -> bool {
        self.probe.is_some() || self.next_probe_at.is_some()
    }

    /// The size of a probe to send now, if one is due; `timeout` is how long to wait for
    /// its echo (about the peer's retransmission timeout).
    #[must_use]
    pub fn poll_probe(&mut self, now: Instant, timeout: Duration) -> Option<u32> {
        if let Some(probe) = self.probe {
            if now.saturating_duration_since(probe.sent_at) < timeout {
                return None;
            }
            // Lost: again, or that size is too big.
            if probe.attempts < PROBES_MAX {
                self.probe = Some(Probe {
                    sent_at: now,
                    attempts: probe.attempts + 1,
                    ..probe
                });
                return Some(probe.bytes);
            }
            self.probe = None;
            self.too_big = probe.bytes;
            self.lost_before = true;
            self.next_probe_at = Some(now);
        }
        if self.next_probe_at.is_none_or(|at| at > now) {
            return None;
        }
        self.next_probe_at = None;
        let bytes = self.next_size()?;
        self.probe = Some(Probe {
            bytes,
            sent_at: now,
            attempts: 1,
        });
        Some(bytes)
    }

    /// The next size to try: the largest allowed first (the route is usually right), then
    /// halfway between what works and what does not. `None` when the search is over.
    fn next_size(&mut self) -> Option<u32> {
        let gap = self.too_big.saturating_sub(self.confirmed);
        if gap <= SEARCH_STEP_MIN {
            return None;
        }
        let first_try = self.too_big - 1;
        let halfway = self.confirmed + gap / 2;
        Some(if self.lost_before { halfway } else { first_try })
    }

    /// A probe of `bytes` came back whole.
    pub fn on_probe_reply(&mut self, bytes: u32, now: Instant) {
        if bytes > self.confirmed && bytes < self.too_big {
            self.confirmed = bytes;
        }
        if self.probe.is_some_and(|probe| probe.bytes == bytes) {
            self.probe = None;
            self.next_probe_at = Some(now);
        }
    }

    /// Pieces of the confirmed size stopped arriving while the peer still answers smaller
    /// datagrams: the path narrowed. Back to the safe size, and search again from the
    /// route's size after [`BLACK_HOLE_RETRY`]. Returns whether anything changed (never on
    /// a loopback-class route, where nothing is dropped for its size).
    pub fn on_black_hole(&mut self, now: Instant) -> bool {
        if self.confirmed <= SAFE_DATAGRAM_BYTES
            || self.route_payload >= wire::DATAGRAM_BYTES_MAX as u32
        {
            return false;
        }
        self.too_big = self.route_payload + 1;
        self.lost_before = false;
        self.confirmed = SAFE_DATAGRAM_BYTES;
        self.probe = None;
        self.next_probe_at = Some(now + BLACK_HOLE_RETRY);
        true
    }

    /// When [`PathMtu::poll_probe`] wants to be called, given the probe `timeout`.
    pub fn poll_timeout(&self, timeout: Duration) -> Option<Instant> {
        match self.probe {
            Some(probe) => Some(probe.sent_at + timeout),
            None => self.next_probe_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TIMEOUT: Duration = Duration::from_millis(100);

    fn lan() -> SocketAddr {
        "10.0.0.2:4000".parse().unwrap()
    }

    #[test]
    fn loopback_routes_need_no_search() {
        let now = Instant::now();
        let mut path = PathMtu::new("127.0.0.1:1".parse().unwrap(), 65_536, now);
        assert_eq!(path.datagram_bytes(), wire::DATAGRAM_BYTES_MAX as u32);
        assert_eq!(path.poll_probe(now, TIMEOUT), None);
        assert!(!path.searching());
        let routes = Routes::assumed();
        assert_eq!(
            routes.control_bytes_max("127.0.0.1:1".parse().unwrap()),
            wire::DATAGRAM_BYTES_MAX
        );
        assert_eq!(
            routes.control_bytes_max(lan()),
            SAFE_DATAGRAM_BYTES as usize
        );
        assert!(is_loopback("::ffff:127.0.0.3".parse().unwrap()));
    }

    #[test]
    fn a_route_that_is_right_is_confirmed_by_one_probe() {
        let now = Instant::now();
        let mut path = PathMtu::new(lan(), 1_500, now);
        assert_eq!(path.datagram_bytes(), SAFE_DATAGRAM_BYTES);
        assert_eq!(path.poll_probe(now, TIMEOUT), Some(1_472));
        assert_eq!(
            path.poll_probe(now + MS, TIMEOUT),
            None,
            "one probe at a time"
        );
        path.on_probe_reply(1_472, now + 2 * MS);
        assert_eq!(path.datagram_bytes(), 1_472);
        assert_eq!(path.poll_probe(now + 3 * MS, TIMEOUT), None);
        assert!(!path.searching());
        // IPv6 headers are larger.
        let v6 = PathMtu::new("[fd00::2]:1".parse().unwrap(), 1_500, now);
        assert_eq!(v6.too_big, 1_453);
    }

    #[test]
    fn a_black_hole_is_searched_by_halves() {
        // The route says 1,500; a link on the way carries 1,280 and drops bigger packets
        // without a word (ICMP dropped).
        let path_payload = 1_280 - 28;
        let start = Instant::now();
        let mut now = start;
        let mut path = PathMtu::new(lan(), 1_500, now);
        let mut probes = 0;
        while now < start + Duration::from_secs(60) {
            if let Some(bytes) = path.poll_probe(now, TIMEOUT) {
                probes += 1;
                if bytes <= path_payload {
                    path.on_probe_reply(bytes, now + MS);
                }
            }
            if !path.searching() {
                break;
            }
            now += 10 * MS;
        }
        assert!(!path.searching(), "the search ends");
        let found = path.datagram_bytes();
        assert!(
            found <= path_payload && found + SEARCH_STEP_MIN >= path_payload,
            "{found}"
        );
        // Three for each size lost, one for each that works: about log2(240 / 16) sizes.
        assert!(probes <= 3 * 5, "{probes} probes");
    }

    #[test]
    fn a_path_that_narrows_goes_back_to_the_safe_size() {
        let now = Instant::now();
        let mut path = PathMtu::new(lan(), 1_500, now);
        let _ = path.poll_probe(now, TIMEOUT);
        path.on_probe_reply(1_472, now);
        assert!(path.on_black_hole(now));
        assert_eq!(path.datagram_bytes(), SAFE_DATAGRAM_BYTES);
        assert!(!path.on_black_hole(now), "already at the safe size");
        assert_eq!(path.poll_probe(now + TIMEOUT, TIMEOUT), None);
        assert_eq!(
            path.poll_probe(now + BLACK_HOLE_RETRY, TIMEOUT),
            Some(1_472),
            "again later"
        );
        let mut loopback = PathMtu::new("127.0.0.1:1".parse().unwrap(), 65_536, now);
        assert!(
            !loopback.on_black_hole(now),
            "loopback drops nothing for its size"
        );
    }

    #[test]
    fn a_late_reply_to_an_old_probe_still_counts_within_bounds() {
        let now = Instant::now();
        let mut path = PathMtu::new(lan(), 1_500, now);
        path.on_probe_reply(60_000, now);
        assert_eq!(
            path.datagram_bytes(),
            SAFE_DATAGRAM_BYTES,
            "more than the route allows"
        );
        path.on_probe_reply(1_400, now);
        assert_eq!(path.datagram_bytes(), 1_400);
    }
}
