//! A multi-file content: a directory tree described as BitTorrent v1 describes one (BEP 3's
//! multi-file info dictionary `{files: [{length, path: [...]}...], name, piece length,
//! pieces}`, with BEP 47's `attr`), so that its info hash is the one standard clients
//! compute, and a `.torrent` made by them can be read.
//!
//! * [`TreeManifest`] is the description: its files in order (path components, length,
//!   executable bit, pad files marked), its piece length and piece hashes, its top-level
//!   name, and the info dictionary's bytes, whose SHA-1 is its info hash. Every value passed
//!   the checks of [`paths`] and of the shape, whoever made it.
//! * [`layout`] maps a piece to the parts of files it spans; pad files (BEP 47) are zeros
//!   and are never written, files of zero length take no pieces.
//! * [`walk`] builds one from a directory on disk (never following a link, never opening a
//!   FIFO or device), and [`hashing`] hashes its pieces across files on several threads.
//! * [`parse`] reads the info dictionary of a `.torrent` made elsewhere (libtorrent 2.0
//!   makes hybrid v1+v2 torrents with pad files by default), keeping its file order and its
//!   bytes as given.
//! * [`content`] makes a tree's files one `storage::Content`, read, hashed and written
//!   across file boundaries, so that the node's chunk logic can serve and fetch a tree.
//!
//! Our own order is deterministic: files sorted by path, component by component, as BEP 52
//! orders a v2 file tree; our own trees have no pad files. Of the file modes only the
//! executable bit travels; v1 cannot carry empty directories, so they are not carried.
//!
//! The node shares a directory of its own directory as a tree, and downloads one, through
//! `storage::Manifest::of_tree` and `storage/state/tree.rs`; its info dictionary is what
//! travels in place of a file's chunk hashes (`wire::InfoRequest`, `wire::InfoPart`).

pub mod content;
pub mod hashing;
pub mod layout;
pub mod parse;
pub mod paths;
pub mod walk;

use crate::bencode;
use crate::wire::{self, Hash};
use layout::PieceLayout;

/// One file of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    path: Vec<String>,
    length_bytes: u64,
    executable: bool,
    pad: bool,
}

impl TreeFile {
    /// A file at `path` below the top-level name (checked with the whole manifest).
    pub fn new(path: Vec<String>, length_bytes: u64, executable: bool) -> TreeFile {
        TreeFile {
            path,
            length_bytes,
            executable,
            pad: false,
        }
    }

    /// A BEP 47 pad file: `length_bytes` of zeros that align the next file to a piece, never
    /// written to disk.
    pub fn pad(path: Vec<String>, length_bytes: u64) -> TreeFile {
        TreeFile {
            path,
            length_bytes,
            executable: false,
            pad: true,
        }
    }

    /// The path's components below the top-level name.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    pub fn length_bytes(&self) -> u64 {
        self.length_bytes
    }

    pub fn is_executable(&self) -> bool {
        self.executable
    }

    pub fn is_pad(&self) -> bool {
        self.pad
    }

    /// Appends the file's entry in a v1 info dictionary: `{attr, length, path}` (`attr`
    /// only when there is an attribute to say), keys in byte order as bencode wants them.
    fn encode_info_entry(&self, out: &mut Vec<u8>) {
        let attr = match (self.pad, self.executable) {
            (true, _) => Some("p"),
            (false, true) => Some("x"),
            (false, false) => None,
        };
        out.push(b'd');
        if let Some(attr) = attr {
            bencode::encode_bytes(b"attr", out);
            bencode::encode_bytes(attr.as_bytes(), out);
        }
        bencode::encode_bytes(b"length", out);
        bencode::encode_int(self.length_bytes as i64, out);
        bencode::encode_bytes(b"path", out);
        out.push(b'l');
        for component in &self.path {
            bencode::encode_bytes(component.as_bytes(), out);
        }
        out.extend_from_slice(b"ee");
    }
}

/// The description of a multi-file content. Its fields are checked together when it is made
/// ([`TreeManifest::ours`], [`parse::info`]) and never change after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeManifest {
    name: String,
    files: Vec<TreeFile>,
    layout: PieceLayout,
    hashes: Vec<Hash>,
    /// The info dictionary's bytes: written by us, or as given in a `.torrent`.
    info_bytes: Vec<u8>,
    info_hash: Hash,
}

