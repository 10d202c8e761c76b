//! The peers a download uses: recruiting holders from the candidates, asking them for
//! have-maps, manifest parts and pieces, watching their deadlines, and letting go of the
//! ones that fail or do not help (a dropped peer's chunks go back to the pool for the
//! others). Also the candidates themselves and the look-up schedule ([`Lookups`]), since
//! finding peers is what look-ups are for.
//!
//! [`Peers`] owns the list; a peer is never removed from it, only marked dropped, so its
//! index names it for good (the transfer's account is kept by these indices). Operations
//! that touch the download's other state take it explicitly ([`Of`]): its name, its info
//! hash, and its phase, whose transfer keeps the account of chunks and pieces in flight.

use super::asked::Of;
use super::diagnosis;
use super::lookup::{Lookups, SWARM_REFRESH, SWARM_REFRESH_SHORT};
use super::manifest::{Ask, Part};
use super::peer::{ASK_RETRY, BAD_CHUNKS_MAX, BLACK_HOLE_LOSSES, PEER_SILENCE, PING_AFTER, Peer};
use super::phase::Phase;
use super::transfer::{REQUEST_PIECES_MAX, Transfer};
use super::{HAVE_REFRESH, PARTIAL_PEERS_MAX, PEERS_PER_DOWNLOAD_MAX, UNHELPFUL_DROPS_MAX};
use crate::node::{DropCause, Event, Parts};
use crate::storage::{Bitmap, Manifest};
use crate::wire::{self, Hash, Message, PeerAsk, RejectReason, U32, U64};
use std::net::SocketAddr;
use std::ops::{Deref, Index, IndexMut};
use std::time::Instant;

pub(super) struct Peers {
    /// Every peer used so far, by index; at most [`PEERS_PER_DOWNLOAD_MAX`].
    list: Vec<Peer>,
    /// Whom we may recruit, and when the tracker is asked again.
    pub lookups: Lookups,
    /// While transferring: when to refresh partial holders' have-maps and the holder list.
    refresh_due: Option<Instant>,
    /// While transferring: when to ask partial holders for their have-maps again.
    have_refresh_due: Option<Instant>,
}

/// The peers, read as a slice; none is added but by [`Peers::recruit`], and none removed
/// or moved (so no mutable slice is handed out: one could swap two peers' indices).
impl Deref for Peers {
    type Target = [Peer];
    fn deref(&self) -> &[Peer] {
        &self.list
    }
}

impl Index<usize> for Peers {
    type Output = Peer;
    fn index(&self, index: usize) -> &Peer {
        &self.list[index]
    }
}

/// One peer changed in place.
impl IndexMut<usize> for Peers {
    fn index_mut(&mut self, index: usize) -> &mut Peer {
        &mut self.list[index]
    }
}

impl Peers {
    pub fn new(now: Instant) -> Peers {
        Peers {
            list: Vec::new(),
            lookups: Lookups::new(now),
            refresh_due: None,
            have_refresh_due: None,
        }
    }

