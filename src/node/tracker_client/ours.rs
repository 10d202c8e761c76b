//! The client of our own tracker: register and heartbeat, announce, look-up, credit, exit.
//! Every request is retried with backoff until the tracker answers; a tracker that forgot the
//! node (expiry, lost state) is answered by registering again and re-announcing every file. A
//! tracker that forgot only some of what the node holds (it lost its last save) is found out
//! at the next heartbeat: each reply carries the digest of what the tracker records the node
//! holding, and a digest that differs from the node's own (of what the tracker acknowledged)
//! makes the node announce every file again. A Register the tracker cannot accept yet is
//! answered with a cookie to echo (`Challenge`).
//!
//! It writes its datagrams into the node's [`Outbox`] as it goes (their order is the
//! node's), and leaves what concerns the rest of the node as [`TrackerNews`].

use super::TrackerNews;
use crate::node::advertise::{Listing, SelfAddresses};
use crate::node::listing::ListPage;
use crate::node::{LocalFile, Outbox};
use crate::wire::{self, Hash, Message, NodeAuth, RefusedReason, U32, U64};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// First retry of an unanswered request; doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
pub const RETRY_MAX: Duration = Duration::from_secs(8);
/// Unanswered attempts after which the user is told the tracker is not answering.
pub const SILENT_ATTEMPTS: u32 = 3;
/// How long verified chunks are gathered before they are reported to the tracker as credit
/// for their uploaders, in one datagram, unless a look-up carries them first. The tracker
/// ranks holders by credit, so it must not lag far: at 5 s, the simulated swarm with a
/// quarter of its downloaders 10x slower took 0.1-0.2 T* longer.
pub const CREDIT_INTERVAL: Duration = Duration::from_secs(2);
/// The window of issue 14's goal for datagrams to the tracker (at most 20 in any 10 s).
pub const TRACKER_WINDOW: Duration = Duration::from_secs(10);
/// Look-ups for new holders go only while fewer datagrams than this went to the tracker in
/// the last [`TRACKER_WINDOW`] (a guard: the budget below keeps them fewer).
pub const LOOKUP_WINDOW_SENDS_MAX: usize = 13;
/// The look-up budget: one per this on average, [`LOOKUP_BURST`] at once (see
/// [`OurTrackerClient::lookup_allowed_at`]).
pub const LOOKUP_SPACING: Duration = Duration::from_millis(750);
pub const LOOKUP_BURST: u32 = 8;
/// Send times remembered (more than any window holds at the goal).
pub const TRACKER_WINDOW_SENDS_MAX: usize = 64;
/// Most news waiting for the node: a datagram brings a handful at most, and the node takes
/// them after every call.
const NEWS_MAX: usize = 64;

/// A tracker request that is retried until answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TrackerAsk {
    Announce(Hash),
    Lookup(String),
    List(ListAsk),
    Exit,
}

impl TrackerAsk {
    /// Whether this asks for the page of list request `request_id`.
    fn is_list(&self, request_id: u32) -> bool {
        matches!(self, TrackerAsk::List(list) if list.request_id == request_id)
    }
}

/// A page of the tracker's list, asked for by `list` (see `wire/list.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::node) struct ListAsk {
    /// Echoed in the reply: which of the node's list requests it answers.
    pub(in crate::node) request_id: u32,
    /// The page starts after (`inclusive`: at) the entry (name, info hash); an empty name
    /// starts the list.
    pub(in crate::node) name: String,
    pub(in crate::node) info_hash: Hash,
    pub(in crate::node) inclusive: bool,
    /// 0: as many as fit.
    pub(in crate::node) entries_max: u8,
}

struct PendingAsk {
    ask: TrackerAsk,
    next_send: Instant,
    retry: Duration,
}

