//! Unit tests of the wire format: literal byte fixtures for the exact layout, a round trip
//! for every kind, and one test per [`DecodeError`] variant (each refusal checked against
//! the valid datagram it was made from, so a test cannot pass by refusing everything).

use super::*;

const AUTH: NodeAuth = NodeAuth {
    node_id: U32::new(7),
    token: U64::new(0x0102_0304_0506_0708),
};
const INFO_HASH: Hash = [0xab; HASH_BYTES];
const CHUNK_BYTES: u32 = CHUNK_BYTES_MIN;

static REGISTER: Register = Register {
    auth: AUTH,
    reserved: [0; 4],
};
static REGISTERED: Registered = Registered {
    auth: AUTH,
    heartbeat_interval_ms: U32::new(20_000),
};
static ANNOUNCE: Announce = Announce {
    auth: AUTH,
    info_hash: INFO_HASH,
    file_bytes: U64::new(100_000),
    chunk_bytes: U32::new(CHUNK_BYTES),
    chunks_held: U32::new(7),
};
static ANNOUNCED: Announced = Announced {
    info_hash: INFO_HASH,
    chunks_held: U32::new(7),
};
static LOOKUP: Lookup = Lookup { auth: AUTH };
static VERSIONS: [VersionRecord; 2] = [
    VersionRecord {
        info_hash: INFO_HASH,
        file_bytes: U64::new(100_000),
        chunk_bytes: U32::new(CHUNK_BYTES),
        holder_count: U32::new(2),
    },
    VersionRecord {
        info_hash: [0xcd; HASH_BYTES],
        file_bytes: U64::new(0),
        chunk_bytes: U32::new(CHUNK_BYTES_MAX),
        holder_count: U32::new(1),
    },
];
static HOLDERS: [HolderRecord; 3] = [
    holder(1, 0, [127, 0, 0, 1]),
    holder(2, 0, [10, 0, 0, 2]),
    holder(3, 1, [192, 168, 1, 3]),
];
static CREDIT: Credit = Credit {
    auth: AUTH,
    from_node: U32::new(3),
    chunks: U32::new(2),
    bytes: U64::new(2 * CHUNK_BYTES as u64),
    info_hash: INFO_HASH,
};
static EXIT: Exit = Exit { auth: AUTH };
static EXIT_ACK: ExitAck = ExitAck {
    node_id: U32::new(7),
};
static REFUSED: Refused = Refused {
    request_kind: Kind::Announce as u8,
    reserved: 0,
    reason: U16::new(RefusedReason::Conflict as u16),
};
static WELCOME: Welcome = Welcome {
    cookie: U64::new(0x1122_3344_5566_7788),
};
const ASK: PeerAsk = PeerAsk {
    cookie: U64::new(0x1122_3344_5566_7788),
    node_id: U32::new(9),
    info_hash: INFO_HASH,
};
static HAVE_REQUEST: HaveRequest = ASK;
static HAVE_MAP: HaveMap = HaveMap {
    info_hash: INFO_HASH,
    node_id: U32::new(9),
    chunk_count: U32::new(10),
};
static BITMAP: [u8; 2] = [0b1010_0000, 0b1100_0000];
static MANIFEST_REQUEST: ManifestRequest = ManifestRequest {
    ask: ASK,
    first_chunk: U32::new(2),
};
static MANIFEST_PART: ManifestPart = ManifestPart {
    info_hash: INFO_HASH,
    file_bytes: U64::new(5 * CHUNK_BYTES as u64),
    chunk_bytes: U32::new(CHUNK_BYTES),
    first_chunk: U32::new(2),
    hash_count: U16::new(3),
    reserved: [0; 2],
};
static HASHES: [Hash; 3] = [[1; HASH_BYTES], [2; HASH_BYTES], [3; HASH_BYTES]];
static PIECE_REQUEST: PieceRequest = PieceRequest {
    ask: ASK,
    chunk: U32::new(1),
    offset: U32::new(0),
    length: U32::new(CHUNK_BYTES),
    piece_bytes: U32::new(1400),
};
static PIECE: Piece = Piece {
    info_hash: INFO_HASH,
    chunk: U32::new(1),
    offset: U32::new(1400),
};
static REJECT: Reject = Reject {
    info_hash: INFO_HASH,
    chunk: U32::new(4),
    reason: U16::new(RejectReason::MissingChunk as u16),
    reserved: [0; 2],
};

