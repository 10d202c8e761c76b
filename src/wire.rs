//! The wire format: every datagram the tracker and the nodes exchange.
//!
//! Two layers, as in smoltcp's `wire` module:
//!
//! * **Views.** `#[repr(C)]` structs made only of byte arrays (alignment 1, big-endian
//!   integers through [`U16`], [`U32`], [`U64`]), laid over the received bytes in place with
//!   bytemuck. Their sizes are asserted at compile time. A view checks nothing by itself.
//! * **Messages.** [`decode`] is the one constructor that checks: magic, version, kind, exact
//!   lengths, counts against the bytes actually present, names against [`check_name`]. It never
//!   panics, never allocates, and its error names the check that failed. [`Message::encode`]
//!   is its inverse: `decode(&buf[..msg.encode(&mut buf)?]) == Ok(msg)`. A field that
//!   stands for an enum (the reason of a [`Refusal`] or a [`Rejection`]) is decoded once, into
//!   the enum: the message carries a checked value, not the view, so no caller reads the
//!   number again.
//!
//! Every datagram starts with the 8-byte [`Header`]: magic `TRNT`, version, kind, two zero
//! bytes. A fixed body follows, then (for some kinds) a variable tail: a slice of fixed
//! records, a bitmap, piece data, or a name, always last.

use bytemuck::{Pod, Zeroable};
use std::fmt;

mod list;
pub use list::{
    LIST_ENTRIES_MAX, LIST_REPLY_OVERHEAD_BYTES, ListRecord, ListReply, ListRequest, list_entries,
    list_record, list_reply,
};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// First four bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"TRNT";
/// The protocol version this build speaks; others are refused.
pub const VERSION: u8 = 3;
/// Largest UDP payload over IPv4 (65,535 − 20 IP − 8 UDP). No datagram we build is larger.
pub const DATAGRAM_BYTES_MAX: usize = 65_507;
/// Longest file name, in bytes of UTF-8.
pub const NAME_BYTES_MAX: usize = 255;
/// Most versions (info hashes) a look-up reply lists for one name.
pub const LOOKUP_VERSIONS_MAX: usize = 8;
/// Most holders a look-up reply lists.
pub const LOOKUP_HOLDERS_MAX: usize = 64;
/// Most (uploader, file) records one [`Credit`] carries: a node reports what it verified
/// every few seconds in one datagram, which stays under the 1,232 bytes of a safe control
/// datagram (16 + 32 × 36 bytes after the header).
pub const CREDIT_RECORDS_MAX: usize = 32;
/// Most credit records a [`Lookup`] carries: with a full-length name it stays under the
/// 1,232 bytes of a safe control datagram (8 + 16 + 24 × 36 + 255).
pub const LOOKUP_CREDITS_MAX: usize = 24;
/// Most peers one [`Peers`] datagram lists (420 bytes in all).
pub const PEERS_PER_EXCHANGE_MAX: usize = 16;
/// Most chunks a file may have: bounds every bitmap and every manifest we accept, and keeps
/// a whole have-bitmap (32 KiB) inside one datagram.
pub const CHUNKS_MAX: u32 = 1 << 18;
/// Smallest and largest chunk sizes (powers of two).
pub const CHUNK_BYTES_MIN: u32 = 16 * 1024;
pub const CHUNK_BYTES_MAX: u32 = 64 * 1024 * 1024;
/// Length of a SHA-1 digest.
pub const HASH_BYTES: usize = 20;

/// A SHA-1 digest: a chunk's checksum or a file's info hash.
pub type Hash = [u8; HASH_BYTES];

macro_rules! big_endian {
    ($name:ident, $int:ty, $n:literal) => {
        #[doc = concat!("A big-endian `", stringify!($int), "` stored as bytes (alignment 1).")]
        #[repr(transparent)]
        #[derive(Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            pub const fn new(value: $int) -> Self {
                Self(value.to_be_bytes())
            }
            pub const fn get(self) -> $int {
                <$int>::from_be_bytes(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.get().fmt(f)
            }
        }

        impl From<$int> for $name {
            fn from(value: $int) -> Self {
                Self::new(value)
            }
        }
    };
}

big_endian!(U16, u16, 2);
big_endian!(U32, u32, 4);
big_endian!(U64, u64, 8);

/// Declares a field-less enum that travels on the wire as a `$repr` number, with `ALL` (every
/// value, in declaration order) and `from_repr` (the value a received number stands for, or
/// `None`), so that no lookup is written out by hand and none can miss a variant.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident: $repr:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $value:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[repr($repr)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant = $value,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The value `number` stands for on the wire, if any.
            pub fn from_repr(number: $repr) -> Option<$name> {
                match number {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// Kinds of datagram. Tracker protocol below 0x10, peer protocol from 0x10.
    pub enum Kind: u8 {
        Register = 0x01,
        Registered = 0x02,
        Announce = 0x03,
        Announced = 0x04,
        Lookup = 0x05,
        LookupReply = 0x06,
        Credit = 0x07,
        Exit = 0x08,
        ExitAck = 0x09,
        Refused = 0x0a,
        Challenge = 0x0b,
        ListRequest = 0x0c,
        ListReply = 0x0d,
        Welcome = 0x10,
        HaveRequest = 0x11,
        HaveMap = 0x12,
        ManifestRequest = 0x13,
        ManifestPart = 0x14,
        PieceRequest = 0x15,
        Piece = 0x16,
        Reject = 0x17,
        MtuProbe = 0x18,
        MtuProbeReply = 0x19,
        PacedPieceRequest = 0x1a,
        StampedPiece = 0x1b,
        Peers = 0x1c,
        InfoRequest = 0x1d,
        InfoPart = 0x1e,
    }
}

/// The 8 bytes in front of every datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Header {
    pub magic: [u8; 4],
    pub version: u8,
    pub kind: u8,
    pub reserved: [u8; 2],
}

/// Who is speaking to the tracker: a node id and the secret the tracker gave it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct NodeAuth {
    pub node_id: U32,
    /// Zero until the tracker has handed one out.
    pub token: U64,
}

/// Node → tracker: register, and later heartbeat. No smaller than [`Registered`] or
/// [`Challenge`], so that neither reply amplifies.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Register {
    pub auth: NodeAuth,
    /// The last [`Challenge`] cookie the tracker sent this address, or zero. A tracker keeps
    /// no state for a Register whose `auth` it does not accept until the cookie is echoed.
    pub cookie: U64,
    /// [`holdings_digest`] of what the tracker acknowledged holding for this node.
    pub holdings_digest: U64,
    /// Where the node asks to be given out to peers (`--advertise`: a NAT's outer address, or
    /// another interface of a multi-homed host), as [`ip_to_bytes`]; all zero (or port zero):
    /// the source address of this datagram. A tracker lists an advertised address only once
    /// it is known to reach this node (see [`Challenge`]), so that no one can send a swarm
    /// toward an address they merely claim.
    pub advertise_ip: [u8; 16],
    pub advertise_port: U16,
    pub reserved: [u8; 2],
    /// The last [`Challenge`] cookie the tracker sent to the advertised address, or zero.
    pub advertise_cookie: U64,
}

