//! The node's storage: manifests, have-bitmaps, stamps of shared files, and the two traits
//! through which the node reaches its directory and its files' bytes.
//!
//! The node core does no file I/O of its own: it asks a [`Storage`] (the node's directory:
//! identity, shared files, partial downloads, publishing) and reads and writes a file's
//! bytes through a [`Content`] it was given (pieces written through a [`ContentWriter`],
//! read by the uploader, hashed by the hasher threads). Two implementations:
//!
//! * the filesystem, [`StateDir`] and [`Mapping`] (in `state.rs`, `mapping.rs`,
//!   `writer.rs`): memory-mapped partial files written with batched `pwrite`, page-cache
//!   handling, directory handles that never follow a link. What follows describes it;
//! * memory, [`MemoryStorage`] (`memory.rs`): the same answers without a file system, for
//!   the simulation and tests (`both_tests.rs` holds them to the same results).
//!
//! Neither reads the clock: a write that fails is logged at most once a second, by the
//! `now` the caller passes in.
//!
//! A node's directory holds the files it shares under their own names, and one hidden
//! directory of its own state (names starting with '.' are refused from the network, so no
//! shared file can collide with it):
//!
//! ```text
//! DIR/file_A.txt                       a complete file, shared
//! DIR/.torrent/lock                    held (flock) by the one process using DIR; its PID
//! DIR/.torrent/identity.ID             the token the tracker gave node id ID
//! DIR/.torrent/manifests/NAME          cached manifest of DIR/NAME (valid while its
//!                                      [`FileStamp`] matches), so re-sharing does not rehash
//! DIR/.torrent/partial/HASH.part       a download in progress, full size, space reserved
//! DIR/.torrent/partial/HASH.have       its have-bitmap: one bit per chunk verified
//! DIR/.torrent/partial/HASH.manifest   its manifest, checked against the info hash
//! DIR/TREE/...                         a directory, shared as one tree (see `state/tree.rs`)
//! DIR/.torrent/partial/HASH.d/...      a tree being downloaded: its files, full size
//! DIR/.torrent/partial/HASH.info       its info dictionary, checked against the info hash
//! DIR/.torrent/.tmpN                   a `.torrent` export being written, then moved to
//!                                      DIR/NAME.torrent (never over an existing file)
//! ```
//!
//! Everything under `DIR` is opened through directory handles, never through a symbolic
//! link, and only when it is a regular file; the state directories must be the user's own
//! (see [`dir`]). A download becomes `DIR/NAME` only when every chunk's SHA-1 matched:
//! data and directory are synced, then the partial file is moved into place, never over
//! anything already there.
//!
//! Files in `DIR` are the user's: they may be rewritten, replaced, truncated or removed while
//! the node serves them. They are read with `pread` (never mapped, see `mapping.rs`), and each
//! is remembered with the [`FileStamp`] it had when it was hashed, so the node can notice a
//! change and stop serving chunks whose hashes no longer hold.

pub mod dir;
mod mapping;
mod memory;
mod state;
mod write_errors;
mod writer;

pub use mapping::Mapping;
pub use memory::{MEMORY_FILES_MAX, MemoryStorage};
pub use state::{PLACES_MAX, StateDir, percent};
pub use writer::PieceWriter;

use crate::tree::TreeManifest;
use crate::wire::{self, Hash};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The node's directory, as the node sees it: its identity, the files it shares, its
/// partial downloads and their publishing. Shared between the reactor thread and the
/// hasher threads (a share job hashes a file with [`Storage::manifest_of`]).
///
/// Names given to it are single path components that passed [`wire::check_name`] (from the
/// network or the console); an implementation still refuses any other (see
/// [`dir::check_component`]), so that no caller can reach outside the directory.
pub trait Storage: Send + Sync {
    /// Where the node's files are, for messages only: the node opens nothing by path.
    fn files_dir(&self) -> &Path;

    /// Files called `name` live in `dir` from now on, not in the node's directory (a
    /// download's `--output`): its partial state, its publishing, its stamp. `dir` is
    /// created if missing and taken as a node's directory is (its own `.torrent/` state
    /// directory, on the same file system as what is published there, and its lock).
    /// Returns the directory as opened.
    fn place(&self, name: &str, dir: &Path) -> io::Result<PathBuf>;

