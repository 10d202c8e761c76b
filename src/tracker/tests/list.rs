//! `list`: pages of what the tracker offers, in order, each file once across the pages
//! (also when files come between pages), bounded, and only for registered nodes.

use super::*;
use crate::wire::{ListRequest, list_entries};

/// One listed file: name, info hash, holders, complete holders.
type Entry = (String, Hash, u32, u32);

struct Page {
    entries: Vec<Entry>,
    more: bool,
    files_total: u32,
    reply_bytes: usize,
}

/// Asks for the page after (`inclusive`: at) (`name`, `info_hash`), expecting a `ListReply`.
#[allow(clippy::too_many_arguments)]
fn list(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    node: (u32, u64),
    name: &str,
    info_hash: Hash,
    inclusive: bool,
    entries_max: u8,
) -> Page {
    let request = ListRequest {
        auth: auth(node.0, node.1),
        request_id: U32::new(77),
        info_hash,
        inclusive: u8::from(inclusive),
        entries_max,
        reserved: [0; 2],
    };
    send(
        tracker,
        now,
        from,
        Message::ListRequest {
            fixed: &request,
            name,
        },
    );
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, from);
    let Ok(Message::ListReply {
        fixed,
        records,
        names,
    }) = decode(&replies[0].1)
    else {
        panic!("expected a ListReply, got {:?}", decode(&replies[0].1))
    };
    assert_eq!(fixed.request_id.get(), 77, "the request id is echoed");
    let entries = list_entries(records, names)
        .map(|(r, name)| {
            let entry = (name.to_string(), r.info_hash);
            (
                entry.0,
                entry.1,
                r.holder_count.get(),
                r.complete_count.get(),
            )
        })
        .collect();
    Page {
        entries,
        more: fixed.more == 1,
        files_total: fixed.files_total.get(),
        reply_bytes: replies[0].1.len(),
    }
}

/// Every page from the start, following the cursor; each page checked against the size a
/// reply to `from` may have.
fn walk(tracker: &mut Tracker, from: SocketAddr, node: (u32, u64), entries_max: u8) -> Vec<Entry> {
    let now = Instant::now();
    let mut all: Vec<Entry> = Vec::new();
    let (mut name, mut info_hash, mut inclusive) = (String::new(), [0; 20], true);
    for _ in 0..1000 {
        let page = list(
            tracker,
            now,
            from,
            node,
            &name,
            info_hash,
            inclusive,
            entries_max,
        );
        assert!(page.reply_bytes <= tracker.config.routes.control_bytes_max(from));
        let page_max = match entries_max {
            0 => wire::LIST_ENTRIES_MAX,
            n => usize::from(n),
        };
        assert!(page.entries.len() <= page_max);
        all.extend(page.entries.iter().cloned());
        if !page.more {
            return all;
        }
        let last = page
            .entries
            .last()
            .expect("more follow a page with entries");
        (name, info_hash, inclusive) = (last.0.clone(), last.1, false);
    }
    panic!("the list never ended")
}

/// A tracker where node 1 (at `from`) holds `count` files: names `f000`.. with two versions
/// of every tenth name.
fn tracker_with_files(now: Instant, from: SocketAddr, count: u8) -> (Tracker, (u32, u64)) {
    let mut tracker = new_tracker(now);
    let token = register(&mut tracker, now, from, 1, 0);
    for i in 0..count {
        let name = format!("f{:03}", i - i % 2 * u8::from(i % 10 == 1));
        announce(&mut tracker, now, from, 1, token, hash(i), &name);
    }
    (tracker, (1, token))
}

fn sorted(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort();
    entries
}

#[test]
fn pages_list_every_file_once_in_order() {
    let t0 = Instant::now();
    let from = addr(4001);
    let (mut tracker, node) = tracker_with_files(t0, from, 100);
    let one_page = walk(&mut tracker, from, node, 0);
    assert_eq!(one_page.len(), 100);
    assert_eq!(
        one_page,
        sorted(one_page.clone()),
        "by name, then info hash"
    );
    // Two versions share a name, told apart by info hash.
    assert_eq!(one_page[1].0, "f000");
    assert_eq!(one_page[1].1, hash(1));
    for page_entries in [1, 7, 64] {
        let paged = walk(&mut tracker, from, node, page_entries);
        assert_eq!(paged, one_page, "pages of {page_entries}");
    }
    assert_eq!(tracker.stats().lists, 2 + 100 + 15 + 2);
    // Counted in the metrics by the same name.
    let mut text = crate::metrics::Exposition::new();
    text.counters_of("torrent_tracker", "tracker", tracker.stats());
    let text = text.into_text();
    assert!(
        text.contains("\ntorrent_tracker_lists_total 119\n"),
        "{text}"
    );
    assert!(
        text.contains("\ntorrent_tracker_lookups_total 0\n"),
        "{text}"
    );
    let first = list(&mut tracker, t0, from, node, "", [0; 20], true, 0);
    assert_eq!(first.files_total, 100);
    assert!(first.more, "{} of 100 listed", first.entries.len());
    assert_eq!(first.entries.len(), wire::LIST_ENTRIES_MAX);
}

