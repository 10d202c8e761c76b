//! Memory mappings of file data: one of the two modules allowed `unsafe` (the other is
//! `udp.rs`, for one socket option).
//!
//! The filesystem's [`Content`]: a download's partial file, or a shared file.
//!
//! A [`Mapping`] never hands out a reference into the mapped bytes that outlives a call.
//! The only reads through the mapping are hashes ([`Mapping::sha1`]), after a bounds check;
//! pieces go in and out through the file ([`Mapping::write`] with `pwrite`, cheaper than
//! faulting fresh pages in; `read_into` with `pread`, which leaves no pages in the
//! process's RSS). That keeps the safety argument local:
//!
//! * **Bounds.** Every access is checked against the length the mapping was made with.
//! * **No data race.** The reactor writes pieces only into chunks that are being downloaded;
//!   a hasher thread reads only a chunk the reactor has stopped writing (its state is
//!   "hashing" and late pieces for it are dropped); the uploader reads (with `pread`) only
//!   verified chunks, which are never written again. The node's chunk states are what uphold this.
//! * **Truncation.** Reading a page of a mapped file that another process truncated raises
//!   SIGBUS. Only partial files, in the node's private state directory, are mapped; shared
//!   files are the user's, so they are read with `pread`, where truncation is a short read.
#![allow(unsafe_code)]

use super::write_errors::{WriteErrorLine, WriteErrorLog};
use super::writer::PieceWriter;
use super::{Content, ContentWriter};
use memmap2::{MmapOptions, MmapRaw, UncheckedAdvice};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Bytes released after a range before its pages are dropped from the page cache: time
/// for its write-back (started when it was released) to finish.
pub const DROP_LAG_BYTES: u64 = 16 << 20;

/// A file's bytes: mapped (a download in progress, written in place with `pwrite`) or read
/// with `pread` (a file being shared).
pub struct Mapping {
    backing: Backing,
    len: u64,
}

enum Backing {
    /// Zero-length files have no mapping (mmap refuses length 0).
    Empty,
    /// The file is kept beside its mapping to write pieces and write verified chunks back.
    Mapped {
        raw: MmapRaw,
        file: File,
        released: Mutex<Released>,
        /// The file's path, for the log.
        path: PathBuf,
        write_errors: Mutex<WriteErrorLog>,
    },
    /// A user's file, read with `pread`: if someone truncates it while we serve it, reads
    /// come back short (and the node stops sharing it) instead of raising SIGBUS.
    Read(File),
}

impl Mapping {
    /// Maps `len` bytes of `file` (at `path`, named in the log) for reading and writing (a
    /// download in progress).
    pub fn read_write(file: &File, path: &Path, len: u64) -> io::Result<Mapping> {
        let backing = if len == 0 {
            Backing::Empty
        } else {
            let len_usize =
                usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
            Backing::Mapped {
                raw: MmapOptions::new().len(len_usize).map_raw(file)?,
                file: file.try_clone()?,
                released: Mutex::new(Released::default()),
                path: path.to_owned(),
                write_errors: Mutex::new(WriteErrorLog::default()),
            }
        };
        Ok(Mapping { backing, len })
    }

    /// Reads `len` bytes of `file` with `pread` (a file being shared, which its owner may
    /// change under us).
    pub fn read_only(file: &File, len: u64) -> io::Result<Mapping> {
        let backing = if len == 0 {
            Backing::Empty
        } else {
            Backing::Read(file.try_clone()?)
        };
        Ok(Mapping { backing, len })
    }

