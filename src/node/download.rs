//! One download: look-up, manifest, then chunks pulled from several peers at once.
//!
//! The downloader drives everything (the holders only answer):
//!
//! 1. **Look-up.** The tracker lists the versions of the name and their holders. The pinned
//!    version, or the one most holders have, is chosen.
//! 2. **Manifest.** Chunk hashes are fetched part by part from one holder and accepted only
//!    when their info hash equals the one the tracker listed. A resumed download already has
//!    its manifest on disk.
//! 3. **Transfer.** Each peer (at most `peers_max` at once) reports its have-map, then is
//!    handed chunks one after another: faster peers finish theirs sooner and get more. Pieces
//!    are requested in runs, keeping at most `window` pieces in flight per peer; the window
//!    grows with every piece that arrives and halves when one times out. A timed-out piece is
//!    asked again; a peer silent for [`PEER_SILENCE`] (pinged after [`PING_AFTER`]) is
//!    dropped and its chunks go to others, as is one that answers while its pieces time out
//!    for as long.
//! 4. **Verification.** A chunk whose pieces are all in goes to a hasher thread; only when
//!    its SHA-1 matches does it count. A bad chunk is fetched again, from another peer when
//!    there is one, and a peer that sends [`BAD_CHUNKS_MAX`] bad chunks is dropped.
//! 5. **Publishing.** When every chunk verified, the partial file is synced and renamed.
//!
//! Files: this one holds the state and dispatches messages; `peers.rs` recruits and drops
//! peers, `arrival.rs` takes manifest parts and pieces through to publishing, `timers.rs`
//! fires the deadlines, `transfer.rs` picks chunks and runs of pieces (rarest first,
//! endgame), `pace.rs` sizes request windows, `congestion.rs` sets the pace asked of each
//! peer, `by_hash.rs` starts downloads found through a standard tracker, `diagnosis.rs`
//! gathers what peers and the tracker showed and says why a download is slow or failed.

mod arrival;
mod by_hash;
mod congestion;
mod diagnosis;
mod pace;
mod peer;
mod peers;
mod timers;
mod transfer;

use super::{LocalFile, Parts};
use crate::mtu::PathMtu;
use crate::storage::{Bitmap, Manifest};
use crate::wire::{
    self, Hash, HolderRecord, Message, PeerAsk, RejectReason, U32, U64, VersionRecord,
};
pub(crate) use diagnosis::TrackerHeard;
use peer::Peer;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use transfer::{REQUEST_PIECES_MAX, Transfer, WINDOW_START};

