//! Snapshots and the database: what is saved when, and what a restored tracker knows.

use super::*;

#[test]
fn snapshot_restores_a_tracker_that_answers_at_once() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    assert_eq!(tracker.poll_snapshot(), None);
    let a = register(&mut tracker, t0, addr(4001), 1, 0);
    let b = register(&mut tracker, t0, addr(4002), 2, 0);
    let c = register(&mut tracker, t0, addr(4003), 3, 0);
    announce(&mut tracker, t0, addr(4001), 1, a, hash(1), "f");
    announce(&mut tracker, t0, addr(4002), 2, b, hash(1), "f");
    credit(&mut tracker, t0, addr(4003), (3, c), 2, 777);
    let snapshot = snapshot_when_due(&mut tracker, t0).expect("the registry changed");
    assert_eq!(tracker.poll_snapshot(), None, "nothing changed since");
    // A heartbeat changes nothing stored.
    register(&mut tracker, t0 + secs(1), addr(4001), 1, a);
    assert_eq!(tracker.poll_snapshot(), None);
    assert_eq!(snapshot.nodes.len(), 3);
    assert_eq!(snapshot.nodes[0].token, format!("{a:016x}"));
    assert_eq!(snapshot.files.len(), 1);
    assert_eq!(snapshot.files[0].info_hash, "01".repeat(20));

    let t1 = t0 + secs(100);
    let mut restored = Tracker::from_snapshot(TrackerConfig::default(), 8, t1, snapshot.clone());
    assert_eq!(restored.poll_snapshot(), None);
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(
        restored.poll_timeout(),
        Some(t1 + secs(22)),
        "restored nodes count as seen at start"
    );
    // Node 3 asks with its old token and gets both holders, node 2 (credited) first.
    let (_, holders) = lookup(&mut restored, t1, addr(4003), 3, c, "f");
    assert_eq!(holder_ids(&holders), [2, 1]);
    assert_eq!(holders[0].upload_credit_bytes.get(), 777);
    assert_eq!(register(&mut restored, t1, addr(4001), 1, a), a);
}

#[test]
fn credit_is_saved_within_its_delay_not_per_report() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let a = register(&mut tracker, t0, addr(4001), 1, 0);
    let b = register(&mut tracker, t0, addr(4002), 2, 0);
    register(&mut tracker, t0, addr(4002), 2, b);
    let _ = snapshot_when_due(&mut tracker, t0);
    let t1 = t0 + secs(2);
    // One credit per verified chunk: no write for each.
    for i in 0..10 {
        let now = t1 + Duration::from_millis(i);
        credit(&mut tracker, now, addr(4002), (2, b), 1, 100);
        tracker.handle_timeout(now);
        assert_eq!(tracker.poll_snapshot(), None);
    }
    let due = t1 + REGISTRY_SAVE_DELAY;
    assert_eq!(tracker.poll_timeout(), Some(due));
    tracker.handle_timeout(due);
    let snapshot = tracker.poll_snapshot().expect("credit saved once due");
    assert_eq!(snapshot.nodes[0].upload_credit_bytes, 1000);
    assert!(
        tracker.poll_timeout().is_some_and(|t| t > due),
        "nothing more to save"
    );
    // Another change joins the credit waiting, in the same snapshot.
    credit(&mut tracker, due, addr(4002), (2, b), 1, 5);
    announce(&mut tracker, due, addr(4001), 1, a, hash(1), "f");
    assert_eq!(tracker.poll_snapshot(), None);
    let snapshot = snapshot_when_due(&mut tracker, due).expect("credit and announce saved");
    assert_eq!(snapshot.nodes[0].upload_credit_bytes, 1005);
    assert_eq!(snapshot.files.len(), 1);
    assert!(tracker.poll_timeout().is_some_and(|t| t > due));
}

