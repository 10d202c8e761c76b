//! Literal byte fixtures for every BEP 15 datagram, and one test per refusal (each made from
//! a valid datagram, so a test cannot pass by refusing everything).

use super::*;

/// A connect request: protocol id, action 0, transaction id 0x01020304.
const CONNECT: [u8; 16] = [
    0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol id
    0, 0, 0, 0, // action: connect
    1, 2, 3, 4, // transaction id
];

/// An announce: connection id 0x1122..88, transaction 0x0a0b0c0d, info hash 0xab.., peer id
/// "-XX0001-" + 12 × '1', downloaded 5, left 0, uploaded 7, event started, ip 0, key 9,
/// num want -1, port 6881.
fn announce_fixture() -> Vec<u8> {
    let mut bytes = vec![
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // connection id
        0, 0, 0, 1, // action: announce
        0x0a, 0x0b, 0x0c, 0x0d, // transaction id
    ];
    bytes.extend_from_slice(&[0xab; 20]);
    bytes.extend_from_slice(b"-XX0001-111111111111");
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]); // downloaded
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // left
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]); // uploaded
    bytes.extend_from_slice(&[0, 0, 0, 2]); // event: started
    bytes.extend_from_slice(&[0, 0, 0, 0]); // ip
    bytes.extend_from_slice(&[0, 0, 0, 9]); // key
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // num want: -1
    bytes.extend_from_slice(&[0x1a, 0xe1]); // port 6881
    assert_eq!(bytes.len(), 98);
    bytes
}

fn scrape_fixture(count: usize) -> Vec<u8> {
    let mut bytes = vec![
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // connection id
        0, 0, 0, 2, // action: scrape
        0, 0, 0, 42, // transaction id
    ];
    for index in 0..count {
        bytes.extend_from_slice(&[index as u8; 20]);
    }
    bytes
}

#[test]
fn connect_request_fixture() {
    assert!(is_bep15(&CONNECT));
    assert_eq!(
        decode_request(&CONNECT),
        Ok(Request::Connect {
            transaction_id: 0x0102_0304
        })
    );
    let mut buf = [0u8; 64];
    let len = encode_connect_request(&mut buf, 0x0102_0304).unwrap();
    assert_eq!(&buf[..len], &CONNECT);
}

#[test]
fn connect_response_fixture() {
    let mut buf = [0u8; 64];
    let len = encode_connect_response(&mut buf, 0x0102_0304, 0x1122_3344_5566_7788).unwrap();
    let expected = [
        0, 0, 0, 0, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    ];
    assert_eq!(&buf[..len], &expected);
    let Ok(Response::Connect(connect)) = decode_response(&expected, false) else {
        panic!("not a connect response");
    };
    assert_eq!(connect.connection_id.get(), 0x1122_3344_5566_7788);
    assert_eq!(connect.header.transaction_id.get(), 0x0102_0304);
}

#[test]
fn announce_request_fixture() {
    let bytes = announce_fixture();
    assert!(is_bep15(&bytes));
    let Ok(Request::Announce(announce)) = decode_request(&bytes) else {
        panic!("not an announce");
    };
    assert_eq!(announce.header.connection_id.get(), 0x1122_3344_5566_7788);
    assert_eq!(announce.header.transaction_id.get(), 0x0a0b_0c0d);
    assert_eq!(announce.info_hash, [0xab; 20]);
    assert_eq!(&announce.peer_id, b"-XX0001-111111111111");
    assert_eq!(announce.downloaded_bytes.get(), 5);
    assert_eq!(announce.left_bytes.get(), 0);
    assert_eq!(announce.uploaded_bytes.get(), 7);
    assert_eq!(announce.event(), Event::Started);
    assert_eq!(announce.key.get(), 9);
    assert_eq!(announce.num_want(), None);
    assert_eq!(announce.port.get(), 6881);
    // BEP 41 options after the fixed part (libtorrent sends the URL path) are accepted.
    let mut with_options = bytes.clone();
    with_options.extend_from_slice(&[2, 9]);
    with_options.extend_from_slice(b"/announce");
    assert!(matches!(
        decode_request(&with_options),
        Ok(Request::Announce(_))
    ));
}

