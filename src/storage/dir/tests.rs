use super::*;
use std::os::unix::fs::symlink;

/// A fresh scratch directory and, beside it, an "outside" directory a link may point into.
fn scratch(tag: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("torrent-dir-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (inside, outside) = (base.join("inside"), base.join("outside"));
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    (inside, outside)
}

fn clean(inside: &Path) {
    let _ = std::fs::remove_dir_all(inside.parent().unwrap());
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn components_are_single_names() {
    for bad in ["", ".", "..", "a/b", "/a", "a\0b"] {
        assert!(check_component(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["a", ".torrent", "a..b", "x.part"] {
        assert!(check_component(good).is_ok(), "{good:?} refused");
    }
}

#[test]
fn only_regular_files_open_and_nothing_blocks_or_follows() {
    let (inside, outside) = scratch("regular");
    let dir = Dir::open_root(&inside).unwrap();
    std::fs::write(inside.join("plain"), b"data").unwrap();
    let mut text = String::new();
    dir.open_regular("plain", Access::Read)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "data");

    // A link to a file outside: refused for reading and for writing, the target untouched.
    std::fs::write(outside.join("target"), b"precious").unwrap();
    symlink(outside.join("target"), inside.join("link")).unwrap();
    for access in [Access::Read, Access::Write, Access::ReadWriteCreate] {
        let error = dir.open_regular("link", access).unwrap_err();
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
    }
    // A dangling link is not created through either.
    symlink(outside.join("new"), inside.join("dangling")).unwrap();
    assert!(
        dir.open_regular("dangling", Access::ReadWriteCreate)
            .is_err()
    );
    assert!(!outside.join("new").exists());
    assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"precious");

    // A FIFO with no writer would block an open for reading forever: refused at once.
    mkfifo(&inside.join("fifo"));
    let error = dir.open_regular("fifo", Access::Read).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("fifo is a FIFO, not a regular file"),
        "{error}"
    );
    let _listener = std::os::unix::net::UnixListener::bind(inside.join("socket")).unwrap();
    let error = dir.open_regular("socket", Access::Read).unwrap_err();
    assert!(error.to_string().contains("is a socket"), "{error}");
    std::fs::create_dir(inside.join("sub")).unwrap();
    let error = dir.open_regular("sub", Access::Read).unwrap_err();
    assert!(error.to_string().contains("is a directory"), "{error}");
    assert!(!dir.contains("missing") && dir.contains("dangling") && dir.contains("fifo"));

    // A path the user names (a `.torrent`): links followed, a FIFO refused at once.
    assert_eq!(read_named_file(&inside.join("link"), 4).unwrap(), b"prec");
    let error = read_named_file(&inside.join("fifo"), 4).unwrap_err();
    assert!(error.to_string().contains("is a FIFO"), "{error}");

    // A hard link to a file elsewhere: read, never written.
    std::fs::hard_link(outside.join("target"), inside.join("hard")).unwrap();
    assert!(dir.open_regular("hard", Access::Read).is_ok());
    for access in [Access::Write, Access::ReadWriteCreate] {
        let error = dir.open_regular("hard", access).unwrap_err();
        assert!(error.to_string().contains("has 2 names"), "{error}");
    }
    assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"precious");

    // A device is refused without being opened (root alone may make one).
    if rustix::process::geteuid().is_root() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            inside.join("null"),
            rustix::fs::FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        let error = dir.open_regular("null", Access::Read).unwrap_err();
        assert!(
            error.to_string().contains("is a character device"),
            "{error}"
        );
    }
    clean(&inside);
}