/// A burst of announces costs one save, due [`REGISTRY_SAVE_DELAY`] after the first, and
/// that one snapshot holds all of them; a clean stop saves what is not yet due at once.
#[test]
fn a_burst_of_announces_is_saved_once_when_due() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let nodes: Vec<(u32, u64)> = (1..=20)
        .map(|id| {
            (
                id,
                register(&mut tracker, t0, addr(4000 + id as u16), id, 0),
            )
        })
        .collect();
    // `register` saved each new token before its reply came out.
    assert_eq!(tracker.poll_snapshot(), None);
    let saves = tracker.stats().snapshots;
    let due = t0 + REGISTRY_SAVE_DELAY;
    assert_ne!(tracker.poll_timeout(), Some(due), "nothing left to save");
    for (index, &(id, token)) in nodes.iter().enumerate() {
        let now = t0 + Duration::from_millis(40 * index as u64);
        let from = addr(4000 + id as u16);
        announce(
            &mut tracker,
            now,
            from,
            id,
            token,
            hash(id as u8),
            &format!("f{id}"),
        );
        tracker.handle_timeout(now);
        assert_eq!(
            tracker.poll_snapshot(),
            None,
            "announce {id} saved before due"
        );
    }
    assert_eq!(tracker.stats().snapshots, saves, "the registrations only");
    assert_eq!(
        tracker.poll_timeout(),
        Some(due),
        "the first change sets the deadline"
    );
    tracker.handle_timeout(due);
    let snapshot = tracker.poll_snapshot().expect("saved once due");
    assert_eq!(tracker.poll_snapshot(), None);
    assert_eq!(
        tracker.stats().snapshots,
        saves + 1,
        "one save for the whole burst"
    );
    assert_eq!(snapshot.nodes.len(), 20);
    assert_eq!(snapshot.files.len(), 20);
    assert!(snapshot.nodes.iter().all(|node| node.token_confirmed));
    assert_eq!(
        tracker.poll_snapshot_at_stop(),
        None,
        "nothing left to save"
    );

    // A change after the save waits for its own deadline, or for a clean stop.
    let (id, token) = nodes[0];
    let t1 = due + secs(1);
    announce(
        &mut tracker,
        t1,
        addr(4000 + id as u16),
        id,
        token,
        hash(99),
        "late",
    );
    assert_eq!(tracker.poll_timeout(), Some(t1 + REGISTRY_SAVE_DELAY));
    let at_stop = tracker
        .poll_snapshot_at_stop()
        .expect("saved at a clean stop");
    assert_eq!(at_stop.files.len(), 21);
    assert_eq!(tracker.stats().snapshots, saves + 2);
    tracker.handle_timeout(t1 + REGISTRY_SAVE_DELAY);
    assert_eq!(tracker.poll_snapshot(), None, "already saved at the stop");
}

/// Issue 13, finding 9: every new registration forced a save (15-58 a second under a flood).
/// Now registrations are saved with whatever else changed, at most once a second, and the
/// reply that hands out a token leaves only once the snapshot holding it was written.
#[test]
fn registrations_are_saved_at_most_once_a_second_and_answered_once_saved() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    // Each sender first echoes its cookie, then registers: the replies wait for the save.
    let burst = |tracker: &mut Tracker, now: Instant, ids: std::ops::RangeInclusive<u32>| {
        for id in ids {
            let from = addr(4000 + id as u16);
            send(
                tracker,
                now,
                from,
                Message::Register(&register_message(id, 0, 0)),
            );
            let replies = drain(tracker);
            let Ok(Message::Challenge(challenge)) = decode(&replies[0].1) else {
                panic!("expected a Challenge");
            };
            let cookie = challenge.cookie.get();
            send(
                tracker,
                now,
                from,
                Message::Register(&register_message(id, 0, cookie)),
            );
            assert!(drain(tracker).is_empty(), "held until saved");
        }
    };
    burst(&mut tracker, t0, 1..=20);
    assert_eq!(tracker.node_count(), 20);
    assert_eq!(tracker.held_reply_count(), 20);
    // The first save is due at once (none before it) and covers the whole burst.
    let snapshot = tracker.poll_snapshot().expect("due at once");
    assert_eq!(snapshot.nodes.len(), 20);
    assert!(drain(&mut tracker).is_empty(), "not before it is written");
    tracker.snapshot_written(t0, true);
    let replies = drain(&mut tracker);
    assert_eq!(replies.len(), 20);
    assert!(
        replies
            .iter()
            .all(|(_, bytes)| matches!(decode(bytes), Ok(Message::Registered(_))))
    );
    // The next burst waits for the next second, however many come.
    let t1 = t0 + Duration::from_millis(100);
    burst(&mut tracker, t1, 21..=60);
    tracker.handle_timeout(t1);
    assert_eq!(tracker.poll_snapshot(), None, "one save a second at most");
    assert_eq!(tracker.poll_timeout(), Some(t0 + REGISTRY_SAVE_DELAY));
    tracker.handle_timeout(t0 + REGISTRY_SAVE_DELAY);
    let snapshot = tracker
        .poll_snapshot()
        .expect("due a second after the last");
    assert_eq!(snapshot.nodes.len(), 60);
    // A failed write sends nothing and tries again a second later.
    tracker.snapshot_written(t0 + REGISTRY_SAVE_DELAY, false);
    assert!(drain(&mut tracker).is_empty());
    assert_eq!(tracker.poll_timeout(), Some(t0 + 2 * REGISTRY_SAVE_DELAY));
    tracker.handle_timeout(t0 + 2 * REGISTRY_SAVE_DELAY);
    assert!(tracker.poll_snapshot().is_some());
    tracker.snapshot_written(t0 + 2 * REGISTRY_SAVE_DELAY, true);
    assert_eq!(drain(&mut tracker).len(), 40);
    assert_eq!(tracker.stats().snapshots, 3);
}

