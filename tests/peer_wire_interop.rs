//! The peer wire codec against a real client: libtorrent (Debian's `python3-libtorrent`,
//! run by `/usr/bin/python3`) seeds a small torrent on 127.0.0.1 at a port of its choosing;
//! the test connects with a plain `TcpStream`, speaks through `torrent::peer_wire` only,
//! and checks what libtorrent answers: its handshake, its extended handshake, that it has
//! every piece, an unchoke, a block of the file, and the info dictionary by BEP 9 (whose
//! SHA-1 must be the info hash). Then the other way: libtorrent, given only a magnet link
//! and our address, fetches the info dictionary from us by BEP 9 and downloads the file
//! from us, served by the test through the same codec. Last, our downloader's connection
//! (`peer_wire::leech`) fetches a whole file from a libtorrent seed.
//!
//! Skipped, with a visible message, when the package is missing (`apt-get install -y
//! python3-libtorrent`). Every wait is bounded by one deadline.

mod common;

use common::{PYTHON, libtorrent_available};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use torrent::peer_wire::leech::{self, Event, Leech, LeechFile};
use torrent::peer_wire::{
    self, Block, Decoded, Handshake, Message, Metadata, OurExtendedHandshake,
    decode_extended_handshake, decode_metadata, encode_extended_handshake,
};

/// The whole exchange, libtorrent's start included.
const DEADLINE: Duration = Duration::from_secs(60);
/// Bytes of the file: 7 pieces of 16 KiB, the last one short.
const FILE_BYTES: usize = 100_000;
const PIECE_BYTES: usize = 16 * 1024;
/// How long a read waits before the test looks at what libtorrent printed.
const POLL: Duration = Duration::from_millis(200);

/// Seeds `tiny.bin` from the directory given, as a v1 torrent of 16 KiB pieces (or of the
/// size given second), and prints its port, info hash and piece count once it is seeding;
/// ends when stdin closes.
const SEEDER: &str = r#"
import os, sys, time, libtorrent as lt
directory = sys.argv[1]
piece_bytes = int(sys.argv[2]) if len(sys.argv) > 2 else 16384
files = lt.file_storage()
lt.add_files(files, os.path.join(directory, 'tiny.bin'))
creator = lt.create_torrent(files, piece_bytes, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(creator, directory)
info = lt.torrent_info(creator.generate())
session = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
})
handle = session.add_torrent({'ti': info, 'save_path': directory})
deadline = time.time() + 30
while not handle.status().is_seeding and time.time() < deadline:
    # Woken by libtorrent's next alert (the check finishing is one), at most 100 ms later.
    session.wait_for_alert(100)
    session.pop_alerts()
print('SEEDING', session.listen_port(), info.info_hashes().v1, info.num_pieces(),
      handle.status().is_seeding, flush=True)
sys.stdin.read()
"#;

/// Kills the child when the test ends, pass or fail.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `script` with `args` under libtorrent's Python; its stdout lines come through the
/// receiver. Its stdin stays open until the process is dropped.
fn python(script: &str, args: &[&str]) -> (Process, Receiver<String>) {
    let mut child = Command::new(PYTHON)
        .args(["-c", script])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start libtorrent");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (Process(child), rx)
}

