//! Pieces of a download gathered into fewer writes.
//!
//! The filesystem's [`ContentWriter`]. Each piece is written with `pwrite`
//! ([`Mapping::write`]); for pieces of MTU size (1,400
//! bytes) that is a system call per 1,400 bytes on the reactor thread, which made a 512 MiB
//! transfer 0.87x as fast as writing through the mapping did. Pieces arrive mostly in runs
//! of one chunk in order (a GRO run is one sender's consecutive datagrams), so a run of
//! small pieces that follow each other in the file is copied into one buffer and written
//! with one `pwrite`. Large pieces go straight through: their copy costs far more than the
//! call.

use super::{Content, ContentWriter, Mapping};
use std::sync::Arc;
use std::time::Instant;

/// Most bytes gathered before they are written.
pub const PENDING_BYTES_MAX: usize = 256 << 10;
/// Pieces at least this large are written at once.
pub const DIRECT_BYTES_MIN: usize = 16 << 10;

/// Writes pieces into a download's partial file, small adjacent ones together.
///
/// A piece handed to [`write`](Self::write) may stay in memory until [`flush`](Self::flush):
/// whoever reads the file (the hasher, once a chunk is complete) must flush first.
pub struct PieceWriter {
    mapping: Arc<Mapping>,
    /// File offset of `pending`'s first byte.
    pending_offset: u64,
    pending: Vec<u8>,
}

impl PieceWriter {
    pub fn new(mapping: Arc<Mapping>) -> PieceWriter {
        PieceWriter {
            mapping,
            pending_offset: 0,
            pending: Vec::new(),
        }
    }

    /// Writes `data` at `offset`, now or with the pieces next to it. False (nothing kept)
    /// when the range does not lie inside the file, or a direct write failed. A failed
    /// deferred write is logged by [`Mapping::write`]; the chunk then fails its hash and is
    /// fetched again.
    pub fn write(&mut self, now: Instant, offset: u64, data: &[u8]) -> bool {
        let inside = offset
            .checked_add(data.len() as u64)
            .is_some_and(|end| end <= self.mapping.len());
        if !inside || data.is_empty() {
            return false;
        }
        if data.len() >= DIRECT_BYTES_MIN {
            return self.mapping.write(now, offset, data);
        }
        let follows = self.pending_offset + self.pending.len() as u64 == offset;
        if !follows || self.pending.len() + data.len() > PENDING_BYTES_MAX {
            self.flush(now);
        }
        if self.pending.is_empty() {
            self.pending_offset = offset;
        }
        self.pending.extend_from_slice(data);
        true
    }

    /// Writes what is gathered. False when that write failed (the bytes are dropped).
    pub fn flush(&mut self, now: Instant) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let written = self.mapping.write(now, self.pending_offset, &self.pending);
        self.pending.clear();
        written
    }

    /// Bytes waiting to be written (at most [`PENDING_BYTES_MAX`]).
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }
}

impl ContentWriter for PieceWriter {
    fn write(&mut self, now: Instant, offset: u64, data: &[u8]) -> bool {
        PieceWriter::write(self, now, offset, data)
    }

    fn flush(&mut self, now: Instant) -> bool {
        PieceWriter::flush(self, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A zeroed partial file of `len` bytes, mapped, in its own directory.
    fn partial(tag: &str, len: u64) -> (PathBuf, Arc<Mapping>) {
        let dir = std::env::temp_dir().join(format!("torrent-writer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the directory");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("part"))
            .expect("create the file");
        file.set_len(len).expect("size the file");
        let mapping = Mapping::read_write(&file, &dir.join("part"), len).expect("map");
        (dir, Arc::new(mapping))
    }

    fn read(mapping: &Mapping, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        assert!(mapping.read_into(offset, &mut out));
        out
    }

    #[test]
    fn adjacent_small_pieces_wait_for_one_write() {
        let (dir, mapping) = partial("adjacent", 10_000);
        let mut writer = PieceWriter::new(Arc::clone(&mapping));
        let now = Instant::now();
        assert!(writer.write(now, 100, &[1; 1400]));
        assert!(writer.write(now, 1500, &[2; 1400]));
        assert_eq!(writer.pending_bytes(), 2800);
        // Nothing reached the file yet: readers flush first.
        assert_eq!(read(&mapping, 100, 2800), vec![0; 2800]);
        // A piece elsewhere writes the gathered run and starts a new one.
        assert!(writer.write(now, 5000, &[3; 100]));
        assert_eq!(writer.pending_bytes(), 100);
        assert!(writer.flush(now));
        assert_eq!(writer.pending_bytes(), 0);
        let mut expected = vec![1; 1400];
        expected.extend_from_slice(&[2; 1400]);
        assert_eq!(read(&mapping, 100, 2800), expected);
        assert_eq!(read(&mapping, 5000, 100), vec![3; 100]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn large_pieces_go_straight_and_bounds_hold() {
        let len = (PENDING_BYTES_MAX * 2) as u64;
        let (dir, mapping) = partial("large", len);
        let mut writer = PieceWriter::new(Arc::clone(&mapping));
        let now = Instant::now();
        assert!(writer.write(now, 0, &vec![7; DIRECT_BYTES_MIN]));
        assert_eq!(writer.pending_bytes(), 0);
        assert_eq!(
            read(&mapping, 0, DIRECT_BYTES_MIN),
            vec![7; DIRECT_BYTES_MIN]
        );
        // Outside the file, or past its end: refused, nothing kept.
        assert!(!writer.write(now, len, &[1]));
        assert!(!writer.write(now, len - 1, &[1, 2]));
        assert!(!writer.write(now, u64::MAX, &[1]));
        assert!(!writer.write(now, 0, &[]));
        assert_eq!(writer.pending_bytes(), 0);
        // A run never grows past its bound.
        let piece = vec![9; DIRECT_BYTES_MIN - 1];
        let mut offset = 0;
        while offset + piece.len() as u64 <= len {
            assert!(writer.write(now, offset, &piece));
            assert!(writer.pending_bytes() <= PENDING_BYTES_MAX);
            offset += piece.len() as u64;
        }
        assert!(writer.flush(now));
        assert_eq!(read(&mapping, offset - 10, 10), vec![9; 10]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
