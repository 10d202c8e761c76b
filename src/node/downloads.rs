//! The downloads a node runs: at most [`DOWNLOADS_MAX`] at once, found by the name or the
//! info hash they fetch, or by the id each is given when it starts (for the control socket).
//! A finished download (done or failed) stays in the list, for `status` and the exit report,
//! until a new one starts; then what it came to is kept, for the last
//! [`FINISHED_KEPT_MAX`], so that a script waiting for it still finds out.
//!
//! A paused download leaves the list: nothing of it runs (no request, no timer, no piece
//! taken), and only what it was asked ([`Asked`]) is kept, with its partial file. `resume`
//! starts it again under the same id from a look-up; the chunks it verified are found in
//! the partial file and checked again. A cancelled download leaves the list for good, and
//! its partial file goes too unless kept. Each hash check carries its download's run (a
//! resume is a new run under the same id), so that one coming back for a run that ended is
//! for nobody.

use super::download::{Asked, Download, Handled};
use super::{Event, LocalFile, Parts, Progress, ProgressReport};
use crate::control::{DownloadInfo, DownloadPeers, DownloadState};
use crate::storage::{Bitmap, Content, FileStamp};
use crate::wire::{self, Hash, HolderRecord, Message, VersionRecord};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most downloads running or paused at once.
pub const DOWNLOADS_MAX: usize = 64;
/// Finished downloads whose end is remembered once they leave the list.
pub const FINISHED_KEPT_MAX: usize = 64;

/// The node's downloads, running and finished (see the module documentation).
pub(super) struct Downloads {
    list: Vec<Download>,
    /// The id of each download in `list`, in the same order.
    ids: Vec<u64>,
    next_id: u64,
    /// The next run: every start of a download, a resume too, is a run of its own, so that
    /// a hash check of an earlier run is told apart (see [`Downloads::chunk_checked`]).
    next_run: u64,
    /// What the downloads that left the list came to, the most recent last.
    ended: VecDeque<DownloadInfo>,
    /// Paused downloads, in the order they paused.
    paused: Vec<Paused>,
}

/// A paused download: what to start again, and where it stood.
struct Paused {
    asked: Asked,
    info: DownloadInfo,
}

/// A download stopped by `pause` or `cancel`: what the node must tell the tracker and the
/// uploader about.
pub(super) struct Stopped {
    /// What the user (or a script reading `--json`) is told.
    pub event: Event,
    /// The file it fetched, once known.
    pub info_hash: Option<Hash>,
    /// The file's chunks are no longer held (its partial file went): peers must not be
    /// served from it.
    pub released: bool,
}

impl Downloads {
    pub(super) fn new() -> Downloads {
        Downloads {
            list: Vec::new(),
            ids: Vec::new(),
            next_id: 1,
            next_run: 1,
            ended: VecDeque::new(),
            paused: Vec::new(),
        }
    }

    /// Every download, running or finished, in the order they started.
    pub(super) fn all(&self) -> &[Download] {
        &self.list
    }

    /// Every download with its id, in the order they started.
    pub(super) fn with_ids(&self) -> impl Iterator<Item = (u64, &Download)> {
        self.ids.iter().copied().zip(&self.list)
    }

    /// Downloads kept, running or finished, against [`DOWNLOADS_MAX`].
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    fn running(&self) -> impl Iterator<Item = &Download> {
        self.list.iter().filter(|d| !d.finished())
    }

    /// Whether any download is still running.
    pub(super) fn any_running(&self) -> bool {
        self.running().next().is_some()
    }

    /// Whether any download is running or paused.
    pub(super) fn any_unfinished(&self) -> bool {
        self.any_running() || !self.paused.is_empty()
    }

    pub(super) fn any_failed(&self) -> bool {
        self.list.iter().any(|d| d.failed())
    }

    /// The paused download of `name` (a file name, or an info hash in hex), if any.
    pub(super) fn paused_named(&self, name: &str) -> Option<u64> {
        let of = |p: &&Paused| p.asked.name() == name || p.info.info_hash.as_deref() == Some(name);
        self.paused.iter().find(of).map(|p| p.info.id)
    }

    /// Where each paused download stood when it paused.
    pub(super) fn paused(&self) -> impl Iterator<Item = &DownloadInfo> {
        self.paused.iter().map(|p| &p.info)
    }

    /// Whether a running download fetches a file called `name`.
    pub(super) fn running_named(&self, name: &str) -> bool {
        self.running().any(|d| d.name() == name)
    }