/// The first line starting with `prefix`, before `deadline`.
fn wait_line(rx: &Receiver<String>, prefix: &str, deadline: Instant) -> String {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return line,
            Ok(_) => {}
            Err(error) => panic!("no line starting with {prefix:?}: {error}"),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A libtorrent seed of `tiny.bin` in a scratch directory of its own (removed with it).
struct Seed {
    _process: Process,
    dir: PathBuf,
    port: u16,
    info_hash: [u8; 20],
    piece_count: u32,
}

impl Seed {
    /// Writes `content` to `tiny.bin` in a directory named after `name`, and seeds it in
    /// pieces of `piece_bytes`, by `deadline`.
    fn start(name: &str, content: &[u8], piece_bytes: u32, deadline: Instant) -> Seed {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tiny.bin"), content).unwrap();
        let (process, rx) = python(SEEDER, &[dir.to_str().unwrap(), &piece_bytes.to_string()]);
        let line = wait_line(&rx, "SEEDING ", deadline);
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert_eq!(fields[4], "True", "libtorrent is not seeding: {line}");
        let mut info_hash = [0u8; 20];
        for (i, byte) in info_hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&fields[2][2 * i..2 * i + 2], 16).unwrap();
        }
        Seed {
            _process: process,
            dir,
            port: fields[1].parse().unwrap(),
            info_hash,
            piece_count: fields[3].parse().unwrap(),
        }
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What libtorrent has shown us so far.
#[derive(Debug, Default)]
struct Seen {
    handshake: Option<Handshake>,
    /// The id libtorrent gave `ut_metadata`, and the size of its info dictionary.
    metadata: Option<(u8, u32)>,
    has_every_piece: bool,
    unchoked: bool,
    block_matches: bool,
    info_dictionary: Option<Vec<u8>>,
}

impl Seen {
    fn done(&self) -> bool {
        self.handshake.is_some()
            && self.metadata.is_some()
            && self.has_every_piece
            && self.unchoked
            && self.block_matches
            && self.info_dictionary.is_some()
    }
}

fn send(stream: &mut TcpStream, message: &Message<'_>) {
    let mut buf = vec![0u8; peer_wire::MESSAGE_BYTES_MAX];
    let len = message.encode(&mut buf).expect("encode");
    stream.write_all(&buf[..len]).expect("send");
}

#[test]
fn libtorrent_understands_our_peer_wire_and_we_understand_it() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED libtorrent_understands_our_peer_wire_and_we_understand_it: {PYTHON} \
             cannot import libtorrent (apt-get install -y python3-libtorrent)"
        );
        return;
    }
    let deadline = Instant::now() + DEADLINE;
    let content: Vec<u8> = (0..FILE_BYTES as u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let seed = Seed::start("torrent-peer-wire", &content, PIECE_BYTES as u32, deadline);
    let (port, info_hash, piece_count) = (seed.port, seed.info_hash, seed.piece_count);
    let info_hash_hex = hex(&info_hash);
    assert_eq!(piece_count as usize, FILE_BYTES.div_ceil(PIECE_BYTES));

    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to libtorrent");
    stream.set_nodelay(true).unwrap();
    let ours = Handshake::ours(info_hash, peer_wire::peer_id([42; 12]));
    stream.write_all(ours.as_bytes()).unwrap();
    let extended = encode_extended_handshake(&OurExtendedHandshake {
        metadata_bytes: None,
        listen_port: None,
        request_queue: 250,
        udp_port: None,
    });
    send(
        &mut stream,
        &Message::Extended {
            id: peer_wire::EXTENDED_HANDSHAKE_ID,
            payload: &extended,
        },
    );
    send(&mut stream, &Message::Interested);

    // The last piece is short: ask for all of it, so that the answer is one block.
    let last = piece_count - 1;
    let last_bytes = (FILE_BYTES - last as usize * PIECE_BYTES) as u32;
    let wanted = Block::new(last, 0, last_bytes);
    let mut seen = Seen::default();
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut log = Vec::new();
    while !seen.done() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "deadline passed; saw {seen:?}; messages {log:?}"
        );
        stream.set_read_timeout(Some(left)).unwrap();
        let read = stream.read(&mut chunk).expect("read from libtorrent");
        assert!(
            read > 0,
            "libtorrent closed; saw {seen:?}; messages {log:?}"
        );
        buffer.extend_from_slice(&chunk[..read]);
        let mut taken = 0;
        loop {
            let rest = &buffer[taken..];
            if seen.handshake.is_none() {
                match peer_wire::decode_handshake(rest).expect("libtorrent's handshake") {
                    Decoded::NeedBytes(_) => break,
                    Decoded::Whole { value, len } => {
                        seen.handshake = Some(*value);
                        taken += len;
                        continue;
                    }
                }
            }
            let (message, len) = match peer_wire::decode(rest) {
                Ok(Decoded::NeedBytes(_)) => break,
                Ok(Decoded::Whole { value, len }) => (value, len),
                Err(error) => panic!("libtorrent sent what we refuse: {error}"),
            };
            log.push(message.id());
            match message {
                Message::Extended { id: 0, payload } => {
                    let theirs = decode_extended_handshake(payload)
                        .unwrap_or_else(|error| panic!("{error}: {payload:?}"));
                    let id = theirs
                        .message_id(peer_wire::UT_METADATA)
                        .expect("ut_metadata");
                    let size = theirs.metadata_bytes.expect("metadata_size");
                    seen.metadata = Some((id, size));
                    let mut request = [0u8; 64];
                    let len = Metadata::Request { piece: 0 }.encode(&mut request).unwrap();
                    let payload = &request[..len];
                    send(&mut stream, &Message::Extended { id, payload });
                }
                Message::Extended { id, payload } if id == peer_wire::OUR_UT_METADATA_ID => {
                    let Ok(Metadata::Data {
                        piece: 0,
                        total_bytes,
                        data,
                    }) = decode_metadata(payload)
                    else {
                        panic!("not the metadata asked for: {payload:?}");
                    };
                    // Small enough to come in one piece.
                    assert_eq!(Some(total_bytes), seen.metadata.map(|(_, size)| size));
                    assert_eq!(data.len(), total_bytes as usize);
                    seen.info_dictionary = Some(data.to_vec());
                }
                Message::HaveAll => seen.has_every_piece = true,
                Message::Bitfield(bits) => {
                    peer_wire::check_bitfield(bits, piece_count).expect("bitfield");
                    let full =
                        (0..piece_count).all(|i| bits[i as usize / 8] & (0x80 >> (i % 8)) != 0);
                    seen.has_every_piece = full;
                }
                // libtorrent may unchoke more than once: one request is enough.
                Message::Unchoke if !seen.unchoked => {
                    seen.unchoked = true;
                    send(&mut stream, &Message::Request(&wanted));
                }
                Message::Piece { header, data } => {
                    assert_eq!((header.piece.get(), header.begin.get()), (last, 0));
                    let start = last as usize * PIECE_BYTES;
                    assert_eq!(data, &content[start..], "the block's bytes");
                    seen.block_matches = true;
                }
                Message::RejectRequest(block) => panic!("libtorrent rejected {block:?}"),
                _ => {}
            }
            taken += len;
        }
        buffer.drain(..taken);
    }

    let theirs = seen.handshake.unwrap();
    assert_eq!(theirs.info_hash, info_hash);
    // libtorrent speaks both extensions, and says who it is.
    assert!(
        theirs.fast() && theirs.extensions(),
        "{:?}",
        theirs.reserved
    );
    assert_eq!(&theirs.peer_id[..3], b"-LT", "{:?}", theirs.peer_id);
    let info = seen.info_dictionary.unwrap();
    assert_eq!(hex(&torrent::hash::sha1(&info)), info_hash_hex);
    eprintln!(
        "libtorrent {}: messages {log:?}, info dictionary of {} bytes",
        String::from_utf8_lossy(&theirs.peer_id[..8]),
        info.len()
    );
}