    /// Whether `offset..offset + len` lies inside the file (and is not empty).
    fn inside(&self, offset: u64, len: usize) -> bool {
        len > 0
            && offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.len)
    }

    /// The mapping and the byte range `offset..offset + len`, if it lies inside.
    fn range(&self, offset: u64, len: usize) -> Option<(&MmapRaw, usize)> {
        match &self.backing {
            // self.len fitted in usize when the mapping was made, and offset < self.len.
            Backing::Mapped { raw, .. } if self.inside(offset, len) => Some((raw, offset as usize)),
            _ => None,
        }
    }

    /// Copies `data` into the file at `offset`. False (and nothing written) when the range
    /// does not lie inside the file, the mapping is read-only, or the write failed; `now` is
    /// when, for the log (a failing disk is reported at most once a second).
    ///
    /// With `pwrite`, not through the mapping: a first write into a page of the mapping is a
    /// page fault that reads the page in before it is overwritten, and on a fresh
    /// (fallocated) file the kernel's read-around then fills up to `read_ahead_kb` of large
    /// page-cache folios with zeros. That zeroing was 60 % of a downloader's CPU (perf, S1);
    /// `pwrite` allocates the cache pages as it copies (see `examples/write_pieces.rs`).
    pub fn write(&self, now: Instant, offset: u64, data: &[u8]) -> bool {
        let Backing::Mapped {
            file,
            path,
            write_errors,
            ..
        } = &self.backing
        else {
            return false;
        };
        if !self.inside(offset, data.len()) {
            return false;
        }
        let Err(error) = file.write_all_at(data, offset) else {
            return true;
        };
        // The space is reserved (fallocate), so this is an I/O error of the disk: the piece
        // is as good as lost, and is asked for again. A failing disk fails every write, so
        // the log gets the first error and then a count at most once a second.
        let line = write_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_error(now);
        let (len, path) = (data.len(), path.display());
        match line {
            Some(WriteErrorLine::First) => {
                log::warn!("cannot write {len} bytes at {offset} of {path}: {error}")
            }
            Some(WriteErrorLine::Summary { count, since }) => log::warn!(
                "{count} more write errors on {path} in the last {:.1} s, the latest: {len} bytes at {offset}: {error}",
                now.duration_since(since).as_secs_f64()
            ),
            None => {}
        }
        false
    }
}

impl Content for Mapping {
    fn len(&self) -> u64 {
        self.len
    }

    /// Read with `pread` from either backing, not copied out of the mapping: pages touched
    /// through a mapping count in the process's RSS until released, and a downloader
    /// serving its verified chunks to a swarm touched most of its file again (S3's
    /// downloaders peaked at 130-180 MiB for a 256 MiB file). The copy costs the same.
    fn read_into(&self, offset: u64, out: &mut [u8]) -> bool {
        let file = match &self.backing {
            Backing::Empty => return false,
            Backing::Mapped { file, .. } | Backing::Read(file) => file,
        };
        // Short when the file shrank under us: reported, never a crash.
        self.inside(offset, out.len()) && file.read_exact_at(out, offset).is_ok()
    }

    /// A mapped file is hashed through the mapping, a file being shared read with `pread`.
    fn sha1_update(&self, offset: u64, len: usize, sha: &mut crate::hash::Sha1) -> bool {
        if let Backing::Read(file) = &self.backing {
            return self.inside(offset, len)
                && super::sha1_update_read(offset, len, sha, |at, block| {
                    file.read_exact_at(block, at).is_ok()
                });
        }
        let Some((raw, start)) = self.range(offset, len) else {
            return false;
        };
        // SAFETY: in bounds (checked by `range`); the caller hashes a chunk that nobody
        // writes while it is hashed (module doc). The slice lives only for this call.
        let bytes = unsafe { std::slice::from_raw_parts(raw.as_ptr().add(start), len) };
        sha.update(bytes);
        true
    }

