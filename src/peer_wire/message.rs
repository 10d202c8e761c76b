//! The messages that follow the handshake: a 4-byte big-endian length, then (unless the
//! length is 0, a keep-alive) an id byte and the body. [`decode`] checks the length against
//! its kind's limits before anything else; [`Message::encode`] writes one.

use super::{
    BITFIELD_BYTES_MAX, Block, DecodeError, Decoded, EXTENDED_MESSAGE_BYTES_MAX, EncodeError,
    MESSAGE_BYTES_MAX, PIECE_HEADER_BYTES, PieceHeader, REQUEST_BYTES_MAX,
};
use crate::wire::wire_enum;

wire_enum! {
    /// Message ids: BEP 3's from 0 (`Port` is BEP 5's), BEP 6's from 13, BEP 10's 20.
    pub enum Id: u8 {
        Choke = 0,
        Unchoke = 1,
        Interested = 2,
        NotInterested = 3,
        Have = 4,
        Bitfield = 5,
        Request = 6,
        Piece = 7,
        Cancel = 8,
        Port = 9,
        Suggest = 13,
        HaveAll = 14,
        HaveNone = 15,
        RejectRequest = 16,
        AllowedFast = 17,
        Extended = 20,
    }
}

/// What a message needs both handshakes to have announced before it may be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: BEP 3 (and BEP 5's port, which anyone may ignore).
    Nothing,
    /// The Fast extension (BEP 6).
    Fast,
    /// The extension protocol (BEP 10).
    Extensions,
}

