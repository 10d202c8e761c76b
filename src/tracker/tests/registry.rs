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
    let request = register_message(3, token ^ 1, 0);
    let request_len = send(&mut tracker, t0, addr(5000), Message::Register(&request));
    let replies = drain(&mut tracker);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, addr(5000));
    assert!(replies[0].1.len() <= request_len);
    match decode(&replies[0].1).unwrap() {
        Message::Refused(refused) => {
            assert_eq!(refused.request_kind, Kind::Register as u8);
            assert_eq!(refused.reason, RefusedReason::BadToken);
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    // Token 0 for a known id is refused too: the id is taken until it expires.
    send(
        &mut tracker,
        t0,
        addr(5000),
        Message::Register(&register_message(3, 0, 0)),
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
    let request = register_message(3, 0, 0);
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
    let registered = register_reply(&mut tracker, t0, addr(4000), 1, 0);
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

/// Finding 2 of issue 13: tokens were SplitMix64 outputs, so one revealed the next.
#[test]
fn a_token_predicts_nothing() {
    let t0 = Instant::now();
    // Two processes started alike still hand out unrelated tokens: each comes from the OS.
    let tokens = || {
        let mut tracker = Tracker::new(TrackerConfig::default(), Secrets::os(), t0);
        (1..=3)
            .map(|id| register(&mut tracker, t0, addr(4000), id, 0))
            .collect::<Vec<_>>()
    };
    let (a, b) = (tokens(), tokens());
    assert!(a.iter().all(|token| !b.contains(token)), "{a:?} {b:?}");
    // Seeded (simulations), a token is not a generator output: the one a SplitMix64 state
    // recovered from it would give next is not the next token.
    let seeded = tokens_seeded(5);
    let mut inverted = Rng::new(invert_splitmix(seeded[0]));
    assert_ne!(inverted.next_u64(), seeded[1]);

    fn tokens_seeded(seed: u64) -> Vec<u64> {
        let t0 = Instant::now();
        let mut tracker = Tracker::new(TrackerConfig::default(), seed, t0);
        (1..=2)
            .map(|id| register(&mut tracker, t0, addr(4000), id, 0))
            .collect()
    }
}

/// The SplitMix64 state after the step that output `out` (the attack of finding 2).
fn invert_splitmix(out: u64) -> u64 {
    fn undo_xorshift(y: u64, shift: u32) -> u64 {
        let mut x = y;
        for _ in 0..64 / shift {
            x = y ^ (x >> shift);
        }
        x
    }
    fn inverse(odd: u64) -> u64 {
        let mut x = odd;
        for _ in 0..5 {
            x = x.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(x)));
        }
        x
    }
    let mut z = undo_xorshift(out, 31);
    z = undo_xorshift(z.wrapping_mul(inverse(0x94d0_49bb_1331_11eb)), 27);
    undo_xorshift(z.wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9)), 30)
}

#[test]
fn the_attack_predicts_a_splitmix_generator() {
    let mut rng = Rng::new(99);
    let first = rng.next_u64();
    assert_eq!(Rng::new(invert_splitmix(first)).next_u64(), rng.next_u64());
}
