//! The files a node holds, whole or in part ([`LocalFile`]), and the work on them that is
//! waiting: files being hashed to share, `.torrent` exports waiting for their file, the
//! next look at the directory for changed files, and the announces to the tracker that are
//! held back while a download's chunk count grows.
//!
//! The library decides what a file's state means (complete, acknowledged by the tracker,
//! withdrawn); the node's router turns its answers into datagrams and lines.

use super::events::Event;
use super::watch;
use crate::storage::{Bitmap, Content, FileStamp, Manifest};
use crate::wire::Hash;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most files a node holds (shared or downloading).
pub const FILES_MAX: usize = 4096;
/// Most `.torrent` exports waiting for their file to be hashed or downloaded.
pub const EXPORTS_WAITING_MAX: usize = 64;

/// Least time between two announces of a file whose chunk count grows (its first chunk and
/// its last are announced at once, and the tracker uses the count between only to say
/// whether a holder is complete). Peers learn of new partial holders from each other
/// (`wire::Peers`): at 500 ms, announces were a third of a downloader's datagrams to the
/// tracker (issue 14).
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(10);

/// A file this node holds, whole or in part.
pub(crate) struct LocalFile {
    pub(super) manifest: Arc<Manifest>,
    pub(super) mapping: Arc<dyn Content>,
    /// Verified chunks; a complete file has them all.
    pub(super) have: Bitmap,
    /// Chunk count the tracker last acknowledged for this file, if any.
    pub(super) acknowledged_chunks: Option<u32>,
    /// When the next announce may go out, when one is waiting.
    pub(super) announce_due: Option<Instant>,
    /// For a whole file in the node's directory (shared, or downloaded and published): its
    /// stamp when it was hashed or verified. `None` while downloading (the partial file is
    /// private) and once withdrawn.
    pub(super) stamp: Option<FileStamp>,
    /// The bencoded info dictionary, made the first time a standard client asks for the
    /// file (`peer_wire_seed`), then shared by every connection: 5 MB for a file of 256 K
    /// chunks, which a stream of handshakes would otherwise make again each time.
    pub(super) info_bytes: std::sync::OnceLock<Arc<[u8]>>,
}

impl LocalFile {
    pub(super) fn complete(&self) -> bool {
        self.have.is_full()
    }
}

/// What to tell the tracker after a file's chunk count changed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progressed {
    /// Announce now; `complete`: the file is whole.
    AnnounceNow { complete: bool },
    /// Later (or already waiting), or nothing to tell.
    Wait,
}

/// A file withdrawn because it changed on disk.
pub(super) struct Withdrawn {
    pub(super) name: String,
    /// The tracker must be told we no longer hold it (an empty file is simply forgotten:
    /// there is no chunk to withdraw).
    pub(super) tell_tracker: bool,
}

/// See the module documentation.
pub(super) struct Library {
    files: BTreeMap<Hash, LocalFile>,
    /// Files being hashed for sharing right now: each name, with when a hasher thread was
    /// asked for its manifest.
    hashing: Vec<(String, Instant)>,
    /// Names whose `.torrent` is written once the file is held (hashed or its manifest known).
    exports_waiting: Vec<String>,
    /// When the stamps of the files in the directory are next compared with the disk.
    check_due: Instant,
}

impl Library {
    pub(super) fn new(now: Instant) -> Library {
        Library {
            files: BTreeMap::new(),
            hashing: Vec::new(),
            exports_waiting: Vec::new(),
            check_due: now + watch::FILES_CHECK_INTERVAL,
        }
    }

    pub(super) fn files(&self) -> &BTreeMap<Hash, LocalFile> {
        &self.files
    }

    /// The table itself, for a download that adds its file or records a verified chunk.
    pub(super) fn files_mut(&mut self) -> &mut BTreeMap<Hash, LocalFile> {
        &mut self.files
    }

    pub(super) fn hashing(&self) -> &[(String, Instant)] {
        &self.hashing
    }

    pub(super) fn exports_waiting(&self) -> &[String] {
        &self.exports_waiting
    }

    /// Files being hashed or exports waiting: work a script waits for.
    pub(super) fn busy(&self) -> bool {
        !self.hashing.is_empty() || !self.exports_waiting.is_empty()
    }

    /// Files held and being hashed, against [`FILES_MAX`].
    pub(super) fn len(&self) -> usize {
        self.files.len() + self.hashing.len()
    }

    // ---- sharing --------------------------------------------------------------------------

    pub(super) fn is_hashing(&self, name: &str) -> bool {
        self.hashing.iter().any(|(hashed, _)| hashed == name)
    }

