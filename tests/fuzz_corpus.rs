//! Replays the committed fuzz corpora through the fuzz targets' own checks, so that
//! `cargo test` keeps every past finding and every seed datagram passing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use torrent::{fuzz_checks, wire};

/// Most files a curated corpus holds (`fuzz/.gitignore` keeps generated entries out).
const CORPUS_FILES_MAX: usize = 40;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    assert!(
        files.len() <= CORPUS_FILES_MAX,
        "{} holds {} files",
        dir.display(),
        files.len()
    );
    files
}

#[test]
fn wire_decode_corpus() {
    let mut kinds = BTreeSet::new();
    let mut refused = 0;
    for (path, bytes) in corpus("wire_decode") {
        eprintln!("{}", path.display());
        fuzz_checks::check_datagram(&bytes);
        match wire::decode(&bytes) {
            Ok(message) => _ = kinds.insert(message.kind() as u8),
            Err(_) => refused += 1,
        }
    }
    // The corpus seeds the fuzzer with every kind, and with refusals.
    let known = (0..=u8::MAX).filter(|byte| wire::Kind::from_repr(*byte).is_some());
    assert_eq!(kinds, known.collect::<BTreeSet<_>>());
    assert!(refused > 0);
}

#[test]
fn console_parse_corpus() {
    let mut accepted = 0;
    for (path, bytes) in corpus("console_parse") {
        eprintln!("{}", path.display());
        fuzz_checks::check_console_line(&bytes);
        let line = std::str::from_utf8(&bytes).unwrap();
        accepted += usize::from(torrent::console::parse(line).is_ok());
    }
    assert!(accepted > 0);
}

#[test]
fn control_request_corpus() {
    let mut accepted = 0;
    for (path, bytes) in corpus("control_request") {
        eprintln!("{}", path.display());
        fuzz_checks::check_control_request(&bytes);
        let line = std::str::from_utf8(&bytes).unwrap();
        accepted += usize::from(torrent::control::parse_request(line).is_ok());
    }
    assert!(accepted > 0);
}

#[test]
fn tracker_datagram_corpus() {
    for (path, bytes) in corpus("tracker_datagram") {
        eprintln!("{}", path.display());
        fuzz_checks::check_tracker_datagram(&bytes);
    }
}

#[test]
fn bencode_corpus() {
    let mut decoded = 0;
    for (path, bytes) in corpus("bencode") {
        eprintln!("{}", path.display());
        fuzz_checks::check_bencode(&bytes);
        decoded += usize::from(torrent::bencode::decode(&bytes).is_ok());
    }
    assert!(decoded >= 2, "the corpus should hold valid bencode too");
}

#[test]
fn standard_input_corpus() {
    let mut torrents = 0;
    let mut magnets = 0;
    let mut replies = 0;
    for (path, bytes) in corpus("standard_input") {
        eprintln!("{}", path.display());
        fuzz_checks::check_standard_input(&bytes);
        let Some((&which, input)) = bytes.split_first() else {
            continue;
        };
        match which % 3 {
            0 => torrents += usize::from(torrent::metainfo::parse_torrent(input).is_ok()),
            1 => {
                let link = std::str::from_utf8(input).unwrap();
                magnets += usize::from(torrent::metainfo::parse_magnet(link).is_ok());
            }
            _ => replies += usize::from(torrent::bep15::decode_response(input, false).is_ok()),
        }
    }
    // The seeds reach past the first checks: some of each are accepted (the corpus also
    // holds refusals: a `../` name, an extra info key, a bad escape, a short reply).
    assert_eq!((torrents, magnets, replies), (1, 1, 4));
}

#[test]
fn download_messages_corpus() {
    let mut published = 0;
    for (path, bytes) in corpus("download_messages") {
        eprintln!("{}", path.display());
        published += usize::from(fuzz_checks::check_download_messages(&bytes));
    }
    // The seeds reach the end (honest holders, a corrupted chunk, lost pieces) and stop
    // short of it (forged pieces, a silent swarm).
    assert_eq!(published, 6);
}

