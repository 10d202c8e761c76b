//! One peer wire connection of a seed, sans-IO: a standard client downloads a file we hold
//! whole. Bytes in ([`Connection::receive`], into a bounded read buffer), bytes out
//! ([`Connection::output`], a bounded write buffer the reactor drains and confirms with
//! [`Connection::sent`]), time in (`now`, [`Connection::handle_timeout`]). No socket, no
//! clock, no file but through [`Content`].
//!
//! The steps: the peer's handshake names an info hash; the owner's lookup gives the file
//! or refuses it. We answer with our handshake, our extended handshake (when the peer
//! speaks BEP 10) and have all (Fast peer) or a full bitfield. The owner unchokes an
//! interested peer when a slot is free ([`Connection::unchoke`]); requests are queued,
//! checked against the file, and answered with piece messages read from it as the write
//! buffer and the owner's upload budget allow ([`Connection::fill`]). BEP 9 requests for
//! the info dictionary are answered at once.
//!
//! Words, as on the wire: a BitTorrent **piece** is our chunk, a **block** is a range of
//! one piece (our piece, 16 KiB from standard clients).
//!
//! **Backpressure.** Messages are read only while the write buffer holds less than
//! [`WRITE_BUFFER_BYTES_MAX`]; each message read adds at most one message to it, so it never
//! holds more than that bound and one message. While it is over, the read buffer fills
//! and [`Connection::wants_read`] turns false: the reactor stops reading, and TCP's window
//! holds the peer back.

use super::{
    BLOCK_BYTES, Block, DecodeError, Decoded, EXTENDED_HANDSHAKE_ID, HANDSHAKE_BYTES, Handshake,
    MESSAGE_BYTES_MAX, METADATA_PIECE_BYTES, Message, Metadata, OUR_UT_METADATA_ID,
    OurExtendedHandshake, PIECE_HEADER_BYTES, PeerId, UT_METADATA, decode,
    decode_extended_handshake, decode_handshake, decode_metadata, encode_extended_handshake,
    encode_piece_header, metadata_piece_len,
};
use crate::storage::Content;
use crate::wire::Hash;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes kept of what the peer sent and we have not read yet: two of the longest
/// message, so that one whole message always fits behind a partial one.
pub const READ_BUFFER_BYTES_MAX: usize = 2 * MESSAGE_BYTES_MAX;
/// Bytes waiting to be sent above which no more requests are read or served (32 blocks).
pub const WRITE_BUFFER_BYTES_MAX: usize = 32 * BLOCK_BYTES as usize;
/// Requests queued for one peer. Our extended handshake says so (`reqq`); a Fast peer's
/// request beyond it is rejected, another peer's closes the connection.
pub const REQUESTS_QUEUED_MAX: usize = 256;
/// Time for the peer's handshake to arrive whole after the connection opened.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time without a byte from the peer before the connection is closed (BEP 3 peers send a
/// keep-alive every 2 minutes at most).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Time without a byte to the peer before we send a keep-alive.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(90);

/// A file a connection serves: what the handshake's info hash names.
#[derive(Clone)]
pub struct SeedFile {
    pub info_hash: Hash,
    /// Bytes of the file (or of a tree's files end to end).
    pub file_bytes: u64,
    /// Bytes of a BitTorrent piece: our chunk size.
    pub piece_bytes: u32,
    pub piece_count: u32,
    pub content: Arc<dyn Content>,
    /// The bencoded info dictionary (its SHA-1 is the info hash), for BEP 9.
    pub info: Arc<[u8]>,
}

impl SeedFile {
    /// Bytes of piece `piece`; `None` past the end.
    fn piece_len(&self, piece: u32) -> Option<u32> {
        if piece >= self.piece_count {
            return None;
        }
        let start = u64::from(piece) * u64::from(self.piece_bytes);
        // At most piece_bytes.
        Some((self.file_bytes - start).min(u64::from(self.piece_bytes)) as u32)
    }
}