const fn holder(node_id: u32, version: u8, ip: [u8; 4]) -> HolderRecord {
    let [a, b, c, d] = ip;
    HolderRecord {
        node_id: U32::new(node_id),
        version,
        reserved: 0,
        port: U16::new(6881),
        ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d],
        upload_credit_bytes: U64::new(1_000 * node_id as u64),
        chunks_held: U32::new(7),
    }
}

/// One valid message of every kind, in [`Kind::ALL`] order.
fn samples() -> [Message<'static>; 18] {
    [
        Message::Register(&REGISTER),
        Message::Registered(&REGISTERED),
        Message::Announce {
            fixed: &ANNOUNCE,
            name: "file_A.txt",
        },
        Message::Announced(&ANNOUNCED),
        Message::Lookup {
            fixed: &LOOKUP,
            name: "file_A.txt",
        },
        Message::LookupReply {
            versions: &VERSIONS,
            holders: &HOLDERS,
            name: "file_A.txt",
        },
        Message::Credit(&CREDIT),
        Message::Exit(&EXIT),
        Message::ExitAck(&EXIT_ACK),
        Message::Refused(&REFUSED),
        Message::Welcome(&WELCOME),
        Message::HaveRequest(&HAVE_REQUEST),
        Message::HaveMap {
            fixed: &HAVE_MAP,
            bitmap: &BITMAP,
        },
        Message::ManifestRequest(&MANIFEST_REQUEST),
        Message::ManifestPart {
            fixed: &MANIFEST_PART,
            hashes: &HASHES,
            name: "file_A.txt",
        },
        Message::PieceRequest(&PIECE_REQUEST),
        Message::Piece {
            fixed: &PIECE,
            data: b"some piece data",
        },
        Message::Reject(&REJECT),
    ]
}

fn encoded(message: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    let len = message.encode(&mut buf).expect("sample fits in a datagram");
    buf.truncate(len);
    buf
}

/// Decodes `bytes`, first checking that `valid` (the datagram it was derived from) decodes.
fn refused(valid: &[u8], bytes: &[u8]) -> DecodeError {
    assert!(decode(valid).is_ok(), "the unaltered datagram must decode");
    decode(bytes).expect_err("the altered datagram must be refused")
}

fn header(kind: Kind) -> Vec<u8> {
    vec![b'T', b'R', b'N', b'T', 1, kind as u8, 0, 0]
}

fn with_name(fixed: &[u8], name: &[u8]) -> Vec<u8> {
    [fixed, name].concat()
}

// ---------------------------------------------------------------- literal fixtures

#[test]
fn register_bytes() {
    let expected = [
        b'T', b'R', b'N', b'T', 1, 0x01, 0, 0, // header
        0, 0, 0, 7, // node id
        1, 2, 3, 4, 5, 6, 7, 8, // token
        0, 0, 0, 0, // reserved
    ];
    assert_eq!(encoded(&Message::Register(&REGISTER)), expected);
    assert_eq!(decode(&expected), Ok(Message::Register(&REGISTER)));
}

#[test]
fn exit_ack_and_welcome_bytes() {
    assert_eq!(
        encoded(&Message::ExitAck(&EXIT_ACK)),
        *b"TRNT\x01\x09\0\0\0\0\0\x07"
    );
    assert_eq!(
        encoded(&Message::Welcome(&WELCOME)),
        *b"TRNT\x01\x10\0\0\x11\x22\x33\x44\x55\x66\x77\x88"
    );
}

