//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), kept in the library so that
//! `tests/fuzz_corpus.rs` replays the committed corpus through exactly the same checks under
//! `cargo test`. Each function panics when an invariant breaks; that is the finding.

use crate::{console, control, wire};

/// A datagram from anywhere: decoding never panics, and what decodes re-encodes to the very
/// same bytes (so lengths are conserved and `decode(encode(m)) == m`).
pub fn check_datagram(bytes: &[u8]) {
    let message = match wire::decode(bytes) {
        Ok(message) => message,
        Err(error) => {
            // Every refusal can be shown on one line.
            let text = error.to_string();
            assert!(!text.is_empty() && !text.contains('\n'));
            return;
        }
    };
    assert!(bytes.len() <= wire::DATAGRAM_BYTES_MAX);
    assert_eq!(message.kind() as u8, bytes[5]);
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    let len = match message.encode(&mut buf) {
        Ok(len) => len,
        Err(error) => panic!("{message:?} decoded but does not encode: {error:?}"),
    };
    assert_eq!(&buf[..len], bytes, "{message:?} re-encodes to other bytes");
    assert_eq!(wire::decode(&buf[..len]), Ok(message));
}

/// A console line of arbitrary bytes: parsing never panics, a name it accepts is one the
/// network would accept too, and every refusal is one printable line.
pub fn check_console_line(bytes: &[u8]) {
    let Ok(line) = std::str::from_utf8(bytes) else {
        return; // The console thread hands over only UTF-8 lines.
    };
    let parsed = console::parse(line);
    if line.len() > console::LINE_BYTES_MAX {
        assert!(parsed.is_err(), "a line over the limit was accepted");
    }
    match parsed {
        Ok(
            console::Command::Send { name }
            | console::Command::Download { name, .. }
            | console::Command::Export { name }
            | console::Command::List {
                from: console::ListFrom::Name(name),
                ..
            },
        ) => {
            assert!(
                wire::check_name(name.as_bytes()).is_ok(),
                "{name:?} was accepted"
            );
            // Quotes and backslashes go; every character of the name was typed.
            assert!(
                name.chars().all(|c| line.contains(c)),
                "{name:?} from {line:?}"
            );
        }
        Ok(_) => {}
        Err(error) => {
            let text = error.to_string();
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
    }
}

/// A line sent to the control socket, arbitrary bytes: parsing never panics, a name it
/// accepts is one the network would accept, every refusal is one line, and the reply to it
/// is one line of JSON that says `ok: false` with that reason.
pub fn check_control_request(bytes: &[u8]) {
    let Ok(line) = std::str::from_utf8(bytes) else {
        return; // A connection thread refuses a line that is not UTF-8 before parsing.
    };
    match control::parse_request(line) {
        Ok(control::Order::Command(
            console::Command::Send { name }
            | console::Command::Download { name, .. }
            | console::Command::Export { name }
            | console::Command::Unshare { name }
            | console::Command::List {
                from: console::ListFrom::Name(name) | console::ListFrom::After { name, .. },
                ..
            },
        )) => {
            assert!(
                wire::check_name(name.as_bytes()).is_ok(),
                "{name:?} was accepted"
            );
        }
        Ok(_) => {}
        Err(error) => {
            let reply = control::reply_line(control::Reply::refused(error.clone()));
            assert!(
                reply.ends_with('\n') && reply.matches('\n').count() == 1,
                "{reply:?}"
            );
            let back: serde_json::Value =
                serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{reply:?}: {e}"));
            assert_eq!(back["ok"], false);
            assert_eq!(back["error"].as_str(), Some(error.as_str()));
        }
    }
}

/// A datagram of either protocol (ours or BEP 15) sent to a fresh tracker by an address it
/// has never heard from: no panic, replies go only to the sender, and none is larger than
/// what it got, so the tracker cannot be used to amplify a flood at a spoofed address.
///
/// Except for a BEP 15 request that carries a valid connection id: that sender has proven
/// it receives at its address (only it got the connect reply), so a malformed request from
/// it may draw an error reply longer than itself (BEP 15's error). The fuzzer can produce
/// such an id: the tracker here is seeded, so its ids are constants that comparison tracing
/// finds (CI, 2026-12-07: a 16-byte scrape with no hashes drew a 34-byte error).
pub fn check_tracker_datagram(bytes: &[u8]) {
    let now = std::time::Instant::now();
    let mut tracker =
        crate::tracker::Tracker::new(crate::tracker::TrackerConfig::default(), 1, now);
    let from: std::net::SocketAddr = "192.0.2.7:6881".parse().unwrap_or_else(|_| unreachable!());
    let proven = crate::bep15::is_bep15(bytes)
        && bytes.get(..8).is_some_and(|id| {
            let id = u64::from_be_bytes(id.try_into().unwrap_or_default());
            tracker.bep15_connection_id_valid(now, from, id)
        });
    tracker.handle_datagram(now, from, bytes);
    tracker.handle_timeout(now);
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    while let Some(transmit) = tracker.poll_transmit(now, &mut buf) {
        assert_eq!(transmit.to, from, "a reply went to another address");
        assert!(
            proven || transmit.len <= bytes.len(),
            "a {}-byte datagram drew a {}-byte reply",
            bytes.len(),
            transmit.len
        );
    }
}

/// One download fed any sequence of peer messages, timeouts and hash results, from its
/// holders or a stranger: no panic, the transfer's account holds after every input, and
/// nothing counts (or is published) that did not match its SHA-1. The body is in the node,
/// whose parts it drives: see `node/download/fuzz.rs`. Returns whether the download
/// published the file, so that a corpus can show it reaches the end.
pub fn check_download_messages(bytes: &[u8]) -> bool {
    crate::node::check_download_messages(bytes).published
}

/// Bencoded bytes (a `.torrent`): decoding never panics, and what decodes is canonical, so it
/// re-encodes to the very same bytes.
///
/// Reading in place ([`crate::bencode::Slice`]) accepts exactly what decoding accepts, and
/// each entry's raw span decodes to the value decoding found under that key.
pub fn check_bencode(bytes: &[u8]) {
    let decoded = crate::bencode::decode(bytes);
    let slice = crate::bencode::Slice::parse(bytes);
    assert_eq!(
        decoded.is_ok(),
        slice.is_ok(),
        "decode and Slice::parse disagree"
    );
    if let Ok(value) = decoded {
        let mut out = Vec::new();
        value.encode(&mut out);
        assert_eq!(out, bytes, "decoded bencode re-encodes to other bytes");
        if let (crate::bencode::Value::Dict(entries), Ok(slice)) = (&value, slice) {
            let spans: Vec<_> = slice.entries().into_iter().flatten().collect();
            assert_eq!(spans.len(), entries.len());
            for (key, span) in spans {
                assert_eq!(
                    crate::bencode::decode(span.raw()).ok(),
                    entries.get(key).cloned()
                );
            }
        }
    }
}

/// A multi-file `.torrent` from anywhere: reading it never panics; what is accepted passes
/// every check a path from outside must pass (so that it can be placed beneath a directory,
/// with no two files on one path), its info hash is the SHA-1 of its info value's bytes as
/// given, its pieces cover every file's bytes exactly once, and written again it reads back
/// the same.
pub fn check_tree_torrent(bytes: &[u8]) {
    use crate::tree::paths;
    let read = match crate::metainfo::parse_tree_torrent(bytes) {
        Ok(read) => read,
        Err(problem) => {
            assert!(!problem.contains('\n'), "{problem:?}");
            return;
        }
    };
    let tree = &read.manifest;
    assert_eq!(wire::name_problem(tree.name().as_bytes()), None);
    let files = tree.files();
    assert!(!files.is_empty() && files.len() <= paths::FILES_MAX);
    for file in files {
        for component in file.path() {
            assert_eq!(paths::component_problem(component.as_bytes()), None);
        }
        assert_eq!(paths::path_problem(tree.name(), file.path()), None);
    }
    assert_eq!(paths::collision(files), None);
    let info = crate::bencode::Slice::parse(bytes)
        .ok()
        .and_then(|torrent| torrent.get("info"))
        .unwrap_or_else(|| panic!("accepted without an info value"));
    assert_eq!(tree.info_bytes(), info.raw());
    assert_eq!(tree.info_hash(), crate::hash::sha1(info.raw()));
    assert!(wire::shape_ok(tree.total_bytes(), tree.piece_bytes()));
    assert_eq!(u64::from(tree.piece_count()), tree.layout().piece_count());
    // Every file's bytes lie in exactly one span, in order, pieces full but the last.
    let layout = tree.layout();
    let mut covered = vec![0u64; files.len()];
    for piece in 0..layout.piece_count() {
        let mut piece_bytes = 0u64;
        for span in layout.spans(piece) {
            assert_eq!(span.offset_bytes, covered[span.file]);
            covered[span.file] += u64::from(span.len_bytes);
            piece_bytes += u64::from(span.len_bytes);
        }
        let range = layout.piece_range(piece);
        assert_eq!(piece_bytes, range.end - range.start);
    }
    let lengths: Vec<u64> = files.iter().map(|file| file.length_bytes()).collect();
    assert_eq!(covered, lengths);
    assert_eq!(lengths.iter().sum::<u64>(), tree.total_bytes());
    let again = crate::metainfo::tree_torrent_file(tree, None);
    let again = crate::metainfo::parse_tree_torrent(&again)
        .unwrap_or_else(|problem| panic!("written again, refused: {problem}"));
    assert_eq!(&again.manifest, tree);
}

/// What a node reads from outside our own protocol: a `.torrent` file, a magnet link, a
/// standard (BEP 15) tracker's reply. The first byte picks which; the rest is the input.
/// Nothing panics; what is accepted is something the rest of the node can use as is.
pub fn check_standard_input(bytes: &[u8]) {
    let Some((&which, input)) = bytes.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(torrent) = crate::metainfo::parse_torrent(input) {
                // The name and the shape passed the same checks as ones from the network.
                assert_eq!(wire::name_problem(torrent.name.as_bytes()), None);
                assert!(wire::shape_ok(torrent.file_bytes, torrent.chunk_bytes));
                assert!(input.len() <= crate::metainfo::TREE_TORRENT_BYTES_MAX);
            }
        }
        1 => {
            let link = String::from_utf8_lossy(input);
            if let Ok((info_hash, name)) = crate::metainfo::parse_magnet(&link) {
                let hex = wire::hex(&info_hash);
                assert!(
                    link.to_ascii_lowercase().contains(&hex),
                    "{hex} not in {link}"
                );
                if let Some(name) = name {
                    assert_eq!(wire::name_problem(name.as_bytes()), None);
                }
            }
        }
        _ => {
            for ipv6 in [false, true] {
                use crate::bep15::{Peers, Response};
                // A reply's parts account for every byte of it.
                let parts = match crate::bep15::decode_response(input, ipv6) {
                    Ok(Response::Connect(_)) => 16,
                    Ok(Response::Announce { peers, .. }) => {
                        let each = if matches!(peers, Peers::V6(_)) { 18 } else { 6 };
                        20 + peers.len() * each
                    }
                    Ok(Response::Scrape { stats, .. }) => 8 + stats.len() * 12,
                    Ok(Response::Error { message, .. }) => 8 + message.len(),
                    Err(error) => {
                        assert!(!error.to_string().contains('\n'));
                        continue;
                    }
                };
                assert_eq!(parts, input.len());
            }
        }
    }
}

