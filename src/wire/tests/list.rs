//! `ListRequest` and `ListReply`: their exact bytes, and every check decode makes of them
//! (each refusal made from a datagram that decodes).

use super::*;

fn reply(fixed: &ListReply, records: &[ListRecord], names: &str) -> Vec<u8> {
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    let message = Message::ListReply {
        fixed,
        records,
        names,
    };
    let len = message.encode(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn list_request_bytes() {
    let expected = [
        b'T', b'R', b'N', b'T', 3, 0x0c, 0, 0, // header
        0, 0, 0, 7, // node id
        1, 2, 3, 4, 5, 6, 7, 8, // token
        1, 2, 3, 4, // request id
        0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, // info hash
        0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, //
        0,    // inclusive: no, after the cursor
        2,    // entries wanted
        0, 0, // reserved
        b'f', b'i', b'l', b'e', b'_', b'A', b'.', b't', b'x', b't', // the cursor's name
    ];
    let message = Message::ListRequest {
        fixed: &LIST_REQUEST,
        name: "file_A.txt",
    };
    assert_eq!(encoded(&message), expected);
    assert_eq!(decode(&expected), Ok(message));
    // The start of the list: no name at all.
    let start = &expected[..8 + size_of::<ListRequest>()];
    assert_eq!(
        decode(start),
        Ok(Message::ListRequest {
            fixed: &LIST_REQUEST,
            name: ""
        })
    );
}

#[test]
fn list_reply_bytes() {
    let expected = [
        b'T', b'R', b'N', b'T', 3, 0x0d, 0, 0, // header
        1, 2, 3, 4, // request id
        0, 2, // entries
        1, // more follow
        0, // reserved
        0, 0, 0, 9, // files in all
        // entry 0: a.bin
        0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, // info hash
        0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, //
        0, 0, 0, 0, 0, 0, 0, 0, // file bytes
        0, 0, 0x40, 0, // chunk bytes (16 KiB)
        0, 0, 0, 1, // holders
        0, 0, 0, 1, // complete holders
        5, 0, 0, 0, // name bytes, reserved
        // entry 1: file_A.txt
        0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, // info hash
        0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, //
        0, 0, 0, 0, 0, 0x01, 0x86, 0xa0, // file bytes (100,000)
        0, 0, 0x40, 0, // chunk bytes
        0, 0, 0, 3, // holders
        0, 0, 0, 2, // complete holders
        10, 0, 0, 0, // name bytes, reserved
        b'a', b'.', b'b', b'i', b'n', // the names, one after another
        b'f', b'i', b'l', b'e', b'_', b'A', b'.', b't', b'x', b't',
    ];
    assert_eq!(reply(&LIST_REPLY, &LIST_RECORDS, LIST_NAMES), expected);
    let Ok(Message::ListReply {
        fixed,
        records,
        names,
    }) = decode(&expected)
    else {
        panic!("the reply does not decode")
    };
    assert_eq!(*fixed, LIST_REPLY);
    let entries: Vec<(u32, &str)> = list_entries(records, names)
        .map(|(record, name)| (record.holder_count.get(), name))
        .collect();
    assert_eq!(entries, [(1, "a.bin"), (3, "file_A.txt")]);
}

#[test]
fn a_full_page_of_full_length_names_fits_one_datagram() {
    let names: Vec<String> = (0..LIST_ENTRIES_MAX)
        .map(|i| format!("{i:03}{}", "n".repeat(NAME_BYTES_MAX - 3)))
        .collect();
    let records: Vec<ListRecord> = names
        .iter()
        .map(|name| list_record(INFO_HASH, 1, CHUNK_BYTES, 1, 0, name))
        .collect();
    let joined = names.concat();
    let fixed = list_reply(1, records.len(), false, 70_000);
    let bytes = reply(&fixed, &records, &joined);
    assert!(bytes.len() <= DATAGRAM_BYTES_MAX);
    let Ok(Message::ListReply { records, names, .. }) = decode(&bytes) else {
        panic!("a full page is refused")
    };
    let decoded: Vec<&str> = list_entries(records, names).map(|(_, n)| n).collect();
    assert_eq!(decoded, names_of(&joined, NAME_BYTES_MAX));
}

fn names_of(joined: &str, each: usize) -> Vec<&str> {
    (0..joined.len() / each)
        .map(|i| &joined[i * each..(i + 1) * each])
        .collect()
}

#[test]
fn list_request_refusals() {
    let valid = encoded(&Message::ListRequest {
        fixed: &LIST_REQUEST,
        name: "file_A.txt",
    });
    let with = |fixed: ListRequest, name: &str| {
        encoded(&Message::ListRequest {
            fixed: &fixed,
            name,
        })
    };
    let cases = [
        (
            with(
                ListRequest {
                    reserved: [0, 1],
                    ..LIST_REQUEST
                },
                "f",
            ),
            DecodeError::ReservedNotZero,
        ),
        (
            with(
                ListRequest {
                    entries_max: LIST_ENTRIES_MAX as u8 + 1,
                    ..LIST_REQUEST
                },
                "f",
            ),
            DecodeError::CountOverLimit(Kind::ListRequest),
        ),
        (
            with(
                ListRequest {
                    inclusive: 2,
                    ..LIST_REQUEST
                },
                "f",
            ),
            DecodeError::BadShape(Kind::ListRequest),
        ),
        (with(LIST_REQUEST, "../f"), DecodeError::BadName),
        (
            valid[..8 + size_of::<ListRequest>() - 1].to_vec(),
            DecodeError::ShortBody(Kind::ListRequest),
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(refused(&valid, &bytes), error);
    }
}

#[test]
fn list_reply_refusals() {
    let valid = reply(&LIST_REPLY, &LIST_RECORDS, LIST_NAMES);
    let [a, b] = LIST_RECORDS;
    let swapped_names = "file_A.txta.bin";
    let cases = [
        // The fixed part's checks.
        (
            reply(
                &ListReply {
                    reserved: 1,
                    ..LIST_REPLY
                },
                &LIST_RECORDS,
                LIST_NAMES,
            ),
            DecodeError::ReservedNotZero,
        ),
        (
            reply(
                &ListReply {
                    entry_count: U16::new(LIST_ENTRIES_MAX as u16 + 1),
                    ..LIST_REPLY
                },
                &LIST_RECORDS,
                LIST_NAMES,
            ),
            DecodeError::CountOverLimit(Kind::ListReply),
        ),
        (
            reply(
                &ListReply {
                    more: 2,
                    ..LIST_REPLY
                },
                &LIST_RECORDS,
                LIST_NAMES,
            ),
            DecodeError::BadShape(Kind::ListReply),
        ),
        // "More" after an empty page would never end.
        (
            reply(&list_reply(1, 0, true, 9), &[], ""),
            DecodeError::BadShape(Kind::ListReply),
        ),
        // A count the bytes do not hold.
        (
            reply(
                &ListReply {
                    entry_count: U16::new(3),
                    ..LIST_REPLY
                },
                &LIST_RECORDS,
                LIST_NAMES,
            ),
            DecodeError::LengthMismatch(Kind::ListReply),
        ),
        // Name lengths that do not add up to the tail.
        (
            reply(&LIST_REPLY, &LIST_RECORDS, "a.binfile_A.txtX"),
            DecodeError::LengthMismatch(Kind::ListReply),
        ),
        // A record's reserved bytes.
        (
            reply(
                &LIST_REPLY,
                &[
                    a,
                    ListRecord {
                        reserved: [0, 0, 1],
                        ..b
                    },
                ],
                LIST_NAMES,
            ),
            DecodeError::ReservedNotZero,
        ),
        // A bad name among good ones.
        (
            reply(&LIST_REPLY, &LIST_RECORDS, "a.bi/file_A.txt"),
            DecodeError::BadName,
        ),
        // An empty name.
        (
            reply(
                &LIST_REPLY,
                &[
                    ListRecord { name_bytes: 0, ..a },
                    ListRecord {
                        name_bytes: 15,
                        ..b
                    },
                ],
                LIST_NAMES,
            ),
            DecodeError::BadName,
        ),
        // Out of order: the cursor would go back.
        (
            reply(
                &LIST_REPLY,
                &[
                    ListRecord {
                        name_bytes: 10,
                        ..b
                    },
                    ListRecord { name_bytes: 5, ..a },
                ],
                swapped_names,
            ),
            DecodeError::BadShape(Kind::ListReply),
        ),
        // The same entry twice.
        (
            reply(&LIST_REPLY, &[a, a], "a.bina.bin"),
            DecodeError::BadShape(Kind::ListReply),
        ),
        // More complete holders than holders, and an impossible shape.
        (
            reply(
                &LIST_REPLY,
                &[
                    ListRecord {
                        complete_count: U32::new(2),
                        ..a
                    },
                    b,
                ],
                LIST_NAMES,
            ),
            DecodeError::BadShape(Kind::ListReply),
        ),
        (
            reply(
                &LIST_REPLY,
                &[
                    a,
                    ListRecord {
                        chunk_bytes: U32::new(1000),
                        ..b
                    },
                ],
                LIST_NAMES,
            ),
            DecodeError::BadShape(Kind::ListReply),
        ),
    ];
    for (bytes, error) in cases {
        assert_eq!(refused(&valid, &bytes), error);
    }
    // Same name, two versions: ordered by info hash (0xab.. before 0xcd..).
    let b_as_a = ListRecord { name_bytes: 5, ..b };
    let ordered = reply(&LIST_REPLY, &[b_as_a, a], "a.bina.bin");
    let reversed = reply(&LIST_REPLY, &[a, b_as_a], "a.bina.bin");
    assert_eq!(
        refused(&ordered, &reversed),
        DecodeError::BadShape(Kind::ListReply)
    );
}