    /// The file or directory `name` in `dir` is shared in place from now on (read there,
    /// nothing written there), and recorded so that the next start shares it again.
    /// Returns its path.
    fn share_in_place(&self, name: &str, dir: &Path) -> io::Result<PathBuf>;

    /// `name` is no longer shared in place, nor recorded.
    fn stop_sharing_in_place(&self, name: &str) -> io::Result<()>;

    /// What the node records as shared in place: absolute paths.
    fn shared_in_place(&self) -> Vec<PathBuf>;

    /// Whether anything is called `name` in the node's directory (a file, a directory, a
    /// link, even one that points nowhere; and any name that is no plain file name). A
    /// download never replaces any of them.
    fn name_taken(&self, name: &str) -> bool;

    /// The token the tracker gave node `node_id`, or 0 when it has none yet.
    fn load_token(&self, node_id: u32) -> u64;

    /// Keeps node `node_id`'s token for its next run.
    fn save_token(&self, node_id: u32, token: u64) -> io::Result<()>;

    /// The manifest of the file `name`, from the cache when the file has not changed since
    /// it was hashed, otherwise by hashing it on `threads` threads; with the file's stamp
    /// and its bytes for serving. A file that changes while it is hashed is refused.
    fn manifest_of(&self, name: &str, chunk_bytes: u32, threads: usize) -> io::Result<Shared>;

    /// Shares the directory of `tree`'s name as that tree (described by a `.torrent` made
    /// elsewhere): each of its files, along the description's list (pad files as zeros), is
    /// hashed on `threads` threads and must give its pieces.
    fn share_described_tree(&self, tree: Arc<TreeManifest>, threads: usize) -> io::Result<Shared>;

    /// The stamp the file `name` has now; an error when it is gone or no regular file.
    fn stamp_of(&self, name: &str) -> io::Result<FileStamp>;

    /// Writes the file `name` whole (a `.torrent` export), never replacing one: then the
    /// error is [`io::ErrorKind::AlreadyExists`]. Returns where it is, for messages.
    fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf>;

    /// Reads at most `limit_bytes` of a file the user named by a path (a `.torrent` given to
    /// `download`): a relative path not found as it is is looked for in the node's
    /// directory. Only a regular file is read, never one that could block.
    fn read_named_file(&self, path: &str, limit_bytes: u64) -> io::Result<Vec<u8>>;

    /// The manifest of an interrupted download of `info_hash`, if one was saved and checks.
    fn partial_manifest(&self, info_hash: &Hash) -> Option<Manifest>;

    /// Opens the partial file of a download, creating it (its space reserved) or resuming
    /// it: its bytes, and the chunks an earlier run recorded as verified (the caller checks
    /// them again before counting them). When there is no room, the error is
    /// [`io::ErrorKind::StorageFull`] and calling again later carries on.
    fn open_partial(&self, manifest: &Manifest) -> io::Result<(Arc<dyn Content>, Bitmap)>;

    /// Records that `chunk` of a download verified; `have` holds it already.
    fn record_verified(&self, info_hash: &Hash, have: &Bitmap, chunk: u32) -> io::Result<()>;

    /// The partial downloads kept, by name: failed, left by an earlier run, or running.
    fn partials(&self) -> Vec<PartialSummary>;

    /// What is kept of a download of `info_hash`, if its manifest and partial file are.
    fn partial_summary(&self, info_hash: &Hash) -> Option<PartialSummary>;

    /// Where a download's partial file is, for messages.
    fn partial_path(&self, info_hash: &Hash) -> PathBuf;

    /// Removes a download's partial state, releasing its space.
    fn remove_partial(&self, info_hash: &Hash) -> io::Result<()>;

    /// Publishes a verified download (`content`, opened by [`Storage::open_partial`]) under
    /// its name, never replacing anything, and forgets its partial state. Returns the
    /// published file's bytes for serving and its stamp, taken from the very file verified.
    /// [`io::ErrorKind::StorageFull`] when the data found no room: publishing again later
    /// carries on.
    fn publish(
        &self,
        manifest: &Manifest,
        content: &Arc<dyn Content>,
    ) -> io::Result<(Arc<dyn Content>, FileStamp)>;
}