#[test]
fn refused_bytes() {
    let expected = *b"TRNT\x01\x0a\0\0\x03\0\0\x04";
    assert_eq!(encoded(&Message::Refused(&REFUSED)), expected);
    let Ok(Message::Refused(refused)) = decode(&expected) else {
        panic!("not a Refused")
    };
    assert_eq!(refused.request_kind, Kind::Announce as u8);
    assert_eq!(
        RefusedReason::from_u16(refused.reason.get()),
        Some(RefusedReason::Conflict)
    );
}

#[test]
fn lookup_bytes_with_name_tail() {
    let expected = *b"TRNT\x01\x05\0\0\0\0\0\x07\x01\x02\x03\x04\x05\x06\x07\x08file_A.txt";
    assert_eq!(
        encoded(&Message::Lookup {
            fixed: &LOOKUP,
            name: "file_A.txt"
        }),
        expected
    );
    assert_eq!(
        decode(&expected),
        Ok(Message::Lookup {
            fixed: &LOOKUP,
            name: "file_A.txt"
        })
    );
}

#[test]
fn have_map_bytes_with_bitmap_tail() {
    let mut expected = header(Kind::HaveMap);
    expected.extend_from_slice(&INFO_HASH);
    expected.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 10, 0b1010_0000, 0b1100_0000]);
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
        assert_eq!(Kind::from_u8(kind as u8), Some(kind));
    }
    let known = (0..=u8::MAX)
        .filter(|byte| Kind::from_u8(*byte).is_some())
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
    let mut buf = [0u8; 23];
    assert_eq!(
        Message::Register(&REGISTER).encode(&mut buf),
        Err(EncodeError::TooLong)
    );
    let mut buf = [0u8; 24];
    assert_eq!(Message::Register(&REGISTER).encode(&mut buf), Ok(24));
    let data = vec![0; PIECE_BYTES_MAX + 1];
    let mut buf = vec![0u8; 2 * DATAGRAM_BYTES_MAX];
    let piece = Message::Piece {
        fixed: &PIECE,
        data: &data,
    };
    assert_eq!(piece.encode(&mut buf), Err(EncodeError::TooLong));
}

// ---------------------------------------------------------------- one test per refusal

#[test]
fn truncated() {
    let valid = encoded(&Message::ExitAck(&EXIT_ACK));
    for len in 0..size_of::<Header>() {
        assert_eq!(refused(&valid, &valid[..len]), DecodeError::Truncated);
    }
}

#[test]
fn bad_magic() {
    let valid = encoded(&Message::ExitAck(&EXIT_ACK));
    for at in 0..4 {
        let mut bytes = valid.clone();
        bytes[at] ^= 0x20;
        assert_eq!(refused(&valid, &bytes), DecodeError::BadMagic);
    }
}

#[test]
fn bad_version() {
    let valid = encoded(&Message::ExitAck(&EXIT_ACK));
    for version in [0, 2, 0xff] {
        let mut bytes = valid.clone();
        bytes[4] = version;
        assert_eq!(refused(&valid, &bytes), DecodeError::BadVersion(version));
    }
}

#[test]
fn unknown_kind() {
    let valid = encoded(&Message::ExitAck(&EXIT_ACK));
    for kind in [0x00, 0x0b, 0x0f, 0x18, 0xff] {
        let mut bytes = valid.clone();
        bytes[5] = kind;
        assert_eq!(refused(&valid, &bytes), DecodeError::UnknownKind(kind));
    }
}

