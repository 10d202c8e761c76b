//! `list`: the node's requests for pages of what its tracker offers (`wire/list.rs`), each
//! known by an id while the tracker is asked, and kept with its answer for a while after.
//!
//! The control socket's `list` answers at once with the request's id, and `list-state ID`
//! gives its page once the tracker answered (`torrent ctl list` asks until then, as
//! `download --wait` asks `download-state`): the node's core keeps no reply channel, and no
//! control connection waits on the tracker. A request the tracker does not answer within
//! [`LIST_TIMEOUT`] fails with a reason. A console `list` prints its page when it comes.

use super::tracker_client::{ListAsk, TrackerClient};
use super::{LocalFile, Outbox};
use crate::console::ListFrom;
use crate::control::{ListCursor, ListEntry, ListInfo, ListState, Reply};
use crate::wire::{self, Hash};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How long the node waits for the tracker's page (the request is retried meanwhile, with
/// the tracker client's backoff) before the list request fails.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// List requests kept, waiting or answered; the oldest answered one makes room for a new
/// one, and when all are waiting a new one is refused.
pub const LISTINGS_KEPT_MAX: usize = 16;

/// A page of the tracker's list, as the node's tracker client heard it.
#[derive(Debug)]
pub(in crate::node) struct ListPage {
    pub(in crate::node) entries: Vec<ListEntry>,
    /// Entries follow the last one.
    pub(in crate::node) more: bool,
    pub(in crate::node) files_total: u32,
}

impl ListPage {
    /// A page as our tracker's [`wire::ListReply`] gives it (checked by `wire::decode`).
    pub(in crate::node) fn from_reply(
        fixed: &wire::ListReply,
        records: &[wire::ListRecord],
        names: &str,
    ) -> ListPage {
        let entries = wire::list_entries(records, names)
            .map(|(record, name)| ListEntry {
                name: name.to_string(),
                info_hash: wire::hex(&record.info_hash),
                file_bytes: record.file_bytes.get(),
                chunk_bytes: record.chunk_bytes.get(),
                holders: record.holder_count.get(),
                complete_holders: record.complete_count.get(),
            })
            .collect();
        ListPage {
            entries,
            more: fixed.more == 1,
            files_total: fixed.files_total.get(),
        }
    }
}

enum Progress {
    Waiting { deadline: Instant },
    Done(ListPage),
    Failed(String),
}

struct Listing {
    id: u64,
    /// Typed at the console: its page is printed when it comes.
    console: bool,
    progress: Progress,
}

/// The node's list requests. See the module documentation.
pub(super) struct Listings {
    next_id: u64,
    /// Oldest first, at most [`LISTINGS_KEPT_MAX`].
    kept: VecDeque<Listing>,
}

impl Listings {
    pub(super) fn new() -> Listings {
        Listings {
            next_id: 1,
            kept: VecDeque::new(),
        }
    }

