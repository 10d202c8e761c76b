//! The BEP 15 client against literal datagrams, as a tracker would send them; and a node
//! that serves a peer, telling the tracker what it uploaded.

use super::*;
use crate::console::Command;
use crate::node::{Node, NodeConfig, NodeEvent, run_job};
use crate::storage::StateDir;
use crate::wire::Message;

const HASH: Hash = [0xab; 20];
const PEER_PORT: u16 = 7000; // 0x1b58

/// Bound to a LAN address, as a node on a real network is.
fn local() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 9], PEER_PORT))
}

fn tracker_addr() -> SocketAddr {
    "127.0.0.1:6969".parse().unwrap()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn only_transmit(client: &mut Bep15Client) -> Vec<u8> {
    let mut buf = [0u8; crate::bep15::REQUEST_BYTES_MAX];
    let transmit = client.poll_transmit(&mut buf).expect("a datagram");
    assert_eq!(transmit.to, tracker_addr());
    let bytes = buf[..transmit.len].to_vec();
    assert_eq!(client.poll_transmit(&mut buf), None, "one datagram only");
    bytes
}

/// A client holding one complete file of 100 bytes, and the connect it sent.
fn started(now: Instant) -> (Bep15Client, Vec<u8>) {
    let mut client = Bep15Client::new(tracker_addr(), local(), 42);
    client.set_torrent(now, HASH, Some(0), false);
    client.handle_timeout(now);
    let connect = only_transmit(&mut client);
    (client, connect)
}

fn connect_reply(transaction_id: u32) -> Vec<u8> {
    let mut reply = vec![0, 0, 0, 0];
    reply.extend_from_slice(&transaction_id.to_be_bytes());
    reply.extend_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    reply
}

/// Connects the client and returns the announce it then sent.
fn connected(client: &mut Bep15Client, connect: &[u8], now: Instant) -> Vec<u8> {
    client
        .handle_datagram(now, &connect_reply(u32_at(connect, 12)))
        .unwrap();
    assert_eq!(client.poll_event(), Some(StandardEvent::Connected));
    only_transmit(client)
}

#[test]
fn connect_then_announce_started() {
    let now = Instant::now();
    let (mut client, connect) = started(now);
    assert_eq!(
        connect[..12],
        [0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0],
        "protocol id, action connect"
    );
    assert_eq!(connect.len(), 16);
    let announce = connected(&mut client, &connect, now);
    assert_eq!(announce.len(), 98);
    assert_eq!(u64_at(&announce, 0), 0x1122_3344_5566_7788, "connection id");
    assert_eq!(u32_at(&announce, 8), 1, "action announce");
    assert_ne!(
        u32_at(&announce, 12),
        u32_at(&connect, 12),
        "fresh transaction id"
    );
    assert_eq!(announce[16..36], HASH);
    assert_eq!(&announce[36..44], b"-TO0001-");
    assert_eq!(
        u64_at(&announce, 56),
        0,
        "downloaded: shared, not downloaded"
    );
    assert_eq!(u64_at(&announce, 72), 0, "uploaded: nothing served yet");
    assert_eq!(u64_at(&announce, 64), 0, "left: a seeder");
    assert_eq!(u32_at(&announce, 80), 2, "event started");
    assert_eq!(
        u32_at(&announce, 92),
        0,
        "num_want: a seeder needs no peers"
    );
    assert_eq!(announce[96..98], [0x1b, 0x58], "our peer port");

    // The reply: interval 60 s, 1 leecher, 2 seeders; ourselves (at loopback and at our
    // address), port 0, and one other peer.
    let mut reply = vec![0, 0, 0, 1];
    reply.extend_from_slice(&announce[12..16]);
    reply.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 2]);
    reply.extend_from_slice(&[127, 0, 0, 1, 0x1b, 0x58, 10, 0, 0, 9, 0x1b, 0x58]);
    reply.extend_from_slice(&[10, 0, 0, 3, 0, 0, 10, 0, 0, 2, 0x1a, 0xe1]);
    client.handle_datagram(now, &reply).unwrap();
    assert_eq!(
        client.poll_event(),
        Some(StandardEvent::Announced {
            info_hash: HASH,
            peers: vec!["10.0.0.2:6881".parse().unwrap()],
            seeders: 2,
            leechers: 1,
        })
    );
    // The same reply again: its transaction is over.
    assert_eq!(
        client.handle_datagram(now, &reply),
        Err(Ignored::UnknownTransaction(u32_at(&announce, 12)))
    );
    // Next announce at the interval, bounded below by INTERVAL_MIN (60 s is above it).
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(60)));
    let later = now + Duration::from_secs(60);
    client.handle_timeout(later);
    // The connection id is 60 s old: a new connect comes first.
    let connect = only_transmit(&mut client);
    assert_eq!(u32_at(&connect, 8), 0, "connect again after a minute");
    client
        .handle_datagram(later, &connect_reply(u32_at(&connect, 12)))
        .unwrap();
    let announce = only_transmit(&mut client);
    assert_eq!(u32_at(&announce, 80), 0, "a periodic announce has no event");
}

