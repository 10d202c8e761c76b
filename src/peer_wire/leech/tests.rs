use super::*;
use crate::peer_wire::{
    HANDSHAKE_BYTES, OurExtendedHandshake, RESERVED_OURS, encode_extended_handshake,
    encode_piece_header,
};

const INFO_HASH: Hash = [7; 20];
const OURS: PeerId = *b"-TO0100-aaaaaaaaaaaa";
const THEIRS: PeerId = *b"-LT2080-bbbbbbbbbbbb";
/// Three pieces of 32 KiB, the last one 1,000 bytes short.
const FILE: LeechFile = LeechFile {
    info_hash: INFO_HASH,
    file_bytes: 3 * 32 * 1024 - 1000,
    piece_bytes: 32 * 1024,
};

fn message(message: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MESSAGE_BYTES_MAX];
    let len = message.encode(&mut buf).expect("encode");
    buf.truncate(len);
    buf
}

fn handshake(info_hash: Hash, peer_id: PeerId, fast: bool) -> Vec<u8> {
    let mut shake = Handshake::ours(info_hash, peer_id);
    if !fast {
        shake.reserved = [0; 8];
    }
    shake.as_bytes().to_vec()
}

fn piece(piece: u32, begin: u32, data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; crate::peer_wire::PIECE_HEADER_BYTES];
    let len = encode_piece_header(&mut bytes, piece, begin, data.len() as u32).expect("header");
    bytes.truncate(len);
    bytes.extend_from_slice(data);
    bytes
}

/// What the peer's bytes made the connection say, owned.
#[derive(Debug, PartialEq, Eq)]
enum Said {
    Open(bool),
    Has,
    Unchoked,
    Choked,
    Block(u32, u32, Vec<u8>),
    Dropped(u32, u32, u32),
}

fn feed(leech: &mut Leech, now: Instant, bytes: &[u8]) -> Result<Vec<Said>, Close> {
    let mut said = Vec::new();
    leech.receive(now, bytes, &mut |event| {
        said.push(match event {
            Event::Open { fast, .. } => Said::Open(fast),
            Event::Has => Said::Has,
            Event::Unchoked => Said::Unchoked,
            Event::Choked => Said::Choked,
            Event::Block { piece, begin, data } => Said::Block(piece, begin, data.to_vec()),
            Event::Dropped(b) => Said::Dropped(b.piece.get(), b.begin.get(), b.length.get()),
        })
    })?;
    Ok(said)
}

/// A connection past the handshakes, unchoked by a peer that has every piece.
fn open(fast: bool) -> (Leech, Instant) {
    let now = Instant::now();
    let mut leech = Leech::new(FILE, OURS, now);
    let mut bytes = handshake(INFO_HASH, THEIRS, fast);
    bytes.extend(message(&Message::Bitfield(&[0b1110_0000])));
    bytes.extend(message(&Message::Unchoke));
    let said = feed(&mut leech, now, &bytes).expect("open");
    assert_eq!(said, [Said::Open(fast), Said::Has, Said::Unchoked]);
    let sent = leech.output().len();
    leech.sent(sent);
    (leech, now)
}

#[test]
fn our_handshake_goes_first_and_interest_follows_theirs() {
    let now = Instant::now();
    let mut leech = Leech::new(FILE, OURS, now);
    assert_eq!(leech.output().len(), HANDSHAKE_BYTES);
    assert_eq!(&leech.output()[20..28], &RESERVED_OURS);
    assert_eq!(leech.room(), 0, "no request before the handshakes");
    let said = feed(&mut leech, now, &handshake(INFO_HASH, THEIRS, true)).unwrap();
    assert_eq!(said, [Said::Open(true)]);
    assert_eq!(
        &leech.output()[HANDSHAKE_BYTES..],
        message(&Message::Interested)
    );
    assert_eq!(leech.room(), 0, "still choked");
}

