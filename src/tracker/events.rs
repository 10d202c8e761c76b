//! The tracker's public values: its configuration, the events it reports for the log, and
//! its counters. Kept apart from the state machine so that `tracker.rs` reads in one sitting.

use crate::bep15;
use crate::mtu::Routes;
use crate::wire::{self, Hash};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// A node is forgotten after this long without a message.
    pub expiry: Duration,
    /// How often nodes are told to re-register (their heartbeat); shorter than `expiry`.
    pub heartbeat_interval: Duration,
    /// The announce interval told to standard BitTorrent (BEP 15) clients; a client silent
    /// for twice this long is forgotten.
    pub announce_interval: Duration,
    /// Route MTUs toward clients: how large a reply may be (see [`crate::mtu`]).
    pub routes: Routes,
}

impl TrackerConfig {
    /// How long a BEP 15 peer stays listed after its last announce.
    pub fn bep15_peer_expiry(&self) -> Duration {
        self.announce_interval.saturating_mul(2)
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            expiry: Duration::from_secs(22),
            heartbeat_interval: Duration::from_secs(20),
            announce_interval: Duration::from_secs(120),
            routes: Routes::assumed(),
        }
    }
}

/// Something worth a line in the tracker's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerEvent {
    /// A node joined, came back (`returning`: it presented a token from before), or moved to a
    /// new address. Plain heartbeats make no event.
    NodeRegistered {
        node_id: u32,
        addr: SocketAddr,
        returning: bool,
    },
    /// A node's advertised address (`--advertise`) answered the tracker's challenge (or
    /// shares the node's source address): peers are given `addr` from now on.
    NodeAdvertised {
        node_id: u32,
        addr: SocketAddr,
    },
    NodeExpired {
        node_id: u32,
    },
    NodeExited {
        node_id: u32,
    },
    /// `chunks_held` is zero when the node stopped holding the file (or the file is empty).
    FileAnnounced {
        node_id: u32,
        name: String,
        info_hash: Hash,
        chunks_held: u32,
        chunk_count: u32,
    },
    Dropped {
        from: SocketAddr,
        reason: DropReason,
    },
    /// Datagrams from `from` (and maybe others) went over their sender's budget and were
    /// dropped; `dropped_total` since start. Reported at most once a second.
    OverBudget {
        from: SocketAddr,
        dropped_total: u64,
    },
    /// A standard BitTorrent client announced; `peers` were listed in the reply.
    Bep15Announced {
        from: SocketAddr,
        info_hash: Hash,
        event: bep15::Event,
        peers: usize,
    },
}

impl fmt::Display for TrackerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackerEvent::NodeRegistered {
                node_id,
                addr,
                returning,
            } => {
                write!(f, "node {node_id} registered from {addr}")?;
                if *returning {
                    write!(f, " (returning)")
                } else {
                    Ok(())
                }
            }
            TrackerEvent::NodeAdvertised { node_id, addr } => {
                write!(
                    f,
                    "node {node_id} is given to peers at {addr} (its advertised address)"
                )
            }
            TrackerEvent::NodeExpired { node_id } => write!(f, "node {node_id} expired"),
            TrackerEvent::NodeExited { node_id } => write!(f, "node {node_id} exited"),
            TrackerEvent::FileAnnounced {
                node_id,
                name,
                info_hash,
                chunks_held,
                chunk_count,
            } => {
                let hex = wire::hex(info_hash);
                write!(
                    f,
                    "node {node_id} announced {name} ({hex}) {chunks_held}/{chunk_count} chunks"
                )
            }
            TrackerEvent::Dropped { from, reason } => {
                write!(f, "dropped datagram from {from}: {reason}")
            }
            TrackerEvent::OverBudget {
                from,
                dropped_total,
            } => write!(
                f,
                "dropping datagrams over their sender's budget (latest from {from}; \
                 {dropped_total} so far)"
            ),
            TrackerEvent::Bep15Announced {
                from,
                info_hash,
                event,
                peers,
            } => {
                let hex = wire::hex(info_hash);
                write!(
                    f,
                    "BEP 15 announce from {from} for {hex} (event {event:?}): {peers} peers listed"
                )
            }
        }
    }
}