#[test]
fn tree_torrent_corpus() {
    // Each hostile seed is refused for the reason it was written for, not an earlier one.
    let reasons = [
        ("absolute", "empty"),
        ("case-collision", "case-insensitive"),
        ("control-in-name", "control character"),
        ("count-bomb", "more than 65536 files"),
        ("depth-bomb", "components deep"),
        ("dot-component", "'.' or '..'"),
        ("duplicate-paths", "case-insensitive"),
        ("file-and-directory", "a file and a directory"),
        ("long-component", "longer than 255"),
        ("long-path", "longer than 1,024"),
        ("negative-length", "'length'"),
        ("no-files", "no files"),
        ("not-utf8", "not UTF-8"),
        ("nul-in-name", "control character"),
        ("odd-piece-length", "not a shape"),
        ("overflowing-lengths", "2^64"),
        ("single-file", "single-file"),
        ("symlink-entry", "symbolic link"),
        ("top-name-hidden", "starts with '.'"),
        ("top-name-traversal", "top-level name"),
        ("traversal", "'.' or '..'"),
        ("traversal-backslash", "separator"),
        ("traversal-in-component", "separator"),
        ("wrong-piece-count", "piece hashes"),
    ];
    let mut accepted = BTreeSet::new();
    let mut refused = BTreeSet::new();
    for (path, bytes) in corpus("tree_torrent") {
        eprintln!("{}", path.display());
        fuzz_checks::check_tree_torrent(&bytes);
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        match torrent::metainfo::parse_tree_torrent(&bytes) {
            Ok(_) => _ = accepted.insert(name),
            Err(problem) => {
                let (_, reason) = reasons
                    .iter()
                    .find(|(seed, _)| *seed == name)
                    .unwrap_or_else(|| panic!("{name} refused ({problem}) but not listed"));
                assert!(problem.contains(reason), "{name}: {problem}");
                refused.insert(name);
            }
        }
    }
    let valid = [
        "valid-libtorrent-hybrid",
        "valid-libtorrent-v1",
        "valid-ours",
        "valid-pads",
    ];
    assert_eq!(accepted, valid.map(String::from).into());
    assert_eq!(refused.len(), reasons.len());
}

#[test]
fn peer_wire_corpus() {
    let mut ids = BTreeSet::new();
    let mut handshakes = 0;
    let mut refusals = 0;
    let mut extension_payloads = 0;
    let mut leech_opened = 0;
    let mut leech_blocks = 0;
    for (path, bytes) in corpus("peer_wire") {
        eprintln!("{}", path.display());
        let seen = fuzz_checks::check_peer_wire(&bytes);
        let leech = fuzz_checks::check_peer_wire_leech(&bytes);
        leech_opened += usize::from(leech.opened);
        leech_blocks += leech.blocks;
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        // Each seed is read as its name says: refused, or read whole with no refusal.
        assert_eq!(
            seen.refusals > 0,
            name.starts_with("invalid-"),
            "{name}: {seen:?}"
        );
        handshakes += usize::from(seen.handshake);
        refusals += seen.refusals;
        extension_payloads += seen.extension_payloads;
        ids.extend(seen.messages);
    }
    // The seeds hold every message kind, the keep-alive, an id we do not know, handshakes
    // (ours, and libtorrent's replies as captured on loopback), and the extended payloads.
    let mut expected: BTreeSet<_> = torrent::peer_wire::Id::ALL
        .iter()
        .map(|id| Some(*id as u8))
        .collect();
    expected.extend([None, Some(21)]);
    assert!(
        ids.is_superset(&expected),
        "missing {:?}",
        expected.difference(&ids)
    );
    assert!(handshakes >= 2, "{handshakes}");
    assert!(refusals >= 10, "{refusals}");
    assert!(extension_payloads >= 6, "{extension_payloads}");
    // Our downloader's connection got past the handshake of the seeds that start with one.
    assert!(leech_opened >= 2, "{leech_opened}");
    // And was handed blocks it asked for (`kind-leech-blocks`).
    assert!(leech_blocks >= 2, "{leech_blocks}");
}
