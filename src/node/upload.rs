//! Serving peers: cookies, have-maps, manifest parts and pieces, within an upload budget.
//!
//! The uploader is nearly stateless. A request that carries a valid cookie becomes an
//! [`UploadTask`] (which bytes, to whom); [`Uploader::poll_piece`] turns tasks into piece
//! datagrams one at a time, reading each piece once from the file (`pread`, a block of a
//! peer's range at a time for small pieces: see `read_ahead`) into the send buffer:
//! round-robin over peers, and for each peer its ranges in the order asked, so that
//! the chunk a peer asked for first is complete first.
//!
//! **Upload slots.** At most [`UPLOAD_SLOTS_MAX`] peers are served at once; a piece request
//! from any other is refused as [`RejectReason::Busy`] (it asks again later, or another
//! peer). A holder's upload shared by everyone who asks would complete every chunk at the
//! same late moment, after `peers × chunk / rate`; served a few at a time, each peer gets
//! whole chunks quickly and can pass them on, which is what makes a swarm grow. A slow node
//! serves fewer: as many as it can send a chunk each in [`rate::SLOT_CHUNK_TIME`], at the
//! rate measured while pieces wait (one peer at a time on a link that sends 100 KiB/s and
//! chunks of 64 KiB). While peers are being refused, a slot is held for a turn
//! ([`slots::SLOT_TURN`], longer on a slow node: two chunks' worth), then goes to the next
//! asker once the chunk the peer is in the middle of has been asked whole; a peer that stops
//! asking for [`slots::SLOT_IDLE`] gives its slot up. `slots.rs` keeps the slots, and
//! `spread.rs` the counts behind spreading a complete file (below).
//!
//! **Spreading a complete file** (BitTorrent's "super-seeding"). While its upload is in
//! demand (every slot taken, or a peer refused lately, and something to send), a node holding a whole file shows
//! in its have-map only the chunks it has sent the fewest times, and refuses to start any
//! other chunk ([`RejectReason::Elsewhere`]). Its scarce upload then goes to chunks the
//! swarm does not have yet, and peers fetch the rest from each other. When
//! the demand is gone it shows everything again, so a chunk whose only other holders left
//! is never out of reach. A request without a valid cookie gets only a [`wire::Welcome`],
//! which is smaller than the request: an address must prove it receives before it is sent
//! anything larger (the same idea as BEP 15's connection id).

mod interest;
mod pacer;
mod rate;
mod read_ahead;
mod slots;
mod spread;

pub use interest::{INTERESTED_MAX, SERVED_MAX};
#[cfg(test)]
use slots::SLOT_IDLE;
pub use slots::UPLOAD_SLOTS_MAX;

use super::rate_limit::RateLimit;
use super::{LocalFile, NodeStats, Outbox, QueueLen};
use crate::Transmit;
use crate::budget::{SenderBudgets, Verdict};
use crate::mtu::Routes;
use crate::rng::Rng;
use crate::storage::{Bitmap, Content};
use crate::wire::{self, Hash, Kind, Message, RejectReason, U16, U32, U64};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most piece ranges waiting to be sent, over all peers.
pub const UPLOAD_TASKS_MAX: usize = 4096;
/// Peers whose traffic is counted for `status`.
pub const PEERS_COUNTED_MAX: usize = 1024;
/// Most datagrams in the node's control queue when an MTU probe is echoed: an echo may be
/// 64 KiB, so this bounds their memory (probes are a few per peer per download).
const MTU_PROBE_REPLIES_QUEUED_MAX: usize = 64;
/// Most damaged files remembered between two polls of the node.
const DAMAGED_MAX: usize = 64;
/// Most piece ranges queued for one peer (address and port): one peer cannot fill the
/// queue, and peers sharing a host are not punished for each other.
pub const UPLOAD_TASKS_PER_PEER_MAX: usize = 256;
/// A cookie is valid for this epoch and the next.
const COOKIE_EPOCH: Duration = Duration::from_secs(120);

/// A range of one chunk to send to one peer, a piece at a time.
struct UploadTask {
    node_id: u32,
    mapping: Arc<dyn Content>,
    info_hash: Hash,
    chunk: u32,
    /// File offset of the chunk's first byte.
    chunk_file_offset: u64,
    /// Next byte to send and end of the range, within the chunk.
    offset: u32,
    end: u32,
    piece_bytes: u32,
}