/// Most peers one download remembers (active or dropped).
pub const PEERS_PER_DOWNLOAD_MAX: usize = 64;
/// Most holders one download knows of and may recruit: the tracker's lists (the last one
/// first) and peers other peers told of (`Download::handle_exchange`).
pub const CANDIDATES_MAX: usize = 2 * wire::LOOKUP_HOLDERS_MAX;
/// A peer we are waiting on that says nothing for this long is dropped.
const PEER_SILENCE: Duration = Duration::from_secs(2);
/// A peer we wait on that says nothing for this long is pinged (and again every
/// [`ASK_RETRY`]), so that by [`PEER_SILENCE`] a peer that is gone is told apart from one
/// whose pieces are lost.
const PING_AFTER: Duration = Duration::from_secs(1);
/// A peer dropped this long after it was last heard from may be asked again.
const DROPPED_PEER_RETRY: Duration = Duration::from_secs(4);
/// How often an unanswered have-map or manifest request is repeated.
const ASK_RETRY: Duration = Duration::from_millis(300);
/// Unanswered manifest requests before another holder is asked.
const MANIFEST_ATTEMPTS_MAX: u32 = 4;
/// Bad chunks after which a peer is dropped.
const BAD_CHUNKS_MAX: u32 = 3;
/// While no holder is usable, the tracker is asked again after this, doubling with every
/// answer that brings no holder we did not know, up to [`LOOKUP_RETRY_MAX`]: a stalled
/// download asked every second, for as long as it waited (issue 14).
const LOOKUP_RETRY: Duration = Duration::from_secs(1);
const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(30);
/// Peers holding only part of the file used at once, beside the `peers_max` complete
/// holders: in a swarm a downloader talks to as many peers as help.
const PARTIAL_PEERS_MAX: usize = 8;
/// While a transfer runs, partial holders that do not help are let go this often
/// ([`Download::drop_unhelpful`]); [`SWARM_REFRESH_SHORT`] while fewer than
/// [`PARTIAL_PEERS_MAX`] partial holders are in use, as at the start of a swarm, when new
/// ones appear every moment.
const SWARM_REFRESH: Duration = Duration::from_secs(1);
const SWARM_REFRESH_SHORT: Duration = Duration::from_millis(250);
/// While a transfer runs, the tracker is asked for new holders (downloaders that verified
/// chunks) after [`SWARM_REFRESH_SHORT`] or [`SWARM_REFRESH`] (as for dropping unhelpful
/// peers), spread between half and one and a half times that ([`Download::spread`]),
/// doubling once the answer has not changed for [`LOOKUP_STEADY`], up to
/// [`SWARM_LOOKUP_MAX`], and within the node's look-up budget (`LOOKUP_SPACING`; credit
/// that is due goes inside a look-up, `Node::handle_timeout`). New
/// partial holders are also learnt from peers ([`wire::Peers`]); asking the tracker every
/// 250 ms whatever it said, as before, made look-ups half of a downloader's datagrams to it
/// (issue 14's goal: at most 2 a second over any 10 s).
const SWARM_LOOKUP_MAX: Duration = Duration::from_secs(16);
/// Look-ups back off only once the tracker's answer has stayed the same (no holder we did
/// not know, the same number of holders) this long. At a swarm's start the answer stays the
/// same for the half second before the holder's first chunks verify, then changes every
/// moment: doubling at once made each downloader ask at 0.25, 0.5, 1 s and so miss the
/// first partial holders, and the simulated 200-node swarm's downloaders got their first
/// chunk 0.8 s later than when they asked every 250 ms (tests/sim_tstar.rs, seed 2).
const LOOKUP_STEADY: Duration = Duration::from_secs(2);
/// Partial holders that hold nothing this download still needs are dropped for others the
/// tracker listed, at most this many at each refresh.
const UNHELPFUL_DROPS_MAX: usize = 2;
/// How often partial holders are asked for their have-maps while a transfer runs.
const HAVE_REFRESH: Duration = Duration::from_millis(200);
/// How often a download waiting for disk space tries again.
const DISK_RETRY: Duration = Duration::from_secs(1);
/// A peer that refused a piece request for want of an upload slot is asked again after
/// this, doubled with every refusal in a row up to [`BUSY_RETRY_MAX`].
const BUSY_RETRY: Duration = Duration::from_millis(50);
const BUSY_RETRY_MAX: Duration = Duration::from_millis(800);
/// A partial holder that refused this many times in a row is dropped for another one, if
/// there is another.
const BUSY_STREAK_MAX: u32 = 4;

/// What became of a peer message offered to a download.
pub(crate) enum Handled {
    Consumed,
    /// The manifest checked and the partial file exists: the node may announce.
    ManifestReady(Hash),
}

struct ManifestFetch {
    version: VersionRecord,
    hashes: Vec<Hash>,
    source: Option<usize>,
    sent_at: Option<Instant>,
    attempts: u32,
}

impl ManifestFetch {
    /// How long the last request is given before it is repeated: [`ASK_RETRY`], doubled
    /// with every attempt. A holder that 200 downloaders ask at once answers them over
    /// several hundred milliseconds (a part is about 1.4 KB); repeating every request at a
    /// fixed pace would double its queue, and its upload would carry the manifest twice
    /// before the first piece.
    fn retry_after(&self) -> Duration {
        ASK_RETRY * 2u32.pow(self.attempts.saturating_sub(1).min(4))
    }
}

enum Phase {
    LookingUp,
    Manifest(ManifestFetch),
    Transfer(Transfer),
    /// The manifest checked, but the disk has no room for the partial file: tried again
    /// every [`DISK_RETRY`], never given up.
    WaitingForSpace(Manifest),
    Done,
    Failed,
}

