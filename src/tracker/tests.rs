use super::*;
use crate::wire::{
    Announce, Credit, Exit, HolderRecord, Lookup, Register, Registered, VersionRecord, decode,
};
use std::time::Duration;

const KIB: u32 = 1024;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn auth(node_id: u32, token: u64) -> NodeAuth {
    NodeAuth {
        node_id: U32::new(node_id),
        token: U64::new(token),
    }
}

fn hash(byte: u8) -> Hash {
    [byte; wire::HASH_BYTES]
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Encodes `message` and feeds it to the tracker; returns the datagram's length.
fn send(tracker: &mut Tracker, now: Instant, from: SocketAddr, message: Message) -> usize {
    let mut buf = [0u8; 4096];
    let len = message.encode(&mut buf).unwrap();
    tracker.handle_datagram(now, from, &buf[..len]);
    len
}

/// Every queued reply, as (destination, bytes).
fn drain(tracker: &mut Tracker) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    let mut out = Vec::new();
    while let Some(transmit) = tracker.poll_transmit(&mut buf) {
        out.push((transmit.to, buf[..transmit.len].to_vec()));
    }
    out
}

fn events(tracker: &mut Tracker) -> Vec<TrackerEvent> {
    std::iter::from_fn(|| tracker.poll_event()).collect()
}

/// The one reply queued, which must be a refusal; returns its reason.
fn refused(tracker: &mut Tracker) -> RefusedReason {
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1, "expected exactly one reply");
    match decode(&replies[0].1).unwrap() {
        Message::Refused(refused) => RefusedReason::from_u16(refused.reason.get()).unwrap(),
        other => panic!("expected Refused, got {other:?}"),
    }
}

/// Registers and returns the token from the `Registered` reply.
fn register(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    node_id: u32,
    token: u64,
) -> u64 {
    send(
        tracker,
        now,
        from,
        Message::Register(&Register {
            auth: auth(node_id, token),
            reserved: [0; 4],
        }),
    );
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, from);
    match decode(&replies[0].1).unwrap() {
        Message::Registered(registered) => {
            assert_eq!(registered.auth.node_id.get(), node_id);
            registered.auth.token.get()
        }
        other => panic!("expected Registered, got {other:?}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn announce_message(
    node_id: u32,
    token: u64,
    info_hash: Hash,
    file_bytes: u64,
    chunk_bytes: u32,
    chunks_held: u32,
) -> Announce {
    Announce {
        auth: auth(node_id, token),
        info_hash,
        file_bytes: U64::new(file_bytes),
        chunk_bytes: U32::new(chunk_bytes),
        chunks_held: U32::new(chunks_held),
    }
}

/// Announces a whole file of 4 chunks of 16 KiB, expecting `Announced`.
fn announce(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    node_id: u32,
    token: u64,
    info_hash: Hash,
    name: &str,
) {
    let fixed = announce_message(node_id, token, info_hash, 64 * u64::from(KIB), 16 * KIB, 4);
    send(
        tracker,
        now,
        from,
        Message::Announce {
            fixed: &fixed,
            name,
        },
    );
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1);
    match decode(&replies[0].1).unwrap() {
        Message::Announced(announced) => {
            assert_eq!(announced.info_hash, info_hash);
            assert_eq!(announced.chunks_held.get(), 4);
        }
        other => panic!("expected Announced, got {other:?}"),
    }
}

/// Looks `name` up as `node_id`, expecting a `LookupReply`.
fn lookup(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    node_id: u32,
    token: u64,
    name: &str,
) -> (Vec<VersionRecord>, Vec<HolderRecord>) {
    send(
        tracker,
        now,
        from,
        Message::Lookup {
            fixed: &Lookup {
                auth: auth(node_id, token),
            },
            name,
        },
    );
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, from);
    match decode(&replies[0].1).unwrap() {
        Message::LookupReply {
            versions,
            holders,
            name: reply_name,
        } => {
            assert_eq!(reply_name, name);
            (versions.to_vec(), holders.to_vec())
        }
        other => panic!("expected LookupReply, got {other:?}"),
    }
}

fn credit(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    reporter: (u32, u64),
    from_node: u32,
    bytes: u64,
) {
    let message = Credit {
        auth: auth(reporter.0, reporter.1),
        from_node: U32::new(from_node),
        chunks: U32::new(1),
        bytes: U64::new(bytes),
        info_hash: hash(1),
    };
    send(tracker, now, from, Message::Credit(&message));
}

