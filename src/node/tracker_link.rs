//! The node's side of the tracker protocol: register and heartbeat, announce, look-up,
//! credit, exit. Every request is retried with backoff until the tracker answers; a tracker
//! that forgot the node (expiry, lost state) is answered by registering again and
//! re-announcing every file. A tracker that forgot only some of what the node holds (it lost
//! its last save) is found out at the next heartbeat: each reply carries the digest of what
//! the tracker records the node holding, and a digest that differs from the node's own
//! (of what the tracker acknowledged) makes the node announce every file again. A Register
//! the tracker cannot accept yet is answered with a cookie to echo (`Challenge`). With a
//! standard tracker (`--tracker udp://`), requests go to `bep15_client` instead.

use super::*;

/// A tracker request that is retried until answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TrackerAsk {
    Announce(Hash),
    Lookup(String),
    Exit,
}

pub(super) struct PendingAsk {
    pub(super) ask: TrackerAsk,
    pub(super) next_send: Instant,
    pub(super) retry: Duration,
}

/// What the node knows of its tracker.
pub(super) struct TrackerLink {
    pub(super) addr: SocketAddr,
    pub(super) token: u64,
    pub(super) registered: bool,
    /// When the next Register (first registration, retry or heartbeat) is due.
    pub(super) register_due: Instant,
    pub(super) register_retry: Duration,
    /// Registers sent since the last answer.
    pub(super) unanswered: u32,
    pub(super) told_user_silent: bool,
    pub(super) pending: Vec<PendingAsk>,
    /// The tracker's last `Challenge` cookie, echoed in every Register (zero: none yet).
    pub(super) cookie: u64,
    /// Registers refused since the last answer because the tracker holds our id for another
    /// token (the user is told at the second).
    pub(super) id_refusals: u32,
    /// The oldest request sent since the tracker last answered, if one waits: how long the
    /// tracker has been silent, which a download that cannot find holders tells the user.
    pub(super) waiting_since: Option<Instant>,
    /// Verified chunks not yet reported to the tracker: (uploader, file) → (chunks, bytes),
    /// at most [`wire::CREDIT_RECORDS_MAX`] pairs (one [`wire::Credit`]'s worth).
    pub(super) credits: BTreeMap<(u32, Hash), (u32, u64)>,
    /// When the credits gathered so far are reported ([`CREDIT_INTERVAL`] after the first).
    pub(super) credit_due: Option<Instant>,
    /// When each datagram of the last [`TRACKER_WINDOW`] went to the tracker, oldest first
    /// (at most [`TRACKER_WINDOW_SENDS_MAX`] kept): look-ups for new holders go only while
    /// few went (see [`TrackerLink::lookup_allowed_at`]).
    sent_at: VecDeque<Instant>,
    /// The look-up budget as a GCRA (a token bucket kept as one time): the moment the
    /// bucket would be empty if no look-up went meanwhile.
    lookup_full_at: Option<Instant>,
}

impl TrackerLink {
    /// A request went to the tracker.
    pub(super) fn asked(&mut self, now: Instant) {
        self.waiting_since.get_or_insert(now);
    }

    /// A datagram from the tracker was taken: it answers.
    pub(super) fn answered(&mut self) {
        self.waiting_since = None;
    }

