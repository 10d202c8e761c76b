//! The state of a running transfer: every chunk's state, and the account of what was asked
//! of whom. It is the one owner of that account; the download calls its methods and reads
//! the answers, and never changes a chunk's owner or a peer's count itself.
//!
//! * **Which chunk.** Rarest first: among the chunks a peer holds that nobody is fetching,
//!   the one the fewest known peers hold, so that distinct chunks spread through a swarm
//!   quickly. Ties go to the first from a per-peer starting point, so that peers holding the
//!   same chunks are asked for different ones. The search looks at a bounded window of
//!   chunks ([`RAREST_WINDOW_CHUNKS`]), so picking stays cheap for files of many chunks.
//! * **Endgame.** When no chunk is left unclaimed, an idle peer takes over a chunk from a
//!   peer that has several or has gone slow, so that the last chunks do not wait on one slow
//!   peer.
//! * **Which pieces.** Runs of pieces neither received nor requested, at most
//!   [`REQUEST_PIECES_MAX`] per request.
//! * **Lost pieces.** A piece asked longer than its peer's timeout ago, or overtaken by one
//!   asked later of the same paced peer, is taken as lost and asked again
//!   ([`Transfer::scan_timeouts`]).
//!
//! The account, and what [`Transfer::check_invariants`] asserts after every input a download
//! takes (in debug builds, so in every test and debug simulation):
//!
//! * an active chunk's owner is a peer that is not dropped, and lists that chunk once among
//!   its chunks; a peer lists only chunks it owns, at most [`CHUNKS_PER_PEER_MAX`];
//! * a piece is requested (has a request time) only while its chunk has an owner, and never
//!   once received;
//! * a peer's in-flight count equals the pieces requested and not in, over the chunks it
//!   owns (so a dropped peer has none in flight);
//! * the hashing count equals the chunks in [`ChunkState::Hashing`];
//!
//! Not asserted: that a chunk's availability equals the number of peers not dropped whose
//! have-map shows it. It does not, today, and making it so would change which chunks are
//! picked: a have-map that arrives from a peer after it was dropped is counted, and
//! forgotten uncounted when the peer is taken back (`Peer::rejoin` clears its map), so
//! the count stays one too high; one dropped while the manifest was fetched keeps a map that
//! was never counted, and its next one uncounts it (`replace_have` saturates at zero). The
//! simulated swarms under faults show the first (tests/sim_swarm.rs, in a debug build).

mod chunk;
mod pick;

use super::peer::Peer;
use super::peers::Peers;
use super::{diagnosis, pace};
use crate::node::{Job, Parts};
use crate::storage::{Bitmap, Content, ContentWriter, Manifest};
use crate::wire;
use chunk::ChunkState;
use chunk::{ChunkProgress, unrequested_run};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most chunks one peer is working on at once.
pub const CHUNKS_PER_PEER_MAX: usize = 16;
/// Most pieces one request asks for: as many as a holder serves for one request.
pub const REQUEST_PIECES_MAX: u32 = wire::PIECES_PER_REQUEST_MAX;
/// Chunks looked at when searching for the rarest one.
pub const RAREST_WINDOW_CHUNKS: u32 = 4096;
/// Bytes of complete chunks that may wait for their hash check and write-back before no
/// new chunk is started: when the disk or the hashers fall behind the network, the transfer
/// slows to their pace instead of piling up pages in memory.
pub const HASHING_BYTES_MAX: u64 = 32 << 20;
/// Pieces in flight to a new peer; an unpaced peer's window never shrinks below
/// [`WINDOW_MIN`].
pub const WINDOW_START: u32 = 8;
pub const WINDOW_MIN: u32 = 2;
/// Most (chunk, peer) pairs remembered as "this peer sent a bad copy of this chunk".
const BAD_PAIRS_MAX: usize = 4096;
/// How often in-flight pieces are checked for timeouts while a transfer runs.
const SCAN_INTERVAL: Duration = Duration::from_millis(25);
/// How soon after a later request is answered the pieces asked before it are looked for:
/// soon enough that a loss costs about a round trip, not a timeout (40 ms at least, found
/// by a scan every 25 ms), and late enough that one scan covers many arrivals.
const GAP_SCAN_DELAY: Duration = Duration::from_millis(2);

