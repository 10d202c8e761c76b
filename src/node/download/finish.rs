//! How a download ends, in words: what it says when the file is published, and what becomes
//! of the partial file of one that failed.

use super::asked::Asked;
use super::peer::Peer;
use crate::node::{Event, PartialFate, Parts, Source};
use crate::storage::Manifest;
use crate::wire::{self, Hash};

/// What published download `id` reports: the file, its size, the time, and the peers whose
/// chunks verified (by address for peers from a standard tracker, `by_address`, which are
/// known by address only).
pub(super) fn downloaded(
    id: u64,
    manifest: &Manifest,
    seconds: f64,
    peers: &[Peer],
    by_address: bool,
) -> Event {
    let sources = peers.iter().filter(|p| p.chunks_verified > 0);
    let sources = sources.map(|p| Source {
        node: (!by_address).then_some(p.node_id),
        addr: p.addr,
        chunks: p.chunks_verified,
    });
    Event::Downloaded {
        id,
        name: manifest.name.clone(),
        info_hash: manifest.info_hash,
        bytes: manifest.file_bytes,
        chunks: manifest.chunk_count(),
        seconds,
        sources: sources.collect(),
    }
}

/// What failed download `id` of what `asked` says reports: why (`reason`), and what
/// became of its partial file ([`keep_or_release`]).
pub(super) fn failed(parts: &mut Parts<'_>, id: u64, asked: &Asked, reason: String) -> Event {
    let partial = match asked.info_hash() {
        Some(info_hash) => keep_or_release(parts, info_hash),
        None => PartialFate::None,
    };
    Event::Failed {
        id,
        name: asked.name().to_string(),
        info_hash: asked.info_hash(),
        reason,
        partial,
    }
}

/// What becomes of a failed download's partial file, said after the failure: with chunks
/// verified, it stays for the next `download` of the name to resume (and `status` lists
/// it); with none, it is removed, so that no reserved space is left behind unseen.
pub(super) fn keep_or_release(parts: &mut Parts<'_>, info_hash: Hash) -> PartialFate {
    match parts.state.partial_summary(&info_hash) {
        Some(partial) if partial.verified_bytes > 0 => keep_partial(parts, info_hash),
        Some(_) => remove_partial(parts, info_hash),
        None => PartialFate::None,
    }
}

/// Keeps the partial file of `info_hash` for a later `download` to resume: where it is and
/// how to resume it.
pub(crate) fn keep_partial(parts: &mut Parts<'_>, info_hash: Hash) -> PartialFate {
    let Some(partial) = parts.state.partial_summary(&info_hash) else {
        return PartialFate::None;
    };
    PartialFate::Kept {
        path: parts.state.partial_path(&info_hash).display().to_string(),
        verified_bytes: partial.verified_bytes,
        file_bytes: partial.file_bytes,
        resume: resume_command(parts.config.standard_tracker, &partial),
    }
}

/// Removes the partial file of `info_hash` (data, have-file and manifest), and lets go of
/// it in the node's table (the file is open while it is listed, and its space stays taken
/// until it is closed): what was released.
pub(crate) fn remove_partial(parts: &mut Parts<'_>, info_hash: Hash) -> PartialFate {
    let Some(partial) = parts.state.partial_summary(&info_hash) else {
        return PartialFate::None;
    };
    if parts
        .files
        .get(&info_hash)
        .is_some_and(|file| !file.complete())
    {
        parts.files.remove(&info_hash);
    }
    match parts.state.remove_partial(&info_hash) {
        Ok(()) => PartialFate::Removed {
            verified_bytes: partial.verified_bytes,
            released_bytes: partial.disk_bytes,
        },
        Err(error) => PartialFate::NotRemoved {
            error: error.to_string(),
        },
    }
}

/// The console command that resumes a partial download: by name from our tracker; by name
/// and info hash from a standard one, which knows no names.
pub(crate) fn resume_command(
    standard_tracker: bool,
    partial: &crate::storage::PartialSummary,
) -> String {
    if standard_tracker {
        format!(
            "download {}@{}",
            partial.name,
            wire::hex(&partial.info_hash)
        )
    } else {
        format!("download {}", partial.name)
    }
}