    pub(super) fn new(addr: SocketAddr, token: u64, now: Instant) -> TrackerLink {
        TrackerLink {
            addr,
            token,
            registered: false,
            register_due: now,
            register_retry: TRACKER_RETRY_FIRST,
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
        }
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
    /// credit and exits are never held back; at most [`ANNOUNCE_INTERVAL`] and
    /// [`CREDIT_INTERVAL`] apart, they take the rest of issue 14's 20 in any 10 s (a busy
    /// downloader of the simulation's swarm sends 11 to 13 in its busiest window,
    /// `tests/sim_tracker_traffic.rs`). Credit that is due goes inside a look-up when the
    /// budget alone allows one ([`TrackerLink::lookup_budget_allows`]): the datagram goes
    /// anyway, and a look-up also brings news of holders.
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

    /// A look-up for new holders went at `now` (see [`TrackerLink::lookup_allowed_at`]).
    pub(super) fn lookup_spent(&mut self, now: Instant) {
        self.lookup_full_at =
            Some(self.lookup_full_at.map_or(now, |t| t.max(now)) + LOOKUP_SPACING);
    }
}

impl Node {
    pub(super) fn handle_tracker_message(&mut self, now: Instant, message: Message<'_>) {
        self.tracker.answered();
        match message {
            Message::Registered(registered) => {
                let token = registered.auth.token.get();
                let token_changed = token != self.tracker.token;
                if token_changed {
                    self.tracker.token = token;
                    if let Err(error) = self.state.save_token(self.config.node_id, token) {
                        self.out
                            .say(format!("cannot save the node's identity: {error}"));
                    }
                }
                let first = !self.tracker.registered;
                if first || self.tracker.told_user_silent || self.tracker.id_refusals > 1 {
                    self.out.say(format!(
                        "registered with tracker {} as node {}",
                        self.tracker.addr, self.config.node_id
                    ));
                }
                self.tracker.registered = true;
                self.tracker.unanswered = 0;
                self.tracker.told_user_silent = false;
                self.tracker.id_refusals = 0;
                self.tracker.register_retry = TRACKER_RETRY_FIRST;
                self.tracker.register_due = now + self.config.heartbeat_interval;
                if self.handle_listed(registered.listed(), first) {
                    self.tracker.register_due = now;
                }
                let announcing = self
                    .tracker
                    .pending
                    .iter()
                    .any(|p| matches!(p.ask, TrackerAsk::Announce(_)));
                // While an announce is in flight the digests may differ for a moment: the
                // next heartbeat compares again.
                let differs =
                    !announcing && registered.holdings_digest.get() != self.acknowledged_digest();
                if differs {
                    log::info!(
                        "the tracker's record of our files differs from what it acknowledged (it lost a save?): announcing them again"
                    );
                }
                if first || token_changed || differs {
                    // The tracker may not know what we hold (first contact, it forgot us after
                    // an expiry or lost its state, or it lost a save): tell it everything.
                    let hashes: Vec<Hash> = self.files.keys().copied().collect();
                    for info_hash in hashes {
                        self.announce(now, info_hash);
                    }
                    for pending in &mut self.tracker.pending {
                        pending.next_send = now;
                    }
                }
            }
            Message::Announced(announced) => {
                let info_hash = announced.info_hash;
                self.tracker
                    .pending
                    .retain(|p| p.ask != TrackerAsk::Announce(info_hash));
                if self
                    .files
                    .get(&info_hash)
                    .is_some_and(|f| f.have.count() == 0 && !f.complete())
                {
                    // The tracker recorded a withdrawal: forget the file.
                    self.files.remove(&info_hash);
                } else if let Some(file) = self.files.get_mut(&info_hash) {
                    let first_complete =
                        file.complete() && file.acknowledged_chunks != Some(file.have.count());
                    file.acknowledged_chunks = Some(announced.chunks_held.get());
                    if file.acknowledged_chunks != Some(file.have.count()) {
                        file.announce_due = Some(now);
                    } else if first_complete {
                        self.out.say(sharing_line(&file.manifest));
                    }
                }
            }
            Message::LookupReply {
                versions,
                holders,
                name,
            } => {
                self.tracker
                    .pending
                    .retain(|p| p.ask != TrackerAsk::Lookup(name.to_string()));
                let own = self.config.node_id;
                // Our tracker leaves us out by id; an id we had before a restart may still be
                // listed at our address until it expires.
                let holders: Vec<wire::HolderRecord> = holders
                    .iter()
                    .filter(|h| !self.me.contains(wire::socket_addr(h.ip, h.port.get())))
                    .copied()
                    .collect();
                let mut ctx = self.context();
                for download in ctx.downloads.iter_mut().filter(|d| d.name() == name) {
                    download.handle_lookup(&mut ctx.parts, now, own, versions, &holders);
                }
            }
            Message::Challenge(challenge) => {
                // The tracker asks us to prove an address (where we send from, or the one we
                // advertise): register again at once, echoing its cookie.
                self.take_challenge(challenge);
                self.tracker.unanswered = 0;
                self.send_register(now);
            }
            Message::ExitAck(_) => {
                self.tracker.pending.retain(|p| p.ask != TrackerAsk::Exit);
                self.finish_exit("the tracker was told");
            }
            Message::Refused(refused) => match RefusedReason::from_repr(refused.reason.get()) {
                Some(RefusedReason::UnknownNode) => {
                    // The tracker forgot us (expiry, or it lost its state): register again at
                    // once; on success every file is announced again.
                    self.tracker.registered = false;
                    self.tracker.register_due = now;
                }
                Some(RefusedReason::BadToken) => {
                    // Another process uses this id, or this node lost its identity (its
                    // `.torrent` directory) while the tracker still remembers it. Either way
                    // the tracker forgets the id once no one heartbeats it: keep asking. The
                    // first time, at once: a tracker restored from a stale save gives a fresh
                    // token to the address it recorded once that proves itself.
                    self.tracker.id_refusals = self.tracker.id_refusals.saturating_add(1);
                    if self.tracker.id_refusals == 2 {
                        self.out.say(format!(
                            "the tracker still holds node id {} for another token (another process with this --id, or this node's identity was lost); it forgets the id after its expiry ({} s by default) without heartbeats; retrying every {} s",
                            self.config.node_id,
                            crate::tracker::TrackerConfig::default().expiry.as_secs(),
                            TRACKER_RETRY_MAX.as_secs()
                        ));
                    }
                    self.tracker.registered = false;
                    self.tracker.register_due = if self.tracker.id_refusals == 1 {
                        now
                    } else {
                        now + TRACKER_RETRY_MAX
                    };
                }
                Some(reason) => log::warn!(
                    "tracker refused a {:#04x}: {reason:?}",
                    refused.request_kind
                ),
                None => {}
            },
            _ => {
                self.out.stats.dropped_unexpected += 1;
                log::debug!(
                    "dropped {:?} from the tracker: not a tracker reply",
                    message.kind()
                );
            }
        }
    }

