//! The tracker's side of BEP 15: standard BitTorrent clients announce and scrape on the
//! tracker's port, beside our own nodes.
//!
//! * **Connection ids** are minted without per-client state: the first 8 bytes of
//!   SHA-1(secret ‖ epoch ‖ client ip ‖ client port), where an epoch is
//!   [`CONNECTION_EPOCH`] long and the current and previous epochs are accepted (so an id
//!   lives 2 to 4 minutes; BEP 15 asks for at least 2). The secret is drawn from the
//!   tracker's seed. A request with a wrong or expired id gets no reply at all: only an
//!   address that received our connect reply can make us send more than it sent.
//! * **Swarms** live in memory only (never persisted), keyed by info hash, bounded by
//!   [`SWARMS_MAX`], [`PEERS_PER_SWARM_MAX`] and [`PEERS_MAX`]; a peer is forgotten after
//!   twice the announce interval without an announce (by a sweep, at most
//!   [`EXPIRY_SWEEP_PERIOD`] late), or at once on `stopped`. The hash maps are keyed from the
//!   tracker's secrets: unguessable to clients, and replayable in a simulation.
//! * **Fair admission.** A client announcing random info hashes must not lock the rest out:
//!   a source address may have created at most [`SWARMS_PER_SOURCE_MAX`] swarms that still
//!   exist, and when the table is full a new info hash takes the place of a one-peer swarm
//!   of the address that created the most (when that is more than the newcomer's).
//! * **One registry.** An announce or scrape for an info hash our nodes hold also sees those
//!   nodes: they are listed as peers (seeders when they hold every chunk) and counted.
//!   Standard clients learn their addresses but cannot download from them (our peer
//!   protocol is our own).

use super::{DropReason, Outgoing, Tracker, TrackerEvent};
use crate::bep15::{self as proto, AnnounceRequest, Event, Request, RequestError, ScrapeStats};
use crate::secrets::Secrets;
use crate::wire::{self, EncodeError, Hash, U32};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long one connection-id epoch lasts; ids of this and the previous epoch are accepted.
pub const CONNECTION_EPOCH: Duration = Duration::from_secs(120);
/// Most BEP 15 swarms (info hashes with at least one standard peer).
pub const SWARMS_MAX: usize = 16_384;
/// Most swarms one source address (IP, any port) created that still exist: 64 such
/// addresses fill [`SWARMS_MAX`], and then a newcomer evicts one of theirs.
pub const SWARMS_PER_SOURCE_MAX: usize = 256;
/// Most standard peers in one swarm.
pub const PEERS_PER_SWARM_MAX: usize = 4_096;
/// Most standard peers across all swarms.
pub const PEERS_MAX: usize = 262_144;
/// Peers listed when the client asks for the default (`num_want` = -1).
pub const NUM_WANT_DEFAULT: u32 = 50;
/// Most peers listed in one announce response (about 1.2 KB over IPv4, 3.6 KB over IPv6).
pub const NUM_WANT_MAX: u32 = 200;

/// How often, at most, the expiry sweep walks every peer (a peer is forgotten between twice
/// the announce interval and that plus this after its last announce).
pub const EXPIRY_SWEEP_PERIOD: Duration = Duration::from_secs(5);

/// A hasher keyed from the tracker's seed: clients choose info hashes and addresses, so the
/// maps' hash must be unguessable to them (SipHash-2-4), yet replayable from the seed.
#[derive(Clone, Copy)]
struct KeyedHasher {
    keys: (u64, u64),
}

impl BuildHasher for KeyedHasher {
    // std's own SipHash, keyed; deprecated only in favour of `DefaultHasher`, which takes
    // no key.
    #[allow(deprecated)]
    type Hasher = std::hash::SipHasher;

    #[allow(deprecated)]
    fn build_hasher(&self) -> Self::Hasher {
        std::hash::SipHasher::new_with_keys(self.keys.0, self.keys.1)
    }
}

