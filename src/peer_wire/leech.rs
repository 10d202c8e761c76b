//! One peer wire connection of a downloader, sans-IO: we connect to a peer that holds
//! pieces of a file (a standard client's seed) and fetch blocks of them. Not yet used by the
//! node (issue 18's downloading direction): a download will own one per standard peer,
//! choose the blocks ([`Leech::request`]) and verify each piece's SHA-1 before it counts.
//!
//! Bytes in ([`Leech::receive`], into a bounded read buffer), bytes out
//! ([`Leech::output`], drained by the caller and confirmed with [`Leech::sent`]), time in
//! (`now`, [`Leech::handle_timeout`]). What the peer says comes out as [`Event`]s, blocks
//! borrowing the read buffer: nothing is copied on the way to the file.
//!
//! The steps: our handshake goes out at once (we opened the connection). The peer's must
//! name the same info hash and another peer id; then we say `interested`. The peer says
//! which pieces it has (bitfield, have, have all, have none) and unchokes us. Requests are
//! sent only while unchoked, at most [`REQUESTS_IN_FLIGHT_MAX`] (or fewer, when the peer's
//! extended handshake says its queue, `reqq`, is shorter). A block that arrives must answer
//! a request in flight, byte range and all; anything else is counted
//! ([`Leech::unrequested_blocks`]) and dropped. A choke from a peer without the Fast
//! extension cancels every request in flight (BEP 3): they come out as
//! [`Event::Dropped`], to be asked again. A Fast peer rejects each one it drops instead.
//!
//! Words, as on the wire: a BitTorrent **piece** is our chunk, a **block** is a range of
//! one piece (our piece). We ask for [`super::BLOCK_BYTES`] at a time, as every client does.

use super::{
    Block, DecodeError, Decoded, Handshake, MESSAGE_BYTES_MAX, Message, PeerId, check_bitfield,
    decode, decode_extended_handshake, decode_handshake,
};
use crate::storage::Bitmap;
use crate::wire::Hash;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Requests in flight to one peer, at most: 250 blocks of 16 KiB (4 MiB) cover 100 ms of a
/// 40 MB/s path, and libtorrent queues up to 500 of a peer's requests
/// (`max_allowed_in_request_queue`).
pub const REQUESTS_IN_FLIGHT_MAX: usize = 250;
/// Bytes kept of what the peer sent and we have not read yet: two of the longest message.
pub const READ_BUFFER_BYTES_MAX: usize = 2 * MESSAGE_BYTES_MAX;
/// Time for the peer's handshake to arrive after the connection opened.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time without a byte from the peer, while we wait on it, before we give up on it.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time without a byte to the peer before we send a keep-alive (BEP 3: every 2 minutes).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(90);

/// The file a connection fetches.
#[derive(Clone, Copy, Debug)]
pub struct LeechFile {
    pub info_hash: Hash,
    /// Bytes of the file (or of a tree's files end to end).
    pub file_bytes: u64,
    /// Bytes of a BitTorrent piece: our chunk size.
    pub piece_bytes: u32,
}

impl LeechFile {
    pub fn piece_count(&self) -> u32 {
        // At most wire::CHUNKS_MAX for any file the node accepts.
        self.file_bytes.div_ceil(u64::from(self.piece_bytes.max(1))) as u32
    }

    /// Bytes of piece `piece`; `None` past the end.
    pub fn piece_len(&self, piece: u32) -> Option<u32> {
        let start = u64::from(piece) * u64::from(self.piece_bytes);
        (start < self.file_bytes)
            .then(|| (self.file_bytes - start).min(u64::from(self.piece_bytes)) as u32)
    }
}

/// Why a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// The peer's handshake named another file.
    WrongInfoHash,
    /// The peer's handshake carried our own peer id: we connected to ourselves.
    Ourselves,
    /// A message the decoder refused.
    BadMessage(DecodeError),
    /// A Fast or extended message from a peer whose handshake did not announce it.
    NotAnnounced,
    /// A have or bitfield naming pieces the file does not have.
    BadHave,
    /// More bytes than [`Leech::read_room`] were handed in: the caller's mistake, refused
    /// rather than buffered.
    Overrun,
    /// No handshake within [`HANDSHAKE_TIMEOUT`], or nothing for [`SILENCE_TIMEOUT`]
    /// while requests were in flight.
    TimedOut,
}

/// What the peer told us, one message at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The handshakes are done: the peer's id, and whether it speaks Fast and BEP 10.
    Open {
        peer_id: PeerId,
        fast: bool,
        extensions: bool,
    },
    /// The peer has these pieces now (a bitfield, a have, have all): see [`Leech::has`].
    Has,
    Unchoked,
    /// The peer choked us. Requests it dropped come out as [`Event::Dropped`] too.
    Choked,
    /// A block we asked for: `(piece, begin)` and its bytes.
    Block {
        piece: u32,
        begin: u32,
        data: &'a [u8],
    },
    /// A request in flight that will not be answered (rejected, or cancelled by a choke):
    /// ask for it again, here or elsewhere.
    Dropped(Block),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Our handshake is out; theirs has not arrived.
    Handshaking,
    Open {
        fast: bool,
        extensions: bool,
    },
}