/// A decoded, checked message. Borrows from the received bytes; nothing is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A length of 0: nothing but proof of life.
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have {
        piece: u32,
    },
    /// One bit per piece, piece 0 in the high bit of the first byte. Its length is checked
    /// against the torrent by [`super::check_bitfield`], not here.
    Bitfield(&'a [u8]),
    Request(&'a Block),
    Piece {
        header: &'a PieceHeader,
        /// The block's data: 1 to [`REQUEST_BYTES_MAX`] bytes.
        data: &'a [u8],
    },
    Cancel(&'a Block),
    /// The sender's DHT port (BEP 5). We run no DHT: accepted and ignored.
    Port(u16),
    Suggest {
        piece: u32,
    },
    HaveAll,
    HaveNone,
    RejectRequest(&'a Block),
    AllowedFast {
        piece: u32,
    },
    /// A BEP 10 message: `id` 0 is the extended handshake (read it with
    /// [`super::decode_extended_handshake`]), others are the ids we gave in ours (BEP 9's
    /// with [`super::decode_metadata`]).
    Extended {
        id: u8,
        payload: &'a [u8],
    },
    /// A message id we do not know, at most [`EXTENDED_MESSAGE_BYTES_MAX`] long: framing
    /// is intact, so a connection may ignore it.
    Unknown {
        id: u8,
        payload: &'a [u8],
    },
}

/// The lengths (after the prefix, the id byte included) a message of `id` may have.
fn length_range(id: u8) -> (u32, u32) {
    let block = 1 + size_of::<Block>() as u32;
    match Id::from_repr(id) {
        Some(Id::Choke | Id::Unchoke | Id::Interested | Id::NotInterested) => (1, 1),
        Some(Id::HaveAll | Id::HaveNone) => (1, 1),
        Some(Id::Have | Id::Suggest | Id::AllowedFast) => (5, 5),
        // A torrent has at least one piece, so a bitfield at least one byte.
        Some(Id::Bitfield) => (2, 1 + BITFIELD_BYTES_MAX as u32),
        Some(Id::Request | Id::Cancel | Id::RejectRequest) => (block, block),
        Some(Id::Piece) => (
            1 + size_of::<PieceHeader>() as u32 + 1,
            1 + size_of::<PieceHeader>() as u32 + REQUEST_BYTES_MAX,
        ),
        Some(Id::Port) => (3, 3),
        // An extended message has at least its extended id.
        Some(Id::Extended) => (2, EXTENDED_MESSAGE_BYTES_MAX as u32),
        None => (1, EXTENDED_MESSAGE_BYTES_MAX as u32),
    }
}

/// Is a block's length one we serve or ask for, and does it end within 2^32 of its piece?
fn block_ok(block: &Block) -> bool {
    let length = block.length.get();
    (1..=REQUEST_BYTES_MAX).contains(&length) && block.begin.get().checked_add(length).is_some()
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

fn view<T: bytemuck::Pod>(bytes: &[u8], id: u8, length: u32) -> Result<&T, DecodeError> {
    // Cannot fail: length_range made the body exactly as long as T, whose alignment is 1.
    bytemuck::try_from_bytes(&bytes[..size_of::<T>()])
        .map_err(|_| DecodeError::BadLength { id, length })
}

/// Reads one message from the front of `bytes`, the stream received so far (after the
/// handshake). Never panics, never allocates; asks for more bytes only within the limit
/// of the message's kind (see the module doc).
pub fn decode(bytes: &[u8]) -> Result<Decoded<Message<'_>>, DecodeError> {
    let Some(prefix) = bytes.get(..4) else {
        return Ok(Decoded::NeedBytes(4 - bytes.len()));
    };
    let length = be_u32(prefix);
    if length == 0 {
        return Ok(Decoded::Whole {
            value: Message::KeepAlive,
            len: 4,
        });
    }
    if length as usize > MESSAGE_BYTES_MAX - 4 {
        return Err(DecodeError::TooLong { length });
    }
    let Some(&id) = bytes.get(4) else {
        return Ok(Decoded::NeedBytes(1));
    };
    let (least, most) = length_range(id);
    if !(least..=most).contains(&length) {
        return Err(DecodeError::BadLength { id, length });
    }
    // Within MESSAGE_BYTES_MAX: checked above.
    let len = 4 + length as usize;
    let Some(message) = bytes.get(..len) else {
        return Ok(Decoded::NeedBytes(len - bytes.len()));
    };
    let body = &message[5..];
    let value = match Id::from_repr(id) {
        Some(Id::Choke) => Message::Choke,
        Some(Id::Unchoke) => Message::Unchoke,
        Some(Id::Interested) => Message::Interested,
        Some(Id::NotInterested) => Message::NotInterested,
        Some(Id::HaveAll) => Message::HaveAll,
        Some(Id::HaveNone) => Message::HaveNone,
        Some(Id::Have) => Message::Have {
            piece: be_u32(body),
        },
        Some(Id::Suggest) => Message::Suggest {
            piece: be_u32(body),
        },
        Some(Id::AllowedFast) => Message::AllowedFast {
            piece: be_u32(body),
        },
        Some(Id::Bitfield) => Message::Bitfield(body),
        Some(kind @ (Id::Request | Id::Cancel | Id::RejectRequest)) => {
            let block: &Block = view(body, id, length)?;
            if !block_ok(block) {
                return Err(match kind {
                    Id::Request => DecodeError::RequestTooLong { block: *block, len },
                    _ => DecodeError::BadBlock(kind),
                });
            }
            match kind {
                Id::Request => Message::Request(block),
                Id::Cancel => Message::Cancel(block),
                _ => Message::RejectRequest(block),
            }
        }
        Some(Id::Piece) => {
            let header: &PieceHeader = view(body, id, length)?;
            let data = &body[size_of::<PieceHeader>()..];
            // Fits: length_range bounded the data by REQUEST_BYTES_MAX.
            if header.begin.get().checked_add(data.len() as u32).is_none() {
                return Err(DecodeError::BadPiece);
            }
            Message::Piece { header, data }
        }
        Some(Id::Port) => Message::Port(u16::from_be_bytes([body[0], body[1]])),
        Some(Id::Extended) => Message::Extended {
            id: body[0],
            payload: &body[1..],
        },
        None => Message::Unknown { id, payload: body },
    };
    Ok(Decoded::Whole { value, len })
}

/// Writes the 13 bytes in front of a piece's data (prefix, id, piece, begin) into `buf`,
/// so that a sender can read the block from the file straight behind them. Refuses what
/// [`decode`] would refuse.
pub fn encode_piece_header(
    buf: &mut [u8],
    piece: u32,
    begin: u32,
    data_bytes: u32,
) -> Result<usize, EncodeError> {
    if !block_ok(&Block::new(piece, begin, data_bytes)) {
        return Err(EncodeError::Refused(DecodeError::BadPiece));
    }
    let out = buf
        .get_mut(..PIECE_HEADER_BYTES)
        .ok_or(EncodeError::BufferTooSmall)?;
    let length = 1 + size_of::<PieceHeader>() as u32 + data_bytes;
    out[..4].copy_from_slice(&length.to_be_bytes());
    out[4] = Id::Piece as u8;
    out[5..9].copy_from_slice(&piece.to_be_bytes());
    out[9..13].copy_from_slice(&begin.to_be_bytes());
    Ok(PIECE_HEADER_BYTES)
}

impl Message<'_> {
    /// The id byte; `None` for a keep-alive, which has none.
    pub fn id(&self) -> Option<u8> {
        let id = match self {
            Message::KeepAlive => return None,
            Message::Choke => Id::Choke,
            Message::Unchoke => Id::Unchoke,
            Message::Interested => Id::Interested,
            Message::NotInterested => Id::NotInterested,
            Message::Have { .. } => Id::Have,
            Message::Bitfield(_) => Id::Bitfield,
            Message::Request(_) => Id::Request,
            Message::Piece { .. } => Id::Piece,
            Message::Cancel(_) => Id::Cancel,
            Message::Port(_) => Id::Port,
            Message::Suggest { .. } => Id::Suggest,
            Message::HaveAll => Id::HaveAll,
            Message::HaveNone => Id::HaveNone,
            Message::RejectRequest(_) => Id::RejectRequest,
            Message::AllowedFast { .. } => Id::AllowedFast,
            Message::Extended { .. } => Id::Extended,
            Message::Unknown { id, .. } => return Some(*id),
        };
        Some(id as u8)
    }

    /// What both handshakes must have announced for this message to be valid.
    pub fn needs(&self) -> Needs {
        match self {
            Message::Suggest { .. }
            | Message::HaveAll
            | Message::HaveNone
            | Message::RejectRequest(_)
            | Message::AllowedFast { .. } => Needs::Fast,
            Message::Extended { .. } => Needs::Extensions,
            _ => Needs::Nothing,
        }
    }

    /// Writes the message (length prefix included) into `buf` and returns its length.
    /// Refuses what [`decode`] would refuse, so `decode` of the bytes gives back `self`.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut fixed = [0u8; size_of::<Block>()];
        let (fixed_len, tail): (usize, &[u8]) = match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => (0, &[]),
            Message::Have { piece }
            | Message::Suggest { piece }
            | Message::AllowedFast { piece } => {
                fixed[..4].copy_from_slice(&piece.to_be_bytes());
                (4, &[])
            }
            Message::Bitfield(bits) => (0, bits),
            Message::Request(block) | Message::Cancel(block) | Message::RejectRequest(block) => {
                fixed.copy_from_slice(bytemuck::bytes_of(*block));
                (size_of::<Block>(), &[])
            }
            Message::Piece { header, data } => {
                fixed[..size_of::<PieceHeader>()].copy_from_slice(bytemuck::bytes_of(*header));
                (size_of::<PieceHeader>(), data)
            }
            Message::Port(port) => {
                fixed[..2].copy_from_slice(&port.to_be_bytes());
                (2, &[])
            }
            Message::Extended { id, payload } => {
                fixed[0] = *id;
                (1, payload)
            }
            Message::Unknown { id, payload } => {
                if Id::from_repr(*id).is_some() {
                    return Err(EncodeError::KnownId(*id));
                }
                (0, payload)
            }
        };
        let length = match self.id() {
            None => 0,
            Some(_) => 1 + fixed_len + tail.len(),
        };
        if length > MESSAGE_BYTES_MAX - 4 {
            let length = u32::try_from(length).unwrap_or(u32::MAX);
            return Err(EncodeError::Refused(DecodeError::TooLong { length }));
        }
        let len = 4 + length;
        let out = buf.get_mut(..len).ok_or(EncodeError::BufferTooSmall)?;
        // Fits: under MESSAGE_BYTES_MAX, which is under u32::MAX.
        out[..4].copy_from_slice(&(length as u32).to_be_bytes());
        if let Some(id) = self.id() {
            out[4] = id;
            out[5..5 + fixed_len].copy_from_slice(&fixed[..fixed_len]);
            out[5 + fixed_len..].copy_from_slice(tail);
        }
        // What decode would refuse, encode refuses. The bytes are whole (the prefix says
        // `length`), so decode cannot ask for more.
        decode(&buf[..len]).map_err(EncodeError::Refused)?;
        Ok(len)
    }
}
