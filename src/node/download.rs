//! One download: look-up, manifest, then chunks pulled from several peers at once.
//!
//! The downloader drives everything (the holders only answer):
//!
//! 1. **Look-up.** The tracker lists the versions of the name and their holders. The pinned
//!    version, or the one most holders have, is chosen ([`lookup::VersionChoice`]).
//! 2. **Manifest.** Chunk hashes are fetched part by part from one holder and accepted only
//!    when their info hash equals the one the tracker listed. A resumed download already has
//!    its manifest on disk.
//! 3. **Transfer.** Each peer (at most `peers_max` complete holders at once, beside partial
//!    ones) reports its have-map, then is handed chunks one after another: faster peers
//!    finish theirs sooner and get more. Pieces are requested in runs, within a window per
//!    peer sized by how long its requests queue (`pace.rs`). A lost piece is asked again; a
//!    peer silent for [`peer::PEER_SILENCE`] (pinged after [`peer::PING_AFTER`]) is dropped
//!    and its chunks go to others, as is one that answers while its pieces time out.
//! 4. **Verification.** A chunk whose pieces are all in goes to a hasher thread; only when
//!    its SHA-1 matches does it count. A bad chunk is fetched again, from another peer when
//!    there is one, and a peer that sends [`peer::BAD_CHUNKS_MAX`] bad chunks is dropped.
//! 5. **Publishing.** When every chunk verified, the partial file is synced and renamed.
//!
//! ## Who owns what
//!
//! [`Download`] (this file) is a router: every input the node hands a download lands in one
//! of its `handle_*` methods, which passes it on to the part that owns the state, and acts
//! on what that part answers (fail, publish, start the transfer). The parts are types of
//! their own, each in its file; operations that need more than their own state are handed
//! it explicitly:
//!
//! * `asked.rs`: [`Asked`], what the download fetches (name, version taken, how it was
//!   found), which a pause keeps; `phase.rs`: [`Phase`], where the download stands, each
//!   phase's state its own type; `report.rs`: [`Report`], what it shows of itself.
//! * `peers.rs`: [`Peers`], the peers in use and the candidates: recruiting, asking (have-
//!   maps, manifest parts, pieces), their deadlines, dropping. A peer is never removed from
//!   the list, only marked dropped, so its index names it for good. Its operations take the
//!   rest of the download they touch as an [`Of`] (name, info hash, phase).
//! * `peer.rs`: [`peer::Peer`], one holder as this download sees it (address, cookie,
//!   have-map, round trip, pace, path MTU, congestion, what it sent). It is a record the
//!   other files read and write; what must add up across peers is not in it.
//! * `transfer.rs`: [`Transfer`](transfer::Transfer), the chunk table and the whole
//!   account of what was asked of whom (each chunk's owner, each peer's chunks and pieces in
//!   flight), behind private fields, with its invariants asserted after every input in debug
//!   builds; it picks chunks and runs of pieces (`transfer/pick.rs`), takes pieces in, and
//!   finds lost ones.
//! * `lookup.rs`: [`lookup::Lookups`], the holders we may recruit and when the tracker is
//!   asked again, and which version is taken; `manifest.rs`: [`ManifestFetch`], the manifest
//!   part by part; `deadlines.rs`: [`Deadlines`], when the download gives up, and when it
//!   tries a full disk again; `partial.rs`: the file in storage, from the partial file
//!   (opened with the transfer that fills it) to the published one.
//! * `pace.rs` sizes request windows, `congestion.rs` sets the pace asked of each peer,
//!   `diagnosis.rs` gathers what peers and the tracker showed and says why a download is
//!   slow or failed, `finish.rs` says how a download ended and what became of its file.
//! * `fuzz.rs` (`testing` feature only): the body of the `download_messages` fuzz target.
//!
//! ## One piece, from arrival to disk
//!
//! The node hands a `Piece` datagram to [`Download::handle_peer_message`], which finds the
//! sender among the peers and gives the piece to
//! [`Transfer::receive`](transfer::Transfer::receive). That checks the piece is one of a
//! chunk arriving, where one fits, and not in yet; writes it into the partial file (the
//! `PieceWriter`); marks it received; and settles the owner's in-flight count. The sender's
//! [`peer::Peer::on_piece`] then updates its round trip, pace and congestion model, and the
//! owner's window follows. When the piece completes its chunk, the transfer flushes the
//! writer, marks the chunk hashing, and hands a hash check
//! ([`Transfer::check_job`](transfer::Transfer::check_job)) to a hasher thread. Its answer
//! comes back through [`Download::chunk_checked`]: a chunk that verified is recorded in the
//! have-file and credited to its sender; when every chunk did, `Download::publish` renames
//! the file.

