//! The tracker's BEP 15 side, sans-IO: datagrams in, replies (or their absence) out.

use super::*;
use crate::bep15::{AnnounceResponse, Response, decode_response};
use crate::tracker::TrackerConfig;
use crate::wire::{Message, NodeAuth, U16, U64};

const HASH: Hash = [0x5a; 20];
const CHUNK_BYTES: u32 = 16 * 1024;

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], port))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Every queued reply, as (destination, bytes).
fn drain(tracker: &mut Tracker) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    std::iter::from_fn(|| {
        let transmit = tracker.poll_transmit(Instant::now(), &mut buf)?;
        Some((transmit.to, buf[..transmit.len].to_vec()))
    })
    .collect()
}

/// A node registers from `from` and announces [`HASH`] with `chunks_held` of 4 chunks.
fn our_holder(tracker: &mut Tracker, now: Instant, from: SocketAddr, node_id: u32, held: u32) {
    let mut buf = [0u8; 1024];
    let token = crate::tracker::tests::register(tracker, now, from, node_id, 0);
    let announce = wire::Announce {
        auth: NodeAuth {
            node_id: U32::new(node_id),
            token: U64::new(token),
        },
        info_hash: HASH,
        file_bytes: U64::new(4 * u64::from(CHUNK_BYTES)),
        chunk_bytes: U32::new(CHUNK_BYTES),
        chunks_held: U32::new(held),
    };
    let message = Message::Announce {
        fixed: &announce,
        name: "file_A.txt",
    };
    let len = message.encode(&mut buf).unwrap();
    tracker.handle_datagram(now, from, &buf[..len]);
    assert!(matches!(
        wire::decode(&drain(tracker)[0].1),
        Ok(Message::Announced(_))
    ));
}

/// Connects from `from`; returns the connection id.
fn connect(tracker: &mut Tracker, now: Instant, from: SocketAddr) -> u64 {
    let mut buf = [0u8; 16];
    let len = proto::encode_connect_request(&mut buf, 77).unwrap();
    tracker.handle_datagram(now, from, &buf[..len]);
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, from);
    match decode_response(&replies[0].1, from.is_ipv6()) {
        Ok(Response::Connect(connect)) => {
            assert_eq!(connect.header.transaction_id.get(), 77);
            connect.connection_id.get()
        }
        other => panic!("expected a connect response, got {other:?}"),
    }
}

fn announce_bytes(
    connection_id: u64,
    event: Event,
    left_bytes: u64,
    num_want: i32,
    port: u16,
) -> Vec<u8> {
    let request = AnnounceRequest {
        header: proto::RequestHeader {
            connection_id: U64::new(connection_id),
            action: U32::new(proto::ACTION_ANNOUNCE),
            transaction_id: U32::new(99),
        },
        info_hash: HASH,
        peer_id: *b"-XX0001-abcdefabcdef",
        downloaded_bytes: U64::new(0),
        left_bytes: U64::new(left_bytes),
        uploaded_bytes: U64::new(0),
        event: U32::new(event as u32),
        ip: [0; 4],
        key: U32::new(1),
        num_want: U32::new(num_want as u32),
        port: U16::new(port),
    };
    bytemuck::bytes_of(&request).to_vec()
}

/// Announces and returns the response's fixed part and peers.
fn announce(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    connection_id: u64,
    event: Event,
    left_bytes: u64,
) -> (AnnounceResponse, Vec<SocketAddr>) {
    let bytes = announce_bytes(connection_id, event, left_bytes, -1, from.port());
    tracker.handle_datagram(now, from, &bytes);
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1, "expected one reply to the announce");
    assert_eq!(replies[0].0, from);
    match decode_response(&replies[0].1, from.is_ipv6()) {
        Ok(Response::Announce { fixed, peers }) => {
            assert_eq!(fixed.header.transaction_id.get(), 99);
            (*fixed, peers.to_addrs())
        }
        other => panic!("expected an announce response, got {other:?}"),
    }
}

fn scrape(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    connection_id: u64,
    hashes: &[Hash],
) -> Vec<(u32, u32, u32)> {
    let mut buf = [0u8; 2048];
    let len = proto::encode_scrape_request(&mut buf, connection_id, 5, hashes).unwrap();
    tracker.handle_datagram(now, from, &buf[..len]);
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1);
    match decode_response(&replies[0].1, false) {
        Ok(Response::Scrape {
            transaction_id,
            stats,
        }) => {
            assert_eq!(transaction_id, 5);
            stats
                .iter()
                .map(|s| (s.seeders.get(), s.completed.get(), s.leechers.get()))
                .collect()
        }
        other => panic!("expected a scrape response, got {other:?}"),
    }
}

