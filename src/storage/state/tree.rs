//! Trees in the node's directory: a directory shared as one content, and a tree downloaded
//! as a directory of partial files, published by one rename.
//!
//! ```text
//! DIR/NAME/...                      a tree, shared: its files read with pread
//! DIR/.torrent/partial/HASH.d/...   a tree being downloaded: its files, full size, mapped
//! DIR/.torrent/partial/HASH.info    its info dictionary, whose SHA-1 is HASH
//! DIR/.torrent/partial/HASH.have    its have-bitmap, as for a file
//! ```
//!
//! Everything is reached by handles, one component at a time, never through a link: the
//! tree's own paths passed [`crate::tree::paths`]' checks wherever they came from, and
//! every directory and file of a partial tree is the node's own (created here, refused if a
//! link, FIFO or another name's hard link was planted in its place).
//!
//! Durability: a published tree costs one `syncfs` of the file system, not one `fsync` per
//! file (10,000 serial flushes took longer than the transfer), then the rename and a sync
//! of the directory it lands in.

use super::super::dir::{Access, Dir};
use super::super::{Bitmap, Content, FileStamp, Manifest, Mapping, Shared, reserve};
use super::StateDir;
use crate::tree::walk::{self, Root};
use crate::tree::{TreeManifest, content::TreeContent};
use crate::wire::{self, Hash};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

/// Mode of a file of a downloaded tree, as a downloaded file's.
const FILE_MODE: u32 = 0o600;
/// Mode of an executable one: only the executable bit travels (BEP 47 `attr: x`).
const EXECUTABLE_MODE: u32 = 0o700;

impl StateDir {
    pub(super) fn tree_dir_name(info_hash: &Hash) -> String {
        StateDir::partial_name(info_hash, "d")
    }

    /// Shares the directory `name` of the node's directory as a tree: walked and hashed
    /// (see [`walk::build`]), its files opened for serving.
    pub(super) fn share_tree(
        &self,
        name: &str,
        piece_bytes: u32,
        threads: usize,
    ) -> io::Result<Shared> {
        let dirs = &self.dirs;
        let path = self.file_path(name);
        let built = walk::build(&path, piece_bytes, threads)?;
        for link in &built.skipped_links {
            log::warn!(
                "{}: a symbolic link, left out of the tree",
                path.join(link).display()
            );
        }
        let stamp = FileStamp::of(&dirs.files.entry(name)?);
        let tree = Arc::new(built.manifest);
        let serving = open_for_serving(&Root::open(&path)?, &tree)?;
        Ok((Manifest::of_tree(tree), stamp, serving))
    }

    /// Shares the directory of `tree`'s name as `tree`, a description made elsewhere: its
    /// files (pad files as zeros, in the description's order) must give its pieces.
    pub(super) fn share_tree_as(
        &self,
        tree: Arc<TreeManifest>,
        threads: usize,
    ) -> io::Result<Shared> {
        let name = tree.name();
        let meta = self.dirs.files.entry(name)?;
        if !meta.is_dir() {
            return Err(io::Error::other(format!(
                "{} is {}, not the directory of the tree the .torrent describes",
                self.file_path(name).display(),
                super::super::dir::kind(&meta)
            )));
        }
        let root = Root::open(&self.file_path(name))?;
        let hashes =
            crate::tree::hashing::hash_pieces(&root, tree.files(), None, tree.layout(), threads)?;
        if let Some(piece) = hashes.iter().zip(tree.hashes()).position(|(a, b)| a != b) {
            return Err(io::Error::other(format!(
                "{} does not match the .torrent: piece {piece} differs (another version of a file?)",
                self.file_path(name).display()
            )));
        }
        let serving = open_for_serving(&root, &tree)?;
        Ok((Manifest::of_tree(tree), FileStamp::of(&meta), serving))
    }

    /// The manifest of an interrupted tree download, from its info dictionary.
    pub(super) fn partial_tree(&self, info_hash: &Hash) -> Option<Manifest> {
        let bytes = self
            .dirs
            .partial
            .read_bounded(
                &StateDir::partial_name(info_hash, "info"),
                u64::from(wire::INFO_BYTES_MAX),
            )
            .ok()?;
        if crate::hash::sha1(&bytes) != *info_hash {
            return None;
        }
        let tree = crate::tree::parse::info(&bytes).ok()?;
        Some(Manifest::of_tree(Arc::new(tree)))
    }