pub(crate) struct Download {
    name: String,
    pin: Option<Hash>,
    info_hash: Option<Hash>,
    started: Instant,
    give_up_after: Duration,
    /// Fails at this moment unless some holder helps before.
    give_up_at: Instant,
    phase: Phase,
    /// Holders from the last look-up, best first: node id, address, holds every chunk.
    candidates: Vec<(u32, SocketAddr, bool)>,
    peers: Vec<Peer>,
    /// When the tracker is asked for holders next (see [`LOOKUP_RETRY`], [`SWARM_LOOKUP`]).
    lookup_due: Option<Instant>,
    /// The wait before the look-up after next: doubles while nothing changes.
    lookup_backoff: Duration,
    /// When the tracker's answer last changed (or the download began): see
    /// [`LOOKUP_STEADY`].
    lookup_changed_at: Instant,
    /// How many holders of the chosen version the tracker counted in its last answer.
    holders_counted: u32,
    /// While transferring: when to refresh partial holders' have-maps and the holder list.
    refresh_due: Option<Instant>,
    /// While transferring: when to ask partial holders for their have-maps again.
    have_refresh_due: Option<Instant>,
    told_versions: bool,
    /// Found through a standard tracker: the name (unless given) and the shape (unless a
    /// `.torrent` gave it) come from the first manifest part. See [`Download::by_info_hash`].
    by_hash: Option<by_hash::ByHash>,
    /// While the disk is full: when to try again (to open the partial file, or to publish).
    disk_retry_at: Option<Instant>,
    /// Look-up replies taken so far: varies the order partial holders are tried in.
    lookups: u32,
    /// Look-ups scheduled so far: varies their spacing (see [`Download::spread`]).
    lookups_scheduled: u32,
    /// What the tracker's replies showed, and when to say why the download is slow.
    diagnosis: diagnosis::Diagnosis,
}

impl Download {
    pub fn new(name: String, pin: Option<Hash>, now: Instant, give_up_after: Duration) -> Download {
        Download {
            name,
            pin,
            info_hash: pin,
            started: now,
            give_up_after,
            give_up_at: now + give_up_after,
            phase: Phase::LookingUp,
            candidates: Vec::new(),
            peers: Vec::new(),
            // The first look-up goes with the `download` command (`Node::download`).
            lookup_due: Some(now + LOOKUP_RETRY),
            lookup_backoff: Duration::ZERO,
            lookup_changed_at: now,
            holders_counted: 0,
            refresh_due: None,
            have_refresh_due: None,
            told_versions: false,
            by_hash: None,
            disk_retry_at: None,
            lookups: 0,
            lookups_scheduled: 0,
            diagnosis: diagnosis::Diagnosis::new(now),
        }
    }