    /// Starts hashing `name` to share it, unless the library is full.
    pub(super) fn start_hashing(&mut self, name: &str, now: Instant) -> Result<(), String> {
        if self.len() >= FILES_MAX {
            return Err(format!(
                "cannot share {name}: this node already holds {FILES_MAX} files"
            ));
        }
        self.hashing.push((name.to_string(), now));
        Ok(())
    }

    /// The hashing of `name` ended: with its manifest, stamp and opened file, it is held
    /// whole and served from now on (its info hash returned); or the line saying why it
    /// cannot be shared.
    pub(super) fn hashed(
        &mut self,
        now: Instant,
        name: &str,
        result: Result<(Manifest, FileStamp, Arc<dyn Content>), String>,
    ) -> Result<Hash, String> {
        let asked = self
            .hashing
            .iter()
            .find(|(hashed, _)| *hashed == name)
            .map(|&(_, asked)| asked);
        self.hashing.retain(|(hashed, _)| *hashed != name);
        let (manifest, stamp, mapping) =
            result.map_err(|error| format!("cannot share {name}: {error}"))?;
        // A cached manifest comes back at once; a new file was read and hashed on every
        // hasher thread.
        let seconds = asked.map_or(0.0, |t| (now - t).as_secs_f64());
        log::info!(
            "manifest of {name} ready in {seconds:.3} s ({} bytes, {} chunks, {})",
            manifest.file_bytes,
            manifest.chunk_count(),
            crate::units::rate(manifest.file_bytes as f64 / seconds.max(1e-6))
        );
        let info_hash = manifest.info_hash;
        let have = Bitmap::full(manifest.chunk_count());
        self.files.insert(
            info_hash,
            LocalFile {
                manifest: Arc::new(manifest),
                mapping,
                have,
                acknowledged_chunks: None,
                announce_due: None,
                stamp: Some(stamp),
                info_bytes: Default::default(),
            },
        );
        Ok(info_hash)
    }

    // ---- exports --------------------------------------------------------------------------

    /// The manifest of a file called `name`, the complete one first.
    pub(super) fn manifest_named(&self, name: &str) -> Option<Arc<Manifest>> {
        self.files
            .values()
            .filter(|file| file.manifest.name == name)
            .max_by_key(|file| file.complete())
            .map(|file| Arc::clone(&file.manifest))
    }

    /// The export of `name` waits for its file, unless [`EXPORTS_WAITING_MAX`] already do.
    pub(super) fn wait_for_export(&mut self, name: String) -> Result<(), String> {
        if self.exports_waiting.len() >= EXPORTS_WAITING_MAX {
            return Err(format!(
                "cannot export {name}: {EXPORTS_WAITING_MAX} exports are already waiting"
            ));
        }
        if !self.exports_waiting.contains(&name) {
            self.exports_waiting.push(name);
        }
        Ok(())
    }

    /// The manifest of `info_hash`, if an export waits for it (it waits no more).
    pub(super) fn take_export(&mut self, info_hash: Hash) -> Option<Arc<Manifest>> {
        let manifest = Arc::clone(&self.files.get(&info_hash)?.manifest);
        let index = self
            .exports_waiting
            .iter()
            .position(|name| *name == manifest.name)?;
        self.exports_waiting.swap_remove(index);
        Some(manifest)
    }

    // ---- the tracker ----------------------------------------------------------------------

    /// A chunk of `info_hash` verified, or its download started: whether to announce now.
    /// The first chunk is announced at once (from then on the node can serve, and in a swarm
    /// the sooner others learn of it, the sooner its upload is used), and so is the last;
    /// between, at most every [`ANNOUNCE_INTERVAL`].
    /// `None`: the library does not hold `info_hash`.
    pub(super) fn progressed(&mut self, now: Instant, info_hash: Hash) -> Option<Progressed> {
        let file = self.files.get_mut(&info_hash)?;
        if file.complete() || (file.have.count() == 1 && file.announce_due.is_none()) {
            return Some(Progressed::AnnounceNow {
                complete: file.complete(),
            });
        }
        if file.announce_due.is_none() && file.have.count() > 0 {
            file.announce_due = Some(now + ANNOUNCE_INTERVAL);
        }
        Some(Progressed::Wait)
    }

    /// Whether `info_hash` is worth announcing (held, or an empty file); if so, no announce
    /// waits for it any more.
    pub(super) fn take_announce(&mut self, info_hash: Hash) -> bool {
        let Some(file) = self.files.get_mut(&info_hash) else {
            return false;
        };
        // An empty file has no chunks: complete, it is announced all the same.
        if file.have.count() == 0 && !file.complete() {
            return false;
        }
        file.announce_due = None;
        true
    }