/// Why a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// The stream did not start with a BitTorrent handshake.
    NotBitTorrent,
    /// The handshake named a file we do not hold whole.
    UnknownInfoHash,
    /// The handshake carried our own peer id: we connected to ourselves.
    Ourselves,
    /// A message the decoder refused (too long, a bad length, a bad payload), or one the
    /// handshakes did not allow.
    BadMessage(DecodeError),
    /// A message that breaks the protocol in another way: a Fast or extended message the
    /// peer did not announce.
    ProtocolViolation,
    /// A request out of the file's range or too long, or over [`REQUESTS_QUEUED_MAX`], from
    /// a peer that cannot be sent a reject (not Fast).
    BadRequest,
    /// No handshake within [`HANDSHAKE_TIMEOUT`], or nothing for [`IDLE_TIMEOUT`].
    TimedOut,
    /// The file could not be read (it shrank under us).
    ReadFailed,
}

/// What we know once both handshakes are done.
struct Open {
    file: SeedFile,
    fast: bool,
    /// The peer speaks the extension protocol (BEP 10).
    extensions: bool,
    /// The id the peer gave [`UT_METADATA`] in its extended handshake, if any.
    peer_ut_metadata: Option<u8>,
    interested: bool,
    choked: bool,
    /// Requests checked and waiting to be served, first asked first served.
    requests: VecDeque<Block>,
}

/// See the module documentation.
pub struct Connection {
    our_peer_id: PeerId,
    /// Our node's UDP port, told in the extended handshake.
    udp_port: u16,
    open: Option<Open>,
    closed: Option<Close>,
    read_buf: Vec<u8>,
    write_buf: Vec<u8>,
    /// Bytes at the front of `write_buf` already sent.
    written: usize,
    opened_at: Instant,
    last_received: Instant,
    last_sent: Instant,
    /// Requests refused, and metadata pieces sent, not yet taken by the owner.
    refused_requests: u64,
    metadata_pieces_sent: u64,
}

impl Connection {
    pub fn new(now: Instant, our_peer_id: PeerId, udp_port: u16) -> Connection {
        Connection {
            our_peer_id,
            udp_port,
            open: None,
            closed: None,
            read_buf: Vec::new(),
            write_buf: Vec::new(),
            written: 0,
            opened_at: now,
            last_received: now,
            last_sent: now,
            refused_requests: 0,
            metadata_pieces_sent: 0,
        }
    }

    /// Why the connection closed, once it has: the owner drops the socket.
    pub fn closed(&self) -> Option<Close> {
        self.closed
    }

    /// The info hash of the file served, once the handshake is done.
    pub fn info_hash(&self) -> Option<Hash> {
        self.open.as_ref().map(|open| open.file.info_hash)
    }

    pub fn interested(&self) -> bool {
        self.open.as_ref().is_some_and(|open| open.interested)
    }

    pub fn choked(&self) -> bool {
        self.open.as_ref().is_none_or(|open| open.choked)
    }

    /// Bytes the reactor may read for this connection now (0: not now, see backpressure).
    pub fn read_room(&self) -> usize {
        if self.closed.is_some() || self.write_pending() >= WRITE_BUFFER_BYTES_MAX {
            return 0;
        }
        READ_BUFFER_BYTES_MAX.saturating_sub(self.read_buf.len())
    }

    pub fn wants_read(&self) -> bool {
        self.read_room() > 0
    }

    /// Bytes waiting to be sent.
    pub fn write_pending(&self) -> usize {
        self.write_buf.len() - self.written
    }

    /// Requests that [`Connection::fill`] could serve now, budget allowing.
    pub fn can_fill(&self) -> bool {
        self.closed.is_none()
            && self.write_pending() < WRITE_BUFFER_BYTES_MAX
            && self
                .open
                .as_ref()
                .is_some_and(|open| !open.choked && !open.requests.is_empty())
    }

    /// Bytes of the block [`Connection::fill`] would serve next.
    pub fn next_block_bytes(&self) -> Option<u32> {
        let open = self.open.as_ref()?;
        open.requests.front().map(|block| block.length.get())
    }

    /// What to send now.
    pub fn output(&self) -> &[u8] {
        &self.write_buf[self.written..]
    }

    /// The reactor sent `bytes` of [`Connection::output`]. Messages held back by a full
    /// write buffer are read now.
    pub fn sent(&mut self, now: Instant, bytes: usize) {
        self.written = (self.written + bytes).min(self.write_buf.len());
        if bytes > 0 {
            self.last_sent = now;
        }
        if self.written == self.write_buf.len() {
            self.write_buf.clear();
            self.written = 0;
        } else if self.written >= WRITE_BUFFER_BYTES_MAX {
            self.write_buf.drain(..self.written);
            self.written = 0;
        }
        if self.open.is_some() {
            self.read_messages();
        }
    }

