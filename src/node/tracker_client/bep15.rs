//! The node's side of a standard BitTorrent UDP tracker (BEP 15): opentracker, aquatic_udp,
//! or the BEP 15 side of our own tracker, chosen with `--tracker udp://HOST:PORT`.
//!
//! [`Bep15Client`] is sans-IO like the rest of the node: datagrams in
//! ([`Bep15Client::handle_datagram`]), timers ([`Bep15Client::handle_timeout`],
//! [`Bep15Client::poll_timeout`]), datagrams and events out
//! ([`Bep15Client::poll_transmit`], [`Bep15Client::poll_event`]); `now` and a seed are
//! passed in. `tracker_client.rs` connects it to the node.
//!
//! What it does, per BEP 15:
//!
//! * **Connect.** A connect request earns a connection id, used for at most
//!   [`CONNECTION_ID_LIFETIME`] (BEP 15: one minute), then a new one is asked for.
//! * **Announce.** Every file the node holds, whole or in part, and every download, is
//!   announced under its info hash with the node's UDP port (or the `--advertise`d one) as
//!   the peer port: `started` first, `completed` when a download finishes, `stopped` when
//!   the node leaves, and
//!   again every interval the tracker asks for (bounded to
//!   [`INTERVAL_MIN`]..=[`INTERVAL_MAX`]). A download asks for [`NUM_WANT`] peers and may
//!   announce again for fresh peers every [`PEER_REFRESH_MIN`]. `uploaded` and
//!   `downloaded` are the payload bytes this node served and verified for that info hash
//!   since its `started` (counted by the node: [`Bep15Client::count_uploaded`],
//!   [`Bep15Client::count_downloaded`]); a file shared from the directory downloaded 0.
//! * **Retries.** An unanswered request is sent again after [`RETRY_FIRST`], doubling up to
//!   [`RETRY_MAX`] (BEP 15's 15 s × 2ⁿ is meant for the Internet; this is for a LAN). An
//!   unanswered announce also drops the connection id (a restarted tracker forgot it).
//! * **Checks.** A reply counts only when its transaction id is one we are waiting for, with
//!   the action we asked, and of a valid length. An error reply is shown to the user.
//!
//! There is no upload credit, no exit message and no ranking of peers here: a standard
//! tracker knows none of them. Peers come as IPv4 addresses (compact, 6 bytes each).

use crate::Transmit;
use crate::bep15::{self, AnnounceRequest, Event, Malformed, RequestHeader, Response};
use crate::node::advertise::SelfAddresses;
use crate::node::{DOWNLOADS_MAX, FILES_MAX};
use crate::rng::Rng;
use crate::wire::{self, Hash, U32, U64};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a connection id is used (BEP 15: a client may use it for one minute).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);
/// First retry of an unanswered request; doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
pub const RETRY_MAX: Duration = Duration::from_secs(8);
/// Least re-announce interval, whatever the tracker asks.
pub const INTERVAL_MIN: Duration = Duration::from_secs(30);
/// Most re-announce interval, whatever the tracker asks.
pub const INTERVAL_MAX: Duration = Duration::from_secs(1800);
/// After an error reply to an announce, it is tried again this much later.
pub const ERROR_RETRY: Duration = Duration::from_secs(30);
/// A download that wants peers announces again at most this often.
pub const PEER_REFRESH_MIN: Duration = Duration::from_secs(5);
/// Peers a download asks for (num_want).
pub const NUM_WANT: u32 = 64;
/// Most peers read from one announce reply.
pub const PEERS_PER_REPLY_MAX: usize = 200;
/// Most info hashes announced (files held plus downloads).
pub const TORRENTS_MAX: usize = FILES_MAX + DOWNLOADS_MAX;
/// Most datagrams and events waiting to be polled.
pub const QUEUE_MAX: usize = 2 * TORRENTS_MAX + 16;
/// Unanswered attempts after which the user is told the tracker is not answering.
pub const SILENT_ATTEMPTS: u32 = 3;
/// The first 8 bytes of our peer id (Azureus style); 12 random bytes follow.
pub const PEER_ID_PREFIX: &[u8; 8] = b"-TO0001-";
/// `left` announced while a download does not know its size yet (any non-zero value reads
/// as "a leecher").
const LEFT_UNKNOWN: u64 = 1;