/// What the transfer asked of one peer: the chunks it owns (assigned to it and not
/// complete), and how many of their pieces are requested and not in.
#[derive(Default)]
struct Load {
    in_flight: u32,
    chunks: Vec<u32>,
}

impl Load {
    /// `pieces` of this peer's requests are answered, lost or forgotten.
    fn settle(&mut self, pieces: u32) {
        self.in_flight = self
            .in_flight
            .checked_sub(pieces)
            .expect("a peer's in-flight count covers every piece requested of it");
    }
}

/// One request to send: `length` bytes of `chunk` from `offset`, in pieces of `piece_bytes`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Request {
    pub chunk: u32,
    pub offset: u32,
    pub length: u32,
    pub piece_bytes: u32,
}

/// A piece as it arrived: where it goes, its stamp (from a paced peer), its data.
pub(super) struct Arrived<'a> {
    chunk: u32,
    offset: u32,
    sent_us: Option<u32>,
    data: &'a [u8],
}

impl<'a> Arrived<'a> {
    pub fn new(fixed: &wire::Piece, sent_us: Option<u32>, data: &'a [u8]) -> Arrived<'a> {
        Arrived {
            chunk: fixed.chunk.get(),
            offset: fixed.offset.get(),
            sent_us,
            data,
        }
    }
}

/// Why a piece was not taken (counted in the node's statistics).
enum Refused {
    /// Not a piece of a chunk that is arriving, or not where one fits, or not writable.
    Unrequested,
    /// Received before.
    Duplicate,
}

/// A piece taken: written, and counted.
struct Taken {
    pub piece: u32,
    /// The data bytes per piece of its chunk.
    pub piece_bytes: u32,
    /// The peer that owns its chunk.
    pub owner: Option<usize>,
    /// When it was asked, if it answered a request still counted.
    pub asked_at: Option<Instant>,
    /// Its chunk is complete: a hash check is due ([`Transfer::check_job`]).
    pub chunk_complete: bool,
}

pub(super) struct Transfer {
    /// The run of the download this transfer fills, carried by its hash checks.
    run: u64,
    manifest: Arc<Manifest>,
    mapping: Arc<dyn Content>,
    /// Writes pieces into the mapping's file; flushed before a chunk is hashed.
    writer: Box<dyn ContentWriter>,
    chunks: Vec<ChunkState>,
    /// How many known peers hold each chunk.
    availability: Vec<u16>,
    /// What is asked of each peer, by the peer's index in the download's list (which never
    /// removes one: a dropped peer keeps its index).
    loads: Vec<Load>,
    /// Largest piece asked for (`--piece-size`); each chunk's is at most this, and what its
    /// owner's path carries.
    piece_bytes_max: u32,
    /// (chunk, node) pairs that failed their hash.
    bad_pairs: HashSet<(u32, u32)>,
    scan_due: Option<Instant>,
    started_at: Instant,
    /// Chunks complete and waiting for (or in) their hash check and write-back.
    hashing: u32,
    /// This node's id: where its search for chunks starts differs from other downloaders'.
    own_node_id: u32,
}

impl Transfer {
    pub fn new(
        run: u64,
        manifest: Arc<Manifest>,
        mapping: Arc<dyn Content>,
        piece_bytes_max: u32,
        own_node_id: u32,
        now: Instant,
    ) -> Transfer {
        let count = manifest.chunk_count() as usize;
        Transfer {
            run,
            chunks: (0..count).map(|_| ChunkState::Missing).collect(),
            availability: vec![0; count],
            loads: (0..super::PEERS_PER_DOWNLOAD_MAX)
                .map(|_| Load::default())
                .collect(),
            manifest,
            writer: Arc::clone(&mapping).writer(),
            mapping,
            piece_bytes_max,
            bad_pairs: HashSet::new(),
            scan_due: None,
            started_at: now,
            hashing: 0,
            own_node_id,
        }
    }

    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    pub fn mapping(&self) -> &Arc<dyn Content> {
        &self.mapping
    }

    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// When in-flight pieces are next checked for timeouts, while any are.
    pub fn scan_due(&self) -> Option<Instant> {
        self.scan_due
    }

