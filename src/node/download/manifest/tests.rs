use super::*;
use crate::bencode::Value;
use crate::tree::{TreeFile, TreeManifest};

const PIECE_BYTES: u32 = 16_384;

/// A tree's info dictionary whose one file is at `path` (checked or not: a hostile holder
/// writes what it likes, and the info hash the tracker lists is its dictionary's SHA-1).
fn info_bytes(path: &[&str]) -> Vec<u8> {
    let path = path.iter().map(|c| Value::bytes(c.as_bytes())).collect();
    Value::dict([
        (
            "files",
            Value::List(vec![Value::dict([
                ("length", Value::Int(100)),
                ("path", Value::List(path)),
            ])]),
        ),
        ("name", Value::bytes("top")),
        ("piece length", Value::Int(i64::from(PIECE_BYTES))),
        ("pieces", Value::Bytes(vec![7; 20])),
    ])
    .to_bytes()
}

/// A fetch of the tree whose info dictionary is `info`, as the tracker listed it, past the
/// holder's first answer (which said: a tree).
fn fetch_of(info: &[u8]) -> ManifestFetch {
    let mut fetch = ManifestFetch::new(VersionRecord {
        info_hash: crate::hash::sha1(info),
        file_bytes: U64::new(100),
        chunk_bytes: U32::new(PIECE_BYTES),
        holder_count: U32::new(1),
    });
    let first = wire::ManifestPart {
        info_hash: crate::hash::sha1(info),
        file_bytes: U64::new(100),
        chunk_bytes: U32::new(PIECE_BYTES),
        first_chunk: U32::new(0),
        hash_count: wire::U16::new(0),
        flags: MANIFEST_TREE,
        reserved: 0,
    };
    assert!(matches!(
        fetch.take_part(&first, &[], "top", "top"),
        Part::More
    ));
    fetch
}

#[test]
fn a_tree_description_that_hashes_right_and_can_be_placed_is_taken() {
    let info = info_bytes(&["dir", "a.bin"]);
    let mut fetch = fetch_of(&info);
    let total = info.len() as u32;
    // Parts out of order wait; the next bytes in order are taken.
    assert!(matches!(
        fetch.take_info(total, 10, &info[10..20], "top"),
        Part::Ignored
    ));
    assert!(matches!(
        fetch.take_info(total, 0, &info[..10], "top"),
        Part::Waiting
    ));
    // A part claiming another total is no part of this dictionary.
    assert!(matches!(
        fetch.take_info(total + 1, 10, &info[10..20], "top"),
        Part::Ignored
    ));
    let Part::Complete(manifest) = fetch.take_info(total, 10, &info[10..], "top") else {
        panic!("the whole dictionary was sent");
    };
    let tree: &TreeManifest = manifest.tree.as_deref().expect("a tree");
    assert_eq!(
        tree.files(),
        [TreeFile::new(
            vec!["dir".into(), "a.bin".into()],
            100,
            false
        )]
    );
    assert_eq!(manifest.info_hash, crate::hash::sha1(&info));
}

#[test]
fn hostile_tree_descriptions_are_refused_whole() {
    // Each hashes to the info hash listed, as a hostile holder's own would, and cannot be
    // placed: nothing of it may reach the disk.
    for path in [
        &["..", "etc", "passwd"][..],
        &["a", "..", "b"],
        &["/etc"],
        &["a/b"],
        &[""],
        &["nul\0byte"],
    ] {
        let info = info_bytes(path);
        let mut fetch = fetch_of(&info);
        let part = fetch.take_info(info.len() as u32, 0, &info, "top");
        assert!(matches!(part, Part::Mismatch), "{path:?} taken");
    }
    // Bytes that do not hash to the info hash listed.
    let info = info_bytes(&["a.bin"]);
    let mut fetch = fetch_of(&info);
    let mut forged = info.clone();
    let last = forged.len() - 2;
    forged[last] ^= 1;
    let part = fetch.take_info(forged.len() as u32, 0, &forged, "top");
    assert!(matches!(part, Part::Mismatch));
    // A dictionary of another shape or name than the one the tracker listed.
    let mut fetch = fetch_of(&info);
    let part = fetch.take_info(info.len() as u32, 0, &info, "other");
    assert!(matches!(part, Part::Mismatch));
}
