//! The manifest of a download, fetched part by part from one holder (the source) and
//! accepted only when its info hash equals the one the tracker listed. A download by info
//! hash alone (a standard tracker, `--tracker udp://`) may not know the file's name or shape
//! before: it learns them from the first part (see [`ByHash`]), and the whole manifest must
//! still hash to the info hash.
//!
//! A tree's holder answers the first request with a part that says so ([`MANIFEST_TREE`])
//! and carries no hashes: the tree's description is its info dictionary, fetched byte range
//! by byte range ([`wire::InfoRequest`]), kept only in order and never beyond
//! [`wire::INFO_BYTES_MAX`], and accepted when its SHA-1 is the info hash and it describes
//! a tree of the shape and name the tracker listed.

use super::peer::{ASK_RETRY, Peer};
use crate::storage::Manifest;
use crate::wire::{self, Hash, MANIFEST_TREE, U32, U64, VersionRecord};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Unanswered manifest requests before another holder is asked.
const MANIFEST_ATTEMPTS_MAX: u32 = 4;

/// What a download by info hash knows before its manifest: whether its name was given (by
/// a `.torrent`, a magnet link or a pin), and its shape (file bytes, chunk bytes) when a
/// `.torrent` gave it.
#[derive(Clone)]
pub(super) struct ByHash {
    pub name_known: bool,
    pub shape: Option<(u64, u32)>,
}

pub(super) struct ManifestFetch {
    version: VersionRecord,
    hashes: Vec<Hash>,
    /// For a tree: its info dictionary, as far as it came in order.
    info: Option<InfoFetch>,
    /// The peer (index) asked for parts.
    source: Option<usize>,
    sent_at: Option<Instant>,
    attempts: u32,
}

/// A tree's info dictionary being fetched.
struct InfoFetch {
    /// Its length, as the first part said (0 before).
    total_bytes: u32,
    bytes: Vec<u8>,
    /// Parts taken since the last request: a full answer asks for the next at once.
    parts_since_request: usize,
}

/// What to ask the source for next.
pub(super) enum Ask {
    /// Chunk hashes from this chunk on.
    Hashes(u32),
    /// A tree's info dictionary from this byte on.
    Info(u32),
}

/// What became of a manifest part.
pub(super) enum Part {
    /// Not the part we wait for (another name, shape or place): ignored.
    Ignored,
    /// Taken; more parts are due.
    More,
    /// Taken; more parts of the same answer are on their way.
    Waiting,
    /// It moves nothing forward: its sender cannot help with the manifest.
    Useless,
    /// The last part: the manifest, which hashes to the info hash.
    Complete(Manifest),
    /// The last part, but the whole does not hash to the info hash.
    Mismatch,
}

impl ManifestFetch {
    pub fn new(version: VersionRecord) -> ManifestFetch {
        ManifestFetch {
            version,
            hashes: Vec::new(),
            info: None,
            source: None,
            sent_at: None,
            attempts: 0,
        }
    }

    /// For a download by info hash: the shape is the one a `.torrent` gave, or unknown
    /// (zero) until the first part.
    pub fn by_hash(info_hash: Hash, shape: Option<(u64, u32)>) -> ManifestFetch {
        let (file_bytes, chunk_bytes) = shape.unwrap_or((0, 0));
        ManifestFetch::new(VersionRecord {
            info_hash,
            file_bytes: U64::new(file_bytes),
            chunk_bytes: U32::new(chunk_bytes),
            holder_count: U32::new(0),
        })
    }

    pub fn file_bytes(&self) -> u64 {
        self.version.file_bytes.get()
    }

    pub fn source(&self) -> Option<usize> {
        self.source
    }

    /// How long the last request is given before it is repeated: [`ASK_RETRY`], doubled
    /// with every attempt. A holder that 200 downloaders ask at once answers them over
    /// several hundred milliseconds (a part is about 1.4 KB); repeating every request at a
    /// fixed pace would double its queue, and its upload would carry the manifest twice
    /// before the first piece.
    fn retry_after(&self) -> Duration {
        ASK_RETRY * 2u32.pow(self.attempts.saturating_sub(1).min(4))
    }

    /// When the last request is due to be repeated, if one was sent.
    pub fn retry_at(&self) -> Option<Instant> {
        self.sent_at.map(|sent| sent + self.retry_after())
    }

    /// Whether the source was asked [`MANIFEST_ATTEMPTS_MAX`] times without an answer.
    pub fn source_exhausted(&self) -> bool {
        self.attempts >= MANIFEST_ATTEMPTS_MAX
    }

    /// Takes the first peer not dropped as the source when there is none, or it was
    /// dropped. Returns whether the source changed (and so is to be asked).
    pub fn choose_source(&mut self, peers: &[Peer]) -> bool {
        if self.source.is_some_and(|i| !peers[i].dropped) {
            return false;
        }
        self.source = peers.iter().position(|p| !p.dropped);
        self.attempts = 0;
        self.sent_at = None;
        true
    }

    /// The source sent a manifest that did not hash right: another is chosen. What that
    /// peer told of the name and shape of a download by info hash goes with it.
    pub fn forget_source(&mut self, by_hash: Option<&ByHash>, name: &mut String) {
        self.source = None;
        self.hashes.clear();
        self.info = None;
        if let Some(by_hash) = by_hash {
            let (file_bytes, chunk_bytes) = by_hash.shape.unwrap_or((0, 0));
            self.version.file_bytes = U64::new(file_bytes);
            self.version.chunk_bytes = U32::new(chunk_bytes);
            if !by_hash.name_known {
                *name = wire::hex(&self.version.info_hash);
            }
        }
    }