#[test]
fn reserved_not_zero() {
    for message in samples() {
        let valid = encoded(&message);
        for at in [6, 7] {
            let mut bytes = valid.clone();
            bytes[at] = 1;
            assert_eq!(
                refused(&valid, &bytes),
                DecodeError::ReservedNotZero,
                "{message:?}"
            );
        }
    }
    let mut altered: Vec<Vec<u8>> = Vec::new();
    let register = Register {
        reserved: [0, 0, 1, 0],
        ..REGISTER
    };
    altered.push(encoded(&Message::Register(&register)));
    let mut reply = encoded(&samples()[5]);
    reply[8 + 1] = 1; // LookupReply.reserved
    altered.push(reply);
    let mut holders = HOLDERS;
    holders[2].reserved = 0x80;
    let name = "file_A.txt";
    altered.push(encoded(&Message::LookupReply {
        versions: &VERSIONS,
        holders: &holders,
        name,
    }));
    let refused_ = Refused {
        reserved: 1,
        ..REFUSED
    };
    altered.push(encoded(&Message::Refused(&refused_)));
    let part = ManifestPart {
        reserved: [0, 1],
        ..MANIFEST_PART
    };
    altered.push(encoded(&Message::ManifestPart {
        fixed: &part,
        hashes: &HASHES,
        name,
    }));
    let reject = Reject {
        reserved: [1, 0],
        ..REJECT
    };
    altered.push(encoded(&Message::Reject(&reject)));
    for bytes in altered {
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::ReservedNotZero),
            "{bytes:?}"
        );
    }
}

#[test]
fn short_body() {
    // Every fixed body is at least 4 bytes, so 0 to 3 bytes of body are always short.
    for message in samples() {
        let valid = encoded(&message);
        for body in 0..4 {
            let short = &valid[..size_of::<Header>() + body];
            assert_eq!(
                refused(&valid, short),
                DecodeError::ShortBody(message.kind())
            );
        }
    }
    let valid = encoded(&Message::Credit(&CREDIT));
    let short = &valid[..valid.len() - 1];
    assert_eq!(refused(&valid, short), DecodeError::ShortBody(Kind::Credit));
}

#[test]
fn length_mismatch_of_fixed_kinds() {
    for message in samples() {
        let kind = message.kind();
        let has_tail = matches!(
            kind,
            Kind::Announce
                | Kind::Lookup
                | Kind::LookupReply
                | Kind::HaveMap
                | Kind::ManifestPart
                | Kind::Piece
        );
        if has_tail {
            continue;
        }
        let valid = encoded(&message);
        let mut long = valid.clone();
        long.push(0);
        assert_eq!(refused(&valid, &long), DecodeError::LengthMismatch(kind));
    }
}

#[test]
fn length_mismatch_of_tails() {
    // Have-bitmap one byte short, and one byte long.
    let valid = encoded(&Message::HaveMap {
        fixed: &HAVE_MAP,
        bitmap: &BITMAP,
    });
    let short = &valid[..valid.len() - 1];
    assert_eq!(
        refused(&valid, short),
        DecodeError::LengthMismatch(Kind::HaveMap)
    );
    let long = [&valid[..], &[0]].concat();
    assert_eq!(
        refused(&valid, &long),
        DecodeError::LengthMismatch(Kind::HaveMap)
    );

    // A piece with no data.
    let valid = encoded(&Message::Piece {
        fixed: &PIECE,
        data: b"x",
    });
    let empty = &valid[..valid.len() - 1];
    assert_eq!(
        refused(&valid, empty),
        DecodeError::LengthMismatch(Kind::Piece)
    );

    // Longer than any datagram we send (a UDP socket over IPv6 can deliver 65,527 bytes).
    let data = vec![1; PIECE_BYTES_MAX];
    let valid = encoded(&Message::Piece {
        fixed: &PIECE,
        data: &data,
    });
    let long = [&valid[..], &[1]].concat();
    assert_eq!(
        refused(&valid, &long),
        DecodeError::LengthMismatch(Kind::Piece)
    );
}

#[test]
fn counts_that_lie_about_the_length() {
    let name = "f";
    let reply = Message::LookupReply {
        versions: &VERSIONS,
        holders: &HOLDERS,
        name,
    };
    let valid = encoded(&reply);
    // One holder more than the bytes hold.
    let mut bytes = valid.clone();
    bytes[8 + 3] = 4;
    assert_eq!(
        refused(&valid, &bytes),
        DecodeError::LengthMismatch(Kind::LookupReply)
    );
    // Three versions, leaving too few bytes for the holders.
    let mut bytes = valid.clone();
    bytes[8] = 3;
    assert_eq!(
        refused(&valid, &bytes),
        DecodeError::LengthMismatch(Kind::LookupReply)
    );

    // One hash more than the bytes hold.
    let part = Message::ManifestPart {
        fixed: &MANIFEST_PART,
        hashes: &HASHES[..2],
        name,
    };
    let fixed = ManifestPart {
        hash_count: U16::new(2),
        ..MANIFEST_PART
    };
    let valid = encoded(&Message::ManifestPart {
        fixed: &fixed,
        hashes: &HASHES[..2],
        name,
    });
    assert_eq!(
        refused(&valid, &encoded(&part)),
        DecodeError::LengthMismatch(Kind::ManifestPart)
    );
}

