//! Replies leave from the address they were asked at.
//!
//! A socket bound to all addresses (`0.0.0.0`, `::`) receives datagrams sent to any of the
//! machine's addresses, but a plain `sendto` leaves from the address the kernel's routing
//! table picks for the destination. On a machine with several addresses on one network (an
//! alias, a service address that moves between machines, two interfaces on one LAN) that is
//! often not the address the asker sent to, and the asker, which takes an answer only from
//! where it asked, drops it: a tracker listening on `0.0.0.0` looked dead to every node that
//! knew it by its second address. So, as QUIC stacks do, the reactor learns each datagram's
//! destination address (`IP_PKTINFO`, which quinn-udp turns on and reads) and sends to that
//! remote from it.
//!
//! A remote is answered from the address it *first* reached us at, for as long as it is
//! remembered: a tracker's challenge to the address a node advertises arrives at that other
//! address, and the node's own requests to the tracker must not follow it there (the tracker
//! would see the node move). A remote that switches to another of our addresses is answered
//! from the old one until it is forgotten; our peers ask at the one address the tracker gives
//! them, so that does not happen in a swarm.
//!
//! The table is bounded ([`REPLY_SOURCES_MAX`]) in two generations: when the newer one is
//! full, the older one is forgotten and the newer one takes its place, so the remotes heard
//! from recently are remembered and one that went quiet is dropped at the next turn without
//! an order to keep. A forgotten remote's next datagram teaches it again. A socket bound to
//! one address needs none of this: the kernel sends from that address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Most remotes remembered (both generations together): some 4 MiB of table at most, for a
/// tracker with tens of thousands of nodes.
pub const REPLY_SOURCES_MAX: usize = 65_536;

/// Which of our addresses each remote last sent to (see the module's essay).
#[derive(Debug, Default)]
pub struct ReplySources {
    /// Only a socket bound to all addresses learns anything.
    active: bool,
    newer: HashMap<SocketAddr, IpAddr>,
    older: HashMap<SocketAddr, IpAddr>,
}

impl ReplySources {
    /// For a socket listening at `local`.
    pub fn new(local: SocketAddr) -> ReplySources {
        ReplySources {
            active: local.ip().is_unspecified(),
            ..ReplySources::default()
        }
    }

    /// Whether the socket is bound to all addresses, so that replies may need a source.
    pub fn active(&self) -> bool {
        self.active
    }

    /// A datagram from `remote` was sent to our address `local` (`None`: the kernel did not
    /// say). The first address a remote used stays its own while it is remembered.
    pub fn learn(&mut self, remote: SocketAddr, local: Option<IpAddr>) {
        let Some(local) = local.filter(|_| self.active) else {
            return;
        };
        if self.newer.contains_key(&remote) {
            return;
        }
        // Heard from again: it moves to the newer generation with the address it had.
        let local = self.older.get(&remote).copied().unwrap_or(local);
        if self.newer.len() >= REPLY_SOURCES_MAX / 2 {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(remote, local);
        debug_assert!(self.newer.len() + self.older.len() <= REPLY_SOURCES_MAX);
    }

    /// The address to send to `remote` from, if it ever sent to us.
    pub fn source_for(&self, remote: SocketAddr) -> Option<IpAddr> {
        if !self.active {
            return None;
        }
        self.newer
            .get(&remote)
            .or_else(|| self.older.get(&remote))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(n: u32) -> SocketAddr {
        SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 6881))
    }

    #[test]
    fn a_socket_bound_to_one_address_learns_nothing() {
        let mut sources = ReplySources::new("192.0.2.1:7000".parse().unwrap());
        sources.learn(remote(1), Some("192.0.2.1".parse().unwrap()));
        assert!(!sources.active());
        assert_eq!(sources.source_for(remote(1)), None);
    }

    #[test]
    fn each_remote_is_answered_from_the_address_it_first_asked() {
        let mut sources = ReplySources::new("0.0.0.0:7000".parse().unwrap());
        let (first, second): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap());
        sources.learn(remote(1), Some(first));
        sources.learn(remote(2), Some(second));
        sources.learn(remote(3), None);
        assert_eq!(sources.source_for(remote(1)), Some(first));
        assert_eq!(sources.source_for(remote(2)), Some(second));
        assert_eq!(
            sources.source_for(remote(3)),
            None,
            "the kernel did not say"
        );
        // A challenge to our other address does not move the tracker's replies there.
        sources.learn(remote(1), Some(second));
        assert_eq!(sources.source_for(remote(1)), Some(first));
    }

    #[test]
    fn the_table_is_bounded_and_keeps_the_recent_remotes() {
        let mut sources = ReplySources::new("[::]:7000".parse().unwrap());
        let local: IpAddr = "2001:db8::1".parse().unwrap();
        let other: IpAddr = "2001:db8::2".parse().unwrap();
        let count = REPLY_SOURCES_MAX as u32 * 2;
        for n in 0..count {
            sources.learn(remote(n), Some(local));
            // Remote 0 keeps talking (at another address of ours): it stays, as it was.
            sources.learn(remote(0), Some(other));
            assert!(sources.newer.len() + sources.older.len() <= REPLY_SOURCES_MAX);
        }
        // The last half-table of remotes is remembered; the first ones were forgotten.
        let recent = count - REPLY_SOURCES_MAX as u32 / 2;
        assert!((recent..count).all(|n| sources.source_for(remote(n)) == Some(local)));
        assert_eq!(sources.source_for(remote(1)), None);
        assert_eq!(sources.source_for(remote(0)), Some(local));
    }
}