/// The ranges queued for one peer, first asked first sent, at the pace it asked for.
struct PeerQueue {
    to: SocketAddr,
    tasks: VecDeque<UploadTask>,
    pacer: pacer::Pacer,
}

impl PeerQueue {
    /// Bytes of the next datagram to this peer (payload and header), if any.
    fn next_datagram_bytes(&self) -> Option<u64> {
        let task = self.tasks.front()?;
        let len = task.piece_bytes.min(task.end - task.offset);
        Some(u64::from(len) + self.overhead_bytes(len) as u64)
    }

    /// Whether a piece of `len` data bytes to this peer carries the time it left: a paced
    /// peer measures queueing delay from it, when it fits one datagram.
    fn stamped(&self, len: u32) -> bool {
        self.pacer.paced()
            && len as usize + wire::STAMPED_PIECE_OVERHEAD_BYTES <= wire::DATAGRAM_BYTES_MAX
    }

    fn overhead_bytes(&self, len: u32) -> usize {
        if self.stamped(len) {
            wire::STAMPED_PIECE_OVERHEAD_BYTES
        } else {
            wire::PIECE_OVERHEAD_BYTES
        }
    }

    /// Bytes of every datagram queued for this peer, counted up to a whole burst of its
    /// pace: all the pacer needs to know (see [`pacer::Pacer::ready_at`]). Estimated with
    /// the next datagram's header for every piece. Counted only while the pacer waits for a
    /// burst (otherwise it reads nothing of it): this runs for every piece sent.
    fn queued_bytes(&self) -> u64 {
        if !self.pacer.waits_for_burst() {
            return u64::MAX;
        }
        let enough = self.pacer.burst_bytes();
        let mut queued = 0u64;
        for task in &self.tasks {
            let left = u64::from(task.end - task.offset);
            let pieces = left.div_ceil(u64::from(task.piece_bytes.max(1)));
            let overhead = self.overhead_bytes(task.piece_bytes.min(task.end - task.offset));
            queued = queued.saturating_add(left + pieces * overhead as u64);
            if queued >= enough {
                break;
            }
        }
        queued
    }

    fn ready(&self, now: Instant) -> bool {
        self.next_datagram_bytes()
            .is_some_and(|bytes| self.pacer.ready(now, bytes, self.queued_bytes()))
    }
}

pub(crate) struct Uploader {
    /// This node's id, told to peers in have-maps.
    node_id: u32,
    /// Route MTUs: how large a have-map or manifest part may be for a peer.
    routes: Routes,
    cookie_key: [u8; 16],
    epoch_start: Instant,
    /// Peers with queued ranges, served round-robin; never empty queues.
    queues: VecDeque<PeerQueue>,
    /// Ranges in all queues (bounded by [`UPLOAD_TASKS_MAX`]).
    task_count: usize,
    /// The peers being served (see `slots`).
    slots: slots::Slots,
    rate: rate::RateMeter,
    /// Blocks of files read ahead for the peers served (see `read_ahead`).
    read_ahead: read_ahead::ReadAhead,
    /// Who asked lately for the have-map of a partial file (told of new chunks at once).
    interested: interest::Interested,
    /// Who started a chunk from us lately: told to other peers as holders (`exchange`).
    served: interest::Served,
    /// How often each chunk of the complete files served lately was sent (see `spread`).
    spread: spread::Spread,
    /// The node's upload limit (`--max-upload-rate`), if it has one.
    budget: Option<RateLimit>,
    /// Requests each (address, port) may send; the rest are dropped before they are
    /// served (see `budget.rs`).
    senders: SenderBudgets,
    /// Bytes sent per peer node id.
    sent_bytes: HashMap<u32, u64>,
    /// Files found shorter than their manifests while serving, for the node to withdraw.
    damaged: Vec<Hash>,
}

