//! The BitTorrent peer wire protocol (BEP 3 over TCP), with the Fast extension (BEP 6) and
//! the extension protocol (BEP 10) that carries metadata exchange (BEP 9): the codec, and
//! the limits that keep a hostile peer's bytes from costing more than they are worth.
//! Used by the node to serve (issue 18): a standard client downloads a file the node holds
//! whole over TCP, beside our own UDP protocol in [`crate::wire`]. [`connection`] is one
//! such connection, sans-IO; `node/peer_wire_seed.rs` keeps the node's connections and
//! their limits; `reactor/peer_wire_sockets.rs` owns the sockets. Downloading from
//! standard clients does not use it yet.
//!
//! ## Words
//!
//! Our **chunk** is BitTorrent's **piece**: the unit with a SHA-1 and a bit in a bitfield.
//! Our **piece** is BitTorrent's **block**: the unit of a request, 16 KiB
//! ([`BLOCK_BYTES`]). In this module the words are BitTorrent's, as on the wire: `piece` is
//! an index into the info dictionary's `pieces`, and a block is `(piece, begin, length)`.
//!
//! ## Layers
//!
//! As in [`crate::wire`]: views, and checked messages.
//!
//! * **Views.** `#[repr(C)]` structs of byte arrays (alignment 1, big-endian through
//!   [`U32`]), laid over the received bytes with bytemuck, their sizes asserted at compile
//!   time: [`Handshake`], [`Block`] (request, cancel, reject request) and [`PieceHeader`].
//!   A view checks nothing by itself.
//! * **Messages.** [`decode_handshake`] and [`decode`] are the constructors that check. They
//!   never panic and never allocate; an error names the check that failed and prints on one
//!   line. [`Message::encode`] is the inverse of [`decode`], and refuses to write what
//!   `decode` would refuse.
//! * **Extension payloads** (`extension.rs`): the BEP 10 handshake and the BEP 9 messages,
//!   read in place with [`crate::bencode::Slice`], bounded.
//! * **A downloader's connection** ([`leech`]): sans-IO, over the codec; it asks for blocks
//!   the caller chooses and hands back those that answer its requests. Not yet used by the
//!   node (issue 18's downloading direction).
//!
//! ## Reading a stream
//!
//! A connection keeps the bytes received so far in a buffer. It calls [`decode_handshake`]
//! until the peer's 68-byte handshake is whole, then [`decode`] over and over. Each call
//! returns one of:
//!
//! * [`Decoded::NeedBytes`]`(n)`: read at least `n` more bytes, then call again. `n` is never
//!   more than [`MESSAGE_BYTES_MAX`], and it is given only after the length prefix (and the
//!   message id, when it has arrived) passed the limits of its kind: a buffer may grow by
//!   `n` without trusting the peer.
//! * [`Decoded::Whole`]: a message, borrowing the buffer, and how many bytes it took from
//!   the front of it.
//! * an error: close the connection and count it. One error leaves the stream in step: a
//!   request for more than [`REQUEST_BYTES_MAX`] ([`DecodeError::skip_bytes`] says how far to
//!   skip, and a Fast peer may be answered with a reject request).
//!
//! The length prefix is checked against the limit of the message's kind as soon as the id
//! byte is in, and against [`MESSAGE_BYTES_MAX`] before that, so nothing grows for a
//! length that no message of ours could have.
//!
//! ## Left to the connection
//!
//! * Fast messages are valid only when both handshakes set the Fast bit, extended messages
//!   only when both set the extension bit ([`Message::needs`] says which a message needs).
//! * A bitfield against the torrent's piece count ([`check_bitfield`]), and every piece
//!   index and block range against the torrent.
//! * Time: keep-alives (every 2 minutes at most, by BEP 3), the handshake timeout.
//! * Our nodes will recognise each other by a key of their own in the BEP 10 handshake and
//!   switch to our UDP protocol (issue 18): the key is [`OUR_UDP_PORT_KEY`], which gives
//!   the node's UDP port. A seed's connection sends it; nothing acts on it yet.
//!
//! ## Tests, and what a real client does
//!
//! `peer_wire/tests.rs` holds the unit tests. `tests/peer_wire_interop.rs` runs the codec
//! against libtorrent 2.0.8 both ways: as a downloader of a libtorrent seed, and as a seed
//! that libtorrent downloads from with only a magnet link. Seen there: libtorrent sets the
//! DHT bit as well (`reserved[7]` is 0x05), sends its extended handshake first (it gives
//! `ut_metadata` the id 2), then have all, unchoke, five allowed fast, and a second
//! unchoke. It requests 16 KiB blocks and closes the connection once it is a seed. The
//! fuzz target `fuzz/fuzz_targets/peer_wire.rs` checks a whole stream
//! (`fuzz_checks::check_peer_wire`); its seeds include libtorrent's replies as captured.
//!
//! ## Peer id
//!
//! [`peer_id`] makes ours: [`PEER_ID_PREFIX`] (`-TO0100-`, Azureus style), then 12 random
//! characters. `TO` is in no list of client codes we found: not in BEP 20's, libtorrent's
//! (`src/identify_client.cpp`) or Transmission's (`libtransmission/clients.cc`, 127
//! clients). The four digits are our version (0.1.0.0).

