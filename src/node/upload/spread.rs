//! Spreading a complete file (BitTorrent's "super-seeding"): how many times each chunk was
//! sent, and which chunks a holder whose upload is in demand shows and starts: those sent
//! the fewest times. Whether the upload is in demand is the uploader's to say (its slots);
//! this type keeps only the counts.

use crate::storage::{Bitmap, Manifest};
use crate::wire::Hash;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Complete files whose chunks' sending is counted (the least recently served is
/// forgotten): what a have-map shows while the upload is in demand.
pub const SPREAD_FILES_MAX: usize = 64;
/// A chunk started this recently and not yet queued whole counts as sent: another peer does
/// not start it meanwhile. Past this, the peer may have given it up, and it is offered again.
const SPREAD_START_HOLD: Duration = Duration::from_secs(1);
/// The least-sent chunks are worked out again at most this often (it looks at every chunk
/// of the file, up to [`crate::wire::CHUNKS_MAX`], for every request that starts a chunk).
const SPREAD_RECOMPUTE: Duration = Duration::from_millis(5);

/// How many bytes of each chunk of one complete file were queued for peers, and when each
/// was last started (milliseconds since the uploader's start, plus one; 0: never).
struct FileCounts {
    info_hash: Hash,
    queued_bytes: Vec<u64>,
    started_ms: Vec<u32>,
}

/// The sending counts of the complete files served lately, and the last least-sent have-map.
#[derive(Default)]
pub struct Spread {
    /// Most recently served first; at most [`SPREAD_FILES_MAX`].
    files: VecDeque<FileCounts>,
    /// The last have-map of least-sent chunks computed, for which file and when.
    shown: Option<(Hash, Instant, Bitmap)>,
}

impl Spread {
    /// The chunks of a complete file sent the fewest times (a chunk counts as sent once any
    /// of it was queued), to show while the upload is in demand; `None` when nothing of the
    /// file was sent yet. Worked out again at most every [`SPREAD_RECOMPUTE`]. `now_ms` is
    /// the uploader's clock in the unit of [`Spread::count_sent`]'s `started_ms`.
    pub fn least_sent(
        &mut self,
        now: Instant,
        now_ms: u32,
        manifest: &Manifest,
    ) -> Option<&Bitmap> {
        let fresh = self.shown.as_ref().is_some_and(|(info_hash, at, shown)| {
            *info_hash == manifest.info_hash
                && now.saturating_duration_since(*at) < SPREAD_RECOMPUTE
                && shown.count() > 0
        });
        if !fresh {
            let shown = self.compute_least_sent(now_ms, manifest)?;
            self.shown = Some((manifest.info_hash, now, shown));
        }
        self.shown.as_ref().map(|(_, _, shown)| shown)
    }

    fn compute_least_sent(&self, now_ms: u32, manifest: &Manifest) -> Option<Bitmap> {
        let counts = self
            .files
            .iter()
            .find(|s| s.info_hash == manifest.info_hash)?;
        let hold_ms = SPREAD_START_HOLD.as_millis() as u32;
        let times = |chunk: u32| {
            let len = u64::from(manifest.chunk_len(chunk).max(1));
            let queued = counts.queued_bytes[chunk as usize];
            let started = counts.started_ms[chunk as usize];
            let sending = queued % len != 0 && started > 0 && now_ms - started < hold_ms;
            queued / len + u64::from(sending)
        };
        let count = manifest.chunk_count();
        let fewest = (0..count).map(times).min()?;
        let mut shown = Bitmap::new(count);
        for chunk in (0..count).filter(|&chunk| times(chunk) == fewest) {
            shown.set(chunk);
        }
        Some(shown)
    }

    /// Counts `bytes` of `chunk` of a complete file as queued for a peer; `started_ms` when
    /// the range starts the chunk.
    pub fn count_sent(
        &mut self,
        info_hash: Hash,
        chunk_count: u32,
        chunk: u32,
        bytes: u32,
        started_ms: Option<u32>,
    ) {
        let index = match self.files.iter().position(|s| s.info_hash == info_hash) {
            Some(index) => index,
            None => {
                if self.files.len() >= SPREAD_FILES_MAX {
                    self.files.pop_back();
                }
                self.files.push_front(FileCounts {
                    info_hash,
                    queued_bytes: vec![0; chunk_count as usize],
                    started_ms: vec![0; chunk_count as usize],
                });
                0
            }
        };
        let counts = &mut self.files[index];
        if let Some(queued) = counts.queued_bytes.get_mut(chunk as usize) {
            *queued += u64::from(bytes);
        }
        if let (Some(started), Some(ms)) = (counts.started_ms.get_mut(chunk as usize), started_ms) {
            *started = ms;
            // Sent once more than the others now: a second peer asking for it before the
            // next recompute is sent elsewhere (two downloaders often ask for the same
            // least-sent chunk within a millisecond; serving both cost the capped holder of
            // S3 a quarter of its upload).
            if let Some((shown_hash, _, shown)) = &mut self.shown
                && *shown_hash == info_hash
                && chunk < shown.len()
            {
                shown.clear(chunk);
            }
        }
        if index > 0 {
            // Most recently served first, so that the least recent is forgotten.
            self.files.swap(0, index);
        }
    }

    /// Forgets the have-map shown for `info_hash` (the file is withdrawn or changed).
    pub fn forget_shown(&mut self, info_hash: Hash) {
        if self
            .shown
            .as_ref()
            .is_some_and(|(shown, _, _)| *shown == info_hash)
        {
            self.shown = None;
        }
    }

    /// Bytes of each chunk of the complete file `info_hash` queued for peers so far.
    pub fn chunk_sends(&self, info_hash: Hash) -> Option<Vec<u64>> {
        self.files
            .iter()
            .find(|s| s.info_hash == info_hash)
            .map(|s| s.queued_bytes.clone())
    }
}