#[test]
fn count_over_limit() {
    let versions = [VERSIONS[0]; LOOKUP_VERSIONS_MAX + 1];
    let name = "f";
    let too_many = encoded(&Message::LookupReply {
        versions: &versions,
        holders: &[],
        name,
    });
    let valid = encoded(&Message::LookupReply {
        versions: &versions[1..],
        holders: &[],
        name,
    });
    assert_eq!(
        refused(&valid, &too_many),
        DecodeError::CountOverLimit(Kind::LookupReply)
    );

    let holders = [HOLDERS[0]; LOOKUP_HOLDERS_MAX + 1];
    let too_many = encoded(&Message::LookupReply {
        versions: &VERSIONS,
        holders: &holders,
        name,
    });
    let valid = encoded(&Message::LookupReply {
        versions: &VERSIONS,
        holders: &holders[1..],
        name,
    });
    assert_eq!(
        refused(&valid, &too_many),
        DecodeError::CountOverLimit(Kind::LookupReply)
    );

    // The count alone is enough: the bitmap it would need cannot even be present.
    let mut bytes = encoded(&Message::HaveMap {
        fixed: &HAVE_MAP,
        bitmap: &BITMAP,
    });
    let valid = bytes.clone();
    bytes[8 + 24..8 + 28].copy_from_slice(&(CHUNKS_MAX + 1).to_be_bytes());
    assert_eq!(
        refused(&valid, &bytes),
        DecodeError::CountOverLimit(Kind::HaveMap)
    );

    let fixed = ManifestPart {
        hash_count: U16::new(MANIFEST_HASHES_PER_PART_MAX as u16 + 1),
        ..MANIFEST_PART
    };
    let bytes = encoded(&Message::ManifestPart {
        fixed: &fixed,
        hashes: &HASHES,
        name,
    });
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::CountOverLimit(Kind::ManifestPart))
    );
}

#[test]
fn bad_names() {
    let long = vec![b'n'; NAME_BYTES_MAX + 1];
    let bad: [&[u8]; 12] = [
        b"",
        b"a/b",
        b"/etc",
        b"a\\b",
        b"..",
        b"a..b",
        b"a\0b",
        b".hidden",
        b"tab\there",
        b"\xff\xfe",
        b"caf\xc3",
        &long,
    ];
    let lookup = bytemuck::bytes_of(&LOOKUP);
    let valid = with_name(&[&header(Kind::Lookup)[..], lookup].concat(), b"file_A.txt");
    for name in bad {
        assert!(name_problem(name).is_some(), "{name:?}");
        assert_eq!(check_name(name), Err(DecodeError::BadName), "{name:?}");
        let bytes = with_name(&[&header(Kind::Lookup)[..], lookup].concat(), name);
        assert_eq!(refused(&valid, &bytes), DecodeError::BadName, "{name:?}");
        let announce = [&header(Kind::Announce)[..], bytemuck::bytes_of(&ANNOUNCE)].concat();
        assert_eq!(
            decode(&with_name(&announce, name)),
            Err(DecodeError::BadName)
        );
    }
    let longest = "n".repeat(NAME_BYTES_MAX);
    for good in [
        "file_A.txt",
        "a.b.c",
        "имя файла",
        "with space",
        "x",
        &longest,
    ] {
        assert_eq!(check_name(good.as_bytes()), Ok(good), "{good:?}");
    }
    assert_eq!(
        name_problem(b"a/b"),
        Some("the name contains a path separator")
    );
}