    /// The bytes of chunks verified so far (by `files`, the node's), and the rate since
    /// the transfer began.
    pub fn verified_bytes_and_rate(
        &self,
        files: &std::collections::BTreeMap<wire::Hash, crate::node::LocalFile>,
        now: Instant,
    ) -> (u64, f64) {
        let m = &self.manifest;
        let verified = files.get(&m.info_hash).map_or(0, |f| m.held_bytes(&f.have));
        let seconds = now.saturating_duration_since(self.started_at).as_secs_f64();
        let rate = if seconds > 0.0 {
            verified as f64 / seconds
        } else {
            0.0
        };
        (verified, rate)
    }

    /// Pieces requested of peer `index` and not in.
    pub fn in_flight(&self, index: usize) -> u32 {
        self.loads[index].in_flight
    }

    /// The chunks peer `index` owns.
    pub fn chunks_of(&self, index: usize) -> &[u32] {
        &self.loads[index].chunks
    }

    /// Whether any peer has pieces in flight.
    fn any_in_flight(&self) -> bool {
        self.loads.iter().any(|load| load.in_flight > 0)
    }

    /// Whether `have` shows a chunk this download still needs (missing, or arriving).
    pub fn holds_needed(&self, have: &Bitmap) -> bool {
        self.shows(have, |state| {
            matches!(state, ChunkState::Missing | ChunkState::Active(_))
        })
    }

    /// Whether `have` shows a chunk this download could ask for now (see
    /// [`ChunkState::claimable`]).
    pub fn offers_unclaimed(&self, have: &Bitmap) -> bool {
        self.shows(have, ChunkState::claimable)
    }

    /// Whether `have` shows a chunk whose state here is `wanted`.
    fn shows(&self, have: &Bitmap, wanted: impl Fn(&ChunkState) -> bool) -> bool {
        (0..have.len())
            .any(|chunk| have.get(chunk) && self.chunks.get(chunk as usize).is_some_and(&wanted))
    }

