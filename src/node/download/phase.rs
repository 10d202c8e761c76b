//! Where a download stands: looking up, fetching the manifest, transferring, waiting for
//! disk space, done or failed. The state of each phase is its own type.

use super::manifest::ManifestFetch;
use super::transfer::Transfer;
use crate::node::LocalFile;
use crate::storage::Manifest;
use crate::wire::Hash;
use std::collections::BTreeMap;
use std::time::Instant;

pub(super) enum Phase {
    LookingUp,
    Manifest(ManifestFetch),
    Transfer(Transfer),
    /// The manifest checked, but the disk has no room for the partial file: tried again
    /// every `DISK_RETRY`, never given up.
    WaitingForSpace(Manifest),
    /// The manifest of a tree checked: its partial files are being laid out by a hasher
    /// thread (thousands of files take seconds on some file systems, which the reactor
    /// must not wait for).
    Opening(Manifest),
    Done,
    Failed,
}

impl Phase {
    pub fn finished(&self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }

    /// Bytes verified and the file's size (once known), and the rate since the transfer
    /// began.
    pub fn progress(
        &self,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> (u64, Option<u64>, f64) {
        match self {
            Phase::Transfer(transfer) => {
                let (verified, rate) = transfer.verified_bytes_and_rate(files, now);
                (verified, Some(transfer.manifest().file_bytes), rate)
            }
            Phase::Manifest(fetch) => (0, Some(fetch.file_bytes()), 0.0),
            Phase::WaitingForSpace(manifest) | Phase::Opening(manifest) => {
                (0, Some(manifest.file_bytes), 0.0)
            }
            _ => (0, None, 0.0),
        }
    }

    /// Pieces requested of peer `index` and not in (none outside a transfer).
    pub fn in_flight(&self, index: usize) -> u32 {
        match self {
            Phase::Transfer(transfer) => transfer.in_flight(index),
            _ => 0,
        }
    }
}
