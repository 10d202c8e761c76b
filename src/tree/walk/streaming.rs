//! Hashing a tree's pieces while the walk goes on, so that the walk (a `statx` of every
//! file, an open and a `getdents` of every directory: 50 ms for the 10,000 files in 4,515
//! directories of `bench/tree_hash.py`'s tree here) does not hold every thread up before
//! hashing starts (issue 17: a tree hashed at ≥ 0.9× the speed of one file of the same
//! bytes).
//!
//! A walk finds the files in our order (each directory's names sorted, each subdirectory
//! walked where its name sorts), so a piece's files are all known once the walk has passed
//! its last byte. The calling thread walks, and each file it finds extends the list and its
//! [`PieceLayout`]; `threads - 1` threads take the pieces known so far, a few at a time,
//! and hash them as [`hashing::hash_pieces`] does (each file opened by handle, its stamp
//! checked against the walk's when it is opened and when its reading is done); the caller
//! joins them once the walk is over. As many threads run as were asked for.
//!
//! Pieces are hashed at the size asked for only while the tree fits in the most pieces a
//! content may have; a tree that outgrows them needs larger pieces, known only once the
//! walk is over: the hashing stops and the caller hashes the tree again at the size it
//! needs. The hashing done in vain is at most what the threads did while the walk went on.

use super::{Root, Walked, Walker, invalid};
use crate::storage::FileStamp;
use crate::tree::TreeFile;
use crate::tree::hashing::{HASH_THREADS_MAX, Part, Reader};
use crate::tree::layout::{PieceLayout, Span};
use crate::wire::Hash;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Bytes of pieces a hashing thread takes at a time (at least one piece): a few pieces, so
/// that the lock is taken rarely and a file at the edge of what a thread takes is opened by
/// one thread rather than two; few enough that the threads finish close together.
const TAKE_BYTES_MAX: u64 = 4 << 20;

/// Walks the tree below `root` and hashes its pieces of `piece_bytes` on `threads` threads
/// while it goes. The hashes are `None` when the tree outgrew `pieces_max` pieces (or
/// `piece_bytes` is not a size a content may have): then it must be hashed again, at the
/// size it needs.
pub(super) fn walk_and_hash(
    root: Root,
    name: String,
    piece_bytes: u32,
    threads: usize,
    pieces_max: u64,
) -> io::Result<(Walked, Option<Vec<Hash>>)> {
    let threads = threads.clamp(1, HASH_THREADS_MAX);
    let pipeline = Pipeline::new(&root, piece_bytes, pieces_max);
    let (walked, hashed) = std::thread::scope(|scope| {
        let hashers: Vec<_> = (1..threads)
            .map(|_| scope.spawn(|| pipeline.hash(&root)))
            .collect();
        let walked = {
            // Ends the walk for the hashing threads however the walk ends, a panic
            // included, so that none of them waits for pieces forever.
            let over = WalkOver(&pipeline);
            let walked = Walker::run(&root, &name, |file, stamp| pipeline.found(file, stamp));
            over.end(walked.is_ok());
            walked
        };
        let mut hashed = Vec::with_capacity(threads);
        if walked.is_ok() {
            hashed.push(pipeline.hash(&root));
        }
        for hasher in hashers {
            match hasher.join() {
                Ok(done) => hashed.push(done),
                Err(_) => pipeline.fail(io::Error::other("a hashing thread panicked")),
            }
        }
        (walked, hashed)
    });
    let skipped_links = walked?;
    let Progress {
        layout,
        files,
        stamps,
        hashing,
        failed,
        ..
    } = pipeline.into_progress();
    // Every hashing thread has ended, and with it every other holder of a file.
    let files = files
        .into_iter()
        .map(|file| Arc::try_unwrap(file).unwrap_or_else(|shared| (*shared).clone()))
        .collect();
    let walked = Walked::checked(root, name, files, stamps, skipped_links)?;
    if let Some(error) = failed {
        return Err(error);
    }
    if !hashing {
        return Ok((walked, None));
    }
    // Every piece was taken once, by one thread: put the hashes in order and check that.
    let count = layout.piece_count();
    let mut hashes = vec![None; usize::try_from(count).map_err(io::Error::other)?];
    for (piece, hash) in hashed.into_iter().flatten() {
        let slot = usize::try_from(piece).ok().and_then(|i| hashes.get_mut(i));
        match slot {
            Some(slot @ None) => *slot = Some(hash),
            _ => return Err(io::Error::other("a piece hashed twice, or past the last")),
        }
    }
    let hashes: Option<Vec<Hash>> = hashes.into_iter().collect();
    let hashes = hashes.ok_or_else(|| io::Error::other("a piece was not hashed"))?;
    Ok((walked, Some(hashes)))
}