/// What the tracker said, for the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StandardEvent {
    /// The first connection id arrived (or the first after the tracker was silent).
    Connected,
    /// An announce was answered: peers other than ourselves.
    Announced {
        info_hash: Hash,
        peers: Vec<SocketAddr>,
        seeders: u32,
        leechers: u32,
    },
    /// An error reply, to an announce of `info_hash` or to a connect (`None`).
    Refused {
        info_hash: Option<Hash>,
        message: String,
    },
    /// [`SILENT_ATTEMPTS`] connects went unanswered.
    Silent,
    /// [`SILENT_ATTEMPTS`] announces of `info_hash` in a row went unanswered while connects
    /// are answered: some trackers (opentracker with a whitelist) drop what they refuse.
    AnnounceUnanswered { info_hash: Hash },
}

/// Why a datagram from the tracker was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    Malformed(Malformed),
    /// No request with this transaction id is waiting (late, duplicate or forged).
    UnknownTransaction(u32),
    /// The transaction id is a connect's but the action is not, or the other way round.
    WrongAction(u32),
}

/// An announce waiting for its reply.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    transaction_id: u32,
    resend_at: Instant,
}

/// One info hash we announce.
#[derive(Clone, Debug)]
struct Torrent {
    /// Bytes still missing (`None`: not known yet).
    left_bytes: Option<u64>,
    /// Payload bytes sent to peers since `started` (BEP 15's `uploaded`).
    uploaded_bytes: u64,
    /// Payload bytes received and verified since `started` (BEP 15's `downloaded`).
    downloaded_bytes: u64,
    /// The event of the next announce: `Started` until one is answered, then `None`, or
    /// `Completed` once when a download finishes.
    event: Event,
    /// The download finished while `started` was unanswered: `completed` follows its reply.
    completed_owed: bool,
    wants_peers: bool,
    /// When the next announce is due (`None` while one is in flight).
    due: Option<Instant>,
    in_flight: Option<InFlight>,
    retry: Duration,
    interval: Duration,
    last_answered: Option<Instant>,
    /// Announces lost in a row.
    unanswered: u32,
}

struct Connecting {
    transaction_id: u32,
    resend_at: Instant,
    retry: Duration,
    attempts: u32,
}

/// A BEP 15 client for every info hash the node announces. See the module documentation.
pub struct Bep15Client {
    addr: SocketAddr,
    /// Our socket's address and the advertised one: the peer port we announce, and the
    /// addresses at which a peer list names us.
    me: SelfAddresses,
    peer_id: [u8; 20],
    key: u32,
    rng: Rng,
    /// The connection id and until when it may be used.
    connection: Option<(u64, Instant)>,
    connecting: Option<Connecting>,
    torrents: BTreeMap<Hash, Torrent>,
    outgoing: VecDeque<Vec<u8>>,
    events: VecDeque<StandardEvent>,
    told_silent: bool,
    ever_connected: bool,
}

