//! Directories other than the node's own that some of its files live in: a download's
//! `--output DIR`, and a file or tree shared in place (`send /data/model`).
//!
//! Each such directory is opened as a node's directory is ([`StateDir::open_exclusive`]):
//! by handle, its own `DIR/.torrent/` state directory (so a download's partial data, its
//! resume state and its final rename stay on the target's file system), and its lock (so
//! two processes never write into one, and a running node's directory is refused). A name
//! placed there sends every operation on that name (its partial state, its publishing, its
//! stamp and its hashing when it changes) to that directory's storage; the node's own
//! storage answers for every other name. Places last as long as the process: a download
//! resumed after a restart names its `--output` again.
//!
//! A directory shared from in place is only read: its view ([`StateDir::open_shared_place`])
//! reads its files by handle, and keeps the cache of manifests and every other state in the
//! node's own directory; nothing is created there. What is shared in place is listed in the
//! node's state (`.torrent/shared-in-place`), and shared again at the next start.

use super::super::dir::Dir;
use super::StateDir;
use crate::wire::Hash;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::PoisonError;

/// Most output directories one node writes into (each holds a lock and a few handles).
pub const PLACES_MAX: usize = 64;
/// Most names placed outside the node's directory: as many as the files it may hold.
const NAMES_MAX: usize = crate::node::FILES_MAX;

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
        if places.names.len() >= NAMES_MAX && !places.names.contains_key(name) {
            return Err(too_many_names());
        }
        let output =
            |(path, place): &(PathBuf, StateDir)| *path == canonical && place.dirs._lock.is_some();
        let index = match places.dirs.iter().position(output) {
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

    /// The storage the download of `info_hash` keeps its partial state in, when elsewhere
    /// (where it was opened, or found by [`StateDir::find_placed_partial`]).
    pub(super) fn place_of_partial(&self, info_hash: &Hash) -> Option<StateDir> {
        let places = self.places();
        let index = *places.partials.get(info_hash)?;
        Some(places.dirs[index].1.clone())
    }

    /// The output directory that keeps a partial download of `info_hash` (left by an
    /// earlier run), remembered from then on. Reads each one's state: for a download's
    /// start, not for every chunk.
    pub(super) fn find_placed_partial(&self, info_hash: &Hash) -> Option<StateDir> {
        let outputs: Vec<(usize, StateDir)> = {
            let places = self.places();
            let all = places.dirs.iter().enumerate();
            let outputs = all.filter(|(_, (_, dir))| dir.dirs._lock.is_some());
            outputs.map(|(i, (_, dir))| (i, dir.clone())).collect()
        };
        let (index, dir) = outputs
            .into_iter()
            .find(|(_, dir)| super::super::Storage::partial_manifest(dir, info_hash).is_some())?;
        self.places().partials.insert(*info_hash, index);
        Some(dir)
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

fn too_many_names() -> io::Error {
    io::Error::other(format!(
        "this node keeps {NAMES_MAX} files outside its directory already"
    ))
}

fn at(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// The file in the node's state directory that lists what it shares in place, one absolute
/// path a line, so that a restart shares them again.
const SHARED_IN_PLACE_FILE: &str = "shared-in-place";

impl StateDir {
    /// A view of the directory `dir` for sharing files from it in place: its files read from
    /// there, by handle; nothing written there (the cache of manifests, and any state, stay
    /// in the node's own directory).
    fn open_shared_place(&self, dir: &Path) -> io::Result<StateDir> {
        Ok(StateDir {
            dirs: std::sync::Arc::new(super::Dirs {
                files: Dir::open_existing(dir)?,
                root: self.dirs.root.try_clone()?,
                manifests: self.dirs.manifests.try_clone()?,
                partial: self.dirs.partial.try_clone()?,
                _lock: None,
                places: Default::default(),
            }),
        })
    }

    /// Files called `name` are shared from `dir`, in place, from now on; the node's list of
    /// them (for its next start) gains `dir/name`.
    pub(super) fn place_shared(&self, name: &str, dir: &Path) -> io::Result<PathBuf> {
        let canonical = std::fs::canonicalize(dir).map_err(|e| at(dir, e))?;
        let path = canonical.join(name);
        let line = path.as_os_str().as_encoded_bytes();
        if line.contains(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: a path with a line break cannot be recorded",
                    path.display()
                ),
            ));
        }
        let mut places = self.places();
        if places.names.len() >= NAMES_MAX && !places.names.contains_key(name) {
            return Err(too_many_names());
        }
        let index = match places
            .dirs
            .iter()
            .position(|(at, place)| *at == canonical && place.dirs._lock.is_none())
        {
            Some(index) => index,
            None => {
                if places.dirs.len() >= PLACES_MAX {
                    return Err(io::Error::other(format!(
                        "this node uses {PLACES_MAX} directories besides its own already"
                    )));
                }
                let opened = self.open_shared_place(&canonical)?;
                places.dirs.push((canonical.clone(), opened));
                places.dirs.len() - 1
            }
        };
        places.names.insert(name.to_owned(), index);
        drop(places);
        let mut list = self.read_shared_in_place();
        if !list.contains(&path) {
            list.push(path.clone());
            self.save_shared_in_place(&list)?;
        }
        Ok(path)
    }

    /// `name` is no longer shared in place: forgotten, and left out of the list.
    pub(super) fn unplace_shared(&self, name: &str) -> io::Result<()> {
        let removed = {
            let mut places = self.places();
            let index = places.names.get(name).copied();
            match index {
                Some(index) if places.dirs[index].1.dirs._lock.is_none() => {
                    places.names.remove(name);
                    Some(places.dirs[index].0.join(name))
                }
                _ => None,
            }
        };
        let Some(path) = removed else {
            return Ok(());
        };
        let mut list = self.read_shared_in_place();
        list.retain(|kept| *kept != path);
        self.save_shared_in_place(&list)
    }

    /// What the node shares in place, as its list says (at most `FILES_MAX` paths).
    pub(super) fn read_shared_in_place(&self) -> Vec<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let limit = (crate::node::FILES_MAX * (libc::PATH_MAX as usize + 1)) as u64;
        let Ok(bytes) = self.dirs.root.read_bounded(SHARED_IN_PLACE_FILE, limit) else {
            return Vec::new();
        };
        bytes
            .split(|&b| b == b'\n')
            .filter(|line| line.starts_with(b"/"))
            .take(crate::node::FILES_MAX)
            .map(|line| PathBuf::from(std::ffi::OsStr::from_bytes(line)))
            .collect()
    }

    fn save_shared_in_place(&self, list: &[PathBuf]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for path in list {
            bytes.extend_from_slice(path.as_os_str().as_encoded_bytes());
            bytes.push(b'\n');
        }
        self.dirs
            .root
            .write_atomically(SHARED_IN_PLACE_FILE, &bytes)
    }
}
