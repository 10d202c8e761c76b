use super::*;
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
    Transfer::new(Arc::new(manifest), mapping, 8 << 10, 7, Instant::now())
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