    /// The running download of `info_hash`, if any.
    pub(super) fn running_of(&self, info_hash: Hash) -> Option<&Download> {
        self.running().find(|d| d.info_hash() == Some(info_hash))
    }

    fn running_of_mut(&mut self, info_hash: Hash) -> Option<&mut Download> {
        self.list
            .iter_mut()
            .find(|d| d.info_hash() == Some(info_hash) && !d.finished())
    }

    /// The versions (info hashes) that the running downloads of `name` are pinned to.
    pub(super) fn pinned_versions(&self, name: &str) -> Vec<Hash> {
        self.running()
            .filter(|d| d.name() == name)
            .filter_map(|d| d.info_hash())
            .collect()
    }

    /// The info hashes of downloads that failed.
    pub(super) fn failed_hashes(&self) -> impl Iterator<Item = Hash> + '_ {
        self.list
            .iter()
            .filter(|d| d.failed())
            .filter_map(|d| d.info_hash())
    }

    /// The download whose next look-up is due soonest, if any wants one.
    pub(super) fn soonest_lookup_mut(&mut self) -> Option<&mut Download> {
        let index = (0..self.list.len())
            .filter_map(|i| Some((self.list[i].lookup_wanted_at()?, i)))
            .min()
            .map(|(_, i)| i)?;
        Some(&mut self.list[index])
    }

    pub(super) fn get(&self, index: usize) -> &Download {
        &self.list[index]
    }

    pub(super) fn get_mut(&mut self, index: usize) -> &mut Download {
        &mut self.list[index]
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.list.iter().filter_map(|d| d.poll_timeout()).min()
    }

    /// Progress of each running download.
    pub(super) fn progress(
        &self,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> Vec<Progress> {
        let running = self.list.iter();
        running
            .filter_map(|d| d.report().progress(files, now))
            .collect()
    }

    /// [`Downloads::progress`] with each download's id and info hash, for progress events.
    pub(super) fn progress_reports(
        &self,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> Vec<ProgressReport> {
        let reports = self.with_ids().filter_map(|(id, d)| {
            Some(ProgressReport {
                id: Some(id),
                info_hash: d.info_hash(),
                progress: d.report().progress(files, now)?,
            })
        });
        reports.collect()
    }

    // ---- inputs, routed to the downloads they concern -----------------------------------

    /// A peer's answer to one of our requests goes to the download it is for: a cookie to
    /// every download using the peer, a list of other holders to the download of its file,
    /// a have-map, manifest part, piece, reject or MTU probe reply to the first download
    /// that takes it. What none takes is counted. `Some(info_hash)` when a manifest checked
    /// and its partial file exists: the node may announce it.
    pub(super) fn handle_answer(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        message: &Message<'_>,
    ) -> Option<Hash> {
        match message {
            Message::Peers { fixed, peers } => {
                if !self.handle_exchange(parts, now, from, fixed.info_hash, peers) {
                    parts.out.stats.dropped_unexpected += 1;
                }
                None
            }
            Message::Welcome(_) => {
                self.handle_welcome(parts, now, from, message);
                None
            }
            _ => match self.handle_peer_message(parts, now, from, message) {
                Some(Handled::Consumed) => None,
                Some(Handled::ManifestReady(info_hash)) => Some(info_hash),
                None => {
                    if let Message::Piece { .. } | Message::StampedPiece { .. } = message {
                        parts.out.stats.pieces_unrequested += 1;
                    } else {
                        parts.out.stats.dropped_unexpected += 1;
                    }
                    None
                }
            },
        }
    }

    /// A peer's answer (have-map, manifest part, piece, reject, MTU probe reply) goes to the
    /// first download that takes it; `None` when none did.
    fn handle_peer_message(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        message: &Message<'_>,
    ) -> Option<Handled> {
        let mut each = self.list.iter_mut();
        each.find_map(|d| d.handle_peer_message(parts, now, from, message))
    }

    /// A peer's cookie is per address: every download using that peer needs it.
    fn handle_welcome(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        welcome: &Message<'_>,
    ) {
        for download in self.list.iter_mut() {
            let _ = download.handle_peer_message(parts, now, from, welcome);
        }
    }

    /// A peer told of other holders of `info_hash`: `false` when no download of it runs.
    fn handle_exchange(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        info_hash: Hash,
        listed: &[wire::PeerRecord],
    ) -> bool {
        let Some(download) = self.running_of_mut(info_hash) else {
            return false;
        };
        download.handle_exchange(parts, now, from, listed);
        true
    }

    /// Our tracker's answer to a look-up of `name`, for every download of that name.
    pub(super) fn handle_lookup(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        name: &str,
        versions: &[VersionRecord],
        holders: &[HolderRecord],
    ) {
        for download in self.list.iter_mut().filter(|d| d.name() == name) {
            download.handle_lookup(parts, now, versions, holders);
        }
    }

    /// A standard tracker's peers of `info_hash`, for every download of it.
    pub(super) fn handle_peers(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        info_hash: Hash,
        peers: &[SocketAddr],
    ) {
        let of_it = self
            .list
            .iter_mut()
            .filter(|d| d.info_hash() == Some(info_hash));
        for download in of_it {
            download.handle_peers(parts, now, peers);
        }
    }

    /// A hasher thread checked `chunk` for the download run `run`: the node to credit when
    /// it verified. A result for a run no longer in the list (cancelled, paused, even if
    /// resumed since) is dropped: the chunk's bytes may have been written anew.
    pub(super) fn chunk_checked(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        (run, chunk): (u64, u32),
        ok: bool,
    ) -> Option<u32> {
        let download = self.list.iter_mut().find(|d| d.run() == run)?;
        download.chunk_checked(parts, now, chunk, ok)
    }

    /// The partial content of the download of run `run` was opened (or not): its transfer
    /// begins. The info hash, when the node may announce the file.
    pub(super) fn partial_opened(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        run: u64,
        result: std::io::Result<(Arc<dyn Content>, Bitmap)>,
    ) -> Option<Hash> {
        let download = self.list.iter_mut().find(|d| d.run() == run)?;
        download.partial_opened(parts, now, result)
    }

    /// The download of run `run` was published (or not). Its info hash when it is done.
    pub(super) fn published(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        run: u64,
        result: std::io::Result<(Arc<dyn Content>, FileStamp)>,
    ) -> Option<Hash> {
        let Some(download) = self.list.iter_mut().find(|d| d.run() == run) else {
            // Stopped (paused, cancelled) while its file was being published.
            if let Err(error) = result {
                log::warn!("a download stopped while publishing could not publish: {error}");
            }
            return None;
        };
        let info_hash = download.info_hash();
        download
            .published(parts, now, result)
            .then_some(info_hash)
            .flatten()
    }

    /// Every download's due timers fire: the indices of those that want a look-up.
    pub(super) fn handle_timeout(&mut self, parts: &mut Parts<'_>, now: Instant) -> Vec<usize> {
        let mut lookups = Vec::new();
        for (index, download) in self.list.iter_mut().enumerate() {
            if download.handle_timeout(parts, now) {
                lookups.push(index);
            }
        }
        lookups
    }

    /// Every download asks its peers for as much as their windows hold.
    pub(super) fn fill_windows(&mut self, parts: &mut Parts<'_>, now: Instant) {
        if let Some(limit) = parts.download_limit.as_deref_mut() {
            limit.new_round();
        }
        for download in self.list.iter_mut() {
            download.fill_windows(parts, now);
        }
    }

    // ---- starting ---------------------------------------------------------------------------

    /// Whether another download may start: fewer than [`DOWNLOADS_MAX`] are running or
    /// paused.
    pub(super) fn has_room(&self) -> bool {
        self.running().count() + self.paused.len() < DOWNLOADS_MAX
    }

    /// Starts `download` in the place of the finished ones, whose ends are kept (see
    /// [`FINISHED_KEPT_MAX`]); returns its id.
    pub(super) fn start(
        &mut self,
        download: Download,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> u64 {
        debug_assert!(self.has_room(), "a download started past DOWNLOADS_MAX");
        let id = self.next_id;
        self.next_id += 1;
        self.push(id, download, files, now);
        id
    }

    /// Puts `download` in the list under `id`, as a new run, in the place of the finished
    /// ones (whose ends are kept); the download, as it is in the list.
    fn push(
        &mut self,
        id: u64,
        mut download: Download,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> &Download {
        let mut index = 0;
        while index < self.list.len() {
            if self.list[index].finished() {
                let (gone, id) = (self.list.remove(index), self.ids.remove(index));
                self.remember_end(info(id, &gone, files, now));
            } else {
                index += 1;
            }
        }
        download.started_as(id, self.next_run);
        self.next_run += 1;
        self.ids.push(id);
        self.list.push(download);
        &self.list[self.list.len() - 1]
    }

    fn remember_end(&mut self, end: DownloadInfo) {
        if self.ended.len() == FINISHED_KEPT_MAX {
            self.ended.pop_front();
        }
        self.ended.push_back(end);
    }

    // ---- pausing, resuming, cancelling -------------------------------------------------------

    /// The id of the download `target` names: its id (digits), else the file name or info
    /// hash (hex) a running or paused download fetches.
    pub(super) fn find(&self, target: &str) -> Option<u64> {
        // Any id known, ended ones too: what becomes of it then says where that one is.
        let by_id = target.parse::<u64>().ok().filter(|id| {
            self.ids.contains(id)
                || self.paused.iter().any(|p| p.info.id == *id)
                || self.ended.iter().any(|d| d.id == *id)
        });
        let running = self
            .ids
            .iter()
            .zip(&self.list)
            .filter(|(_, d)| !d.finished());
        let by_name = |(&id, d): (&u64, &Download)| {
            let hex = d.info_hash().map(|h| wire::hex(&h));
            (d.name() == target || hex.as_deref() == Some(target)).then_some(id)
        };
        by_id
            .or_else(|| running.filter_map(by_name).next())
            .or_else(|| self.paused_named(target))
    }

    /// Pauses running download `id`: it leaves the list with its partial file kept, and
    /// its chunks verified stay served. An error line when it is not running.
    pub(super) fn pause(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        id: u64,
    ) -> Result<Stopped, String> {
        let index = self.running_index(id)?;
        let download = self.list.remove(index);
        self.ids.remove(index);
        let mut info = info(id, &download, parts.files, now);
        info.state = DownloadState::Paused;
        info.bytes_per_s = 0.0;
        info.peers = 0;
        let info_hash = download.info_hash();
        // A file with no chunk verified has nothing to serve: it leaves the table (its
        // partial file stays for the resume).
        let released = info_hash.is_some_and(|h| {
            let empty = parts.files.get(&h).is_some_and(|f| f.have.count() == 0);
            empty && parts.files.remove(&h).is_some()
        });
        let event = paused_event(&info);
        self.paused.push(Paused {
            asked: download.asked().clone(),
            info,
        });
        Ok(Stopped {
            event,
            info_hash,
            released,
        })
    }

    /// Starts paused download `id` again, under the same id: the download, to act on as on
    /// a new one. An error line when it is not paused.
    pub(super) fn resume(
        &mut self,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
        id: u64,
        give_up_after: Duration,
    ) -> Result<&Download, String> {
        let Some(index) = self.paused.iter().position(|p| p.info.id == id) else {
            return Err(self.not_there(id, "paused"));
        };
        let paused = self.paused.remove(index);
        let download = Download::new(paused.asked.clone(), now, give_up_after);
        Ok(self.push(id, download, files, now))
    }

    /// Cancels running or paused download `id`: it ends, and its partial file is removed
    /// unless `keep_partial`. An error line when it is neither running nor paused.
    pub(super) fn cancel(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        id: u64,
        keep_partial: bool,
    ) -> Result<Stopped, String> {
        let (asked, mut info) = match self.running_index(id) {
            Ok(index) => {
                let download = self.list.remove(index);
                self.ids.remove(index);
                let info = info(id, &download, parts.files, now);
                (download.asked().clone(), info)
            }
            Err(error) => match self.paused.iter().position(|p| p.info.id == id) {
                Some(index) => {
                    let paused = self.paused.remove(index);
                    (paused.asked, paused.info)
                }
                None => return Err(error),
            },
        };
        info.state = DownloadState::Cancelled;
        info.bytes_per_s = 0.0;
        info.peers = 0;
        let info_hash = asked.info_hash();
        let (left, released) = match info_hash {
            Some(info_hash) if keep_partial => {
                (super::download::keep_partial(parts, info_hash), false)
            }
            Some(info_hash) => (super::download::remove_partial(parts, info_hash), true),
            None => (super::PartialFate::None, false),
        };
        let event = Event::Cancelled {
            id,
            name: info.name.clone(),
            info_hash,
            partial: left,
        };
        self.remember_end(info);
        Ok(Stopped {
            event,
            info_hash,
            released,
        })
    }

    fn running_index(&self, id: u64) -> Result<usize, String> {
        match self.ids.iter().position(|&known| known == id) {
            Some(index) if !self.list[index].finished() => Ok(index),
            _ => Err(self.not_there(id, "running")),
        }
    }

    /// Why download `id` is not `wanted` (running, paused).
    fn not_there(&self, id: u64, wanted: &str) -> String {
        let state = self
            .ids
            .iter()
            .zip(&self.list)
            .find(|(known, _)| **known == id)
            .map(|(_, d)| {
                if d.failed() {
                    "failed"
                } else if d.finished() {
                    "done"
                } else {
                    "running"
                }
            })
            .or_else(|| {
                self.paused
                    .iter()
                    .any(|p| p.info.id == id)
                    .then_some("paused")
            })
            .or_else(|| {
                let end = self.ended.iter().find(|d| d.id == id)?;
                Some(match end.state {
                    DownloadState::Cancelled => "cancelled",
                    DownloadState::Failed => "failed",
                    _ => "done",
                })
            });
        match state {
            Some(state) => format!("download {id} is {state}, not {wanted}"),
            None => format!("no download has id {id}"),
        }
    }

    // ---- reporting --------------------------------------------------------------------------

    /// The download with id `id`, running or finished, if it is still known.
    pub(super) fn info_of(
        &self,
        id: u64,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> Option<DownloadInfo> {
        match self.ids.iter().position(|&known| known == id) {
            Some(index) => Some(info(id, &self.list[index], files, now)),
            None => self
                .paused
                .iter()
                .map(|p| &p.info)
                .chain(&self.ended)
                .find(|d| d.id == id)
                .cloned(),
        }
    }

    /// The peers of each running download, and `status`'s line for each.
    pub(super) fn peers(
        &self,
        piece_bytes_max: u32,
        now: Instant,
    ) -> (Vec<DownloadPeers>, Vec<String>) {
        let running = self
            .ids
            .iter()
            .zip(&self.list)
            .filter(|(_, d)| !d.finished());
        let mut lines = Vec::new();
        let mut infos = Vec::new();
        for (&id, download) in running {
            lines.push(format!("download {id} ({}):", download.name()));
            let peer_lines = download.report().peer_lines(piece_bytes_max, now);
            lines.extend(peer_lines.into_iter().map(|line| format!("  {line}")));
            infos.push(DownloadPeers {
                id,
                name: download.name().to_string(),
                peers: download.report().peer_infos(),
            });
        }
        (infos, lines)
    }

    /// Every download known: those in the list, the paused ones, then the ends kept, the
    /// most recent first.
    pub(super) fn infos(
        &self,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> Vec<DownloadInfo> {
        let listed = self.ids.iter().zip(&self.list);
        let mut infos: Vec<DownloadInfo> = listed.map(|(&id, d)| info(id, d, files, now)).collect();
        infos.extend(self.paused.iter().map(|p| p.info.clone()));
        infos.extend(self.ended.iter().rev().cloned());
        infos
    }
}

/// Where download `id` is, for the control socket.
fn info(
    id: u64,
    download: &Download,
    files: &BTreeMap<Hash, LocalFile>,
    now: Instant,
) -> DownloadInfo {
    let state = if download.failed() {
        DownloadState::Failed
    } else if download.finished() {
        DownloadState::Done
    } else {
        DownloadState::Running
    };
    let info_hash = download.info_hash();
    let mut info = DownloadInfo {
        id,
        name: download.name().to_string(),
        info_hash: info_hash.map(|h| wire::hex(&h)),
        state,
        verified_bytes: 0,
        total_bytes: None,
        bytes_per_s: 0.0,
        peers: 0,
    };
    if let Some(progress) = download.report().progress(files, now) {
        info.verified_bytes = progress.verified_bytes;
        info.total_bytes = progress.total_bytes;
        info.bytes_per_s = progress.bytes_per_s;
        info.peers = progress.peers;
    } else if let Some(file) = info_hash.and_then(|h| files.get(&h)) {
        info.verified_bytes = file.manifest.held_bytes(&file.have);
        info.total_bytes = Some(file.manifest.file_bytes);
    }
    info
}

/// What `pause` says of a download, and `status` of a paused one.
pub(super) fn paused_event(info: &DownloadInfo) -> Event {
    Event::Paused {
        id: info.id,
        name: info.name.clone(),
        verified_bytes: info.verified_bytes,
        total_bytes: info.total_bytes,
    }
}
