use super::*;
use crate::tree::hashing::hash_pieces;
use crate::tree::layout::PieceLayout;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};

/// A scratch directory for one test, removed when the test ends (pass or fail).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("torrent-tree-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Bytes that differ from file to file and from offset to offset.
fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// A small tree of every kind of file a tree may hold, and the links it skips.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("data/deep/er")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(root.join("a.txt"), content(1, 20_000)).unwrap();
    fs::write(root.join(".gitattributes"), b"*.bin filter=lfs\n").unwrap();
    fs::write(root.join("data/empty"), b"").unwrap();
    fs::write(root.join("data/deep/er/x.bin"), content(2, 40_000)).unwrap();
    fs::write(root.join("caf\u{e9} \u{1f600}.txt"), content(3, 5)).unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::hard_link(root.join("a.txt"), root.join("data/a-again.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("outside")).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("inside")).unwrap();
    std::os::unix::fs::symlink("../..", root.join("data/up")).unwrap();
}

#[test]
fn a_tree_is_walked_in_our_order_and_hashed_across_files() {
    let scratch = Scratch::new("build");
    let root = scratch.0.join("top");
    sample_tree(&root);
    let built = build(&root, 16_384, 3).unwrap();
    let tree = &built.manifest;
    let paths: Vec<String> = tree.files().iter().map(|f| f.path().join("/")).collect();
    assert_eq!(
        paths,
        [
            ".gitattributes",
            "a.txt",
            "caf\u{e9} \u{1f600}.txt",
            "data/a-again.txt",
            "data/deep/er/x.bin",
            "data/empty",
            "run.sh"
        ]
    );
    let executable: Vec<bool> = tree.files().iter().map(|f| f.is_executable()).collect();
    assert_eq!(executable, [false, false, false, false, false, false, true]);
    let mut skipped = built.skipped_links.clone();
    skipped.sort();
    assert_eq!(skipped, ["data/up", "inside", "outside"]);
    assert_eq!(tree.name(), "top");
    // The pieces are the SHA-1s of the files' bytes laid end to end, in our order.
    let stream: Vec<u8> = paths
        .iter()
        .flat_map(|path| fs::read(root.join(path)).unwrap())
        .collect();
    assert_eq!(tree.total_bytes(), stream.len() as u64);
    let expected: Vec<_> = stream.chunks(16_384).map(crate::hash::sha1).collect();
    assert_eq!(tree.hashes(), expected);
    assert!(tree.piece_count() >= 5, "pieces span files");
    // One thread or many, the same.
    let alone = build(&root, 16_384, 1).unwrap();
    assert_eq!(alone.manifest.info_hash(), tree.info_hash());
    // Through a link to it, the tree is named as the link is; with `.`, as it is.
    std::os::unix::fs::symlink(&root, scratch.0.join("current")).unwrap();
    let linked = build(&scratch.0.join("current"), 16_384, 1).unwrap();
    assert_eq!(linked.manifest.name(), "current");
    assert_eq!(linked.manifest.hashes(), tree.hashes());
    assert_eq!(walk(&root.join("data/..")).unwrap().name(), "top");
}

#[test]
fn fifos_sockets_and_bad_names_are_refused_without_blocking() {
    let scratch = Scratch::new("refuse");
    let root = scratch.0.join("top");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("ok"), b"ok").unwrap();
    // A FIFO that nobody writes: opening it for reading would block forever.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("pipe"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let refused = walk(&root).unwrap_err().to_string();
    assert!(refused.contains("pipe is a FIFO"), "{refused}");
    fs::remove_file(root.join("pipe")).unwrap();

    let socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let refused = walk(&root).unwrap_err().to_string();
    assert!(refused.contains("sock is a socket"), "{refused}");
    drop(socket);
    fs::remove_file(root.join("sock")).unwrap();

    let bad = root.join(std::ffi::OsStr::from_bytes(b"bad\xffname"));
    fs::write(&bad, b"x").unwrap();
    let refused = walk(&root).unwrap_err().to_string();
    assert!(refused.contains("bad\\xffname is not UTF-8"), "{refused}");
    fs::remove_file(&bad).unwrap();

    fs::write(root.join("line\nbreak"), b"x").unwrap();
    let refused = walk(&root).unwrap_err().to_string();
    assert!(refused.contains("control character"), "{refused}");
    fs::remove_file(root.join("line\nbreak")).unwrap();

    fs::write(root.join("README"), b"x").unwrap();
    fs::write(root.join("readme"), b"y").unwrap();
    let refused = walk(&root).unwrap_err().to_string();
    assert!(refused.contains("case-insensitive"), "{refused}");
    fs::remove_file(root.join("readme")).unwrap();
    assert_eq!(walk(&root).unwrap().files.len(), 2);

    let hidden = scratch.0.join(".hidden");
    fs::create_dir_all(hidden.join("d")).unwrap();
    assert!(
        walk(&hidden)
            .unwrap_err()
            .to_string()
            .contains("starts with '.'")
    );
    let refused = walk(&hidden.join("d")).unwrap_err().to_string();
    assert!(refused.contains("holds no files"), "{refused}");
    assert!(
        walk(&root.join("ok"))
            .unwrap_err()
            .to_string()
            .contains("not a directory")
    );
}

