//! The node's state directory, `DIR/.torrent`, and the node's directory around it: the
//! identity, cached manifests, partial downloads, publishing and exports. The layout is in
//! the parent module's documentation; how each file is opened, in [`super::dir`].

use super::dir::{self, Access, Dir, Existing};
use super::{
    Bitmap, FileStamp, MANIFEST_FILE_BYTES_MAX, Manifest, Mapping, STATE_DIR_NAME,
    changed_while_hashed, hash_chunks, missing_bytes, reserve,
};
use crate::wire::{self, Hash};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The node's directory and its state directory, `DIR/.torrent`, opened by handle (see
/// [`dir`]): cloned cheaply (hasher threads get a clone), and while any clone of a state
/// directory opened with [`StateDir::open_exclusive`] lives, no other process uses `DIR`.
#[derive(Clone, Debug)]
pub struct StateDir {
    dirs: Arc<Dirs>,
    /// The node id whose identity [`StateDir::load_token`] and [`StateDir::save_token`]
    /// keep (see [`StateDir::for_node`]).
    node_id: u32,
}

#[derive(Debug)]
struct Dirs {
    files: Dir,
    root: Dir,
    manifests: Dir,
    partial: Dir,
    /// The lock on `.torrent/lock`, held while this lives (when taken).
    _lock: Option<File>,
}

/// A partial download found in the state directory: what `status` says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialSummary {
    pub info_hash: Hash,
    pub name: String,
    pub file_bytes: u64,
    /// Bytes of the chunks its have-file records as verified.
    pub verified_bytes: u64,
    /// Bytes the partial file takes on disk.
    pub disk_bytes: u64,
}

impl StateDir {
    /// Opens `files_dir` (created if missing) and its state directories, refusing any that
    /// is not a real directory of this user's (see [`Dir::private_subdir`]). Takes no lock:
    /// for simulations and tests, which open several nodes' directories in one process.
    pub fn open(files_dir: &Path) -> io::Result<StateDir> {
        StateDir::open_with(files_dir, false)
    }

    /// [`StateDir::open`] for a node process: first of all takes the lock of the directory
    /// (`.torrent/lock`, holding the process id), so that two processes never share one.
    /// When another process holds it, the error is [`io::ErrorKind::ResourceBusy`] and says
    /// which.
    pub fn open_exclusive(files_dir: &Path) -> io::Result<StateDir> {
        StateDir::open_with(files_dir, true)
    }

    fn open_with(files_dir: &Path, lock: bool) -> io::Result<StateDir> {
        let files = Dir::open_root(files_dir)?;
        let root = files.private_subdir(STATE_DIR_NAME)?;
        let lock = if lock { Some(root.lock("lock")?) } else { None };
        let manifests = root.private_subdir("manifests")?;
        let partial = root.private_subdir("partial")?;
        Ok(StateDir {
            dirs: Arc::new(Dirs {
                files,
                root,
                manifests,
                partial,
                _lock: lock,
            }),
            node_id: 0,
        })
    }

    /// The same directories, keeping the identity of node `node_id`.
    pub fn for_node(self, node_id: u32) -> StateDir {
        StateDir { node_id, ..self }
    }

    pub fn files_dir(&self) -> &Path {
        self.dirs.files.path()
    }

    /// Where a shared file lives, for messages. `name` must have passed `wire::check_name`,
    /// which keeps the path inside the directory (one component, no separators, no `..`).
    pub fn file_path(&self, name: &str) -> PathBuf {
        debug_assert!(wire::check_name(name.as_bytes()).is_ok());
        self.dirs.files.path_of(name)
    }

    /// Whether anything is called `name` in the node's directory: a file, a directory, a
    /// link (even one that points nowhere). A download never replaces any of them.
    pub fn name_taken(&self, name: &str) -> bool {
        self.dirs.files.contains(name)
    }

    fn partial_name(info_hash: &Hash, extension: &str) -> String {
        format!("{}.{extension}", wire::hex(info_hash))
    }

