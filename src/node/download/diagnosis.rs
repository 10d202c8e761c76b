//! Why a download is slow or failed, in one true sentence.
//!
//! A download that fails used to say "every holder is gone" while the holder was alive and
//! answering, its pieces lost on the way. What the user can act on is the cause: the tracker
//! does not answer (wrong address, down, a firewall), no node holds the name, the holders went
//! silent, a holder answers but its pieces are lost (a lossy or policed path), or large
//! datagrams stopped crossing the path while small ones still do (a black hole). Each needs
//! evidence, gathered as datagrams arrive and timers fire:
//!
//! * per peer, a [`PeerEvidence`]: when anything at all last came from it (a have-map, a
//!   reply to a ping, a refusal, a piece), and what became of the last
//!   [`LOSS_WINDOW_PIECES`] pieces asked of it;
//! * per download, a [`Diagnosis`]: how many look-ups the tracker answered and whether the
//!   last one listed any holder;
//! * from the node's tracker link, a [`TrackerHeard`]: whether a request has waited for the
//!   tracker's answer, and since when.
//!
//! [`Diagnosis::why`] weighs them into a [`Reason`], which the failure line, the periodic
//! "slow" line and `status` all print the same way.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Outcomes (arrived or timed out) of the last pieces asked of a peer that its loss rate is
/// computed over.
pub const LOSS_WINDOW_PIECES: u32 = 256;
/// Outcomes needed before a loss rate is told: a few pieces lost at the start say little.
pub const LOSS_EVIDENCE_PIECES_MIN: u32 = 16;
/// A peer losing at least this share of its pieces makes a download slow for a reason worth
/// telling (1% random loss slows a transfer little; 10% halves windows several times a
/// second).
pub const LOSS_REPORT_PERCENT: u32 = 10;
/// A request to the tracker unanswered this long means the tracker is not answering: one on
/// a LAN answers in milliseconds, and its first retry goes after half a second.
pub const TRACKER_ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// Outcomes of smaller pieces, after a path narrowed, that tell whether it did: a streak of
/// losses at random (30% loss makes one every few thousand pieces) also narrows a path, and
/// smaller pieces are then lost as often as the large ones were. Only pieces asked once the
/// first smaller one arrived are judged: the holder had sent all it was asked before then,
/// and smaller pieces asked while it still sent large ones that the path dropped time out
/// behind them without being lost.
pub const NARROWED_EVIDENCE_PIECES: u32 = 16;
/// How often a slow download says why (and so at most once in this long, per download).
pub const SLOW_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// What the node's tracker link knows of the tracker's answers (a copy, handed to downloads).
#[derive(Clone, Copy, Debug)]
pub struct TrackerHeard {
    pub addr: SocketAddr,
    /// Registered: look-ups can be sent (they wait for it otherwise).
    pub registered: bool,
    /// The oldest request sent since the tracker last answered, if one is waiting.
    pub waiting_since: Option<Instant>,
}

impl TrackerHeard {
    /// How long a request has waited for the tracker, when that is longer than
    /// [`TRACKER_ANSWER_WITHIN`].
    pub fn silent_for(&self, now: Instant) -> Option<Duration> {
        let waited = now.saturating_duration_since(self.waiting_since?);
        (waited >= TRACKER_ANSWER_WITHIN).then_some(waited)
    }
}

/// What one peer showed of itself: whether it answers, and what became of its pieces.
#[derive(Clone, Debug)]
pub struct PeerEvidence {
    /// When any datagram last came from it (never reset when it is recruited again, unlike
    /// the transfer's waiting clock).
    heard_at: Option<Instant>,
    /// When a piece last came from it.
    piece_at: Option<Instant>,
    /// It was dropped for saying nothing at all (pinged meanwhile), and nothing came since.
    silent: bool,
    /// Since when pieces were in flight from it with none arriving (`None`: none in flight).
    pieces_awaited_since: Option<Instant>,
    /// When a ping (a minimum-size MTU probe, which it echoes) last went to it.
    pinged_at: Option<Instant>,
    /// The last outcomes, one bit each (1: lost), oldest overwritten first.
    outcomes: [u64; (LOSS_WINDOW_PIECES / 64) as usize],
    /// Next bit to write, and how many of the bits hold an outcome.
    next_outcome: u32,
    outcome_count: u32,
    /// Its pieces were asked smaller after larger ones stopped arriving: the sizes (UDP
    /// payload bytes) that stopped and that were asked instead, until a smaller piece
    /// arrives and confirms it (then `confirmed`).
    narrowed: Option<Narrowed>,
}