mod asked;
mod congestion;
mod deadlines;
mod diagnosis;
mod finish;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod fuzz;
mod lookup;
mod manifest;
mod pace;
mod partial;
mod peer;
mod peers;
mod phase;
mod report;
mod transfer;

use super::{Job, NodeEvent, Parts};
use crate::storage::{Bitmap, Content, FileStamp, Manifest};
use crate::wire::{self, Hash, HolderRecord, Message, VersionRecord};
pub(crate) use asked::Asked;
use asked::Of;
use deadlines::Deadlines;
pub(crate) use diagnosis::TrackerHeard;
pub(crate) use finish::{keep_partial, remove_partial, resume_command};
use lookup::VersionChoice;
use manifest::ManifestFetch;
use peers::Peers;
use phase::Phase;
use report::Report;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use transfer::Arrived;

/// Most peers one download remembers (active or dropped).
pub const PEERS_PER_DOWNLOAD_MAX: usize = 64;
/// Peers holding only part of the file used at once, beside the `peers_max` complete
/// holders: in a swarm a downloader talks to as many peers as help.
const PARTIAL_PEERS_MAX: usize = 8;
/// Partial holders that hold nothing this download still needs are dropped for others the
/// tracker listed, at most this many at each refresh.
const UNHELPFUL_DROPS_MAX: usize = 2;
/// How often partial holders are asked for their have-maps while a transfer runs.
const HAVE_REFRESH: Duration = Duration::from_millis(200);

/// What became of a peer message offered to a download.
pub(crate) enum Handled {
    Consumed,
    /// The manifest checked and the partial file exists: the node may announce.
    ManifestReady(Hash),
}

pub(crate) struct Download {
    /// Its id in the node's list (see `Downloads::start`): a resumed download keeps it.
    id: u64,
    /// Its run: unique to this start (a resume is a new run), carried by its hash checks.
    run: u64,
    /// The name, the version taken, and how it was found (see `asked.rs`).
    asked: Asked,
    versions: VersionChoice,
    /// When it gives up, and when it tries the disk again.
    deadlines: Deadlines,
    phase: Phase,
    /// Every peer this download used, by index, and whom it may recruit.
    peers: Peers,
    /// What the tracker's replies showed, and when to say why the download is slow.
    diagnosis: diagnosis::Diagnosis,
    /// Every chunk verified, a hasher thread is publishing the file ([`Job::Publish`]).
    publishing: bool,
}

impl Download {
    /// A download of what `asked` says, from the start (a look-up). After a pause, `asked`
    /// holds the version taken by then, so chunks verified before are found in the
    /// partial file (and checked again).
    pub fn new(asked: Asked, now: Instant, give_up_after: Duration) -> Download {
        Download {
            id: 0,
            run: 0,
            versions: VersionChoice::new(asked.info_hash().is_some()),
            asked,
            deadlines: Deadlines::new(now, give_up_after),
            phase: Phase::LookingUp,
            peers: Peers::new(now),
            diagnosis: diagnosis::Diagnosis::new(now),
            publishing: false,
        }
    }

    /// What it was asked to fetch, to start it again after a pause: the version it took by
    /// then, so that it goes on with the same partial file.
    pub fn asked(&self) -> &Asked {
        &self.asked
    }

    /// Takes the id and the run the node's list gave it.
    pub fn started_as(&mut self, id: u64, run: u64) {
        self.id = id;
        self.run = run;
    }

    /// Its run: see [`Download::started_as`].
    pub fn run(&self) -> u64 {
        self.run
    }

    pub fn name(&self) -> &str {
        self.asked.name()
    }

    pub fn info_hash(&self) -> Option<Hash> {
        self.asked.info_hash()
    }

    pub fn finished(&self) -> bool {
        self.phase.finished()
    }

