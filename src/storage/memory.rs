//! The node's storage in memory: the same answers as the filesystem's ([`super::StateDir`]),
//! without a file system, for the simulation and tests.
//!
//! It keeps what the node's directory keeps, as values: the files (shared or published),
//! the cached manifests with the stamp each was made for, the partial downloads (bytes,
//! have-bitmap, manifest) and each node id's token. It outlives the node that uses it, as a
//! directory outlives its process: a node started again on it resumes its downloads.
//!
//! A file's stamp is made of an id standing for its inode (a file put in place of another
//! gets a new one) and a version standing for its modification time (a file written in
//! place gets a new one), so the node notices changes as it does on disk. A user's file is
//! written with [`MemoryStorage::put_file`] and read with [`MemoryStorage::file`]; the
//! node serves what is there at the moment it reads, as `pread` does.
//!
//! Paths in its messages are labels (`files_dir` given at creation): nothing is created
//! there.

use super::dir::check_component;
use super::{
    Bitmap, Content, ContentWriter, FileStamp, Manifest, PartialSummary, STATE_DIR_NAME, Shared,
    Storage, already_exists, changed_while_hashed, chunk_bytes_for, hash_chunks, too_large,
};
use crate::wire::{self, Hash};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

/// Most files one memory storage keeps, whole and partial together: more is a runaway test,
/// refused as a full disk is ([`io::ErrorKind::StorageFull`]).
pub const MEMORY_FILES_MAX: usize = 4096;

/// A node's directory in memory. Shared (`Arc`) between the node, its hasher jobs and
/// whoever plays its user (the simulation).
pub struct MemoryStorage {
    /// A label for messages, standing for the node's directory.
    files_dir: PathBuf,
    state: Mutex<State>,
}

/// Everything the directory holds. Locked only briefly: never while a file is hashed.
#[derive(Default)]
struct State {
    /// Whole files by name: the user's, and downloads once published.
    files: BTreeMap<String, Arc<MemoryFile>>,
    /// The manifest of each file hashed, with the stamp the file had then.
    manifests: BTreeMap<String, (Manifest, FileStamp)>,
    partials: BTreeMap<Hash, Partial>,
    tokens: BTreeMap<u32, u64>,
    /// The id the next new file gets (its "inode"); ids are never reused.
    next_file_id: u64,
}

/// A download in progress, or left by an earlier run.
struct Partial {
    manifest: Manifest,
    /// The have-bitmap as stored: one byte is written per chunk verified, as on disk.
    have_bytes: Vec<u8>,
    file: Arc<MemoryFile>,
}

/// One file's bytes, readable from any thread.
struct MemoryFile {
    /// Stands for the inode: another file has another id.
    id: u64,
    bytes: RwLock<FileBytes>,
}

struct FileBytes {
    data: Vec<u8>,
    /// Stands for the modification time: counts the user's writes in place.
    version: u64,
}

impl MemoryFile {
    fn stamp(&self) -> FileStamp {
        let bytes = self.bytes.read().unwrap_or_else(PoisonError::into_inner);
        FileStamp::in_memory(self.id, bytes.data.len() as u64, bytes.version)
    }
}

/// A file's bytes as the node was given them: a partial file (writable) or a whole file
/// being served (read only), of the length it had when opened.
struct MemoryContent {
    file: Arc<MemoryFile>,
    len: u64,
    writable: bool,
}

/// Writes pieces straight into a partial file: memory has no system call to save.
struct MemoryWriter {
    content: Arc<MemoryContent>,
}

impl MemoryStorage {
    /// An empty directory; `files_dir` only names it in messages.
    pub fn new(files_dir: impl Into<PathBuf>) -> MemoryStorage {
        MemoryStorage {
            files_dir: files_dir.into(),
            state: Mutex::new(State {
                next_file_id: 1,
                ..State::default()
            }),
        }
    }

    /// Writes the file `name` as a user would: in place when it exists (the node sees it
    /// rewritten), as a new file otherwise.
    pub fn put_file(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        check_component(name)?;
        let mut state = self.lock();
        if let Some(file) = state.files.get(name) {
            let mut held = file.bytes.write().unwrap_or_else(PoisonError::into_inner);
            held.data = bytes.to_vec();
            held.version += 1;
            return Ok(());
        }
        let file = state.new_file(bytes.to_vec(), &self.files_dir)?;
        state.files.insert(name.to_string(), file);
        Ok(())
    }

