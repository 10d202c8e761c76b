//! Files on disk: manifests, memory-mapped data, and the node's state directory.
//!
//! A node's directory holds the files it shares under their own names, and one hidden
//! directory of its own state (names starting with '.' are refused from the network, so no
//! shared file can collide with it):
//!
//! ```text
//! DIR/file_A.txt                       a complete file, shared
//! DIR/.torrent/identity                the token the tracker gave this node id
//! DIR/.torrent/manifests/NAME          cached manifest of DIR/NAME (valid while its
//!                                      [`FileStamp`] matches), so re-sharing does not rehash
//! DIR/.torrent/partial/HASH.part       a download in progress, full size, space reserved
//! DIR/.torrent/partial/HASH.have       its have-bitmap: one bit per chunk verified
//! DIR/.torrent/partial/HASH.manifest   its manifest, checked against the info hash
//! DIR/.torrent/export.tmp              a `.torrent` export being written, then renamed to
//!                                      DIR/NAME.torrent
//! ```
//!
//! A download becomes `DIR/NAME` only when every chunk's SHA-1 matched: data and directory
//! are synced, then the partial file is renamed into place.
//!
//! Files in `DIR` are the user's: they may be rewritten, replaced, truncated or removed while
//! the node serves them. They are read with `pread` (never mapped, see `mapping.rs`), and each
//! is remembered with the [`FileStamp`] it had when it was hashed, so the node can notice a
//! change and stop serving chunks whose hashes no longer hold.

mod mapping;
mod write_errors;
mod writer;

pub use mapping::Mapping;
pub use writer::PieceWriter;

use crate::wire::{self, Hash};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the node's private state directory inside its files directory.
pub const STATE_DIR_NAME: &str = ".torrent";
/// Default chunk size: 1 MiB keeps a 1 GiB manifest at 20 KiB and a chunk's hash short.
pub const CHUNK_BYTES_DEFAULT: u32 = 1 << 20;
const MANIFEST_MAGIC: [u8; 8] = *b"TRNTMF01";
/// Largest stored manifest: header, longest name, a hash for each of the most chunks.
const MANIFEST_FILE_BYTES_MAX: u64 =
    64 + wire::NAME_BYTES_MAX as u64 + wire::CHUNKS_MAX as u64 * 20;

/// What identifies a file's content: its name, length, chunk size and chunk hashes. Its info
/// hash is the BitTorrent v1 info-hash of the equivalent single-file torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub file_bytes: u64,
    pub chunk_bytes: u32,
    pub hashes: Vec<Hash>,
    pub info_hash: Hash,
}

impl Manifest {
    /// Builds a manifest, computing its info hash. The caller has checked name and shape.
    pub fn new(name: String, file_bytes: u64, chunk_bytes: u32, hashes: Vec<Hash>) -> Manifest {
        let info_hash = info_hash(&name, file_bytes, chunk_bytes, &hashes);
        Manifest {
            name,
            file_bytes,
            chunk_bytes,
            hashes,
            info_hash,
        }
    }

    pub fn chunk_count(&self) -> u32 {
        wire::chunk_count(self.file_bytes, self.chunk_bytes)
    }

    pub fn chunk_len(&self, chunk: u32) -> u32 {
        wire::chunk_len(self.file_bytes, self.chunk_bytes, chunk)
    }

    /// Bytes of the file in the chunks `have` holds (the last chunk may be short).
    pub fn held_bytes(&self, have: &Bitmap) -> u64 {
        let count = self.chunk_count();
        let full = u64::from(have.count()) * u64::from(self.chunk_bytes);
        let short_by = if count > 0 && have.get(count - 1) {
            u64::from(self.chunk_bytes - self.chunk_len(count - 1))
        } else {
            0
        };
        (full - short_by).min(self.file_bytes)
    }

    pub fn chunk_offset(&self, chunk: u32) -> u64 {
        u64::from(chunk) * u64::from(self.chunk_bytes)
    }

