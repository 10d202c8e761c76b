//! What one request can make a node send: a hostile peer (a raw UDP socket in this test)
//! earns a cookie, then asks a real holder for a whole chunk in tiny pieces, or in more
//! pieces than one request may cause. Every datagram that comes back within a deadline is
//! counted.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use torrent::wire::{self, Message, PeerAsk, U32, U64};

/// How long the socket waits for one more datagram before the count is taken as final.
const QUIET: Duration = Duration::from_millis(500);
/// The longest a count may take, whatever keeps arriving.
const COUNT_DEADLINE: Duration = Duration::from_secs(5);

/// A hostile peer: a socket of its own, the holder's address, the cookie it earned.
struct Peer {
    socket: UdpSocket,
    holder: SocketAddr,
    ask: PeerAsk,
}

impl Peer {
    /// Binds a socket and earns a cookie from `holder` with a first (cookie-less) request.
    fn new(holder: SocketAddr, info_hash: wire::Hash) -> Peer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the hostile socket");
        socket.set_read_timeout(Some(QUIET)).unwrap();
        let mut peer = Peer {
            socket,
            holder,
            ask: PeerAsk {
                cookie: U64::new(0),
                node_id: U32::new(666),
                info_hash,
            },
        };
        let deadline = Instant::now() + LINE_TIMEOUT;
        let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
        while peer.ask.cookie.get() == 0 {
            assert!(Instant::now() < deadline, "no cookie from the holder");
            let ask = peer.ask;
            peer.send(&Message::HaveRequest(&ask));
            while let Ok(len) = peer.socket.recv(&mut buf) {
                if let Ok(Message::Welcome(welcome)) = wire::decode(&buf[..len]) {
                    peer.ask.cookie = welcome.cookie;
                    break;
                }
            }
        }
        peer
    }

    fn send(&self, message: &Message<'_>) {
        let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
        let len = message.encode(&mut buf).expect("encode");
        self.socket.send_to(&buf[..len], self.holder).expect("send");
    }

    /// Sends one piece request and counts what comes back: (datagrams, piece datagrams).
    fn ask_and_count(&self, length: u32, piece_bytes: u32) -> (usize, usize) {
        let request = wire::PieceRequest {
            ask: self.ask,
            chunk: U32::new(0),
            offset: U32::new(0),
            length: U32::new(length),
            piece_bytes: U32::new(piece_bytes),
        };
        self.send(&Message::PieceRequest(&request));
        let deadline = Instant::now() + COUNT_DEADLINE;
        let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
        let (mut datagrams, mut pieces) = (0, 0);
        while Instant::now() < deadline {
            let Ok(len) = self.socket.recv(&mut buf) else {
                break; // Quiet for QUIET: nothing more is coming.
            };
            datagrams += 1;
            if let Ok(Message::Piece { .. }) = wire::decode(&buf[..len]) {
                pieces += 1;
            }
        }
        (datagrams, pieces)
    }
}

#[test]
fn one_request_causes_at_most_pieces_per_request_max_datagrams() {
    let scratch = Scratch::new("amplification");
    let name = "big.bin";
    let data = random_bytes(31, 1 << 20);
    scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    let mut holder = holder(&scratch, 1, tracker.addr, name, &["--chunk-size", "1M"]);
    let sharing = holder
        .proc
        .stdout_lines()
        .iter()
        .find(|l| l.starts_with(&format!("sharing {name} ")))
        .cloned()
        .unwrap();
    // "sharing big.bin (<40 hex>, ...)"
    let hex = &sharing[sharing.find('(').unwrap() + 1..][..40];
    let info_hash = wire::parse_hex(hex).expect("an info hash in the sharing line");
    let peer = Peer::new(holder.addr, info_hash);

    // The whole 1 MiB chunk in 1-byte pieces: a million datagrams for 56 bytes, before.
    let (datagrams, _) = peer.ask_and_count(1 << 20, 1);
    assert!(
        datagrams <= wire::PIECES_PER_REQUEST_MAX as usize,
        "one request in 1-byte pieces caused {datagrams} datagrams"
    );
    // Pieces just under the smallest allowed: refused too.
    let (datagrams, _) = peer.ask_and_count(
        wire::PIECES_PER_REQUEST_MAX * 1023,
        wire::PIECE_BYTES_MIN as u32 - 1,
    );
    assert_eq!(datagrams, 0, "pieces under PIECE_BYTES_MIN were served");
    // The whole chunk in the smallest pieces allowed: 1,024 datagrams, more than a request
    // may cause.
    let (datagrams, _) = peer.ask_and_count(1 << 20, wire::PIECE_BYTES_MIN as u32);
    assert!(
        datagrams <= wire::PIECES_PER_REQUEST_MAX as usize,
        "one request for 1,024 pieces caused {datagrams} datagrams"
    );
    // What the node's own downloader asks for at most is served whole.
    let most = wire::PIECES_PER_REQUEST_MAX * wire::PIECE_BYTES_MIN as u32;
    let (datagrams, pieces) = peer.ask_and_count(most, wire::PIECE_BYTES_MIN as u32);
    assert_eq!(
        (datagrams, pieces),
        (
            wire::PIECES_PER_REQUEST_MAX as usize,
            wire::PIECES_PER_REQUEST_MAX as usize
        )
    );

    // The refused requests were counted as malformed, and the holder still serves.
    holder.proc.send_line("status");
    let line = holder.proc.expect_line("datagrams: ");
    assert!(line.contains(" 3 malformed"), "{line}");
    let mut downloader = downloader(&scratch, 2, tracker.addr, name, &["--piece-size", "1024"]);
    assert_eq!(
        downloader.proc.expect_exit(DOWNLOAD_TIMEOUT),
        0,
        "{}",
        downloader.proc.describe()
    );
    assert_file_is(&scratch.node_dir(2).join(name), &data);
}

#[test]
fn piece_sizes_under_the_minimum_are_refused_on_the_command_line() {
    let scratch = Scratch::new("amplification-cli");
    let mut proc = spawn(
        "node",
        &scratch.root,
        &args(&["node", "--id", "1", "--piece-size", "1"]),
    );
    proc.close_stdin();
    assert_eq!(proc.expect_exit(LINE_TIMEOUT), 2, "{}", proc.describe());
    let stderr = proc.stderr_lines().join("\n");
    assert!(
        stderr.contains("--piece-size") && stderr.contains("too small: at least"),
        "{stderr}"
    );
}
