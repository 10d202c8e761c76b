//! The tracker's database: its registry as two human-readable JSON files, `nodes.json` and
//! `files.json`, in the tracker database folder (the original's `tracker_db/`).
//!
//! The tracker core never touches the disk: it hands out a [`Snapshot`] when its registry
//! changed, and the reactor writes it with [`save`]. At start the reactor reads one with
//! [`load`] and gives it to `Tracker::from_snapshot`. The files may have been edited by hand,
//! truncated by a crash of an older build or written by someone else, so [`load`] checks every
//! entry and skips the ones that do not make sense instead of trusting them.

use crate::wire::{self, Hash};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

pub const NODES_FILE: &str = "nodes.json";
pub const FILES_FILE: &str = "files.json";

/// The tracker's registry, as stored. Last-seen times are not stored: a restarted tracker
/// counts every restored node as seen at start, so nodes that are really gone expire normally.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub nodes: Vec<NodeEntry>,
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub node_id: u32,
    /// As `SocketAddr` prints it: `127.0.0.1:4000` or `[::1]:4000`.
    pub addr: String,
    /// 16 lower-case hex digits, never zero.
    pub token: String,
    pub upload_credit_bytes: u64,
    /// The node has used its token at least once, so it surely received it. Until then a
    /// node that lost the reply registers again with no token and is sent the same one.
    /// Files written before this field existed count every token as confirmed.
    #[serde(default = "confirmed_by_default")]
    pub token_confirmed: bool,
}

fn confirmed_by_default() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// 40 lower-case hex digits.
    pub info_hash: String,
    pub name: String,
    pub file_bytes: u64,
    pub chunk_bytes: u32,
    pub holders: Vec<FileHolder>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHolder {
    pub node_id: u32,
    pub chunks_held: u32,
}

/// A token as stored: 16 hex digits, so that the file shows it whole and unambiguous.
pub fn token_to_text(token: u64) -> String {
    format!("{token:016x}")
}

/// The inverse of [`token_to_text`]; `None` for anything else, and for zero (which means "no
/// token yet" on the wire and so can never be a node's secret).
pub fn token_from_text(text: &str) -> Option<u64> {
    if text.len() != 16 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16)
        .ok()
        .filter(|token| *token != 0)
}

impl NodeEntry {
    /// The entry's address and token, when both make sense.
    pub fn parse(&self) -> Option<(SocketAddr, u64)> {
        self.check().ok()
    }

    /// The entry's address and token, or why the entry makes no sense.
    fn check(&self) -> Result<(SocketAddr, u64), String> {
        let addr = self
            .addr
            .parse()
            .map_err(|_| format!("address {:?} is not an ip:port", self.addr))?;
        let token = token_from_text(&self.token)
            .ok_or_else(|| format!("token {:?} is not 16 hex digits (and not zero)", self.token))?;
        Ok((addr, token))
    }
}

impl FileEntry {
    /// The entry's info hash, when it and the name and shape make sense.
    pub fn parse(&self) -> Option<Hash> {
        self.check().ok()
    }

    /// The entry's info hash, or why the entry makes no sense.
    fn check(&self) -> Result<Hash, String> {
        wire::check_name(self.name.as_bytes())
            .map_err(|_| "the name is not a safe file name".to_string())?;
        if !wire::shape_ok(self.file_bytes, self.chunk_bytes) {
            return Err(format!(
                "{} bytes in {}-byte chunks is not a possible file",
                self.file_bytes, self.chunk_bytes
            ));
        }
        wire::parse_hex(&self.info_hash)
            .ok_or_else(|| "the info hash is not 40 hex digits".to_string())
    }
}

/// Most reasons [`Snapshot::sanitize`] lists (the rest are counted), so that a hand-mangled
/// database of a million entries does not become a million log lines.
pub const SKIPPED_REASONS_MAX: usize = 32;