impl Uploader {
    pub fn new(
        node_id: u32,
        rng: &mut Rng,
        max_upload_bytes_per_s: Option<u64>,
        routes: Routes,
        senders: SenderBudgets,
        now: Instant,
    ) -> Uploader {
        let mut cookie_key = [0u8; 16];
        cookie_key[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        cookie_key[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let budget = max_upload_bytes_per_s.map(|bytes_per_s| RateLimit::new(bytes_per_s, now));
        Uploader {
            node_id,
            routes,
            cookie_key,
            epoch_start: now,
            queues: VecDeque::new(),
            task_count: 0,
            slots: slots::Slots::default(),
            rate: rate::RateMeter::default(),
            read_ahead: read_ahead::ReadAhead::default(),
            interested: interest::Interested::default(),
            served: interest::Served::default(),
            spread: spread::Spread::default(),
            budget,
            senders,
            sent_bytes: HashMap::new(),
            damaged: Vec::new(),
        }
    }

    /// The cookie for `addr` in `epoch`: keyed SHA-1 of the address, never zero.
    fn cookie(&self, addr: SocketAddr, epoch: u64) -> u64 {
        let mut sha = crate::hash::Sha1::new();
        sha.update(&self.cookie_key);
        sha.update(&epoch.to_be_bytes());
        sha.update(&wire::ip_to_bytes(addr.ip()));
        sha.update(&addr.port().to_be_bytes());
        let digest = sha.finish();
        u64::from_be_bytes(digest[..8].try_into().unwrap_or([1; 8])).max(1)
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch_start).as_secs() / COOKIE_EPOCH.as_secs()
    }

    fn cookie_ok(&self, cookie: u64, addr: SocketAddr, now: Instant) -> bool {
        let epoch = self.epoch(now);
        cookie == self.cookie(addr, epoch) || (epoch > 0 && cookie == self.cookie(addr, epoch - 1))
    }

    /// A peer asked for a have-map, a manifest part or pieces (dropped, and counted, when
    /// its sender is over its budget). Returns the file and the
    /// asker's node id when a have-map went to an address that proved it receives (the node
    /// may then tell it of other peers: `exchange`).
    pub fn handle_request(
        &mut self,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
        from: SocketAddr,
        message: &Message<'_>,
    ) -> Option<(Hash, u32)> {
        let ask = match message {
            Message::HaveRequest(ask) => *ask,
            Message::ManifestRequest(request) => &request.ask,
            Message::InfoRequest(request) => &request.ask,
            Message::PieceRequest(request) => &request.ask,
            Message::PacedPieceRequest(paced) => &paced.request.ask,
            Message::MtuProbe(probe) => &probe.ask,
            _ => return None,
        };
        if self.senders.admit(now, from) == Verdict::Drop {
            // Only requests count: what we asked for is never dropped here.
            out.stats.dropped_over_budget += 1;
            return None;
        }
        if !self.cookie_ok(ask.cookie.get(), from, now) {
            out.stats.welcomes_sent += 1;
            let welcome = wire::Welcome {
                cookie: U64::new(self.cookie(from, self.epoch(now))),
            };
            out.send(from, &Message::Welcome(&welcome));
            return None;
        }
        let info_hash = ask.info_hash;
        let reject = |out: &mut Outbox, chunk: u32, reason: RejectReason| {
            out.stats.requests_rejected += 1;
            let rejection = wire::Rejection {
                info_hash,
                chunk,
                reason,
            };
            out.send(from, &Message::Reject(rejection));
        };
        let Some(file) = files.get(&info_hash) else {
            reject(out, 0, RejectReason::UnknownFile);
            return None;
        };
        let manifest = &file.manifest;
        match message {
            Message::HaveRequest(_) => {
                if !file.have.is_full() {
                    self.interested.asked(from, info_hash, now);
                }
                let (node_id, control_bytes_max) =
                    (self.node_id, self.routes.control_bytes_max(from));
                let bitmap = match self.least_sent(now, file) {
                    Some(shown) => shown.as_bytes(),
                    None => file.have.as_bytes(),
                };
                send_have_map(out, from, control_bytes_max, node_id, manifest, bitmap);
                return Some((info_hash, ask.node_id.get()));
            }
            Message::MtuProbe(probe) => {
                // Echoes are up to 64 KiB each: only a few wait at once.
                if out.control_len() >= MTU_PROBE_REPLIES_QUEUED_MAX {
                    out.stats.control_queue_full += 1;
                    return None;
                }
                let reply = wire::MtuProbeReply {
                    info_hash,
                    probe_bytes: probe.probe_bytes,
                };
                out.send(from, &Message::MtuProbeReply(&reply));
            }
            Message::ManifestRequest(request) => {
                let first = request.first_chunk.get();
                let count = manifest.chunk_count();
                if first > count {
                    reject(out, first, RejectReason::BadRange);
                    return None;
                }
                // As many hashes as fit the path, with the name after them; none for a
                // tree, whose hashes come in its info dictionary.
                let room = self.routes.control_bytes_max(from)
                    - wire::MANIFEST_PART_OVERHEAD_BYTES
                    - manifest.name.len();
                let hash_count = match manifest.tree {
                    Some(_) => 0,
                    None => ((count - first) as usize)
                        .min(wire::MANIFEST_HASHES_PER_PART_MAX)
                        .min(room / wire::HASH_BYTES),
                };
                let fixed = wire::ManifestPart {
                    info_hash,
                    file_bytes: U64::new(manifest.file_bytes),
                    chunk_bytes: U32::new(manifest.chunk_bytes),
                    first_chunk: U32::new(first),
                    hash_count: U16::new(hash_count as u16),
                    flags: if manifest.tree.is_some() {
                        wire::MANIFEST_TREE
                    } else {
                        0
                    },
                    reserved: 0,
                };
                let hashes = &manifest.hashes[first as usize..first as usize + hash_count];
                out.send(
                    from,
                    &Message::ManifestPart {
                        fixed: &fixed,
                        hashes,
                        name: &manifest.name,
                    },
                );
            }
            Message::InfoRequest(request) => {
                let Some(tree) = &manifest.tree else {
                    reject(out, 0, RejectReason::BadRange);
                    return None;
                };
                let info = tree.info_bytes();
                let offset = request.offset.get() as usize;
                if offset >= info.len() {
                    reject(out, 0, RejectReason::BadRange);
                    return None;
                }
                let room = self.routes.control_bytes_max(from) - wire::INFO_PART_OVERHEAD_BYTES;
                let parts = info[offset..]
                    .chunks(room)
                    .take(wire::INFO_PARTS_PER_REQUEST_MAX);
                for (i, bytes) in parts.enumerate() {
                    let fixed = wire::InfoPart {
                        info_hash,
                        // Both fit: a tree's info dictionary is at most INFO_BYTES_MAX.
                        info_bytes: U32::new(info.len() as u32),
                        offset: U32::new((offset + i * room) as u32),
                    };
                    out.send(
                        from,
                        &Message::InfoPart {
                            fixed: &fixed,
                            bytes,
                        },
                    );
                }
            }
            Message::PieceRequest(_) | Message::PacedPieceRequest(_) => {
                let (request, pace_kib_per_s) = match message {
                    Message::PacedPieceRequest(paced) => {
                        (&paced.request, paced.pace_kib_per_s.get())
                    }
                    Message::PieceRequest(request) => (*request, 0),
                    _ => return None,
                };
                // `wire::decode` already bounded what this request can cost: pieces of at
                // least PIECE_BYTES_MIN, at most PIECES_PER_REQUEST_MAX of them.
                debug_assert!(
                    request.length.get().div_ceil(request.piece_bytes.get())
                        <= wire::PIECES_PER_REQUEST_MAX
                );
                let chunk = request.chunk.get();
                if !file.have.get(chunk) {
                    reject(out, chunk, RejectReason::MissingChunk);
                    return None;
                }
                let (offset, length) = (request.offset.get(), request.length.get());
                let chunk_len = manifest.chunk_len(chunk);
                if offset.checked_add(length).is_none_or(|end| end > chunk_len) {
                    reject(out, chunk, RejectReason::BadRange);
                    return None;
                }
                if offset == 0 && !self.least_sent_chunk(now, file, chunk) {
                    out.stats.requests_elsewhere += 1;
                    reject(out, chunk, RejectReason::Elsewhere);
                    return None;
                }
                if !self.take_slot(now, from, manifest.chunk_bytes) {
                    // It asks again later, or asks another peer.
                    out.stats.requests_busy += 1;
                    reject(out, chunk, RejectReason::Busy);
                    return None;
                }
                let queue = self.queues.iter().position(|q| q.to == from);
                let queued = queue.map_or(0, |q| self.queues[q].tasks.len());
                if self.task_count >= UPLOAD_TASKS_MAX || queued >= UPLOAD_TASKS_PER_PEER_MAX {
                    out.stats.upload_queue_full += 1;
                    reject(out, chunk, RejectReason::Busy);
                    return None;
                }
                if offset == 0 {
                    self.served.served(info_hash, ask.node_id.get(), from, now);
                }
                log::debug!(
                    "peer {from} (node {}) asks chunk {chunk} [{offset}+{length}] of {}",
                    ask.node_id.get(),
                    manifest.name
                );
                let queue = match queue {
                    Some(queue) => queue,
                    None => {
                        self.queues.push_back(PeerQueue {
                            to: from,
                            tasks: VecDeque::new(),
                            pacer: pacer::Pacer::new(now),
                        });
                        self.queues.len() - 1
                    }
                };
                // An unpaced request (0) ends the pace of earlier ones.
                let pace = u64::from(pace_kib_per_s).saturating_mul(1024);
                self.queues[queue].pacer.set_rate(pace);
                self.task_count += 1;
                self.slots.set_mid_chunk(from, offset + length < chunk_len);
                if file.have.is_full() {
                    let started_ms = (offset == 0).then(|| self.millis(now));
                    self.spread.count_sent(
                        info_hash,
                        manifest.chunk_count(),
                        chunk,
                        length,
                        started_ms,
                    );
                }
                self.queues[queue].tasks.push_back(UploadTask {
                    node_id: ask.node_id.get(),
                    mapping: Arc::clone(&file.mapping),
                    info_hash,
                    chunk,
                    chunk_file_offset: manifest.chunk_offset(chunk),
                    offset,
                    end: offset + length,
                    piece_bytes: request.piece_bytes.get(),
                });
            }
            _ => {}
        }
        None
    }

    /// Peers that started a chunk of `info_hash` from us lately, newest first: (node id,
    /// address). Their addresses proved they receive (their requests carried our cookie).
    pub fn served_peers(&mut self, info_hash: Hash, now: Instant) -> Vec<(u32, SocketAddr)> {
        self.served.peers(info_hash, now)
    }

    /// The node is leaving: each peer that asked us lately for one of `files` (a have-map
    /// or a chunk) is told we no longer share it, so that it moves what it asked of us to
    /// other holders at once instead of waiting for its requests to time out (in a swarm
    /// whose downloaders leave when done, the last ones waited up to two seconds on peers
    /// gone, 2026-12-07). What it still asked of us is lost either way.
    pub fn farewell<'a>(
        &mut self,
        out: &mut Outbox,
        now: Instant,
        files: impl IntoIterator<Item = &'a Hash>,
    ) {
        for &info_hash in files {
            let mut peers = self.interested.peers(info_hash, now);
            let served = self.served.peers(info_hash, now);
            peers.extend(served.into_iter().map(|(_, addr)| addr));
            peers.sort_unstable();
            peers.dedup();
            for peer in peers {
                out.stats.farewells_sent += 1;
                let rejection = wire::Rejection {
                    info_hash,
                    chunk: 0,
                    reason: RejectReason::UnknownFile,
                };
                out.send(peer, &Message::Reject(rejection));
            }
        }
    }

