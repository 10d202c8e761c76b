//! Where this node is, as others see it: the address it asks trackers to give out
//! (`--advertise`, for a NAT's outer address or another interface of a multi-homed host), and
//! recognising itself in peer lists so that it never asks itself for a file.
//!
//! With our tracker, the advertised address travels in every Register and is given to peers
//! only once the tracker knows it reaches this node (`tracker/register.rs`); each Registered
//! reply says which address the tracker gives out, and the user is told when that is not the
//! advertised one. With a standard tracker (BEP 15) the advertised port is the announced peer
//! port, and an IPv4 address goes in the announce's `ip` field (which most trackers ignore:
//! they list the datagram's source address, for the same reason ours verifies it).
//!
//! Our tracker never lists a node to itself (look-ups leave out the asker's id). A standard
//! tracker lists addresses only, often ours among them: it is recognised by our port (or the
//! advertised one) at our bound address, at loopback, at the advertised address, at the
//! address our tracker lists us at, or, when bound to all addresses, at any address of this
//! host's interfaces (read by the reactor at start: a sans-IO core reads no system state).

use crate::wire;
use std::net::{IpAddr, SocketAddr};

/// Most interface addresses kept for recognising ourselves; a host with more is unusual,
/// and one not kept costs at most a request to ourselves, not correctness.
pub const INTERFACE_ADDRESSES_MAX: usize = 256;
/// Registered replies that list another address than the advertised one before the user is
/// told: the first comes before the tracker could verify it, the second may cross the
/// challenge on the way.
const LISTED_ELSEWHERE_TOLD_AT: u32 = 3;

/// The addresses at which a peer list may name this node. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfAddresses {
    /// Our socket's address (maybe unspecified: bound to all addresses).
    local: SocketAddr,
    advertise: Option<SocketAddr>,
    /// This host's interface addresses, canonical (IPv4-mapped IPv6 as IPv4); consulted only
    /// when `local` is unspecified.
    interface_ips: Vec<IpAddr>,
    /// The address our tracker last said it gives peers for us.
    listed: Option<SocketAddr>,
}

impl From<SocketAddr> for SelfAddresses {
    fn from(local: SocketAddr) -> SelfAddresses {
        SelfAddresses::new(local, None, &[])
    }
}