#[test]
fn a_handshake_for_another_file_or_from_ourselves_closes() {
    let now = Instant::now();
    let mut leech = Leech::new(FILE, OURS, now);
    assert_eq!(
        feed(&mut leech, now, &handshake([8; 20], THEIRS, true)),
        Err(Close::WrongInfoHash)
    );
    let mut leech = Leech::new(FILE, OURS, now);
    assert_eq!(
        feed(&mut leech, now, &handshake(INFO_HASH, OURS, true)),
        Err(Close::Ourselves)
    );
}

#[test]
fn requests_go_only_for_pieces_the_peer_has_within_their_range() {
    let (mut leech, now) = open(true);
    assert_eq!(leech.room(), REQUESTS_IN_FLIGHT_MAX);
    let last_len = 32 * 1024 - 1000;
    assert!(!leech.request(now, 3, 0, 16 * 1024), "no piece 3");
    assert!(
        !leech.request(now, 2, 16 * 1024, last_len - 16 * 1024 + 1),
        "past the end"
    );
    assert!(!leech.request(now, 0, 0, 0), "empty");
    assert!(!leech.request(now, 0, 0, crate::peer_wire::REQUEST_BYTES_MAX + 1));
    assert!(leech.output().is_empty(), "nothing refused was sent");
    assert!(leech.request(now, 2, 16 * 1024, last_len - 16 * 1024));
    assert_eq!(
        leech.output(),
        message(&Message::Request(&Block::new(
            2,
            16 * 1024,
            last_len - 16 * 1024
        )))
    );
    assert_eq!(leech.in_flight(), 1);
    assert_eq!(leech.room(), REQUESTS_IN_FLIGHT_MAX - 1);
}

#[test]
fn a_block_counts_only_when_it_answers_a_request_exactly() {
    let (mut leech, now) = open(true);
    assert!(leech.request(now, 1, 0, 16 * 1024));
    let data = vec![0x5a; 16 * 1024];
    // Not asked: another offset, another length.
    let mut bytes = piece(1, 16 * 1024, &data);
    bytes.extend(piece(1, 0, &data[..100]));
    assert_eq!(feed(&mut leech, now, &bytes).unwrap(), []);
    assert_eq!(leech.unrequested_blocks(), 2);
    // Asked, cut at every byte on the way.
    let bytes = piece(1, 0, &data);
    let mut said = Vec::new();
    for byte in &bytes {
        said.extend(feed(&mut leech, now, std::slice::from_ref(byte)).unwrap());
    }
    assert_eq!(said, [Said::Block(1, 0, data.clone())]);
    assert_eq!(leech.in_flight(), 0);
    // The same block again is not asked any more.
    assert_eq!(feed(&mut leech, now, &bytes).unwrap(), []);
    assert_eq!(leech.unrequested_blocks(), 3);
}

#[test]
fn a_choke_drops_every_request_unless_the_peer_is_fast_and_rejects_them() {
    let (mut leech, now) = open(false);
    assert!(leech.request(now, 0, 0, 16 * 1024));
    assert!(leech.request(now, 0, 16 * 1024, 16 * 1024));
    let said = feed(&mut leech, now, &message(&Message::Choke)).unwrap();
    assert_eq!(
        said,
        [
            Said::Choked,
            Said::Dropped(0, 0, 16 * 1024),
            Said::Dropped(0, 16 * 1024, 16 * 1024)
        ]
    );
    assert_eq!((leech.in_flight(), leech.room()), (0, 0));

    let (mut leech, now) = open(true);
    assert!(leech.request(now, 0, 0, 16 * 1024));
    assert!(leech.request(now, 0, 16 * 1024, 16 * 1024));
    let mut bytes = message(&Message::Choke);
    bytes.extend(message(&Message::RejectRequest(&Block::new(
        0,
        16 * 1024,
        16 * 1024,
    ))));
    let said = feed(&mut leech, now, &bytes).unwrap();
    assert_eq!(said, [Said::Choked, Said::Dropped(0, 16 * 1024, 16 * 1024)]);
    assert_eq!(leech.in_flight(), 1, "the one not rejected may still come");
}