impl Register {
    /// The advertised address, when one is given (a port and a specified address).
    pub fn advertise(&self) -> Option<SocketAddr> {
        let addr = socket_addr(self.advertise_ip, self.advertise_port.get());
        (addr.port() != 0 && !addr.ip().is_unspecified()).then_some(addr)
    }
}

/// Tracker → node: accepted; `auth.token` is the node's secret from now on.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Registered {
    pub auth: NodeAuth,
    pub heartbeat_interval_ms: U32,
    /// [`holdings_digest`] of what the tracker records the node holding: when it differs
    /// from the node's own, the node announces every file again.
    pub holdings_digest: U64,
    /// The address the tracker gives peers for this node, as [`ip_to_bytes`]: the advertised
    /// one once it answered a [`Challenge`], otherwise the source of the node's datagrams.
    pub listed_ip: [u8; 16],
    pub listed_port: U16,
    pub reserved: [u8; 2],
}

impl Registered {
    pub fn listed(&self) -> SocketAddr {
        socket_addr(self.listed_ip, self.listed_port.get())
    }
}

/// Tracker → an address that sent a Register it cannot accept without proof that the
/// address receives: send the Register again with this cookie (a keyed MAC of the address
/// and the time, as BEP 15's connection id: the tracker keeps no state for it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Challenge {
    pub cookie: U64,
    /// The address this cookie is for, as [`ip_to_bytes`]: the source of the node's Register
    /// (echoed in [`Register::cookie`]) or the address it advertises (echoed in
    /// [`Register::advertise_cookie`]).
    pub ip: [u8; 16],
    pub port: U16,
    pub reserved: [u8; 2],
}

impl Challenge {
    pub fn addr(&self) -> SocketAddr {
        socket_addr(self.ip, self.port.get())
    }
}

/// One holding's share of a holdings digest: a file and how many of its chunks are held.
pub fn holding_digest_term(info_hash: &Hash, chunks_held: u32) -> u64 {
    let mut words = [0u8; 8];
    words.copy_from_slice(&info_hash[..8]);
    let mut z = u64::from_be_bytes(words);
    words.copy_from_slice(&info_hash[8..16]);
    z ^= u64::from_be_bytes(words).rotate_left(17) ^ u64::from(chunks_held).rotate_left(40);
    // SplitMix64's finaliser: every input bit reaches every output bit.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The digest of a set of holdings: the XOR of their [`holding_digest_term`]s, so that it is
/// kept up to date one holding at a time (XOR a term in to add it, again to remove it), and
/// zero for none. Not a secret: it only tells tracker and node apart when they disagree.
pub fn holdings_digest<'a>(holdings: impl IntoIterator<Item = (&'a Hash, u32)>) -> u64 {
    holdings.into_iter().fold(0, |digest, (hash, chunks)| {
        digest ^ holding_digest_term(hash, chunks)
    })
}

/// Node → tracker: "I hold `chunks_held` chunks of this file". Tail: the name.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Announce {
    pub auth: NodeAuth,
    pub info_hash: Hash,
    pub file_bytes: U64,
    pub chunk_bytes: U32,
    pub chunks_held: U32,
}

/// Tracker → node: the announce of `info_hash` was recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Announced {
    pub info_hash: Hash,
    pub chunks_held: U32,
}

/// Node → tracker: who holds files of this name? Tail: `credit_count` [`CreditRecord`]s
/// (at most [`LOOKUP_CREDITS_MAX`]), then the name. The credit the node gathered rides
/// along, as in a [`Credit`]: the tracker ranks holders by credit, so it should hear of it
/// soon, and a look-up goes anyway.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Lookup {
    pub auth: NodeAuth,
    pub credit_count: U16,
    pub reserved: [u8; 2],
}

/// Tracker → node, fixed part of the look-up reply. Tail: `version_count` [`VersionRecord`]s,
/// then `holder_count` [`HolderRecord`]s, then the name.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct LookupReply {
    pub version_count: u8,
    pub reserved: u8,
    pub holder_count: U16,
}

/// One version of a file: its identity and shape.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct VersionRecord {
    pub info_hash: Hash,
    pub file_bytes: U64,
    pub chunk_bytes: U32,
    /// How many nodes announced this version (the reply may list fewer).
    pub holder_count: U32,
}

/// One holder: which version, where, and how much it has uploaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct HolderRecord {
    pub node_id: U32,
    /// Index into the reply's versions.
    pub version: u8,
    pub reserved: u8,
    pub port: U16,
    /// IPv6, or IPv4-mapped IPv6.
    pub ip: [u8; 16],
    pub upload_credit_bytes: U64,
    pub chunks_held: U32,
}

/// Node → tracker, fixed part: "I received and verified these chunks". Tail:
/// `record_count` [`CreditRecord`]s (1 to [`CREDIT_RECORDS_MAX`]). A node gathers what it
/// verified for a few seconds and reports it in one datagram (issue 14: one per verified
/// chunk made a downloader send the tracker several a second).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Credit {
    pub auth: NodeAuth,
    pub record_count: U16,
    pub reserved: [u8; 2],
}

/// One uploader's share of a [`Credit`]: `chunks` chunks of `info_hash`, `bytes` in all,
/// received from `from_node` and verified.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct CreditRecord {
    pub from_node: U32,
    pub chunks: U32,
    pub bytes: U64,
    pub info_hash: Hash,
}

/// Node → tracker: leaving now.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Exit {
    pub auth: NodeAuth,
}

/// Tracker → node: the exit was recorded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ExitAck {
    pub node_id: U32,
}

wire_enum! {
    /// Why the tracker refused a request.
    pub enum RefusedReason: u16 {
        /// The node id is not registered (never was, expired, or exited): register again.
        UnknownNode = 1,
        /// The token does not match the one the tracker handed this node id.
        BadToken = 2,
        /// The tracker's tables are full.
        Full = 3,
        /// The announce contradicts what the tracker knows of this info hash.
        Conflict = 4,
    }
}

/// Tracker → node: a request was refused, and why. The layout on the wire; a decoded
/// datagram carries a [`Refusal`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Refused {
    pub request_kind: u8,
    pub reserved: u8,
    pub reason: U16,
}

/// A [`Refused`] checked by [`decode`]: its reason is one of [`RefusedReason`]'s (decode
/// refuses any other number), so a caller matches on the enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The kind of the request refused, as the tracker wrote it (not checked against
    /// [`Kind`]: it is only reported).
    pub request_kind: u8,
    pub reason: RefusedReason,
}

