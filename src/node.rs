//! The node: shares files, downloads files from several peers at once, serves what it holds.
//!
//! A sans-IO state machine. Inputs: [`Node::handle_datagram`], [`Node::handle_timeout`],
//! [`Node::handle_command`] (the console, signals), [`Node::handle_job_done`] (a hasher
//! thread finished). Outputs, polled: [`Node::poll_transmit`] writes the next datagram into
//! the caller's buffer, [`Node::poll_timeout`] says when to call `handle_timeout`,
//! [`Node::poll_event`] yields lines for the user, hashing jobs and the exit code. It reads
//! no clock and no random source: `now` and a seed come from the caller.
//!
//! The parts, one file each:
//!
//! * this file: the node's state, and the router between its parts: which part an arriving
//!   datagram goes to, what the tracker's news means for files and downloads, timers,
//!   outputs, and when to leave;
//! * `config`: what the node is told when it starts, with its defaults; `parts`: the node's
//!   state a download works with, borrowed for one input; `inspect`: what the simulation's
//!   checkers read of the node's insides;
//! * `outbox`: the bounded queues the parts send into (datagrams, events, jobs) and the
//!   counters `status` shows;
//! * `events`: what the node reports, typed (a line for a person, JSON with `--json`);
//! * `library`: the files the node holds (whole or in part), those being hashed to share,
//!   exports waiting for their file, announces held back;
//! * `commands`: the commands that change what the node holds and fetches (share, unshare,
//!   export, download, pause, resume, cancel, limits), done by a `Commander` that borrows the
//!   node's parts for one command and leaves what only the node can do (tell the tracker,
//!   ask for holders, see whether its work is done) for the node to do after it;
//! * `downloads`: the downloads running (at most [`DOWNLOADS_MAX`]) and finished, and which
//!   of them a peer's message or the tracker's answer is for;
//! * `ending`: how the node ends (`exit`, signals, `--exit-when-done`) and its exit code;
//! * `jobs`: hashing jobs (sharing a file, checking a chunk), run off the reactor thread;
//! * `tracker_client`: the tracker, whichever protocol it speaks: ours (register, heartbeat,
//!   announce, look-up, credit, exit, all with retries and backoff) or a standard BitTorrent
//!   tracker's (BEP 15: no registration, credit, exit or ranking there);
//! * `advertise`: the address we ask trackers to give out (`--advertise`), and recognising
//!   ourselves in peer lists;
//! * `download` (and `download/transfer`): the receiver-driven transfer: manifest,
//!   have-maps, chunk scheduling, per-peer windows, timeouts, verification, publishing;
//! * `listing`: `list`, pages of what the tracker offers, asked for and kept by id;
//! * `exchange`: telling a peer that asked for a have-map of other peers holding the file;
//! * `upload`: answering peers, within each sender's budget: cookies (anti-amplification),
//!   have-maps, manifest parts, pieces read from the file, the upload rate limit;
//! * `peer_wire_seed`: standard BitTorrent clients downloading what the node holds whole,
//!   over TCP (the peer wire): the connections, their limits and counters, the upload
//!   limit shared with `upload`;
//! * `status`: the `status` report, and what an exit cuts short;
//! * `watch`: noticing that a file in the directory changed while it was shared.
//!
//! Files go through [`crate::storage`]'s `Storage` and `Content` traits (a directory in a
//! process, memory in the simulation); the node only decides what to read and write.

mod advertise;
pub use advertise::{INTERFACE_ADDRESSES_MAX, SelfAddresses};
mod commands;
mod config;
pub use config::{NodeConfig, PaceMode};
mod download;
#[cfg(any(test, feature = "testing"))]
pub(crate) use download::fuzz::check_download_messages;
mod downloads;
mod ending;
mod events;
use downloads::Downloads;
pub use downloads::{DOWNLOADS_MAX, FINISHED_KEPT_MAX};
pub use events::{DropCause, EVENTS_VERSION, Event, PartialFate, ProgressReport, Source};
mod exchange;
mod inspect;
pub use inspect::{Inspect, QueueLen};
mod jobs;
mod library;
pub(crate) use library::LocalFile;
pub use library::{EXPORTS_WAITING_MAX, FILES_MAX};
mod listing;
use library::{Library, Progressed};
pub use listing::{LIST_TIMEOUT, LISTINGS_KEPT_MAX};
mod outbox;
mod parts;
mod peer_wire_seed;
pub(crate) use parts::Parts;
use peer_wire_seed::PeerWireSeed;
pub use peer_wire_seed::{
    CONNECTIONS_MAX as PEER_WIRE_CONNECTIONS_MAX,
    CONNECTIONS_PER_ADDRESS_MAX as PEER_WIRE_CONNECTIONS_PER_ADDRESS_MAX, ConnectionId,
    PeerWireDoor, UNCHOKED_MAX as PEER_WIRE_UNCHOKED_MAX,
};
mod rate_limit;
use outbox::Outbox;
pub use outbox::{CONTROL_QUEUE_MAX, EVENT_QUEUE_MAX, NodeEvent, NodeStats};
use rate_limit::RequestLimit;
mod status;
#[cfg(test)]
mod tests_budget;
#[cfg(test)]
mod tests_peer_wire;
mod tracker_client;
mod upload;
mod watch;

