//! The state of a running transfer and the choice of what to ask whom.
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

use crate::mtu::PathMtu;
use crate::storage::{Bitmap, Content, ContentWriter, Manifest};
use crate::wire;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most chunks one peer is working on at once.
pub const CHUNKS_PER_PEER_MAX: usize = 16;
/// Most pieces one request asks for: as many as a holder serves for one request.
pub const REQUEST_PIECES_MAX: u32 = crate::wire::PIECES_PER_REQUEST_MAX;
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
/// Retransmission timeout bounds, and its value before any round trip was measured.
const RTO_MIN: Duration = Duration::from_millis(40);
const RTO_MAX: Duration = Duration::from_secs(1);
const RTO_START: Duration = Duration::from_millis(250);
/// A chunk whose owner sent nothing for this many of its timeouts may be taken over.
const STALE_RTOS: u32 = 4;

pub(super) struct Peer {
    pub node_id: u32,
    pub addr: SocketAddr,
    /// The cookie this peer handed us (0: none yet).
    pub cookie: u64,
    /// Its have-map, once it answered.
    pub have: Option<Bitmap>,
    /// The tracker said it holds the whole file.
    pub complete: bool,
    pub window: u32,
    pub in_flight: u32,
    /// Chunks assigned to this peer and not yet complete.
    pub chunks: Vec<u32>,
    pub last_heard: Instant,
    pub last_asked: Instant,
    pub srtt: Option<Duration>,
    pub chunks_verified: u32,
    pub bytes_received: u64,
    /// Pieces received from it, pieces of it that timed out, and when its first piece came:
    /// the loss and rate `status` shows.
    pub pieces_received: u64,
    pub pieces_lost: u64,
    pub first_piece_at: Option<Instant>,
    pub bad_chunks: u32,
    pub dropped: bool,
    /// It refused a request for want of an upload slot: not asked for pieces until then.
    pub busy_until: Option<Instant>,
    /// Refusals in a row (a piece received resets it).
    pub busy_streak: u32,
    /// How fast it delivers (see [`super::pace`]).
    pub pace: super::pace::Pace,
    /// How large a datagram reaches us from it whole (see [`crate::mtu`]).
    pub path: PathMtu,
    /// The pace we ask of it (see [`super::congestion`]), when it is paced at all.
    pub congestion: super::congestion::Congestion,
    pub paced: bool,
    /// The latest time a piece was asked of this peer among those that arrived: a holder
    /// sends what it is asked in order, so a piece asked before that and still missing
    /// was lost (see `scan_timeouts`).
    pub newest_answered: Option<Instant>,
    /// Pieces of this peer that timed out since one last arrived, and when the first of
    /// them did: many in a row for a while mean large datagrams no longer cross the path.
    pub pieces_lost_in_a_row: u32,
    pub first_loss_in_a_row: Option<Instant>,
    /// Whether it answers and what became of its pieces (see [`super::diagnosis`]).
    pub evidence: super::diagnosis::PeerEvidence,
}

impl Peer {
    pub fn new(
        node_id: u32,
        addr: SocketAddr,
        complete: bool,
        route_mtu: u32,
        pace: crate::node::PaceMode,
        now: Instant,
    ) -> Peer {
        Peer {
            node_id,
            addr,
            cookie: 0,
            have: None,
            complete,
            window: WINDOW_START,
            in_flight: 0,
            chunks: Vec::new(),
            last_heard: now,
            last_asked: now,
            srtt: None,
            chunks_verified: 0,
            bytes_received: 0,
            pieces_received: 0,
            pieces_lost: 0,
            first_piece_at: None,
            bad_chunks: 0,
            dropped: false,
            busy_until: None,
            busy_streak: 0,
            pace: super::pace::Pace::default(),
            path: PathMtu::new(addr, route_mtu, now),
            congestion: super::congestion::Congestion::new(now),
            paced: pace.applies(route_mtu),
            newest_answered: None,
            pieces_lost_in_a_row: 0,
            first_loss_in_a_row: None,
            evidence: super::diagnosis::PeerEvidence::default(),
        }
    }

    /// The data bytes of a piece this peer can send us whole, at most `configured`, at least
    /// [`wire::PIECE_BYTES_MIN`] (a path narrower than that, 1,088 bytes of IPv4, is not
    /// served).
    pub fn piece_bytes(&self, configured: u32) -> u32 {
        // A paced peer stamps its pieces (see `wire::StampedPiece`).
        let overhead = if self.paced {
            wire::STAMPED_PIECE_OVERHEAD_BYTES
        } else {
            wire::PIECE_OVERHEAD_BYTES
        };
        let fits = (self.path.datagram_bytes() as usize).saturating_sub(overhead);
        configured
            .min(fits as u32)
            .max(wire::PIECE_BYTES_MIN as u32)
    }

