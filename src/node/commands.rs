//! Commands that start work, decided before anything changes: whether a download by name,
//! by info hash or by `.torrent` may start, given what the node holds and runs, and the
//! `.torrent` file an export writes. The node acts on the answer
//! (`Node::handle_command`).

use super::download::Download;
use super::downloads::{DOWNLOADS_MAX, Downloads};
use super::library::Library;
use crate::storage::{Manifest, Storage};
use crate::wire::{self, Hash};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the node does about a download asked for.
pub(super) enum Answer {
    /// Start it and ask our tracker for holders of its name.
    StartByName(Download),
    /// Start it and ask a standard tracker for peers of its info hash.
    StartByHash { download: Download, info_hash: Hash },
    /// Nothing to do; tell the user why.
    Say(String),
    /// The very version asked for is held whole already: say so (with `--exit-when-done`,
    /// that piece of work is done).
    Held(String),
    /// It cannot start: say why (with `--exit-when-done`, the script fails).
    Refuse(String),
}

/// What came of a command: done, or refused with the line saying why (said to the user as
/// well; the control socket sends it back).
pub(super) type Outcome = Result<Done, String>;

/// A command that was done (or needed nothing done).
#[derive(Default)]
pub(super) struct Done {
    /// What the user is told of it, if anything.
    pub(super) line: Option<String>,
    /// The id of the download it started.
    pub(super) download: Option<u64>,
}

impl Done {
    pub(super) fn line(line: String) -> Done {
        Done {
            line: Some(line),
            download: None,
        }
    }

    pub(super) fn download(id: u64, line: String) -> Done {
        Done {
            line: Some(line),
            download: Some(id),
        }
    }
}

/// What the node holds and runs, as the start checks of a download see it.
pub(super) struct Holdings<'a> {
    pub(super) downloads: &'a Downloads,
    pub(super) library: &'a Library,
    pub(super) storage: &'a dyn Storage,
    /// The tracker finds holders by name (ours), not only peers by info hash (a standard
    /// one).
    pub(super) finds_by_name: bool,
    pub(super) give_up_after: Duration,
}