use crate::Transmit;
use crate::budget::{self, SenderBudgets};
use crate::console::{self, Command};
use crate::control::{Order, Reply, StatusInfo};
use crate::rng::Rng;
use crate::secrets::Secrets;
use crate::storage::Storage;
use crate::wire::{self, Hash, Message};
use commands::{After, Commander, Done, Outcome};
use ending::Ending;
pub use jobs::{Job, JobDone, run_job};
pub use status::Progress;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracker_client::{Leaving, TrackerClient, TrackerNews};
use upload::Uploader;
use watch::Change;

/// A node's state. See the module documentation.
pub struct Node {
    config: NodeConfig,
    state: Arc<dyn Storage>,
    tracker: TrackerClient,
    /// The files held, and the work on them waiting (hashing, exports, announces).
    library: Library,
    downloads: Downloads,
    /// `list` requests to the tracker, waiting or answered.
    listings: listing::Listings,
    uploader: Uploader,
    /// `--max-download-rate`, spent by the downloads' piece requests.
    download_limit: Option<RequestLimit>,
    /// Whom we told of other peers lately (peer exchange).
    exchange: exchange::Exchange,
    /// Standard clients downloading from us over TCP (see `peer_wire_seed`).
    peer_wire: PeerWireSeed,
    out: Outbox,
    /// Whether and how the node ends: `--exit-when-done`, refusals, the exit code.
    ending: Ending,
    started: Instant,
}

impl Node {
    /// A node that keeps its files in `state`'s directory.
    /// `secrets`: [`Secrets::Os`] in a process, a seed in a simulation (see `secrets.rs`).
    pub fn new(
        config: NodeConfig,
        state: Arc<dyn Storage>,
        secrets: impl Into<Secrets>,
        now: Instant,
    ) -> Node {
        let token = state.load_token(config.node_id);
        let mut secrets = secrets.into();
        // The uploader draws its cookie key (and nothing else) from this generator, seeded
        // by a secret of its own: the key never leaves the process but through SHA-1.
        let mut cookie_rng = Rng::new(secrets.u64());
        let senders = SenderBudgets::new(budget::NODE_SENDERS_MAX, secrets.u64(), now);
        let uploader = Uploader::new(
            config.node_id,
            &mut cookie_rng,
            config.max_upload_bytes_per_s,
            config.routes.clone(),
            senders,
            now,
        );
        let me = SelfAddresses::new(config.local_addr, config.advertise, &config.interface_ips);
        let tracker = TrackerClient::new(&config, me, token, || secrets.u64(), now);
        let download_limit = config
            .max_download_bytes_per_s
            .map(|rate| RequestLimit::new(rate, now));
        // Drawn last, so that the draws above stay what they were before the peer wire.
        let mut peer_id_random = [0u8; 12];
        secrets.fill(&mut peer_id_random);
        let peer_id = crate::peer_wire::peer_id(peer_id_random);
        Node {
            peer_wire: PeerWireSeed::new(peer_id, config.local_addr.port()),
            exchange: exchange::Exchange::new(config.node_id),
            tracker,
            config,
            state,
            library: Library::new(now),
            downloads: Downloads::new(),
            listings: listing::Listings::new(),
            uploader,
            download_limit,
            out: Outbox::new(),
            ending: Ending::new(),
            started: now,
        }
    }

    /// Exit (0) once every download has completed and every share and export asked for is
    /// done, or (1) as soon as one of them fails; `exit` or a signal before then exits 1.
    pub fn set_exit_when_done(&mut self, on: bool) {
        self.ending.set_exit_when_done(on);
    }

