//! Unit tests of the tracker core, by subject; the fixtures they share are here: a tracker
//! driven by encoded datagrams, and helpers that send one request and check its reply.

mod advertise;
mod budget;
mod hostile;
mod list;
mod lookup;
mod persistence;
mod registry;

use super::*;
use crate::wire::{
    Announce, Credit, CreditRecord, Exit, HolderRecord, Lookup, Register, Registered,
    VersionRecord, decode,
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
    while let Some(transmit) = tracker.poll_transmit(Instant::now(), &mut buf) {
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
        Message::Refused(refused) => refused.reason,
        other => panic!("expected Refused, got {other:?}"),
    }
}

fn register_message(node_id: u32, token: u64, cookie: u64) -> Register {
    Register {
        auth: auth(node_id, token),
        cookie: U64::new(cookie),
        holdings_digest: U64::new(0),
        ..bytemuck::Zeroable::zeroed()
    }
}

/// Writes the snapshot now, as the reactor does, whether due or not: held replies go out.
pub(in crate::tracker) fn save_now(tracker: &mut Tracker, now: Instant) -> Option<Snapshot> {
    let snapshot = tracker.poll_snapshot_at_stop();
    tracker.snapshot_written(now, true);
    snapshot
}

/// Registers as a node does (echoing the cookie when challenged; the reply that hands out a
/// new token comes once it is saved: saved at once here) and returns the token.
pub(in crate::tracker) fn register(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    node_id: u32,
    token: u64,
) -> u64 {
    let registered = register_reply(tracker, now, from, node_id, token);
    assert_eq!(registered.auth.node_id.get(), node_id);
    registered.auth.token.get()
}

/// [`register`], returning the whole `Registered` reply.
fn register_reply(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    node_id: u32,
    token: u64,
) -> Registered {
    let mut cookie = 0;
    for _ in 0..2 {
        let message = register_message(node_id, token, cookie);
        let request_len = send(tracker, now, from, Message::Register(&message));
        let mut replies = drain(tracker);
        if replies.is_empty() {
            save_now(tracker, now);
            replies = drain(tracker);
        }
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].0, from);
        assert!(replies[0].1.len() <= request_len, "no amplification");
        match decode(&replies[0].1).unwrap() {
            Message::Registered(registered) => return *registered,
            Message::Challenge(challenge) => cookie = challenge.cookie.get(),
            other => panic!("expected Registered, got {other:?}"),
        }
    }
    panic!("challenged twice")
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
                credit_count: U16::new(0),
                reserved: [0; 2],
            },
            credits: &[],
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
    let fixed = Credit {
        auth: auth(reporter.0, reporter.1),
        record_count: U16::new(1),
        reserved: [0; 2],
    };
    let records = [CreditRecord {
        from_node: U32::new(from_node),
        chunks: U32::new(1),
        bytes: U64::new(bytes),
        info_hash: hash(1),
    }];
    send(
        tracker,
        now,
        from,
        Message::Credit {
            fixed: &fixed,
            records: &records,
        },
    );
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
