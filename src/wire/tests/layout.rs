//! The exact layout (literal byte fixtures), big-endian fields, and round trips of every kind.

use super::*;

#[test]
fn register_bytes() {
    let expected = [
        b'T', b'R', b'N', b'T', 3, 0x01, 0, 0, // header
        0, 0, 0, 7, // node id
        1, 2, 3, 4, 5, 6, 7, 8, // token
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // cookie
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, // holdings digest
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7, // advertised address
        0x1a, 0xe1, // advertised port (6881)
        0, 0, // reserved
        0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, // advertise cookie
    ];
    assert_eq!(encoded(&Message::Register(&REGISTER)), expected);
    assert_eq!(decode(&expected), Ok(Message::Register(&REGISTER)));
    assert_eq!(
        REGISTER.advertise(),
        Some("192.0.2.7:6881".parse().unwrap())
    );
    // All zero, or port zero: no advertised address (the source address is listed).
    let mut plain = REGISTER;
    plain.advertise_port = U16::new(0);
    assert_eq!(plain.advertise(), None);
    plain.advertise_ip = [0; 16];
    plain.advertise_port = U16::new(6881);
    assert_eq!(plain.advertise(), None);
}

#[test]
fn registered_and_challenge_bytes() {
    let expected = [
        b'T', b'R', b'N', b'T', 3, 0x02, 0, 0, // header
        0, 0, 0, 7, // node id
        1, 2, 3, 4, 5, 6, 7, 8, // token
        0, 0, 0x4e, 0x20, // heartbeat interval, ms
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, // holdings digest
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7, // listed address
        0x1a, 0xe1, // listed port
        0, 0, // reserved
    ];
    assert_eq!(encoded(&Message::Registered(&REGISTERED)), expected);
    assert_eq!(decode(&expected), Ok(Message::Registered(&REGISTERED)));
    assert_eq!(REGISTERED.listed(), "192.0.2.7:6881".parse().unwrap());
    let expected = [
        b'T', b'R', b'N', b'T', 3, 0x0b, 0, 0, // header
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // cookie
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7, // the address it is for
        0x1a, 0xe1, // its port
        0, 0, // reserved
    ];
    assert_eq!(encoded(&Message::Challenge(&CHALLENGE)), expected);
    assert_eq!(decode(&expected), Ok(Message::Challenge(&CHALLENGE)));
    assert_eq!(CHALLENGE.addr(), "192.0.2.7:6881".parse().unwrap());
}

#[test]
fn holdings_digest_is_order_free_and_incremental() {
    let (a, b) = ([1u8; HASH_BYTES], [2u8; HASH_BYTES]);
    assert_eq!(holdings_digest([]), 0);
    let both = holdings_digest([(&a, 3), (&b, 4)]);
    assert_eq!(both, holdings_digest([(&b, 4), (&a, 3)]));
    assert_eq!(
        both ^ holding_digest_term(&b, 4),
        holdings_digest([(&a, 3)])
    );
    assert_ne!(holdings_digest([(&a, 3)]), holdings_digest([(&a, 4)]));
    assert_ne!(holdings_digest([(&a, 3)]), holdings_digest([(&b, 3)]));
}

#[test]
fn exit_ack_and_welcome_bytes() {
    assert_eq!(
        encoded(&Message::ExitAck(&EXIT_ACK)),
        *b"TRNT\x03\x09\0\0\0\0\0\x07"
    );
    assert_eq!(
        encoded(&Message::Welcome(&WELCOME)),
        *b"TRNT\x03\x10\0\0\x11\x22\x33\x44\x55\x66\x77\x88"
    );
}

#[test]
fn refused_bytes() {
    let expected = *b"TRNT\x03\x0a\0\0\x03\0\0\x04";
    assert_eq!(encoded(&Message::Refused(REFUSED)), expected);
    let Ok(Message::Refused(refused)) = decode(&expected) else {
        panic!("not a Refused")
    };
    assert_eq!(refused.request_kind, Kind::Announce as u8);
    assert_eq!(refused.reason, RefusedReason::Conflict);
}

