//! Files on disk: manifests, memory-mapped data, and the node's state directory.
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
mod state;
mod write_errors;
mod writer;

pub use mapping::Mapping;
pub use state::{PartialSummary, StateDir, percent};
pub use writer::PieceWriter;

use crate::wire::{self, Hash};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;

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

#[cfg(test)]
mod tests;
