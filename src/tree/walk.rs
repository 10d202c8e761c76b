//! Building a [`TreeManifest`] from a directory on disk: a walk of the tree, then its pieces
//! hashed across file boundaries ([`super::hashing`]).
//!
//! The tree is the user's, and what is in it may be anything, so:
//!
//! * the directory the user named is opened once (a link on that path is the user's choice);
//!   everything below is reached by a handle and one name at a time, with `O_NOFOLLOW`, so
//!   nothing outside the tree is ever read (as `storage/dir.rs` does for the node's own);
//! * each entry is looked at with `statx` and `AT_SYMLINK_NOFOLLOW` (or `fstat` of an
//!   `O_PATH` handle where `statx` is missing) before anything opens it, save those the
//!   directory's listing calls a directory (opened with `O_DIRECTORY` and `O_NOFOLLOW`,
//!   which refuse anything else) or a link: a symbolic link is skipped (and reported),
//!   never followed; a FIFO, socket or device is refused, and never opened, so nothing
//!   blocks and no device is touched;
//! * hard links are shared as the files they are: each name is a file of the tree;
//! * a name that is not UTF-8 is refused with a message that shows its bytes, as is one
//!   the network would refuse ([`paths::component_problem`]) or two that would collide on a
//!   case-insensitive file system;
//! * every count is bounded ([`WALK_ENTRIES_MAX`], [`paths::FILES_MAX`], the depth);
//! * each file's [`FileStamp`] is taken at the walk, checked when it is opened for hashing
//!   and again when its hashing is done: a file that changed is an error, as for a single
//!   file ("changed while it was being hashed").

use super::{TreeFile, TreeManifest, paths};
use crate::storage::FileStamp;
use crate::storage::dir::kind;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawMode, StatxFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Most directory entries a walk looks at, files, directories and skipped links together:
/// four for each file a tree may hold, so that a directory of a million links or empty
/// directories is refused in bounded time rather than walked.
pub const WALK_ENTRIES_MAX: usize = 4 * paths::FILES_MAX;

/// A tree's directory, opened by handle.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens the directory at `path` (following links on the path: the user named it).
    pub fn open(path: &Path) -> io::Result<Root> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|error| match error {
            Errno::NOTDIR => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", path.display()),
            ),
            other => at(path, other.into()),
        })?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's handle, to open what is below it one component at a time.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The path of `components` below the root, for messages.
    pub fn path_of(&self, components: &[String]) -> PathBuf {
        components
            .iter()
            .fold(self.path.clone(), |path, c| path.join(c))
    }

    /// Opens the directory `components` below the root, one component at a time, never
    /// through a link.
    pub fn open_dir(&self, components: &[String]) -> io::Result<OwnedFd> {
        let mut fd = rustix::io::dup(&self.fd)?;
        for (depth, component) in components.iter().enumerate() {
            fd = open_subdir(fd.as_fd(), component)
                .map_err(|error| at(&self.path_of(&components[..=depth]), error))?;
        }
        Ok(fd)
    }

    /// Opens the regular file at `path` below the root for reading: its directory by
    /// [`Root::open_dir`], then the file itself only once `statx` of its name showed a
    /// regular file (a FIFO or device is never opened), with `O_NOFOLLOW` and `O_NONBLOCK`
    /// in case it was swapped in between, and checked again once open.
    pub fn open_file(&self, dir: BorrowedFd<'_>, path: &[String]) -> io::Result<File> {
        Ok(self.open_file_stamped(dir, path)?.0)
    }

    /// [`Root::open_file`], with the file's stamp once open.
    pub(crate) fn open_file_stamped(
        &self,
        dir: BorrowedFd<'_>,
        path: &[String],
    ) -> io::Result<(File, FileStamp)> {
        let shown = || self.path_of(path);
        let name = path
            .last()
            .ok_or_else(|| at(&shown(), Errno::INVAL.into()))?;
        let found = Entry::at(dir, name).map_err(|error| at(&shown(), error))?;
        if !found.file_type.is_file() {
            return Err(refused(&shown(), found.kind()));
        }
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let file = File::from(
            rustix::fs::openat(dir, name.as_str(), flags, Mode::empty())
                .map_err(|error| at(&shown(), error.into()))?,
        );
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(refused(&shown(), kind(&meta)));
        }
        Ok((file, FileStamp::of(&meta)))
    }
}

/// What a walk found: the tree's files in our order, the stamp each had, and the links it
/// skipped.
#[derive(Debug)]
pub struct Walked {
    root: Root,
    /// The top-level name: the directory's own name.
    name: String,
    /// Sorted by path, component by component.
    files: Vec<TreeFile>,
    /// Each file's stamp at the walk, in the order of `files`.
    stamps: Vec<FileStamp>,
    /// Symbolic links found in the tree and left out, as paths below the root.
    skipped_links: Vec<String>,
}