impl Snapshot {
    /// Keeps only the entries that make sense: parsable addresses, tokens, hashes, names and
    /// shapes, unique ids and hashes, holders that are restored nodes holding a possible number
    /// of chunks, and files that still have a holder. Returns how many entries were skipped
    /// and, for the first [`SKIPPED_REASONS_MAX`], which and why.
    pub fn sanitize(&mut self) -> (usize, Vec<String>) {
        let mut reasons = Vec::new();
        let mut skipped = 0;
        let mut skip = |why: String| {
            skipped += 1;
            if reasons.len() < SKIPPED_REASONS_MAX {
                reasons.push(why);
            }
        };
        let mut node_ids = std::collections::BTreeSet::new();
        self.nodes.retain(|node| {
            let why = match node.check() {
                Err(why) => why,
                Ok(_) if !node_ids.insert(node.node_id) => "its id appears twice".to_string(),
                Ok(_) => return true,
            };
            skip(format!("node {}: {why}", node.node_id));
            false
        });
        let mut hashes = std::collections::BTreeSet::new();
        self.files.retain(|file| {
            let why = match file.check() {
                Err(why) => why,
                Ok(hash) if !hashes.insert(hash) => "its info hash appears twice".to_string(),
                Ok(_) => return true,
            };
            skip(format!("file {:?} ({}): {why}", file.name, file.info_hash));
            false
        });
        for file in &mut self.files {
            let mut holder_ids = std::collections::BTreeSet::new();
            let chunk_count = wire::chunk_count(file.file_bytes, file.chunk_bytes);
            let (name, info_hash) = (&file.name, &file.info_hash);
            file.holders.retain(|holder| {
                let why = if !node_ids.contains(&holder.node_id) {
                    "not a node of nodes.json".to_string()
                } else if holder.chunks_held == 0 && chunk_count > 0 {
                    // Zero chunks held is a holder only of an empty file (which has none).
                    "holds no chunk".to_string()
                } else if holder.chunks_held > chunk_count {
                    format!("holds {} of {chunk_count} chunks", holder.chunks_held)
                } else if !holder_ids.insert(holder.node_id) {
                    "listed twice".to_string()
                } else {
                    return true;
                };
                skip(format!(
                    "holder {} of file {name:?} ({info_hash}): {why}",
                    holder.node_id
                ));
                false
            });
        }
        self.files.retain(|file| {
            if file.holders.is_empty() {
                skip(format!(
                    "file {:?} ({}): no holder left",
                    file.name, file.info_hash
                ));
            }
            !file.holders.is_empty()
        });
        (skipped, reasons)
    }
}

/// Writes `nodes.json` and `files.json` into `dir` (created if missing), each atomically: a
/// reader, or a tracker restarted after a crash, sees the old file or the new one, never half.
pub fn save(dir: &Path, snapshot: &Snapshot) -> io::Result<()> {
    // The node's directory handle does it: a temporary file no link can redirect, synced,
    // renamed over the old one, the directory synced.
    let dir = crate::storage::dir::Dir::open_root(dir)?;
    dir.write_atomically(NODES_FILE, &to_pretty_json(&snapshot.nodes)?)?;
    dir.write_atomically(FILES_FILE, &to_pretty_json(&snapshot.files)?)?;
    Ok(())
}

/// Checks that the registry can be saved in `dir`: creates, writes, fsyncs and removes a
/// probe file, so that a read-only or full folder is an error at start rather than a
/// registry silently lost at the next restart.
pub fn check_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(".write-probe.tmp");
    let result = File::create(&probe)
        .and_then(|mut file| {
            file.write_all(b"probe\n")?;
            file.sync_all()
        })
        .and_then(|()| fs::remove_file(&probe));
    if result.is_err() {
        let _ = fs::remove_file(&probe);
    }
    result
}

/// Reads the snapshot in `dir`: `None` when neither file exists (a first start), an error
/// naming the file when one cannot be read or is not JSON of the right shape. Entries that
/// parse but make no sense are skipped (see [`Snapshot::sanitize`]); entries of the wrong
/// JSON shape inside a well-formed list are skipped too.
pub fn load(dir: &Path) -> io::Result<Option<Snapshot>> {
    let nodes = read_list::<NodeEntry>(&dir.join(NODES_FILE))?;
    let files = read_list::<FileEntry>(&dir.join(FILES_FILE))?;
    if nodes.is_none() && files.is_none() {
        return Ok(None);
    }
    // One file without the other: a first save interrupted between the two renames. The
    // missing one is empty; sanitize drops holders whose nodes are missing.
    let mut snapshot = Snapshot {
        nodes: nodes.unwrap_or_default(),
        files: files.unwrap_or_default(),
    };
    let (skipped, reasons) = snapshot.sanitize();
    for reason in &reasons {
        log::warn!("{}: skipped {reason}", dir.display());
    }
    if skipped > reasons.len() {
        log::warn!(
            "{}: skipped {} more entries that make no sense",
            dir.display(),
            skipped - reasons.len()
        );
    }
    Ok(Some(snapshot))
}

fn to_pretty_json<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn corrupt(path: &Path, problem: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {problem}", path.display()),
    )
}

/// A JSON list of `T`, skipping elements that are not a `T`; `None` when the file is missing.
fn read_list<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<Vec<T>>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(io::Error::new(
                error.kind(),
                format!("{}: {error}", path.display()),
            ));
        }
    };
    let values: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|error| corrupt(path, format!("not a JSON list: {error}")))?;
    let mut list = Vec::with_capacity(values.len());
    let mut skipped = 0;
    for (index, value) in values.into_iter().enumerate() {
        match serde_json::from_value(value) {
            Ok(entry) => list.push(entry),
            Err(error) => {
                skipped += 1;
                if skipped <= SKIPPED_REASONS_MAX {
                    log::warn!(
                        "{}: skipped entry {index} (counting from 0): not of the right shape: {error}",
                        path.display()
                    );
                }
            }
        }
    }
    if skipped > SKIPPED_REASONS_MAX {
        log::warn!(
            "{}: skipped {} more entries not of the right shape",
            path.display(),
            skipped - SKIPPED_REASONS_MAX
        );
    }
    Ok(Some(list))
}
