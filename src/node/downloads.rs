//! The downloads a node runs: at most [`DOWNLOADS_MAX`] at once, found by the name or the
//! info hash they fetch, or by the id each is given when it starts (for the control socket).
//! A finished download (done or failed) stays in the list, for `status` and the exit report,
//! until a new one starts; then what it came to is kept, for the last
//! [`FINISHED_KEPT_MAX`], so that a script waiting for it still finds out.

use super::download::{Download, Handled};
use super::{LocalFile, Parts};
use crate::control::{DownloadInfo, DownloadState};
use crate::wire::{self, Hash, HolderRecord, Message, VersionRecord};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

/// Most downloads running at once.
pub const DOWNLOADS_MAX: usize = 64;
/// Finished downloads whose end is remembered once they leave the list.
pub const FINISHED_KEPT_MAX: usize = 64;

/// The node's downloads, running and finished (see the module documentation).
pub(super) struct Downloads {
    list: Vec<Download>,
    /// The id of each download in `list`, in the same order.
    ids: Vec<u64>,
    next_id: u64,
    /// What the downloads that left the list came to, the most recent last.
    ended: VecDeque<DownloadInfo>,
}

impl Downloads {
    pub(super) fn new() -> Downloads {
        Downloads {
            list: Vec::new(),
            ids: Vec::new(),
            next_id: 1,
            ended: VecDeque::new(),
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

    pub(super) fn any_failed(&self) -> bool {
        self.list.iter().any(|d| d.failed())
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

    /// The download of `info_hash`, running or finished (a chunk check may come back after
    /// the download failed).
    fn of_mut(&mut self, info_hash: Hash) -> Option<&mut Download> {
        self.list
            .iter_mut()
            .find(|d| d.info_hash() == Some(info_hash))
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

    // ---- inputs, routed to the downloads they concern -----------------------------------

    /// A peer's answer (have-map, manifest part, piece, reject, MTU probe reply) goes to the
    /// first download that takes it; `None` when none did.
    pub(super) fn handle_peer_message(
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
    pub(super) fn handle_welcome(
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
    pub(super) fn handle_exchange(
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
        let own_node_id = parts.config.node_id;
        download.handle_exchange(parts, now, from, own_node_id, listed);
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
        let own_node_id = parts.config.node_id;
        for download in self.list.iter_mut().filter(|d| d.name() == name) {
            download.handle_lookup(parts, now, own_node_id, versions, holders);
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
        let own_node_id = parts.config.node_id;
        let of_it = self
            .list
            .iter_mut()
            .filter(|d| d.info_hash() == Some(info_hash));
        for download in of_it {
            download.handle_peers(parts, now, own_node_id, peers);
        }
    }

    /// A hasher thread checked `chunk` of `info_hash`: the node to credit when it verified.
    pub(super) fn chunk_checked(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        (info_hash, chunk): (Hash, u32),
        ok: bool,
    ) -> Option<u32> {
        self.of_mut(info_hash)?.chunk_checked(parts, now, chunk, ok)
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
        for download in self.list.iter_mut() {
            download.fill_windows(parts, now);
        }
    }

    // ---- starting ---------------------------------------------------------------------------

    /// Whether another download may start: fewer than [`DOWNLOADS_MAX`] are running.
    pub(super) fn has_room(&self) -> bool {
        self.running().count() < DOWNLOADS_MAX
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
        let mut index = 0;
        while index < self.list.len() {
            if self.list[index].finished() {
                let (gone, id) = (self.list.remove(index), self.ids.remove(index));
                if self.ended.len() == FINISHED_KEPT_MAX {
                    self.ended.pop_front();
                }
                self.ended.push_back(info(id, &gone, files, now));
            } else {
                index += 1;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.list.push(download);
        self.ids.push(id);
        id
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
            None => self.ended.iter().find(|d| d.id == id).cloned(),
        }
    }

    /// Every download known: those in the list, then the ends kept, the most recent first.
    pub(super) fn infos(
        &self,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> Vec<DownloadInfo> {
        let listed = self.ids.iter().zip(&self.list);
        let mut infos: Vec<DownloadInfo> = listed.map(|(&id, d)| info(id, d, files, now)).collect();
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
    if let Some(progress) = download.progress(files, now) {
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