/// What the node knows of our tracker, and the requests waiting for its answer. See the
/// module documentation.
pub(in crate::node) struct OurTrackerClient {
    addr: SocketAddr,
    node_id: u32,
    token: u64,
    heartbeat_interval: Duration,
    registered: bool,
    /// When the next Register (first registration, retry or heartbeat) is due.
    register_due: Instant,
    register_retry: Duration,
    /// Registers sent since the last answer.
    unanswered: u32,
    told_user_silent: bool,
    pending: Vec<PendingAsk>,
    /// The tracker's last `Challenge` cookie, echoed in every Register (zero: none yet).
    cookie: u64,
    /// Registers refused since the last answer because the tracker holds our id for another
    /// token (the user is told at the second).
    id_refusals: u32,
    /// The oldest request sent since the tracker last answered, if one waits: how long the
    /// tracker has been silent, which a download that cannot find holders tells the user.
    waiting_since: Option<Instant>,
    /// Verified chunks not yet reported to the tracker: (uploader, file) → (chunks, bytes),
    /// at most [`wire::CREDIT_RECORDS_MAX`] pairs (one [`wire::Credit`]'s worth).
    credits: BTreeMap<(u32, Hash), (u32, u64)>,
    /// When the credits gathered so far are reported ([`CREDIT_INTERVAL`] after the first).
    credit_due: Option<Instant>,
    /// When each datagram of the last [`TRACKER_WINDOW`] went to the tracker, oldest first
    /// (at most [`TRACKER_WINDOW_SENDS_MAX`] kept): look-ups for new holders go only while
    /// few went (see [`OurTrackerClient::lookup_allowed_at`]).
    sent_at: VecDeque<Instant>,
    /// The look-up budget as a GCRA (a token bucket kept as one time): the moment the
    /// bucket would be empty if no look-up went meanwhile.
    lookup_full_at: Option<Instant>,
    /// Where peers may find us, and the addresses a peer list may name us by.
    me: SelfAddresses,
    /// How the tracker lists us, and the cookie for the advertised address.
    listing: Listing,
    news: VecDeque<TrackerNews>,
}

impl OurTrackerClient {
    pub(super) fn new(
        addr: SocketAddr,
        node_id: u32,
        token: u64,
        me: SelfAddresses,
        heartbeat_interval: Duration,
        now: Instant,
    ) -> OurTrackerClient {
        OurTrackerClient {
            addr,
            node_id,
            token,
            heartbeat_interval,
            registered: false,
            register_due: now,
            register_retry: RETRY_FIRST,
            unanswered: 0,
            told_user_silent: false,
            pending: Vec::new(),
            cookie: 0,
            id_refusals: 0,
            credits: BTreeMap::new(),
            credit_due: None,
            sent_at: VecDeque::new(),
            lookup_full_at: None,
            waiting_since: None,
            me,
            listing: Listing::default(),
            news: VecDeque::new(),
        }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(super) fn registered(&self) -> bool {
        self.registered
    }

    pub(super) fn waiting_since(&self) -> Option<Instant> {
        self.waiting_since
    }

    pub(super) fn me(&self) -> &SelfAddresses {
        &self.me
    }

    pub(super) fn listing(&self) -> &Listing {
        &self.listing
    }

    pub(super) fn poll_news(&mut self) -> Option<TrackerNews> {
        self.news.pop_front()
    }

    fn tell(&mut self, news: TrackerNews) {
        debug_assert!(
            self.news.len() < NEWS_MAX,
            "the node takes news after every call"
        );
        if self.news.len() < NEWS_MAX {
            self.news.push_back(news);
        }
    }

    fn say(&mut self, line: String) {
        self.tell(TrackerNews::Say(line));
    }

    fn auth(&self) -> NodeAuth {
        NodeAuth {
            node_id: U32::new(self.node_id),
            token: U64::new(self.token),
        }
    }

    /// A request went to the tracker.
    fn asked(&mut self, now: Instant) {
        self.waiting_since.get_or_insert(now);
    }

    /// A datagram went to the tracker at `now`.
    fn sent(&mut self, now: Instant) {
        while self
            .sent_at
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= TRACKER_WINDOW)
        {
            self.sent_at.pop_front();
        }
        if self.sent_at.len() >= TRACKER_WINDOW_SENDS_MAX {
            self.sent_at.pop_front();
        }
        self.sent_at.push_back(now);
    }