    pub fn failed(&self) -> bool {
        matches!(self.phase, Phase::Failed)
    }

    /// Whether the partial file exists: the manifest checked and the transfer began.
    pub fn transferring(&self) -> bool {
        matches!(self.phase, Phase::Transfer(_))
    }

    /// Ends the download as failed, saying why and what became of its partial file (see
    /// [`finish::failed`]).
    fn fail(&mut self, parts: &mut Parts<'_>, reason: String) {
        self.phase = Phase::Failed;
        let failed = finish::failed(parts, self.id, &self.asked, reason);
        parts.out.report(failed);
    }

    // ---- inputs: each checks the transfer's account when it is done ---------------------

    /// The tracker's answer to a look-up: the versions of the name and their holders.
    pub fn handle_lookup(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        versions: &[VersionRecord],
        holders: &[HolderRecord],
    ) {
        self.take_lookup(parts, now, versions, holders);
        self.check_invariants();
    }

    /// Peers of our info hash from a standard tracker: addresses only (see
    /// [`Lookups::take_addresses`](lookup::Lookups::take_addresses)).
    pub fn handle_peers(&mut self, parts: &mut Parts<'_>, now: Instant, peers: &[SocketAddr]) {
        self.take_peers(parts, now, peers);
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

    /// Peer `from` told us of other peers holding some of the file (peer exchange): the
    /// ones we know of under no id yet become candidates, and are recruited if there is
    /// room. A listed id we already know keeps the address we know it by (a peer cannot
    /// redirect us from a holder), and nothing but a have-map request goes to a new address
    /// before it answers, so a lying list costs us a few small requests and nothing more.
    pub fn handle_exchange(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        listed: &[wire::PeerRecord],
    ) {
        if self.finished() || !self.peers.iter().any(|p| p.addr == from && !p.dropped) {
            // Lists are taken only from peers we use (whom we asked).
            parts.out.stats.dropped_unexpected += 1;
            return;
        }
        let (peers, lookups) = self.peers.with_lookups();
        if lookups.take_told(parts.config.node_id, listed, peers) {
            self.recruit(parts, now);
        }
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
        let (peers, mut of) = self.peers_of();
        peers.send_requests(parts, now, &mut of);
        self.check_invariants();
    }

    /// Asserts the transfer's account in debug builds, at the end of every input (see
    /// [`Transfer::check_invariants`](transfer::Transfer::check_invariants)).
    fn check_invariants(&self) {
        if cfg!(debug_assertions)
            && let Phase::Transfer(transfer) = &self.phase
        {
            transfer.check_invariants(&self.peers);
        }
    }

    /// The peers, and what their operations take of the rest of the download (see [`Of`]).
    fn peers_of(&mut self) -> (&mut Peers, Of<'_>) {
        (&mut self.peers, self.asked.of(&mut self.phase))
    }

    fn recruit(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let (peers, mut of) = self.peers_of();
        peers.recruit(parts, now, &mut of);
    }

    fn drop_peer(&mut self, parts: &mut Parts<'_>, now: Instant, index: usize) {
        let (peers, mut of) = self.peers_of();
        peers.drop_peer(parts, now, &mut of, index);
    }

    fn ask_manifest(&mut self, parts: &mut Parts<'_>, now: Instant) {
        self.peers.ask_manifest(parts, now, &mut self.phase);
    }

    /// Peers this download uses that sent us chunks that verified (see
    /// [`Peers::useful`]).
    pub fn useful_peers(&self) -> impl Iterator<Item = (u32, SocketAddr, bool)> + '_ {
        self.peers.useful()
    }

    // ---- look-up ------------------------------------------------------------------------