/// Given a magnet link and one peer's port, downloads into the directory given, with TCP
/// only and no encryption; prints whether it got the metadata and the whole file.
const DOWNLOADER: &str = r#"
import sys, time, libtorrent as lt
magnet, directory, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
session = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'out_enc_policy': 2, 'in_enc_policy': 2,
})
params = lt.parse_magnet_uri(magnet)
params.save_path = directory
handle = session.add_torrent(params)
handle.connect_peer(('127.0.0.1', port))
deadline = time.time() + 40
while time.time() < deadline and not handle.status().is_seeding:
    session.wait_for_alert(100)
    session.pop_alerts()
status = handle.status()
print('DONE', status.has_metadata, status.is_seeding, flush=True)
sys.stdin.read()
"#;

/// The info dictionary of a single file, v1, in 16 KiB pieces: what we serve by BEP 9.
fn info_dictionary(name: &str, content: &[u8]) -> Vec<u8> {
    use torrent::bencode::Value;
    let pieces: Vec<u8> = content
        .chunks(PIECE_BYTES)
        .flat_map(torrent::hash::sha1)
        .collect();
    Value::dict([
        ("length", Value::Int(content.len() as i64)),
        ("name", Value::bytes(name)),
        ("piece length", Value::Int(PIECE_BYTES as i64)),
        ("pieces", Value::Bytes(pieces)),
    ])
    .to_bytes()
}

