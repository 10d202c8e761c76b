//! Refusals of what a well-framed datagram says: names, shapes, spare bits, reasons; and how
//! errors read.

use super::*;

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
            piece_bytes: U32::new(1),
            ..PIECE_REQUEST
        },
        PieceRequest {
            piece_bytes: U32::new(PIECE_BYTES_MIN as u32 - 1),
            ..PIECE_REQUEST
        },
        // One datagram more than a request may cause.
        PieceRequest {
            length: U32::new(PIECES_PER_REQUEST_MAX * PIECE_BYTES_MIN as u32 + 1),
            piece_bytes: U32::new(PIECE_BYTES_MIN as u32),
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
    let most_pieces = PieceRequest {
        length: U32::new(PIECES_PER_REQUEST_MAX * PIECE_BYTES_MIN as u32),
        piece_bytes: U32::new(PIECE_BYTES_MIN as u32),
        ..PIECE_REQUEST
    };
    assert!(decode(&encoded(&Message::PieceRequest(&most_pieces))).is_ok());
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
    let valid = encoded(&Message::Refused(REFUSED));
    assert_eq!(valid, raw(Kind::Refused, &REFUSED_VIEW));
    for reason in [0, 5, u16::MAX] {
        let bad = Refused {
            reason: U16::new(reason),
            ..REFUSED_VIEW
        };
        assert_eq!(
            refused(&valid, &raw(Kind::Refused, &bad)),
            DecodeError::UnknownReason
        );
    }
    let valid = encoded(&Message::Reject(REJECT));
    assert_eq!(valid, raw(Kind::Reject, &REJECT_VIEW));
    for reason in [0, 6, u16::MAX] {
        let bad = Reject {
            reason: U16::new(reason),
            ..REJECT_VIEW
        };
        assert_eq!(
            refused(&valid, &raw(Kind::Reject, &bad)),
            DecodeError::UnknownReason
        );
    }
    for reason in 1..=4 {
        assert_eq!(
            RefusedReason::from_repr(reason).map(|r| r as u16),
            Some(reason)
        );
    }
    for reason in 1..=5 {
        assert_eq!(
            RejectReason::from_repr(reason).map(|r| r as u16),
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
fn have_map_parts() {
    // 20 chunks: a second part from chunk 16 carries one byte, whose spare bits are zero.
    let fixed = HaveMap {
        chunk_count: U32::new(20),
        first_chunk: U32::new(16),
        ..HAVE_MAP
    };
    let part = [0b1111_0000];
    assert_eq!(
        decode(&encoded(&Message::HaveMap {
            fixed: &fixed,
            bitmap: &part
        })),
        Ok(Message::HaveMap {
            fixed: &fixed,
            bitmap: &part
        })
    );
    let spare = [0b1111_1000];
    assert_eq!(
        decode(&encoded(&Message::HaveMap {
            fixed: &fixed,
            bitmap: &spare
        })),
        Err(DecodeError::BadShape(Kind::HaveMap))
    );
    for first_chunk in [3, 24, 1 << 31] {
        let fixed = HaveMap {
            first_chunk: U32::new(first_chunk),
            ..fixed
        };
        assert_eq!(
            decode(&encoded(&Message::HaveMap {
                fixed: &fixed,
                bitmap: &part
            })),
            Err(DecodeError::BadShape(Kind::HaveMap)),
            "first chunk {first_chunk}"
        );
    }
    let two_bytes = [0, 0];
    assert_eq!(
        decode(&encoded(&Message::HaveMap {
            fixed: &fixed,
            bitmap: &two_bytes
        })),
        Err(DecodeError::LengthMismatch(Kind::HaveMap)),
        "past the last chunk"
    );
}

#[test]
fn mtu_probes() {
    let probe = MtuProbe {
        ask: ASK,
        probe_bytes: U32::new(1_472),
    };
    assert_eq!(
        decode(&encoded(&Message::MtuProbe(&probe))),
        Ok(Message::MtuProbe(&probe))
    );
    for bytes in [
        0,
        MTU_PROBE_BYTES_MIN as u32 - 1,
        DATAGRAM_BYTES_MAX as u32 + 1,
    ] {
        let probe = MtuProbe {
            probe_bytes: U32::new(bytes),
            ..probe
        };
        assert_eq!(
            decode(&encoded(&Message::MtuProbe(&probe))),
            Err(DecodeError::BadShape(Kind::MtuProbe))
        );
    }
    // The echo is as long as asked, padded with zeros.
    let reply = MtuProbeReply {
        info_hash: INFO_HASH,
        probe_bytes: U32::new(1_472),
    };
    let bytes = encoded(&Message::MtuProbeReply(&reply));
    assert_eq!(bytes.len(), 1_472);
    assert_eq!(decode(&bytes), Ok(Message::MtuProbeReply(&reply)));
    assert_eq!(
        decode(&bytes[..1_471]),
        Err(DecodeError::LengthMismatch(Kind::MtuProbeReply))
    );
    let mut dirty = bytes.clone();
    dirty[1_000] = 1;
    assert_eq!(decode(&dirty), Err(DecodeError::ReservedNotZero));
}

#[test]
fn credit_records_bounded_and_checked() {
    let valid = encoded(&Message::Credit {
        fixed: &CREDIT,
        records: &CREDIT_RECORDS,
    });
    let mut bytes = valid.clone();
    // record_count sits after the header and the 12-byte auth.
    bytes[20..22].copy_from_slice(&((CREDIT_RECORDS_MAX + 1) as u16).to_be_bytes());
    assert_eq!(
        refused(&valid, &bytes),
        DecodeError::CountOverLimit(Kind::Credit)
    );
    let mut bytes = valid.clone();
    bytes[20..22].copy_from_slice(&0u16.to_be_bytes());
    bytes.truncate(size_of::<Header>() + size_of::<Credit>());
    assert_eq!(refused(&valid, &bytes), DecodeError::BadShape(Kind::Credit));
    let mut bytes = valid.clone();
    bytes[22] = 1;
    assert_eq!(refused(&valid, &bytes), DecodeError::ReservedNotZero);
    // A full report round-trips.
    let records = [CREDIT_RECORDS[0]; CREDIT_RECORDS_MAX];
    let fixed = Credit {
        auth: AUTH,
        record_count: U16::new(CREDIT_RECORDS_MAX as u16),
        reserved: [0; 2],
    };
    let full = Message::Credit {
        fixed: &fixed,
        records: &records,
    };
    let bytes = encoded(&full);
    assert!(bytes.len() <= crate::mtu::SAFE_DATAGRAM_BYTES as usize);
    assert_eq!(decode(&bytes), Ok(full));
}

#[test]
fn peers_bounded_and_checked() {
    let valid = encoded(&Message::Peers {
        fixed: &PEERS,
        peers: &PEER_RECORDS,
    });
    // Offsets: header 8, info hash 20, node id 4, then peer_count (2) and reserved (2);
    // the first record follows at 36: node id 4, port 2, complete, reserved, address 16.
    let mut bytes = valid.clone();
    bytes[32..34].copy_from_slice(&((PEERS_PER_EXCHANGE_MAX + 1) as u16).to_be_bytes());
    assert_eq!(
        refused(&valid, &bytes),
        DecodeError::CountOverLimit(Kind::Peers)
    );
    let mut bytes = valid.clone();
    bytes[34] = 1;
    assert_eq!(refused(&valid, &bytes), DecodeError::ReservedNotZero);
    let mut bytes = valid.clone();
    bytes[43] = 1;
    assert_eq!(refused(&valid, &bytes), DecodeError::ReservedNotZero);
    let mut bytes = valid.clone();
    bytes[42] = 2;
    assert_eq!(refused(&valid, &bytes), DecodeError::BadShape(Kind::Peers));
    let mut bytes = valid.clone();
    bytes[40..42].copy_from_slice(&0u16.to_be_bytes());
    assert_eq!(refused(&valid, &bytes), DecodeError::BadShape(Kind::Peers));
    // None listed is a valid (empty) list.
    let fixed = Peers {
        peer_count: U16::new(0),
        ..PEERS
    };
    let empty = Message::Peers {
        fixed: &fixed,
        peers: &[],
    };
    assert_eq!(decode(&encoded(&empty)), Ok(empty));
}

#[test]
fn lookup_carries_bounded_credit() {
    let credits = [CREDIT_RECORDS[0]; LOOKUP_CREDITS_MAX];
    let fixed = Lookup {
        auth: AUTH,
        credit_count: U16::new(LOOKUP_CREDITS_MAX as u16),
        reserved: [0; 2],
    };
    let name = "n".repeat(NAME_BYTES_MAX);
    let full = Message::Lookup {
        fixed: &fixed,
        credits: &credits,
        name: &name,
    };
    let valid = encoded(&full);
    assert!(valid.len() <= crate::mtu::SAFE_DATAGRAM_BYTES as usize);
    assert_eq!(decode(&valid), Ok(full));
    // credit_count sits after the header and the 12-byte auth.
    let mut bytes = valid.clone();
    bytes[20..22].copy_from_slice(&((LOOKUP_CREDITS_MAX + 1) as u16).to_be_bytes());
    assert_eq!(
        refused(&valid, &bytes),
        DecodeError::CountOverLimit(Kind::Lookup)
    );
    let mut bytes = valid.clone();
    bytes[23] = 1;
    assert_eq!(refused(&valid, &bytes), DecodeError::ReservedNotZero);
}

#[test]
fn info_parts_stay_within_their_dictionary_and_its_limit() {
    let valid = encoded(&samples()[27]);
    assert!(decode(&valid).is_ok());
    let part = |info_bytes: u32, offset: u32, bytes: &'static [u8]| {
        let fixed = InfoPart {
            info_bytes: U32::new(info_bytes),
            offset: U32::new(offset),
            ..INFO_PART
        };
        decode(&encoded(&Message::InfoPart {
            fixed: &fixed,
            bytes,
        }))
        .map(|_| ())
    };
    // The last byte of the dictionary, and one past it.
    assert_eq!(part(10, 9, b"e"), Ok(()));
    assert_eq!(
        part(10, 9, b"ee"),
        Err(DecodeError::BadShape(Kind::InfoPart))
    );
    // An offset near u32::MAX does not wrap around.
    assert_eq!(
        part(10, u32::MAX, b"e"),
        Err(DecodeError::BadShape(Kind::InfoPart))
    );
    // An empty part says nothing.
    assert_eq!(part(10, 0, b""), Err(DecodeError::BadShape(Kind::InfoPart)));
    // A dictionary larger than any taken is refused before anything is kept.
    assert_eq!(
        part(INFO_BYTES_MAX + 1, 0, b"d"),
        Err(DecodeError::CountOverLimit(Kind::InfoPart))
    );
    assert_eq!(part(INFO_BYTES_MAX, 0, b"d"), Ok(()));
}