fn holder_ids(holders: &[HolderRecord]) -> Vec<u32> {
    holders.iter().map(|holder| holder.node_id.get()).collect()
}

/// The snapshot due [`REGISTRY_SAVE_DELAY`] after `changed_at`, as the reactor would take it.
fn snapshot_when_due(tracker: &mut Tracker, changed_at: Instant) -> Option<Snapshot> {
    tracker.handle_timeout(changed_at + REGISTRY_SAVE_DELAY);
    tracker.poll_snapshot()
}

fn new_tracker(now: Instant) -> Tracker {
    Tracker::new(TrackerConfig::default(), 7, now)
}

#[test]
fn register_mints_token_and_checks_it() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let token = register(&mut tracker, t0, addr(4000), 3, 0);
    assert_ne!(token, 0);
    assert_eq!(
        events(&mut tracker),
        [TrackerEvent::NodeRegistered {
            node_id: 3,
            addr: addr(4000),
            returning: false
        }]
    );
    // Re-registering with the token is a heartbeat: same token, no event.
    assert_eq!(
        register(&mut tracker, t0 + secs(1), addr(4000), 3, token),
        token
    );
    assert!(events(&mut tracker).is_empty());
    // Someone else claiming id 3 is refused, with a reply no larger than the request.
    let request = Register {
        auth: auth(3, token ^ 1),
        reserved: [0; 4],
    };
    let request_len = send(&mut tracker, t0, addr(5000), Message::Register(&request));
    let replies = drain(&mut tracker);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, addr(5000));
    assert!(replies[0].1.len() <= request_len);
    match decode(&replies[0].1).unwrap() {
        Message::Refused(refused) => {
            assert_eq!(refused.request_kind, Kind::Register as u8);
            assert_eq!(refused.reason.get(), RefusedReason::BadToken as u16);
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    // Token 0 for a known id is refused too: the id is taken until it expires.
    send(
        &mut tracker,
        t0,
        addr(5000),
        Message::Register(&Register {
            auth: auth(3, 0),
            reserved: [0; 4],
        }),
    );
    assert_eq!(refused(&mut tracker), RefusedReason::BadToken);
    // An unknown id with a token it kept from before is welcome back, with a fresh token
    // (a token it chose itself would let a spoofed sender unlock large replies).
    let fresh = register(&mut tracker, t0, addr(4001), 9, 0x1234);
    assert!(fresh != 0x1234 && fresh != 0);
    assert_eq!(
        events(&mut tracker),
        [TrackerEvent::NodeRegistered {
            node_id: 9,
            addr: addr(4001),
            returning: true
        }]
    );
    assert_eq!(tracker.node_count(), 2);
    assert_eq!(tracker.stats().refused, 2);
}

#[test]
fn a_lost_registered_reply_is_sent_again_until_the_token_is_used() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let token = register(&mut tracker, t0, addr(4000), 3, 0);
    // The reply was lost; the node asks again, still without a token, from the same address.
    assert_eq!(
        register(&mut tracker, t0 + secs(1), addr(4000), 3, 0),
        token
    );
    // From elsewhere, token 0 is still someone else claiming the id.
    let request = Register {
        auth: auth(3, 0),
        reserved: [0; 4],
    };
    send(&mut tracker, t0, addr(5000), Message::Register(&request));
    assert_eq!(refused(&mut tracker), RefusedReason::BadToken);
    // Once the node has used its token, token 0 is refused even from its own address.
    assert_eq!(
        register(&mut tracker, t0 + secs(2), addr(4000), 3, token),
        token
    );
    send(&mut tracker, t0, addr(4000), Message::Register(&request));
    assert_eq!(refused(&mut tracker), RefusedReason::BadToken);
}

#[test]
fn registered_tells_the_heartbeat_interval() {
    let t0 = Instant::now();
    let config = TrackerConfig {
        expiry: secs(30),
        heartbeat_interval: Duration::from_millis(12_345),
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config, 1, t0);
    send(
        &mut tracker,
        t0,
        addr(4000),
        Message::Register(&Register {
            auth: auth(1, 0),
            reserved: [0; 4],
        }),
    );
    let replies = drain(&mut tracker);
    let Message::Registered(registered) = decode(&replies[0].1).unwrap() else {
        panic!("not Registered")
    };
    assert_eq!(registered.heartbeat_interval_ms.get(), 12_345);
}