/// A path that narrowed: see [`PeerEvidence::on_narrowed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Narrowed {
    /// Datagrams of this size (UDP payload bytes) stopped arriving.
    pub lost_bytes: u32,
    /// Pieces are asked in datagrams of this size instead.
    pub datagram_bytes: u32,
    /// Smaller pieces arrived since, fewer than [`LOSS_REPORT_PERCENT`] of them lost: small
    /// datagrams do cross the path.
    pub confirmed: bool,
    /// When the first smaller piece arrived: losses of pieces asked since are judged.
    judged_since: Option<Instant>,
    /// Outcomes since the narrowing, and how many of them were losses.
    after_count: u32,
    after_lost: u32,
}

impl Default for PeerEvidence {
    fn default() -> Self {
        PeerEvidence {
            heard_at: None,
            piece_at: None,
            silent: false,
            pieces_awaited_since: None,
            pinged_at: None,
            outcomes: [0; (LOSS_WINDOW_PIECES / 64) as usize],
            next_outcome: 0,
            outcome_count: 0,
            narrowed: None,
        }
    }
}

impl PeerEvidence {
    /// A datagram came from the peer (any kind, for any download).
    pub fn on_datagram(&mut self, now: Instant) {
        self.heard_at = Some(now);
        self.silent = false;
    }

    /// It said nothing while we waited on it, pings included: it went silent.
    pub fn on_silent(&mut self) {
        self.silent = true;
    }

    /// A piece arrived in a datagram of `datagram_bytes`. Returns the narrowing it confirms,
    /// once: when [`NARROWED_EVIDENCE_PIECES`] smaller pieces were asked since, and fewer
    /// than [`LOSS_REPORT_PERCENT`] of them were lost.
    pub fn on_piece(&mut self, now: Instant, datagram_bytes: u32) -> Option<Narrowed> {
        self.heard_at = Some(now);
        self.piece_at = Some(now);
        self.silent = false;
        if self.pieces_awaited_since.is_some() {
            self.pieces_awaited_since = Some(now);
        }
        self.record(false);
        let narrowed = self.narrowed.as_mut()?;
        if narrowed.confirmed || datagram_bytes > narrowed.datagram_bytes {
            // Told already, or a late large piece, which confirms nothing.
            return None;
        }
        narrowed.judged_since.get_or_insert(now);
        narrowed.after_count += 1;
        if narrowed.after_count < NARROWED_EVIDENCE_PIECES {
            return None;
        }
        if 100 * narrowed.after_lost >= LOSS_REPORT_PERCENT * narrowed.after_count {
            // Small pieces are lost as well: loss narrowed it, not the size.
            self.narrowed = None;
            return None;
        }
        narrowed.confirmed = true;
        Some(*narrowed)
    }

    /// Whether it has work now (pieces in flight, or chunks it is asked for, whose pieces
    /// timed out and wait to be asked again): starts or stops the clock of
    /// [`PeerEvidence::pieces_awaited_for`].
    pub fn note_in_flight(&mut self, now: Instant, has_work: bool) {
        if has_work {
            self.pieces_awaited_since.get_or_insert(now);
        } else {
            self.pieces_awaited_since = None;
        }
    }

    /// Pieces were asked of it; `idle` when it had no work before: the clock of
    /// [`PeerEvidence::pieces_awaited_for`] starts afresh then.
    pub fn on_request(&mut self, now: Instant, idle: bool) {
        if idle {
            self.pieces_awaited_since = Some(now);
        } else {
            self.pieces_awaited_since.get_or_insert(now);
        }
    }

