//! Standard BitTorrent descriptions of a file: a `.torrent` (BEP 3, single file) and a
//! magnet link (BEP 9), written for a file we hold ([`torrent_file`], [`magnet_link`]) and
//! read for a file to download ([`parse_torrent`], [`parse_magnet`]). A multi-file
//! `.torrent` (a directory, [`crate::tree`]) is written by [`tree_torrent_file`] and read by
//! [`parse_tree_torrent`], not yet by the node.
//!
//! Our info hash was chosen to be the v1 info-hash of the equivalent single-file torrent, so
//! the info dictionary written here hashes to [`Manifest::info_hash`] (a test checks it):
//! chunks are BitTorrent pieces, chunk hashes are piece hashes.

use crate::bencode::{Slice, Value};
use crate::storage::Manifest;
use crate::tree::{TreeManifest, paths};
use crate::wire::{self, Hash};
use std::net::SocketAddr;

/// What a `.torrent` file's name adds to the file's name.
pub const TORRENT_SUFFIX: &str = ".torrent";
/// Largest `.torrent` read: 20 bytes per chunk for [`wire::CHUNKS_MAX`] chunks, and room.
pub const TORRENT_BYTES_MAX: usize = wire::CHUNKS_MAX as usize * 20 + 64 * 1024;
/// Largest multi-file `.torrent` read: a v1 hash (20 bytes) and a v2 one (32, in a hybrid
/// torrent's `piece layers`) for each of the most pieces, and room for the most files at
/// 256 bytes of list each, twice (a hybrid torrent lists them in v1's `files` and in v2's
/// `file tree`): about 47 MiB. Read in place ([`Slice`]), so this is what it costs.
pub const TREE_TORRENT_BYTES_MAX: usize =
    wire::CHUNKS_MAX as usize * (20 + 32) + 2 * paths::FILES_MAX * 256 + 64 * 1024;
/// Longest magnet link read.
pub const MAGNET_BYTES_MAX: usize = 4096;

/// What a download needs from a `.torrent`: the file's identity, name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentFile {
    pub info_hash: Hash,
    pub name: String,
    pub file_bytes: u64,
    pub chunk_bytes: u32,
    /// The `announce` URL, when there is one.
    pub announce: Option<String>,
}

/// Reads a `.torrent` that this program can download. A single-file one's info dictionary must
/// be exactly `{length, name, piece length, pieces}` (our info hash is the SHA-1 of that
/// dictionary, so a torrent with more keys, e.g. `private`, names a different file for
/// us), its name one we accept, its piece length one of our chunk sizes.
///
/// A multi-file `.torrent` is read as [`parse_tree_torrent`] reads it, and its tree is
/// described by its total length and piece length.
pub fn parse_torrent(bytes: &[u8]) -> Result<TorrentFile, String> {
    let multi_file = Slice::parse(bytes)
        .ok()
        .and_then(|torrent| torrent.get("info")?.get("files").map(|_| ()))
        .is_some();
    if multi_file {
        let TreeTorrent { manifest, announce } = parse_tree_torrent(bytes)?;
        return Ok(TorrentFile {
            info_hash: manifest.info_hash(),
            name: manifest.name().to_owned(),
            file_bytes: manifest.total_bytes(),
            chunk_bytes: manifest.piece_bytes(),
            announce,
        });
    }
    if bytes.len() > TORRENT_BYTES_MAX {
        return Err(format!("larger than {TORRENT_BYTES_MAX} bytes"));
    }
    let torrent = crate::bencode::decode(bytes).map_err(|e| format!("not a .torrent: {e}"))?;
    let info = torrent
        .get("info")
        .ok_or("not a .torrent: no info dictionary")?;
    let file_bytes = info
        .get("length")
        .and_then(Value::as_int)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or("no valid 'length' in the info dictionary")?;
    let name = info
        .get("name")
        .and_then(Value::as_bytes)
        .ok_or("no 'name' in the info dictionary")?;
    if let Some(problem) = wire::name_problem(name) {
        return Err(format!("its file name is refused: {problem}"));
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let chunk_bytes = info
        .get("piece length")
        .and_then(Value::as_int)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or("no valid 'piece length' in the info dictionary")?;
    if !wire::shape_ok(file_bytes, chunk_bytes) {
        return Err(format!(
            "piece length {chunk_bytes} for {file_bytes} bytes is not a shape this program uses (a power of two from {} to {}, at most {} pieces)",
            wire::CHUNK_BYTES_MIN,
            wire::CHUNK_BYTES_MAX,
            wire::CHUNKS_MAX
        ));
    }
    let pieces = info
        .get("pieces")
        .and_then(Value::as_bytes)
        .ok_or("no 'pieces' in the info dictionary")?;
    let count = wire::chunk_count(file_bytes, chunk_bytes) as usize;
    if pieces.len() != count * 20 {
        return Err(format!(
            "'pieces' holds {} bytes, not 20 for each of {count} pieces",
            pieces.len()
        ));
    }
    // Canonical bencode (the reader refuses anything else) re-encodes to the same bytes.
    let info_hash = crate::hash::sha1(&info.to_bytes());
    let hashes: Vec<Hash> = pieces
        .chunks_exact(20)
        .map(|piece| piece.try_into().expect("20 bytes"))
        .collect();
    if Manifest::new(name.clone(), file_bytes, chunk_bytes, hashes).info_hash != info_hash {
        return Err("its info dictionary has keys beyond length, name, piece length and pieces; this program identifies a file by exactly those".into());
    }
    let announce = torrent
        .get("announce")
        .and_then(Value::as_bytes)
        .map(|url| String::from_utf8_lossy(url).into_owned());
    Ok(TorrentFile {
        info_hash,
        name,
        file_bytes,
        chunk_bytes,
        announce,
    })
}

/// What a multi-file `.torrent` holds for us: the tree's description, and where to announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeTorrent {
    pub manifest: TreeManifest,
    /// The `announce` URL, when there is one.
    pub announce: Option<String>,
}