    /// The manifest as stored in the state directory, with the fingerprint of the file's
    /// stamp it was made for (0 for a partial download's manifest).
    fn to_bytes(&self, stamp_fingerprint: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.name.len() + self.hashes.len() * 20);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&self.file_bytes.to_be_bytes());
        out.extend_from_slice(&self.chunk_bytes.to_be_bytes());
        out.extend_from_slice(&stamp_fingerprint.to_be_bytes());
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        for hash in &self.hashes {
            out.extend_from_slice(hash);
        }
        out
    }

    /// Parses a stored manifest, checking every field; returns it and the fingerprint of the
    /// stamp it was made for.
    fn from_bytes(bytes: &[u8]) -> Option<(Manifest, u64)> {
        let rest = bytes.strip_prefix(&MANIFEST_MAGIC)?;
        let (file_bytes, rest) = rest.split_first_chunk::<8>()?;
        let (chunk_bytes, rest) = rest.split_first_chunk::<4>()?;
        let (stamp_fingerprint, rest) = rest.split_first_chunk::<8>()?;
        let (name_len, rest) = rest.split_first_chunk::<2>()?;
        let (file_bytes, chunk_bytes) = (
            u64::from_be_bytes(*file_bytes),
            u32::from_be_bytes(*chunk_bytes),
        );
        let name_len = usize::from(u16::from_be_bytes(*name_len));
        if !wire::shape_ok(file_bytes, chunk_bytes) || rest.len() < name_len {
            return None;
        }
        let (name, hashes) = rest.split_at(name_len);
        let name = wire::check_name(name).ok()?.to_owned();
        let count = wire::chunk_count(file_bytes, chunk_bytes) as usize;
        if hashes.len() != count * wire::HASH_BYTES {
            return None;
        }
        let hashes = hashes
            .chunks_exact(wire::HASH_BYTES)
            .map(|h| h.try_into().unwrap_or([0; 20]))
            .collect();
        Some((
            Manifest::new(name, file_bytes, chunk_bytes, hashes),
            u64::from_be_bytes(*stamp_fingerprint),
        ))
    }
}

/// SHA-1 of the bencoded info dictionary `{length, name, piece length, pieces}`: the
/// BitTorrent v1 info-hash of a single-file torrent with these contents.
pub fn info_hash(name: &str, file_bytes: u64, chunk_bytes: u32, hashes: &[Hash]) -> Hash {
    let mut sha = crate::hash::Sha1::new();
    // Keys in byte order, as bencoding requires.
    sha.update(format!("d6:lengthi{file_bytes}e4:name{}:", name.len()).as_bytes());
    sha.update(name.as_bytes());
    sha.update(
        format!(
            "12:piece lengthi{chunk_bytes}e6:pieces{}:",
            hashes.len() * 20
        )
        .as_bytes(),
    );
    for hash in hashes {
        sha.update(hash);
    }
    sha.update(b"e");
    sha.finish()
}

/// Hashes every chunk of a mapped file, on `threads` threads at once.
pub fn hash_chunks(mapping: &Mapping, chunk_bytes: u32, threads: usize) -> Vec<Hash> {
    let count = wire::chunk_count(mapping.len(), chunk_bytes);
    let mut hashes = vec![[0u8; 20]; count as usize];
    let threads = threads.clamp(1, 64);
    let per_thread = hashes.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (part, slots) in hashes.chunks_mut(per_thread).enumerate() {
            scope.spawn(move || {
                for (i, slot) in slots.iter_mut().enumerate() {
                    let chunk = (part * per_thread + i) as u32;
                    let len = wire::chunk_len(mapping.len(), chunk_bytes, chunk) as usize;
                    let offset = u64::from(chunk) * u64::from(chunk_bytes);
                    // In bounds by construction: chunk < count.
                    *slot = mapping.sha1(offset, len).unwrap_or([0; 20]);
                }
            });
        }
    });
    hashes
}

/// One bit per chunk; chunk 0 is the high bit of byte 0 (the wire's have-map layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    bytes: Vec<u8>,
    len: u32,
    count: u32,
}

impl Bitmap {
    pub fn new(len: u32) -> Bitmap {
        Bitmap {
            bytes: vec![0; wire::bitmap_len(len)],
            len,
            count: 0,
        }
    }

    pub fn full(len: u32) -> Bitmap {
        let mut map = Bitmap::new(len);
        for chunk in 0..len {
            map.set(chunk);
        }
        map
    }

    /// From wire bytes; bits past `len` are ignored. None when the length is wrong.
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Option<Bitmap> {
        if bytes.len() != wire::bitmap_len(len) {
            return None;
        }
        let mut map = Bitmap::new(len);
        for chunk in 0..len {
            if bytes[(chunk / 8) as usize] & (0x80 >> (chunk % 8)) != 0 {
                map.set(chunk);
            }
        }
        Some(map)
    }