    /// How long it has had work with no piece arriving (zero while it has none): a peer idle
    /// for a while and asked again starts from zero.
    pub fn pieces_awaited_for(&self, now: Instant) -> Duration {
        self.pieces_awaited_since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// `count` pieces, asked in datagrams of `datagram_bytes`, timed out; `judged` of them
    /// were asked since [`PeerEvidence::judged_since`].
    pub fn on_lost(&mut self, count: u32, judged: u32, datagram_bytes: u32) {
        debug_assert!(judged <= count);
        for _ in 0..count.min(LOSS_WINDOW_PIECES) {
            self.record(true);
        }
        // Only pieces asked at the narrowed size or smaller tell whether it holds: large
        // ones asked before the narrowing time out after it, as the narrowing expects.
        if let Some(narrowed) = self
            .narrowed
            .as_mut()
            .filter(|n| !n.confirmed && datagram_bytes <= n.datagram_bytes)
        {
            let judged = judged.min(count).min(LOSS_WINDOW_PIECES);
            narrowed.after_count = narrowed.after_count.saturating_add(judged);
            narrowed.after_lost = narrowed.after_lost.saturating_add(judged);
        }
    }

    /// Since when pieces asked of it, once lost, count against a narrowing still to be
    /// confirmed (see [`NARROWED_EVIDENCE_PIECES`]); `None` when none is being judged, or
    /// before a smaller piece arrived.
    pub fn judged_since(&self) -> Option<Instant> {
        self.narrowed
            .filter(|n| !n.confirmed)
            .and_then(|n| n.judged_since)
    }

    fn record(&mut self, lost: bool) {
        let (word, bit) = (
            (self.next_outcome / 64) as usize,
            u64::from(self.next_outcome % 64),
        );
        if lost {
            self.outcomes[word] |= 1 << bit;
        } else {
            self.outcomes[word] &= !(1 << bit);
        }
        self.next_outcome = (self.next_outcome + 1) % LOSS_WINDOW_PIECES;
        self.outcome_count = (self.outcome_count + 1).min(LOSS_WINDOW_PIECES);
        debug_assert!(self.loss().0 <= self.outcome_count);
    }

    /// Pieces lost among the last ones asked, and how many that is of (at most
    /// [`LOSS_WINDOW_PIECES`]).
    pub fn loss(&self) -> (u32, u32) {
        let lost = if self.outcome_count == LOSS_WINDOW_PIECES {
            self.outcomes.iter().map(|w| w.count_ones()).sum()
        } else {
            // The ring has not wrapped: only bits below `next_outcome` hold outcomes.
            (0..self.outcome_count)
                .filter(|&i| self.outcomes[(i / 64) as usize] & (1 << (i % 64)) != 0)
                .count() as u32
        };
        (lost, self.outcome_count)
    }

    /// The loss rate, in percent, once there is evidence enough and it is at least
    /// [`LOSS_REPORT_PERCENT`].
    pub fn lossy(&self) -> Option<(u32, u32)> {
        let (lost, of) = self.loss();
        (of >= LOSS_EVIDENCE_PIECES_MIN && 100 * lost >= LOSS_REPORT_PERCENT * of)
            .then_some((lost, of))
    }

    /// Pieces in datagrams of `lost_bytes` stopped arriving; they are asked in datagrams of
    /// `datagram_bytes` instead. Whether small ones do arrive is for a piece to show.
    pub fn on_narrowed(&mut self, lost_bytes: u32, datagram_bytes: u32) {
        self.narrowed = Some(Narrowed {
            lost_bytes,
            datagram_bytes,
            confirmed: false,
            judged_since: None,
            after_count: 0,
            after_lost: 0,
        });
    }

    /// The confirmed narrowing, while pieces are still asked at its size or smaller (a later
    /// search may find the larger size works again).
    pub fn narrowed(&self, datagram_bytes_now: u32) -> Option<Narrowed> {
        self.narrowed
            .filter(|n| n.confirmed && datagram_bytes_now <= n.datagram_bytes)
    }

    pub fn heard_at(&self) -> Option<Instant> {
        self.heard_at
    }

    /// Heard from, and not taken for silent since. Only waiting on a peer in vain tells
    /// that it went silent (see [`PeerEvidence::on_silent`]): how long ago it was last
    /// heard does not. A peer dropped for losing its pieces is asked nothing until the
    /// tracker lists it again, which under heavy loss can take many seconds; it was not
    /// silent meanwhile, and calling it so named the wrong cause.
    pub fn answers(&self) -> bool {
        !self.silent && self.heard_at.is_some()
    }

    /// Whether a ping is due: the peer said nothing for `after` while we wait on it, and no
    /// ping went in the last `every`. Records the ping when one is due.
    pub fn ping_due(
        &mut self,
        now: Instant,
        silent_since: Instant,
        after: Duration,
        every: Duration,
    ) -> bool {
        let due = now.saturating_duration_since(silent_since) >= after
            && self
                .pinged_at
                .is_none_or(|t| now.saturating_duration_since(t) >= every);
        if due {
            self.pinged_at = Some(now);
        }
        due
    }

    /// When [`PeerEvidence::ping_due`] may next say yes.
    pub fn ping_deadline(
        &self,
        silent_since: Instant,
        after: Duration,
        every: Duration,
    ) -> Instant {
        let first = silent_since + after;
        match self.pinged_at {
            Some(t) if t >= silent_since => first.max(t + every),
            _ => first,
        }
    }
}

/// One peer as [`Diagnosis::why`] sees it.
pub struct PeerView<'a> {
    pub node_id: u32,
    pub addr: SocketAddr,
    /// In use now (not dropped).
    pub active: bool,
    /// UDP payload bytes of the pieces asked of it now.
    pub datagram_bytes: u32,
    pub evidence: &'a PeerEvidence,
}