#[test]
fn a_file_changed_after_the_walk_is_not_hashed_as_it_was() {
    let scratch = Scratch::new("changed");
    let root = scratch.0.join("top");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("a"), content(1, 50_000)).unwrap();
    fs::write(root.join("b"), content(2, 1_000)).unwrap();
    let walked = walk(&root).unwrap();
    let layout = PieceLayout::new(walked.files.iter().map(TreeFile::length_bytes), 16_384).unwrap();
    let hash = |stamps| hash_pieces(&walked.root, &walked.files, stamps, &layout, 2);
    assert!(hash(Some(&walked.stamps)).is_ok());
    // Rewritten in place, the same length, another modification time.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(root.join("b"))
        .unwrap();
    file.write_all_at(b"z", 0).unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .unwrap();
    let refused = hash(Some(&walked.stamps)).unwrap_err().to_string();
    assert!(
        refused.contains("changed while it was being hashed"),
        "{refused}"
    );
    // Without the walk's stamps (a description made elsewhere), the length still counts.
    assert!(hash(None).is_ok());
    fs::write(root.join("b"), b"short").unwrap();
    assert!(hash(None).unwrap_err().to_string().contains("not the 1000"));
    // Replaced by a link: never followed.
    fs::remove_file(root.join("b")).unwrap();
    std::os::unix::fs::symlink("a", root.join("b")).unwrap();
    assert!(
        hash(None)
            .unwrap_err()
            .to_string()
            .contains("symbolic link")
    );
    // Replaced by a FIFO nobody writes: refused, never opened (an open would block).
    fs::remove_file(root.join("b")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("b"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let refused = hash(None).unwrap_err().to_string();
    assert!(refused.contains("b is a FIFO"), "{refused}");
}

/// A tree like the ones users share, from a seed: files at every depth down to twelve
/// levels, a tenth of them empty, some executable, sizes from 0 to 100 KB, a hard link, links
/// to skip, and names that sort differently as bytes and as text ("B" < "a", "a" < "a-b" <
/// "a.b" < "a0" < "ab").
fn generated_tree(root: &Path, seed: u64, files: usize) {
    let mut state = seed;
    let mut next = move |below: u64| {
        // A 64-bit linear congruential generator (Knuth's MMIX constants): enough to scatter
        // files, and the same tree for the same seed.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % below
    };
    let names = ["a", "B", "a-b", "a.b", "a0", "ab", "\u{e9}t\u{e9}", "z"];
    for i in 0..files {
        let depth = next(13) as usize;
        let mut path = root.to_path_buf();
        for _ in 0..depth {
            path.push(format!("d{}", names[next(names.len() as u64) as usize]));
        }
        fs::create_dir_all(&path).unwrap();
        path.push(format!("{}{i}", names[next(names.len() as u64) as usize]));
        let len = match next(10) {
            0 => 0,
            1..=6 => next(5_000),
            _ => next(100_000),
        };
        fs::write(&path, content(i as u8, len as usize)).unwrap();
        if next(5) == 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o750)).unwrap();
        }
    }
    fs::write(root.join("a0"), content(7, 12_345)).unwrap();
    fs::hard_link(root.join("a0"), root.join("a0-again")).unwrap();
    std::os::unix::fs::symlink("a0", root.join("link-in")).unwrap();
    std::os::unix::fs::symlink("/", root.join("dB/link-out")).ok();
}

