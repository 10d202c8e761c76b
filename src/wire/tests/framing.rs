//! Refusals of the frame: truncated, wrong magic, version or kind, reserved bytes, lengths
//! and counts that do not match the datagram.

use super::*;

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
    for version in [0, 1, 2, 4, 0xff] {
        let mut bytes = valid.clone();
        bytes[4] = version;
        assert_eq!(refused(&valid, &bytes), DecodeError::BadVersion(version));
    }
}

#[test]
fn unknown_kind() {
    let valid = encoded(&Message::ExitAck(&EXIT_ACK));
    for kind in [0x00, 0x0e, 0x0f, 0x1f, 0xff] {
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
        ..REFUSED_VIEW
    };
    altered.push(raw(Kind::Refused, &refused_));
    let part = ManifestPart {
        reserved: 1,
        ..MANIFEST_PART
    };
    altered.push(encoded(&Message::ManifestPart {
        fixed: &part,
        hashes: &HASHES,
        name,
    }));
    // A flag this version does not know.
    let part = ManifestPart {
        flags: 0x02,
        ..MANIFEST_PART
    };
    altered.push(encoded(&Message::ManifestPart {
        fixed: &part,
        hashes: &HASHES,
        name,
    }));
    let reject = Reject {
        reserved: [1, 0],
        ..REJECT_VIEW
    };
    altered.push(raw(Kind::Reject, &reject));
    let register = Register {
        reserved: [0, 1],
        ..REGISTER
    };
    altered.push(encoded(&Message::Register(&register)));
    let registered = Registered {
        reserved: [1, 0],
        ..REGISTERED
    };
    altered.push(encoded(&Message::Registered(&registered)));
    let challenge = Challenge {
        reserved: [0, 1],
        ..CHALLENGE
    };
    altered.push(encoded(&Message::Challenge(&challenge)));
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
    // A record cut short: the count says more than arrived.
    for message in [
        Message::Credit {
            fixed: &CREDIT,
            records: &CREDIT_RECORDS,
        },
        Message::Peers {
            fixed: &PEERS,
            peers: &PEER_RECORDS,
        },
    ] {
        let valid = encoded(&message);
        let short = &valid[..valid.len() - 1];
        assert_eq!(
            refused(&valid, short),
            DecodeError::LengthMismatch(message.kind())
        );
    }
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
                | Kind::ListRequest
                | Kind::ListReply
                | Kind::HaveMap
                | Kind::ManifestPart
                | Kind::InfoPart
                | Kind::Piece
                | Kind::StampedPiece
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
    // Have-bitmap empty, and one byte long (one byte short is a legal first part).
    let valid = encoded(&Message::HaveMap {
        fixed: &HAVE_MAP,
        bitmap: &BITMAP,
    });
    let empty = &valid[..valid.len() - BITMAP.len()];
    assert_eq!(
        refused(&valid, empty),
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
