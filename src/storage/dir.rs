//! Files under the node's directory, opened through directory handles and never through a
//! symbolic link.
//!
//! Anyone who can put a symbolic link where the node opens a file could otherwise make it
//! read or write elsewhere: a link planted at `.torrent/partial/HASH.part` made a download
//! overwrite its target, and a `.torrent/partial` that was a link put every partial file
//! wherever it pointed. So:
//!
//! * the node's directory is opened once, by the path the user gave (a link there is the
//!   user's choice); every file and directory under it is opened *relative to a handle*,
//!   by a single name component (no `/`, no `..`: see [`check_component`]), with
//!   `O_NOFOLLOW`. With one component per open, that is exactly what `openat2`'s
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` would give, on every kernel;
//! * the state directories (`.torrent/` and those in it) must be real directories, owned by
//!   the user running the node, and are made writable by nobody else
//!   ([`Dir::private_subdir`]): then nobody else can plant anything in them, nor swap a file
//!   between two of our calls;
//! * a file is opened with `O_NONBLOCK` and checked with `fstat` before it is used, so a
//!   FIFO, socket or device never blocks a thread in `open` ([`Dir::open_regular`]);
//! * a file is published by `renameat` between two handles, refusing to replace anything,
//!   and only after checking that the name still is the very file that was verified
//!   ([`Dir::publish`]).

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Most entries read from one state directory when listing it (partial downloads).
pub const DIR_ENTRIES_MAX: usize = 4096;
/// Deepest directory [`Dir::remove_tree`] goes into: a partial tree is at most
/// [`crate::tree::paths::PATH_COMPONENTS_MAX`] levels deep.
pub const REMOVE_DEPTH_MAX: usize = crate::tree::paths::PATH_COMPONENTS_MAX + 1;

/// A directory opened by handle, with the path it was opened by (for messages only).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// How [`Dir::open_regular`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Read and write, creating the file (mode 0600) if it is missing.
    ReadWriteCreate,
    Write,
}

impl Dir {
    /// Creates the directory the user named (and its parents) if missing, and opens it. A
    /// symbolic link on this path is followed: the user chose it.
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        std::fs::create_dir_all(path).map_err(|e| at(path, e))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| at(path, e.into()))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the directory the user named, which must exist (a directory shared from in
    /// place: nothing is created there). A symbolic link on this path is followed.
    pub fn open_existing(path: &Path) -> io::Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| at(path, e.into()))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates (mode 0700) or opens the state directory `name` in this one, and refuses it
    /// unless it is a real directory owned by this user; one that others may write into is
    /// made writable by its owner only.
    pub fn private_subdir(&self, name: &str) -> io::Result<Dir> {
        check_component(name)?;
        let path = self.path_of(name);
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(error) => return Err(at(&path, error.into())),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                let what = self.entry(name).map_or("not a directory", |m| kind(&m));
                return Err(io::Error::other(format!(
                    "{} is {what}; the node keeps its state only in a real directory of its own (move it away)",
                    path.display()
                )));
            }
            Err(error) => return Err(at(&path, error.into())),
        };
        let meta = File::from(fd.try_clone()?).metadata()?;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(io::Error::other(format!(
                "{} is owned by user {}, not by the user running the node ({me}); the node keeps its state only in a directory of its own",
                path.display(),
                meta.uid()
            )));
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            // Ours, so ours to close: made so by an older version under a umask of 002, or
            // by hand. Taken away on the handle, so no other directory is changed instead.
            let tightened = mode & !0o022;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(tightened))
                .map_err(|e| at(&path, e.into()))?;
            log::warn!(
                "{} was writable by other users (mode {mode:o}); made it {tightened:o}",
                path.display()
            );
        }
        Ok(Dir { fd, path })
    }

    /// What is at `name` now, without following a link and without opening it for reading
    /// (so that a FIFO or device is never opened): `O_PATH` then `fstat`.
    pub fn entry(&self, name: &str) -> io::Result<Metadata> {
        check_component(name)?;
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())
            .map_err(|e| at(&self.path_of(name), e.into()))?;
        File::from(fd).metadata()
    }

    /// Whether anything (a file, a link, even a dangling one) is called `name` here.
    pub fn contains(&self, name: &str) -> bool {
        !matches!(self.entry(name), Err(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// Opens the regular file `name`: never through a symbolic link, never blocking on a
    /// FIFO or device (`O_NONBLOCK`, cleared again once `fstat` showed a regular file), and
    /// for writing only when it has no other name (hard link). Anything else is refused
    /// with an error that says what it is.
    pub fn open_regular(&self, name: &str, access: Access) -> io::Result<File> {
        check_component(name)?;
        let path = self.path_of(name);
        // Look first, so that a device is not even opened (opening some has effects).
        match self.entry(name) {
            Ok(meta) => refuse_unless_regular(&path, &meta)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if access != Access::ReadWriteCreate {
                    return Err(error);
                }
            }
            Err(error) => return Err(error),
        }
        let mut flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        flags |= match access {
            Access::Read => OFlags::RDONLY,
            Access::ReadWriteCreate => OFlags::RDWR | OFlags::CREATE,
            Access::Write => OFlags::WRONLY,
        };
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600)).map_err(
            |error| match error {
                // Replaced by a link between the look and the open.
                Errno::LOOP => refused(&path, "a symbolic link"),
                Errno::NXIO => refused(&path, "a socket"),
                other => at(&path, other.into()),
            },
        )?;
        let file = File::from(fd);
        // Checked again on what was opened: the name may have changed since the look.
        let meta = file.metadata()?;
        refuse_unless_regular(&path, &meta)?;
        // A file written to must be this name's alone: through a hard link planted here,
        // a write would change a file elsewhere.
        if access != Access::Read && meta.nlink() != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} has {} names (hard links); the node writes only into a file of its own",
                    path.display(),
                    meta.nlink()
                ),
            ));
        }
        let flags = rustix::fs::fcntl_getfl(&file)?;
        rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)?;
        Ok(file)
    }

    /// Creates the file `name` (read and write, with `mode`), which must not exist yet
    /// (`O_EXCL`, which also never follows a link): one call for a file of a tree this node
    /// lays out afresh.
    pub fn create_new(&self, name: &str, mode: u32) -> io::Result<File> {
        check_component(name)?;
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))
            .map_err(|e| at(&self.path_of(name), e.into()))?;
        Ok(File::from(fd))
    }

    /// Creates the directory `name` (mode 0700), which must not exist yet, and opens it.
    pub fn create_subdir(&self, name: &str) -> io::Result<Dir> {
        check_component(name)?;
        let path = self.path_of(name);
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(|e| at(&path, e.into()))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())
            .map_err(|e| at(&path, e.into()))?;
        Ok(Dir { fd, path })
    }

    /// A new file for writing, under a temporary name no user file can have (names starting
    /// with '.' are refused from the network and the console). Whatever was left under that
    /// name is removed first and the file is created with `O_EXCL`, so nothing planted
    /// there (a link, another name's hard link) is ever written through.
    pub fn create_temporary(&self) -> io::Result<(String, File)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(".tmp{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let path = self.path_of(&name);
        match rustix::fs::unlinkat(&self.fd, name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(error) => return Err(at(&path, error.into())),
        }
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        let fd = rustix::fs::openat(&self.fd, name.as_str(), flags, Mode::from_raw_mode(0o600))
            .map_err(|e| at(&path, e.into()))?;
        Ok((name, File::from(fd)))
    }

    /// Writes a small file so that readers see the old or the new content, never a mix, and
    /// a crash loses neither (see [`Dir::write_whole`]).
    pub fn write_atomically(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.write_whole(self, name, bytes, Existing::Replace)
    }

    /// Writes `name` in `target` whole, the one way this program writes a small file: the
    /// bytes go to a new temporary file here (on `target`'s file system, under a name no
    /// user file can have), are synced, and are moved into place, replacing what was there
    /// or, with [`Existing::Keep`], failing with [`io::ErrorKind::AlreadyExists`] (see
    /// [`Dir::publish`]); then `target` is synced, so that after a crash the move itself is
    /// not lost. Readers see the old content (or none) or the new, never a mix.
    pub fn write_whole(
        &self,
        target: &Dir,
        name: &str,
        bytes: &[u8],
        existing: Existing,
    ) -> io::Result<()> {
        check_component(name)?;
        let path = target.path_of(name);
        let (tmp, mut file) = self.create_temporary()?;
        let moved = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|error| at(&path, error))
            .and_then(|()| match existing {
                Existing::Replace => rustix::fs::renameat(&self.fd, tmp.as_str(), &target.fd, name)
                    .map_err(|error| at(&path, error.into())),
                Existing::Keep => self.publish(&tmp, &file, target, name),
            });
        if let Err(error) = moved {
            let _ = self.remove(&tmp);
            return Err(error);
        }
        target.sync()
    }

    /// Reads a whole small regular file, refusing one larger than `limit_bytes`.
    pub fn read_bounded(&self, name: &str, limit_bytes: u64) -> io::Result<Vec<u8>> {
        let file = self.open_regular(name, Access::Read)?;
        let mut bytes = Vec::new();
        file.take(limit_bytes + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit_bytes {
            return Err(io::Error::other(format!(
                "{} is larger than {limit_bytes} bytes",
                self.path_of(name).display()
            )));
        }
        Ok(bytes)
    }

    /// Moves `from` (here) to `to` in `target`, never replacing anything there
    /// (`RENAME_NOREPLACE`; on a file system without it, a check just before the rename),
    /// and only if `from` is the very file `expected` is open on: so a link or another file
    /// put in its place is never published. Checked again after the move.
    pub fn publish(&self, from: &str, expected: &File, target: &Dir, to: &str) -> io::Result<()> {
        check_component(from)?;
        check_component(to)?;
        let to_path = target.path_of(to);
        let expected = expected.metadata()?;
        let same = |meta: &Metadata| (meta.dev(), meta.ino()) == (expected.dev(), expected.ino());
        if !self.entry(from).is_ok_and(|meta| same(&meta)) {
            return Err(io::Error::other(format!(
                "{} is no longer the file that was verified; not publishing it",
                self.path_of(from).display()
            )));
        }
        let exists = || {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists; not replacing it", to_path.display()),
            )
        };
        match rustix::fs::renameat_with(&self.fd, from, &target.fd, to, RenameFlags::NOREPLACE) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Err(exists()),
            Err(Errno::INVAL | Errno::NOSYS) => {
                if target.contains(to) {
                    return Err(exists());
                }
                rustix::fs::renameat(&self.fd, from, &target.fd, to)
                    .map_err(|e| at(&to_path, e.into()))?;
            }
            Err(error) => return Err(at(&to_path, error.into())),
        }
        if !target.entry(to).is_ok_and(|meta| same(&meta)) {
            return Err(io::Error::other(format!(
                "{} was replaced while it was being published",
                to_path.display()
            )));
        }
        Ok(())
    }

    /// Renames `from` to `to` within this directory (replacing `to`).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_component(from)?;
        check_component(to)?;
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .map_err(|e| at(&self.path_of(to), e.into()))
    }

    /// Removes the entry `name` (a link itself, never what it points to).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        check_component(name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
            .map_err(|e| at(&self.path_of(name), e.into()))
    }

    /// Syncs the directory itself (its entries, after a rename).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| at(&self.path, e.into()))
    }

    /// Syncs the whole file system this directory is on, waiting for it: one call makes a
    /// tree of many files durable, where a `fsync` each would cost a disk flush per file.
    pub fn sync_file_system(&self) -> io::Result<()> {
        rustix::fs::syncfs(&self.fd).map_err(|e| at(&self.path, e.into()))
    }

    /// The directory itself as an open file (for [`Dir::publish`]'s check that a name is
    /// still this very directory).
    pub fn as_file(&self) -> io::Result<File> {
        Ok(File::from(self.fd.try_clone()?))
    }

    /// Removes the directory `name` and everything in it, never following a link (a link
    /// is removed as the entry it is), at most [`REMOVE_DEPTH_MAX`] levels deep.
    pub fn remove_tree(&self, name: &str) -> io::Result<()> {
        check_component(name)?;
        remove_below(&self.fd, name, &self.path_of(name), 0)
    }

    /// Free space of the file system this directory is on.
    pub fn statvfs(&self) -> io::Result<rustix::fs::StatVfs> {
        Ok(rustix::fs::fstatvfs(&self.fd)?)
    }

    /// The names in this directory (at most [`DIR_ENTRIES_MAX`]), `.` and `..` left out.
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut reader = rustix::fs::Dir::read_from(&self.fd)?;
        let mut names = Vec::new();
        while let Some(entry) = reader.read() {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name != "." && name != ".." {
                names.push(name.to_string());
            }
            if names.len() >= DIR_ENTRIES_MAX {
                break;
            }
        }
        Ok(names)
    }

    /// Binds a Unix domain socket called `name` here, mode 0600, in place of whatever entry
    /// had that name (a socket left by a process that ended; the caller holds the directory's
    /// lock, so no live process owns it). The path is taken through this directory's handle
    /// (`/proc/self/fd/N/name`), which also keeps it within the 108 bytes a socket path may
    /// have however deep the directory is.
    pub fn bind_unix(&self, name: &str) -> io::Result<std::os::unix::net::UnixListener> {
        use std::os::fd::AsRawFd;
        check_component(name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(error) => return Err(at(&self.path_of(name), error.into())),
        }
        let through_handle = format!("/proc/self/fd/{}/{name}", self.fd.as_raw_fd());
        let listener = std::os::unix::net::UnixListener::bind(&through_handle)
            .or_else(|_| std::os::unix::net::UnixListener::bind(self.path_of(name)))
            .map_err(|error| at(&self.path_of(name), error))?;
        rustix::fs::chmodat(&self.fd, name, Mode::from_raw_mode(0o600), AtFlags::empty())
            .map_err(|error| at(&self.path_of(name), error.into()))?;
        Ok(listener)
    }

    /// Takes an exclusive lock on the file `name` here (created if missing) for as long as
    /// the returned file is open, and writes this process's id into it. When another
    /// process holds it, the error is [`io::ErrorKind::ResourceBusy`] and names that
    /// process (as it wrote itself into the file).
    pub fn lock(&self, name: &str) -> io::Result<File> {
        let mut file = self.open_regular(name, Access::ReadWriteCreate)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let _ = (&file).take(64).read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "another process".to_string(),
                };
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "{} is in use by {holder} (it holds {}); one node process per directory",
                        self.path.parent().unwrap_or(&self.path).display(),
                        self.path_of(name).display()
                    ),
                ));
            }
            Err(error) => return Err(at(&self.path_of(name), error.into())),
        }
        file.set_len(0)?;
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0))?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        Ok(file)
    }
}

/// Reads at most `limit_bytes` of a file the user named by a path of their choosing (a
/// `.torrent` given to `download`): links on the path are followed, as the user asked, but
/// only a regular file is opened, and never in a way that blocks (a FIFO is refused).
pub fn read_named_file(path: &Path, limit_bytes: u64) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    refuse_unless_regular(path, &meta)?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let file = File::from(rustix::fs::open(path, flags, Mode::empty())?);
    refuse_unless_regular(path, &file.metadata()?)?;
    let mut bytes = Vec::new();
    file.take(limit_bytes).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Refuses a name that is not exactly one component of a path: empty, `.`, `..`, or with a
/// `/` or NUL in it. Names from the network and the console were checked already
/// ([`crate::wire::check_name`]); this keeps every open beneath its directory whoever calls.
pub fn check_component(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    Ok(())
}

/// What a directory entry is, in words, for messages ("a FIFO").
pub fn kind(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn refuse_unless_regular(path: &Path, meta: &Metadata) -> io::Result<()> {
    if meta.file_type().is_file() {
        Ok(())
    } else {
        Err(refused(path, kind(meta)))
    }
}

/// "PATH is a FIFO, not a regular file"; for a link, what to do instead.
fn refused(path: &Path, what: &str) -> io::Error {
    let text = if what == "a symbolic link" {
        format!(
            "{} is a symbolic link; the node opens no link in its directory (use the file itself)",
            path.display()
        )
    } else {
        format!("{} is {what}, not a regular file", path.display())
    };
    io::Error::new(io::ErrorKind::InvalidInput, text)
}

/// The error, with the path it concerns in front.
/// What [`Dir::write_whole`] does when the name is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace it (the program's own state: a registry, a have-map).
    Replace,
    /// Keep it and fail (a file in the user's directory is never replaced).
    Keep,
}

fn at(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// Removes `name` in `parent` (shown as `path`): a directory with what is in it, anything
/// else (a link too) as one entry.
fn remove_below(parent: &OwnedFd, name: &str, path: &Path, depth: usize) -> io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(dir) => dir,
        // Not a directory (or a link to one): removed as the entry it is.
        Err(Errno::NOTDIR | Errno::LOOP) => {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty())
                .map_err(|e| at(path, e.into()));
        }
        Err(Errno::NOENT) => return Ok(()),
        Err(error) => return Err(at(path, error.into())),
    };
    if depth >= REMOVE_DEPTH_MAX {
        return Err(io::Error::other(format!(
            "{} is deeper than {REMOVE_DEPTH_MAX} levels; not removing it",
            path.display()
        )));
    }
    // Names first, then removals: a directory is not changed while it is read.
    let mut names = Vec::new();
    let mut reader = rustix::fs::Dir::read_from(&dir).map_err(|e| at(path, e.into()))?;
    while let Some(entry) = reader.read() {
        let entry = entry.map_err(|e| at(path, e.into()))?;
        let bytes = entry.file_name().to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(entry.file_name().to_owned());
        }
    }
    drop(reader);
    for entry in names {
        let shown = path.join(entry.to_string_lossy().as_ref());
        match entry.to_str() {
            Ok(child) => remove_below(&dir, child, &shown, depth + 1)?,
            // A name that is not UTF-8 (planted by hand): removed if it is no directory.
            Err(_) => rustix::fs::unlinkat(&dir, entry.as_c_str(), AtFlags::empty())
                .map_err(|e| at(&shown, e.into()))?,
        }
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(|e| at(path, e.into()))
}

#[cfg(test)]
mod tests;