/// What [`check_peer_wire`] read of a stream: for a corpus to show what its seeds reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerWireStream {
    /// The stream began with a whole handshake.
    pub handshake: bool,
    /// The id of each message read, in order (`None` for a keep-alive).
    pub messages: Vec<Option<u8>>,
    /// Refusals: of the stream, or of an extended message's payload.
    pub refusals: usize,
    /// Extended payloads read whole: extended handshakes and metadata messages.
    pub extension_payloads: usize,
}

/// A peer's TCP stream of arbitrary bytes: a handshake if it starts with one, then
/// messages. Decoding never panics and never asks for more than [`MESSAGE_BYTES_MAX`]
/// bytes, nor, cut short, for more than the message it then reads; every message
/// re-encodes to its very bytes; an extended handshake or metadata payload decodes without
/// panic, within its limits, and a metadata message round-trips; every refusal is one line.
///
/// [`MESSAGE_BYTES_MAX`]: crate::peer_wire::MESSAGE_BYTES_MAX
pub fn check_peer_wire(bytes: &[u8]) -> PeerWireStream {
    use crate::peer_wire::{self, Decoded, MESSAGE_BYTES_MAX};
    let mut seen = PeerWireStream::default();
    let mut rest = bytes;
    match peer_wire::decode_handshake(rest) {
        Ok(Decoded::Whole { value, len }) => {
            assert_eq!(value.as_bytes(), &rest[..len]);
            seen.handshake = true;
            rest = &rest[len..];
        }
        Ok(Decoded::NeedBytes(n)) => assert!(rest.len() + n == peer_wire::HANDSHAKE_BYTES),
        Err(error) => assert_one_line(&error.to_string()),
    }
    let mut buf = Vec::new();
    loop {
        match peer_wire::decode(rest) {
            Ok(Decoded::NeedBytes(n)) => {
                assert!((1..=MESSAGE_BYTES_MAX).contains(&n), "asks for {n} bytes");
                return seen;
            }
            Ok(Decoded::Whole { value, len }) => {
                assert!(len <= rest.len() && len <= MESSAGE_BYTES_MAX);
                let message = &rest[..len];
                // Cut short, the message asks for more, and never for more than it takes.
                for cut in [0, 1, 3, 4, 5, 6, len / 2, len - 1] {
                    if cut < len {
                        match peer_wire::decode(&message[..cut]) {
                            Ok(Decoded::NeedBytes(n)) => assert!(cut + n <= len, "{cut} + {n}"),
                            other => panic!("{value:?} cut at {cut}: {other:?}"),
                        }
                    }
                }
                buf.resize(len, 0);
                let written = value
                    .encode(&mut buf)
                    .unwrap_or_else(|error| panic!("{value:?} does not encode: {error:?}"));
                assert_eq!(
                    &buf[..written],
                    message,
                    "{value:?} re-encodes to other bytes"
                );
                check_extension_payload(&value, &mut seen);
                seen.messages.push(value.id());
                rest = &rest[len..];
            }
            Err(error) => {
                assert_one_line(&error.to_string());
                seen.refusals += 1;
                let Some(skip) = error.skip_bytes() else {
                    return seen;
                };
                assert!((1..=rest.len()).contains(&skip));
                rest = &rest[skip..];
            }
        }
    }
}

