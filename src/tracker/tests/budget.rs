//! The tracker's per-sender budgets ([`crate::budget`]) at its door.

use super::*;
use crate::budget::{SENDER_BURST, TRACKER_SENDERS_MAX};

fn at(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

fn bep15_connect(transaction_id: u32) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&crate::bep15::PROTOCOL_ID.to_be_bytes());
    bytes[12..].copy_from_slice(&transaction_id.to_be_bytes());
    bytes
}

/// Replies queued, drained so that the transmit queue never fills.
fn replies(tracker: &mut Tracker) -> usize {
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    std::iter::from_fn(|| tracker.poll_transmit(Instant::now(), &mut buf)).count()
}

#[test]
fn a_flood_from_one_port_is_cut_while_another_port_of_the_address_is_answered() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 7, t0);
    let flooder = at([127, 0, 0, 1], 7000);
    let neighbour = at([127, 0, 0, 1], 7001);
    let extra = 1_000;
    let mut answered = 0;
    for i in 0..SENDER_BURST + extra {
        tracker.handle_datagram(t0, flooder, &bep15_connect(i));
        answered += replies(&mut tracker);
    }
    assert_eq!(answered, SENDER_BURST as usize);
    let stats = tracker.stats().clone();
    assert_eq!(stats.dropped_over_budget, u64::from(extra));
    assert_eq!(stats.bep15_connects, u64::from(SENDER_BURST));
    // Told once (at most once a second), with the count so far.
    let told: Vec<String> = std::iter::from_fn(|| tracker.poll_event())
        .filter(|e| matches!(e, TrackerEvent::OverBudget { .. }))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        told,
        ["dropping datagrams over their sender's budget (latest from 127.0.0.1:7000; 1 so far)"]
    );
    assert!(stats.to_string().contains(", over budget 1000,"), "{stats}");
    // The same address from another port, at the same moment: answered.
    for i in 0..100 {
        tracker.handle_datagram(t0, neighbour, &bep15_connect(i));
    }
    assert_eq!(replies(&mut tracker), 100);
    // The flooder is still cut (a microsecond earns no datagram), and not told again.
    tracker.handle_datagram(t0 + Duration::from_micros(1), flooder, &bep15_connect(0));
    assert_eq!(replies(&mut tracker), 0);
    assert_eq!(tracker.poll_event(), None);
    // A second later its burst is back, and a new flood is reported again.
    let t1 = t0 + Duration::from_secs(1);
    for i in 0..=SENDER_BURST {
        tracker.handle_datagram(t1, flooder, &bep15_connect(i));
        answered += replies(&mut tracker);
    }
    assert_eq!(answered, 2 * SENDER_BURST as usize);
    let later: Vec<TrackerEvent> = std::iter::from_fn(|| tracker.poll_event()).collect();
    let total = u64::from(extra) + 2;
    assert!(
        matches!(later[..], [TrackerEvent::OverBudget { dropped_total, .. }] if dropped_total == total),
        "{later:?}"
    );
}

#[test]
fn distinct_senders_beyond_the_table_are_all_served_and_the_flooder_stays_cut() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 7, t0);
    let flooder = at([10, 1, 1, 1], 6881);
    for i in 0..SENDER_BURST {
        tracker.handle_datagram(t0, flooder, &bep15_connect(i));
        let _ = replies(&mut tracker);
    }
    let mut answered = 0;
    for i in 0..(2 * TRACKER_SENDERS_MAX) as u32 {
        let [a, b, c, d] = (0x0b00_0000 + i).to_be_bytes();
        tracker.handle_datagram(t0, at([a, b, c, d], 6881), &bep15_connect(i));
        tracker.handle_datagram(t0, flooder, &bep15_connect(i));
        answered += replies(&mut tracker);
    }
    assert_eq!(answered, 2 * TRACKER_SENDERS_MAX);
    assert_eq!(
        tracker.stats().dropped_over_budget,
        2 * TRACKER_SENDERS_MAX as u64
    );
}

/// Issue 13, finding 9: Registers no token vouches for are bounded per address, all its
/// ports together; a node with its token is served from that address all the same, and
/// another address is challenged as usual.
#[test]
fn unproven_registers_are_bounded_per_address_whatever_the_port() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let token = register(&mut tracker, t0, at([10, 0, 0, 1], 4000), 1, 0);
    let flood = crate::budget::UNPROVEN_BURST as u16 * 2;
    for port in 0..flood {
        send(
            &mut tracker,
            t0,
            at([10, 0, 0, 9], 20_000 + port),
            Message::Register(&register_message(100 + u32::from(port), 0, 0)),
        );
    }
    let challenged = drain(&mut tracker).len();
    // The burst is answered (with cookies), the rest dropped unanswered.
    assert_eq!(challenged, crate::budget::UNPROVEN_BURST as usize);
    assert_eq!(
        tracker.stats().dropped_unproven,
        u64::from(flood) - u64::from(crate::budget::UNPROVEN_BURST)
    );
    assert_eq!(tracker.node_count(), 1);
    // A known node on the flooded address still heartbeats; another address registers.
    assert_eq!(
        register(&mut tracker, t0, at([10, 0, 0, 9], 4001), 1, token),
        token
    );
    register(&mut tracker, t0, at([10, 0, 0, 2], 4000), 2, 0);
    assert_eq!(tracker.node_count(), 2);
}
