//! The tracker: a sans-IO state machine that knows which nodes are alive, which node holds
//! which file (and how many of its chunks), and how much each node has uploaded.
//!
//! It never touches a socket, the clock or the OS random source. The reactor feeds it
//! datagrams (`handle_datagram`) and wake-ups (`handle_timeout`) with the time it read, and
//! drains what it wants done: datagrams to send (`poll_transmit`), the next wake-up
//! (`poll_timeout`), log events (`poll_event`) and registry snapshots to persist
//! (`poll_snapshot`, written with [`db::save`]). Tokens and keys come from the [`Secrets`]
//! the caller gives (the OS in a process, seeded in a simulation, which then replays exactly
//! from its seed); the [`Rng`] only breaks ties and samples holders.
//!
//! Nodes authenticate with the id they chose and a token the tracker minted for them (or
//! one they kept from before the tracker lost its state). Every table and queue is bounded;
//! when a table is full, requests that would grow it are refused with `Refused(Full)`.
//!
//! Anti-amplification: a refusal (12 bytes) and a `Challenge` are smaller than any request,
//! and the large replies, the look-up reply and a page of the list (`tracker/list.rs`), go
//! only to a node that authenticated from its registered address. A Register no known token vouches for costs no state until its address
//! echoed a stateless cookie (`tracker/register.rs`).
//!
//! Convergence: each heartbeat reply carries the digest of what the tracker records the node
//! holding, so a tracker that lost saves (`tracker/saving.rs`: at most one a second) learns
//! every file again within one heartbeat: the node's own digest differs, and it announces.
//!
//! The same port answers standard BitTorrent clients (BEP 15, in `tracker/bep15_server.rs`); datagrams are
//! told apart by their first bytes ([`crate::bep15::is_bep15`]).

mod bep15_server;
pub mod db;
mod events;
mod list;
mod register;
mod saving;
#[cfg(test)]
mod tests;

pub use bep15_server::{
    CONNECTION_EPOCH, NUM_WANT_DEFAULT, NUM_WANT_MAX, PEERS_MAX as BEP15_PEERS_MAX,
    PEERS_PER_SWARM_MAX as BEP15_PEERS_PER_SWARM_MAX, SWARMS_MAX as BEP15_SWARMS_MAX,
    SWARMS_PER_SOURCE_MAX as BEP15_SWARMS_PER_SOURCE_MAX,
};
pub use db::Snapshot;
pub use events::{DropReason, TrackerConfig, TrackerEvent, TrackerStats};

use crate::Transmit;
use crate::budget::{SenderBudgets, Verdict};
use crate::rng::Rng;
use crate::secrets::Secrets;
use crate::wire::{self, Hash, Kind, Message, NodeAuth, RefusedReason, U16, U32, U64};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most registered nodes.
pub const NODES_MAX: usize = 65_536;
/// Most distinct files (info hashes) across all nodes.
pub const FILES_MAX: usize = 65_536;
/// Most files one node may announce as held.
pub const HOLDINGS_PER_NODE_MAX: usize = 4_096;
/// Most versions (info hashes) under one name, so that a look-up's cost stays bounded.
pub const VERSIONS_PER_NAME_MAX: usize = 64;
/// Most replies waiting for `poll_transmit`; more are dropped and counted.
pub const TRANSMIT_QUEUE_MAX: usize = 4_096;
/// Holders a look-up lists by credit alone; the rest of the reply is a random sample.
pub const LOOKUP_BY_CREDIT_MAX: usize = 16;
/// Most events waiting for `poll_event`; more are dropped and counted.
pub const EVENT_QUEUE_MAX: usize = 4_096;
/// At most one log line a second says that senders go over their budget.
const OVER_BUDGET_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A change to the registry is saved at most this long after it came, with whatever else
/// changed by then, and saves are at least this far apart whatever the load, so that a burst
/// costs one write and fsync: saving for every credit report (one per verified chunk) cost the
/// tracker 0.1-0.7 CPU-s per 1 GiB download, saving for every announce 0.26 CPU-s in a 4 GiB
/// two-holder transfer, and saving for every new node 15-58 writes a second under a flood of
/// Registers. A tracker killed meanwhile forgets that much; nodes repair it: each heartbeat's
/// reply carries the digest of what the tracker records the node holding, and a node whose
/// own differs announces everything again (and registers again when refused as unknown). Only
/// credit is lost. A clean stop saves at once ([`Tracker::poll_snapshot_at_stop`]). A new
/// node's token is saved before the reply that hands it out: that reply is held until the
/// reactor says the next save was written ([`Tracker::snapshot_written`]).
pub const REGISTRY_SAVE_DELAY: Duration = Duration::from_secs(1);
/// Most `Registered` replies held until the save of the token they hand out; more are
/// dropped (the node asks again and is answered after the next save).
pub const HELD_REPLIES_MAX: usize = 4_096;

