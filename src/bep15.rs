//! BEP 15, the standard BitTorrent UDP tracker protocol, on the wire.
//!
//! The tracker answers it on the same port as our own protocol; [`is_bep15`] tells the two
//! apart. Same two layers as [`crate::wire`]:
//!
//! * **Views.** `#[repr(C)]` structs of byte arrays (alignment 1, big-endian through
//!   [`U16`], [`U32`], [`U64`]), laid over the bytes in place with bytemuck, sizes asserted
//!   at compile time. A view checks nothing.
//! * **Checked values.** [`decode_request`] (what a tracker receives) and
//!   [`decode_response`] (what a client receives, used by tests) check action, lengths and
//!   counts; they never panic or allocate, and the error names the failed check and says
//!   whether a reply is possible ([`RequestError::Sendable`], as in aquatic). The `encode_*`
//!   functions are their inverses.
//!
//! ```text
//! connect request    protocol id 8 (0x41727101980), action 4 (0), transaction id 4
//! connect response   action 4 (0), transaction id 4, connection id 8
//! announce request   connection id 8, action 4 (1), transaction id 4, info hash 20, peer id 20,
//!                    downloaded 8, left 8, uploaded 8, event 4, ip 4, key 4, num want 4 (i32),
//!                    port 2; then BEP 41 options, ignored
//! announce response  action 4 (1), transaction id 4, interval 4, leechers 4, seeders 4,
//!                    peers: 6 bytes each (IPv4 + port) or 18 (IPv6 + port), by the request's family
//! scrape request     connection id 8, action 4 (2), transaction id 4, info hashes 20 × (1..=74)
//! scrape response    action 4 (2), transaction id 4, per hash: seeders 4, completed 4, leechers 4
//! error response     action 4 (3), transaction id 4, message (UTF-8, the rest of the datagram)
//! ```

use crate::wire::{EncodeError, Hash, MAGIC, U16, U32, U64, Writer, wire_enum};
use bytemuck::{Pod, Zeroable};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// The magic constant that opens every connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;
/// Most info hashes in one scrape: BEP 15's figure, so that a request fits a 1,500-byte MTU.
pub const SCRAPE_HASHES_MAX: usize = 74;
/// Most bytes of BEP 41 options accepted after an announce (they are ignored).
pub const ANNOUNCE_OPTIONS_BYTES_MAX: usize = 512;
/// Longest error message we send. Error replies go only to a valid connection id (an address
/// that proved it receives), so their size is no amplification risk; this only bounds them.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 64;
/// Longest datagram a request may be.
pub const REQUEST_BYTES_MAX: usize =
    size_of::<RequestHeader>() + SCRAPE_HASHES_MAX * size_of::<Hash>();

/// The first 16 bytes of every request. For a connect, `connection_id` is [`PROTOCOL_ID`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct RequestHeader {
    pub connection_id: U64,
    pub action: U32,
    pub transaction_id: U32,
}

/// An announce request, whole (98 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AnnounceRequest {
    pub header: RequestHeader,
    pub info_hash: Hash,
    pub peer_id: [u8; 20],
    pub downloaded_bytes: U64,
    pub left_bytes: U64,
    pub uploaded_bytes: U64,
    pub event: U32,
    /// An address the client asks us to use instead of the source: ignored (it would let
    /// anyone list someone else's address).
    pub ip: [u8; 4],
    pub key: U32,
    /// An `i32` on the wire: -1 asks for the tracker's default.
    pub num_want: U32,
    pub port: U16,
}

impl AnnounceRequest {
    pub fn event(&self) -> Event {
        // Checked by decode_request; a view built by hand with a bad value reads as None.
        Event::from_repr(self.event.get()).unwrap_or(Event::None)
    }

    /// How many peers the client wants; `None` for the tracker's default (any negative).
    pub fn num_want(&self) -> Option<u32> {
        let value = self.num_want.get() as i32;
        u32::try_from(value).ok()
    }
}

/// The first 8 bytes of every response.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ResponseHeader {
    pub action: U32,
    pub transaction_id: U32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ConnectResponse {
    pub header: ResponseHeader,
    pub connection_id: U64,
}

