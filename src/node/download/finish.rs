//! How a download ends, in words: what it says when the file is published, and what becomes
//! of the partial file of one that failed.

use super::peer::Peer;
use crate::node::Parts;
use crate::storage::Manifest;
use crate::wire::{self, Hash};

/// The line a published download says: the file, its size, the time and rate, and the
/// peers whose chunks verified (by address for peers from a standard tracker, `by_address`,
/// which are known by address only).
pub(super) fn downloaded_line(
    manifest: &Manifest,
    seconds: f64,
    peers: &[Peer],
    by_address: bool,
) -> String {
    let rate = crate::units::rate(manifest.file_bytes as f64 / seconds.max(1e-6));
    let mut sources: Vec<String> = peers
        .iter()
        .filter(|p| p.chunks_verified > 0)
        .map(|p| {
            if by_address {
                format!("{}: {} chunks", p.addr, p.chunks_verified)
            } else {
                format!("node {}: {} chunks", p.node_id, p.chunks_verified)
            }
        })
        .collect();
    if manifest.chunk_count() == 0 {
        sources.push("no peer (the file is empty)".to_string());
    } else if sources.is_empty() {
        sources.push("no peer (resumed from disk)".to_string());
    }
    format!(
        "downloaded {} ({}) {} bytes in {seconds:.3} s ({rate}) from {}",
        manifest.name,
        wire::hex(&manifest.info_hash),
        manifest.file_bytes,
        sources.join(", ")
    )
}

/// What becomes of a failed download's partial file, said after the failure: with chunks
/// verified, it stays for the next `download` of the name to resume (and `status` lists
/// it); with none, it is removed, so that no reserved space is left behind unseen.
pub(super) fn keep_or_release(parts: &mut Parts<'_>, info_hash: Hash) -> String {
    match parts.state.partial_summary(&info_hash) {
        Some(partial) if partial.verified_bytes > 0 => keep_partial(parts, info_hash),
        Some(_) => remove_partial(parts, info_hash),
        None => String::new(),
    }
}

/// Keeps the partial file of `info_hash` for a later `download` to resume: where it is and
/// how to resume it, as the end of a sentence.
pub(crate) fn keep_partial(parts: &mut Parts<'_>, info_hash: Hash) -> String {
    let Some(partial) = parts.state.partial_summary(&info_hash) else {
        return String::new();
    };
    format!(
        "; kept {} ({} of {} bytes verified) in {}: `{}` resumes it",
        crate::storage::percent(partial.verified_bytes, partial.file_bytes),
        partial.verified_bytes,
        partial.file_bytes,
        parts.state.partial_path(&info_hash).display(),
        resume_command(parts.config.standard_tracker, &partial)
    )
}

/// Removes the partial file of `info_hash` (data, have-file and manifest), and lets go of
/// it in the node's table (the file is open while it is listed, and its space stays taken
/// until it is closed): what was released, as the end of a sentence.
pub(crate) fn remove_partial(parts: &mut Parts<'_>, info_hash: Hash) -> String {
    let Some(partial) = parts.state.partial_summary(&info_hash) else {
        return String::new();
    };
    if parts
        .files
        .get(&info_hash)
        .is_some_and(|file| !file.complete())
    {
        parts.files.remove(&info_hash);
    }
    let nothing = if partial.verified_bytes == 0 {
        "nothing was verified, so "
    } else {
        ""
    };
    match parts.state.remove_partial(&info_hash) {
        Ok(()) => format!(
            "; {nothing}its partial file is removed ({} bytes released)",
            partial.disk_bytes
        ),
        Err(error) => format!("; cannot remove its partial file: {error}"),
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