/// Node → node: "your request carried no valid cookie; here is one, ask again".
/// Never larger than the smallest request, so it cannot amplify.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Welcome {
    pub cookie: U64,
}

/// Node → node: the part shared by every peer request.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PeerAsk {
    /// The cookie the peer handed out in a [`Welcome`], proving we receive at this address.
    pub cookie: U64,
    /// The asker's node id, for logs and credit.
    pub node_id: U32,
    pub info_hash: Hash,
}

/// Node → node: which chunks of `info_hash` do you hold? (A bare [`PeerAsk`].)
pub type HaveRequest = PeerAsk;

/// Node → node, fixed part. Tail: part of the have-bitmap, chunk `first_chunk` (a multiple
/// of 8) in the high bit of its first byte, up to the last chunk or the end of the datagram:
/// a bitmap too long for the path goes as several parts.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct HaveMap {
    pub info_hash: Hash,
    pub node_id: U32,
    pub chunk_count: U32,
    pub first_chunk: U32,
}

/// Node → node: send me the chunk hashes from `first_chunk` on.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ManifestRequest {
    pub ask: PeerAsk,
    pub first_chunk: U32,
}

/// Node → node, fixed part. Tail: `hash_count` chunk hashes, then the name.
///
/// With [`MANIFEST_TREE`] in `flags`, the content is a directory tree: its info hash is the
/// SHA-1 of a multi-file info dictionary, which the asker fetches whole with
/// [`InfoRequest`] (the part then carries no hashes, only the name and the shape).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ManifestPart {
    pub info_hash: Hash,
    pub file_bytes: U64,
    pub chunk_bytes: U32,
    pub first_chunk: U32,
    pub hash_count: U16,
    pub flags: u8,
    pub reserved: u8,
}

/// [`ManifestPart::flags`]: the content is a tree, described by an info dictionary.
pub const MANIFEST_TREE: u8 = 0x01;

/// Node → node: send the info dictionary of the tree `ask.info_hash` from byte `offset` on
/// (a few [`InfoPart`]s, in order, as BitTorrent's metadata exchange, BEP 9, does).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct InfoRequest {
    pub ask: PeerAsk,
    pub offset: U32,
}

/// Node → node, fixed part. Tail: bytes `offset..` of the info dictionary (`info_bytes`
/// long in all) whose SHA-1 is `info_hash`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct InfoPart {
    pub info_hash: Hash,
    pub info_bytes: U32,
    pub offset: U32,
}

/// Node → node: send `length` bytes of `chunk` from `offset`, in datagrams of at most
/// `piece_bytes` of data each, as fast as you can.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PieceRequest {
    pub ask: PeerAsk,
    pub chunk: U32,
    pub offset: U32,
    pub length: U32,
    pub piece_bytes: U32,
}

/// Node → node: a [`PieceRequest`] from a downloader that paces this path: send its pieces
/// at `pace_kib_per_s` KiB/s (at least 1), each as a [`StampedPiece`] when it fits one
/// datagram. The asker measures what reaches it and sets the pace (see
/// `node::download::congestion`). A kind of its own, so that unpaced paths (loopback, the
/// simulation) keep the datagrams they had, to the byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PacedPieceRequest {
    pub request: PieceRequest,
    pub pace_kib_per_s: U32,
}

/// Node → node, fixed part. Tail: the data, at `offset` within `chunk`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Piece {
    pub info_hash: Hash,
    pub chunk: U32,
    pub offset: U32,
}

/// Node → node: a [`Piece`] answering a [`PacedPieceRequest`], stamped with `sent_us`, the
/// sender's clock when it sent the piece in microseconds (wrapping, from any start): the
/// receiver measures one-way queueing delay from it, as uTP does. Tail: the data.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct StampedPiece {
    pub piece: Piece,
    pub sent_us: U32,
}

/// Node → node: echo a datagram of `probe_bytes` (UDP payload), to learn whether the path
/// carries that size whole (see [`crate::mtu`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct MtuProbe {
    pub ask: PeerAsk,
    pub probe_bytes: U32,
}

/// Node → node, the echo of an [`MtuProbe`]. Tail: zeros, so that the datagram is
/// `probe_bytes` long.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct MtuProbeReply {
    pub info_hash: Hash,
    pub probe_bytes: U32,
}

/// Node → node, fixed part (peer exchange): other nodes that hold some of `info_hash` and
/// answered the sender. Tail: `peer_count` [`PeerRecord`]s (at most
/// [`PEERS_PER_EXCHANGE_MAX`]). Sent beside a have-map, to an address that proved with its
/// cookie that it receives, so that a swarm learns of new partial holders from each other
/// instead of asking the tracker every moment. What it lists is only a hint: the receiver
/// asks each listed address for its have-map like any other, and believes nothing else.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Peers {
    pub info_hash: Hash,
    pub node_id: U32,
    pub peer_count: U16,
    pub reserved: [u8; 2],
}

/// One peer of a [`Peers`] list: its id and address, and whether it holds every chunk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PeerRecord {
    pub node_id: U32,
    pub port: U16,
    /// 1: it holds the whole file; 0: part of it.
    pub complete: u8,
    pub reserved: u8,
    /// IPv6, or IPv4-mapped IPv6.
    pub ip: [u8; 16],
}

/// Smallest probe: an [`MtuProbeReply`] without padding.
pub const MTU_PROBE_BYTES_MIN: usize = size_of::<Header>() + size_of::<MtuProbeReply>();

wire_enum! {
    /// Why a peer refused a request.
    pub enum RejectReason: u16 {
        /// I do not share this info hash (any more).
        UnknownFile = 1,
        /// I do not hold this chunk (yet).
        MissingChunk = 2,
        /// The request does not fit the file (offset, length, piece size).
        BadRange = 3,
        /// I serve other peers now: ask again later, or ask another peer.
        Busy = 4,
        /// I hold this chunk but send the chunks others lack first: get it from another peer.
        Elsewhere = 5,
    }
}

/// Node → node: a request was refused. The layout on the wire; a decoded datagram carries a
/// [`Rejection`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Reject {
    pub info_hash: Hash,
    pub chunk: U32,
    pub reason: U16,
    pub reserved: [u8; 2],
}

/// A [`Reject`] checked by [`decode`]: its reason is one of [`RejectReason`]'s (decode refuses
/// any other number), so a caller matches on the enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub info_hash: Hash,
    /// The chunk of the refused request (0 when the whole file is unknown).
    pub chunk: u32,
    pub reason: RejectReason,
}