/// Reads a multi-file `.torrent`, made by us or elsewhere: any keys beside the ones we use
/// are accepted, the file order is kept as given, and the info hash is the SHA-1 of the
/// info dictionary's bytes as they stand in `bytes` (see [`crate::tree::parse`]).
pub fn parse_tree_torrent(bytes: &[u8]) -> Result<TreeTorrent, String> {
    if bytes.len() > TREE_TORRENT_BYTES_MAX {
        return Err(format!("larger than {TREE_TORRENT_BYTES_MAX} bytes"));
    }
    let torrent = Slice::parse(bytes).map_err(|e| format!("not a .torrent: {e}"))?;
    if torrent.entries().is_none() {
        return Err("not a .torrent: not a dictionary".into());
    }
    let info = torrent
        .get("info")
        .ok_or("not a .torrent: no info dictionary")?;
    let manifest = crate::tree::parse::info(info.raw())?;
    let announce = torrent
        .get("announce")
        .and_then(|url| url.as_bytes())
        .map(|url| String::from_utf8_lossy(url).into_owned());
    Ok(TreeTorrent { manifest, announce })
}

/// The bytes of a multi-file `.torrent` for `tree`, announcing to `tracker` if given. The
/// info dictionary goes in as its bytes stand (ours, or as given in a `.torrent` read), so
/// that its SHA-1 stays the tree's info hash.
pub fn tree_torrent_file(tree: &TreeManifest, tracker: Option<SocketAddr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(tree.info_bytes().len() + 128);
    out.push(b'd');
    // Keys in byte order: announce, created by, info.
    if let Some(tracker) = tracker {
        Value::bytes("announce").encode(&mut out);
        Value::bytes(announce_url(tracker)).encode(&mut out);
    }
    Value::bytes("created by").encode(&mut out);
    Value::bytes("torrent (this project)").encode(&mut out);
    Value::bytes("info").encode(&mut out);
    out.extend_from_slice(tree.info_bytes());
    out.push(b'e');
    out
}

/// Reads `magnet:?xt=urn:btih:<40 hex>[&dn=<name>]...`: the info hash and the name, if any
/// (other parameters, such as `tr`, are ignored; base32 info hashes are not read).
pub fn parse_magnet(link: &str) -> Result<(Hash, Option<String>), String> {
    if link.len() > MAGNET_BYTES_MAX {
        return Err(format!("longer than {MAGNET_BYTES_MAX} bytes"));
    }
    let query = link
        .strip_prefix("magnet:?")
        .ok_or("a magnet link starts with 'magnet:?'")?;
    let mut info_hash = None;
    let mut name = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "xt" => {
                let hex = value
                    .strip_prefix("urn:btih:")
                    .ok_or("'xt' is not urn:btih:<info hash>")?;
                info_hash = Some(
                    wire::parse_hex(hex)
                        .ok_or("the info hash is not 40 hex digits (base32 is not read)")?,
                );
            }
            "dn" => {
                let decoded = percent_decode(value).ok_or("'dn' is badly percent-encoded")?;
                if let Some(problem) = wire::name_problem(&decoded) {
                    return Err(format!("its name is refused: {problem}"));
                }
                name = Some(String::from_utf8_lossy(&decoded).into_owned());
            }
            _ => {}
        }
    }
    Ok((info_hash.ok_or("no 'xt=urn:btih:' info hash")?, name))
}

/// `%XX` to bytes, `+` to a space; `None` on a bad escape.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Some(out)
}