impl Bep15Client {
    /// A client of the tracker at `addr`, for a node at `me` (its socket's address, or that
    /// and the address it advertises).
    pub fn new(addr: SocketAddr, me: impl Into<SelfAddresses>, seed: u64) -> Bep15Client {
        let mut rng = Rng::new(seed);
        let mut peer_id = [0u8; 20];
        peer_id[..8].copy_from_slice(PEER_ID_PREFIX);
        for byte in &mut peer_id[8..] {
            // Printable, as most clients' are.
            *byte = b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.below(36) as usize];
        }
        let key = rng.next_u64() as u32;
        Bep15Client {
            addr,
            me: me.into(),
            peer_id,
            key,
            rng,
            connection: None,
            connecting: None,
            torrents: BTreeMap::new(),
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
            told_silent: false,
            ever_connected: false,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Announces `info_hash` from now on (`started` first), or updates what is left of it;
    /// a download that reaches zero left announces `completed` at once.
    pub fn set_torrent(
        &mut self,
        now: Instant,
        info_hash: Hash,
        left_bytes: Option<u64>,
        wants_peers: bool,
    ) {
        if let Some(torrent) = self.torrents.get_mut(&info_hash) {
            let completes = torrent.left_bytes != Some(0) && left_bytes == Some(0);
            torrent.left_bytes = left_bytes;
            torrent.wants_peers = wants_peers;
            if completes && torrent.event == Event::Started {
                // A tracker counts a download only from a `completed` after a `started`.
                torrent.completed_owed = true;
            } else if completes {
                torrent.event = Event::Completed;
                if torrent.in_flight.is_none() {
                    torrent.due = Some(now);
                }
            }
            return;
        }
        if self.torrents.len() >= TORRENTS_MAX {
            log::warn!("{TORRENTS_MAX} info hashes announced already; not announcing another");
            return;
        }
        self.torrents.insert(
            info_hash,
            Torrent {
                left_bytes,
                uploaded_bytes: 0,
                downloaded_bytes: 0,
                event: Event::Started,
                completed_owed: false,
                wants_peers,
                due: Some(now),
                in_flight: None,
                retry: RETRY_FIRST,
                interval: INTERVAL_MIN,
                last_answered: None,
                unanswered: 0,
            },
        );
    }

    /// `payload_bytes` of `info_hash` went to a peer: told as `uploaded` from the next
    /// announce. An info hash not announced is not counted (the table stays bounded by
    /// [`TORRENTS_MAX`]).
    pub fn count_uploaded(&mut self, info_hash: Hash, payload_bytes: u64) {
        if let Some(torrent) = self.torrents.get_mut(&info_hash) {
            torrent.uploaded_bytes = torrent.uploaded_bytes.saturating_add(payload_bytes);
        }
    }

    /// `payload_bytes` of `info_hash` arrived and verified: told as `downloaded` from the
    /// next announce.
    pub fn count_downloaded(&mut self, info_hash: Hash, payload_bytes: u64) {
        if let Some(torrent) = self.torrents.get_mut(&info_hash) {
            torrent.downloaded_bytes = torrent.downloaded_bytes.saturating_add(payload_bytes);
        }
    }

    /// A download needs (more) peers: announce soon, but not more often than
    /// [`PEER_REFRESH_MIN`].
    pub fn want_peers(&mut self, now: Instant, info_hash: Hash) {
        let Some(torrent) = self.torrents.get_mut(&info_hash) else {
            return;
        };
        torrent.wants_peers = true;
        if torrent.in_flight.is_some() {
            return;
        }
        let soonest = torrent.last_answered.map_or(now, |t| t + PEER_REFRESH_MIN);
        torrent.due = Some(torrent.due.map_or(soonest, |due| due.min(soonest)).max(now));
    }

    /// Stops announcing `info_hash`, telling the tracker (`stopped`) when connected.
    pub fn remove(&mut self, now: Instant, info_hash: Hash) {
        if let Some(torrent) = self.torrents.remove(&info_hash) {
            self.send_stopped(now, info_hash, &torrent);
        }
    }

    /// Leaving: a `stopped` announce for every info hash, without waiting for replies (there
    /// is nothing to wait for: the tracker forgets us at its interval anyway).
    pub fn stop_all(&mut self, now: Instant) {
        let torrents = std::mem::take(&mut self.torrents);
        for (info_hash, torrent) in &torrents {
            self.send_stopped(now, *info_hash, torrent);
        }
        self.connecting = None;
    }

    fn send_stopped(&mut self, now: Instant, info_hash: Hash, torrent: &Torrent) {
        if torrent.last_answered.is_none() {
            return;
        }
        if let Some(connection_id) = self.valid_connection(now) {
            let mut stopped = torrent.clone();
            stopped.event = Event::Stopped;
            stopped.wants_peers = false;
            let transaction_id = self.rng.next_u64() as u32;
            self.queue_announce(connection_id, transaction_id, info_hash, &stopped);
        }
    }

    /// Whether a listed peer is this node, as the tracker saw it (see
    /// [`SelfAddresses::contains`]).
    fn is_us(&self, peer: SocketAddr) -> bool {
        self.me.contains(peer)
    }

    fn valid_connection(&self, now: Instant) -> Option<u64> {
        self.connection
            .filter(|(_, expires)| now < *expires)
            .map(|(id, _)| id)
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A datagram from the tracker's address.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Ignored> {
        let response =
            bep15::decode_response(bytes, self.addr.is_ipv6()).map_err(Ignored::Malformed)?;
        let transaction_id = match &response {
            Response::Connect(connect) => connect.header.transaction_id.get(),
            Response::Announce { fixed, .. } => fixed.header.transaction_id.get(),
            Response::Scrape { transaction_id, .. } | Response::Error { transaction_id, .. } => {
                *transaction_id
            }
        };
        let is_connect = self
            .connecting
            .as_ref()
            .is_some_and(|c| c.transaction_id == transaction_id);
        let announce = self
            .torrents
            .iter()
            .find(|(_, t)| {
                t.in_flight
                    .is_some_and(|f| f.transaction_id == transaction_id)
            })
            .map(|(h, _)| *h);
        match (response, is_connect, announce) {
            (Response::Connect(connect), true, _) => {
                self.connecting = None;
                self.connection = Some((connect.connection_id.get(), now + CONNECTION_ID_LIFETIME));
                if !self.ever_connected || self.told_silent {
                    self.event(StandardEvent::Connected);
                }
                self.ever_connected = true;
                self.told_silent = false;
                self.send_due(now);
                Ok(())
            }
            (Response::Announce { fixed, peers }, false, Some(info_hash)) => {
                let list: Vec<SocketAddr> = match peers {
                    bep15::Peers::V4(peers) => peers
                        .iter()
                        .map(|p| SocketAddr::from((p.ip, p.port.get())))
                        .filter(|&peer| !self.is_us(peer))
                        .take(PEERS_PER_REPLY_MAX)
                        .collect(),
                    // An IPv6 tracker address: peers of 18 bytes.
                    bep15::Peers::V6(peers) => peers
                        .iter()
                        .map(|p| SocketAddr::from((p.ip, p.port.get())))
                        .filter(|&peer| !self.is_us(peer))
                        .take(PEERS_PER_REPLY_MAX)
                        .collect(),
                };
                let interval = Duration::from_secs(u64::from(fixed.interval_s.get()))
                    .clamp(INTERVAL_MIN, INTERVAL_MAX);
                if let Some(torrent) = self.torrents.get_mut(&info_hash) {
                    torrent.in_flight = None;
                    torrent.retry = RETRY_FIRST;
                    torrent.interval = interval;
                    torrent.last_answered = Some(now);
                    torrent.unanswered = 0;
                    if std::mem::take(&mut torrent.completed_owed) {
                        torrent.event = Event::Completed;
                        torrent.due = Some(now);
                    } else {
                        torrent.event = Event::None;
                        torrent.due = Some(now + interval);
                    }
                }
                self.event(StandardEvent::Announced {
                    info_hash,
                    peers: list,
                    seeders: fixed.seeders.get(),
                    leechers: fixed.leechers.get(),
                });
                Ok(())
            }
            (Response::Error { message, .. }, true, _) => {
                self.event(StandardEvent::Refused {
                    info_hash: None,
                    message: message.chars().take(200).collect(),
                });
                Ok(())
            }
            (Response::Error { message, .. }, false, Some(info_hash)) => {
                if let Some(torrent) = self.torrents.get_mut(&info_hash) {
                    torrent.in_flight = None;
                    torrent.due = Some(now + ERROR_RETRY);
                }
                self.event(StandardEvent::Refused {
                    info_hash: Some(info_hash),
                    message: message.chars().take(200).collect(),
                });
                Ok(())
            }
            (_, false, None) => Err(Ignored::UnknownTransaction(transaction_id)),
            (_, _, _) => Err(Ignored::WrongAction(transaction_id)),
        }
    }

    /// Resends what went unanswered and sends what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut lost_announce = false;
        let mut silent = Vec::new();
        for (info_hash, torrent) in self.torrents.iter_mut() {
            if torrent.in_flight.is_some_and(|f| f.resend_at <= now) {
                torrent.in_flight = None;
                torrent.due = Some(now);
                torrent.unanswered += 1;
                if torrent.unanswered == SILENT_ATTEMPTS {
                    silent.push(*info_hash);
                }
                lost_announce = true;
            }
        }
        for info_hash in silent {
            self.event(StandardEvent::AnnounceUnanswered { info_hash });
        }
        if lost_announce {
            // The tracker may have restarted and forgotten our connection id.
            self.connection = None;
        }
        if let Some(connecting) = &self.connecting
            && connecting.resend_at <= now
        {
            self.send_connect(now);
        }
        self.send_due(now);
    }

