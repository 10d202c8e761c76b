//! Which chunk a peer is asked for next (rarest first), and which one an idle peer takes
//! over in the endgame: choices read from the transfer's state, which
//! [`super::Transfer::next_request`] then makes.

use super::Transfer;
use super::chunk::{ChunkProgress, ChunkState};
use crate::node::download::pace;
use crate::node::download::peer::{Peer, RTO_MIN};
use std::time::{Duration, Instant};

/// A chunk whose owner sent nothing for this many of its timeouts may be taken over.
const STALE_RTOS: u32 = 4;

/// Nothing of the chunk came from its owner for [`STALE_RTOS`] of the owner's timeouts.
fn chunk_is_stale(progress: &ChunkProgress, owner: &Peer, now: Instant) -> bool {
    now.saturating_duration_since(progress.last_piece_at) >= owner.rto() * STALE_RTOS
}

/// Shortest wait for a piece from a peer with work before what it was asked is taken as
/// never coming (see [`peer_went_quiet`]): a holder capped at 1 MiB/s on loopback, whose
/// timeouts were 40 ms, sends in bursts further apart than four of them.
pub(super) const QUIET_MIN: Duration = Duration::from_secs(1);

/// `peer` had work and sent no piece for [`STALE_RTOS`] of its timeouts, and at least
/// [`QUIET_MIN`]: what it was asked is not coming (a holder slow to send still sends, and
/// each piece restarts the clock).
pub(super) fn peer_went_quiet(peer: &Peer, now: Instant) -> bool {
    peer.evidence.pieces_awaited_for(now) >= (peer.rto() * STALE_RTOS).max(QUIET_MIN)
}

/// A chunk for this peer: an abandoned active one first, else the rarest missing one it
/// holds (and did not send us a bad copy of).
pub(super) fn pick_chunk(transfer: &Transfer, peer: &Peer) -> Option<u32> {
    let count = transfer.chunks.len() as u32;
    if count == 0 {
        return None;
    }
    let mut abandoned = None;
    let mut rarest: Option<(u16, u32)> = None;
    // Every (downloader, peer) pair starts its search at its own chunk (Fibonacci
    // hashing of both ids): downloaders served by the same holder then fetch different
    // chunks from it, and have something to trade.
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
                if holders <= 1 || looked >= super::RAREST_WINDOW_CHUNKS {
                    break;
                }
            }
            _ => {}
        }
    }
    abandoned.or(rarest.map(|(_, chunk)| chunk)).or_else(|| {
        // A bad copy may have been damaged on the way: when this peer has nothing else
        // to give, it may try a chunk it sent badly again (it is dropped after
        // BAD_CHUNKS_MAX bad chunks), rather than leave the download stuck when no other
        // peer holds it.
        let have = peer.have.as_ref()?;
        (0..count).find(|&chunk| have.get(chunk) && transfer.chunks[chunk as usize].claimable())
    })
}

/// Endgame: a chunk peer `index` holds that another peer owns and could give up: one of
/// several it has not started, or one it has sent nothing of for a while, or would be
/// much slower to finish. `(chunk, owner)`, the one with the fewest pieces in.
pub(super) fn chunk_to_take_over(
    transfer: &Transfer,
    peers: &[Peer],
    index: usize,
    now: Instant,
) -> Option<(u32, usize)> {
    // A peer not heard from since its pieces began to time out may be gone: its measured
    // pace is of the past, and a chunk it took over would wait on it again (in a swarm
    // whose downloaders leave when done, a chunk went round a holder, a downloader and a
    // peer gone, three times, 2026-12-07). One that answers anything since is there.
    let candidate = &peers[index];
    if candidate
        .first_loss_in_a_row
        .is_some_and(|lost| candidate.last_heard <= lost)
    {
        return None;
    }
    let mut best: Option<(u32, u32)> = None;
    let typical_gap = pace::typical_gap(peers).unwrap_or(RTO_MIN);
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
        let stale = chunk_is_stale(progress, &peers[owner], now);
        // A chunk the owner has not asked for yet costs nothing to take; one in flight is
        // taken only when it stalled, or the pieces already on their way would be wasted.
        let untouched =
            progress.received.count() == 0 && progress.requested_at.iter().all(Option::is_none);
        let missing = progress.received.len() - progress.received.count();
        let outpaced = pace::outpaced(&peers[owner], &peers[index], missing, typical_gap);
        if stale || outpaced || (untouched && transfer.loads[owner].chunks.len() > 1) {
            let received = progress.received.count();
            if best.is_none_or(|(fewest, _)| received < fewest) {
                best = Some((received, chunk));
            }
        }
    }
    let (_, chunk) = best?;
    let ChunkState::Active(progress) = &transfer.chunks[chunk as usize] else {
        return None;
    };
    Some((chunk, progress.owner?))
}