struct Node {
    /// Where the node speaks from: replies go here, and only here do look-ups get answered.
    addr: SocketAddr,
    /// The address the node advertises (`--advertise`) once it is known to reach the node:
    /// given to peers instead of `addr`. Not saved: a restarted tracker verifies it again at
    /// the node's next heartbeat.
    advertised: Option<SocketAddr>,
    token: u64,
    /// The node has presented its token at least once, so it surely received it.
    token_confirmed: bool,
    /// The token is in a snapshot the reactor wrote: it may be handed out.
    token_saved: bool,
    /// Restored from a snapshot and not heard from since: the snapshot may be stale, so the
    /// node may hold a newer token than this one (see `on_register`).
    restored_unheard: bool,
    /// [`wire::holdings_digest`] of `holdings`, kept up to date one holding at a time.
    holdings_digest: u64,
    last_seen: Instant,
    upload_credit_bytes: u64,
    /// Info hash → chunks held (never zero, except for an empty file).
    holdings: BTreeMap<Hash, u32>,
}

impl Node {
    /// The address peers are given for this node.
    fn listed(&self) -> SocketAddr {
        self.advertised.unwrap_or(self.addr)
    }
}

struct File {
    name: String,
    file_bytes: u64,
    chunk_bytes: u32,
    /// Node id → chunks held (never zero, except for an empty file). Never empty: a file without holders is forgotten.
    holders: BTreeMap<u32, u32>,
}

/// A reply waiting for `poll_transmit`, kept as values and encoded only when sent.
enum Outgoing {
    Registered(wire::Registered),
    Challenge(wire::Challenge),
    Announced(wire::Announced),
    LookupReply {
        versions: Vec<wire::VersionRecord>,
        holders: Vec<wire::HolderRecord>,
        name: String,
    },
    ExitAck(wire::ExitAck),
    Refused(wire::Refusal),
    ListReply {
        fixed: wire::ListReply,
        page: list::Page,
    },
    Bep15(bep15_server::Reply),
}

pub struct Tracker {
    config: TrackerConfig,
    /// Tie-breaks and samples only: never a token or a key.
    rng: Rng,
    /// Tokens, each drawn on its own.
    secrets: Secrets,
    // Ordered maps, not hash maps: iteration order then depends only on the inputs, so
    // snapshots and replies replay exactly from a seed.
    nodes: BTreeMap<u32, Node>,
    /// (last seen, node id) of every node: the first entry is the next to expire.
    by_last_seen: BTreeSet<(Instant, u32)>,
    files: BTreeMap<Hash, File>,
    /// Name → the info hashes announced under it.
    names: BTreeMap<String, Vec<Hash>>,
    /// Replies waiting: to, the remote whose local address they leave from (see
    /// [`Transmit::source_as_for`]), what.
    transmits: VecDeque<(SocketAddr, Option<SocketAddr>, Outgoing)>,
    events: VecDeque<TrackerEvent>,
    /// The registry changed since the last snapshot.
    registry_changed: bool,
    /// A snapshot is due at this moment (set by the first change after the last snapshot).
    registry_save_due: Option<Instant>,
    /// The save deadline passed: `poll_snapshot` hands out the next snapshot.
    registry_save_ready: bool,
    /// When the last snapshot was taken: the next is due no sooner than
    /// [`REGISTRY_SAVE_DELAY`] after it.
    registry_snapshot_at: Option<Instant>,
    /// `Registered` replies that hand out a token not yet saved, as (node id, address).
    held_registered: VecDeque<(u32, SocketAddr)>,
    /// How many of `held_registered` the snapshot being written covers.
    held_covered: usize,
    stats: TrackerStats,
    /// Standard BitTorrent swarms (memory only) and the connection-id secret.
    bep15: bep15_server::Swarms,
    /// Datagrams each (address, port) may send; the rest are dropped before decoding.
    budgets: SenderBudgets,
    /// Registers each address (all ports) may send that no known token vouches for.
    unproven: SenderBudgets,
    /// When over-budget drops were last reported in the log.
    over_budget_reported_at: Option<Instant>,
}