    /// This map with the chunks from `first_chunk` (a multiple of 8) on replaced by the wire
    /// bytes `part` (one part of a have-map sent in several); bits past `len` are ignored.
    pub fn with_part(&self, first_chunk: u32, part: &[u8]) -> Bitmap {
        let mut map = self.clone();
        let end = first_chunk
            .saturating_add((part.len() as u32).saturating_mul(8))
            .min(self.len);
        for chunk in first_chunk..end {
            let offset = chunk - first_chunk;
            if part[(offset / 8) as usize] & (0x80 >> (offset % 8)) != 0 {
                map.set(chunk);
            } else {
                map.clear(chunk);
            }
        }
        map
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of bits set.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    pub fn get(&self, chunk: u32) -> bool {
        chunk < self.len && self.bytes[(chunk / 8) as usize] & (0x80 >> (chunk % 8)) != 0
    }

    pub fn set(&mut self, chunk: u32) {
        if chunk < self.len && !self.get(chunk) {
            self.bytes[(chunk / 8) as usize] |= 0x80 >> (chunk % 8);
            self.count += 1;
        }
    }

    pub fn clear(&mut self, chunk: u32) {
        if self.get(chunk) {
            self.bytes[(chunk / 8) as usize] &= !(0x80 >> (chunk % 8));
            self.count -= 1;
        }
    }
}

/// The node's state directory, `DIR/.torrent`.
#[derive(Clone, Debug)]
pub struct StateDir {
    files_dir: PathBuf,
}

impl StateDir {
    /// Creates the files directory and the state directory under it, if missing.
    pub fn open(files_dir: &Path) -> io::Result<StateDir> {
        let state = StateDir {
            files_dir: files_dir.to_path_buf(),
        };
        fs::create_dir_all(state.root().join("manifests"))?;
        fs::create_dir_all(state.root().join("partial"))?;
        Ok(state)
    }

    pub fn files_dir(&self) -> &Path {
        &self.files_dir
    }

    fn root(&self) -> PathBuf {
        self.files_dir.join(STATE_DIR_NAME)
    }

    /// Where a shared file lives. `name` must have passed `wire::check_name`, which keeps
    /// the path inside the directory (one component, no separators, no `..`).
    pub fn file_path(&self, name: &str) -> PathBuf {
        debug_assert!(wire::check_name(name.as_bytes()).is_ok());
        self.files_dir.join(name)
    }

    fn partial_path(&self, info_hash: &Hash, extension: &str) -> PathBuf {
        self.root()
            .join("partial")
            .join(format!("{}.{extension}", wire::hex(info_hash)))
    }