type KeyedMap<K, V> = HashMap<K, V, KeyedHasher>;

struct Peer {
    /// The client's source ip and announced port.
    addr: SocketAddr,
    last_seen: Instant,
    seeder: bool,
}

struct Swarm {
    /// In no particular order; a reply samples a run of them from a random place.
    peers: Vec<Peer>,
    /// Address → place in `peers`.
    index: KeyedMap<SocketAddr, u32>,
    seeders: u32,
    /// `completed` events seen (the scrape's "downloaded" count).
    completed: u32,
    /// The source address whose announce made this swarm.
    creator: IpAddr,
}

impl Swarm {
    fn new(hasher: KeyedHasher, creator: IpAddr) -> Swarm {
        Swarm {
            creator,
            peers: Vec::new(),
            index: HashMap::with_hasher(hasher),
            seeders: 0,
            completed: 0,
        }
    }

    /// Removes the peer at `place` (the last peer takes its place).
    fn remove_at(&mut self, place: usize) -> Peer {
        let peer = self.peers.swap_remove(place);
        self.index.remove(&peer.addr);
        if let Some(moved) = self.peers.get(place) {
            self.index.insert(moved.addr, place as u32);
        }
        if peer.seeder {
            self.seeders -= 1;
        }
        peer
    }
}

/// Every BEP 15 swarm, and the secret behind connection ids.
pub(super) struct Swarms {
    secret: [u8; 16],
    /// Epoch 0 starts here (the tracker's creation).
    epoch_start: Instant,
    hasher: KeyedHasher,
    swarms: KeyedMap<Hash, Swarm>,
    /// Source address → swarms it created that still exist (never zero).
    created: KeyedMap<IpAddr, u32>,
    /// Peers across all swarms.
    peer_count: usize,
    /// No peer announced before this (a lower bound: announces only move peers later);
    /// `None` when there are no peers.
    oldest_seen: Option<Instant>,
    /// The last expiry sweep, which walked every peer.
    last_sweep: Option<Instant>,
}

/// A BEP 15 reply waiting for `poll_transmit`, kept as values and encoded when sent.
pub(super) enum Reply {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        fixed: proto::AnnounceResponse,
        ipv6: bool,
        /// The listed peers as on the wire (6 bytes each over IPv4, 18 over IPv6).
        peers: Vec<u8>,
    },
    Scrape {
        transaction_id: u32,
        stats: Vec<ScrapeStats>,
    },
    Error {
        transaction_id: u32,
        message: &'static str,
    },
}

impl Reply {
    pub(super) fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            Reply::Connect {
                transaction_id,
                connection_id,
            } => proto::encode_connect_response(buf, *transaction_id, *connection_id),
            Reply::Announce { fixed, ipv6, peers } => {
                let len = proto::encode_announce_response(buf, fixed, *ipv6, &[])?;
                let end = len + peers.len();
                buf.get_mut(len..end)
                    .ok_or(EncodeError::TooLong)?
                    .copy_from_slice(peers);
                Ok(end)
            }
            Reply::Scrape {
                transaction_id,
                stats,
            } => proto::encode_scrape_response(buf, *transaction_id, stats),
            Reply::Error {
                transaction_id,
                message,
            } => proto::encode_error_response(buf, *transaction_id, message),
        }
    }
}

/// One swarm `creator` made is gone.
fn forget_creation(created: &mut KeyedMap<IpAddr, u32>, creator: IpAddr) {
    if let std::collections::hash_map::Entry::Occupied(mut entry) = created.entry(creator) {
        *entry.get_mut() -= 1;
        if *entry.get() == 0 {
            entry.remove();
        }
    }
}