#[test]
fn bound_to_all_addresses_with_an_advertised_one_recognises_itself() {
    let now = Instant::now();
    // Bound to every address, on a host at 10.0.0.9, behind a NAT at 203.0.113.7 that
    // forwards port 6999 to us.
    let lan: std::net::IpAddr = [10, 0, 0, 9].into();
    let advertised: SocketAddr = "203.0.113.7:6999".parse().unwrap();
    let me = SelfAddresses::new(
        SocketAddr::from(([0, 0, 0, 0], PEER_PORT)),
        Some(advertised),
        &[lan],
    );
    let mut client = Bep15Client::new(tracker_addr(), me, 42);
    client.set_torrent(now, HASH, None, true);
    client.handle_timeout(now);
    let connect = only_transmit(&mut client);
    let announce = connected(&mut client, &connect, now);
    assert_eq!(announce[84..88], [203, 0, 113, 7], "the advertised address");
    assert_eq!(
        announce[96..98],
        6999u16.to_be_bytes(),
        "the advertised port"
    );
    // Ourselves at the advertised address, at our LAN address with our port and with the
    // advertised one (a tracker that lists the source address with the announced port), at
    // loopback; then two others: our LAN address at another port, the NAT at another port.
    let mut reply = vec![0, 0, 0, 1];
    reply.extend_from_slice(&announce[12..16]);
    reply.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 2]);
    reply.extend_from_slice(&[203, 0, 113, 7, 0x1b, 0x57, 10, 0, 0, 9, 0x1b, 0x58]);
    reply.extend_from_slice(&[10, 0, 0, 9, 0x1b, 0x57, 127, 0, 0, 1, 0x1b, 0x58]);
    reply.extend_from_slice(&[10, 0, 0, 9, 0x1a, 0xe1, 203, 0, 113, 7, 0x1a, 0xe1]);
    client.handle_datagram(now, &reply).unwrap();
    assert_eq!(
        client.poll_event(),
        Some(StandardEvent::Announced {
            info_hash: HASH,
            peers: vec![
                "10.0.0.9:6881".parse().unwrap(),
                "203.0.113.7:6881".parse().unwrap()
            ],
            seeders: 2,
            leechers: 1,
        })
    );
}

#[test]
fn error_reply_is_shown_and_retried_later() {
    let now = Instant::now();
    let (mut client, connect) = started(now);
    let announce = connected(&mut client, &connect, now);
    let mut reply = vec![0, 0, 0, 3];
    reply.extend_from_slice(&announce[12..16]);
    reply.extend_from_slice(b"Requested download is not authorized for use with this tracker.");
    client.handle_datagram(now, &reply).unwrap();
    let Some(StandardEvent::Refused { info_hash, message }) = client.poll_event() else {
        panic!("no refusal")
    };
    assert_eq!(info_hash, Some(HASH));
    assert!(message.starts_with("Requested download is not authorized"));
    assert_eq!(client.poll_timeout(), Some(now + ERROR_RETRY));
}

#[test]
fn replies_that_do_not_fit_are_ignored() {
    let now = Instant::now();
    let (mut client, connect) = started(now);
    let transaction = u32_at(&connect, 12);
    // A wrong transaction id.
    assert_eq!(
        client.handle_datagram(now, &connect_reply(transaction ^ 1)),
        Err(Ignored::UnknownTransaction(transaction ^ 1))
    );
    // Short replies.
    assert_eq!(
        client.handle_datagram(now, &[0, 0, 0, 0, 1, 2, 3]),
        Err(Ignored::Malformed(Malformed::Truncated))
    );
    assert_eq!(
        client.handle_datagram(now, &connect_reply(transaction)[..15]),
        Err(Ignored::Malformed(Malformed::ConnectLength))
    );
    // An announce reply carrying the connect's transaction id.
    let mut wrong = vec![0, 0, 0, 1];
    wrong.extend_from_slice(&transaction.to_be_bytes());
    wrong.extend_from_slice(&[0; 12]);
    assert_eq!(
        client.handle_datagram(now, &wrong),
        Err(Ignored::WrongAction(transaction))
    );
    assert_eq!(client.poll_event(), None);
    // Still waiting for the real reply, which works.
    let announce = connected(&mut client, &connect, now);
    // Peers that are not whole 6-byte records.
    let mut reply = vec![0, 0, 0, 1];
    reply.extend_from_slice(&announce[12..16]);
    reply.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 1, 10, 0, 0, 2, 0x1a]);
    assert_eq!(
        client.handle_datagram(now, &reply),
        Err(Ignored::Malformed(Malformed::ResponseLength))
    );
}