/// Found by the swarm simulation: a restored tracker counted every token as used, so a
/// node whose Registered reply was lost before the restart was refused for good.
#[test]
fn a_restored_tracker_sends_an_unused_token_again() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let a = register(&mut tracker, t0, addr(4001), 1, 0);
    let b = register(&mut tracker, t0, addr(4002), 2, 0);
    // Node 2 uses its token; node 1 never received its own.
    register(&mut tracker, t0, addr(4002), 2, b);
    let snapshot = snapshot_when_due(&mut tracker, t0).expect("the registry changed");
    assert!(!snapshot.nodes[0].token_confirmed);
    assert!(snapshot.nodes[1].token_confirmed);
    let t1 = t0 + secs(5);
    let mut restored = Tracker::from_snapshot(TrackerConfig::default(), 8, t1, snapshot);
    assert_eq!(register(&mut restored, t1, addr(4001), 1, 0), a);
    // A used token is not handed to whoever asks with none: from elsewhere, the id is taken.
    send(
        &mut restored,
        t1,
        addr(4003),
        Message::Register(&register_message(2, 0, 0)),
    );
    assert_eq!(refused(&mut restored), RefusedReason::BadToken);
    // From the address the save recorded, once it proves it receives, a fresh token: the
    // save may be stale (the node may hold a newer token than the one saved).
    let fresh = register(&mut restored, t1, addr(4002), 2, 0x1234);
    assert_ne!(fresh, b);
    assert_ne!(fresh, 0x1234);
    // Once heard from, the id is no longer open to a different token, even there.
    register(&mut restored, t1, addr(4002), 2, fresh);
    send(
        &mut restored,
        t1,
        addr(4002),
        Message::Register(&register_message(2, 0x1234, 0)),
    );
    assert_eq!(refused(&mut restored), RefusedReason::BadToken);
    // Files written before the flag existed read as confirmed.
    let old: db::NodeEntry = serde_json::from_str(
        r#"{"node_id": 1, "addr": "127.0.0.1:4001", "token": "00000000000000aa", "upload_credit_bytes": 0}"#,
    )
    .expect("parses");
    assert!(old.token_confirmed);
}

#[test]
fn snapshot_entries_that_make_no_sense_are_skipped() {
    let t0 = Instant::now();
    let node = |node_id, addr: &str, token: &str| db::NodeEntry {
        node_id,
        addr: addr.to_owned(),
        token: token.to_owned(),
        upload_credit_bytes: 0,
        token_confirmed: true,
    };
    let file = |info_hash: String, name: &str, chunk_bytes| db::FileEntry {
        info_hash,
        name: name.to_owned(),
        file_bytes: 1000,
        chunk_bytes,
        holders: vec![db::FileHolder {
            node_id: 1,
            chunks_held: 1,
        }],
    };
    let snapshot = Snapshot {
        nodes: vec![
            node(1, "127.0.0.1:4001", "00000000000000aa"),
            node(2, "not an address", "00000000000000bb"),
            node(3, "127.0.0.1:4003", "0000000000000000"),
            node(4, "127.0.0.1:4004", "xyz"),
        ],
        files: vec![
            file("01".repeat(20), "good.txt", 16 * KIB),
            file("02".repeat(20), "../etc/passwd", 16 * KIB),
            file("03".repeat(20), "odd.txt", 1000),
            file("zz".repeat(20), "bad-hash.txt", 16 * KIB),
        ],
    };
    // Each skipped entry is named, with the reason (issue 13, finding 10).
    let (skipped, reasons) = snapshot.clone().sanitize();
    assert_eq!(skipped, 6);
    assert_eq!(
        reasons,
        [
            "node 2: address \"not an address\" is not an ip:port",
            "node 3: token \"0000000000000000\" is not 16 hex digits (and not zero)",
            "node 4: token \"xyz\" is not 16 hex digits (and not zero)",
            "file \"../etc/passwd\" (0202020202020202020202020202020202020202): the name is not a safe file name",
            "file \"odd.txt\" (0303030303030303030303030303030303030303): 1000 bytes in 1000-byte chunks is not a possible file",
            "file \"bad-hash.txt\" (zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz): the info hash is not 40 hex digits",
        ]
    );
    let restored = Tracker::from_snapshot(TrackerConfig::default(), 1, t0, snapshot);
    assert_eq!(restored.node_count(), 1);
    assert_eq!(restored.file_count(), 1);
    assert_eq!(restored.snapshot().files[0].name, "good.txt");
}

fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("torrent-tracker-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn db_save_load_round_trip() {
    let t0 = Instant::now();
    let dir = temp_dir("round-trip");
    assert!(db::load(&dir).unwrap().is_none(), "no files yet");
    let mut tracker = new_tracker(t0);
    let a = register(&mut tracker, t0, addr(4001), 1, 0);
    register(
        &mut tracker,
        t0,
        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 4002)),
        2,
        0,
    );
    announce(&mut tracker, t0, addr(4001), 1, a, hash(0xab), "file_A.txt");
    let snapshot = snapshot_when_due(&mut tracker, t0).unwrap();
    db::save(&dir, &snapshot).unwrap();
    // Saving again replaces the files in place.
    db::save(&dir, &snapshot).unwrap();
    let text = std::fs::read_to_string(dir.join(db::NODES_FILE)).unwrap();
    assert!(text.contains("\n  {"), "pretty-printed for people");
    assert!(text.contains("[::1]:4002"));
    assert_eq!(db::load(&dir).unwrap(), Some(snapshot));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "no temp files left behind: {leftovers:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn db_corrupt_file_is_an_error_naming_it_and_bad_entries_are_skipped() {
    let dir = temp_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(db::NODES_FILE), "[{\"node_id\": 1,").unwrap();
    let error = db::load(&dir).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(error.to_string().contains(db::NODES_FILE), "{error}");

    // A well-formed list with one entry of the wrong shape and one that makes no sense.
    let nodes = r#"[
        {"node_id": 1, "addr": "127.0.0.1:4001", "token": "00000000000000aa", "upload_credit_bytes": 5},
        {"node_id": "two"},
        {"node_id": 3, "addr": "127.0.0.1:4003", "token": "00000000000000zz", "upload_credit_bytes": 0}
    ]"#;
    std::fs::write(dir.join(db::NODES_FILE), nodes).unwrap();
    let snapshot = db::load(&dir).unwrap().expect("nodes.json exists");
    assert_eq!(snapshot.nodes.len(), 1);
    assert_eq!(snapshot.nodes[0].upload_credit_bytes, 5);
    assert!(snapshot.files.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A local user who can write into the database folder plants links where a save writes:
/// at the temporary names (ours and the ones an older build used) and at the final name.
/// The save writes through none of them: the victim outside keeps its bytes, and the
/// database files end up regular files of their own.
#[test]
fn db_save_never_writes_through_a_planted_link() {
    let t0 = Instant::now();
    let dir = temp_dir("planted-links");
    std::fs::create_dir_all(&dir).unwrap();
    let victim = dir.with_extension("victim");
    std::fs::write(&victim, b"not yours").unwrap();
    let mut planted = vec![
        ".nodes.json.tmp".to_string(),
        ".files.json.tmp".to_string(),
        db::NODES_FILE.to_string(),
    ];
    planted.extend((0..64).map(|n| format!(".tmp{n}")));
    for name in &planted {
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
    }
    let mut tracker = new_tracker(t0);
    let token = register(&mut tracker, t0, addr(4001), 1, 0);
    announce(
        &mut tracker,
        t0,
        addr(4001),
        1,
        token,
        hash(0xab),
        "file_A.txt",
    );
    let snapshot = snapshot_when_due(&mut tracker, t0).unwrap();
    db::save(&dir, &snapshot).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"not yours");
    for name in [db::NODES_FILE, db::FILES_FILE] {
        let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{name} is a {:?}",
            meta.file_type()
        );
    }
    assert_eq!(db::load(&dir).unwrap(), Some(snapshot));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&victim);
}
