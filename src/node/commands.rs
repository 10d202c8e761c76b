//! The commands that change what the node holds and fetches: share, unshare, export,
//! download (by name, info hash or `.torrent`), pause, resume, cancel, limits.
//!
//! Whether a download may start is decided before anything changes ([`Holdings`] →
//! [`Answer`]); then a [`Commander`], the node's parts borrowed for one command, acts. What
//! only the node can do next (tell its tracker, ask for holders, see whether its work is
//! done) the commander lists in [`After`], and the node does it once the command is done,
//! in that order (`Node::handle_command`).

use super::download::TrackerHeard;
use super::download::{Asked, Download};
use super::downloads::{DOWNLOADS_MAX, Downloads, Stopped};
use super::ending::Ending;
use super::jobs::Job;
use super::library::Library;
use super::outbox::{NodeEvent, Outbox};
use super::rate_limit::RequestLimit;
use super::upload::Uploader;
use super::{Event, NodeConfig, Parts};
use crate::console::Command;
use crate::storage::{Manifest, Storage};
use crate::tree::TreeManifest;
use crate::units;
use crate::wire::{self, Hash};
use std::net::SocketAddr;
use std::sync::Arc;
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
        let asked = Asked::by_name(name, pin);
        Answer::StartByName(Download::new(asked, now, self.give_up_after))
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
        let asked = Asked::by_info_hash(info_hash, name, shape);
        let download = Download::new(asked, now, self.give_up_after);
        Answer::StartByHash {
            download,
            info_hash,
        }
    }

    /// Downloads what the `.torrent` at `path` describes. A relative path is looked for in
    /// the working directory, then in the node's files directory.
    pub(super) fn download_torrent(&self, now: Instant, path: &str) -> Answer {
        let torrent = read_torrent(self.storage, path)
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

/// The bytes of the `.torrent` at `path` (relative: to the working directory, else to the
/// node's), at most one more than the largest read. Never blocks the reactor: a FIFO or
/// device under that name is refused.
fn read_torrent(storage: &dyn Storage, path: &str) -> Result<Vec<u8>, String> {
    let limit_bytes = crate::metainfo::TREE_TORRENT_BYTES_MAX as u64 + 1;
    storage
        .read_named_file(path, limit_bytes)
        .map_err(|error| error.to_string())
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

/// What the node does once a command's changes are made (see [`Commander`]).
pub(super) enum After {
    /// Tell the tracker what the node holds of this file now, and whether it fetches it.
    UpdateTracker(Hash),
    /// Ask the tracker for holders of the name a download fetches.
    WantHolders(String),
    /// With `--exit-when-done`: see whether the node's work is done.
    CheckDone,
}

/// The node's parts a command changes, borrowed for one command (as `Parts` are for the
/// downloads). What only the node can do next is listed in `after`, in order.
pub(super) struct Commander<'a> {
    pub(super) config: &'a NodeConfig,
    pub(super) state: &'a Arc<dyn Storage>,
    pub(super) library: &'a mut Library,
    pub(super) downloads: &'a mut Downloads,
    pub(super) uploader: &'a mut Uploader,
    pub(super) download_limit: &'a mut Option<RequestLimit>,
    pub(super) out: &'a mut Outbox,
    pub(super) ending: &'a mut Ending,
    /// The tracker finds holders by name (ours), not only peers by info hash (a standard
    /// one).
    pub(super) finds_by_name: bool,
    /// What the tracker answered lately, for the downloads' parts.
    pub(super) heard: TrackerHeard,
    pub(super) after: Vec<After>,
}

impl Commander<'_> {
    /// Does `command`, one of those that change what the node holds and fetches (the node
    /// answers the others itself: see `Node::run_command`).
    pub(super) fn run(&mut self, now: Instant, command: Command) -> Outcome {
        match command {
            Command::Send { name } => self.share(now, name, None),
            Command::ShareTorrent { name, path } => self.share_torrent(now, name, &path),
            Command::SendAt { path } => self.share_at(now, &path),
            Command::Download { name, pin } => {
                let answer = self.holdings().download(now, name, pin);
                self.start_download(now, answer)
            }
            Command::DownloadByHash { info_hash, name } => {
                let answer = self.holdings().download_by_hash(now, info_hash, name, None);
                self.start_download(now, answer)
            }
            Command::DownloadTorrent { path } => {
                let answer = self.holdings().download_torrent(now, &path);
                self.start_download(now, answer)
            }
            Command::DownloadTo { download, output } => self.download_to(now, *download, &output),
            Command::Export { name } => self.export(name),
            Command::Unshare { name } => self.unshare(name),
            Command::Pause { target } => {
                let id = self.find_download(&target)?;
                let (downloads, mut parts) = self.context();
                let paused = downloads.pause(&mut parts, now, id);
                self.stopped(id, paused)
            }
            Command::Resume { target } => self.resume(now, &target),
            Command::Cancel {
                target,
                keep_partial,
            } => {
                let id = self.find_download(&target)?;
                let (downloads, mut parts) = self.context();
                let cancelled = downloads.cancel(&mut parts, now, id, keep_partial);
                self.stopped(id, cancelled)
            }
            Command::Limit { up, down } => {
                let mut said = Vec::new();
                let words =
                    |limit: Option<u64>| limit.map_or("none".into(), |r| units::rate(r as f64));
                if let Some(limit) = up {
                    self.uploader.set_upload_limit(limit, now);
                    said.push(format!("upload limit: {}", words(limit)));
                }
                if let Some(limit) = down {
                    *self.download_limit = limit.map(|rate| RequestLimit::new(rate, now));
                    said.push(format!("download limit: {}", words(limit)));
                }
                self.say(said.join("; "))
            }
            // The node's own: never sent here.
            Command::Nothing
            | Command::Help
            | Command::Status
            | Command::Peers
            | Command::List { .. }
            | Command::Exit => Ok(Done::default()),
        }
    }

    /// The downloads, and the parts of the node around them (see `Node::context`).
    fn context(&mut self) -> (&mut Downloads, Parts<'_>) {
        let parts = Parts::new(
            &mut *self.out,
            &mut *self.library,
            self.state,
            self.config,
            self.heard,
            &mut *self.download_limit,
        );
        (&mut *self.downloads, parts)
    }

    /// Shares the file or directory at `path` where it is, under its own name: read there,
    /// nothing written there, and recorded so that the next start shares it again.
    fn share_at(&mut self, now: Instant, path: &str) -> Outcome {
        let at = std::path::Path::new(path);
        let Some(name) = at.file_name() else {
            return self.refuse(format!("cannot share {path}: it names no file"));
        };
        let Some(name) = name.to_str() else {
            return self.refuse(format!(
                "cannot share {path}: its name is not UTF-8; rename it to share it"
            ));
        };
        if let Some(problem) = wire::name_problem(name.as_bytes()) {
            return self.refuse(format!("cannot share {path}: {problem}"));
        }
        let name = name.to_owned();
        let held = !self.library.shared_named(&name).is_empty()
            || self.library.is_hashing(&name)
            || self.downloads.running_named(&name);
        if held {
            return self.refuse(format!(
                "cannot share {path}: this node shares or fetches a {name} already"
            ));
        }
        let dir = match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => std::path::Path::new("."),
        };
        if let Err(error) = self.state.share_in_place(&name, dir) {
            return self.refuse(format!("cannot share {path}: {error}"));
        }
        self.share(now, name, None)
    }

    /// A download published into `output`: its name placed there first (see
    /// [`Storage::place`]), when this node neither holds nor fetches anything of that name
    /// (whose partial state and publishing would move with it).
    fn download_to(&mut self, now: Instant, download: Command, output: &str) -> Outcome {
        let name = match &download {
            Command::Download { name, .. }
            | Command::DownloadByHash {
                name: Some(name), ..
            } => name.clone(),
            Command::DownloadTorrent { path } => {
                let read = read_torrent(&**self.state, path)
                    .and_then(|bytes| crate::metainfo::parse_torrent(&bytes));
                match read {
                    Ok(torrent) => torrent.name,
                    Err(error) => return self.refuse(format!("cannot download {path}: {error}")),
                }
            }
            _ => {
                return self.refuse(
                    "--output needs the name of what is downloaded: a name, a .torrent, or a \
                     magnet link with one (dn=)"
                        .to_string(),
                );
            }
        };
        if !self.library.shared_named(&name).is_empty() || self.downloads.running_named(&name) {
            return self.refuse(format!(
                "cannot download {name} into {output}: this node holds or fetches a {name} already"
            ));
        }
        if let Err(error) = self.state.place(&name, std::path::Path::new(output)) {
            return self.refuse(format!("cannot download {name} into {output}: {error}"));
        }
        self.run(now, download)
    }

    /// Shares the tree the multi-file `.torrent` at `path` describes: the directory of its
    /// name, checked against its pieces (by a hasher thread), under its info hash.
    fn share_torrent(&mut self, now: Instant, name: Option<String>, path: &str) -> Outcome {
        let read = read_torrent(&**self.state, path)
            .and_then(|bytes| crate::metainfo::parse_tree_torrent(&bytes));
        let tree = match read {
            Ok(torrent) => torrent.manifest,
            Err(error) => return self.refuse(format!("cannot share {path}: {error}")),
        };
        if let Some(name) = name
            && name != tree.name()
        {
            return self.refuse(format!(
                "cannot share {name} with {path}: it describes a tree called {}; name the directory so",
                tree.name()
            ));
        }
        let name = tree.name().to_owned();
        self.share(now, name, Some(Arc::new(tree)))
    }

    /// Hashes the file (or directory) `name` of the node's directory, to share it; a tree
    /// `described` by a `.torrent` made elsewhere is checked against that description.
    pub(super) fn share(
        &mut self,
        now: Instant,
        name: String,
        described: Option<Arc<TreeManifest>>,
    ) -> Outcome {
        if let Some(problem) = wire::name_problem(name.as_bytes()) {
            return self.refuse(format!("cannot share {name:?}: {problem}"));
        }
        if self.library.is_hashing(&name) {
            return self.say(format!("{name} is already being hashed"));
        }
        if let Err(line) = self.library.start_hashing(&name, now) {
            return self.refuse(line);
        }
        let line = format!("hashing {name} to share it");
        self.out.event(NodeEvent::Job(Job::Share {
            state: Arc::clone(self.state),
            name,
            described,
            chunk_bytes: self.config.chunk_bytes,
            threads: self.config.hash_threads,
        }));
        Ok(Done::line(line))
    }

    /// What the start checks of a download see.
    fn holdings(&self) -> Holdings<'_> {
        Holdings {
            downloads: self.downloads,
            library: self.library,
            storage: &**self.state,
            finds_by_name: self.finds_by_name,
            give_up_after: self.config.give_up_after,
        }
    }

    /// Acts on the start checks' answer to a download asked for.
    fn start_download(&mut self, now: Instant, answer: Answer) -> Outcome {
        match answer {
            Answer::StartByName(download) => {
                let name = download.name().to_string();
                let id = self.downloads.start(download, self.library.files(), now);
                self.after.push(After::WantHolders(name.clone()));
                Ok(Done::download(id, format!("downloading {name}")))
            }
            Answer::StartByHash {
                download,
                info_hash,
            } => {
                let id = self.downloads.start(download, self.library.files(), now);
                self.after.push(After::UpdateTracker(info_hash));
                let hex = wire::hex(&info_hash);
                Ok(Done::download(id, format!("downloading {hex}")))
            }
            Answer::Say(line) => self.say(line),
            Answer::Held(line) => {
                let done = self.say(line);
                self.after.push(After::CheckDone);
                done
            }
            Answer::Refuse(line) => self.refuse(line),
        }
    }

    /// The id of the running or paused download `target` names (see `Downloads::find`).
    fn find_download(&mut self, target: &str) -> Result<u64, String> {
        match self.downloads.find(target) {
            Some(id) => Ok(id),
            None => self.refuse(format!(
                "no running or paused download is {target:?}: give its id as `status` shows it, or its file name"
            )),
        }
    }

    /// A download paused or cancelled (or why not): a file no longer held is no longer
    /// served, and the tracker hears what the node holds and fetches now.
    fn stopped(&mut self, id: u64, stopped: Result<Stopped, String>) -> Outcome {
        let stopped = match stopped {
            Ok(stopped) => stopped,
            Err(line) => return self.refuse(line),
        };
        if let Some(info_hash) = stopped.info_hash {
            if stopped.released {
                self.uploader.forget_file(info_hash);
            }
            self.after.push(After::UpdateTracker(info_hash));
        }
        let line = stopped.event.to_string();
        self.out.report(stopped.event);
        self.after.push(After::CheckDone);
        Ok(Done::download(id, line))
    }

    /// Goes on with the paused download `target` names, from a look-up.
    fn resume(&mut self, now: Instant, target: &str) -> Outcome {
        let id = self.find_download(target)?;
        let files = self.library.files();
        let give_up_after = self.config.give_up_after;
        let download = match self.downloads.resume(files, now, id, give_up_after) {
            Ok(download) => download,
            Err(line) => return self.refuse(line),
        };
        let (name, info_hash) = (download.name().to_string(), download.info_hash());
        match info_hash {
            Some(info_hash) if !self.finds_by_name => {
                self.after.push(After::UpdateTracker(info_hash))
            }
            _ => self.after.push(After::WantHolders(name.clone())),
        }
        let resumed = Event::Resumed { id, name };
        let line = resumed.to_string();
        self.out.report(resumed);
        Ok(Done::download(id, line))
    }

    /// Stops sharing the file `name` (every version the node hashed or downloaded whole):
    /// peers are refused it from now on, and the tracker is told.
    fn unshare(&mut self, name: String) -> Outcome {
        if self.library.is_hashing(&name) {
            return self.refuse(format!(
                "cannot unshare {name} yet: it is being hashed (unshare it once it is shared)"
            ));
        }
        let shared = self.library.shared_named(&name);
        if shared.is_empty() {
            return self.refuse(format!(
                "cannot unshare {name}: this node does not share it"
            ));
        }
        for info_hash in shared {
            self.stop_serving(info_hash);
        }
        if let Err(error) = self.state.stop_sharing_in_place(&name) {
            log::warn!("cannot update the list of what is shared in place: {error}");
        }
        self.say(format!(
            "no longer sharing {name} (the file stays where it is)"
        ))
    }

    /// Stops serving `info_hash`, held whole from the directory, and has the tracker told;
    /// its name, or `None` when it was not served whole.
    pub(super) fn stop_serving(&mut self, info_hash: Hash) -> Option<String> {
        let withdrawn = self.library.withdraw(info_hash)?;
        self.uploader.forget_file(info_hash);
        if withdrawn.tell_tracker {
            self.after.push(After::UpdateTracker(info_hash));
        }
        Some(withdrawn.name)
    }

    /// Writes `DIR/<name>.torrent` for a held file now, or once a file of that name being
    /// hashed or downloaded is held.
    fn export(&mut self, name: String) -> Outcome {
        if let Some(manifest) = self.library.manifest_named(&name) {
            return self.write_torrent(&manifest);
        }
        if !self.library.is_hashing(&name) && !self.downloads.running_named(&name) {
            return self.refuse(format!(
                "cannot export {name}: this node does not hold it (share or download it first)"
            ));
        }
        let line = format!("{name} will be exported once this node holds it");
        match self.library.wait_for_export(name) {
            Ok(()) => Ok(Done::line(line)),
            Err(line) => self.refuse(line),
        }
    }

    /// Runs a waiting export of `info_hash`'s name, if any.
    pub(super) fn export_if_waiting(&mut self, info_hash: Hash) {
        if let Some(manifest) = self.library.take_export(info_hash) {
            let _ = self.write_torrent(&manifest);
        }
    }

    /// A failed export, with `--exit-when-done`, ends the node with 1, as a failed download
    /// does: a script must not go on without the file.
    fn write_torrent(&mut self, manifest: &Manifest) -> Outcome {
        match write_torrent(&**self.state, manifest, self.config.tracker) {
            Ok(line) => self.say(line),
            Err(line) => {
                let refused = self.refuse(line);
                self.after.push(After::CheckDone);
                refused
            }
        }
    }

    /// Says why a share, download or export asked for cannot be done. With
    /// `--exit-when-done` that fails the script: the node leaves with code 1 (at the next
    /// `handle_timeout`, which `Node::poll_timeout` makes due at once).
    pub(super) fn refuse<T>(&mut self, line: String) -> Result<T, String> {
        self.out.say(line.clone());
        self.ending.note_refusal();
        Err(line)
    }

    /// Says `line` about a command that was done (or needed nothing done).
    fn say(&mut self, line: String) -> Outcome {
        self.out.say(line.clone());
        Ok(Done::line(line))
    }
}