impl SelfAddresses {
    /// A node bound to `local` that advertises `advertise`, on a host with `interface_ips`
    /// (at most [`INTERFACE_ADDRESSES_MAX`] are kept).
    pub fn new(
        local: SocketAddr,
        advertise: Option<SocketAddr>,
        interface_ips: &[IpAddr],
    ) -> SelfAddresses {
        let mut interface_ips: Vec<IpAddr> = interface_ips
            .iter()
            .take(INTERFACE_ADDRESSES_MAX)
            .map(|ip| ip.to_canonical())
            .collect();
        interface_ips.sort_unstable();
        interface_ips.dedup();
        SelfAddresses {
            local,
            advertise: advertise.map(canonical),
            interface_ips,
            listed: None,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn advertise(&self) -> Option<SocketAddr> {
        self.advertise
    }

    /// The port peers are told to use: the advertised one, else our socket's.
    /// (A tracker that ignores the announce's address field lists our source address with this
    /// port: with the interface addresses, that is recognised too.)
    pub fn peer_port(&self) -> u16 {
        self.advertise.map_or(self.local.port(), |a| a.port())
    }

    /// Our tracker gives peers `listed` for us.
    pub fn set_listed(&mut self, listed: SocketAddr) {
        self.listed = Some(canonical(listed));
    }

    /// Whether a peer list's `peer` is this node. Port 0 is nobody, so it counts as us too:
    /// it is never worth a request.
    pub fn contains(&self, peer: SocketAddr) -> bool {
        let peer = canonical(peer);
        if peer.port() == 0 || Some(peer) == self.advertise || Some(peer) == self.listed {
            return true;
        }
        let ours = peer.port() == self.local.port() || peer.port() == self.peer_port();
        let ip = peer.ip();
        let local_ip = self.local.ip().to_canonical();
        ours && (ip == local_ip
            || ip.is_loopback()
            || ip.is_unspecified()
            || (local_ip.is_unspecified() && self.interface_ips.binary_search(&ip).is_ok()))
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// What the node knows of how our tracker lists it.
#[derive(Clone, Debug, Default)]
pub(super) struct Listing {
    /// The tracker's last Challenge cookie for the advertised address (zero: none yet).
    advertise_cookie: u64,
    /// The address the last Registered reply listed.
    listed: Option<SocketAddr>,
    /// Registered replies in a row that listed another address than the advertised one.
    listed_elsewhere: u32,
}

impl Listing {
    /// The address our tracker gives peers for this node, once a Registered reply said.
    pub(super) fn listed(&self) -> Option<SocketAddr> {
        self.listed
    }
}

impl Listing {
    /// The address fields of a Register: what we advertise, and the cookie that proves it.
    pub(super) fn register_fields(&self, me: &SelfAddresses) -> ([u8; 16], u16, u64) {
        match me.advertise() {
            Some(addr) => (
                wire::ip_to_bytes(addr.ip()),
                addr.port(),
                self.advertise_cookie,
            ),
            None => ([0; 16], 0, 0),
        }
    }

    /// A Challenge for `addr`: its cookie goes back in the next Register, in the field for
    /// that address. Returns the cookie when it is for the address we send from (the caller
    /// echoes it), `None` when it was for the advertised one (kept here). Whether `addr` is
    /// ours or the advertised one is decided by comparing; a cookie for any other address is
    /// not ours to echo.
    pub(super) fn take_challenge(
        &mut self,
        me: &SelfAddresses,
        challenge: &wire::Challenge,
    ) -> Option<u64> {
        let addr = canonical(challenge.addr());
        if Some(addr) == me.advertise() {
            self.advertise_cookie = challenge.cookie.get();
            None
        } else {
            Some(challenge.cookie.get())
        }
    }

    /// A Registered reply said the tracker gives peers `listed` for us. Returns whether to
    /// register again at once (after the first registration, when the advertised address is
    /// not listed yet, so that the tracker challenges it now rather than a heartbeat later),
    /// and a line for the user when there is news.
    pub(super) fn handle_listed(
        &mut self,
        me: &mut SelfAddresses,
        listed: SocketAddr,
        first: bool,
    ) -> (bool, Option<String>) {
        let listed = canonical(listed);
        me.set_listed(listed);
        let changed = self.listed != Some(listed);
        self.listed = Some(listed);
        let Some(advertise) = me.advertise() else {
            if changed {
                log::info!("the tracker gives peers {listed} for this node");
            }
            return (false, None);
        };
        if listed == advertise {
            let line = (changed || self.listed_elsewhere >= LISTED_ELSEWHERE_TOLD_AT)
                .then(|| format!("the tracker gives peers our advertised address {advertise}"));
            self.listed_elsewhere = 0;
            return (false, line);
        }
        self.listed_elsewhere = self.listed_elsewhere.saturating_add(1);
        let line = (self.listed_elsewhere == LISTED_ELSEWHERE_TOLD_AT).then(|| {
            format!(
                "the tracker could not verify our advertised address {advertise} (its challenge sent there did not reach this node: check the port forward or the address); it gives peers {listed} instead"
            )
        });
        (first, line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn bound_to_all_addresses_recognises_its_interfaces() {
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        let me = SelfAddresses::new(addr("0.0.0.0:4000"), None, &[lan]);
        assert!(me.contains(addr("192.168.1.5:4000")));
        assert!(me.contains(addr("127.0.0.1:4000")));
        assert!(me.contains(addr("[::ffff:192.168.1.5]:4000")));
        // Another port of our host, or our port on another host: someone else.
        assert!(!me.contains(addr("192.168.1.5:4001")));
        assert!(!me.contains(addr("192.168.1.6:4000")));
        // Without the interface list, the LAN address is not known to be ours.
        let blind = SelfAddresses::from(addr("0.0.0.0:4000"));
        assert!(!blind.contains(addr("192.168.1.5:4000")));
    }

    #[test]
    fn bound_to_one_address_ignores_the_others() {
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        let me = SelfAddresses::new(addr("192.168.1.5:4000"), None, &[other]);
        assert!(me.contains(addr("192.168.1.5:4000")));
        // Another interface of this host: another socket may hold that port there.
        assert!(!me.contains(addr("10.0.0.9:4000")));
    }

    #[test]
    fn the_advertised_and_listed_addresses_are_ours() {
        let mut me = SelfAddresses::new(addr("0.0.0.0:4000"), Some(addr("203.0.113.7:6881")), &[]);
        assert_eq!(me.peer_port(), 6881);
        assert!(me.contains(addr("203.0.113.7:6881")));
        // The NAT's address at another port is another host behind the same NAT.
        assert!(!me.contains(addr("203.0.113.7:4000")));
        assert!(!me.contains(addr("203.0.113.8:6881")));
        assert!(!me.contains(addr("198.51.100.1:5000")));
        me.set_listed(addr("198.51.100.1:5000"));
        assert!(me.contains(addr("198.51.100.1:5000")));
        assert!(me.contains(addr("1.2.3.4:0")));
    }
}
