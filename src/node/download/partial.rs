//! The download's file in storage, from the partial file to the user's: the transfer that
//! fills it (chunks an earlier run verified are checked again before they count), each
//! verified chunk recorded, and the whole published. The node's table of files
//! ([`LocalFile`]) lists the file from the start, so that its chunks are served as they
//! verify. When the storage is full, the download decides what to do (see `Deadlines`).

use super::transfer::Transfer;
use crate::node::{LocalFile, NodeEvent, Parts};
use crate::storage::{Bitmap, Content, FileStamp, Manifest};
use crate::wire::{self, Hash};
use std::sync::Arc;
use std::time::Instant;

/// The transfer of download run `run` that fills `manifest`'s partial file, `content`, whose chunks in `claimed`
/// an earlier run recorded as verified: those go to the hashers again (a job each) and
/// count only if they match. The file enters the node's table holding nothing yet.
pub(super) fn begin_transfer(
    run: u64,
    parts: &mut Parts<'_>,
    now: Instant,
    manifest: Manifest,
    content: Arc<dyn Content>,
    claimed: &Bitmap,
) -> Transfer {
    let count = manifest.chunk_count();
    let manifest = Arc::new(manifest);
    let piece_bytes_max = parts
        .config
        .piece_bytes
        .clamp(1, wire::PIECE_BYTES_MAX as u32);
    let mut transfer = Transfer::new(
        run,
        Arc::clone(&manifest),
        Arc::clone(&content),
        piece_bytes_max,
        parts.config.node_id,
        now,
    );
    for chunk in (0..count).filter(|&c| claimed.get(c)) {
        transfer.recheck(chunk);
        parts.out.event(NodeEvent::Job(transfer.check_job(chunk)));
    }
    parts.files.insert(
        manifest.info_hash,
        LocalFile {
            manifest: Arc::clone(&manifest),
            mapping: content,
            have: Bitmap::new(count),
            acknowledged_chunks: None,
            announce_due: None,
            stamp: None,
            info_bytes: Default::default(),
        },
    );
    transfer
}

/// Records that `chunk` of `info_hash` verified: held in the node's table, and in the
/// have-file (a failure to write that is logged: the chunk is fetched again after a
/// restart). Whether the file is now whole; `None` when the table no longer lists it.
pub(super) fn record_verified(parts: &mut Parts<'_>, info_hash: &Hash, chunk: u32) -> Option<bool> {
    let file = parts.files.get_mut(info_hash)?;
    file.have.set(chunk);
    if let Err(error) = parts.state.record_verified(info_hash, &file.have, chunk) {
        log::warn!("cannot record chunk {chunk} as verified: {error}");
    }
    Some(file.have.is_full())
}

/// A file whose every chunk verified was published (see `Storage::publish`): from now on
/// it is the user's, served from there and watched for changes.
pub(super) fn published(
    parts: &mut Parts<'_>,
    manifest: &Manifest,
    serving: Arc<dyn Content>,
    stamp: FileStamp,
) {
    if let Some(file) = parts.files.get_mut(&manifest.info_hash) {
        file.have = Bitmap::full(manifest.chunk_count());
        file.mapping = serving;
        file.stamp = Some(stamp);
    }
}
