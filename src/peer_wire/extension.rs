//! The payloads of extended messages (BEP 10): the extended handshake, and metadata
//! exchange (BEP 9), so that a peer with only a magnet link can fetch the info dictionary.
//! Both are bencoded dictionaries, read in place with [`Slice`] (canonical bencode only:
//! sorted keys, as libtorrent and the others write them) and bounded before use.

use super::{DecodeError, EncodeError};
use crate::bencode::{Slice, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The extended id of the extended handshake itself.
pub const EXTENDED_HANDSHAKE_ID: u8 = 0;
/// BEP 9's name for metadata exchange in an extended handshake's `m`.
pub const UT_METADATA: &str = "ut_metadata";
/// The extended id our handshake asks peers to send their BEP 9 messages to us with.
pub const OUR_UT_METADATA_ID: u8 = 1;
/// The key of our extended handshake that gives our node's UDP port: a node that sees it
/// knows the peer is one of ours and can reach it by our own UDP protocol there. BEP 10
/// leaves such keys to each client; issue 18 left this one to choose. Other clients ignore
/// keys they do not know.
pub const OUR_UDP_PORT_KEY: &str = "torrent_udp_port";
/// Bytes of a piece of metadata (BEP 9: 16 KiB, the last one shorter).
pub const METADATA_PIECE_BYTES: u32 = 16 * 1024;
/// The largest info dictionary taken from a peer: the same as from our own peers
/// ([`crate::wire::INFO_BYTES_MAX`], 16 MiB). A peer's claim of more is refused before
/// anything is kept.
pub const METADATA_BYTES_MAX: u32 = crate::wire::INFO_BYTES_MAX;
/// The most pieces of metadata: [`METADATA_BYTES_MAX`] in [`METADATA_PIECE_BYTES`] (1,024).
pub const METADATA_PIECES_MAX: u32 = METADATA_BYTES_MAX.div_ceil(METADATA_PIECE_BYTES);
/// The longest dictionary in front of a metadata message's data. libtorrent's is about
/// 50 bytes; the bound keeps finding its end (a few parses of a short prefix) cheap.
pub const METADATA_DICT_BYTES_MAX: usize = 256;

/// A peer's extended handshake, checked. Borrows from the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedHandshake<'a> {
    /// `m`: extension names and the ids the peer wants them sent with.
    messages: Option<Slice<'a>>,
    /// `metadata_size`: bytes of the info dictionary (1 to [`METADATA_BYTES_MAX`]).
    pub metadata_bytes: Option<u32>,
    /// `p`: the port the peer listens on (0 and out-of-range values are dropped).
    pub listen_port: Option<u16>,
    /// `v`: the client's name and version, as it writes them (not checked: for logs).
    pub client: Option<&'a [u8]>,
    /// `reqq`: how many requests the peer queues (the connection bounds what it uses).
    pub request_queue: Option<u32>,
    /// `yourip`: our address as the peer sees it.
    pub your_ip: Option<IpAddr>,
    /// `upload_only`: the peer does not download (a seed, or one that only shares).
    pub upload_only: bool,
    /// [`OUR_UDP_PORT_KEY`]: the peer is one of our nodes, whose UDP port this is.
    pub udp_port: Option<u16>,
}

impl ExtendedHandshake<'_> {
    /// The id the peer wants messages named `name` sent with; `None` when it does not list
    /// the name, lists 0 (disabled) or a number that is not a byte.
    pub fn message_id(&self, name: &str) -> Option<u8> {
        let id = self.messages?.get(name)?.as_int()?;
        u8::try_from(id).ok().filter(|id| *id != 0)
    }
}