#[test]
fn same_seed_same_tokens() {
    let t0 = Instant::now();
    let tokens = |seed| {
        let mut tracker = Tracker::new(TrackerConfig::default(), seed, t0);
        (1..=3)
            .map(|id| register(&mut tracker, t0, addr(4000), id, 0))
            .collect::<Vec<_>>()
    };
    assert_eq!(tokens(5), tokens(5));
    assert_ne!(tokens(5), tokens(6));
}

#[test]
fn new_address_replaces_old() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let token = register(&mut tracker, t0, addr(4000), 1, 0);
    announce(
        &mut tracker,
        t0,
        addr(4000),
        1,
        token,
        hash(1),
        "file_A.txt",
    );
    let asker = register(&mut tracker, t0, addr(4100), 2, 0);
    events(&mut tracker);
    // Node 1 restarted on a new port, with its saved token.
    assert_eq!(register(&mut tracker, t0, addr(4001), 1, token), token);
    assert_eq!(
        events(&mut tracker),
        [TrackerEvent::NodeRegistered {
            node_id: 1,
            addr: addr(4001),
            returning: true
        }]
    );
    let (_, holders) = lookup(&mut tracker, t0, addr(4100), 2, asker, "file_A.txt");
    assert_eq!(holders.len(), 1);
    assert_eq!(
        wire::socket_addr(holders[0].ip, holders[0].port.get()),
        addr(4001)
    );
}

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

#[test]
fn expiry_removes_all_stale_nodes_in_one_sweep() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    assert_eq!(
        tracker.poll_timeout(),
        None,
        "no nodes, nothing to wake for"
    );
    let a = register(&mut tracker, t0, addr(4001), 1, 0);
    register(
        &mut tracker,
        t0 + Duration::from_millis(500),
        addr(4002),
        2,
        0,
    );
    let c = register(&mut tracker, t0 + secs(5), addr(4003), 3, 0);
    announce(&mut tracker, t0, addr(4001), 1, a, hash(1), "f");
    events(&mut tracker);
    assert_eq!(tracker.poll_timeout(), Some(t0 + secs(22)));

    // Node 3 heartbeats; its deadline moves, the others' do not.
    register(&mut tracker, t0 + secs(20), addr(4003), 3, c);
    // Spurious and early wake-ups do nothing.
    tracker.handle_timeout(t0 + secs(10));
    tracker.handle_timeout(t0 + secs(22) + Duration::from_millis(499));
    assert_eq!(tracker.node_count(), 2);
    assert_eq!(
        tracker.poll_timeout(),
        Some(t0 + secs(22) + Duration::from_millis(500))
    );
    // A wake-up after both deadlines sweeps both at once.
    tracker.handle_timeout(t0 + secs(23));
    assert_eq!(
        events(&mut tracker),
        [
            TrackerEvent::NodeExpired { node_id: 1 },
            TrackerEvent::NodeExpired { node_id: 2 }
        ]
    );
    assert_eq!(tracker.node_count(), 1);
    assert_eq!(tracker.file_count(), 0, "node 1's holding went with it");
    assert_eq!(tracker.poll_timeout(), Some(t0 + secs(42)));
    // Node 1 is unknown now.
    send(
        &mut tracker,
        t0 + secs(23),
        addr(4001),
        Message::Exit(&Exit { auth: auth(1, a) }),
    );
    assert_eq!(refused(&mut tracker), RefusedReason::UnknownNode);

    tracker.handle_timeout(t0 + secs(42));
    assert_eq!(tracker.node_count(), 0);
    assert_eq!(tracker.poll_timeout(), None);
}

#[test]
fn a_message_after_the_deadline_finds_the_node_expired() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let token = register(&mut tracker, t0, addr(4001), 1, 0);
    // The reactor was late to call handle_timeout: the node is still gone.
    send(
        &mut tracker,
        t0 + secs(30),
        addr(4001),
        Message::Exit(&Exit {
            auth: auth(1, token),
        }),
    );
    assert_eq!(refused(&mut tracker), RefusedReason::UnknownNode);
    assert!(events(&mut tracker).contains(&TrackerEvent::NodeExpired { node_id: 1 }));
}