/// The cause of a slow or failed download, as far as the evidence goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A request waited this long for the tracker's answer.
    TrackerSilent { addr: SocketAddr, for_s: u64 },
    /// The tracker refuses to register us (it holds our id for another token), so it is asked
    /// for no holders.
    NotRegistered { addr: SocketAddr },
    /// The tracker answered: nobody holds the name.
    NoHolder { name: String },
    /// The tracker listed holders, none of which ever answered.
    HoldersNeverAnswered { addrs: Vec<(u32, SocketAddr)> },
    /// A holder answers (have-maps, pings, refusals), but no piece came from it for this
    /// long (`None`: never).
    NoPieces { node_id: u32, for_s: Option<u64> },
    /// Nothing came from any holder for this long.
    HoldersSilent { last_heard_s: u64 },
    /// A holder answers, but this share of its pieces is lost.
    PiecesLost { node_id: u32, lost: u32, of: u32 },
    /// Large datagrams from a holder stopped arriving while small ones do.
    BlackHole {
        node_id: u32,
        lost_bytes: u32,
        piece_bytes: u32,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::TrackerSilent { addr, for_s } => {
                write!(f, "the tracker at {addr} has not answered for {for_s} s")
            }
            Reason::NotRegistered { addr } => write!(
                f,
                "the tracker at {addr} has not registered this node (it holds its id for \
                 another process), so it cannot be asked for holders"
            ),
            Reason::NoHolder { name } => write!(f, "no node holds {name}"),
            Reason::HoldersNeverAnswered { addrs } => {
                let list: Vec<String> = addrs
                    .iter()
                    .map(|(node_id, addr)| format!("node {node_id} at {addr}"))
                    .collect();
                write!(
                    f,
                    "no holder the tracker listed ever answered ({}): is that address \
                     reachable from here?",
                    list.join(", ")
                )
            }
            Reason::NoPieces { node_id, for_s } => match for_s {
                Some(s) => write!(
                    f,
                    "node {node_id} answers, but no piece came from it for {s} s"
                ),
                None => write!(f, "node {node_id} answers, but sent no piece"),
            },
            Reason::HoldersSilent { last_heard_s } => write!(
                f,
                "the holders stopped answering (last heard {last_heard_s} s ago)"
            ),
            Reason::PiecesLost { node_id, lost, of } => write!(
                f,
                "pieces from node {node_id} are lost ({}% of the last {of}) while it still \
                 answers: a lossy or policed path",
                (100 * u64::from(*lost)).div_ceil(u64::from((*of).max(1)))
            ),
            Reason::BlackHole {
                node_id,
                lost_bytes,
                piece_bytes,
            } => write!(
                f,
                "large datagrams from node {node_id} stop arriving while small ones do: the \
                 path drops {lost_bytes}-byte datagrams (a fragmentation black hole?); using \
                 {piece_bytes}-byte pieces"
            ),
        }
    }
}

/// What a download learned from the tracker's look-up replies.
#[derive(Clone, Debug, Default)]
pub struct Diagnosis {
    /// Look-up replies taken.
    lookups_answered: u32,
    /// The last reply listed a holder other than ourselves.
    holders_listed: bool,
    /// When the download next says why it is slow.
    slow_report_due: Option<Instant>,
}

impl Diagnosis {
    pub fn new(now: Instant) -> Diagnosis {
        Diagnosis {
            slow_report_due: Some(now + SLOW_REPORT_INTERVAL),
            ..Diagnosis::default()
        }
    }

    /// The tracker answered a look-up; `holders` other than ourselves were listed.
    pub fn on_lookup(&mut self, holders: usize) {
        self.lookups_answered = self.lookups_answered.saturating_add(1);
        self.holders_listed = holders > 0;
    }