/// What [`check_peer_wire_leech`] saw our downloader's connection do with a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeechRun {
    /// The handshakes completed.
    pub opened: bool,
    /// Blocks that answered a request of ours.
    pub blocks: usize,
    /// Why the connection closed, if it did.
    pub closed: Option<crate::peer_wire::leech::Close>,
}

/// A peer's TCP stream of arbitrary bytes into our downloader's connection
/// ([`crate::peer_wire::leech::Leech`]), for a file of 3 pieces of 32 KiB (the last one
/// short) under the info hash the stream's handshake gives, if it starts with one. The
/// bytes go in runs as long as the connection takes, and blocks are asked for whenever it
/// has room. Never a panic; the read buffer and the requests in flight stay within their
/// bounds; every block handed back answers a request, byte range and all.
pub fn check_peer_wire_leech(bytes: &[u8]) -> LeechRun {
    use crate::peer_wire::leech::{self, Event, Leech, LeechFile};
    use crate::peer_wire::{self, BLOCK_BYTES, Decoded};
    let info_hash = match peer_wire::decode_handshake(bytes) {
        Ok(Decoded::Whole { value, .. }) => value.info_hash,
        _ => [0; 20],
    };
    let file = LeechFile {
        info_hash,
        file_bytes: 3 * 32 * 1024 - 1000,
        piece_bytes: 32 * 1024,
    };
    let now = std::time::Instant::now();
    let mut leech = Leech::new(file, peer_wire::peer_id([9; 12]), now);
    let mut run = LeechRun::default();
    // Every block of the file, asked in order as room allows.
    let mut to_ask: Vec<(u32, u32, u32)> = Vec::new();
    for piece in 0..file.piece_count() {
        let len = file.piece_len(piece).expect("a piece of the file");
        for begin in (0..len).step_by(BLOCK_BYTES as usize) {
            to_ask.push((piece, begin, BLOCK_BYTES.min(len - begin)));
        }
    }
    let mut asked: Vec<(u32, u32, u32)> = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        to_ask.retain(|&(piece, begin, length)| {
            if leech.request(now, piece, begin, length) {
                asked.push((piece, begin, length));
                false
            } else {
                true
            }
        });
        assert!(leech.in_flight() <= leech::REQUESTS_IN_FLIGHT_MAX);
        let out = leech.output().len();
        leech.sent(out);
        // Runs of 1 to 256 bytes, as the stream's bytes say, within the room.
        let run_len = (usize::from(rest[0]) + 1)
            .min(rest.len())
            .min(leech.read_room());
        assert!(run_len > 0, "no room in the read buffer");
        let (now_in, later) = rest.split_at(run_len);
        rest = later;
        let result = leech.receive(now, now_in, &mut |event| match event {
            Event::Open { .. } => run.opened = true,
            Event::Block { piece, begin, data } => {
                let answered = asked
                    .iter()
                    .position(|&(p, b, l)| (p, b, l as usize) == (piece, begin, data.len()));
                let index = answered.unwrap_or_else(|| panic!("unasked block {piece} {begin}"));
                asked.swap_remove(index);
                run.blocks += 1;
            }
            Event::Dropped(block) => {
                let key = (block.piece.get(), block.begin.get(), block.length.get());
                let index = asked.iter().position(|&a| a == key);
                asked.swap_remove(index.expect("a dropped block was asked"));
                to_ask.push(key);
            }
            Event::Has | Event::Unchoked | Event::Choked => {}
        });
        assert!(leech.read_room() <= leech::READ_BUFFER_BYTES_MAX);
        if let Err(close) = result {
            run.closed = Some(close);
            return run;
        }
    }
    run
}