#[test]
fn exit_removes_the_node_and_its_holdings() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let a = register(&mut tracker, t0, addr(4001), 1, 0);
    let b = register(&mut tracker, t0, addr(4002), 2, 0);
    announce(&mut tracker, t0, addr(4001), 1, a, hash(1), "f");
    announce(&mut tracker, t0, addr(4001), 1, a, hash(2), "g");
    events(&mut tracker);
    send(
        &mut tracker,
        t0,
        addr(4001),
        Message::Exit(&Exit { auth: auth(1, a) }),
    );
    let replies = drain(&mut tracker);
    assert_eq!(replies.len(), 1);
    match decode(&replies[0].1).unwrap() {
        Message::ExitAck(ack) => assert_eq!(ack.node_id.get(), 1),
        other => panic!("expected ExitAck, got {other:?}"),
    }
    assert_eq!(
        events(&mut tracker),
        [TrackerEvent::NodeExited { node_id: 1 }]
    );
    assert_eq!(tracker.node_count(), 1);
    assert_eq!(tracker.file_count(), 0);
    let (versions, holders) = lookup(&mut tracker, t0, addr(4002), 2, b, "f");
    assert!(versions.is_empty() && holders.is_empty());
}

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
    assert_eq!(
        tracker.poll_snapshot(),
        None,
        "registering is saved later too"
    );
    let due = t0 + REGISTRY_SAVE_DELAY;
    assert_eq!(tracker.poll_timeout(), Some(due));
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
    assert_eq!(tracker.stats().snapshots, 0);
    assert_eq!(
        tracker.poll_timeout(),
        Some(due),
        "the first change sets the deadline"
    );
    tracker.handle_timeout(due);
    let snapshot = tracker.poll_snapshot().expect("saved once due");
    assert_eq!(tracker.poll_snapshot(), None);
    assert_eq!(tracker.stats().snapshots, 1, "one save for the whole burst");
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
    assert_eq!(tracker.stats().snapshots, 2);
    tracker.handle_timeout(t1 + REGISTRY_SAVE_DELAY);
    assert_eq!(tracker.poll_snapshot(), None, "already saved at the stop");
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
    // A used token is not handed to whoever asks with none.
    send(
        &mut restored,
        t1,
        addr(4002),
        Message::Register(&Register {
            auth: auth(2, 0),
            reserved: [0; 4],
        }),
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

#[test]
fn garbage_is_counted_and_not_answered() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let mut rng = Rng::new(99);
    let mut sent = 0;
    for len in 0..200 {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        tracker.handle_datagram(t0, addr(6666), &bytes);
        sent += 1;
    }
    // A valid header with a kind the tracker sends but never receives.
    let registered = Registered {
        auth: auth(1, 1),
        heartbeat_interval_ms: U32::new(1),
    };
    send(
        &mut tracker,
        t0,
        addr(6666),
        Message::Registered(&registered),
    );
    // A register with nonzero reserved bytes.
    let mut buf = [0u8; 64];
    let len = Message::Register(&Register {
        auth: auth(1, 0),
        reserved: [1; 4],
    })
    .encode(&mut buf)
    .unwrap();
    tracker.handle_datagram(t0, addr(6666), &buf[..len]);
    sent += 2;

    assert!(drain(&mut tracker).is_empty());
    assert_eq!(tracker.node_count(), 0);
    let stats = tracker.stats().clone();
    assert_eq!(stats.datagrams_received, sent);
    assert_eq!(stats.dropped_malformed, sent - 1);
    assert_eq!(stats.dropped_unexpected_kind, 1);
    let events = events(&mut tracker);
    assert_eq!(events.len() as u64, sent);
    assert_eq!(
        events[0].to_string(),
        "dropped datagram from 127.0.0.1:6666: shorter than a header"
    );
    assert!(
        stats
            .to_string()
            .starts_with(&format!("received {sent}, malformed {}", sent - 1))
    );
}

#[test]
fn unauthenticated_lookup_gets_only_a_small_refusal() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let a = register(&mut tracker, t0, addr(4001), 1, 0);
    announce(&mut tracker, t0, addr(4001), 1, a, hash(1), "f");
    for (node_id, token, reason) in [
        (2, 5, RefusedReason::UnknownNode),
        (1, a ^ 1, RefusedReason::BadToken),
    ] {
        let request_len = send(
            &mut tracker,
            t0,
            addr(6666),
            Message::Lookup {
                fixed: &Lookup {
                    auth: auth(node_id, token),
                },
                name: "f",
            },
        );
        let replies = drain(&mut tracker);
        assert_eq!(replies.len(), 1);
        assert!(
            replies[0].1.len() <= request_len,
            "{} > {request_len}",
            replies[0].1.len()
        );
        match decode(&replies[0].1).unwrap() {
            Message::Refused(refused) => {
                assert_eq!(refused.request_kind, Kind::Lookup as u8);
                assert_eq!(refused.reason.get(), reason as u16);
            }
            other => panic!("expected Refused, got {other:?}"),
        }
    }
    // The right token from another address: the reply would go where node 1 never proved it
    // receives, so it is refused too.
    send(
        &mut tracker,
        t0,
        addr(6666),
        Message::Lookup {
            fixed: &Lookup { auth: auth(1, a) },
            name: "f",
        },
    );
    assert_eq!(refused(&mut tracker), RefusedReason::UnknownNode);
}