#[test]
fn announce_response_fixtures() {
    let fixed = AnnounceResponse {
        header: ResponseHeader {
            action: U32::new(ACTION_ANNOUNCE),
            transaction_id: U32::new(0x0a0b_0c0d),
        },
        interval_s: U32::new(120),
        leechers: U32::new(1),
        seeders: U32::new(2),
    };
    let peers: Vec<SocketAddr> = vec![
        "10.0.0.1:6881".parse().unwrap(),
        "[2001:db8::1]:51413".parse().unwrap(),
    ];
    let mut buf = [0u8; 256];
    let len = encode_announce_response(&mut buf, &fixed, false, &peers).unwrap();
    let expected_v4 = [
        0, 0, 0, 1, 0x0a, 0x0b, 0x0c, 0x0d, // action, transaction id
        0, 0, 0, 120, 0, 0, 0, 1, 0, 0, 0, 2, // interval, leechers, seeders
        10, 0, 0, 1, 0x1a, 0xe1, // the IPv4 peer only
    ];
    assert_eq!(&buf[..len], &expected_v4);
    let Ok(Response::Announce {
        fixed: got,
        peers: got_peers,
    }) = decode_response(&expected_v4, false)
    else {
        panic!("not an announce response");
    };
    assert_eq!(*got, fixed);
    assert_eq!(got_peers.to_addrs(), vec![peers[0]]);

    let len = encode_announce_response(&mut buf, &fixed, true, &peers).unwrap();
    assert_eq!(len, 20 + 18);
    let mut expected_peer = [0u8; 18];
    expected_peer[..16].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    expected_peer[16..].copy_from_slice(&[0xc8, 0xd5]);
    assert_eq!(&buf[20..len], &expected_peer);
    let Ok(Response::Announce {
        peers: got_peers, ..
    }) = decode_response(&buf[..len], true)
    else {
        panic!("not an announce response");
    };
    assert_eq!(got_peers.to_addrs(), vec![peers[1]]);
}

#[test]
fn scrape_fixtures() {
    let bytes = scrape_fixture(2);
    let Ok(Request::Scrape {
        connection_id,
        transaction_id,
        info_hashes,
    }) = decode_request(&bytes)
    else {
        panic!("not a scrape");
    };
    assert_eq!(connection_id, 0x1122_3344_5566_7788);
    assert_eq!(transaction_id, 42);
    assert_eq!(info_hashes, &[[0u8; 20], [1u8; 20]]);
    let mut buf = [0u8; 256];
    let len = encode_scrape_request(&mut buf, connection_id, 42, info_hashes).unwrap();
    assert_eq!(&buf[..len], &bytes[..]);

    let stats = [ScrapeStats {
        seeders: U32::new(3),
        completed: U32::new(4),
        leechers: U32::new(5),
    }];
    let len = encode_scrape_response(&mut buf, 42, &stats).unwrap();
    let expected = [0, 0, 0, 2, 0, 0, 0, 42, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5];
    assert_eq!(&buf[..len], &expected);
    assert_eq!(
        decode_response(&expected, false),
        Ok(Response::Scrape {
            transaction_id: 42,
            stats: &stats
        })
    );
}

#[test]
fn error_fixture() {
    let mut buf = [0u8; 256];
    let len = encode_error_response(&mut buf, 7, "bad announce event").unwrap();
    let mut expected = vec![0, 0, 0, 3, 0, 0, 0, 7];
    expected.extend_from_slice(b"bad announce event");
    assert_eq!(&buf[..len], &expected[..]);
    assert_eq!(
        decode_response(&expected, false),
        Ok(Response::Error {
            transaction_id: 7,
            message: "bad announce event"
        })
    );
    // Long messages are cut, at a character boundary.
    let long = "é".repeat(100);
    let len = encode_error_response(&mut buf, 7, &long).unwrap();
    assert!(len - 8 <= ERROR_MESSAGE_BYTES_MAX);
    assert!(std::str::from_utf8(&buf[8..len]).is_ok());
}