#[test]
fn libtorrent_downloads_from_us_with_only_a_magnet_link() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED libtorrent_downloads_from_us_with_only_a_magnet_link: {PYTHON} cannot \
             import libtorrent (apt-get install -y python3-libtorrent)"
        );
        return;
    }
    let deadline = Instant::now() + DEADLINE;
    let dir: PathBuf =
        std::env::temp_dir().join(format!("torrent-peer-wire-magnet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let content: Vec<u8> = (0..FILE_BYTES as u32)
        .map(|i| (i * 13 + i / 509) as u8)
        .collect();
    let info = info_dictionary("served.bin", &content);
    let info_hash = torrent::hash::sha1(&info);
    let piece_count = FILE_BYTES.div_ceil(PIECE_BYTES) as u32;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted_tx, accepted) = channel();
    std::thread::spawn(move || _ = accepted_tx.send(listener.accept()));
    let magnet = format!("magnet:?xt=urn:btih:{}", hex(&info_hash));
    let (_downloader, said) = python(
        DOWNLOADER,
        &[&magnet, dir.to_str().unwrap(), &port.to_string()],
    );
    let left = deadline.saturating_duration_since(Instant::now());
    let (mut stream, _) = accepted
        .recv_timeout(left)
        .expect("libtorrent never connected")
        .unwrap();
    stream.set_nodelay(true).unwrap();

    // Served until libtorrent closes the connection (it drops seeds once it is one), or
    // says it is done.
    let mut done = None;
    let mut their_metadata_id = None;
    let mut handshaken = false;
    let mut served_metadata = 0;
    let mut served_blocks = 0;
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = vec![0u8; peer_wire::MESSAGE_BYTES_MAX];
    while done.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "deadline passed: served {served_blocks} blocks"
        );
        stream.set_read_timeout(Some(left.min(POLL))).unwrap();
        let read = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => read,
            // A reset once libtorrent is done with us ends the exchange as a close does.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                done = said.try_iter().find(|line| line.starts_with("DONE "));
                continue;
            }
            Err(error) => panic!("read from libtorrent: {error}"),
        };
        buffer.extend_from_slice(&chunk[..read]);
        let mut taken = 0;
        loop {
            let rest = &buffer[taken..];
            if !handshaken {
                match peer_wire::decode_handshake(rest).expect("libtorrent's handshake") {
                    Decoded::NeedBytes(_) => break,
                    Decoded::Whole { value, len } => {
                        assert_eq!(value.info_hash, info_hash);
                        assert!(value.fast() && value.extensions());
                        handshaken = true;
                        taken += len;
                        let ours = Handshake::ours(info_hash, peer_wire::peer_id([7; 12]));
                        stream.write_all(ours.as_bytes()).unwrap();
                        let extended = encode_extended_handshake(&OurExtendedHandshake {
                            metadata_bytes: Some(info.len() as u32),
                            listen_port: None,
                            request_queue: 250,
                            udp_port: None,
                        });
                        send(
                            &mut stream,
                            &Message::Extended {
                                id: peer_wire::EXTENDED_HANDSHAKE_ID,
                                payload: &extended,
                            },
                        );
                        send(&mut stream, &Message::HaveAll);
                        send(&mut stream, &Message::Unchoke);
                        continue;
                    }
                }
            }
            let (message, len) = match peer_wire::decode(rest) {
                Ok(Decoded::NeedBytes(_)) => break,
                Ok(Decoded::Whole { value, len }) => (value, len),
                Err(error) => panic!("libtorrent sent what we refuse: {error}"),
            };
            match message {
                Message::Extended { id: 0, payload } => {
                    let theirs = decode_extended_handshake(payload).unwrap();
                    their_metadata_id = theirs.message_id(peer_wire::UT_METADATA);
                }
                Message::Extended { id, payload } if id == peer_wire::OUR_UT_METADATA_ID => {
                    let Ok(Metadata::Request { piece }) = decode_metadata(payload) else {
                        panic!("not a metadata request: {payload:?}");
                    };
                    let total_bytes = info.len() as u32;
                    let piece_len = peer_wire::metadata_piece_len(total_bytes, piece).unwrap();
                    let start = piece as usize * peer_wire::METADATA_PIECE_BYTES as usize;
                    let data = &info[start..start + piece_len];
                    let reply = Metadata::Data {
                        piece,
                        total_bytes,
                        data,
                    };
                    let mut payload = vec![0u8; peer_wire::EXTENDED_MESSAGE_BYTES_MAX];
                    let payload_len = reply.encode(&mut payload).unwrap();
                    let id = their_metadata_id.expect("ut_metadata in their handshake");
                    let payload = &payload[..payload_len];
                    send(&mut stream, &Message::Extended { id, payload });
                    served_metadata += 1;
                }
                Message::Request(block) => {
                    let piece = block.piece.get();
                    assert!(piece < piece_count, "{block:?}");
                    let start = piece as usize * PIECE_BYTES + block.begin.get() as usize;
                    let end = start + block.length.get() as usize;
                    assert!(end <= content.len().min((piece as usize + 1) * PIECE_BYTES));
                    let header_len = peer_wire::encode_piece_header(
                        &mut out,
                        piece,
                        block.begin.get(),
                        block.length.get(),
                    )
                    .unwrap();
                    // The header in place, the block straight behind it, as a node will.
                    out[header_len..header_len + end - start].copy_from_slice(&content[start..end]);
                    stream.write_all(&out[..header_len + end - start]).unwrap();
                    served_blocks += 1;
                }
                _ => {}
            }
            taken += len;
        }
        buffer.drain(..taken);
    }

    let done = done.unwrap_or_else(|| wait_line(&said, "DONE ", deadline));
    assert_eq!(done, "DONE True True", "served {served_blocks} blocks");
    assert!(served_metadata >= 1);
    assert!(served_blocks >= piece_count as usize, "{served_blocks}");
    let downloaded = std::fs::read(dir.join("served.bin")).expect("the downloaded file");
    assert!(downloaded == content, "libtorrent's copy differs");
    eprintln!(
        "libtorrent fetched {} bytes of metadata in {served_metadata} message(s) and the \
         file in {served_blocks} blocks",
        info.len()
    );
}