impl Tracker {
    /// `now` starts the clock of BEP 15 connection ids. `secrets` is [`Secrets::Os`] in a
    /// process; a seed (a simulation, a test) gives a replayable [`Secrets::Seeded`].
    pub fn new(config: TrackerConfig, secrets: impl Into<Secrets>, now: Instant) -> Self {
        let mut secrets = secrets.into();
        Tracker {
            bep15: bep15_server::Swarms::new(&mut secrets, now),
            budgets: SenderBudgets::new(crate::budget::TRACKER_SENDERS_MAX, secrets.u64(), now),
            unproven: SenderBudgets::with_limits(
                crate::budget::TRACKER_SENDERS_MAX,
                secrets.u64(),
                now,
                crate::budget::UNPROVEN_BURST,
                crate::budget::UNPROVEN_RATE_PER_S,
            ),
            over_budget_reported_at: None,
            config,
            rng: Rng::new(secrets.u64()),
            secrets,
            nodes: BTreeMap::new(),
            by_last_seen: BTreeSet::new(),
            files: BTreeMap::new(),
            names: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            registry_changed: false,
            registry_save_due: None,
            registry_save_ready: false,
            registry_snapshot_at: None,
            held_registered: VecDeque::new(),
            held_covered: 0,
            stats: TrackerStats::default(),
        }
    }

    /// Restores registry from a snapshot read at start; restored nodes count as seen at `now`.
    /// Entries that make no sense, or that would pass a table's limit, are skipped.
    pub fn from_snapshot(
        config: TrackerConfig,
        secrets: impl Into<Secrets>,
        now: Instant,
        mut snapshot: Snapshot,
    ) -> Self {
        let mut tracker = Tracker::new(config, secrets, now);
        snapshot.sanitize();
        for entry in &snapshot.nodes {
            let Some((addr, token)) = entry.parse() else {
                continue;
            };
            if tracker.nodes.len() >= NODES_MAX {
                break;
            }
            let node = Node {
                addr,
                advertised: None,
                token,
                token_confirmed: entry.token_confirmed,
                token_saved: true,
                restored_unheard: true,
                holdings_digest: 0,
                last_seen: now,
                upload_credit_bytes: entry.upload_credit_bytes,
                holdings: BTreeMap::new(),
            };
            tracker.nodes.insert(entry.node_id, node);
            tracker.by_last_seen.insert((now, entry.node_id));
        }
        for entry in &snapshot.files {
            let Some(info_hash) = entry.parse() else {
                continue;
            };
            for holder in &entry.holders {
                // Errors here mean a limit was reached; the entry is skipped, as documented.
                let _ = tracker.hold(
                    holder.node_id,
                    info_hash,
                    &entry.name,
                    entry.file_bytes,
                    entry.chunk_bytes,
                    holder.chunks_held,
                );
            }
        }
        tracker.registry_changed = false;
        tracker
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.on_datagram(now, from, bytes);
        self.schedule_save(now);
    }