    /// Bytes arrived (at most [`Connection::read_room`]). `lookup` gives the file a
    /// handshake names, when we hold it whole.
    pub fn receive(
        &mut self,
        now: Instant,
        bytes: &[u8],
        lookup: &mut dyn FnMut(&Hash) -> Option<SeedFile>,
    ) {
        if self.closed.is_some() || bytes.is_empty() {
            return;
        }
        self.last_received = now;
        let room = READ_BUFFER_BYTES_MAX.saturating_sub(self.read_buf.len());
        // The reactor reads no more than read_room; past it the peer is ignored.
        self.read_buf
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        if self.open.is_none() && !self.read_handshake(lookup) {
            return;
        }
        self.read_messages();
    }

    /// Unchokes the peer (the owner had a slot for it).
    pub fn unchoke(&mut self) {
        if let Some(open) = &mut self.open
            && open.choked
        {
            open.choked = false;
            self.push(&Message::Unchoke);
        }
    }

    /// Chokes the peer; a Fast peer's queued requests are rejected, others forgotten.
    pub fn choke(&mut self) {
        let Some(open) = &mut self.open else { return };
        if open.choked {
            return;
        }
        open.choked = true;
        let rejected: Vec<Block> = open.requests.drain(..).collect();
        let fast = open.fast;
        self.push(&Message::Choke);
        if fast {
            for block in &rejected {
                self.push_reject(block);
            }
        }
    }

    /// Moves queued requests into the write buffer as piece messages, while it has room
    /// and `budget` allows each block's bytes. Returns the blocks and bytes of data queued.
    pub fn fill(&mut self, budget: &mut dyn FnMut(u32) -> bool) -> (u64, u64) {
        let (mut blocks, mut bytes) = (0, 0);
        while self.can_fill() {
            let Some(open) = &mut self.open else { break };
            let Some(block) = open.requests.front().copied() else {
                break;
            };
            let (piece, begin, length) = (block.piece.get(), block.begin.get(), block.length.get());
            if !budget(length) {
                break;
            }
            open.requests.pop_front();
            let offset = u64::from(piece) * u64::from(open.file.piece_bytes) + u64::from(begin);
            let start = self.write_buf.len();
            self.write_buf
                .resize(start + PIECE_HEADER_BYTES + length as usize, 0);
            // Cannot fail: the request was checked against the file, and the buffer sized.
            let header = encode_piece_header(&mut self.write_buf[start..], piece, begin, length);
            let data = &mut self.write_buf[start + PIECE_HEADER_BYTES..];
            if header.is_err() || !open.file.content.read_into(offset, data) {
                self.write_buf.truncate(start);
                self.close(Close::ReadFailed);
                break;
            }
            blocks += 1;
            bytes += u64::from(length);
        }
        (blocks, bytes)
    }

