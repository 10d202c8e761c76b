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
    BLOCK_BYTES, Block, DecodeError, MESSAGE_BYTES_MAX, Message, PIECE_HEADER_BYTES, PeerId,
    encode_piece_header,
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
/// request beyond it is rejected, another peer's closes the connection. 500 is what
/// libtorrent allows its peers and asks of them at most (`max_allowed_in_request_queue`,
/// `max_out_request_queue`): with 256, libtorrent took 1.30 times as long to download
/// 1 GiB from us as from a libtorrent seed; with 500, 0.97 and 0.91 in two runs of 5
/// (a benchmark since folded into `bench/interop.py`, 2026-12-08).
pub const REQUESTS_QUEUED_MAX: usize = 500;
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
    /// The stream did not start with a BitTorrent handshake: another protocol, or an
    /// encrypted stream (MSE). libtorrent's default is to try MSE first and to come back in
    /// plain text when the connection closes: one such close per libtorrent peer, seen in
    /// `bench/interop.py`'s runs.
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
    /// The node no longer holds the file whole (unshared, or changed on disk).
    Withdrawn,
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

    /// Closes the connection: the node no longer holds its file whole.
    pub fn withdraw(&mut self) {
        self.close(Close::Withdrawn);
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
        // Room for the message: its variable part, and 32 bytes for the prefix, id and
        // fixed fields (piece messages are written by `fill`, not here).
        let tail = match message {
            Message::Bitfield(bits) => bits.len(),
            Message::Extended { payload, .. } | Message::Unknown { payload, .. } => payload.len(),
            _ => 0,
        };
        let start = self.write_buf.len();
        self.write_buf
            .resize(start + (tail + 32).min(MESSAGE_BYTES_MAX), 0);
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

    /// Requests refused and metadata pieces sent since the last call, for the owner's
    /// counters.
    pub fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.refused_requests),
            std::mem::take(&mut self.metadata_pieces_sent),
        )
    }
}

mod messages;
#[cfg(test)]
mod tests;