    /// Writes `DIR/name` whole (a `.torrent` export): the bytes go to a temporary file in
    /// the state directory first (same file system, and no user file can be named so), are
    /// synced, then renamed into place, so a reader never sees half a file.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = self.file_path(name);
        let tmp = self.root().join("export.tmp");
        {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// The token this node id was given by the tracker, or 0 when it has none yet.
    pub fn load_token(&self) -> u64 {
        let text = fs::read_to_string(self.root().join("identity")).unwrap_or_default();
        u64::from_str_radix(text.trim(), 16).unwrap_or(0)
    }

    pub fn save_token(&self, token: u64) -> io::Result<()> {
        write_atomically(
            &self.root().join("identity"),
            format!("{token:016x}\n").as_bytes(),
        )
    }

    /// The manifest of `DIR/name`, from the cache when the file has not changed since,
    /// otherwise by hashing it (on `threads` threads) and caching the result. Also returns
    /// the file's stamp, which [`StateDir::open_shared`] checks again.
    ///
    /// A file that changes while it is being hashed is refused: its hashes would describe
    /// neither version.
    pub fn manifest_of(
        &self,
        name: &str,
        chunk_bytes: u32,
        threads: usize,
    ) -> io::Result<(Manifest, FileStamp)> {
        let path = self.file_path(name);
        let file = File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let stamp = FileStamp::of(&meta);
        let cache = self.root().join("manifests").join(name);
        if let Some((manifest, cached)) = read_bounded(&cache, MANIFEST_FILE_BYTES_MAX)
            .ok()
            .as_deref()
            .and_then(Manifest::from_bytes)
            && cached == stamp.fingerprint()
            && manifest.file_bytes == meta.len()
            && manifest.name == name
        {
            return Ok((manifest, stamp));
        }
        if !wire::shape_ok(meta.len(), chunk_bytes) {
            return Err(io::Error::other(format!(
                "{name} is too large for {chunk_bytes}-byte chunks (at most {} chunks)",
                wire::CHUNKS_MAX
            )));
        }
        let mapping = Mapping::read_only(&file, meta.len())?;
        let hashes = hash_chunks(&mapping, chunk_bytes, threads);
        if FileStamp::of(&file.metadata()?) != stamp {
            return Err(changed_while_hashed(name));
        }
        let manifest = Manifest::new(name.to_owned(), meta.len(), chunk_bytes, hashes);
        // A cache that cannot be written only costs a rehash next time.
        let _ = write_atomically(&cache, &manifest.to_bytes(stamp.fingerprint()));
        Ok((manifest, stamp))
    }

    /// Opens a complete file for serving (read with `pread`), checking that it is still the
    /// file `manifest_of` hashed: same stamp.
    pub fn open_shared(&self, manifest: &Manifest, stamp: FileStamp) -> io::Result<Arc<Mapping>> {
        let file = File::open(self.file_path(&manifest.name))?;
        if FileStamp::of(&file.metadata()?) != stamp {
            return Err(changed_while_hashed(&manifest.name));
        }
        Ok(Arc::new(Mapping::read_only(&file, manifest.file_bytes)?))
    }

    /// The stamp `DIR/name` has now (following a symbolic link, as opening it does).
    pub fn stamp_of(&self, name: &str) -> io::Result<FileStamp> {
        let meta = fs::metadata(self.file_path(name))?;
        if !meta.is_file() {
            return Err(io::Error::other(format!("{name} is not a regular file")));
        }
        Ok(FileStamp::of(&meta))
    }

    /// The manifest of an interrupted download of `info_hash`, if one was saved and checks.
    pub fn partial_manifest(&self, info_hash: &Hash) -> Option<Manifest> {
        let bytes = read_bounded(
            &self.partial_path(info_hash, "manifest"),
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
    /// was published, and calling again once there is room carries on.
    pub fn open_partial(&self, manifest: &Manifest) -> io::Result<(Arc<Mapping>, Bitmap)> {
        let part_path = self.partial_path(&manifest.info_hash, "part");
        let manifest_path = self.partial_path(&manifest.info_hash, "manifest");
        let have_path = self.partial_path(&manifest.info_hash, "have");
        let count = manifest.chunk_count();
        let resumable = self
            .partial_manifest(&manifest.info_hash)
            .is_some_and(|stored| stored == *manifest)
            && fs::metadata(&part_path).is_ok_and(|meta| meta.len() == manifest.file_bytes);
        let claimed = if resumable {
            read_bounded(&have_path, wire::bitmap_len(count) as u64)
                .ok()
                .and_then(|bytes| Bitmap::from_bytes(count, &bytes))
                .unwrap_or(Bitmap::new(count))
        } else {
            let state_bytes = manifest.to_bytes(0);
            let have_bytes = Bitmap::new(count);
            let needed = (state_bytes.len() + have_bytes.as_bytes().len()) as u64;
            write_atomically(&manifest_path, &state_bytes)
                .and_then(|()| write_atomically(&have_path, have_bytes.as_bytes()))
                .map_err(|error| self.explain_full(error, needed))?;
            have_bytes
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part_path)
            .map_err(|error| self.explain_full(error, manifest.file_bytes))?;
        // Also when resuming: a partial file whose length is right may still have holes (an
        // earlier run on a file system without fallocate, a copy), and a write into a hole
        // of a mapping on a full disk is a SIGBUS. Reserving what is reserved already is cheap.
        if manifest.file_bytes > 0 {
            reserve(&file, manifest.file_bytes)
                .map_err(|error| self.explain_full(error, missing_bytes(&file, manifest)))?;
        }
        Ok((
            Arc::new(Mapping::read_write(&file, &part_path, manifest.file_bytes)?),
            claimed,
        ))
    }

    /// A "disk full" error that says where and how much is missing; others unchanged.
    fn explain_full(&self, error: io::Error, needed_bytes: u64) -> io::Error {
        if error.kind() != io::ErrorKind::StorageFull {
            return error;
        }
        let stat = rustix::fs::statvfs(&self.files_dir).ok();
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
                self.files_dir.display()
            ),
        )
    }

    /// Records in the have-file that `chunk` of a download verified.
    pub fn record_verified(&self, info_hash: &Hash, have: &Bitmap, chunk: u32) -> io::Result<()> {
        let byte_index = (chunk / 8) as usize;
        let file = OpenOptions::new()
            .write(true)
            .open(self.partial_path(info_hash, "have"))?;
        file.write_all_at(
            &have.as_bytes()[byte_index..byte_index + 1],
            byte_index as u64,
        )
    }

    /// Publishes a verified download as `DIR/NAME`: data synced, renamed into place,
    /// directory synced; then the manifest is cached and the partial state removed.
    ///
    /// Returns the published file opened for serving with `pread` (once it is the user's
    /// file, a mapping of it could raise SIGBUS if they truncate it) and its stamp, taken from
    /// the very file that was verified, so that a file put in its place later is noticed.
    pub fn publish(
        &self,
        manifest: &Manifest,
        mapping: &Mapping,
    ) -> io::Result<(Arc<Mapping>, FileStamp)> {
        let part_path = self.partial_path(&manifest.info_hash, "part");
        let final_path = self.file_path(&manifest.name);
        // On a file system that allocates on write back (copy on write, thin provisioning)
        // even reserved data may find no room now: StorageFull, and publishing again later
        // carries on. Nothing is published before the rename.
        mapping
            .flush()
            .map_err(|error| self.explain_full(error, 0))?;
        let verified = File::open(&part_path)?;
        verified
            .sync_all()
            .map_err(|error| self.explain_full(error, 0))?;
        if final_path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists; not replacing it", final_path.display()),
            ));
        }
        fs::rename(&part_path, &final_path).map_err(|error| self.explain_full(error, 0))?;
        File::open(&self.files_dir)?.sync_all()?;
        let _ = fs::remove_file(self.partial_path(&manifest.info_hash, "have"));
        let _ = fs::remove_file(self.partial_path(&manifest.info_hash, "manifest"));
        let stamp = FileStamp::of(&verified.metadata()?);
        let cache = self.root().join("manifests").join(&manifest.name);
        let _ = write_atomically(&cache, &manifest.to_bytes(stamp.fingerprint()));
        let serving = Arc::new(Mapping::read_only(&verified, manifest.file_bytes)?);
        Ok((serving, stamp))
    }
}