    /// When [`Connection::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        if self.open.is_none() {
            return Some(self.opened_at + HANDSHAKE_TIMEOUT);
        }
        Some((self.last_received + IDLE_TIMEOUT).min(self.last_sent + KEEPALIVE_INTERVAL))
    }

    /// Closes a connection past its handshake or idle timeout; sends a keep-alive when we
    /// have been quiet. A spurious call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.open.is_none() {
            if now >= self.opened_at + HANDSHAKE_TIMEOUT {
                self.close(Close::TimedOut);
            }
            return;
        }
        if now >= self.last_received + IDLE_TIMEOUT {
            self.close(Close::TimedOut);
        } else if now >= self.last_sent + KEEPALIVE_INTERVAL && self.write_pending() == 0 {
            self.push(&Message::KeepAlive);
            // Counted as sent when queued, so that a slow socket does not queue more.
            self.last_sent = now;
        }
    }

    fn close(&mut self, why: Close) {
        if self.closed.is_none() {
            self.closed = Some(why);
        }
        self.read_buf = Vec::new();
        self.write_buf = Vec::new();
        self.written = 0;
    }

    /// Appends a message to the write buffer.
    fn push(&mut self, message: &Message<'_>) {
        let start = self.write_buf.len();
        self.write_buf.resize(start + MESSAGE_BYTES_MAX, 0);
        match message.encode(&mut self.write_buf[start..]) {
            Ok(len) => self.write_buf.truncate(start + len),
            Err(error) => {
                // Only what we build goes through here, within the codec's limits.
                log::error!("peer wire: cannot encode {message:?}: {error:?}");
                self.write_buf.truncate(start);
            }
        }
    }

    /// Appends a reject request for `block` (BEP 6). Written by hand, not by
    /// [`Message::encode`]: a request over [`super::REQUEST_BYTES_MAX`] is answered too, and
    /// the codec refuses to write a reject of a block it would not decode.
    fn push_reject(&mut self, block: &Block) {
        let length = 1 + size_of::<Block>() as u32;
        self.write_buf.extend_from_slice(&length.to_be_bytes());
        self.write_buf.push(super::Id::RejectRequest as u8);
        self.write_buf.extend_from_slice(bytemuck::bytes_of(block));
    }

    /// Reads the peer's handshake, and answers it. False while it is not whole or once the
    /// connection is closed.
    fn read_handshake(&mut self, lookup: &mut dyn FnMut(&Hash) -> Option<SeedFile>) -> bool {
        let theirs = match decode_handshake(&self.read_buf) {
            Ok(Decoded::NeedBytes(_)) => return false,
            Ok(Decoded::Whole { value, .. }) => *value,
            Err(_) => {
                self.close(Close::NotBitTorrent);
                return false;
            }
        };
        if theirs.peer_id == self.our_peer_id {
            self.close(Close::Ourselves);
            return false;
        }
        let Some(file) = lookup(&theirs.info_hash) else {
            self.close(Close::UnknownInfoHash);
            return false;
        };
        self.read_buf.drain(..HANDSHAKE_BYTES);
        let ours = Handshake::ours(theirs.info_hash, self.our_peer_id);
        self.write_buf.extend_from_slice(ours.as_bytes());
        if theirs.extensions() {
            let extended = encode_extended_handshake(&OurExtendedHandshake {
                metadata_bytes: u32::try_from(file.info.len()).ok(),
                listen_port: None,
                request_queue: REQUESTS_QUEUED_MAX as u32,
                udp_port: Some(self.udp_port),
            });
            self.push(&Message::Extended {
                id: EXTENDED_HANDSHAKE_ID,
                payload: &extended,
            });
        }
        let fast = theirs.fast();
        if fast {
            self.push(&Message::HaveAll);
        } else {
            let mut bits = vec![0xffu8; file.piece_count.div_ceil(8) as usize];
            let spare = bits.len() as u32 * 8 - file.piece_count;
            if let Some(last) = bits.last_mut() {
                *last = 0xff << spare;
            }
            self.push(&Message::Bitfield(&bits));
        }
        self.open = Some(Open {
            file,
            fast,
            extensions: theirs.extensions(),
            peer_ut_metadata: None,
            interested: false,
            choked: true,
            requests: VecDeque::new(),
        });
        true
    }

    /// Reads whole messages from the read buffer while the write buffer has room.
    fn read_messages(&mut self) {
        let mut taken = 0;
        while self.closed.is_none() && self.write_pending() < WRITE_BUFFER_BYTES_MAX {
            let buf = std::mem::take(&mut self.read_buf);
            let decoded = decode(&buf[taken..]);
            let step = match decoded {
                Ok(Decoded::NeedBytes(_)) => None,
                Ok(Decoded::Whole { value, len }) => {
                    self.handle_message(&value);
                    Some(len)
                }
                Err(error) => match error.skip_bytes() {
                    Some(len) => {
                        if let DecodeError::RequestTooLong { block, .. } = error {
                            self.refuse_request(&block);
                        }
                        Some(len)
                    }
                    None => {
                        self.close(Close::BadMessage(error));
                        None
                    }
                },
            };
            if self.closed.is_some() {
                return;
            }
            self.read_buf = buf;
            match step {
                Some(len) => taken += len,
                None => break,
            }
        }
        self.read_buf.drain(..taken);
    }

    fn handle_message(&mut self, message: &Message<'_>) {
        let Some(open) = &mut self.open else { return };
        let allowed = match message.needs() {
            super::Needs::Nothing => true,
            super::Needs::Fast => open.fast,
            super::Needs::Extensions => open.extensions,
        };
        if !allowed {
            self.close(Close::ProtocolViolation);
            return;
        }
        match *message {
            Message::Interested => open.interested = true,
            Message::NotInterested => open.interested = false,
            Message::Request(block) => self.take_request(block),
            Message::Cancel(block) => {
                let before = open.requests.len();
                open.requests.retain(|queued| queued != block);
                // BEP 6: a Fast peer gets a piece or a reject for every request.
                if open.fast && open.requests.len() < before {
                    self.push_reject(block);
                }
            }
            Message::Extended { id, payload } => self.handle_extended(id, payload),
            // We seed: what the peer has, its choking of us, its blocks, its DHT port,
            // suggestions and allowed fast pieces change nothing.
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Have { .. }
            | Message::Bitfield(_)
            | Message::Piece { .. }
            | Message::Port(_)
            | Message::Suggest { .. }
            | Message::HaveAll
            | Message::HaveNone
            | Message::RejectRequest(_)
            | Message::AllowedFast { .. }
            | Message::Unknown { .. } => {}
        }
    }

    /// Queues a request after checking it against the file and the queue's bound.
    fn take_request(&mut self, block: &Block) {
        let Some(open) = &mut self.open else { return };
        if open.choked {
            // BEP 6: rejected; BEP 3: a request while choked is simply dropped.
            if open.fast {
                self.push_reject(block);
            }
            return;
        }
        let (piece, begin, length) = (block.piece.get(), block.begin.get(), block.length.get());
        let in_range = open.file.piece_len(piece).is_some_and(|piece_len| {
            begin
                .checked_add(length)
                .is_some_and(|end| end <= piece_len)
        });
        if !in_range || open.requests.len() >= REQUESTS_QUEUED_MAX {
            self.refuse_request(block);
            return;
        }
        open.requests.push_back(*block);
    }

    /// A request we will not serve: a reject for a Fast peer, the end for another.
    fn refuse_request(&mut self, block: &Block) {
        self.refused_requests += 1;
        match &self.open {
            Some(open) if open.fast => self.push_reject(block),
            _ => self.close(Close::BadRequest),
        }
    }

    fn handle_extended(&mut self, id: u8, payload: &[u8]) {
        let Some(open) = &mut self.open else { return };
        match id {
            EXTENDED_HANDSHAKE_ID => match decode_extended_handshake(payload) {
                Ok(handshake) => open.peer_ut_metadata = handshake.message_id(UT_METADATA),
                Err(error) => self.close(Close::BadMessage(error)),
            },
            OUR_UT_METADATA_ID => {
                let piece = match decode_metadata(payload) {
                    Ok(Metadata::Request { piece }) => piece,
                    // Data and rejects are for a peer that asked: we did not.
                    Ok(_) => return,
                    Err(error) => {
                        self.close(Close::BadMessage(error));
                        return;
                    }
                };
                // A peer that gave BEP 9 no id cannot be answered.
                let Some(their_id) = open.peer_ut_metadata else {
                    return;
                };
                let info = Arc::clone(&open.file.info);
                let total = info.len() as u32;
                let reply = match metadata_piece_len(total, piece) {
                    Some(len) => {
                        let start = piece as usize * METADATA_PIECE_BYTES as usize;
                        self.metadata_pieces_sent += 1;
                        Metadata::Data {
                            piece,
                            total_bytes: total,
                            data: &info[start..start + len],
                        }
                    }
                    None => Metadata::Reject { piece },
                };
                let mut payload = vec![0u8; METADATA_PIECE_BYTES as usize + 256];
                match reply.encode(&mut payload) {
                    Ok(len) => self.push(&Message::Extended {
                        id: their_id,
                        payload: &payload[..len],
                    }),
                    Err(error) => log::error!("peer wire: cannot encode metadata: {error:?}"),
                }
            }
            // Extensions we did not offer: ignored, as BEP 10 says.
            _ => {}
        }
    }

    /// Requests refused and metadata pieces sent since the last call, for the owner's
    /// counters.
    pub fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.refused_requests),
            std::mem::take(&mut self.metadata_pieces_sent),
        )
    }
}

#[cfg(test)]
mod tests;