    /// The bytes of the file `name`, if there is one.
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        let file = self.lock().files.get(name).cloned()?;
        let bytes = file.bytes.read().unwrap_or_else(PoisonError::into_inner);
        Some(bytes.data.clone())
    }

    /// Removes the file `name` as a user would; false when there was none.
    pub fn remove_file(&self, name: &str) -> bool {
        self.lock().files.remove(name).is_some()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn file_path(&self, name: &str) -> PathBuf {
        self.files_dir.join(name)
    }

    fn not_found(&self, name: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such file", self.file_path(name).display()),
        )
    }

    fn summary(manifest: &Manifest, have_bytes: &[u8]) -> PartialSummary {
        let have = Bitmap::from_bytes(manifest.chunk_count(), have_bytes)
            .unwrap_or(Bitmap::new(manifest.chunk_count()));
        PartialSummary {
            info_hash: manifest.info_hash,
            name: manifest.name.clone(),
            file_bytes: manifest.file_bytes,
            verified_bytes: manifest.held_bytes(&have),
            // The whole file is held from the start, as a reserved partial file is.
            disk_bytes: manifest.file_bytes,
        }
    }
}

impl State {
    /// A new file of `data`, counted against [`MEMORY_FILES_MAX`].
    fn new_file(&mut self, data: Vec<u8>, files_dir: &Path) -> io::Result<Arc<MemoryFile>> {
        if self.files.len() + self.partials.len() >= MEMORY_FILES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "not enough room in {}: it holds {MEMORY_FILES_MAX} files",
                    files_dir.display()
                ),
            ));
        }
        let id = self.next_file_id;
        self.next_file_id += 1;
        Ok(Arc::new(MemoryFile {
            id,
            bytes: RwLock::new(FileBytes { data, version: 0 }),
        }))
    }
}

impl Storage for MemoryStorage {
    fn files_dir(&self) -> &Path {
        &self.files_dir
    }

    /// A name that is no plain file name counts as taken, as on disk.
    fn name_taken(&self, name: &str) -> bool {
        check_component(name).is_err() || self.lock().files.contains_key(name)
    }

    fn load_token(&self, node_id: u32) -> u64 {
        self.lock().tokens.get(&node_id).copied().unwrap_or(0)
    }

    fn save_token(&self, node_id: u32, token: u64) -> io::Result<()> {
        self.lock().tokens.insert(node_id, token);
        Ok(())
    }

    fn share_in_place(&self, name: &str, dir: &Path) -> io::Result<PathBuf> {
        self.place(name, dir)
    }

    fn stop_sharing_in_place(&self, _name: &str) -> io::Result<()> {
        Ok(())
    }