    /// [`super::super::Storage::open_partial`] for a tree: its files, and the chunks an earlier run
    /// recorded as verified.
    pub(super) fn open_partial_with_tree(
        &self,
        manifest: &Manifest,
        tree: &TreeManifest,
    ) -> io::Result<(Arc<dyn Content>, Bitmap)> {
        let partial = &self.dirs.partial;
        let have_name = StateDir::partial_name(&manifest.info_hash, "have");
        let count = manifest.chunk_count();
        let resumable = self
            .partial_tree(&manifest.info_hash)
            .is_some_and(|stored| stored == *manifest);
        let content = self
            .open_partial_tree(tree, resumable)
            .map_err(|error| self.explain_full(error, manifest.file_bytes))?;
        let claimed = match resumable {
            true => partial
                .read_bounded(&have_name, wire::bitmap_len(count) as u64)
                .ok()
                .and_then(|bytes| Bitmap::from_bytes(count, &bytes)),
            false => None,
        };
        let claimed = match claimed {
            Some(claimed) => claimed,
            None => {
                let have = Bitmap::new(count);
                partial
                    .write_atomically(&have_name, have.as_bytes())
                    .map_err(|error| self.explain_full(error, have.as_bytes().len() as u64))?;
                have
            }
        };
        Ok((content, claimed))
    }

    /// Opens (creating what is missing) the partial files of a tree download, their space
    /// reserved, as one content. `resumable`: its state files hold this very tree.
    pub(super) fn open_partial_tree(
        &self,
        tree: &TreeManifest,
        resumable: bool,
    ) -> io::Result<Arc<dyn Content>> {
        let partial = &self.dirs.partial;
        let info_hash = tree.info_hash();
        if !resumable {
            // What an earlier, different run left under this name goes first.
            partial.remove_tree(&StateDir::tree_dir_name(&info_hash))?;
            partial.write_atomically(
                &StateDir::partial_name(&info_hash, "info"),
                tree.info_bytes(),
            )?;
        }
        let top = partial.private_subdir(&StateDir::tree_dir_name(&info_hash))?;
        // Laid out afresh, every directory and file is created, each by one call; resumed,
        // each is opened as what this node left (refusing anything planted since).
        let mut dirs = DirStack::new(top, !resumable);
        let mut files = Vec::with_capacity(tree.files().len());
        for file in tree.files() {
            let len = file.length_bytes();
            if file.is_pad() {
                files.push((len, None));
                continue;
            }
            let (parent, name) = file.path().split_at(file.path().len() - 1);
            let dir = dirs.at(parent)?;
            let mode = if file.is_executable() {
                EXECUTABLE_MODE
            } else {
                FILE_MODE
            };
            let opened = if resumable {
                let opened = dir.open_regular(&name[0], Access::ReadWriteCreate)?;
                rustix::fs::fchmod(&opened, rustix::fs::Mode::from_raw_mode(mode))?;
                opened
            } else {
                dir.create_new(&name[0], mode)?
            };
            if len > 0 {
                reserve(&opened, len)?;
            } else {
                opened.set_len(0)?;
            }
            let mapping = Mapping::read_write(&opened, &dir.path_of(&name[0]), len)?;
            files.push((len, Some(Arc::new(mapping) as Arc<dyn Content>)));
        }
        let content = TreeContent::new(files)
            .ok_or_else(|| io::Error::other("the tree's files are not of their lengths"))?;
        Ok(Arc::new(content))
    }