    /// Bytes of each chunk of the complete file `info_hash` queued for peers so far.
    pub fn debug_chunk_sends(&self, info_hash: Hash) -> Option<Vec<u64>> {
        self.spread.chunk_sends(info_hash)
    }

    /// A chunk of `file` verified here: its have-map goes at once to the peers that asked
    /// for it lately (see [`interest`]), when it is short enough.
    pub fn push_have(&mut self, out: &mut Outbox, now: Instant, file: &LocalFile) {
        let bitmap = file.have.as_bytes();
        if bitmap.len() > interest::PUSH_BITMAP_BYTES_MAX {
            return;
        }
        let manifest = &file.manifest;
        for peer in self.interested.peers(manifest.info_hash, now) {
            out.stats.haves_pushed += 1;
            let control_bytes_max = self.routes.control_bytes_max(peer);
            send_have_map(out, peer, control_bytes_max, self.node_id, manifest, bitmap);
        }
    }

    /// Whether the upload is in demand (see [`slots::Slots::in_demand`]).
    fn in_demand(&self, now: Instant) -> bool {
        let queues = &self.queues;
        self.slots.in_demand(now, self.task_count, |peer| {
            queues.iter().any(|q| q.to == peer)
        })
    }

    fn millis(&self, now: Instant) -> u32 {
        let millis = now.saturating_duration_since(self.epoch_start).as_millis();
        u32::try_from(millis).unwrap_or(u32::MAX - 1) + 1
    }

