//! One download: look-up, manifest, then chunks pulled from several peers at once.
//!
//! The downloader drives everything (the holders only answer):
//!
//! 1. **Look-up.** The tracker lists the versions of the name and their holders. The pinned
//!    version, or the one most holders have, is chosen.
//! 2. **Manifest.** Chunk hashes are fetched part by part from one holder and accepted only
//!    when their info hash equals the one the tracker listed. A resumed download already has
//!    its manifest on disk.
//! 3. **Transfer.** Each peer (at most `peers_max` at once) reports its have-map, then is
//!    handed chunks one after another: faster peers finish theirs sooner and get more. Pieces
//!    are requested in runs, keeping at most `window` pieces in flight per peer; the window
//!    grows with every piece that arrives and halves when one times out. A timed-out piece is
//!    asked again; a peer silent for [`PEER_SILENCE`] is dropped and its chunks go to others.
//! 4. **Verification.** A chunk whose pieces are all in goes to a hasher thread; only when
//!    its SHA-1 matches does it count. A bad chunk is fetched again, from another peer when
//!    there is one, and a peer that sends [`BAD_CHUNKS_MAX`] bad chunks is dropped.
//! 5. **Publishing.** When every chunk verified, the partial file is synced and renamed.

mod by_hash;
mod pace;
mod transfer;