    /// Counts `new` in the availability of chunks and forgets `old`.
    pub fn replace_have(&mut self, old: Option<&Bitmap>, new: Option<&Bitmap>) {
        for chunk in 0..self.availability.len() as u32 {
            let before = old.is_some_and(|have| have.get(chunk));
            let after = new.is_some_and(|have| have.get(chunk));
            let slot = &mut self.availability[chunk as usize];
            match (before, after) {
                (false, true) => *slot = slot.saturating_add(1),
                (true, false) => *slot = slot.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// One peer that was counted as holding `chunk` no longer does.
    pub fn forget_holder_of(&mut self, chunk: u32) {
        if let Some(holders) = self.availability.get_mut(chunk as usize) {
            *holders = holders.saturating_sub(1);
        }
    }

    fn usable(&self, peer: &Peer, chunk: u32) -> bool {
        peer.have.as_ref().is_some_and(|have| have.get(chunk))
            && !self.bad_pairs.contains(&(chunk, peer.node_id))
    }

    /// A chunk an earlier run verified: it is checked again before it counts, and credited
    /// to no peer.
    pub fn recheck(&mut self, chunk: u32) {
        self.chunks[chunk as usize] = ChunkState::Hashing(self.own_node_id);
        self.hashing += 1;
    }

    /// The hash check of `chunk`, for a hasher thread.
    pub fn check_job(&self, chunk: u32) -> Job {
        Job::CheckChunk {
            run: self.run,
            info_hash: self.manifest.info_hash,
            chunk,
            mapping: Arc::clone(&self.mapping),
            offset: self.manifest.chunk_offset(chunk),
            len: self.manifest.chunk_len(chunk) as usize,
            expected: self.manifest.hashes[chunk as usize],
        }
    }

    /// The next request for peer `index`, at most `room` pieces, recorded as sent at `now`
    /// (see [`Transfer::next_request`] for what is asked).
    pub fn request(
        &mut self,
        peers: &[Peer],
        index: usize,
        room: u32,
        now: Instant,
    ) -> Option<Request> {
        let (chunk, first, count) = self.next_request(peers, index, room, now)?;
        let chunk_len = self.manifest.chunk_len(chunk);
        let Some(ChunkState::Active(progress)) = self.chunks.get_mut(chunk as usize) else {
            return None;
        };
        let piece_bytes = progress.piece_bytes;
        let offset = first * piece_bytes;
        let length = (count * piece_bytes).min(chunk_len - offset);
        for piece in first..first + count {
            progress.requested_at[piece as usize] = Some(now);
        }
        progress.next_unrequested = first + count;
        self.loads[index].in_flight += count;
        if self.scan_due.is_none() {
            self.scan_due = Some(now + SCAN_INTERVAL);
        }
        Some(Request {
            chunk,
            offset,
            length,
            piece_bytes,
        })
    }

    /// A piece of `chunk` at `offset` came from node `node_id`: written into
    /// the file and counted when it is one we asked for and lack. When it completes its
    /// chunk, the chunk stops being written and waits for its hash check.
    fn take_piece(
        &mut self,
        node_id: u32,
        chunk: u32,
        offset: u32,
        data: &[u8],
        now: Instant,
    ) -> Result<Taken, Refused> {
        let Some(ChunkState::Active(progress)) = self.chunks.get_mut(chunk as usize) else {
            return Err(Refused::Unrequested);
        };
        let chunk_len = self.manifest.chunk_len(chunk);
        let piece_bytes = progress.piece_bytes;
        let piece = offset / piece_bytes;
        let expected_len = piece_bytes.min(chunk_len.saturating_sub(offset));
        if !offset.is_multiple_of(piece_bytes)
            || data.len() != expected_len as usize
            || piece >= progress.received.len()
        {
            return Err(Refused::Unrequested);
        }
        if progress.received.get(piece) {
            return Err(Refused::Duplicate);
        }
        let file_offset = self.manifest.chunk_offset(chunk) + u64::from(offset);
        if !self.writer.write(now, file_offset, data) {
            return Err(Refused::Unrequested);
        }
        progress.received.set(piece);
        progress.last_from = node_id;
        progress.last_piece_at = now;
        let asked_at = progress.requested_at[piece as usize].take();
        let owner = progress.owner;
        if asked_at.is_some() {
            let owner = owner.expect("a requested piece's chunk has an owner");
            self.loads[owner].settle(1);
        }
        let chunk_complete = progress.received.is_full();
        if chunk_complete {
            // Every piece is in: stop writing this chunk and hash it off the reactor thread,
            // once its last pieces are in the file.
            self.writer.flush(now);
            let from = progress.last_from;
            if let Some(owner) = owner {
                self.loads[owner].chunks.retain(|&c| c != chunk);
            }
            self.chunks[chunk as usize] = ChunkState::Hashing(from);
            self.hashing += 1;
        }
        Ok(Taken {
            piece,
            piece_bytes,
            owner,
            asked_at,
            chunk_complete,
        })
    }

    /// A piece from peer `index` arrived: see "One piece, from arrival to disk" in
    /// `download.rs`. Taken in ([`Transfer::take_piece`]), it tells its sender's model of
    /// the path ([`Peer::on_piece`]) and its owner's window; a chunk it completes goes to a
    /// hasher thread.
    pub fn receive(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        name: &str,
        peers: &mut Peers,
        index: usize,
        piece: Arrived<'_>,
    ) {
        let Arrived {
            chunk,
            offset,
            sent_us,
            data,
        } = piece;
        let peer = &mut peers[index];
        peer.last_heard = now;
        let taken = match self.take_piece(peer.node_id, chunk, offset, data, now) {
            Ok(taken) => taken,
            Err(Refused::Unrequested) => {
                parts.out.stats.pieces_unrequested += 1;
                return;
            }
            Err(Refused::Duplicate) => {
                parts.out.stats.pieces_duplicate += 1;
                return;
            }
        };
        parts.out.stats.pieces_received += 1;
        let datagram_bytes = (data.len() + wire::PIECE_OVERHEAD_BYTES) as u32;
        if let Some(narrowed) = peer.evidence.on_piece(now, datagram_bytes) {
            // Smaller pieces arrive where larger ones stopped: now that is known, not guessed.
            parts.out.say(format!(
                "{}: {}",
                name,
                diagnosis::Reason::BlackHole {
                    node_id: peer.node_id,
                    lost_bytes: narrowed.lost_bytes,
                    piece_bytes: narrowed.datagram_bytes - wire::PIECE_OVERHEAD_BYTES as u32,
                }
            ));
        }
        if let Some(asked_at) = taken.asked_at
            && taken.owner == Some(index)
            && peer.on_answer(asked_at)
        {
            self.scan_soon(now);
        }
        let sample = taken
            .asked_at
            .map(|sent_at| now.saturating_duration_since(sent_at));
        let more_in_flight = self.in_flight(index) > 0;
        let queued_too_long = peer.on_piece(now, data.len(), sample, sent_us, more_in_flight);
        if sample.is_some()
            && let Some(owner) = taken.owner
        {
            // Only the owner's own pieces say how long its queue is.
            let queued_too_long = queued_too_long && owner == index;
            let owner = &mut peers[owner];
            let window_max = pace::window_max(
                parts.config.window_pieces_max,
                parts.config.piece_bytes,
                taken.piece_bytes,
            );
            owner.window = pace::next_window(owner.window, queued_too_long, window_max);
        }
        log::debug!(
            "piece {} of chunk {chunk} from node {}",
            taken.piece,
            peers[index].node_id
        );
        if taken.chunk_complete {
            // Hashed off the reactor thread: the answer comes to `chunk_checked`.
            parts
                .out
                .event(crate::node::NodeEvent::Job(self.check_job(chunk)));
        }
    }

    /// A piece asked of a paced peer at `asked_at` arrived, later than any before: what was
    /// asked before it and is still missing was lost, and a scan soon finds it.
    pub fn scan_soon(&mut self, now: Instant) {
        let soon = now + GAP_SCAN_DELAY;
        self.scan_due = Some(self.scan_due.map_or(soon, |t| t.min(soon)));
    }

    /// A hasher thread checked `chunk`: verified when `ok`, missing again otherwise. Returns
    /// the node it is credited to (ourselves for a chunk of an earlier run), or `None` when
    /// it was not waiting for its check (a late duplicate result).
    pub fn hash_checked(&mut self, chunk: u32, ok: bool) -> Option<u32> {
        let Some(ChunkState::Hashing(from)) = self.chunks.get(chunk as usize) else {
            return None;
        };
        let from = *from;
        self.hashing = self
            .hashing
            .checked_sub(1)
            .expect("a chunk hashing is counted");
        self.chunks[chunk as usize] = if ok {
            ChunkState::Verified
        } else {
            ChunkState::Missing
        };
        Some(from)
    }

    /// Node `from` sent a copy of `chunk` that failed its hash: it is not asked for that
    /// chunk again while another peer holds it.
    pub fn remember_bad(&mut self, chunk: u32, from: u32) {
        if self.bad_pairs.len() < BAD_PAIRS_MAX {
            self.bad_pairs.insert((chunk, from));
        }
    }

    /// Forgets what was requested from peer `index` (it will be asked again); it keeps its
    /// chunks.
    pub fn forget_requests(&mut self, index: usize) {
        let load = &mut self.loads[index];
        let mut outstanding = 0;
        for &chunk in &load.chunks {
            if let Some(ChunkState::Active(progress)) = self.chunks.get_mut(chunk as usize) {
                outstanding += progress.forget_requests();
            }
        }
        load.settle(outstanding);
        debug_assert_eq!(
            load.in_flight, 0,
            "peer {index} had pieces of no chunk in flight"
        );
    }

    /// Takes `chunk` away from peer `index`, keeping the pieces already received.
    pub fn release_chunk(&mut self, index: usize, chunk: u32) {
        if let Some(ChunkState::Active(progress)) = self.chunks.get_mut(chunk as usize)
            && progress.owner == Some(index)
        {
            let outstanding = progress.forget_requests();
            progress.owner = None;
            let load = &mut self.loads[index];
            load.settle(outstanding);
            load.chunks.retain(|&c| c != chunk);
        }
    }

    /// Takes every chunk away from peer `index` (it is dropped, or its path narrowed).
    pub fn release_peer(&mut self, index: usize) {
        for chunk in self.loads[index].chunks.clone() {
            self.release_chunk(index, chunk);
        }
        let load = &self.loads[index];
        debug_assert!(load.chunks.is_empty() && load.in_flight == 0);
    }

    /// The next run of pieces to ask peer `index` for: pieces of its chunks not yet
    /// requested, else a new chunk it holds, else (endgame) one taken over from another
    /// peer. `(chunk, first piece, count)`, at most `room` pieces.
    fn next_request(
        &mut self,
        peers: &[Peer],
        index: usize,
        room: u32,
        now: Instant,
    ) -> Option<(u32, u32, u32)> {
        let limit = room.min(REQUEST_PIECES_MAX);
        // A complete holder that shows only part of its chunks is spreading them: it may
        // refuse to start a chunk ("elsewhere") yet accept the rest of it asked in the same
        // breath, and count the chunk as sent while nobody gets all of it. Ask for the rest
        // once a piece came.
        let spreading = peers[index].complete && !peers[index].has_all();
        // A chunk started from a spreading holder whose rest waits for its first piece.
        let mut awaiting_first_piece = false;
        let in_flight = self.loads[index].in_flight;
        for &chunk in &self.loads[index].chunks {
            let Some(ChunkState::Active(progress)) = self.chunks.get_mut(chunk as usize) else {
                continue;
            };
            // Unless nothing is in flight from this peer and it sent no piece for a while
            // ([`pick::peer_went_quiet`]): what was asked was lost (the request, or every
            // piece it brought), and is asked again here. Waiting for a piece nobody would
            // send stalled a download for good (25% loss, a capped holder). Sooner, a capped
            // holder whose queue outlasts our timeouts still sends, late: asking again then
            // made it send pieces twice, its queue grew, and a loopback download from a
            // holder at 1 MiB/s timed out 84% of its pieces and gave up (tests/json_events.rs,
            // 2 runs in 8 with a wait of four timeouts; 0 in 10 with QUIET_MIN).
            let lost = in_flight == 0
                && progress.requested_at.iter().all(Option::is_none)
                && pick::peer_went_quiet(&peers[index], now);
            if spreading && progress.received.count() == 0 && !lost {
                awaiting_first_piece |= unrequested_run(progress, 1).is_some();
                continue;
            }
            if let Some(run) = unrequested_run(progress, limit) {
                return Some((chunk, run.0, run.1));
            }
        }
        // Nor is another chunk started from it meanwhile: each start counts at the holder as
        // a copy sent, and one downloader starting chunk after chunk during the round trip
        // before the first piece claimed several at once; when its upload slot then went to
        // another peer, their rests waited seconds, the holder offered them again to others
        // after `SPREAD_START_HOLD`, and sent some chunks 4-9 times (tests/sim_delay.rs at
        // RTT 20 ms: the holder uploaded 1.8 copies, and the last chunk first reached the
        // swarm at 7.3 s).
        let hashing_max = (HASHING_BYTES_MAX / u64::from(self.manifest.chunk_bytes)).max(2);
        if awaiting_first_piece
            || self.loads[index].chunks.len() >= CHUNKS_PER_PEER_MAX
            || u64::from(self.hashing) >= hashing_max
        {
            return None;
        }
        let chunk = match pick::pick_chunk(self, &peers[index]) {
            Some(chunk) => chunk,
            // Nothing unclaimed: help where a chunk waits on a busy or slow peer.
            None if self.loads[index].chunks.is_empty() => {
                let (chunk, owner) = pick::chunk_to_take_over(self, peers, index, now)?;
                self.release_chunk(owner, chunk);
                log::debug!(
                    "endgame: node {} takes chunk {chunk} over from node {}",
                    peers[index].node_id,
                    peers[owner].node_id
                );
                chunk
            }
            None => return None,
        };
        let piece_bytes = peers[index].piece_bytes(self.piece_bytes_max);
        let pieces = self.manifest.chunk_len(chunk).div_ceil(piece_bytes);
        let state = &mut self.chunks[chunk as usize];
        match state {
            // Left by a peer whose pieces this one can carry: go on where it stopped.
            ChunkState::Active(progress) if progress.piece_bytes <= piece_bytes => {
                progress.owner = Some(index);
                progress.last_piece_at = now;
            }
            // New, or started in pieces too large for this peer's path: start it over in
            // ours (the bytes already written are written again).
            _ => {
                *state = ChunkState::Active(Box::new(ChunkProgress {
                    owner: Some(index),
                    piece_bytes,
                    received: Bitmap::new(pieces),
                    requested_at: vec![None; pieces as usize],
                    next_unrequested: 0,
                    last_from: peers[index].node_id,
                    last_piece_at: now,
                }))
            }
        }
        self.loads[index].chunks.push(chunk);
        let ChunkState::Active(progress) = &mut self.chunks[chunk as usize] else {
            return None;
        };
        let (first, count) = unrequested_run(progress, limit)?;
        Some((chunk, first, count))
    }

    /// Pieces requested longer than the peer's timeout ago, or overtaken by pieces asked
    /// later of the same paced peer, are taken as lost (to be asked again), and their peers
    /// told ([`Peer::on_pieces_lost`]). Returns the peers whose large pieces stopped
    /// arriving (see [`super::peer::BLACK_HOLE_LOSSES`]).
    pub fn scan_timeouts(
        &mut self,
        peers: &mut [Peer],
        now: Instant,
        stats: &mut crate::node::NodeStats,
    ) -> Vec<usize> {
        if self.scan_due.is_none_or(|t| t > now) {
            return Vec::new();
        }
        let mut narrowed = Vec::new();
        let mut outstanding = false;
        for chunk in self.chunks.iter_mut() {
            let ChunkState::Active(progress) = chunk else {
                continue;
            };
            let Some(owner) = progress.owner else {
                continue;
            };
            let peer = &peers[owner];
            let rto = peer.rto();
            let judged_since = peer.evidence.judged_since();
            // A paced holder sends each peer's pieces in the order asked: a piece asked
            // before one that arrived, and late by a little more than a smoothed round trip
            // (the path may reorder a little), is not coming. TCP's duplicate
            // acknowledgements and QUIC's packet and time thresholds say the same. Pieces
            // asked in one go share a time and are not judged against each other.
            let answered = peer.newest_answered.filter(|_| peer.paced);
            let reorder_wait = peer.srtt.map_or(rto, |srtt| srtt * 9 / 8);
            let (mut lost, mut judged) = (0, 0);
            for (piece, slot) in progress.requested_at.iter_mut().enumerate() {
                let Some(sent) = *slot else {
                    continue;
                };
                let waited = now.saturating_duration_since(sent);
                let overtaken = answered.is_some_and(|t| sent < t) && waited >= reorder_wait;
                if waited >= rto {
                    stats.pieces_timed_out += 1;
                } else if overtaken {
                    stats.pieces_lost_out_of_order += 1;
                } else {
                    outstanding = true;
                    continue;
                }
                judged += u32::from(judged_since.is_some_and(|t| sent >= t));
                *slot = None;
                lost += 1;
                progress.next_unrequested = progress.next_unrequested.min(piece as u32);
            }
            if lost > 0 {
                self.loads[owner].settle(lost);
                // The smallest datagram these pieces could have come in (unstamped).
                let datagram_bytes = progress.piece_bytes + wire::PIECE_OVERHEAD_BYTES as u32;
                if peers[owner].on_pieces_lost(now, lost, judged, datagram_bytes)
                    && !narrowed.contains(&owner)
                {
                    narrowed.push(owner);
                }
            }
        }
        self.scan_due = (outstanding || self.any_in_flight()).then_some(now + SCAN_INTERVAL);
        narrowed
    }

    /// Asserts the account (see the module doc) against the chunk table and `peers`, the
    /// download's list this transfer's peer indices point into. Linear in the chunks and
    /// the pieces of active chunks: a download runs it after every input in debug builds.
    pub fn check_invariants(&self, peers: &[Peer]) {
        assert!(peers.len() <= self.loads.len());
        let mut in_flight = vec![0u32; self.loads.len()];
        let mut hashing = 0;
        for (chunk, state) in self.chunks.iter().enumerate() {
            match state {
                ChunkState::Active(progress) => {
                    let pieces = progress.received.len();
                    assert_eq!(progress.requested_at.len(), pieces as usize);
                    assert!(progress.next_unrequested <= pieces);
                    let mut requested = 0;
                    for (piece, slot) in progress.requested_at.iter().enumerate() {
                        if slot.is_some() {
                            assert!(
                                !progress.received.get(piece as u32),
                                "piece {piece} of chunk {chunk} is both received and requested"
                            );
                            requested += 1;
                        }
                    }
                    match progress.owner {
                        Some(owner) => {
                            assert!(owner < peers.len(), "chunk {chunk}: no peer {owner}");
                            assert!(
                                !peers[owner].dropped,
                                "chunk {chunk} is owned by dropped peer {owner}"
                            );
                            let listed = self.loads[owner]
                                .chunks
                                .iter()
                                .filter(|&&c| c as usize == chunk)
                                .count();
                            assert_eq!(listed, 1, "chunk {chunk}: its owner {owner} lists it");
                            in_flight[owner] += requested;
                        }
                        None => assert_eq!(
                            requested, 0,
                            "chunk {chunk} has pieces requested and no owner"
                        ),
                    }
                }
                ChunkState::Hashing(_) => hashing += 1,
                ChunkState::Missing | ChunkState::Verified => {}
            }
        }
        assert_eq!(self.hashing, hashing, "the hashing count");
        for (index, load) in self.loads.iter().enumerate() {
            assert_eq!(
                load.in_flight, in_flight[index],
                "peer {index}: its in-flight count against its chunks' requests"
            );
            assert!(load.chunks.len() <= CHUNKS_PER_PEER_MAX);
            for &chunk in &load.chunks {
                assert!(
                    matches!(&self.chunks[chunk as usize],
                        ChunkState::Active(progress) if progress.owner == Some(index)),
                    "peer {index} lists chunk {chunk}, which it does not own"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
