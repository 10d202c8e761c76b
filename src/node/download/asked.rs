//! What a download fetches: a name, the version it takes (pinned from the start, or chosen
//! from the first look-up) and, for a download found by info hash, what it knew of the file
//! before its manifest came ([`ByHash`]). It is what outlives a pause: the node keeps it
//! (`Downloads::pause`), and a resumed download starts again from it (`Download::new`)
//! with the same version, so with the same partial file.

use super::manifest::ByHash;
use super::phase::Phase;
use crate::storage::Manifest;
use crate::wire::{self, Hash};

/// The download a peer operation is for (see `peers.rs`): the name (which the manifest's
/// first part may set), the version, how it was found, and where the download stands,
/// borrowed from its [`Asked`] and its phase ([`Asked::of`]).
pub(super) struct Of<'a> {
    pub name: &'a mut String,
    pub info_hash: Option<Hash>,
    /// What a download by info hash knew before its manifest.
    pub by_hash: Option<&'a ByHash>,
    pub phase: &'a mut Phase,
}

/// What a download fetches (see the module documentation).
#[derive(Clone)]
pub(crate) struct Asked {
    /// The file's name; for a download by info hash without one, its info hash in hex
    /// until the manifest names it.
    name: String,
    /// The version taken: pinned from the start, or chosen from the first look-up.
    info_hash: Option<Hash>,
    /// Found through a standard tracker: the name (unless given) and the shape (unless a
    /// `.torrent` gave it) come from the first manifest part.
    by_hash: Option<ByHash>,
}

impl Asked {
    /// The file called `name` from our tracker, pinned to the version `pin` when given.
    pub(crate) fn by_name(name: String, pin: Option<Hash>) -> Asked {
        Asked {
            name,
            info_hash: pin,
            by_hash: None,
        }
    }

    /// The file of `info_hash`, whose peers come from a standard tracker. Without `name`,
    /// the name is the one in the manifest the peers send (checked as any name from the
    /// network, and against the info hash with the rest of the manifest); until then the
    /// download is called by its info hash. `shape` (file and chunk bytes) comes from a
    /// `.torrent`.
    pub(crate) fn by_info_hash(
        info_hash: Hash,
        name: Option<String>,
        shape: Option<(u64, u32)>,
    ) -> Asked {
        let name_known = name.is_some();
        Asked {
            name: name.unwrap_or_else(|| wire::hex(&info_hash)),
            info_hash: Some(info_hash),
            by_hash: Some(ByHash { name_known, shape }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info_hash(&self) -> Option<Hash> {
        self.info_hash
    }

    /// What a download by info hash knew before its manifest; `None` for one by name.
    pub(super) fn by_hash(&self) -> Option<&ByHash> {
        self.by_hash.as_ref()
    }

    /// Holders of `info_hash` are known and the download begins: that is the version taken.
    pub(super) fn take_version(&mut self, info_hash: Hash) {
        self.info_hash = Some(info_hash);
    }

    /// A manifest was found for the version taken (a partial file's, on resuming): a
    /// download by info hash is called by the name in it from now on.
    pub(super) fn named_by(&mut self, manifest: &Manifest) {
        if self.by_hash.is_some() {
            self.name = manifest.name.clone();
        }
    }

    /// What the peers' operations take of the download beside the peers (see [`Of`]): the
    /// name (which the manifest's first part may set), the version, how it was found, and
    /// where the download stands.
    pub(super) fn of<'a>(&'a mut self, phase: &'a mut Phase) -> Of<'a> {
        Of {
            name: &mut self.name,
            info_hash: self.info_hash,
            by_hash: self.by_hash.as_ref(),
            phase,
        }
    }
}
