//! Reading the info dictionary of a multi-file `.torrent` made elsewhere (BEP 3, with
//! BEP 47's attributes), read in place ([`crate::bencode::Slice`]) and identified by the
//! SHA-1 of its bytes as given.
//!
//! Keys we do not use are accepted: libtorrent 2.0 makes hybrid v1+v2 torrents by default,
//! whose info dictionary also holds `meta version` and a v2 `file tree`, and whose v1 file
//! list holds BEP 47 pad files (`.pad/N`, `attr: "p"`) that align each file to a piece. The
//! file order is kept as given (libtorrent lists files as the directory yielded them, or
//! sorted and padded for v2). Every count is checked before anything is allocated for it.

use super::{TreeFile, TreeManifest, paths};
use crate::bencode::Slice;
use crate::wire::Hash;

/// Reads a multi-file info dictionary, `info_bytes` exactly as it stood in the `.torrent`.
pub fn info(info_bytes: &[u8]) -> Result<TreeManifest, String> {
    let info = Slice::parse(info_bytes).map_err(|e| format!("its info dictionary: {e}"))?;
    if info.entries().is_none() {
        return Err("its info value is not a dictionary".into());
    }
    if info.get("length").is_some() {
        return Err("a single-file torrent (its info dictionary has 'length')".into());
    }
    let list = info
        .get("files")
        .and_then(|files| files.items())
        .ok_or("no 'files' list in the info dictionary")?;
    // Counted before anything is allocated for them.
    let count = list.clone().count();
    if count > paths::FILES_MAX {
        return Err(format!("it has more than {} files", paths::FILES_MAX));
    }
    let mut files = Vec::with_capacity(count);
    for (index, entry) in list.enumerate() {
        files.push(file(entry).map_err(|problem| format!("file {index}: {problem}"))?);
    }
    let name = info
        .get("name")
        .and_then(|name| name.as_bytes())
        .ok_or("no 'name' in the info dictionary")?;
    let name = std::str::from_utf8(name)
        .map_err(|_| "its top-level name is refused: the name is not UTF-8")?
        .to_owned();
    let piece_bytes = info
        .get("piece length")
        .and_then(|piece| piece.as_int())
        .and_then(|piece| u32::try_from(piece).ok())
        .ok_or("no valid 'piece length' in the info dictionary")?;
    let pieces = info
        .get("pieces")
        .and_then(|pieces| pieces.as_bytes())
        .ok_or("no 'pieces' in the info dictionary")?;
    if pieces.len() % 20 != 0 {
        return Err(format!(
            "'pieces' holds {} bytes, not 20 for each piece",
            pieces.len()
        ));
    }
    // Bounded by the input's length, which the caller bounded.
    let hashes: Vec<Hash> = pieces
        .chunks_exact(20)
        .map(|hash| hash.try_into().unwrap_or([0; 20]))
        .collect();
    TreeManifest::checked(name, files, piece_bytes, hashes, info_bytes.to_vec())
}