    /// When the next slow report is due.
    pub fn slow_report_due(&self) -> Option<Instant> {
        self.slow_report_due
    }

    /// Whether a slow report is due now; the next one is then due after
    /// [`SLOW_REPORT_INTERVAL`].
    pub fn take_slow_report(&mut self, now: Instant) -> bool {
        if self.slow_report_due.is_some_and(|t| t <= now) {
            self.slow_report_due = Some(now + SLOW_REPORT_INTERVAL);
            return true;
        }
        false
    }

    /// Why the download is slow or failed, from what the peers and the tracker showed;
    /// `None` when nothing stands out (a download going as fast as its holders send).
    ///
    /// A holder that answers is never called silent: its lost pieces or its narrowed path
    /// are named instead. Holders come first when some were used (what happened with them
    /// is what stopped the download); the tracker when none was.
    pub fn why(
        &self,
        name: &str,
        peers: &[PeerView<'_>],
        tracker: &TrackerHeard,
        now: Instant,
    ) -> Option<Reason> {
        let tracker_reason = || match tracker.silent_for(now) {
            Some(silent) => Some(Reason::TrackerSilent {
                addr: tracker.addr,
                for_s: silent.as_secs(),
            }),
            None if !tracker.registered && tracker.waiting_since.is_none() => {
                Some(Reason::NotRegistered { addr: tracker.addr })
            }
            None => None,
        };
        let answering = peers.iter().filter(|p| p.evidence.answers());
        // The worst loss among holders that answer.
        let lossy = answering
            .clone()
            .filter_map(|p| p.evidence.lossy().map(|(lost, of)| (p, lost, of)))
            .max_by_key(|&(_, lost, of)| u64::from(lost) * 1000 / u64::from(of));
        if let Some((p, lost, of)) = lossy {
            return Some(Reason::PiecesLost {
                node_id: p.node_id,
                lost,
                of,
            });
        }
        if let Some((p, narrowed)) = answering
            .clone()
            .find_map(|p| Some((p, p.evidence.narrowed(p.datagram_bytes)?)))
        {
            return Some(Reason::BlackHole {
                node_id: p.node_id,
                lost_bytes: narrowed.lost_bytes,
                piece_bytes: narrowed
                    .datagram_bytes
                    .saturating_sub(crate::wire::PIECE_OVERHEAD_BYTES as u32),
            });
        }
        if peers.iter().any(|p| p.active) {
            // Holders in use, none lossy: whatever slows it is not something we saw.
            return None;
        }
        if let Some(p) = answering.clone().max_by_key(|p| p.evidence.heard_at) {
            return Some(Reason::NoPieces {
                node_id: p.node_id,
                for_s: p
                    .evidence
                    .piece_at
                    .map(|t| now.saturating_duration_since(t).as_secs()),
            });
        }
        if !peers.is_empty() {
            let last_heard = peers.iter().filter_map(|p| p.evidence.heard_at()).max();
            return Some(match last_heard {
                Some(at) => Reason::HoldersSilent {
                    last_heard_s: now.saturating_duration_since(at).as_secs(),
                },
                None => Reason::HoldersNeverAnswered {
                    addrs: peers.iter().map(|p| (p.node_id, p.addr)).collect(),
                },
            });
        }
        if let Some(reason) = tracker_reason() {
            return Some(reason);
        }
        (self.lookups_answered > 0 && !self.holders_listed).then(|| Reason::NoHolder {
            name: name.to_string(),
        })
    }

    /// The reason, followed by the tracker's silence when that is not the reason itself but
    /// matters too (holders silent, and the tracker that could list others silent as well).
    pub fn explain(
        &self,
        name: &str,
        peers: &[PeerView<'_>],
        tracker: &TrackerHeard,
        now: Instant,
    ) -> Option<String> {
        let reason = self.why(name, peers, tracker, now)?;
        let mut text = reason.to_string();
        let holders_reason = !matches!(
            reason,
            Reason::TrackerSilent { .. } | Reason::NotRegistered { .. } | Reason::NoHolder { .. }
        );
        if holders_reason && let Some(silent) = tracker.silent_for(now) {
            text.push_str(&format!(
                "; the tracker at {} has not answered for {} s either",
                tracker.addr,
                silent.as_secs()
            ));
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests;