#[test]
fn a_file_added_between_pages_moves_no_other() {
    let t0 = Instant::now();
    let from = addr(4001);
    let (mut tracker, node) = tracker_with_files(t0, from, 30);
    let before = walk(&mut tracker, from, node, 0);
    let first = list(&mut tracker, t0, from, node, "", [0; 20], true, 10);
    let cursor = first.entries.last().unwrap().clone();
    // One file sorts before the cursor, one after it; the holder leaves one file.
    let token = node.1;
    announce(&mut tracker, t0, from, 1, token, hash(200), "a-first");
    announce(&mut tracker, t0, from, 1, token, hash(201), "z-last");
    let withdraw = announce_message(1, token, hash(29), 64 * u64::from(KIB), 16 * KIB, 0);
    let name = before.iter().find(|e| e.1 == hash(29)).unwrap().0.clone();
    send(
        &mut tracker,
        t0,
        from,
        Message::Announce {
            fixed: &withdraw,
            name: &name,
        },
    );
    drain(&mut tracker);
    let mut rest = Vec::new();
    let (mut name, mut info_hash) = (cursor.0, cursor.1);
    loop {
        let page = list(&mut tracker, t0, from, node, &name, info_hash, false, 10);
        rest.extend(page.entries.iter().cloned());
        if !page.more {
            break;
        }
        let last = page.entries.last().unwrap();
        (name, info_hash) = (last.0.clone(), last.1);
    }
    let mut seen = first.entries.clone();
    seen.extend(rest);
    let mut expected: Vec<Entry> = before.into_iter().filter(|e| e.1 != hash(29)).collect();
    expected.push(("z-last".into(), hash(201), 1, 1));
    assert_eq!(
        seen,
        sorted(expected),
        "each file once; the new one after the cursor too"
    );
}

#[test]
fn a_page_starts_at_a_name_and_counts_holders() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let one = register(&mut tracker, t0, addr(4001), 1, 0);
    let two = register(&mut tracker, t0, addr(4002), 2, 0);
    announce(&mut tracker, t0, addr(4001), 1, one, hash(1), "b.bin");
    announce(&mut tracker, t0, addr(4002), 2, two, hash(1), "b.bin");
    announce(&mut tracker, t0, addr(4001), 1, one, hash(2), "a.bin");
    // Node 2 holds half of c.bin.
    let half = announce_message(2, two, hash(3), 64 * u64::from(KIB), 16 * KIB, 2);
    let name = "c.bin";
    send(
        &mut tracker,
        t0,
        addr(4002),
        Message::Announce { fixed: &half, name },
    );
    drain(&mut tracker);
    let page = list(
        &mut tracker,
        t0,
        addr(4001),
        (1, one),
        "b.bin",
        [0; 20],
        true,
        0,
    );
    let expected = [
        ("b.bin".to_string(), hash(1), 2, 2),
        ("c.bin".to_string(), hash(3), 1, 0),
    ];
    assert_eq!(page.entries, expected);
    assert!(!page.more);
    assert_eq!(page.files_total, 3);
    // A name between two: from the next one on.
    let page = list(
        &mut tracker,
        t0,
        addr(4001),
        (1, one),
        "abc",
        [0; 20],
        true,
        1,
    );
    assert_eq!(page.entries[0].0, "b.bin");
    assert!(page.more);
}

#[test]
fn a_page_off_loopback_fits_a_safe_datagram() {
    let t0 = Instant::now();
    let from = SocketAddr::from(([192, 0, 2, 7], 4001));
    let mut tracker = new_tracker(t0);
    let token = register(&mut tracker, t0, from, 1, 0);
    for i in 0..20u8 {
        let name = format!("{i:02}{}", "n".repeat(wire::NAME_BYTES_MAX - 2));
        announce(&mut tracker, t0, from, 1, token, hash(i), &name);
    }
    let page = list(&mut tracker, t0, from, (1, token), "", [0; 20], true, 0);
    assert!(page.reply_bytes <= crate::mtu::SAFE_DATAGRAM_BYTES as usize);
    assert_eq!(
        page.entries.len(),
        4,
        "4 full-length entries fit 1,232 bytes"
    );
    assert!(page.more);
    assert_eq!(walk(&mut tracker, from, (1, token), 0).len(), 20);
}

/// An unregistered sender, or a registered node's token from another address, gets a
/// refusal no larger than its request, and is not counted as listed.
#[test]
fn only_a_registered_node_at_its_address_is_answered() {
    let t0 = Instant::now();
    let (mut tracker, (node_id, token)) = tracker_with_files(t0, addr(4001), 30);
    for (from, id, token) in [
        (addr(4002), 9, 0),
        (addr(4001), node_id, token ^ 1),
        (addr(4002), node_id, token),
    ] {
        let request = ListRequest {
            auth: auth(id, token),
            request_id: U32::new(1),
            info_hash: [0; 20],
            inclusive: 1,
            entries_max: 0,
            reserved: [0; 2],
        };
        let message = Message::ListRequest {
            fixed: &request,
            name: "",
        };
        let request_len = send(&mut tracker, t0, from, message);
        let replies = drain(&mut tracker);
        assert_eq!(replies.len(), 1);
        assert!(replies[0].1.len() <= request_len, "no amplification");
        assert!(matches!(
            decode(&replies[0].1),
            Ok(Message::Refused(refusal)) if refusal.request_kind == Kind::ListRequest as u8
        ));
    }
    assert_eq!(tracker.stats().lists, 0);
}