use crate::wire::{HASH_BYTES, Hash, U32};
use bytemuck::{Pod, Zeroable};
use std::fmt;

pub mod connection;
mod extension;
pub mod leech;
mod message;
#[cfg(test)]
mod tests;

pub use extension::{
    EXTENDED_HANDSHAKE_ID, ExtendedHandshake, METADATA_BYTES_MAX, METADATA_DICT_BYTES_MAX,
    METADATA_PIECE_BYTES, METADATA_PIECES_MAX, Metadata, OUR_UDP_PORT_KEY, OUR_UT_METADATA_ID,
    OurExtendedHandshake, UT_METADATA, decode_extended_handshake, decode_metadata,
    encode_extended_handshake, metadata_piece_len,
};
pub use message::{Id, Message, Needs, decode, encode_piece_header};

/// The protocol string of the handshake, after its length byte (19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Bytes of a handshake: length byte, protocol, reserved, info hash, peer id.
pub const HANDSHAKE_BYTES: usize = size_of::<Handshake>();
/// Bytes of a peer id.
pub const PEER_ID_BYTES: usize = 20;
/// A peer's id, as its handshake gives it.
pub type PeerId = [u8; PEER_ID_BYTES];

/// The reserved byte and bit that say "I speak the Fast extension" (BEP 6).
pub const RESERVED_FAST: (usize, u8) = (7, 0x04);
/// The reserved byte and bit that say "I speak the extension protocol" (BEP 10).
pub const RESERVED_EXTENSIONS: (usize, u8) = (5, 0x10);
/// The reserved bytes of our handshake: Fast and the extension protocol, nothing else.
pub const RESERVED_OURS: [u8; 8] = [0, 0, 0, 0, 0, 0x10, 0, 0x04];

/// The first 8 bytes of our peer id: `-`, our client code `TO`, our version as four
/// digits (major, minor, patch, 0), `-`. See the module doc for why `TO`.
pub const PEER_ID_PREFIX: [u8; 8] = *b"-TO0100-";

/// The size of a block: what clients request and what we request (BEP 3: "all current
/// implementations use 2^14").
pub const BLOCK_BYTES: u32 = 16 * 1024;
/// The largest block a peer may request of us, or send us: 8 blocks. A request for more is
/// refused ([`DecodeError::RequestTooLong`]): BEP 3 allows closing on more than 16 KiB, and
/// some old clients asked for up to 128 KiB.
pub const REQUEST_BYTES_MAX: u32 = 128 * 1024;
/// The most pieces a torrent may have on the peer wire: as many as our own format allows a
/// file ([`crate::wire::CHUNKS_MAX`]), since a node serves and fetches only those.
pub const PIECES_MAX: u32 = crate::wire::CHUNKS_MAX;
/// The longest bitfield: one bit per piece, for [`PIECES_MAX`] pieces (32 KiB).
pub const BITFIELD_BYTES_MAX: usize = PIECES_MAX.div_ceil(8) as usize;
/// Bytes of a piece message in front of its data: length prefix, id, piece, begin.
pub const PIECE_HEADER_BYTES: usize = 4 + 1 + size_of::<PieceHeader>();
/// The longest extended message (after its length prefix): a BEP 9 data message (its
/// dictionary and 16 KiB of metadata), any extended handshake seen in the wild (a few
/// hundred bytes), a peer exchange message of hundreds of peers. A message id we do not
/// know ([`Message::Unknown`]) has the same limit.
pub const EXTENDED_MESSAGE_BYTES_MAX: usize = 64 * 1024;
/// The longest message of any kind, length prefix included: a piece message carrying
/// [`REQUEST_BYTES_MAX`] bytes. [`Decoded::NeedBytes`] never asks for more.
pub const MESSAGE_BYTES_MAX: usize = PIECE_HEADER_BYTES + REQUEST_BYTES_MAX as usize;

