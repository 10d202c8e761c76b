//! Directories other than the node's own that some of its files live in: a download's
//! `--output DIR`.
//!
//! Each such directory is opened as a node's directory is ([`StateDir::open_exclusive`]):
//! by handle, its own `DIR/.torrent/` state directory (so a download's partial data, its
//! resume state and its final rename stay on the target's file system), and its lock (so
//! two processes never write into one, and a running node's directory is refused). A name
//! placed there sends every operation on that name (its partial state, its publishing, its
//! stamp and its hashing when it changes) to that directory's storage; the node's own
//! storage answers for every other name. Places last as long as the process: a download
//! resumed after a restart names its `--output` again.

use super::StateDir;
use crate::wire::Hash;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;

/// Most output directories one node writes into (each holds a lock and a few handles).
pub const PLACES_MAX: usize = 64;

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Places {
    /// Output directories, each with the path it was named by, opened and locked once.
    dirs: Vec<(PathBuf, StateDir)>,
    /// The directory (its index) each placed name lives in.
    names: BTreeMap<String, usize>,
    /// The directory each download placed there keeps its partial state in, by info hash.
    partials: BTreeMap<Hash, usize>,
}

impl StateDir {
    fn places(&self) -> std::sync::MutexGuard<'_, Places> {
        self.dirs
            .places
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Files called `name` live in `dir` from now on (created if missing, locked as a
    /// node's directory is). Returns the directory as opened.
    pub(super) fn place_name(&self, name: &str, dir: &Path) -> io::Result<PathBuf> {
        let canonical_files = std::fs::canonicalize(self.dirs.files.path())?;
        let mut places = self.places();
        // The same directory, however it was written, is opened once.
        std::fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
        let canonical = std::fs::canonicalize(dir).map_err(|e| at(dir, e))?;
        if canonical == canonical_files {
            // The node's own directory: nothing to place.
            places.names.remove(name);
            return Ok(canonical);
        }
        let index = match places.dirs.iter().position(|(path, _)| *path == canonical) {
            Some(index) => index,
            None => {
                if places.dirs.len() >= PLACES_MAX {
                    return Err(io::Error::other(format!(
                        "this node writes into {PLACES_MAX} output directories already"
                    )));
                }
                let opened = StateDir::open_exclusive(&canonical)?;
                places.dirs.push((canonical.clone(), opened));
                places.dirs.len() - 1
            }
        };
        places.names.insert(name.to_owned(), index);
        Ok(canonical)
    }

    /// The storage `name` lives in, when it is placed elsewhere than the node's directory.
    pub(super) fn place_of_name(&self, name: &str) -> Option<StateDir> {
        let places = self.places();
        let index = *places.names.get(name)?;
        Some(places.dirs[index].1.clone())
    }

    /// The storage the download of `info_hash` keeps its partial state in, when elsewhere:
    /// where it was opened, or else the first output directory that holds it.
    pub(super) fn place_of_partial(&self, info_hash: &Hash) -> Option<StateDir> {
        let (known, dirs) = {
            let places = self.places();
            let known = places
                .partials
                .get(info_hash)
                .map(|&i| places.dirs[i].1.clone());
            let dirs: Vec<StateDir> = places.dirs.iter().map(|(_, d)| d.clone()).collect();
            (known, dirs)
        };
        known.or_else(|| {
            dirs.into_iter()
                .find(|dir| super::super::Storage::partial_summary(dir, info_hash).is_some())
        })
    }

    /// The download of `info_hash`, of a placed name, keeps its partial state there.
    pub(super) fn note_placed_partial(&self, info_hash: Hash, name: &str) {
        let mut places = self.places();
        if let Some(&index) = places.names.get(name) {
            places.partials.insert(info_hash, index);
        }
    }

    /// Every output directory's storage.
    pub(super) fn placed_dirs(&self) -> Vec<StateDir> {
        self.places()
            .dirs
            .iter()
            .map(|(_, dir)| dir.clone())
            .collect()
    }
}

fn at(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}