    /// The peer wire connections (standard clients over TCP), for the reactor: see
    /// `peer_wire_seed`.
    pub fn peer_wire(&mut self) -> PeerWireDoor<'_> {
        PeerWireDoor {
            seed: &mut self.peer_wire,
            files: self.library.files(),
            uploader: &mut self.uploader,
            stats: &mut self.out.stats,
        }
    }

    pub fn stats(&self) -> &NodeStats {
        &self.out.stats
    }

    pub fn node_id(&self) -> u32 {
        self.config.node_id
    }

    /// The node's insides, for the simulation's checkers and tests (see `inspect.rs`).
    #[doc(hidden)]
    pub fn inspect(&self) -> Inspect<'_> {
        Inspect {
            library: &self.library,
            downloads: &self.downloads,
            uploader: &self.uploader,
            exchange: &self.exchange,
            listings: &self.listings,
            out: &self.out,
        }
    }

    // ---- inputs ----------------------------------------------------------------------------

    /// A datagram arrived from `from`: to the tracker client when it comes from the
    /// tracker's address; requests to the uploader, after the per-sender budget at the door;
    /// answers to our requests to the downloads.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.out.stats.datagrams_received += 1;
        if from == self.tracker.addr() {
            let (files, out) = (self.library.files(), &mut self.out);
            let handled = self.tracker.handle_datagram(now, out, files, bytes);
            match handled {
                Ok(()) => {}
                Err(tracker_client::Dropped::Malformed) => self.out.stats.dropped_malformed += 1,
                Err(tracker_client::Dropped::Unexpected) => self.out.stats.dropped_unexpected += 1,
            }
            self.take_tracker_news(now);
            return;
        }
        let message = match wire::decode(bytes) {
            Ok(message) => message,
            Err(error) => {
                self.out.stats.dropped_malformed += 1;
                log::debug!("dropped datagram from {from}: {error}");
                return;
            }
        };
        match message {
            Message::HaveRequest(_)
            | Message::ManifestRequest(_)
            | Message::InfoRequest(_)
            | Message::PieceRequest(_)
            | Message::PacedPieceRequest(_)
            | Message::MtuProbe(_) => {
                let served = self.uploader.handle_request(
                    &mut self.out,
                    self.library.files(),
                    now,
                    from,
                    &message,
                );
                if let Some((info_hash, asker)) = served {
                    self.tell_of_peers(now, from, info_hash, asker);
                }
            }
            Message::Peers { .. }
            | Message::Welcome(_)
            | Message::HaveMap { .. }
            | Message::MtuProbeReply(_)
            | Message::ManifestPart { .. }
            | Message::InfoPart { .. }
            | Message::Piece { .. }
            | Message::StampedPiece { .. }
            | Message::Reject(_) => {
                let (downloads, mut parts) = self.context();
                if let Some(info_hash) = downloads.handle_answer(&mut parts, now, from, &message) {
                    // A manifest checked and its partial file exists: announce it.
                    self.after_progress(now, info_hash);
                }
            }
            _ => {
                self.out.stats.dropped_unexpected += 1;
                log::debug!(
                    "dropped {:?} from {from}: not a peer message",
                    message.kind()
                );
            }
        }
        self.fill_windows(now);
    }

    /// A have-map of `info_hash` went to `to` (node `asker`), whose cookie proved that it
    /// receives: with our tracker, tell it of other peers holding some of the file (see
    /// `exchange.rs`): those our own download of it uses, then those we served lately.
    fn tell_of_peers(&mut self, now: Instant, to: SocketAddr, info_hash: Hash, asker: u32) {
        if !self.tracker.exchanges_peers() {
            return;
        }
        let known = exchange::known(&self.downloads, &mut self.uploader, info_hash, now);
        (self.exchange).tell(&mut self.out, now, to, info_hash, asker, known);
    }

    /// Timers that are due fire; a call with nothing due does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let node_id = self.config.node_id;
        self.ending.handle_timeout(now, &mut self.out, node_id);
        self.peer_wire().handle_timeout(now);
        let (files, leaving) = (self.library.files(), self.ending.leaving());
        (self.tracker).handle_timeout(now, &mut self.out, files, leaving);
        self.take_tracker_news(now);
        (self.listings).handle_timeout(now, &mut self.tracker, &mut self.out);
        // Credit that is due goes now in any case: when the look-up budget allows, it goes
        // inside the look-up a download would send soonest, so that the datagram also brings
        // news of holders (the window of recent datagrams, full in a busy swarm, holds back
        // only look-ups that would add a datagram).
        let credit_rides = self.tracker.registered() && self.tracker.credit_may_ride(now);
        if credit_rides && let Some(download) = self.downloads.soonest_lookup_mut() {
            download.bring_lookup_forward(now);
        }
        for info_hash in self.library.announces_due(now) {
            self.announce(now, info_hash);
        }
        let (downloads, mut parts) = self.context();
        let lookups = downloads.handle_timeout(&mut parts, now);
        for index in lookups {
            let allowed_at = self.tracker.lookup_allowed_at(now);
            if allowed_at > now && !self.tracker.credit_may_ride(now) {
                self.downloads.get_mut(index).defer_lookup(allowed_at);
                continue;
            }
            self.tracker.lookup_spent(now);
            let name = self.downloads.get(index).name().to_string();
            self.want_holders(now, &name);
        }
        if self.tracker.credit_due(now) {
            self.tracker.send_credits(now, &mut self.out);
        }
        self.forget_failed(now);
        self.check_done(now);
        if self.library.check_due(now) {
            for (info_hash, change) in watch::changes(self.library.files(), &*self.state) {
                self.file_changed(now, info_hash, change);
            }
        }
        self.uploader.handle_timeout(now);
        self.fill_windows(now);
    }

    /// A line typed at the console, parsed (off the reactor thread): a command, or a
    /// one-line complaint with a pointer to `help` (in order with the output of earlier
    /// commands).
    pub fn handle_console(&mut self, now: Instant, parsed: console::Parsed) {
        match parsed {
            Ok(command) => self.handle_command(now, command),
            Err(error) => self.out.say(error.to_string()),
        }
    }

    /// A command from the console (or a signal, as `Exit`). What comes of it is said (the
    /// control socket also gets it as a reply: [`Node::handle_control`]).
    pub fn handle_command(&mut self, now: Instant, command: Command) {
        let _ = self.run_command(now, command);
    }

    /// An order from the control socket (see [`crate::control`]): the reply to send back.
    pub fn handle_control(&mut self, now: Instant, order: Order) -> Reply {
        let download = |node: &Node, id| node.downloads.info_of(id, node.library.files(), now);
        match order {
            Order::Status { text } => {
                Reply::status(self.status_info(now), text.then(|| self.status(now)))
            }
            Order::Peers { text } => {
                let (peers, lines) = self.report().peers(now);
                Reply::peers(peers, text.then_some(lines))
            }
            Order::DownloadState { id } => match download(self, id) {
                Some(info) => Reply::done(None, Some(info)),
                None => Reply::refused(format!(
                    "no download has id {id} (the ends of the last {FINISHED_KEPT_MAX} finished downloads are kept)"
                )),
            },
            Order::ListState { id } => self.listings.reply(id),
            Order::Command(Command::List { from, page_entries }) => {
                listing::started(self.list(now, from, page_entries, false))
            }
            Order::Command(command) => match self.run_command(now, command) {
                Ok(done) => Reply::done(done.line, done.download.and_then(|id| download(self, id))),
                Err(line) => Reply::refused(line),
            },
        }
    }

    fn run_command(&mut self, now: Instant, command: Command) -> Outcome {
        match command {
            Command::Nothing => Ok(Done::default()),
            Command::Help => {
                self.out.print(console::HELP.to_string());
                Ok(Done::default())
            }
            Command::Status => {
                let status = self.status(now);
                self.out.print(status);
                Ok(Done::default())
            }
            Command::Peers => {
                let (_, lines) = self.report().peers(now);
                self.out.print(lines);
                Ok(Done::default())
            }
            Command::List { from, page_entries } => {
                // The page is printed when it comes (see `listing.rs`).
                self.list(now, from, page_entries, true)?;
                Ok(Done::default())
            }
            Command::Exit => {
                let code = self.ending.stopped(&self.downloads, &self.library);
                self.begin_exit(now, code);
                Ok(Done::line(format!(
                    "node {} is leaving",
                    self.config.node_id
                )))
            }
            command => self.command(now, |commander| commander.run(now, command)),
        }
    }

    /// Runs `act` on the node's parts a command changes (see `commands.rs`), then does what
    /// it left for the node, in order.
    fn command<T>(&mut self, now: Instant, act: impl FnOnce(&mut Commander<'_>) -> T) -> T {
        let mut commander = Commander {
            config: &self.config,
            state: &self.state,
            library: &mut self.library,
            downloads: &mut self.downloads,
            uploader: &mut self.uploader,
            download_limit: &mut self.download_limit,
            out: &mut self.out,
            ending: &mut self.ending,
            finds_by_name: self.tracker.finds_by_name(),
            heard: self.tracker.heard(),
            after: Vec::new(),
        };
        let result = act(&mut commander);
        for after in std::mem::take(&mut commander.after) {
            match after {
                After::UpdateTracker(info_hash) => self.update_tracker(now, info_hash),
                After::WantHolders(name) => self.want_holders(now, &name),
                After::CheckDone => self.check_done(now),
            }
        }
        result
    }

    /// A hasher thread finished a job.
    pub fn handle_job_done(&mut self, now: Instant, done: JobDone) {
        match done {
            JobDone::Shared { name, result } => match self.library.hashed(now, &name, result) {
                Ok(info_hash) => {
                    self.announce(now, info_hash);
                    self.command(now, |commander| commander.export_if_waiting(info_hash));
                }
                Err(line) => {
                    // Not shared: not shared in place on the next start either.
                    if let Err(error) = self.state.stop_sharing_in_place(&name) {
                        log::warn!("cannot update the list of what is shared in place: {error}");
                    }
                    let _: Outcome = self.command(now, |commander| commander.refuse(line));
                }
            },
            JobDone::PartialOpened { run, result } => {
                let (downloads, mut parts) = self.context();
                if let Some(info_hash) = downloads.partial_opened(&mut parts, now, run, result) {
                    self.after_progress(now, info_hash);
                }
                self.fill_windows(now);
            }
            JobDone::Published { run, result } => {
                let (downloads, mut parts) = self.context();
                if let Some(info_hash) = downloads.published(&mut parts, now, run, result) {
                    self.after_progress(now, info_hash);
                }
                self.check_done(now);
            }
            JobDone::ChunkChecked {
                run,
                info_hash,
                chunk,
                ok,
            } => {
                let (downloads, mut parts) = self.context();
                let checked = (run, chunk);
                let verified = downloads.chunk_checked(&mut parts, now, checked, ok);
                if let Some(from_node) = verified {
                    let bytes = parts.files.get(&info_hash);
                    let bytes = bytes.map_or(0, |f| u64::from(f.manifest.chunk_len(chunk)));
                    self.tracker
                        .chunk_verified(now, &mut self.out, from_node, info_hash, bytes);
                    if let Some(file) = self.library.files().get(&info_hash) {
                        self.uploader.push_have(&mut self.out, now, file);
                    }
                    self.after_progress(now, info_hash);
                }
                // A chunk left the hashing queue: room to start another.
                self.fill_windows(now);
            }
        }
    }

    // ---- commands ---------------------------------------------------------------------------

    /// Asks the tracker for a page of its list (see `listing.rs`); its id, or why not.
    fn list(
        &mut self,
        now: Instant,
        from: console::ListFrom,
        page_entries: u8,
        console: bool,
    ) -> Result<u64, String> {
        let files = self.library.files();
        let (tracker, out) = (&mut self.tracker, &mut self.out);
        (self.listings).start(now, tracker, out, files, from, page_entries, console)
    }

    // ---- outputs ------------------------------------------------------------------------

    /// Writes the next datagram into `buf` (at least [`wire::DATAGRAM_BYTES_MAX`] bytes).
    /// Control datagrams go first: requests and replies are small and keep transfers moving.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some((to, len)) = self.out.pop_control(buf) {
            return Some(Transmit {
                to,
                len,
                source_as_for: None,
            });
        }
        let sent = self.uploader.poll_piece(&mut self.out.stats, now, buf);
        for info_hash in self.uploader.take_damaged() {
            self.file_changed(now, info_hash, Change::Short);
        }
        let (transmit, info_hash, payload_bytes) = sent?;
        self.tracker.uploaded(info_hash, u64::from(payload_bytes));
        Some(transmit)
    }

    /// When `handle_timeout` should next be called; `None` when nothing is waiting.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut earliest = self.ending.poll_timeout(self.started);
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e: Instant| e.min(t)));
            }
        };
        consider(self.tracker.poll_timeout(self.ending.leaving()));
        consider(self.library.poll_timeout());
        consider(self.downloads.poll_timeout());
        consider(self.uploader.poll_timeout());
        let limit = self.download_limit.as_ref();
        consider(limit.and_then(RequestLimit::waiting_until));
        consider(self.listings.poll_timeout());
        consider(self.peer_wire.poll_timeout());
        earliest
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.out.pop_event()
    }

    /// Whether datagrams are waiting (the reactor keeps sending while this holds).
    pub fn has_transmit(&self, now: Instant) -> bool {
        self.out.control_len() > 0 || self.uploader.has_piece(now)
    }

    /// Whether a download is running (so that progress is worth showing).
    pub fn downloading(&self) -> bool {
        self.downloads.any_running()
    }

    /// Progress of each running download.
    pub fn progress(&self, now: Instant) -> Vec<Progress> {
        self.downloads.progress(self.library.files(), now)
    }

    /// [`Node::progress`] with each download's id and info hash, for progress events.
    pub fn progress_reports(&self, now: Instant) -> Vec<ProgressReport> {
        self.downloads.progress_reports(self.library.files(), now)
    }

    /// The verified chunks of the file called `name` (whole or partial), if the node has one:
    /// what a simulation reports about how a swarm fills.
    pub fn chunks_held(&self, name: &str) -> Option<&crate::storage::Bitmap> {
        self.library.chunks_held(name)
    }

    /// The `status` command's text (see `status.rs`).
    pub fn status(&self, now: Instant) -> String {
        self.report().text(now)
    }

    /// What `status` says, for the control socket and the metrics.
    pub fn status_info(&self, now: Instant) -> StatusInfo {
        self.report().info(now)
    }

    fn report(&self) -> status::Report<'_> {
        status::Report {
            node_id: self.config.node_id,
            started: self.started,
            tracker: &self.tracker,
            storage: &*self.state,
            files: self.library.files(),
            downloads: &self.downloads,
            piece_bytes: self.config.piece_bytes,
            stats: &self.out.stats,
            uploader: &self.uploader,
            download_limit: self.download_limit.as_ref().map(RequestLimit::bytes_per_s),
        }
    }

    /// After a chunk verified or a download started: announce (rate-limited), publish.
    fn after_progress(&mut self, now: Instant, info_hash: Hash) {
        self.command(now, |commander| commander.export_if_waiting(info_hash));
        let Some(progressed) = self.library.progressed(now, info_hash) else {
            return;
        };
        if let Progressed::AnnounceNow { complete } = progressed {
            if complete {
                // What the download owes its uploaders is told with its end, not later.
                self.tracker.send_credits(now, &mut self.out);
            }
            self.announce(now, info_hash);
        }
        self.check_done(now);
    }

    /// With `--exit-when-done`: leave once every download is complete and every share and
    /// export done (0), or as soon as one failed or was refused (1).
    fn check_done(&mut self, now: Instant) {
        if let Some(code) = self.ending.done(&self.downloads, &self.library) {
            self.begin_exit(now, code);
        }
    }

    /// Starts leaving (see `ending.rs`).
    fn begin_exit(&mut self, now: Instant, code: i32) {
        let (out, tracker) = (&mut self.out, &mut self.tracker);
        let (library, downloads) = (&self.library, &self.downloads);
        let begun = self
            .ending
            .begin_exit(now, code, out, tracker, library, downloads);
        let Some(leaving) = begun else {
            return;
        };
        let files = self.library.files().keys();
        self.uploader.farewell(&mut self.out, now, files);
        self.take_tracker_news(now);
        if let Leaving::Done(how) = leaving {
            let node_id = self.config.node_id;
            self.ending.finish_exit(&mut self.out, node_id, how);
        }
    }

    /// Stops serving the version of a file the node hashed, tells the tracker, and hashes
    /// the file again when there still is one.
    fn file_changed(&mut self, now: Instant, info_hash: Hash, change: Change) {
        let Some(name) = self.command(now, |commander| commander.stop_serving(info_hash)) else {
            return;
        };
        log::info!("{name} ({}) {change:?} on disk", wire::hex(&info_hash));
        let still_there = change != Change::Removed && self.state.stamp_of(&name).is_ok();
        let hash_again = still_there && !self.library.is_hashing(&name);
        self.out.say(change.told(&name, still_there, hash_again));
        if hash_again {
            // Described anew (a tree shared under a `.torrent` made elsewhere too: its
            // description no longer holds once its files changed).
            let _ = self.command(now, |commander| commander.share(now, name, None));
        }
    }

    // ---- the tracker ----------------------------------------------------------------------

    /// Acts on what the tracker said (see [`TrackerNews`]): taken after every call to the
    /// tracker client, so that it happens in the order the client met it.
    fn take_tracker_news(&mut self, now: Instant) {
        for news in self.tracker.take_news() {
            match news {
                TrackerNews::Say(line) => self.out.say(line),
                TrackerNews::SaveToken(token) => {
                    if let Err(error) = self.state.save_token(self.config.node_id, token) {
                        self.out
                            .say(format!("cannot save the node's identity: {error}"));
                    }
                }
                TrackerNews::AnnounceAll => {
                    let hashes: Vec<Hash> = self.library.files().keys().copied().collect();
                    for info_hash in hashes {
                        self.announce(now, info_hash);
                    }
                    self.tracker.resend_pending(now);
                }
                TrackerNews::Acknowledged {
                    info_hash,
                    chunks_held,
                } => {
                    if let Some(event) = self.library.acknowledged(now, info_hash, chunks_held) {
                        self.out.report(event);
                    }
                }
                TrackerNews::Holders {
                    name,
                    versions,
                    holders,
                } => {
                    let (downloads, mut parts) = self.context();
                    downloads.handle_lookup(&mut parts, now, &name, &versions, &holders);
                }
                TrackerNews::Peers { info_hash, peers } => {
                    if let Some(event) = self.library.announced_whole(info_hash) {
                        self.out.report(event);
                    }
                    let (downloads, mut parts) = self.context();
                    downloads.handle_peers(&mut parts, now, info_hash, &peers);
                }
                TrackerNews::Listed { request_id, page } => {
                    if let Some(text) = self.listings.answered(request_id, page) {
                        self.out.print(text);
                    }
                }
                TrackerNews::ExitAcknowledged => {
                    let node_id = self.config.node_id;
                    let how = "the tracker was told";
                    self.ending.finish_exit(&mut self.out, node_id, how);
                }
            }
        }
    }

    /// Tells the tracker how many chunks of `info_hash` we hold (now, or soon when the count
    /// is growing fast).
    fn announce(&mut self, now: Instant, info_hash: Hash) {
        if self.library.take_announce(info_hash) {
            self.update_tracker(now, info_hash);
        }
    }

    /// Tells the tracker what we hold of `info_hash` now, and whether we download it.
    fn update_tracker(&mut self, now: Instant, info_hash: Hash) {
        let (files, out) = (self.library.files(), &mut self.out);
        let downloading = self.downloads.running_of(info_hash).is_some();
        (self.tracker).update(now, out, files, info_hash, downloading);
        self.take_tracker_news(now);
    }

    /// The download of `name` asks for holders.
    fn want_holders(&mut self, now: Instant, name: &str) {
        let info_hashes = self.downloads.pinned_versions(name);
        self.tracker
            .want_holders(now, &mut self.out, self.library.files(), name, &info_hashes);
        self.take_tracker_news(now);
    }

    /// A failed download stops asking a standard tracker for peers; what it verified stays
    /// announced (it is served), and with nothing verified the info hash is no longer
    /// announced.
    fn forget_failed(&mut self, now: Instant) {
        let failed = self.downloads.failed_hashes();
        let failed: Vec<Hash> = failed.filter(|h| self.tracker.wants_peers(h)).collect();
        for info_hash in failed {
            self.update_tracker(now, info_hash);
        }
    }

    fn fill_windows(&mut self, now: Instant) {
        let (downloads, mut parts) = self.context();
        downloads.fill_windows(&mut parts, now);
    }

    /// The downloads, and the parts of the node around them (see `parts.rs`).
    fn context(&mut self) -> (&mut Downloads, Parts<'_>) {
        let parts = Parts::new(
            &mut self.out,
            &mut self.library,
            &self.state,
            &self.config,
            self.tracker.heard(),
            &mut self.download_limit,
        );
        (&mut self.downloads, parts)
    }
}

impl crate::Core for Node {
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        Node::handle_datagram(self, now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Node::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        Node::poll_transmit(self, now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Node::poll_timeout(self)
    }
}