/// Fixed part of an announce response; the peers follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AnnounceResponse {
    pub header: ResponseHeader,
    pub interval_s: U32,
    pub leechers: U32,
    pub seeders: U32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PeerV4 {
    pub ip: [u8; 4],
    pub port: U16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PeerV6 {
    pub ip: [u8; 16],
    pub port: U16,
}

/// One info hash's counts in a scrape response.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ScrapeStats {
    pub seeders: U32,
    pub completed: U32,
    pub leechers: U32,
}

const _: () = {
    assert!(size_of::<RequestHeader>() == 16);
    assert!(size_of::<AnnounceRequest>() == 98);
    assert!(size_of::<ResponseHeader>() == 8);
    assert!(size_of::<ConnectResponse>() == 16);
    assert!(size_of::<AnnounceResponse>() == 20);
    assert!(size_of::<PeerV4>() == 6);
    assert!(size_of::<PeerV6>() == 18);
    assert!(size_of::<ScrapeStats>() == 12);
    // A connect reply is no larger than the request: it cannot amplify.
    assert!(size_of::<ConnectResponse>() <= size_of::<RequestHeader>());
    assert!(REQUEST_BYTES_MAX == 1_496);
};

wire_enum! {
    /// BEP 15's announce events.
    pub enum Event: u32 {
        None = 0,
        Completed = 1,
        Started = 2,
        Stopped = 3,
    }
}

/// Is this datagram BEP 15 rather than ours? Ours always start with [`MAGIC`] (and a
/// tracker never mints a connection id that does); BEP 15 requests are at least 16 bytes
/// and start with the protocol id (connect) or carry action 1 or 2 at bytes 8..12.
pub fn is_bep15(bytes: &[u8]) -> bool {
    if bytes.starts_with(&MAGIC) {
        return false;
    }
    let Some((header, _)) = split::<RequestHeader>(bytes) else {
        return false;
    };
    header.connection_id.get() == PROTOCOL_ID
        || matches!(header.action.get(), ACTION_ANNOUNCE | ACTION_SCRAPE)
}

/// A checked request. Borrows from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Connect {
        transaction_id: u32,
    },
    Announce(&'a AnnounceRequest),
    Scrape {
        connection_id: u64,
        transaction_id: u32,
        info_hashes: &'a [Hash],
    },
}

/// A check that [`decode_request`] or [`decode_response`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than a request (16 bytes) or response (8 bytes) header.
    Truncated,
    /// Action 0 without the protocol id.
    BadProtocolId,
    UnknownAction(u32),
    /// A connect or connect response of the wrong length.
    ConnectLength,
    /// An announce shorter than 98 bytes.
    AnnounceTruncated,
    /// More BEP 41 option bytes than [`ANNOUNCE_OPTIONS_BYTES_MAX`].
    AnnounceTooLong,
    BadEvent(u32),
    /// A scrape whose hashes are not whole 20-byte records.
    ScrapeLength,
    /// A scrape of no hash (full scrapes are not served) or of more than [`SCRAPE_HASHES_MAX`].
    ScrapeCount,
    /// A response's peer or stats list is not whole records, or the message is not UTF-8.
    ResponseLength,
}

impl Malformed {
    /// The text of the error reply, sent as is (short, and never from the request).
    pub fn message(&self) -> &'static str {
        match self {
            Malformed::Truncated => "truncated",
            Malformed::BadProtocolId => "bad protocol id",
            Malformed::UnknownAction(_) => "unknown action",
            Malformed::ConnectLength => "bad connect length",
            Malformed::AnnounceTruncated => "announce truncated",
            Malformed::AnnounceTooLong => "announce options too long",
            Malformed::BadEvent(_) => "bad announce event",
            Malformed::ScrapeLength => "scrape hashes not 20 bytes each",
            Malformed::ScrapeCount => "scrape 1 to 74 info hashes",
            Malformed::ResponseLength => "bad response length",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::UnknownAction(action) => write!(f, "unknown action {action}"),
            Malformed::BadEvent(event) => write!(f, "bad announce event {event}"),
            other => f.write_str(other.message()),
        }
    }
}

/// Why a request was refused, and whether the client can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No reply: the datagram does not say who to answer or how.
    Unsendable(Malformed),
    /// An error reply (action 3) may go back, but only once `connection_id` checks out.
    Sendable {
        connection_id: u64,
        transaction_id: u32,
        problem: Malformed,
    },
}