    /// Sends every due announce, connecting first when the connection id is missing or old.
    fn send_due(&mut self, now: Instant) {
        let due: Vec<Hash> = self
            .torrents
            .iter()
            .filter(|(_, t)| t.in_flight.is_none() && t.due.is_some_and(|d| d <= now))
            .map(|(h, _)| *h)
            .collect();
        if due.is_empty() {
            return;
        }
        let Some(connection_id) = self.valid_connection(now) else {
            if self.connecting.is_none() {
                self.send_connect(now);
            }
            return;
        };
        for info_hash in due {
            let transaction_id = self.rng.next_u64() as u32;
            let Some(torrent) = self.torrents.get_mut(&info_hash) else {
                continue;
            };
            torrent.due = None;
            torrent.in_flight = Some(InFlight {
                transaction_id,
                resend_at: now + torrent.retry,
            });
            torrent.retry = (torrent.retry * 2).min(RETRY_MAX);
            let torrent = torrent.clone();
            self.queue_announce(connection_id, transaction_id, info_hash, &torrent);
        }
    }

    fn send_connect(&mut self, now: Instant) {
        let transaction_id = self.rng.next_u64() as u32;
        let (retry, attempts) = self
            .connecting
            .as_ref()
            .map_or((RETRY_FIRST, 0), |c| (c.retry, c.attempts));
        self.connecting = Some(Connecting {
            transaction_id,
            resend_at: now + retry,
            retry: (retry * 2).min(RETRY_MAX),
            attempts: attempts + 1,
        });
        if attempts + 1 > SILENT_ATTEMPTS && !self.told_silent {
            self.told_silent = true;
            self.event(StandardEvent::Silent);
        }
        let mut buf = [0u8; size_of::<RequestHeader>()];
        if let Ok(len) = bep15::encode_connect_request(&mut buf, transaction_id) {
            self.queue(buf[..len].to_vec());
        }
    }