    fn take_lookup(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        versions: &[VersionRecord],
        holders: &[HolderRecord],
    ) {
        if self.finished() {
            return;
        }
        let choice = self
            .versions
            .choose(versions, self.asked.info_hash(), self.asked.name());
        let Some((chosen, line)) = choice else {
            self.diagnosis.on_lookup(0);
            log::info!("no holder of {} yet; asking again", self.name());
            self.peers.lookups.forget_candidates();
            return;
        };
        if let Some(line) = line {
            parts.out.say(line);
        }
        let version = versions[chosen];
        // Room for a holder we did not know: the backoff starts again when there is one.
        let room = self.peers.partial_peers() < PARTIAL_PEERS_MAX
            || !self.peers.iter().any(|p| !p.dropped);
        let (peers, lookups) = self.peers.with_lookups();
        let candidates = lookups.take_holders(
            now,
            parts.config.node_id,
            chosen,
            &version,
            holders,
            peers,
            room,
        );
        self.diagnosis.on_lookup(candidates);
        if candidates == 0 {
            return;
        }
        let fetch = ManifestFetch::new(version);
        self.begin(parts, now, version.info_hash, fetch);
    }

    /// Holders are known: a download still looking up resumes from its partial file, if
    /// one is there, or fetches the manifest (`fetch`); then peers are recruited.
    fn begin(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        info_hash: Hash,
        fetch: ManifestFetch,
    ) {
        if let Phase::LookingUp = self.phase {
            self.asked.take_version(info_hash);
            match parts.state.partial_manifest(&info_hash) {
                Some(manifest) => {
                    log::info!("resuming {} from its partial file", manifest.name);
                    self.asked.named_by(&manifest);
                    self.start_transfer(parts, now, manifest);
                }
                None => self.phase = Phase::Manifest(fetch),
            }
        }
        self.recruit(parts, now);
    }

    fn take_peers(&mut self, parts: &mut Parts<'_>, now: Instant, peers: &[SocketAddr]) {
        let (Some(info_hash), Some(by_hash)) = (self.info_hash(), self.asked.by_hash()) else {
            return;
        };
        if self.finished() {
            return;
        }
        let shape = by_hash.shape;
        let candidates = self
            .peers
            .lookups
            .take_addresses(parts.config.node_id, peers);
        self.diagnosis.on_lookup(candidates);
        if candidates == 0 {
            return;
        }
        let fetch = ManifestFetch::by_hash(info_hash, shape);
        self.begin(parts, now, info_hash, fetch);
    }

    // ---- messages from peers ------------------------------------------------------------

    fn take_peer_message(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        message: &Message<'_>,
    ) -> Option<Handled> {
        let info_hash = self.info_hash()?;
        let index = self.peers.iter().position(|p| p.addr == from)?;
        // Whatever it is, it shows the peer answers: see `diagnosis`.
        self.peers[index].evidence.on_datagram(now);
        match message {
            Message::Welcome(welcome) => {
                let cookie = welcome.cookie.get();
                let (peers, mut of) = self.peers_of();
                peers.welcome(parts, now, &mut of, index, cookie);
                // Other downloads from the same peer need the cookie too.
                None
            }
            Message::HaveMap { fixed, bitmap } if fixed.info_hash == info_hash => {
                let (peers, mut of) = self.peers_of();
                peers.have_map(parts, now, &mut of, index, fixed, bitmap);
                Some(Handled::Consumed)
            }
            Message::MtuProbeReply(reply) if reply.info_hash == info_hash => {
                let bytes = reply.probe_bytes.get();
                self.peers
                    .probe_reply(parts, now, self.asked.name(), index, bytes);
                Some(Handled::Consumed)
            }
            Message::ManifestPart {
                fixed,
                hashes,
                name,
            } if fixed.info_hash == info_hash => {
                self.peers[index].last_heard = now;
                let (peers, mut of) = self.peers_of();
                let taken = peers.manifest_part(parts, now, &mut of, index, fixed, hashes, name);
                Some(self.manifest_taken(parts, now, taken))
            }
            Message::InfoPart { fixed, bytes } if fixed.info_hash == info_hash => {
                self.peers[index].last_heard = now;
                let (peers, mut of) = self.peers_of();
                let taken = peers.info_part(parts, now, &mut of, index, fixed, bytes);
                Some(self.manifest_taken(parts, now, taken))
            }
            Message::Piece { fixed, data } if fixed.info_hash == info_hash => {
                self.piece(parts, now, index, Arrived::new(fixed, None, data));
                Some(Handled::Consumed)
            }
            Message::StampedPiece { fixed, data } if fixed.piece.info_hash == info_hash => {
                let sent_us = Some(fixed.sent_us.get());
                self.piece(parts, now, index, Arrived::new(&fixed.piece, sent_us, data));
                Some(Handled::Consumed)
            }
            Message::Reject(reject) if reject.info_hash == info_hash => {
                self.peers[index].last_heard = now;
                let (peers, mut of) = self.peers_of();
                peers.rejected(parts, now, &mut of, index, reject.chunk, reject.reason);
                Some(Handled::Consumed)
            }
            _ => None,
        }
    }
    // ---- timers -------------------------------------------------------------------------
    //
    // Silent peers, unanswered requests, timed-out pieces, the swarm's refreshes (holder
    // lists and have-maps) and giving up. Timers are data: `poll_timeout` returns the
    // earliest deadline and a spurious `handle_timeout` does nothing.

