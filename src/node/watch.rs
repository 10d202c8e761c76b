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

use super::Node;
use crate::storage::Bitmap;
use crate::wire::Hash;
use std::time::{Duration, Instant};

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
}

impl Node {
    /// Compares each whole file's stamp with the disk and withdraws the ones that changed.
    pub(super) fn check_files(&mut self, now: Instant) {
        let changed: Vec<(Hash, Change)> = self
            .files
            .iter()
            .filter_map(|(info_hash, file)| {
                let stamp = file.stamp?;
                let change = match self.state.stamp_of(&file.manifest.name) {
                    Ok(current) if current == stamp => return None,
                    Ok(current) if stamp.replaced_by(&current) => Change::Replaced,
                    Ok(_) => Change::Rewritten,
                    Err(_) => Change::Removed,
                };
                Some((*info_hash, change))
            })
            .collect();
        for (info_hash, change) in changed {
            self.file_changed(now, info_hash, change);
        }
    }

    /// Stops serving the version of a file the node hashed, tells the tracker, and hashes
    /// the file again when there still is one.
    pub(super) fn file_changed(&mut self, now: Instant, info_hash: Hash, change: Change) {
        let Some(file) = self.files.get_mut(&info_hash) else {
            return;
        };
        // Already withdrawn, or a download still in progress (its partial file is private).
        if file.stamp.take().is_none() {
            return;
        }
        let name = file.manifest.name.clone();
        log::info!(
            "{name} ({}) {change:?} on disk",
            crate::wire::hex(&info_hash)
        );
        self.uploader.forget_file(info_hash);
        if file.manifest.chunk_count() == 0 {
            // An empty file has no chunk to withdraw: the tracker cannot be told, and there
            // is nothing stale to serve. Forget it.
            self.files.remove(&info_hash);
        } else {
            file.have = Bitmap::new(file.manifest.chunk_count());
            file.announce_due = None;
            self.update_tracker(now, info_hash);
        }
        let still_there = change != Change::Removed && self.state.stamp_of(&name).is_ok();
        let what = change.describe();
        if !still_there {
            self.out.say(format!(
                "{name} changed on disk ({what}); no longer sharing it"
            ));
        } else if self.is_hashing(&name) {
            self.out.say(format!(
                "{name} changed on disk ({what}); no longer sharing the old version"
            ));
        } else {
            self.out.say(format!(
                "{name} changed on disk ({what}); no longer sharing the old version, hashing the new one"
            ));
            self.share(now, name);
        }
    }
}