impl Walked {
    /// The tree's directory, as the walk opened it.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The top-level name: the directory's own name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The files, sorted by path, component by component.
    pub fn files(&self) -> &[TreeFile] {
        &self.files
    }

    /// Each file's stamp when the walk saw it, in the order of [`Walked::files`].
    pub fn stamps(&self) -> &[FileStamp] {
        &self.stamps
    }

    /// Symbolic links found in the tree and left out, as paths below the root.
    pub fn skipped_links(&self) -> &[String] {
        &self.skipped_links
    }
}

/// Walks the tree at `path` (see the module doc).
pub fn walk(path: &Path) -> io::Result<Walked> {
    let (root, name) = open_tree(path)?;
    let mut found = Vec::new();
    let skipped_links = Walker::run(&root, &name, |file, stamp| {
        found.push((file, stamp));
        Ok(())
    })?;
    // A walk yields our order already (each directory's names sorted, each subdirectory
    // walked where its name sorts); sorting again keeps this walk a plain reference for the
    // one that hashes while it goes (`streaming`), which relies on that order.
    found.sort_unstable_by(|a, b| a.0.path.cmp(&b.0.path));
    let (files, stamps) = found.into_iter().unzip();
    Walked::checked(root, name, files, stamps, skipped_links)
}

/// The tree's directory opened, and its top-level name, checked.
fn open_tree(path: &Path) -> io::Result<(Root, String)> {
    let canonical = std::fs::canonicalize(path).map_err(|error| at(path, error))?;
    // The name as the user wrote it (a link's own name: `models/current`, not what it
    // points to), or the directory's real name when the path ends in `.` or `..`.
    let name = path
        .file_name()
        .or(canonical.file_name())
        .ok_or_else(|| invalid(format!("{} has no name of its own", canonical.display())))?;
    let name = name.to_str().ok_or_else(|| {
        invalid(format!(
            "{}: its name is not UTF-8 ({}); rename it to share it",
            canonical.display(),
            name.as_encoded_bytes().escape_ascii()
        ))
    })?;
    if let Some(problem) = crate::wire::name_problem(name.as_bytes()) {
        return Err(invalid(format!("{}: {problem}", canonical.display())));
    }
    Ok((Root::open(&canonical)?, name.to_owned()))
}

impl Walked {
    /// What a walk found, once checked as a whole: at least one file, and no two paths
    /// that would collide on a case-insensitive file system. `files` are in our order.
    fn checked(
        root: Root,
        name: String,
        files: Vec<TreeFile>,
        stamps: Vec<FileStamp>,
        skipped_links: Vec<String>,
    ) -> io::Result<Walked> {
        if files.is_empty() {
            return Err(invalid(format!(
                "{} holds no files (empty directories are not carried)",
                root.path().display()
            )));
        }
        if let Some((first, second)) = paths::collision(&files) {
            return Err(invalid(format!(
                "{} and {} would be the same file on a case-insensitive file system; rename one to share the tree",
                root.path_of(files[first].path()).display(),
                root.path_of(files[second].path()).display()
            )));
        }
        Ok(Walked {
            root,
            name,
            files,
            stamps,
            skipped_links,
        })
    }
}

/// A tree built from disk: its description, and the links left out of it.
#[derive(Debug)]
pub struct Built {
    pub manifest: TreeManifest,
    pub skipped_links: Vec<String>,
}

/// Walks the tree at `path` and hashes it on `threads` threads, with pieces of
/// `piece_bytes` (doubled until the tree fits in [`crate::wire::CHUNKS_MAX`] pieces). The
/// pieces are hashed while the walk goes on (see [`streaming`]); the result is the one
/// [`walk`] and [`super::hashing::hash_pieces`] give, one after the other.
pub fn build(path: &Path, piece_bytes: u32, threads: usize) -> io::Result<Built> {
    build_bounded(
        path,
        piece_bytes,
        threads,
        u64::from(crate::wire::CHUNKS_MAX),
    )
}

