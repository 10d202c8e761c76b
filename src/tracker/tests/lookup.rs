//! Announces and look-ups: who is listed, in which order (versions, credit), and sampling.

use super::*;

#[test]
fn announce_then_lookup_lists_holder_but_not_asker() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let seeder = register(&mut tracker, t0, addr(4001), 1, 0);
    let leecher = register(&mut tracker, t0, addr(4002), 2, 0);
    announce(
        &mut tracker,
        t0,
        addr(4001),
        1,
        seeder,
        hash(1),
        "file_A.txt",
    );
    let announced = events(&mut tracker).pop().unwrap();
    assert_eq!(
        announced.to_string(),
        format!(
            "node 1 announced file_A.txt ({}) 4/4 chunks",
            "01".repeat(20)
        )
    );

    let (versions, holders) = lookup(&mut tracker, t0, addr(4002), 2, leecher, "file_A.txt");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].info_hash, hash(1));
    assert_eq!(versions[0].file_bytes.get(), 64 * u64::from(KIB));
    assert_eq!(versions[0].chunk_bytes.get(), 16 * KIB);
    assert_eq!(versions[0].holder_count.get(), 1);
    assert_eq!(holder_ids(&holders), [1]);
    assert_eq!(holders[0].version, 0);
    assert_eq!(holders[0].chunks_held.get(), 4);
    assert_eq!(
        wire::socket_addr(holders[0].ip, holders[0].port.get()),
        addr(4001)
    );

    // The seeder asking sees its version but not itself.
    let (versions, holders) = lookup(&mut tracker, t0, addr(4001), 1, seeder, "file_A.txt");
    assert_eq!(versions.len(), 1);
    assert!(holders.is_empty());

    // A name nobody holds: an empty answer, not a refusal.
    let (versions, holders) = lookup(&mut tracker, t0, addr(4002), 2, leecher, "file_B.txt");
    assert!(versions.is_empty() && holders.is_empty());
    assert_eq!(
        tracker.stats().lookups,
        3,
        "every look-up answered is counted"
    );

    // chunks_held == 0 withdraws the holding; the file, now without holders, is forgotten.
    let withdraw = announce_message(1, seeder, hash(1), 64 * u64::from(KIB), 16 * KIB, 0);
    send(
        &mut tracker,
        t0,
        addr(4001),
        Message::Announce {
            fixed: &withdraw,
            name: "file_A.txt",
        },
    );
    assert!(matches!(
        decode(&drain(&mut tracker)[0].1),
        Ok(Message::Announced(_))
    ));
    assert_eq!(tracker.file_count(), 0);
    let (versions, _) = lookup(&mut tracker, t0, addr(4002), 2, leecher, "file_A.txt");
    assert!(versions.is_empty());
}

#[test]
fn an_empty_file_is_held_with_zero_chunks() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let a = register(&mut tracker, t0, addr(4001), 1, 0);
    let b = register(&mut tracker, t0, addr(4002), 2, 0);
    let fixed = announce_message(1, a, hash(7), 0, 16 * KIB, 0);
    let name = "empty";
    send(
        &mut tracker,
        t0,
        addr(4001),
        Message::Announce {
            fixed: &fixed,
            name,
        },
    );
    assert_eq!(drain(&mut tracker).len(), 1);
    let (versions, holders) = lookup(&mut tracker, t0, addr(4002), 2, b, name);
    assert_eq!(versions.len(), 1);
    assert_eq!(holder_ids(&holders), [1]);
    // It survives a snapshot round trip.
    let restored = Tracker::from_snapshot(TrackerConfig::default(), 1, t0, tracker.snapshot());
    assert_eq!(restored.file_count(), 1);
}

#[test]
fn conflicting_announce_is_refused() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let token = register(&mut tracker, t0, addr(4001), 1, 0);
    announce(
        &mut tracker,
        t0,
        addr(4001),
        1,
        token,
        hash(1),
        "file_A.txt",
    );
    let other_size = announce_message(1, token, hash(1), 128 * u64::from(KIB), 16 * KIB, 4);
    send(
        &mut tracker,
        t0,
        addr(4001),
        Message::Announce {
            fixed: &other_size,
            name: "file_A.txt",
        },
    );
    assert_eq!(refused(&mut tracker), RefusedReason::Conflict);
    let same_shape = announce_message(1, token, hash(1), 64 * u64::from(KIB), 16 * KIB, 4);
    send(
        &mut tracker,
        t0,
        addr(4001),
        Message::Announce {
            fixed: &same_shape,
            name: "file_B.txt",
        },
    );
    assert_eq!(refused(&mut tracker), RefusedReason::Conflict);
}

