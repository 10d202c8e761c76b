//! `--advertise`: a node's advertised address is given to peers only once the tracker knows
//! it reaches that node, and a Register aims at most one Challenge there, only when the
//! node's token vouches for it from its registered address.

use super::*;

/// 192.0.2.7:6881, another host than every `addr(port)` (127.0.0.1).
fn elsewhere() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 6881))
}

/// A Register of node `node_id` advertising `advertise` with `advertise_cookie`.
fn advertising(
    node_id: u32,
    token: u64,
    cookie: u64,
    advertise: SocketAddr,
    advertise_cookie: u64,
) -> Register {
    Register {
        advertise_ip: wire::ip_to_bytes(advertise.ip()),
        advertise_port: U16::new(advertise.port()),
        advertise_cookie: U64::new(advertise_cookie),
        ..register_message(node_id, token, cookie)
    }
}

/// Sends `register` from `from`; returns the replies as (destination, message bytes), each
/// checked to be no larger than the Register.
fn send_register(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    register: &Register,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let request_len = send(tracker, now, from, Message::Register(register));
    let mut replies = drain(tracker);
    if replies.is_empty() {
        save_now(tracker, now);
        replies = drain(tracker);
    }
    for (to, bytes) in &replies {
        assert!(bytes.len() <= request_len, "a reply to {to} amplifies");
    }
    replies
}

fn listed(bytes: &[u8]) -> SocketAddr {
    match decode(bytes).unwrap() {
        Message::Registered(registered) => registered.listed(),
        other => panic!("expected Registered, got {other:?}"),
    }
}

fn challenge_cookie(bytes: &[u8], for_addr: SocketAddr) -> u64 {
    match decode(bytes).unwrap() {
        Message::Challenge(challenge) => {
            assert_eq!(challenge.addr(), for_addr);
            challenge.cookie.get()
        }
        other => panic!("expected Challenge, got {other:?}"),
    }
}

/// The address node 2 is given for node 1, the one holder of file_A.txt.
fn holder_addr(tracker: &mut Tracker, now: Instant, asker_token: u64) -> SocketAddr {
    let (_, holders) = lookup(tracker, now, addr(4002), 2, asker_token, "file_A.txt");
    assert_eq!(holder_ids(&holders), [1]);
    wire::socket_addr(holders[0].ip, holders[0].port.get())
}