/// [`build`], hashing pieces of `piece_bytes` during the walk only while the tree fits in
/// `streamed_pieces_max` of them (tests make it small, to take the other road: a tree that
/// needs larger pieces is hashed again once the walk is over).
fn build_bounded(
    path: &Path,
    piece_bytes: u32,
    threads: usize,
    streamed_pieces_max: u64,
) -> io::Result<Built> {
    let (root, name) = open_tree(path)?;
    let (walked, streamed) =
        streaming::walk_and_hash(root, name, piece_bytes, threads, streamed_pieces_max)?;
    let total_bytes = walked
        .files
        .iter()
        .try_fold(0u64, |sum, file| sum.checked_add(file.length_bytes()))
        .ok_or_else(|| invalid(format!("{}: larger than 2^64 bytes", path.display())))?;
    let chunk_bytes = crate::storage::chunk_bytes_for(total_bytes, piece_bytes);
    let layout = super::layout::PieceLayout::new(
        walked.files.iter().map(TreeFile::length_bytes),
        chunk_bytes,
    )
    .ok_or_else(|| invalid(format!("{}: larger than 2^64 bytes", path.display())))?;
    if !crate::wire::shape_ok(total_bytes, chunk_bytes) {
        return Err(invalid(format!(
            "{} is too large for {chunk_bytes}-byte pieces (at most {} pieces)",
            path.display(),
            crate::wire::CHUNKS_MAX
        )));
    }
    let hashes = match streamed {
        Some(hashes)
            if chunk_bytes == piece_bytes && hashes.len() as u64 == layout.piece_count() =>
        {
            hashes
        }
        _ => super::hashing::hash_pieces(
            &walked.root,
            &walked.files,
            Some(&walked.stamps),
            &layout,
            threads,
        )?,
    };
    let manifest = TreeManifest::ours(walked.name, walked.files, chunk_bytes, hashes)
        .map_err(|problem| invalid(format!("{}: {problem}", path.display())))?;
    Ok(Built {
        manifest,
        skipped_links: walked.skipped_links,
    })
}

/// A walk under way: it goes down the tree depth first, each directory's names in sorted
/// order, so that it finds the files in our order, and hands each to `found`.
struct Walker<'a, F> {
    root: &'a Root,
    /// The tree's top-level name, which every path's length counts.
    name: &'a str,
    found: F,
    /// Files found so far, against [`paths::FILES_MAX`].
    file_count: usize,
    skipped_links: Vec<String>,
    /// Entries looked at so far, against [`WALK_ENTRIES_MAX`].
    entries: usize,
}

impl<'a, F: FnMut(TreeFile, FileStamp) -> io::Result<()>> Walker<'a, F> {
    /// Walks the tree below `root`, handing each file found to `found` in our order (an
    /// error from it ends the walk); returns the links skipped.
    fn run(root: &'a Root, name: &'a str, found: F) -> io::Result<Vec<String>> {
        let mut walker = Walker {
            root,
            name,
            found,
            file_count: 0,
            skipped_links: Vec::new(),
            entries: 0,
        };
        let fd = rustix::io::dup(&root.fd)?;
        walker.directory(fd, &mut Vec::new())?;
        Ok(walker.skipped_links)
    }