#[test]
fn versions_with_more_holders_come_first() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let mut tokens = Vec::new();
    for id in 1..=5 {
        tokens.push(register(&mut tracker, t0, addr(4000 + id as u16), id, 0));
    }
    // Version 0xaa: one holder (node 1); version 0x11: three holders (nodes 2, 3, 4).
    announce(&mut tracker, t0, addr(4001), 1, tokens[0], hash(0xaa), "f");
    for id in 2..=4u32 {
        announce(
            &mut tracker,
            t0,
            addr(4000 + id as u16),
            id,
            tokens[id as usize - 1],
            hash(0x11),
            "f",
        );
    }
    let (versions, holders) = lookup(&mut tracker, t0, addr(4005), 5, tokens[4], "f");
    let order: Vec<Hash> = versions.iter().map(|v| v.info_hash).collect();
    assert_eq!(order, [hash(0x11), hash(0xaa)]);
    assert_eq!(versions[0].holder_count.get(), 3);
    assert_eq!(holders.len(), 4);
    for holder in &holders {
        let expected = if holder.node_id.get() == 1 { 1 } else { 0 };
        assert_eq!(
            holder.version,
            expected,
            "holder {} has the wrong version index",
            holder.node_id.get()
        );
    }
}

#[test]
fn credit_from_a_receiver_raises_the_sender_rank() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let mut tokens = vec![0];
    for id in 1..=4 {
        tokens.push(register(&mut tracker, t0, addr(4000 + id as u16), id, 0));
    }
    for id in 1..=3 {
        announce(
            &mut tracker,
            t0,
            addr(4000 + id as u16),
            id,
            tokens[id as usize],
            hash(1),
            "f",
        );
    }
    // Node 4 received verified chunks from node 2, then a little from node 3.
    credit(&mut tracker, t0, addr(4004), (4, tokens[4]), 2, 1_000_000);
    credit(&mut tracker, t0, addr(4004), (4, tokens[4]), 3, 10);
    assert!(
        drain(&mut tracker).is_empty(),
        "credit reports get no reply"
    );
    let (_, holders) = lookup(&mut tracker, t0, addr(4004), 4, tokens[4], "f");
    assert_eq!(holder_ids(&holders), [2, 3, 1]);
    assert_eq!(holders[0].upload_credit_bytes.get(), 1_000_000);

    // Refused, counted, and without effect: self-credit, credit for an unknown node, more
    // bytes than the chunks can hold, and a report with a wrong token.
    let refused_before = tracker.stats().refused;
    credit(&mut tracker, t0, addr(4001), (1, tokens[1]), 1, 5_000_000);
    credit(&mut tracker, t0, addr(4004), (4, tokens[4]), 99, 5_000_000);
    credit(
        &mut tracker,
        t0,
        addr(4004),
        (4, tokens[4]),
        1,
        u64::from(wire::CHUNK_BYTES_MAX) + 1,
    );
    credit(
        &mut tracker,
        t0,
        addr(4004),
        (4, tokens[4] ^ 1),
        1,
        5_000_000,
    );
    assert_eq!(tracker.stats().refused, refused_before + 4);
    assert!(drain(&mut tracker).is_empty());
    let (_, holders) = lookup(&mut tracker, t0, addr(4004), 4, tokens[4], "f");
    assert_eq!(holder_ids(&holders), [2, 3, 1]);
    assert_eq!(holders[2].upload_credit_bytes.get(), 0);
}

#[test]
fn every_listed_version_gets_a_holder_before_the_rest_fill_by_credit() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let holders_of_popular = wire::LOOKUP_HOLDERS_MAX as u32 + 6;
    let asker_id = 1000;
    let asker = register(&mut tracker, t0, addr(9000), asker_id, 0);
    for id in 1..=holders_of_popular + 1 {
        let token = register(&mut tracker, t0, addr(10_000 + id as u16), id, 0);
        let version = if id == holders_of_popular + 1 {
            hash(2)
        } else {
            hash(1)
        };
        announce(
            &mut tracker,
            t0,
            addr(10_000 + id as u16),
            id,
            token,
            version,
            "f",
        );
        // Every holder of the popular version out-ranks the lone holder of the other.
        if version == hash(1) {
            credit(
                &mut tracker,
                t0,
                addr(9000),
                (asker_id, asker),
                id,
                u64::from(id) * 100,
            );
        }
    }
    let (versions, holders) = lookup(&mut tracker, t0, addr(9000), asker_id, asker, "f");
    assert_eq!(versions.len(), 2);
    assert_eq!(holders.len(), wire::LOOKUP_HOLDERS_MAX);
    assert!(holder_ids(&holders).contains(&(holders_of_popular + 1)));
    // The rest are the best-credited holders of the popular version, best first.
    let credits: Vec<u64> = holders
        .iter()
        .map(|h| h.upload_credit_bytes.get())
        .collect();
    assert!(credits.windows(2).all(|pair| pair[0] >= pair[1]));
    assert_eq!(credits[0], u64::from(holders_of_popular) * 100);
}