/// Reads the payload of an extended message with id [`EXTENDED_HANDSHAKE_ID`]. Never
/// panics; allocates nothing. Fields of the wrong type or range are dropped, except
/// `metadata_size`, which sizes a later download and is refused when out of range.
pub fn decode_extended_handshake(payload: &[u8]) -> Result<ExtendedHandshake<'_>, DecodeError> {
    let bad = DecodeError::BadExtendedHandshake;
    let dict = Slice::parse(payload).map_err(|_| bad("not canonical bencode"))?;
    if dict.entries().is_none() {
        return Err(bad("not a dictionary"));
    }
    let messages = match dict.get("m") {
        None => None,
        Some(m) if m.entries().is_some() => Some(m),
        Some(_) => return Err(bad("'m' is not a dictionary")),
    };
    let metadata_bytes = match dict.get("metadata_size") {
        None => None,
        Some(value) => {
            let bytes = value
                .as_int()
                .ok_or(bad("'metadata_size' is not an integer"))?;
            if !(1..=i64::from(METADATA_BYTES_MAX)).contains(&bytes) {
                return Err(bad("'metadata_size' out of range"));
            }
            // In range: checked above.
            Some(bytes as u32)
        }
    };
    let int = |key| dict.get(key).and_then(|value| value.as_int());
    let your_ip = dict
        .get("yourip")
        .and_then(|value| value.as_bytes())
        .and_then(|bytes| match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes)
                .ok()
                .map(|ip| IpAddr::V4(Ipv4Addr::from(ip))),
            16 => <[u8; 16]>::try_from(bytes)
                .ok()
                .map(|ip| IpAddr::V6(Ipv6Addr::from(ip))),
            _ => None,
        });
    Ok(ExtendedHandshake {
        messages,
        metadata_bytes,
        listen_port: int("p")
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port != 0),
        client: dict.get("v").and_then(|value| value.as_bytes()),
        request_queue: int("reqq").and_then(|queue| u32::try_from(queue).ok()),
        your_ip,
        upload_only: int("upload_only").is_some_and(|flag| flag != 0),
        udp_port: int(OUR_UDP_PORT_KEY)
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port != 0),
    })
}

/// What our extended handshake says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OurExtendedHandshake {
    /// Bytes of the info dictionary, when we have it to give (BEP 9).
    pub metadata_bytes: Option<u32>,
    /// Our TCP port, when the peer connected to us from elsewhere.
    pub listen_port: Option<u16>,
    /// How many requests we queue for the peer.
    pub request_queue: u32,
    /// Our node's UDP port, under [`OUR_UDP_PORT_KEY`], when we are a node.
    pub udp_port: Option<u16>,
}

/// The payload of our extended handshake: `m` offers [`UT_METADATA`] as
/// [`OUR_UT_METADATA_ID`], `v` names us.
pub fn encode_extended_handshake(ours: &OurExtendedHandshake) -> Vec<u8> {
    let messages = Value::dict([(UT_METADATA, Value::Int(i64::from(OUR_UT_METADATA_ID)))]);
    let mut entries = vec![
        ("m", messages),
        ("reqq", Value::Int(i64::from(ours.request_queue))),
        (
            "v",
            Value::bytes(concat!("torrent ", env!("CARGO_PKG_VERSION"))),
        ),
    ];
    if let Some(bytes) = ours.metadata_bytes {
        entries.push(("metadata_size", Value::Int(i64::from(bytes))));
    }
    if let Some(port) = ours.listen_port {
        entries.push(("p", Value::Int(i64::from(port))));
    }
    if let Some(port) = ours.udp_port {
        entries.push((OUR_UDP_PORT_KEY, Value::Int(i64::from(port))));
    }
    Value::dict(entries).to_bytes()
}

/// A metadata message (BEP 9), checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metadata<'a> {
    /// `msg_type` 0: send me this piece of the info dictionary.
    Request { piece: u32 },
    /// `msg_type` 1: a piece, `total_bytes` the size of the whole dictionary. `data` is
    /// exactly the piece: [`METADATA_PIECE_BYTES`], the last one shorter.
    Data {
        piece: u32,
        total_bytes: u32,
        data: &'a [u8],
    },
    /// `msg_type` 2: I will not send this piece.
    Reject { piece: u32 },
}

