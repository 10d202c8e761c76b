//! The seed's connection, sans-IO: bytes in, bytes out, no socket and no clock.

use super::*;
use crate::peer_wire::{
    Decoded, HANDSHAKE_BYTES, Handshake, Id, Metadata, OUR_UDP_PORT_KEY, OUR_UT_METADATA_ID,
    PEER_ID_PREFIX, REQUEST_BYTES_MAX, RESERVED_EXTENSIONS, RESERVED_FAST, UT_METADATA, decode,
    decode_extended_handshake, decode_metadata, peer_id,
};
use crate::storage::ContentWriter;
use std::io;

/// 2 pieces of 32 KiB and a last one of 5,000 bytes.
const PIECE_BYTES: u32 = 32 * 1024;
const FILE_BYTES: u64 = 2 * PIECE_BYTES as u64 + 5_000;
const INFO_HASH: Hash = [7; 20];
const UDP_PORT: u16 = 6_999;

/// A file in memory that only reads.
struct Bytes(Vec<u8>);

struct NoWrites;

impl ContentWriter for NoWrites {
    fn write(&mut self, _now: Instant, _offset: u64, _data: &[u8]) -> bool {
        false
    }
    fn flush(&mut self, _now: Instant) -> bool {
        true
    }
}

impl Content for Bytes {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_into(&self, offset: u64, out: &mut [u8]) -> bool {
        let start = offset as usize;
        match self.0.get(start..start + out.len()) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
    fn release(&self, _offset: u64, _len: usize) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn writer(self: Arc<Self>) -> Box<dyn ContentWriter> {
        Box::new(NoWrites)
    }
}

fn content() -> Vec<u8> {
    (0..FILE_BYTES).map(|i| (i * 31 + i / 977) as u8).collect()
}

/// An info dictionary of 40,000 bytes: three metadata pieces, the last one short.
fn seed_file() -> SeedFile {
    SeedFile {
        info_hash: INFO_HASH,
        file_bytes: FILE_BYTES,
        piece_bytes: PIECE_BYTES,
        piece_count: 3,
        content: Arc::new(Bytes(content())),
        info: (0..40_000u32).map(|i| i as u8).collect::<Vec<u8>>().into(),
    }
}

fn lookup(info_hash: &Hash) -> Option<SeedFile> {
    (*info_hash == INFO_HASH).then(seed_file)
}

/// A message the tests send: none is longer than 1 KiB.
fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let len = message.encode(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// A peer's handshake with the Fast and extension bits as given.
fn their_handshake(info_hash: Hash, fast: bool, extensions: bool) -> Vec<u8> {
    let mut handshake = Handshake::ours(info_hash, peer_id([3; 12]));
    handshake.reserved = [0; 8];
    if fast {
        handshake.reserved[RESERVED_FAST.0] |= RESERVED_FAST.1;
    }
    if extensions {
        handshake.reserved[RESERVED_EXTENSIONS.0] |= RESERVED_EXTENSIONS.1;
    }
    handshake.as_bytes().to_vec()
}

/// The messages a peer reads from the connection's output (after our handshake, which
/// `skip` says to skip), taken as sent. A partial message would panic.
fn drain(connection: &mut Connection, now: Instant, skip: usize) -> Vec<Vec<u8>> {
    let out = connection.output().to_vec();
    connection.sent(now, out.len());
    let mut at = skip;
    let mut messages = Vec::new();
    // Split by length prefix alone: a reject of a request over the limit is one our
    // decoder refuses.
    while at < out.len() {
        let length = u32::from_be_bytes(out[at..at + 4].try_into().unwrap()) as usize;
        messages.push(out[at..at + 4 + length].to_vec());
        at += 4 + length;
    }
    messages
}

/// A connection past both handshakes (the peer's as given), its output taken.
fn open(now: Instant, fast: bool) -> Connection {
    let mut connection = Connection::new(now, peer_id([9; 12]), UDP_PORT);
    connection.receive(now, &their_handshake(INFO_HASH, fast, true), &mut lookup);
    drain(&mut connection, now, HANDSHAKE_BYTES);
    connection
}

/// `open`, then interested and unchoked.
fn serving(now: Instant, fast: bool) -> Connection {
    let mut connection = open(now, fast);
    connection.receive(now, &encode(&Message::Interested), &mut lookup);
    assert!(connection.interested());
    connection.unchoke();
    let unchoke = drain(&mut connection, now, 0);
    assert_eq!(unchoke, vec![encode(&Message::Unchoke)]);
    connection
}

fn request(piece: u32, begin: u32, length: u32) -> Vec<u8> {
    encode(&Message::Request(&Block::new(piece, begin, length)))
}

fn always(_: u32) -> bool {
    true
}

#[test]
fn a_handshake_for_a_file_held_is_answered_with_ours_extended_and_have_all() {
    let now = Instant::now();
    let mut connection = Connection::new(now, peer_id([9; 12]), UDP_PORT);
    let theirs = their_handshake(INFO_HASH, true, true);
    // In two parts: nothing is answered before the handshake is whole.
    connection.receive(now, &theirs[..30], &mut lookup);
    assert!(connection.output().is_empty());
    connection.receive(now, &theirs[30..], &mut lookup);
    assert_eq!(connection.closed(), None);
    assert_eq!(connection.info_hash(), Some(INFO_HASH));
    let out = connection.output().to_vec();
    let ours: &Handshake = bytemuck::from_bytes(&out[..HANDSHAKE_BYTES]);
    assert_eq!(ours.info_hash, INFO_HASH);
    assert!(ours.fast() && ours.extensions());
    assert_eq!(ours.peer_id[..8], PEER_ID_PREFIX);
    let messages = drain(&mut connection, now, HANDSHAKE_BYTES);
    assert_eq!(messages.len(), 2, "extended handshake, have all");
    let Ok(Decoded::Whole {
        value: Message::Extended { id: 0, payload },
        ..
    }) = decode(&messages[0])
    else {
        panic!("not an extended handshake: {:?}", messages[0]);
    };
    let extended = decode_extended_handshake(payload).unwrap();
    assert_eq!(extended.message_id(UT_METADATA), Some(OUR_UT_METADATA_ID));
    assert_eq!(extended.metadata_bytes, Some(40_000));
    assert_eq!(extended.udp_port, Some(UDP_PORT));
    assert!(
        payload
            .windows(OUR_UDP_PORT_KEY.len())
            .any(|w| w == OUR_UDP_PORT_KEY.as_bytes())
    );
    assert_eq!(messages[1], encode(&Message::HaveAll));
    assert!(connection.choked(), "choked until the owner unchokes");
}

#[test]
fn a_peer_without_fast_gets_a_full_bitfield_with_the_spare_bits_clear() {
    let now = Instant::now();
    let mut connection = Connection::new(now, peer_id([9; 12]), UDP_PORT);
    connection.receive(now, &their_handshake(INFO_HASH, false, false), &mut lookup);
    let messages = drain(&mut connection, now, HANDSHAKE_BYTES);
    // No extended handshake for a peer without the extension bit; 3 pieces: 0b1110_0000.
    assert_eq!(messages, vec![encode(&Message::Bitfield(&[0xe0]))]);
}

#[test]
fn handshakes_refused_close_the_connection_without_an_answer() {
    let now = Instant::now();
    let cases: [(Vec<u8>, Close); 3] = [
        (their_handshake([8; 20], true, true), Close::UnknownInfoHash),
        (b"\x13BitTorrent protocoX".to_vec(), Close::NotBitTorrent),
        (
            Handshake::ours(INFO_HASH, peer_id([9; 12]))
                .as_bytes()
                .to_vec(),
            Close::Ourselves,
        ),
    ];
    for (bytes, why) in cases {
        let mut connection = Connection::new(now, peer_id([9; 12]), UDP_PORT);
        connection.receive(now, &bytes, &mut lookup);
        assert_eq!(connection.closed(), Some(why));
        assert!(connection.output().is_empty());
        assert_eq!(connection.read_room(), 0);
    }
}

#[test]
fn requests_in_range_are_served_with_the_file_bytes_and_the_short_last_block() {
    let now = Instant::now();
    let mut connection = serving(now, true);
    let file = content();
    let mut bytes = request(1, 16_384, 16_384);
    bytes.extend(request(2, 0, 5_000));
    connection.receive(now, &bytes, &mut lookup);
    assert!(connection.can_fill());
    assert_eq!(connection.fill(&mut always), (2, 16_384 + 5_000));
    let messages = drain(&mut connection, now, 0);
    assert_eq!(messages.len(), 2);
    let expected = [(1u32, 16_384u32, 16_384usize), (2, 0, 5_000)];
    for (message, (piece, begin, len)) in messages.iter().zip(expected) {
        let Ok(Decoded::Whole {
            value: Message::Piece { header, data },
            ..
        }) = decode(message)
        else {
            panic!("not a piece");
        };
        assert_eq!((header.piece.get(), header.begin.get()), (piece, begin));
        let at = (piece * PIECE_BYTES + begin) as usize;
        assert_eq!(data, &file[at..at + len]);
    }
}

#[test]
fn requests_out_of_range_are_rejected_for_a_fast_peer_and_close_another() {
    let now = Instant::now();
    let mut connection = serving(now, true);
    let refused = [
        Block::new(3, 0, 16_384),                // no such piece
        Block::new(2, 0, 5_001),                 // past the short last piece
        Block::new(0, PIECE_BYTES, 1),           // past a piece's end
        Block::new(0, 0, REQUEST_BYTES_MAX + 1), // too long: the decoder refuses it
    ];
    for block in &refused {
        connection.receive(now, &encode_unchecked(Id::Request, block), &mut lookup);
    }
    assert_eq!(connection.closed(), None);
    let messages = drain(&mut connection, now, 0);
    let rejects: Vec<Vec<u8>> = refused
        .iter()
        .map(|block| encode_unchecked(Id::RejectRequest, block))
        .collect();
    assert_eq!(messages, rejects);
    assert_eq!(connection.take_counts(), (4, 0));

    let mut connection = serving(now, false);
    connection.receive(now, &request(3, 0, 16_384), &mut lookup);
    assert_eq!(connection.closed(), Some(Close::BadRequest));
}

/// A request's or a reject's bytes, whatever its length (the codec refuses to encode a
/// long one).
fn encode_unchecked(id: Id, block: &Block) -> Vec<u8> {
    let mut bytes = 13u32.to_be_bytes().to_vec();
    bytes.push(id as u8);
    bytes.extend_from_slice(bytemuck::bytes_of(block));
    bytes
}

#[test]
fn requests_while_choked_are_rejected_and_a_cancel_takes_a_queued_one_back() {
    let now = Instant::now();
    let mut connection = open(now, true);
    connection.receive(now, &request(0, 0, 16_384), &mut lookup);
    let block = Block::new(0, 0, 16_384);
    assert_eq!(
        drain(&mut connection, now, 0),
        vec![encode(&Message::RejectRequest(&block))]
    );
    connection.receive(now, &encode(&Message::Interested), &mut lookup);
    connection.unchoke();
    drain(&mut connection, now, 0);
    connection.receive(now, &request(0, 0, 16_384), &mut lookup);
    connection.receive(now, &encode(&Message::Cancel(&block)), &mut lookup);
    assert!(!connection.can_fill());
    assert_eq!(
        drain(&mut connection, now, 0),
        vec![encode(&Message::RejectRequest(&block))]
    );
}

#[test]
fn a_full_write_buffer_stops_reading_until_the_peer_takes_it() {
    let now = Instant::now();
    let mut connection = serving(now, true);
    // Twice as many blocks as the write buffer holds, all asked at once.
    let blocks = 2 * WRITE_BUFFER_BYTES_MAX / BLOCK_BYTES as usize;
    let mut bytes = Vec::new();
    for i in 0..blocks as u32 {
        bytes.extend(request(i % 2, (i / 2 % 2) * BLOCK_BYTES, BLOCK_BYTES));
    }
    connection.receive(now, &bytes, &mut lookup);
    let (served, _) = connection.fill(&mut always);
    assert!(connection.write_pending() >= WRITE_BUFFER_BYTES_MAX);
    assert!(connection.write_pending() < WRITE_BUFFER_BYTES_MAX + MESSAGE_BYTES_MAX);
    assert_eq!(connection.read_room(), 0, "backpressure: no more reading");
    assert!(!connection.can_fill());
    assert!((served as usize) < blocks);
    // The peer takes everything: the rest is served.
    let mut total = served;
    while connection.write_pending() > 0 {
        connection.sent(now, connection.write_pending());
        total += connection.fill(&mut always).0;
    }
    assert_eq!(total as usize, blocks);
    assert!(connection.read_room() > 0);
}

#[test]
fn the_upload_budget_holds_blocks_back() {
    let now = Instant::now();
    let mut connection = serving(now, true);
    connection.receive(now, &request(0, 0, 16_384), &mut lookup);
    assert_eq!(connection.fill(&mut |_| false), (0, 0));
    assert!(connection.can_fill());
    assert_eq!(connection.next_block_bytes(), Some(16_384));
    assert_eq!(connection.fill(&mut always), (1, 16_384));
}

#[test]
fn metadata_is_served_in_16_kib_pieces_and_rejected_beyond() {
    let now = Instant::now();
    let mut connection = serving(now, true);
    let mut theirs = vec![0u8; 64];
    // The peer gives ut_metadata the id 3 in its extended handshake.
    let extended = b"d1:md11:ut_metadatai3eee";
    let mut bytes = encode(&Message::Extended {
        id: 0,
        payload: extended,
    });
    for piece in [2, 3] {
        let len = Metadata::Request { piece }.encode(&mut theirs).unwrap();
        bytes.extend(encode(&Message::Extended {
            id: OUR_UT_METADATA_ID,
            payload: &theirs[..len],
        }));
    }
    connection.receive(now, &bytes, &mut lookup);
    let messages = drain(&mut connection, now, 0);
    assert_eq!(messages.len(), 2);
    let payloads: Vec<Metadata<'_>> = messages
        .iter()
        .map(|message| match decode(message) {
            Ok(Decoded::Whole {
                value: Message::Extended { id: 3, payload },
                ..
            }) => decode_metadata(payload).unwrap(),
            other => panic!("not a metadata message: {other:?}"),
        })
        .collect();
    let info = seed_file().info;
    assert_eq!(
        payloads[0],
        Metadata::Data {
            piece: 2,
            total_bytes: 40_000,
            data: &info[32_768..],
        }
    );
    assert_eq!(payloads[1], Metadata::Reject { piece: 3 });
    assert_eq!(connection.take_counts(), (0, 1));
}

#[test]
fn a_length_over_the_limit_or_a_message_not_announced_closes() {
    let now = Instant::now();
    let mut connection = open(now, true);
    connection.receive(now, &[0, 0x10, 0, 0, Id::Piece as u8], &mut lookup);
    assert!(matches!(
        connection.closed(),
        Some(Close::BadMessage(DecodeError::TooLong { .. }))
    ));
    let mut connection = open(now, false);
    connection.receive(now, &encode(&Message::HaveAll), &mut lookup);
    assert_eq!(connection.closed(), Some(Close::ProtocolViolation));
}

#[test]
fn timers_close_a_silent_peer_and_keep_a_quiet_one_alive() {
    let start = Instant::now();
    let mut connection = Connection::new(start, peer_id([9; 12]), UDP_PORT);
    assert_eq!(connection.poll_timeout(), Some(start + HANDSHAKE_TIMEOUT));
    connection.handle_timeout(start + HANDSHAKE_TIMEOUT / 2);
    assert_eq!(connection.closed(), None, "a spurious call does nothing");
    connection.handle_timeout(start + HANDSHAKE_TIMEOUT);
    assert_eq!(connection.closed(), Some(Close::TimedOut));

    let mut connection = open(start, true);
    let quiet = start + KEEPALIVE_INTERVAL;
    connection.receive(quiet, &encode(&Message::KeepAlive), &mut lookup);
    connection.handle_timeout(quiet);
    assert_eq!(
        drain(&mut connection, quiet, 0),
        vec![encode(&Message::KeepAlive)]
    );
    connection.handle_timeout(quiet + IDLE_TIMEOUT);
    assert_eq!(connection.closed(), Some(Close::TimedOut));
}

/// Random streams, seeded: real messages (requests in and out of range, cancels,
/// metadata requests, interest), then random bytes in some, fed in slices cut at random
/// places while the peer takes random amounts. Whatever comes, the
/// connection never panics and its buffers stay within their bounds.
#[test]
fn random_streams_keep_the_buffers_within_their_bounds() {
    let now = Instant::now();
    let mut rng = crate::rng::Rng::new(0x5eed_0018);
    let (mut served, mut whole) = (0, 0);
    for stream in 0..300 {
        let mut bytes = their_handshake(INFO_HASH, stream % 2 == 0, stream % 3 != 0);
        let extended = b"d1:md11:ut_metadatai3eee";
        bytes.extend(encode(&Message::Extended {
            id: 0,
            payload: extended,
        }));
        bytes.extend(encode(&Message::Interested));
        while bytes.len() < 200_000 {
            match rng.below(256) {
                0..=16 => bytes.extend(encode(&Message::Cancel(&Block::new(0, 0, 16_384)))),
                17..=24 => {
                    let mut payload = [0u8; 64];
                    let piece = rng.below(5) as u32;
                    let len = Metadata::Request { piece }.encode(&mut payload).unwrap();
                    bytes.extend(encode(&Message::Extended {
                        id: OUR_UT_METADATA_ID,
                        payload: &payload[..len],
                    }));
                }
                25..=32 => bytes.extend(encode(&Message::NotInterested)),
                _ => {
                    let piece = rng.below(4) as u32;
                    let begin = rng.below(3) as u32 * BLOCK_BYTES;
                    let length = 1 + rng.below(u64::from(BLOCK_BYTES)) as u32;
                    bytes.extend(request(piece, begin, length));
                    if rng.below(4) == 0 {
                        bytes.extend(encode(&Message::Interested));
                    }
                }
            }
        }
        // Random bytes at the end of one stream in four: they most often end it (a bad
        // length), so they come after the messages.
        if rng.below(4) == 0 {
            bytes.extend((0..rng.below(4096)).map(|_| rng.next_u64() as u8));
        }
        let mut connection = Connection::new(now, peer_id([9; 12]), UDP_PORT);
        let mut at = 0;
        while at < bytes.len() && connection.closed().is_none() {
            let room = connection.read_room();
            if room > 0 {
                let len = (1 + rng.below(40_000) as usize)
                    .min(room)
                    .min(bytes.len() - at);
                connection.receive(now, &bytes[at..at + len], &mut lookup);
                at += len;
            }
            if connection.open.is_some() && connection.choked() && rng.below(2) == 0 {
                connection.unchoke();
            }
            served += connection.fill(&mut |_| rng.below(3) != 0).0;
            assert!(connection.read_buf.len() <= READ_BUFFER_BYTES_MAX);
            assert!(connection.write_pending() <= WRITE_BUFFER_BYTES_MAX + MESSAGE_BYTES_MAX);
            assert!(
                connection
                    .open
                    .as_ref()
                    .is_none_or(|o| o.requests.len() <= REQUESTS_QUEUED_MAX)
            );
            let take = rng.below(connection.write_pending() as u64 + 1) as usize;
            connection.sent(now, take);
            if room == 0 && take == 0 {
                // Nothing read and nothing taken: the peer takes everything.
                connection.sent(now, connection.write_pending());
            }
        }
        whole += u32::from(at == bytes.len());
    }
    // The streams went somewhere: blocks were served, and some streams were read whole.
    assert!(
        served > 500 && whole > 50,
        "{served} blocks, {whole} whole streams"
    );
}