/// An IPv4-mapped IPv6 address is IPv4 (a dual-stack socket reports IPv4 clients so).
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Appends `addr` as a BEP 15 peer entry: ip, then port, big-endian.
fn put_peer(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => out.extend_from_slice(&v4.ip().octets()),
        SocketAddr::V6(v6) => out.extend_from_slice(&v6.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

impl Swarms {
    pub(super) fn new(secrets: &mut Secrets, now: Instant) -> Swarms {
        let secret = secrets.key16();
        let hasher = KeyedHasher {
            keys: (secrets.u64(), secrets.u64()),
        };
        Swarms {
            secret,
            epoch_start: now,
            hasher,
            swarms: HashMap::with_hasher(hasher),
            created: HashMap::with_hasher(hasher),
            peer_count: 0,
            oldest_seen: None,
            last_sweep: None,
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch_start).as_secs() / CONNECTION_EPOCH.as_secs()
    }

    fn connection_id_for(&self, epoch: u64, client: SocketAddr) -> u64 {
        let client = canonical(client);
        let mut sha = crate::hash::Sha1::new();
        sha.update(&self.secret);
        sha.update(&epoch.to_be_bytes());
        sha.update(&wire::ip_to_bytes(client.ip()));
        sha.update(&client.port().to_be_bytes());
        let digest = sha.finish();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        // Never the magic that opens our own datagrams, so that an announce is never
        // mistaken for one of ours, nor the protocol id that marks a connect.
        if id[..4] == wire::MAGIC || u64::from_be_bytes(id) == proto::PROTOCOL_ID {
            id[0] ^= 0x80;
        }
        u64::from_be_bytes(id)
    }

    /// The id handed to `client` now.
    pub(super) fn connection_id(&self, now: Instant, client: SocketAddr) -> u64 {
        self.connection_id_for(self.epoch(now), client)
    }

    /// Was `id` handed to `client` in this epoch or the previous one?
    pub(super) fn connection_id_valid(&self, now: Instant, client: SocketAddr, id: u64) -> bool {
        let epoch = self.epoch(now);
        id == self.connection_id_for(epoch, client)
            || (epoch > 0 && id == self.connection_id_for(epoch - 1, client))
    }

    /// Forgets peers that have not announced for `expiry`, in one sweep over every peer (at
    /// most [`PEERS_MAX`] of them), no more often than [`EXPIRY_SWEEP_PERIOD`]: announces
    /// then only overwrite a time, instead of keeping an ordered index. Spurious calls (before
    /// [`Swarms::next_expiry`]) do nothing.
    pub(super) fn expire(&mut self, now: Instant, expiry: Duration) {
        match self.next_expiry(expiry) {
            Some(due) if due <= now => {}
            _ => return,
        }
        let mut oldest: Option<Instant> = None;
        let mut removed = 0;
        let created = &mut self.created;
        self.swarms.retain(|_, swarm| {
            let mut place = 0;
            while let Some(peer) = swarm.peers.get(place) {
                if peer.last_seen + expiry <= now {
                    swarm.remove_at(place);
                    removed += 1;
                } else {
                    oldest = Some(oldest.map_or(peer.last_seen, |t| t.min(peer.last_seen)));
                    place += 1;
                }
            }
            if swarm.peers.is_empty() {
                forget_creation(created, swarm.creator);
            }
            !swarm.peers.is_empty()
        });
        self.peer_count -= removed;
        self.oldest_seen = oldest;
        self.last_sweep = Some(now);
    }

    /// When the next sweep is due: when the oldest peer could expire, but not sooner than
    /// [`EXPIRY_SWEEP_PERIOD`] after the last sweep. `None` without peers.
    pub(super) fn next_expiry(&self, expiry: Duration) -> Option<Instant> {
        let due = self.oldest_seen? + expiry;
        Some(match self.last_sweep {
            Some(last) => due.max(last + EXPIRY_SWEEP_PERIOD),
            None => due,
        })
    }

    pub(super) fn peer_count(&self) -> usize {
        self.peer_count
    }

    pub(super) fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    fn remove_peer(&mut self, info_hash: Hash, addr: SocketAddr) {
        let Some(swarm) = self.swarms.get_mut(&info_hash) else {
            return;
        };
        if let Some(&place) = swarm.index.get(&addr) {
            swarm.remove_at(place as usize);
            self.peer_count -= 1;
            if self.peer_count == 0 {
                self.oldest_seen = None;
            }
        }
        if swarm.peers.is_empty() {
            let creator = swarm.creator;
            self.swarms.remove(&info_hash);
            forget_creation(&mut self.created, creator);
        }
    }

    /// Swarms `source` created that still exist.
    fn created_by(&self, source: IpAddr) -> usize {
        self.created.get(&source).map_or(0, |n| *n as usize)
    }

    /// Makes room for a swarm created by `newcomer` in a full table: removes a swarm whose
    /// only peer is the address that created it, of the address that created the most,
    /// when that is more than the newcomer created. Walks the tables (only when full).
    fn evict_for(&mut self, newcomer: IpAddr) -> bool {
        let mine = self.created_by(newcomer);
        let Some((&heaviest, &count)) = self.created.iter().max_by_key(|(_, n)| **n) else {
            return false;
        };
        if count as usize <= mine + 1 || heaviest == newcomer {
            return false;
        }
        let victim = self.swarms.iter().find_map(|(hash, swarm)| {
            (swarm.creator == heaviest
                && swarm.peers.len() == 1
                && swarm.peers[0].addr.ip() == heaviest)
                .then_some(*hash)
        });
        let Some(victim) = victim else {
            return false;
        };
        let addr = self.swarms[&victim].peers[0].addr;
        self.remove_peer(victim, addr);
        true
    }

    /// Records an announce (and a `completed` event); false when a table is full (the
    /// client gets an error reply). One look-up in each table: this runs for every announce.
    fn upsert(
        &mut self,
        now: Instant,
        info_hash: Hash,
        addr: SocketAddr,
        seeder: bool,
        completed: bool,
    ) -> bool {
        use std::collections::hash_map::Entry;
        if !self.swarms.contains_key(&info_hash) {
            // A new swarm: only for a peer that fits, and within the creator's share.
            let creator = addr.ip();
            if self.peer_count >= PEERS_MAX
                || self.created_by(creator) >= SWARMS_PER_SOURCE_MAX
                || (self.swarms.len() >= SWARMS_MAX && !self.evict_for(creator))
            {
                return false;
            }
            *self.created.entry(creator).or_insert(0) += 1;
        }
        let peer_count = self.peer_count;
        let hasher = self.hasher;
        let swarm = match self.swarms.entry(info_hash) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(Swarm::new(hasher, addr.ip())),
        };
        let swarm_peers = swarm.peers.len();
        let place = match swarm.index.entry(addr) {
            Entry::Occupied(entry) => *entry.get() as usize,
            Entry::Vacant(_) if swarm_peers >= PEERS_PER_SWARM_MAX || peer_count >= PEERS_MAX => {
                return false;
            }
            Entry::Vacant(entry) => {
                entry.insert(swarm_peers as u32);
                swarm.peers.push(Peer {
                    addr,
                    last_seen: now,
                    seeder: false,
                });
                self.peer_count += 1;
                self.oldest_seen.get_or_insert(now);
                swarm_peers
            }
        };
        let peer = &mut swarm.peers[place];
        peer.last_seen = peer.last_seen.max(now);
        if peer.seeder != seeder {
            peer.seeder = seeder;
            if seeder {
                swarm.seeders += 1;
            } else {
                swarm.seeders -= 1;
            }
        }
        if completed {
            swarm.completed = swarm.completed.saturating_add(1);
        }
        true
    }
}

impl Tracker {
    /// A datagram that [`proto::is_bep15`] claimed.
    pub(super) fn on_bep15(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        let request = match proto::decode_request(bytes) {
            Ok(request) => request,
            Err(error) => return self.bep15_refuse(now, from, error),
        };
        match request {
            Request::Connect { transaction_id } => {
                self.stats.bep15_connects += 1;
                let connection_id = self.bep15.connection_id(now, from);
                self.reply(
                    from,
                    Outgoing::Bep15(Reply::Connect {
                        transaction_id,
                        connection_id,
                    }),
                );
            }
            Request::Announce(announce) => {
                if self.bep15_check_id(now, from, announce.header.connection_id.get()) {
                    self.bep15_announce(now, from, announce);
                }
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                if self.bep15_check_id(now, from, connection_id) {
                    self.bep15_scrape(from, transaction_id, info_hashes);
                }
            }
        }
    }

    /// Counts and drops a request with a bad connection id: no reply, whatever it asked.
    fn bep15_check_id(&mut self, now: Instant, from: SocketAddr, connection_id: u64) -> bool {
        if self.bep15.connection_id_valid(now, from, connection_id) {
            return true;
        }
        self.stats.bep15_dropped_bad_connection_id += 1;
        self.event(TrackerEvent::Dropped {
            from,
            reason: DropReason::Bep15BadConnectionId,
        });
        false
    }

    fn bep15_refuse(&mut self, now: Instant, from: SocketAddr, error: RequestError) {
        self.stats.bep15_dropped_malformed += 1;
        self.event(TrackerEvent::Dropped {
            from,
            reason: DropReason::Bep15Malformed(error),
        });
        if let RequestError::Sendable {
            connection_id,
            transaction_id,
            problem,
        } = error
            && self.bep15_check_id(now, from, connection_id)
        {
            self.bep15_error(from, transaction_id, problem.message());
        }
    }

    fn bep15_error(&mut self, to: SocketAddr, transaction_id: u32, message: &'static str) {
        self.stats.bep15_errors_sent += 1;
        self.reply(
            to,
            Outgoing::Bep15(Reply::Error {
                transaction_id,
                message,
            }),
        );
    }

    fn bep15_announce(&mut self, now: Instant, from: SocketAddr, announce: &AnnounceRequest) {
        self.stats.bep15_announces += 1;
        // Replies go to `reply_to` as received (a dual-stack socket needs the mapped form);
        // the swarm files the canonical address.
        let reply_to = from;
        let from = canonical(from);
        let transaction_id = announce.header.transaction_id.get();
        let info_hash = announce.info_hash;
        // The announced port, at the address the datagram came from: the `ip` field is
        // ignored, so nobody can list someone else's address. Port 0 means the source port.
        let port = match announce.port.get() {
            0 => from.port(),
            port => port,
        };
        let peer = SocketAddr::new(from.ip(), port);
        let event = announce.event();
        if event == Event::Stopped {
            self.bep15.remove_peer(info_hash, peer);
        } else {
            let seeder = announce.left_bytes.get() == 0;
            let completed = event == Event::Completed;
            if !self.bep15.upsert(now, info_hash, peer, seeder, completed) {
                self.stats.bep15_refused_full += 1;
                return self.bep15_error(reply_to, transaction_id, "tracker full");
            }
        }
        let ipv6 = from.is_ipv6();
        // The reply must cross the path whole: 200 IPv6 peers are 3.6 KB, more than a
        // 1,500-byte link carries in one packet.
        let entry_bytes = if ipv6 { 18 } else { 6 };
        let fits = self
            .config
            .routes
            .control_bytes_max(reply_to)
            .saturating_sub(size_of::<proto::AnnounceResponse>())
            / entry_bytes;
        let wanted = match event {
            Event::Stopped => 0,
            _ => announce
                .num_want()
                .unwrap_or(NUM_WANT_DEFAULT)
                .min(NUM_WANT_MAX)
                .min(u32::try_from(fits).unwrap_or(u32::MAX)),
        };
        let (peers, listed) = self.bep15_peers(info_hash, peer, ipv6, wanted as usize);
        let counts = self.bep15_stats_of(&info_hash);
        self.event(TrackerEvent::Bep15Announced {
            from,
            info_hash,
            event,
            peers: listed,
        });
        let interval_s = u32::try_from(self.config.announce_interval.as_secs()).unwrap_or(u32::MAX);
        let fixed = proto::AnnounceResponse {
            header: proto::ResponseHeader {
                action: U32::new(proto::ACTION_ANNOUNCE),
                transaction_id: U32::new(transaction_id),
            },
            interval_s: U32::new(interval_s.max(1)),
            leechers: counts.leechers,
            seeders: counts.seeders,
        };
        self.reply(
            reply_to,
            Outgoing::Bep15(Reply::Announce { fixed, ipv6, peers }),
        );
    }

    /// Up to `wanted` peers of `info_hash` in the asker's family, not the asker, written as
    /// on the wire, and how many: our nodes holding it first, then standard peers from a
    /// random place in the swarm (so that every peer gets listed by someone).
    fn bep15_peers(
        &mut self,
        info_hash: Hash,
        asker: SocketAddr,
        ipv6: bool,
        wanted: usize,
    ) -> (Vec<u8>, usize) {
        let same_family = |addr: &SocketAddr| addr.is_ipv6() == ipv6 && *addr != asker;
        let file = self.files.get(&info_hash);
        let swarm = self.bep15.swarms.get(&info_hash);
        let known = file.map_or(0, |f| f.holders.len()) + swarm.map_or(0, |s| s.peers.len());
        let entry_bytes = if ipv6 { 18 } else { 6 };
        let mut out = Vec::with_capacity(entry_bytes * wanted.min(known));
        let mut listed = 0;
        if let Some(file) = file {
            let holders = file.holders.keys();
            let addrs = holders.filter_map(|id| self.nodes.get(id).map(|n| canonical(n.addr)));
            for addr in addrs.filter(same_family).take(wanted) {
                put_peer(&mut out, addr);
                listed += 1;
            }
        }
        if let Some(swarm) = swarm
            && !swarm.peers.is_empty()
        {
            // From a random place on, wrapping around: a different sample for every asker,
            // in time proportional to the peers wanted, not to the swarm's size.
            let start = self.rng.below(swarm.peers.len() as u64) as usize;
            let (before, after) = swarm.peers.split_at(start);
            let wrapped = after.iter().chain(before).map(|peer| peer.addr);
            for addr in wrapped.filter(same_family).take(wanted - listed) {
                put_peer(&mut out, addr);
                listed += 1;
            }
        }
        (out, listed)
    }

    /// Seeders, completed and leechers of `info_hash`, our holders included (a holder of
    /// every chunk is a seeder, a partial holder a leecher).
    fn bep15_stats_of(&self, info_hash: &Hash) -> ScrapeStats {
        let (mut seeders, mut completed, mut leechers) = (0u32, 0u32, 0u32);
        if let Some(swarm) = self.bep15.swarms.get(info_hash) {
            seeders = swarm.seeders;
            leechers = swarm.peers.len() as u32 - swarm.seeders;
            completed = swarm.completed;
        }
        if let Some(file) = self.files.get(info_hash) {
            let chunk_count = wire::chunk_count(file.file_bytes, file.chunk_bytes);
            for &chunks_held in file.holders.values() {
                if chunks_held >= chunk_count {
                    seeders = seeders.saturating_add(1);
                } else {
                    leechers = leechers.saturating_add(1);
                }
            }
        }
        ScrapeStats {
            seeders: U32::new(seeders),
            completed: U32::new(completed),
            leechers: U32::new(leechers),
        }
    }

    fn bep15_scrape(&mut self, to: SocketAddr, transaction_id: u32, info_hashes: &[Hash]) {
        self.stats.bep15_scrapes += 1;
        let stats = info_hashes
            .iter()
            .map(|info_hash| self.bep15_stats_of(info_hash))
            .collect();
        self.reply(
            to,
            Outgoing::Bep15(Reply::Scrape {
                transaction_id,
                stats,
            }),
        );
    }
}

#[cfg(test)]
mod tests;