#[test]
fn bad_names_in_the_other_tails() {
    let name = "a/b";
    for message in [
        Message::LookupReply {
            versions: &VERSIONS,
            holders: &HOLDERS,
            name,
        },
        Message::ManifestPart {
            fixed: &MANIFEST_PART,
            hashes: &HASHES,
            name,
        },
    ] {
        assert_eq!(
            decode(&encoded(&message)),
            Err(DecodeError::BadName),
            "{message:?}"
        );
    }
}

#[test]
fn bad_shape_of_announce() {
    let valid = encoded(&samples()[2]);
    let name = "file_A.txt";
    let chunk_sizes = [
        20_000,
        CHUNK_BYTES_MIN / 2,
        CHUNK_BYTES_MAX * 2,
        0,
        u32::MAX,
    ];
    let mut bad: Vec<Announce> = chunk_sizes
        .map(|size| Announce {
            chunk_bytes: U32::new(size),
            ..ANNOUNCE
        })
        .to_vec();
    // One chunk too many.
    let file_bytes = u64::from(CHUNKS_MAX) * u64::from(CHUNK_BYTES) + 1;
    bad.push(Announce {
        file_bytes: U64::new(file_bytes),
        chunks_held: U32::new(0),
        ..ANNOUNCE
    });
    bad.push(Announce {
        file_bytes: U64::new(u64::MAX),
        chunks_held: U32::new(0),
        ..ANNOUNCE
    });
    // Holding more chunks than the file has.
    bad.push(Announce {
        chunks_held: U32::new(8),
        ..ANNOUNCE
    });
    for fixed in &bad {
        let bytes = encoded(&Message::Announce { fixed, name });
        assert_eq!(
            refused(&valid, &bytes),
            DecodeError::BadShape(Kind::Announce),
            "{fixed:?}"
        );
    }
    // The edges that are allowed.
    let file_bytes = u64::from(CHUNKS_MAX) * u64::from(CHUNK_BYTES);
    let largest = Announce {
        file_bytes: U64::new(file_bytes),
        chunks_held: U32::new(CHUNKS_MAX),
        ..ANNOUNCE
    };
    let empty = Announce {
        file_bytes: U64::new(0),
        chunks_held: U32::new(0),
        ..ANNOUNCE
    };
    for fixed in [&largest, &empty] {
        assert!(
            decode(&encoded(&Message::Announce { fixed, name })).is_ok(),
            "{fixed:?}"
        );
    }
}

#[test]
fn bad_shape_of_lookup_reply() {
    let name = "file_A.txt";
    let mut versions = VERSIONS;
    versions[1].chunk_bytes = U32::new(CHUNK_BYTES + 1);
    let bytes = encoded(&Message::LookupReply {
        versions: &versions,
        holders: &HOLDERS,
        name,
    });
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::BadShape(Kind::LookupReply))
    );
    // A holder of a version the reply does not list.
    let bytes = encoded(&Message::LookupReply {
        versions: &VERSIONS[..1],
        holders: &HOLDERS,
        name,
    });
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::BadShape(Kind::LookupReply))
    );
}

#[test]
fn bad_shape_of_manifest_part() {
    let name = "file_A.txt";
    // Chunks 3, 4 and 5 of a file of 5 chunks (0 to 4).
    let fixed = ManifestPart {
        first_chunk: U32::new(3),
        ..MANIFEST_PART
    };
    let bytes = encoded(&Message::ManifestPart {
        fixed: &fixed,
        hashes: &HASHES,
        name,
    });
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::BadShape(Kind::ManifestPart))
    );
    let fixed = ManifestPart {
        first_chunk: U32::new(u32::MAX),
        ..MANIFEST_PART
    };
    let bytes = encoded(&Message::ManifestPart {
        fixed: &fixed,
        hashes: &HASHES,
        name,
    });
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::BadShape(Kind::ManifestPart))
    );
    let fixed = ManifestPart {
        chunk_bytes: U32::new(3 << 14),
        ..MANIFEST_PART
    };
    let bytes = encoded(&Message::ManifestPart {
        fixed: &fixed,
        hashes: &HASHES,
        name,
    });
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::BadShape(Kind::ManifestPart))
    );
}