/// What the node remembers of a file in its directory to notice that someone changed it:
/// another inode (the file was replaced), another length (truncated or grown), or another
/// modification time (written in place).
///
/// The change time is left out on purpose: it also moves when someone adds or removes a hard
/// link to the file, or changes its owner or mode, which users do to big files without
/// touching a byte (a benchmark that hard-links one file into several node directories
/// made every holder refuse its file as "changed while being hashed"). The price: a rewrite
/// that sets the modification time back, or one within the file system's timestamp
/// granularity of the hashing, is not noticed here; downloaders' SHA-1 checks catch its
/// chunks and drop the holder instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified: (i64, i64),
}

impl FileStamp {
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            device: meta.dev(),
            inode: meta.ino(),
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
        }
    }

    /// Whether the file at the path is another file now, not the same one written to.
    pub fn replaced_by(&self, now: &FileStamp) -> bool {
        (self.device, self.inode) != (now.device, now.inode)
    }

    /// Eight bytes standing for the whole stamp, kept with a cached manifest.
    fn fingerprint(&self) -> u64 {
        let mut bytes = [0u8; 40];
        let fields = [
            self.device,
            self.inode,
            self.len,
            self.modified.0 as u64,
            self.modified.1 as u64,
        ];
        for (slot, field) in bytes.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&field.to_le_bytes());
        }
        let digest = crate::hash::sha1(&bytes);
        u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
    }
}

fn changed_while_hashed(name: &str) -> io::Error {
    io::Error::other(format!(
        "{name} changed while it was being hashed; share it again once it stays unchanged"
    ))
}

/// Reserves `len` bytes for `file`: every block allocated now, so that writes into the
/// mapping never need space later (a write into a hole of a mapped file on a full disk is a
/// SIGBUS, not an error). ENOSPC comes back as [`io::ErrorKind::StorageFull`].
fn reserve(file: &File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        // Filesystems without fallocate (tmpfs before 3.5, some FUSE): size it sparsely. A
        // disk that fills later can then still stop the node; there is no cheaper way to
        // reserve on such a file system than writing the whole file.
        Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(len),
        Err(other) => Err(other.into()),
    }
}

/// Bytes of the partial file not allocated yet (all of it when that cannot be told).
fn missing_bytes(file: &File, manifest: &Manifest) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let allocated = file.metadata().map_or(0, |meta| meta.blocks() * 512);
    manifest.file_bytes.saturating_sub(allocated)
}

/// Writes a small file so that readers see the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Reads a whole small file, refusing one larger than `limit_bytes`.
pub fn read_bounded(path: &Path, limit_bytes: u64) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit_bytes {
        return Err(io::Error::other(format!(
            "{} is larger than {limit_bytes} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