#[test]
fn unanswered_requests_are_retried_with_backoff() {
    let now = Instant::now();
    let (mut client, first) = started(now);
    let mut at = now;
    let mut waits = Vec::new();
    let mut transactions = vec![u32_at(&first, 12)];
    for _ in 0..6 {
        let due = client.poll_timeout().unwrap();
        waits.push(due - at);
        at = due;
        client.handle_timeout(at);
        let again = only_transmit(&mut client);
        assert_eq!(u32_at(&again, 8), 0, "a connect again");
        transactions.push(u32_at(&again, 12));
    }
    let ms = |n| Duration::from_millis(n);
    assert_eq!(
        waits,
        [ms(500), ms(1000), ms(2000), ms(4000), ms(8000), ms(8000)]
    );
    transactions.dedup();
    assert_eq!(
        transactions.len(),
        7,
        "each attempt has its own transaction id"
    );
    assert_eq!(client.poll_event(), Some(StandardEvent::Silent));
    // A late answer to an old attempt does not count.
    assert!(
        client
            .handle_datagram(at, &connect_reply(transactions[0]))
            .is_err()
    );
    // An unanswered announce drops the connection id: the retry connects first.
    client
        .handle_datagram(at, &connect_reply(transactions[6]))
        .unwrap();
    assert_eq!(client.poll_event(), Some(StandardEvent::Connected));
    let _announce = only_transmit(&mut client);
    let due = client.poll_timeout().unwrap();
    assert_eq!(due - at, RETRY_FIRST);
    client.handle_timeout(due);
    let retry = only_transmit(&mut client);
    assert_eq!(
        u32_at(&retry, 8),
        0,
        "connect before the announce is retried"
    );
}

#[test]
fn a_download_completes_and_everything_stops() {
    let now = Instant::now();
    let mut client = Bep15Client::new(tracker_addr(), local(), 7);
    client.set_torrent(now, HASH, None, true);
    client.handle_timeout(now);
    let connect = only_transmit(&mut client);
    let announce = connected(&mut client, &connect, now);
    assert_eq!(u32_at(&announce, 80), 2, "started");
    assert_eq!(u32_at(&announce, 92), NUM_WANT, "a download wants peers");
    assert_eq!(u64_at(&announce, 64), 1, "left unknown reads as a leecher");
    let mut reply = vec![0, 0, 0, 1];
    reply.extend_from_slice(&announce[12..16]);
    reply.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    client.handle_datagram(now, &reply).unwrap();
    assert!(matches!(
        client.poll_event(),
        Some(StandardEvent::Announced { .. })
    ));
    // An interval of 1 s is raised to INTERVAL_MIN.
    assert_eq!(client.poll_timeout(), Some(now + INTERVAL_MIN));
    // Asking for peers again is held to PEER_REFRESH_MIN.
    client.want_peers(now, HASH);
    assert_eq!(client.poll_timeout(), Some(now + PEER_REFRESH_MIN));
    // The download finishes: `completed` goes out at once.
    let done = now + Duration::from_secs(1);
    client.count_downloaded(HASH, 100);
    client.set_torrent(done, HASH, Some(0), false);
    client.handle_timeout(done);
    let completed = only_transmit(&mut client);
    assert_eq!(u32_at(&completed, 80), 1, "completed");
    assert_eq!(u64_at(&completed, 64), 0);
    assert_eq!(u64_at(&completed, 56), 100, "downloaded");
    // Leaving: `stopped`, on the connection we have, no reply awaited.
    client.stop_all(done);
    let stopped = only_transmit(&mut client);
    assert_eq!(u32_at(&stopped, 80), 3, "stopped");
    assert_eq!(client.torrent_count(), 0);
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn a_download_finished_before_started_is_answered_still_announces_completed() {
    let now = Instant::now();
    let mut client = Bep15Client::new(tracker_addr(), local(), 8);
    client.set_torrent(now, HASH, Some(100), true);
    client.handle_timeout(now);
    let connect = only_transmit(&mut client);
    let started = connected(&mut client, &connect, now);
    assert_eq!(u32_at(&started, 80), 2, "started");
    // The download finishes (from peers found otherwise) before the tracker answers.
    client.set_torrent(now, HASH, Some(0), false);
    let mut reply = vec![0, 0, 0, 1];
    reply.extend_from_slice(&started[12..16]);
    reply.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 1]);
    client.handle_datagram(now, &reply).unwrap();
    assert_eq!(client.poll_timeout(), Some(now), "completed is due at once");
    client.handle_timeout(now);
    let completed = only_transmit(&mut client);
    assert_eq!(u32_at(&completed, 80), 1, "completed");
    assert_eq!(u64_at(&completed, 64), 0, "nothing left");
}

