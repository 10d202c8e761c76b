//! Hashing a tree's pieces across file boundaries, on several threads, with the SHA-1 of
//! `crate::hash` (the SHA-NI one, as a single file's chunks are hashed in
//! `storage::hash_chunks`).
//!
//! [`hash_pieces`] cuts the pieces into as many runs as there are threads, one run each, as
//! `storage::hash_chunks` does for one file (`walk::build` hands them out while its walk
//! goes on instead: `walk/streaming.rs`). A thread's [`Reader`] reads its pieces in order
//! with `pread` into one block, holding at most one file open, and the directories from the
//! root down to it: in our order a directory's files are neighbours, so each file is opened
//! once per thread that needs it, and each directory about once. Pad files are zeros and
//! are never read from disk.
//!
//! Files are read, not mapped: a mapping of a file that someone truncates while it is
//! hashed raises SIGBUS, which would end the process, where a read returns short and the
//! file is reported as changed.

use super::TreeFile;
use super::layout::PieceLayout;
use super::walk::Root;
use crate::hash::Sha1;
use crate::storage::FileStamp;
use crate::wire::{CHUNKS_MAX, Hash};
use std::borrow::Borrow;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Most hashing threads: as `storage::hash_chunks` allows.
pub const HASH_THREADS_MAX: usize = 64;
/// Bytes read (and hashed) at a time: large enough that a system call costs little beside
/// hashing it, small enough to stay in the cache. Copying out of the page cache into a
/// block of 1 MiB that began 16 bytes past a page boundary (as a fresh allocation of that
/// size does) cost three times as much as into one of 64 KiB, or into 1 MiB at a page
/// boundary (`perf` of `bench/tree_hash.py`'s tree, tmpfs and ext4 alike: 0.45 CPU s
/// against 0.15 for 2 GiB). This block is both small and at a page boundary.
const READ_BLOCK_BYTES: usize = 64 << 10;
/// Where the block starts: at a multiple of this many bytes (a page).
const READ_BLOCK_ALIGN_BYTES: usize = 4096;