    /// Writes `DIR/name` whole (a `.torrent` export), through a temporary file in the state
    /// directory (see [`Dir::write_whole`]). An existing `DIR/name` is never replaced: the
    /// error is [`io::ErrorKind::AlreadyExists`].
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let dirs = &self.dirs;
        let path = self.file_path(name);
        if dirs.files.contains(name) {
            return Err(already_exists(&path));
        }
        dirs.root
            .write_whole(&dirs.files, name, bytes, Existing::Keep)?;
        Ok(path)
    }

    fn identity_name(&self) -> String {
        format!("identity.{}", self.node_id)
    }

    /// The token this node id was given by the tracker, or 0 when it has none yet. Each
    /// node id run on this directory keeps its own (`.torrent/identity.ID`), so ids used one
    /// after another do not take each other's. A `.torrent/identity` of an older version
    /// (one token, no id) is taken over by the first id that runs, once.
    pub fn load_token(&self) -> u64 {
        let root = &self.dirs.root;
        let name = self.identity_name();
        if !root.contains(&name) && root.contains("identity") {
            // Renamed, not copied: a second id must not take the same token.
            if let Err(error) = root.rename("identity", &name) {
                log::warn!("cannot take over the old identity file: {error}");
            }
        }
        let text = root.read_bounded(&name, 64).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        u64::from_str_radix(text.trim(), 16).unwrap_or(0)
    }

    pub fn save_token(&self, token: u64) -> io::Result<()> {
        self.dirs
            .root
            .write_atomically(&self.identity_name(), format!("{token:016x}\n").as_bytes())
    }

    /// The manifest of `DIR/name`, from the cache when the file has not changed since,
    /// otherwise by hashing it (on `threads` threads) and caching the result, with its stamp
    /// and the file opened for serving (read with `pread`: once it is the user's, a mapping
    /// of it could raise SIGBUS if they truncate it). The chunk size is `chunk_bytes`, or
    /// larger for a file with more than [`wire::CHUNKS_MAX`] chunks of it.
    ///
    /// Only a regular file is shared: a link (which could lead out of the directory), a
    /// FIFO, socket or device is refused at once, never opened in a way that could block.
    /// A file that changes while it is being hashed is refused: its hashes would describe
    /// neither version.
    pub fn manifest_of(
        &self,
        name: &str,
        chunk_bytes: u32,
        threads: usize,
    ) -> io::Result<(Manifest, FileStamp, Arc<Mapping>)> {
        let dirs = &self.dirs;
        if dirs.files.entry(name).is_ok_and(|meta| meta.is_symlink()) {
            return Err(io::Error::other(format!(
                "{name} is a symbolic link; share the file itself (the node reads nothing outside {})",
                self.files_dir().display()
            )));
        }
        let file = dirs.files.open_regular(name, Access::Read)?;
        let meta = file.metadata()?;
        let stamp = FileStamp::of(&meta);
        let serving = Arc::new(Mapping::read_only(&file, meta.len())?);
        if let Some((manifest, cached)) = dirs
            .manifests
            .read_bounded(name, MANIFEST_FILE_BYTES_MAX)
            .ok()
            .as_deref()
            .and_then(Manifest::from_bytes)
            && cached == stamp.fingerprint()
            && manifest.file_bytes == meta.len()
            && manifest.name == name
        {
            return Ok((manifest, stamp, serving));
        }
        let chunk_bytes = chunk_bytes_for(meta.len(), chunk_bytes);
        if !wire::shape_ok(meta.len(), chunk_bytes) {
            return Err(io::Error::other(format!(
                "{name} is too large for {chunk_bytes}-byte chunks (at most {} chunks)",
                wire::CHUNKS_MAX
            )));
        }
        let hashes = hash_chunks(&serving, chunk_bytes, threads);
        if FileStamp::of(&file.metadata()?) != stamp {
            return Err(changed_while_hashed(name));
        }
        let manifest = Manifest::new(name.to_owned(), meta.len(), chunk_bytes, hashes);
        // A cache that cannot be written only costs a rehash next time.
        let _ = dirs
            .manifests
            .write_atomically(name, &manifest.to_bytes(stamp.fingerprint()));
        Ok((manifest, stamp, serving))
    }

    /// The stamp `DIR/name` has now; an error when it is gone or is no regular file (a
    /// link is not followed: a file replaced by a link is no longer the file shared).
    pub fn stamp_of(&self, name: &str) -> io::Result<FileStamp> {
        let meta = self.dirs.files.entry(name)?;
        if !meta.is_file() {
            return Err(io::Error::other(format!(
                "{} is {}, not a regular file",
                self.file_path(name).display(),
                dir::kind(&meta)
            )));
        }
        Ok(FileStamp::of(&meta))
    }

    /// The manifest of an interrupted download of `info_hash`, if one was saved and checks.
    pub fn partial_manifest(&self, info_hash: &Hash) -> Option<Manifest> {
        let bytes = self
            .dirs
            .partial
            .read_bounded(
                &StateDir::partial_name(info_hash, "manifest"),
                MANIFEST_FILE_BYTES_MAX,
            )
            .ok()?;
        Manifest::from_bytes(&bytes)
            .map(|(manifest, _)| manifest)
            .filter(|m| m.info_hash == *info_hash)
    }

    /// Opens the partial file of a download, creating it (space reserved up front) or
    /// resuming it. Returns the mapping and the chunks an earlier run recorded as verified;
    /// the caller re-checks those before counting them.
    ///
    /// When the disk has too little room (for the reservation or the small state files), the
    /// error is [`io::ErrorKind::StorageFull`] and says how many bytes are missing; nothing
    /// was published, and calling again once there is room carries on. Anything but a
    /// regular file of this node's own under the partial file's name (a link, a FIFO, a
    /// hard link to another name) is refused, never written through.
    pub fn open_partial(&self, manifest: &Manifest) -> io::Result<(Arc<Mapping>, Bitmap)> {
        let partial = &self.dirs.partial;
        let part_name = StateDir::partial_name(&manifest.info_hash, "part");
        let have_name = StateDir::partial_name(&manifest.info_hash, "have");
        let manifest_name = StateDir::partial_name(&manifest.info_hash, "manifest");
        let count = manifest.chunk_count();
        let file = partial
            .open_regular(&part_name, Access::ReadWriteCreate)
            .map_err(|error| self.explain_full(error, manifest.file_bytes))?;
        let meta = file.metadata()?;
        let resumable = self
            .partial_manifest(&manifest.info_hash)
            .is_some_and(|stored| stored == *manifest)
            && meta.len() == manifest.file_bytes;
        let claimed = if resumable {
            partial
                .read_bounded(&have_name, wire::bitmap_len(count) as u64)
                .ok()
                .and_then(|bytes| Bitmap::from_bytes(count, &bytes))
                .unwrap_or(Bitmap::new(count))
        } else {
            let state_bytes = manifest.to_bytes(0);
            let have_bytes = Bitmap::new(count);
            let needed = (state_bytes.len() + have_bytes.as_bytes().len()) as u64;
            partial
                .write_atomically(&manifest_name, &state_bytes)
                .and_then(|()| partial.write_atomically(&have_name, have_bytes.as_bytes()))
                .map_err(|error| self.explain_full(error, needed))?;
            have_bytes
        };
        // Also when resuming: a partial file whose length is right may still have holes (an
        // earlier run on a file system without fallocate, a copy), and a write into a hole
        // of a mapping on a full disk is a SIGBUS. Reserving what is reserved already is cheap.
        if manifest.file_bytes > 0 {
            reserve(&file, manifest.file_bytes)
                .map_err(|error| self.explain_full(error, missing_bytes(&file, manifest)))?;
        }
        Ok((
            Arc::new(Mapping::read_write(
                &file,
                &partial.path_of(&part_name),
                manifest.file_bytes,
            )?),
            claimed,
        ))
    }

    /// A "disk full" error that says where and how much is missing; others unchanged.
    fn explain_full(&self, error: io::Error, needed_bytes: u64) -> io::Error {
        if error.kind() != io::ErrorKind::StorageFull {
            return error;
        }
        let stat = self.dirs.files.statvfs().ok();
        let free = match stat {
            // Room for bytes, none for another file.
            Some(stat) if stat.f_files > 0 && stat.f_favail == 0 => "no file (inode)".to_string(),
            Some(stat) => stat.f_bavail.saturating_mul(stat.f_frsize).to_string(),
            None => "unknown".to_string(),
        };
        let needed = match needed_bytes {
            0 => String::new(),
            bytes => format!("{bytes} more bytes needed, "),
        };
        io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "not enough disk space in {}: {needed}{free} free ({error})",
                self.files_dir().display()
            ),
        )
    }

    /// Records in the have-file that `chunk` of a download verified.
    pub fn record_verified(&self, info_hash: &Hash, have: &Bitmap, chunk: u32) -> io::Result<()> {
        let byte_index = (chunk / 8) as usize;
        let file = self
            .dirs
            .partial
            .open_regular(&StateDir::partial_name(info_hash, "have"), Access::Write)?;
        file.write_all_at(
            &have.as_bytes()[byte_index..byte_index + 1],
            byte_index as u64,
        )
    }

    /// The partial downloads in the state directory (at most [`dir::DIR_ENTRIES_MAX`]
    /// entries are looked at), by name: left by a download that failed or by an earlier
    /// run, or in progress.
    pub fn partials(&self) -> Vec<PartialSummary> {
        let mut found: Vec<PartialSummary> = self
            .dirs
            .partial
            .names()
            .unwrap_or_default()
            .iter()
            .filter_map(|name| name.strip_suffix(".manifest"))
            .filter_map(wire::parse_hex)
            .filter_map(|info_hash| self.partial_summary(&info_hash))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name).then(a.info_hash.cmp(&b.info_hash)));
        found
    }

    /// What the state directory holds of a download of `info_hash`, if its manifest and
    /// partial file are there.
    pub fn partial_summary(&self, info_hash: &Hash) -> Option<PartialSummary> {
        let partial = &self.dirs.partial;
        let manifest = self.partial_manifest(info_hash)?;
        let part = partial
            .entry(&StateDir::partial_name(info_hash, "part"))
            .ok()?;
        let count = manifest.chunk_count();
        let have = partial
            .read_bounded(
                &StateDir::partial_name(info_hash, "have"),
                wire::bitmap_len(count) as u64,
            )
            .ok()
            .and_then(|bytes| Bitmap::from_bytes(count, &bytes))
            .unwrap_or(Bitmap::new(count));
        Some(PartialSummary {
            info_hash: *info_hash,
            name: manifest.name.clone(),
            file_bytes: manifest.file_bytes,
            verified_bytes: manifest.held_bytes(&have),
            disk_bytes: part.blocks() * 512,
        })
    }

    /// Removes a download's partial state (file, have-file, manifest), releasing its space.
    pub fn remove_partial(&self, info_hash: &Hash) -> io::Result<()> {
        let partial = &self.dirs.partial;
        let mut result = Ok(());
        for extension in ["part", "have", "manifest"] {
            match partial.remove(&StateDir::partial_name(info_hash, extension)) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => result = Err(error),
                _ => {}
            }
        }
        result
    }

    /// Where a download's partial file is, for messages.
    pub fn partial_path(&self, info_hash: &Hash) -> PathBuf {
        self.dirs
            .partial
            .path_of(&StateDir::partial_name(info_hash, "part"))
    }

    /// Publishes a verified download as `DIR/NAME`: data synced, moved into place (never
    /// replacing anything, and only if the partial file's name still is the file the node
    /// wrote: see [`Dir::publish`]), directory synced; then the manifest is cached and the
    /// partial state removed.
    ///
    /// Returns the published file opened for serving with `pread` (once it is the user's
    /// file, a mapping of it could raise SIGBUS if they truncate it) and its stamp, taken from
    /// the very file that was verified, so that a file put in its place later is noticed.
    pub fn publish(
        &self,
        manifest: &Manifest,
        mapping: &Mapping,
    ) -> io::Result<(Arc<Mapping>, FileStamp)> {
        let dirs = &self.dirs;
        let part_name = StateDir::partial_name(&manifest.info_hash, "part");
        // On a file system that allocates on write back (copy on write, thin provisioning)
        // even reserved data may find no room now: StorageFull, and publishing again later
        // carries on. Nothing is published before the rename.
        mapping
            .flush()
            .map_err(|error| self.explain_full(error, 0))?;
        let verified = dirs.partial.open_regular(&part_name, Access::Read)?;
        verified
            .sync_all()
            .map_err(|error| self.explain_full(error, 0))?;
        dirs.partial
            .publish(&part_name, &verified, &dirs.files, &manifest.name)
            .map_err(|error| self.explain_full(error, 0))?;
        dirs.files.sync()?;
        let _ = dirs
            .partial
            .remove(&StateDir::partial_name(&manifest.info_hash, "have"));
        let _ = dirs
            .partial
            .remove(&StateDir::partial_name(&manifest.info_hash, "manifest"));
        let stamp = FileStamp::of(&verified.metadata()?);
        let _ = dirs
            .manifests
            .write_atomically(&manifest.name, &manifest.to_bytes(stamp.fingerprint()));
        let serving = Arc::new(Mapping::read_only(&verified, manifest.file_bytes)?);
        Ok((serving, stamp))
    }
}

/// `part` of `whole` as a percentage for people ("40%", "0.5%"; 100% only when whole).
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 || part >= whole {
        return "100%".to_string();
    }
    let percent = part as f64 * 100.0 / whole as f64;
    if percent < 1.0 {
        format!("{percent:.1}%")
    } else {
        format!("{:.0}%", percent.floor())
    }
}

fn already_exists(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} already exists; not replacing it", path.display()),
    )
}

/// The configured chunk size, doubled until the file fits in [`wire::CHUNKS_MAX`] chunks.
fn chunk_bytes_for(file_bytes: u64, configured: u32) -> u32 {
    let mut chunk_bytes = configured;
    while !wire::shape_ok(file_bytes, chunk_bytes) && chunk_bytes < wire::CHUNK_BYTES_MAX {
        chunk_bytes *= 2;
    }
    chunk_bytes
}
