//! Hostile or broken input: garbage, unauthenticated and forged requests, full queues.

use super::*;

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
        holdings_digest: U64::new(0),
        ..bytemuck::Zeroable::zeroed()
    };
    send(
        &mut tracker,
        t0,
        addr(6666),
        Message::Registered(&registered),
    );
    // A register one byte short.
    let mut buf = [0u8; 128];
    let len = Message::Register(&register_message(1, 0, 0))
        .encode(&mut buf)
        .unwrap();
    tracker.handle_datagram(t0, addr(6666), &buf[..len - 1]);
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
                    credit_count: U16::new(0),
                    reserved: [0; 2],
                },
                credits: &[],
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
                assert_eq!(refused.reason, reason);
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
            fixed: &Lookup {
                auth: auth(1, a),
                credit_count: U16::new(0),
                reserved: [0; 2],
            },
            credits: &[],
            name: "f",
        },
    );
    assert_eq!(refused(&mut tracker), RefusedReason::UnknownNode);
}

/// A spoofer forges a Register from a victim's address with a token of its choosing, then a
/// look-up with that token: the tracker keeps nothing until the victim's address echoes a
/// cookie (it never will), and would mint its own token anyway, so the victim gets only
/// replies no larger than the requests.
#[test]
fn a_forged_register_does_not_unlock_replies_to_a_spoofed_address() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let holder = register(&mut tracker, t0, addr(4001), 1, 0);
    announce(&mut tracker, t0, addr(4001), 1, holder, hash(1), "f");
    let victim = addr(7777);
    let chosen = 0xfeed_u64;
    let register_len = send(
        &mut tracker,
        t0,
        victim,
        Message::Register(&register_message(42, chosen, 0)),
    );
    let replies = drain(&mut tracker);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].1.len() <= register_len);
    assert!(matches!(decode(&replies[0].1), Ok(Message::Challenge(_))));
    assert_eq!(tracker.node_count(), 1, "no state for an unproven address");
    // A guessed cookie does not help either.
    send(
        &mut tracker,
        t0,
        victim,
        Message::Register(&register_message(42, chosen, 0x1234_5678)),
    );
    assert!(matches!(
        decode(&drain(&mut tracker)[0].1),
        Ok(Message::Challenge(_))
    ));
    assert_eq!(tracker.node_count(), 1);
    // Had the victim echoed the cookie, it would get a token of the tracker's choosing.
    let minted = register(&mut tracker, t0, victim, 42, chosen);
    assert_ne!(
        minted, chosen,
        "the tracker must not adopt a token the sender chose"
    );
    drain(&mut tracker);
    let request_len = send(
        &mut tracker,
        t0,
        victim,
        Message::Lookup {
            fixed: &Lookup {
                auth: auth(42, chosen),
                credit_count: U16::new(0),
                reserved: [0; 2],
            },
            credits: &[],
            name: "f",
        },
    );
    let replies = drain(&mut tracker);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].1.len() <= request_len);
    assert!(matches!(decode(&replies[0].1), Ok(Message::Refused(_))));
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