/// What the walk and the hashing threads share, and their meeting point.
struct Pipeline<'a> {
    root: &'a Root,
    pieces_max: u64,
    progress: Mutex<Progress>,
    /// Wakes the hashing threads waiting for pieces: more are known, the walk is over, or
    /// the hashing stopped.
    wake: Condvar,
}

/// How far the walk and the hashing are.
struct Progress {
    /// The files found so far, laid out into pieces.
    layout: PieceLayout,
    /// Shared with the hashing threads' [`Taken`], so that taking pieces copies no path.
    files: Vec<Arc<TreeFile>>,
    /// Each file's stamp at the walk, in the order of `files`.
    stamps: Vec<FileStamp>,
    /// Whether the walk is over (then every piece is known).
    walk_over: bool,
    /// Whether pieces are still taken: false once the walk failed, a piece failed, or the
    /// tree outgrew the pieces of this size.
    hashing: bool,
    /// The first piece not taken yet.
    next_piece: u64,
    /// Hashing threads waiting for pieces (nobody is woken when none waits).
    waiting: usize,
    /// The first error of a hashing thread.
    failed: Option<io::Error>,
}

impl Progress {
    /// The pieces known so far: those that end within the bytes walked, or every piece once
    /// the walk is over.
    fn known_pieces(&self) -> u64 {
        if self.walk_over {
            self.layout.piece_count()
        } else {
            self.layout.total_bytes() / u64::from(self.layout.piece_bytes())
        }
    }
}

/// Pieces a hashing thread took: their parts, and a copy of the files they span (so that
/// the walk can go on extending the list meanwhile).
struct Taken {
    first_piece: u64,
    /// Each piece's parts, in order: (piece, span).
    spans: Vec<(u64, Span)>,
    /// The index of the first file in `files`.
    first_file: usize,
    files: Vec<Arc<TreeFile>>,
    stamps: Vec<FileStamp>,
}