    fn queue_announce(
        &mut self,
        connection_id: u64,
        transaction_id: u32,
        info_hash: Hash,
        torrent: &Torrent,
    ) {
        let left = torrent.left_bytes.unwrap_or(LEFT_UNKNOWN);
        let num_want = if torrent.wants_peers && torrent.event != Event::Stopped {
            NUM_WANT
        } else {
            0
        };
        let request = AnnounceRequest {
            header: RequestHeader {
                connection_id: U64::new(connection_id),
                action: U32::new(bep15::ACTION_ANNOUNCE),
                transaction_id: U32::new(transaction_id),
            },
            info_hash,
            peer_id: self.peer_id,
            downloaded_bytes: U64::new(torrent.downloaded_bytes),
            left_bytes: U64::new(left),
            uploaded_bytes: U64::new(torrent.uploaded_bytes),
            event: U32::new(torrent.event as u32),
            // BEP 15: zero means "the address this datagram came from". Most trackers ignore
            // any other value (a client could name a victim), and list the source address.
            ip: match self.me.advertise() {
                Some(SocketAddr::V4(advertised)) => advertised.ip().octets(),
                _ => [0; 4],
            },
            key: U32::new(self.key),
            num_want: U32::new(num_want),
            port: wire::U16::new(self.me.peer_port()),
        };
        self.queue(bytemuck::bytes_of(&request).to_vec());
    }

    fn queue(&mut self, bytes: Vec<u8>) {
        if self.outgoing.len() < QUEUE_MAX {
            self.outgoing.push_back(bytes);
        }
    }

    fn event(&mut self, event: StandardEvent) {
        if self.events.len() < QUEUE_MAX {
            self.events.push_back(event);
        }
    }

    // ---- outputs ------------------------------------------------------------------------

    /// Writes the next datagram for the tracker into `buf`, as every core's
    /// `poll_transmit` does. Requests are at most [`bep15::REQUEST_BYTES_MAX`] bytes; one
    /// that does not fit `buf` is dropped (and logged) rather than cut.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        while let Some(bytes) = self.outgoing.pop_front() {
            let Some(room) = buf.get_mut(..bytes.len()) else {
                log::error!(
                    "a {}-byte request does not fit a {}-byte buffer",
                    bytes.len(),
                    buf.len()
                );
                continue;
            };
            room.copy_from_slice(&bytes);
            return Some(Transmit {
                to: self.addr,
                len: bytes.len(),
                source_as_for: None,
            });
        }
        None
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<StandardEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next run. Announces due while a connect is under way
    /// wait for its reply (or its resend), so they are not counted.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut earliest = self.connecting.as_ref().map(|c| c.resend_at);
        for torrent in self.torrents.values() {
            let t = match torrent.in_flight {
                Some(in_flight) => Some(in_flight.resend_at),
                None if self.connecting.is_none() => torrent.due,
                None => None,
            };
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e: Instant| e.min(t)));
            }
        }
        earliest
    }

    /// Whether `info_hash` is announced as a download that wants peers.
    pub fn wants_peers(&self, info_hash: &Hash) -> bool {
        self.torrents.get(info_hash).is_some_and(|t| t.wants_peers)
    }

    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }
}

#[cfg(test)]
mod tests;
