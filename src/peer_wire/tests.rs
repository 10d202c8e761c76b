//! The peer wire codec: literal byte fixtures (from the BEPs' text where they give bytes),
//! round trips of every message, every limit at the limit and one past it, and streams cut
//! at every byte.

use super::*;

/// Decodes one whole message that must fill `bytes`.
fn whole(bytes: &[u8]) -> Message<'_> {
    match decode(bytes) {
        Ok(Decoded::Whole { value, len }) => {
            assert_eq!(len, bytes.len(), "{value:?}");
            value
        }
        other => panic!("{bytes:?}: {other:?}"),
    }
}

fn encoded(message: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; MESSAGE_BYTES_MAX];
    let len = message
        .encode(&mut buf)
        .unwrap_or_else(|error| panic!("{message:?}: {error:?}"));
    buf.truncate(len);
    buf
}

/// A message of `id` with a body of `body_bytes` bytes (the length prefix says so).
fn framed(id: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = ((1 + body.len()) as u32).to_be_bytes().to_vec();
    bytes.push(id);
    bytes.extend_from_slice(body);
    bytes
}

/// One of every message, with its bytes laid out by hand as BEP 3, 5, 6 and 10 describe.
fn every_message() -> Vec<(Message<'static>, Vec<u8>)> {
    static REQUEST: Block = Block {
        piece: U32::new(1),
        begin: U32::new(0x4000),
        length: U32::new(0x4000),
    };
    static HEADER: PieceHeader = PieceHeader {
        piece: U32::new(1),
        begin: U32::new(0x4000),
    };
    let block = [0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0];
    vec![
        (Message::KeepAlive, vec![0, 0, 0, 0]),
        (Message::Choke, vec![0, 0, 0, 1, 0]),
        (Message::Unchoke, vec![0, 0, 0, 1, 1]),
        (Message::Interested, vec![0, 0, 0, 1, 2]),
        (Message::NotInterested, vec![0, 0, 0, 1, 3]),
        (Message::Have { piece: 7 }, vec![0, 0, 0, 5, 4, 0, 0, 0, 7]),
        (
            Message::Bitfield(&[0b1010_0000]),
            vec![0, 0, 0, 2, 5, 0b1010_0000],
        ),
        (Message::Request(&REQUEST), framed(6, &block)),
        (
            Message::Piece {
                header: &HEADER,
                data: b"abc",
            },
            framed(7, &[0, 0, 0, 1, 0, 0, 0x40, 0, b'a', b'b', b'c']),
        ),
        (Message::Cancel(&REQUEST), framed(8, &block)),
        (Message::Port(6881), vec![0, 0, 0, 3, 9, 0x1a, 0xe1]),
        (
            Message::Suggest { piece: 7 },
            vec![0, 0, 0, 5, 13, 0, 0, 0, 7],
        ),
        (Message::HaveAll, vec![0, 0, 0, 1, 14]),
        (Message::HaveNone, vec![0, 0, 0, 1, 15]),
        (Message::RejectRequest(&REQUEST), framed(16, &block)),
        (
            Message::AllowedFast { piece: 7 },
            vec![0, 0, 0, 5, 17, 0, 0, 0, 7],
        ),
        (
            Message::Extended {
                id: 0,
                payload: b"d1:md11:ut_metadatai1eee",
            },
            framed(20, b"\0d1:md11:ut_metadatai1eee"),
        ),
        (
            Message::Unknown {
                id: 21,
                payload: b"v2",
            },
            vec![0, 0, 0, 3, 21, b'v', b'2'],
        ),
    ]
}

#[test]
fn every_message_has_its_bytes_and_round_trips() {
    let mut ids = std::collections::BTreeSet::new();
    for (message, bytes) in every_message() {
        assert_eq!(encoded(&message), bytes, "{message:?}");
        assert_eq!(whole(&bytes), message);
        ids.insert(message.id());
    }
    // Every id we know, the keep-alive (no id) and one we do not.
    assert_eq!(ids.len(), Id::ALL.len() + 2);
}