const _: () = {
    assert!(size_of::<Header>() == 8);
    assert!(size_of::<NodeAuth>() == 12);
    assert!(size_of::<Register>() == 56);
    assert!(size_of::<Registered>() == 44);
    assert!(size_of::<Challenge>() == 28);
    assert!(size_of::<Announce>() == 48);
    assert!(size_of::<Announced>() == 24);
    assert!(size_of::<Lookup>() == 16);
    assert!(
        size_of::<Header>()
            + size_of::<Lookup>()
            + LOOKUP_CREDITS_MAX * size_of::<CreditRecord>()
            + NAME_BYTES_MAX
            <= crate::mtu::SAFE_DATAGRAM_BYTES as usize
    );
    assert!(size_of::<LookupReply>() == 4);
    assert!(size_of::<VersionRecord>() == 36);
    assert!(size_of::<HolderRecord>() == 36);
    assert!(size_of::<Credit>() == 16);
    assert!(size_of::<CreditRecord>() == 36);
    assert!(
        size_of::<Header>() + size_of::<Credit>() + CREDIT_RECORDS_MAX * size_of::<CreditRecord>()
            <= crate::mtu::SAFE_DATAGRAM_BYTES as usize
    );
    assert!(size_of::<Peers>() == 28);
    assert!(size_of::<PeerRecord>() == 24);
    assert!(
        size_of::<Header>() + size_of::<Peers>() + PEERS_PER_EXCHANGE_MAX * size_of::<PeerRecord>()
            <= crate::mtu::SAFE_DATAGRAM_BYTES as usize
    );
    assert!(size_of::<Exit>() == 12);
    assert!(size_of::<ExitAck>() == 4);
    assert!(size_of::<Refused>() == 4);
    assert!(size_of::<Welcome>() == 8);
    assert!(size_of::<PeerAsk>() == 32);
    assert!(size_of::<HaveMap>() == 32);
    assert!(size_of::<ManifestRequest>() == 36);
    assert!(size_of::<ManifestPart>() == 40);
    assert!(size_of::<InfoRequest>() == 36);
    assert!(size_of::<InfoPart>() == 28);
    assert!(size_of::<PieceRequest>() == 48);
    assert!(size_of::<PacedPieceRequest>() == 52);
    assert!(size_of::<Piece>() == 28);
    assert!(size_of::<StampedPiece>() == 32);
    assert!(size_of::<Reject>() == 28);
    assert!(size_of::<MtuProbe>() == 36);
    assert!(size_of::<MtuProbeReply>() == 24);
    // Anti-amplification: a Welcome is never larger than the request it answers.
    assert!(size_of::<Welcome>() <= size_of::<PeerAsk>());
    assert!(size_of::<Registered>() <= size_of::<Register>());
    assert!(size_of::<Challenge>() <= size_of::<Register>());
    // A whole have-bitmap fits in one datagram.
    assert!(
        size_of::<Header>() + size_of::<HaveMap>() + (CHUNKS_MAX as usize).div_ceil(8)
            <= DATAGRAM_BYTES_MAX
    );
};

/// Bytes in front of a piece's data: header and [`Piece`].
pub const PIECE_OVERHEAD_BYTES: usize = size_of::<Header>() + size_of::<Piece>();
/// Bytes in front of a stamped piece's data: header and [`StampedPiece`]. A piece too large
/// to carry the stamp in one datagram goes unstamped.
pub const STAMPED_PIECE_OVERHEAD_BYTES: usize = size_of::<Header>() + size_of::<StampedPiece>();
/// Largest piece payload: one piece and its header fill one IPv4 UDP datagram.
pub const PIECE_BYTES_MAX: usize = DATAGRAM_BYTES_MAX - PIECE_OVERHEAD_BYTES;
/// Smallest piece a [`PieceRequest`] may ask for: with 1-byte pieces one 56-byte request
/// would cost the holder a datagram per byte. Under 1,200, so that a piece and its header
/// still fit the 1,280-byte minimum link MTU of IPv6.
pub const PIECE_BYTES_MIN: usize = 1024;
/// Most piece datagrams one [`PieceRequest`] may cause (`length / piece_bytes`, rounded up).
/// The node's downloader asks in runs of a quarter window of at most this many pieces
/// (`REQUEST_PIECES_MAX` in `node/download/transfer.rs` is this constant).
pub const PIECES_PER_REQUEST_MAX: u32 = 16;
/// Bytes of a [`ManifestPart`] in front of its hashes and name.
pub const MANIFEST_PART_OVERHEAD_BYTES: usize = size_of::<Header>() + size_of::<ManifestPart>();
/// Bytes of a [`LookupReply`] in front of its records and name.
pub const LOOKUP_REPLY_OVERHEAD_BYTES: usize = size_of::<Header>() + size_of::<LookupReply>();
/// Bytes of a [`HaveMap`] in front of its bitmap.
pub const HAVE_MAP_OVERHEAD_BYTES: usize = size_of::<Header>() + size_of::<HaveMap>();
/// Bytes of an [`InfoPart`] in front of its slice of the info dictionary.
pub const INFO_PART_OVERHEAD_BYTES: usize = size_of::<Header>() + size_of::<InfoPart>();
/// Largest info dictionary of a tree taken from a peer (or a `.torrent`): a tree of
/// [`crate::tree::paths::FILES_MAX`] files with paths of 100 bytes, and their hashes, fit.
/// A peer's claim of more is refused before anything is kept.
pub const INFO_BYTES_MAX: u32 = 16 << 20;
/// Most [`InfoPart`]s one [`InfoRequest`] is answered with: a round trip fetches about
/// 10 KB of a dictionary on a 1,500-byte path, and the request proved its address first.
pub const INFO_PARTS_PER_REQUEST_MAX: usize = 8;
/// Most chunk hashes one [`ManifestPart`] carries, leaving room for a full-length name.
pub const MANIFEST_HASHES_PER_PART_MAX: usize =
    (DATAGRAM_BYTES_MAX - size_of::<Header>() - size_of::<ManifestPart>() - NAME_BYTES_MAX)
        / HASH_BYTES;

