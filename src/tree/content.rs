//! A tree's bytes as one content: its files laid end to end in their order, each its own
//! [`Content`] (a file being shared, or the partial file of a download), read, hashed,
//! released, flushed and written across file boundaries. The node's chunk logic works in
//! offsets of one content, so a tree behind this type is served and downloaded by the same
//! code as a file. A pad file (BEP 47) has no bytes of its own: it reads as zeros and what
//! is written into it is dropped (the piece hash that covers it checks the zeros). Files of
//! zero length take no offsets.
//!
//! `storage/state/tree.rs` opens a tree's files (shared, or a download's partial files) and
//! hands them to [`TreeContent::new`].

use crate::storage::{Content, ContentWriter, FileStamp};
use crate::wire::Hash;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// Zeros fed to a hash at a time for a pad file.
const PAD_ZEROS_BYTES: usize = 4096;

/// One file of the tree, where it lies in the content.
struct Part {
    start: u64,
    len: u64,
    /// Its bytes; `None` for a pad file (zeros).
    bytes: Option<Arc<dyn Content>>,
}

/// A piece of a range that lies in one file: the part, the offset in it, the length, and
/// where it goes in the range.
struct Span<'a> {
    part: &'a Part,
    index: usize,
    offset: u64,
    len: usize,
    at: usize,
}

/// The files of a tree as one content (see the module doc).
pub struct TreeContent {
    /// The files with bytes in the content, in order (the empty ones left out).
    parts: Vec<Part>,
    len: u64,
    /// For a tree being shared: what [`Content::changed`] compares with.
    watched: Option<Watched>,
}

/// A shared tree's directories, and the fingerprint of them and its files when it was
/// opened. A file written to changes its own stamp; one replaced, removed or added changes
/// its directory's (whose modification time moves), which the file's handle would not show.
struct Watched {
    dirs: Vec<File>,
    at_open: Option<Hash>,
}

impl TreeContent {
    /// The tree's files in order, each its length and its bytes (`None` for a pad file).
    /// `None` when a file's bytes are not of its length, or the lengths overflow.
    pub fn new(files: Vec<(u64, Option<Arc<dyn Content>>)>) -> Option<TreeContent> {
        let mut parts = Vec::with_capacity(files.len());
        let mut start = 0u64;
        for (len, bytes) in files {
            if bytes.as_ref().is_some_and(|b| b.len() != len) {
                return None;
            }
            if len > 0 {
                parts.push(Part { start, len, bytes });
            }
            start = start.checked_add(len)?;
        }
        Some(TreeContent {
            parts,
            len: start,
            watched: None,
        })
    }

    /// This content, watching for changes its files (each read through a handle with a
    /// stamp) and `dirs` (the tree's directories, opened as the files were).
    pub fn watching(mut self, dirs: Vec<File>) -> TreeContent {
        let mut watched = Watched {
            dirs,
            at_open: None,
        };
        watched.at_open = self.fingerprint(&watched);
        self.watched = Some(watched);
        self
    }

    /// SHA-1 over the stamps of every file and directory watched, as they are now; `None`
    /// when one cannot be taken (gone, or not a file being shared).
    fn fingerprint(&self, watched: &Watched) -> Option<Hash> {
        let mut sha = crate::hash::Sha1::new();
        for bytes in self.parts.iter().filter_map(|p| p.bytes.as_ref()) {
            sha.update(&bytes.stamp_now()?.fingerprint().to_le_bytes());
        }
        for dir in &watched.dirs {
            let stamp = FileStamp::of(&dir.metadata().ok()?);
            sha.update(&stamp.fingerprint().to_le_bytes());
        }
        Some(sha.finish())
    }

