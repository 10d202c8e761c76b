//! The node's side of the tracker protocol: register and heartbeat, announce, look-up,
//! credit, exit. Every request is retried with backoff until the tracker answers; a tracker
//! that forgot the node (expiry, lost state) is answered by registering again and
//! re-announcing every file. A tracker that forgot only some of what the node holds (it lost
//! its last save) is found out at the next heartbeat: each reply carries the digest of what
//! the tracker records the node holding, and a digest that differs from the node's own
//! (of what the tracker acknowledged) makes the node announce every file again. A Register
//! the tracker cannot accept yet is answered with a cookie to echo (`Challenge`). With a
//! standard tracker (`--tracker udp://`), requests go to `standard_tracker` instead.

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
                    if let Err(error) = self.state.save_token(token) {
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
            Message::Refused(refused) => match RefusedReason::from_u16(refused.reason.get()) {
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
    /// and there is no exit message (see `standard_tracker`).
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
                let lookup = wire::Lookup { auth };
                self.out.send(
                    self.tracker.addr,
                    &Message::Lookup {
                        fixed: &lookup,
                        name,
                    },
                );
            }
            TrackerAsk::Exit => self
                .out
                .send(self.tracker.addr, &Message::Exit(&wire::Exit { auth })),
        }
        self.tracker.asked(now);
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

    /// Tells the tracker that `from_node` uploaded a verified chunk to us.
    pub(super) fn credit(&mut self, from_node: u32, info_hash: Hash, bytes: u64) {
        if !self.tracker.registered || from_node == self.config.node_id {
            return;
        }
        let credit = wire::Credit {
            auth: self.auth(),
            from_node: U32::new(from_node),
            chunks: U32::new(1),
            bytes: U64::new(bytes),
            info_hash,
        };
        self.out.send(self.tracker.addr, &Message::Credit(&credit));
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
