//! One chunk of a transfer: missing, arriving (which pieces are in, which are asked and
//! when, who owns it), hashing, or verified. Its fields are the transfer's to change
//! ([`super::Transfer`] keeps the account that ties them to the peers).

use crate::storage::Bitmap;
use std::time::Instant;

/// A chunk whose pieces are arriving.
pub(super) struct ChunkProgress {
    /// The peer (index) asked for it, if any right now.
    pub(super) owner: Option<usize>,
    /// Data bytes per piece of this chunk: what its first owner's path carried (peers on
    /// different paths use different sizes; a chunk keeps one).
    pub(super) piece_bytes: u32,
    pub(super) received: Bitmap,
    /// When each piece was last requested; `None` when not requested (or received).
    pub(super) requested_at: Vec<Option<Instant>>,
    /// First piece that may still need a request.
    pub(super) next_unrequested: u32,
    /// Node that sent most recently, credited when the chunk verifies.
    pub(super) last_from: u32,
    /// When the last piece arrived (or the chunk was assigned).
    pub(super) last_piece_at: Instant,
}

impl ChunkProgress {
    /// Forgets every request of this chunk (they will be asked again); returns how many
    /// there were.
    pub(super) fn forget_requests(&mut self) -> u32 {
        let outstanding = self
            .requested_at
            .iter_mut()
            .filter_map(Option::take)
            .count() as u32;
        self.next_unrequested = 0;
        outstanding
    }
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
    pub(super) fn claimable(&self) -> bool {
        match self {
            ChunkState::Missing => true,
            ChunkState::Active(progress) => progress.owner.is_none(),
            _ => false,
        }
    }
}

/// First run of pieces neither received nor requested, at most `limit` long.
pub(super) fn unrequested_run(progress: &mut ChunkProgress, limit: u32) -> Option<(u32, u32)> {
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