/// Past the best holders by credit, a look-up lists a random sample: two askers of a name
/// with many holders see different holders, and the best by credit are always there.
#[test]
fn lookups_past_the_best_by_credit_are_sampled() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let holders = (wire::LOOKUP_HOLDERS_MAX * 3) as u32;
    let tokens: Vec<u64> = (1..=holders)
        .map(|id| register(&mut tracker, t0, addr(4000 + id as u16), id, 0))
        .collect();
    for id in 1..=holders {
        announce(
            &mut tracker,
            t0,
            addr(4000 + id as u16),
            id,
            tokens[id as usize - 1],
            hash(1),
            "f",
        );
    }
    // Node 1 credits nodes 2..=17 so that they are the best by credit.
    for id in 2..=(LOOKUP_BY_CREDIT_MAX as u32 + 1) {
        credit(&mut tracker, t0, addr(4001), (1, tokens[0]), id, 1 << 20);
    }
    let a = register(&mut tracker, t0, addr(9001), 9001, 0);
    let b = register(&mut tracker, t0, addr(9002), 9002, 0);
    let (_, seen_a) = lookup(&mut tracker, t0, addr(9001), 9001, a, "f");
    let (_, seen_b) = lookup(&mut tracker, t0, addr(9002), 9002, b, "f");
    assert_eq!(seen_a.len(), wire::LOOKUP_HOLDERS_MAX);
    for list in [&seen_a, &seen_b] {
        let best: Vec<u32> = holder_ids(&list[..LOOKUP_BY_CREDIT_MAX]);
        let mut sorted = best.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (2..=(LOOKUP_BY_CREDIT_MAX as u32 + 1)).collect::<Vec<_>>()
        );
    }
    assert_ne!(
        holder_ids(&seen_a),
        holder_ids(&seen_b),
        "the samples should differ"
    );
}

/// One report carries several uploaders' credit (a node reports every few seconds); each
/// record counts, or is refused, on its own.
#[test]
fn one_credit_report_carries_several_uploaders() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let mut tokens = vec![0];
    for id in 1..=4 {
        tokens.push(register(&mut tracker, t0, addr(4000 + id as u16), id, 0));
    }
    for id in 1..=3 {
        announce(
            &mut tracker,
            t0,
            addr(4000 + id as u16),
            id,
            tokens[id as usize],
            hash(1),
            "f",
        );
    }
    let record = |from_node: u32, chunks: u32, bytes: u64| CreditRecord {
        from_node: U32::new(from_node),
        chunks: U32::new(chunks),
        bytes: U64::new(bytes),
        info_hash: hash(1),
    };
    // Node 3's and node 1's chunks count; node 4's own and an impossible one do not.
    let records = [
        record(3, 2, 2_000_000),
        record(1, 1, 500_000),
        record(4, 1, 9_000_000),
        record(2, 1, u64::from(wire::CHUNK_BYTES_MAX) + 1),
    ];
    let fixed = Credit {
        auth: auth(4, tokens[4]),
        record_count: U16::new(records.len() as u16),
        reserved: [0; 2],
    };
    let refused_before = tracker.stats().refused;
    send(
        &mut tracker,
        t0,
        addr(4004),
        Message::Credit {
            fixed: &fixed,
            records: &records,
        },
    );
    assert!(
        drain(&mut tracker).is_empty(),
        "credit reports get no reply"
    );
    assert_eq!(tracker.stats().refused, refused_before + 2);
    let (_, holders) = lookup(&mut tracker, t0, addr(4004), 4, tokens[4], "f");
    assert_eq!(holder_ids(&holders), [3, 1, 2]);
    let credits: Vec<u64> = holders
        .iter()
        .map(|h| h.upload_credit_bytes.get())
        .collect();
    assert_eq!(credits, [2_000_000, 500_000, 0]);
}

/// A look-up carries the asker's credit: it counts before the reply is ranked.
#[test]
fn credit_riding_a_lookup_counts_before_the_reply() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let mut tokens = vec![0];
    for id in 1..=3 {
        tokens.push(register(&mut tracker, t0, addr(4000 + id as u16), id, 0));
    }
    for id in 1..=2 {
        announce(
            &mut tracker,
            t0,
            addr(4000 + id as u16),
            id,
            tokens[id as usize],
            hash(1),
            "f",
        );
    }
    let credits = [CreditRecord {
        from_node: U32::new(2),
        chunks: U32::new(1),
        bytes: U64::new(70_000),
        info_hash: hash(1),
    }];
    let fixed = Lookup {
        auth: auth(3, tokens[3]),
        credit_count: U16::new(1),
        reserved: [0; 2],
    };
    send(
        &mut tracker,
        t0,
        addr(4003),
        Message::Lookup {
            fixed: &fixed,
            credits: &credits,
            name: "f",
        },
    );
    let replies = drain(&mut tracker);
    let Some(Ok(Message::LookupReply { holders, .. })) =
        replies.first().map(|(_, bytes)| decode(bytes))
    else {
        panic!("no look-up reply: {replies:?}");
    };
    assert_eq!(holder_ids(holders), [2, 1]);
    assert_eq!(holders[0].upload_credit_bytes.get(), 70_000);
}
