use super::*;
use crate::storage::Storage;
use std::net::SocketAddr;

const CHUNK_BYTES: u32 = 16 << 10;

/// A transfer of a 3-chunk file, its partial file opened as a download opens it, in a
/// scratch node directory.
fn transfer(tag: &str) -> Transfer {
    let dir = std::env::temp_dir().join(format!("torrent-transfer-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = crate::storage::StateDir::open(&dir).unwrap();
    let hashes = vec![[0u8; 20]; 3];
    let manifest = Manifest::new(
        "f.bin".into(),
        3 * u64::from(CHUNK_BYTES),
        CHUNK_BYTES,
        hashes,
    );
    let (mapping, _) = state.open_partial(&manifest).unwrap();
    Transfer::new(1, Arc::new(manifest), mapping, 8 << 10, 7, Instant::now())
}

fn active(owner: Option<usize>) -> ChunkState {
    ChunkState::Active(Box::new(ChunkProgress {
        owner,
        piece_bytes: 8 << 10,
        received: Bitmap::new(2),
        requested_at: vec![None; 2],
        next_unrequested: 0,
        last_from: 0,
        last_piece_at: Instant::now(),
    }))
}

fn bitmap(chunks: &[u32]) -> Bitmap {
    let mut have = Bitmap::new(3);
    for &chunk in chunks {
        have.set(chunk);
    }
    have
}

/// A spreading holder's map is asked again once it offers nothing this download could
/// ask for now: a chunk another peer is sending us does not count, one left by its
/// peer does.
#[test]
fn a_map_offers_only_chunks_nobody_is_sending_us() {
    let mut transfer = transfer("offers");
    transfer.chunks[0] = active(Some(0));
    transfer.chunks[1] = ChunkState::Verified;
    assert!(!transfer.offers_unclaimed(&bitmap(&[0, 1])));
    assert!(
        transfer.holds_needed(&bitmap(&[0, 1])),
        "still needed, though"
    );
    assert!(
        transfer.offers_unclaimed(&bitmap(&[0, 2])),
        "chunk 2 is missing"
    );
    transfer.chunks[0] = active(None);
    assert!(transfer.offers_unclaimed(&bitmap(&[0])), "chunk 0 was left");
}

/// From a holder spreading its chunks (complete, showing only some), the rest of a chunk
/// is asked once its first piece came; until then no other chunk is started from it, so
/// that a downloader claims one chunk at a time there (see `next_request`).
#[test]
fn a_spreading_holder_is_asked_one_chunk_at_a_time() {
    let mut transfer = transfer("spreading");
    let now = Instant::now();
    let addr = SocketAddr::from(([10, 0, 0, 2], 4000));
    let mut peer = Peer::new(3, addr, true, 65_536, crate::node::PaceMode::Off, now);
    peer.have = Some(bitmap(&[0, 1]));
    transfer.replace_have(None, peer.have.as_ref());
    let peers = vec![peer];
    // Room for one piece: the chunk's second piece is left for later.
    let request = transfer.request(&peers, 0, 1, now).unwrap();
    let chunk = request.chunk;
    assert_eq!((request.offset, request.length), (0, 8 << 10));
    transfer.check_invariants(&peers);
    assert_eq!(
        transfer.request(&peers, 0, 8, now),
        None,
        "another chunk was started before the first piece of chunk {chunk} came"
    );
    // The first piece came: the rest of the chunk is asked, and only then a new one.
    let taken = transfer.take_piece(3, chunk, 0, &[0; 8 << 10], now);
    assert!(taken.is_ok_and(|taken| taken.asked_at == Some(now) && !taken.chunk_complete));
    assert_eq!(transfer.in_flight(0), 0);
    assert_eq!(
        transfer.request(&peers, 0, 8, now),
        Some(Request {
            chunk,
            offset: 8 << 10,
            length: 8 << 10,
            piece_bytes: 8 << 10
        })
    );
    let other = transfer.request(&peers, 0, 8, now).unwrap();
    assert_ne!(other.chunk, chunk);
    assert_eq!(other.offset, 0);
    assert_eq!(transfer.in_flight(0), 3);
    assert_eq!(transfer.chunks_of(0), [chunk, other.chunk]);
    transfer.check_invariants(&peers);
}

/// A chunk a peer refused leaves its have-map and the availability count together, so
/// that its next have-map counts it once, not twice.
#[test]
fn availability_counts_each_peer_showing_a_chunk_once() {
    let mut transfer = transfer("availability");
    let first = bitmap(&[1, 2]);
    transfer.replace_have(None, Some(&first));
    assert_eq!(transfer.availability, [0, 1, 1]);
    // Refused chunk 1 ("elsewhere"): the download clears the bit and forgets the holder.
    let mut refused = first.clone();
    refused.clear(1);
    transfer.forget_holder_of(1);
    assert_eq!(transfer.availability, [0, 0, 1]);
    // Its next have-map shows chunk 1 again.
    transfer.replace_have(Some(&refused), Some(&first));
    assert_eq!(transfer.availability, [0, 1, 1]);
    transfer.replace_have(Some(&first), None);
    assert_eq!(transfer.availability, [0, 0, 0]);
}

/// Two peers holding the whole 3-chunk file, both with a cookie and its have-map counted.
fn two_holders(transfer: &mut Transfer, now: Instant) -> Vec<Peer> {
    (0..2u16)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, 0, 2], 4000 + i));
            let mut peer = Peer::new(
                3 + u32::from(i),
                addr,
                false,
                65_536,
                crate::node::PaceMode::Off,
                now,
            );
            peer.have = Some(bitmap(&[0, 1, 2]));
            transfer.replace_have(None, peer.have.as_ref());
            peer
        })
        .collect()
}