#[test]
fn announce_lists_our_holders_and_other_clients() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 1, t0);
    our_holder(&mut tracker, t0, v4(4000), 1, 4);
    our_holder(&mut tracker, t0, v4(4001), 2, 2);

    let client = v4(6881);
    let id = connect(&mut tracker, t0, client);
    let (fixed, peers) = announce(&mut tracker, t0, client, id, Event::Started, 100);
    assert_eq!(peers, vec![v4(4000), v4(4001)]);
    assert_eq!(fixed.interval_s.get(), 120);
    // Node 1 holds every chunk (a seeder); node 2 and the client are leechers.
    assert_eq!((fixed.seeders.get(), fixed.leechers.get()), (1, 2));

    let other = v4(6882);
    let other_id = connect(&mut tracker, t0, other);
    let (_, peers) = announce(&mut tracker, t0, other, other_id, Event::Started, 0);
    assert_eq!(peers, vec![v4(4000), v4(4001), client]);
    assert_eq!(tracker.stats().bep15_announces, 2);
    assert_eq!(tracker.bep15_peer_and_swarm_counts(), (2, 1));
    // Our own protocol still works beside it, and BEP 15 peers are never persisted.
    let snapshot = tracker.snapshot();
    assert_eq!(snapshot.files.len(), 1);
    assert_eq!(snapshot.files[0].holders.len(), 2);
}

#[test]
fn forged_or_expired_connection_ids_get_nothing() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 1, t0);
    let client = v4(6881);
    let id = connect(&mut tracker, t0, client);

    for forged in [id ^ 1, 0, proto::PROTOCOL_ID] {
        tracker.handle_datagram(
            t0,
            client,
            &announce_bytes(forged, Event::Started, 0, -1, 1),
        );
        assert!(
            drain(&mut tracker).is_empty(),
            "forged id {forged:#x} answered"
        );
    }
    // The id is bound to the address it was handed to.
    let elsewhere = v4(6999);
    tracker.handle_datagram(t0, elsewhere, &announce_bytes(id, Event::Started, 0, -1, 1));
    assert!(drain(&mut tracker).is_empty());
    // A scrape with a forged id, and a malformed request with one: silence too.
    let mut buf = [0u8; 64];
    let len = proto::encode_scrape_request(&mut buf, id ^ 1, 1, &[HASH]).unwrap();
    tracker.handle_datagram(t0, client, &buf[..len]);
    tracker.handle_datagram(
        t0,
        client,
        &announce_bytes(id ^ 1, Event::Started, 0, -1, 1)[..40],
    );
    assert!(drain(&mut tracker).is_empty());
    assert_eq!(tracker.stats().bep15_dropped_bad_connection_id, 6);
    assert_eq!(tracker.stats().bep15_announces, 0);

    // Still good in the next epoch; gone two epochs later.
    let later = t0 + CONNECTION_EPOCH + secs(10);
    announce(&mut tracker, later, client, id, Event::None, 0);
    let expired = t0 + CONNECTION_EPOCH * 2 + secs(1);
    tracker.handle_datagram(expired, client, &announce_bytes(id, Event::None, 0, -1, 1));
    assert!(drain(&mut tracker).is_empty());
    assert_eq!(tracker.stats().bep15_dropped_bad_connection_id, 7);
    // A fresh connect works again.
    let fresh = connect(&mut tracker, expired, client);
    announce(&mut tracker, expired, client, fresh, Event::None, 0);
}

#[test]
fn scrape_counts_our_holders_and_clients() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 1, t0);
    our_holder(&mut tracker, t0, v4(4000), 1, 4);
    let (seeder, leecher) = (v4(6881), v4(6882));
    let seeder_id = connect(&mut tracker, t0, seeder);
    let leecher_id = connect(&mut tracker, t0, leecher);
    announce(&mut tracker, t0, seeder, seeder_id, Event::Started, 10);
    announce(&mut tracker, t0, seeder, seeder_id, Event::Completed, 0);
    announce(&mut tracker, t0, leecher, leecher_id, Event::Started, 10);
    let unknown = [0x11; 20];
    let stats = scrape(&mut tracker, t0, leecher, leecher_id, &[HASH, unknown]);
    assert_eq!(stats, vec![(2, 1, 1), (0, 0, 0)]);
    assert_eq!(tracker.stats().bep15_scrapes, 1);

    // `stopped` leaves the swarm at once.
    let (fixed, peers) = announce(&mut tracker, t0, seeder, seeder_id, Event::Stopped, 0);
    assert!(peers.is_empty());
    assert_eq!((fixed.seeders.get(), fixed.leechers.get()), (1, 1));
    assert_eq!(
        scrape(&mut tracker, t0, leecher, leecher_id, &[HASH]),
        vec![(1, 1, 1)]
    );
}