/// Counters since start (by these names in the tracker's metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrackerStats {
    pub datagrams_received: u64,
    /// Dropped before decoding: the sender went over its budget ([`crate::budget`]).
    pub dropped_over_budget: u64,
    /// Failed `wire::decode`.
    pub dropped_malformed: u64,
    /// Decoded, but a kind the tracker never receives (replies, peer protocol).
    pub dropped_unexpected_kind: u64,
    /// Requests refused: with a `Refused` reply, or silently for credit reports.
    pub refused: u64,
    pub replies_dropped_queue_full: u64,
    /// Replies that did not fit the buffer `poll_transmit` was given.
    pub replies_dropped_too_long: u64,
    pub replies_sent: u64,
    pub events_dropped_queue_full: u64,
    /// Registry snapshots handed out to be saved (each one write and fsync per file).
    pub snapshots: u64,
    /// Registers that did not prove their address yet: answered with a cookie, no state kept.
    pub challenges_sent: u64,
    /// Registers no known token vouched for, over their address's budget
    /// ([`crate::budget::UNPROVEN_BURST`]): dropped unanswered.
    pub dropped_unproven: u64,
    /// Heartbeats whose holdings digest differed from the registry's: the node announces
    /// again (after a lost save, or while an announce was in flight).
    pub holdings_digest_mismatches: u64,
    /// Look-ups answered (who holds a name).
    pub lookups: u64,
    /// `list` requests answered (a page of what the tracker offers).
    pub lists: u64,
    /// BEP 15 requests answered, by kind.
    pub bep15_connects: u64,
    pub bep15_announces: u64,
    pub bep15_scrapes: u64,
    /// BEP 15 requests that failed `bep15::decode_request` (some then get an error reply).
    pub bep15_dropped_malformed: u64,
    /// BEP 15 requests with a forged or expired connection id: dropped, never answered.
    pub bep15_dropped_bad_connection_id: u64,
    /// Announces refused because a swarm table was full.
    pub bep15_refused_full: u64,
    pub bep15_errors_sent: u64,
}

impl fmt::Display for TrackerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {}, malformed {}, over budget {}, unexpected kind {}, refused {}, replies sent {}, \
             replies dropped (queue full {}, too long {}), events dropped {}, snapshots saved {}, challenges {}, unproven dropped {}, digest mismatches {}, look-ups {}, lists {}; BEP 15: \
             connects {}, announces {}, scrapes {}, malformed {}, bad connection id {}, \
             full {}, errors sent {}",
            self.datagrams_received,
            self.dropped_malformed,
            self.dropped_over_budget,
            self.dropped_unexpected_kind,
            self.refused,
            self.replies_sent,
            self.replies_dropped_queue_full,
            self.replies_dropped_too_long,
            self.events_dropped_queue_full,
            self.snapshots,
            self.challenges_sent,
            self.dropped_unproven,
            self.holdings_digest_mismatches,
            self.lookups,
            self.lists,
            self.bep15_connects,
            self.bep15_announces,
            self.bep15_scrapes,
            self.bep15_dropped_malformed,
            self.bep15_dropped_bad_connection_id,
            self.bep15_refused_full,
            self.bep15_errors_sent,
        )
    }
}

/// Why a datagram was dropped: a value, not a string, so that junk costs no allocation (a
/// flood of it is counted, and printed only at debug level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// It did not decode as one of our messages.
    Malformed(wire::DecodeError),
    /// It decoded, as a kind that nodes do not send a tracker.
    UnexpectedKind(wire::Kind),
    /// A BEP 15 request whose connection id is not one we gave, or expired.
    Bep15BadConnectionId,
    /// A BEP 15 request that did not parse.
    Bep15Malformed(bep15::RequestError),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Malformed(error) => write!(f, "{error}"),
            DropReason::UnexpectedKind(kind) => {
                write!(f, "unexpected kind {kind:?} at the tracker")
            }
            DropReason::Bep15BadConnectionId => {
                f.write_str("BEP 15: unknown or expired connection id")
            }
            DropReason::Bep15Malformed(error) => write!(f, "{error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drop_reason_reads_as_the_check_that_failed() {
        let from: SocketAddr = "192.0.2.7:6881".parse().unwrap();
        let cases = [
            (
                DropReason::Malformed(wire::DecodeError::BadMagic),
                wire::DecodeError::BadMagic.to_string(),
            ),
            (
                DropReason::UnexpectedKind(wire::Kind::Piece),
                "unexpected kind Piece at the tracker".to_string(),
            ),
            (
                DropReason::Bep15BadConnectionId,
                "BEP 15: unknown or expired connection id".to_string(),
            ),
            (
                DropReason::Bep15Malformed(bep15::RequestError::Unsendable(
                    bep15::Malformed::Truncated,
                )),
                bep15::RequestError::Unsendable(bep15::Malformed::Truncated).to_string(),
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(
                TrackerEvent::Dropped { from, reason }.to_string(),
                format!("dropped datagram from {from}: {text}")
            );
        }
    }
}
