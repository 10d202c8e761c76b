//! Reading a peer's pieces from the file a block at a time instead of one `pread` each.
//!
//! Across a network, pieces are about 1,400 bytes, and a holder read each one with its own
//! `pread`: 187,906 system calls for a 256 MiB file, 15% of the holder's CPU time on the
//! clean netlab link (perf, 2026-12-07), about as much as everything else it does in user
//! space. A peer asks for runs of pieces of one chunk (16 at a time), so one `pread` of the
//! rest of its range, up to [`READ_AHEAD_BYTES_MAX`], serves the next pieces from memory.
//!
//! **Bounded.** One block per peer, for at most [`READ_AHEAD_PEERS_MAX`] peers (the least
//! recently used gives its block up); with more peers queued the holder reads piece by piece
//! again, since blocks taken from each other in turn would be read many times over. A block
//! is used for [`READ_AHEAD_FRESH`] after it was read: a file that changes under us is sent
//! as it was a few milliseconds ago, as a `pread` racing the change would, and the receiver's
//! SHA-1 check catches both. A block is tied to the file's [`Mapping`] (held, so that its
//! address names only it), so a new version of a file never reads an old block.

use crate::storage::Content;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bytes read ahead for one peer: one GSO send's worth of 1,400-byte pieces.
pub const READ_AHEAD_BYTES_MAX: usize = 64 << 10;
/// Peers with a block each; the upload slots (`UPLOAD_SLOTS_MAX`) and a few peers still
/// being sent what they asked before their slot ended.
pub const READ_AHEAD_PEERS_MAX: usize = 8;
/// How long a block is used after it was read.
pub const READ_AHEAD_FRESH: Duration = Duration::from_millis(50);

/// Blocks of files read ahead for the peers being served.
#[derive(Default)]
pub struct ReadAhead {
    blocks: Vec<Block>,
}

struct Block {
    to: SocketAddr,
    mapping: Arc<dyn Content>,
    /// File offset of `bytes[0]`.
    file_offset: u64,
    bytes: Vec<u8>,
    read_at: Instant,
    used_at: Instant,
}

impl Block {
    /// The block's bytes at `file_offset..file_offset + len`, if it holds them all.
    fn get(&self, mapping: &Arc<dyn Content>, file_offset: u64, len: usize) -> Option<&[u8]> {
        if !Arc::ptr_eq(&self.mapping, mapping) {
            return None;
        }
        let start = usize::try_from(file_offset.checked_sub(self.file_offset)?).ok()?;
        self.bytes.get(start..start.checked_add(len)?)
    }
}

