//! A download's timers: silent peers, unanswered requests, timed-out pieces, the swarm's
//! refreshes (holder lists and have-maps) and giving up. Timers are data: `poll_timeout`
//! returns the earliest deadline and a spurious `handle_timeout` does nothing.

use super::*;

use super::peer::BLACK_HOLE_LOSSES;

impl Download {
    /// Fires due timers. Returns true when the tracker should be asked for holders again.
    pub(super) fn fire_timers(&mut self, parts: &mut Parts<'_>, now: Instant) -> bool {
        if self.finished() {
            return false;
        }
        if self.disk_retry_at.is_some_and(|t| t <= now) {
            match std::mem::replace(&mut self.phase, Phase::LookingUp) {
                Phase::WaitingForSpace(manifest) => self.start_transfer(parts, now, manifest),
                other => {
                    self.phase = other;
                    self.publish(parts, now);
                }
            }
        }
        if self.disk_retry_at.is_some() {
            // Nothing to ask anyone until there is room, and no giving up either.
            return false;
        }
        // Peers that went silent while we wait on them.
        for index in 0..self.peers.len() {
            if self.peers[index].busy_until.is_some_and(|t| t <= now) {
                // Its refusal is over: the node fills windows after this.
                self.peers[index].busy_until = None;
            }
            let in_flight = self.in_flight(index) > 0;
            let has_work = self.has_work(index);
            self.peers[index].evidence.note_in_flight(now, has_work);
            let peer = &self.peers[index];
            let last_heard = peer.last_heard;
            let silence = now.saturating_duration_since(last_heard);
            let waiting = peer.waiting(self.in_flight(index));
            let ping_wanted = waiting && peer.have.is_some();
            // Pieces in flight for PEER_SILENCE, none arriving and many timing out: whether
            // the peer is silent or only its pieces are lost, they are not coming.
            let pieces_stopped = in_flight
                && peer.pieces_lost_in_a_row >= BLACK_HOLE_LOSSES
                && peer.evidence.pieces_awaited_for(now) >= PEER_SILENCE;
            if waiting && silence >= PEER_SILENCE {
                // True: it was pinged (or asked for its have-map) meanwhile, and said nothing.
                parts.out.say(format!(
                    "node {} stopped answering (nothing from it for {:.1} s); its chunks of {} \
                     go to others",
                    peer.node_id,
                    silence.as_secs_f64(),
                    self.name
                ));
                self.peers[index].evidence.on_silent();
                self.drop_peer(parts, now, index);
            } else if pieces_stopped {
                // It answers (something came within PEER_SILENCE): only its pieces are lost.
                let (lost, of) = peer.evidence.loss();
                parts.out.say(format!(
                    "{}: {}; its chunks go to others for a while",
                    self.name,
                    diagnosis::Reason::PiecesLost {
                        node_id: peer.node_id,
                        lost,
                        of
                    }
                ));
                self.drop_peer(parts, now, index);
            } else if !peer.dropped
                && peer.have.is_none()
                && now.saturating_duration_since(peer.last_asked) >= ASK_RETRY
                && let Some(info_hash) = self.info_hash
            {
                self.ask_have(parts, now, index, info_hash);
            } else if ping_wanted
                && let Some(info_hash) = self.info_hash
                && self.peers[index]
                    .evidence
                    .ping_due(now, last_heard, PING_AFTER, ASK_RETRY)
            {
                // Silent while we wait on its pieces: a ping (the smallest MTU probe, which
                // it echoes) tells a peer that is gone from one whose pieces are lost.
                let probe = wire::MtuProbe {
                    ask: self.ask(parts, index, info_hash),
                    probe_bytes: U32::new(wire::MTU_PROBE_BYTES_MIN as u32),
                };
                parts
                    .out
                    .send(self.peers[index].addr, &Message::MtuProbe(&probe));
            }
        }
        if let Phase::Manifest(fetch) = &self.phase
            && fetch
                .sent_at
                .is_some_and(|t| now.saturating_duration_since(t) >= fetch.retry_after())
        {
            match fetch.source {
                Some(source) if fetch.attempts >= MANIFEST_ATTEMPTS_MAX => {
                    self.drop_peer(parts, now, source)
                }
                _ => self.ask_manifest(parts, now),
            }
        }
        for index in self.scan_timeouts(now, &mut parts.out.stats) {
            self.narrow_path(parts, now, index);
        }
        let transferring = matches!(self.phase, Phase::Transfer(_));
        if transferring && self.refresh_due.is_none_or(|t| t <= now) {
            // Swarming: new downloaders appear; the tracker knows them.
            self.drop_unhelpful(parts, now);
            let partial = self
                .peers
                .iter()
                .filter(|p| !p.dropped && !p.complete)
                .count();
            let interval = if partial < PARTIAL_PEERS_MAX {
                SWARM_REFRESH_SHORT
            } else {
                SWARM_REFRESH
            };
            self.refresh_due = Some(now + interval);
            // Every peer we use holds nothing we still need (late in a swarm, or the peers
            // we had left): the swarm changed, and the tracker may know better holders.
            // (With no peer at all, the backoff of `LOOKUP_RETRY` applies instead.)
            let stuck = match &self.phase {
                Phase::Transfer(transfer) => {
                    self.peers.iter().any(|p| !p.dropped)
                        && !self.peers.iter().enumerate().any(|(index, p)| {
                            !p.dropped
                                && (transfer.in_flight(index) > 0
                                    || p.have
                                        .as_ref()
                                        .is_none_or(|have| transfer.holds_needed(have)))
                        })
                }
                _ => false,
            };
            if stuck && self.lookup_due.is_some_and(|t| t > now + interval) {
                self.lookup_backoff = Duration::ZERO;
                self.lookup_due = Some(now + interval);
            }
        }
        if transferring && self.have_refresh_due.is_none_or(|t| t <= now) {
            // Partial holders gain chunks all the time: what they verified is worth having
            // within a fraction of a second, not after a chunk's worth of waiting.
            // A complete holder that shows only part of its chunks (spreading them) is asked
            // again only once what it showed is of no more use (nothing in it we could ask
            // for now: chunks other peers are sending us do not count, or a downloader
            // waiting on a slow peer's chunk never learns of a chunk only the holder has):
            // its have-map changes when its least-sent chunks do, not with every chunk
            // verified, and 200 downloaders asking every HAVE_REFRESH took some 4% of its
            // upload (its refusals, as "elsewhere", clear what it no longer shows).
            let stale: Vec<usize> = match &self.phase {
                Phase::Transfer(transfer) => (0..self.peers.len())
                    .filter(|&index| {
                        let peer = &self.peers[index];
                        !peer.dropped
                            && !peer.has_all()
                            && peer.have.as_ref().is_some_and(|have| {
                                !peer.complete || !transfer.offers_unclaimed(have)
                            })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            self.have_refresh_due = Some(now + HAVE_REFRESH);
            if let Some(info_hash) = self.info_hash {
                for index in stale {
                    self.ask_have(parts, now, index, info_hash);
                }
            }
        }
        let active = self.peers.iter().any(|p| !p.dropped);
        if !active && now >= self.give_up_at {
            let reason = self.why(&parts.tracker, now).unwrap_or_else(|| {
                format!(
                    "no holder of {} was found within {} s",
                    self.name,
                    self.give_up_after.as_secs()
                )
            });
            self.fail(parts, reason);
            return false;
        }
        if self.diagnosis.take_slow_report(now)
            && let Some(reason) = self.why(&parts.tracker, now)
        {
            // Not "download NAME ...": scripts and checkers take that for the end of one.
            let line = if self.transferring() {
                format!("slow download of {}: {reason}", self.name)
            } else {
                format!("waiting to download {}: {reason}", self.name)
            };
            parts.out.say(line);
        }
        if !active {
            self.recruit(parts, now);
        }
        // Look-ups: for holders while none is usable, for new holders while a transfer
        // runs; each backs off while nothing changes (see `handle_lookup`).
        let need_holders = !self.peers.iter().any(|p| !p.dropped);
        if (need_holders || transferring) && self.lookup_due.is_none_or(|t| t <= now) {
            let partial = self
                .peers
                .iter()
                .filter(|p| !p.dropped && !p.complete)
                .count();
            let (first, max) = if need_holders {
                (LOOKUP_RETRY, LOOKUP_RETRY_MAX)
            } else if partial < PARTIAL_PEERS_MAX {
                (SWARM_REFRESH_SHORT, SWARM_LOOKUP_MAX)
            } else {
                (SWARM_REFRESH, SWARM_LOOKUP_MAX)
            };
            let wait = self.lookup_backoff.clamp(first, max);
            // Spread while a swarm runs, where asking in step delays everyone's news of new
            // holders; not while no holder is usable, where it would only make the backoff
            // less regular (the stall's one per 10 s on average).
            let spread = self.spread(wait, parts.config.node_id);
            self.lookup_due = Some(now + if need_holders { wait } else { spread });
            let steady = now.saturating_duration_since(self.lookup_changed_at) >= LOOKUP_STEADY;
            self.lookup_backoff = if steady {
                (wait * 2).min(max)
            } else {
                Duration::ZERO
            };
            return true;
        }
        false
    }

    /// The node's look-up budget holds the look-up this download wanted until `at`.
    pub fn defer_lookup(&mut self, at: Instant) {
        self.lookup_due = Some(at);
    }

    /// When this download would ask the tracker for holders next, if it looks up at all
    /// now (for holders while none is usable, for new holders while a transfer runs).
    pub fn lookup_wanted_at(&self) -> Option<Instant> {
        let need_holders = !self.peers.iter().any(|p| !p.dropped);
        let transferring = matches!(self.phase, Phase::Transfer(_));
        if self.finished() || !(need_holders || transferring) {
            return None;
        }
        self.lookup_due
    }

    /// A datagram goes to the tracker now anyway (credit that is due): the look-up this
    /// download wanted later goes with it instead (see `Node::handle_timeout`).
    pub fn bring_lookup_forward(&mut self, now: Instant) {
        self.lookup_due = Some(now);
    }

    /// Pieces lost in flight are asked again (see [`Transfer::scan_timeouts`]). Returns the
    /// peers whose large pieces stopped arriving (see [`BLACK_HOLE_LOSSES`]).
    pub(super) fn scan_timeouts(
        &mut self,
        now: Instant,
        stats: &mut crate::node::NodeStats,
    ) -> Vec<usize> {
        let Phase::Transfer(transfer) = &mut self.phase else {
            return Vec::new();
        };
        transfer.scan_timeouts(&mut self.peers, now, stats)
    }

    /// Peer `index` lost [`BLACK_HOLE_LOSSES`] pieces in a row at a size above the safe one:
    /// the path stopped carrying that size (a route changed, or a link on it drops large
    /// packets without a word). Its chunks go back, and it is asked in safe-sized pieces.
    pub(super) fn narrow_path(&mut self, parts: &mut Parts<'_>, now: Instant, index: usize) {
        let peer = &mut self.peers[index];
        let old_bytes = peer.path.datagram_bytes();
        if !peer.path.on_black_hole(now) {
            return;
        }
        peer.pieces_lost_in_a_row = 0;
        peer.first_loss_in_a_row = None;
        peer.evidence
            .on_narrowed(old_bytes, peer.path.datagram_bytes());
        // The user is told once a smaller piece arrives (`arrival.rs`): only then is it known
        // that small datagrams cross where large ones stopped, and not that nothing does.
        log::info!(
            "{}: pieces of {} bytes from node {} stopped arriving; asking for {}-byte pieces",
            self.name,
            old_bytes as usize - wire::PIECE_OVERHEAD_BYTES,
            peer.node_id,
            peer.piece_bytes(parts.config.piece_bytes),
        );
        if let Phase::Transfer(transfer) = &mut self.phase {
            transfer.release_peer(index);
        }
    }

    /// Path MTU probes that are due (see [`crate::mtu`]): to peers that handed us a cookie.
    pub(super) fn probe_paths(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let Some(info_hash) = self.info_hash else {
            return;
        };
        for peer in self.peers.iter_mut() {
            if peer.dropped || peer.cookie == 0 {
                continue;
            }
            let timeout = peer.rto().max(crate::mtu::PROBE_TIMEOUT_MIN);
            if let Some(probe_bytes) = peer.path.poll_probe(now, timeout) {
                let probe = wire::MtuProbe {
                    ask: PeerAsk {
                        cookie: U64::new(peer.cookie),
                        node_id: U32::new(parts.config.node_id),
                        info_hash,
                    },
                    probe_bytes: U32::new(probe_bytes),
                };
                parts.out.send(peer.addr, &Message::MtuProbe(&probe));
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished() {
            return None;
        }
        let mut earliest: Option<Instant> = None;
        let mut consider = |t: Instant| earliest = Some(earliest.map_or(t, |e| e.min(t)));
        if let Some(t) = self.disk_retry_at {
            consider(t);
        }
        if self.disk_retry_at.is_some() {
            return earliest;
        }
        if let Some(t) = self.diagnosis.slow_report_due() {
            consider(t);
        }
        for (index, peer) in self.peers.iter().enumerate().filter(|(_, p)| !p.dropped) {
            if peer.waiting(self.in_flight(index)) {
                consider(peer.last_heard + PEER_SILENCE);
                if peer.have.is_some() {
                    consider(
                        peer.evidence
                            .ping_deadline(peer.last_heard, PING_AFTER, ASK_RETRY),
                    );
                }
            }
            if peer.have.is_none() {
                consider(peer.last_asked + ASK_RETRY);
            }
            if let Some(t) = peer.busy_until {
                consider(t);
            }
            if peer.cookie != 0
                && let Some(t) = peer
                    .path
                    .poll_timeout(peer.rto().max(crate::mtu::PROBE_TIMEOUT_MIN))
            {
                consider(t);
            }
        }
        match &self.phase {
            Phase::Manifest(fetch) => {
                if let Some(sent) = fetch.sent_at {
                    consider(sent + fetch.retry_after());
                }
            }
            Phase::Transfer(transfer) => {
                if let Some(t) = transfer.scan_due() {
                    consider(t);
                }
                consider(self.refresh_due.unwrap_or(transfer.started_at()));
                consider(self.lookup_due.unwrap_or(transfer.started_at()));
                if self.peers.iter().any(|p| !p.dropped && !p.has_all()) {
                    consider(self.have_refresh_due.unwrap_or(transfer.started_at()));
                }
            }
            _ => {}
        }
        if !self.peers.iter().any(|p| !p.dropped) {
            consider(self.give_up_at);
            consider(self.lookup_due.unwrap_or(self.give_up_at));
        }
        earliest
    }
}

impl Download {
    /// Why this download is slow, waiting or failed, in a sentence (see [`diagnosis`]); `None`
    /// when nothing stands out.
    pub fn why(&self, tracker: &TrackerHeard, now: Instant) -> Option<String> {
        let views: Vec<diagnosis::PeerView<'_>> = self
            .peers
            .iter()
            .map(|p| diagnosis::PeerView {
                node_id: p.node_id,
                addr: p.addr,
                active: !p.dropped,
                datagram_bytes: p.path.datagram_bytes(),
                evidence: &p.evidence,
            })
            .collect();
        self.diagnosis.explain(&self.name, &views, tracker, now)
    }
}
