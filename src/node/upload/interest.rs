//! Who asked lately for a partial file's have-map, so that a newly verified chunk can be
//! told to them at once instead of at their next poll.
//!
//! A downloader polls the have-maps of the partial holders it uses every 200 ms; a chunk
//! that just verified here would wait half that on average before anyone asks for it, at
//! every hop of its way through a swarm. Pushing the have-map to those who asked within
//! [`INTEREST_FOR`] cuts that wait to a one-way delay. The push is an ordinary have-map
//! (a peer takes one from an address it uses whenever it comes), so nothing changes on the
//! wire; polling stays, for pushes that are lost.

use crate::wire::Hash;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most (peer, file) pairs remembered; the oldest is forgotten first.
pub const INTERESTED_MAX: usize = 256;
/// A peer that asked for a file's have-map this recently is told of new chunks.
pub const INTEREST_FOR: Duration = Duration::from_secs(1);
/// Have-maps longer than this are not pushed (files of more than 2,048 chunks): one per
/// verified chunk per peer would cost more than the polling it saves.
pub const PUSH_BITMAP_BYTES_MAX: usize = 256;

#[derive(Default)]
pub struct Interested {
    /// Oldest first: (peer, file, when it last asked).
    asked: VecDeque<(SocketAddr, Hash, Instant)>,
}

impl Interested {
    /// `peer` asked for the have-map of `info_hash` at `now`.
    pub fn asked(&mut self, peer: SocketAddr, info_hash: Hash, now: Instant) {
        self.asked
            .retain(|&(addr, hash, _)| addr != peer || hash != info_hash);
        if self.asked.len() >= INTERESTED_MAX {
            self.asked.pop_front();
        }
        self.asked.push_back((peer, info_hash, now));
    }

    /// The peers that asked for the have-map of `info_hash` within [`INTEREST_FOR`];
    /// forgets those that did not.
    pub fn peers(&mut self, info_hash: Hash, now: Instant) -> Vec<SocketAddr> {
        self.asked
            .retain(|&(_, _, at)| now.saturating_duration_since(at) < INTEREST_FOR);
        self.asked
            .iter()
            .filter(|&&(_, hash, _)| hash == info_hash)
            .map(|&(addr, _, _)| addr)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.asked.len()
    }
}

/// Most (file, peer) pairs remembered as served lately; the oldest is forgotten first.
pub const SERVED_MAX: usize = 64;
/// A peer that started a chunk from us this recently is told to others as a holder: it
/// holds that chunk a moment later, and is a downloader of the file for a while.
pub const SERVED_FOR: Duration = Duration::from_secs(10);

/// Who started a chunk of a file from us lately: the swarm's newest partial holders, which
/// the tracker hears of only at their next announce.
#[derive(Default)]
pub struct Served {
    /// Oldest first: (file, node id, address, when it last started a chunk).
    served: VecDeque<(Hash, u32, SocketAddr, Instant)>,
}

impl Served {
    pub fn served(&mut self, info_hash: Hash, node_id: u32, peer: SocketAddr, now: Instant) {
        self.served
            .retain(|&(hash, _, addr, _)| addr != peer || hash != info_hash);
        if self.served.len() >= SERVED_MAX {
            self.served.pop_front();
        }
        self.served.push_back((info_hash, node_id, peer, now));
    }

    /// Peers served a chunk of `info_hash` within [`SERVED_FOR`], newest first; forgets
    /// those served longer ago.
    pub fn peers(&mut self, info_hash: Hash, now: Instant) -> Vec<(u32, SocketAddr)> {
        self.served
            .retain(|&(_, _, _, at)| now.saturating_duration_since(at) < SERVED_FOR);
        self.served
            .iter()
            .rev()
            .filter(|&&(hash, ..)| hash == info_hash)
            .map(|&(_, node_id, addr, _)| (node_id, addr))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.served.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_askers_per_file_within_bounds() {
        let now = Instant::now();
        let addr = |port: u16| SocketAddr::from(([10, 0, 0, 2], port));
        let mut interested = Interested::default();
        interested.asked(addr(1), [1; 20], now);
        interested.asked(addr(2), [2; 20], now);
        interested.asked(addr(1), [1; 20], now + Duration::from_millis(900));
        assert_eq!(interested.len(), 2);
        assert_eq!(interested.peers([1; 20], now + INTEREST_FOR), vec![addr(1)]);
        // The other file's asker is too old now, and forgotten.
        assert_eq!(interested.len(), 1);
        for port in 0..(INTERESTED_MAX as u16 + 10) {
            interested.asked(addr(port), [3; 20], now);
        }
        assert_eq!(interested.len(), INTERESTED_MAX);
    }
}