    fn on_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_received += 1;
        if self.budgets.admit(now, from) == Verdict::Drop {
            return self.over_budget(now, from);
        }
        // A node whose deadline passed is gone even if the reactor has not called
        // handle_timeout yet, so that the answer does not depend on the reactor's timing.
        self.handle_timeout(now);
        if crate::bep15::is_bep15(bytes) {
            return self.on_bep15(now, from, bytes);
        }
        let message = match wire::decode(bytes) {
            Ok(message) => message,
            Err(error) => {
                self.stats.dropped_malformed += 1;
                self.event(TrackerEvent::Dropped {
                    from,
                    reason: DropReason::Malformed(error),
                });
                return;
            }
        };
        match message {
            Message::Register(register) => self.on_register(now, from, register),
            Message::Announce { fixed, name } => self.on_announce(now, from, fixed, name),
            Message::Lookup {
                fixed,
                credits,
                name,
            } => self.on_lookup(now, from, &fixed.auth, credits, name),
            Message::Credit { fixed, records } => self.on_credit(now, from, &fixed.auth, records),
            Message::Exit(exit) => self.on_exit(now, from, &exit.auth),
            Message::ListRequest { fixed, name } => self.on_list(now, from, fixed, name),
            other => {
                self.stats.dropped_unexpected_kind += 1;
                self.event(TrackerEvent::Dropped {
                    from,
                    reason: DropReason::UnexpectedKind(other.kind()),
                });
            }
        }
    }

    /// Expires every node whose deadline has passed, all in one sweep. Spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(last_seen, node_id)) = self.by_last_seen.first() {
            if last_seen + self.config.expiry > now {
                break;
            }
            self.remove_node(node_id);
            self.event(TrackerEvent::NodeExpired { node_id });
        }
        self.bep15.expire(now, self.config.bep15_peer_expiry());
        self.schedule_save(now);
        if self.registry_save_due.is_some_and(|due| due <= now) {
            self.save_ready(now);
        }
    }

    /// Writes the next reply into `buf`; replies that do not fit `buf` are dropped and counted.
    /// (`now`: the shape every core shares, [`crate::Core`]; replies wait for no clock.)
    #[must_use]
    pub fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while let Some((to, source_as_for, reply)) = self.transmits.pop_front() {
            let encoded = match &reply {
                Outgoing::Registered(m) => Message::Registered(m).encode(buf),
                Outgoing::Challenge(m) => Message::Challenge(m).encode(buf),
                Outgoing::Announced(m) => Message::Announced(m).encode(buf),
                Outgoing::LookupReply {
                    versions,
                    holders,
                    name,
                } => Message::LookupReply {
                    versions,
                    holders,
                    name,
                }
                .encode(buf),
                Outgoing::ExitAck(m) => Message::ExitAck(m).encode(buf),
                Outgoing::Refused(m) => Message::Refused(*m).encode(buf),
                Outgoing::ListReply { fixed, page } => Message::ListReply {
                    fixed,
                    records: &page.records,
                    names: &page.names,
                }
                .encode(buf),
                Outgoing::Bep15(m) => m.encode(buf),
            };
            match encoded {
                Ok(len) => {
                    self.stats.replies_sent += 1;
                    return Some(Transmit {
                        to,
                        len,
                        source_as_for,
                    });
                }
                Err(wire::EncodeError::TooLong) => self.stats.replies_dropped_too_long += 1,
            }
        }
        None
    }

    /// The earliest moment a node or a BEP 15 peer could expire, or a snapshot is due; `None`
    /// when there is nothing to wait for.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let node = self
            .by_last_seen
            .first()
            .map(|&(last_seen, _)| last_seen + self.config.expiry);
        let peer = self.bep15.next_expiry(self.config.bep15_peer_expiry());
        node.into_iter()
            .chain(peer)
            .chain(self.registry_save_due)
            .min()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<TrackerEvent> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Standard BitTorrent peers and swarms known now (memory only).
    pub fn bep15_peer_and_swarm_counts(&self) -> (usize, usize) {
        (self.bep15.peer_count(), self.bep15.swarm_count())
    }

    /// Whether `id` is a BEP 15 connection id this tracker handed `client` (this epoch or
    /// the last): such a client proved it receives at its address. For the fuzz checks.
    #[cfg(any(test, feature = "testing"))]
    pub fn bep15_connection_id_valid(&self, now: Instant, client: SocketAddr, id: u64) -> bool {
        self.bep15.connection_id_valid(now, client, id)
    }

    fn on_announce(&mut self, now: Instant, from: SocketAddr, fixed: &wire::Announce, name: &str) {
        let Some(node_id) = self.authenticate(now, from, Some(Kind::Announce), &fixed.auth) else {
            return;
        };
        let info_hash = fixed.info_hash;
        let (file_bytes, chunk_bytes) = (fixed.file_bytes.get(), fixed.chunk_bytes.get());
        let chunks_held = fixed.chunks_held.get();
        if let Err(reason) = self.hold(
            node_id,
            info_hash,
            name,
            file_bytes,
            chunk_bytes,
            chunks_held,
        ) {
            return self.refuse(from, Kind::Announce, reason);
        }
        let chunk_count = wire::chunk_count(file_bytes, chunk_bytes);
        let name = name.to_owned();
        self.event(TrackerEvent::FileAnnounced {
            node_id,
            name,
            info_hash,
            chunks_held,
            chunk_count,
        });
        let announced = wire::Announced {
            info_hash,
            chunks_held: U32::new(chunks_held),
        };
        self.reply(from, Outgoing::Announced(announced));
    }

    fn on_lookup(
        &mut self,
        now: Instant,
        from: SocketAddr,
        auth: &NodeAuth,
        credits: &[wire::CreditRecord],
        name: &str,
    ) {
        let Some(asker) = self.authenticate(now, from, Some(Kind::Lookup), auth) else {
            return;
        };
        self.add_credits(asker, credits);
        if self.nodes[&asker].addr != from {
            // The token is right but the address is not the one that registered: the large
            // reply would go where the node never proved it receives. Registering again from
            // this address fixes it.
            return self.refuse(from, Kind::Lookup, RefusedReason::UnknownNode);
        }
        self.stats.lookups += 1;
        // The reply must cross the path whole: off loopback, at most a safe-sized datagram.
        let room = self
            .config
            .routes
            .control_bytes_max(from)
            .saturating_sub(wire::LOOKUP_REPLY_OVERHEAD_BYTES + name.len());
        let (versions, holders) = self.lookup(asker, name, room);
        self.reply(
            from,
            Outgoing::LookupReply {
                versions,
                holders,
                name: name.to_owned(),
            },
        );
    }

    /// A page of what the tracker offers (see `tracker/list.rs`), for a registered node at
    /// its registered address only, as a look-up: the reply is larger than the request, and
    /// goes only where a node proved it receives.
    fn on_list(&mut self, now: Instant, from: SocketAddr, fixed: &wire::ListRequest, name: &str) {
        let Some(asker) = self.authenticate(now, from, Some(Kind::ListRequest), &fixed.auth) else {
            return;
        };
        if self.nodes[&asker].addr != from {
            return self.refuse(from, Kind::ListRequest, RefusedReason::UnknownNode);
        }
        self.stats.lists += 1;
        let room = self
            .config
            .routes
            .control_bytes_max(from)
            .saturating_sub(wire::LIST_REPLY_OVERHEAD_BYTES);
        let cursor = list::Cursor {
            name,
            info_hash: fixed.info_hash,
            inclusive: fixed.inclusive == 1,
        };
        let entries_max = usize::from(fixed.entries_max);
        let page = list::page(&self.names, &self.files, &cursor, entries_max, room);
        // Fits: at most FILES_MAX files.
        let files_total = self.files.len() as u32;
        let reply = wire::list_reply(
            fixed.request_id.get(),
            page.records.len(),
            page.more,
            files_total,
        );
        self.reply(from, Outgoing::ListReply { fixed: reply, page });
    }

    /// Versions of `name` with the most holders first, and holders of those versions (not
    /// `asker`), listed with the most upload credit first: each listed version gets its best
    /// holder, then the [`LOOKUP_BY_CREDIT_MAX`] best by credit, then a random sample of the
    /// rest. Ties are broken at random so that nodes with equal credit share the load.
    /// Versions and holders together take at most `room_bytes` of the reply.
    fn lookup(
        &mut self,
        asker: u32,
        name: &str,
        room_bytes: usize,
    ) -> (Vec<wire::VersionRecord>, Vec<wire::HolderRecord>) {
        let mut hashes: Vec<&Hash> = self
            .names
            .get(name)
            .map(|hashes| hashes.iter().collect())
            .unwrap_or_default();
        hashes.sort_by_key(|hash| (std::cmp::Reverse(self.files[*hash].holders.len()), **hash));
        let record_bytes = size_of::<wire::HolderRecord>();
        // Each version listed comes with at least its best holder.
        let versions_max = room_bytes / (size_of::<wire::VersionRecord>() + record_bytes);
        hashes.truncate(wire::LOOKUP_VERSIONS_MAX.min(versions_max));
        struct Candidate {
            credit_bytes: u64,
            tie_break: u64,
            version: u8,
            node_id: u32,
            chunks_held: u32,
        }
        let mut candidates = Vec::new();
        let mut versions = Vec::with_capacity(hashes.len());
        for (index, hash) in hashes.iter().enumerate() {
            let file = &self.files[*hash];
            versions.push(wire::VersionRecord {
                info_hash: **hash,
                file_bytes: U64::new(file.file_bytes),
                chunk_bytes: U32::new(file.chunk_bytes),
                holder_count: U32::new(file.holders.len() as u32),
            });
            for (&node_id, &chunks_held) in file.holders.iter().filter(|(id, _)| **id != asker) {
                let credit_bytes = self.nodes[&node_id].upload_credit_bytes;
                let tie_break = self.rng.next_u64();
                // Fits: at most LOOKUP_VERSIONS_MAX versions.
                candidates.push(Candidate {
                    credit_bytes,
                    tie_break,
                    version: index as u8,
                    node_id,
                    chunks_held,
                });
            }
        }
        candidates.sort_unstable_by_key(|c| (std::cmp::Reverse(c.credit_bytes), c.tie_break));
        let mut chosen = vec![false; candidates.len()];
        for version in 0..versions.len() {
            if let Some(best) = candidates
                .iter()
                .position(|c| usize::from(c.version) == version)
            {
                chosen[best] = true;
            }
        }
        let holders_max = wire::LOOKUP_HOLDERS_MAX
            .min((room_bytes - versions.len() * size_of::<wire::VersionRecord>()) / record_bytes);
        let mut room = holders_max.saturating_sub(chosen.iter().filter(|c| **c).count());
        // The original's rule first: the holders with the most credit.
        let mut by_credit = LOOKUP_BY_CREDIT_MAX.min(room);
        for chosen in chosen.iter_mut().filter(|chosen| !**chosen) {
            if by_credit == 0 {
                break;
            }
            *chosen = true;
            by_credit -= 1;
            room -= 1;
        }
        // Then a random sample of the others, different for every asker, so that a swarm
        // forms a well-connected graph instead of everyone crowding the same few holders.
        let mut others: Vec<usize> = (0..candidates.len()).filter(|&i| !chosen[i]).collect();
        for _ in 0..room.min(others.len()) {
            let pick = self.rng.below(others.len() as u64) as usize;
            chosen[others.swap_remove(pick)] = true;
        }
        let holders = candidates
            .iter()
            .zip(&chosen)
            .filter(|(_, chosen)| **chosen)
            .map(|(c, _)| {
                let addr = self.nodes[&c.node_id].listed();
                wire::HolderRecord {
                    node_id: U32::new(c.node_id),
                    version: c.version,
                    reserved: 0,
                    port: U16::new(addr.port()),
                    ip: wire::ip_to_bytes(addr.ip()),
                    upload_credit_bytes: U64::new(c.credit_bytes),
                    chunks_held: U32::new(c.chunks_held),
                }
            })
            .collect();
        (versions, holders)
    }

    /// A node reports what it verified from others (several uploaders and files in one
    /// datagram, [`wire::CREDIT_RECORDS_MAX`] at most); each record is judged on its own.
    fn on_credit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        auth: &NodeAuth,
        records: &[wire::CreditRecord],
    ) {
        // Credit reports get no reply, so a refused one is only counted.
        let Some(reporter) = self.authenticate(now, from, None, auth) else {
            return;
        };
        self.add_credits(reporter, records);
    }

    /// Credit that node `reporter` reports (in a [`wire::Credit`] or a look-up): each
    /// record counts, or is refused and counted, on its own.
    fn add_credits(&mut self, reporter: u32, records: &[wire::CreditRecord]) {
        for record in records {
            let (from_node, chunks, bytes) = (
                record.from_node.get(),
                record.chunks.get(),
                record.bytes.get(),
            );
            let possible = bytes <= u64::from(chunks) * u64::from(wire::CHUNK_BYTES_MAX);
            match self.nodes.get_mut(&from_node) {
                Some(uploader) if from_node != reporter && possible => {
                    uploader.upload_credit_bytes =
                        uploader.upload_credit_bytes.saturating_add(bytes);
                    self.registry_changed = true;
                }
                _ => self.stats.refused += 1,
            }
        }
    }

    fn on_exit(&mut self, now: Instant, from: SocketAddr, auth: &NodeAuth) {
        let Some(node_id) = self.authenticate(now, from, Some(Kind::Exit), auth) else {
            return;
        };
        self.remove_node(node_id);
        self.event(TrackerEvent::NodeExited { node_id });
        self.reply(
            from,
            Outgoing::ExitAck(wire::ExitAck {
                node_id: U32::new(node_id),
            }),
        );
    }

    /// Checks `auth` and refreshes the node's last-seen. Otherwise counts a refusal, and
    /// replies with one when the request has a reply (`reply_kind`).
    fn authenticate(
        &mut self,
        now: Instant,
        from: SocketAddr,
        reply_kind: Option<Kind>,
        auth: &NodeAuth,
    ) -> Option<u32> {
        match self.check_auth(auth) {
            Ok(node_id) => {
                if let Some(node) = self.nodes.get_mut(&node_id)
                    && !node.token_confirmed
                {
                    node.token_confirmed = true;
                    self.registry_changed = true;
                }
                self.touch(node_id, now);
                Some(node_id)
            }
            Err(reason) => {
                match reply_kind {
                    Some(kind) => self.refuse(from, kind, reason),
                    None => self.stats.refused += 1,
                }
                None
            }
        }
    }

    fn check_auth(&self, auth: &NodeAuth) -> Result<u32, RefusedReason> {
        let node_id = auth.node_id.get();
        match self.nodes.get(&node_id) {
            None => Err(RefusedReason::UnknownNode),
            Some(node) if node.token != auth.token.get() => Err(RefusedReason::BadToken),
            Some(_) => Ok(node_id),
        }
    }

    fn touch(&mut self, node_id: u32, now: Instant) {
        let Some(node) = self.nodes.get_mut(&node_id) else {
            return;
        };
        self.by_last_seen.remove(&(node.last_seen, node_id));
        node.restored_unheard = false;
        // `now` never goes back in a real reactor; max() keeps the expiry order sound if it does.
        node.last_seen = node.last_seen.max(now);
        self.by_last_seen.insert((node.last_seen, node_id));
    }

    /// Records that `node_id` holds `chunks_held` chunks of a file (zero: no longer holds it).
    fn hold(
        &mut self,
        node_id: u32,
        info_hash: Hash,
        name: &str,
        file_bytes: u64,
        chunk_bytes: u32,
        chunks_held: u32,
    ) -> Result<(), RefusedReason> {
        let node = self
            .nodes
            .get_mut(&node_id)
            .ok_or(RefusedReason::UnknownNode)?;
        if let Some(file) = self.files.get(&info_hash)
            && (file.name != name
                || file.file_bytes != file_bytes
                || file.chunk_bytes != chunk_bytes)
        {
            return Err(RefusedReason::Conflict);
        }
        // An empty file has no chunks, so zero means "no longer holds it" only for others.
        if chunks_held == 0 && wire::chunk_count(file_bytes, chunk_bytes) > 0 {
            if let Some(old) = node.holdings.remove(&info_hash) {
                node.holdings_digest ^= wire::holding_digest_term(&info_hash, old);
                self.release(node_id, info_hash);
                self.registry_changed = true;
            }
            return Ok(());
        }
        if !node.holdings.contains_key(&info_hash) && node.holdings.len() >= HOLDINGS_PER_NODE_MAX {
            return Err(RefusedReason::Full);
        }
        if !self.files.contains_key(&info_hash) {
            let versions = self.names.get(name).map_or(0, Vec::len);
            if self.files.len() >= FILES_MAX || versions >= VERSIONS_PER_NAME_MAX {
                return Err(RefusedReason::Full);
            }
            let file = File {
                name: name.to_owned(),
                file_bytes,
                chunk_bytes,
                holders: BTreeMap::new(),
            };
            self.files.insert(info_hash, file);
            self.names
                .entry(name.to_owned())
                .or_default()
                .push(info_hash);
        }
        if let Some(old) = node.holdings.insert(info_hash, chunks_held) {
            node.holdings_digest ^= wire::holding_digest_term(&info_hash, old);
        }
        node.holdings_digest ^= wire::holding_digest_term(&info_hash, chunks_held);
        debug_assert_eq!(
            node.holdings_digest,
            wire::holdings_digest(node.holdings.iter().map(|(h, c)| (h, *c)))
        );
        let previous = self
            .files
            .get_mut(&info_hash)
            .and_then(|file| file.holders.insert(node_id, chunks_held));
        self.registry_changed |= previous != Some(chunks_held);
        Ok(())
    }

    /// Removes `node_id` from the holders of `info_hash`, forgetting the file when none are left.
    fn release(&mut self, node_id: u32, info_hash: Hash) {
        let Some(file) = self.files.get_mut(&info_hash) else {
            return;
        };
        file.holders.remove(&node_id);
        if !file.holders.is_empty() {
            return;
        }
        let file = self.files.remove(&info_hash).expect("looked up above");
        if let Some(hashes) = self.names.get_mut(&file.name) {
            hashes.retain(|hash| *hash != info_hash);
            if hashes.is_empty() {
                self.names.remove(&file.name);
            }
        }
    }

    fn remove_node(&mut self, node_id: u32) {
        let Some(node) = self.nodes.remove(&node_id) else {
            return;
        };
        self.by_last_seen.remove(&(node.last_seen, node_id));
        for info_hash in node.holdings.keys() {
            self.release(node_id, *info_hash);
        }
        self.registry_changed = true;
    }

    fn refuse(&mut self, to: SocketAddr, request_kind: Kind, reason: RefusedReason) {
        self.stats.refused += 1;
        let refusal = wire::Refusal {
            request_kind: request_kind as u8,
            reason,
        };
        self.reply(to, Outgoing::Refused(refusal));
    }

    fn reply(&mut self, to: SocketAddr, reply: Outgoing) {
        self.send_as_for(to, to, reply);
    }

    /// Queues `reply` to `to`, sent from the local address `asker` reached us at.
    fn send_as_for(&mut self, to: SocketAddr, asker: SocketAddr, reply: Outgoing) {
        if self.transmits.len() >= TRANSMIT_QUEUE_MAX {
            self.stats.replies_dropped_queue_full += 1;
            return;
        }
        self.transmits
            .push_back((to, (asker != to).then_some(asker), reply));
    }

    /// Counts a datagram dropped for its sender's budget; says so at most once a second.
    fn over_budget(&mut self, now: Instant, from: SocketAddr) {
        self.stats.dropped_over_budget += 1;
        if self
            .over_budget_reported_at
            .is_some_and(|at| now < at + OVER_BUDGET_REPORT_INTERVAL)
        {
            return;
        }
        self.over_budget_reported_at = Some(now);
        let dropped_total = self.stats.dropped_over_budget;
        self.event(TrackerEvent::OverBudget {
            from,
            dropped_total,
        });
    }

    fn event(&mut self, event: TrackerEvent) {
        if self.events.len() >= EVENT_QUEUE_MAX {
            self.stats.events_dropped_queue_full += 1;
            return;
        }
        self.events.push_back(event);
    }
}