/// Registers node 1 from `from` advertising `advertise`, echoing the cookie for `from`.
fn register_advertising(
    tracker: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    advertise: SocketAddr,
) -> Registered {
    let mut cookie = 0;
    loop {
        let replies = send_register(tracker, now, from, &advertising(1, 0, cookie, advertise, 0));
        assert_eq!(replies.len(), 1, "{replies:?}");
        match decode(&replies[0].1).unwrap() {
            Message::Challenge(challenge) if cookie == 0 => cookie = challenge.cookie.get(),
            Message::Registered(registered) => return *registered,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_tracker_on_both_families_compares_mapped_addresses() {
    // A tracker bound to `::` sees an IPv4 node at its IPv4-mapped address.
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let from: SocketAddr = "[::ffff:127.0.0.1]:4001".parse().unwrap();
    let registered = register_advertising(&mut tracker, t0, from, addr(6881));
    assert_eq!(registered.listed(), addr(6881), "the same host");
    let token = registered.auth.token.get();
    // Another host: challenged at its mapped address, from the socket that sees `from`.
    let replies = send_register(
        &mut tracker,
        t0,
        from,
        &advertising(1, token, 0, elsewhere(), 0),
    );
    let mapped: SocketAddr = "[::ffff:192.0.2.7]:6881".parse().unwrap();
    assert!(replies.iter().any(|(to, _)| *to == mapped), "{replies:?}");
}

#[test]
fn an_advertised_address_is_listed_once_it_answers_a_challenge() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let holder = register(&mut tracker, t0, addr(4001), 1, 0);
    let asker = register(&mut tracker, t0, addr(4002), 2, 0);
    announce(
        &mut tracker,
        t0,
        addr(4001),
        1,
        holder,
        hash(1),
        "file_A.txt",
    );
    events(&mut tracker);

    // A heartbeat that advertises another host: the reply still lists the source, and one
    // challenge goes to the advertised address, for that address.
    let replies = send_register(
        &mut tracker,
        t0,
        addr(4001),
        &advertising(1, holder, 0, elsewhere(), 0),
    );
    assert_eq!(replies.len(), 2, "{replies:?}");
    let (to_source, to_advertised): (Vec<_>, Vec<_>) =
        replies.iter().partition(|(to, _)| *to == addr(4001));
    assert_eq!(listed(&to_source[0].1), addr(4001));
    assert_eq!(to_advertised[0].0, elsewhere());
    let cookie = challenge_cookie(&to_advertised[0].1, elsewhere());
    assert_eq!(holder_addr(&mut tracker, t0, asker), addr(4001));

    // A cookie made for another address proves nothing.
    let source_cookie = tracker.bep15.connection_id(t0, addr(4001));
    let replies = send_register(
        &mut tracker,
        t0,
        addr(4001),
        &advertising(1, holder, 0, elsewhere(), source_cookie),
    );
    assert_eq!(replies.len(), 2, "challenged again: {replies:?}");
    assert_eq!(holder_addr(&mut tracker, t0, asker), addr(4001));

    // The echoed cookie: listed from now on, and said in the reply and the log.
    let replies = send_register(
        &mut tracker,
        t0,
        addr(4001),
        &advertising(1, holder, 0, elsewhere(), cookie),
    );
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(listed(&replies[0].1), elsewhere());
    assert_eq!(
        events(&mut tracker),
        [TrackerEvent::NodeAdvertised {
            node_id: 1,
            addr: elsewhere()
        }]
    );
    assert_eq!(holder_addr(&mut tracker, t0, asker), elsewhere());

    // Later heartbeats keep it without a new challenge, also once the cookie is stale.
    let mut later = t0;
    while later < t0 + 3 * CONNECTION_EPOCH {
        later += secs(15);
        let replies = send_register(
            &mut tracker,
            later,
            addr(4001),
            &advertising(1, holder, 0, elsewhere(), cookie),
        );
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(listed(&replies[0].1), elsewhere());
        send_register(
            &mut tracker,
            later,
            addr(4002),
            &register_message(2, asker, 0),
        );
    }

    // Advertising nothing again: the source address is listed.
    let replies = send_register(
        &mut tracker,
        later,
        addr(4001),
        &register_message(1, holder, 0),
    );
    assert_eq!(listed(&replies[0].1), addr(4001));
    assert_eq!(holder_addr(&mut tracker, later, asker), addr(4001));
}

#[test]
fn only_a_vouched_register_from_its_registered_address_aims_a_challenge() {
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    // A new node (no token yet): only its source is challenged, however often it asks.
    for _ in 0..3 {
        let replies = send_register(
            &mut tracker,
            t0,
            addr(4001),
            &advertising(1, 0, 0, elsewhere(), 0),
        );
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(replies[0].0, addr(4001));
        challenge_cookie(&replies[0].1, addr(4001));
    }
    // Registered (proved its source): still not listed elsewhere without proof.
    let token = register(&mut tracker, t0, addr(4001), 1, 0);
    drain(&mut tracker);
    // Someone with the token but from another address (a move not proved yet): only the new
    // source is challenged.
    let replies = send_register(
        &mut tracker,
        t0,
        addr(4009),
        &advertising(1, token, 0, elsewhere(), 0),
    );
    assert_eq!(replies.len(), 1, "{replies:?}");
    challenge_cookie(&replies[0].1, addr(4009));
    // A wrong token: refused, nothing sent elsewhere.
    let replies = send_register(
        &mut tracker,
        t0,
        addr(4001),
        &advertising(1, token ^ 1, 0, elsewhere(), 0),
    );
    assert!(
        replies.iter().all(|(to, _)| *to == addr(4001)),
        "{replies:?}"
    );
}

#[test]
fn another_port_of_the_same_host_is_listed_at_once() {
    // A NAT with a port forward: the tracker sees the NAT's address at the port it mapped;
    // the node advertises the forwarded port. The same host can only point peers at itself.
    let t0 = Instant::now();
    let mut tracker = new_tracker(t0);
    let forwarded = addr(6881);
    let registered = register_advertising(&mut tracker, t0, addr(4001), forwarded);
    assert_eq!(registered.listed(), forwarded);
    let holder = registered.auth.token.get();
    let asker = register(&mut tracker, t0, addr(4002), 2, 0);
    announce(
        &mut tracker,
        t0,
        addr(4001),
        1,
        holder,
        hash(1),
        "file_A.txt",
    );
    assert_eq!(holder_addr(&mut tracker, t0, asker), forwarded);
    // Moving to another address forgets it until it is verified from there.
    let moved = SocketAddr::from(([127, 0, 0, 2], 4001));
    let moved_cookie = tracker.bep15.connection_id(t0, moved);
    let replies = send_register(
        &mut tracker,
        t0,
        moved,
        &advertising(1, holder, moved_cookie, elsewhere(), 0),
    );
    let (to_source, to_advertised): (Vec<_>, Vec<_>) =
        replies.iter().partition(|(to, _)| *to == moved);
    assert_eq!(listed(&to_source[0].1), moved);
    challenge_cookie(&to_advertised[0].1, elsewhere());
}