/// See the module documentation.
pub struct Leech {
    file: LeechFile,
    our_id: PeerId,
    state: State,
    opened_at: Instant,
    read: Vec<u8>,
    write: Vec<u8>,
    /// The pieces the peer has.
    has: Bitmap,
    choked: bool,
    /// Requests sent and not answered, oldest first.
    in_flight: VecDeque<Block>,
    /// Requests the peer takes in flight: ours, or its `reqq` when smaller.
    in_flight_max: usize,
    last_heard: Instant,
    last_sent: Instant,
    unrequested: u64,
}

impl Leech {
    /// A connection we just opened to a peer of `file`: our handshake is in the output.
    pub fn new(file: LeechFile, our_id: PeerId, now: Instant) -> Leech {
        let mut write = Vec::with_capacity(4096);
        write.extend_from_slice(Handshake::ours(file.info_hash, our_id).as_bytes());
        Leech {
            file,
            our_id,
            state: State::Handshaking,
            opened_at: now,
            read: Vec::new(),
            write,
            has: Bitmap::new(file.piece_count()),
            choked: true,
            in_flight: VecDeque::new(),
            in_flight_max: REQUESTS_IN_FLIGHT_MAX,
            last_heard: now,
            last_sent: now,
            unrequested: 0,
        }
    }

    /// Whether the peer has piece `piece`.
    pub fn has(&self, piece: u32) -> bool {
        piece < self.has.len() && self.has.get(piece)
    }