    /// `wait` made different for every node and every look-up, between half and one and a
    /// half times it. Downloads that began together would otherwise ask the tracker in step
    /// (every reply comes a moment after the same command), so that a partial holder that
    /// appears between two rounds stays unknown to all until the next: 200 simulated
    /// downloaders asking every 250 ms in step spread the first chunks several times slower
    /// than the same asking spread out (tests/sim_tstar.rs). Derived from the node id, as the
    /// order of candidates is, so that a simulation stays replayable.
    fn spread(&mut self, wait: Duration, own_node_id: u32) -> Duration {
        self.lookups_scheduled = self.lookups_scheduled.wrapping_add(1);
        let key = (u64::from(own_node_id) << 32) | u64::from(self.lookups_scheduled);
        // The top 16 bits of a well-mixed draw: a fraction of 1 in steps of 1/65,536.
        let fraction = (crate::rng::Rng::new(key).next_u64() >> 48) as f64 / 65_536.0;
        wait.mul_f64(0.5 + fraction)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info_hash(&self) -> Option<Hash> {
        self.info_hash
    }

    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed)
    }

    pub fn failed(&self) -> bool {
        matches!(self.phase, Phase::Failed)
    }

    /// Whether the partial file exists: the manifest checked and the transfer began.
    pub fn transferring(&self) -> bool {
        matches!(self.phase, Phase::Transfer(_))
    }

    /// Ends the download as failed, saying why and what became of its partial file: kept
    /// (and resumed by the next `download` of it) when chunks were verified, its space
    /// released when none were.
    fn fail(&mut self, parts: &mut Parts<'_>, reason: String) {
        self.phase = Phase::Failed;
        let left = match self.info_hash {
            Some(info_hash) => keep_or_release(parts, info_hash),
            None => String::new(),
        };
        parts
            .out
            .say(format!("download {} failed: {reason}{left}", self.name));
    }

    // ---- look-up ------------------------------------------------------------------------

    fn take_lookup(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        own_node_id: u32,
        versions: &[VersionRecord],
        holders: &[HolderRecord],
    ) {
        if self.finished() {
            return;
        }
        // Once a version is chosen (or pinned), later look-ups only refresh its holders.
        let chosen = match self.info_hash {
            Some(info_hash) => versions.iter().position(|v| v.info_hash == info_hash),
            None => (0..versions.len())
                .max_by_key(|&i| (versions[i].holder_count.get(), std::cmp::Reverse(i))),
        };
        let Some(chosen) = chosen else {
            self.diagnosis.on_lookup(0);
            log::info!("no holder of {} yet; asking again", self.name);
            // The holders listed before are gone: trying them again is for the peers we
            // have, not for the candidates (see `recruit`).
            self.candidates.clear();
            return;
        };
        let version = versions[chosen];
        if versions.len() > 1 && self.pin.is_none() && !self.told_versions {
            self.told_versions = true;
            parts.out.say(format!(
                "{} versions of {} are announced; taking {} ({} holders); pin another with {}@<info hash>",
                versions.len(),
                self.name,
                wire::hex(&version.info_hash),
                version.holder_count.get(),
                self.name
            ));
        }
        let known_before: Vec<u32> = self
            .candidates
            .iter()
            .map(|&(node_id, _, _)| node_id)
            .chain(self.peers.iter().map(|p| p.node_id))
            .collect();
        let previous = std::mem::take(&mut self.candidates);
        self.candidates = holders
            .iter()
            .filter(|h| usize::from(h.version) == chosen && h.node_id.get() != own_node_id)
            .map(|h| {
                let complete = h.chunks_held.get()
                    == wire::chunk_count(version.file_bytes.get(), version.chunk_bytes.get());
                (
                    h.node_id.get(),
                    wire::socket_addr(h.ip, h.port.get()),
                    complete,
                )
            })
            .collect();
        // Complete holders stay in the tracker's order (most credit first). Partial ones go
        // in an order of this downloader's own, new at every look-up: taken in the tracker's
        // order, every downloader would crowd the same few (the best by credit), and most
        // partial holders would upload nothing.
        self.lookups += 1;
        let salt = (u64::from(own_node_id) << 32) | u64::from(self.lookups);
        self.candidates.sort_by_key(|&(node_id, _, complete)| {
            let key = (salt ^ u64::from(node_id)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (!complete, if complete { 0 } else { key >> 16 })
        });
        // The holders known before and not listed this time stay candidates, after the
        // listed ones: look-ups are seconds apart now, and a partial holder another peer told
        // of (`handle_exchange`), or one the tracker listed before in its sample of a large
        // swarm, is as good a holder as before. Without them, the 200-node simulated swarm
        // often had no holder to take in place of one that had nothing left for it.
        if !self.candidates.is_empty() {
            for old in previous {
                if self.candidates.len() >= CANDIDATES_MAX {
                    break;
                }
                if !self.candidates.iter().any(|c| c.0 == old.0) {
                    self.candidates.push(old);
                }
            }
        }
        self.diagnosis.on_lookup(self.candidates.len());
        if self.candidates.is_empty() {
            return;
        }
        // Something changed when the tracker lists a holder we did not know and could take:
        // the backoff starts again (a new holder may be followed by others).
        let room = self
            .peers
            .iter()
            .filter(|p| !p.dropped && !p.complete)
            .count()
            < PARTIAL_PEERS_MAX
            || !self.peers.iter().any(|p| !p.dropped);
        let news = self
            .candidates
            .iter()
            .any(|(node_id, _, _)| !known_before.contains(node_id));
        // The tracker counting more (or fewer) holders is a change too: it lists only a
        // sample of a large swarm, and the holders it did not list are new to us.
        let counted = version.holder_count.get();
        let changed = news || counted != self.holders_counted;
        self.holders_counted = counted;
        if changed {
            self.lookup_changed_at = now;
        }
        if changed && room {
            self.lookup_backoff = Duration::ZERO;
            self.lookup_due = Some(now + self.spread(SWARM_REFRESH_SHORT, own_node_id));
        }
        if let Phase::LookingUp = self.phase {
            self.info_hash = Some(version.info_hash);
            match parts.state.partial_manifest(&version.info_hash) {
                Some(manifest) => {
                    log::info!("resuming {} from its partial file", self.name);
                    self.start_transfer(parts, now, manifest);
                }
                None => {
                    self.phase = Phase::Manifest(ManifestFetch {
                        version,
                        hashes: Vec::new(),
                        source: None,
                        sent_at: None,
                        attempts: 0,
                    })
                }
            }
        }
        self.recruit(parts, now);
    }

    // ---- messages from peers ------------------------------------------------------------

    /// Offers a peer message to this download; `None` when it is not for it.
    fn take_peer_message(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        message: &Message<'_>,
    ) -> Option<Handled> {
        let info_hash = self.info_hash?;
        let index = self.peers.iter().position(|p| p.addr == from)?;
        // Whatever it is, it shows the peer answers: see `diagnosis`.
        self.peers[index].evidence.on_datagram(now);
        match message {
            Message::Welcome(welcome) => {
                // Every request sent without the cookie brings a welcome; the first with a
                // new cookie is enough to ask again (a manifest part asked twice costs the
                // holder's upload 1.4 KB more per downloader, when 200 start at once).
                let fresh = self.peers[index].cookie != welcome.cookie.get();
                self.peers[index].cookie = welcome.cookie.get();
                self.peers[index].last_heard = now;
                // Whatever we asked was refused for want of a cookie: ask again with it.
                if fresh && self.peers[index].have.is_none() {
                    self.ask_have(parts, now, index, info_hash);
                }
                if let Phase::Manifest(fetch) = &self.phase
                    && fetch.source == Some(index)
                    && fresh
                {
                    self.ask_manifest(parts, now);
                }
                self.release_peer_requests(index);
                // Other downloads from the same peer need the cookie too.
                None
            }
            Message::HaveMap { fixed, bitmap } if fixed.info_hash == info_hash => {
                let peer = &mut self.peers[index];
                peer.last_heard = now;
                // A long map comes in parts: each one updates the map we have of that length.
                let count = fixed.chunk_count.get();
                let have = match &peer.have {
                    Some(old) if old.len() == count => Some(old.clone()),
                    _ => Some(Bitmap::new(count)),
                }
                .map(|map| map.with_part(fixed.first_chunk.get(), bitmap));
                if let Phase::Transfer(transfer) = &mut self.phase {
                    if have
                        .as_ref()
                        .is_none_or(|have| have.len() != transfer.manifest().chunk_count())
                    {
                        log::warn!(
                            "node {} sent a have-map of the wrong length; dropping it",
                            peer.node_id
                        );
                        self.drop_peer(parts, now, index);
                        return Some(Handled::Consumed);
                    }
                    transfer.replace_have(peer.have.as_ref(), have.as_ref());
                }
                peer.have = have;
                Some(Handled::Consumed)
            }
            Message::MtuProbeReply(reply) if reply.info_hash == info_hash => {
                let peer = &mut self.peers[index];
                peer.last_heard = now;
                let before = peer.path.datagram_bytes();
                peer.path.on_probe_reply(reply.probe_bytes.get(), now);
                if peer.path.datagram_bytes() > before {
                    log::info!(
                        "{}: the path from node {} carries {}-byte datagrams: pieces of {} bytes",
                        self.name,
                        peer.node_id,
                        peer.path.datagram_bytes(),
                        peer.piece_bytes(parts.config.piece_bytes)
                    );
                }
                Some(Handled::Consumed)
            }
            Message::ManifestPart {
                fixed,
                hashes,
                name,
            } if fixed.info_hash == info_hash => {
                self.peers[index].last_heard = now;
                Some(self.manifest_part(parts, now, index, fixed, hashes, name))
            }
            Message::Piece { fixed, data } if fixed.info_hash == info_hash => {
                self.piece(parts, now, index, fixed, None, data);
                Some(Handled::Consumed)
            }
            Message::StampedPiece { fixed, data } if fixed.piece.info_hash == info_hash => {
                self.piece(
                    parts,
                    now,
                    index,
                    &fixed.piece,
                    Some(fixed.sent_us.get()),
                    data,
                );
                Some(Handled::Consumed)
            }
            Message::Reject(reject) if reject.info_hash == info_hash => {
                self.peers[index].last_heard = now;
                let chunk = reject.chunk.get();
                match RejectReason::from_repr(reject.reason.get()) {
                    // "Get it from another peer": as if it did not hold it, until its next
                    // have-map.
                    Some(reason @ (RejectReason::MissingChunk | RejectReason::Elsewhere)) => {
                        let had = self.peers[index].have.as_mut().is_some_and(|have| {
                            let had = have.get(chunk);
                            have.clear(chunk);
                            had
                        });
                        // Counted out of the availability too: the next have-map counts it
                        // in again if it shows the chunk (counting only that inflated the
                        // count by one for every refusal, and rarest-first took chunks the
                        // holder kept refusing for common ones).
                        if had && let Phase::Transfer(transfer) = &mut self.phase {
                            transfer.forget_holder_of(chunk);
                        }
                        self.release_chunk(index, chunk);
                        // A spreading holder's least-sent chunks moved on: what it showed is
                        // stale as a whole, and one have-map costs it less than a refusal
                        // for every chunk it no longer shows.
                        let peer = &self.peers[index];
                        if reason == RejectReason::Elsewhere
                            && peer.complete
                            && now.saturating_duration_since(peer.last_asked) >= HAVE_REFRESH
                        {
                            self.ask_have(parts, now, index, info_hash);
                        }
                    }
                    Some(RejectReason::Busy) => {
                        self.release_chunk(index, chunk);
                        let replaceable = self.recruitable_partial(now) > 0;
                        let peer = &mut self.peers[index];
                        // One refusal per attempt counts: several requests may be refused.
                        if !peer.busy(now) {
                            let backoff = BUSY_RETRY * 2u32.pow(peer.busy_streak.min(8));
                            peer.busy_until = Some(now + backoff.min(BUSY_RETRY_MAX));
                            peer.busy_streak += 1;
                            if !peer.complete && peer.busy_streak >= BUSY_STREAK_MAX && replaceable
                            {
                                log::info!("node {} stays busy; trying another peer", peer.node_id);
                                self.drop_peer(parts, now, index);
                            }
                        }
                    }
                    reason => {
                        log::info!(
                            "node {} refused {}: {reason:?}; dropping it",
                            self.peers[index].node_id,
                            self.name
                        );
                        self.drop_peer(parts, now, index);
                    }
                }
                Some(Handled::Consumed)
            }
            _ => None,
        }
    }

    // ---- requests -----------------------------------------------------------------------

    /// Sends piece requests until every usable peer's window is full.
    fn send_requests(&mut self, parts: &mut Parts<'_>, now: Instant) {
        self.probe_paths(parts, now);
        let Phase::Transfer(transfer) = &mut self.phase else {
            return;
        };
        let info_hash = transfer.manifest().info_hash;
        for index in 0..self.peers.len() {
            let peer = &self.peers[index];
            if peer.dropped || peer.cookie == 0 || peer.have.is_none() || peer.busy(now) {
                continue;
            }
            // Ask in runs of a quarter window (at most REQUEST_PIECES_MAX pieces), not a
            // piece at a time as each arrives: half the datagrams, the same pipeline.
            let batch = (peer.request_window() / 4).clamp(1, REQUEST_PIECES_MAX);
            // Asked nothing and holding no chunk: its wait for pieces starts afresh.
            let mut idle = transfer.in_flight(index) == 0 && transfer.chunks_of(index).is_empty();
            loop {
                let in_flight = transfer.in_flight(index);
                // The window may have shrunk below what is in flight.
                let room = self.peers[index].request_window().saturating_sub(in_flight);
                if room == 0 || (room < batch && in_flight > 0) {
                    break;
                }
                let Some(asked) = transfer.request(&self.peers, index, room, now) else {
                    break;
                };
                let peer = &mut self.peers[index];
                let request = wire::PieceRequest {
                    ask: PeerAsk {
                        cookie: U64::new(peer.cookie),
                        node_id: U32::new(parts.config.node_id),
                        info_hash,
                    },
                    chunk: U32::new(asked.chunk),
                    offset: U32::new(asked.offset),
                    length: U32::new(asked.length),
                    piece_bytes: U32::new(asked.piece_bytes),
                };
                if peer.paced {
                    let paced = wire::PacedPieceRequest {
                        request,
                        pace_kib_per_s: U32::new(
                            u32::try_from(peer.congestion.pace() / 1024)
                                .unwrap_or(u32::MAX)
                                .max(1),
                        ),
                    };
                    parts
                        .out
                        .send(peer.addr, &Message::PacedPieceRequest(&paced));
                } else {
                    parts.out.send(peer.addr, &Message::PieceRequest(&request));
                }
                peer.evidence.on_request(now, std::mem::take(&mut idle));
            }
        }
    }

    // ---- inputs: each checks the transfer's account when it is done ---------------------

    /// The tracker's answer to a look-up: the versions of the name and their holders.
    pub fn handle_lookup(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        own_node_id: u32,
        versions: &[VersionRecord],
        holders: &[HolderRecord],
    ) {
        self.take_lookup(parts, now, own_node_id, versions, holders);
        self.check_invariants();
    }

    /// Peers of our info hash from a standard tracker (see `by_hash.rs`).
    pub fn handle_peers(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        own_node_id: u32,
        peers: &[SocketAddr],
    ) {
        self.take_peers(parts, now, own_node_id, peers);
        self.check_invariants();
    }

    /// Offers a peer message to this download; `None` when it is not for it.
    pub fn handle_peer_message(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        message: &Message<'_>,
    ) -> Option<Handled> {
        let handled = self.take_peer_message(parts, now, from, message);
        self.check_invariants();
        handled
    }

    /// Peer `from` told us of other peers holding some of the file (see `peers.rs`).
    pub fn handle_exchange(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        own_node_id: u32,
        listed: &[wire::PeerRecord],
    ) {
        self.take_exchange(parts, now, from, own_node_id, listed);
        self.check_invariants();
    }

    /// Fires due timers. Returns true when the tracker should be asked for holders again.
    pub fn handle_timeout(&mut self, parts: &mut Parts<'_>, now: Instant) -> bool {
        let look_up = self.fire_timers(parts, now);
        self.check_invariants();
        look_up
    }

    /// A hasher thread checked `chunk`. Returns the node to credit when it verified.
    pub fn chunk_checked(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        chunk: u32,
        ok: bool,
    ) -> Option<u32> {
        let credit = self.take_hash_result(parts, now, chunk, ok);
        self.check_invariants();
        credit
    }

    /// Sends piece requests until every usable peer's window is full.
    pub fn fill_windows(&mut self, parts: &mut Parts<'_>, now: Instant) {
        self.send_requests(parts, now);
        self.check_invariants();
    }

    /// Pieces requested of peer `index` and not in (none outside a transfer).
    fn in_flight(&self, index: usize) -> u32 {
        match &self.phase {
            Phase::Transfer(transfer) => transfer.in_flight(index),
            _ => 0,
        }
    }

    /// Whether peer `index` owns chunks or has pieces in flight.
    fn has_work(&self, index: usize) -> bool {
        match &self.phase {
            Phase::Transfer(transfer) => {
                transfer.in_flight(index) > 0 || !transfer.chunks_of(index).is_empty()
            }
            _ => false,
        }
    }

    /// Asserts the transfer's account (see [`Transfer::check_invariants`]) in debug
    /// builds: run at the end of every input.
    fn check_invariants(&self) {
        if cfg!(debug_assertions)
            && let Phase::Transfer(transfer) = &self.phase
        {
            transfer.check_invariants(&self.peers);
        }
    }

    // ---- timers: timers.rs; peers: peers.rs; manifest parts and pieces: arrival.rs -------

    // ---- reporting ----------------------------------------------------------------------

    pub fn progress(
        &self,
        files: &BTreeMap<Hash, LocalFile>,
        now: Instant,
    ) -> Option<super::Progress> {
        if self.finished() {
            return None;
        }
        let peers = self.peers.iter().filter(|p| !p.dropped).count();
        let (verified_bytes, total_bytes, bytes_per_s) = match &self.phase {
            Phase::Transfer(transfer) => {
                let m = transfer.manifest();
                let verified = files.get(&m.info_hash).map_or(0, |f| m.held_bytes(&f.have));
                let seconds = now
                    .saturating_duration_since(transfer.started_at())
                    .as_secs_f64();
                let rate = if seconds > 0.0 {
                    verified as f64 / seconds
                } else {
                    0.0
                };
                (verified, Some(m.file_bytes), rate)
            }
            Phase::Manifest(fetch) => (0, Some(fetch.version.file_bytes.get()), 0.0),
            Phase::WaitingForSpace(manifest) => (0, Some(manifest.file_bytes), 0.0),
            _ => (0, None, 0.0),
        };
        Some(super::Progress {
            name: self.name.clone(),
            verified_bytes,
            total_bytes,
            bytes_per_s,
            peers,
            waiting_for_disk: self.disk_retry_at.is_some(),
        })
    }

    /// One line per peer for `status`: what it sent, how fast, its round trip, how many of
    /// its pieces were lost, the size of pieces its path carries, and the pace it is asked
    /// to send at.
    pub fn peer_lines(&self, piece_bytes_max: u32, now: Instant) -> Vec<String> {
        self.peers
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let seconds = p
                    .first_piece_at
                    .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
                let rate = if seconds > 0.0 {
                    crate::units::rate(p.bytes_received as f64 / seconds)
                } else {
                    "no rate yet".to_string()
                };
                let asked = p.pieces_received + p.pieces_lost;
                let lost = if asked > 0 {
                    format!(
                        "{} of {asked} pieces lost ({:.1}%)",
                        p.pieces_lost,
                        100.0 * p.pieces_lost as f64 / asked as f64
                    )
                } else {
                    "no pieces yet".to_string()
                };
                let rtt = p.srtt.map_or("no round trip yet".to_string(), |srtt| {
                    format!("round trip {:.1} ms", srtt.as_secs_f64() * 1e3)
                });
                let pace = if p.paced {
                    format!(
                        "paced at {}",
                        crate::units::rate(p.congestion.pace() as f64)
                    )
                } else {
                    "unpaced".to_string()
                };
                format!(
                    "node {} {}{}: {} bytes received at {rate}, {} chunks verified, {rtt}, {lost}, \
                     {}-byte pieces, {pace}, window {} pieces, {} in flight",
                    p.node_id,
                    p.addr,
                    if p.dropped { " (dropped)" } else { "" },
                    p.bytes_received,
                    p.chunks_verified,
                    p.piece_bytes(piece_bytes_max),
                    p.window,
                    self.in_flight(index)
                )
            })
            .collect()
    }
}