/// The account follows every change of hands: requests, a piece in, an endgame take-over
/// (the old owner's pieces in flight are settled, and the new owner goes on where it
/// stopped), a timeout scan and a dropped peer.
#[test]
fn the_account_follows_chunks_from_peer_to_peer() {
    let mut transfer = transfer("account");
    let start = Instant::now();
    let mut peers = two_holders(&mut transfer, start);
    // Peer 0 takes all three chunks, one request of two pieces each.
    let mut asked = Vec::new();
    while let Some(request) = transfer.request(&peers, 0, 64, start) {
        asked.push(request.chunk);
    }
    asked.sort_unstable();
    assert_eq!(asked, [0, 1, 2]);
    assert_eq!(transfer.in_flight(0), 6);
    transfer.check_invariants(&peers);
    // The first piece of one of them comes in.
    let first = transfer.chunks_of(0)[0];
    let taken = transfer.take_piece(3, first, 0, &[1; 8 << 10], start);
    assert!(taken.is_ok_and(|taken| taken.owner == Some(0)));
    assert_eq!(transfer.in_flight(0), 5);
    transfer.check_invariants(&peers);
    // Long after, peer 1 is idle and nothing is unclaimed: it takes over the chunk of
    // peer 0 with the fewest pieces in, stalled for four of peer 0's timeouts.
    let later = start + Duration::from_secs(2);
    let request = transfer.request(&peers, 1, 64, later).unwrap();
    assert_ne!(
        request.chunk, first,
        "the chunk with a piece in is taken last"
    );
    assert_eq!(
        transfer.in_flight(0),
        3,
        "the taken chunk's requests are settled"
    );
    assert_eq!(transfer.chunks_of(1), [request.chunk]);
    transfer.check_invariants(&peers);
    // Every request of peer 0 timed out by now: the scan settles them.
    let lost = transfer.scan_timeouts(&mut peers, later, &mut Default::default());
    assert!(lost.is_empty(), "a loopback path is not narrowed");
    assert_eq!(transfer.in_flight(0), 0);
    assert_eq!(peers[0].pieces_lost, 3);
    transfer.check_invariants(&peers);
    // Peer 1 is dropped: its chunk is free for others, keeping the pieces in.
    peers[1].dropped = true;
    transfer.release_peer(1);
    transfer.replace_have(peers[1].have.take().as_ref(), None);
    assert_eq!((transfer.in_flight(1), transfer.chunks_of(1)), (0, &[][..]));
    transfer.check_invariants(&peers);
}

/// An idle peer not heard from since its pieces began to time out takes no chunk over
/// (it may be gone: in a swarm whose downloaders leave when done, one took a chunk back
/// from the peer that had just taken it from it); once it answers anything, it may.
#[test]
fn a_peer_silent_since_its_pieces_timed_out_takes_nothing_over() {
    let mut transfer = transfer("silent");
    let start = Instant::now();
    let mut peers = two_holders(&mut transfer, start);
    while transfer.request(&peers, 0, 64, start).is_some() {}
    assert_eq!(transfer.chunks_of(0).len(), 3);
    let later = start + Duration::from_secs(2);
    (peers[1].pieces_lost_in_a_row, peers[1].first_loss_in_a_row) = (1, Some(later));
    assert!(transfer.request(&peers, 1, 64, later).is_none());
    assert_eq!(
        transfer.chunks_of(0).len(),
        3,
        "nothing was taken from peer 0"
    );
    transfer.check_invariants(&peers);
    // Its have-map comes: it is there.
    peers[1].last_heard = later + Duration::from_millis(1);
    let request = transfer.request(&peers, 1, 64, later).unwrap();
    assert_eq!(transfer.chunks_of(1), [request.chunk]);
    transfer.check_invariants(&peers);
}

/// A chunk a peer finished leaves its account, and its hash check settles the count of
/// chunks hashing.
#[test]
fn a_complete_chunk_leaves_its_owner_and_is_hashed_once() {
    let mut transfer = transfer("complete");
    let now = Instant::now();
    let peers = two_holders(&mut transfer, now);
    let request = transfer.request(&peers, 0, 2, now).unwrap();
    let chunk = request.chunk;
    for offset in [0, 8 << 10] {
        let taken = transfer.take_piece(3, chunk, offset, &[1; 8 << 10], now);
        assert!(taken.is_ok());
    }
    assert!(transfer.chunks_of(0).is_empty());
    assert_eq!(transfer.in_flight(0), 0);
    assert!(matches!(
        transfer.take_piece(3, chunk, 0, &[1; 8 << 10], now),
        Err(Refused::Unrequested)
    ));
    transfer.check_invariants(&peers);
    assert_eq!(transfer.hash_checked(chunk, true), Some(3));
    assert_eq!(
        transfer.hash_checked(chunk, true),
        None,
        "a late duplicate result"
    );
    transfer.check_invariants(&peers);
}

/// The check catches an account that does not add up: pieces counted in flight that no
/// chunk of the peer has requested.
#[test]
#[should_panic(expected = "in-flight count")]
fn an_account_that_does_not_add_up_is_caught() {
    let mut transfer = transfer("broken");
    let now = Instant::now();
    let peers = two_holders(&mut transfer, now);
    transfer.request(&peers, 0, 2, now).unwrap();
    transfer.loads[0].in_flight += 1;
    transfer.check_invariants(&peers);
}