#[test]
fn malformed_requests_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 1, t0);
    let client = v4(6881);
    let id = connect(&mut tracker, t0, client);

    // A connect of the wrong length: no reply possible.
    let mut connect_bytes = [0u8; 17];
    proto::encode_connect_request(&mut connect_bytes, 1).unwrap();
    tracker.handle_datagram(t0, client, &connect_bytes);
    assert!(drain(&mut tracker).is_empty());
    assert_eq!(tracker.stats().bep15_dropped_malformed, 1);

    // With a valid connection id, a malformed request earns an error reply (action 3).
    let mut bad_event = announce_bytes(id, Event::None, 0, -1, 1);
    bad_event[83] = 9;
    tracker.handle_datagram(t0, client, &bad_event);
    let replies = drain(&mut tracker);
    assert_eq!(replies.len(), 1);
    assert_eq!(
        decode_response(&replies[0].1, false),
        Ok(Response::Error {
            transaction_id: 99,
            message: "bad announce event"
        })
    );
    let mut too_many = [0u8; 2048];
    let hashes = [HASH; proto::SCRAPE_HASHES_MAX + 1];
    let len = proto::encode_scrape_request(&mut too_many, id, 3, &hashes).unwrap();
    tracker.handle_datagram(t0, client, &too_many[..len]);
    assert!(matches!(
        decode_response(&drain(&mut tracker)[0].1, false),
        Ok(Response::Error {
            transaction_id: 3,
            ..
        })
    ));
    assert_eq!(tracker.stats().bep15_dropped_malformed, 3);
    assert_eq!(tracker.stats().bep15_errors_sent, 2);
    // None of it reached our own decoder's counters.
    assert_eq!(tracker.stats().dropped_malformed, 0);
}

#[test]
fn peers_expire_and_num_want_is_bounded() {
    let t0 = Instant::now();
    let config = TrackerConfig {
        announce_interval: secs(30),
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config, 1, t0);
    let mut ids = Vec::new();
    for port in 0..(NUM_WANT_MAX as u16 + 10) {
        let client = v4(10_000 + port);
        let id = connect(&mut tracker, t0, client);
        announce(&mut tracker, t0, client, id, Event::Started, 1);
        ids.push((client, id));
    }
    let (client, id) = ids[0];
    let (fixed, peers) = announce(&mut tracker, t0, client, id, Event::None, 1);
    assert_eq!(fixed.interval_s.get(), 30);
    assert_eq!(peers.len(), NUM_WANT_DEFAULT as usize);
    assert!(!peers.contains(&client));
    let bytes = announce_bytes(id, Event::None, 1, 100_000, client.port());
    tracker.handle_datagram(t0, client, &bytes);
    let replies = drain(&mut tracker);
    assert_eq!(replies[0].1.len(), 20 + 6 * NUM_WANT_MAX as usize);

    // Silent for twice the interval: forgotten, and the timer says when.
    assert_eq!(tracker.poll_timeout(), Some(t0 + secs(60)));
    tracker.handle_timeout(t0 + secs(60));
    assert_eq!(tracker.bep15_peer_and_swarm_counts(), (0, 0));
    assert_eq!(tracker.poll_timeout(), None);
}

#[test]
fn ipv6_clients_get_ipv6_peers() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 1, t0);
    our_holder(&mut tracker, t0, v4(4000), 1, 4);
    our_holder(&mut tracker, t0, v6(4001), 2, 4);
    let client = v6(6881);
    let id = connect(&mut tracker, t0, client);
    let (fixed, peers) = announce(&mut tracker, t0, client, id, Event::Started, 0);
    assert_eq!(peers, vec![v6(4001)]);
    assert_eq!(fixed.seeders.get(), 3);
    // An IPv4 client seen through a dual-stack socket (IPv4-mapped) is IPv4.
    let mapped = SocketAddr::from((std::net::Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped(), 6882));
    let mut buf = [0u8; 16];
    let len = proto::encode_connect_request(&mut buf, 1).unwrap();
    tracker.handle_datagram(t0, mapped, &buf[..len]);
    let reply = drain(&mut tracker);
    let Ok(Response::Connect(connect)) = decode_response(&reply[0].1, false) else {
        panic!("no connect reply");
    };
    let bytes = announce_bytes(connect.connection_id.get(), Event::Started, 0, -1, 6882);
    tracker.handle_datagram(t0, mapped, &bytes);
    let reply = drain(&mut tracker);
    assert_eq!(reply[0].0, mapped, "replies go to the address as received");
    let Ok(Response::Announce { peers, .. }) = decode_response(&reply[0].1, false) else {
        panic!("no announce reply");
    };
    assert_eq!(peers.to_addrs(), vec![v4(4000)]);
}

