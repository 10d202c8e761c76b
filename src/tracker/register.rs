//! Registration: a Register is a heartbeat when its token vouches for a known node; anything
//! else costs the tracker no state until the address echoed a stateless cookie (a
//! `Challenge`), and a new token is handed out only once it is saved (`saving.rs`).

use super::*;

impl Tracker {
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        register: &wire::Register,
    ) {
        let auth = &register.auth;
        let (node_id, token) = (auth.node_id.get(), auth.token.get());
        let vouched = self.nodes.get(&node_id).is_some_and(|n| n.token == token);
        // Ports are free to a sender: the budget is the address's, all ports together.
        let address = SocketAddr::new(from.ip(), 0);
        if !vouched && self.unproven.admit(now, address) == Verdict::Drop {
            self.stats.dropped_unproven += 1;
            return;
        }
        let full = self.nodes.len() >= NODES_MAX;
        let cookie_valid = self
            .bep15
            .connection_id_valid(now, from, register.cookie.get());
        let registered_event = match self.nodes.get_mut(&node_id) {
            // Our Registered reply was lost: the node asks again from the same address with
            // the token it had before (none, or one from before it expired). It gets the same
            // new token again, until it has once used it (once that token is saved).
            Some(node) if node.token != token && !node.token_confirmed && node.addr == from => {
                let saved = node.token_saved;
                self.touch(node_id, now);
                if !saved {
                    return self.hold_registered(node_id, from);
                }
                None
            }
            // Restored from a save that may be stale (it lost the node's newer token), and
            // asked from the address it recorded, which proved it receives: a fresh token,
            // saved before it is handed out. Elsewhere, the id stays taken.
            Some(node)
                if node.token != token
                    && node.restored_unheard
                    && node.addr == from
                    && cookie_valid =>
            {
                let fresh = self.mint_token();
                let node = self.nodes.get_mut(&node_id).expect("matched above");
                node.token = fresh;
                node.token_confirmed = false;
                node.token_saved = false;
                node.restored_unheard = false;
                self.registry_changed = true;
                self.touch(node_id, now);
                self.event(TrackerEvent::NodeRegistered {
                    node_id,
                    addr: from,
                    returning: true,
                });
                self.take_advertised(now, node_id, from, register, false);
                return self.hold_registered(node_id, from);
            }
            Some(node) if node.token != token && node.restored_unheard && node.addr == from => {
                return self.challenge(now, from, from);
            }
            Some(node) if node.token != token => {
                // The id belongs to another node (or to this one before it lost its token).
                // A refusal is smaller than the request, and costs no state.
                return self.refuse(from, Kind::Register, RefusedReason::BadToken);
            }
            Some(node) => {
                let moved = node.addr != from;
                if moved && !cookie_valid {
                    // Replies would go to the new address: it first proves it receives.
                    return self.challenge(now, from, from);
                }
                // Stored, so that a restarted tracker knows whether to send it again; saved
                // with the next batch (no sooner than a second after the last).
                self.registry_changed |= moved || !node.token_confirmed;
                if moved {
                    // An advertised address was verified for the node where it was: it is
                    // verified again from here.
                    node.advertised = None;
                }
                node.addr = from;
                node.token_confirmed = true;
                if register.holdings_digest.get() != node.holdings_digest {
                    self.stats.holdings_digest_mismatches += 1;
                }
                self.touch(node_id, now);
                moved.then_some(TrackerEvent::NodeRegistered {
                    node_id,
                    addr: from,
                    returning: true,
                })
            }
            None if !cookie_valid => return self.challenge(now, from, from),
            None if full => {
                return self.refuse(from, Kind::Register, RefusedReason::Full);
            }
            None => {
                // A nonzero token for an unknown id is a node coming back after it expired or
                // after the tracker lost its state. It still gets a fresh token: one it chose
                // itself would let a forged Register (from a spoofed address) be followed by
                // look-ups whose larger replies flood that address. A fresh token only
                // reaches the real address.
                let returning = token != 0;
                let token = self.mint_token();
                let node = Node {
                    addr: from,
                    advertised: None,
                    token,
                    token_confirmed: false,
                    token_saved: false,
                    restored_unheard: false,
                    holdings_digest: 0,
                    last_seen: now,
                    upload_credit_bytes: 0,
                    holdings: BTreeMap::new(),
                };
                self.nodes.insert(node_id, node);
                self.by_last_seen.insert((now, node_id));
                self.registry_changed = true;
                self.event(TrackerEvent::NodeRegistered {
                    node_id,
                    addr: from,
                    returning,
                });
                self.take_advertised(now, node_id, from, register, false);
                // A token is stored before the reply that hands it out: a tracker restarted
                // from a snapshot without it would refuse the node (the id known, the token not).
                return self.hold_registered(node_id, from);
            }
        };
        if let Some(event) = registered_event {
            self.event(event);
        }
        self.take_advertised(now, node_id, from, register, vouched);
        let registered = self.registered_reply(node_id);
        self.reply(from, Outgoing::Registered(registered));
    }

    /// What peers are given for `node_id` after its Register from `from`: the address it
    /// advertises when that is known to reach it, else `from`. Known means the same host as
    /// `from` (any port: a host may direct peers to any of its own ports, as BEP 15 lets
    /// every client choose its port), or that it echoed a cookie the tracker sent to that
    /// address. Anything else could be a victim's address: listing it would have a swarm
    /// send requests there. A Register the node's token vouches for, from the address it
    /// registered, earns one [`Challenge`](wire::Challenge) to the advertised address, no
    /// larger than the Register; others earn none, so a forged Register cannot aim even that.
    fn take_advertised(
        &mut self,
        now: Instant,
        node_id: u32,
        from: SocketAddr,
        register: &wire::Register,
        vouched: bool,
    ) {
        // In the family of `from`: a tracker on `::` sees IPv4 nodes as mapped addresses, and
        // sends from the same socket.
        let wanted = register
            .advertise()
            .map(|addr| match (addr, from) {
                (SocketAddr::V4(v4), SocketAddr::V6(_)) => {
                    SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                }
                _ => addr,
            })
            .filter(|addr| *addr != from);
        let verified = wanted.is_some_and(|wanted| {
            wanted.ip().to_canonical() == from.ip().to_canonical()
                || self
                    .bep15
                    .connection_id_valid(now, wanted, register.advertise_cookie.get())
        });
        let Some(node) = self.nodes.get_mut(&node_id) else {
            return;
        };
        let Some(wanted) = wanted else {
            node.advertised = None;
            return;
        };
        if node.advertised == Some(wanted) {
            return;
        }
        if verified {
            node.advertised = Some(wanted);
            self.event(TrackerEvent::NodeAdvertised {
                node_id,
                addr: wanted,
            });
        } else if vouched && node.addr == from {
            // From the address the node asked at: a node takes a challenge only from its
            // tracker.
            self.challenge(now, wanted, from);
        }
    }

    /// The Registered reply to `node_id`, with its token, the digest of its holdings and the
    /// address peers are given for it.
    pub(super) fn registered_reply(&self, node_id: u32) -> wire::Registered {
        let node = &self.nodes[&node_id];
        let listed = node.listed();
        let heartbeat_interval_ms =
            u32::try_from(self.config.heartbeat_interval.as_millis()).unwrap_or(u32::MAX);
        wire::Registered {
            auth: NodeAuth {
                node_id: U32::new(node_id),
                token: U64::new(node.token),
            },
            heartbeat_interval_ms: U32::new(heartbeat_interval_ms),
            holdings_digest: U64::new(node.holdings_digest),
            listed_ip: wire::ip_to_bytes(listed.ip()),
            listed_port: U16::new(listed.port()),
            reserved: [0; 2],
        }
    }

    /// Holds the Registered reply to `node_id` until its token is saved (once per node and
    /// address: a repeated Register while it waits adds nothing).
    pub(super) fn hold_registered(&mut self, node_id: u32, addr: SocketAddr) {
        let held = (node_id, addr);
        if self
            .held_registered
            .iter()
            .skip(self.held_covered)
            .any(|h| *h == held)
        {
            return;
        }
        if self.held_registered.len() >= HELD_REPLIES_MAX {
            self.stats.replies_dropped_queue_full += 1;
            return;
        }
        self.held_registered.push_back(held);
    }

    /// Asks `to` to prove it receives before anything is kept for it: the reply is no larger
    /// than the Register, and the cookie is checked again without state. It leaves from the
    /// address `asker` (the node, at `to` or elsewhere) sent its Register to.
    pub(super) fn challenge(&mut self, now: Instant, to: SocketAddr, asker: SocketAddr) {
        self.stats.challenges_sent += 1;
        let cookie = self.bep15.connection_id(now, to);
        self.send_as_for(
            to,
            asker,
            Outgoing::Challenge(wire::Challenge {
                cookie: U64::new(cookie),
                ip: wire::ip_to_bytes(to.ip()),
                port: U16::new(to.port()),
                reserved: [0; 2],
            }),
        );
    }

    pub(super) fn mint_token(&mut self) -> u64 {
        // Zero means "no token yet" on the wire, so it can never be one. Each token is drawn
        // on its own, so that one token says nothing of another.
        loop {
            let token = self.secrets.u64();
            if token != 0 {
                return token;
            }
        }
    }
}