    /// Asks `tracker` for the page that starts at `from` (`page_entries` 0: as many as fit);
    /// the request's id, or why it cannot be asked (said, too, when the console asked).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &mut self,
        now: Instant,
        tracker: &mut TrackerClient,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        from: ListFrom,
        page_entries: u8,
        console: bool,
    ) -> Result<u64, String> {
        let id = self.next_id;
        let asked = self
            .make_room()
            .and_then(|()| tracker.list(now, out, files, list_ask(id, from, page_entries)));
        if let Err(line) = asked {
            if console {
                out.say(line.clone());
            }
            return Err(line);
        }
        self.next_id += 1;
        self.kept.push_back(Listing {
            id,
            console,
            progress: Progress::Waiting {
                deadline: now + LIST_TIMEOUT,
            },
        });
        Ok(id)
    }

    /// Room for one more request: the oldest answered one goes when [`LISTINGS_KEPT_MAX`]
    /// are kept, and none may start while that many still wait.
    fn make_room(&mut self) -> Result<(), String> {
        if self.kept.len() < LISTINGS_KEPT_MAX {
            return Ok(());
        }
        let answered = self
            .kept
            .iter()
            .position(|l| !matches!(l.progress, Progress::Waiting { .. }));
        match answered {
            Some(index) => {
                self.kept.remove(index);
                Ok(())
            }
            None => Err(format!(
                "{LISTINGS_KEPT_MAX} list requests wait for the tracker already"
            )),
        }
    }

    /// The tracker's page for `request_id` came: kept for `list-state`, and the text to
    /// print when the console asked for it.
    pub(super) fn answered(&mut self, request_id: u32, page: ListPage) -> Option<String> {
        let listing = self.kept.iter_mut().find(|l| {
            wire_id(l.id) == request_id && matches!(l.progress, Progress::Waiting { .. })
        })?;
        let text = listing.console.then(|| page_text(&page));
        listing.progress = Progress::Done(page);
        text
    }

    /// Requests the tracker did not answer in time fail: the tracker client stops asking,
    /// and the console is told of its own.
    pub(super) fn handle_timeout(
        &mut self,
        now: Instant,
        tracker: &mut TrackerClient,
        out: &mut Outbox,
    ) {
        for listing in &mut self.kept {
            let Progress::Waiting { deadline } = listing.progress else {
                continue;
            };
            if deadline > now {
                continue;
            }
            tracker.forget_list(wire_id(listing.id));
            let line = format!(
                "list: tracker {} did not answer within {} s",
                tracker.addr(),
                LIST_TIMEOUT.as_secs()
            );
            if listing.console {
                out.say(line.clone());
            }
            listing.progress = Progress::Failed(line);
        }
    }

    /// When the first waiting request times out.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.kept
            .iter()
            .filter_map(|l| match l.progress {
                Progress::Waiting { deadline } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// What `list-state` answers for request `id`: its state and page, or why it failed.
    pub(super) fn reply(&self, id: u64) -> Reply {
        let Some(listing) = self.kept.iter().find(|l| l.id == id) else {
            return Reply::refused(format!(
                "no list request has id {id} (the last {LISTINGS_KEPT_MAX} are kept)"
            ));
        };
        let mut info = ListInfo {
            id,
            ..ListInfo::default()
        };
        match &listing.progress {
            Progress::Waiting { .. } => Reply::listed(info),
            Progress::Failed(reason) => {
                info.state = ListState::Failed;
                Reply {
                    list: Some(info),
                    ..Reply::refused(reason.clone())
                }
            }
            Progress::Done(page) => {
                info.state = ListState::Done;
                info.entries = page.entries.clone();
                info.files_total = Some(page.files_total);
                info.next = page
                    .entries
                    .last()
                    .filter(|_| page.more)
                    .map(|last| ListCursor {
                        name: last.name.clone(),
                        info_hash: last.info_hash.clone(),
                    });
                Reply::listed(info)
            }
        }
    }

    /// Requests kept, with their limit (for the simulation's checkers).
    pub(super) fn queue_len(&self) -> super::QueueLen {
        ("node list requests", self.kept.len(), LISTINGS_KEPT_MAX)
    }
}

/// What the control socket's `list` answers: the request's id, its page to come (see
/// [`Listings::reply`]), or why it was not asked.
pub(super) fn started(asked: Result<u64, String>) -> Reply {
    match asked {
        Ok(id) => Reply::listed(ListInfo {
            id,
            ..ListInfo::default()
        }),
        Err(line) => Reply::refused(line),
    }
}

/// The request for request `id`'s page, from `from` on.
fn list_ask(id: u64, from: ListFrom, page_entries: u8) -> ListAsk {
    let (name, info_hash, inclusive) = match from {
        ListFrom::Start => (String::new(), [0; wire::HASH_BYTES], true),
        ListFrom::Name(name) => (name, [0; wire::HASH_BYTES], true),
        ListFrom::After { name, info_hash } => (name, info_hash, false),
    };
    ListAsk {
        request_id: wire_id(id),
        name,
        info_hash,
        inclusive,
        entries_max: page_entries,
    }
}

/// The id a request carries on the wire: the node's id, wrapped (only the few kept are
/// told apart).
fn wire_id(id: u64) -> u32 {
    id as u32
}

/// A page for the console: one line per file, and how to go on.
fn page_text(page: &ListPage) -> String {
    let mut lines = vec![format!(
        "the tracker offers {} files; {} here:",
        page.files_total,
        page.entries.len()
    )];
    for entry in &page.entries {
        lines.push(format!("  {}", entry.line()));
    }
    if let (true, Some(last)) = (page.more, page.entries.last()) {
        lines.push(format!(
            "more follow; 'list {}' goes on from there (torrent ctl list --all lists them all)",
            console_word(&last.name)
        ));
    }
    lines.join("\n")
}

/// `name` as one console word: quoted as a shell would when it holds a space or a quote
/// (the console's words, `console::words`, read it back as it was).
fn console_word(name: &str) -> String {
    if !name
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        return name.to_string();
    }
    let mut word = String::from('"');
    for c in name.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            word.push('\\');
        }
        word.push(c);
    }
    word.push('"');
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> ListEntry {
        ListEntry {
            name: name.into(),
            info_hash: "ab".repeat(20),
            file_bytes: 1 << 20,
            chunk_bytes: 1 << 18,
            holders: 2,
            complete_holders: 1,
        }
    }

    #[test]
    fn the_console_text_names_every_file_and_how_to_go_on() {
        let page = ListPage {
            entries: vec![entry("a.bin"), entry("my file.bin")],
            more: true,
            files_total: 9,
        };
        let text = page_text(&page);
        assert!(
            text.starts_with("the tracker offers 9 files; 2 here:"),
            "{text}"
        );
        assert!(
            text.contains("  a.bin  1.0 MiB  2 holders (1 complete)  abab"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "'list \"my file.bin\"' goes on from there (torrent ctl list --all lists them all)"
            ),
            "{text}"
        );
        let last = ListPage {
            more: false,
            ..page
        };
        assert!(!page_text(&last).contains("more follow"));
    }

    #[test]
    fn a_name_is_quoted_so_that_the_console_reads_it_back() {
        for name in ["a.bin", "my file.bin", "it's \"x\" $1 `y` a\\b"] {
            let word = console_word(name);
            assert_eq!(
                crate::console::words(&word).unwrap(),
                vec![name.to_string()]
            );
        }
    }
}