impl TreeManifest {
    /// Our description of a tree: `files` in our order (sorted by path), hashed into
    /// `hashes` with pieces of `piece_bytes`; the info dictionary is written here.
    pub fn ours(
        name: String,
        files: Vec<TreeFile>,
        piece_bytes: u32,
        hashes: Vec<Hash>,
    ) -> Result<TreeManifest, String> {
        if files.iter().any(TreeFile::is_pad) {
            return Err("our own trees have no pad files".into());
        }
        if !files.is_sorted_by(|a, b| a.path <= b.path) {
            return Err("the files are not sorted by path".into());
        }
        let info_bytes = our_info_bytes(&name, &files, piece_bytes, &hashes);
        Self::checked(name, files, piece_bytes, hashes, info_bytes)
    }

    /// Checks everything a tree's description must hold, whoever made it, and computes the
    /// info hash from `info_bytes`: the file count, every path, collisions, the lengths'
    /// sum, the shape, the count of hashes.
    fn checked(
        name: String,
        files: Vec<TreeFile>,
        piece_bytes: u32,
        hashes: Vec<Hash>,
        info_bytes: Vec<u8>,
    ) -> Result<TreeManifest, String> {
        if let Some(problem) = wire::name_problem(name.as_bytes()) {
            return Err(format!("its top-level name is refused: {problem}"));
        }
        if files.is_empty() {
            return Err("it has no files".into());
        }
        if files.len() > paths::FILES_MAX {
            return Err(format!("it has more than {} files", paths::FILES_MAX));
        }
        for file in &files {
            let problem = file
                .path
                .iter()
                .find_map(|component| paths::component_problem(component.as_bytes()))
                .or_else(|| paths::path_problem(&name, &file.path));
            if let Some(problem) = problem {
                return Err(format!("{}: {problem}", shown(&file.path)));
            }
        }
        if let Some((first, second)) = paths::collision(&files) {
            return Err(format!(
                "{} and {} would be the same file (or a file and a directory) on a case-insensitive file system",
                shown(&files[first].path),
                shown(&files[second].path)
            ));
        }
        let layout = PieceLayout::new(files.iter().map(TreeFile::length_bytes), piece_bytes)
            .ok_or("its file lengths add up to more than 2^64 bytes")?;
        if !wire::shape_ok(layout.total_bytes(), piece_bytes) {
            return Err(format!(
                "piece length {piece_bytes} for {} bytes is not a shape this program uses (a power of two from {} to {}, at most {} pieces)",
                layout.total_bytes(),
                wire::CHUNK_BYTES_MIN,
                wire::CHUNK_BYTES_MAX,
                wire::CHUNKS_MAX
            ));
        }
        if hashes.len() as u64 != layout.piece_count() {
            return Err(format!(
                "it has {} piece hashes for {} pieces",
                hashes.len(),
                layout.piece_count()
            ));
        }
        let info_hash = crate::hash::sha1(&info_bytes);
        Ok(TreeManifest {
            name,
            files,
            layout,
            hashes,
            info_bytes,
            info_hash,
        })
    }

    /// The top-level name: the directory the tree is placed as.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The files in the order the pieces lay them out.
    pub fn files(&self) -> &[TreeFile] {
        &self.files
    }

    pub fn layout(&self) -> &PieceLayout {
        &self.layout
    }

    pub fn piece_bytes(&self) -> u32 {
        self.layout.piece_bytes()
    }

    /// The pieces' count: it fits in a u32, as the shape was checked.
    pub fn piece_count(&self) -> u32 {
        self.hashes.len() as u32
    }

    /// Every file's bytes, pad files included.
    pub fn total_bytes(&self) -> u64 {
        self.layout.total_bytes()
    }

    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The bencoded info dictionary, as written by us or as given.
    pub fn info_bytes(&self) -> &[u8] {
        &self.info_bytes
    }

    /// SHA-1 of the info dictionary: BitTorrent v1's info hash.
    pub fn info_hash(&self) -> Hash {
        self.info_hash
    }
}