#[test]
fn bad_shape_of_piece_request() {
    let valid = encoded(&Message::PieceRequest(&PIECE_REQUEST));
    for request in [
        PieceRequest {
            piece_bytes: U32::new(0),
            ..PIECE_REQUEST
        },
        PieceRequest {
            piece_bytes: U32::new(PIECE_BYTES_MAX as u32 + 1),
            ..PIECE_REQUEST
        },
        PieceRequest {
            length: U32::new(0),
            ..PIECE_REQUEST
        },
    ] {
        let bytes = encoded(&Message::PieceRequest(&request));
        assert_eq!(
            refused(&valid, &bytes),
            DecodeError::BadShape(Kind::PieceRequest)
        );
    }
    let largest = PieceRequest {
        piece_bytes: U32::new(PIECE_BYTES_MAX as u32),
        ..PIECE_REQUEST
    };
    assert!(decode(&encoded(&Message::PieceRequest(&largest))).is_ok());
}

#[test]
fn bad_shape_of_have_map_spare_bits() {
    // Ten chunks: the low six bits of the second byte are spare and must be zero.
    let valid = encoded(&Message::HaveMap {
        fixed: &HAVE_MAP,
        bitmap: &BITMAP,
    });
    for spare in 0..6 {
        let bitmap = [BITMAP[0], BITMAP[1] | 1 << spare];
        let bytes = encoded(&Message::HaveMap {
            fixed: &HAVE_MAP,
            bitmap: &bitmap,
        });
        assert_eq!(
            refused(&valid, &bytes),
            DecodeError::BadShape(Kind::HaveMap)
        );
    }
    // With a whole number of bytes there are no spare bits.
    let fixed = HaveMap {
        chunk_count: U32::new(16),
        ..HAVE_MAP
    };
    assert!(
        decode(&encoded(&Message::HaveMap {
            fixed: &fixed,
            bitmap: &[0xff; 2]
        }))
        .is_ok()
    );
    let fixed = HaveMap {
        chunk_count: U32::new(0),
        ..HAVE_MAP
    };
    assert!(
        decode(&encoded(&Message::HaveMap {
            fixed: &fixed,
            bitmap: &[]
        }))
        .is_ok()
    );
}

#[test]
fn unknown_reason() {
    let valid = encoded(&Message::Refused(&REFUSED));
    for reason in [0, 5, u16::MAX] {
        let bad = Refused {
            reason: U16::new(reason),
            ..REFUSED
        };
        assert_eq!(
            refused(&valid, &encoded(&Message::Refused(&bad))),
            DecodeError::UnknownReason
        );
    }
    let valid = encoded(&Message::Reject(&REJECT));
    for reason in [0, 6, u16::MAX] {
        let bad = Reject {
            reason: U16::new(reason),
            ..REJECT
        };
        assert_eq!(
            refused(&valid, &encoded(&Message::Reject(&bad))),
            DecodeError::UnknownReason
        );
    }
    for reason in 1..=4 {
        assert_eq!(
            RefusedReason::from_u16(reason).map(|r| r as u16),
            Some(reason)
        );
    }
    for reason in 1..=5 {
        assert_eq!(
            RejectReason::from_u16(reason).map(|r| r as u16),
            Some(reason)
        );
    }
}

#[test]
fn errors_display_one_line() {
    let errors = [
        DecodeError::Truncated,
        DecodeError::BadMagic,
        DecodeError::BadVersion(2),
        DecodeError::UnknownKind(0xff),
        DecodeError::ReservedNotZero,
        DecodeError::ShortBody(Kind::Piece),
        DecodeError::LengthMismatch(Kind::HaveMap),
        DecodeError::CountOverLimit(Kind::LookupReply),
        DecodeError::BadName,
        DecodeError::BadShape(Kind::Announce),
        DecodeError::UnknownReason,
    ];
    for error in errors {
        let text = error.to_string();
        assert!(
            !text.is_empty() && !text.contains('\n'),
            "{error:?}: {text:?}"
        );
    }
    assert_eq!(
        DecodeError::UnknownKind(0xff).to_string(),
        "unknown kind 0xff"
    );
}

