//! One holder as a download sees it: where it is, the cookie it handed us, what it holds
//! (its have-map), how fast and how far it is (round trip, pace, path MTU, congestion), and
//! what it sent. Which chunks it was asked for and how many of its pieces are in flight are
//! not here: the transfer keeps that account for every peer at once
//! ([`super::transfer::Transfer`]), so that it can check the account adds up.

use super::transfer::{WINDOW_MIN, WINDOW_START};
use crate::mtu::PathMtu;
use crate::storage::Bitmap;
use crate::wire;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A peer we are waiting on that says nothing for this long is dropped.
pub(super) const PEER_SILENCE: Duration = Duration::from_secs(2);
/// A peer we wait on that says nothing for this long is pinged (and again every
/// [`ASK_RETRY`]), so that by [`PEER_SILENCE`] a peer that is gone is told apart from one
/// whose pieces are lost.
pub(super) const PING_AFTER: Duration = Duration::from_secs(1);
/// A peer dropped this long after it was last heard from may be asked again.
const DROPPED_PEER_RETRY: Duration = Duration::from_secs(4);
/// How often an unanswered have-map or manifest request is repeated.
pub(super) const ASK_RETRY: Duration = Duration::from_millis(300);
/// Bad chunks after which a peer is dropped.
pub(super) const BAD_CHUNKS_MAX: u32 = 3;
/// A peer that refused a piece request for want of an upload slot is asked again after
/// this, doubled with every refusal in a row up to [`BUSY_RETRY_MAX`].
const BUSY_RETRY: Duration = Duration::from_millis(50);
const BUSY_RETRY_MAX: Duration = Duration::from_millis(800);
/// A partial holder that refused this many times in a row is dropped for another one, if
/// there is another.
const BUSY_STREAK_MAX: u32 = 4;
/// Retransmission timeout bounds, and its value before any round trip was measured.
pub(super) const RTO_MIN: Duration = Duration::from_millis(40);
const RTO_MAX: Duration = Duration::from_secs(1);
const RTO_START: Duration = Duration::from_millis(250);
/// Pieces lost in a row, none arriving between, after which a path that carried large
/// pieces is taken to have narrowed (see `Peers::narrow_path`). At 3% random loss, 8
/// in a row happen once in 10^12 pieces.
pub(super) const BLACK_HOLE_LOSSES: u32 = 8;
/// ... over at least this long (see [`BLACK_HOLE_LOSSES`]); well under `PEER_SILENCE`, so
/// that the peer is asked in smaller pieces before it is taken for gone.
const BLACK_HOLE_SILENCE: Duration = Duration::from_millis(400);

pub(super) struct Peer {
    pub node_id: u32,
    pub addr: SocketAddr,
    /// The cookie this peer handed us (0: none yet).
    pub cookie: u64,
    /// Its have-map, once it answered.
    pub have: Option<Bitmap>,
    /// The tracker said it holds the whole file.
    pub complete: bool,
    pub window: u32,
    pub last_heard: Instant,
    pub last_asked: Instant,
    pub srtt: Option<Duration>,
    pub chunks_verified: u32,
    pub bytes_received: u64,
    /// Pieces received from it, pieces of it that timed out, and when its first piece came:
    /// the loss and rate `status` shows.
    pub pieces_received: u64,
    pub pieces_lost: u64,
    pub first_piece_at: Option<Instant>,
    pub bad_chunks: u32,
    pub dropped: bool,
    /// It refused a request for want of an upload slot: not asked for pieces until then.
    pub busy_until: Option<Instant>,
    /// Refusals in a row (a piece received resets it).
    pub busy_streak: u32,
    /// How fast it delivers (see [`super::pace`]).
    pub pace: super::pace::Pace,
    /// How large a datagram reaches us from it whole (see [`crate::mtu`]).
    pub path: PathMtu,
    /// The pace we ask of it (see [`super::congestion`]), when it is paced at all.
    pub congestion: super::congestion::Congestion,
    pub paced: bool,
    /// The latest time a piece was asked of this peer among those that arrived: a holder
    /// sends what it is asked in order, so a piece asked before that and still missing
    /// was lost (see `scan_timeouts`).
    pub newest_answered: Option<Instant>,
    /// Pieces of this peer that timed out since one last arrived, and when the first of
    /// them did: many in a row for a while mean large datagrams no longer cross the path.
    pub pieces_lost_in_a_row: u32,
    pub first_loss_in_a_row: Option<Instant>,
    /// Whether it answers and what became of its pieces (see [`super::diagnosis`]).
    pub evidence: super::diagnosis::PeerEvidence,
}