/// What [`Storage::manifest_of`] gives for a shared file: its manifest, its stamp, and its
/// bytes opened for serving.
pub type Shared = (Manifest, FileStamp, Arc<dyn Content>);

/// One file's bytes: a download in progress (written through [`Content::writer`], hashed,
/// read), or a whole file being served (read, hashed).
///
/// Reads and hashes may come from any thread. Nobody writes a chunk while it is hashed or
/// served: the node's chunk states uphold that (see `mapping.rs`).
pub trait Content: Send + Sync {
    /// The file's length when it was opened.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `out.len()` bytes from `offset` into `out`. False when the range does not
    /// lie inside the file or cannot be read (the file shrank under us).
    fn read_into(&self, offset: u64, out: &mut [u8]) -> bool;

    /// SHA-1 of `len` bytes from `offset`; `None` when the range is not inside the file.
    /// An empty range hashes to the SHA-1 of nothing.
    fn sha1(&self, offset: u64, len: usize) -> Option<Hash> {
        if len == 0 {
            return (offset <= self.len()).then(|| crate::hash::sha1(&[]));
        }
        let mut sha = crate::hash::Sha1::new();
        self.sha1_update(offset, len, &mut sha)
            .then(|| sha.finish())
    }

    /// Feeds `len` bytes from `offset` into `sha`; false when the range is not inside the
    /// file or cannot be read. A tree hashes a piece across its files this way, each file
    /// as it hashes best (a mapped one without copying). By default, read a block at a time.
    fn sha1_update(&self, offset: u64, len: usize, sha: &mut crate::hash::Sha1) -> bool {
        sha1_update_read(offset, len, sha, |at, block| self.read_into(at, block))
    }

    /// Says that `offset..offset + len` is verified and will not be written again, so its
    /// memory may go (a verified chunk).
    fn release(&self, offset: u64, len: usize) -> io::Result<()>;

    /// Makes every byte written so far durable, waiting for it.
    fn flush(&self) -> io::Result<()>;

    /// The stamp of the file it reads, as it is now: for a file being shared, `fstat` of
    /// the handle it is read through; `None` for a file of the node's own (a partial
    /// download) or one with nothing to read.
    fn stamp_now(&self) -> Option<FileStamp> {
        None
    }

    /// Whether what it reads changed since it was opened: a tree being shared watches its
    /// files and directories (see `tree::content`); a single file's change is its stamp's.
    fn changed(&self) -> bool {
        false
    }

    /// A writer of pieces into this file (one per download). A file opened for serving
    /// refuses every write.
    fn writer(self: Arc<Self>) -> Box<dyn ContentWriter>;
}

/// Writes pieces of one download into its file. A piece may stay in the writer until
/// [`ContentWriter::flush`]: whoever reads the file (the hasher, once a chunk is complete)
/// flushes first.
pub trait ContentWriter: Send {
    /// Writes `data` at `offset`. False (nothing kept) when the range does not lie inside
    /// the file or the write failed; `now` is when, for the log of a failing disk.
    fn write(&mut self, now: Instant, offset: u64, data: &[u8]) -> bool;

    /// Writes what is kept. False when that write failed (the bytes are dropped).
    fn flush(&mut self, now: Instant) -> bool;
}

/// A partial download found in the storage: what `status` says of it.
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

/// Name of the node's private state directory inside its files directory.
pub const STATE_DIR_NAME: &str = ".torrent";
/// Default chunk size: 1 MiB keeps a 1 GiB manifest at 20 KiB and a chunk's hash short.
pub const CHUNK_BYTES_DEFAULT: u32 = 1 << 20;
const MANIFEST_MAGIC: [u8; 8] = *b"TRNTMF01";
/// Largest stored manifest: header, longest name, a hash for each of the most chunks.
const MANIFEST_FILE_BYTES_MAX: u64 =
    64 + wire::NAME_BYTES_MAX as u64 + wire::CHUNKS_MAX as u64 * 20;