    /// Lets go of the pages of `offset..offset + len`, so that the process's memory stays
    /// flat however large the download: the bytes stay in the page cache, and a later read
    /// maps them again. Then starts writing them back to disk without waiting, so that the
    /// sync before publishing finds little left to do: the disk works while the network
    /// does, instead of after it (1–2 s per GiB here). For verified chunks only.
    ///
    /// Ranges released [`DROP_LAG_BYTES`] earlier, written back by now, also leave the page
    /// cache: see [`Released`].
    fn release(&self, offset: u64, len: usize) -> io::Result<()> {
        let (Some((raw, start)), Backing::Mapped { file, released, .. }) =
            (self.range(offset, len), &self.backing)
        else {
            return Ok(());
        };
        // SAFETY: this is a shared file mapping, for which MADV_DONTNEED only drops our page
        // table entries: the bytes stay in the page cache and reach the file (the kernel
        // moves a dirty page table entry's state to the page), and the next access maps them
        // again. No reference into the mapping outlives a call of this module, so nothing
        // observes the pages going away.
        unsafe { raw.unchecked_advise_range(UncheckedAdvice::DontNeed, start, len)? };
        sync_file_range(file, offset, len as u64, libc::SYNC_FILE_RANGE_WRITE)?;
        let due = released.lock().map_or_else(
            |_| Vec::new(),
            |mut released| released.push(offset, len as u64),
        );
        for (offset, len) in due {
            // Waits only if the disk is behind (then the transfer slows to its pace).
            sync_file_range(
                file,
                offset,
                len,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )?;
            // Clean pages only: it never loses data.
            let len = std::num::NonZeroU64::new(len);
            rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::DontNeed)?;
        }
        Ok(())
    }

    /// Writes dirty pages of the whole file back to disk and waits for it.
    fn flush(&self) -> io::Result<()> {
        match &self.backing {
            Backing::Mapped { raw, .. } => raw.flush(),
            Backing::Empty | Backing::Read(_) => Ok(()),
        }
    }

    /// Gathers small adjacent pieces into one `pwrite` (see [`PieceWriter`]).
    fn stamp_now(&self) -> Option<super::FileStamp> {
        match &self.backing {
            Backing::Read(file) => file.metadata().ok().map(|meta| super::FileStamp::of(&meta)),
            _ => None,
        }
    }

    fn writer(self: Arc<Self>) -> Box<dyn ContentWriter> {
        Box::new(PieceWriter::new(self))
    }
}

impl Drop for Mapping {
    /// Write errors counted since the last line about them would otherwise go unreported.
    fn drop(&mut self) {
        if let Backing::Mapped {
            path, write_errors, ..
        } = &mut self.backing
        {
            let count = write_errors
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take_unreported();
            if count > 0 {
                log::warn!(
                    "{count} more write errors on {} before it was closed",
                    path.display()
                );
            }
        }
    }
}

/// Ranges released (write-back started) whose pages are still in the page cache.
///
/// Written-back pages left in the cache are never used again by the download, yet a
/// download of N bytes would take N bytes of page cache, new pages all: on this project's
/// VMs (free page reporting to the host) a page the guest has not touched lately costs the
/// host's page fault when first written, which made a 4 GiB download cost 2.2 CPU-s per GiB
/// against 1.3 for 1 GiB (the `pwrite` copy was half the downloader's CPU). Dropped once
/// written, the same pages are used again and again. `POSIX_FADV_DONTNEED` right at release
/// drops nothing: write-back has only started then.
#[derive(Default)]
struct Released {
    ranges: VecDeque<(u64, u64)>,
    bytes: u64,
}

impl Released {
    /// Records a released range; returns those more than [`DROP_LAG_BYTES`] behind it.
    fn push(&mut self, offset: u64, len: u64) -> Vec<(u64, u64)> {
        self.ranges.push_back((offset, len));
        self.bytes += len;
        let mut due = Vec::new();
        while self.bytes > DROP_LAG_BYTES
            && let Some((offset, len)) = self.ranges.pop_front()
        {
            self.bytes -= len;
            due.push((offset, len));
        }
        due
    }
}

/// `sync_file_range(2)`, which neither rustix nor memmap2 offers.
fn sync_file_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: a plain system call on a descriptor borrowed for the call (so open); it reads
    // no memory of ours.
    let result = unsafe { libc::sync_file_range(file.as_fd().as_raw_fd(), offset, len, flags) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_ranges_drop_once_far_enough_behind() {
        let mut released = Released::default();
        let chunk = DROP_LAG_BYTES / 4;
        for i in 0..4 {
            assert!(released.push(i * chunk, chunk).is_empty());
        }
        // The fifth range puts the first one more than the lag behind.
        assert_eq!(released.push(4 * chunk, chunk), vec![(0, chunk)]);
        // One range larger than the lag drops everything before it, and itself waits.
        assert_eq!(released.push(5 * chunk, DROP_LAG_BYTES).len(), 4);
        assert_eq!(released.bytes, DROP_LAG_BYTES);
        assert_eq!(released.ranges.len(), 1);
    }
}