#[test]
fn reject_bytes() {
    let mut expected = b"TRNT\x03\x17\0\0".to_vec();
    expected.extend_from_slice(&INFO_HASH);
    expected.extend_from_slice(b"\0\0\0\x04\0\x02\0\0");
    assert_eq!(encoded(&Message::Reject(REJECT)), expected);
    let Ok(Message::Reject(rejection)) = decode(&expected) else {
        panic!("not a Reject")
    };
    assert_eq!(rejection.info_hash, INFO_HASH);
    assert_eq!(rejection.chunk, 4);
    assert_eq!(rejection.reason, RejectReason::MissingChunk);
}

#[test]
fn lookup_bytes_with_name_tail() {
    let expected = *b"TRNT\x03\x05\0\0\0\0\0\x07\x01\x02\x03\x04\x05\x06\x07\x08\0\0\0\0file_A.txt";
    assert_eq!(
        encoded(&Message::Lookup {
            fixed: &LOOKUP,
            credits: &[],
            name: "file_A.txt"
        }),
        expected
    );
    assert_eq!(
        decode(&expected),
        Ok(Message::Lookup {
            fixed: &LOOKUP,
            credits: &[],
            name: "file_A.txt"
        })
    );
}

#[test]
fn have_map_bytes_with_bitmap_tail() {
    let mut expected = header(Kind::HaveMap);
    expected.extend_from_slice(&INFO_HASH);
    expected.extend_from_slice(&[
        0,
        0,
        0,
        9,
        0,
        0,
        0,
        10,
        0,
        0,
        0,
        0,
        0b1010_0000,
        0b1100_0000,
    ]);
    assert_eq!(
        encoded(&Message::HaveMap {
            fixed: &HAVE_MAP,
            bitmap: &BITMAP
        }),
        expected
    );
    let Ok(Message::HaveMap { fixed, bitmap }) = decode(&expected) else {
        panic!("not a HaveMap")
    };
    assert_eq!(
        (fixed.node_id.get(), fixed.chunk_count.get(), bitmap),
        (9, 10, &BITMAP[..])
    );
}

#[test]
fn piece_bytes_with_data_tail() {
    let mut expected = header(Kind::Piece);
    expected.extend_from_slice(&INFO_HASH);
    expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0x05, 0x78]);
    expected.extend_from_slice(b"some piece data");
    let piece = Message::Piece {
        fixed: &PIECE,
        data: b"some piece data",
    };
    assert_eq!(encoded(&piece), expected);
    assert_eq!(decode(&expected), Ok(piece));
}

#[test]
fn stamped_piece_bytes_with_data_tail() {
    let mut expected = header(Kind::StampedPiece);
    expected.extend_from_slice(&INFO_HASH);
    expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0x05, 0x78, 1, 2, 3, 4]);
    expected.extend_from_slice(b"some piece data");
    let piece = Message::StampedPiece {
        fixed: &STAMPED_PIECE,
        data: b"some piece data",
    };
    assert_eq!(encoded(&piece), expected);
    assert_eq!(decode(&expected), Ok(piece));
}

#[test]
fn paced_piece_request_is_a_piece_request_and_a_pace() {
    let mut expected = encoded(&Message::PieceRequest(&PIECE_REQUEST));
    expected[5] = Kind::PacedPieceRequest as u8;
    expected.extend_from_slice(&[0, 0, 0x30, 0]);
    let paced = Message::PacedPieceRequest(&PACED_PIECE_REQUEST);
    assert_eq!(encoded(&paced), expected);
    assert_eq!(decode(&expected), Ok(paced));
    // A pace of 0 would be an unpaced request, which has its own kind.
    let mut zero = expected.clone();
    let len = zero.len();
    zero[len - 4..].fill(0);
    assert_eq!(
        refused(&expected, &zero),
        DecodeError::BadShape(Kind::PacedPieceRequest)
    );
    // The same bounds as an unpaced request: here, pieces smaller than PIECE_BYTES_MIN.
    let small = PacedPieceRequest {
        request: PieceRequest {
            piece_bytes: U32::new(PIECE_BYTES_MIN as u32 - 1),
            ..PIECE_REQUEST
        },
        ..PACED_PIECE_REQUEST
    };
    assert_eq!(
        refused(&expected, &encoded(&Message::PacedPieceRequest(&small))),
        DecodeError::BadShape(Kind::PacedPieceRequest)
    );
}