impl Holdings<'_> {
    /// Downloads the file called `name` (pinned to the version `pin`, when given).
    pub(super) fn download(&self, now: Instant, name: String, pin: Option<Hash>) -> Answer {
        if let Some(problem) = wire::name_problem(name.as_bytes()) {
            return Answer::Refuse(format!("cannot download {name:?}: {problem}"));
        }
        if !self.finds_by_name {
            // A standard tracker knows info hashes, not names.
            return match pin {
                Some(info_hash) => self.download_by_hash(now, info_hash, Some(name), None),
                None => Answer::Refuse(format!(
                    "cannot download {name} by name from a standard tracker: give its .torrent, its info hash, a magnet link, or {name}@<info hash>"
                )),
            };
        }
        if self.downloads.running_named(&name) {
            return Answer::Say(format!("{name} is already downloading"));
        }
        if let Some(id) = self.downloads.paused_named(&name) {
            return Answer::Say(format!("{name} is paused: `resume {id}` goes on"));
        }
        if self.storage.name_taken(&name) {
            let files = self.library.files();
            // The very version asked for, held whole: nothing to do.
            if let Some(file) = pin.and_then(|pin| files.get(&pin))
                && file.complete()
                && file.manifest.name == name
            {
                return Answer::Held(format!(
                    "this node already holds {name} ({})",
                    wire::hex(&file.manifest.info_hash)
                ));
            }
            let shared = files
                .values()
                .any(|f| f.manifest.name == name && f.stamp.is_some());
            return Answer::Refuse(format!(
                "download {name} failed: {name} already exists in {}{}; nothing was downloaded",
                self.storage.files_dir().display(),
                if shared { " (this node shares it)" } else { "" }
            ));
        }
        if !self.downloads.has_room() {
            return Answer::Refuse(format!(
                "cannot download {name}: {DOWNLOADS_MAX} downloads are running"
            ));
        }
        Answer::StartByName(Download::new(name, pin, now, self.give_up_after))
    }

    /// Downloads `info_hash`: with a standard tracker, peers are found by it and the name
    /// (unless given) comes from the manifest they send; with ours, a name is needed and the
    /// download is pinned to `info_hash`. `shape` (file and chunk bytes) comes from a
    /// `.torrent`.
    pub(super) fn download_by_hash(
        &self,
        now: Instant,
        info_hash: Hash,
        name: Option<String>,
        shape: Option<(u64, u32)>,
    ) -> Answer {
        let hex = wire::hex(&info_hash);
        if self.finds_by_name {
            return match name {
                Some(name) => self.download(now, name, Some(info_hash)),
                None => Answer::Refuse(format!(
                    "cannot download {hex} by info hash alone from this tracker: give a name, NAME@{hex}, or use a standard tracker (--tracker udp://HOST:PORT)"
                )),
            };
        }
        let label = name.clone().unwrap_or_else(|| hex.clone());
        if let Some(name) = &name
            && let Some(problem) = wire::name_problem(name.as_bytes())
        {
            return Answer::Refuse(format!("cannot download {name:?}: {problem}"));
        }
        if self.downloads.running_of(info_hash).is_some() {
            return Answer::Say(format!("{label} is already downloading"));
        }
        if let Some(id) = self.downloads.paused_named(&hex) {
            return Answer::Say(format!("{label} is paused: `resume {id}` goes on"));
        }
        if self
            .library
            .files()
            .get(&info_hash)
            .is_some_and(|f| f.complete())
        {
            return Answer::Say(format!("this node already holds {label} ({hex})"));
        }
        if let Some(name) = &name
            && self.storage.name_taken(name)
        {
            return Answer::Refuse(format!(
                "download {name} failed: {name} already exists in {}",
                self.storage.files_dir().display()
            ));
        }
        if !self.downloads.has_room() {
            return Answer::Refuse(format!(
                "cannot download {label}: {DOWNLOADS_MAX} downloads are running"
            ));
        }
        let download = Download::by_info_hash(info_hash, name, shape, now, self.give_up_after);
        Answer::StartByHash {
            download,
            info_hash,
        }
    }

    /// Downloads what the `.torrent` at `path` describes. A relative path is looked for in
    /// the working directory, then in the node's files directory.
    pub(super) fn download_torrent(&self, now: Instant, path: &str) -> Answer {
        // Never blocks the reactor: a FIFO or device under that name is refused.
        let read = self
            .storage
            .read_named_file(path, crate::metainfo::TORRENT_BYTES_MAX as u64 + 1);
        let torrent = read
            .map_err(|error| error.to_string())
            .and_then(|bytes| crate::metainfo::parse_torrent(&bytes));
        match torrent {
            Ok(t) => self.download_by_hash(
                now,
                t.info_hash,
                Some(t.name),
                Some((t.file_bytes, t.chunk_bytes)),
            ),
            Err(error) => Answer::Refuse(format!("cannot download {path}: {error}")),
        }
    }
}

/// Writes `DIR/<name>.torrent` for `manifest`, never over an existing file (the user's, or
/// an earlier export: remove it to export again). The line to say, or why it failed.
pub(super) fn write_torrent(
    storage: &dyn Storage,
    manifest: &Manifest,
    tracker: SocketAddr,
) -> Result<String, String> {
    let name = &manifest.name;
    let torrent_name = crate::metainfo::torrent_name(name)
        .map_err(|problem| format!("cannot export {name}: {problem} once '.torrent' is added"))?;
    let bytes = crate::metainfo::torrent_file(manifest, tracker);
    match storage.write_file(&torrent_name, &bytes) {
        Ok(path) => Ok(format!(
            "exported {name} to {} ({})",
            path.display(),
            crate::metainfo::magnet_link(manifest, tracker)
        )),
        Err(error) => Err(format!("cannot export {name}: {error}")),
    }
}
