//! Hashing a tree's pieces across file boundaries, on several threads, with the SHA-1 of
//! `crate::hash` (the SHA-NI one, as a single file's chunks are hashed in
//! `storage::hash_chunks`).
//!
//! The pieces are cut into as many runs as there are threads, one run each, as
//! `storage::hash_chunks` does for one file. A thread reads its pieces in order with
//! `pread`, a block at a time, holding at most one file and one directory open: in our order
//! a directory's files are neighbours, so each is opened once per thread that needs it. Pad
//! files are zeros and are never read from disk.

use super::TreeFile;
use super::layout::PieceLayout;
use super::walk::Root;
use crate::hash::Sha1;
use crate::storage::FileStamp;
use crate::wire::{CHUNKS_MAX, Hash};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Most hashing threads: as `storage::hash_chunks` allows.
pub const HASH_THREADS_MAX: usize = 64;
/// Bytes read (and hashed) at a time: large enough that a system call costs little beside
/// hashing it, small enough to stay in the cache.
const READ_BLOCK_BYTES: usize = 1 << 20;

/// The SHA-1 of every piece of `files` laid out by `layout` (which the caller made from the
/// same files and checked the shape of), read below `root` on `threads` threads. With
/// `stamps` (from a walk), each file must still be the one the walk saw; in any case a file
/// must have the length the list says, and must not change while it is read.
pub fn hash_pieces(
    root: &Root,
    files: &[TreeFile],
    stamps: Option<&[FileStamp]>,
    layout: &PieceLayout,
    threads: usize,
) -> io::Result<Vec<Hash>> {
    if layout.file_count() != files.len() || layout.piece_count() > u64::from(CHUNKS_MAX) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a piece layout of other files, or of more pieces than a content may have",
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
                    let mut reader = Reader::new(root, files, stamps);
                    for (i, slot) in slots.iter_mut().enumerate() {
                        *slot = reader.piece(layout, (run * per_thread + i) as u64)?;
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

/// One thread's reading: the directory and the file it has open, and its block.
struct Reader<'a> {
    root: &'a Root,
    files: &'a [TreeFile],
    stamps: Option<&'a [FileStamp]>,
    /// The directory open, and its components below the root.
    dir: Option<(&'a [String], OwnedFd)>,
    /// The file open: its index, the file, and its stamp when it was opened.
    open: Option<(usize, File, FileStamp)>,
    block: Vec<u8>,
}

impl<'a> Reader<'a> {
    fn new(root: &'a Root, files: &'a [TreeFile], stamps: Option<&'a [FileStamp]>) -> Self {
        Reader {
            root,
            files,
            stamps,
            dir: None,
            open: None,
            block: Vec::new(),
        }
    }

    fn piece(&mut self, layout: &PieceLayout, piece: u64) -> io::Result<Hash> {
        let mut sha = Sha1::new();
        for span in layout.spans(piece) {
            let len = span.len_bytes as usize;
            if self.block.len() < len.min(READ_BLOCK_BYTES) {
                self.block.resize(len.min(READ_BLOCK_BYTES), 0);
            }
            if self.files[span.file].is_pad() {
                self.block.fill(0);
                let mut done = 0;
                while done < len {
                    let part = (len - done).min(self.block.len());
                    sha.update(&self.block[..part]);
                    done += part;
                }
                continue;
            }
            self.open(span.file)?;
            let Some((_, file, _)) = &self.open else {
                return Err(io::Error::other("no file open after opening it"));
            };
            let mut done = 0;
            while done < len {
                let part = (len - done).min(self.block.len());
                let offset = span.offset_bytes + done as u64;
                if let Err(error) = file.read_exact_at(&mut self.block[..part], offset) {
                    return Err(match error.kind() {
                        io::ErrorKind::UnexpectedEof => self.changed(span.file),
                        _ => self.at(span.file, error),
                    });
                }
                sha.update(&self.block[..part]);
                done += part;
            }
        }
        Ok(sha.finish())
    }

    /// Makes file `index` the one open, closing the one before.
    fn open(&mut self, index: usize) -> io::Result<()> {
        if matches!(self.open, Some((open, _, _)) if open == index) {
            return Ok(());
        }
        self.close()?;
        let path = self.files[index].path();
        let dir_path = &path[..path.len().saturating_sub(1)];
        if !matches!(&self.dir, Some((open, _)) if *open == dir_path) {
            self.dir = Some((dir_path, self.root.open_dir(dir_path)?));
        }
        let Some((_, dir)) = &self.dir else {
            return Err(io::Error::other("no directory open after opening it"));
        };
        let file = self.root.open_file(dir.as_fd(), path)?;
        let stamp = FileStamp::of(&file.metadata()?);
        let expected = self.files[index].length_bytes();
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
        if self
            .stamps
            .is_some_and(|stamps| stamps.get(index) != Some(&stamp))
        {
            return Err(self.changed(index));
        }
        self.open = Some((index, file, stamp));
        Ok(())
    }

    /// Closes the file open, if one is, checking it did not change while it was read.
    fn close(&mut self) -> io::Result<()> {
        if let Some((index, file, stamp)) = self.open.take()
            && FileStamp::of(&file.metadata()?) != stamp
        {
            return Err(self.changed(index));
        }
        Ok(())
    }

    fn changed(&self, index: usize) -> io::Error {
        io::Error::other(format!(
            "{} changed while it was being hashed; share the tree again once it stays unchanged",
            self.root.path_of(self.files[index].path()).display()
        ))
    }

    fn at(&self, index: usize, error: io::Error) -> io::Error {
        let path = self.root.path_of(self.files[index].path());
        io::Error::new(error.kind(), format!("{}: {error}", path.display()))
    }
}