/// The datagrams a node wants sent now, with their destinations.
fn node_sends(node: &mut Node, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    std::iter::from_fn(|| {
        node.poll_transmit(now, &mut buf)
            .map(|t| (t.to, buf[..t.len].to_vec()))
    })
    .collect()
}

/// The one datagram a node sends to the tracker now.
fn node_to_tracker(node: &mut Node, now: Instant) -> Vec<u8> {
    let mut sent = node_sends(node, now);
    assert_eq!(sent.len(), 1, "one datagram only");
    let (to, bytes) = sent.remove(0);
    assert_eq!(to, tracker_addr());
    bytes
}

/// A node connects to the standard tracker and announces: the announce it sent.
fn node_connects_and_announces(node: &mut Node, now: Instant) -> Vec<u8> {
    node.handle_timeout(now);
    let connect = node_to_tracker(node, now);
    assert_eq!(u32_at(&connect, 8), 0, "a connect");
    node.handle_datagram(now, tracker_addr(), &connect_reply(u32_at(&connect, 12)));
    let announce = node_to_tracker(node, now);
    assert_eq!(u32_at(&announce, 8), 1, "an announce");
    announce
}

/// Runs the node's hashing jobs inline; the lines it says are dropped.
fn run_jobs(node: &mut Node, now: Instant) {
    while let Some(event) = node.poll_event() {
        if let NodeEvent::Job(job) = event {
            node.handle_job_done(now, run_job(job));
        }
    }
}

/// A node of a standard tracker bound to `addr`, its directory a fresh `dir`; with a file
/// `f` of 5,000 bytes when `sharing` (shared, its hashing done).
fn standard_node(dir: &std::path::Path, addr: SocketAddr, sharing: bool, now: Instant) -> Node {
    let _ = std::fs::remove_dir_all(dir);
    let state = StateDir::open(dir).unwrap();
    let mut config = NodeConfig::new(u32::from(addr.port()), tracker_addr());
    config.standard_tracker = true;
    config.local_addr = addr;
    if sharing {
        std::fs::write(state.files_dir().join("f"), vec![7u8; 5000]).unwrap();
    }
    let mut node = Node::new(config, state, 5, now);
    if sharing {
        node.handle_command(now, Command::Send { name: "f".into() });
        run_jobs(&mut node, now);
    }
    node
}

/// A directory for a test's node.
fn node_dir(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("torrent-{test}-{}", std::process::id()))
}

