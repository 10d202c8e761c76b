//! The node's storage on the filesystem: its state directory, `DIR/.torrent`, and the
//! node's directory around it: the identity, cached manifests, partial downloads,
//! publishing and exports. The layout is in the parent module's documentation; how each
//! file is opened, in [`super::dir`].

use super::dir::{self, Access, Dir, Existing};
use super::{
    Bitmap, Content, FileStamp, MANIFEST_FILE_BYTES_MAX, Manifest, Mapping, PartialSummary,
    STATE_DIR_NAME, Shared, Storage, already_exists, changed_while_hashed, chunk_bytes_for,
    hash_chunks, missing_bytes, reserve, too_large,
};
use crate::tree::TreeManifest;
use crate::wire::{self, Hash};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod places;
mod tree;

pub use places::PLACES_MAX;

/// The node's directory and its state directory, `DIR/.torrent`, opened by handle (see
/// [`dir`]): cloned cheaply, and while any clone of a state directory opened with
/// [`StateDir::open_exclusive`] lives, no other process uses `DIR`.
#[derive(Clone, Debug)]
pub struct StateDir {
    dirs: Arc<Dirs>,
}

#[derive(Debug)]
struct Dirs {
    files: Dir,
    root: Dir,
    manifests: Dir,
    partial: Dir,
    /// The lock on `.torrent/lock`, held while this lives (when taken).
    _lock: Option<File>,
    /// Other directories some of the node's files live in (see `places.rs`).
    places: std::sync::Mutex<places::Places>,
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
                places: Default::default(),
            }),
        })
    }

    /// The node's control socket (see [`crate::control`]), in its private state directory.
    pub fn bind_control(&self) -> io::Result<std::os::unix::net::UnixListener> {
        self.dirs.root.bind_unix(crate::control::SOCKET_NAME)
    }

    /// Where a shared file lives, for messages. `name` must have passed `wire::check_name`,
    /// which keeps the path inside the directory (one component, no separators, no `..`).
    pub fn file_path(&self, name: &str) -> PathBuf {
        debug_assert!(wire::check_name(name.as_bytes()).is_ok());
        self.dirs.files.path_of(name)
    }

    fn partial_name(info_hash: &Hash, extension: &str) -> String {
        format!("{}.{extension}", wire::hex(info_hash))
    }

    fn identity_name(node_id: u32) -> String {
        format!("identity.{node_id}")
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
}

impl Storage for StateDir {
    fn files_dir(&self) -> &Path {
        self.dirs.files.path()
    }

    fn place(&self, name: &str, dir: &Path) -> io::Result<PathBuf> {
        self.place_name(name, dir)
    }

    fn share_in_place(&self, name: &str, dir: &Path) -> io::Result<PathBuf> {
        self.place_shared(name, dir)
    }

    fn stop_sharing_in_place(&self, name: &str) -> io::Result<()> {
        self.unplace_shared(name)
    }

    fn shared_in_place(&self) -> Vec<PathBuf> {
        self.read_shared_in_place()
    }

    fn name_taken(&self, name: &str) -> bool {
        if let Some(place) = self.place_of_name(name) {
            return place.name_taken(name);
        }
        self.dirs.files.contains(name)
    }

