//! The node's peer wire part, sans-IO: a node in memory shares a file, and connections are
//! driven through [`Node::peer_wire`] as the reactor drives them.

use super::*;
use crate::peer_wire::{self, Handshake, Message};
use crate::storage::MemoryStorage;
use std::time::Duration;

const NAME: &str = "seeded.bin";
const FILE_BYTES: usize = 100_000;

fn at(ip: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, ip], port))
}

/// A node in memory holding [`NAME`] whole (16 KiB chunks), with an upload limit if
/// given; its info hash.
fn seeding_node(t0: Instant, max_upload_bytes_per_s: Option<u64>) -> (Node, Hash) {
    let storage = MemoryStorage::new("memory/node3");
    let content: Vec<u8> = (0..FILE_BYTES).map(|i| (i % 251) as u8).collect();
    storage.put_file(NAME, &content).unwrap();
    let config = NodeConfig {
        chunk_bytes: 16 * 1024,
        max_upload_bytes_per_s,
        ..NodeConfig::new(3, SocketAddr::from(([127, 0, 0, 1], 1)))
    };
    let mut node = Node::new(config, Arc::new(storage), 11, t0);
    node.handle_command(
        t0,
        Command::Send {
            name: NAME.to_string(),
        },
    );
    while let Some(event) = node.poll_event() {
        if let NodeEvent::Job(job) = event {
            node.handle_job_done(t0, run_job(job));
        }
    }
    let info_hash = *node
        .inspect()
        .library
        .files()
        .keys()
        .next()
        .expect("the file is held");
    (node, info_hash)
}

fn handshake(info_hash: Hash) -> Vec<u8> {
    Handshake::ours(info_hash, peer_wire::peer_id([5; 12]))
        .as_bytes()
        .to_vec()
}

fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; peer_wire::MESSAGE_BYTES_MAX];
    let len = message.encode(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// Takes everything the connection has to send, as the reactor would.
fn take_output(node: &mut Node, now: Instant, id: ConnectionId) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let mut door = node.peer_wire();
        let out = door.output(now, id).to_vec();
        if out.is_empty() {
            return all;
        }
        door.sent(now, id, out.len());
        all.extend(out);
    }
}

#[test]
fn connections_over_a_limit_are_refused_and_counted() {
    let t0 = Instant::now();
    let (mut node, _) = seeding_node(t0, None);
    let mut id = 0;
    for _ in 0..PEER_WIRE_CONNECTIONS_PER_ADDRESS_MAX {
        assert!(node.peer_wire().accept(t0, id, at(1, 6881 + id as u16)));
        id += 1;
    }
    assert!(!node.peer_wire().accept(t0, id, at(1, 7999)), "one address");
    id += 1;
    // The rest of the connections in all, one from each address.
    let others = PEER_WIRE_CONNECTIONS_MAX - PEER_WIRE_CONNECTIONS_PER_ADDRESS_MAX;
    for ip in 2..2 + others as u8 {
        assert!(node.peer_wire().accept(t0, id, at(ip, 6881)));
        id += 1;
    }
    assert!(!node.peer_wire().accept(t0, id, at(250, 6881)), "in all");
    assert_eq!(node.stats().peer_wire_refused_over_limit, 2);
    assert_eq!(
        node.stats().peer_wire_connections,
        PEER_WIRE_CONNECTIONS_MAX as u64
    );
    // One closes: its address may connect again.
    node.peer_wire().hang_up(0);
    assert!(node.peer_wire().accept(t0, 1_000, at(1, 7000)));
}

#[test]
fn a_held_file_is_served_and_an_unknown_one_closed() {
    let t0 = Instant::now();
    let (mut node, info_hash) = seeding_node(t0, None);
    assert!(node.peer_wire().accept(t0, 1, at(1, 6881)));
    node.peer_wire().receive(t0, 1, &handshake([9; 20]));
    assert_eq!(node.peer_wire().poll_closed(), Some(1));
    assert_eq!(node.stats().peer_wire_unknown_info_hash, 1);

    assert!(node.peer_wire().accept(t0, 2, at(1, 6882)));
    node.peer_wire().receive(t0, 2, &handshake(info_hash));
    let answer = take_output(&mut node, t0, 2);
    assert_eq!(&answer[28..48], &info_hash);
    // Interested: unchoked at once (a slot is free).
    node.peer_wire()
        .receive(t0, 2, &encode(&Message::Interested));
    assert_eq!(take_output(&mut node, t0, 2), encode(&Message::Unchoke));
    let ask = encode(&Message::Request(&peer_wire::Block::new(6, 0, 1_696)));
    node.peer_wire().receive(t0, 2, &ask);
    let served = take_output(&mut node, t0, 2);
    // The piece message of the short last block (100,000 = 6 x 16 KiB + 1,696).
    let expected_data: Vec<u8> = (98_304..FILE_BYTES).map(|i| (i % 251) as u8).collect();
    assert_eq!(&served[peer_wire::PIECE_HEADER_BYTES..], &expected_data[..]);
    assert_eq!(node.stats().peer_wire_blocks_sent, 1);
    assert_eq!(node.stats().peer_wire_bytes_sent, 1_696);
    assert!(node.status(t0).contains("peer wire: 2 connections"));

    // Unshared: the next sweep closes the connection.
    node.handle_command(
        t0,
        Command::Unshare {
            name: NAME.to_string(),
        },
    );
    let later = t0 + Duration::from_secs(2);
    node.handle_timeout(later);
    assert_eq!(node.peer_wire().poll_closed(), Some(2));
    assert_eq!(node.stats().peer_wire_withdrawn, 1);
}

#[test]
fn blocks_spend_the_nodes_upload_limit_and_wait_for_it() {
    let t0 = Instant::now();
    // 100 KiB/s: a burst of 64 KiB (one datagram's worth at least), then 100 KiB a second.
    let (mut node, info_hash) = seeding_node(t0, Some(100 * 1024));
    assert!(node.peer_wire().accept(t0, 1, at(1, 6881)));
    let mut bytes = handshake(info_hash);
    bytes.extend(encode(&Message::Interested));
    node.peer_wire().receive(t0, 1, &bytes);
    take_output(&mut node, t0, 1);
    let mut bytes = Vec::new();
    for piece in 0..6 {
        bytes.extend(encode(&Message::Request(&peer_wire::Block::new(
            piece, 0, 16_384,
        ))));
    }
    node.peer_wire().receive(t0, 1, &bytes);
    take_output(&mut node, t0, 1);
    let sent_at_once = node.stats().peer_wire_blocks_sent;
    assert!(
        sent_at_once < 6,
        "the burst holds {sent_at_once} of 6 blocks"
    );
    // The node wakes when the limit allows the next block: well before the next sweep.
    let wake = node.peer_wire.poll_timeout().expect("a wake for the limit");
    assert!(
        wake > t0 && wake < t0 + Duration::from_millis(500),
        "{wake:?}"
    );
    assert!(node.poll_timeout().is_some_and(|at| at <= wake));
    let later = t0 + Duration::from_secs(1);
    node.handle_timeout(later);
    take_output(&mut node, later, 1);
    assert_eq!(node.stats().peer_wire_blocks_sent, 6);
}