use super::{Job, LocalFile, Parts};
use crate::storage::{Bitmap, Manifest};
use crate::wire::{
    self, Hash, HolderRecord, Message, PeerAsk, RejectReason, U32, U64, VersionRecord,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use transfer::{
    ChunkState, Peer, REQUEST_PIECES_MAX, Transfer, WINDOW_MIN, WINDOW_START, next_request,
};

/// Most peers one download remembers (active or dropped).
pub const PEERS_PER_DOWNLOAD_MAX: usize = 64;
/// How often in-flight pieces are checked for timeouts while a transfer runs.
const SCAN_INTERVAL: Duration = Duration::from_millis(25);
/// A peer we are waiting on that says nothing for this long is dropped.
const PEER_SILENCE: Duration = Duration::from_secs(2);
/// A peer dropped this long after it was last heard from may be asked again.
const DROPPED_PEER_RETRY: Duration = Duration::from_secs(4);
/// How often an unanswered have-map or manifest request is repeated.
const ASK_RETRY: Duration = Duration::from_millis(300);
/// Unanswered manifest requests before another holder is asked.
const MANIFEST_ATTEMPTS_MAX: u32 = 4;
/// Bad chunks after which a peer is dropped.
const BAD_CHUNKS_MAX: u32 = 3;
/// Look-ups are repeated this often while no holder is usable.
const LOOKUP_RETRY: Duration = Duration::from_secs(1);
/// Most (chunk, peer) pairs remembered as "this peer sent a bad copy of this chunk".
const BAD_PAIRS_MAX: usize = 4096;
/// Peers holding only part of the file used at once, beside the `peers_max` complete
/// holders: in a swarm a downloader talks to as many peers as help.
const PARTIAL_PEERS_MAX: usize = 8;
/// While a transfer runs, the tracker is asked this often for new holders (downloaders that
/// have verified chunks); [`SWARM_REFRESH_SHORT`] while fewer than [`PARTIAL_PEERS_MAX`]
/// partial holders are in use, as at the start of a swarm, when new ones appear every moment.
const SWARM_REFRESH: Duration = Duration::from_secs(1);
const SWARM_REFRESH_SHORT: Duration = Duration::from_millis(250);
/// Partial holders that hold nothing this download still needs are dropped for others the
/// tracker listed, at most this many at each refresh.
const UNHELPFUL_DROPS_MAX: usize = 2;
/// How often partial holders are asked for their have-maps while a transfer runs.
const HAVE_REFRESH: Duration = Duration::from_millis(200);
/// How often a download waiting for disk space tries again.
const DISK_RETRY: Duration = Duration::from_secs(1);
/// A peer that refused a piece request for want of an upload slot is asked again after
/// this, doubled with every refusal in a row up to [`BUSY_RETRY_MAX`].
const BUSY_RETRY: Duration = Duration::from_millis(50);
const BUSY_RETRY_MAX: Duration = Duration::from_millis(800);
/// A partial holder that refused this many times in a row is dropped for another one, if
/// there is another.
const BUSY_STREAK_MAX: u32 = 4;

/// What became of a peer message offered to a download.
pub(crate) enum Handled {
    Consumed,
    /// The manifest checked and the partial file exists: the node may announce.
    ManifestReady(Hash),
}

struct ManifestFetch {
    version: VersionRecord,
    hashes: Vec<Hash>,
    source: Option<usize>,
    sent_at: Option<Instant>,
    attempts: u32,
}

impl ManifestFetch {
    /// How long the last request is given before it is repeated: [`ASK_RETRY`], doubled
    /// with every attempt. A holder that 200 downloaders ask at once answers them over
    /// several hundred milliseconds (a part is about 1.4 KB); repeating every request at a
    /// fixed pace would double its queue, and its upload would carry the manifest twice
    /// before the first piece.
    fn retry_after(&self) -> Duration {
        ASK_RETRY * 2u32.pow(self.attempts.saturating_sub(1).min(4))
    }
}

enum Phase {
    LookingUp,
    Manifest(ManifestFetch),
    Transfer(Transfer),
    /// The manifest checked, but the disk has no room for the partial file: tried again
    /// every [`DISK_RETRY`], never given up.
    WaitingForSpace(Manifest),
    Done,
    Failed,
}

pub(crate) struct Download {
    name: String,
    pin: Option<Hash>,
    info_hash: Option<Hash>,
    started: Instant,
    give_up_after: Duration,
    /// Fails at this moment unless some holder helps before.
    give_up_at: Instant,
    phase: Phase,
    /// Holders from the last look-up, best first: node id, address, holds every chunk.
    candidates: Vec<(u32, SocketAddr, bool)>,
    peers: Vec<Peer>,
    lookup_due: Option<Instant>,
    /// While transferring: when to refresh partial holders' have-maps and the holder list.
    refresh_due: Option<Instant>,
    /// While transferring: when to ask partial holders for their have-maps again.
    have_refresh_due: Option<Instant>,
    told_versions: bool,
    /// Found through a standard tracker: the name (unless given) and the shape (unless a
    /// `.torrent` gave it) come from the first manifest part. See [`Download::by_info_hash`].
    by_hash: Option<by_hash::ByHash>,
    /// While the disk is full: when to try again (to open the partial file, or to publish).
    disk_retry_at: Option<Instant>,
    /// Look-up replies taken so far: varies the order partial holders are tried in.
    lookups: u32,
}

impl Download {
    pub fn new(name: String, pin: Option<Hash>, now: Instant, give_up_after: Duration) -> Download {
        Download {
            name,
            pin,
            info_hash: pin,
            started: now,
            give_up_after,
            give_up_at: now + give_up_after,
            phase: Phase::LookingUp,
            candidates: Vec::new(),
            peers: Vec::new(),
            lookup_due: None,
            refresh_due: None,
            have_refresh_due: None,
            told_versions: false,
            by_hash: None,
            disk_retry_at: None,
            lookups: 0,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info_hash(&self) -> Option<Hash> {
        self.info_hash
    }

    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed)
    }

    pub fn failed(&self) -> bool {
        matches!(self.phase, Phase::Failed)
    }

    fn fail(&mut self, parts: &mut Parts<'_>, reason: String) {
        parts
            .out
            .say(format!("download {} failed: {reason}", self.name));
        self.phase = Phase::Failed;
    }

    // ---- look-up ------------------------------------------------------------------------

    pub fn handle_lookup(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        own_node_id: u32,
        versions: &[VersionRecord],
        holders: &[HolderRecord],
    ) {
        if self.finished() {
            return;
        }
        // Once a version is chosen (or pinned), later look-ups only refresh its holders.
        let chosen = match self.info_hash {
            Some(info_hash) => versions.iter().position(|v| v.info_hash == info_hash),
            None => (0..versions.len())
                .max_by_key(|&i| (versions[i].holder_count.get(), std::cmp::Reverse(i))),
        };
        let Some(chosen) = chosen else {
            log::info!("no holder of {} yet; asking again", self.name);
            self.lookup_due = Some(now + LOOKUP_RETRY);
            return;
        };
        let version = versions[chosen];
        if versions.len() > 1 && self.pin.is_none() && !self.told_versions {
            self.told_versions = true;
            parts.out.say(format!(
                "{} versions of {} are announced; taking {} ({} holders); pin another with {}@<info hash>",
                versions.len(),
                self.name,
                wire::hex(&version.info_hash),
                version.holder_count.get(),
                self.name
            ));
        }
        self.candidates = holders
            .iter()
            .filter(|h| usize::from(h.version) == chosen && h.node_id.get() != own_node_id)
            .map(|h| {
                let complete = h.chunks_held.get()
                    == wire::chunk_count(version.file_bytes.get(), version.chunk_bytes.get());
                (
                    h.node_id.get(),
                    wire::socket_addr(h.ip, h.port.get()),
                    complete,
                )
            })
            .collect();
        // Complete holders stay in the tracker's order (most credit first). Partial ones go
        // in an order of this downloader's own, new at every look-up: taken in the tracker's
        // order, every downloader would crowd the same few (the best by credit), and most
        // partial holders would upload nothing.
        self.lookups += 1;
        let salt = (u64::from(own_node_id) << 32) | u64::from(self.lookups);
        self.candidates.sort_by_key(|&(node_id, _, complete)| {
            let key = (salt ^ u64::from(node_id)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (!complete, if complete { 0 } else { key >> 16 })
        });
        if self.candidates.is_empty() {
            self.lookup_due = Some(now + LOOKUP_RETRY);
            return;
        }
        self.lookup_due = None;
        if let Phase::LookingUp = self.phase {
            self.info_hash = Some(version.info_hash);
            match parts.state.partial_manifest(&version.info_hash) {
                Some(manifest) => {
                    log::info!("resuming {} from its partial file", self.name);
                    self.start_transfer(parts, now, manifest);
                }
                None => {
                    self.phase = Phase::Manifest(ManifestFetch {
                        version,
                        hashes: Vec::new(),
                        source: None,
                        sent_at: None,
                        attempts: 0,
                    })
                }
            }
        }
        self.recruit(parts, now);
    }

    /// Brings peers up to `peers_max` complete holders and [`PARTIAL_PEERS_MAX`] partial
    /// ones, from the candidates.
    fn recruit(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let info_hash = match self.info_hash {
            Some(info_hash) if !self.finished() => info_hash,
            _ => return,
        };
        for (node_id, addr, complete) in self.candidates.clone() {
            let active = |complete: bool| {
                self.peers
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
            let index = match self.peers.iter().position(|p| p.node_id == node_id) {
                Some(index) if self.peers[index].may_return(addr, now) => {
                    let peer = &mut self.peers[index];
                    peer.addr = addr;
                    peer.dropped = false;
                    peer.have = None;
                    peer.cookie = 0;
                    peer.last_heard = now;
                    peer.window = WINDOW_START;
                    peer.complete = complete;
                    peer.busy_until = None;
                    peer.busy_streak = 0;
                    peer.pace = pace::Pace::default();
                    index
                }
                Some(_) => continue,
                None if self.peers.len() < PEERS_PER_DOWNLOAD_MAX => {
                    self.peers.push(Peer::new(node_id, addr, complete, now));
                    self.peers.len() - 1
                }
                None => break,
            };
            log::info!("{}: using node {node_id} at {addr}", self.name);
            self.ask_have(parts, now, index, info_hash);
        }
        if let Phase::Manifest(fetch) = &mut self.phase
            && fetch.source.is_none_or(|i| self.peers[i].dropped)
        {
            fetch.source = self.peers.iter().position(|p| !p.dropped);
            fetch.attempts = 0;
            fetch.sent_at = None;
            self.ask_manifest(parts, now);
        }
    }

    /// How many partial holders of the last look-up [`Download::recruit`] would take now if
    /// there were room: not in use, and not dropped lately. Dropping a partial holder for
    /// another makes sense only when there is another: in a small swarm, where every
    /// downloader already uses every other, a peer dropped for holding nothing we need (or
    /// for being busy) would be missed for [`DROPPED_PEER_RETRY`] while it gains the very
    /// chunks we lack (S3: three of eight downloaders sat idle for 3 to 4 s that way).
    fn recruitable_partial(&self, now: Instant) -> usize {
        self.candidates
            .iter()
            .filter(|(node_id, addr, complete)| {
                !complete
                    && match self.peers.iter().find(|p| p.node_id == *node_id) {
                        Some(peer) => peer.may_return(*addr, now),
                        None => self.peers.len() < PEERS_PER_DOWNLOAD_MAX,
                    }
            })
            .count()
    }

    fn ask(&self, parts: &Parts<'_>, index: usize, info_hash: Hash) -> PeerAsk {
        PeerAsk {
            cookie: U64::new(self.peers[index].cookie),
            node_id: U32::new(parts.config.node_id),
            info_hash,
        }
    }

    fn ask_have(&mut self, parts: &mut Parts<'_>, now: Instant, index: usize, info_hash: Hash) {
        let ask = self.ask(parts, index, info_hash);
        parts
            .out
            .send(self.peers[index].addr, &Message::HaveRequest(&ask));
        self.peers[index].last_asked = now;
    }

    fn ask_manifest(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let Phase::Manifest(fetch) = &self.phase else {
            return;
        };
        let Some(source) = fetch.source else { return };
        let request = wire::ManifestRequest {
            ask: self.ask(parts, source, fetch.version.info_hash),
            first_chunk: U32::new(fetch.hashes.len() as u32),
        };
        parts
            .out
            .send(self.peers[source].addr, &Message::ManifestRequest(&request));
        if let Phase::Manifest(fetch) = &mut self.phase {
            fetch.sent_at = Some(now);
            fetch.attempts += 1;
        }
    }

    // ---- messages from peers ------------------------------------------------------------

    /// Offers a peer message to this download; `None` when it is not for it.
    pub fn handle_peer_message(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        message: &Message<'_>,
    ) -> Option<Handled> {
        let info_hash = self.info_hash?;
        let index = self.peers.iter().position(|p| p.addr == from)?;
        match message {
            Message::Welcome(welcome) => {
                // Every request sent without the cookie brings a welcome; the first with a
                // new cookie is enough to ask again (a manifest part asked twice costs the
                // holder's upload 1.4 KB more per downloader, when 200 start at once).
                let fresh = self.peers[index].cookie != welcome.cookie.get();
                self.peers[index].cookie = welcome.cookie.get();
                self.peers[index].last_heard = now;
                // Whatever we asked was refused for want of a cookie: ask again with it.
                if fresh && self.peers[index].have.is_none() {
                    self.ask_have(parts, now, index, info_hash);
                }
                if let Phase::Manifest(fetch) = &self.phase
                    && fetch.source == Some(index)
                    && fresh
                {
                    self.ask_manifest(parts, now);
                }
                self.release_peer_requests(index);
                // Other downloads from the same peer need the cookie too.
                None
            }
            Message::HaveMap { fixed, bitmap } if fixed.info_hash == info_hash => {
                let peer = &mut self.peers[index];
                peer.last_heard = now;
                let have = Bitmap::from_bytes(fixed.chunk_count.get(), bitmap);
                if let Phase::Transfer(transfer) = &mut self.phase {
                    if have
                        .as_ref()
                        .is_none_or(|have| have.len() != transfer.manifest.chunk_count())
                    {
                        log::warn!(
                            "node {} sent a have-map of the wrong length; dropping it",
                            peer.node_id
                        );
                        self.drop_peer(parts, now, index);
                        return Some(Handled::Consumed);
                    }
                    transfer.replace_have(peer.have.as_ref(), have.as_ref());
                }
                peer.have = have;
                Some(Handled::Consumed)
            }
            Message::ManifestPart {
                fixed,
                hashes,
                name,
            } if fixed.info_hash == info_hash => {
                self.peers[index].last_heard = now;
                Some(self.manifest_part(parts, now, index, fixed, hashes, name))
            }
            Message::Piece { fixed, data } if fixed.info_hash == info_hash => {
                self.piece(
                    parts,
                    now,
                    index,
                    fixed.chunk.get(),
                    fixed.offset.get(),
                    data,
                );
                Some(Handled::Consumed)
            }
            Message::Reject(reject) if reject.info_hash == info_hash => {
                self.peers[index].last_heard = now;
                let chunk = reject.chunk.get();
                match RejectReason::from_u16(reject.reason.get()) {
                    // "Get it from another peer": as if it did not hold it, until its next
                    // have-map.
                    Some(reason @ (RejectReason::MissingChunk | RejectReason::Elsewhere)) => {
                        let had = self.peers[index].have.as_mut().is_some_and(|have| {
                            let had = have.get(chunk);
                            have.clear(chunk);
                            had
                        });
                        // Counted out of the availability too: the next have-map counts it
                        // in again if it shows the chunk (counting only that inflated the
                        // count by one for every refusal, and rarest-first took chunks the
                        // holder kept refusing for common ones).
                        if had && let Phase::Transfer(transfer) = &mut self.phase {
                            transfer.forget_holder_of(chunk);
                        }
                        self.release_chunk(index, chunk);
                        // A spreading holder's least-sent chunks moved on: what it showed is
                        // stale as a whole, and one have-map costs it less than a refusal
                        // for every chunk it no longer shows.
                        let peer = &self.peers[index];
                        if reason == RejectReason::Elsewhere
                            && peer.complete
                            && now.saturating_duration_since(peer.last_asked) >= HAVE_REFRESH
                        {
                            self.ask_have(parts, now, index, info_hash);
                        }
                    }
                    Some(RejectReason::Busy) => {
                        self.release_chunk(index, chunk);
                        let replaceable = self.recruitable_partial(now) > 0;
                        let peer = &mut self.peers[index];
                        // One refusal per attempt counts: several requests may be refused.
                        if !peer.busy(now) {
                            let backoff = BUSY_RETRY * 2u32.pow(peer.busy_streak.min(8));
                            peer.busy_until = Some(now + backoff.min(BUSY_RETRY_MAX));
                            peer.busy_streak += 1;
                            if !peer.complete && peer.busy_streak >= BUSY_STREAK_MAX && replaceable
                            {
                                log::info!("node {} stays busy; trying another peer", peer.node_id);
                                self.drop_peer(parts, now, index);
                            }
                        }
                    }
                    reason => {
                        log::info!(
                            "node {} refused {}: {reason:?}; dropping it",
                            self.peers[index].node_id,
                            self.name
                        );
                        self.drop_peer(parts, now, index);
                    }
                }
                Some(Handled::Consumed)
            }
            _ => None,
        }
    }

    fn manifest_part(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        index: usize,
        fixed: &wire::ManifestPart,
        hashes: &[Hash],
        name: &str,
    ) -> Handled {
        if !self.learn_from_part(fixed, name) {
            log::debug!(
                "manifest part from node {} is no manifest we accept; ignored",
                self.peers[index].node_id
            );
            return Handled::Consumed;
        }
        let Phase::Manifest(fetch) = &mut self.phase else {
            return Handled::Consumed;
        };
        let version = fetch.version;
        let fits = name == self.name
            && fixed.file_bytes == version.file_bytes
            && fixed.chunk_bytes == version.chunk_bytes
            && fixed.first_chunk.get() as usize == fetch.hashes.len();
        if !fits {
            log::debug!(
                "manifest part from node {} does not fit; ignored",
                self.peers[index].node_id
            );
            return Handled::Consumed;
        }
        fetch.hashes.extend_from_slice(hashes);
        fetch.attempts = 0;
        self.give_up_at = now + self.give_up_after;
        let count = wire::chunk_count(version.file_bytes.get(), version.chunk_bytes.get());
        if (fetch.hashes.len() as u32) < count {
            if hashes.is_empty() {
                // A part that moves nothing forward: this peer cannot help with the manifest.
                self.drop_peer(parts, now, index);
                return Handled::Consumed;
            }
            self.ask_manifest(parts, now);
            return Handled::Consumed;
        }
        let hashes = std::mem::take(&mut fetch.hashes);
        let manifest = Manifest::new(
            self.name.clone(),
            version.file_bytes.get(),
            version.chunk_bytes.get(),
            hashes,
        );
        if manifest.info_hash != version.info_hash {
            log::warn!(
                "node {} sent a manifest that does not match the info hash; dropping it",
                self.peers[index].node_id
            );
            self.drop_peer(parts, now, index);
            if let Phase::Manifest(fetch) = &mut self.phase {
                fetch.source = None;
                if let Some(by_hash) = &self.by_hash {
                    // What that peer told of the name and shape goes with it.
                    let (file_bytes, chunk_bytes) = by_hash.shape.unwrap_or((0, 0));
                    fetch.version.file_bytes = U64::new(file_bytes);
                    fetch.version.chunk_bytes = U32::new(chunk_bytes);
                    if !by_hash.name_known {
                        self.name = wire::hex(&version.info_hash);
                    }
                }
            }
            self.recruit(parts, now);
            return Handled::Consumed;
        }
        if self.by_hash.is_some() && parts.state.file_path(&self.name).exists() {
            let reason = format!(
                "{} already exists in {}",
                self.name,
                parts.state.files_dir().display()
            );
            self.fail(parts, reason);
            return Handled::Consumed;
        }
        self.start_transfer(parts, now, manifest);
        Handled::ManifestReady(version.info_hash)
    }

    fn start_transfer(&mut self, parts: &mut Parts<'_>, now: Instant, manifest: Manifest) {
        let (mapping, claimed) = match parts.state.open_partial(&manifest) {
            Ok(opened) => opened,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                self.wait_for_space(parts, now, &error);
                self.phase = Phase::WaitingForSpace(manifest);
                return;
            }
            Err(error) => {
                self.fail(parts, error.to_string());
                return;
            }
        };
        if self.disk_retry_at.take().is_some() {
            parts.out.say(format!(
                "download {}: disk space found, going on",
                self.name
            ));
            self.give_up_at = now + self.give_up_after;
            // Nobody was asked anything while we waited: their silence was ours.
            for peer in self.peers.iter_mut() {
                peer.last_heard = now;
            }
        }
        let count = manifest.chunk_count();
        let manifest = Arc::new(manifest);
        let piece_bytes = parts
            .config
            .piece_bytes
            .clamp(1, wire::PIECE_BYTES_MAX as u32);
        let mut transfer = Transfer::new(
            Arc::clone(&manifest),
            Arc::clone(&mapping),
            piece_bytes,
            parts.config.node_id,
            now,
        );
        for chunk in (0..count).filter(|&c| claimed.get(c)) {
            // Verified by an earlier run: checked again before it counts.
            transfer.chunks[chunk as usize] = ChunkState::Hashing(parts.config.node_id);
            transfer.hashing += 1;
            parts.out.event(super::NodeEvent::Job(Job::CheckChunk {
                info_hash: manifest.info_hash,
                chunk,
                mapping: Arc::clone(&mapping),
                offset: manifest.chunk_offset(chunk),
                len: manifest.chunk_len(chunk) as usize,
                expected: manifest.hashes[chunk as usize],
            }));
        }
        parts.files.insert(
            manifest.info_hash,
            LocalFile {
                manifest: Arc::clone(&manifest),
                mapping: Arc::clone(&mapping),
                have: Bitmap::new(count),
                acknowledged_chunks: None,
                announce_due: None,
                stamp: None,
            },
        );
        // Have-maps that arrived while the manifest was fetched count from now on.
        for peer in self.peers.iter_mut().filter(|p| !p.dropped) {
            if peer.have.as_ref().is_some_and(|have| have.len() != count) {
                peer.have = None;
            }
            transfer.replace_have(None, peer.have.as_ref());
        }
        self.phase = Phase::Transfer(transfer);
        if count == 0 {
            self.publish(parts, now);
        }
    }

    fn piece(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        index: usize,
        chunk: u32,
        offset: u32,
        data: &[u8],
    ) {
        let Phase::Transfer(transfer) = &mut self.phase else {
            parts.out.stats.pieces_unrequested += 1;
            return;
        };
        let peer = &mut self.peers[index];
        peer.last_heard = now;
        let Some(ChunkState::Active(progress)) = transfer.chunks.get_mut(chunk as usize) else {
            parts.out.stats.pieces_unrequested += 1;
            return;
        };
        let chunk_len = transfer.manifest.chunk_len(chunk);
        let piece = offset / transfer.piece_bytes;
        let expected_len = transfer.piece_bytes.min(chunk_len.saturating_sub(offset));
        if !offset.is_multiple_of(transfer.piece_bytes)
            || data.len() != expected_len as usize
            || piece >= progress.received.len()
        {
            parts.out.stats.pieces_unrequested += 1;
            return;
        }
        if progress.received.get(piece) {
            parts.out.stats.pieces_duplicate += 1;
            return;
        }
        let file_offset = transfer.manifest.chunk_offset(chunk) + u64::from(offset);
        if !transfer.writer.write(file_offset, data) {
            parts.out.stats.pieces_unrequested += 1;
            return;
        }
        parts.out.stats.pieces_received += 1;
        progress.received.set(piece);
        progress.last_from = peer.node_id;
        progress.last_piece_at = now;
        peer.bytes_received += data.len() as u64;
        peer.busy_streak = 0;
        let sample = progress.requested_at[piece as usize]
            .take()
            .map(|sent_at| now.saturating_duration_since(sent_at));
        if let Some(sample) = sample {
            peer.srtt = Some(peer.srtt.map_or(sample, |srtt| (srtt * 7 + sample) / 8));
            if let Some(owner) = progress.owner {
                let owner = &mut self.peers[owner];
                owner.in_flight = owner.in_flight.saturating_sub(1);
            }
        }
        let peer = &mut self.peers[index];
        let queued_too_long = peer.pace.on_piece(now, sample, peer.in_flight > 0);
        if sample.is_some()
            && let Some(owner) = progress.owner
        {
            // Only the owner's own pieces say how long its queue is.
            let queued_too_long = queued_too_long && owner == index;
            let owner = &mut self.peers[owner];
            owner.window = pace::next_window(
                owner.window,
                queued_too_long,
                parts.config.window_pieces_max,
            );
        }
        log::debug!(
            "piece {piece} of chunk {chunk} from node {}",
            self.peers[index].node_id
        );
        if !progress.received.is_full() {
            return;
        }
        // Every piece is in: stop writing this chunk and hash it off the reactor thread,
        // once its last pieces are in the file.
        transfer.writer.flush();
        let from = progress.last_from;
        if let Some(owner) = progress.owner {
            self.peers[owner].chunks.retain(|&c| c != chunk);
        }
        transfer.chunks[chunk as usize] = ChunkState::Hashing(from);
        transfer.hashing += 1;
        parts.out.event(super::NodeEvent::Job(Job::CheckChunk {
            info_hash: transfer.manifest.info_hash,
            chunk,
            mapping: Arc::clone(&transfer.mapping),
            offset: transfer.manifest.chunk_offset(chunk),
            len: chunk_len as usize,
            expected: transfer.manifest.hashes[chunk as usize],
        }));
    }

    /// A hasher thread checked `chunk`. Returns the node to credit when it verified.
    pub fn chunk_checked(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        chunk: u32,
        ok: bool,
    ) -> Option<u32> {
        let Phase::Transfer(transfer) = &mut self.phase else {
            return None;
        };
        let Some(ChunkState::Hashing(from)) = transfer.chunks.get(chunk as usize) else {
            // Not hashing (a late duplicate result): nothing to do.
            return None;
        };
        let from = *from;
        let info_hash = transfer.manifest.info_hash;
        transfer.hashing -= 1;
        if !ok {
            transfer.chunks[chunk as usize] = ChunkState::Missing;
            if from == parts.config.node_id {
                // A chunk an earlier run recorded, not intact after all: fetch it.
                return None;
            }
            parts.out.stats.chunks_failed_hash += 1;
            log::warn!(
                "chunk {chunk} of {} from node {from} failed its SHA-1; fetching it again",
                self.name
            );
            if transfer.bad_pairs.len() < BAD_PAIRS_MAX {
                transfer.bad_pairs.insert((chunk, from));
            }
            if let Some(index) = self.peers.iter().position(|p| p.node_id == from) {
                self.peers[index].bad_chunks += 1;
                if self.peers[index].bad_chunks >= BAD_CHUNKS_MAX {
                    log::warn!("node {from} sent {BAD_CHUNKS_MAX} bad chunks; dropping it");
                    self.drop_peer(parts, now, index);
                }
            }
            return None;
        }
        transfer.chunks[chunk as usize] = ChunkState::Verified;
        let file = parts.files.get_mut(&info_hash)?;
        file.have.set(chunk);
        if let Err(error) = parts.state.record_verified(&info_hash, &file.have, chunk) {
            log::warn!("cannot record chunk {chunk} as verified: {error}");
        }
        self.give_up_at = now + self.give_up_after;
        if let Some(peer) = self.peers.iter_mut().find(|p| p.node_id == from) {
            peer.chunks_verified += 1;
        }
        log::info!("chunk {chunk} of {} verified, from node {from}", self.name);
        if file.have.is_full() {
            self.publish(parts, now);
        }
        (from != parts.config.node_id).then_some(from)
    }

    /// Says (once) that the disk is full and what is missing; tries again in [`DISK_RETRY`].
    fn wait_for_space(&mut self, parts: &mut Parts<'_>, now: Instant, error: &std::io::Error) {
        if self.disk_retry_at.is_none() {
            parts.out.say(format!(
                "download {} waiting for disk space: {error}; trying again every {} s",
                self.name,
                DISK_RETRY.as_secs()
            ));
        }
        self.disk_retry_at = Some(now + DISK_RETRY);
    }

    fn publish(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let Phase::Transfer(transfer) = &self.phase else {
            return;
        };
        let manifest = Arc::clone(&transfer.manifest);
        let (serving, stamp) = match parts.state.publish(&manifest, &transfer.mapping) {
            Ok(published) => published,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                // Every chunk verified and recorded: keep them, and publish once there is room.
                self.wait_for_space(parts, now, &error);
                return;
            }
            Err(error) => {
                parts.files.remove(&manifest.info_hash);
                self.fail(parts, format!("cannot publish: {error}"));
                return;
            }
        };
        if let Some(file) = parts.files.get_mut(&manifest.info_hash) {
            // From now on the file is the user's: served with `pread`, watched for changes.
            file.have = Bitmap::full(manifest.chunk_count());
            file.mapping = serving;
            file.stamp = Some(stamp);
        }
        let seconds = now.saturating_duration_since(self.started).as_secs_f64();
        let rate = manifest.file_bytes as f64 / seconds.max(1e-6) / 1e6;
        let mut sources: Vec<String> = self
            .peers
            .iter()
            .filter(|p| p.chunks_verified > 0)
            .map(|p| match self.by_hash {
                // Peers from a standard tracker are known by address only.
                Some(_) => format!("{}: {} chunks", p.addr, p.chunks_verified),
                None => format!("node {}: {} chunks", p.node_id, p.chunks_verified),
            })
            .collect();
        if manifest.chunk_count() == 0 {
            sources.push("no peer (the file is empty)".to_string());
        } else if sources.is_empty() {
            sources.push("no peer (resumed from disk)".to_string());
        }
        parts.out.say(format!(
            "downloaded {} ({}) {} bytes in {seconds:.3} s ({rate:.1} MB/s) from {}",
            manifest.name,
            wire::hex(&manifest.info_hash),
            manifest.file_bytes,
            sources.join(", ")
        ));
        self.disk_retry_at = None;
        self.phase = Phase::Done;
    }

    // ---- requests -----------------------------------------------------------------------

    /// Sends piece requests until every usable peer's window is full.
    pub fn fill_windows(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let Phase::Transfer(transfer) = &mut self.phase else {
            return;
        };
        let info_hash = transfer.manifest.info_hash;
        for index in 0..self.peers.len() {
            let peer = &self.peers[index];
            if peer.dropped || peer.cookie == 0 || peer.have.is_none() || peer.busy(now) {
                continue;
            }
            // Ask in runs of a quarter window (at most REQUEST_PIECES_MAX pieces), not a
            // piece at a time as each arrives: half the datagrams, the same pipeline.
            let batch = (self.peers[index].window / 4).clamp(1, REQUEST_PIECES_MAX);
            loop {
                let peer = &self.peers[index];
                let room = peer.window.saturating_sub(peer.in_flight);
                if room == 0 || (room < batch && peer.in_flight > 0) {
                    break;
                }
                let Some((chunk, first, count)) =
                    next_request(transfer, &mut self.peers, index, room, now)
                else {
                    break;
                };
                let piece_bytes = transfer.piece_bytes;
                let chunk_len = transfer.manifest.chunk_len(chunk);
                let offset = first * piece_bytes;
                let length = (count * piece_bytes).min(chunk_len - offset);
                let peer = &mut self.peers[index];
                let request = wire::PieceRequest {
                    ask: PeerAsk {
                        cookie: U64::new(peer.cookie),
                        node_id: U32::new(parts.config.node_id),
                        info_hash,
                    },
                    chunk: U32::new(chunk),
                    offset: U32::new(offset),
                    length: U32::new(length),
                    piece_bytes: U32::new(piece_bytes),
                };
                parts.out.send(peer.addr, &Message::PieceRequest(&request));
                peer.in_flight += count;
                if transfer.scan_due.is_none() {
                    transfer.scan_due = Some(now + SCAN_INTERVAL);
                }
                if let Some(ChunkState::Active(progress)) = transfer.chunks.get_mut(chunk as usize)
                {
                    for piece in first..first + count {
                        progress.requested_at[piece as usize] = Some(now);
                    }
                    progress.next_unrequested = first + count;
                }
            }
        }
    }

    /// Forgets what was requested from peer `index` (it will be asked again).
    fn release_peer_requests(&mut self, index: usize) {
        let Phase::Transfer(transfer) = &mut self.phase else {
            return;
        };
        for &chunk in &self.peers[index].chunks {
            if let Some(ChunkState::Active(progress)) = transfer.chunks.get_mut(chunk as usize) {
                for slot in progress.requested_at.iter_mut() {
                    *slot = None;
                }
                progress.next_unrequested = 0;
            }
        }
        self.peers[index].in_flight = 0;
    }

    /// Takes `chunk` away from peer `index`, keeping the pieces already received.
    fn release_chunk(&mut self, index: usize, chunk: u32) {
        let Phase::Transfer(transfer) = &mut self.phase else {
            return;
        };
        if let Some(ChunkState::Active(progress)) = transfer.chunks.get_mut(chunk as usize)
            && progress.owner == Some(index)
        {
            let outstanding = progress
                .requested_at
                .iter_mut()
                .filter_map(Option::take)
                .count() as u32;
            progress.owner = None;
            progress.next_unrequested = 0;
            let peer = &mut self.peers[index];
            peer.in_flight = peer.in_flight.saturating_sub(outstanding);
            peer.chunks.retain(|&c| c != chunk);
        }
    }

    fn drop_peer(&mut self, parts: &mut Parts<'_>, now: Instant, index: usize) {
        if self.peers[index].dropped {
            return;
        }
        log::info!(
            "{}: dropping node {} ({})",
            self.name,
            self.peers[index].node_id,
            self.peers[index].addr
        );
        for chunk in self.peers[index].chunks.clone() {
            self.release_chunk(index, chunk);
        }
        let peer = &mut self.peers[index];
        peer.dropped = true;
        peer.in_flight = 0;
        peer.chunks.clear();
        if let Phase::Transfer(transfer) = &mut self.phase {
            transfer.replace_have(peer.have.take().as_ref(), None);
        }
        self.recruit(parts, now);
    }

    // ---- timers -------------------------------------------------------------------------

    /// Fires due timers. Returns true when the tracker should be asked for holders again.
    pub fn handle_timeout(&mut self, parts: &mut Parts<'_>, now: Instant) -> bool {
        if self.finished() {
            return false;
        }
        if self.disk_retry_at.is_some_and(|t| t <= now) {
            match std::mem::replace(&mut self.phase, Phase::LookingUp) {
                Phase::WaitingForSpace(manifest) => self.start_transfer(parts, now, manifest),
                other => {
                    self.phase = other;
                    self.publish(parts, now);
                }
            }
        }
        if self.disk_retry_at.is_some() {
            // Nothing to ask anyone until there is room, and no giving up either.
            return false;
        }
        // Peers that went silent while we wait on them.
        for index in 0..self.peers.len() {
            if self.peers[index].busy_until.is_some_and(|t| t <= now) {
                // Its refusal is over: the node fills windows after this.
                self.peers[index].busy_until = None;
            }
            let peer = &self.peers[index];
            if peer.waiting() && now.saturating_duration_since(peer.last_heard) >= PEER_SILENCE {
                parts.out.say(format!(
                    "node {} stopped answering; its chunks of {} go to others",
                    peer.node_id, self.name
                ));
                self.drop_peer(parts, now, index);
            } else if !peer.dropped
                && peer.have.is_none()
                && now.saturating_duration_since(peer.last_asked) >= ASK_RETRY
                && let Some(info_hash) = self.info_hash
            {
                self.ask_have(parts, now, index, info_hash);
            }
        }
        if let Phase::Manifest(fetch) = &self.phase
            && fetch
                .sent_at
                .is_some_and(|t| now.saturating_duration_since(t) >= fetch.retry_after())
        {
            match fetch.source {
                Some(source) if fetch.attempts >= MANIFEST_ATTEMPTS_MAX => {
                    self.drop_peer(parts, now, source)
                }
                _ => self.ask_manifest(parts, now),
            }
        }
        self.scan_timeouts(now);
        let mut ask_tracker = false;
        let transferring = matches!(self.phase, Phase::Transfer(_));
        if transferring && self.refresh_due.is_none_or(|t| t <= now) {
            // Swarming: new downloaders appear; the tracker knows them.
            self.drop_unhelpful(parts, now);
            let partial = self
                .peers
                .iter()
                .filter(|p| !p.dropped && !p.complete)
                .count();
            let interval = if partial < PARTIAL_PEERS_MAX {
                SWARM_REFRESH_SHORT
            } else {
                SWARM_REFRESH
            };
            self.refresh_due = Some(now + interval);
            ask_tracker = true;
        }
        if transferring && self.have_refresh_due.is_none_or(|t| t <= now) {
            // Partial holders gain chunks all the time: what they verified is worth having
            // within a fraction of a second, not after a chunk's worth of waiting.
            // A complete holder that shows only part of its chunks (spreading them) is asked
            // again only once what it showed is of no more use: its have-map changes when
            // its least-sent chunks do, not with every chunk verified, and 200 downloaders
            // asking every HAVE_REFRESH took some 4% of its upload (its refusals, as
            // "elsewhere", clear what it no longer shows).
            let stale: Vec<usize> = match &self.phase {
                Phase::Transfer(transfer) => (0..self.peers.len())
                    .filter(|&index| {
                        let peer = &self.peers[index];
                        !peer.dropped
                            && !peer.has_all()
                            && peer
                                .have
                                .as_ref()
                                .is_some_and(|have| !peer.complete || !transfer.holds_needed(have))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            self.have_refresh_due = Some(now + HAVE_REFRESH);
            if let Some(info_hash) = self.info_hash {
                for index in stale {
                    self.ask_have(parts, now, index, info_hash);
                }
            }
        }
        let active = self.peers.iter().any(|p| !p.dropped);
        if !active && now >= self.give_up_at {
            let reason = if self.peers.is_empty() {
                format!(
                    "no holder of {} answered within {} s",
                    self.name,
                    self.give_up_after.as_secs()
                )
            } else {
                format!("every holder of {} is gone", self.name)
            };
            self.fail(parts, reason);
            return false;
        }
        if !active {
            self.recruit(parts, now);
        }
        let need_holders = !self.peers.iter().any(|p| !p.dropped);
        if need_holders && self.lookup_due.is_none_or(|t| t <= now) {
            self.lookup_due = Some(now + LOOKUP_RETRY);
            return true;
        }
        ask_tracker
    }

    /// Drops up to [`UNHELPFUL_DROPS_MAX`] partial holders that hold no chunk this download
    /// still needs and are asked for nothing, for as many partial holders of the last
    /// look-up that can be taken instead (see [`Download::recruitable_partial`]). Late in a swarm, a downloader
    /// whose peers all lack its last chunks would otherwise wait for them to get those first.
    fn drop_unhelpful(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let Phase::Transfer(transfer) = &self.phase else {
            return;
        };
        let spare = self.recruitable_partial(now);
        let unhelpful: Vec<usize> = (0..self.peers.len())
            .filter(|&index| {
                let peer = &self.peers[index];
                !peer.dropped
                    && !peer.complete
                    && peer.chunks.is_empty()
                    && peer.in_flight == 0
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
                self.name,
                self.peers[index].node_id
            );
            self.drop_peer(parts, now, index);
        }
    }

    /// Pieces requested longer than the peer's timeout ago are asked again; the window of a
    /// peer that lost some halves.
    fn scan_timeouts(&mut self, now: Instant) {
        let Phase::Transfer(transfer) = &mut self.phase else {
            return;
        };
        if transfer.scan_due.is_none_or(|t| t > now) {
            return;
        }
        let mut outstanding = false;
        for chunk in transfer.chunks.iter_mut() {
            let ChunkState::Active(progress) = chunk else {
                continue;
            };
            let Some(owner) = progress.owner else {
                continue;
            };
            let rto = self.peers[owner].rto();
            let mut lost = 0;
            for (piece, slot) in progress.requested_at.iter_mut().enumerate() {
                match slot {
                    Some(sent) if now.saturating_duration_since(*sent) >= rto => {
                        *slot = None;
                        lost += 1;
                        progress.next_unrequested = progress.next_unrequested.min(piece as u32);
                    }
                    Some(_) => outstanding = true,
                    None => {}
                }
            }
            if lost > 0 {
                let peer = &mut self.peers[owner];
                peer.in_flight = peer.in_flight.saturating_sub(lost);
                peer.window = (peer.window / 2).max(WINDOW_MIN);
                log::debug!("{lost} pieces from node {} timed out", peer.node_id);
            }
        }
        let waiting = self.peers.iter().any(|p| p.in_flight > 0);
        transfer.scan_due = (outstanding || waiting).then_some(now + SCAN_INTERVAL);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished() {
            return None;
        }
        let mut earliest: Option<Instant> = None;
        let mut consider = |t: Instant| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        if let Some(t) = self.disk_retry_at {
            consider(t);
        }
        if self.disk_retry_at.is_some() {
            return earliest;
        }
        for peer in self.peers.iter().filter(|p| !p.dropped) {
            if peer.waiting() {
                consider(peer.last_heard + PEER_SILENCE);
            }
            if peer.have.is_none() {
                consider(peer.last_asked + ASK_RETRY);
            }
            if let Some(t) = peer.busy_until {
                consider(t);
            }
        }
        match &self.phase {
            Phase::Manifest(fetch) => {
                if let Some(sent) = fetch.sent_at {
                    consider(sent + fetch.retry_after());
                }
            }
            Phase::Transfer(transfer) => {
                if let Some(t) = transfer.scan_due {
                    consider(t);
                }
                consider(self.refresh_due.unwrap_or(transfer.started_at));
                if self.peers.iter().any(|p| !p.dropped && !p.has_all()) {
                    consider(self.have_refresh_due.unwrap_or(transfer.started_at));
                }
            }
            _ => {}
        }
        if !self.peers.iter().any(|p| !p.dropped) {
            consider(self.give_up_at);
            consider(self.lookup_due.unwrap_or(self.give_up_at));
        }
        earliest
    }

    // ---- reporting ----------------------------------------------------------------------

    pub fn progress(
        &self,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> Option<super::Progress> {
        if self.finished() {
            return None;
        }
        let peers = self.peers.iter().filter(|p| !p.dropped).count();
        let (verified_bytes, total_bytes, bytes_per_s) = match &self.phase {
            Phase::Transfer(transfer) => {
                let m = &transfer.manifest;
                let have = files.get(&m.info_hash).map_or(0, |f| f.have.count());
                let verified = (u64::from(have) * u64::from(m.chunk_bytes)).min(m.file_bytes);
                let seconds = now
                    .saturating_duration_since(transfer.started_at)
                    .as_secs_f64();
                let rate = if seconds > 0.0 {
                    verified as f64 / seconds
                } else {
                    0.0
                };
                (verified, m.file_bytes, rate)
            }
            Phase::Manifest(fetch) => (0, fetch.version.file_bytes.get(), 0.0),
            Phase::WaitingForSpace(manifest) => (0, manifest.file_bytes, 0.0),
            _ => (0, 0, 0.0),
        };
        Some(super::Progress {
            name: self.name.clone(),
            verified_bytes,
            total_bytes,
            bytes_per_s,
            peers,
            waiting_for_disk: self.disk_retry_at.is_some(),
        })
    }

    pub fn peer_lines(&self) -> Vec<String> {
        self.peers
            .iter()
            .map(|p| {
                format!(
                    "node {} {}{}: {} bytes received, {} chunks verified, window {} pieces, {} in flight",
                    p.node_id,
                    p.addr,
                    if p.dropped { " (dropped)" } else { "" },
                    p.bytes_received,
                    p.chunks_verified,
                    p.window,
                    p.in_flight
                )
            })
            .collect()
    }
}