    fn shared_in_place(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Memory has one place.
    fn place(&self, name: &str, dir: &Path) -> io::Result<PathBuf> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{name}: files in memory cannot go to {}", dir.display()),
        ))
    }

    /// Trees are not kept in memory: the simulation shares files.
    fn share_described_tree(
        &self,
        tree: Arc<crate::tree::TreeManifest>,
        _threads: usize,
    ) -> io::Result<Shared> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{}: trees are not kept in memory", tree.name()),
        ))
    }

    fn manifest_of(&self, name: &str, chunk_bytes: u32, threads: usize) -> io::Result<Shared> {
        check_component(name)?;
        let (file, cached) = {
            let state = self.lock();
            let file = state.files.get(name).cloned();
            (file, state.manifests.get(name).cloned())
        };
        let file = file.ok_or_else(|| self.not_found(name))?;
        let stamp = file.stamp();
        let len = stamp.file_bytes();
        let serving = Arc::new(MemoryContent {
            file: Arc::clone(&file),
            len,
            writable: false,
        });
        if let Some((manifest, cached_stamp)) = cached
            && cached_stamp == stamp
            && manifest.file_bytes == len
            && manifest.name == name
        {
            return Ok((manifest, stamp, serving));
        }
        let chunk_bytes = chunk_bytes_for(len, chunk_bytes);
        if !wire::shape_ok(len, chunk_bytes) {
            return Err(too_large(name, chunk_bytes));
        }
        // Unlocked while hashing, as the user may write meanwhile.
        let hashes = hash_chunks(&*serving, chunk_bytes, threads);
        if file.stamp() != stamp {
            return Err(changed_while_hashed(name));
        }
        let manifest = Manifest::new(name.to_owned(), len, chunk_bytes, hashes);
        self.lock()
            .manifests
            .insert(name.to_string(), (manifest.clone(), stamp));
        Ok((manifest, stamp, serving))
    }

    fn stamp_of(&self, name: &str) -> io::Result<FileStamp> {
        check_component(name)?;
        let file = self.lock().files.get(name).cloned();
        Ok(file.ok_or_else(|| self.not_found(name))?.stamp())
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        check_component(name)?;
        let path = self.file_path(name);
        let mut state = self.lock();
        if state.files.contains_key(name) {
            return Err(already_exists(&path));
        }
        let file = state.new_file(bytes.to_vec(), &self.files_dir)?;
        state.files.insert(name.to_string(), file);
        Ok(path)
    }

    /// Only files of this storage are found: by their name, or by a path in `files_dir`.
    fn read_named_file(&self, path: &str, limit_bytes: u64) -> io::Result<Vec<u8>> {
        let path = Path::new(path);
        let name = path
            .strip_prefix(&self.files_dir)
            .unwrap_or(path)
            .to_str()
            .unwrap_or_default();
        check_component(name)?;
        let mut bytes = self.file(name).ok_or_else(|| self.not_found(name))?;
        bytes.truncate(usize::try_from(limit_bytes).unwrap_or(usize::MAX));
        Ok(bytes)
    }

    fn partial_manifest(&self, info_hash: &Hash) -> Option<Manifest> {
        let state = self.lock();
        let partial = state.partials.get(info_hash)?;
        Some(partial.manifest.clone())
    }

    fn open_partial(&self, manifest: &Manifest) -> io::Result<(Arc<dyn Content>, Bitmap)> {
        let count = manifest.chunk_count();
        let mut state = self.lock();
        // As on disk: resumed only when the stored manifest is this one and the file has
        // its length.
        let resumable = state.partials.get(&manifest.info_hash).filter(|partial| {
            partial.manifest == *manifest
                && partial.file.stamp().file_bytes() == manifest.file_bytes
        });
        let (file, claimed) = match resumable {
            Some(partial) => {
                let claimed =
                    Bitmap::from_bytes(count, &partial.have_bytes).unwrap_or(Bitmap::new(count));
                (Arc::clone(&partial.file), claimed)
            }
            None => {
                state.partials.remove(&manifest.info_hash);
                let len = usize::try_from(manifest.file_bytes)
                    .map_err(|_| io::Error::other("file too large to hold in memory"))?;
                let file = state.new_file(vec![0; len], &self.files_dir)?;
                let have = Bitmap::new(count);
                state.partials.insert(
                    manifest.info_hash,
                    Partial {
                        manifest: manifest.clone(),
                        have_bytes: have.as_bytes().to_vec(),
                        file: Arc::clone(&file),
                    },
                );
                (file, have)
            }
        };
        let content: Arc<dyn Content> = Arc::new(MemoryContent {
            file,
            len: manifest.file_bytes,
            writable: true,
        });
        Ok((content, claimed))
    }

    /// Copies the one byte of `have` that holds `chunk`, as the filesystem writes it.
    fn record_verified(&self, info_hash: &Hash, have: &Bitmap, chunk: u32) -> io::Result<()> {
        let mut state = self.lock();
        let partial = state.partials.get_mut(info_hash).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no partial download of {}", wire::hex(info_hash)),
            )
        })?;
        let index = (chunk / 8) as usize;
        let (Some(stored), Some(&byte)) = (
            partial.have_bytes.get_mut(index),
            have.as_bytes().get(index),
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("chunk {chunk} is past the end of the have-bitmap"),
            ));
        };
        *stored = byte;
        Ok(())
    }

    fn partials(&self) -> Vec<PartialSummary> {
        let state = self.lock();
        let mut found: Vec<PartialSummary> = state
            .partials
            .values()
            .map(|partial| MemoryStorage::summary(&partial.manifest, &partial.have_bytes))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name).then(a.info_hash.cmp(&b.info_hash)));
        found
    }

    fn partial_summary(&self, info_hash: &Hash) -> Option<PartialSummary> {
        let state = self.lock();
        let partial = state.partials.get(info_hash)?;
        Some(MemoryStorage::summary(
            &partial.manifest,
            &partial.have_bytes,
        ))
    }

    fn partial_path(&self, info_hash: &Hash) -> PathBuf {
        self.files_dir
            .join(STATE_DIR_NAME)
            .join("partial")
            .join(format!("{}.part", wire::hex(info_hash)))
    }

    fn remove_partial(&self, info_hash: &Hash) -> io::Result<()> {
        self.lock().partials.remove(info_hash);
        Ok(())
    }

    fn publish(
        &self,
        manifest: &Manifest,
        content: &dyn Content,
    ) -> io::Result<(Arc<dyn Content>, FileStamp)> {
        check_component(&manifest.name)?;
        let mut state = self.lock();
        let Some(partial) = state.partials.get(&manifest.info_hash) else {
            return Err(io::Error::other(format!(
                "{} is no longer the file that was verified; not publishing it",
                self.partial_path(&manifest.info_hash).display()
            )));
        };
        debug_assert_eq!(content.len(), partial.manifest.file_bytes);
        if state.files.contains_key(&manifest.name) {
            return Err(already_exists(&self.file_path(&manifest.name)));
        }
        let file = Arc::clone(&partial.file);
        state.partials.remove(&manifest.info_hash);
        state.files.insert(manifest.name.clone(), Arc::clone(&file));
        let stamp = file.stamp();
        state
            .manifests
            .insert(manifest.name.clone(), (manifest.clone(), stamp));
        let serving: Arc<dyn Content> = Arc::new(MemoryContent {
            file,
            len: manifest.file_bytes,
            writable: false,
        });
        Ok((serving, stamp))
    }
}