impl RequestError {
    pub fn problem(&self) -> Malformed {
        match self {
            RequestError::Unsendable(problem) | RequestError::Sendable { problem, .. } => *problem,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BEP 15: {}", self.problem())
    }
}

impl std::error::Error for RequestError {}

fn split<T: Pod>(bytes: &[u8]) -> Option<(&T, &[u8])> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    let (head, rest) = bytes.split_at(size_of::<T>());
    Some((bytemuck::try_from_bytes(head).ok()?, rest))
}

/// Decodes and checks one request. Never panics, never allocates.
pub fn decode_request(bytes: &[u8]) -> Result<Request<'_>, RequestError> {
    use RequestError::{Sendable, Unsendable};
    let (header, rest) = split::<RequestHeader>(bytes).ok_or(Unsendable(Malformed::Truncated))?;
    let (connection_id, transaction_id) = (header.connection_id.get(), header.transaction_id.get());
    let sendable = |problem| Sendable {
        connection_id,
        transaction_id,
        problem,
    };
    match header.action.get() {
        ACTION_CONNECT => {
            if connection_id != PROTOCOL_ID {
                return Err(Unsendable(Malformed::BadProtocolId));
            }
            if !rest.is_empty() {
                return Err(Unsendable(Malformed::ConnectLength));
            }
            Ok(Request::Connect { transaction_id })
        }
        ACTION_ANNOUNCE => {
            let (announce, options) =
                split::<AnnounceRequest>(bytes).ok_or(sendable(Malformed::AnnounceTruncated))?;
            if options.len() > ANNOUNCE_OPTIONS_BYTES_MAX {
                return Err(sendable(Malformed::AnnounceTooLong));
            }
            if Event::from_repr(announce.event.get()).is_none() {
                return Err(sendable(Malformed::BadEvent(announce.event.get())));
            }
            Ok(Request::Announce(announce))
        }
        ACTION_SCRAPE => {
            if rest.len() % size_of::<Hash>() != 0 {
                return Err(sendable(Malformed::ScrapeLength));
            }
            let count = rest.len() / size_of::<Hash>();
            if count == 0 || count > SCRAPE_HASHES_MAX {
                return Err(sendable(Malformed::ScrapeCount));
            }
            let info_hashes =
                bytemuck::try_cast_slice(rest).map_err(|_| sendable(Malformed::ScrapeLength))?;
            Ok(Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            })
        }
        action => Err(Unsendable(Malformed::UnknownAction(action))),
    }
}

/// The peers of an announce response, in the request's address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peers<'a> {
    V4(&'a [PeerV4]),
    V6(&'a [PeerV6]),
}

impl Peers<'_> {
    pub fn len(&self) -> usize {
        match self {
            Peers::V4(peers) => peers.len(),
            Peers::V6(peers) => peers.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The peers as addresses (allocates: for tests and logs).
    pub fn to_addrs(&self) -> Vec<SocketAddr> {
        match self {
            Peers::V4(peers) => peers
                .iter()
                .map(|p| SocketAddr::from((Ipv4Addr::from(p.ip), p.port.get())))
                .collect(),
            Peers::V6(peers) => peers
                .iter()
                .map(|p| SocketAddr::from((Ipv6Addr::from(p.ip), p.port.get())))
                .collect(),
        }
    }
}

/// A checked response. Borrows from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    Connect(&'a ConnectResponse),
    Announce {
        fixed: &'a AnnounceResponse,
        peers: Peers<'a>,
    },
    Scrape {
        transaction_id: u32,
        stats: &'a [ScrapeStats],
    },
    Error {
        transaction_id: u32,
        message: &'a str,
    },
}

/// Decodes a response. `ipv6` says which family the request went over: it decides whether
/// an announce's peers are 6 or 18 bytes (the response itself does not say).
pub fn decode_response(bytes: &[u8], ipv6: bool) -> Result<Response<'_>, Malformed> {
    let (header, rest) = split::<ResponseHeader>(bytes).ok_or(Malformed::Truncated)?;
    let transaction_id = header.transaction_id.get();
    match header.action.get() {
        ACTION_CONNECT => {
            if bytes.len() != size_of::<ConnectResponse>() {
                return Err(Malformed::ConnectLength);
            }
            let connect = bytemuck::try_from_bytes(bytes).map_err(|_| Malformed::ConnectLength)?;
            Ok(Response::Connect(connect))
        }
        ACTION_ANNOUNCE => {
            let (fixed, tail) =
                split::<AnnounceResponse>(bytes).ok_or(Malformed::AnnounceTruncated)?;
            let peers = if ipv6 {
                Peers::V6(bytemuck::try_cast_slice(tail).map_err(|_| Malformed::ResponseLength)?)
            } else {
                Peers::V4(bytemuck::try_cast_slice(tail).map_err(|_| Malformed::ResponseLength)?)
            };
            Ok(Response::Announce { fixed, peers })
        }
        ACTION_SCRAPE => {
            let stats = bytemuck::try_cast_slice(rest).map_err(|_| Malformed::ResponseLength)?;
            Ok(Response::Scrape {
                transaction_id,
                stats,
            })
        }
        ACTION_ERROR => {
            let message = std::str::from_utf8(rest).map_err(|_| Malformed::ResponseLength)?;
            Ok(Response::Error {
                transaction_id,
                message,
            })
        }
        action => Err(Malformed::UnknownAction(action)),
    }
}

