//! Multi-file content (issue 17) against a real BitTorrent implementation: libtorrent
//! (Debian's `python3-libtorrent`, run by `/usr/bin/python3`).
//!
//! * Given our `.torrent` of a tree and the tree itself, libtorrent checks every piece as
//!   valid (and, once a byte is changed, exactly the pieces over that byte as invalid).
//! * A `.torrent` of the same tree made by libtorrent (its default, a hybrid v1+v2 torrent
//!   with pad files, and a v1-only one) is read by ours to the info hash libtorrent reports
//!   and the same file list, and our hashing of the tree along that list gives its pieces.
//!
//! Skipped, with a visible message, when the package is missing (`apt-get install -y
//! python3-libtorrent`). No network: libtorrent listens on 127.0.0.1 port 0 and has no
//! tracker to reach. Each run of Python is bounded in time.

mod common;

use common::{
    LINE_TIMEOUT, PYTHON, Scratch, downloader, libtorrent_available, node, random_bytes,
    spawn_command, tracker, tree_listing,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use torrent::metainfo::{parse_tree_torrent, tree_torrent_file};
use torrent::tree::hashing::hash_pieces;
use torrent::tree::walk::{Root, build};
use torrent::wire;

/// How long one run of libtorrent may take: it checks a few pieces, on a loaded machine.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(60);
/// Small pieces, so that the small tree below has pieces that span files.
const PIECE_BYTES: u32 = 16_384;

/// Adds a torrent whose data is at the save path, rechecks it, waits for the check to end,
/// and prints one JSON line: whether it ended, libtorrent's info hash, each piece's
/// validity, and the files as libtorrent reads them.
const CHECK: &str = r#"
import sys, time, json, libtorrent as lt
torrent_path, save_path = sys.argv[1], sys.argv[2]
s = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False,
                'enable_upnp': False, 'enable_natpmp': False,
                'alert_mask': lt.alert.category_t.status_notification
                              | lt.alert.category_t.error_notification})
ti = lt.torrent_info(torrent_path)
h = s.add_torrent({'ti': ti, 'save_path': save_path})
h.force_recheck()
deadline = time.time() + 40
checked = False
while time.time() < deadline and not checked:
    s.wait_for_alert(500)
    for a in s.pop_alerts():
        if isinstance(a, lt.torrent_checked_alert):
            checked = True
        elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
            print('ERROR', a.message(), file=sys.stderr, flush=True)
st = h.status()
fs = ti.files()
files = [[fs.file_path(i), fs.file_size(i), bool(fs.file_flags(i) & lt.file_storage.flag_executable)]
         for i in range(fs.num_files())]
print('RESULT ' + json.dumps({'checked': checked, 'info_hash': str(ti.info_hashes().v1),
                              'pieces': [bool(p) for p in st.pieces], 'files': files}), flush=True)
"#;

/// Makes a hybrid (libtorrent's default) and a v1-only `.torrent` of the tree at argv[1]
/// (its parent as the base), writes them to argv[2] and argv[3], and prints one JSON line
/// for each: libtorrent's info hash and its file list, pad files marked.
const CREATE: &str = r#"
import sys, os, json, libtorrent as lt
tree = sys.argv[1]
for flags, out in [(0, sys.argv[2]), (lt.create_torrent.v1_only, sys.argv[3])]:
    fs = lt.file_storage()
    lt.add_files(fs, tree)
    ct = lt.create_torrent(fs, 16384, flags=flags)
    lt.set_piece_hashes(ct, os.path.dirname(tree))
    data = lt.bencode(ct.generate())
    open(out, 'wb').write(data)
    ti = lt.torrent_info(data)
    f = ti.files()
    files = [[f.file_path(i).split('/', 1)[1], f.file_size(i),
              bool(f.file_flags(i) & lt.file_storage.flag_pad_file),
              bool(f.file_flags(i) & lt.file_storage.flag_executable)]
             for i in range(f.num_files())]
    print('CREATED ' + json.dumps({'info_hash': str(ti.info_hashes().v1), 'name': ti.name(),
                                   'files': files}), flush=True)
"#;

/// Runs a script with arguments, bounded in time, and returns the JSON of each of its
/// stdout lines that start with `prefix`.
fn python(script: &str, args: &[&Path], prefix: &str) -> Vec<serde_json::Value> {
    let mut command = Command::new(PYTHON);
    command.arg("-c").arg(script).args(args);
    let mut process = spawn_command("python3 (libtorrent)", Path::new("/"), command);
    let code = process.expect_exit(PYTHON_TIMEOUT);
    assert_eq!(
        code,
        0,
        "libtorrent's script failed\n{}",
        process.describe()
    );
    process
        .stdout_lines()
        .iter()
        .filter_map(|line| line.strip_prefix(prefix))
        .map(|json| serde_json::from_str(json).expect("the script prints JSON"))
        .collect()
}