/// A check that [`decode`] or [`check_name`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header.
    Truncated,
    BadMagic,
    BadVersion(u8),
    UnknownKind(u8),
    /// Reserved bytes that must be zero were not.
    ReservedNotZero,
    /// The fixed body of `kind` is longer than what arrived.
    ShortBody(Kind),
    /// The datagram is longer or shorter than its counts say, or longer than
    /// [`DATAGRAM_BYTES_MAX`].
    LengthMismatch(Kind),
    /// A count is over its named limit.
    CountOverLimit(Kind),
    /// A name is empty, too long, not UTF-8, hidden, or contains `/`, `\`, `..` or NUL.
    BadName,
    /// A size, chunk size or range is impossible, or a have-bitmap marks chunks past its count.
    BadShape(Kind),
    UnknownReason,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "shorter than a header"),
            DecodeError::BadMagic => write!(f, "wrong magic"),
            DecodeError::BadVersion(v) => write!(f, "unsupported version {v}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown kind {k:#04x}"),
            DecodeError::ReservedNotZero => write!(f, "reserved bytes not zero"),
            DecodeError::ShortBody(k) => write!(f, "{k:?} body truncated"),
            DecodeError::LengthMismatch(k) => write!(f, "{k:?} length does not match its counts"),
            DecodeError::CountOverLimit(k) => write!(f, "{k:?} count over limit"),
            DecodeError::BadName => write!(f, "bad file name"),
            DecodeError::BadShape(k) => write!(f, "{k:?} has an impossible size or range"),
            DecodeError::UnknownReason => write!(f, "unknown reason code"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a name from the network or the console is refused, in words for the user.
pub fn name_problem(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        return Some("the name is empty");
    }
    if name.len() > NAME_BYTES_MAX {
        return Some("the name is longer than 255 bytes");
    }
    if std::str::from_utf8(name).is_err() {
        return Some("the name is not UTF-8");
    }
    if name.contains(&0) {
        return Some("the name contains NUL");
    }
    if name.contains(&b'/') || name.contains(&b'\\') {
        return Some("the name contains a path separator");
    }
    if name.windows(2).any(|pair| pair == b"..") {
        return Some("the name contains '..'");
    }
    if name[0] == b'.' {
        return Some("the name starts with '.' (hidden names are reserved for the node's state)");
    }
    if name.iter().any(|byte| byte.is_ascii_control()) {
        return Some("the name contains a control character");
    }
    None
}

/// A file name safe to join to a node's directory: one plain path component.
pub fn check_name(name: &[u8]) -> Result<&str, DecodeError> {
    match name_problem(name) {
        Some(_) => Err(DecodeError::BadName),
        // The UTF-8 check above succeeded.
        None => std::str::from_utf8(name).map_err(|_| DecodeError::BadName),
    }
}

/// Is `chunk_bytes` a chunk size we accept, and does `file_bytes` fit in [`CHUNKS_MAX`] chunks?
pub fn shape_ok(file_bytes: u64, chunk_bytes: u32) -> bool {
    chunk_bytes.is_power_of_two()
        && (CHUNK_BYTES_MIN..=CHUNK_BYTES_MAX).contains(&chunk_bytes)
        && file_bytes.div_ceil(u64::from(chunk_bytes)) <= u64::from(CHUNKS_MAX)
}

/// Number of chunks of a file whose shape passed [`shape_ok`].
pub fn chunk_count(file_bytes: u64, chunk_bytes: u32) -> u32 {
    // Fits: shape_ok bounded it by CHUNKS_MAX.
    file_bytes.div_ceil(u64::from(chunk_bytes)) as u32
}

/// Length of chunk `chunk` of a file (the last one may be short).
pub fn chunk_len(file_bytes: u64, chunk_bytes: u32, chunk: u32) -> u32 {
    let start = u64::from(chunk) * u64::from(chunk_bytes);
    file_bytes.saturating_sub(start).min(u64::from(chunk_bytes)) as u32
}

/// Bytes of a have-bitmap for `chunks` chunks.
pub fn bitmap_len(chunks: u32) -> usize {
    chunks.div_ceil(8) as usize
}