impl Peer {
    pub fn new(
        node_id: u32,
        addr: SocketAddr,
        complete: bool,
        route_mtu: u32,
        pace: crate::node::PaceMode,
        now: Instant,
    ) -> Peer {
        Peer {
            node_id,
            addr,
            cookie: 0,
            have: None,
            complete,
            window: WINDOW_START,
            last_heard: now,
            last_asked: now,
            srtt: None,
            chunks_verified: 0,
            bytes_received: 0,
            pieces_received: 0,
            pieces_lost: 0,
            first_piece_at: None,
            bad_chunks: 0,
            dropped: false,
            busy_until: None,
            busy_streak: 0,
            pace: super::pace::Pace::default(),
            path: PathMtu::new(addr, route_mtu, now),
            congestion: super::congestion::Congestion::new(now),
            paced: pace.applies(route_mtu),
            newest_answered: None,
            pieces_lost_in_a_row: 0,
            first_loss_in_a_row: None,
            evidence: super::diagnosis::PeerEvidence::default(),
        }
    }

    /// The data bytes of a piece this peer can send us whole, at most `configured`, at least
    /// [`wire::PIECE_BYTES_MIN`] (a path narrower than that, 1,088 bytes of IPv4, is not
    /// served).
    pub fn piece_bytes(&self, configured: u32) -> u32 {
        // A paced peer stamps its pieces (see `wire::StampedPiece`).
        let overhead = if self.paced {
            wire::STAMPED_PIECE_OVERHEAD_BYTES
        } else {
            wire::PIECE_OVERHEAD_BYTES
        };
        let fits = (self.path.datagram_bytes() as usize).saturating_sub(overhead);
        configured
            .min(fits as u32)
            .max(wire::PIECE_BYTES_MIN as u32)
    }

    /// Most pieces to keep in flight from this peer: its window, and for a paced peer no
    /// more than its pace delivers in a short time (see [`super::congestion`]).
    pub fn request_window(&self) -> u32 {
        if !self.paced {
            return self.window;
        }
        self.window.min(
            self.congestion
                .in_flight_pieces_max(self.path.datagram_bytes()),
        )
    }

    pub fn rto(&self) -> Duration {
        self.srtt.map_or(RTO_START, |srtt| {
            (srtt * 4 + Duration::from_millis(10)).clamp(RTO_MIN, RTO_MAX)
        })
    }

    /// Waiting for something from this peer: its have-map, or pieces (`in_flight` of them
    /// are asked and not in: see [`super::transfer::Transfer::in_flight`]).
    pub fn waiting(&self, in_flight: u32) -> bool {
        !self.dropped && (self.have.is_none() || in_flight > 0)
    }

    /// Refused us a slot a moment ago: wait before asking it for pieces again.
    pub fn busy(&self, now: Instant) -> bool {
        self.busy_until.is_some_and(|t| t > now)
    }

    /// A dropped peer may be used again: it comes back from a new address (it restarted),
    /// or, unless it sent bad chunks, it has been quiet a while (a partition healed).
    pub fn may_return(&self, addr: SocketAddr, now: Instant) -> bool {
        self.dropped
            && (self.addr != addr
                || (self.bad_chunks < BAD_CHUNKS_MAX
                    && now.saturating_duration_since(self.last_heard) >= DROPPED_PEER_RETRY))
    }

    /// Holds every chunk (so its have-map never needs refreshing).
    pub fn has_all(&self) -> bool {
        self.have.as_ref().is_some_and(Bitmap::is_full)
    }

    /// `lost` of the pieces asked of it were lost (`judged` of them asked since the
    /// diagnosis began judging, in datagrams of at least `datagram_bytes`). Returns whether
    /// its large pieces look to have stopped crossing the path: [`BLACK_HOLE_LOSSES`] in a
    /// row over [`BLACK_HOLE_SILENCE`], at a size above the safe one.
    pub fn on_pieces_lost(
        &mut self,
        now: Instant,
        lost: u32,
        judged: u32,
        datagram_bytes: u32,
    ) -> bool {
        // A paced peer's window stays: the pace answers congestion (see congestion.rs), and
        // halving it for random loss would slow a clean path.
        if !self.paced {
            self.window = (self.window / 2).max(WINDOW_MIN);
        }
        self.pieces_lost_in_a_row += lost;
        self.pieces_lost += u64::from(lost);
        self.congestion.on_loss(now, lost);
        let first_loss = *self.first_loss_in_a_row.get_or_insert(now);
        self.evidence.on_lost(lost, judged, datagram_bytes);
        log::debug!("{lost} pieces from node {} timed out", self.node_id);
        // A whole window can time out at once when pieces only queued longer than the
        // timeout; they then arrive late and end the run. Lost for a while, they are not
        // coming.
        self.pieces_lost_in_a_row >= BLACK_HOLE_LOSSES
            && now.saturating_duration_since(first_loss) >= BLACK_HOLE_SILENCE
            && self.path.datagram_bytes() > crate::mtu::SAFE_DATAGRAM_BYTES
    }