    fn fire_timers(&mut self, parts: &mut Parts<'_>, now: Instant) -> bool {
        if self.finished() {
            return false;
        }
        if self.deadlines.disk_retry_due(now) {
            match std::mem::replace(&mut self.phase, Phase::LookingUp) {
                Phase::WaitingForSpace(manifest) => {
                    self.start_transfer(parts, now, manifest);
                }
                other => {
                    self.phase = other;
                    self.publish(parts);
                }
            }
        }
        if self.deadlines.waiting_for_disk() {
            // Nothing to ask anyone until there is room, and no giving up either.
            return false;
        }
        for index in 0..self.peers.len() {
            let (peers, mut of) = self.peers_of();
            peers.check_peer(parts, now, &mut of, index);
        }
        if let Phase::Manifest(fetch) = &self.phase
            && fetch.retry_at().is_some_and(|t| t <= now)
        {
            match fetch.source() {
                Some(source) if fetch.source_exhausted() => self.drop_peer(parts, now, source),
                _ => self.ask_manifest(parts, now),
            }
        }
        let (peers, mut of) = self.peers_of();
        peers.scan_timeouts(parts, now, &mut of);
        let transferring = matches!(self.phase, Phase::Transfer(_));
        if transferring {
            let (peers, mut of) = self.peers_of();
            peers.refresh(parts, now, &mut of);
        }
        let active = self.peers.iter().any(|p| !p.dropped);
        // Every chunk verified, its file being published: nothing left to give up on.
        if !active && !self.publishing && self.deadlines.give_up_due(now) {
            let reason = self.report().why(&parts.tracker, now);
            let reason = reason.unwrap_or_else(|| self.deadlines.no_holder_reason(self.name()));
            self.fail(parts, reason);
            return false;
        }
        if self.diagnosis.take_slow_report(now)
            && let Some(line) = self.report().slow(&parts.tracker, now)
        {
            parts.out.say(line);
        }
        if !active {
            self.recruit(parts, now);
        }
        // Look-ups: for holders while none is usable, for new holders while a transfer
        // runs; each backs off while nothing changes (see `handle_lookup`).
        let need_holders = !self.peers.iter().any(|p| !p.dropped);
        if need_holders || transferring {
            let partial_room = self.peers.partial_peers() < PARTIAL_PEERS_MAX;
            return self
                .peers
                .lookups
                .fire(now, need_holders, partial_room, parts.config.node_id);
        }
        false
    }

    /// The node's look-up budget holds the look-up this download wanted until `at`.
    pub fn defer_lookup(&mut self, at: Instant) {
        self.peers.lookups.defer(at);
    }

    /// When this download would ask the tracker for holders next, if it looks up at all
    /// now (for holders while none is usable, for new holders while a transfer runs).
    pub fn lookup_wanted_at(&self) -> Option<Instant> {
        let need_holders = !self.peers.iter().any(|p| !p.dropped);
        let transferring = matches!(self.phase, Phase::Transfer(_));
        if self.finished() || !(need_holders || transferring) {
            return None;
        }
        self.peers.lookups.due()
    }