impl MemoryContent {
    /// Whether `offset..offset + len` lies inside the file as opened (and is not empty).
    fn inside(&self, offset: u64, len: usize) -> bool {
        len > 0
            && offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.len)
    }

    /// Runs `read` on the bytes `offset..offset + len`, if they are there now (the file may
    /// have shrunk since it was opened).
    fn with_range<T>(&self, offset: u64, len: usize, read: impl FnOnce(&[u8]) -> T) -> Option<T> {
        if !self.inside(offset, len) {
            return None;
        }
        let bytes = self
            .file
            .bytes
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let start = usize::try_from(offset).ok()?;
        bytes.data.get(start..start.checked_add(len)?).map(read)
    }
}

impl Content for MemoryContent {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_into(&self, offset: u64, out: &mut [u8]) -> bool {
        self.with_range(offset, out.len(), |bytes| out.copy_from_slice(bytes))
            .is_some()
    }

    fn sha1(&self, offset: u64, len: usize) -> Option<Hash> {
        if len == 0 {
            return (offset <= self.len).then(|| crate::hash::sha1(&[]));
        }
        self.with_range(offset, len, crate::hash::sha1)
    }

    /// Nothing to let go: the bytes are the file.
    fn release(&self, _offset: u64, _len: usize) -> io::Result<()> {
        Ok(())
    }

    /// Nothing to wait for: written is durable, as long as the storage lives.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn writer(self: Arc<Self>) -> Box<dyn ContentWriter> {
        Box::new(MemoryWriter { content: self })
    }
}

impl ContentWriter for MemoryWriter {
    fn write(&mut self, _now: Instant, offset: u64, data: &[u8]) -> bool {
        let content = &self.content;
        if !content.writable || !content.inside(offset, data.len()) {
            return false;
        }
        let mut bytes = content
            .file
            .bytes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Ok(start) = usize::try_from(offset) else {
            return false;
        };
        match bytes.data.get_mut(start..start + data.len()) {
            Some(target) => {
                target.copy_from_slice(data);
                true
            }
            None => false,
        }
    }

    /// Nothing is kept back.
    fn flush(&mut self, _now: Instant) -> bool {
        true
    }
}
