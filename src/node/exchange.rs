//! Peer exchange: a node that answers a have-map request also tells the asker of other
//! peers holding some of the file ([`wire::Peers`]), so that a swarm learns of its new
//! partial holders from each other instead of from the tracker. Looking the tracker up every
//! 250 ms was how downloaders found them, and it made a downloader send the tracker several
//! datagrams a second (issue 14); with the exchange, look-ups back off while nothing changes.
//!
//! What is told: the peers our own download of the file got verified chunks from (they hold
//! those, and upload well enough to have sent them), then the peers that started a chunk
//! from us lately (they hold it a moment later), newest first, each address one that proved
//! it receives. At most
//! [`EXCHANGE_PEERS_MAX`], to each asker at most every [`EXCHANGE_INTERVAL`], and
//! only after a have-map to an address whose cookie proved that it receives (so a forged
//! source gets nothing). The receiver treats a list as hints: it asks a listed address only
//! for its have-map, as it asks one the tracker listed, and takes nothing else from it
//! (`Download::handle_exchange`).

use super::Outbox;
use super::download::Download;
use super::downloads::Downloads;
use super::upload::Uploader;
use crate::wire::{self, Hash, Message, U32};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Least time between two lists to the same asker for the same file: a peer that starts
/// using us learns whom we know at once, then once a second. Have-maps are asked for every
/// 200 ms; a list with each cost the simulated swarm's 1 MiB/s uploads some 2% (100 KiB/s
/// ones far more) and 0.1 T* at 200 downloaders; one every 4 s found new holders too late
/// (0.3 T* at one seed).
pub const EXCHANGE_INTERVAL: Duration = Duration::from_secs(1);
/// Most peers in one list we send (the wire allows [`wire::PEERS_PER_EXCHANGE_MAX`]): 228
/// bytes, a list that varies from one to the next (see `lists_sent`).
pub const EXCHANGE_PEERS_MAX: usize = 8;
/// Most (asker, file) pairs whose last list is remembered; the oldest is forgotten first.
pub const EXCHANGE_TOLD_MAX: usize = 256;

/// Whom we know to hold some of `info_hash`, in the order told (see the module
/// documentation): the peers our own download of it got verified chunks from, then those
/// that started a chunk from us lately, as (node id, address, holds every chunk). For
/// [`Exchange::tell`], which asks only when a list is due.
pub(super) fn known<'a>(
    downloads: &'a Downloads,
    uploader: &'a mut Uploader,
    info_hash: Hash,
    now: Instant,
) -> impl FnOnce() -> Vec<(u32, SocketAddr, bool)> + 'a {
    move || {
        let ours = downloads.running_of(info_hash).into_iter();
        let ours = ours.flat_map(Download::useful_peers);
        let served = uploader.served_peers(info_hash, now).into_iter();
        ours.chain(served.map(|(node_id, addr)| (node_id, addr, false)))
            .collect()
    }
}

/// Whom we told of peers lately.
pub(super) struct Exchange {
    /// Our node id, never listed.
    own: u32,
    /// Oldest first: (asker, file, when told).
    told: VecDeque<(SocketAddr, Hash, Instant)>,
    /// Lists sent so far: where the next list starts, so that successive ones differ.
    lists_sent: u64,
}

impl Exchange {
    pub(super) fn new(own: u32) -> Exchange {
        Exchange {
            own,
            told: VecDeque::new(),
            lists_sent: 0,
        }
    }

    /// Whether `to` may be told of peers of `info_hash` now; if so, remembers it was.
    fn due(&mut self, to: SocketAddr, info_hash: Hash, now: Instant) -> bool {
        if self.told.iter().any(|&(addr, hash, at)| {
            addr == to && hash == info_hash && now.saturating_duration_since(at) < EXCHANGE_INTERVAL
        }) {
            return false;
        }
        self.told
            .retain(|&(addr, hash, _)| addr != to || hash != info_hash);
        if self.told.len() >= EXCHANGE_TOLD_MAX {
            self.told.pop_front();
        }
        self.told.push_back((to, info_hash, now));
        true
    }

    /// A have-map of `info_hash` went to `to` (node `asker`), whose cookie proved that it
    /// receives: tell it of the peers `known` gives (node id, address, holds every chunk), at
    /// most [`EXCHANGE_PEERS_MAX`] and at most every [`EXCHANGE_INTERVAL`]. `known` is asked
    /// only when a list is due.
    pub(super) fn tell(
        &mut self,
        out: &mut Outbox,
        now: Instant,
        to: SocketAddr,
        info_hash: Hash,
        asker: u32,
        known: impl FnOnce() -> Vec<(u32, SocketAddr, bool)>,
    ) {
        if !self.due(to, info_hash, now) {
            return;
        }
        let own = self.own;
        let mut listed: Vec<wire::PeerRecord> = Vec::new();
        for (node_id, addr, complete) in known() {
            if node_id == asker
                || node_id == own
                || addr == to
                || addr.port() == 0
                || listed.iter().any(|r| r.node_id.get() == node_id)
            {
                continue;
            }
            listed.push(wire::PeerRecord {
                node_id: U32::new(node_id),
                port: wire::U16::new(addr.port()),
                complete: u8::from(complete),
                reserved: 0,
                ip: wire::ip_to_bytes(addr.ip()),
            });
        }
        if listed.is_empty() {
            return;
        }
        if listed.len() > EXCHANGE_PEERS_MAX {
            // A different window of what we know for every list: askers spread over the
            // swarm instead of crowding the same few peers.
            let start = (self.lists_sent % listed.len() as u64) as usize;
            listed.rotate_left(start);
            listed.truncate(EXCHANGE_PEERS_MAX);
        }
        self.lists_sent += 1;
        let fixed = wire::Peers {
            info_hash,
            node_id: U32::new(own),
            // Fits: at most PEERS_PER_EXCHANGE_MAX.
            peer_count: wire::U16::new(listed.len() as u16),
            reserved: [0; 2],
        };
        out.send(
            to,
            &Message::Peers {
                fixed: &fixed,
                peers: &listed,
            },
        );
    }

    /// The table of whom we told, with its `*_MAX` limit (for the simulation's checkers).
    pub(super) fn queue_len(&self) -> super::QueueLen {
        (
            "node peers told of other peers",
            self.told.len(),
            EXCHANGE_TOLD_MAX,
        )
    }
}