    /// Files whose held-back announce is due.
    pub(super) fn announces_due(&self, now: Instant) -> Vec<Hash> {
        self.files
            .iter()
            .filter(|(_, f)| f.announce_due.is_some_and(|t| t <= now))
            .map(|(h, _)| *h)
            .collect()
    }

    /// Our tracker recorded `chunks_held` chunks of `info_hash` for us. Returns the event for
    /// the user when the file is now known whole.
    pub(super) fn acknowledged(
        &mut self,
        now: Instant,
        info_hash: Hash,
        chunks_held: u32,
    ) -> Option<Event> {
        let file = self.files.get_mut(&info_hash)?;
        if file.have.count() == 0 && !file.complete() {
            // The tracker recorded a withdrawal: forget the file.
            self.files.remove(&info_hash);
            return None;
        }
        let first_complete = file.complete() && file.acknowledged_chunks != Some(file.have.count());
        file.acknowledged_chunks = Some(chunks_held);
        if file.acknowledged_chunks != Some(file.have.count()) {
            file.announce_due = Some(now);
            None
        } else {
            first_complete.then(|| sharing(&file.manifest))
        }
    }

    /// A standard tracker answered an announce of `info_hash`: a whole file is known to it
    /// from then on. Returns the event for the user the first time.
    pub(super) fn announced_whole(&mut self, info_hash: Hash) -> Option<Event> {
        let file = self.files.get_mut(&info_hash)?;
        if file.complete() && file.acknowledged_chunks != Some(file.have.count()) {
            file.acknowledged_chunks = Some(file.have.count());
            return Some(sharing(&file.manifest));
        }
        None
    }

    // ---- the directory --------------------------------------------------------------------

    /// Whether the files in the directory are to be compared with the disk now (then not
    /// again for [`watch::FILES_CHECK_INTERVAL`]).
    pub(super) fn check_due(&mut self, now: Instant) -> bool {
        if now < self.check_due {
            return false;
        }
        self.check_due = now + watch::FILES_CHECK_INTERVAL;
        true
    }

    /// When the library next needs the node: an announce held back, or a look at the
    /// directory while it holds whole files of it.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let announce = self.files.values().filter_map(|f| f.announce_due).min();
        let check = self
            .files
            .values()
            .any(|f| f.stamp.is_some())
            .then_some(self.check_due);
        [announce, check].into_iter().flatten().min()
    }

    /// Stops holding the version of `info_hash` held whole in the directory (it changed on
    /// disk, or the user unshared it); what the tracker has to be told stays until it is.
    /// `None` when it was withdrawn already, or is a download in progress (its partial file
    /// is private).
    pub(super) fn withdraw(&mut self, info_hash: Hash) -> Option<Withdrawn> {
        let file = self.files.get_mut(&info_hash)?;
        file.stamp.take()?;
        let name = file.manifest.name.clone();
        if file.manifest.chunk_count() == 0 {
            // An empty file has no chunk to withdraw: the tracker cannot be told, and there
            // is nothing stale to serve. Forget it.
            self.files.remove(&info_hash);
            return Some(Withdrawn {
                name,
                tell_tracker: false,
            });
        }
        file.have = Bitmap::new(file.manifest.chunk_count());
        file.announce_due = None;
        Some(Withdrawn {
            name,
            tell_tracker: true,
        })
    }

    /// The versions of `name` held whole from the directory (shared, or downloaded and
    /// published).
    pub(super) fn shared_named(&self, name: &str) -> Vec<Hash> {
        let files = self.files.values();
        let shared = files.filter(|f| f.manifest.name == name && f.stamp.is_some());
        shared.map(|f| f.manifest.info_hash).collect()
    }

    // ---- for the simulation's checkers ----------------------------------------------------

    /// The verified chunks of the file called `name` (whole or partial), if there is one.
    pub(super) fn chunks_held(&self, name: &str) -> Option<&Bitmap> {
        self.files
            .values()
            .find(|file| file.manifest.name == name)
            .map(|file| &file.have)
    }

    /// What the node would announce: info hash → chunks held, for every file it holds some
    /// of (or an empty file).
    pub(super) fn announceable(&self) -> BTreeMap<Hash, u32> {
        self.files
            .iter()
            .filter(|(_, file)| file.have.count() > 0 || file.complete())
            .map(|(hash, file)| (*hash, file.have.count()))
            .collect()
    }
}

/// What the user is told once the tracker knows the node holds a whole file: the line
/// tests, the demo and scripts wait for.
fn sharing(manifest: &Manifest) -> Event {
    Event::Sharing {
        name: manifest.name.clone(),
        info_hash: manifest.info_hash,
        bytes: manifest.file_bytes,
        chunks: manifest.chunk_count(),
    }
}