    /// Walks the directory `fd`, at `path` below the root.
    fn directory(&mut self, fd: OwnedFd, path: &mut Vec<String>) -> io::Result<()> {
        let root = self.root;
        let shown = || root.path_of(path);
        let mut names = Vec::new();
        // The directory read through the handle itself (`Dir::read_from` would open it
        // again, and ask for its flags first: three calls more per directory), which then
        // serves to look at each entry.
        let mut reader = rustix::fs::Dir::new(fd).map_err(|e| at(&shown(), e.into()))?;
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(|e| at(&shown(), e.into()))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            self.entries += 1;
            if self.entries > WALK_ENTRIES_MAX {
                return Err(invalid(format!(
                    "{} holds more than {WALK_ENTRIES_MAX} entries; a tree has at most {} files",
                    self.root.path().display(),
                    paths::FILES_MAX
                )));
            }
            let Ok(name) = std::str::from_utf8(name) else {
                return Err(invalid(format!(
                    "{}: the name {} is not UTF-8; rename it to share the tree",
                    shown().display(),
                    name.escape_ascii()
                )));
            };
            names.push((name.to_owned(), entry.file_type()));
        }
        // A stable order of work, whatever order the directory yields (and so of errors).
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let fd = reader.fd()?;
        for (name, listed) in names {
            path.push(name);
            self.entry(fd, path, listed)?;
            path.pop();
        }
        Ok(())
    }

    /// Looks at `path`'s last component in `dir`, without following or opening it;
    /// `listed` is its type as the directory's listing gives it.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        path: &mut Vec<String>,
        listed: FileType,
    ) -> io::Result<()> {
        // The path for messages, made only for one (an allocation per entry is not free).
        let root = self.root;
        let shown = |path: &[String]| root.path_of(path);
        let name = path.last().map(String::as_str).unwrap_or_default();
        if let Some(problem) = paths::component_problem(name.as_bytes()) {
            return Err(invalid(format!(
                "{}: {problem}; rename it to share the tree",
                shown(path).display()
            )));
        }
        // The listing's type spares a `statx` for a directory or a link (a third of the
        // entries of `bench/tree_hash.py`'s tree): a directory is opened with `O_DIRECTORY`
        // and `O_NOFOLLOW`, which fail on anything else swapped in since, and a link is
        // only left out. Where the file system does not say (`Unknown`), `statx` does.
        let found = match listed {
            FileType::Directory | FileType::Symlink => None,
            _ => Some(Entry::at(dir, name).map_err(|error| at(&shown(path), error))?),
        };
        let file_type = found.as_ref().map_or(listed, |found| found.file_type);
        if file_type == FileType::Symlink {
            self.skipped_links.push(path.join("/"));
            return Ok(());
        }
        if let Some(problem) = paths::path_problem(self.name, path) {
            return Err(invalid(format!("{}: {problem}", shown(path).display())));
        }
        if file_type == FileType::Directory {
            if path.len() >= paths::PATH_COMPONENTS_MAX {
                return Err(invalid(format!(
                    "{}: deeper than {} levels",
                    shown(path).display(),
                    paths::PATH_COMPONENTS_MAX
                )));
            }
            let fd = open_subdir(dir, name).map_err(|error| at(&shown(path), error))?;
            return self.directory(fd, path);
        }
        let Some(found) = found else {
            // Only a directory or a link goes without a `statx`, and both are dealt with.
            return Err(io::Error::other("a directory entry was not looked at"));
        };
        if !found.file_type.is_file() {
            return Err(invalid(format!(
                "{} is {}; a shared tree holds only regular files and directories (links are skipped)",
                shown(path).display(),
                found.kind()
            )));
        }
        if self.file_count >= paths::FILES_MAX {
            return Err(invalid(format!(
                "{} holds more than {} files",
                self.root.path().display(),
                paths::FILES_MAX
            )));
        }
        let file = TreeFile::new(path.clone(), found.stamp.file_bytes(), found.executable);
        self.file_count += 1;
        (self.found)(file, found.stamp)
    }
}

/// What a walk needs to know of a directory entry, learnt without following or opening it.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    file_type: FileType,
    /// Whether any of its execute bits is set.
    executable: bool,
    stamp: FileStamp,
}

impl Entry {
    /// What `name` in `dir` is: one `statx` with `AT_SYMLINK_NOFOLLOW` (an `O_PATH` open,
    /// an `fstat` and a close took three calls and twice the time: 37 ms against 17 for
    /// the 14,500 entries of the benchmark's tree); where `statx` is missing (a kernel before
    /// 4.11, or a sandbox that forbids it), the three calls.
    fn at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Entry> {
        let flags = AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT;
        match rustix::fs::statx(dir, name, flags, StatxFlags::BASIC_STATS) {
            Ok(stat) => Ok(Entry {
                file_type: FileType::from_raw_mode(RawMode::from(stat.stx_mode)),
                executable: stat.stx_mode & 0o111 != 0,
                stamp: FileStamp::of_statx(&stat),
            }),
            Err(Errno::NOSYS | Errno::PERM) => Entry::opened(dir, name),
            Err(error) => Err(error.into()),
        }
    }

    /// What `name` in `dir` is, by `fstat` of an `O_PATH` handle (never opened for
    /// reading, never followed).
    fn opened(dir: BorrowedFd<'_>, name: &str) -> io::Result<Entry> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
        let meta = File::from(fd).metadata()?;
        Ok(Entry {
            file_type: FileType::from_raw_mode(meta.mode()),
            executable: meta.mode() & 0o111 != 0,
            stamp: FileStamp::of(&meta),
        })
    }

    /// What it is, in words, for messages ("a FIFO"), as `storage::dir::kind` says it.
    fn kind(&self) -> &'static str {
        match self.file_type {
            FileType::Symlink => "a symbolic link",
            FileType::Directory => "a directory",
            FileType::Fifo => "a FIFO",
            FileType::Socket => "a socket",
            FileType::BlockDevice => "a block device",
            FileType::CharacterDevice => "a character device",
            FileType::RegularFile => "a regular file",
            FileType::Unknown => "not a regular file",
        }
    }
}

/// Opens the directory `name` in `dir`; a link there fails (`ELOOP`), as does anything
/// else that is not a directory.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(invalid(format!("{name:?} is not one path component")));
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

fn invalid(text: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, text)
}

fn refused(path: &Path, what: &str) -> io::Error {
    invalid(format!("{} is {what}, not a regular file", path.display()))
}

/// The error, with the path it concerns in front.
pub(crate) fn at(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

mod streaming;

#[cfg(test)]
mod tests;
