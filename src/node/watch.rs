//! Noticing that a file in the node's directory changed while it was shared.
//!
//! A whole file in the directory is the user's: they may rewrite it, replace it, truncate it
//! or remove it while peers are downloading it. Its chunk hashes then no longer hold, and a
//! node that kept offering it would send stale bytes (which downloaders' SHA-1 checks catch,
//! but only after the transfer, and every downloader once). So every
//! [`FILES_CHECK_INTERVAL`] the node compares each file's [`FileStamp`] with the disk, and a
//! read that comes back short while serving says the same sooner. On a change the node stops
//! serving the old version at once, tells the tracker it no longer holds it, says so, and
//! hashes the file again to share the new version (unless it is gone).

use super::LocalFile;
use crate::storage::Storage;
use crate::wire::Hash;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often the stamps of the files in the directory are compared with the disk: one
/// `stat` per file, so a change is noticed within about a second at a negligible cost.
pub(super) const FILES_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What happened to a shared file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// A read while serving came back short: the file was truncated.
    Short,
    /// Same file, other length or times: written in place.
    Rewritten,
    /// Another file under the same name (renamed over, or removed and created again).
    Replaced,
    /// No file (or no regular file) under the name any more.
    Removed,
}

impl Change {
    fn describe(self) -> &'static str {
        match self {
            Change::Short => "now shorter than its manifest",
            Change::Rewritten => "written to in place",
            Change::Replaced => "replaced by another file",
            Change::Removed => "removed",
        }
    }

    /// What the user is told of a shared file that changed: whether a file is still under
    /// its name, and whether the node hashes it again to share the new version.
    pub(super) fn told(self, name: &str, still_there: bool, hash_again: bool) -> String {
        let what = self.describe();
        if !still_there {
            format!("{name} changed on disk ({what}); no longer sharing it")
        } else if hash_again {
            format!(
                "{name} changed on disk ({what}); no longer sharing the old version, hashing the new one"
            )
        } else {
            format!("{name} changed on disk ({what}); no longer sharing the old version")
        }
    }
}

/// Compares each whole file's stamp with the disk: the ones that changed, and how.
pub(super) fn changes(
    files: &BTreeMap<Hash, LocalFile>,
    state: &dyn Storage,
) -> Vec<(Hash, Change)> {
    files
        .iter()
        .filter_map(|(info_hash, file)| {
            let stamp = file.stamp?;
            let change = match state.stamp_of(&file.manifest.name) {
                // A tree whose top is unchanged may have changed deeper in.
                Ok(current) if current == stamp && file.mapping.changed() => Change::Rewritten,
                Ok(current) if current == stamp => return None,
                Ok(current) if stamp.replaced_by(&current) => Change::Replaced,
                Ok(_) => Change::Rewritten,
                Err(_) => Change::Removed,
            };
            Some((*info_hash, change))
        })
        .collect()
}