    /// Taken back after it was dropped: it starts afresh at `addr`, as a new peer would,
    /// keeping only what it sent us before (for `status` and the diagnosis).
    pub fn rejoin(
        &mut self,
        addr: SocketAddr,
        complete: bool,
        route_mtu: u32,
        pace: crate::node::PaceMode,
        now: Instant,
    ) {
        self.addr = addr;
        self.dropped = false;
        self.have = None;
        self.cookie = 0;
        self.last_heard = now;
        self.window = WINDOW_START;
        self.complete = complete;
        self.busy_until = None;
        self.busy_streak = 0;
        self.pace = super::pace::Pace::default();
        self.path = PathMtu::new(addr, route_mtu, now);
        self.congestion = super::congestion::Congestion::new(now);
        self.paced = pace.applies(route_mtu);
        self.pieces_lost_in_a_row = 0;
        self.first_loss_in_a_row = None;
    }

    /// A piece asked at `asked_at`, of a chunk this peer owns, arrived. Returns whether it
    /// was asked later than any piece answered before, of a paced peer: then what was asked
    /// before it and is still missing was lost (see `Transfer::scan_timeouts`). Only toward
    /// paced peers: the simulation and loopback keep their timing.
    pub fn on_answer(&mut self, asked_at: Instant) -> bool {
        if self.paced && self.newest_answered.is_none_or(|t| asked_at > t) {
            self.newest_answered = Some(asked_at);
            return true;
        }
        false
    }

    /// `data_bytes` of a piece arrived from it; `sample` is the round trip when it answered
    /// a request still counted, `sent_us` its stamp when paced, `more_in_flight` whether
    /// pieces remain in flight from it. Returns whether the request waited too long in its
    /// queue (see [`super::pace::Pace::on_piece`]).
    pub fn on_piece(
        &mut self,
        now: Instant,
        data_bytes: usize,
        sample: Option<Duration>,
        sent_us: Option<u32>,
        more_in_flight: bool,
    ) -> bool {
        self.bytes_received += data_bytes as u64;
        self.pieces_received += 1;
        self.first_piece_at.get_or_insert(now);
        self.busy_streak = 0;
        self.pieces_lost_in_a_row = 0;
        self.first_loss_in_a_row = None;
        if let Some(sample) = sample {
            self.srtt = Some(self.srtt.map_or(sample, |srtt| (srtt * 7 + sample) / 8));
        }
        self.congestion
            .on_piece(now, data_bytes as u64, sample, sent_us);
        self.pace.on_piece(now, sample, more_in_flight)
    }

    /// The size of a path MTU probe due now (see [`crate::mtu`]), to a peer that handed us
    /// a cookie.
    pub fn poll_probe(&mut self, now: Instant) -> Option<u32> {
        if self.dropped || self.cookie == 0 {
            return None;
        }
        let timeout = self.rto().max(crate::mtu::PROBE_TIMEOUT_MIN);
        self.path.poll_probe(now, timeout)
    }

