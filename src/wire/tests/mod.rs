//! Unit tests of the wire format: literal byte fixtures for the exact layout, a round trip
//! for every kind, and one test per [`DecodeError`] variant (each refusal checked against
//! the valid datagram it was made from, so a test cannot pass by refusing everything).
//! The fixtures they share are here: one valid message of every kind, and byte helpers.

mod content;
mod corpus;
mod framing;
mod layout;
mod list;
mod values;

use super::*;

const AUTH: NodeAuth = NodeAuth {
    node_id: U32::new(7),
    token: U64::new(0x0102_0304_0506_0708),
};
const INFO_HASH: Hash = [0xab; HASH_BYTES];
const CHUNK_BYTES: u32 = CHUNK_BYTES_MIN;

/// 192.0.2.7 as it travels (IPv4-mapped IPv6).
const MAPPED_IP: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7];
static REGISTER: Register = Register {
    auth: AUTH,
    cookie: U64::new(0x1112_1314_1516_1718),
    holdings_digest: U64::new(0x2122_2324_2526_2728),
    advertise_ip: MAPPED_IP,
    advertise_port: U16::new(6881),
    reserved: [0; 2],
    advertise_cookie: U64::new(0x3132_3334_3536_3738),
};
static REGISTERED: Registered = Registered {
    auth: AUTH,
    heartbeat_interval_ms: U32::new(20_000),
    holdings_digest: U64::new(0x2122_2324_2526_2728),
    listed_ip: MAPPED_IP,
    listed_port: U16::new(6881),
    reserved: [0; 2],
};
static CHALLENGE: Challenge = Challenge {
    cookie: U64::new(0x1112_1314_1516_1718),
    ip: MAPPED_IP,
    port: U16::new(6881),
    reserved: [0; 2],
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
static LOOKUP: Lookup = Lookup {
    auth: AUTH,
    credit_count: U16::new(0),
    reserved: [0; 2],
};
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
    record_count: U16::new(2),
    reserved: [0; 2],
};
static CREDIT_RECORDS: [CreditRecord; 2] = [
    CreditRecord {
        from_node: U32::new(3),
        chunks: U32::new(2),
        bytes: U64::new(2 * CHUNK_BYTES as u64),
        info_hash: INFO_HASH,
    },
    CreditRecord {
        from_node: U32::new(4),
        chunks: U32::new(1),
        bytes: U64::new(CHUNK_BYTES as u64),
        info_hash: [0xcd; HASH_BYTES],
    },
];
static PEERS: Peers = Peers {
    info_hash: INFO_HASH,
    node_id: U32::new(9),
    peer_count: U16::new(2),
    reserved: [0; 2],
};
static PEER_RECORDS: [PeerRecord; 2] = [
    PeerRecord {
        node_id: U32::new(5),
        port: U16::new(4000),
        complete: 1,
        reserved: 0,
        ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 5],
    },
    PeerRecord {
        node_id: U32::new(6),
        port: U16::new(4001),
        complete: 0,
        reserved: 0,
        ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 6],
    },
];
static EXIT: Exit = Exit { auth: AUTH };
static EXIT_ACK: ExitAck = ExitAck {
    node_id: U32::new(7),
};
const REFUSED: Refusal = Refusal {
    request_kind: Kind::Announce as u8,
    reason: RefusedReason::Conflict,
};
/// [`REFUSED`]'s layout, for fixtures that alter it.
const REFUSED_VIEW: Refused = Refused {
    request_kind: Kind::Announce as u8,
    reserved: 0,
    reason: U16::new(RefusedReason::Conflict as u16),
};
static LIST_REQUEST: ListRequest = ListRequest {
    auth: AUTH,
    request_id: U32::new(0x0102_0304),
    info_hash: INFO_HASH,
    inclusive: 0,
    entries_max: 2,
    reserved: [0; 2],
};
static LIST_REPLY: ListReply = ListReply {
    request_id: U32::new(0x0102_0304),
    entry_count: U16::new(2),
    more: 1,
    reserved: 0,
    files_total: U32::new(9),
};
/// Two entries, in order: `a.bin` then `file_A.txt`.
static LIST_RECORDS: [ListRecord; 2] = [
    ListRecord {
        info_hash: [0xcd; HASH_BYTES],
        file_bytes: U64::new(0),
        chunk_bytes: U32::new(CHUNK_BYTES),
        holder_count: U32::new(1),
        complete_count: U32::new(1),
        name_bytes: 5,
        reserved: [0; 3],
    },
    ListRecord {
        info_hash: INFO_HASH,
        file_bytes: U64::new(100_000),
        chunk_bytes: U32::new(CHUNK_BYTES),
        holder_count: U32::new(3),
        complete_count: U32::new(2),
        name_bytes: 10,
        reserved: [0; 3],
    },
];
const LIST_NAMES: &str = "a.binfile_A.txt";
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
    first_chunk: U32::new(0),
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
    flags: 0,
    reserved: 0,
};
static INFO_REQUEST: InfoRequest = InfoRequest {
    ask: ASK,
    offset: U32::new(1_400),
};
static INFO_BYTES: &[u8] = b"les: a slice of an info dictionary";
static INFO_PART: InfoPart = InfoPart {
    info_hash: INFO_HASH,
    info_bytes: U32::new(5_000),
    offset: U32::new(1_400),
};
static HASHES: [Hash; 3] = [[1; HASH_BYTES], [2; HASH_BYTES], [3; HASH_BYTES]];
static PIECE_REQUEST: PieceRequest = PieceRequest {
    ask: ASK,
    chunk: U32::new(1),
    offset: U32::new(0),
    length: U32::new(CHUNK_BYTES),
    piece_bytes: U32::new(1400),
};
static MTU_PROBE: MtuProbe = MtuProbe {
    ask: ASK,
    probe_bytes: U32::new(1_472),
};
static MTU_PROBE_REPLY: MtuProbeReply = MtuProbeReply {
    info_hash: INFO_HASH,
    probe_bytes: U32::new(1_472),
};
static PIECE: Piece = Piece {
    info_hash: INFO_HASH,
    chunk: U32::new(1),
    offset: U32::new(1400),
};
static PACED_PIECE_REQUEST: PacedPieceRequest = PacedPieceRequest {
    request: PIECE_REQUEST,
    pace_kib_per_s: U32::new(12 << 10),
};
static STAMPED_PIECE: StampedPiece = StampedPiece {
    piece: PIECE,
    sent_us: U32::new(0x0102_0304),
};
const REJECT: Rejection = Rejection {
    info_hash: INFO_HASH,
    chunk: 4,
    reason: RejectReason::MissingChunk,
};
/// [`REJECT`]'s layout, for fixtures that alter it.
const REJECT_VIEW: Reject = Reject {
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
fn samples() -> [Message<'static>; 28] {
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
            credits: &[],
            name: "file_A.txt",
        },
        Message::LookupReply {
            versions: &VERSIONS,
            holders: &HOLDERS,
            name: "file_A.txt",
        },
        Message::Credit {
            fixed: &CREDIT,
            records: &CREDIT_RECORDS,
        },
        Message::Exit(&EXIT),
        Message::ExitAck(&EXIT_ACK),
        Message::Refused(REFUSED),
        Message::Challenge(&CHALLENGE),
        Message::ListRequest {
            fixed: &LIST_REQUEST,
            name: "file_A.txt",
        },
        Message::ListReply {
            fixed: &LIST_REPLY,
            records: &LIST_RECORDS,
            names: LIST_NAMES,
        },
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
        Message::Reject(REJECT),
        Message::MtuProbe(&MTU_PROBE),
        Message::MtuProbeReply(&MTU_PROBE_REPLY),
        Message::PacedPieceRequest(&PACED_PIECE_REQUEST),
        Message::StampedPiece {
            fixed: &STAMPED_PIECE,
            data: b"some piece data",
        },
        Message::Peers {
            fixed: &PEERS,
            peers: &PEER_RECORDS,
        },
        Message::InfoRequest(&INFO_REQUEST),
        Message::InfoPart {
            fixed: &INFO_PART,
            bytes: INFO_BYTES,
        },
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

/// A datagram of `kind` whose body is `fixed` as given, valid or not: for kinds whose message
/// carries a checked value, which [`Message::encode`] can only write valid.
fn raw<T: Pod>(kind: Kind, fixed: &T) -> Vec<u8> {
    [header(kind).as_slice(), bytemuck::bytes_of(fixed)].concat()
}

fn header(kind: Kind) -> Vec<u8> {
    vec![b'T', b'R', b'N', b'T', VERSION, kind as u8, 0, 0]
}

fn with_name(fixed: &[u8], name: &[u8]) -> Vec<u8> {
    [fixed, name].concat()
}

// ---------------------------------------------------------------- literal fixtures