    /// The have-map a complete file shows while the upload is in demand: the chunks sent
    /// the fewest times (see `spread`). `None`: show the real one.
    fn least_sent(&mut self, now: Instant, file: &LocalFile) -> Option<&Bitmap> {
        if !file.have.is_full() || !self.in_demand(now) {
            return None;
        }
        let now_ms = self.millis(now);
        self.spread.least_sent(now, now_ms, &file.manifest)
    }

    /// Whether `chunk` may be started now: the upload is not in demand, the file is not
    /// complete, or no chunk was sent fewer times.
    fn least_sent_chunk(&mut self, now: Instant, file: &LocalFile, chunk: u32) -> bool {
        self.least_sent(now, file)
            .is_none_or(|shown| shown.get(chunk))
    }

    /// Whether `from` may queue pieces now (see [`slots::Slots::take`]).
    fn take_slot(&mut self, now: Instant, from: SocketAddr, chunk_bytes: u32) -> bool {
        let bytes_per_s = self.rate.bytes_per_s();
        let queues = &self.queues;
        self.slots
            .take(now, from, chunk_bytes, bytes_per_s, |peer| {
                queues.iter().any(|q| q.to == peer)
            })
    }

    /// Writes the next piece datagram into `buf`, if a task is waiting and the budget allows;
    /// with it, the file and the payload bytes it carries (for the per-file upload count).
    pub fn poll_piece(
        &mut self,
        stats: &mut NodeStats,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<(Transmit, Hash, u32)> {
        loop {
            // The first peer in round-robin order whose pace allows its next piece.
            let ready = self.queues.iter().position(|q| q.ready(now))?;
            self.queues.rotate_left(ready);
            let task = self.queues.front()?.tasks.front()?;
            let len = task.piece_bytes.min(task.end - task.offset);
            if let Some(budget) = &mut self.budget
                && !budget.try_spend(now, u64::from(len))
            {
                return None;
            }
            let mut queue = self.queues.pop_front()?;
            let datagram_bytes = u64::from(len) + queue.overhead_bytes(len) as u64;
            // `ready` said the pace allows it.
            let queued_bytes = queue.queued_bytes();
            let _paced = queue.pacer.try_take(now, datagram_bytes, queued_bytes);
            // Wraps every 71 minutes; the receiver only compares nearby stamps.
            let sent_us = queue
                .stamped(len)
                .then(|| now.saturating_duration_since(self.epoch_start).as_micros() as u32);
            let to = queue.to;
            let task = queue.tasks.front_mut()?;
            let read_ahead = &mut self.read_ahead;
            // Blocks taken from each other in turn would be read many times over.
            if self.queues.len() >= read_ahead::READ_AHEAD_PEERS_MAX {
                read_ahead.clear();
            }
            let written = write_piece(task, len, sent_us, buf, |task, file_offset, data| {
                let range_end = task.chunk_file_offset + u64::from(task.end);
                read_ahead.read(now, to, &task.mapping, file_offset, range_end, data)
            });
            task.offset += len;
            let (node_id, info_hash) = (task.node_id, task.info_hash);
            if task.offset >= task.end {
                queue.tasks.pop_front();
                self.task_count -= 1;
            }
            if !queue.tasks.is_empty() {
                // Round-robin: this peer's next piece waits behind the other peers'.
                self.queues.push_back(queue);
            } else {
                self.slots.sent_last(to, now);
                if self.queues.is_empty() {
                    self.read_ahead.clear();
                }
            }
            let Some(total) = written else {
                // The file is shorter than its manifest says: changed under us. Stop serving
                // it; the node withdraws it (see `take_damaged`).
                self.forget_file(info_hash);
                if self.damaged.len() < DAMAGED_MAX && !self.damaged.contains(&info_hash) {
                    self.damaged.push(info_hash);
                }
                continue;
            };
            stats.pieces_sent += 1;
            stats.bytes_sent += u64::from(len);
            self.rate
                .on_sent(now, u64::from(len), !self.queues.is_empty());
            if self.sent_bytes.len() < PEERS_COUNTED_MAX || self.sent_bytes.contains_key(&node_id) {
                *self.sent_bytes.entry(node_id).or_default() += u64::from(len);
            }
            return Some((
                Transmit {
                    to,
                    len: total,
                    source_as_for: None,
                },
                info_hash,
                len,
            ));
        }
    }

    /// Drops every queued range of `info_hash` and what was computed for it: the node no
    /// longer holds that version of the file.
    pub fn forget_file(&mut self, info_hash: Hash) {
        for queue in self.queues.iter_mut() {
            queue.tasks.retain(|t| t.info_hash != info_hash);
        }
        self.queues.retain(|q| !q.tasks.is_empty());
        self.task_count = self.queues.iter().map(|q| q.tasks.len()).sum();
        self.read_ahead.clear();
        self.spread.forget_shown(info_hash);
    }

    /// Files that turned out shorter than their manifests since the last call.
    pub fn take_damaged(&mut self) -> Vec<Hash> {
        std::mem::take(&mut self.damaged)
    }

    pub fn has_piece(&self, now: Instant) -> bool {
        let Some(queue) = self.queues.iter().find(|q| q.ready(now)) else {
            return false;
        };
        let Some(task) = queue.tasks.front() else {
            return false;
        };
        match &self.budget {
            None => true,
            Some(budget) => {
                budget.ready_at(u64::from(task.piece_bytes.min(task.end - task.offset))) <= now
            }
        }
    }

    /// When the budget, or the pace of a peer, allows the next piece, if pieces wait on it.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let paced = self
            .queues
            .iter()
            .filter_map(|q| q.pacer.ready_at(q.next_datagram_bytes()?, q.queued_bytes()))
            .min();
        let task = self.queues.front()?.tasks.front()?;
        let budget = self.budget.as_ref().and_then(|budget| {
            budget.waiting_until(u64::from(task.piece_bytes.min(task.end - task.offset)))
        });
        paced.into_iter().chain(budget).max()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(budget) = &mut self.budget {
            budget.refill(now);
        }
        for queue in self.queues.iter_mut() {
            if let Some(bytes) = queue.next_datagram_bytes() {
                let queued_bytes = queue.queued_bytes();
                queue.pacer.refill(now, bytes, queued_bytes);
            }
        }
    }