    /// The earliest of this peer's deadlines, with `in_flight` pieces asked of it: its
    /// silence, the ping, the repeated have-map request, the end of its refusal, the next
    /// path probe.
    pub fn poll_timeout(&self, in_flight: u32) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut consider = |t: Instant| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        if self.waiting(in_flight) {
            consider(self.last_heard + PEER_SILENCE);
            if self.have.is_some() {
                consider(
                    self.evidence
                        .ping_deadline(self.last_heard, PING_AFTER, ASK_RETRY),
                );
            }
        }
        if self.have.is_none() {
            consider(self.last_asked + ASK_RETRY);
        }
        if let Some(t) = self.busy_until {
            consider(t);
        }
        if self.cookie != 0
            && let Some(t) = self
                .path
                .poll_timeout(self.rto().max(crate::mtu::PROBE_TIMEOUT_MIN))
        {
            consider(t);
        }
        earliest
    }

    /// One line for `status`: what it sent, how fast, its round trip, how many of its
    /// pieces were lost, the size of pieces its path carries, the pace it is asked to send
    /// at, its window and the `in_flight` pieces asked of it.
    pub fn status_line(&self, piece_bytes_max: u32, now: Instant, in_flight: u32) -> String {
        let seconds = self
            .first_piece_at
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        let rate = if seconds > 0.0 {
            crate::units::rate(self.bytes_received as f64 / seconds)
        } else {
            "no rate yet".to_string()
        };
        let asked = self.pieces_received + self.pieces_lost;
        let lost = if asked > 0 {
            format!(
                "{} of {asked} pieces lost ({:.1}%)",
                self.pieces_lost,
                100.0 * self.pieces_lost as f64 / asked as f64
            )
        } else {
            "no pieces yet".to_string()
        };
        let rtt = self.srtt.map_or("no round trip yet".to_string(), |srtt| {
            format!("round trip {:.1} ms", srtt.as_secs_f64() * 1e3)
        });
        let pace = if self.paced {
            format!(
                "paced at {}",
                crate::units::rate(self.congestion.pace() as f64)
            )
        } else {
            "unpaced".to_string()
        };
        format!(
            "node {} {}{}: {} bytes received at {rate}, {} chunks verified, {rtt}, {lost}, \
             {}-byte pieces, {pace}, window {} pieces, {in_flight} in flight",
            self.node_id,
            self.addr,
            if self.dropped { " (dropped)" } else { "" },
            self.bytes_received,
            self.chunks_verified,
            self.piece_bytes(piece_bytes_max),
            self.window,
        )
    }

    /// What `peers` says of it (the structured [`Peer::status_line`]).
    pub fn info(&self, in_flight: u32) -> crate::control::PeerInfo {
        crate::control::PeerInfo {
            node_id: self.node_id,
            addr: self.addr.to_string(),
            dropped: self.dropped,
            bytes_received: self.bytes_received,
            chunks_verified: self.chunks_verified,
            pieces_received: self.pieces_received,
            pieces_lost: self.pieces_lost,
            round_trip_ms: self.srtt.map(|srtt| srtt.as_secs_f64() * 1e3),
            pace_bytes_per_s: self.paced.then(|| self.congestion.pace()),
            window_pieces: self.window,
            in_flight_pieces: in_flight,
        }
    }

    /// It refused a request for want of an upload slot: it is not asked for pieces for a
    /// while, longer with every refusal in a row (one per attempt counts: several requests
    /// may be refused). Returns whether it is a partial holder that stays busy, and so worth
    /// replacing.
    pub fn on_busy(&mut self, now: Instant) -> bool {
        if self.busy(now) {
            return false;
        }
        let backoff = BUSY_RETRY * 2u32.pow(self.busy_streak.min(8));
        self.busy_until = Some(now + backoff.min(BUSY_RETRY_MAX));
        self.busy_streak += 1;
        !self.complete && self.busy_streak >= BUSY_STREAK_MAX
    }

    /// Another peer of the download left: it may have held an upload slot of this one, which
    /// then refuses no more. A refusal's back-off (up to [`BUSY_RETRY_MAX`]) is cut to
    /// [`BUSY_RETRY`], so that a downloader whose other peers left as they finished does not
    /// sit out most of a second before asking the holder again (S3 paced, 2026-12-07).
    pub fn others_left(&mut self, now: Instant) {
        if let Some(until) = &mut self.busy_until {
            *until = (*until).min(now + BUSY_RETRY);
        }
    }

    /// What the diagnosis reads of this peer.
    pub fn view(&self) -> super::diagnosis::PeerView<'_> {
        super::diagnosis::PeerView {
            node_id: self.node_id,
            addr: self.addr,
            active: !self.dropped,
            datagram_bytes: self.path.datagram_bytes(),
            evidence: &self.evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused again and again, a peer is asked again only after the longest back-off;
    /// when another peer leaves, after the shortest. A peer not refused stays askable.
    #[test]
    fn a_peer_leaving_cuts_the_others_busy_back_off() {
        let now = Instant::now();
        let addr = SocketAddr::from(([10, 0, 0, 2], 4000));
        let mut peer = Peer::new(3, addr, true, 65_536, crate::node::PaceMode::Off, now);
        let mut at = now;
        for _ in 0..6 {
            peer.on_busy(at);
            at = peer.busy_until.unwrap();
        }
        let refused = at - Duration::from_millis(1);
        peer.on_busy(refused);
        assert_eq!(peer.busy_until, Some(at));
        let last = peer.busy_until.unwrap() - BUSY_RETRY_MAX;
        assert!(peer.busy(last + BUSY_RETRY));
        peer.others_left(last);
        assert_eq!(peer.busy_until, Some(last + BUSY_RETRY));
        assert!(!peer.busy(last + BUSY_RETRY));
        let mut idle = Peer::new(4, addr, true, 65_536, crate::node::PaceMode::Off, now);
        idle.others_left(now);
        assert!(!idle.busy(now));
    }
}