impl ReadAhead {
    /// Fills `out` with `out.len()` bytes of `mapping` at `file_offset`, for a piece to `to`
    /// whose range goes on to `range_end` (file offset). Reads ahead to `range_end` (at most
    /// [`READ_AHEAD_BYTES_MAX`]) when that is more than the piece. `false` when the range is
    /// not inside the file (it shrank under us), as `Mapping::read_into`.
    pub fn read(
        &mut self,
        now: Instant,
        to: SocketAddr,
        mapping: &Arc<dyn Content>,
        file_offset: u64,
        range_end: u64,
        out: &mut [u8],
    ) -> bool {
        self.blocks
            .retain(|b| now.saturating_duration_since(b.read_at) <= READ_AHEAD_FRESH);
        if let Some(block) = self.blocks.iter_mut().find(|b| b.to == to)
            && let Some(bytes) = block.get(mapping, file_offset, out.len())
        {
            out.copy_from_slice(bytes);
            block.used_at = now;
            return true;
        }
        let ahead = range_end
            .saturating_sub(file_offset)
            .min(READ_AHEAD_BYTES_MAX as u64) as usize;
        if ahead < 2 * out.len() {
            // Nothing to gain: the piece is the rest of the range, or large already.
            return mapping.read_into(file_offset, out);
        }
        let index = match self.blocks.iter().position(|b| b.to == to) {
            Some(index) => index,
            None if self.blocks.len() < READ_AHEAD_PEERS_MAX => {
                self.blocks.push(Block {
                    to,
                    mapping: Arc::clone(mapping),
                    file_offset,
                    bytes: Vec::new(),
                    read_at: now,
                    used_at: now,
                });
                self.blocks.len() - 1
            }
            None => {
                let (index, _) = self
                    .blocks
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| b.used_at)
                    .expect("READ_AHEAD_PEERS_MAX blocks");
                index
            }
        };
        let block = &mut self.blocks[index];
        block.bytes.resize(ahead, 0);
        if !mapping.read_into(file_offset, &mut block.bytes) {
            // The block runs past the end of a file that shrank: the piece alone says
            // whether it is still there.
            self.blocks.swap_remove(index);
            return mapping.read_into(file_offset, out);
        }
        block.to = to;
        block.mapping = Arc::clone(mapping);
        block.file_offset = file_offset;
        block.read_at = now;
        block.used_at = now;
        out.copy_from_slice(&block.bytes[..out.len()]);
        true
    }

    /// Forgets every block: more peers are queued than there are blocks (see the module doc),
    /// a file was withdrawn, or nothing is queued (a block only holds the rest of a range
    /// asked, and should not keep a withdrawn file open).
    pub fn clear(&mut self) {
        self.blocks.clear();
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn bytes_held(&self) -> usize {
        self.blocks.iter().map(|b| b.bytes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile_like::Dir, Arc<dyn Content>, std::fs::File) {
        let dir = tempfile_like::Dir::new();
        let path = dir.path.join("f");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(bytes).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mapping =
            Arc::new(crate::storage::Mapping::read_only(&file, bytes.len() as u64).unwrap());
        (dir, mapping, file)
    }

    mod tempfile_like {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "torrent-read-ahead-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn pieces_read_ahead_are_the_file_bytes() {
        let bytes = content(200_000);
        let (_dir, mapping, _file) = file_of(&bytes);
        let to: SocketAddr = "10.0.0.1:7".parse().unwrap();
        let now = Instant::now();
        let mut ahead = ReadAhead::default();
        let mut out = vec![0u8; 1_400];
        // A range of 16 pieces from offset 3,000, then its last piece shorter.
        for piece in 0..16u64 {
            let offset = 3_000 + piece * 1_400;
            assert!(ahead.read(now, to, &mapping, offset, 3_000 + 16 * 1_400, &mut out));
            assert_eq!(out[..], bytes[offset as usize..offset as usize + 1_400]);
        }
        assert_eq!(ahead.bytes_held(), 16 * 1_400, "one block of the range");
        let mut short = vec![0u8; 100];
        assert!(ahead.read(now, to, &mapping, 199_900, 200_000, &mut short));
        assert_eq!(short[..], bytes[199_900..]);
    }

    #[test]
    fn a_block_serves_only_its_peer_its_file_and_while_fresh() {
        let bytes = content(100_000);
        let (_dir, mapping, file) = file_of(&bytes);
        let a: SocketAddr = "10.0.0.1:7".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:7".parse().unwrap();
        let now = Instant::now();
        let mut ahead = ReadAhead::default();
        let mut out = vec![0u8; 1_000];
        assert!(ahead.read(now, a, &mapping, 0, 50_000, &mut out));
        // The file changes: peer a's block still serves it (fresh), peer b reads anew.
        use std::os::unix::fs::FileExt;
        file.write_all_at(&[0xAA; 1_000], 1_000).unwrap();
        assert!(ahead.read(now, a, &mapping, 1_000, 50_000, &mut out));
        assert_eq!(out[..], bytes[1_000..2_000], "the block read before");
        assert!(ahead.read(now, b, &mapping, 1_000, 50_000, &mut out));
        assert_eq!(out, vec![0xAA; 1_000], "another peer's block is not used");
        // Later than READ_AHEAD_FRESH, peer a reads the file again.
        let later = now + READ_AHEAD_FRESH + Duration::from_millis(1);
        assert!(ahead.read(later, a, &mapping, 1_000, 50_000, &mut out));
        assert_eq!(out, vec![0xAA; 1_000]);
        // Another mapping of the same file (a new version) never reads a's block.
        let other: Arc<dyn Content> =
            Arc::new(crate::storage::Mapping::read_only(&file, bytes.len() as u64).unwrap());
        file.write_all_at(&[0xBB; 1_000], 2_000).unwrap();
        assert!(ahead.read(later, a, &other, 2_000, 50_000, &mut out));
        assert_eq!(out, vec![0xBB; 1_000]);
    }

    #[test]
    fn memory_stays_bounded_and_a_shrunk_file_is_reported() {
        let bytes = content(2 << 20);
        let (_dir, mapping, file) = file_of(&bytes);
        let now = Instant::now();
        let mut ahead = ReadAhead::default();
        let mut out = vec![0u8; 1_400];
        for peer in 0..100u16 {
            let to = SocketAddr::from(([10, 0, 0, 1], peer));
            let offset = u64::from(peer) * 10_000;
            assert!(ahead.read(now, to, &mapping, offset, offset + 1_000_000, &mut out));
            assert_eq!(out[..], bytes[offset as usize..offset as usize + 1_400]);
        }
        assert!(ahead.bytes_held() <= READ_AHEAD_PEERS_MAX * READ_AHEAD_BYTES_MAX);
        file.set_len(1_000_000).unwrap();
        let to = SocketAddr::from(([10, 0, 0, 9], 1));
        assert!(!ahead.read(now, to, &mapping, 1_000_000, 1_100_000, &mut out));
        assert!(
            ahead.read(now, to, &mapping, 990_000, 1_100_000, &mut out),
            "a piece still inside is read, though its block would run past the end"
        );
        assert_eq!(out[..], bytes[990_000..991_400]);
    }
}