    /// The node's upload limit, bytes a second (`None`: unlimited).
    pub fn upload_limit(&self) -> Option<u64> {
        self.budget.as_ref().map(RateLimit::bytes_per_s)
    }

    /// Spends `bytes` of the upload limit on bytes sent by another path (the peer wire):
    /// false when the limit does not allow them now.
    pub fn try_spend_upload(&mut self, now: Instant, bytes: u64) -> bool {
        self.budget
            .as_mut()
            .is_none_or(|budget| budget.try_spend(now, bytes))
    }

    /// When the upload limit allows `bytes` again, if they must wait.
    pub fn upload_ready_at(&self, bytes: u64) -> Option<Instant> {
        self.budget.as_ref()?.waiting_until(bytes)
    }

    /// The node's upload limit from now on (`None`: unlimited), with a full bucket.
    pub fn set_upload_limit(&mut self, bytes_per_s: Option<u64>, now: Instant) {
        self.budget = bytes_per_s.map(|bytes_per_s| RateLimit::new(bytes_per_s, now));
    }

    /// The uploader's bounded queues and tables, each with its `*_MAX` limit (for the
    /// simulation's checkers).
    pub fn queue_lens(&self) -> [QueueLen; 5] {
        [
            ("node upload tasks", self.task_count, UPLOAD_TASKS_MAX),
            ("node upload slots", self.slots.len(), UPLOAD_SLOTS_MAX),
            (
                "node upload peers counted",
                self.sent_bytes.len(),
                PEERS_COUNTED_MAX,
            ),
            (
                "node peers told of new chunks",
                self.interested.len(),
                INTERESTED_MAX,
            ),
            ("node peers served lately", self.served.len(), SERVED_MAX),
        ]
    }