    pub fn choked(&self) -> bool {
        self.choked
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Requests that may be sent now: none while choked or before the handshakes.
    pub fn room(&self) -> usize {
        match self.state {
            State::Open { .. } if !self.choked => {
                self.in_flight_max.saturating_sub(self.in_flight.len())
            }
            _ => 0,
        }
    }

    /// Blocks that answered no request of ours, dropped.
    pub fn unrequested_blocks(&self) -> u64 {
        self.unrequested
    }

    /// Asks for `length` bytes of `piece` from `begin`. False, and nothing sent, when there
    /// is no [`Leech::room`], the peer lacks the piece, or the range is not within it.
    pub fn request(&mut self, now: Instant, piece: u32, begin: u32, length: u32) -> bool {
        let fits = self.file.piece_len(piece).is_some_and(|piece_len| {
            length > 0
                && length <= super::REQUEST_BYTES_MAX
                && begin
                    .checked_add(length)
                    .is_some_and(|end| end <= piece_len)
        });
        if !fits || self.room() == 0 || !self.has(piece) {
            return false;
        }
        let block = Block::new(piece, begin, length);
        self.push(now, &Message::Request(&block));
        self.in_flight.push_back(block);
        true
    }

    /// What to send: drain it, then say how much went with [`Leech::sent`].
    pub fn output(&self) -> &[u8] {
        &self.write
    }

    pub fn sent(&mut self, bytes: usize) {
        self.write.drain(..bytes.min(self.write.len()));
    }

    /// How many more bytes the read buffer takes.
    pub fn read_room(&self) -> usize {
        READ_BUFFER_BYTES_MAX - self.read.len()
    }

    /// Bytes from the peer, at most [`Leech::read_room`] (after which at least
    /// [`MESSAGE_BYTES_MAX`] is free again); `events` hears what they said, in order. An
    /// error closes the connection.
    pub fn receive(
        &mut self,
        now: Instant,
        bytes: &[u8],
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), Close> {
        if bytes.len() > self.read_room() {
            return Err(Close::Overrun);
        }
        self.read.extend_from_slice(bytes);
        if !bytes.is_empty() {
            self.last_heard = now;
        }
        let mut used = 0;
        let result = self.read_messages(now, &mut used, events);
        self.read.drain(..used);
        result
    }

    /// Reads whole messages from the read buffer, `used` bytes of it so far.
    fn read_messages(
        &mut self,
        now: Instant,
        used: &mut usize,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), Close> {
        // The buffer is taken out for the loop, so that messages may borrow it while the
        // connection changes; it goes back whatever happens.
        let read = std::mem::take(&mut self.read);
        let result = self.read_from(now, &read, used, events);
        self.read = read;
        result
    }

    fn read_from(
        &mut self,
        now: Instant,
        read: &[u8],
        used: &mut usize,
        events: &mut impl FnMut(Event<'_>),
    ) -> Result<(), Close> {
        if self.state == State::Handshaking {
            match decode_handshake(read).map_err(Close::BadMessage)? {
                Decoded::NeedBytes(_) => return Ok(()),
                Decoded::Whole { value, len } => {
                    if value.info_hash != self.file.info_hash {
                        return Err(Close::WrongInfoHash);
                    }
                    if value.peer_id == self.our_id {
                        return Err(Close::Ourselves);
                    }
                    let (fast, extensions) = (value.fast(), value.extensions());
                    self.state = State::Open { fast, extensions };
                    *used = len;
                    events(Event::Open {
                        peer_id: value.peer_id,
                        fast,
                        extensions,
                    });
                    self.push(now, &Message::Interested);
                }
            }
        }
        let State::Open { fast, extensions } = self.state else {
            return Ok(());
        };
        loop {
            let (message, len) = match decode(&read[*used..]).map_err(Close::BadMessage)? {
                Decoded::NeedBytes(_) => return Ok(()),
                Decoded::Whole { value, len } => (value, len),
            };
            *used += len;
            let needs = message.needs();
            if (needs == super::Needs::Fast && !fast)
                || (needs == super::Needs::Extensions && !extensions)
            {
                return Err(Close::NotAnnounced);
            }
            self.on_message(message, events)?;
        }
    }

    fn on_message<'a>(
        &mut self,
        message: Message<'a>,
        events: &mut impl FnMut(Event<'a>),
    ) -> Result<(), Close> {
        let fast = matches!(self.state, State::Open { fast: true, .. });
        match message {
            Message::Bitfield(bits) => {
                check_bitfield(bits, self.has.len()).map_err(|_| Close::BadHave)?;
                self.has = Bitmap::from_bytes(self.has.len(), bits).ok_or(Close::BadHave)?;
                events(Event::Has);
            }
            Message::Have { piece } => {
                if piece >= self.has.len() {
                    return Err(Close::BadHave);
                }
                self.has.set(piece);
                events(Event::Has);
            }
            Message::HaveAll => {
                self.has = Bitmap::full(self.has.len());
                events(Event::Has);
            }
            Message::HaveNone => self.has = Bitmap::new(self.has.len()),
            Message::Unchoke => {
                if self.choked {
                    self.choked = false;
                    events(Event::Unchoked);
                }
            }
            Message::Choke => {
                self.choked = true;
                events(Event::Choked);
                // BEP 3: a choke drops every request. A Fast peer rejects each instead.
                if !fast {
                    for block in self.in_flight.drain(..) {
                        events(Event::Dropped(block));
                    }
                }
            }
            Message::Piece { header, data } => {
                let (piece, begin) = (header.piece.get(), header.begin.get());
                let asked = self.in_flight.iter().position(|b| {
                    b.piece.get() == piece
                        && b.begin.get() == begin
                        && b.length.get() as usize == data.len()
                });
                match asked {
                    Some(index) => {
                        self.in_flight.remove(index);
                        events(Event::Block { piece, begin, data });
                    }
                    None => self.unrequested += 1,
                }
            }
            Message::RejectRequest(block) => {
                if let Some(index) = self.in_flight.iter().position(|b| b == block) {
                    self.in_flight.remove(index);
                    events(Event::Dropped(*block));
                }
            }
            Message::Extended { id: 0, payload } => {
                if let Ok(handshake) = decode_extended_handshake(payload)
                    && let Some(queue) = handshake.request_queue
                {
                    let queue = usize::try_from(queue).unwrap_or(usize::MAX);
                    self.in_flight_max = queue.clamp(1, REQUESTS_IN_FLIGHT_MAX);
                }
            }
            // We hold nothing to give: requests are not answered (a seed does not ask).
            Message::KeepAlive
            | Message::Interested
            | Message::NotInterested
            | Message::Request(_)
            | Message::Cancel(_)
            | Message::Port(_)
            | Message::Suggest { .. }
            | Message::AllowedFast { .. }
            | Message::Extended { .. }
            | Message::Unknown { .. } => {}
        }
        Ok(())
    }

    /// Timers: the handshake's, the peer's silence while we wait on it, our keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Close> {
        if self.state == State::Handshaking
            && now.saturating_duration_since(self.opened_at) >= HANDSHAKE_TIMEOUT
        {
            return Err(Close::TimedOut);
        }
        if !self.in_flight.is_empty()
            && now.saturating_duration_since(self.last_heard) >= SILENCE_TIMEOUT
        {
            return Err(Close::TimedOut);
        }
        if now.saturating_duration_since(self.last_sent) >= KEEPALIVE_INTERVAL {
            self.push(now, &Message::KeepAlive);
        }
        Ok(())
    }

    /// When [`Leech::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Instant {
        let mut due = self.last_sent + KEEPALIVE_INTERVAL;
        if self.state == State::Handshaking {
            due = due.min(self.opened_at + HANDSHAKE_TIMEOUT);
        }
        if !self.in_flight.is_empty() {
            due = due.min(self.last_heard + SILENCE_TIMEOUT);
        }
        due
    }

    fn push(&mut self, now: Instant, message: &Message<'_>) {
        let mut buf = [0u8; 32];
        // Only small messages go out of a leecher: a request is 17 bytes.
        if let Ok(len) = message.encode(&mut buf) {
            self.write.extend_from_slice(&buf[..len]);
            self.last_sent = now;
        }
    }
}

#[cfg(test)]
mod tests;
