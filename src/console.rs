//! The node's console: one typed line in, one [`Command`] out. Pure: no I/O, and lines are
//! bounded by [`LINE_BYTES_MAX`] before anything else is looked at (so are the words copied
//! out of them).
//!
//! The original's syntax, `torrent -setMode send|download|exit ...`, and short forms of it.
//! Words are separated by any run of whitespace (spaces, tabs, a trailing `\r`) and quoted as
//! a shell quotes them, so that names with spaces can be typed: `send "my file.bin"`,
//! `send 'my file.bin'`, `send my\ file.bin` ([`words`]). Keywords are matched without regard
//! to ASCII case; file names are matched exactly and checked with [`wire::name_problem`], as
//! names from the network are (quoting lets a space through, never a separator, `..`, a
//! control character or a leading `.`).
//!
//! `download` takes an optional version pin, `<file>@<info hash>` with 40 hex digits. The last
//! `@` of the word starts the pin, so a name that itself contains `@` is downloaded pinned
//! (`me@home.txt@<hash>`); `download me@home.txt` is refused as a bad info hash.

use crate::wire;
use std::fmt;

/// Longest console line accepted, in bytes (a name is at most 255, so this is generous).
pub const LINE_BYTES_MAX: usize = 4096;

/// The help text: every command, one line each.
pub const HELP: &str = "\
commands:
  torrent -setMode send <file>           share <file> from this node's directory
  torrent -setMode download <file>[@<info hash>]
                                         download <file>; '@' and 40 hex digits pin one version
  torrent -setMode download <x.torrent>|<info hash>|<magnet link>
                                         download by info hash (what a standard udp://
                                         tracker finds peers by); the name comes from the
                                         .torrent, the magnet link or the peers
  torrent -setMode export <file>         write <file>.torrent (standard BitTorrent) here
  torrent -setMode exit                  tell the tracker this node leaves, then quit
  send <file>                            short for 'torrent -setMode send <file>'; a
                                         directory is shared as one tree
  send <path>/<file>                     share a file or directory where it is (any path
                                         with a '/'), under its own name, without copying
  send <dir> --torrent <x.torrent>       share the tree <dir> under the info hash of a
                                         multi-file .torrent made elsewhere, checked
  download <file>[@<info hash>]          short for 'torrent -setMode download <file>'
                                         (also <x.torrent>, <info hash>, <magnet link>)
  download <file> --output <dir>         publish it in <dir> (created if missing), its
                                         partial data kept there too, not here
  export <file>                          short for 'torrent -setMode export <file>'
  unshare <file>                         stop sharing <file> (it stays in the directory)
  pause <download>                       stop a download for now (<download>: its id, as
                                         status shows it, or its file name); its partial
                                         file stays, and chunks verified are still served
  resume <download>                      go on with a paused download
  cancel <download> [--keep-partial]     stop a download for good and remove its partial
                                         file (kept with --keep-partial: 'download' resumes)
  limit up|down <rate>|off               the node's upload or download limit from now on,
                                         e.g. 'limit down 8M' (bytes a second)
  list [<from>]                          a page of the files the tracker offers (name,
                                         size, holders, info hash), from <from> on
  exit, quit                             short for 'torrent -setMode exit'
  status                                 show what this node shares and downloads, with
                                         a magnet link for each complete file
  peers                                  the peers each download uses (rate, round trip,
                                         losses, window) and those this node uploaded to
  help                                   show this text
a name with spaces is quoted as in a shell: send \"my file.bin\", send 'my file.bin',
send my\\ file.bin (a backslash keeps a space, a quote or a backslash as it is)";