    /// What downloads are told of the tracker: see [`download::TrackerHeard`]. A standard
    /// tracker has no registration: requests go to it at once.
    pub(super) fn tracker_heard(&self) -> download::TrackerHeard {
        download::TrackerHeard {
            addr: self.tracker.addr,
            registered: self.tracker.registered || self.standard.is_some(),
            waiting_since: self.tracker.waiting_since,
        }
    }

    /// The digest of what the tracker acknowledged we hold ([`wire::holdings_digest`]), as
    /// the tracker records it: files it answered with a chunk count (zero chunks of a file
    /// that has some means it recorded a withdrawal).
    pub(super) fn acknowledged_digest(&self) -> u64 {
        wire::holdings_digest(self.files.iter().filter_map(|(hash, file)| {
            let chunks = file.acknowledged_chunks?;
            (chunks > 0 || file.manifest.chunk_count() == 0).then_some((hash, chunks))
        }))
    }

    pub(super) fn send_register(&mut self, now: Instant) {
        let (advertise_ip, advertise_port, advertise_cookie) = self.register_advertise();
        let register = wire::Register {
            auth: self.auth(),
            cookie: U64::new(self.tracker.cookie),
            holdings_digest: U64::new(self.acknowledged_digest()),
            advertise_ip,
            advertise_port: wire::U16::new(advertise_port),
            reserved: [0; 2],
            advertise_cookie: U64::new(advertise_cookie),
        };
        self.out
            .send(self.tracker.addr, &Message::Register(&register));
        self.tracker.asked(now);
        self.tracker.sent(now);
        self.tracker.unanswered += 1;
        if self.tracker.unanswered > TRACKER_SILENT_ATTEMPTS && !self.tracker.told_user_silent {
            self.tracker.told_user_silent = true;
            self.out.say(format!(
                "tracker {} is not answering; retrying with backoff",
                self.tracker.addr
            ));
        }
        if self.tracker.unanswered > 1 {
            // A heartbeat went unanswered: retry soon, backing off.
            self.tracker.register_due = now + self.tracker.register_retry;
            self.tracker.register_retry = (self.tracker.register_retry * 2).min(TRACKER_RETRY_MAX);
        } else {
            self.tracker.register_due =
                now + TRACKER_RETRY_FIRST.min(self.config.heartbeat_interval);
        }
    }

    /// Sends `ask` now (when registered) and keeps it until the tracker answers. With a
    /// standard tracker, an announce updates what it is told, a look-up asks it for peers,
    /// and there is no exit message (see `bep15_client`).
    pub(super) fn ask_tracker(&mut self, now: Instant, ask: TrackerAsk) {
        if self.standard.is_some() {
            match ask {
                TrackerAsk::Announce(info_hash) => self.standard_update(now, info_hash),
                TrackerAsk::Lookup(name) => self.standard_want_peers(now, &name),
                TrackerAsk::Exit => {}
            }
            return;
        }
        self.tracker.pending.retain(|p| p.ask != ask);
        self.tracker.pending.push(PendingAsk {
            ask: ask.clone(),
            next_send: now,
            retry: TRACKER_RETRY_FIRST,
        });
        if self.tracker.registered {
            self.send_ask(now, &ask);
        }
    }