    /// When a look-up for new holders may go. Look-ups are the one request a node could
    /// send at will (a swarm changes all the time), so they have a budget: one per
    /// [`LOOKUP_SPACING`] on average, [`LOOKUP_BURST`] at once, and none while
    /// [`LOOKUP_WINDOW_SENDS_MAX`] datagrams of any kind went to the tracker in the last
    /// [`TRACKER_WINDOW`] (then when the oldest of them leaves it). Heartbeats, announces,
    /// credit and exits are never held back; at most the node's announce interval and
    /// [`CREDIT_INTERVAL`] apart, they take the rest of issue 14's 20 in any 10 s (a busy
    /// downloader of the simulation's swarm sends 11 to 13 in its busiest window,
    /// `tests/sim_tracker_traffic.rs`). Credit that is due goes inside a look-up when the
    /// budget alone allows one ([`OurTrackerClient::lookup_budget_allows`]): the datagram
    /// goes anyway, and a look-up also brings news of holders.
    pub(super) fn lookup_allowed_at(&self, now: Instant) -> Instant {
        let by_budget = self
            .lookup_full_at
            .and_then(|t| t.checked_sub(LOOKUP_SPACING * (LOOKUP_BURST - 1)))
            .unwrap_or(now)
            .max(now);
        let recent: Vec<Instant> = self
            .sent_at
            .iter()
            .copied()
            .filter(|&t| now.saturating_duration_since(t) < TRACKER_WINDOW)
            .collect();
        let by_window = if recent.len() < LOOKUP_WINDOW_SENDS_MAX {
            now
        } else {
            recent[recent.len() - LOOKUP_WINDOW_SENDS_MAX] + TRACKER_WINDOW
        };
        by_budget.max(by_window)
    }

    /// Whether the look-up budget alone (not the window of recent datagrams) lets a look-up
    /// go now: for a look-up that replaces a datagram going anyway (credit that is due), so
    /// that it adds nothing to the window.
    pub(super) fn lookup_budget_allows(&self, now: Instant) -> bool {
        self.lookup_full_at
            .and_then(|t| t.checked_sub(LOOKUP_SPACING * (LOOKUP_BURST - 1)))
            .is_none_or(|t| t <= now)
    }

    /// A look-up for new holders went at `now` (see [`OurTrackerClient::lookup_allowed_at`]).
    pub(super) fn lookup_spent(&mut self, now: Instant) {
        self.lookup_full_at =
            Some(self.lookup_full_at.map_or(now, |t| t.max(now)) + LOOKUP_SPACING);
    }