// ---------------------------------------------------------------- helpers

#[test]
fn hex_round_trip() {
    let hash: Hash = core::array::from_fn(|i| (i * 13) as u8);
    let text = hex(&hash);
    assert_eq!(text, "000d1a2734414e5b6875828f9ca9b6c3d0ddeaf7");
    assert_eq!(parse_hex(&text), Some(hash));
    assert_eq!(parse_hex(&text.to_uppercase()), Some(hash));
}

#[test]
fn parse_hex_refuses() {
    let good = "f".repeat(40);
    assert_eq!(parse_hex(&good), Some([0xff; HASH_BYTES]));
    let plus = format!("+f{}", "f".repeat(38));
    let minus = format!("-f{}", "f".repeat(38));
    let accented = format!("é{}", "f".repeat(38)); // 40 bytes, 39 characters
    let space = format!(" f{}", "f".repeat(38));
    for text in [
        "",
        &good[1..],
        &format!("{good}f"),
        &plus,
        &minus,
        &accented,
        &space,
    ] {
        assert_eq!(parse_hex(text), None, "{text:?}");
    }
    assert_eq!(parse_hex(&format!("g{}", &good[1..])), None);
}

#[test]
fn addresses_round_trip() {
    for addr in [
        "127.0.0.1:6881",
        "[::1]:9",
        "[2001:db8::7]:65535",
        "10.1.2.3:0",
    ] {
        let addr: SocketAddr = addr.parse().unwrap();
        assert_eq!(socket_addr(ip_to_bytes(addr.ip()), addr.port()), addr);
    }
    assert_eq!(HOLDERS[0].ip, ip_to_bytes("127.0.0.1".parse().unwrap()));
}

#[test]
fn chunk_arithmetic() {
    assert_eq!(chunk_count(100_000, CHUNK_BYTES), 7);
    assert_eq!(
        chunk_len(100_000, CHUNK_BYTES, 6),
        100_000 - 6 * CHUNK_BYTES
    );
    assert_eq!(chunk_len(100_000, CHUNK_BYTES, 7), 0);
    assert_eq!(bitmap_len(0), 0);
    assert_eq!(bitmap_len(10), 2);
    assert_eq!(bitmap_len(16), 2);
}

// ---------------------------------------------------------------- the fuzz corpus

/// Rewrites the curated seed corpus of the `wire_decode` fuzz target: one valid datagram per
/// kind and a few refused ones. Run by hand after a format change:
/// `cargo test --lib -- --ignored write_wire_fuzz_corpus`.
#[test]
#[ignore = "writes files; run by hand after a wire format change"]
fn write_wire_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_decode");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = samples()
        .iter()
        .map(|message| (format!("kind-{:?}", message.kind()), encoded(message)))
        .collect();
    let exit_ack = encoded(&Message::ExitAck(&EXIT_ACK));
    let mut bad_magic = exit_ack.clone();
    bad_magic[0] = b'X';
    let lookup = encoded(&samples()[4]);
    let lookup_fixed = &lookup[..8 + size_of::<Lookup>()];
    let mut lying = encoded(&samples()[5]);
    lying[8 + 3] = 4;
    let mut spare = encoded(&Message::HaveMap {
        fixed: &HAVE_MAP,
        bitmap: &BITMAP,
    });
    *spare.last_mut().unwrap() |= 1;
    files.extend([
        ("invalid-truncated".into(), exit_ack[..5].to_vec()),
        ("invalid-bad-magic".into(), bad_magic),
        (
            "invalid-name-dotdot".into(),
            with_name(lookup_fixed, b"../x"),
        ),
        (
            "invalid-name-not-utf8".into(),
            with_name(lookup_fixed, b"\xff"),
        ),
        ("invalid-lying-holder-count".into(), lying),
        ("invalid-have-map-spare-bit".into(), spare),
    ]);
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