    /// "sent to node 3: 1048576 bytes, ..." for `status`.
    /// The peers sent pieces to, by node id, and how many bytes each.
    pub fn upload_peers(&self) -> Vec<crate::control::UploadPeer> {
        let mut peers: Vec<crate::control::UploadPeer> = self
            .sent_bytes
            .iter()
            .map(|(&node_id, &bytes_sent)| crate::control::UploadPeer {
                node_id,
                bytes_sent,
            })
            .collect();
        peers.sort_by_key(|peer| peer.node_id);
        peers
    }

    pub fn peer_summary(&self) -> String {
        let mut peers: Vec<(&u32, &u64)> = self.sent_bytes.iter().collect();
        peers.sort();
        let parts: Vec<String> = peers
            .iter()
            .map(|(node, bytes)| format!("node {node}: {bytes} bytes"))
            .collect();
        if parts.is_empty() {
            "sent to nobody yet".to_string()
        } else {
            format!("sent to {}", parts.join(", "))
        }
    }
}

/// Encodes one piece of `task` (`len` data bytes) into `buf`; its length, or `None` when the
/// range is outside the file (or the file shrank under us).
/// With `sent_us`, a [`wire::StampedPiece`].
/// Writes the piece datagram for `len` bytes at `task`'s offset into `buf`; `read` fills the
/// data from the file (file offset, bytes), `false` when the file is shorter than that.
fn write_piece(
    task: &UploadTask,
    len: u32,
    sent_us: Option<u32>,
    buf: &mut [u8],
    read: impl FnOnce(&UploadTask, u64, &mut [u8]) -> bool,
) -> Option<usize> {
    let piece = wire::Piece {
        info_hash: task.info_hash,
        chunk: U32::new(task.chunk),
        offset: U32::new(task.offset),
    };
    let mut writer = match sent_us {
        None => {
            let mut writer = wire::Writer::new(buf, Kind::Piece).ok()?;
            writer.put_pod(&piece).ok()?;
            writer
        }
        Some(sent_us) => {
            let mut writer = wire::Writer::new(buf, Kind::StampedPiece).ok()?;
            let fixed = wire::StampedPiece {
                piece,
                sent_us: U32::new(sent_us),
            };
            writer.put_pod(&fixed).ok()?;
            writer
        }
    };
    let data = writer.tail_mut(len as usize).ok()?;
    read(task, task.chunk_file_offset + u64::from(task.offset), data).then_some(())?;
    Some(writer.finish())
}

/// Sends the have-`bitmap` of `manifest`'s file to `to`, in as many [`wire::HaveMap`] parts
/// as datagrams of `datagram_bytes_max` need (one, unless the file has thousands of chunks
/// and the path is not loopback).
fn send_have_map(
    out: &mut Outbox,
    to: SocketAddr,
    datagram_bytes_max: usize,
    node_id: u32,
    manifest: &crate::storage::Manifest,
    bitmap: &[u8],
) {
    let part_bytes = datagram_bytes_max
        .saturating_sub(wire::HAVE_MAP_OVERHEAD_BYTES)
        .max(1);
    let mut first_byte = 0;
    loop {
        let part = &bitmap[first_byte..(first_byte + part_bytes).min(bitmap.len())];
        let fixed = wire::HaveMap {
            info_hash: manifest.info_hash,
            node_id: U32::new(node_id),
            chunk_count: U32::new(manifest.chunk_count()),
            first_chunk: U32::new(first_byte as u32 * 8),
        };
        out.send(
            to,
            &Message::HaveMap {
                fixed: &fixed,
                bitmap: part,
            },
        );
        first_byte += part.len();
        if first_byte >= bitmap.len() {
            break;
        }
    }
}

#[cfg(test)]
mod tests;