/// What becomes of a failed download's partial file, said after the failure: with chunks
/// verified, it stays for the next `download` of the name to resume (and `status` lists
/// it); with none, it is removed, so that no reserved space is left behind unseen.
fn keep_or_release(parts: &mut Parts<'_>, info_hash: Hash) -> String {
    let Some(partial) = parts.state.partial_summary(&info_hash) else {
        return String::new();
    };
    if partial.verified_bytes > 0 {
        return format!(
            "; kept {} ({} of {} bytes verified) in {}: `{}` resumes it",
            crate::storage::percent(partial.verified_bytes, partial.file_bytes),
            partial.verified_bytes,
            partial.file_bytes,
            parts.state.partial_path(&info_hash).display(),
            resume_command(parts.config.standard_tracker, &partial)
        );
    }
    // The file is open while it is held: let go of it, or its space stays taken.
    if parts
        .files
        .get(&info_hash)
        .is_some_and(|file| file.have.count() == 0)
    {
        parts.files.remove(&info_hash);
    }
    match parts.state.remove_partial(&info_hash) {
        Ok(()) => format!(
            "; nothing was verified, so its partial file is removed ({} bytes released)",
            partial.disk_bytes
        ),
        Err(error) => format!("; cannot remove its partial file: {error}"),
    }
}

/// The console command that resumes a partial download: by name from our tracker; by name
/// and info hash from a standard one, which knows no names.
pub(crate) fn resume_command(
    standard_tracker: bool,
    partial: &crate::storage::PartialSummary,
) -> String {
    if standard_tracker {
        format!(
            "download {}@{}",
            partial.name,
            wire::hex(&partial.info_hash)
        )
    } else {
        format!("download {}", partial.name)
    }
}
