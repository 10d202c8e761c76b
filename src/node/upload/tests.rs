use super::*;
use crate::storage::{Manifest, StateDir, Storage};
use crate::wire::PeerAsk;

const CHUNK_BYTES: u32 = 16 << 10;
const PIECE_BYTES: u32 = 8 << 10;
const MS: Duration = Duration::from_millis(1);

/// A partial file of 2 chunks holding both (not complete: no spreading), opened in a
/// scratch directory as a download opens it.
fn file(tag: &str) -> (BTreeMap<Hash, LocalFile>, Hash) {
    let dir = std::env::temp_dir().join(format!("torrent-upload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = StateDir::open(&dir).unwrap();
    let manifest = Manifest::new(
        "f.bin".into(),
        3 * u64::from(CHUNK_BYTES),
        CHUNK_BYTES,
        vec![[0; 20]; 3],
    );
    let (mapping, _) = state.open_partial(&manifest).unwrap();
    let mut have = Bitmap::new(3);
    have.set(0);
    have.set(1);
    let info_hash = manifest.info_hash;
    let file = LocalFile {
        manifest: Arc::new(manifest),
        mapping,
        have,
        acknowledged_chunks: None,
        announce_due: None,
        stamp: None,
        info_bytes: Default::default(),
    };
    (BTreeMap::from([(info_hash, file)]), info_hash)
}

fn outbox() -> Outbox {
    Outbox::new()
}

/// Peer `port` asks for the first piece of chunk 0; returns whether it was refused busy.
fn ask(
    uploader: &mut Uploader,
    files: &BTreeMap<Hash, LocalFile>,
    info_hash: Hash,
    port: u16,
    now: Instant,
) -> bool {
    let from = SocketAddr::from(([10, 0, 0, 2], port));
    let request = wire::PieceRequest {
        ask: PeerAsk {
            cookie: U64::new(uploader.cookie(from, uploader.epoch(now))),
            node_id: U32::new(u32::from(port)),
            info_hash,
        },
        chunk: U32::new(0),
        offset: U32::new(0),
        length: U32::new(PIECE_BYTES),
        piece_bytes: U32::new(PIECE_BYTES),
    };
    let mut out = outbox();
    uploader.handle_request(&mut out, files, now, from, &Message::PieceRequest(&request));
    out.stats.requests_busy > 0
}

/// A peer whose pieces all left a moment ago keeps its upload slot while its next request
/// is on the way, however long ago it last asked: at a round trip of 20 ms, a downloader
/// waits for a chunk's first piece before asking for its rest, and lost its slot
/// mid-chunk when the slot's idleness was counted from its last request.
#[test]
fn a_slot_stays_with_a_peer_whose_pieces_just_left() {
    let (files, info_hash) = file("slot");
    let start = Instant::now();
    let mut rng = Rng::new(1);
    let senders = SenderBudgets::new(crate::budget::NODE_SENDERS_MAX, 0, start);
    let mut uploader = Uploader::new(9, &mut rng, None, Routes::fixed(65_536), senders, start);
    // Four peers take the four slots; the first one's piece leaves 80 ms later.
    for port in 1..=UPLOAD_SLOTS_MAX as u16 {
        assert!(!ask(&mut uploader, &files, info_hash, port, start));
    }
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    let mut stats = NodeStats::default();
    let (sent, _, _) = uploader
        .poll_piece(&mut stats, start + 80 * MS, &mut buf)
        .unwrap();
    assert_eq!(sent.to.port(), 1);
    // 150 ms after its request, 70 ms after its piece left: a fifth peer is refused, and
    // the first one's next request is served.
    assert!(ask(&mut uploader, &files, info_hash, 5, start + 150 * MS));
    assert!(!ask(&mut uploader, &files, info_hash, 1, start + 155 * MS));
    // Nothing queued and nothing asked for SLOT_IDLE: the slot is free again.
    while uploader
        .poll_piece(&mut stats, start + 160 * MS, &mut buf)
        .is_some()
    {}
    assert!(!ask(
        &mut uploader,
        &files,
        info_hash,
        5,
        start + 160 * MS + SLOT_IDLE
    ));
}

/// Leaving, the node tells each peer that asked it lately for a file (a chunk, or the
/// have-map) that it no longer shares it: once each, and nobody else.
#[test]
fn a_node_leaving_tells_the_peers_that_asked_it() {
    let (files, info_hash) = file("farewell");
    let now = Instant::now();
    let mut rng = Rng::new(1);
    let senders = SenderBudgets::new(crate::budget::NODE_SENDERS_MAX, 0, now);
    let mut uploader = Uploader::new(9, &mut rng, None, Routes::fixed(65_536), senders, now);
    // Peers 1 and 2 start chunk 0 (peer 1 twice); peer 3 asks for the have-map.
    for port in [1, 2, 1] {
        assert!(!ask(&mut uploader, &files, info_hash, port, now));
    }
    let from = SocketAddr::from(([10, 0, 0, 2], 3));
    let have_request = PeerAsk {
        cookie: U64::new(uploader.cookie(from, uploader.epoch(now))),
        node_id: U32::new(3),
        info_hash,
    };
    let message = Message::HaveRequest(&have_request);
    uploader.handle_request(&mut outbox(), &files, now, from, &message);

    let mut out = outbox();
    uploader.farewell(&mut out, now, files.keys());
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    let mut told = Vec::new();
    while let Some((to, len)) = out.pop_control(&mut buf) {
        let Ok(Message::Reject(rejection)) = wire::decode(&buf[..len]) else {
            panic!("not a refusal: {:?}", wire::decode(&buf[..len]));
        };
        assert_eq!(
            (rejection.info_hash, rejection.reason),
            (info_hash, RejectReason::UnknownFile)
        );
        told.push(to.port());
    }
    told.sort_unstable();
    assert_eq!(told, [1, 2, 3]);
    assert_eq!(out.stats.farewells_sent, 3);
}