    /// Most pieces to keep in flight from this peer: its window, and for a paced peer no
    /// more than its pace delivers in a short time (see [`super::congestion`]).
    pub fn request_window(&self) -> u32 {
        if !self.paced {
            return self.window;
        }
        self.window.min(
            self.congestion
                .in_flight_pieces_max(self.path.datagram_bytes()),
        )
    }

    pub fn rto(&self) -> Duration {
        self.srtt.map_or(RTO_START, |srtt| {
            (srtt * 4 + Duration::from_millis(10)).clamp(RTO_MIN, RTO_MAX)
        })
    }

    /// Waiting for something from this peer: its have-map or pieces.
    pub fn waiting(&self) -> bool {
        !self.dropped && (self.have.is_none() || self.in_flight > 0)
    }

    /// Refused us a slot a moment ago: wait before asking it for pieces again.
    pub fn busy(&self, now: Instant) -> bool {
        self.busy_until.is_some_and(|t| t > now)
    }

    /// A dropped peer may be used again: it comes back from a new address (it restarted),
    /// or, unless it sent bad chunks, it has been quiet a while (a partition healed).
    pub fn may_return(&self, addr: SocketAddr, now: Instant) -> bool {
        self.dropped
            && (self.addr != addr
                || (self.bad_chunks < super::BAD_CHUNKS_MAX
                    && now.saturating_duration_since(self.last_heard) >= super::DROPPED_PEER_RETRY))
    }

    /// Holds every chunk (so its have-map never needs refreshing).
    pub fn has_all(&self) -> bool {
        self.have.as_ref().is_some_and(Bitmap::is_full)
    }
}

/// A chunk whose pieces are arriving.
pub(super) struct ChunkProgress {
    /// The peer (index) asked for it, if any right now.
    pub owner: Option<usize>,
    /// Data bytes per piece of this chunk: what its first owner's path carried (peers on
    /// different paths use different sizes; a chunk keeps one).
    pub piece_bytes: u32,
    pub received: Bitmap,
    /// When each piece was last requested; `None` when not requested (or received).
    pub requested_at: Vec<Option<Instant>>,
    /// First piece that may still need a request.
    pub next_unrequested: u32,
    /// Node that sent most recently, credited when the chunk verifies.
    pub last_from: u32,
    /// When the last piece arrived (or the chunk was assigned).
    pub last_piece_at: Instant,
}

pub(super) enum ChunkState {
    Missing,
    Active(Box<ChunkProgress>),
    /// Complete and being hashed; credited to this node if it verifies.
    Hashing(u32),
    Verified,
}

impl ChunkState {
    /// Free for a peer to be asked for: missing, or started and left by the peer that had it.
    fn claimable(&self) -> bool {
        match self {
            ChunkState::Missing => true,
            ChunkState::Active(progress) => progress.owner.is_none(),
            _ => false,
        }
    }
}

pub(super) struct Transfer {
    pub manifest: Arc<Manifest>,
    pub mapping: Arc<dyn Content>,
    /// Writes pieces into the mapping's file; flushed before a chunk is hashed.
    pub writer: Box<dyn ContentWriter>,
    pub chunks: Vec<ChunkState>,
    /// How many known peers hold each chunk.
    pub availability: Vec<u16>,
    /// Largest piece asked for (`--piece-size`); each chunk's is at most this, and what its
    /// owner's path carries.
    pub piece_bytes_max: u32,
    /// (chunk, node) pairs that failed their hash.
    pub bad_pairs: HashSet<(u32, u32)>,
    pub scan_due: Option<Instant>,
    pub started_at: Instant,
    /// Chunks complete and waiting for (or in) their hash check and write-back.
    pub hashing: u32,
    /// This node's id: where its search for chunks starts differs from other downloaders'.
    pub own_node_id: u32,
}