#[test]
fn big_endian_fields() {
    assert_eq!(U16::new(0x0102).0, [1, 2]);
    assert_eq!(U32::new(0x0102_0304).0, [1, 2, 3, 4]);
    assert_eq!(U64::new(0x0102_0304_0506_0708).0, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(U32([0xde, 0xad, 0xbe, 0xef]).get(), 0xdead_beef);
    assert_eq!(format!("{:?}", U16::new(513)), "513");
}

// ---------------------------------------------------------------- round trips

#[test]
fn every_kind_round_trips() {
    let samples = samples();
    for (message, kind) in samples.iter().zip(Kind::ALL) {
        assert_eq!(message.kind(), kind);
        let bytes = encoded(message);
        assert_eq!(&bytes[..4], b"TRNT");
        assert_eq!(bytes[4], VERSION);
        assert_eq!(bytes[5], kind as u8);
        assert_eq!(&bytes[6..8], &[0, 0]);
        assert_eq!(decode(&bytes), Ok(*message), "{kind:?}");
        // Lengths are conserved: re-encoding the decoded message gives the same bytes.
        assert_eq!(encoded(&decode(&bytes).unwrap()), bytes, "{kind:?}");
    }
}

#[test]
fn kind_bytes_round_trip() {
    for kind in Kind::ALL {
        assert_eq!(Kind::from_repr(kind as u8), Some(kind));
    }
    let known = (0..=u8::MAX)
        .filter(|byte| Kind::from_repr(*byte).is_some())
        .count();
    assert_eq!(known, Kind::ALL.len());
}

#[test]
fn largest_datagrams_round_trip() {
    let data = vec![0x5a; PIECE_BYTES_MAX];
    let piece = Message::Piece {
        fixed: &PIECE,
        data: &data,
    };
    let bytes = encoded(&piece);
    assert_eq!(bytes.len(), DATAGRAM_BYTES_MAX);
    assert_eq!(decode(&bytes), Ok(piece));

    let hashes = vec![[7u8; HASH_BYTES]; MANIFEST_HASHES_PER_PART_MAX];
    let fixed = ManifestPart {
        first_chunk: U32::new(0),
        hash_count: U16::new(MANIFEST_HASHES_PER_PART_MAX as u16),
        file_bytes: U64::new(u64::from(CHUNK_BYTES) * MANIFEST_HASHES_PER_PART_MAX as u64),
        ..MANIFEST_PART
    };
    let name = "n".repeat(NAME_BYTES_MAX);
    let part = Message::ManifestPart {
        fixed: &fixed,
        hashes: &hashes,
        name: &name,
    };
    let bytes = encoded(&part);
    assert!(bytes.len() <= DATAGRAM_BYTES_MAX);
    assert_eq!(decode(&bytes), Ok(part));
}

#[test]
fn encode_refuses_a_small_buffer() {
    let mut buf = [0u8; 63];
    assert_eq!(
        Message::Register(&REGISTER).encode(&mut buf),
        Err(EncodeError::TooLong)
    );
    let mut buf = [0u8; 64];
    assert_eq!(Message::Register(&REGISTER).encode(&mut buf), Ok(64));
    let data = vec![0; PIECE_BYTES_MAX + 1];
    let mut buf = vec![0u8; 2 * DATAGRAM_BYTES_MAX];
    let piece = Message::Piece {
        fixed: &PIECE,
        data: &data,
    };
    assert_eq!(piece.encode(&mut buf), Err(EncodeError::TooLong));
}

// ---------------------------------------------------------------- one test per refusal