    /// A datagram goes to the tracker now anyway (credit that is due): the look-up this
    /// download wanted later goes with it instead (see `Node::handle_timeout`).
    pub fn bring_lookup_forward(&mut self, now: Instant) {
        self.peers.lookups.bring_forward(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished() {
            return None;
        }
        let mut earliest: Option<Instant> = None;
        let mut consider = |t: Instant| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        if let Some(t) = self.deadlines.disk_retry_at() {
            // Nothing else is due while the disk is full.
            return Some(t);
        }
        if let Some(t) = self.diagnosis.slow_report_due() {
            consider(t);
        }
        if let Some(t) = self.peers.poll_timeout(&self.phase) {
            consider(t);
        }
        let phase_due = match &self.phase {
            Phase::Manifest(fetch) => fetch.retry_at(),
            Phase::Transfer(transfer) => transfer.scan_due(),
            _ => None,
        };
        if let Some(t) = phase_due {
            consider(t);
        }
        if !self.publishing && !self.peers.iter().any(|p| !p.dropped) {
            consider(self.deadlines.give_up_at());
        }
        earliest
    }

    // ---- arrivals: manifest parts, pieces, hash checks, publishing -----------------------

    /// A part of the manifest was taken (`progressed`: it moved it forward), and the
    /// manifest is whole when given: the transfer starts.
    fn manifest_taken(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        (progressed, manifest): (bool, Option<Manifest>),
    ) -> Handled {
        if progressed {
            self.deadlines.helped(now);
        }
        let Some(manifest) = manifest else {
            return Handled::Consumed;
        };
        if self.asked.by_hash().is_some() && parts.state.name_taken(self.name()) {
            let reason = format!(
                "{} already exists in {}",
                self.name(),
                parts.state.files_dir().display()
            );
            self.fail(parts, reason);
            return Handled::Consumed;
        }
        let info_hash = manifest.info_hash;
        if self.start_transfer(parts, now, manifest) {
            Handled::ManifestReady(info_hash)
        } else {
            Handled::Consumed
        }
    }

    /// Opens the partial content and begins the transfer; a tree's is opened by a hasher
    /// thread, and the transfer begins once it answers ([`Download::partial_opened`]).
    /// Whether it began now.
    fn start_transfer(&mut self, parts: &mut Parts<'_>, now: Instant, manifest: Manifest) -> bool {
        if manifest.tree.is_some() {
            parts.out.event(NodeEvent::Job(Job::OpenPartial {
                run: self.run,
                state: Arc::clone(parts.state),
                manifest: manifest.clone(),
            }));
            self.phase = Phase::Opening(manifest);
            return false;
        }
        let opened = parts.state.open_partial(&manifest);
        self.begin_transfer(parts, now, manifest, opened);
        true
    }

    /// A hasher thread opened the partial content of a tree: the transfer begins. The info
    /// hash, when it did (the node may announce it).
    pub fn partial_opened(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        opened: std::io::Result<(Arc<dyn Content>, Bitmap)>,
    ) -> Option<Hash> {
        let Phase::Opening(manifest) = std::mem::replace(&mut self.phase, Phase::LookingUp) else {
            return None;
        };
        let info_hash = manifest.info_hash;
        self.begin_transfer(parts, now, manifest, opened);
        // Nobody was asked anything while the files were laid out: their silence was ours.
        for peer in self.peers.iter_mut() {
            peer.last_heard = now;
        }
        matches!(self.phase, Phase::Transfer(_)).then_some(info_hash)
    }

    fn begin_transfer(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        manifest: Manifest,
        opened: std::io::Result<(Arc<dyn Content>, Bitmap)>,
    ) {
        let (mapping, claimed) = match opened {
            Ok(opened) => opened,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                let waiting = self
                    .deadlines
                    .wait_for_space(now, self.asked.name(), &error);
                if let Some(line) = waiting {
                    parts.out.say(line);
                }
                self.phase = Phase::WaitingForSpace(manifest);
                return;
            }
            Err(error) => {
                self.fail(parts, error.to_string());
                return;
            }
        };
        if self.deadlines.end_disk_wait() {
            parts.out.say(format!(
                "download {}: disk space found, going on",
                self.name()
            ));
            self.deadlines.helped(now);
            // Nobody was asked anything while we waited: their silence was ours.
            for peer in self.peers.iter_mut() {
                peer.last_heard = now;
            }
        }
        let count = manifest.chunk_count();
        let mut transfer =
            partial::begin_transfer(self.run, parts, now, manifest, mapping, &claimed);
        self.peers.count_have_maps(&mut transfer);
        self.phase = Phase::Transfer(transfer);
        if count == 0 {
            self.publish(parts);
        }
    }

