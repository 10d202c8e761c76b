//! Standard BitTorrent descriptions of a file we hold: a `.torrent` (BEP 3, single file)
//! and a magnet link (BEP 9), both pointing at our tracker's BEP 15 side.
//!
//! Our info hash was chosen to be the v1 info-hash of the equivalent single-file torrent, so
//! the info dictionary written here hashes to [`Manifest::info_hash`] (a test checks it):
//! chunks are BitTorrent pieces, chunk hashes are piece hashes.

use crate::bencode::Value;
use crate::storage::Manifest;
use crate::wire;
use std::net::SocketAddr;

/// What a `.torrent` file's name adds to the file's name.
pub const TORRENT_SUFFIX: &str = ".torrent";

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

/// The bytes of a `.torrent` for `manifest`, announcing to `tracker`.
pub fn torrent_file(manifest: &Manifest, tracker: SocketAddr) -> Vec<u8> {
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
}