    /// Whether `offset..offset + len` lies inside the content (and is not empty), as a
    /// single file's content answers.
    fn inside(&self, offset: u64, len: usize) -> bool {
        len > 0
            && offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.len)
    }

    /// The pieces of `offset..offset + len` (inside the content) file by file.
    fn spans(&self, offset: u64, len: usize) -> impl Iterator<Item = Span<'_>> {
        let first = self.parts.partition_point(|p| p.start + p.len <= offset);
        let end = offset + len as u64;
        self.parts[first..]
            .iter()
            .enumerate()
            .take_while(move |(_, part)| part.start < end)
            .map(move |(i, part)| {
                let from = offset.max(part.start);
                let to = end.min(part.start + part.len);
                Span {
                    part,
                    index: first + i,
                    offset: from - part.start,
                    len: (to - from) as usize,
                    at: (from - offset) as usize,
                }
            })
    }
}

impl Content for TreeContent {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_into(&self, offset: u64, out: &mut [u8]) -> bool {
        if !self.inside(offset, out.len()) {
            return false;
        }
        self.spans(offset, out.len()).all(|span| {
            let into = &mut out[span.at..span.at + span.len];
            match &span.part.bytes {
                Some(bytes) => bytes.read_into(span.offset, into),
                None => {
                    into.fill(0);
                    true
                }
            }
        })
    }

    /// Each file's part as that file hashes it (a mapped one without a copy), a pad's as
    /// zeros.
    fn sha1_update(&self, offset: u64, len: usize, sha: &mut crate::hash::Sha1) -> bool {
        self.inside(offset, len)
            && self.spans(offset, len).all(|span| match &span.part.bytes {
                Some(bytes) => bytes.sha1_update(span.offset, span.len, sha),
                None => {
                    let zeros = [0u8; PAD_ZEROS_BYTES];
                    let mut left = span.len;
                    while left > 0 {
                        let n = left.min(PAD_ZEROS_BYTES);
                        sha.update(&zeros[..n]);
                        left -= n;
                    }
                    true
                }
            })
    }

    fn release(&self, offset: u64, len: usize) -> io::Result<()> {
        if !self.inside(offset, len) {
            return Ok(());
        }
        for span in self.spans(offset, len) {
            if let Some(bytes) = &span.part.bytes {
                bytes.release(span.offset, span.len)?;
            }
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        for bytes in self.parts.iter().filter_map(|p| p.bytes.as_ref()) {
            bytes.flush()?;
        }
        Ok(())
    }

    /// One `fstat` per file and directory of the tree.
    fn changed(&self) -> bool {
        self.watched
            .as_ref()
            .is_some_and(|watched| self.fingerprint(watched) != watched.at_open)
    }

    fn writer(self: Arc<Self>) -> Box<dyn ContentWriter> {
        let writers = self
            .parts
            .iter()
            .map(|p| p.bytes.clone().map(|bytes| bytes.writer()))
            .collect();
        Box::new(TreeWriter {
            content: self,
            writers,
        })
    }
}

/// Writes pieces into a tree's files, each through its own file's writer.
struct TreeWriter {
    content: Arc<TreeContent>,
    /// One per part of the content (`None` for a pad file).
    writers: Vec<Option<Box<dyn ContentWriter>>>,
}

impl ContentWriter for TreeWriter {
    fn write(&mut self, now: Instant, offset: u64, data: &[u8]) -> bool {
        if !self.content.inside(offset, data.len()) {
            return false;
        }
        let writers = &mut self.writers;
        self.content.spans(offset, data.len()).all(|span| {
            match writers.get_mut(span.index).and_then(Option::as_mut) {
                Some(writer) => writer.write(now, span.offset, &data[span.at..span.at + span.len]),
                // A pad file's bytes are zeros, never written: its piece's hash checks them.
                None => span.part.bytes.is_none(),
            }
        })
    }

    fn flush(&mut self, now: Instant) -> bool {
        let mut ok = true;
        for writer in self.writers.iter_mut().flatten() {
            // Every file's writer flushes, whatever an earlier one answered.
            ok &= writer.flush(now);
        }
        ok
    }
}

#[cfg(test)]
mod tests;