#[test]
fn the_sweep_forgets_only_silent_peers_and_waits_its_period() {
    let t0 = Instant::now();
    let config = TrackerConfig {
        announce_interval: secs(30),
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config, 1, t0);
    let (a, b, c) = (v4(7001), v4(7002), v4(7003));
    let ids: Vec<u64> = [a, b, c]
        .iter()
        .map(|&client| connect(&mut tracker, t0, client))
        .collect();
    announce(&mut tracker, t0, a, ids[0], Event::Started, 1);
    announce(&mut tracker, t0 + secs(1), c, ids[2], Event::Started, 1);
    announce(&mut tracker, t0 + secs(1), b, ids[1], Event::Started, 1);
    announce(&mut tracker, t0 + secs(40), b, ids[1], Event::None, 1);
    assert_eq!(tracker.bep15_peer_and_swarm_counts(), (3, 1));

    // Twice the interval after `a`'s announce: only `a` goes.
    assert_eq!(tracker.poll_timeout(), Some(t0 + secs(60)));
    tracker.handle_timeout(t0 + secs(59));
    assert_eq!(tracker.bep15_peer_and_swarm_counts(), (3, 1));
    tracker.handle_timeout(t0 + secs(60));
    assert_eq!(tracker.bep15_peer_and_swarm_counts(), (2, 1));
    // `c` is due at 61 s, but sweeps are at least EXPIRY_SWEEP_PERIOD apart.
    let next = t0 + secs(60) + EXPIRY_SWEEP_PERIOD;
    assert_eq!(tracker.poll_timeout(), Some(next));
    tracker.handle_timeout(next - secs(1));
    assert_eq!(tracker.bep15_peer_and_swarm_counts(), (2, 1));
    tracker.handle_timeout(next);
    assert_eq!(tracker.bep15_peer_and_swarm_counts(), (1, 1));
    // `b` announced at 40 s: due at 100 s, then nothing is left and no timer.
    assert_eq!(tracker.poll_timeout(), Some(t0 + secs(100)));
    tracker.handle_timeout(t0 + secs(100));
    assert_eq!(tracker.bep15_peer_and_swarm_counts(), (0, 0));
    assert_eq!(tracker.poll_timeout(), None);
}

#[test]
fn a_full_swarm_refuses_newcomers_and_stopped_makes_room() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 1, t0);
    let clients: Vec<(SocketAddr, u64)> = (0..=PEERS_PER_SWARM_MAX as u16)
        .map(|n| {
            let client = v4(10_000 + n);
            (client, connect(&mut tracker, t0, client))
        })
        .collect();
    let (newcomer, newcomer_id) = clients[PEERS_PER_SWARM_MAX];
    for &(client, id) in &clients[..PEERS_PER_SWARM_MAX] {
        announce(&mut tracker, t0, client, id, Event::Started, 1);
    }
    assert_eq!(
        tracker.bep15_peer_and_swarm_counts(),
        (PEERS_PER_SWARM_MAX, 1)
    );
    let bytes = announce_bytes(newcomer_id, Event::Started, 1, -1, newcomer.port());
    tracker.handle_datagram(t0, newcomer, &bytes);
    assert_eq!(
        decode_response(&drain(&mut tracker)[0].1, false),
        Ok(Response::Error {
            transaction_id: 99,
            message: "tracker full"
        })
    );
    assert_eq!(tracker.stats().bep15_refused_full, 1);
    // Known peers still announce; one that stops (not the last: another takes its place)
    // leaves room, and the moved peer is still known once, not twice.
    let (first, first_id) = clients[0];
    let (_, peers) = announce(&mut tracker, t0, first, first_id, Event::Stopped, 1);
    assert!(peers.is_empty());
    let (last, last_id) = clients[PEERS_PER_SWARM_MAX - 1];
    announce(&mut tracker, t0, last, last_id, Event::None, 0);
    let (fixed, peers) = announce(&mut tracker, t0, newcomer, newcomer_id, Event::Started, 1);
    assert_eq!(peers.len(), NUM_WANT_DEFAULT as usize);
    assert!(!peers.contains(&first) && !peers.contains(&newcomer));
    assert_eq!((fixed.seeders.get(), fixed.leechers.get()), (1, 4095));
    assert_eq!(
        tracker.bep15_peer_and_swarm_counts(),
        (PEERS_PER_SWARM_MAX, 1)
    );
    assert_eq!(tracker.stats().bep15_refused_full, 1);
}