    pub(super) fn send_ask(&mut self, now: Instant, ask: &TrackerAsk) {
        let auth = self.auth();
        match ask {
            TrackerAsk::Announce(info_hash) => {
                let Some(file) = self.files.get(info_hash) else {
                    self.tracker.pending.retain(|p| p.ask != *ask);
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
                self.out.send(
                    self.tracker.addr,
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
                self.out.send(
                    self.tracker.addr,
                    &Message::Lookup {
                        fixed: &lookup,
                        credits: &credits,
                        name,
                    },
                );
            }
            TrackerAsk::Exit => self
                .out
                .send(self.tracker.addr, &Message::Exit(&wire::Exit { auth })),
        }
        self.tracker.asked(now);
        self.tracker.sent(now);
        if let Some(pending) = self.tracker.pending.iter_mut().find(|p| p.ask == *ask) {
            pending.next_send = now + pending.retry;
            pending.retry = (pending.retry * 2).min(TRACKER_RETRY_MAX);
        }
    }

    /// Tells the tracker how many chunks of `info_hash` we hold (now, or soon when the count
    /// is growing fast).
    pub(super) fn announce(&mut self, now: Instant, info_hash: Hash) {
        let Some(file) = self.files.get_mut(&info_hash) else {
            return;
        };
        // An empty file has no chunks: complete, it is announced all the same.
        if file.have.count() == 0 && !file.complete() {
            return;
        }
        file.announce_due = None;
        self.ask_tracker(now, TrackerAsk::Announce(info_hash));
    }

    /// Counts a verified chunk of `bytes` that `from_node` uploaded to us. The tracker is
    /// told [`CREDIT_INTERVAL`] after the first chunk not yet reported, of everything
    /// gathered by then, in one datagram (at once when a report is full): one datagram per
    /// chunk was 5 to 10 a second while a download ran (issue 14).
    pub(super) fn credit(&mut self, now: Instant, from_node: u32, info_hash: Hash, bytes: u64) {
        if !self.tracker.registered || from_node == self.config.node_id {
            return;
        }
        let key = (from_node, info_hash);
        if !self.tracker.credits.contains_key(&key)
            && self.tracker.credits.len() >= wire::CREDIT_RECORDS_MAX
        {
            self.send_credits(now);
        }
        let (chunks, total_bytes) = self.tracker.credits.entry(key).or_insert((0, 0));
        *chunks = chunks.saturating_add(1);
        *total_bytes = total_bytes.saturating_add(bytes);
        self.tracker.credit_due.get_or_insert(now + CREDIT_INTERVAL);
        debug_assert!(self.tracker.credits.len() <= wire::CREDIT_RECORDS_MAX);
    }

    /// Takes up to `max` of the credits gathered, as records to report; when none are left,
    /// no report is due.
    fn take_credits(&mut self, max: usize) -> Vec<wire::CreditRecord> {
        let mut records = Vec::new();
        while records.len() < max {
            let Some(((from_node, info_hash), (chunks, bytes))) = self.tracker.credits.pop_first()
            else {
                break;
            };
            records.push(wire::CreditRecord {
                from_node: U32::new(from_node),
                chunks: U32::new(chunks),
                bytes: U64::new(bytes),
                info_hash,
            });
        }
        if self.tracker.credits.is_empty() {
            self.tracker.credit_due = None;
        }
        records
    }

    /// Reports the credits gathered so far, if any (when the tracker is unreachable they are
    /// lost, as a lost datagram's would be: credit only ranks holders).
    pub(super) fn send_credits(&mut self, now: Instant) {
        let records = self.take_credits(wire::CREDIT_RECORDS_MAX);
        if records.is_empty() {
            return;
        }
        if !self.tracker.registered || self.standard.is_some() {
            return;
        }
        let fixed = wire::Credit {
            auth: self.auth(),
            // Fits: at most CREDIT_RECORDS_MAX records.
            record_count: wire::U16::new(records.len() as u16),
            reserved: [0; 2],
        };
        self.out.send(
            self.tracker.addr,
            &Message::Credit {
                fixed: &fixed,
                records: &records,
            },
        );
        self.tracker.sent(now);
    }
}

// For the simulation's checkers only: not part of the node's interface.
impl Node {
    /// What this node would announce: info hash → chunks held, for every file it holds
    /// some of (or an empty file).
    #[doc(hidden)]
    pub fn debug_announceable(&self) -> BTreeMap<Hash, u32> {
        self.files
            .iter()
            .filter(|(_, file)| file.have.count() > 0 || file.complete())
            .map(|(hash, file)| (*hash, file.have.count()))
            .collect()
    }
}

/// What the user sees once the tracker knows the node holds a whole file: the line tests,
/// the demo and scripts wait for.
pub(super) fn sharing_line(manifest: &Manifest) -> String {
    format!(
        "sharing {} ({}, {} bytes, {} chunks)",
        manifest.name,
        wire::hex(&manifest.info_hash),
        manifest.file_bytes,
        manifest.chunk_count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(now: Instant) -> TrackerLink {
        TrackerLink::new(SocketAddr::from(([10, 0, 0, 1], 1)), 0, now)
    }

    /// Look-ups come in bursts of LOOKUP_BURST, then one per LOOKUP_SPACING.
    #[test]
    fn lookup_budget_allows_bursts_then_spaces_them() {
        let t0 = Instant::now();
        let mut link = link(t0);
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
        let mut link = link(t0);
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