/// A small tree whose pieces of 16 KiB span files: an empty file, a nested directory, an
/// executable, `.gitattributes`, a unicode name, a file of several pieces.
fn sample_tree(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("data/deep")).unwrap();
    std::fs::write(root.join(".gitattributes"), b"*.bin filter=lfs diff=lfs\n").unwrap();
    std::fs::write(root.join("a.txt"), random_bytes(1, 20_000)).unwrap();
    std::fs::write(root.join("caf\u{e9} \u{1f600}.txt"), b"unicode").unwrap();
    std::fs::write(root.join("data/empty"), b"").unwrap();
    std::fs::write(root.join("data/deep/x.bin"), random_bytes(2, 70_001)).unwrap();
    std::fs::write(root.join("run.sh"), b"#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn libtorrent_finds_every_piece_of_our_tree_valid() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED libtorrent_finds_every_piece_of_our_tree_valid: {PYTHON} cannot import \
             libtorrent (apt install python3-libtorrent)"
        );
        return;
    }
    let scratch = Scratch::new("tree-ours");
    let tree = scratch.root.join("top");
    sample_tree(&tree);
    let built = build(&tree, PIECE_BYTES, 2).unwrap();
    let manifest = &built.manifest;
    assert!(manifest.piece_count() >= 6, "pieces that span files");
    let torrent = scratch.root.join("top.torrent");
    std::fs::write(&torrent, tree_torrent_file(manifest, None)).unwrap();

    let results = python(CHECK, &[&torrent, &scratch.root], "RESULT ");
    let result = &results[0];
    assert_eq!(result["checked"], true, "{result}");
    assert_eq!(result["info_hash"], wire::hex(&manifest.info_hash()));
    let valid = vec![serde_json::Value::Bool(true); manifest.piece_count() as usize];
    assert_eq!(result["pieces"].as_array().unwrap(), &valid, "{result}");
    // libtorrent reads the same files, in the same order, with the executable bit.
    let ours: Vec<serde_json::Value> = manifest
        .files()
        .iter()
        .map(|file| {
            let path = format!("top/{}", file.path().join("/"));
            serde_json::json!([path, file.length_bytes(), file.is_executable()])
        })
        .collect();
    assert_eq!(result["files"].as_array().unwrap(), &ours);

    // The check can fail: one byte changed spoils exactly the pieces over it.
    let changed_at = 50_000u64;
    let x_bin = tree.join("data/deep/x.bin");
    let mut bytes = std::fs::read(&x_bin).unwrap();
    let x_bin_index = manifest
        .files()
        .iter()
        .position(|file| file.path().join("/") == "data/deep/x.bin")
        .unwrap();
    let x_bin_start = manifest.layout().file_range(x_bin_index).start;
    bytes[(changed_at - x_bin_start) as usize] ^= 0xff;
    std::fs::write(&x_bin, bytes).unwrap();
    let results = python(CHECK, &[&torrent, &scratch.root], "RESULT ");
    let spoiled = (changed_at / u64::from(PIECE_BYTES)) as usize;
    let mut expected = valid;
    expected[spoiled] = serde_json::Value::Bool(false);
    assert_eq!(results[0]["pieces"].as_array().unwrap(), &expected);
}

#[test]
fn torrents_libtorrent_makes_of_a_tree_read_as_libtorrent_reads_them() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED torrents_libtorrent_makes_of_a_tree_read_as_libtorrent_reads_them: {PYTHON} \
             cannot import libtorrent (apt install python3-libtorrent)"
        );
        return;
    }
    let scratch = Scratch::new("tree-theirs");
    let tree = scratch.root.join("top");
    sample_tree(&tree);
    let hybrid = scratch.root.join("hybrid.torrent");
    let v1_only = scratch.root.join("v1.torrent");
    let created = python(CREATE, &[&tree, &hybrid, &v1_only], "CREATED ");
    assert_eq!(created.len(), 2);
    let root = Root::open(&tree).unwrap();
    for (path, theirs) in [&hybrid, &v1_only].into_iter().zip(&created) {
        let read = parse_tree_torrent(&std::fs::read(path).unwrap())
            .unwrap_or_else(|problem| panic!("{}: {problem}", path.display()));
        let manifest = &read.manifest;
        assert_eq!(theirs["info_hash"], wire::hex(&manifest.info_hash()));
        assert_eq!(theirs["name"], manifest.name());
        let ours: Vec<serde_json::Value> = manifest
            .files()
            .iter()
            .map(|file| {
                serde_json::json!([
                    file.path().join("/"),
                    file.length_bytes(),
                    file.is_pad(),
                    file.is_executable()
                ])
            })
            .collect();
        assert_eq!(
            theirs["files"].as_array().unwrap(),
            &ours,
            "{}",
            path.display()
        );
        // Our hashing along their list (pad files as zeros, their order) gives their pieces.
        let hashes = hash_pieces(&root, manifest.files(), None, manifest.layout(), 2).unwrap();
        assert_eq!(hashes, manifest.hashes(), "{}", path.display());
    }
    // The hybrid one pads (v2 aligns every file to a piece); the v1-only one does not.
    let pads = |index: usize| created[index]["files"].as_array().unwrap().iter();
    assert!(pads(0).any(|file| file[2] == true));
    assert!(pads(1).all(|file| file[2] == false));
}