/// Announces `info_hash` from `from` (connecting first); true when the announce was
/// accepted, false when refused as full.
fn announce_hash(tracker: &mut Tracker, now: Instant, from: SocketAddr, info_hash: Hash) -> bool {
    let id = connect(tracker, now, from);
    let mut bytes = announce_bytes(id, Event::Started, 1, 0, from.port());
    // The info hash follows the 16-byte request header.
    bytes[16..36].copy_from_slice(&info_hash);
    tracker.handle_datagram(now, from, &bytes);
    let replies = drain(tracker);
    assert_eq!(replies.len(), 1, "expected one reply to the announce");
    match decode_response(&replies[0].1, from.is_ipv6()) {
        Ok(Response::Announce { .. }) => true,
        Ok(Response::Error { .. }) => false,
        other => panic!("expected an announce or error response, got {other:?}"),
    }
}

/// The `n`-th random-looking info hash.
fn nth_hash(n: u32) -> Hash {
    crate::hash::sha1(&n.to_be_bytes())
}

fn source(ip: u32, port: u16) -> SocketAddr {
    SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + ip), port))
}

/// Issue 13, finding 9: one client announcing random info hashes filled every swarm and
/// locked everyone else out. Now one source address creates at most its share.
#[test]
fn one_source_creates_at_most_its_share_of_swarms() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 1, t0);
    let mut accepted = 0;
    for n in 0..(SWARMS_PER_SOURCE_MAX as u32 + 50) {
        // Many ports of one address: the cap is per address.
        if announce_hash(
            &mut tracker,
            t0,
            source(1, 6000 + (n % 500) as u16),
            nth_hash(n),
        ) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, SWARMS_PER_SOURCE_MAX);
    assert_eq!(
        tracker.bep15_peer_and_swarm_counts().1,
        SWARMS_PER_SOURCE_MAX
    );
    // Joining an existing swarm is not creating one.
    assert!(announce_hash(
        &mut tracker,
        t0,
        source(1, 7000),
        nth_hash(0)
    ));
    // Another client is served.
    assert!(announce_hash(&mut tracker, t0, source(2, 6881), HASH));
    // A swarm its creator leaves gives its share back.
    let stop = connect(&mut tracker, t0, source(1, 6005));
    let mut bytes = announce_bytes(stop, Event::Stopped, 1, 0, 6005);
    bytes[16..36].copy_from_slice(&nth_hash(5));
    tracker.handle_datagram(t0, source(1, 6005), &bytes);
    drain(&mut tracker);
    let next = SWARMS_PER_SOURCE_MAX as u32 + 50;
    assert!(announce_hash(
        &mut tracker,
        t0,
        source(1, 6001),
        nth_hash(next)
    ));
    assert!(!announce_hash(
        &mut tracker,
        t0,
        source(1, 6001),
        nth_hash(next + 1)
    ));
}

/// When the table is full (many flooding addresses), a new info hash from an address with
/// fewer swarms takes the place of a one-peer swarm of the heaviest creator.
#[test]
fn a_full_table_admits_a_newcomer() {
    let t0 = Instant::now();
    let mut tracker = Tracker::new(TrackerConfig::default(), 1, t0);
    let flooders = (SWARMS_MAX / SWARMS_PER_SOURCE_MAX) as u32;
    let mut n = 0;
    for ip in 1..=flooders {
        for port in 0..SWARMS_PER_SOURCE_MAX as u16 {
            assert!(announce_hash(
                &mut tracker,
                t0,
                source(ip, 10_000 + port),
                nth_hash(n)
            ));
            n += 1;
        }
    }
    assert_eq!(tracker.bep15_peer_and_swarm_counts().1, SWARMS_MAX);
    // A flooder's next one is refused; a newcomer is let in, the table stays bounded.
    assert!(!announce_hash(
        &mut tracker,
        t0,
        source(1, 9000),
        nth_hash(n)
    ));
    assert!(announce_hash(&mut tracker, t0, source(500, 6881), HASH));
    assert_eq!(tracker.bep15_peer_and_swarm_counts().1, SWARMS_MAX);
    let id = connect(&mut tracker, t0, source(501, 6881));
    let (_, peers) = announce(&mut tracker, t0, source(501, 6881), id, Event::Started, 1);
    assert_eq!(peers, vec![source(500, 6881)]);
}