/// The tree as a walk and then a hashing of every piece, one after the other: what
/// [`build`] gave before it hashed while walking, and must still give.
fn serial_reference(root: &Path, piece_bytes: u32) -> Built {
    let walked = walk(root).unwrap();
    let layout =
        PieceLayout::new(walked.files.iter().map(TreeFile::length_bytes), piece_bytes).unwrap();
    let hashes = hash_pieces(
        &walked.root,
        &walked.files,
        Some(&walked.stamps),
        &layout,
        1,
    )
    .unwrap();
    Built {
        manifest: TreeManifest::ours(walked.name, walked.files, piece_bytes, hashes).unwrap(),
        skipped_links: walked.skipped_links,
    }
}

#[test]
fn hashing_while_walking_gives_what_walking_then_hashing_gives() {
    let scratch = Scratch::new("streaming");
    let root = scratch.0.join("top");
    generated_tree(&root, 17, 600);
    for piece_bytes in [16_384, 65_536] {
        let reference = serial_reference(&root, piece_bytes);
        let files = reference.manifest.files();
        assert!(files.iter().any(|f| f.path().len() >= 10), "deep paths");
        assert!(files.iter().any(|f| f.length_bytes() == 0), "empty files");
        assert!(files.iter().any(|f| f.is_executable()), "executables");
        assert!(reference.manifest.piece_count() > 20);
        for threads in [1, 2, 5] {
            let built = build(&root, piece_bytes, threads).unwrap();
            let context = format!("{piece_bytes} B, {threads} threads");
            assert_eq!(built.manifest, reference.manifest, "{context}");
            assert_eq!(built.skipped_links, reference.skipped_links);
        }
        // A tree that outgrows the pieces hashed during the walk is hashed again after it,
        // with the same result.
        for streamed_pieces_max in [0, 7] {
            let built = build_bounded(&root, piece_bytes, 2, streamed_pieces_max);
            assert_eq!(built.unwrap().manifest, reference.manifest);
        }
    }
}

#[test]
fn a_walk_that_fails_while_pieces_are_hashed_stops_every_thread() {
    let scratch = Scratch::new("streaming-fails");
    let root = scratch.0.join("top");
    generated_tree(&root, 5, 300);
    // Sorted after every other name, so that it is found once most pieces are known.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("zz-pipe"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    for threads in [1, 2, 4] {
        let refused = build(&root, 16_384, threads).unwrap_err().to_string();
        assert!(refused.contains("zz-pipe is a FIFO"), "{refused}");
    }
    fs::remove_file(root.join("zz-pipe")).unwrap();
    fs::write(root.join("zz-README"), b"x").unwrap();
    fs::write(root.join("zz-readme"), b"y").unwrap();
    let refused = build(&root, 16_384, 2).unwrap_err().to_string();
    assert!(refused.contains("case-insensitive"), "{refused}");
    // Nothing to hash: no files at all is refused, empty files only make no pieces.
    let empty = scratch.0.join("empty");
    fs::create_dir_all(empty.join("d/e")).unwrap();
    let refused = build(&empty, 16_384, 2).unwrap_err().to_string();
    assert!(refused.contains("holds no files"), "{refused}");
    fs::write(empty.join("d/e/nothing"), b"").unwrap();
    fs::write(empty.join("zero"), b"").unwrap();
    let built = build(&empty, 16_384, 3).unwrap();
    assert_eq!(built.manifest, serial_reference(&empty, 16_384).manifest);
    assert_eq!(built.manifest.piece_count(), 0);
}

#[test]
fn statx_and_an_o_path_handle_say_the_same_of_every_kind_of_entry() {
    let scratch = Scratch::new("entry");
    let root = scratch.0.join("top");
    sample_tree(&root);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("pipe"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let dir = Root::open(&root).unwrap();
    let names = [
        "a.txt",
        "run.sh",
        "data",
        "outside",
        "inside",
        "pipe",
        "empty-dir",
    ];
    for name in names {
        let by_statx = Entry::at(dir.fd(), name).unwrap();
        assert_eq!(by_statx, Entry::opened(dir.fd(), name).unwrap(), "{name}");
    }
    let run = Entry::at(dir.fd(), "run.sh").unwrap();
    assert!(run.executable && run.file_type.is_file());
    assert_eq!(Entry::at(dir.fd(), "pipe").unwrap().kind(), "a FIFO");
    assert_eq!(
        Entry::at(dir.fd(), "inside").unwrap().kind(),
        "a symbolic link"
    );
    // The stamp statx gives is the one the open file's metadata gives, as hashing checks.
    let (_, stamp) = dir.open_file_stamped(dir.fd(), &["a.txt".into()]).unwrap();
    assert_eq!(Entry::at(dir.fd(), "a.txt").unwrap().stamp, stamp);
}