/// The 68 bytes each side sends first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Handshake {
    /// 19, the length of [`PROTOCOL`].
    pub protocol_len: u8,
    pub protocol: [u8; 19],
    /// Feature bits: see [`RESERVED_FAST`] and [`RESERVED_EXTENSIONS`]; others are ignored.
    pub reserved: [u8; 8],
    pub info_hash: Hash,
    pub peer_id: PeerId,
}

impl Handshake {
    /// Our handshake for `info_hash`: Fast and extensions on.
    pub fn ours(info_hash: Hash, peer_id: PeerId) -> Handshake {
        Handshake {
            protocol_len: PROTOCOL.len() as u8,
            protocol: *PROTOCOL,
            reserved: RESERVED_OURS,
            info_hash,
            peer_id,
        }
    }

    /// Does the sender speak the Fast extension (BEP 6)?
    pub fn fast(&self) -> bool {
        self.reserved[RESERVED_FAST.0] & RESERVED_FAST.1 != 0
    }

    /// Does the sender speak the extension protocol (BEP 10)?
    pub fn extensions(&self) -> bool {
        self.reserved[RESERVED_EXTENSIONS.0] & RESERVED_EXTENSIONS.1 != 0
    }

    /// The [`HANDSHAKE_BYTES`] to send.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }
}

/// Request, cancel and reject request: a block of a piece.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Block {
    pub piece: U32,
    /// Offset of the block within the piece, in bytes.
    pub begin: U32,
    /// Bytes of the block: 1 to [`REQUEST_BYTES_MAX`] once decoded.
    pub length: U32,
}

impl Block {
    pub fn new(piece: u32, begin: u32, length: u32) -> Block {
        Block {
            piece: U32::new(piece),
            begin: U32::new(begin),
            length: U32::new(length),
        }
    }
}

/// The fixed part of a piece message; the block's data follows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PieceHeader {
    pub piece: U32,
    pub begin: U32,
}

const _: () = {
    assert!(size_of::<Handshake>() == 1 + 19 + 8 + HASH_BYTES + PEER_ID_BYTES);
    assert!(HANDSHAKE_BYTES == 68);
    assert!(size_of::<Block>() == 12);
    assert!(size_of::<PieceHeader>() == 8);
    assert!(PIECE_HEADER_BYTES == 13);
    // The piece message is the longest kind: every other limit is under it.
    assert!(4 + 1 + BITFIELD_BYTES_MAX <= MESSAGE_BYTES_MAX);
    assert!(4 + EXTENDED_MESSAGE_BYTES_MAX <= MESSAGE_BYTES_MAX);
    assert!(BLOCK_BYTES <= REQUEST_BYTES_MAX);
    assert!(MESSAGE_BYTES_MAX < u32::MAX as usize);
};

/// What [`decode`] or [`decode_handshake`] makes of the bytes received so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// At least this many more bytes are needed (1 to [`MESSAGE_BYTES_MAX`]).
    NeedBytes(usize),
    /// A whole message, and the bytes it took from the front of the buffer.
    Whole { value: T, len: usize },
}

