use super::*;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("torrent-storage-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn info_hash_is_bittorrent_v1() {
    // Reference values from Python: sha1(bencode(info)).
    let hashes = [crate::hash::sha1(b"hello")];
    let hash = info_hash("a.txt", 5, 16384, &hashes);
    assert_eq!(wire::hex(&hash), "de3edc1dfa1958affac1dbdc8f34d4d6dac43f00");
    let empty = info_hash("z", 0, 1 << 20, &[]);
    assert_eq!(
        wire::hex(&empty),
        "93e3cefaa229823d35f3520fd03326e726e0e677"
    );
}

#[test]
fn bitmap_counts_and_wire_layout() {
    let mut map = Bitmap::new(10);
    map.set(0);
    map.set(9);
    map.set(9);
    assert_eq!(map.count(), 2);
    assert_eq!(map.as_bytes(), &[0x80, 0x40]);
    assert_eq!(Bitmap::from_bytes(10, &[0x80, 0x40]), Some(map.clone()));
    assert_eq!(Bitmap::from_bytes(10, &[0x80]), None);
    map.clear(0);
    assert!(!map.get(0) && map.get(9) && !map.get(10));
    assert!(Bitmap::full(10).is_full());
}

#[test]
fn manifest_is_cached_and_partial_is_published() {
    let dir = scratch_dir("publish");
    let state = StateDir::open(&dir).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    fs::write(dir.join("data.bin"), &data).unwrap();
    let (manifest, stamp, _) = state.manifest_of("data.bin", 16384, 2).unwrap();
    assert_eq!(manifest.chunk_count(), 7);
    assert_eq!(manifest.hashes[6], crate::hash::sha1(&data[6 * 16384..]));
    // The cached manifest is the same one.
    let (cached, cached_stamp, _) = state.manifest_of("data.bin", 16384, 1).unwrap();
    assert_eq!((cached, cached_stamp), (manifest.clone(), stamp));

    // A second node downloads it: write the chunks into the partial file and publish.
    let dir2 = scratch_dir("publish2");
    let state2 = StateDir::open(&dir2).unwrap();
    let (mapping, claimed) = state2.open_partial(&manifest).unwrap();
    assert_eq!(claimed.count(), 0);
    let now = std::time::Instant::now();
    let mut writer = Arc::clone(&mapping).writer();
    assert!(writer.write(now, 0, &data) && writer.flush(now));
    assert!(
        !writer.write(now, 99_999, &[1, 2]),
        "a write past the end is refused"
    );
    for chunk in 0..manifest.chunk_count() {
        let len = manifest.chunk_len(chunk) as usize;
        assert_eq!(
            mapping.sha1(manifest.chunk_offset(chunk), len),
            Some(manifest.hashes[chunk as usize])
        );
    }
    let (serving, stamp) = state2.publish(&manifest, &mapping).unwrap();
    assert_eq!(fs::read(dir2.join("data.bin")).unwrap(), data);
    assert_eq!(state2.stamp_of("data.bin").unwrap(), stamp);
    let mut back = vec![0; data.len()];
    assert!(serving.read_into(0, &mut back));
    assert_eq!(back, data, "the published file is served from disk");
    assert!(
        state2.publish(&manifest, &mapping).is_err(),
        "publishing twice fails"
    );
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn stamps_notice_rewrites_and_replacements_not_links_and_key_the_cache() {
    let dir = scratch_dir("stamps");
    let state = StateDir::open(&dir).unwrap();
    let path = dir.join("data.bin");
    fs::write(&path, vec![1u8; 50_000]).unwrap();
    let (first, stamp, _) = state.manifest_of("data.bin", 16384, 1).unwrap();
    assert_eq!(state.stamp_of("data.bin").unwrap(), stamp);

    // A hard link made elsewhere, or a new mode, changes no byte: not a change.
    fs::hard_link(&path, dir.join("link.bin")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(state.stamp_of("data.bin").unwrap(), stamp);
    let (again, again_stamp, _) = state.manifest_of("data.bin", 16384, 1).unwrap();
    assert_eq!((again, again_stamp), (first.clone(), stamp));
    fs::remove_file(dir.join("link.bin")).unwrap();

    // Written in place, same length: the modification time moves (set it apart from the
    // first one explicitly: a file system's clock may tick coarser than the two writes).
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[2u8; 10], 20_000).unwrap();
    let later =
        fs::metadata(&path).unwrap().modified().unwrap() + std::time::Duration::from_secs(1);
    file.set_modified(later).unwrap();
    drop(file);
    let rewritten = state.stamp_of("data.bin").unwrap();
    assert_ne!(rewritten, stamp);
    assert!(!stamp.replaced_by(&rewritten));
    let (second, _, _) = state.manifest_of("data.bin", 16384, 1).unwrap();
    assert_ne!(
        second.info_hash, first.info_hash,
        "hashed again, not cached"
    );
    assert_eq!(second.hashes[0], first.hashes[0]);
    assert_ne!(second.hashes[1], first.hashes[1]);

    // Replaced: another file renamed over the name.
    let before = state.stamp_of("data.bin").unwrap();
    fs::write(dir.join("new.bin"), vec![1u8; 50_000]).unwrap();
    fs::rename(dir.join("new.bin"), &path).unwrap();
    assert!(before.replaced_by(&state.stamp_of("data.bin").unwrap()));

    fs::remove_file(&path).unwrap();
    assert!(state.stamp_of("data.bin").is_err());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn partial_resumes_with_claimed_chunks() {
    let dir = scratch_dir("resume");
    let state = StateDir::open(&dir).unwrap();
    let manifest = Manifest::new(
        "r.bin".into(),
        40_000,
        16384,
        vec![[1; 20], [2; 20], [3; 20]],
    );
    let (_, claimed) = state.open_partial(&manifest).unwrap();
    let mut have = claimed;
    have.set(1);
    state
        .record_verified(&manifest.info_hash, &have, 1)
        .unwrap();
    let (_, claimed) = state.open_partial(&manifest).unwrap();
    assert!(claimed.get(1) && claimed.count() == 1);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stored_manifest_round_trip_and_rejects_garbage() {
    let manifest = Manifest::new("m".into(), 20_000, 16384, vec![[9; 20], [8; 20]]);
    let bytes = manifest.to_bytes(77);
    assert_eq!(Manifest::from_bytes(&bytes), Some((manifest, 77)));
    assert_eq!(Manifest::from_bytes(&bytes[..bytes.len() - 1]), None);
    assert_eq!(Manifest::from_bytes(b"TRNTMF01"), None);
}

/// What a standard tracker is told is `left`: the short last chunk counts as what it holds.
#[test]
fn held_bytes_counts_the_short_last_chunk_as_it_is() {
    let hashes = vec![[0u8; 20]; 3];
    let manifest = Manifest::new("f.bin".into(), 40_000, 16_384, hashes);
    let held = |chunks: &[u32]| {
        let mut have = Bitmap::new(3);
        for &chunk in chunks {
            have.set(chunk);
        }
        manifest.held_bytes(&have)
    };
    assert_eq!(held(&[]), 0);
    assert_eq!(held(&[2]), 40_000 - 2 * 16_384);
    assert_eq!(held(&[0, 2]), 40_000 - 16_384);
    assert_eq!(held(&[0, 1]), 2 * 16_384);
    assert_eq!(held(&[0, 1, 2]), 40_000);
}

/// A `.torrent/partial` (or `.torrent`) that is a link is refused, and nothing is made
/// where it points.
#[test]
fn state_directories_that_are_links_are_refused() {
    let dir = scratch_dir("linked-state");
    let outside = scratch_dir("linked-state-outside");
    StateDir::open(&dir).unwrap();
    fs::remove_dir(dir.join(".torrent/partial")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(".torrent/partial")).unwrap();
    let error = StateDir::open(&dir).unwrap_err();
    assert!(
        error
            .to_string()
            .contains(".torrent/partial is a symbolic link"),
        "{error}"
    );
    fs::remove_dir_all(dir.join(".torrent")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(".torrent")).unwrap();
    let error = StateDir::open(&dir).unwrap_err();
    assert!(
        error.to_string().contains(".torrent is a symbolic link"),
        "{error}"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&outside).unwrap();
}

/// A link planted as a partial file is never written through; a FIFO or link given to
/// share is refused at once, saying what it is.
#[test]
fn planted_links_and_special_files_are_refused() {
    let dir = scratch_dir("planted");
    let outside = scratch_dir("planted-outside");
    let state = StateDir::open(&dir).unwrap();
    fs::write(outside.join("target"), b"precious").unwrap();
    let manifest = Manifest::new("p.bin".into(), 20_000, 16384, vec![[1; 20], [2; 20]]);
    let part = dir
        .join(".torrent/partial")
        .join(format!("{}.part", wire::hex(&manifest.info_hash)));
    std::os::unix::fs::symlink(outside.join("target"), &part).unwrap();
    let Err(error) = state.open_partial(&manifest) else {
        panic!("a link opened as a partial file");
    };
    assert!(error.to_string().contains("is a symbolic link"), "{error}");
    assert_eq!(fs::read(outside.join("target")).unwrap(), b"precious");

    std::os::unix::fs::symlink(outside.join("target"), dir.join("shared")).unwrap();
    let Err(error) = state.manifest_of("shared", 16384, 1) else {
        panic!("a link was shared");
    };
    assert!(
        error
            .to_string()
            .starts_with("shared is a symbolic link; share the file itself"),
        "{error}"
    );
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let Err(error) = state.manifest_of("fifo", 16384, 1) else {
        panic!("a FIFO was shared");
    };
    assert!(
        error
            .to_string()
            .contains("fifo is a FIFO, not a regular file"),
        "{error}"
    );
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn exports_never_replace_a_file() {
    let dir = scratch_dir("export");
    let state = StateDir::open(&dir).unwrap();
    state.write_file("a.torrent", b"first").unwrap();
    let error = state.write_file("a.torrent", b"second").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
    assert_eq!(fs::read(dir.join("a.torrent")).unwrap(), b"first");
    // No temporary file is left behind.
    assert_eq!(
        fs::read_dir(dir.join(".torrent"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp"))
            .count(),
        0
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// Two node ids on one directory keep their own tokens; an old single identity file goes
/// to the first id that runs, and only to it.
#[test]
fn each_node_id_keeps_its_identity() {
    let dir = scratch_dir("identity");
    fs::create_dir_all(dir.join(".torrent")).unwrap();
    fs::write(dir.join(".torrent/identity"), "00000000000000aa\n").unwrap();
    let one = StateDir::open(&dir).unwrap();
    let two = StateDir::open(&dir).unwrap();
    assert_eq!(one.load_token(1), 0xaa);
    assert_eq!(two.load_token(2), 0);
    two.save_token(2, 0xbb).unwrap();
    assert_eq!(one.load_token(1), 0xaa);
    assert_eq!(two.load_token(2), 0xbb);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn partials_are_listed_and_removed() {
    let dir = scratch_dir("partials");
    let state = StateDir::open(&dir).unwrap();
    let manifest = Manifest::new(
        "l.bin".into(),
        40_000,
        16384,
        vec![[1; 20], [2; 20], [3; 20]],
    );
    let (_, mut have) = state.open_partial(&manifest).unwrap();
    have.set(2);
    state
        .record_verified(&manifest.info_hash, &have, 2)
        .unwrap();
    let listed = state.partials();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "l.bin");
    assert_eq!(listed[0].file_bytes, 40_000);
    assert_eq!(listed[0].verified_bytes, 40_000 - 2 * 16384);
    assert!(listed[0].disk_bytes >= 40_000, "{:?}", listed[0]);
    assert_eq!(percent(listed[0].verified_bytes, 40_000), "18%");
    state.remove_partial(&manifest.info_hash).unwrap();
    assert!(state.partials().is_empty());
    assert_eq!(
        fs::read_dir(dir.join(".torrent/partial")).unwrap().count(),
        0
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_have_map_is_rebuilt_from_its_parts() {
    // 20 chunks sent as two parts: chunks 0-7, then 8-19 (spare bits zero).
    let empty = Bitmap::new(20);
    let first = empty.with_part(0, &[0b1000_0001]);
    let whole = first.with_part(8, &[0b0000_0000, 0b1111_0000]);
    let held: Vec<u32> = (0..20).filter(|&c| whole.get(c)).collect();
    assert_eq!(held, [0, 7, 16, 17, 18, 19]);
    assert_eq!(whole.count(), 6);
    // A newer part replaces what it covers and nothing else; bits past the end are ignored.
    let newer = whole.with_part(16, &[0b0100_1111]);
    let held: Vec<u32> = (0..20).filter(|&c| newer.get(c)).collect();
    assert_eq!(held, [0, 7, 17]);
    assert_eq!(newer.count(), 3);
}
