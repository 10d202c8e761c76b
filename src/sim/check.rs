//! The simulation's checkers. Each returns `Err(what is wrong)`; the step loop turns the
//! first one into a failure that names the seed.
//!
//! * **Claims.** When a node says `downloaded NAME ...`, `DIR/NAME` must be byte-identical
//!   to an original written with [`super::Sim::write_file`]; every claim is checked again
//!   from time to time and at the end of each run, so a file that changes afterwards is
//!   caught too.
//! * **Nothing published early.** While a node downloads NAME and has not said it finished,
//!   `DIR/NAME` must not exist: the final name appears only once every chunk verified.
//! * **Bounds.** No queue or table of a core is longer than its named `*_MAX` limit.

use super::Sim;
use crate::storage::{MemoryStorage, Storage};
use std::collections::BTreeMap;

/// The contents each name may have: every version written by the test.
#[derive(Default)]
pub(super) struct Originals {
    versions: BTreeMap<String, Vec<Vec<u8>>>,
}

impl Originals {
    pub fn add(&mut self, name: &str, bytes: &[u8]) {
        let versions = self.versions.entry(name.to_string()).or_default();
        if !versions.iter().any(|v| v == bytes) {
            versions.push(bytes.to_vec());
        }
    }

    /// `DIR/NAME` exists and equals one of the versions of NAME.
    pub fn check_claim(&self, storage: &MemoryStorage, name: &str) -> Result<(), String> {
        let path = storage.files_dir().join(name);
        let got = storage
            .file(name)
            .ok_or_else(|| format!("claimed complete, but {} is missing", path.display()))?;
        let versions = self
            .versions
            .get(name)
            .ok_or_else(|| format!("claimed {name} complete, but no original of it exists"))?;
        if versions.contains(&got) {
            return Ok(());
        }
        let first_difference = versions.first().map_or(0, |v| {
            v.iter().zip(&got).take_while(|(a, b)| a == b).count()
        });
        Err(format!(
            "claimed complete, but {} ({} bytes) differs from the original ({} bytes) at byte {first_difference}",
            path.display(),
            got.len(),
            versions.first().map_or(0, Vec::len)
        ))
    }
}

/// The name in a `downloaded NAME (INFO HASH) ...` line.
pub(super) fn downloaded_name(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("downloaded ")?;
    // The name may hold " (", the info hash cannot: take the split before "(40 hex digits)".
    rest.match_indices(" (")
        .map(|(at, _)| at)
        .find(|&at| {
            let hash = &rest[at + 2..];
            hash.len() > 40
                && hash.as_bytes()[40] == b')'
                && hash.as_bytes()[..40].iter().all(u8::is_ascii_hexdigit)
        })
        .map(|at| &rest[..at])
}

/// A download that has not said it finished may have published its file only whole: a
/// hasher thread publishes it once every chunk verified, and the node says so when the
/// thread answers. Anything else under its name is a file published early.
pub(super) fn check_unpublished(
    originals: &Originals,
    storage: &MemoryStorage,
    name: &str,
) -> Result<(), String> {
    if !storage.name_taken(name) {
        return Ok(());
    }
    originals.check_claim(storage, name).map_err(|error| {
        format!("the node has not said it downloaded {name}, and its file is not whole: {error}")
    })
}

/// Every `(name, length, limit)` has `length <= limit`.
pub(super) fn check_bounds(who: &str, lens: &[(&'static str, usize, usize)]) -> Result<(), String> {
    match lens.iter().find(|(_, len, max)| len > max) {
        None => Ok(()),
        Some((name, len, max)) => Err(format!("{who}: {name} holds {len}, past its limit {max}")),
    }
}

impl Sim {
    /// Records the first thing a checker found wrong.
    pub(super) fn violated(&mut self, what: String) {
        if self.violation.is_none() {
            self.violation = Some(what);
        }
    }

    /// "Nothing published early" for every node; with `claims`, every completed file is
    /// read again and compared with its original.
    pub(super) fn check_files(&mut self, claims: bool) {
        let mut found = None;
        for sim_node in &self.nodes {
            for name in sim_node.downloads.keys() {
                let result = if sim_node.completed.contains(name) {
                    if claims {
                        self.originals.check_claim(&sim_node.storage, name)
                    } else {
                        Ok(())
                    }
                } else if sim_node.shares.contains(name) {
                    Ok(())
                } else {
                    check_unpublished(&self.originals, &sim_node.storage, name)
                };
                if let Err(error) = result {
                    found.get_or_insert(format!("node {}: {error}", sim_node.config.node_id));
                }
            }
        }
        if let Some(what) = found {
            self.violated(what);
        }
    }

    /// Node `index` has published no file it has not said it downloaded, but whole ones
    /// whose publishing it has not answered yet: run at every drain of a node, so that the
    /// moment a file appears is never missed.
    pub(super) fn check_node_unpublished(&mut self, index: usize) {
        let sim_node = &self.nodes[index];
        let found = sim_node
            .downloads
            .keys()
            .filter(|name| !sim_node.completed.contains(*name) && !sim_node.shares.contains(*name))
            .find_map(|name| check_unpublished(&self.originals, &sim_node.storage, name).err());
        if let Some(error) = found {
            let node_id = sim_node.config.node_id;
            self.violated(format!("node {node_id}: {error}"));
        }
    }

    /// The tracker's queues and tables are within their limits.
    pub(super) fn check_tracker_bounds(&mut self) {
        if let Err(what) = check_bounds("tracker", &self.tracker.debug_queue_lens()) {
            self.violated(what);
        }
    }

    /// Node `index`'s queues and tables are within their limits.
    pub(super) fn check_node_bounds(&mut self, index: usize) {
        let sim_node = &self.nodes[index];
        let who = format!("node {}", sim_node.config.node_id);
        if let Err(what) = check_bounds(&who, &sim_node.node.inspect().queue_lens()) {
            self.violated(what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloaded_name_takes_the_name_before_the_info_hash() {
        let hash = "0123456789abcdef0123456789abcdef01234567";
        let line = format!("downloaded a (b).txt ({hash}) 10 bytes in 0.1 s from node 1");
        assert_eq!(downloaded_name(&line), Some("a (b).txt"));
        assert_eq!(downloaded_name("download a failed: x"), None);
        assert_eq!(downloaded_name("downloaded a (short) 1 bytes"), None);
    }

    #[test]
    fn bounds_fail_past_the_limit() {
        assert!(check_bounds("n", &[("q", 3, 3)]).is_ok());
        assert!(check_bounds("n", &[("q", 4, 3)]).is_err());
    }
}
