//! The checks every path of a tree passes, whoever made it: a `.torrent` from elsewhere, a
//! peer (next), or our own walk of a directory. A path that passes can be joined, component
//! by component, beneath the directory a tree is placed in, and no two such paths name the
//! same file on a case-insensitive file system.
//!
//! The top-level name is a name as the network knows it ([`crate::wire::name_problem`]: no
//! leading dot, since hidden names are the node's own). Inner components may start with a
//! dot: `.gitattributes` and `.pad/` are common in model and dataset trees.

use super::TreeFile;

/// Longest path component: Linux's `NAME_MAX` (and most file systems' limit).
pub const COMPONENT_BYTES_MAX: usize = crate::wire::NAME_BYTES_MAX;
/// Longest path, the top-level name and its components joined by `/`: macOS's `PATH_MAX`,
/// which leaves 3 KiB of Linux's 4,096 for the directory the tree is placed in.
pub const PATH_BYTES_MAX: usize = 1024;
/// Most components below the top-level name: trees nest 6 levels in the goal of issue 17,
/// and rarely 20 (`node_modules`); 64 keeps a walk's open directories and a crafted list
/// of one-byte components bounded.
pub const PATH_COMPONENTS_MAX: usize = 64;
/// Most files in a tree, pad files counted: 6.5 times the 10,000 of issue 17's goal, and a
/// file index still fits in 16 bits (0 to 65,535) for the wire.
pub const FILES_MAX: usize = 1 << 16;

/// Why one component of a path inside a tree is refused, if it is: the rules of
/// [`crate::wire::name_problem`] but for a leading dot (allowed inside a tree) and `..`
/// inside a longer name (`a..b` is a plain name; only `.` and `..` themselves move).
pub fn component_problem(component: &[u8]) -> Option<&'static str> {
    if component.is_empty() {
        return Some("a path component is empty");
    }
    if component.len() > COMPONENT_BYTES_MAX {
        return Some("a path component is longer than 255 bytes");
    }
    let Ok(text) = std::str::from_utf8(component) else {
        return Some("a path component is not UTF-8");
    };
    if text == "." || text == ".." {
        return Some("a path component is '.' or '..'");
    }
    if text.contains(['/', '\\']) {
        return Some("a path component contains a path separator");
    }
    // Covers NUL, the other C0 controls, DEL and the C1 controls.
    if text.chars().any(char::is_control) {
        return Some("a path component contains NUL or a control character");
    }
    None
}

/// Why a whole path (components already checked one by one) is refused, if it is.
pub fn path_problem(name: &str, path: &[String]) -> Option<&'static str> {
    if path.is_empty() {
        return Some("a file has an empty path");
    }
    if path.len() > PATH_COMPONENTS_MAX {
        return Some("a path is more than 64 components deep");
    }
    let joined_bytes = path
        .iter()
        .fold(name.len(), |sum, component| sum + 1 + component.len());
    if joined_bytes > PATH_BYTES_MAX {
        return Some("a path is longer than 1,024 bytes");
    }
    None
}

/// The first two files (by index) that would be the same file on a case-insensitive file
/// system, or a file that would have to be a directory too (`a` and `a/b`): none of them
/// could be placed. Pad files are left out: they are never written, and libtorrent names
/// every pad file of a size alike (`.pad/16384`).
///
/// Case is folded as `to_uppercase` then `to_lowercase`, close to Unicode's full case
/// folding (`ß`, `SS` and `ẞ` meet); names equal only under Unicode normalization (NFC
/// against NFD, as macOS stores them) are not caught here.
pub fn collision(files: &[TreeFile]) -> Option<(usize, usize)> {
    let mut folded: Vec<(Vec<String>, usize)> = files
        .iter()
        .enumerate()
        .filter(|(_, file)| !file.is_pad())
        .map(|(index, file)| {
            let path = file
                .path()
                .iter()
                .map(|component| fold_case(component))
                .collect();
            (path, index)
        })
        .collect();
    folded.sort_unstable();
    // Sorted by components, a path that is a prefix of others comes right before the
    // first of them, so neighbours are enough.
    folded.windows(2).find_map(|pair| {
        let (shorter, first) = &pair[0];
        let (longer, second) = &pair[1];
        longer
            .starts_with(shorter)
            .then(|| ((*first).min(*second), (*first).max(*second)))
    })
}

/// `component` with its case folded as [`collision`] says; an ASCII name (most are) in
/// one step, which gives the same.
fn fold_case(component: &str) -> String {
    if component.is_ascii() {
        component.to_ascii_lowercase()
    } else {
        component.to_uppercase().to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &[&str]) -> TreeFile {
        TreeFile::new(path.iter().map(|c| c.to_string()).collect(), 1, false)
    }

    #[test]
    fn components_from_outside_are_checked() {
        for good in [
            &b".gitattributes"[..],
            b"a..b",
            b"...",
            b"model-00001-of-00002.safetensors",
            "caf\u{e9} \u{1f600}".as_bytes(),
            &[b'x'; 255],
        ] {
            assert_eq!(component_problem(good), None, "{}", good.escape_ascii());
        }
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"a/b",
            b"a\\b",
            b"a\0b",
            b"line\nbreak",
            b"\x7f",
            "c1\u{85}".as_bytes(),
            b"\xff\xfe",
            &[b'x'; 256],
        ] {
            assert!(component_problem(bad).is_some(), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn paths_are_bounded_in_depth_and_length() {
        let component = |n: usize| vec!["d".to_string(); n];
        assert_eq!(path_problem("top", &component(PATH_COMPONENTS_MAX)), None);
        assert!(path_problem("top", &component(PATH_COMPONENTS_MAX + 1)).is_some());
        assert!(path_problem("top", &[]).is_some());
        // "top/" and then 1,020 bytes: exactly the limit.
        let long = vec![
            "x".repeat(255),
            "x".repeat(255),
            "x".repeat(255),
            "x".repeat(252),
        ];
        assert_eq!(path_problem("top", &long), None);
        let longer = vec![
            "x".repeat(255),
            "x".repeat(255),
            "x".repeat(255),
            "x".repeat(253),
        ];
        assert!(path_problem("top", &longer).is_some());
    }

    #[test]
    fn ascii_names_fold_as_the_unicode_way_does() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        assert_eq!(
            fold_case(&every_ascii),
            every_ascii.to_uppercase().to_lowercase()
        );
        assert_eq!(fold_case("Stra\u{df}e"), "strasse");
    }

    #[test]
    fn collisions_on_a_case_insensitive_file_system() {
        assert_eq!(
            collision(&[file(&["a"]), file(&["b"]), file(&["c", "a"])]),
            None
        );
        assert_eq!(
            collision(&[file(&["a", "x"]), file(&["b"]), file(&["a", "x"])]),
            Some((0, 2))
        );
        assert_eq!(
            collision(&[file(&["README"]), file(&["readme"])]),
            Some((0, 1))
        );
        assert_eq!(
            collision(&[file(&["Dir", "f"]), file(&["dir", "F"])]),
            Some((0, 1))
        );
        assert_eq!(
            collision(&[file(&["stra\u{df}e"]), file(&["STRASSE"])]),
            Some((0, 1))
        );
        // A file where another needs a directory.
        assert_eq!(
            collision(&[file(&["a", "b", "c"]), file(&["A", "b"])]),
            Some((0, 1))
        );
        // Pad files are never written: libtorrent repeats their names.
        let pad = || TreeFile::pad(vec![".pad".into(), "16384".into()], 16_384);
        assert_eq!(collision(&[file(&["a"]), pad(), file(&["b"]), pad()]), None);
    }
}