#[test]
fn libtorrent_finds_every_piece_of_a_tree_a_node_exports_valid() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED libtorrent_finds_every_piece_of_a_tree_a_node_exports_valid: {PYTHON} \
             cannot import libtorrent (apt install python3-libtorrent)"
        );
        return;
    }
    let scratch = Scratch::new("tree-export");
    let dir = scratch.node_dir(1);
    sample_tree(&dir.join("top"));
    let tracker = tracker(&scratch);
    let mut node = node(
        &scratch,
        1,
        tracker.addr,
        &["--send", "top", "--export", "top", "--chunk-size", "16K"],
    );
    let exported = node.proc.expect_line("exported top to ");
    let torrent = dir.join("top.torrent");
    let read = parse_tree_torrent(&std::fs::read(&torrent).unwrap()).unwrap();
    assert!(
        exported.contains(&wire::hex(&read.manifest.info_hash())),
        "{exported}"
    );
    let results = python(CHECK, &[&torrent, &dir], "RESULT ");
    let result = &results[0];
    assert_eq!(result["checked"], true, "{result}");
    assert_eq!(result["info_hash"], wire::hex(&read.manifest.info_hash()));
    let pieces = result["pieces"].as_array().unwrap();
    assert_eq!(pieces.len(), read.manifest.piece_count() as usize);
    assert!(pieces.iter().all(|valid| valid == true), "{result}");
}

#[test]
fn a_tree_shared_under_a_torrent_libtorrent_made_is_downloaded_by_our_nodes() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED a_tree_shared_under_a_torrent_libtorrent_made_is_downloaded_by_our_nodes: \
             {PYTHON} cannot import libtorrent (apt install python3-libtorrent)"
        );
        return;
    }
    let scratch = Scratch::new("tree-theirs-shared");
    let tree = scratch.node_dir(1).join("top");
    sample_tree(&tree);
    // libtorrent's default: a hybrid v1+v2 torrent, with pad files and keys beyond ours.
    let hybrid = scratch.root.join("hybrid.torrent");
    let v1_only = scratch.root.join("v1.torrent");
    let created = python(CREATE, &[&tree, &hybrid, &v1_only], "CREATED ");
    let their_hash = created[0]["info_hash"].as_str().unwrap().to_string();
    let tracker = tracker(&scratch);
    let mut holder = node(&scratch, 1, tracker.addr, &[]);
    holder
        .proc
        .send_line(&format!("send top --torrent {}", hybrid.display()));
    let sharing = holder.proc.expect_line("sharing top (");
    assert!(
        sharing.contains(&their_hash),
        "{sharing} (libtorrent: {their_hash})"
    );
    // Found by name through our tracker, and by the .torrent itself.
    downloader(&scratch, 2, tracker.addr, "top", &[]).expect_downloaded("top");
    assert_eq!(
        tree_listing(&scratch.node_dir(2).join("top")),
        tree_listing(&tree)
    );
    let by_torrent = hybrid.display().to_string();
    downloader(&scratch, 3, tracker.addr, &by_torrent, &[]).expect_downloaded("top");
    assert_eq!(
        tree_listing(&scratch.node_dir(3).join("top")),
        tree_listing(&tree)
    );
    // A tree that no longer matches the description is refused, naming the piece.
    std::fs::write(tree.join("a.txt"), random_bytes(5, 20_000)).unwrap();
    holder.proc.send_line("unshare top");
    holder
        .proc
        .send_line(&format!("send top --torrent {}", hybrid.display()));
    let refused = holder
        .proc
        .wait_line(
            |line| line.contains("does not match the .torrent"),
            LINE_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        refused.contains(": piece ") && refused.contains(" differs"),
        "{refused}"
    );
}