#[test]
fn refusals_name_the_check_and_whether_a_reply_is_possible() {
    let sendable = |problem| RequestError::Sendable {
        connection_id: 0x1122_3344_5566_7788,
        transaction_id: 0x0a0b_0c0d,
        problem,
    };
    assert_eq!(
        decode_request(&CONNECT[..15]),
        Err(RequestError::Unsendable(Malformed::Truncated))
    );
    let mut bad_id = CONNECT;
    bad_id[7] ^= 1;
    assert_eq!(
        decode_request(&bad_id),
        Err(RequestError::Unsendable(Malformed::BadProtocolId))
    );
    let mut long_connect = CONNECT.to_vec();
    long_connect.push(0);
    assert_eq!(
        decode_request(&long_connect),
        Err(RequestError::Unsendable(Malformed::ConnectLength))
    );
    let mut unknown = CONNECT;
    unknown[11] = 9;
    assert_eq!(
        decode_request(&unknown),
        Err(RequestError::Unsendable(Malformed::UnknownAction(9)))
    );

    let announce = announce_fixture();
    assert_eq!(
        decode_request(&announce[..97]),
        Err(sendable(Malformed::AnnounceTruncated))
    );
    let mut bad_event = announce.clone();
    bad_event[83] = 4;
    assert_eq!(
        decode_request(&bad_event),
        Err(sendable(Malformed::BadEvent(4)))
    );
    let mut too_long = announce.clone();
    too_long.resize(98 + ANNOUNCE_OPTIONS_BYTES_MAX + 1, 0);
    assert_eq!(
        decode_request(&too_long),
        Err(sendable(Malformed::AnnounceTooLong))
    );

    let scrape = |count| {
        let mut bytes = scrape_fixture(count);
        bytes[12..16].copy_from_slice(&[0x0a, 0x0b, 0x0c, 0x0d]);
        bytes
    };
    assert_eq!(
        decode_request(&scrape(0)),
        Err(sendable(Malformed::ScrapeCount))
    );
    assert!(decode_request(&scrape(SCRAPE_HASHES_MAX)).is_ok());
    assert_eq!(
        decode_request(&scrape(SCRAPE_HASHES_MAX + 1)),
        Err(sendable(Malformed::ScrapeCount))
    );
    assert_eq!(
        decode_request(&scrape(1)[..35]),
        Err(sendable(Malformed::ScrapeLength))
    );
}

#[test]
fn our_datagrams_are_not_bep15() {
    let mut ours = [0u8; 48];
    ours[..4].copy_from_slice(&MAGIC);
    ours[4] = 1;
    ours[11] = 1; // action 1 where BEP 15 has it
    assert!(!is_bep15(&ours));
    assert!(!is_bep15(&CONNECT[..15]));
    let mut other_action = announce_fixture();
    other_action[11] = 3;
    assert!(!is_bep15(&other_action));
}

#[test]
fn decode_never_panics_on_prefixes_and_flips() {
    let mut samples = vec![CONNECT.to_vec(), announce_fixture(), scrape_fixture(3)];
    samples.push(vec![
        0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    for sample in &samples {
        for len in 0..=sample.len() {
            let _ = decode_request(&sample[..len]);
            let _ = decode_response(&sample[..len], false);
            let _ = decode_response(&sample[..len], true);
        }
        for index in 0..sample.len() {
            let mut flipped = sample.clone();
            flipped[index] ^= 0xff;
            let _ = decode_request(&flipped);
            let _ = decode_response(&flipped, true);
        }
    }
}