/// A check that decoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The stream does not start with 19 and "BitTorrent protocol": another protocol, or an
    /// encrypted stream (MSE, which we do not speak).
    NotBitTorrent,
    /// A length prefix over [`MESSAGE_BYTES_MAX`] (less its 4 bytes), whatever the id.
    TooLong { length: u32 },
    /// A length that a message of this id cannot have.
    BadLength { id: u8, length: u32 },
    /// A request for 0 bytes, more than [`REQUEST_BYTES_MAX`], or past 2^32 within its
    /// piece. The message was whole: `len` bytes may be skipped and the stream goes on.
    RequestTooLong { block: Block, len: usize },
    /// A cancel or a reject request of 0 bytes, more than [`REQUEST_BYTES_MAX`], or past
    /// 2^32 within its piece: it names no block we could have asked for or been asked.
    BadBlock(Id),
    /// A piece message whose data ends past 2^32 within its piece.
    BadPiece,
    /// A bitfield of the wrong length for the torrent, or with spare bits set.
    BadBitfield,
    /// An extended handshake that is not a bencoded dictionary, or whose field is refused.
    BadExtendedHandshake(&'static str),
    /// A metadata message (BEP 9) refused, and why.
    BadMetadata(&'static str),
}

impl DecodeError {
    /// For an error that leaves the stream in step, how many bytes to skip to go on.
    pub fn skip_bytes(&self) -> Option<usize> {
        match self {
            DecodeError::RequestTooLong { len, .. } => Some(*len),
            _ => None,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotBitTorrent => write!(f, "not a BitTorrent handshake"),
            DecodeError::TooLong { length } => write!(f, "message of {length} bytes is too long"),
            DecodeError::BadLength { id, length } => {
                write!(f, "message id {id} cannot be {length} bytes long")
            }
            DecodeError::RequestTooLong { block, .. } => write!(
                f,
                "request for {} bytes at {} of piece {} refused",
                block.length.get(),
                block.begin.get(),
                block.piece.get()
            ),
            DecodeError::BadBlock(id) => write!(f, "{id:?} names an impossible block"),
            DecodeError::BadPiece => write!(f, "piece data ends past 2^32"),
            DecodeError::BadBitfield => write!(f, "bitfield of the wrong length or spare bits"),
            DecodeError::BadExtendedHandshake(why) => write!(f, "extended handshake: {why}"),
            DecodeError::BadMetadata(why) => write!(f, "metadata message: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer is too small for the message.
    BufferTooSmall,
    /// The message breaks a rule that [`decode`] checks, and would be refused.
    Refused(DecodeError),
    /// A [`Message::Unknown`] with an id we know: it would decode as another message.
    KnownId(u8),
}

/// The first 20 bytes of every handshake: the length byte and [`PROTOCOL`].
const HANDSHAKE_START: [u8; 20] = {
    let mut start = [PROTOCOL.len() as u8; 20];
    let mut i = 0;
    while i < PROTOCOL.len() {
        start[1 + i] = PROTOCOL[i];
        i += 1;
    }
    start
};

/// Reads the peer's handshake from the front of `bytes`. The length byte and the protocol
/// string are checked as they arrive, so a stream of something else is refused at its
/// first wrong byte. Never panics, never allocates.
pub fn decode_handshake(bytes: &[u8]) -> Result<Decoded<&Handshake>, DecodeError> {
    let arrived = bytes.len().min(HANDSHAKE_START.len());
    if bytes[..arrived] != HANDSHAKE_START[..arrived] {
        return Err(DecodeError::NotBitTorrent);
    }
    let Some(head) = bytes.get(..HANDSHAKE_BYTES) else {
        return Ok(Decoded::NeedBytes(HANDSHAKE_BYTES - bytes.len()));
    };
    // Cannot fail: Handshake is Pod with alignment 1 and `head` has exactly its size.
    let handshake = bytemuck::try_from_bytes(head).map_err(|_| DecodeError::NotBitTorrent)?;
    Ok(Decoded::Whole {
        value: handshake,
        len: HANDSHAKE_BYTES,
    })
}

/// Our peer id: [`PEER_ID_PREFIX`], then 12 characters from `random` (letters and digits,
/// so that the id reads well in logs and needs no escaping in an HTTP announce).
pub fn peer_id(random: [u8; 12]) -> PeerId {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = [0u8; PEER_ID_BYTES];
    id[..PEER_ID_PREFIX.len()].copy_from_slice(&PEER_ID_PREFIX);
    for (out, byte) in id[PEER_ID_PREFIX.len()..].iter_mut().zip(random) {
        *out = ALPHABET[usize::from(byte) % ALPHABET.len()];
    }
    id
}

/// Checks a bitfield against the torrent's `piece_count`: one bit per piece, rounded up to
/// whole bytes, and the spare bits of the last byte clear (BEP 3: drop the connection
/// otherwise).
pub fn check_bitfield(bits: &[u8], piece_count: u32) -> Result<(), DecodeError> {
    if piece_count == 0 || piece_count > PIECES_MAX {
        return Err(DecodeError::BadBitfield);
    }
    if bits.len() != piece_count.div_ceil(8) as usize {
        return Err(DecodeError::BadBitfield);
    }
    let spare = (bits.len() * 8) as u32 - piece_count;
    let last = bits.last().copied().unwrap_or(0);
    if spare > 0 && last & ((1u8 << spare) - 1) != 0 {
        return Err(DecodeError::BadBitfield);
    }
    Ok(())
}
