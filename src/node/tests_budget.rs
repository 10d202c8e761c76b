//! The node's per-sender budgets ([`crate::budget`]) for requests at its door.

use super::*;
use crate::budget::SENDER_BURST;
use crate::wire::{U32, U64};

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn have_request() -> Vec<u8> {
    let ask = wire::PeerAsk {
        cookie: U64::new(0),
        node_id: U32::new(9),
        info_hash: [7; wire::HASH_BYTES],
    };
    let mut buf = vec![0u8; 128];
    let len = Message::HaveRequest(&ask).encode(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// Datagrams the node wants sent now (drained, so that its queue never fills).
fn sent(node: &mut Node, now: Instant) -> usize {
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    std::iter::from_fn(|| node.poll_transmit(now, &mut buf))
        .filter(|t| t.to != SocketAddr::from(([127, 0, 0, 1], 1)))
        .count()
}

#[test]
fn requests_over_a_senders_budget_are_dropped_and_counted_and_a_neighbour_is_served() {
    let dir = std::env::temp_dir().join(format!("torrent-node-budget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = crate::storage::StateDir::open(&dir).unwrap();
    let t0 = Instant::now();
    let config = NodeConfig::new(2, SocketAddr::from(([127, 0, 0, 1], 1)));
    let mut node = Node::new(config, Arc::new(state), 5, t0);
    let request = have_request();
    let extra = 500;
    let mut answered = 0;
    for _ in 0..SENDER_BURST + extra {
        node.handle_datagram(t0, at(7000), &request);
        answered += sent(&mut node, t0);
    }
    // Without a cookie, each admitted request gets a cookie (a Welcome), no more.
    assert_eq!(answered, SENDER_BURST as usize);
    assert_eq!(node.stats().dropped_over_budget, u64::from(extra));
    assert!(
        node.status(t0)
            .contains(&format!("requests over budget{extra:>5}")),
        "{}",
        node.status(t0)
    );
    // Another port of the same host is served at the same moment.
    node.handle_datagram(t0, at(7001), &request);
    assert_eq!(sent(&mut node, t0), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