    /// Whether gathered credit is due to be reported at `now`.
    pub(super) fn credit_due(&self, now: Instant) -> bool {
        self.credit_due.is_some_and(|t| t <= now)
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A datagram from the tracker's address, decoded.
    pub(super) fn handle_message<'a>(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        message: Message<'a>,
    ) -> Result<(), Message<'a>> {
        self.waiting_since = None;
        match message {
            Message::Registered(registered) => {
                let token = registered.auth.token.get();
                let token_changed = token != self.token;
                if token_changed {
                    self.token = token;
                    self.tell(TrackerNews::SaveToken(token));
                }
                let first = !self.registered;
                if first || self.told_user_silent || self.id_refusals > 1 {
                    self.say(format!(
                        "registered with tracker {} as node {}",
                        self.addr, self.node_id
                    ));
                }
                self.registered = true;
                self.unanswered = 0;
                self.told_user_silent = false;
                self.id_refusals = 0;
                self.register_retry = RETRY_FIRST;
                self.register_due = now + self.heartbeat_interval;
                let (again, line) =
                    self.listing
                        .handle_listed(&mut self.me, registered.listed(), first);
                if let Some(line) = line {
                    self.say(line);
                }
                if again {
                    self.register_due = now;
                }
                let announcing = self
                    .pending
                    .iter()
                    .any(|p| matches!(p.ask, TrackerAsk::Announce(_)));
                // While an announce is in flight the digests may differ for a moment: the
                // next heartbeat compares again.
                let differs =
                    !announcing && registered.holdings_digest.get() != acknowledged_digest(files);
                if differs {
                    log::info!(
                        "the tracker's record of our files differs from what it acknowledged (it lost a save?): announcing them again"
                    );
                }
                if first || token_changed || differs {
                    // The tracker may not know what we hold (first contact, it forgot us after
                    // an expiry or lost its state, or it lost a save): the node announces
                    // everything, then every request waiting goes again at once.
                    self.tell(TrackerNews::AnnounceAll);
                }
            }
            Message::Announced(announced) => {
                let info_hash = announced.info_hash;
                self.pending
                    .retain(|p| p.ask != TrackerAsk::Announce(info_hash));
                self.tell(TrackerNews::Acknowledged {
                    info_hash,
                    chunks_held: announced.chunks_held.get(),
                });
            }
            Message::LookupReply {
                versions,
                holders,
                name,
            } => {
                self.pending
                    .retain(|p| p.ask != TrackerAsk::Lookup(name.to_string()));
                // Our tracker leaves us out by id; an id we had before a restart may still be
                // listed at our address until it expires.
                let holders: Vec<wire::HolderRecord> = holders
                    .iter()
                    .filter(|h| !self.me.contains(wire::socket_addr(h.ip, h.port.get())))
                    .copied()
                    .collect();
                self.tell(TrackerNews::Holders {
                    name: name.to_string(),
                    versions: versions.to_vec(),
                    holders,
                });
            }
            Message::ListReply {
                fixed,
                records,
                names,
            } => {
                let request_id = fixed.request_id.get();
                if !self.pending.iter().any(|p| p.ask.is_list(request_id)) {
                    // The answer to a retry already answered, or to a request given up.
                    return Ok(());
                }
                self.pending.retain(|p| !p.ask.is_list(request_id));
                let page = ListPage::from_reply(fixed, records, names);
                self.tell(TrackerNews::Listed { request_id, page });
            }
            Message::Challenge(challenge) => {
                // The tracker asks us to prove an address (where we send from, or the one we
                // advertise): register again at once, echoing its cookie.
                if let Some(cookie) = self.listing.take_challenge(&self.me, challenge) {
                    self.cookie = cookie;
                }
                self.unanswered = 0;
                self.send_register(now, out, files);
            }
            Message::ExitAck(_) => {
                self.pending.retain(|p| p.ask != TrackerAsk::Exit);
                self.tell(TrackerNews::ExitAcknowledged);
            }
            Message::Refused(refused) => match refused.reason {
                RefusedReason::UnknownNode => {
                    // The tracker forgot us (expiry, or it lost its state): register again at
                    // once; on success every file is announced again.
                    self.registered = false;
                    self.register_due = now;
                }
                RefusedReason::BadToken => {
                    // Another process uses this id, or this node lost its identity (its
                    // `.torrent` directory) while the tracker still remembers it. Either way
                    // the tracker forgets the id once no one heartbeats it: keep asking. The
                    // first time, at once: a tracker restored from a stale save gives a fresh
                    // token to the address it recorded once that proves itself.
                    self.id_refusals = self.id_refusals.saturating_add(1);
                    if self.id_refusals == 2 {
                        self.say(format!(
                            "the tracker still holds node id {} for another token (another process with this --id, or this node's identity was lost); it forgets the id after its expiry ({} s by default) without heartbeats; retrying every {} s",
                            self.node_id,
                            crate::tracker::TrackerConfig::default().expiry.as_secs(),
                            RETRY_MAX.as_secs()
                        ));
                    }
                    self.registered = false;
                    self.register_due = if self.id_refusals == 1 {
                        now
                    } else {
                        now + RETRY_MAX
                    };
                }
                reason @ (RefusedReason::Full | RefusedReason::Conflict) => log::warn!(
                    "tracker refused a {:#04x}: {reason:?}",
                    refused.request_kind
                ),
            },
            other => return Err(other),
        }
        Ok(())
    }

    /// Registers when due (unless `leaving`), and sends again every request whose retry is
    /// due.
    pub(super) fn handle_timeout(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        leaving: bool,
    ) {
        if now >= self.register_due && !leaving {
            self.send_register(now, out, files);
        }
        if self.registered {
            let due: Vec<TrackerAsk> = self
                .pending
                .iter()
                .filter(|p| p.next_send <= now)
                .map(|p| p.ask.clone())
                .collect();
            for ask in due {
                self.send_ask(now, out, files, &ask);
            }
        }
    }

    /// When [`OurTrackerClient::handle_timeout`] has work (a registration unless `leaving`,
    /// a retry), or credit is due.
    pub(super) fn poll_timeout(&self, leaving: bool) -> Option<Instant> {
        let register = (!leaving).then_some(self.register_due);
        let retry = if self.registered {
            self.pending.iter().map(|p| p.next_send).min()
        } else {
            None
        };
        [register, retry, self.credit_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Every request waiting goes again at the next timeout (after the node announced
    /// everything anew).
    pub(super) fn resend_pending(&mut self, now: Instant) {
        for pending in &mut self.pending {
            pending.next_send = now;
        }
    }

    /// Leaving: report the credit gathered, and tell the tracker. Returns whether an
    /// acknowledgement is worth waiting for (not when we never registered).
    pub(super) fn exit(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
    ) -> bool {
        if !self.registered {
            return false;
        }
        self.pending.clear();
        self.send_credits(now, out);
        self.ask(now, out, files, TrackerAsk::Exit);
        true
    }

    fn send_register(&mut self, now: Instant, out: &mut Outbox, files: &BTreeMap<Hash, LocalFile>) {
        let (advertise_ip, advertise_port, advertise_cookie) =
            self.listing.register_fields(&self.me);
        let register = wire::Register {
            auth: self.auth(),
            cookie: U64::new(self.cookie),
            holdings_digest: U64::new(acknowledged_digest(files)),
            advertise_ip,
            advertise_port: wire::U16::new(advertise_port),
            reserved: [0; 2],
            advertise_cookie: U64::new(advertise_cookie),
        };
        out.send(self.addr, &Message::Register(&register));
        self.asked(now);
        self.sent(now);
        self.unanswered += 1;
        if self.unanswered > SILENT_ATTEMPTS && !self.told_user_silent {
            self.told_user_silent = true;
            let line = format!(
                "tracker {} is not answering; retrying with backoff",
                self.addr
            );
            self.say(line);
        }
        if self.unanswered > 1 {
            // A heartbeat went unanswered: retry soon, backing off.
            self.register_due = now + self.register_retry;
            self.register_retry = (self.register_retry * 2).min(RETRY_MAX);
        } else {
            self.register_due = now + RETRY_FIRST.min(self.heartbeat_interval);
        }
    }

    /// Tells the tracker what we hold of `info_hash` (read from `files` when the announce
    /// goes, and again at every retry), until it acknowledges.
    pub(super) fn announce(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        info_hash: Hash,
    ) {
        self.ask(now, out, files, TrackerAsk::Announce(info_hash));
    }

    /// Asks the tracker for the holders of `name`, until it answers.
    pub(super) fn lookup(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        name: &str,
    ) {
        self.ask(now, out, files, TrackerAsk::Lookup(name.to_string()));
    }

    /// Asks the tracker for a page of its list, until it answers or the node gives up
    /// ([`OurTrackerClient::forget_list`]).
    pub(super) fn list(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        ask: ListAsk,
    ) {
        self.ask(now, out, files, TrackerAsk::List(ask));
    }

    /// Stops asking for the page of list request `request_id` (the node gave up on it).
    pub(super) fn forget_list(&mut self, request_id: u32) {
        self.pending.retain(|p| !p.ask.is_list(request_id));
    }

    /// Sends `ask` now (when registered) and keeps it until the tracker answers.
    fn ask(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        ask: TrackerAsk,
    ) {
        self.pending.retain(|p| p.ask != ask);
        self.pending.push(PendingAsk {
            ask: ask.clone(),
            next_send: now,
            retry: RETRY_FIRST,
        });
        if self.registered {
            self.send_ask(now, out, files, &ask);
        }
    }

    fn send_ask(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        ask: &TrackerAsk,
    ) {
        let auth = self.auth();
        match ask {
            TrackerAsk::Announce(info_hash) => {
                let Some(file) = files.get(info_hash) else {
                    self.pending.retain(|p| p.ask != *ask);
                    return;
                };
                let m = &file.manifest;
                let announce = wire::Announce {
                    auth,
                    info_hash: *info_hash,
                    file_bytes: U64::new(m.file_bytes),
                    chunk_bytes: U32::new(m.chunk_bytes),
                    chunks_held: U32::new(file.have.count()),
                };
                out.send(
                    self.addr,
                    &Message::Announce {
                        fixed: &announce,
                        name: &m.name,
                    },
                );
            }
            TrackerAsk::Lookup(name) => {
                // The credit gathered so far rides along (what does not fit waits).
                let credits = self.take_credits(wire::LOOKUP_CREDITS_MAX);
                let lookup = wire::Lookup {
                    auth,
                    // Fits: at most LOOKUP_CREDITS_MAX.
                    credit_count: wire::U16::new(credits.len() as u16),
                    reserved: [0; 2],
                };
                out.send(
                    self.addr,
                    &Message::Lookup {
                        fixed: &lookup,
                        credits: &credits,
                        name,
                    },
                );
            }
            TrackerAsk::List(list) => {
                let request = wire::ListRequest {
                    auth,
                    request_id: U32::new(list.request_id),
                    info_hash: list.info_hash,
                    inclusive: u8::from(list.inclusive),
                    entries_max: list.entries_max,
                    reserved: [0; 2],
                };
                out.send(
                    self.addr,
                    &Message::ListRequest {
                        fixed: &request,
                        name: &list.name,
                    },
                );
            }
            TrackerAsk::Exit => out.send(self.addr, &Message::Exit(&wire::Exit { auth })),
        }
        self.asked(now);
        self.sent(now);
        if let Some(pending) = self.pending.iter_mut().find(|p| p.ask == *ask) {
            pending.next_send = now + pending.retry;
            pending.retry = (pending.retry * 2).min(RETRY_MAX);
        }
    }

    /// Counts a verified chunk of `bytes` that `from_node` uploaded to us. The tracker is
    /// told [`CREDIT_INTERVAL`] after the first chunk not yet reported, of everything
    /// gathered by then, in one datagram (at once when a report is full): one datagram per
    /// chunk was 5 to 10 a second while a download ran (issue 14).
    pub(super) fn credit(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        from_node: u32,
        info_hash: Hash,
        bytes: u64,
    ) {
        if !self.registered || from_node == self.node_id {
            return;
        }
        let key = (from_node, info_hash);
        if !self.credits.contains_key(&key) && self.credits.len() >= wire::CREDIT_RECORDS_MAX {
            self.send_credits(now, out);
        }
        let (chunks, total_bytes) = self.credits.entry(key).or_insert((0, 0));
        *chunks = chunks.saturating_add(1);
        *total_bytes = total_bytes.saturating_add(bytes);
        self.credit_due.get_or_insert(now + CREDIT_INTERVAL);
        debug_assert!(self.credits.len() <= wire::CREDIT_RECORDS_MAX);
    }

    /// Takes up to `max` of the credits gathered, as records to report; when none are left,
    /// no report is due.
    fn take_credits(&mut self, max: usize) -> Vec<wire::CreditRecord> {
        let mut records = Vec::new();
        while records.len() < max {
            let Some(((from_node, info_hash), (chunks, bytes))) = self.credits.pop_first() else {
                break;
            };
            records.push(wire::CreditRecord {
                from_node: U32::new(from_node),
                chunks: U32::new(chunks),
                bytes: U64::new(bytes),
                info_hash,
            });
        }
        if self.credits.is_empty() {
            self.credit_due = None;
        }
        records
    }

    /// Reports the credits gathered so far, if any (when the tracker is unreachable they are
    /// lost, as a lost datagram's would be: credit only ranks holders).
    pub(super) fn send_credits(&mut self, now: Instant, out: &mut Outbox) {
        let records = self.take_credits(wire::CREDIT_RECORDS_MAX);
        if records.is_empty() || !self.registered {
            return;
        }
        let fixed = wire::Credit {
            auth: self.auth(),
            // Fits: at most CREDIT_RECORDS_MAX records.
            record_count: wire::U16::new(records.len() as u16),
            reserved: [0; 2],
        };
        out.send(
            self.addr,
            &Message::Credit {
                fixed: &fixed,
                records: &records,
            },
        );
        self.sent(now);
    }
}

/// The digest of what the tracker acknowledged we hold ([`wire::holdings_digest`]), as the
/// tracker records it: files it answered with a chunk count (zero chunks of a file that has
/// some means it recorded a withdrawal).
fn acknowledged_digest(files: &BTreeMap<Hash, LocalFile>) -> u64 {
    wire::holdings_digest(files.iter().filter_map(|(hash, file)| {
        let chunks = file.acknowledged_chunks?;
        (chunks > 0 || file.manifest.chunk_count() == 0).then_some((hash, chunks))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(now: Instant) -> OurTrackerClient {
        let addr = SocketAddr::from(([10, 0, 0, 1], 1));
        let me = SelfAddresses::from(SocketAddr::from(([10, 0, 0, 2], 2)));
        OurTrackerClient::new(addr, 1, 0, me, Duration::from_secs(20), now)
    }

    /// Look-ups come in bursts of LOOKUP_BURST, then one per LOOKUP_SPACING.
    #[test]
    fn lookup_budget_allows_bursts_then_spaces_them() {
        let t0 = Instant::now();
        let mut link = client(t0);
        for _ in 0..LOOKUP_BURST {
            assert_eq!(link.lookup_allowed_at(t0), t0);
            link.lookup_spent(t0);
            link.sent(t0);
        }
        assert_eq!(link.lookup_allowed_at(t0), t0 + LOOKUP_SPACING);
        assert!(!link.lookup_budget_allows(t0));
        assert!(link.lookup_budget_allows(t0 + LOOKUP_SPACING));
        let t1 = t0 + LOOKUP_SPACING;
        link.lookup_spent(t1);
        link.sent(t1);
        assert_eq!(link.lookup_allowed_at(t1), t1 + LOOKUP_SPACING);
        // Idle long enough, the whole burst is back.
        let t2 = t1 + LOOKUP_SPACING * LOOKUP_BURST;
        assert_eq!(link.lookup_allowed_at(t2), t2);
    }

    /// Whatever the budget, no look-up goes while LOOKUP_WINDOW_SENDS_MAX datagrams went to
    /// the tracker in the last TRACKER_WINDOW; it may go when the oldest leaves the window.
    #[test]
    fn lookups_wait_while_the_window_is_full() {
        let t0 = Instant::now();
        let mut link = client(t0);
        let step = Duration::from_millis(100);
        for i in 0..LOOKUP_WINDOW_SENDS_MAX as u32 {
            link.sent(t0 + step * i);
        }
        let now = t0 + step * LOOKUP_WINDOW_SENDS_MAX as u32;
        assert_eq!(link.lookup_allowed_at(now), t0 + TRACKER_WINDOW);
        // A look-up that replaces a datagram going anyway (credit) is held by the budget
        // alone, which no look-up spent.
        assert!(link.lookup_budget_allows(now));
        assert_eq!(
            link.lookup_allowed_at(t0 + TRACKER_WINDOW),
            t0 + TRACKER_WINDOW
        );
        // The record stays bounded whatever is sent.
        for i in 0..(3 * TRACKER_WINDOW_SENDS_MAX) as u32 {
            link.sent(now + Duration::from_micros(u64::from(i)));
        }
        assert!(link.sent_at.len() <= TRACKER_WINDOW_SENDS_MAX);
    }
}