/// The SHA-1 of every piece of `files` laid out by `layout` (which the caller made from the
/// same files and checked the shape of), read below `root` on `threads` threads. With
/// `stamps` (from a walk, one per file), each file must still be the one the walk saw; in
/// any case a file must have the length the list says, and must not change while it is
/// read.
pub fn hash_pieces(
    root: &Root,
    files: &[TreeFile],
    stamps: Option<&[FileStamp]>,
    layout: &PieceLayout,
    threads: usize,
) -> io::Result<Vec<Hash>> {
    if layout.file_count() != files.len()
        || layout.piece_count() > u64::from(CHUNKS_MAX)
        || stamps.is_some_and(|stamps| stamps.len() != files.len())
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a piece layout or stamps of other files, or more pieces than a content may have",
        ));
    }
    // At most CHUNKS_MAX, checked above.
    let count = layout.piece_count() as usize;
    let mut hashes = vec![[0u8; 20]; count];
    let threads = threads.clamp(1, HASH_THREADS_MAX);
    let per_thread = count.div_ceil(threads).max(1);
    let results: Vec<io::Result<()>> = std::thread::scope(|scope| {
        let runs: Vec<_> = hashes
            .chunks_mut(per_thread)
            .enumerate()
            .map(|(run, slots)| {
                scope.spawn(move || {
                    let mut reader = Reader::new(root);
                    for (i, slot) in slots.iter_mut().enumerate() {
                        let piece = (run * per_thread + i) as u64;
                        *slot = reader.piece(layout.spans(piece).map(|span| Part {
                            index: span.file,
                            file: &files[span.file],
                            stamp: stamps.map(|stamps| stamps[span.file]),
                            offset_bytes: span.offset_bytes,
                            len_bytes: span.len_bytes,
                        }))?;
                    }
                    reader.close()
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| {
                run.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a hashing thread panicked")))
            })
            .collect()
    });
    results.into_iter().collect::<io::Result<()>>()?;
    Ok(hashes)
}

/// One file's part of a piece, with what reading it takes. `F` holds the file's
/// description: a reference into a list that outlives the reading, or a shared one
/// (`Arc<TreeFile>`) where the list grows meanwhile; either way nothing is copied.
pub(crate) struct Part<F> {
    /// The file's index in the tree's list: the same index is the same file.
    pub index: usize,
    pub file: F,
    /// The file's stamp at the walk, when there was one.
    pub stamp: Option<FileStamp>,
    pub offset_bytes: u64,
    pub len_bytes: u32,
}

/// One thread's reading: the directories and the file it has open, and its block.
pub(crate) struct Reader<'a, F> {
    root: &'a Root,
    /// The directories open, from the root down to the one of the last file opened: each
    /// one's name and handle. Our order keeps a directory's files together, and its
    /// subdirectories next to them, so moving to the next file opens at most the
    /// directories that differ, one component each.
    dirs: Vec<(String, OwnedFd)>,
    open: Option<Open<F>>,
    /// Room for the block and its alignment: the block is the [`READ_BLOCK_BYTES`] from
    /// the first page boundary in it. Empty until the first piece.
    block: Vec<u8>,
}

/// The file a [`Reader`] has open.
struct Open<F> {
    index: usize,
    /// Its description (its path, for messages).
    described: F,
    file: File,
    /// Its stamp when it was opened.
    stamp: FileStamp,
}

impl<'a, F: Borrow<TreeFile> + Clone> Reader<'a, F> {
    pub(crate) fn new(root: &'a Root) -> Self {
        Reader {
            root,
            dirs: Vec::new(),
            open: None,
            block: Vec::new(),
        }
    }

    /// The SHA-1 of one piece: the bytes of its parts, in order.
    pub(crate) fn piece(&mut self, parts: impl IntoIterator<Item = Part<F>>) -> io::Result<Hash> {
        let mut sha = Sha1::new();
        if self.block.is_empty() {
            self.block = vec![0; READ_BLOCK_BYTES + READ_BLOCK_ALIGN_BYTES];
        }
        // `align_offset` may decline (never for bytes at run time): the block is then
        // merely not aligned.
        let base = (self.block.as_ptr())
            .align_offset(READ_BLOCK_ALIGN_BYTES)
            .min(READ_BLOCK_ALIGN_BYTES - 1);
        for part in parts {
            let len = part.len_bytes as usize;
            let block = &mut self.block[base..base + READ_BLOCK_BYTES];
            if part.file.borrow().is_pad() {
                block.fill(0);
                let mut done = 0;
                while done < len {
                    let chunk = (len - done).min(block.len());
                    sha.update(&block[..chunk]);
                    done += chunk;
                }
                continue;
            }
            self.open(&part)?;
            let Some(open) = &self.open else {
                return Err(io::Error::other("no file open after opening it"));
            };
            let block = &mut self.block[base..base + READ_BLOCK_BYTES];
            let mut done = 0;
            while done < len {
                let chunk = (len - done).min(block.len());
                let offset = part.offset_bytes + done as u64;
                if let Err(error) = open.file.read_exact_at(&mut block[..chunk], offset) {
                    return Err(match error.kind() {
                        io::ErrorKind::UnexpectedEof => self.changed(open.described.borrow()),
                        _ => self.at(open.described.borrow(), error),
                    });
                }
                sha.update(&block[..chunk]);
                done += chunk;
            }
        }
        Ok(sha.finish())
    }

    /// Makes the file of `part` the one open, closing the one before.
    fn open(&mut self, part: &Part<F>) -> io::Result<()> {
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.index == part.index)
        {
            return Ok(());
        }
        self.close()?;
        let path = part.file.borrow().path();
        let root = self.root;
        let dir = self.enter(&path[..path.len().saturating_sub(1)])?;
        let (file, stamp) = root.open_file_stamped(dir, path)?;
        let expected = part.file.borrow().length_bytes();
        if stamp.file_bytes() != expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is {} bytes, not the {expected} its description says",
                    self.root.path_of(path).display(),
                    stamp.file_bytes()
                ),
            ));
        }
        if part.stamp.is_some_and(|walked| walked != stamp) {
            return Err(self.changed(part.file.borrow()));
        }
        self.open = Some(Open {
            index: part.index,
            described: part.file.clone(),
            file,
            stamp,
        });
        Ok(())
    }

    /// The directory `components` below the root, opened one component at a time, never
    /// through a link (as [`Root::open_dir`] does), keeping the directories above it open.
    fn enter(&mut self, components: &[String]) -> io::Result<BorrowedFd<'_>> {
        let kept = self
            .dirs
            .iter()
            .zip(components)
            .take_while(|((open, _), wanted)| open == *wanted)
            .count();
        self.dirs.truncate(kept);
        for depth in kept..components.len() {
            let parent = match self.dirs.last() {
                Some((_, fd)) => fd.as_fd(),
                None => self.root.fd(),
            };
            let fd = super::walk::open_subdir(parent, &components[depth]).map_err(|error| {
                super::walk::at(&self.root.path_of(&components[..=depth]), error)
            })?;
            self.dirs.push((components[depth].clone(), fd));
        }
        Ok(match self.dirs.last() {
            Some((_, fd)) => fd.as_fd(),
            None => self.root.fd(),
        })
    }

    /// Closes the file open, if one is, checking it did not change while it was read.
    pub(crate) fn close(&mut self) -> io::Result<()> {
        if let Some(open) = self.open.take()
            && FileStamp::of(&open.file.metadata()?) != open.stamp
        {
            return Err(self.changed(open.described.borrow()));
        }
        Ok(())
    }

    fn changed(&self, file: &TreeFile) -> io::Error {
        io::Error::other(format!(
            "{} changed while it was being hashed; share the tree again once it stays unchanged",
            self.root.path_of(file.path()).display()
        ))
    }

    fn at(&self, file: &TreeFile, error: io::Error) -> io::Error {
        super::walk::at(&self.root.path_of(file.path()), error)
    }
}