/// `udp://IP:PORT/announce` (IPv6 in brackets), the URL standard clients announce to.
pub fn announce_url(tracker: SocketAddr) -> String {
    format!("udp://{tracker}/announce")
}

/// The info dictionary `{length, name, piece length, pieces}`.
pub fn info_dict(manifest: &Manifest) -> Value {
    let pieces: Vec<u8> = manifest.hashes.iter().flatten().copied().collect();
    Value::dict([
        ("length", Value::Int(manifest.file_bytes as i64)),
        ("name", Value::bytes(manifest.name.as_bytes())),
        ("piece length", Value::Int(i64::from(manifest.chunk_bytes))),
        ("pieces", Value::Bytes(pieces)),
    ])
}

/// The bytes of a `.torrent` for `manifest` (a file's, or a tree's), announcing to
/// `tracker`.
pub fn torrent_file(manifest: &Manifest, tracker: SocketAddr) -> Vec<u8> {
    if let Some(tree) = &manifest.tree {
        return tree_torrent_file(tree, Some(tracker));
    }
    Value::dict([
        ("announce", Value::bytes(announce_url(tracker))),
        ("created by", Value::bytes("torrent (this project)")),
        ("info", info_dict(manifest)),
    ])
    .to_bytes()
}

/// The name a file's `.torrent` gets in the node's directory, when it is a name we accept.
pub fn torrent_name(name: &str) -> Result<String, &'static str> {
    let torrent = format!("{name}{TORRENT_SUFFIX}");
    match wire::name_problem(torrent.as_bytes()) {
        Some(problem) => Err(problem),
        None => Ok(torrent),
    }
}

/// `magnet:?xt=urn:btih:<hex>&dn=<name>&tr=<announce url>`, percent-encoded.
pub fn magnet_link(manifest: &Manifest, tracker: SocketAddr) -> String {
    format!(
        "magnet:?xt=urn:btih:{}&dn={}&tr={}",
        wire::hex(&manifest.info_hash),
        percent_encode(&manifest.name),
        percent_encode(&announce_url(tracker))
    )
}