/// Splits a payload into the dictionary at its front and the bytes after it, looking no
/// further than [`METADATA_DICT_BYTES_MAX`]. Bencode is prefix-free, so the one prefix that
/// parses as a whole value is the dictionary.
fn split_dict(payload: &[u8]) -> Result<(Slice<'_>, &[u8]), DecodeError> {
    let bad = DecodeError::BadMetadata;
    if payload.first() != Some(&b'd') {
        return Err(bad("not a dictionary"));
    }
    let ends =
        (2..=payload.len().min(METADATA_DICT_BYTES_MAX)).filter(|end| payload[end - 1] == b'e');
    for end in ends {
        if let Ok(dict) = Slice::parse(&payload[..end]) {
            return Ok((dict, &payload[end..]));
        }
    }
    Err(bad("no dictionary in its first 256 bytes"))
}

/// Reads the payload of a metadata message (an extended message with the id we gave
/// [`UT_METADATA`]). Never panics, never allocates. An unknown `msg_type` is refused:
/// BEP 9 says to ignore it, and the connection can, since the framing is intact.
pub fn decode_metadata(payload: &[u8]) -> Result<Metadata<'_>, DecodeError> {
    let bad = DecodeError::BadMetadata;
    let (dict, data) = split_dict(payload)?;
    let int = |key| dict.get(key).and_then(|value| value.as_int());
    let msg_type = int("msg_type").ok_or(bad("no integer 'msg_type'"))?;
    let piece = int("piece")
        .filter(|piece| (0..i64::from(METADATA_PIECES_MAX)).contains(piece))
        .ok_or(bad("no 'piece' within the metadata limit"))?;
    // Under METADATA_PIECES_MAX: checked above.
    let piece = piece as u32;
    match msg_type {
        0 | 2 if !data.is_empty() => Err(bad("bytes after a request or a reject")),
        0 => Ok(Metadata::Request { piece }),
        2 => Ok(Metadata::Reject { piece }),
        1 => {
            let total_bytes = int("total_size")
                .filter(|total| (1..=i64::from(METADATA_BYTES_MAX)).contains(total))
                .ok_or(bad("no 'total_size' within the metadata limit"))?;
            // Under METADATA_BYTES_MAX: checked above.
            let total_bytes = total_bytes as u32;
            if data.len()
                != metadata_piece_len(total_bytes, piece).ok_or(bad("piece past the end"))?
            {
                return Err(bad("data is not the piece's length"));
            }
            Ok(Metadata::Data {
                piece,
                total_bytes,
                data,
            })
        }
        _ => Err(bad("unknown 'msg_type'")),
    }
}

/// Bytes of metadata piece `piece` of a dictionary of `total_bytes`; `None` past its end.
pub fn metadata_piece_len(total_bytes: u32, piece: u32) -> Option<usize> {
    let start = u64::from(piece) * u64::from(METADATA_PIECE_BYTES);
    let left = u64::from(total_bytes)
        .checked_sub(start)
        .filter(|left| *left > 0)?;
    // At most METADATA_PIECE_BYTES.
    Some(left.min(u64::from(METADATA_PIECE_BYTES)) as usize)
}

impl Metadata<'_> {
    /// Writes the payload (dictionary, then data) into `buf` and returns its length; wrap
    /// it in a [`super::Message::Extended`] with the id the peer gave [`UT_METADATA`].
    /// Refuses what [`decode_metadata`] would refuse.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let (msg_type, piece, total, data): (i64, u32, Option<u32>, &[u8]) = match self {
            Metadata::Request { piece } => (0, *piece, None, &[]),
            Metadata::Data {
                piece,
                total_bytes,
                data,
            } => (1, *piece, Some(*total_bytes), data),
            Metadata::Reject { piece } => (2, *piece, None, &[]),
        };
        let mut entries = vec![
            ("msg_type", Value::Int(msg_type)),
            ("piece", Value::Int(i64::from(piece))),
        ];
        if let Some(total) = total {
            entries.push(("total_size", Value::Int(i64::from(total))));
        }
        let dict = Value::dict(entries).to_bytes();
        let len = dict.len() + data.len();
        let out = buf.get_mut(..len).ok_or(EncodeError::BufferTooSmall)?;
        out[..dict.len()].copy_from_slice(&dict);
        out[dict.len()..].copy_from_slice(data);
        decode_metadata(&buf[..len]).map_err(EncodeError::Refused)?;
        Ok(len)
    }
}