#[test]
fn the_handshake_reads_as_bep_3_and_6_and_10_describe_it() {
    let info_hash = [0xaa; 20];
    let id = peer_id([7; 12]);
    let ours = Handshake::ours(info_hash, id);
    let bytes = ours.as_bytes();
    assert_eq!(bytes[0], 19);
    assert_eq!(&bytes[1..20], b"BitTorrent protocol");
    // BEP 6: "the third least significant bit in the 8th reserved byte";
    // BEP 10: "the 20th bit from the right", in the 6th byte.
    assert_eq!(&bytes[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
    assert_eq!(&bytes[28..48], &info_hash);
    assert_eq!(&bytes[48..68], &id);
    assert!(ours.fast() && ours.extensions());
    match decode_handshake(bytes) {
        Ok(Decoded::Whole { value, len }) => {
            assert_eq!((value, len), (&ours, 68));
        }
        other => panic!("{other:?}"),
    }
    // A plain BEP 3 peer sets no bit.
    let mut plain = bytes.to_vec();
    plain[20..28].fill(0);
    let Ok(Decoded::Whole { value, .. }) = decode_handshake(&plain) else {
        panic!("refused");
    };
    assert!(!value.fast() && !value.extensions());
}

#[test]
fn a_handshake_of_something_else_is_refused_at_its_first_wrong_byte() {
    // An HTTP request, an encrypted (MSE) stream's random bytes, a wrong protocol string.
    assert_eq!(decode_handshake(b"G"), Err(DecodeError::NotBitTorrent));
    assert_eq!(decode_handshake(&[0x8f]), Err(DecodeError::NotBitTorrent));
    assert_eq!(
        decode_handshake(b"\x13BitTorrent protocoX"),
        Err(DecodeError::NotBitTorrent)
    );
    assert_eq!(decode_handshake(b"\x13Bit"), Ok(Decoded::NeedBytes(64)));
    assert_eq!(decode_handshake(b""), Ok(Decoded::NeedBytes(68)));
}

#[test]
fn our_peer_id_has_our_prefix_and_the_crate_version() {
    let id = peer_id([0, 61, 62, 255, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&id[..8], b"-TO0100-");
    assert_eq!(&id[8..12], b"0z07");
    assert!(id.iter().all(u8::is_ascii_graphic));
    let version = [
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        "0",
    ]
    .concat();
    assert_eq!(&PEER_ID_PREFIX[3..7], version.as_bytes());
}

#[test]
fn a_stream_cut_at_every_byte_decodes_the_same() {
    let mut stream = Handshake::ours([3; 20], peer_id([9; 12]))
        .as_bytes()
        .to_vec();
    let messages = every_message();
    for (_, bytes) in &messages {
        stream.extend_from_slice(bytes);
    }
    // Fed one byte at a time, as a socket may deliver it.
    let mut buffer = Vec::new();
    let mut handshake = None;
    let mut decoded = Vec::new();
    for &byte in &stream {
        buffer.push(byte);
        if handshake.is_none() {
            match decode_handshake(&buffer).unwrap() {
                Decoded::NeedBytes(n) => assert!(buffer.len() + n <= HANDSHAKE_BYTES),
                Decoded::Whole { value, len } => {
                    handshake = Some(*value);
                    buffer.drain(..len);
                }
            }
            continue;
        }
        loop {
            match decode(&buffer).unwrap() {
                Decoded::NeedBytes(n) => {
                    // Never more than the message in front needs.
                    let need = messages
                        .get(decoded.len())
                        .map_or(4, |(_, bytes)| bytes.len());
                    assert!(n >= 1 && buffer.len() + n <= need, "{n} at {buffer:?}");
                    break;
                }
                Decoded::Whole { value, len } => {
                    decoded.push(encoded(&value));
                    buffer.drain(..len);
                }
            }
        }
    }
    assert!(buffer.is_empty());
    assert_eq!(handshake.unwrap().info_hash, [3; 20]);
    let expected: Vec<_> = messages.into_iter().map(|(_, bytes)| bytes).collect();
    assert_eq!(decoded, expected);
}

#[test]
fn a_length_prefix_is_refused_before_the_body_arrives() {
    // Over every kind's limit: refused from the prefix alone.
    let too_long = ((MESSAGE_BYTES_MAX - 4 + 1) as u32).to_be_bytes();
    assert_eq!(
        decode(&too_long),
        Err(DecodeError::TooLong {
            length: (MESSAGE_BYTES_MAX - 3) as u32
        })
    );
    assert_eq!(
        decode(&((MESSAGE_BYTES_MAX - 4) as u32).to_be_bytes()),
        Ok(Decoded::NeedBytes(1))
    );
    assert_eq!(
        decode(&[0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::TooLong { length: u32::MAX })
    );
    // Over its kind's limit: refused once the id is in, before the body.
    let mut have = 6u32.to_be_bytes().to_vec();
    have.push(Id::Have as u8);
    assert_eq!(
        decode(&have),
        Err(DecodeError::BadLength { id: 4, length: 6 })
    );
    // Within it: the buffer may grow by exactly what the message needs.
    let mut piece = (9 + REQUEST_BYTES_MAX).to_be_bytes().to_vec();
    piece.push(Id::Piece as u8);
    assert_eq!(
        decode(&piece),
        Ok(Decoded::NeedBytes(8 + REQUEST_BYTES_MAX as usize))
    );
}

/// `decode` of a message of `id` with a body of `body_bytes` zero bytes (and, for the
/// fixed kinds, what the body must hold) accepts or refuses it.
fn accepts(id: u8, body: &[u8]) -> bool {
    match decode(&framed(id, body)) {
        Ok(Decoded::Whole { .. }) => true,
        Ok(Decoded::NeedBytes(n)) => panic!("a whole message needs {n} more"),
        Err(_) => false,
    }
}

#[test]
fn every_fixed_length_is_accepted_and_one_more_or_less_refused() {
    for id in Id::ALL {
        let (least, most) = match id {
            Id::Choke | Id::Unchoke | Id::Interested | Id::NotInterested => (0, 0),
            Id::HaveAll | Id::HaveNone => (0, 0),
            Id::Have | Id::Suggest | Id::AllowedFast => (4, 4),
            Id::Port => (2, 2),
            Id::Request | Id::Cancel | Id::RejectRequest => (12, 12),
            Id::Bitfield => (1, BITFIELD_BYTES_MAX),
            Id::Piece => (9, 8 + REQUEST_BYTES_MAX as usize),
            Id::Extended => (1, EXTENDED_MESSAGE_BYTES_MAX - 1),
        };
        // A request's block must ask for at least a byte.
        let body = |len: usize| {
            let mut body = vec![0u8; len];
            if len == 12 {
                body[11] = 1;
            }
            body
        };
        assert!(accepts(id as u8, &body(least)), "{id:?} at {least}");
        assert!(accepts(id as u8, &body(most)), "{id:?} at {most}");
        assert!(
            !accepts(id as u8, &body(most + 1)),
            "{id:?} at {}",
            most + 1
        );
        if least > 0 {
            assert!(!accepts(id as u8, &body(least - 1)), "{id:?} under {least}");
        }
    }
    // An id we do not know: up to the extended limit.
    assert!(accepts(200, &vec![0; EXTENDED_MESSAGE_BYTES_MAX - 1]));
    assert!(!accepts(200, &vec![0; EXTENDED_MESSAGE_BYTES_MAX]));
}

#[test]
fn requests_over_the_limit_are_refused_and_the_stream_can_go_on() {
    let request = |length: u32| {
        let block = Block::new(2, 0, length);
        framed(Id::Request as u8, bytemuck::bytes_of(&block))
    };
    let at_limit = request(REQUEST_BYTES_MAX);
    assert!(
        matches!(whole(&at_limit), Message::Request(block) if block.length.get() == REQUEST_BYTES_MAX)
    );
    let over = request(REQUEST_BYTES_MAX + 1);
    let error = decode(&over).unwrap_err();
    assert_eq!(
        error,
        DecodeError::RequestTooLong {
            block: Block::new(2, 0, REQUEST_BYTES_MAX + 1),
            len: 17
        }
    );
    assert_eq!(error.skip_bytes(), Some(over.len()));
    assert_eq!(
        error.to_string(),
        "request for 131073 bytes at 0 of piece 2 refused"
    );
    assert!(decode(&request(0)).is_err());
    // A block that ends past 2^32 within its piece.
    let wrapping = Block::new(0, u32::MAX - 9, 10);
    assert!(decode(&framed(6, bytemuck::bytes_of(&wrapping))).is_err());
    let last = Block::new(0, u32::MAX - 10, 10);
    assert!(decode(&framed(6, bytemuck::bytes_of(&last))).is_ok());
    // Cancels and rejects of such blocks name nothing: refused, no skipping.
    for id in [Id::Cancel, Id::RejectRequest] {
        let block = Block::new(2, 0, REQUEST_BYTES_MAX + 1);
        let error = decode(&framed(id as u8, bytemuck::bytes_of(&block))).unwrap_err();
        assert_eq!(
            (error, error.skip_bytes()),
            (DecodeError::BadBlock(id), None)
        );
    }
    // Piece data that ends past 2^32.
    let mut body = (u32::MAX - 1).to_be_bytes().to_vec();
    body.splice(0..0, [0, 0, 0, 0]);
    body.push(b'a');
    assert!(accepts(7, &body));
    body.push(b'b');
    assert_eq!(decode(&framed(7, &body)), Err(DecodeError::BadPiece));
}

#[test]
fn encoding_refuses_what_decoding_refuses() {
    let mut buf = vec![0u8; MESSAGE_BYTES_MAX + 16];
    let data = vec![1u8; REQUEST_BYTES_MAX as usize + 1];
    let header = PieceHeader {
        piece: U32::new(0),
        begin: U32::new(0),
    };
    let piece = Message::Piece {
        header: &header,
        data: &data,
    };
    assert!(matches!(
        piece.encode(&mut buf),
        Err(EncodeError::Refused(_))
    ));
    let block = Block::new(0, 0, REQUEST_BYTES_MAX + 1);
    assert!(Message::Request(&block).encode(&mut buf).is_err());
    assert_eq!(
        Message::Unknown {
            id: 4,
            payload: &[]
        }
        .encode(&mut buf),
        Err(EncodeError::KnownId(4))
    );
    assert_eq!(
        Message::Interested.encode(&mut [0u8; 4]),
        Err(EncodeError::BufferTooSmall)
    );
    // The piece header written in place matches the whole message's front.
    let data = [5u8; 100];
    let whole_piece = encoded(&Message::Piece {
        header: &PieceHeader {
            piece: U32::new(3),
            begin: U32::new(16384),
        },
        data: &data,
    });
    let mut front = [0u8; PIECE_HEADER_BYTES];
    assert_eq!(encode_piece_header(&mut front, 3, 16384, 100), Ok(13));
    assert_eq!(&whole_piece[..13], &front);
    assert!(encode_piece_header(&mut front, 3, 0, REQUEST_BYTES_MAX + 1).is_err());
    assert!(encode_piece_header(&mut front, 3, 0, 0).is_err());
}

#[test]
fn a_bitfield_fits_its_torrent_exactly() {
    // 10 pieces: two bytes, the last 6 bits spare.
    assert_eq!(check_bitfield(&[0xff, 0b1100_0000], 10), Ok(()));
    assert_eq!(
        check_bitfield(&[0xff, 0b1100_0001], 10),
        Err(DecodeError::BadBitfield)
    );
    assert!(check_bitfield(&[0xff], 10).is_err());
    assert!(check_bitfield(&[0xff, 0, 0], 10).is_err());
    assert_eq!(check_bitfield(&[0xff], 8), Ok(()));
    assert!(check_bitfield(&[], 0).is_err());
    let full = vec![0xff; BITFIELD_BYTES_MAX];
    assert_eq!(check_bitfield(&full, PIECES_MAX), Ok(()));
    assert!(check_bitfield(&full, PIECES_MAX + 1).is_err());
}

#[test]
fn needs_says_which_handshake_bit_a_message_requires() {
    for (message, _) in every_message() {
        let expected = match message.id() {
            Some(13..=17) => Needs::Fast,
            Some(20) => Needs::Extensions,
            _ => Needs::Nothing,
        };
        assert_eq!(message.needs(), expected, "{message:?}");
    }
}

#[test]
fn every_error_prints_on_one_line() {
    let errors = [
        DecodeError::NotBitTorrent,
        DecodeError::TooLong { length: 1 << 20 },
        DecodeError::BadLength { id: 4, length: 6 },
        DecodeError::RequestTooLong {
            block: Block::new(1, 2, 3),
            len: 17,
        },
        DecodeError::BadBlock(Id::Cancel),
        DecodeError::BadPiece,
        DecodeError::BadBitfield,
        DecodeError::BadExtendedHandshake("x"),
        DecodeError::BadMetadata("y"),
    ];
    for error in errors {
        let text = error.to_string();
        assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
    }
}

mod extensions {
    use super::*;

    /// BEP 10's example handshake: `{'m': {'LT_metadata': 1, 'ut_pex': 2}, 'p': 6881,
    /// 'v': 'µTorrent 1.2'}`, in canonical bencode.
    const BEP_10_EXAMPLE: &[u8] =
        b"d1:md11:LT_metadatai1e6:ut_pexi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e";

    #[test]
    fn the_bep_10_example_reads() {
        let handshake = decode_extended_handshake(BEP_10_EXAMPLE).unwrap();
        assert_eq!(handshake.message_id("LT_metadata"), Some(1));
        assert_eq!(handshake.message_id("ut_pex"), Some(2));
        assert_eq!(handshake.message_id(UT_METADATA), None);
        assert_eq!(handshake.listen_port, Some(6881));
        assert_eq!(handshake.client, Some("µTorrent 1.2".as_bytes()));
        assert_eq!(handshake.metadata_bytes, None);
        assert!(!handshake.upload_only);
    }

    #[test]
    fn ours_reads_back() {
        let ours = OurExtendedHandshake {
            metadata_bytes: Some(METADATA_BYTES_MAX),
            listen_port: Some(6881),
            request_queue: 250,
            udp_port: Some(7000),
        };
        let payload = encode_extended_handshake(&ours);
        let handshake = decode_extended_handshake(&payload).unwrap();
        assert_eq!(handshake.message_id(UT_METADATA), Some(OUR_UT_METADATA_ID));
        assert_eq!(handshake.metadata_bytes, Some(METADATA_BYTES_MAX));
        assert_eq!(handshake.listen_port, Some(6881));
        assert_eq!(handshake.request_queue, Some(250));
        assert_eq!(handshake.udp_port, Some(7000));
        assert!(handshake.client.unwrap().starts_with(b"torrent "));
    }

    #[test]
    fn metadata_size_is_accepted_at_the_limit_and_refused_past_it() {
        let with = |size: i64| format!("d13:metadata_sizei{size}ee").into_bytes();
        let at = with(i64::from(METADATA_BYTES_MAX));
        assert_eq!(
            decode_extended_handshake(&at).unwrap().metadata_bytes,
            Some(METADATA_BYTES_MAX)
        );
        for size in [i64::from(METADATA_BYTES_MAX) + 1, 0, -1] {
            assert!(decode_extended_handshake(&with(size)).is_err(), "{size}");
        }
    }

    #[test]
    fn odd_fields_are_dropped_and_a_bad_dictionary_refused() {
        let odd =
            b"d1:md7:ut_holei300e6:ut_pexi0ee1:pi70000e4:reqqi-1e11:upload_onlyi1e6:yourip3:abce";
        let handshake = decode_extended_handshake(odd).unwrap();
        assert_eq!(handshake.message_id("ut_pex"), None, "0 disables");
        assert_eq!(handshake.message_id("ut_hole"), None, "not a byte");
        assert_eq!(handshake.listen_port, None);
        assert_eq!(handshake.request_queue, None);
        assert_eq!(handshake.your_ip, None);
        assert!(handshake.upload_only);
        let ip = b"d6:yourip4:\x7f\x00\x00\x01e";
        assert_eq!(
            decode_extended_handshake(ip).unwrap().your_ip,
            Some("127.0.0.1".parse().unwrap())
        );
        for bad in [&b"le"[..], b"d1:mi1ee", b"d1:b0:1:a0:e", b"", b"d"] {
            assert!(decode_extended_handshake(bad).is_err(), "{bad:?}");
        }
    }

    fn metadata_round_trip(message: Metadata<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; EXTENDED_MESSAGE_BYTES_MAX];
        let len = message.encode(&mut buf).unwrap();
        assert_eq!(decode_metadata(&buf[..len]), Ok(message));
        buf.truncate(len);
        buf
    }

    #[test]
    fn the_bep_9_examples_read_and_round_trip() {
        // BEP 9's examples, as it writes them.
        assert_eq!(
            metadata_round_trip(Metadata::Request { piece: 0 }),
            b"d8:msg_typei0e5:piecei0ee"
        );
        assert_eq!(
            metadata_round_trip(Metadata::Reject { piece: 0 }),
            b"d8:msg_typei2e5:piecei0ee"
        );
        let data = vec![b'x'; 16384];
        let bytes = metadata_round_trip(Metadata::Data {
            piece: 0,
            total_bytes: 34256,
            data: &data,
        });
        assert!(bytes.starts_with(b"d8:msg_typei1e5:piecei0e10:total_sizei34256ee"));
        // The last piece is shorter: 34256 - 2 x 16384.
        let last = vec![b'y'; 34256 - 2 * 16384];
        metadata_round_trip(Metadata::Data {
            piece: 2,
            total_bytes: 34256,
            data: &last,
        });
    }

    #[test]
    fn metadata_limits_are_accepted_at_the_limit_and_refused_past_it() {
        let data = |piece: u32, total: u32, len: usize| {
            let mut bytes =
                format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{total}ee").into_bytes();
            bytes.extend(std::iter::repeat_n(0u8, len));
            bytes
        };
        let last_piece = METADATA_PIECES_MAX - 1;
        assert!(decode_metadata(&data(last_piece, METADATA_BYTES_MAX, 16384)).is_ok());
        assert!(decode_metadata(&data(last_piece + 1, METADATA_BYTES_MAX, 16384)).is_err());
        assert!(decode_metadata(&data(0, METADATA_BYTES_MAX + 1, 16384)).is_err());
        // A piece one byte long or short, or past the end of the dictionary.
        assert!(decode_metadata(&data(0, 100, 100)).is_ok());
        assert!(decode_metadata(&data(0, 100, 101)).is_err());
        assert!(decode_metadata(&data(0, 100, 99)).is_err());
        assert!(decode_metadata(&data(1, 16384, 0)).is_err());
        // The dictionary must end within METADATA_DICT_BYTES_MAX bytes.
        let padded = |pad: usize| {
            let value = "x".repeat(pad);
            format!("d1:a{pad}:{value}8:msg_typei0e5:piecei0ee").into_bytes()
        };
        let at = (0..METADATA_DICT_BYTES_MAX)
            .find(|pad| padded(*pad).len() == METADATA_DICT_BYTES_MAX)
            .unwrap();
        assert!(decode_metadata(&padded(at)).is_ok());
        assert!(decode_metadata(&padded(at + 1)).is_err());
        // Unknown types, trailing bytes after a request, not a dictionary.
        assert!(decode_metadata(b"d8:msg_typei3e5:piecei0ee").is_err());
        assert!(decode_metadata(b"d8:msg_typei0e5:piecei0eex").is_err());
        assert!(decode_metadata(b"i0e").is_err());
        assert!(decode_metadata(b"").is_err());
    }
}