    /// A piece from peer `index`: see "One piece, from arrival to disk" in the module doc.
    fn piece(&mut self, parts: &mut Parts<'_>, now: Instant, index: usize, piece: Arrived<'_>) {
        match &mut self.phase {
            Phase::Transfer(transfer) => {
                transfer.receive(parts, now, self.asked.name(), &mut self.peers, index, piece)
            }
            _ => parts.out.stats.pieces_unrequested += 1,
        }
    }

    fn take_hash_result(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        chunk: u32,
        ok: bool,
    ) -> Option<u32> {
        let Phase::Transfer(transfer) = &mut self.phase else {
            return None;
        };
        // Not hashing (a late duplicate result): nothing to do.
        let from = transfer.hash_checked(chunk, ok)?;
        let info_hash = transfer.manifest().info_hash;
        if !ok {
            if from == parts.config.node_id {
                // A chunk an earlier run recorded, not intact after all: fetch it.
                return None;
            }
            parts.out.stats.chunks_failed_hash += 1;
            log::warn!(
                "chunk {chunk} of {} from node {from} failed its SHA-1; fetching it again",
                self.asked.name()
            );
            transfer.remember_bad(chunk, from);
            let (peers, mut of) = self.peers_of();
            peers.bad_chunk(parts, now, &mut of, from);
            return None;
        }
        let whole = partial::record_verified(parts, &info_hash, chunk)?;
        self.deadlines.helped(now);
        if let Some(peer) = self.peers.iter_mut().find(|p| p.node_id == from) {
            peer.chunks_verified += 1;
        }
        log::info!(
            "chunk {chunk} of {} verified, from node {from}",
            self.name()
        );
        if whole {
            self.publish(parts);
        }
        (from != parts.config.node_id).then_some(from)
    }

    /// Every chunk verified: a hasher thread makes the file durable and moves it into
    /// place ([`Job::Publish`]): a sync of gigabytes, or a tree's thousands of files, would
    /// hold up the reactor (and with it every peer we serve) for seconds.
    /// [`Download::published`] takes its answer.
    fn publish(&mut self, parts: &mut Parts<'_>) {
        let Phase::Transfer(transfer) = &self.phase else {
            return;
        };
        if self.publishing {
            return;
        }
        self.publishing = true;
        parts.out.event(NodeEvent::Job(Job::Publish {
            run: self.run,
            state: Arc::clone(parts.state),
            manifest: Arc::clone(transfer.manifest()),
            content: Arc::clone(transfer.mapping()),
        }));
    }

    /// A hasher thread published the file, or could not: the download is done, waits for
    /// disk space (publishing again once there is some), or fails. Whether it is done.
    pub fn published(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        result: std::io::Result<(Arc<dyn Content>, FileStamp)>,
    ) -> bool {
        let Phase::Transfer(transfer) = &self.phase else {
            return false;
        };
        if !std::mem::take(&mut self.publishing) {
            return false;
        }
        let manifest = Arc::clone(transfer.manifest());
        match result {
            Ok((serving, stamp)) => partial::published(parts, &manifest, serving, stamp),
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                // Every chunk verified and recorded: keep them, and publish once there is room.
                let waiting = self
                    .deadlines
                    .wait_for_space(now, self.asked.name(), &error);
                if let Some(line) = waiting {
                    parts.out.say(line);
                }
                return false;
            }
            Err(error) => {
                parts.files.remove(&manifest.info_hash);
                self.fail(parts, format!("cannot publish: {error}"));
                return false;
            }
        }
        let seconds = self.deadlines.elapsed(now).as_secs_f64();
        let by_address = self.asked.by_hash().is_some();
        let event = finish::downloaded(self.id, &manifest, seconds, &self.peers, by_address);
        parts.out.report(event);
        self.deadlines.end_disk_wait();
        self.phase = Phase::Done;
        self.check_invariants();
        true
    }

    /// Its parts, borrowed to report on them: progress, peers, why it is slow (see
    /// `report.rs`).
    pub fn report(&self) -> Report<'_> {
        Report {
            name: self.name(),
            phase: &self.phase,
            peers: &self.peers,
            deadlines: &self.deadlines,
            diagnosis: &self.diagnosis,
        }
    }
}