    /// Publishes a verified tree as `DIR/NAME`: every byte made durable (one `syncfs`), the
    /// tree's directory moved into place by one rename (never over anything), the directory
    /// synced; then its state files are removed.
    ///
    /// The tree is served through the handles it was downloaded through (the same files,
    /// renamed), read with `pread`: its mappings are never touched again (a file truncated
    /// by its owner then is a short read, not SIGBUS), and a second handle on each of
    /// 10,000 files would pass the process's limit of open files (20,000 here). Not
    /// watched for changes below its top, unlike a tree shared from disk.
    pub(super) fn publish_tree(
        &self,
        manifest: &Manifest,
        content: &Arc<dyn Content>,
    ) -> io::Result<(Arc<dyn Content>, FileStamp)> {
        let dirs = &self.dirs;
        let tree_dir = StateDir::tree_dir_name(&manifest.info_hash);
        // No `msync` of each file first: `syncfs` writes back pages dirtied through a
        // mapping as well, and 8,000 of them took 2 s on this machine's ext4.
        let verified = dirs.partial.private_subdir(&tree_dir)?;
        dirs.partial.sync_file_system()?;
        dirs.partial
            .publish(&tree_dir, &verified.as_file()?, &dirs.files, &manifest.name)?;
        dirs.files.sync()?;
        for extension in ["have", "info"] {
            let _ = dirs
                .partial
                .remove(&StateDir::partial_name(&manifest.info_hash, extension));
        }
        let stamp = FileStamp::of(&dirs.files.entry(&manifest.name)?);
        Ok((Arc::clone(content), stamp))
    }
}

/// A tree's files at `root`, opened for reading with `pread`, as one content: each must
/// still be a regular file of its length.
fn open_for_serving(root: &Root, tree: &TreeManifest) -> io::Result<Arc<dyn Content>> {
    let mut files = Vec::with_capacity(tree.files().len());
    // Every directory of the tree, kept open to be watched: a file added, removed or
    // replaced in one changes its stamp.
    let mut dirs = Vec::new();
    let mut watched: std::collections::BTreeSet<&[String]> = std::collections::BTreeSet::new();
    // Files come sorted by path: the directory of the last one is often the next one's.
    let mut last_dir: Option<(Vec<String>, OwnedFd)> = None;
    for file in tree.files() {
        let len = file.length_bytes();
        if file.is_pad() {
            files.push((len, None));
            continue;
        }
        let parent = &file.path()[..file.path().len() - 1];
        for depth in 0..=parent.len() {
            if watched.insert(&parent[..depth]) {
                dirs.push(std::fs::File::from(root.open_dir(&parent[..depth])?));
            }
        }
        if last_dir.as_ref().is_none_or(|(path, _)| path != parent) {
            last_dir = Some((parent.to_vec(), root.open_dir(parent)?));
        }
        let Some((_, dir)) = &last_dir else {
            continue;
        };
        let opened = root.open_file(dir.as_fd(), file.path())?;
        if opened.metadata()?.len() != len {
            return Err(io::Error::other(format!(
                "{} changed since it was hashed; share the tree again once it stays unchanged",
                root.path_of(file.path()).display()
            )));
        }
        files.push((
            len,
            Some(Arc::new(Mapping::read_only(&opened, len)?) as Arc<dyn Content>),
        ));
    }
    let content = TreeContent::new(files)
        .ok_or_else(|| io::Error::other("the tree's files are not of their lengths"))?;
    Ok(Arc::new(content.watching(dirs)))
}

/// The directories of a partial tree, created as needed, kept open along the path of the
/// file last placed (files come sorted by path, so a directory is opened once).
struct DirStack {
    top: Dir,
    /// The open directories below `top`, each with its name, from the top down.
    open: Vec<(String, Dir)>,
    /// Every directory is new: created, never looked for.
    fresh: bool,
}

impl DirStack {
    fn new(top: Dir, fresh: bool) -> DirStack {
        DirStack {
            top,
            open: Vec::new(),
            fresh,
        }
    }

    /// The directory at `path` below the top, created (mode 0700, the node's own) where
    /// missing. Our files come sorted by path, so a fresh tree creates each directory once
    /// and opens none.
    fn at(&mut self, path: &[String]) -> io::Result<&Dir> {
        let common = self
            .open
            .iter()
            .zip(path)
            .take_while(|((open, _), wanted)| open == *wanted)
            .count();
        self.open.truncate(common);
        for component in &path[common..] {
            let parent = self.open.last().map_or(&self.top, |(_, dir)| dir);
            let created = match self.fresh {
                true => parent.create_subdir(component),
                false => Err(io::ErrorKind::AlreadyExists.into()),
            };
            let dir = match created {
                Ok(dir) => dir,
                // Resumed, or a description made elsewhere that comes back to a directory.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    parent.private_subdir(component)?
                }
                Err(error) => return Err(error),
            };
            self.open.push((component.clone(), dir));
        }
        Ok(self.open.last().map_or(&self.top, |(_, dir)| dir))
    }
}