impl Transfer {
    pub fn new(
        manifest: Arc<Manifest>,
        mapping: Arc<dyn Content>,
        piece_bytes_max: u32,
        own_node_id: u32,
        now: Instant,
    ) -> Transfer {
        let count = manifest.chunk_count() as usize;
        Transfer {
            chunks: (0..count).map(|_| ChunkState::Missing).collect(),
            availability: vec![0; count],
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
}

/// The next run of pieces to ask peer `index` for: pieces of its chunks not yet requested,
/// else a new chunk it holds, else (endgame) one taken over from another peer.
/// `(chunk, first piece, count)`, at most `room` pieces.
pub(super) fn next_request(
    transfer: &mut Transfer,
    peers: &mut [Peer],
    index: usize,
    room: u32,
    now: Instant,
) -> Option<(u32, u32, u32)> {
    let limit = room.min(REQUEST_PIECES_MAX);
    // A complete holder that shows only part of its chunks is spreading them: it may refuse
    // to start a chunk ("elsewhere") yet accept the rest of it asked in the same breath, and
    // count the chunk as sent while nobody gets all of it. Ask for the rest once a piece came.
    let spreading = peers[index].complete && !peers[index].has_all();
    // A chunk started from a spreading holder whose rest waits for its first piece.
    let mut awaiting_first_piece = false;
    for &chunk in &peers[index].chunks {
        let Some(ChunkState::Active(progress)) = transfer.chunks.get_mut(chunk as usize) else {
            continue;
        };
        if spreading && progress.received.count() == 0 {
            awaiting_first_piece |= unrequested_run(progress, 1).is_some();
            continue;
        }
        if let Some(run) = unrequested_run(progress, limit) {
            return Some((chunk, run.0, run.1));
        }
    }
    // Nor is another chunk started from it meanwhile: each start counts at the holder as a
    // copy sent, and one downloader starting chunk after chunk during the round trip before
    // the first piece claimed several at once; when its upload slot then went to another
    // peer, their rests waited seconds, the holder offered them again to others after
    // `SPREAD_START_HOLD`, and sent some chunks 4-9 times (tests/sim_delay.rs at RTT 20 ms:
    // the holder uploaded 1.8 copies, and the last chunk first reached the swarm at 7.3 s).
    let hashing_max = (HASHING_BYTES_MAX / u64::from(transfer.manifest.chunk_bytes)).max(2);
    if awaiting_first_piece
        || peers[index].chunks.len() >= CHUNKS_PER_PEER_MAX
        || u64::from(transfer.hashing) >= hashing_max
    {
        return None;
    }
    let chunk = match pick_chunk(transfer, &peers[index]) {
        Some(chunk) => chunk,
        // Nothing unclaimed: help where a chunk waits on a busy or slow peer.
        None if peers[index].chunks.is_empty() => take_over(transfer, peers, index, now)?,
        None => return None,
    };
    let piece_bytes = peers[index].piece_bytes(transfer.piece_bytes_max);
    let pieces = transfer.manifest.chunk_len(chunk).div_ceil(piece_bytes);
    let state = &mut transfer.chunks[chunk as usize];
    match state {
        // Left by a peer whose pieces this one can carry: go on where it stopped.
        ChunkState::Active(progress) if progress.piece_bytes <= piece_bytes => {
            progress.owner = Some(index);
            progress.last_piece_at = now;
        }
        // New, or started in pieces too large for this peer's path: start it over in ours
        // (the bytes already written are written again).
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
    peers[index].chunks.push(chunk);
    let ChunkState::Active(progress) = &mut transfer.chunks[chunk as usize] else {
        return None;
    };
    let (first, count) = unrequested_run(progress, limit)?;
    Some((chunk, first, count))
}

/// First run of pieces neither received nor requested, at most `limit` long.
fn unrequested_run(progress: &mut ChunkProgress, limit: u32) -> Option<(u32, u32)> {
    let pieces = progress.received.len();
    let mut first = progress.next_unrequested;
    while first < pieces
        && (progress.received.get(first) || progress.requested_at[first as usize].is_some())
    {
        first += 1;
    }
    progress.next_unrequested = first;
    if first >= pieces {
        return None;
    }
    let mut count = 1;
    while count < limit
        && first + count < pieces
        && !progress.received.get(first + count)
        && progress.requested_at[(first + count) as usize].is_none()
    {
        count += 1;
    }
    Some((first, count))
}

/// A chunk for this peer: an abandoned active one first, else the rarest missing one it
/// holds (and did not send us a bad copy of).
fn pick_chunk(transfer: &Transfer, peer: &Peer) -> Option<u32> {
    let count = transfer.chunks.len() as u32;
    if count == 0 {
        return None;
    }
    let mut abandoned = None;
    let mut rarest: Option<(u16, u32)> = None;
    // Every (downloader, peer) pair starts its search at its own chunk (Fibonacci hashing of
    // both ids): downloaders served by the same holder then fetch different chunks from it,
    // and have something to trade.
    let pair = (u64::from(transfer.own_node_id) << 32) | u64::from(peer.node_id);
    let start = ((pair.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % u64::from(count)) as u32;
    let mut looked = 0;
    for step in 0..count {
        let chunk = (start + step) % count;
        match &transfer.chunks[chunk as usize] {
            ChunkState::Active(progress)
                if progress.owner.is_none() && transfer.usable(peer, chunk) =>
            {
                abandoned = Some(chunk);
                break;
            }
            ChunkState::Missing if transfer.usable(peer, chunk) => {
                let holders = transfer.availability[chunk as usize];
                if rarest.is_none_or(|(best, _)| holders < best) {
                    rarest = Some((holders, chunk));
                }
                looked += 1;
                // A chunk only this peer holds cannot be beaten; past the window, settle.
                if holders <= 1 || looked >= RAREST_WINDOW_CHUNKS {
                    break;
                }
            }
            _ => {}
        }
    }
    abandoned.or(rarest.map(|(_, chunk)| chunk)).or_else(|| {
        // A bad copy may have been damaged on the way: when this peer has nothing else to
        // give, it may try a chunk it sent badly again (it is dropped after BAD_CHUNKS_MAX
        // bad chunks), rather than leave the download stuck when no other peer holds it.
        let have = peer.have.as_ref()?;
        (0..count).find(|&chunk| have.get(chunk) && transfer.chunks[chunk as usize].claimable())
    })
}

/// Endgame: takes a chunk this peer holds away from a peer that has several, or that has
/// sent nothing for a while. The pieces already received stay.
fn take_over(
    transfer: &mut Transfer,
    peers: &mut [Peer],
    index: usize,
    now: Instant,
) -> Option<u32> {
    let mut best: Option<(u32, u32)> = None;
    let typical_gap = super::pace::typical_gap(peers).unwrap_or(RTO_MIN);
    for chunk in 0..transfer.chunks.len() as u32 {
        let ChunkState::Active(progress) = &transfer.chunks[chunk as usize] else {
            continue;
        };
        let Some(owner) = progress.owner else {
            continue;
        };
        if owner == index || !transfer.usable(&peers[index], chunk) {
            continue;
        }
        let stale = now.saturating_duration_since(progress.last_piece_at)
            >= peers[owner].rto() * STALE_RTOS;
        // A chunk the owner has not asked for yet costs nothing to take; one in flight is
        // taken only when it stalled, or the pieces already on their way would be wasted.
        let untouched =
            progress.received.count() == 0 && progress.requested_at.iter().all(Option::is_none);
        let missing = progress.received.len() - progress.received.count();
        let outpaced = super::pace::outpaced(&peers[owner], &peers[index], missing, typical_gap);
        if stale || outpaced || (untouched && peers[owner].chunks.len() > 1) {
            let received = progress.received.count();
            if best.is_none_or(|(fewest, _)| received < fewest) {
                best = Some((received, chunk));
            }
        }
    }
    let (_, chunk) = best?;
    let ChunkState::Active(progress) = &mut transfer.chunks[chunk as usize] else {
        return None;
    };
    let owner = progress.owner.take()?;
    let outstanding = progress
        .requested_at
        .iter_mut()
        .filter_map(Option::take)
        .count() as u32;
    progress.next_unrequested = 0;
    let previous = &mut peers[owner];
    previous.in_flight = previous.in_flight.saturating_sub(outstanding);
    previous.chunks.retain(|&c| c != chunk);
    log::debug!(
        "endgame: node {} takes chunk {chunk} over from node {}",
        peers[index].node_id,
        peers[owner].node_id
    );
    Some(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    const CHUNK_BYTES: u32 = 16 << 10;

    /// A transfer of a 3-chunk file, its partial file opened as a download opens it, in a
    /// scratch node directory.
    fn transfer(tag: &str) -> Transfer {
        let dir =
            std::env::temp_dir().join(format!("torrent-transfer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = crate::storage::StateDir::open(&dir).unwrap();
        let hashes = vec![[0u8; 20]; 3];
        let manifest = Manifest::new(
            "f.bin".into(),
            3 * u64::from(CHUNK_BYTES),
            CHUNK_BYTES,
            hashes,
        );
        let (mapping, _) = state.open_partial(&manifest).unwrap();
        Transfer::new(Arc::new(manifest), mapping, 8 << 10, 7, Instant::now())
    }

    fn active(owner: Option<usize>) -> ChunkState {
        ChunkState::Active(Box::new(ChunkProgress {
            owner,
            piece_bytes: 8 << 10,
            received: Bitmap::new(2),
            requested_at: vec![None; 2],
            next_unrequested: 0,
            last_from: 0,
            last_piece_at: Instant::now(),
        }))
    }

    fn bitmap(chunks: &[u32]) -> Bitmap {
        let mut have = Bitmap::new(3);
        for &chunk in chunks {
            have.set(chunk);
        }
        have
    }

    /// A spreading holder's map is asked again once it offers nothing this download could
    /// ask for now: a chunk another peer is sending us does not count, one left by its
    /// peer does.
    #[test]
    fn a_map_offers_only_chunks_nobody_is_sending_us() {
        let mut transfer = transfer("offers");
        transfer.chunks[0] = active(Some(0));
        transfer.chunks[1] = ChunkState::Verified;
        assert!(!transfer.offers_unclaimed(&bitmap(&[0, 1])));
        assert!(
            transfer.holds_needed(&bitmap(&[0, 1])),
            "still needed, though"
        );
        assert!(
            transfer.offers_unclaimed(&bitmap(&[0, 2])),
            "chunk 2 is missing"
        );
        transfer.chunks[0] = active(None);
        assert!(transfer.offers_unclaimed(&bitmap(&[0])), "chunk 0 was left");
    }

    /// From a holder spreading its chunks (complete, showing only some), the rest of a chunk
    /// is asked once its first piece came; until then no other chunk is started from it, so
    /// that a downloader claims one chunk at a time there (see `next_request`).
    #[test]
    fn a_spreading_holder_is_asked_one_chunk_at_a_time() {
        let mut transfer = transfer("spreading");
        let now = Instant::now();
        let addr = SocketAddr::from(([10, 0, 0, 2], 4000));
        let mut peer = Peer::new(3, addr, true, 65_536, crate::node::PaceMode::Off, now);
        peer.have = Some(bitmap(&[0, 1]));
        let mut peers = vec![peer];
        // Room for one piece: the chunk's second piece is left for later.
        let (chunk, first, count) = next_request(&mut transfer, &mut peers, 0, 1, now).unwrap();
        assert_eq!((first, count), (0, 1));
        fn chunk_progress(transfer: &mut Transfer, chunk: u32) -> &mut ChunkProgress {
            match transfer.chunks.get_mut(chunk as usize) {
                Some(ChunkState::Active(progress)) => progress,
                _ => panic!("chunk {chunk} is not active"),
            }
        }
        // What `fill_windows` records of a request sent.
        chunk_progress(&mut transfer, chunk).requested_at[0] = Some(now);
        assert_eq!(
            next_request(&mut transfer, &mut peers, 0, 8, now),
            None,
            "another chunk was started before the first piece of chunk {chunk} came"
        );
        // The first piece came: the rest of the chunk is asked, and only then a new one.
        let progress = chunk_progress(&mut transfer, chunk);
        progress.requested_at[0] = None;
        progress.received.set(0);
        assert_eq!(
            next_request(&mut transfer, &mut peers, 0, 8, now),
            Some((chunk, 1, 1))
        );
        chunk_progress(&mut transfer, chunk).requested_at[1] = Some(now);
        let (other, first, _) = next_request(&mut transfer, &mut peers, 0, 8, now).unwrap();
        assert_ne!(other, chunk);
        assert_eq!(first, 0);
    }

    /// A chunk a peer refused leaves its have-map and the availability count together, so
    /// that its next have-map counts it once, not twice.
    #[test]
    fn availability_counts_each_peer_showing_a_chunk_once() {
        let mut transfer = transfer("availability");
        let first = bitmap(&[1, 2]);
        transfer.replace_have(None, Some(&first));
        assert_eq!(transfer.availability, [0, 1, 1]);
        // Refused chunk 1 ("elsewhere"): the download clears the bit and forgets the holder.
        let mut refused = first.clone();
        refused.clear(1);
        transfer.forget_holder_of(1);
        assert_eq!(transfer.availability, [0, 0, 1]);
        // Its next have-map shows chunk 1 again.
        transfer.replace_have(Some(&refused), Some(&first));
        assert_eq!(transfer.availability, [0, 1, 1]);
        transfer.replace_have(Some(&first), None);
        assert_eq!(transfer.availability, [0, 0, 0]);
    }
}
