//! `torrent ctl`: its command line. What it does is in [`crate::control`].

use super::{UsageError, directory, double_dash, options_and_words, whole_number};
use crate::control::{CtlArgs, Request};
use getopts::ParsingStyle;

const CTL_BRIEF: &str = "\
usage: torrent ctl (--dir DIR | --id N [--files-dir DIR]) [--json] COMMAND

commands:
  status                  what the node holds and does
  peers                   the peers each download uses, and those the node uploaded to
  send NAME               share NAME from the node's directory
  download TARGET [--wait]
                          download a name (NAME@<info hash> pins a version), an info
                          hash, a magnet link or a .torrent; --wait returns once it is
                          verified (exit 0) or failed (exit 1)
  download-state ID [--wait]
                          where the download with that id is; --wait returns once it
                          is verified (exit 0), or failed or cancelled (exit 1)
  export NAME             write NAME.torrent into the node's directory
  unshare NAME            stop sharing NAME at once (the file stays where it is)
  pause DOWNLOAD          stop a download for now (DOWNLOAD: its id, or its file name);
                          nothing is asked or taken for it, its partial file stays
  resume DOWNLOAD         go on with a paused download
  cancel DOWNLOAD [--keep-partial]
                          stop a download for good and remove its partial file (kept
                          with --keep-partial, for a later download to resume)
  limit [--up RATE] [--down RATE]
                          the node's upload and download limits from now on (8M,
                          500K, or off); one not given stays as it is
  list [--from NAME] [--all] [--page N]
                          the files the tracker offers, by name: one page (from NAME
                          on), or with --all every page to the end; --page N asks for
                          pages of at most N files
  list-state ID           where the list request with that id is, and its page
  exit                    the node tells the tracker it leaves, then stops

exit codes: 0 done; 1 refused or failed, or no node answers; 2 a bad command line";