/// Our info dictionary, `{files, name, piece length, pieces}`, written straight into bytes
/// in canonical bencode (keys in byte order) rather than built as a tree of values and
/// encoded: for 10,000 files that took 11 ms on one thread while the others waited, the
/// allocations of each file's values and their freeing most of it.
fn our_info_bytes(name: &str, files: &[TreeFile], piece_bytes: u32, hashes: &[Hash]) -> Vec<u8> {
    // What each file's entry takes besides its components: keys, lengths, markers.
    const ENTRY_OVERHEAD_BYTES: usize = 48;
    let paths_bytes: usize = files
        .iter()
        .flat_map(|file| &file.path)
        .map(|component| component.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(
        paths_bytes + files.len() * ENTRY_OVERHEAD_BYTES + name.len() + hashes.len() * 20 + 64,
    );
    out.push(b'd');
    bencode::encode_bytes(b"files", &mut out);
    out.push(b'l');
    for file in files {
        file.encode_info_entry(&mut out);
    }
    out.push(b'e');
    bencode::encode_bytes(b"name", &mut out);
    bencode::encode_bytes(name.as_bytes(), &mut out);
    bencode::encode_bytes(b"piece length", &mut out);
    bencode::encode_int(i64::from(piece_bytes), &mut out);
    bencode::encode_bytes(b"pieces", &mut out);
    let pieces: Vec<u8> = hashes.iter().flatten().copied().collect();
    bencode::encode_bytes(&pieces, &mut out);
    out.push(b'e');
    out
}

/// A path for messages: its components joined by `/`, control characters escaped.
fn shown(path: &[String]) -> String {
    path.join("/").escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, length_bytes: u64, executable: bool) -> TreeFile {
        TreeFile::new(
            path.split('/').map(str::to_string).collect(),
            length_bytes,
            executable,
        )
    }

    #[test]
    fn our_info_dictionary_is_bittorrent_v1_multi_file() {
        let files = vec![
            file("a.txt", 3, false),
            file("bin/run", 2, true),
            file("empty", 0, false),
        ];
        let hashes = vec![[0x11; 20]];
        let tree = TreeManifest::ours("top".into(), files, 16_384, hashes).unwrap();
        let mut expected = b"d5:filesl\
            d6:lengthi3e4:pathl5:a.txtee\
            d4:attr1:x6:lengthi2e4:pathl3:bin3:runee\
            d6:lengthi0e4:pathl5:emptyee\
            e4:name3:top12:piece lengthi16384e6:pieces20:"
            .to_vec();
        expected.extend([0x11; 20]);
        expected.push(b'e');
        assert_eq!(tree.info_bytes(), expected);
        assert_eq!(tree.info_hash(), crate::hash::sha1(&expected));
        assert_eq!((tree.total_bytes(), tree.piece_count()), (5, 1));
        assert!(tree.files()[1].is_executable());
    }

    #[test]
    fn our_info_dictionary_is_the_one_a_tree_of_values_encodes() {
        use crate::bencode::Value;
        let files = vec![
            file("a b/\u{e9}t\u{e9}.txt", 0, false),
            file("bin/run", 1 << 40, true),
            TreeFile::pad(vec![".pad".into(), "7".into()], 7),
            file(&"x".repeat(255), 12_345, false),
        ];
        let hashes: Vec<Hash> = (0..5u8).map(|i| [i; 20]).collect();
        let entries = files.iter().map(|file| {
            let path = file.path().iter().map(|c| Value::bytes(c.as_bytes()));
            let mut entry = vec![
                ("length", Value::Int(file.length_bytes() as i64)),
                ("path", Value::List(path.collect())),
            ];
            let attr = match (file.is_pad(), file.is_executable()) {
                (true, _) => Some("p"),
                (false, true) => Some("x"),
                (false, false) => None,
            };
            entry.extend(attr.map(|attr| ("attr", Value::bytes(attr))));
            Value::dict(entry)
        });
        let expected = Value::dict([
            ("files", Value::List(entries.collect())),
            ("name", Value::bytes("top")),
            ("piece length", Value::Int(1 << 22)),
            ("pieces", Value::Bytes(hashes.concat())),
        ]);
        let written = our_info_bytes("top", &files, 1 << 22, &hashes);
        assert_eq!(written, expected.to_bytes());
        assert_eq!(crate::bencode::decode(&written), Ok(expected));
    }

    #[test]
    fn descriptions_that_cannot_be_placed_are_refused() {
        let ours = |name: &str, files: Vec<TreeFile>, hashes: usize| {
            TreeManifest::ours(name.into(), files, 16_384, vec![[0; 20]; hashes])
        };
        assert!(ours("top", vec![file("a", 1, false)], 1).is_ok());
        assert!(ours(".top", vec![file("a", 1, false)], 1).is_err());
        assert!(ours("top", vec![], 0).is_err());
        assert!(ours("top", vec![file("a", 1, false)], 2).is_err());
        assert!(ours("top", vec![file("b", 1, false), file("a", 1, false)], 1).is_err());
        let refused = ours("top", vec![file("A", 1, false), file("a", 1, false)], 1);
        assert!(refused.unwrap_err().contains("case-insensitive"));
        let refused = ours("top", vec![file("a/../b", 1, false)], 1);
        assert!(refused.unwrap_err().contains("'..'"));
        let pad = TreeFile::pad(vec![".pad".into(), "1".into()], 1);
        assert!(ours("top", vec![pad], 1).is_err());
        // Lengths past what the shape allows, and past u64.
        let huge = vec![file("a", u64::MAX, false), file("b", 1, false)];
        assert!(ours("top", huge, 0).unwrap_err().contains("2^64"));
    }
}