/// Every byte but RFC 3986's unreserved characters becomes `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode;

    fn manifest() -> Manifest {
        let hashes = vec![[1u8; 20], [2u8; 20], [3u8; 20]];
        Manifest::new("file_A.txt".into(), 40_000, 16_384, hashes)
    }

    #[test]
    fn torrent_info_hash_is_our_info_hash() {
        let manifest = manifest();
        let tracker: SocketAddr = "127.0.0.1:12345".parse().unwrap();
        let bytes = torrent_file(&manifest, tracker);
        let torrent = bencode::decode(&bytes).unwrap();
        assert_eq!(
            torrent.get("announce").and_then(Value::as_bytes),
            Some(&b"udp://127.0.0.1:12345/announce"[..])
        );
        let info = torrent.get("info").unwrap();
        assert_eq!(info.get("length").and_then(Value::as_int), Some(40_000));
        assert_eq!(
            info.get("piece length").and_then(Value::as_int),
            Some(16_384)
        );
        assert_eq!(
            info.get("pieces").and_then(Value::as_bytes).unwrap().len(),
            60
        );
        // SHA-1 of the info dictionary exactly as it appears in the file.
        let info_bytes = info.to_bytes();
        let at = bytes
            .windows(info_bytes.len())
            .position(|window| window == info_bytes)
            .expect("the info dictionary appears verbatim");
        assert_eq!(&bytes[at - 6..at], b"4:info");
        let digest = crate::hash::sha1(&info_bytes);
        assert_eq!(digest, manifest.info_hash);
        // An empty file too (no pieces at all).
        let empty = Manifest::new("empty.bin".into(), 0, 16_384, Vec::new());
        let info_bytes = info_dict(&empty).to_bytes();
        assert_eq!(crate::hash::sha1(&info_bytes), empty.info_hash);
    }

    #[test]
    fn magnet_and_names() {
        let manifest = manifest();
        let tracker: SocketAddr = "[::1]:6969".parse().unwrap();
        assert_eq!(
            magnet_link(&manifest, tracker),
            format!(
                "magnet:?xt=urn:btih:{}&dn=file_A.txt&tr=udp%3A%2F%2F%5B%3A%3A1%5D%3A6969%2Fannounce",
                wire::hex(&manifest.info_hash)
            )
        );
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
        assert_eq!(torrent_name("file_A.txt").unwrap(), "file_A.txt.torrent");
        assert!(torrent_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn torrents_we_write_read_back() {
        let manifest = Manifest::new("file_A.txt".into(), 40_000, 16_384, vec![[7u8; 20]; 3]);
        let tracker: SocketAddr = "127.0.0.1:6969".parse().unwrap();
        let read = parse_torrent(&torrent_file(&manifest, tracker)).unwrap();
        assert_eq!(read.info_hash, manifest.info_hash);
        assert_eq!(read.name, "file_A.txt");
        assert_eq!((read.file_bytes, read.chunk_bytes), (40_000, 16_384));
        assert_eq!(
            read.announce.as_deref(),
            Some("udp://127.0.0.1:6969/announce")
        );
        let (hash, name) = parse_magnet(&magnet_link(&manifest, tracker)).unwrap();
        assert_eq!(
            (hash, name.as_deref()),
            (manifest.info_hash, Some("file_A.txt"))
        );
    }

    #[test]
    fn torrents_we_cannot_use_are_refused_with_a_reason() {
        let info = |extra: Option<(&'static str, Value)>, name: &str, pieces: usize| {
            let mut entries = vec![
                ("length", Value::Int(40_000)),
                ("name", Value::bytes(name.as_bytes())),
                ("piece length", Value::Int(16_384)),
                ("pieces", Value::Bytes(vec![1; pieces])),
            ];
            entries.extend(extra);
            Value::dict([("info", Value::dict(entries))]).to_bytes()
        };
        assert!(parse_torrent(&info(None, "a.bin", 60)).is_ok());
        let private = parse_torrent(&info(Some(("private", Value::Int(1))), "a.bin", 60));
        assert!(private.unwrap_err().contains("keys beyond"));
        // A dictionary with both 'files' and 'length' is read as a tree's, and refused.
        let files = parse_torrent(&info(Some(("files", Value::List(vec![]))), "a.bin", 60));
        assert!(files.unwrap_err().contains("single-file"));
        assert!(
            parse_torrent(&info(None, "a/../b.bin", 60))
                .unwrap_err()
                .contains("path separator")
        );
        assert!(
            parse_torrent(&info(None, "a.bin", 40))
                .unwrap_err()
                .contains("pieces")
        );
        assert!(parse_torrent(b"d4:infoi1ee").is_err());
        assert!(
            parse_torrent(b"garbage")
                .unwrap_err()
                .contains("not a .torrent")
        );
        assert!(parse_magnet("magnet:?dn=x").is_err());
        assert!(parse_magnet("magnet:?xt=urn:btih:zz").is_err());
        assert!(
            parse_magnet(&format!(
                "magnet:?xt=urn:btih:{}&dn=%2E%2E",
                "ab".repeat(20)
            ))
            .is_err()
        );
        assert!(parse_magnet("http://x").is_err());
    }

    #[test]
    fn tree_torrents_read_back_and_keep_their_info_bytes() {
        use crate::tree::TreeFile;
        let files = vec![
            TreeFile::new(vec![".gitattributes".into()], 20_000, false),
            TreeFile::new(vec!["bin".into(), "run".into()], 0, true),
            TreeFile::new(vec!["data".into(), "x.bin".into()], 30_000, false),
        ];
        let tree = TreeManifest::ours("top".into(), files, 16_384, vec![[5; 20]; 4]).unwrap();
        let tracker: SocketAddr = "127.0.0.1:6969".parse().unwrap();
        let bytes = tree_torrent_file(&tree, Some(tracker));
        let read = parse_tree_torrent(&bytes).unwrap();
        assert_eq!(read.manifest, tree);
        assert_eq!(
            read.announce.as_deref(),
            Some("udp://127.0.0.1:6969/announce")
        );
        // The whole file is canonical bencode, and its info value is ours byte for byte.
        let decoded = crate::bencode::decode(&bytes).unwrap();
        assert_eq!(decoded.get("info").unwrap().to_bytes(), tree.info_bytes());
        let bare = parse_tree_torrent(&tree_torrent_file(&tree, None)).unwrap();
        assert_eq!(
            (bare.manifest.info_hash(), bare.announce),
            (tree.info_hash(), None)
        );
        // The reader of any `.torrent` describes it by its total and piece length; this one
        // refuses a single-file torrent.
        let any = parse_torrent(&bytes).unwrap();
        assert_eq!(
            (
                any.info_hash,
                any.name.as_str(),
                any.file_bytes,
                any.chunk_bytes
            ),
            (
                tree.info_hash(),
                tree.name(),
                tree.total_bytes(),
                tree.piece_bytes()
            )
        );
        let single = Manifest::new("a.bin".into(), 40_000, 16_384, vec![[7u8; 20]; 3]);
        let refused = parse_tree_torrent(&torrent_file(&single, tracker)).unwrap_err();
        assert!(refused.contains("single-file"), "{refused}");
        assert!(parse_tree_torrent(b"le").is_err());
        assert!(parse_tree_torrent(b"d4:infoi1ee").is_err());
    }
}