#[test]
fn state_directories_must_be_real_and_private() {
    let (inside, outside) = scratch("private");
    let dir = Dir::open_root(&inside).unwrap();
    let made = dir.private_subdir("state").unwrap();
    let mode = std::fs::metadata(made.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // Opened again: fine.
    dir.private_subdir("state").unwrap();

    symlink(&outside, inside.join("linked")).unwrap();
    let error = dir.private_subdir("linked").unwrap_err();
    assert!(error.to_string().contains("is a symbolic link"), "{error}");
    std::fs::write(inside.join("file"), b"").unwrap();
    let error = dir.private_subdir("file").unwrap_err();
    assert!(error.to_string().contains("is a regular file"), "{error}");

    std::fs::create_dir(inside.join("open")).unwrap();
    std::fs::set_permissions(inside.join("open"), PermissionsExt::from_mode(0o777)).unwrap();
    // Writable by others: made private, not refused (an older version, a umask of 002).
    dir.private_subdir("open").unwrap();
    let mode = std::fs::metadata(inside.join("open"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o755);

    if rustix::process::geteuid().is_root() {
        std::fs::create_dir(inside.join("theirs")).unwrap();
        std::os::unix::fs::chown(inside.join("theirs"), Some(65534), None).unwrap();
        let error = dir.private_subdir("theirs").unwrap_err();
        assert!(
            error.to_string().contains("is owned by user 65534"),
            "{error}"
        );
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    clean(&inside);
}

#[test]
fn atomic_writes_replace_a_planted_link_not_its_target() {
    let (inside, outside) = scratch("atomic");
    let dir = Dir::open_root(&inside).unwrap();
    std::fs::write(outside.join("target"), b"precious").unwrap();
    symlink(outside.join("target"), inside.join("identity")).unwrap();
    dir.write_atomically("identity", b"token").unwrap();
    assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"precious");
    assert_eq!(std::fs::read(inside.join("identity")).unwrap(), b"token");
    assert!(
        !std::fs::symlink_metadata(inside.join("identity"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(dir.read_bounded("identity", 5).unwrap(), b"token");
    assert!(dir.read_bounded("identity", 4).is_err(), "over the bound");
    clean(&inside);
}

#[test]
fn publishing_moves_only_the_file_opened_and_replaces_nothing() {
    let (inside, outside) = scratch("publish");
    let files = Dir::open_root(&inside).unwrap();
    let state = files.private_subdir("state").unwrap();
    std::fs::write(inside.join("state").join("a.part"), b"verified").unwrap();
    let opened = state.open_regular("a.part", Access::Read).unwrap();

    // Another file (here a link to one outside) under the name: not published.
    std::fs::rename(
        inside.join("state").join("a.part"),
        inside.join("state").join("kept"),
    )
    .unwrap();
    std::fs::write(outside.join("target"), b"precious").unwrap();
    symlink(outside.join("target"), inside.join("state").join("a.part")).unwrap();
    let error = state.publish("a.part", &opened, &files, "a").unwrap_err();
    assert!(error.to_string().contains("no longer the file"), "{error}");
    assert!(!files.contains("a"));
    std::fs::remove_file(inside.join("state").join("a.part")).unwrap();
    std::fs::rename(
        inside.join("state").join("kept"),
        inside.join("state").join("a.part"),
    )
    .unwrap();

    // Something already under the final name (even a dangling link): kept, not replaced.
    symlink(outside.join("nowhere"), inside.join("a")).unwrap();
    let error = state.publish("a.part", &opened, &files, "a").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
    std::fs::remove_file(inside.join("a")).unwrap();

    state.publish("a.part", &opened, &files, "a").unwrap();
    assert_eq!(std::fs::read(inside.join("a")).unwrap(), b"verified");
    assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"precious");
    clean(&inside);
}

#[test]
fn a_second_lock_is_refused_and_names_the_holder() {
    let (inside, _) = scratch("lock");
    let dir = Dir::open_root(&inside).unwrap();
    let held = dir.lock("lock").unwrap();
    let error = dir.lock("lock").unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ResourceBusy);
    assert!(
        error
            .to_string()
            .contains(&format!("in use by process {}", std::process::id())),
        "{error}"
    );
    drop(held);
    dir.lock("lock").unwrap();
    clean(&inside);
}

#[test]
fn names_are_listed_up_to_the_bound() {
    let (inside, _) = scratch("names");
    let dir = Dir::open_root(&inside).unwrap();
    for name in ["b", "a", "c"] {
        std::fs::write(inside.join(name), b"").unwrap();
    }
    let mut names = dir.names().unwrap();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    clean(&inside);
}