/// A decoded, checked datagram. Borrows from the received bytes; nothing is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Register(&'a Register),
    Registered(&'a Registered),
    Challenge(&'a Challenge),
    Announce {
        fixed: &'a Announce,
        name: &'a str,
    },
    Announced(&'a Announced),
    Lookup {
        fixed: &'a Lookup,
        credits: &'a [CreditRecord],
        name: &'a str,
    },
    LookupReply {
        versions: &'a [VersionRecord],
        holders: &'a [HolderRecord],
        name: &'a str,
    },
    Credit {
        fixed: &'a Credit,
        records: &'a [CreditRecord],
    },
    Exit(&'a Exit),
    ExitAck(&'a ExitAck),
    /// A checked value rather than the view: see [`Refusal`].
    Refused(Refusal),
    /// `name` is empty for the start of the list (see `wire/list.rs`).
    ListRequest {
        fixed: &'a ListRequest,
        name: &'a str,
    },
    /// The entries are `records` with their `names`, one after another: see [`list_entries`].
    ListReply {
        fixed: &'a ListReply,
        records: &'a [ListRecord],
        names: &'a str,
    },
    Welcome(&'a Welcome),
    HaveRequest(&'a HaveRequest),
    HaveMap {
        fixed: &'a HaveMap,
        bitmap: &'a [u8],
    },
    ManifestRequest(&'a ManifestRequest),
    ManifestPart {
        fixed: &'a ManifestPart,
        hashes: &'a [Hash],
        name: &'a str,
    },
    InfoRequest(&'a InfoRequest),
    InfoPart {
        fixed: &'a InfoPart,
        bytes: &'a [u8],
    },
    PieceRequest(&'a PieceRequest),
    PacedPieceRequest(&'a PacedPieceRequest),
    Piece {
        fixed: &'a Piece,
        data: &'a [u8],
    },
    StampedPiece {
        fixed: &'a StampedPiece,
        data: &'a [u8],
    },
    /// A checked value rather than the view: see [`Rejection`].
    Reject(Rejection),
    MtuProbe(&'a MtuProbe),
    /// The padding is zeros and not kept: `probe_bytes` says how long the datagram was.
    MtuProbeReply(&'a MtuProbeReply),
    Peers {
        fixed: &'a Peers,
        peers: &'a [PeerRecord],
    },
}

/// Splits `bytes` into a `T` view and the rest, or says which kind was short.
fn split<T: Pod>(bytes: &[u8], kind: Kind) -> Result<(&T, &[u8]), DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::ShortBody(kind));
    }
    let (head, rest) = bytes.split_at(size_of::<T>());
    // Cannot fail: T is Pod with alignment 1 and `head` has exactly its size.
    let view = bytemuck::try_from_bytes(head).map_err(|_| DecodeError::ShortBody(kind))?;
    Ok((view, rest))
}

/// A body that must be exactly one `T`.
/// Bounds what one request can make the holder send (amplification): pieces of at least
/// [`PIECE_BYTES_MIN`], at most [`PIECES_PER_REQUEST_MAX`] of them.
fn check_piece_request(request: &PieceRequest, kind: Kind) -> Result<(), DecodeError> {
    let piece_bytes = request.piece_bytes.get();
    let length = request.length.get();
    if !(PIECE_BYTES_MIN..=PIECE_BYTES_MAX).contains(&(piece_bytes as usize))
        || length == 0
        || length.div_ceil(piece_bytes) > PIECES_PER_REQUEST_MAX
    {
        return Err(DecodeError::BadShape(kind));
    }
    Ok(())
}

fn exact<T: Pod>(bytes: &[u8], kind: Kind) -> Result<&T, DecodeError> {
    let (view, rest) = split::<T>(bytes, kind)?;
    if !rest.is_empty() {
        return Err(DecodeError::LengthMismatch(kind));
    }
    Ok(view)
}

/// A slice of `count` fixed records at the front of `bytes`.
fn records<T: Pod>(bytes: &[u8], count: usize, kind: Kind) -> Result<(&[T], &[u8]), DecodeError> {
    let len = count
        .checked_mul(size_of::<T>())
        .filter(|len| *len <= bytes.len())
        .ok_or(DecodeError::LengthMismatch(kind))?;
    let (head, rest) = bytes.split_at(len);
    let slice = bytemuck::try_cast_slice(head).map_err(|_| DecodeError::LengthMismatch(kind))?;
    Ok((slice, rest))
}

/// Decodes and checks one datagram. Never panics, never allocates.
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    if bytes.len() < size_of::<Header>() {
        return Err(DecodeError::Truncated);
    }
    let (header, body) = bytes.split_at(size_of::<Header>());
    let header: &Header = bytemuck::try_from_bytes(header).map_err(|_| DecodeError::Truncated)?;
    if header.magic != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if header.version != VERSION {
        return Err(DecodeError::BadVersion(header.version));
    }
    let kind = Kind::from_repr(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
    if header.reserved != [0; 2] {
        return Err(DecodeError::ReservedNotZero);
    }
    // A UDP socket can deliver more than we ever send (65,527 bytes over IPv6); such a
    // datagram could not be re-encoded, so it is refused rather than half-trusted.
    if bytes.len() > DATAGRAM_BYTES_MAX {
        return Err(DecodeError::LengthMismatch(kind));
    }
    let message = match kind {
        Kind::Register => {
            let register: &Register = exact(body, kind)?;
            if register.reserved != [0; 2] {
                return Err(DecodeError::ReservedNotZero);
            }
            Message::Register(register)
        }
        Kind::Registered => {
            let registered: &Registered = exact(body, kind)?;
            if registered.reserved != [0; 2] {
                return Err(DecodeError::ReservedNotZero);
            }
            Message::Registered(registered)
        }
        Kind::Challenge => {
            let challenge: &Challenge = exact(body, kind)?;
            if challenge.reserved != [0; 2] {
                return Err(DecodeError::ReservedNotZero);
            }
            Message::Challenge(challenge)
        }
        Kind::Announce => {
            let (fixed, name): (&Announce, _) = split(body, kind)?;
            if !shape_ok(fixed.file_bytes.get(), fixed.chunk_bytes.get())
                || fixed.chunks_held.get()
                    > chunk_count(fixed.file_bytes.get(), fixed.chunk_bytes.get())
            {
                return Err(DecodeError::BadShape(kind));
            }
            Message::Announce {
                fixed,
                name: check_name(name)?,
            }
        }
        Kind::Announced => Message::Announced(exact(body, kind)?),
        Kind::Lookup => {
            let (fixed, rest): (&Lookup, _) = split(body, kind)?;
            let count = usize::from(fixed.credit_count.get());
            if count > LOOKUP_CREDITS_MAX {
                return Err(DecodeError::CountOverLimit(kind));
            }
            if fixed.reserved != [0; 2] {
                return Err(DecodeError::ReservedNotZero);
            }
            let (credits, name) = records::<CreditRecord>(rest, count, kind)?;
            Message::Lookup {
                fixed,
                credits,
                name: check_name(name)?,
            }
        }
        Kind::LookupReply => {
            let (fixed, rest): (&LookupReply, _) = split(body, kind)?;
            let version_count = usize::from(fixed.version_count);
            let holder_count = usize::from(fixed.holder_count.get());
            if version_count > LOOKUP_VERSIONS_MAX || holder_count > LOOKUP_HOLDERS_MAX {
                return Err(DecodeError::CountOverLimit(kind));
            }
            if fixed.reserved != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            let (versions, rest) = records::<VersionRecord>(rest, version_count, kind)?;
            let (holders, name) = records::<HolderRecord>(rest, holder_count, kind)?;
            if holders.iter().any(|h| h.reserved != 0) {
                return Err(DecodeError::ReservedNotZero);
            }
            if versions
                .iter()
                .any(|v| !shape_ok(v.file_bytes.get(), v.chunk_bytes.get()))
                || holders
                    .iter()
                    .any(|h| usize::from(h.version) >= version_count)
            {
                return Err(DecodeError::BadShape(kind));
            }
            Message::LookupReply {
                versions,
                holders,
                name: check_name(name)?,
            }
        }
        Kind::Credit => {
            let (fixed, rest): (&Credit, _) = split(body, kind)?;
            let count = usize::from(fixed.record_count.get());
            if count > CREDIT_RECORDS_MAX {
                return Err(DecodeError::CountOverLimit(kind));
            }
            if fixed.reserved != [0; 2] {
                return Err(DecodeError::ReservedNotZero);
            }
            if count == 0 {
                return Err(DecodeError::BadShape(kind));
            }
            let (records, rest) = records::<CreditRecord>(rest, count, kind)?;
            if !rest.is_empty() {
                return Err(DecodeError::LengthMismatch(kind));
            }
            Message::Credit { fixed, records }
        }
        Kind::Exit => Message::Exit(exact(body, kind)?),
        Kind::ExitAck => Message::ExitAck(exact(body, kind)?),
        Kind::Refused => {
            let refused: &Refused = exact(body, kind)?;
            if refused.reserved != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            let reason =
                RefusedReason::from_repr(refused.reason.get()).ok_or(DecodeError::UnknownReason)?;
            Message::Refused(Refusal {
                request_kind: refused.request_kind,
                reason,
            })
        }
        Kind::ListRequest => {
            let (fixed, name) = list::decode_request(body)?;
            Message::ListRequest { fixed, name }
        }
        Kind::ListReply => {
            let (fixed, records, names) = list::decode_reply(body)?;
            Message::ListReply {
                fixed,
                records,
                names,
            }
        }
        Kind::Welcome => Message::Welcome(exact(body, kind)?),
        Kind::HaveRequest => Message::HaveRequest(exact(body, kind)?),
        Kind::HaveMap => {
            let (fixed, bitmap): (&HaveMap, _) = split(body, kind)?;
            let (count, first) = (fixed.chunk_count.get(), fixed.first_chunk.get());
            if count > CHUNKS_MAX {
                return Err(DecodeError::CountOverLimit(kind));
            }
            if !first.is_multiple_of(8) || (first >= count && !(first == 0 && count == 0)) {
                return Err(DecodeError::BadShape(kind));
            }
            let rest = bitmap_len(count) - (first / 8) as usize;
            if bitmap.len() > rest || (bitmap.is_empty() && rest > 0) {
                return Err(DecodeError::LengthMismatch(kind));
            }
            // Spare bits past the last chunk are zero, so that counting the set bits counts
            // chunks held (BitTorrent's bitfield rule).
            if bitmap.len() == rest {
                let spare_bits = bitmap_len(count) * 8 - count as usize;
                if bitmap
                    .last()
                    .is_some_and(|last| last & ((1u16 << spare_bits) - 1) as u8 != 0)
                {
                    return Err(DecodeError::BadShape(kind));
                }
            }
            Message::HaveMap { fixed, bitmap }
        }
        Kind::ManifestRequest => Message::ManifestRequest(exact(body, kind)?),
        Kind::ManifestPart => {
            let (fixed, rest): (&ManifestPart, _) = split(body, kind)?;
            let count = usize::from(fixed.hash_count.get());
            if count > MANIFEST_HASHES_PER_PART_MAX {
                return Err(DecodeError::CountOverLimit(kind));
            }
            if fixed.reserved != 0 || fixed.flags & !MANIFEST_TREE != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            let (file_bytes, chunk_bytes) = (fixed.file_bytes.get(), fixed.chunk_bytes.get());
            if !shape_ok(file_bytes, chunk_bytes)
                || u64::from(fixed.first_chunk.get()) + count as u64
                    > u64::from(chunk_count(file_bytes, chunk_bytes))
            {
                return Err(DecodeError::BadShape(kind));
            }
            let (hashes, name) = records::<Hash>(rest, count, kind)?;
            Message::ManifestPart {
                fixed,
                hashes,
                name: check_name(name)?,
            }
        }
        Kind::InfoRequest => Message::InfoRequest(exact(body, kind)?),
        Kind::InfoPart => {
            let (fixed, bytes): (&InfoPart, _) = split(body, kind)?;
            let total = fixed.info_bytes.get();
            if total > INFO_BYTES_MAX {
                return Err(DecodeError::CountOverLimit(kind));
            }
            // A part carries something, and nothing past the dictionary's end.
            let end = u64::from(fixed.offset.get()) + bytes.len() as u64;
            if bytes.is_empty() || end > u64::from(total) {
                return Err(DecodeError::BadShape(kind));
            }
            Message::InfoPart { fixed, bytes }
        }
        Kind::PieceRequest => {
            let request: &PieceRequest = exact(body, kind)?;
            check_piece_request(request, kind)?;
            Message::PieceRequest(request)
        }
        Kind::PacedPieceRequest => {
            let paced: &PacedPieceRequest = exact(body, kind)?;
            check_piece_request(&paced.request, kind)?;
            // 0 would mean unpaced, which has a kind of its own.
            if paced.pace_kib_per_s.get() == 0 {
                return Err(DecodeError::BadShape(kind));
            }
            Message::PacedPieceRequest(paced)
        }
        Kind::Piece => {
            let (fixed, data) = split(body, kind)?;
            if data.is_empty() {
                return Err(DecodeError::LengthMismatch(kind));
            }
            Message::Piece { fixed, data }
        }
        Kind::StampedPiece => {
            let (fixed, data) = split(body, kind)?;
            if data.is_empty() {
                return Err(DecodeError::LengthMismatch(kind));
            }
            Message::StampedPiece { fixed, data }
        }
        Kind::Reject => {
            let reject: &Reject = exact(body, kind)?;
            if reject.reserved != [0; 2] {
                return Err(DecodeError::ReservedNotZero);
            }
            let reason =
                RejectReason::from_repr(reject.reason.get()).ok_or(DecodeError::UnknownReason)?;
            Message::Reject(Rejection {
                info_hash: reject.info_hash,
                chunk: reject.chunk.get(),
                reason,
            })
        }
        Kind::MtuProbe => {
            let probe: &MtuProbe = exact(body, kind)?;
            let probe_bytes = probe.probe_bytes.get() as usize;
            if !(MTU_PROBE_BYTES_MIN..=DATAGRAM_BYTES_MAX).contains(&probe_bytes) {
                return Err(DecodeError::BadShape(kind));
            }
            Message::MtuProbe(probe)
        }
        Kind::MtuProbeReply => {
            let (fixed, padding): (&MtuProbeReply, _) = split(body, kind)?;
            if fixed.probe_bytes.get() as usize != bytes.len() {
                return Err(DecodeError::LengthMismatch(kind));
            }
            if padding.iter().any(|&byte| byte != 0) {
                return Err(DecodeError::ReservedNotZero);
            }
            Message::MtuProbeReply(fixed)
        }
        Kind::Peers => {
            let (fixed, rest): (&Peers, _) = split(body, kind)?;
            let count = usize::from(fixed.peer_count.get());
            if count > PEERS_PER_EXCHANGE_MAX {
                return Err(DecodeError::CountOverLimit(kind));
            }
            if fixed.reserved != [0; 2] {
                return Err(DecodeError::ReservedNotZero);
            }
            let (peers, rest) = records::<PeerRecord>(rest, count, kind)?;
            if !rest.is_empty() {
                return Err(DecodeError::LengthMismatch(kind));
            }
            if peers.iter().any(|p| p.reserved != 0) {
                return Err(DecodeError::ReservedNotZero);
            }
            if peers.iter().any(|p| p.complete > 1 || p.port.get() == 0) {
                return Err(DecodeError::BadShape(kind));
            }
            Message::Peers { fixed, peers }
        }
    };
    Ok(message)
}

/// Why [`Message::encode`] could not build a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer (or [`DATAGRAM_BYTES_MAX`]) is too small for the message.
    TooLong,
}

/// Appends byte strings to a buffer, refusing to pass its end or the datagram limit: the one
/// writer of both protocols' datagrams (ours, and BEP 15's in `bep15.rs`).
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    /// Starts a datagram of ours, of `kind`, in `buf`: its header is written.
    pub fn new(buf: &'b mut [u8], kind: Kind) -> Result<Self, EncodeError> {
        let mut writer = Writer::raw(buf);
        let header = Header {
            magic: MAGIC,
            version: VERSION,
            kind: kind as u8,
            reserved: [0; 2],
        };
        writer.put_pod(&header)?;
        Ok(writer)
    }

    /// Starts an empty datagram in `buf`, with no header (BEP 15's have their own).
    pub fn raw(buf: &'b mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    pub fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.tail_mut(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    pub fn put_pod<T: Pod>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.put(bytemuck::bytes_of(value))
    }

    /// Room left for a tail, and a way to fill it in place (piece data is copied once,
    /// from the file straight into the datagram).
    pub fn tail_mut(&mut self, len: usize) -> Result<&mut [u8], EncodeError> {
        let start = self.len;
        let end = start
            .checked_add(len)
            .filter(|end| *end <= DATAGRAM_BYTES_MAX)
            .ok_or(EncodeError::TooLong)?;
        let tail = self.buf.get_mut(start..end).ok_or(EncodeError::TooLong)?;
        self.len = end;
        Ok(tail)
    }

    /// The datagram's length.
    pub fn finish(self) -> usize {
        self.len
    }
}

impl Message<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            Message::Register(_) => Kind::Register,
            Message::Registered(_) => Kind::Registered,
            Message::Challenge(_) => Kind::Challenge,
            Message::Announce { .. } => Kind::Announce,
            Message::Announced(_) => Kind::Announced,
            Message::Lookup { .. } => Kind::Lookup,
            Message::LookupReply { .. } => Kind::LookupReply,
            Message::Credit { .. } => Kind::Credit,
            Message::Exit(_) => Kind::Exit,
            Message::ExitAck(_) => Kind::ExitAck,
            Message::Refused(_) => Kind::Refused,
            Message::ListRequest { .. } => Kind::ListRequest,
            Message::ListReply { .. } => Kind::ListReply,
            Message::Welcome(_) => Kind::Welcome,
            Message::HaveRequest(_) => Kind::HaveRequest,
            Message::HaveMap { .. } => Kind::HaveMap,
            Message::ManifestRequest(_) => Kind::ManifestRequest,
            Message::ManifestPart { .. } => Kind::ManifestPart,
            Message::InfoRequest(_) => Kind::InfoRequest,
            Message::InfoPart { .. } => Kind::InfoPart,
            Message::PieceRequest(_) => Kind::PieceRequest,
            Message::PacedPieceRequest(_) => Kind::PacedPieceRequest,
            Message::Piece { .. } => Kind::Piece,
            Message::StampedPiece { .. } => Kind::StampedPiece,
            Message::Reject(_) => Kind::Reject,
            Message::MtuProbe(_) => Kind::MtuProbe,
            Message::MtuProbeReply(_) => Kind::MtuProbeReply,
            Message::Peers { .. } => Kind::Peers,
        }
    }

    /// Writes the datagram into `buf` and returns its length. Does not check what
    /// [`decode`] checks: encoding a message that breaks a rule yields a datagram that
    /// `decode` refuses.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(buf, self.kind())?;
        match self {
            Message::Register(m) => w.put_pod(*m)?,
            Message::Registered(m) => w.put_pod(*m)?,
            Message::Challenge(m) => w.put_pod(*m)?,
            Message::Announce { fixed, name } => {
                w.put_pod(*fixed)?;
                w.put(name.as_bytes())?;
            }
            Message::Announced(m) => w.put_pod(*m)?,
            Message::Lookup {
                fixed,
                credits,
                name,
            } => {
                w.put_pod(*fixed)?;
                w.put(bytemuck::cast_slice(credits))?;
                w.put(name.as_bytes())?;
            }
            Message::LookupReply {
                versions,
                holders,
                name,
            } => {
                let version_count =
                    u8::try_from(versions.len()).map_err(|_| EncodeError::TooLong)?;
                let holder_count =
                    u16::try_from(holders.len()).map_err(|_| EncodeError::TooLong)?;
                w.put_pod(&LookupReply {
                    version_count,
                    reserved: 0,
                    holder_count: U16::new(holder_count),
                })?;
                w.put(bytemuck::cast_slice(versions))?;
                w.put(bytemuck::cast_slice(holders))?;
                w.put(name.as_bytes())?;
            }
            Message::Credit { fixed, records } => {
                w.put_pod(*fixed)?;
                w.put(bytemuck::cast_slice(records))?;
            }
            Message::Exit(m) => w.put_pod(*m)?,
            Message::ExitAck(m) => w.put_pod(*m)?,
            Message::Refused(refusal) => w.put_pod(&Refused {
                request_kind: refusal.request_kind,
                reserved: 0,
                reason: U16::new(refusal.reason as u16),
            })?,
            Message::ListRequest { fixed, name } => {
                w.put_pod(*fixed)?;
                w.put(name.as_bytes())?;
            }
            Message::ListReply {
                fixed,
                records,
                names,
            } => {
                w.put_pod(*fixed)?;
                w.put(bytemuck::cast_slice(records))?;
                w.put(names.as_bytes())?;
            }
            Message::Welcome(m) => w.put_pod(*m)?,
            Message::HaveRequest(m) => w.put_pod(*m)?,
            Message::HaveMap { fixed, bitmap } => {
                w.put_pod(*fixed)?;
                w.put(bitmap)?;
            }
            Message::ManifestRequest(m) => w.put_pod(*m)?,
            Message::ManifestPart {
                fixed,
                hashes,
                name,
            } => {
                w.put_pod(*fixed)?;
                w.put(bytemuck::cast_slice(hashes))?;
                w.put(name.as_bytes())?;
            }
            Message::InfoRequest(m) => w.put_pod(*m)?,
            Message::InfoPart { fixed, bytes } => {
                w.put_pod(*fixed)?;
                w.put(bytes)?;
            }
            Message::PieceRequest(m) => w.put_pod(*m)?,
            Message::PacedPieceRequest(m) => w.put_pod(*m)?,
            Message::Piece { fixed, data } => {
                w.put_pod(*fixed)?;
                w.put(data)?;
            }
            Message::StampedPiece { fixed, data } => {
                w.put_pod(*fixed)?;
                w.put(data)?;
            }
            Message::Reject(rejection) => w.put_pod(&Reject {
                info_hash: rejection.info_hash,
                chunk: U32::new(rejection.chunk),
                reason: U16::new(rejection.reason as u16),
                reserved: [0; 2],
            })?,
            Message::MtuProbe(m) => w.put_pod(*m)?,
            Message::MtuProbeReply(m) => {
                w.put_pod(*m)?;
                let padding = (m.probe_bytes.get() as usize)
                    .checked_sub(MTU_PROBE_BYTES_MIN)
                    .ok_or(EncodeError::TooLong)?;
                w.tail_mut(padding)?.fill(0);
            }
            Message::Peers { fixed, peers } => {
                w.put_pod(*fixed)?;
                w.put(bytemuck::cast_slice(peers))?;
            }
        }
        Ok(w.finish())
    }
}

/// An address as it travels: IPv6, with IPv4 mapped.
pub fn ip_to_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The inverse of [`ip_to_bytes`]: IPv4-mapped addresses come back as IPv4.
pub fn socket_addr(ip: [u8; 16], port: u16) -> SocketAddr {
    let v6 = Ipv6Addr::from(ip);
    match v6.to_ipv4_mapped() {
        Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        None => SocketAddr::new(IpAddr::V6(v6), port),
    }
}

/// Lower-case hex of a hash, as shown to users and in file names.
pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Parses 40 hex digits.
pub fn parse_hex(text: &str) -> Option<Hash> {
    let text = text.as_bytes();
    if text.len() != 2 * HASH_BYTES || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut hash = [0u8; HASH_BYTES];
    for (byte, pair) in hash.iter_mut().zip(text.chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests;