/// One parsed console line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// An empty or all-whitespace line.
    Nothing,
    Help,
    Status,
    /// The peers of each running download, and those the node uploaded to.
    Peers,
    /// Share a file (or a directory, as a tree) from the node's directory.
    Send {
        name: String,
    },
    /// Share a file or directory where it is (a path with a `/`), under its own name,
    /// without copying it into the node's directory.
    SendAt {
        path: String,
    },
    /// Share the tree a multi-file `.torrent` made elsewhere describes (found at `path`, as
    /// `download` finds one), under its info hash: the directory of its name in the node's
    /// directory, checked against its piece hashes. `name`, when given, must be its name.
    ShareTorrent {
        name: Option<String>,
        path: String,
    },
    /// Download a file by name; with `pin`, only the version with that info hash.
    Download {
        name: String,
        pin: Option<wire::Hash>,
    },
    /// Download by info hash alone (a standard tracker finds peers by it): a 40-hex word or a
    /// magnet link. The name, when known, must be the manifest's; otherwise the manifest's
    /// name (checked like any name from the network) is used.
    DownloadByHash {
        info_hash: wire::Hash,
        name: Option<String>,
    },
    /// Download what a `.torrent` describes: a word ending in `.torrent`, a path the node
    /// reads (relative to its working directory, else to its files directory).
    DownloadTorrent {
        path: String,
    },
    /// One of the three downloads above, published into `output` (a directory the user
    /// names, created if missing) rather than the node's directory.
    DownloadTo {
        download: Box<Command>,
        output: String,
    },
    /// Write a standard `.torrent` of a held file into the node's directory.
    Export {
        name: String,
    },
    /// Change the node's upload or download limit now, or both; a side given `None` is
    /// left as it is.
    Limit {
        up: Option<NewLimit>,
        down: Option<NewLimit>,
    },
    /// Stop sharing a file: peers are refused it at once and the tracker is told. The file
    /// stays where it is.
    Unshare {
        name: String,
    },
    /// Ask the tracker for a page of what it offers; `page_entries` 0 for as many as fit.
    List {
        from: ListFrom,
        page_entries: u8,
    },
    /// Stop a running download for now: nothing is asked or taken for it; its partial
    /// file stays. `target` is its id or the name (or hex info hash) it fetches.
    Pause {
        target: String,
    },
    /// Go on with a paused download.
    Resume {
        target: String,
    },
    /// Stop a running or paused download for good, removing its partial file unless
    /// `keep_partial`.
    Cancel {
        target: String,
        keep_partial: bool,
    },
    /// Tell the tracker we leave, then stop.
    Exit,
}

/// A console line, parsed: a command, or why it is refused.
pub type Parsed = Result<Command, ConsoleError>;

/// A limit set at runtime: bytes a second, or `None` for no limit.
pub type NewLimit = Option<u64>;
/// Where a page of the tracker's list starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListFrom {
    /// The first file.
    Start,
    /// The first file of this name, or the first after it.
    Name(String),
    /// Just after this entry: the last of the page before.
    After { name: String, info_hash: wire::Hash },
}