// For the simulation's checkers only: not part of the tracker's interface.
impl Tracker {
    /// What the tracker records `node_id` holding (info hash → chunks), `None` for a node it
    /// does not know.
    #[doc(hidden)]
    pub fn debug_holdings(&self, node_id: u32) -> Option<BTreeMap<Hash, u32>> {
        self.nodes.get(&node_id).map(|node| node.holdings.clone())
    }

    /// Every bounded queue and table of the tracker, with its `*_MAX` limit:
    /// `(name, length now, limit)`.
    #[doc(hidden)]
    pub fn debug_queue_lens(&self) -> Vec<(&'static str, usize, usize)> {
        let holdings = self.nodes.values().map(|n| n.holdings.len()).max();
        let versions = self.names.values().map(Vec::len).max();
        vec![
            (
                "tracker transmit queue",
                self.transmits.len(),
                TRANSMIT_QUEUE_MAX,
            ),
            ("tracker event queue", self.events.len(), EVENT_QUEUE_MAX),
            ("tracker nodes", self.nodes.len(), NODES_MAX),
            ("tracker files", self.files.len(), FILES_MAX),
            (
                "tracker holdings of one node",
                holdings.unwrap_or(0),
                HOLDINGS_PER_NODE_MAX,
            ),
            (
                "tracker versions of one name",
                versions.unwrap_or(0),
                VERSIONS_PER_NAME_MAX,
            ),
        ]
    }
}

impl crate::Core for Tracker {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Tracker::handle_datagram(self, now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Tracker::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        Tracker::poll_transmit(self, now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Tracker::poll_timeout(self)
    }
}