#[test]
fn a_node_announces_the_payload_bytes_it_served_as_uploaded() {
    let dir = node_dir("standard-uploaded");
    let t0 = Instant::now();
    let mut node = standard_node(&dir, local(), true, t0);
    let started = node_connects_and_announces(&mut node, t0);
    assert_eq!(u32_at(&started, 80), 2, "started");
    assert_eq!(
        u64_at(&started, 56),
        0,
        "downloaded: shared, not downloaded"
    );
    assert_eq!(u64_at(&started, 72), 0, "uploaded: nothing served yet");
    let info_hash: Hash = started[16..36].try_into().unwrap();
    let mut reply = vec![0, 0, 0, 1];
    reply.extend_from_slice(&started[12..16]);
    reply.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 1]);
    node.handle_datagram(t0, tracker_addr(), &reply);

    // A peer earns a cookie, then asks for 3,072 bytes of chunk 0 in pieces of 1,024.
    let peer = SocketAddr::from(([10, 0, 0, 2], 6881));
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    let mut ask = wire::PeerAsk {
        cookie: U64::new(0),
        node_id: U32::new(9),
        info_hash,
    };
    let len = Message::HaveRequest(&ask).encode(&mut buf).unwrap();
    node.handle_datagram(t0, peer, &buf[..len]);
    let welcome = node_sends(&mut node, t0);
    let Ok(Message::Welcome(welcome)) = wire::decode(&welcome[0].1) else {
        panic!("no welcome")
    };
    ask.cookie = welcome.cookie;
    let request = wire::PieceRequest {
        ask,
        chunk: U32::new(0),
        offset: U32::new(0),
        length: U32::new(3072),
        piece_bytes: U32::new(1024),
    };
    let len = Message::PieceRequest(&request).encode(&mut buf).unwrap();
    node.handle_datagram(t0, peer, &buf[..len]);
    let pieces = node_sends(&mut node, t0);
    assert_eq!(pieces.len(), 3);
    assert!(pieces.iter().all(|(to, _)| *to == peer));
    assert_eq!(node.stats().bytes_sent, 3072);

    // The next announce, at the interval (on a new connection id), tells the tracker.
    let later = t0 + Duration::from_secs(60);
    let periodic = node_connects_and_announces(&mut node, later);
    assert_eq!(periodic[16..36], info_hash);
    assert_eq!(u32_at(&periodic, 80), 0, "no event");
    assert_eq!(u64_at(&periodic, 72), 3072, "uploaded: the payload served");
    assert_eq!(u64_at(&periodic, 56), 0, "downloaded");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_announces_the_payload_bytes_it_downloaded_and_verified_as_downloaded() {
    let (seeder_dir, leecher_dir) = (node_dir("standard-seeder"), node_dir("standard-leecher"));
    let t0 = Instant::now();
    let seeder_addr = local();
    let leecher_addr = SocketAddr::from(([10, 0, 0, 2], 6881));
    let mut seeder = standard_node(&seeder_dir, seeder_addr, true, t0);
    let seeder_started = node_connects_and_announces(&mut seeder, t0);
    let info_hash: Hash = seeder_started[16..36].try_into().unwrap();
    let mut leecher = standard_node(&leecher_dir, leecher_addr, false, t0);
    leecher.handle_command(
        t0,
        Command::DownloadByHash {
            info_hash,
            name: Some("f".into()),
        },
    );
    let started = node_connects_and_announces(&mut leecher, t0);
    assert_eq!(u64_at(&started, 56), 0, "downloaded: nothing yet");
    // The tracker's reply lists the seeder.
    let mut reply = vec![0, 0, 0, 1];
    reply.extend_from_slice(&started[12..16]);
    reply.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 1, 10, 0, 0, 9, 0x1b, 0x58]);
    leecher.handle_datagram(t0, tracker_addr(), &reply);

    // Datagrams go between the two (the tracker's are kept) until the download is done.
    let mut now = t0;
    let mut to_tracker = Vec::new();
    for _ in 0..1000 {
        if !leecher.downloading() {
            break;
        }
        let mut quiet = true;
        for (to, bytes) in node_sends(&mut seeder, now) {
            quiet = false;
            if to == leecher_addr {
                leecher.handle_datagram(now, seeder_addr, &bytes);
            }
        }
        for (to, bytes) in node_sends(&mut leecher, now) {
            quiet = false;
            if to == seeder_addr {
                seeder.handle_datagram(now, leecher_addr, &bytes);
            } else if to == tracker_addr() {
                to_tracker.push(bytes);
            }
        }
        run_jobs(&mut leecher, now);
        if quiet {
            now += Duration::from_millis(100);
            seeder.handle_timeout(now);
            leecher.handle_timeout(now);
        }
    }
    assert!(!leecher.downloading(), "the download finished");
    leecher.handle_timeout(now);
    to_tracker.extend(
        node_sends(&mut leecher, now)
            .into_iter()
            .map(|(_, bytes)| bytes),
    );
    let completed = to_tracker
        .iter()
        .find(|d| d.len() == 98 && u32_at(d, 80) == 1)
        .expect("a completed announce");
    assert_eq!(u64_at(completed, 64), 0, "left");
    assert_eq!(
        u64_at(completed, 56),
        5000,
        "downloaded: the file, verified"
    );
    assert_eq!(u64_at(completed, 72), 0, "uploaded: nothing served");
    let _ = std::fs::remove_dir_all(&seeder_dir);
    let _ = std::fs::remove_dir_all(&leecher_dir);
}