impl<'a> Pipeline<'a> {
    fn new(root: &'a Root, piece_bytes: u32, pieces_max: u64) -> Pipeline<'a> {
        let usable = crate::wire::shape_ok(0, piece_bytes);
        // With a piece size no content may have, nothing is hashed here; the layout still
        // sums the lengths.
        let layout_piece_bytes = if usable {
            piece_bytes
        } else {
            crate::wire::CHUNK_BYTES_MIN
        };
        let layout = PieceLayout::new(std::iter::empty(), layout_piece_bytes);
        Pipeline {
            root,
            pieces_max,
            progress: Mutex::new(Progress {
                layout: layout.unwrap_or_else(|| unreachable!("pieces of a nonzero size")),
                files: Vec::new(),
                stamps: Vec::new(),
                walk_over: false,
                hashing: usable,
                next_piece: 0,
                waiting: 0,
                failed: None,
            }),
            wake: Condvar::new(),
        }
    }

    /// A thread that panicked holding the lock left the progress as it was between two
    /// steps: each step changes it under the lock without calling out.
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The walk found `file`, the next in our order.
    fn found(&self, file: TreeFile, stamp: FileStamp) -> io::Result<()> {
        let mut progress = self.lock();
        let known_before = progress.known_pieces();
        progress.layout.push(file.length_bytes()).ok_or_else(|| {
            invalid(format!(
                "{}: larger than 2^64 bytes",
                self.root.path().display()
            ))
        })?;
        progress.files.push(Arc::new(file));
        progress.stamps.push(stamp);
        if progress.hashing && progress.layout.piece_count() > self.pieces_max {
            progress.hashing = false;
            self.wake.notify_all();
        } else {
            // One thread woken per piece now known, at most as many as wait: with many
            // threads, waking all of them for each piece would mostly wake them for nothing.
            let known = progress.known_pieces() - known_before;
            for _ in 0..known.min(progress.waiting as u64) {
                self.wake.notify_one();
            }
        }
        Ok(())
    }

    /// The walk is over: every piece is known, or, when it failed, none is to be hashed.
    fn end_walk(&self, succeeded: bool) {
        let mut progress = self.lock();
        if progress.walk_over {
            return;
        }
        progress.walk_over = true;
        progress.hashing &= succeeded;
        self.wake.notify_all();
    }

    /// Stops the hashing with `error`, unless it stopped already.
    fn fail(&self, error: io::Error) {
        let mut progress = self.lock();
        if progress.hashing {
            progress.hashing = false;
            progress.failed = Some(error);
        }
        self.wake.notify_all();
    }

    /// One hashing thread: takes pieces until none is left or the hashing stops, and
    /// returns each piece it hashed with its hash.
    fn hash(&self, root: &Root) -> Vec<(u64, Hash)> {
        let mut reader = Reader::new(root);
        let mut hashed = Vec::new();
        while let Some(taken) = self.take() {
            if let Err(error) = taken.hash(&mut reader, &mut hashed) {
                self.fail(error);
                return hashed;
            }
        }
        if let Err(error) = reader.close() {
            self.fail(error);
        }
        hashed
    }

    /// The next pieces to hash, waiting for the walk to find them; `None` once every piece
    /// is taken or the hashing stopped.
    fn take(&self) -> Option<Taken> {
        let mut progress = self.lock();
        loop {
            if !progress.hashing {
                return None;
            }
            if progress.next_piece < progress.known_pieces() {
                break;
            }
            if progress.walk_over {
                return None;
            }
            progress.waiting += 1;
            progress = self
                .wake
                .wait(progress)
                .unwrap_or_else(PoisonError::into_inner);
            progress.waiting -= 1;
        }
        let piece_bytes = u64::from(progress.layout.piece_bytes());
        let first_piece = progress.next_piece;
        let count = (TAKE_BYTES_MAX / piece_bytes)
            .max(1)
            .min(progress.known_pieces() - first_piece);
        progress.next_piece += count;
        let spans: Vec<(u64, Span)> = (first_piece..first_piece + count)
            .flat_map(|piece| progress.layout.spans(piece).map(move |span| (piece, span)))
            .collect();
        let first_file = spans.first().map_or(0, |(_, span)| span.file);
        let end_file = spans.last().map_or(0, |(_, span)| span.file + 1);
        Some(Taken {
            first_piece,
            files: progress.files[first_file..end_file].to_vec(),
            stamps: progress.stamps[first_file..end_file].to_vec(),
            first_file,
            spans,
        })
    }

    fn into_progress(self) -> Progress {
        self.progress
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Taken {
    /// Hashes the pieces taken, in order, adding each to `hashed`.
    fn hash(
        &self,
        reader: &mut Reader<'_, Arc<TreeFile>>,
        hashed: &mut Vec<(u64, Hash)>,
    ) -> io::Result<()> {
        let mut rest = &self.spans[..];
        let mut piece = self.first_piece;
        while !rest.is_empty() {
            let len = rest.iter().take_while(|(p, _)| *p == piece).count();
            let (spans, after) = rest.split_at(len);
            let hash = reader.piece(spans.iter().map(|(_, span)| {
                let local = span.file - self.first_file;
                Part {
                    index: span.file,
                    file: Arc::clone(&self.files[local]),
                    stamp: Some(self.stamps[local]),
                    offset_bytes: span.offset_bytes,
                    len_bytes: span.len_bytes,
                }
            }))?;
            hashed.push((piece, hash));
            rest = after;
            piece += 1;
        }
        Ok(())
    }
}

/// Ends the walk for the hashing threads when dropped, as a failure unless
/// [`WalkOver::end`] said otherwise first.
struct WalkOver<'p, 'a>(&'p Pipeline<'a>);

impl WalkOver<'_, '_> {
    fn end(self, succeeded: bool) {
        self.0.end_walk(succeeded);
    }
}

impl Drop for WalkOver<'_, '_> {
    fn drop(&mut self) {
        self.0.end_walk(false);
    }
}