fn response_header(action: u32, transaction_id: u32) -> ResponseHeader {
    ResponseHeader {
        action: U32::new(action),
        transaction_id: U32::new(transaction_id),
    }
}

pub fn encode_connect_response(
    buf: &mut [u8],
    transaction_id: u32,
    connection_id: u64,
) -> Result<usize, EncodeError> {
    let mut w = Writer::raw(buf);
    w.put_pod(&ConnectResponse {
        header: response_header(ACTION_CONNECT, transaction_id),
        connection_id: U64::new(connection_id),
    })?;
    Ok(w.finish())
}

/// An announce response. Peers of the other family than `ipv6` says are skipped: BEP 15
/// answers in the family of the request.
pub fn encode_announce_response(
    buf: &mut [u8],
    fixed: &AnnounceResponse,
    ipv6: bool,
    peers: &[SocketAddr],
) -> Result<usize, EncodeError> {
    let mut w = Writer::raw(buf);
    w.put_pod(fixed)?;
    for peer in peers {
        match (peer, ipv6) {
            (SocketAddr::V4(v4), false) => w.put_pod(&PeerV4 {
                ip: v4.ip().octets(),
                port: U16::new(v4.port()),
            })?,
            (SocketAddr::V6(v6), true) => w.put_pod(&PeerV6 {
                ip: v6.ip().octets(),
                port: U16::new(v6.port()),
            })?,
            _ => {}
        }
    }
    Ok(w.finish())
}

pub fn encode_scrape_response(
    buf: &mut [u8],
    transaction_id: u32,
    stats: &[ScrapeStats],
) -> Result<usize, EncodeError> {
    let mut w = Writer::raw(buf);
    w.put_pod(&response_header(ACTION_SCRAPE, transaction_id))?;
    w.put(bytemuck::cast_slice(stats))?;
    Ok(w.finish())
}

/// An error response; the message is cut to [`ERROR_MESSAGE_BYTES_MAX`] (at a character).
pub fn encode_error_response(
    buf: &mut [u8],
    transaction_id: u32,
    message: &str,
) -> Result<usize, EncodeError> {
    let mut end = message.len().min(ERROR_MESSAGE_BYTES_MAX);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut w = Writer::raw(buf);
    w.put_pod(&response_header(ACTION_ERROR, transaction_id))?;
    w.put(&message.as_bytes()[..end])?;
    Ok(w.finish())
}

/// A connect request, as a client sends it.
pub fn encode_connect_request(buf: &mut [u8], transaction_id: u32) -> Result<usize, EncodeError> {
    let mut w = Writer::raw(buf);
    w.put_pod(&RequestHeader {
        connection_id: U64::new(PROTOCOL_ID),
        action: U32::new(ACTION_CONNECT),
        transaction_id: U32::new(transaction_id),
    })?;
    Ok(w.finish())
}

/// A scrape request, as a client sends it.
pub fn encode_scrape_request(
    buf: &mut [u8],
    connection_id: u64,
    transaction_id: u32,
    info_hashes: &[Hash],
) -> Result<usize, EncodeError> {
    let mut w = Writer::raw(buf);
    w.put_pod(&RequestHeader {
        connection_id: U64::new(connection_id),
        action: U32::new(ACTION_SCRAPE),
        transaction_id: U32::new(transaction_id),
    })?;
    w.put(bytemuck::cast_slice(info_hashes))?;
    Ok(w.finish())
}

#[cfg(test)]
mod tests;