    /// Every peer, each changed in place.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Peer> {
        self.list.iter_mut()
    }

    /// The peers, and the candidates and schedule beside them.
    pub fn with_lookups(&mut self) -> (&[Peer], &mut Lookups) {
        (&self.list, &mut self.lookups)
    }

    /// While a transfer runs: the swarm's refreshes that are due (the holder list, the
    /// have-maps).
    pub fn refresh(&mut self, parts: &mut Parts<'_>, now: Instant, of: &mut Of<'_>) {
        if self.refresh_due.is_none_or(|t| t <= now) {
            self.refresh_swarm(parts, now, of);
        }
        if self.have_refresh_due.is_none_or(|t| t <= now) {
            self.refresh_have_maps(parts, now, of);
        }
    }

    /// Peer `index` refused a request for `chunk`, for `reason`.
    pub fn rejected(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
        chunk: u32,
        reason: RejectReason,
    ) {
        let release = |phase: &mut Phase| {
            if let Phase::Transfer(transfer) = phase {
                transfer.release_chunk(index, chunk);
            }
        };
        match reason {
            // "Get it from another peer": as if it did not hold it, until its next have-map.
            RejectReason::MissingChunk | RejectReason::Elsewhere => {
                let had = self.list[index].have.as_mut().is_some_and(|have| {
                    let had = have.get(chunk);
                    have.clear(chunk);
                    had
                });
                // Counted out of the availability too: the next have-map counts it in again
                // if it shows the chunk (counting only that inflated the count by one for
                // every refusal, and rarest-first took chunks the holder kept refusing for
                // common ones).
                if had && let Phase::Transfer(transfer) = &mut *of.phase {
                    transfer.forget_holder_of(chunk);
                }
                release(&mut *of.phase);
                // A spreading holder's least-sent chunks moved on: what it showed is stale
                // as a whole, and one have-map costs it less than a refusal for every chunk
                // it no longer shows.
                let peer = &self.list[index];
                if reason == RejectReason::Elsewhere
                    && peer.complete
                    && now.saturating_duration_since(peer.last_asked) >= HAVE_REFRESH
                    && let Some(info_hash) = of.info_hash
                {
                    self.ask_have(parts, now, index, info_hash);
                }
            }
            RejectReason::Busy => {
                release(&mut *of.phase);
                let replaceable = self.lookups.recruitable_partial(&self.list, now) > 0;
                if self.list[index].on_busy(now) && replaceable {
                    log::info!(
                        "node {} stays busy; trying another peer",
                        self.list[index].node_id
                    );
                    self.drop_peer(parts, now, of, index);
                }
            }
            RejectReason::UnknownFile | RejectReason::BadRange => {
                log::info!(
                    "node {} refused {}: {reason:?}; dropping it",
                    self.list[index].node_id,
                    of.name
                );
                self.drop_peer(parts, now, of, index);
            }
        }
    }

    // ---- requests -----------------------------------------------------------------------

    pub fn send_requests(&mut self, parts: &mut Parts<'_>, now: Instant, of: &mut Of<'_>) {
        self.probe_paths(parts, now, of.info_hash);
        let Phase::Transfer(transfer) = &mut *of.phase else {
            return;
        };
        let info_hash = transfer.manifest().info_hash;
        for index in 0..self.list.len() {
            let peer = &self.list[index];
            if peer.dropped || peer.cookie == 0 || peer.have.is_none() || peer.busy(now) {
                continue;
            }
            // Ask in runs of a quarter window (at most REQUEST_PIECES_MAX pieces), not a
            // piece at a time as each arrives: half the datagrams, the same pipeline.
            let batch = (peer.request_window() / 4).clamp(1, REQUEST_PIECES_MAX);
            // Asked nothing and holding no chunk: its wait for pieces starts afresh.
            let mut idle = transfer.in_flight(index) == 0 && transfer.chunks_of(index).is_empty();
            loop {
                let in_flight = transfer.in_flight(index);
                // The window may have shrunk below what is in flight.
                let room = self.list[index].request_window().saturating_sub(in_flight);
                if room == 0 || (room < batch && in_flight > 0) {
                    break;
                }
                // The node's download limit allows what its bucket holds, at most.
                let room = match parts.download_limit.as_deref_mut() {
                    Some(limit) => {
                        let piece_bytes = self.list[index].piece_bytes(parts.config.piece_bytes);
                        limit.pieces_allowed(now, piece_bytes, room)
                    }
                    None => room,
                };
                if room == 0 {
                    return;
                }
                let Some(asked) = transfer.request(&self.list, index, room, now) else {
                    break;
                };
                if let Some(limit) = parts.download_limit.as_deref_mut() {
                    limit.spend(u64::from(asked.length));
                }
                let peer = &mut self.list[index];
                let request = wire::PieceRequest {
                    ask: PeerAsk {
                        cookie: U64::new(peer.cookie),
                        node_id: U32::new(parts.config.node_id),
                        info_hash,
                    },
                    chunk: U32::new(asked.chunk),
                    offset: U32::new(asked.offset),
                    length: U32::new(asked.length),
                    piece_bytes: U32::new(asked.piece_bytes),
                };
                if peer.paced {
                    let paced = wire::PacedPieceRequest {
                        request,
                        pace_kib_per_s: U32::new(
                            u32::try_from(peer.congestion.pace() / 1024)
                                .unwrap_or(u32::MAX)
                                .max(1),
                        ),
                    };
                    parts
                        .out
                        .send(peer.addr, &Message::PacedPieceRequest(&paced));
                } else {
                    parts.out.send(peer.addr, &Message::PieceRequest(&request));
                }
                peer.evidence.on_request(now, std::mem::take(&mut idle));
            }
        }
    }

    /// Path MTU probes that are due (see [`crate::mtu`]): to peers that handed us a cookie.
    pub fn probe_paths(&mut self, parts: &mut Parts<'_>, now: Instant, info_hash: Option<Hash>) {
        let Some(info_hash) = info_hash else {
            return;
        };
        for peer in self.list.iter_mut() {
            if let Some(probe_bytes) = peer.poll_probe(now) {
                let probe = wire::MtuProbe {
                    ask: PeerAsk {
                        cookie: U64::new(peer.cookie),
                        node_id: U32::new(parts.config.node_id),
                        info_hash,
                    },
                    probe_bytes: U32::new(probe_bytes),
                };
                parts.out.send(peer.addr, &Message::MtuProbe(&probe));
            }
        }
    }

    pub fn ask(&self, parts: &Parts<'_>, index: usize, info_hash: Hash) -> PeerAsk {
        PeerAsk {
            cookie: U64::new(self.list[index].cookie),
            node_id: U32::new(parts.config.node_id),
            info_hash,
        }
    }

    pub fn ask_have(&mut self, parts: &mut Parts<'_>, now: Instant, index: usize, info_hash: Hash) {
        let ask = self.ask(parts, index, info_hash);
        parts
            .out
            .send(self.list[index].addr, &Message::HaveRequest(&ask));
        self.list[index].last_asked = now;
    }

    pub fn ask_manifest(&mut self, parts: &mut Parts<'_>, now: Instant, phase: &mut Phase) {
        let Phase::Manifest(fetch) = phase else {
            return;
        };
        let Some((source, info_hash, ask)) = fetch.request(now) else {
            return;
        };
        let addr = self.list[source].addr;
        let ask_of = self.ask(parts, source, info_hash);
        match ask {
            Ask::Hashes(first_chunk) => {
                let request = wire::ManifestRequest {
                    ask: ask_of,
                    first_chunk: U32::new(first_chunk),
                };
                parts.out.send(addr, &Message::ManifestRequest(&request));
            }
            Ask::Info(offset) => {
                let request = wire::InfoRequest {
                    ask: ask_of,
                    offset: U32::new(offset),
                };
                parts.out.send(addr, &Message::InfoRequest(&request));
            }
        }
    }

    // ---- peers --------------------------------------------------------------------------

    /// Brings peers up to `peers_max` complete holders and [`PARTIAL_PEERS_MAX`] partial
    /// ones, from the candidates.
    pub fn recruit(&mut self, parts: &mut Parts<'_>, now: Instant, of: &mut Of<'_>) {
        let info_hash = match of.info_hash {
            Some(info_hash) if !of.phase.finished() => info_hash,
            _ => return,
        };
        for (node_id, addr, complete) in self.lookups.candidates().to_vec() {
            let active = |complete: bool| {
                self.list
                    .iter()
                    .filter(|p| !p.dropped && p.complete == complete)
                    .count()
            };
            let limit = if complete {
                parts.config.peers_max
            } else {
                PARTIAL_PEERS_MAX
            };
            if active(complete) >= limit {
                continue;
            }
            let pace = parts.config.pace;
            let index = match self.list.iter().position(|p| p.node_id == node_id) {
                Some(index) if self.list[index].may_return(addr, now) => {
                    let route_mtu = parts.config.routes.mtu(addr);
                    self.list[index].rejoin(addr, complete, route_mtu, pace, now);
                    index
                }
                Some(_) => continue,
                None if self.list.len() < PEERS_PER_DOWNLOAD_MAX => {
                    let route_mtu = parts.config.routes.mtu(addr);
                    self.list
                        .push(Peer::new(node_id, addr, complete, route_mtu, pace, now));
                    self.list.len() - 1
                }
                None => break,
            };
            log::info!("{}: using node {node_id} at {addr}", of.name);
            self.ask_have(parts, now, index, info_hash);
        }
        if let Phase::Manifest(fetch) = &mut *of.phase
            && fetch.choose_source(&self.list)
        {
            self.ask_manifest(parts, now, of.phase);
        }
    }

    pub fn drop_peer(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
    ) {
        if self.list[index].dropped {
            return;
        }
        log::info!(
            "{}: dropping node {} ({})",
            of.name,
            self.list[index].node_id,
            self.list[index].addr
        );
        let peer = &mut self.list[index];
        peer.dropped = true;
        // Its chunks go back to the pool for the others.
        if let Phase::Transfer(transfer) = &mut *of.phase {
            transfer.release_peer(index);
            transfer.replace_have(peer.have.take().as_ref(), None);
        }
        for other in self.list.iter_mut().filter(|p| !p.dropped) {
            other.others_left(now);
        }
        self.recruit(parts, now, of);
    }

    /// Drops up to [`UNHELPFUL_DROPS_MAX`] partial holders that hold no chunk this download
    /// still needs and are asked for nothing, for as many partial holders of the last
    /// look-up that can be taken instead (see [`Lookups::recruitable_partial`]). Late in a
    /// swarm, a downloader whose peers all lack its last chunks would otherwise wait for
    /// them to get those first.
    pub fn drop_unhelpful(&mut self, parts: &mut Parts<'_>, now: Instant, of: &mut Of<'_>) {
        let Phase::Transfer(transfer) = &*of.phase else {
            return;
        };
        let spare = self.lookups.recruitable_partial(&self.list, now);
        let unhelpful: Vec<usize> = (0..self.list.len())
            .filter(|&index| {
                let peer = &self.list[index];
                !peer.dropped
                    && !peer.complete
                    && transfer.chunks_of(index).is_empty()
                    && transfer.in_flight(index) == 0
                    && peer
                        .have
                        .as_ref()
                        .is_some_and(|have| !transfer.holds_needed(have))
            })
            .take(spare.min(UNHELPFUL_DROPS_MAX))
            .collect();
        for index in unhelpful {
            log::debug!(
                "{}: node {} holds nothing we need; trying another",
                of.name,
                self.list[index].node_id
            );
            self.drop_peer(parts, now, of, index);
        }
    }

    /// Peers this download uses that sent us chunks that verified, with whether each holds
    /// the whole file: what the node tells other askers ([`wire::Peers`]). Only those: a
    /// peer that merely answered may be one of the slow ones, and listing every peer sent
    /// the simulated swarm's downloaders to slow uploaders (0.15 T* more with a quarter of
    /// them 10x slower).
    pub fn useful(&self) -> impl Iterator<Item = (u32, SocketAddr, bool)> + '_ {
        self.list
            .iter()
            .filter(|p| !p.dropped && p.chunks_verified > 0)
            .map(|p| (p.node_id, p.addr, p.has_all()))
    }

    /// Partial holders in use.
    pub fn partial_peers(&self) -> usize {
        self.list
            .iter()
            .filter(|p| !p.dropped && !p.complete)
            .count()
    }

    /// Peer `index`'s deadlines: dropped when it went silent while we wait on it, or when
    /// its pieces stopped arriving; asked again for its have-map; pinged.
    pub fn check_peer(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
    ) {
        if self.list[index].busy_until.is_some_and(|t| t <= now) {
            // Its refusal is over: the node fills windows after this.
            self.list[index].busy_until = None;
        }
        let in_flight = of.phase.in_flight(index) > 0;
        let has_work = match &*of.phase {
            Phase::Transfer(transfer) => in_flight || !transfer.chunks_of(index).is_empty(),
            _ => false,
        };
        self.list[index].evidence.note_in_flight(now, has_work);
        let peer = &self.list[index];
        let last_heard = peer.last_heard;
        let silence = now.saturating_duration_since(last_heard);
        let waiting = peer.waiting(of.phase.in_flight(index));
        let ping_wanted = waiting && peer.have.is_some();
        // Pieces in flight for PEER_SILENCE, none arriving and many timing out: whether
        // the peer is silent or only its pieces are lost, they are not coming.
        let pieces_stopped = in_flight
            && peer.pieces_lost_in_a_row >= BLACK_HOLE_LOSSES
            && peer.evidence.pieces_awaited_for(now) >= PEER_SILENCE;
        if waiting && silence >= PEER_SILENCE {
            // True: it was pinged (or asked for its have-map) meanwhile, and said nothing.
            parts.out.report(Event::PeerDropped {
                download: of.name.to_string(),
                peer: peer.node_id,
                addr: peer.addr,
                cause: DropCause::Silent,
                reason: format!(
                    "stopped answering (nothing from it for {:.1} s)",
                    silence.as_secs_f64()
                ),
            });
            self.list[index].evidence.on_silent();
            self.drop_peer(parts, now, of, index);
        } else if pieces_stopped {
            // It answers (something came within PEER_SILENCE): only its pieces are lost.
            let (lost, asked) = peer.evidence.loss();
            let reason = diagnosis::Reason::PiecesLost {
                node_id: peer.node_id,
                lost,
                of: asked,
            };
            parts.out.report(Event::PeerDropped {
                download: of.name.to_string(),
                peer: peer.node_id,
                addr: peer.addr,
                cause: DropCause::PiecesLost,
                reason: reason.to_string(),
            });
            self.drop_peer(parts, now, of, index);
        } else if !peer.dropped
            && peer.have.is_none()
            && now.saturating_duration_since(peer.last_asked) >= ASK_RETRY
            && let Some(info_hash) = of.info_hash
        {
            self.ask_have(parts, now, index, info_hash);
        } else if ping_wanted
            && let Some(info_hash) = of.info_hash
            && self.list[index]
                .evidence
                .ping_due(now, last_heard, PING_AFTER, ASK_RETRY)
        {
            // Silent while we wait on its pieces: a ping (the smallest MTU probe, which
            // it echoes) tells a peer that is gone from one whose pieces are lost.
            let probe = wire::MtuProbe {
                ask: self.ask(parts, index, info_hash),
                probe_bytes: U32::new(wire::MTU_PROBE_BYTES_MIN as u32),
            };
            parts
                .out
                .send(self.list[index].addr, &Message::MtuProbe(&probe));
        }
    }

    /// Swarming: new downloaders appear, and the tracker knows them. Partial holders that do
    /// not help are let go, and when no peer in use holds anything we still need, the
    /// tracker is asked soon.
    pub fn refresh_swarm(&mut self, parts: &mut Parts<'_>, now: Instant, of: &mut Of<'_>) {
        self.drop_unhelpful(parts, now, of);
        let interval = if self.partial_peers() < PARTIAL_PEERS_MAX {
            SWARM_REFRESH_SHORT
        } else {
            SWARM_REFRESH
        };
        self.refresh_due = Some(now + interval);
        // Every peer we use holds nothing we still need (late in a swarm, or the peers
        // we had left): the swarm changed, and the tracker may know better holders.
        // (With no peer at all, the backoff of `LOOKUP_RETRY` applies instead.)
        let stuck = match &*of.phase {
            Phase::Transfer(transfer) => {
                self.list.iter().any(|p| !p.dropped)
                    && !self.list.iter().enumerate().any(|(index, p)| {
                        !p.dropped
                            && (transfer.in_flight(index) > 0
                                || p.have
                                    .as_ref()
                                    .is_none_or(|have| transfer.holds_needed(have)))
                    })
            }
            _ => false,
        };
        if stuck {
            self.lookups.hurry(now, interval);
        }
    }

    /// Partial holders gain chunks all the time: what they verified is worth having within
    /// a fraction of a second, not after a chunk's worth of waiting. A complete holder that
    /// shows only part of its chunks (spreading them) is asked again only once what it
    /// showed is of no more use (nothing in it we could ask for now: chunks other peers are
    /// sending us do not count, or a downloader waiting on a slow peer's chunk never learns
    /// of a chunk only the holder has): its have-map changes when its least-sent chunks do,
    /// not with every chunk verified, and 200 downloaders asking every HAVE_REFRESH took
    /// some 4% of its upload (its refusals, as "elsewhere", clear what it no longer shows).
    pub fn refresh_have_maps(&mut self, parts: &mut Parts<'_>, now: Instant, of: &mut Of<'_>) {
        let stale: Vec<usize> = match &*of.phase {
            Phase::Transfer(transfer) => (0..self.list.len())
                .filter(|&index| {
                    let peer = &self.list[index];
                    !peer.dropped
                        && !peer.has_all()
                        && peer
                            .have
                            .as_ref()
                            .is_some_and(|have| !peer.complete || !transfer.offers_unclaimed(have))
                })
                .collect(),
            _ => Vec::new(),
        };
        self.have_refresh_due = Some(now + HAVE_REFRESH);
        if let Some(info_hash) = of.info_hash {
            for index in stale {
                self.ask_have(parts, now, index, info_hash);
            }
        }
    }
    /// Peer `index` lost [`BLACK_HOLE_LOSSES`] pieces in a row at a size above the safe one:
    /// the path stopped carrying that size (a route changed, or a link on it drops large
    /// packets without a word). Its chunks go back, and it is asked in safe-sized pieces.
    pub fn narrow_path(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
    ) {
        let peer = &mut self.list[index];
        let old_bytes = peer.path.datagram_bytes();
        if !peer.path.on_black_hole(now) {
            return;
        }
        peer.pieces_lost_in_a_row = 0;
        peer.first_loss_in_a_row = None;
        peer.evidence
            .on_narrowed(old_bytes, peer.path.datagram_bytes());
        // The user is told once a smaller piece arrives (`Transfer::receive`): only then is it
        // known that small datagrams cross where large ones stopped, and not that nothing
        // does.
        log::info!(
            "{}: pieces of {} bytes from node {} stopped arriving; asking for {}-byte pieces",
            of.name,
            old_bytes as usize - wire::PIECE_OVERHEAD_BYTES,
            peer.node_id,
            peer.piece_bytes(parts.config.piece_bytes),
        );
        if let Phase::Transfer(transfer) = &mut *of.phase {
            transfer.release_peer(index);
        }
    }

    /// Peer `index` handed us `cookie`. Every request sent without the cookie brings a
    /// welcome; the first with a new cookie is enough to ask again (a manifest part asked
    /// twice costs the holder's upload 1.4 KB more per downloader, when 200 start at once).
    pub fn welcome(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
        cookie: u64,
    ) {
        let fresh = self.list[index].cookie != cookie;
        self.list[index].cookie = cookie;
        self.list[index].last_heard = now;
        // Whatever we asked was refused for want of a cookie: ask again with it.
        if fresh
            && self.list[index].have.is_none()
            && let Some(info_hash) = of.info_hash
        {
            self.ask_have(parts, now, index, info_hash);
        }
        if let Phase::Manifest(fetch) = &*of.phase
            && fetch.source() == Some(index)
            && fresh
        {
            self.ask_manifest(parts, now, of.phase);
        }
        // What was asked of it will be asked again.
        if let Phase::Transfer(transfer) = &mut *of.phase {
            transfer.forget_requests(index);
        }
    }

    /// A part of peer `index`'s have-map. A long map comes in parts: each one updates the
    /// map we have of that length. While a transfer runs, the map counts in the chunks'
    /// availability, and one of the wrong length drops the peer.
    pub fn have_map(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
        fixed: &wire::HaveMap,
        bitmap: &[u8],
    ) {
        let peer = &mut self.list[index];
        peer.last_heard = now;
        let count = fixed.chunk_count.get();
        let have = match &peer.have {
            Some(old) if old.len() == count => Some(old.clone()),
            _ => Some(Bitmap::new(count)),
        }
        .map(|map| map.with_part(fixed.first_chunk.get(), bitmap));
        if let Phase::Transfer(transfer) = &mut *of.phase {
            if have
                .as_ref()
                .is_none_or(|have| have.len() != transfer.manifest().chunk_count())
            {
                log::warn!(
                    "node {} sent a have-map of the wrong length; dropping it",
                    peer.node_id
                );
                self.drop_peer(parts, now, of, index);
                return;
            }
            transfer.replace_have(peer.have.as_ref(), have.as_ref());
        }
        peer.have = have;
    }

    /// Peer `index` echoed a path MTU probe of `probe_bytes` (see [`crate::mtu`]).
    pub fn probe_reply(
        &mut self,
        parts: &Parts<'_>,
        now: Instant,
        name: &str,
        index: usize,
        probe_bytes: u32,
    ) {
        let peer = &mut self.list[index];
        peer.last_heard = now;
        let before = peer.path.datagram_bytes();
        peer.path.on_probe_reply(probe_bytes, now);
        if peer.path.datagram_bytes() > before {
            log::info!(
                "{name}: the path from node {} carries {}-byte datagrams: pieces of {} bytes",
                peer.node_id,
                peer.path.datagram_bytes(),
                peer.piece_bytes(parts.config.piece_bytes)
            );
        }
    }

    /// Have-maps that arrived while the manifest was fetched count from now on, in the new
    /// `transfer`'s availability (those of another length are forgotten).
    pub fn count_have_maps(&mut self, transfer: &mut Transfer) {
        let count = transfer.manifest().chunk_count();
        for peer in self.list.iter_mut().filter(|p| !p.dropped) {
            if peer.have.as_ref().is_some_and(|have| have.len() != count) {
                peer.have = None;
            }
            transfer.replace_have(None, peer.have.as_ref());
        }
    }

    /// The earliest of the peers' deadlines (see [`Peer::poll_timeout`]), of the swarm's
    /// refreshes while a transfer runs, and of the next look-up while one is wanted.
    pub fn poll_timeout(&self, phase: &Phase) -> Option<Instant> {
        let peers = self
            .list
            .iter()
            .enumerate()
            .filter(|(_, peer)| !peer.dropped)
            .filter_map(|(index, peer)| peer.poll_timeout(phase.in_flight(index)));
        let refreshes = match phase {
            Phase::Transfer(transfer) => {
                let start = transfer.started_at();
                let partial = self.list.iter().any(|p| !p.dropped && !p.has_all());
                [
                    Some(self.refresh_due.unwrap_or(start)),
                    Some(self.lookups.due().unwrap_or(start)),
                    partial.then(|| self.have_refresh_due.unwrap_or(start)),
                ]
            }
            _ => [None; 3],
        };
        let lookup = self
            .lookups
            .due()
            .filter(|_| !self.list.iter().any(|p| !p.dropped));
        peers
            .chain(refreshes.into_iter().flatten())
            .chain(lookup)
            .min()
    }

    /// Node `from` sent a chunk that failed its hash check: after [`BAD_CHUNKS_MAX`] of
    /// them it is dropped.
    pub fn bad_chunk(&mut self, parts: &mut Parts<'_>, now: Instant, of: &mut Of<'_>, from: u32) {
        if let Some(index) = self.list.iter().position(|p| p.node_id == from) {
            self.list[index].bad_chunks += 1;
            if self.list[index].bad_chunks >= BAD_CHUNKS_MAX {
                log::warn!("node {from} sent {BAD_CHUNKS_MAX} bad chunks; dropping it");
                self.drop_peer(parts, now, of, index);
            }
        }
    }

    /// Pieces lost in flight are asked again (see [`Transfer::scan_timeouts`]), and peers
    /// whose large pieces stopped arriving are asked in smaller ones.
    pub fn scan_timeouts(&mut self, parts: &mut Parts<'_>, now: Instant, of: &mut Of<'_>) {
        let narrowed = match &mut *of.phase {
            Phase::Transfer(transfer) => {
                transfer.scan_timeouts(&mut self.list, now, &mut parts.out.stats)
            }
            _ => Vec::new(),
        };
        for index in narrowed {
            self.narrow_path(parts, now, of, index);
        }
    }

    /// A manifest part from peer `index` (see [`super::manifest::ManifestFetch::take_part`]):
    /// the next is asked for, or its sender dropped when it cannot help. Returns whether it
    /// moved the manifest forward, and the manifest once it is whole and hashes right.
    #[allow(clippy::too_many_arguments)]
    pub fn manifest_part(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
        fixed: &wire::ManifestPart,
        hashes: &[Hash],
        part_name: &str,
    ) -> (bool, Option<Manifest>) {
        let Phase::Manifest(fetch) = &mut *of.phase else {
            return (false, None);
        };
        let node_id = self.list[index].node_id;
        if !fetch.learn(of.by_hash, fixed, part_name, of.name) {
            log::debug!("manifest part from node {node_id} is no manifest we accept; ignored");
            return (false, None);
        }
        let part = fetch.take_part(fixed, hashes, part_name, of.name);
        self.manifest_progress(parts, now, of, index, part)
    }

    /// Bytes of a tree's info dictionary from peer `index`: as [`Peers::manifest_part`].
    pub fn info_part(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
        fixed: &wire::InfoPart,
        bytes: &[u8],
    ) -> (bool, Option<Manifest>) {
        let Phase::Manifest(fetch) = &mut *of.phase else {
            return (false, None);
        };
        if fetch.source() != Some(index) {
            return (false, None);
        }
        let part = fetch.take_info(fixed.info_bytes.get(), fixed.offset.get(), bytes, of.name);
        self.manifest_progress(parts, now, of, index, part)
    }

    /// What follows a part of the manifest from peer `index`.
    fn manifest_progress(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        of: &mut Of<'_>,
        index: usize,
        part: Part,
    ) -> (bool, Option<Manifest>) {
        let node_id = self.list[index].node_id;
        match part {
            Part::Ignored => {
                log::debug!("manifest part from node {node_id} does not fit; ignored");
                return (false, None);
            }
            Part::Waiting => {}
            Part::More => self.ask_manifest(parts, now, of.phase),
            // A part that moves nothing forward: this peer cannot help with the manifest.
            Part::Useless => self.drop_peer(parts, now, of, index),
            Part::Mismatch => {
                parts.out.stats.manifests_refused += 1;
                log::warn!(
                    "node {node_id} sent a manifest that does not match the info hash; dropping it"
                );
                self.drop_peer(parts, now, of, index);
                if let Phase::Manifest(fetch) = &mut *of.phase {
                    fetch.forget_source(of.by_hash, of.name);
                }
                self.recruit(parts, now, of);
            }
            Part::Complete(manifest) => return (true, Some(manifest)),
        }
        (true, None)
    }
}