/// Our downloading side of the peer wire (`peer_wire::leech`) fetches a whole file from a
/// libtorrent seed: pieces of 64 KiB in 16 KiB blocks, the last piece and block short,
/// requests pipelined; every byte equal to the original.
#[test]
fn our_leech_connection_downloads_a_file_from_libtorrent() {
    if !libtorrent_available() {
        eprintln!(
            "SKIPPED our_leech_connection_downloads_a_file_from_libtorrent: {PYTHON} cannot \
             import libtorrent (apt-get install -y python3-libtorrent)"
        );
        return;
    }
    const BYTES: usize = 300_000;
    const PIECE: u32 = 64 * 1024;
    let deadline = Instant::now() + DEADLINE;
    let content: Vec<u8> = (0..BYTES as u32)
        .map(|i| (i * 13 + i / 509) as u8)
        .collect();
    let seed = Seed::start("torrent-peer-wire-leech", &content, PIECE, deadline);
    let (port, info_hash) = (seed.port, seed.info_hash);
    let file = LeechFile {
        info_hash,
        file_bytes: BYTES as u64,
        piece_bytes: PIECE,
    };

    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to libtorrent");
    stream.set_read_timeout(Some(POLL)).unwrap();
    let mut leech = Leech::new(file, peer_wire::peer_id([43; 12]), Instant::now());
    let mut copy = vec![0u8; BYTES];
    let mut received = 0;
    // The blocks not yet asked, in order: (piece, begin, length).
    let mut to_ask: std::collections::VecDeque<(u32, u32, u32)> = (0..file.piece_count())
        .flat_map(|piece| {
            let len = file.piece_len(piece).unwrap();
            (0..len.div_ceil(peer_wire::BLOCK_BYTES)).map(move |block| {
                let begin = block * peer_wire::BLOCK_BYTES;
                (piece, begin, peer_wire::BLOCK_BYTES.min(len - begin))
            })
        })
        .collect();
    let mut buf = vec![0u8; leech::READ_BUFFER_BYTES_MAX];
    while received < BYTES {
        assert!(
            Instant::now() < deadline,
            "{received} of {BYTES} bytes by the deadline"
        );
        while let Some(&(piece, begin, length)) = to_ask.front() {
            if !leech.request(Instant::now(), piece, begin, length) {
                break;
            }
            to_ask.pop_front();
        }
        let out = leech.output().len();
        stream.write_all(leech.output()).expect("send");
        leech.sent(out);
        let room = leech.read_room();
        let read = match stream.read(&mut buf[..room]) {
            Ok(0) => panic!("libtorrent closed after {received} bytes"),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => 0,
            Err(error) => panic!("read from libtorrent: {error}"),
        };
        leech
            .receive(Instant::now(), &buf[..read], &mut |event| match event {
                Event::Block { piece, begin, data } => {
                    let at = piece as usize * PIECE as usize + begin as usize;
                    copy[at..at + data.len()].copy_from_slice(data);
                    received += data.len();
                }
                Event::Dropped(block) => {
                    to_ask.push_back((block.piece.get(), block.begin.get(), block.length.get()))
                }
                _ => {}
            })
            .unwrap_or_else(|close| panic!("closed: {close:?}"));
    }
    assert!(copy == content, "the copy differs from libtorrent's file");
    assert_eq!(leech.unrequested_blocks(), 0);
}