/// A spoofer forges a Register from a victim's address with a token of its choosing, then a
/// look-up with that token: the tracker minted its own token instead, so the look-up gets
/// only a small refusal, never a large reply aimed at the victim.
#[test]
fn a_forged_register_does_not_unlock_replies_to_a_spoofed_address() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let holder = register(&mut tracker, t0, addr(4001), 1, 0);
    announce(&mut tracker, t0, addr(4001), 1, holder, hash(1), "f");
    let victim = addr(7777);
    let chosen = 0xfeed_u64;
    send(
        &mut tracker,
        t0,
        victim,
        Message::Register(&Register {
            auth: auth(42, chosen),
            reserved: [0; 4],
        }),
    );
    let minted = match decode(&drain(&mut tracker)[0].1).unwrap() {
        Message::Registered(registered) => registered.auth.token.get(),
        other => panic!("expected Registered, got {other:?}"),
    };
    assert_ne!(
        minted, chosen,
        "the tracker must not adopt a token the sender chose"
    );
    let request_len = send(
        &mut tracker,
        t0,
        victim,
        Message::Lookup {
            fixed: &Lookup {
                auth: auth(42, chosen),
            },
            name: "f",
        },
    );
    let replies = drain(&mut tracker);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].1.len() <= request_len);
    assert!(matches!(decode(&replies[0].1), Ok(Message::Refused(_))));
}

#[test]
fn full_node_table_refuses_new_nodes() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    for id in 0..NODES_MAX as u32 {
        // From 16 ports, so that no sender goes over its budget (crate::budget).
        send(
            &mut tracker,
            t0,
            addr(4000 + (id % 16) as u16),
            Message::Register(&Register {
                auth: auth(id, 0),
                reserved: [0; 4],
            }),
        );
        // Drain as we go: the transmit queue is bounded too.
        let _ = tracker.poll_transmit(&mut [0u8; 64]);
    }
    assert_eq!(tracker.node_count(), NODES_MAX);
    assert_eq!(tracker.stats().replies_dropped_queue_full, 0);
    send(
        &mut tracker,
        t0,
        addr(4000),
        Message::Register(&Register {
            auth: auth(u32::MAX, 0),
            reserved: [0; 4],
        }),
    );
    assert_eq!(refused(&mut tracker), RefusedReason::Full);
}

#[test]
fn transmit_queue_is_bounded() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    for _ in 0..TRANSMIT_QUEUE_MAX + 10 {
        send(
            &mut tracker,
            t0,
            addr(6666),
            Message::Exit(&Exit { auth: auth(1, 1) }),
        );
    }
    assert_eq!(tracker.stats().replies_dropped_queue_full, 10);
    assert_eq!(drain(&mut tracker).len(), TRANSMIT_QUEUE_MAX);
}

#[test]
fn event_lines() {
    let registered = TrackerEvent::NodeRegistered {
        node_id: 3,
        addr: addr(4000),
        returning: false,
    };
    assert_eq!(
        registered.to_string(),
        "node 3 registered from 127.0.0.1:4000"
    );
    let returning = TrackerEvent::NodeRegistered {
        node_id: 3,
        addr: addr(4000),
        returning: true,
    };
    assert_eq!(
        returning.to_string(),
        "node 3 registered from 127.0.0.1:4000 (returning)"
    );
    assert_eq!(
        TrackerEvent::NodeExpired { node_id: 3 }.to_string(),
        "node 3 expired"
    );
    assert_eq!(
        TrackerEvent::NodeExited { node_id: 3 }.to_string(),
        "node 3 exited"
    );
    let announced = TrackerEvent::FileAnnounced {
        node_id: 3,
        name: "file_A.txt".into(),
        info_hash: hash(0xab),
        chunks_held: 12,
        chunk_count: 12,
    };
    assert_eq!(
        announced.to_string(),
        format!(
            "node 3 announced file_A.txt ({}) 12/12 chunks",
            "ab".repeat(20)
        )
    );
    let dropped = TrackerEvent::Dropped {
        from: addr(1),
        reason: "wrong magic".into(),
    };
    assert_eq!(
        dropped.to_string(),
        "dropped datagram from 127.0.0.1:1: wrong magic"
    );
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