    /// Writes `DIR/name` through a temporary file in the state directory (see
    /// [`Dir::write_whole`]).
    fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let dirs = &self.dirs;
        let path = self.file_path(name);
        if dirs.files.contains(name) {
            return Err(already_exists(&path));
        }
        dirs.root
            .write_whole(&dirs.files, name, bytes, Existing::Keep)?;
        Ok(path)
    }

    /// A relative path is looked for in the working directory, then in `DIR`; links on the
    /// path are followed, as the user asked (see [`dir::read_named_file`]).
    fn read_named_file(&self, path: &str, limit_bytes: u64) -> io::Result<Vec<u8>> {
        let mut full = PathBuf::from(path);
        if full.is_relative() && !full.exists() {
            full = self.files_dir().join(path);
        }
        dir::read_named_file(&full, limit_bytes)
    }

    /// Each node id run on this directory keeps its own token (`.torrent/identity.ID`), so
    /// ids used one after another do not take each other's. A `.torrent/identity` of an
    /// older version (one token, no id) is taken over by the first id that runs, once.
    fn load_token(&self, node_id: u32) -> u64 {
        let root = &self.dirs.root;
        let name = StateDir::identity_name(node_id);
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

    fn save_token(&self, node_id: u32, token: u64) -> io::Result<()> {
        self.dirs.root.write_atomically(
            &StateDir::identity_name(node_id),
            format!("{token:016x}\n").as_bytes(),
        )
    }

    /// The manifest of `DIR/name`; the cache is `DIR/.torrent/manifests/NAME`, and the file
    /// is opened for serving with `pread` (once it is the user's, a mapping of it could
    /// raise SIGBUS if they truncate it). The chunk size is `chunk_bytes`, or larger for a
    /// file with more than [`wire::CHUNKS_MAX`] chunks of it.
    ///
    /// Only a regular file is shared: a link (which could lead out of the directory), a
    /// FIFO, socket or device is refused at once, never opened in a way that could block.
    /// A file that changes while it is being hashed is refused: its hashes would describe
    /// neither version.
    fn manifest_of(&self, name: &str, chunk_bytes: u32, threads: usize) -> io::Result<Shared> {
        if let Some(place) = self.place_of_name(name) {
            return place.manifest_of(name, chunk_bytes, threads);
        }
        let dirs = &self.dirs;
        if dirs.files.entry(name).is_ok_and(|meta| meta.is_symlink()) {
            return Err(io::Error::other(format!(
                "{name} is a symbolic link; share the file itself (the node reads nothing outside {})",
                self.files_dir().display()
            )));
        }
        if dirs.files.entry(name).is_ok_and(|meta| meta.is_dir()) {
            return self.share_tree(name, chunk_bytes, threads);
        }
        let file = dirs.files.open_regular(name, Access::Read)?;
        let meta = file.metadata()?;
        let stamp = FileStamp::of(&meta);
        let serving: Arc<dyn Content> = Arc::new(Mapping::read_only(&file, meta.len())?);
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
            return Err(too_large(name, chunk_bytes));
        }
        let hashes = hash_chunks(&*serving, chunk_bytes, threads);
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

    fn share_described_tree(&self, tree: Arc<TreeManifest>, threads: usize) -> io::Result<Shared> {
        if let Some(place) = self.place_of_name(tree.name()) {
            return place.share_described_tree(tree, threads);
        }
        self.share_tree_as(tree, threads)
    }

    /// A link is not followed: a file replaced by a link is no longer the file shared. A
    /// tree's stamp is its directory's: it notices the tree replaced, or entries added or
    /// removed at its top (not yet a change deeper in it).
    fn stamp_of(&self, name: &str) -> io::Result<FileStamp> {
        if let Some(place) = self.place_of_name(name) {
            return place.stamp_of(name);
        }
        let meta = self.dirs.files.entry(name)?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(io::Error::other(format!(
                "{} is {}, not a regular file",
                self.file_path(name).display(),
                dir::kind(&meta)
            )));
        }
        Ok(FileStamp::of(&meta))
    }

    fn partial_manifest(&self, info_hash: &Hash) -> Option<Manifest> {
        if let Some(place) = self.place_of_partial(info_hash) {
            return place.partial_manifest(info_hash);
        }
        if let Some(found) = self.own_partial_manifest(info_hash) {
            return Some(found);
        }
        self.find_placed_partial(info_hash)?
            .partial_manifest(info_hash)
    }

    /// The partial file is mapped, its space reserved up front (`fallocate`). When the disk
    /// has too little room (for the reservation or the small state files), the error says
    /// how many bytes are missing. Anything but a regular file of this node's own under the
    /// partial file's name (a link, a FIFO, a hard link to another name) is refused, never
    /// written through.
    fn open_partial(&self, manifest: &Manifest) -> io::Result<(Arc<dyn Content>, Bitmap)> {
        if let Some(place) = self.place_of_name(&manifest.name) {
            self.note_placed_partial(manifest.info_hash, &manifest.name);
            return place.open_partial(manifest);
        }
        if let Some(tree) = &manifest.tree {
            return self.open_partial_with_tree(manifest, tree);
        }
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
        let mapping: Arc<dyn Content> = Arc::new(Mapping::read_write(
            &file,
            &partial.path_of(&part_name),
            manifest.file_bytes,
        )?);
        Ok((mapping, claimed))
    }

    /// Writes the one byte of the have-file that holds `chunk`.
    fn record_verified(&self, info_hash: &Hash, have: &Bitmap, chunk: u32) -> io::Result<()> {
        if let Some(place) = self.place_of_partial(info_hash) {
            return place.record_verified(info_hash, have, chunk);
        }
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

    /// At most [`dir::DIR_ENTRIES_MAX`] entries of the state directory are looked at.
    fn partials(&self) -> Vec<PartialSummary> {
        let mut found: Vec<PartialSummary> = self
            .dirs
            .partial
            .names()
            .unwrap_or_default()
            .iter()
            .filter_map(|name| {
                name.strip_suffix(".manifest")
                    .or_else(|| name.strip_suffix(".info"))
            })
            .filter_map(wire::parse_hex)
            .filter_map(|info_hash| self.partial_summary(&info_hash))
            .collect();
        for place in self.placed_dirs() {
            found.extend(place.partials());
        }
        found.sort_by(|a, b| a.name.cmp(&b.name).then(a.info_hash.cmp(&b.info_hash)));
        found
    }

    fn partial_summary(&self, info_hash: &Hash) -> Option<PartialSummary> {
        if let Some(place) = self.place_of_partial(info_hash) {
            return place.partial_summary(info_hash);
        }
        let partial = &self.dirs.partial;
        let manifest = self.partial_manifest(info_hash)?;
        // A tree's files each take their space; reserved whole, as a file's is.
        let disk_bytes = match manifest.tree {
            Some(_) => manifest.file_bytes,
            None => {
                partial
                    .entry(&StateDir::partial_name(info_hash, "part"))
                    .ok()?
                    .blocks()
                    * 512
            }
        };
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
            disk_bytes,
        })
    }

    /// Removes the partial file, the have-file and the manifest.
    fn remove_partial(&self, info_hash: &Hash) -> io::Result<()> {
        if let Some(place) = self.place_of_partial(info_hash) {
            return place.remove_partial(info_hash);
        }
        let partial = &self.dirs.partial;
        let mut result = Ok(());
        for extension in ["part", "have", "manifest", "info"] {
            match partial.remove(&StateDir::partial_name(info_hash, extension)) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => result = Err(error),
                _ => {}
            }
        }
        if let Err(error) = partial.remove_tree(&StateDir::tree_dir_name(info_hash)) {
            result = Err(error);
        }
        result
    }

    fn partial_path(&self, info_hash: &Hash) -> PathBuf {
        if let Some(place) = self.place_of_partial(info_hash) {
            return place.partial_path(info_hash);
        }
        let tree_dir = StateDir::tree_dir_name(info_hash);
        if self.dirs.partial.contains(&tree_dir) {
            return self.dirs.partial.path_of(&tree_dir);
        }
        self.dirs
            .partial
            .path_of(&StateDir::partial_name(info_hash, "part"))
    }

    /// As `DIR/NAME`: data synced, moved into place (never replacing anything, and only if
    /// the partial file's name still is the file the node wrote: see [`Dir::publish`]),
    /// directory synced; then the manifest is cached and the partial state removed.
    ///
    /// The published file is opened for serving with `pread` (once it is the user's file, a
    /// mapping of it could raise SIGBUS if they truncate it), and its stamp is taken from the
    /// very file that was verified, so that a file put in its place later is noticed.
    fn publish(
        &self,
        manifest: &Manifest,
        mapping: &dyn Content,
    ) -> io::Result<(Arc<dyn Content>, FileStamp)> {
        if let Some(place) = self.place_of_name(&manifest.name) {
            return place.publish(manifest, mapping);
        }
        if let Some(tree) = &manifest.tree {
            return self
                .publish_tree(manifest, tree, mapping)
                .map_err(|error| self.explain_full(error, 0));
        }
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
        let serving: Arc<dyn Content> =
            Arc::new(Mapping::read_only(&verified, manifest.file_bytes)?);
        Ok((serving, stamp))
    }
}

impl StateDir {
    /// [`Storage::partial_manifest`] of the node's own partial directory.
    fn own_partial_manifest(&self, info_hash: &Hash) -> Option<Manifest> {
        if let Some(tree) = self.partial_tree(info_hash) {
            return Some(tree);
        }
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