#[test]
fn the_peers_request_queue_bounds_ours() {
    let (mut leech, now) = open(true);
    let payload = encode_extended_handshake(&OurExtendedHandshake {
        metadata_bytes: None,
        listen_port: None,
        request_queue: 3,
        udp_port: None,
    });
    let bytes = message(&Message::Extended {
        id: 0,
        payload: &payload,
    });
    feed(&mut leech, now, &bytes).unwrap();
    assert_eq!(leech.room(), 3);
    for begin in [0, 16 * 1024] {
        assert!(leech.request(now, 0, begin, 16 * 1024));
    }
    assert!(leech.request(now, 1, 0, 16 * 1024));
    assert!(
        !leech.request(now, 1, 16 * 1024, 16 * 1024),
        "the queue is full"
    );
}

#[test]
fn bad_haves_and_unannounced_extensions_close() {
    let (mut leech, now) = open(false);
    assert_eq!(
        feed(&mut leech, now, &message(&Message::Have { piece: 3 })),
        Err(Close::BadHave)
    );
    let (mut leech, now) = open(false);
    assert_eq!(
        feed(&mut leech, now, &message(&Message::HaveAll)),
        Err(Close::NotAnnounced)
    );
    let now = Instant::now();
    let mut leech = Leech::new(FILE, OURS, now);
    let mut bytes = handshake(INFO_HASH, THEIRS, true);
    // Spare bits set past the third piece.
    bytes.extend(message(&Message::Bitfield(&[0b1111_0000])));
    assert_eq!(feed(&mut leech, now, &bytes), Err(Close::BadHave));
}

#[test]
fn a_silent_peer_times_out_and_a_quiet_connection_keeps_alive() {
    let now = Instant::now();
    let mut leech = Leech::new(FILE, OURS, now);
    assert_eq!(leech.poll_timeout(), now + HANDSHAKE_TIMEOUT);
    assert_eq!(
        leech.handle_timeout(now + HANDSHAKE_TIMEOUT),
        Err(Close::TimedOut)
    );

    // Nothing asked: a quiet peer is no fault, and we keep the connection alive.
    let (mut leech, now) = open(true);
    assert_eq!(leech.poll_timeout(), now + KEEPALIVE_INTERVAL);
    assert_eq!(leech.handle_timeout(now + KEEPALIVE_INTERVAL), Ok(()));
    assert_eq!(leech.output(), message(&Message::KeepAlive));
    // Asked, and nothing comes.
    assert!(leech.request(now, 0, 0, 16 * 1024));
    assert_eq!(leech.poll_timeout(), now + SILENCE_TIMEOUT);
    assert_eq!(
        leech.handle_timeout(now + SILENCE_TIMEOUT),
        Err(Close::TimedOut)
    );
}

#[test]
fn the_read_buffer_never_grows_past_its_bound() {
    let (mut leech, now) = open(true);
    // The longest message, whole but for its last byte, then one byte more than the room.
    let block = vec![1u8; crate::peer_wire::REQUEST_BYTES_MAX as usize];
    let bytes = piece(0, 0, &block);
    feed(&mut leech, now, &bytes[..bytes.len() - 1]).unwrap();
    assert!(leech.read_room() >= MESSAGE_BYTES_MAX);
    let too_much = vec![0u8; leech.read_room() + 1];
    assert_eq!(feed(&mut leech, now, &too_much), Err(Close::Overrun));
    // What fits completes the block (not asked for: counted) and reads on.
    feed(&mut leech, now, &bytes[bytes.len() - 1..]).unwrap();
    assert_eq!(leech.unrequested_blocks(), 1);
    assert_eq!(leech.read_room(), READ_BUFFER_BYTES_MAX);
}
