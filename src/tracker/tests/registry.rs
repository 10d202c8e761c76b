//! Registering, tokens, addresses, expiry and exit, the node table's limit, event lines.

use super::*;

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
