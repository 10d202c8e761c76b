//! `list`: one page of what the tracker offers, in the order of `wire/list.rs` (by name,
//! then by info hash), from a cursor.
//!
//! A page costs the tracker a seek in its name index and at most one page of entries (each
//! name's versions, at most `VERSIONS_PER_NAME_MAX`, sorted on the way), whatever the size
//! of the registry.

use super::File;
use crate::wire::{self, Hash};
use std::collections::BTreeMap;
use std::ops::Bound;

/// One page, ready to encode.
pub(super) struct Page {
    pub(super) records: Vec<wire::ListRecord>,
    /// The records' names, one after another.
    pub(super) names: String,
    /// Entries follow the last one listed.
    pub(super) more: bool,
}

/// Where a page starts: after (or, when `inclusive`, at) the entry (`name`, `info_hash`).
pub(super) struct Cursor<'a> {
    pub(super) name: &'a str,
    pub(super) info_hash: Hash,
    pub(super) inclusive: bool,
}

impl Cursor<'_> {
    /// Whether the entry (`name`, `info_hash`) belongs on a page that starts here.
    fn admits(&self, name: &str, info_hash: &Hash) -> bool {
        let key = (name.as_bytes(), info_hash);
        let cursor = (self.name.as_bytes(), &self.info_hash);
        key > cursor || (self.inclusive && key == cursor)
    }
}

/// The page that starts at `cursor`: at most `entries_max` entries (0: [`wire::LIST_ENTRIES_MAX`])
/// whose records and names take at most `room_bytes`.
pub(super) fn page(
    names: &BTreeMap<String, Vec<Hash>>,
    files: &BTreeMap<Hash, File>,
    cursor: &Cursor<'_>,
    entries_max: usize,
    room_bytes: usize,
) -> Page {
    let entries_max = match entries_max {
        0 => wire::LIST_ENTRIES_MAX,
        n => n.min(wire::LIST_ENTRIES_MAX),
    };
    let mut page = Page {
        records: Vec::new(),
        names: String::new(),
        more: false,
    };
    let mut used_bytes = 0;
    let from = (Bound::Included(cursor.name), Bound::Unbounded);
    'names: for (name, hashes) in names.range::<str, _>(from) {
        let mut hashes: Vec<&Hash> = hashes.iter().collect();
        hashes.sort_unstable();
        for info_hash in hashes {
            if !cursor.admits(name, info_hash) {
                continue;
            }
            let Some(file) = files.get(info_hash) else {
                continue;
            };
            let entry_bytes = size_of::<wire::ListRecord>() + name.len();
            if page.records.len() >= entries_max || used_bytes + entry_bytes > room_bytes {
                page.more = true;
                break 'names;
            }
            used_bytes += entry_bytes;
            let chunk_count = wire::chunk_count(file.file_bytes, file.chunk_bytes);
            let complete = file.holders.values().filter(|held| **held >= chunk_count);
            page.records.push(wire::list_record(
                *info_hash,
                file.file_bytes,
                file.chunk_bytes,
                // Fit: at most NODES_MAX holders.
                file.holders.len() as u32,
                complete.count() as u32,
                name,
            ));
            page.names.push_str(name);
        }
    }
    page
}
