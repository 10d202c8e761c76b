//! How a download ends, in words: what it says when the file is published, and what becomes
//! of the partial file of one that failed.

use super::peer::Peer;
use crate::node::{Event, PartialFate, Parts, Source};
use crate::storage::Manifest;
use crate::wire::{self, Hash};

/// What a published download reports: the file, its size, the time, and the peers whose
/// chunks verified (by address for peers from a standard tracker, `by_address`, which are
/// known by address only).
pub(super) fn downloaded(
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
        name: manifest.name.clone(),
        info_hash: manifest.info_hash,
        bytes: manifest.file_bytes,
        chunks: manifest.chunk_count(),
        seconds,
        sources: sources.collect(),
    }
}

/// What becomes of a failed download's partial file, said after the failure: with chunks
/// verified, it stays for the next `download` of the name to resume (and `status` lists
/// it); with none, it is removed, so that no reserved space is left behind unseen.
pub(super) fn keep_or_release(parts: &mut Parts<'_>, info_hash: Hash) -> PartialFate {
    let Some(partial) = parts.state.partial_summary(&info_hash) else {
        return PartialFate::None;
    };
    if partial.verified_bytes > 0 {
        return PartialFate::Kept {
            path: parts.state.partial_path(&info_hash).display().to_string(),
            verified_bytes: partial.verified_bytes,
            file_bytes: partial.file_bytes,
            resume: resume_command(parts.config.standard_tracker, &partial),
        };
    }
    // The file is open while it is held: let go of it, or its space stays taken.
    if parts
        .files
        .get(&info_hash)
        .is_some_and(|file| file.have.count() == 0)
    {
        parts.files.remove(&info_hash);
    }
    match parts.state.remove_partial(&info_hash) {
        Ok(()) => PartialFate::Removed {
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