/// What identifies a content: its name, length, chunk size and chunk hashes. For a file, its
/// info hash is the BitTorrent v1 info-hash of the equivalent single-file torrent.
///
/// A directory tree is one content too: its files laid end to end, `file_bytes` long in
/// all, its chunks the tree's pieces; `tree` holds its description, whose info dictionary's
/// SHA-1 is the info hash. Everything that counts chunks works on a tree unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub file_bytes: u64,
    pub chunk_bytes: u32,
    pub hashes: Vec<Hash>,
    pub info_hash: Hash,
    pub tree: Option<Arc<TreeManifest>>,
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
            tree: None,
        }
    }

    /// The manifest of a tree: its pieces as chunks, its info hash the description's.
    pub fn of_tree(tree: Arc<TreeManifest>) -> Manifest {
        Manifest {
            name: tree.name().to_owned(),
            file_bytes: tree.total_bytes(),
            chunk_bytes: tree.piece_bytes(),
            hashes: tree.hashes().to_vec(),
            info_hash: tree.info_hash(),
            tree: Some(tree),
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

/// Hashes every chunk of a file, on `threads` threads at once.
pub fn hash_chunks(mapping: &dyn Content, chunk_bytes: u32, threads: usize) -> Vec<Hash> {
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

    /// The stamp of a file as `statx` describes it, equal to [`FileStamp::of`] the same
    /// file's metadata (a tree's walk looks at entries without opening them).
    pub fn of_statx(stat: &rustix::fs::Statx) -> FileStamp {
        FileStamp {
            device: rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor),
            inode: stat.stx_ino,
            len: stat.stx_size,
            modified: (stat.stx_mtime.tv_sec, i64::from(stat.stx_mtime.tv_nsec)),
        }
    }

    /// The stamp of a file kept in memory ([`MemoryStorage`]): `file_id` stands for the
    /// inode (another file), `version` for the modification time (written in place).
    fn in_memory(file_id: u64, len: u64, version: u64) -> FileStamp {
        FileStamp {
            device: 0,
            inode: file_id,
            len,
            modified: (version as i64, 0),
        }
    }

    /// The file's length when the stamp was taken.
    pub fn file_bytes(&self) -> u64 {
        self.len
    }

    /// Whether the file at the path is another file now, not the same one written to.
    pub fn replaced_by(&self, now: &FileStamp) -> bool {
        (self.device, self.inode) != (now.device, now.inode)
    }

    /// Eight bytes standing for the whole stamp, kept with a cached manifest.
    pub(crate) fn fingerprint(&self) -> u64 {
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

/// Bytes read at a time to hash a range that is read rather than mapped: a block that
/// stays in the cache.
const HASH_BLOCK_BYTES: usize = 1 << 20;

/// Feeds the `len` bytes from `offset` into `sha`, read a block at a time with `read`
/// (`read(at, block)` fills `block` from `at`, false when it cannot); false when a read
/// fails. How a file being shared is hashed.
pub(crate) fn sha1_update_read(
    offset: u64,
    len: usize,
    sha: &mut crate::hash::Sha1,
    mut read: impl FnMut(u64, &mut [u8]) -> bool,
) -> bool {
    let mut block = vec![0u8; len.min(HASH_BLOCK_BYTES)];
    let mut done = 0;
    while done < len {
        let part = (len - done).min(block.len());
        if !read(offset + done as u64, &mut block[..part]) {
            return false;
        }
        sha.update(&block[..part]);
        done += part;
    }
    true
}

/// The configured chunk size, doubled until the file fits in [`wire::CHUNKS_MAX`] chunks.
pub(crate) fn chunk_bytes_for(file_bytes: u64, configured: u32) -> u32 {
    let mut chunk_bytes = configured;
    while !wire::shape_ok(file_bytes, chunk_bytes) && chunk_bytes < wire::CHUNK_BYTES_MAX {
        chunk_bytes *= 2;
    }
    chunk_bytes
}

/// Why a file is not shared: too many chunks even at the largest chunk size.
fn too_large(name: &str, chunk_bytes: u32) -> io::Error {
    io::Error::other(format!(
        "{name} is too large for {chunk_bytes}-byte chunks (at most {} chunks)",
        wire::CHUNKS_MAX
    ))
}

fn already_exists(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} already exists; not replacing it", path.display()),
    )
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

#[cfg(test)]
mod both_tests;
#[cfg(test)]
mod tests;