    /// The next request, sent at `now`: to the source (its index), for the info hash, and
    /// what to ask of it.
    pub fn request(&mut self, now: Instant) -> Option<(usize, Hash, Ask)> {
        let source = self.source?;
        self.sent_at = Some(now);
        self.attempts += 1;
        let ask = match &mut self.info {
            Some(info) => {
                info.parts_since_request = 0;
                // In bounds: the bytes kept never pass INFO_BYTES_MAX.
                Ask::Info(info.bytes.len() as u32)
            }
            None => Ask::Hashes(self.hashes.len() as u32),
        };
        Some((source, self.version.info_hash, ask))
    }

    /// A download by info hash learns its shape (and name, unless given) from the first
    /// manifest part; false when that part cannot be the start of a manifest we accept.
    pub fn learn(
        &mut self,
        by_hash: Option<&ByHash>,
        fixed: &wire::ManifestPart,
        part_name: &str,
        name: &mut String,
    ) -> bool {
        let Some(by_hash) = by_hash else {
            return true;
        };
        if !self.hashes.is_empty() || fixed.first_chunk.get() != 0 {
            return true;
        }
        let (file_bytes, chunk_bytes) = (fixed.file_bytes.get(), fixed.chunk_bytes.get());
        if by_hash.shape.is_none() {
            if !wire::shape_ok(file_bytes, chunk_bytes) {
                return false;
            }
            self.version.file_bytes = fixed.file_bytes;
            self.version.chunk_bytes = fixed.chunk_bytes;
        }
        if !by_hash.name_known {
            if wire::name_problem(part_name.as_bytes()).is_some() {
                return false;
            }
            *name = part_name.to_string();
        }
        true
    }

    /// A manifest part of the file called `name`: its `hashes` from `fixed.first_chunk` on.
    pub fn take_part(
        &mut self,
        fixed: &wire::ManifestPart,
        hashes: &[Hash],
        part_name: &str,
        name: &str,
    ) -> Part {
        let version = self.version;
        let fits = part_name == name
            && fixed.file_bytes == version.file_bytes
            && fixed.chunk_bytes == version.chunk_bytes
            && fixed.first_chunk.get() as usize == self.hashes.len()
            && self.info.is_none();
        if !fits {
            return Part::Ignored;
        }
        if fixed.flags & MANIFEST_TREE != 0 {
            if !hashes.is_empty() || !self.hashes.is_empty() {
                return Part::Useless;
            }
            self.info = Some(InfoFetch {
                total_bytes: 0,
                bytes: Vec::new(),
                parts_since_request: 0,
            });
            self.attempts = 0;
            return Part::More;
        }
        self.hashes.extend_from_slice(hashes);
        self.attempts = 0;
        let count = wire::chunk_count(version.file_bytes.get(), version.chunk_bytes.get());
        if (self.hashes.len() as u32) < count {
            return if hashes.is_empty() {
                Part::Useless
            } else {
                Part::More
            };
        }
        let manifest = Manifest::new(
            name.to_string(),
            version.file_bytes.get(),
            version.chunk_bytes.get(),
            std::mem::take(&mut self.hashes),
        );
        if manifest.info_hash != version.info_hash {
            return Part::Mismatch;
        }
        Part::Complete(manifest)
    }
}

impl ManifestFetch {
    /// Bytes `offset..` of a tree's info dictionary, `total_bytes` long in all, for the
    /// download called `name`. Only the next bytes in order are kept; a part after a lost
    /// one waits for the request that follows the timeout.
    pub fn take_info(&mut self, total_bytes: u32, offset: u32, bytes: &[u8], name: &str) -> Part {
        let Some(info) = &mut self.info else {
            return Part::Ignored;
        };
        if info.bytes.is_empty() {
            info.total_bytes = total_bytes;
        }
        if total_bytes != info.total_bytes || offset as usize != info.bytes.len() {
            return Part::Ignored;
        }
        // Within INFO_BYTES_MAX: `wire::decode` bounds offset + length by the total.
        info.bytes.extend_from_slice(bytes);
        info.parts_since_request += 1;
        self.attempts = 0;
        if info.bytes.len() < info.total_bytes as usize {
            return if info.parts_since_request >= wire::INFO_PARTS_PER_REQUEST_MAX {
                Part::More
            } else {
                Part::Waiting
            };
        }
        let info_bytes = std::mem::take(&mut info.bytes);
        self.info = None;
        if crate::hash::sha1(&info_bytes) != self.version.info_hash {
            return Part::Mismatch;
        }
        let Ok(tree) = crate::tree::parse::info(&info_bytes) else {
            return Part::Mismatch;
        };
        let manifest = Manifest::of_tree(Arc::new(tree));
        let version = self.version;
        let agrees = manifest.name == name
            && manifest.file_bytes == version.file_bytes.get()
            && manifest.chunk_bytes == version.chunk_bytes.get();
        if !agrees {
            return Part::Mismatch;
        }
        Part::Complete(manifest)
    }
}

#[cfg(test)]
mod tests;