fn assert_one_line(text: &str) {
    assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
}

/// An extended handshake (extended id 0) or a metadata message (the id we give
/// `ut_metadata`) read from an extended message's payload.
fn check_extension_payload(message: &crate::peer_wire::Message<'_>, seen: &mut PeerWireStream) {
    use crate::peer_wire::{self, Message, Metadata};
    let Message::Extended { id, payload } = *message else {
        return;
    };
    if id == peer_wire::EXTENDED_HANDSHAKE_ID {
        match peer_wire::decode_extended_handshake(payload) {
            Ok(handshake) => {
                seen.extension_payloads += 1;
                if let Some(bytes) = handshake.metadata_bytes {
                    assert!((1..=peer_wire::METADATA_BYTES_MAX).contains(&bytes));
                }
                assert_ne!(handshake.message_id(peer_wire::UT_METADATA), Some(0));
            }
            Err(error) => {
                assert_one_line(&error.to_string());
                seen.refusals += 1;
            }
        }
    } else if id == peer_wire::OUR_UT_METADATA_ID {
        match peer_wire::decode_metadata(payload) {
            Ok(metadata) => {
                seen.extension_payloads += 1;
                if let Metadata::Data {
                    piece,
                    total_bytes,
                    data,
                } = metadata
                {
                    assert!(total_bytes <= peer_wire::METADATA_BYTES_MAX);
                    assert_eq!(
                        peer_wire::metadata_piece_len(total_bytes, piece),
                        Some(data.len())
                    );
                }
                let mut buf = vec![0u8; payload.len() + 64];
                let len = metadata
                    .encode(&mut buf)
                    .unwrap_or_else(|error| panic!("{metadata:?} does not encode: {error:?}"));
                assert_eq!(peer_wire::decode_metadata(&buf[..len]), Ok(metadata));
            }
            Err(error) => {
                assert_one_line(&error.to_string());
                seen.refusals += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input CI's fuzzing found (2026-12-07): a BEP 15 scrape with no info hash and the
    /// connection id the seeded tracker hands this address. It draws a 34-byte error reply,
    /// which is allowed: the id proves the sender receives there. A forged id gets nothing.
    #[test]
    fn a_proven_bep15_sender_may_draw_an_error_reply() {
        let input = [
            230, 201, 116, 178, 100, 60, 107, 231, 0, 0, 0, 2, 0, 0, 0, 255,
        ];
        check_tracker_datagram(&input);
        let mut forged = input;
        forged[0] ^= 1;
        check_tracker_datagram(&forged);
    }
}