/// Why a console line was refused. Each prints as one line for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleError {
    /// The first word is no command.
    Unknown(String),
    /// `torrent` without `-setMode <mode>`.
    MissingMode,
    /// `torrent -setMode` followed by something other than send, download, export or exit.
    UnknownMode(String),
    /// The mode (`send`, `download`, `export` or `unshare`) needs a file name.
    MissingName(&'static str),
    /// `pause`, `resume` or `cancel` without the download's id or name.
    MissingDownload(&'static str),
    /// The name fails [`wire::name_problem`], which says why.
    BadName { name: String, problem: &'static str },
    /// The text after `@` is not 40 hex digits.
    BadInfoHash(String),
    /// A `magnet:` word that [`crate::metainfo::parse_magnet`] refused, with its reason.
    BadMagnet(String),
    /// Words after a complete command.
    TooManyWords,
    /// The line is longer than [`LINE_BYTES_MAX`].
    LineTooLong { bytes: usize },
    /// A `'` or `"` opened a quote that the line does not close.
    UnterminatedQuote(char),
    /// The line ends in a backslash, which escapes nothing.
    TrailingBackslash,
    /// `limit up` without a rate like `8M` or `off`.
    BadRate(String),
    /// `send <dir> --torrent` without the `.torrent`'s path.
    MissingTorrent,
    /// `download <file> --output` without the directory.
    MissingOutput,
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Typed text is shown escaped so that a control character cannot break the line.
        match self {
            ConsoleError::Unknown(word) => write!(
                f,
                "unknown command '{}'; type 'help' for the commands",
                word.escape_debug()
            ),
            ConsoleError::MissingMode => {
                write!(f, "'torrent' needs '-setMode send|download|export|exit'")
            }
            ConsoleError::UnknownMode(mode) => write!(
                f,
                "unknown mode '{}'; the modes are send, download, export and exit",
                mode.escape_debug()
            ),
            ConsoleError::MissingOutput => write!(
                f,
                "'--output' needs a directory, as in 'download file_A.txt --output /data/in'"
            ),
            ConsoleError::MissingTorrent => write!(
                f,
                "'--torrent' needs the path of a .torrent, as in 'send model --torrent model.torrent'"
            ),
            ConsoleError::MissingName(mode) => {
                write!(f, "'{mode}' needs a file name, as in '{mode} file_A.txt'")
            }
            ConsoleError::MissingDownload(command) => write!(
                f,
                "'{command}' needs a download: its id as 'status' shows it, or its file name, as in '{command} 1'"
            ),
            ConsoleError::BadName { name, problem } => {
                write!(
                    f,
                    "cannot use the name '{}': {problem}",
                    name.escape_debug()
                )
            }
            ConsoleError::BadInfoHash(text) => write!(
                f,
                "bad info hash '{}': expected 40 hex digits after '@'",
                text.escape_debug()
            ),
            ConsoleError::BadMagnet(reason) => {
                write!(f, "bad magnet link: {}", reason.escape_debug())
            }
            ConsoleError::TooManyWords => write!(
                f,
                "too many words (quote a name with spaces: send \"my file.bin\"); type 'help' for the commands"
            ),
            ConsoleError::UnterminatedQuote(quote) => write!(
                f,
                "unterminated {quote} quote: close it, as in send \"my file.bin\" or send 'my file.bin', or escape a quote in a name with a backslash (Bob\\'s.txt); type 'help' for the commands"
            ),
            ConsoleError::BadRate(text) => write!(
                f,
                "'{}' is not a rate: give bytes a second (K/M/G = 2^10/2^20/2^30), as in 'limit up 8M' or 'limit down 8M', or 'limit up off'",
                text.escape_debug()
            ),
            ConsoleError::TrailingBackslash => write!(
                f,
                "the line ends in a backslash, which escapes nothing (send my\\ file.bin escapes a space); type 'help' for the commands"
            ),
            ConsoleError::LineTooLong { bytes } => {
                write!(f, "line too long: {bytes} bytes, at most {LINE_BYTES_MAX}")
            }
        }
    }
}

impl std::error::Error for ConsoleError {}

/// Parses one console line (with or without its line ending).
pub fn parse(line: &str) -> Result<Command, ConsoleError> {
    if line.len() > LINE_BYTES_MAX {
        return Err(ConsoleError::LineTooLong { bytes: line.len() });
    }
    let words = words(line)?;
    let mut words = words.iter().map(String::as_str);
    let Some(first) = words.next() else {
        return Ok(Command::Nothing);
    };
    let is = |word: &str, keyword: &str| word.eq_ignore_ascii_case(keyword);
    let command = if is(first, "torrent") {
        match words.next() {
            Some(flag) if is(flag, "-setMode") => {}
            _ => return Err(ConsoleError::MissingMode),
        }
        let mode = words.next().ok_or(ConsoleError::MissingMode)?;
        if is(mode, "send") {
            send(words.next())?
        } else if is(mode, "download") {
            download(words.next())?
        } else if is(mode, "export") {
            export(words.next())?
        } else if is(mode, "exit") {
            Command::Exit
        } else {
            return Err(ConsoleError::UnknownMode(mode.to_owned()));
        }
    } else if is(first, "send") {
        let command = send(words.next())?;
        match (command, words.next()) {
            (Command::Send { name }, Some(flag)) if is(flag, "--torrent") => {
                let path = words.next().ok_or(ConsoleError::MissingTorrent)?;
                Command::ShareTorrent {
                    name: Some(name),
                    path: path.to_owned(),
                }
            }
            (_, Some(_)) => return Err(ConsoleError::TooManyWords),
            (command, None) => command,
        }
    } else if is(first, "download") {
        let command = download(words.next())?;
        match words.next() {
            Some(flag) if is(flag, "--output") => {
                let output = words.next().ok_or(ConsoleError::MissingOutput)?;
                Command::DownloadTo {
                    download: Box::new(command),
                    output: output.to_owned(),
                }
            }
            Some(_) => return Err(ConsoleError::TooManyWords),
            None => command,
        }
    } else if is(first, "export") {
        export(words.next())?
    } else if is(first, "limit") {
        match (words.next(), words.next()) {
            (Some(direction), Some(rate)) if is(direction, "up") => Command::Limit {
                up: Some(parse_rate(rate)?),
                down: None,
            },
            (Some(direction), Some(rate)) if is(direction, "down") => Command::Limit {
                up: None,
                down: Some(parse_rate(rate)?),
            },
            (_, rate) => return Err(ConsoleError::BadRate(rate.unwrap_or("").to_owned())),
        }
    } else if is(first, "unshare") {
        let name = checked_name(words.next().ok_or(ConsoleError::MissingName("unshare"))?)?;
        Command::Unshare { name }
    } else if is(first, "pause") {
        let target = words.next().ok_or(ConsoleError::MissingDownload("pause"))?;
        Command::Pause {
            target: target.to_owned(),
        }
    } else if is(first, "resume") {
        let target = words
            .next()
            .ok_or(ConsoleError::MissingDownload("resume"))?;
        Command::Resume {
            target: target.to_owned(),
        }
    } else if is(first, "cancel") {
        let target = words
            .next()
            .ok_or(ConsoleError::MissingDownload("cancel"))?;
        let keep_partial = match words.next() {
            None => false,
            Some(flag) if is(flag, "--keep-partial") => true,
            Some(_) => return Err(ConsoleError::TooManyWords),
        };
        Command::Cancel {
            target: target.to_owned(),
            keep_partial,
        }
    } else if is(first, "exit") || is(first, "quit") {
        Command::Exit
    } else if is(first, "list") {
        let from = match words.next() {
            Some(name) => ListFrom::Name(checked_name(name)?),
            None => ListFrom::Start,
        };
        Command::List {
            from,
            page_entries: 0,
        }
    } else if is(first, "status") {
        Command::Status
    } else if is(first, "peers") {
        Command::Peers
    } else if is(first, "help") {
        Command::Help
    } else {
        return Err(ConsoleError::Unknown(first.to_owned()));
    };
    if words.next().is_some() {
        return Err(ConsoleError::TooManyWords);
    }
    Ok(command)
}

/// Splits a line into words as a POSIX shell would, without expanding anything: whitespace
/// outside quotes separates words; `'...'` keeps everything inside as it is; `"..."` too,
/// except that a backslash before `"`, `\\`, `$` or `` ` `` stands for that character; outside
/// quotes a backslash before whitespace, a quote or a backslash stands for that character
/// (elsewhere it is kept, where a shell would drop it, so that `a\b` is refused as a name
/// rather than taken for `ab`). `''` and `""` are an empty word. The words together are no
/// longer than the line.
pub fn words(line: &str) -> Result<Vec<String>, ConsoleError> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(ConsoleError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(ConsoleError::UnterminatedQuote('"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(ConsoleError::UnterminatedQuote('"')),
                    }
                }
            }
            '\\' => {
                let word = word.get_or_insert_with(String::new);
                match chars.next() {
                    Some(c) if c.is_whitespace() || matches!(c, '\'' | '"' | '\\') => word.push(c),
                    // Nothing to escape: the backslash stays, and a name check refuses it
                    // (`a\b` is not quietly `ab`).
                    Some(c) => {
                        word.push('\\');
                        word.push(c);
                    }
                    None => return Err(ConsoleError::TrailingBackslash),
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(done) = word {
        words.push(done);
    }
    Ok(words)
}

fn send(word: Option<&str>) -> Result<Command, ConsoleError> {
    let word = word.ok_or(ConsoleError::MissingName("send"))?;
    if word.contains('/') {
        // A path: the file or directory is shared where it is, under its own name.
        return Ok(Command::SendAt {
            path: word.to_owned(),
        });
    }
    Ok(Command::Send {
        name: checked_name(word)?,
    })
}

fn export(word: Option<&str>) -> Result<Command, ConsoleError> {
    let name = checked_name(word.ok_or(ConsoleError::MissingName("export"))?)?;
    Ok(Command::Export { name })
}

/// A rate as the flags take it (`8M`, `500K`, bytes a second), or `off` for none.
pub fn parse_rate(text: &str) -> Result<Option<u64>, ConsoleError> {
    if text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    match crate::cli::parse_bytes(text) {
        Some(rate) if rate > 0 => Ok(Some(rate)),
        _ => Err(ConsoleError::BadRate(text.to_owned())),
    }
}

fn download(word: Option<&str>) -> Result<Command, ConsoleError> {
    parse_download(word.ok_or(ConsoleError::MissingName("download"))?)
}

/// What `download WORD` (or `--download WORD`) asks for: a `.torrent` path (a word ending in
/// `.torrent`, longer than the suffix), a magnet link, a bare 40-hex info hash, or a name
/// with an optional `@<info hash>` pin. A file whose name ends in `.torrent` is downloaded
/// by name when pinned (`x.torrent@<info hash>`).
pub fn parse_download(word: &str) -> Result<Command, ConsoleError> {
    let suffix = crate::metainfo::TORRENT_SUFFIX;
    if word.len() > suffix.len() && word.ends_with(suffix) && !word.contains('@') {
        return Ok(Command::DownloadTorrent {
            path: word.to_owned(),
        });
    }
    if word.starts_with("magnet:") {
        let (info_hash, name) =
            crate::metainfo::parse_magnet(word).map_err(ConsoleError::BadMagnet)?;
        return Ok(Command::DownloadByHash { info_hash, name });
    }
    if let Some(info_hash) = wire::parse_hex(word) {
        return Ok(Command::DownloadByHash {
            info_hash,
            name: None,
        });
    }
    let (name, pin) = match word.rsplit_once('@') {
        Some((name, hex)) => {
            let hash = wire::parse_hex(hex).ok_or_else(|| ConsoleError::BadInfoHash(hex.into()))?;
            (name, Some(hash))
        }
        None => (word, None),
    };
    Ok(Command::Download {
        name: checked_name(name)?,
        pin,
    })
}

fn checked_name(name: &str) -> Result<String, ConsoleError> {
    match wire::name_problem(name.as_bytes()) {
        Some(problem) => Err(ConsoleError::BadName {
            name: name.to_owned(),
            problem,
        }),
        None => Ok(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_HEX: &str = "0123456789abcdef0123456789ABCDEF01234567";

    fn send(name: &str) -> Result<Command, ConsoleError> {
        Ok(Command::Send { name: name.into() })
    }

    fn download(name: &str, pin: Option<&str>) -> Result<Command, ConsoleError> {
        let pin = pin.map(|hex| wire::parse_hex(hex).unwrap());
        Ok(Command::Download {
            name: name.into(),
            pin,
        })
    }

    #[test]
    fn seed_syntax() {
        assert_eq!(
            parse("torrent -setMode send file_A.txt"),
            send("file_A.txt")
        );
        assert_eq!(
            parse("torrent -setMode download file_A.txt"),
            download("file_A.txt", None)
        );
        assert_eq!(parse("torrent -setMode exit"), Ok(Command::Exit));
        assert_eq!(
            parse("torrent -setMode export file_A.txt"),
            Ok(Command::Export {
                name: "file_A.txt".into()
            })
        );
    }

    #[test]
    fn a_tree_is_shared_under_a_torrent_made_elsewhere() {
        assert_eq!(
            parse("send model --torrent 'their model.torrent'"),
            Ok(Command::ShareTorrent {
                name: Some("model".into()),
                path: "their model.torrent".into()
            })
        );
        use ConsoleError::*;
        assert_eq!(
            parse("download model --output '/data/in here'"),
            Ok(Command::DownloadTo {
                download: Box::new(download("model", None).unwrap()),
                output: "/data/in here".into()
            })
        );
        assert_eq!(parse("download model --output"), Err(MissingOutput));
        assert_eq!(parse("download model --output a b"), Err(TooManyWords));
        assert_eq!(parse("send model --torrent"), Err(MissingTorrent));
        assert_eq!(parse("send model --torrent a b"), Err(TooManyWords));
        assert_eq!(parse("send model --other a"), Err(TooManyWords));
    }

    #[test]
    fn short_forms() {
        assert_eq!(parse("send file_A.txt"), send("file_A.txt"));
        assert_eq!(parse("download file_A.txt"), download("file_A.txt", None));
        assert_eq!(parse("exit"), Ok(Command::Exit));
        assert_eq!(parse("quit"), Ok(Command::Exit));
        assert_eq!(
            parse("unshare 'a b.bin'"),
            Ok(Command::Unshare {
                name: "a b.bin".into()
            })
        );
        assert_eq!(parse("unshare"), Err(ConsoleError::MissingName("unshare")));
        assert_eq!(
            parse("limit up 8M"),
            Ok(Command::Limit {
                up: Some(Some(8 << 20)),
                down: None,
            })
        );
        assert_eq!(
            parse("LIMIT up off"),
            Ok(Command::Limit {
                up: Some(None),
                down: None,
            })
        );
        assert_eq!(
            parse("limit down 512K"),
            Ok(Command::Limit {
                up: None,
                down: Some(Some(512 << 10)),
            })
        );
        assert!(matches!(parse("limit up 0"), Err(ConsoleError::BadRate(_))));
        assert!(matches!(
            parse("limit sideways 8M"),
            Err(ConsoleError::BadRate(_))
        ));
        assert!(matches!(parse("limit"), Err(ConsoleError::BadRate(_))));
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse("peers"), Ok(Command::Peers));
        assert_eq!(parse("pause 3"), Ok(Command::Pause { target: "3".into() }));
        assert_eq!(
            parse("cancel big.iso --keep-partial"),
            Ok(Command::Cancel {
                target: "big.iso".into(),
                keep_partial: true
            })
        );
        assert_eq!(parse("cancel a b"), Err(ConsoleError::TooManyWords));
        assert_eq!(
            parse("resume"),
            Err(ConsoleError::MissingDownload("resume"))
        );
        assert_eq!(parse("help"), Ok(Command::Help));
        let list = |from| {
            Ok(Command::List {
                from,
                page_entries: 0,
            })
        };
        assert_eq!(parse("list"), list(ListFrom::Start));
        assert_eq!(
            parse("LIST 'a b.bin'"),
            list(ListFrom::Name("a b.bin".into()))
        );
        assert_eq!(parse("list a b"), Err(ConsoleError::TooManyWords));
        assert!(matches!(
            parse("list ../a"),
            Err(ConsoleError::BadName { .. })
        ));
        assert_eq!(
            parse("EXPORT a.txt"),
            Ok(Command::Export {
                name: "a.txt".into()
            })
        );
    }

    #[test]
    fn whitespace_and_case() {
        assert_eq!(parse(""), Ok(Command::Nothing));
        assert_eq!(parse(" \t \r\n"), Ok(Command::Nothing));
        assert_eq!(
            parse("\ttorrent   -setMode\t send  a.txt \r"),
            send("a.txt")
        );
        assert_eq!(parse("  exit\r\n"), Ok(Command::Exit));
        assert_eq!(
            parse("TORRENT -setmode DOWNLOAD A.txt"),
            download("A.txt", None)
        );
        assert_eq!(parse("Help"), Ok(Command::Help));
    }

    #[test]
    fn download_pinned() {
        let word = format!("file_A.txt@{HASH_HEX}");
        assert_eq!(
            parse(&format!("download {word}")),
            download("file_A.txt", Some(HASH_HEX))
        );
        assert_eq!(
            parse(&format!("torrent -setMode download {word}\r")),
            download("file_A.txt", Some(HASH_HEX))
        );
        // The last '@' starts the pin, so names with '@' can be pinned.
        let word = format!("me@home.txt@{HASH_HEX}");
        assert_eq!(
            parse(&format!("download {word}")),
            download("me@home.txt", Some(HASH_HEX))
        );
        // '@' is an ordinary character for send.
        assert_eq!(parse("send me@home.txt"), send("me@home.txt"));
    }

    #[test]
    fn bad_info_hash() {
        let plus = format!("+{}", &HASH_HEX[1..]);
        for pin in [
            "",
            "abc",
            &HASH_HEX[1..],
            &format!("{HASH_HEX}0"),
            &plus,
            "home.txt",
        ] {
            let line = format!("download file@{pin}");
            assert_eq!(
                parse(&line),
                Err(ConsoleError::BadInfoHash(pin.into())),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_names() {
        let long = "n".repeat(wire::NAME_BYTES_MAX + 1);
        for name in [
            "../etc/passwd",
            "a/b",
            "a\\b",
            "..",
            ".hidden",
            "a\u{1}b",
            &long,
        ] {
            // A word with a '/' is a path to share in place, not a name.
            let send = (!name.contains('/')).then(|| format!("send {name}"));
            for line in send
                .into_iter()
                .chain([format!("download {name}@{HASH_HEX}")])
            {
                let problem = wire::name_problem(name.as_bytes()).unwrap();
                let expected = ConsoleError::BadName {
                    name: name.into(),
                    problem,
                };
                assert_eq!(parse(&line), Err(expected), "{line}");
            }
        }
        let problem = wire::name_problem(b"").unwrap();
        let expected = ConsoleError::BadName {
            name: String::new(),
            problem,
        };
        assert_eq!(parse(&format!("download @{HASH_HEX}")), Err(expected));
        assert_eq!(
            parse("send a\0b").unwrap_err().to_string().lines().count(),
            1
        );
    }

    #[test]
    fn refusals() {
        use ConsoleError::*;
        let cases = [
            ("foo", Unknown("foo".into())),
            ("foo send x", Unknown("foo".into())),
            ("-setMode send x", Unknown("-setMode".into())),
            ("torrent", MissingMode),
            ("torrent send x", MissingMode),
            ("torrent -setMode", MissingMode),
            ("torrent -setMode fly x", UnknownMode("fly".into())),
            ("torrent -setMode send", MissingName("send")),
            ("send", MissingName("send")),
            ("download \r", MissingName("download")),
            ("export", MissingName("export")),
            ("send a b", TooManyWords),
            ("download a b", TooManyWords),
            ("exit now", TooManyWords),
            ("torrent -setMode exit now", TooManyWords),
            ("help me", TooManyWords),
            ("status x", TooManyWords),
        ];
        for (line, error) in cases {
            assert_eq!(parse(line), Err(error), "{line:?}");
        }
    }

    #[test]
    fn names_with_spaces_are_quoted_as_in_a_shell() {
        for line in [
            "send \"my file.bin\"",
            "send 'my file.bin'",
            "send my\\ file.bin",
            "send my' 'file.bin",
            "torrent -setMode send \"my file.bin\"\r\n",
            "  send   \"my file.bin\"  ",
        ] {
            assert_eq!(parse(line), send("my file.bin"), "{line:?}");
        }
        assert_eq!(parse("send \"Bob's file\""), send("Bob's file"));
        assert_eq!(parse("send Bob\\'s.txt"), send("Bob's.txt"));
        assert_eq!(parse("send 'say \"hi\".txt'"), send("say \"hi\".txt"));
        assert_eq!(parse("send \"say \\\"hi\\\".txt\""), send("say \"hi\".txt"));
        assert_eq!(
            parse("download \"my file.bin@0123456789abcdef0123456789ABCDEF01234567\""),
            download("my file.bin", Some(HASH_HEX))
        );
        assert_eq!(parse("\"exit\""), Ok(Command::Exit));
        assert_eq!(parse("''"), Err(ConsoleError::Unknown(String::new())));
        // Quoting lets spaces through, nothing the name checks refuse.
        for (line, path) in [("send \"../x\"", "../x"), ("send 'a/b c'", "a/b c")] {
            let path = path.to_string();
            assert_eq!(parse(line), Ok(Command::SendAt { path }), "{line:?}");
        }
        for (line, name) in [
            ("send '.hidden file'", ".hidden file"),
            ("send \"a\\\\b\"", "a\\b"),
            ("send ''", ""),
            ("send 'a\tb'", "a\tb"),
        ] {
            let problem = wire::name_problem(name.as_bytes()).unwrap();
            assert_eq!(
                parse(line),
                Err(ConsoleError::BadName {
                    name: name.into(),
                    problem
                }),
                "{line:?}"
            );
        }
        assert_eq!(
            parse("send \"my file.bin"),
            Err(ConsoleError::UnterminatedQuote('"'))
        );
        assert_eq!(
            parse("send 'my file.bin"),
            Err(ConsoleError::UnterminatedQuote('\''))
        );
        assert_eq!(
            parse("send Bob's.txt"),
            Err(ConsoleError::UnterminatedQuote('\''))
        );
        assert_eq!(parse("send my\\"), Err(ConsoleError::TrailingBackslash));
        assert_eq!(parse("send a b"), Err(ConsoleError::TooManyWords));
        for line in ["send \"a", "send 'a", "send a\\"] {
            let text = parse(line).unwrap_err().to_string();
            assert!(text.contains("help"), "{text}");
            assert_eq!(text.lines().count(), 1, "{text}");
        }
    }

    #[test]
    fn lines_are_bounded() {
        let name = "n".repeat(200);
        let padded = format!("send {name}{}", " ".repeat(LINE_BYTES_MAX - 205));
        assert_eq!(padded.len(), LINE_BYTES_MAX);
        assert_eq!(parse(&padded), send(&name));
        let long = format!("{padded} ");
        let error = ConsoleError::LineTooLong {
            bytes: LINE_BYTES_MAX + 1,
        };
        assert_eq!(parse(&long), Err(error));
    }

    #[test]
    fn errors_display_one_line() {
        assert_eq!(
            parse("foo").unwrap_err().to_string(),
            "unknown command 'foo'; type 'help' for the commands"
        );
        let lines = [
            "foo\u{1b}[2J",
            "torrent",
            "torrent -setMode x",
            "send",
            "send ..",
            "exit x",
        ];
        let bad_hash = format!("download a@{}", "z".repeat(40));
        let long = "x".repeat(LINE_BYTES_MAX + 1);
        for line in lines
            .iter()
            .copied()
            .chain([bad_hash.as_str(), long.as_str()])
        {
            let text = parse(line).unwrap_err().to_string();
            assert_eq!(text.lines().count(), 1, "{text:?}");
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
    }

    #[test]
    fn help_lists_every_command() {
        for word in [
            "-setMode send",
            "-setMode download",
            "-setMode exit",
            "send <file>",
        ] {
            assert!(HELP.contains(word), "{word}");
        }
        for word in [
            "download <file>",
            "@<info hash>",
            "exit, quit",
            "status",
            "list [<from>]",
            "help",
        ] {
            assert!(HELP.contains(word), "{word}");
        }
    }

    #[test]
    fn downloads_by_info_hash_torrent_and_magnet() {
        let hash = wire::parse_hex(HASH_HEX).unwrap();
        assert_eq!(
            parse(&format!("torrent -setMode download {HASH_HEX}")),
            Ok(Command::DownloadByHash {
                info_hash: hash,
                name: None
            })
        );
        assert_eq!(
            parse("download ../elsewhere/a.bin.torrent"),
            Ok(Command::DownloadTorrent {
                path: "../elsewhere/a.bin.torrent".into()
            })
        );
        assert_eq!(
            parse(&format!(
                "download magnet:?xt=urn:btih:{HASH_HEX}&dn=a%20b.bin&tr=x"
            )),
            Ok(Command::DownloadByHash {
                info_hash: hash,
                name: Some("a b.bin".into())
            })
        );
        // A file whose name ends in .torrent is downloaded by name when pinned.
        assert_eq!(
            parse(&format!("download a.torrent@{HASH_HEX}")),
            download("a.torrent", Some(HASH_HEX))
        );
        // The bare suffix is a (refused) name, not a path.
        assert!(matches!(
            parse("download .torrent"),
            Err(ConsoleError::BadName { .. })
        ));
        let Err(ConsoleError::BadMagnet(reason)) = parse("download magnet:?dn=x") else {
            panic!("a magnet link without an info hash was accepted")
        };
        assert!(reason.contains("info hash"), "{reason}");
    }
}