pub(super) fn parse_ctl(args: &[String]) -> Result<super::Invocation, UsageError> {
    let mut opts = super::options();
    opts.parsing_style(ParsingStyle::FloatingFrees);
    opts.optopt("", "dir", "the node's directory", "DIR");
    opts.optopt(
        "",
        "id",
        "the node's id, when it uses FILES-DIR/node<N>",
        "N",
    );
    opts.optopt(
        "",
        "files-dir",
        "parent of node directories (default node_files)",
        "DIR",
    );
    opts.optflag("", "json", "print the node's JSON replies, one per line");
    opts.optflag(
        "",
        "wait",
        "with download or download-state: wait until it is verified or failed",
    );
    opts.optflag(
        "",
        "keep-partial",
        "with cancel: keep the partial file, for a later download to resume",
    );
    opts.optopt(
        "",
        "up",
        "with limit: the upload limit, e.g. 8M, or off",
        "RATE",
    );
    opts.optopt(
        "",
        "down",
        "with limit: the download limit, e.g. 8M, or off",
        "RATE",
    );
    opts.optopt(
        "",
        "output",
        "with download: publish it in this directory (created if missing)",
        "DIR",
    );
    opts.optopt(
        "",
        "torrent",
        "with send: share the tree under the info hash of this multi-file .torrent",
        "FILE",
    );
    opts.optopt("", "from", "with list: start at this name", "NAME");
    opts.optflag("", "all", "with list: follow the pages to the end");
    opts.optopt(
        "",
        "page",
        "with list: at most N files a page (1 to 64)",
        "N",
    );
    let m = options_and_words(&opts, args)?;
    if m.opt_present("help") {
        return Ok(super::Invocation::Help(double_dash(&opts.usage(CTL_BRIEF))));
    }
    // The words beside the options: the command and its argument.
    let words = &m.free;
    let dir = match (m.opt_str("dir"), m.opt_str("id")) {
        (Some(_), Some(_)) => return Err(UsageError("give --dir or --id, not both".into())),
        (Some(_), None) => directory(&m, "dir", "")?,
        (None, Some(id)) => {
            let id = whole_number("id", &id, 0, u64::from(u32::MAX))?;
            directory(&m, "files-dir", "node_files")?.join(format!("node{id}"))
        }
        (None, None) => {
            return Err(UsageError(
                "which node? give --dir DIR or --id N (see torrent ctl --help)".into(),
            ));
        }
    };
    let word = |index: usize, what: &str| {
        words
            .get(index)
            .cloned()
            .ok_or_else(|| UsageError(format!("{} needs {what}", words[0])))
    };
    let Some(command) = words.first() else {
        return Err(UsageError(
            "no command given (status, peers, send, download, download-state, export, unshare, pause, resume, cancel, limit, list, list-state, exit)"
                .into(),
        ));
    };
    let (request, arity) = match command.as_str() {
        // The text only for a person: a script reads the structure.
        "status" => (
            Request::Status {
                text: !m.opt_present("json"),
            },
            1,
        ),
        "peers" => (
            Request::Peers {
                text: !m.opt_present("json"),
            },
            1,
        ),
        "send" => (
            Request::Send {
                // A path is the node's to read: made absolute here, where it was meant.
                name: word(1, "a file name").map(|name| match name.contains('/') {
                    true => {
                        std::path::absolute(&name).map_or(name, |path| path.display().to_string())
                    }
                    false => name,
                })?,
                torrent: m.opt_str("torrent"),
            },
            2,
        ),
        "download" => (
            Request::Download {
                target: word(1, "what to download")?,
                // The node resolves a relative path against its own working directory:
                // this one's is meant.
                output: m.opt_str("output").map(|output| {
                    std::path::absolute(&output).map_or(output, |path| path.display().to_string())
                }),
            },
            2,
        ),
        "download-state" => {
            let id = whole_number("download-state", &word(1, "a download id")?, 1, u64::MAX)?;
            (Request::DownloadState { id }, 2)
        }
        "export" => (
            Request::Export {
                name: word(1, "a file name")?,
            },
            2,
        ),
        "unshare" => (
            Request::Unshare {
                name: word(1, "a file name")?,
            },
            2,
        ),
        "limit" => match (m.opt_str("up"), m.opt_str("down")) {
            (None, None) => {
                return Err(UsageError(
                    "limit needs --up RATE or --down RATE (e.g. 8M, or off)".into(),
                ));
            }
            (up, down) => (Request::Limit { up, down }, 1),
        },
        "list" => {
            let page_entries = match m.opt_str("page") {
                Some(n) => {
                    Some(whole_number("page", &n, 1, crate::wire::LIST_ENTRIES_MAX as u64)? as u8)
                }
                None => None,
            };
            let request = Request::List {
                from: m.opt_str("from"),
                after: None,
                page_entries,
            };
            (request, 1)
        }
        "list-state" => {
            let id = whole_number("list-state", &word(1, "a list request id")?, 1, u64::MAX)?;
            (Request::ListState { id }, 2)
        }
        "pause" => (
            Request::Pause {
                target: word(1, "a download's id or file name")?,
            },
            2,
        ),
        "resume" => (
            Request::Resume {
                target: word(1, "a download's id or file name")?,
            },
            2,
        ),
        "cancel" => (
            Request::Cancel {
                target: word(1, "a download's id or file name")?,
                keep_partial: m.opt_present("keep-partial"),
            },
            2,
        ),
        "exit" | "quit" => (Request::Exit, 1),
        other => {
            return Err(UsageError(format!(
                "unknown ctl command '{other}' (status, peers, send, download, download-state, export, unshare, pause, resume, cancel, limit, list, list-state, exit)"
            )));
        }
    };
    if let Some(extra) = words.get(arity) {
        return Err(UsageError(format!("unexpected argument '{extra}'")));
    }
    let wait = m.opt_present("wait");
    let waits = matches!(
        request,
        Request::Download { .. } | Request::DownloadState { .. }
    );
    if wait && !waits {
        return Err(UsageError(
            "--wait goes with download or download-state".into(),
        ));
    }
    if m.opt_present("keep-partial") && !matches!(request, Request::Cancel { .. }) {
        return Err(UsageError("--keep-partial goes with cancel".into()));
    }
    let limits = m.opt_present("up") || m.opt_present("down");
    if limits && !matches!(request, Request::Limit { .. }) {
        return Err(UsageError("--up and --down go with limit".into()));
    }
    let listing = matches!(request, Request::List { .. });
    for option in ["from", "all", "page"] {
        if m.opt_present(option) && !listing {
            return Err(UsageError(format!("--{option} goes with list")));
        }
    }
    Ok(super::Invocation::Ctl(CtlArgs {
        dir,
        request,
        json: m.opt_present("json"),
        wait,
        all: m.opt_present("all"),
    }))
}
