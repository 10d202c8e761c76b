//! The one module allowed `unsafe`: memory mappings of file data.
//!
//! A [`Mapping`] never hands out a reference into the mapped bytes that outlives a call.
//! It copies in ([`Mapping::write`]), copies out ([`Mapping::read_into`]) and hashes
//! ([`Mapping::sha1`]), each after a bounds check. That keeps the safety argument local:
//!
//! * **Bounds.** Every access is checked against the length the mapping was made with.
//! * **No data race.** The reactor writes pieces only into chunks that are being downloaded;
//!   a hasher thread reads only a chunk the reactor has stopped writing (its state is
//!   "hashing" and late pieces for it are dropped); the uploader reads only verified chunks,
//!   which are never written again. The node's chunk states are what uphold this.
//! * **Truncation.** Reading a page of a file that another process truncated raises SIGBUS.
//!   Partial files live in the node's private state directory; shared files are the user's,
//!   and noticing that they changed under us is tracked work (see the README's limits).
#![allow(unsafe_code)]

use crate::wire::Hash;
use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::io;

/// A file's bytes in memory. Zero-length files have no mapping (mmap refuses length 0).
pub struct Mapping {
    raw: Option<MmapRaw>,
    len: u64,
}

impl Mapping {
    /// Maps `len` bytes of `file` for reading and writing (a download in progress).
    pub fn read_write(file: &File, len: u64) -> io::Result<Mapping> {
        let raw = if len == 0 {
            None
        } else {
            let len_usize =
                usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
            Some(MmapOptions::new().len(len_usize).map_raw(file)?)
        };
        Ok(Mapping { raw, len })
    }

    /// Maps `len` bytes of `file` for reading only (a file being shared).
    pub fn read_only(file: &File, len: u64) -> io::Result<Mapping> {
        let raw = if len == 0 {
            None
        } else {
            let len_usize =
                usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
            Some(MmapOptions::new().len(len_usize).map_raw_read_only(file)?)
        };
        Ok(Mapping { raw, len })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping and the byte range `offset..offset + len`, if it lies inside.
    fn range(&self, offset: u64, len: usize) -> Option<(&MmapRaw, usize)> {
        let end = offset.checked_add(len as u64)?;
        if end > self.len || len == 0 {
            return None;
        }
        // `end <= self.len`, and self.len fitted in usize when the mapping was made.
        Some((self.raw.as_ref()?, offset as usize))
    }

    /// Copies `data` into the file at `offset`. False (and nothing written) when the range
    /// does not lie inside the file, or the mapping is read-only.
    pub fn write(&self, offset: u64, data: &[u8]) -> bool {
        let Some((raw, start)) = self.range(offset, data.len()) else {
            return false;
        };
        // SAFETY: `start + data.len()` is within the mapping (checked by `range`); the node
        // writes only into chunks it is downloading, which no other thread reads (module
        // doc), and `data` cannot overlap the mapping because it is a received datagram.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), raw.as_mut_ptr().add(start), data.len());
        }
        true
    }

    /// Copies `out.len()` bytes of the file from `offset` into `out`. False when the range
    /// does not lie inside the file.
    pub fn read_into(&self, offset: u64, out: &mut [u8]) -> bool {
        let Some((raw, start)) = self.range(offset, out.len()) else {
            return false;
        };
        // SAFETY: in bounds (checked by `range`); the range is a verified chunk, never
        // written again, and `out` is a send buffer outside the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(raw.as_ptr().add(start), out.as_mut_ptr(), out.len());
        }
        true
    }

    /// SHA-1 of `len` bytes from `offset`; `None` when the range is not inside the file.
    /// An empty range hashes to the SHA-1 of nothing.
    pub fn sha1(&self, offset: u64, len: usize) -> Option<Hash> {
        if len == 0 {
            return (offset <= self.len).then(|| sha1_smol::Sha1::from([]).digest().bytes());
        }
        let (raw, start) = self.range(offset, len)?;
        // SAFETY: in bounds (checked by `range`); the caller hashes a chunk that nobody
        // writes while it is hashed (module doc). The slice lives only for this call.
        let bytes = unsafe { std::slice::from_raw_parts(raw.as_ptr().add(start), len) };
        Some(sha1_smol::Sha1::from(bytes).digest().bytes())
    }

    /// Writes dirty pages of the whole file back to disk and waits for it.
    pub fn flush(&self) -> io::Result<()> {
        match &self.raw {
            Some(raw) => raw.flush(),
            None => Ok(()),
        }
    }
}