/// One entry of the `files` list: `{length, path}`, and BEP 47's `attr` (`p` pad, `x`
/// executable; `h` hidden is ignored; `l`, a symbolic link, is refused: we create none).
fn file(entry: Slice<'_>) -> Result<TreeFile, String> {
    if entry.entries().is_none() {
        return Err("not a dictionary".into());
    }
    let length_bytes = entry
        .get("length")
        .and_then(|length| length.as_int())
        .and_then(|length| u64::try_from(length).ok())
        .ok_or("no valid 'length'")?;
    let components = entry
        .get("path")
        .and_then(|path| path.items())
        .ok_or("no 'path' list")?;
    if components.clone().count() > paths::PATH_COMPONENTS_MAX {
        return Err(format!(
            "its path is more than {} components deep",
            paths::PATH_COMPONENTS_MAX
        ));
    }
    let mut path = Vec::new();
    for component in components {
        let bytes = component
            .as_bytes()
            .ok_or("a path component is not a string")?;
        if let Some(problem) = paths::component_problem(bytes) {
            return Err(problem.into());
        }
        // UTF-8: component_problem checked it.
        path.push(String::from_utf8_lossy(bytes).into_owned());
    }
    let attr = match entry.get("attr") {
        Some(attr) => attr.as_bytes().ok_or("'attr' is not a string")?,
        None => b"",
    };
    if attr.contains(&b'l') || entry.get("symlink path").is_some() {
        return Err("a symbolic link; this program creates none".into());
    }
    if attr.contains(&b'p') {
        return Ok(TreeFile::pad(path, length_bytes));
    }
    Ok(TreeFile::new(path, length_bytes, attr.contains(&b'x')))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An info dictionary around a `files` list given as bencode, 40 bytes of hashes.
    fn info_with(files: &str, total_pieces: usize) -> Vec<u8> {
        let mut bytes = format!(
            "d5:filesl{files}e4:name3:top12:piece lengthi16384e6:pieces{}:",
            total_pieces * 20
        )
        .into_bytes();
        bytes.extend(vec![7; total_pieces * 20]);
        bytes.push(b'e');
        bytes
    }

    #[test]
    fn a_hybrid_info_dictionary_is_read_as_given() {
        // As libtorrent 2.0 writes one: v2 keys beside v1's, a pad file after each file
        // that does not end on a piece, attributes.
        let mut bytes = b"d9:file treed1:ad0:d6:lengthi10e11:pieces root32:".to_vec();
        bytes.extend([b'.'; 32]);
        bytes.extend_from_slice(
            b"eee\
            5:filesl\
            d6:lengthi10e4:pathl1:aee\
            d4:attr1:p6:lengthi16374e4:pathl4:.pad5:16374ee\
            d4:attr1:x6:lengthi20000e4:pathl3:bin3:runee\
            d4:attr1:p6:lengthi12768e4:pathl4:.pad5:12768ee\
            d6:lengthi5e4:pathl14:.gitattributesee\
            e\
            12:meta versioni2e\
            4:name3:top\
            12:piece lengthi16384e\
            6:pieces80:",
        );
        bytes.extend([9; 80]);
        bytes.push(b'e');
        let tree = info(&bytes).unwrap();
        assert_eq!(tree.info_hash(), crate::hash::sha1(&bytes));
        assert_eq!(tree.info_bytes(), bytes);
        let shown: Vec<_> = tree
            .files()
            .iter()
            .map(|f| {
                (
                    f.path().join("/"),
                    f.length_bytes(),
                    f.is_pad(),
                    f.is_executable(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("a".into(), 10, false, false),
                (".pad/16374".into(), 16_374, true, false),
                ("bin/run".into(), 20_000, false, true),
                (".pad/12768".into(), 12_768, true, false),
                (".gitattributes".into(), 5, false, false),
            ]
        );
        assert_eq!((tree.total_bytes(), tree.piece_count()), (49_157, 4));
    }

    #[test]
    fn hostile_lists_are_refused_before_they_cost() {
        let entry = |path: &str| format!("d6:lengthi1e4:pathl{path}ee");
        assert!(info(&info_with(&entry("1:a"), 1)).is_ok());
        let refused = |files: String, pieces: usize| info(&info_with(&files, pieces)).unwrap_err();
        assert!(refused(entry("2:.."), 1).contains("'..'"));
        assert!(refused(entry("1:a2:.."), 1).contains("'..'"));
        assert!(refused(entry("3:a/b"), 1).contains("separator"));
        assert!(refused(entry("3:a\0b"), 1).contains("control"));
        assert!(refused(entry("0:"), 1).contains("empty"));
        assert!(refused(entry(""), 1).contains("empty path"));
        assert!(refused(entry("1:a") + &entry("1:a"), 1).contains("same file"));
        assert!(refused(entry("6:README") + &entry("6:readme"), 1).contains("same file"));
        assert!(refused(entry("1:a") + &entry("1:A1:b"), 1).contains("same file"));
        assert!(refused(entry(&"1:d".repeat(65)), 1).contains("components deep"));
        let long = format!("255:{}", "x".repeat(255)).repeat(4);
        assert!(refused(entry(&long), 1).contains("longer than 1,024"));
        let overflow = ["a", "b", "c"]
            .map(|name| format!("d6:lengthi9223372036854775807e4:pathl1:{name}ee"))
            .concat();
        assert!(refused(overflow, 1).contains("2^64"));
        assert!(refused("d6:lengthi-1e4:pathl1:aee".into(), 1).contains("length"));
        let symlink = "d4:attr1:l6:lengthi0e4:pathl1:ae12:symlink pathl1:bee";
        assert!(refused(symlink.into(), 0).contains("symbolic link"));
        assert!(refused(String::new(), 0).contains("no files"));
        assert!(refused(entry("1:a"), 2).contains("piece hashes"));
        let count_bomb = "de".repeat(paths::FILES_MAX + 1);
        assert!(refused(count_bomb, 0).contains("more than 65536 files"));
        assert!(
            info(b"d6:lengthi1e4:name1:ae")
                .unwrap_err()
                .contains("single-file")
        );
        assert!(info(b"le").is_err());
        assert!(info(b"d5:filesle4:name3:top").is_err());
    }
}
