//! Which peers a download uses: recruiting holders from the tracker's list, asking them
//! for have-maps and manifest parts, and letting go of the ones that fail or do not help.
//! A dropped peer's chunks go back to the pool for the others.

use super::*;

impl Download {
    /// Brings peers up to `peers_max` complete holders and [`PARTIAL_PEERS_MAX`] partial
    /// ones, from the candidates.
    pub(super) fn recruit(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let info_hash = match self.info_hash {
            Some(info_hash) if !self.finished() => info_hash,
            _ => return,
        };
        for (node_id, addr, complete) in self.candidates.clone() {
            let active = |complete: bool| {
                self.peers
                    .iter()
                    .filter(|p| !p.dropped && p.complete == complete)
                    .count()
            };
            let limit = if complete {
                parts.config.peers_max
            } else {
                PARTIAL_PEERS_MAX
            };
            if active(complete) >= limit {
                continue;
            }
            let index = match self.peers.iter().position(|p| p.node_id == node_id) {
                Some(index) if self.peers[index].may_return(addr, now) => {
                    let peer = &mut self.peers[index];
                    peer.addr = addr;
                    peer.dropped = false;
                    peer.have = None;
                    peer.cookie = 0;
                    peer.last_heard = now;
                    peer.window = WINDOW_START;
                    peer.complete = complete;
                    peer.busy_until = None;
                    peer.busy_streak = 0;
                    peer.pace = pace::Pace::default();
                    let route_mtu = parts.config.routes.mtu(addr);
                    peer.path = PathMtu::new(addr, route_mtu, now);
                    peer.congestion = congestion::Congestion::new(now);
                    peer.paced = parts.config.pace.applies(route_mtu);
                    peer.pieces_lost_in_a_row = 0;
                    peer.first_loss_in_a_row = None;
                    index
                }
                Some(_) => continue,
                None if self.peers.len() < PEERS_PER_DOWNLOAD_MAX => {
                    let route_mtu = parts.config.routes.mtu(addr);
                    let pace = parts.config.pace;
                    self.peers
                        .push(Peer::new(node_id, addr, complete, route_mtu, pace, now));
                    self.peers.len() - 1
                }
                None => break,
            };
            log::info!("{}: using node {node_id} at {addr}", self.name);
            self.ask_have(parts, now, index, info_hash);
        }
        if let Phase::Manifest(fetch) = &mut self.phase
            && fetch.source.is_none_or(|i| self.peers[i].dropped)
        {
            fetch.source = self.peers.iter().position(|p| !p.dropped);
            fetch.attempts = 0;
            fetch.sent_at = None;
            self.ask_manifest(parts, now);
        }
    }

    /// How many partial holders of the last look-up [`Download::recruit`] would take now if
    /// there were room: not in use, and not dropped lately. Dropping a partial holder for
    /// another makes sense only when there is another: in a small swarm, where every
    /// downloader already uses every other, a peer dropped for holding nothing we need (or
    /// for being busy) would be missed for [`DROPPED_PEER_RETRY`] while it gains the very
    /// chunks we lack (S3: three of eight downloaders sat idle for 3 to 4 s that way).
    pub(super) fn recruitable_partial(&self, now: Instant) -> usize {
        self.candidates
            .iter()
            .filter(|(node_id, addr, complete)| {
                !complete
                    && match self.peers.iter().find(|p| p.node_id == *node_id) {
                        Some(peer) => peer.may_return(*addr, now),
                        None => self.peers.len() < PEERS_PER_DOWNLOAD_MAX,
                    }
            })
            .count()
    }

    pub(super) fn ask(&self, parts: &Parts<'_>, index: usize, info_hash: Hash) -> PeerAsk {
        PeerAsk {
            cookie: U64::new(self.peers[index].cookie),
            node_id: U32::new(parts.config.node_id),
            info_hash,
        }
    }

    pub(super) fn ask_have(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        index: usize,
        info_hash: Hash,
    ) {
        let ask = self.ask(parts, index, info_hash);
        parts
            .out
            .send(self.peers[index].addr, &Message::HaveRequest(&ask));
        self.peers[index].last_asked = now;
    }

    pub(super) fn ask_manifest(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let Phase::Manifest(fetch) = &self.phase else {
            return;
        };
        let Some(source) = fetch.source else { return };
        let request = wire::ManifestRequest {
            ask: self.ask(parts, source, fetch.version.info_hash),
            first_chunk: U32::new(fetch.hashes.len() as u32),
        };
        parts
            .out
            .send(self.peers[source].addr, &Message::ManifestRequest(&request));
        if let Phase::Manifest(fetch) = &mut self.phase {
            fetch.sent_at = Some(now);
            fetch.attempts += 1;
        }
    }

    /// Forgets what was requested from peer `index` (it will be asked again).
    pub(super) fn release_peer_requests(&mut self, index: usize) {
        if let Phase::Transfer(transfer) = &mut self.phase {
            transfer.forget_requests(index);
        }
    }

    /// Takes `chunk` away from peer `index`, keeping the pieces already received.
    pub(super) fn release_chunk(&mut self, index: usize, chunk: u32) {
        if let Phase::Transfer(transfer) = &mut self.phase {
            transfer.release_chunk(index, chunk);
        }
    }

    pub(super) fn drop_peer(&mut self, parts: &mut Parts<'_>, now: Instant, index: usize) {
        if self.peers[index].dropped {
            return;
        }
        log::info!(
            "{}: dropping node {} ({})",
            self.name,
            self.peers[index].node_id,
            self.peers[index].addr
        );
        let peer = &mut self.peers[index];
        peer.dropped = true;
        if let Phase::Transfer(transfer) = &mut self.phase {
            transfer.release_peer(index);
            transfer.replace_have(peer.have.take().as_ref(), None);
        }
        self.recruit(parts, now);
    }

    /// Drops up to [`UNHELPFUL_DROPS_MAX`] partial holders that hold no chunk this download
    /// still needs and are asked for nothing, for as many partial holders of the last
    /// look-up that can be taken instead (see [`Download::recruitable_partial`]). Late in a swarm, a downloader
    /// whose peers all lack its last chunks would otherwise wait for them to get those first.
    pub(super) fn drop_unhelpful(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let Phase::Transfer(transfer) = &self.phase else {
            return;
        };
        let spare = self.recruitable_partial(now);
        let unhelpful: Vec<usize> = (0..self.peers.len())
            .filter(|&index| {
                let peer = &self.peers[index];
                !peer.dropped
                    && !peer.complete
                    && transfer.chunks_of(index).is_empty()
                    && transfer.in_flight(index) == 0
                    && peer
                        .have
                        .as_ref()
                        .is_some_and(|have| !transfer.holds_needed(have))
            })
            .take(spare.min(UNHELPFUL_DROPS_MAX))
            .collect();
        for index in unhelpful {
            log::debug!(
                "{}: node {} holds nothing we need; trying another",
                self.name,
                self.peers[index].node_id
            );
            self.drop_peer(parts, now, index);
        }
    }

    /// Peers this download uses that sent us chunks that verified, with whether each holds
    /// the whole file: what the node tells other askers ([`wire::Peers`]). Only those: a
    /// peer that merely answered may be one of the slow ones, and listing every peer sent
    /// the simulated swarm's downloaders to slow uploaders (0.15 T* more with a quarter of
    /// them 10x slower).
    pub fn useful_peers(&self) -> impl Iterator<Item = (u32, SocketAddr, bool)> + '_ {
        self.peers
            .iter()
            .filter(|p| !p.dropped && p.chunks_verified > 0)
            .map(|p| (p.node_id, p.addr, p.has_all()))
    }

    /// Peer `from` told us of other peers holding some of the file (peer exchange): the
    /// ones we know of under no id yet become candidates, and are recruited if there is
    /// room. A listed id we already know keeps the address we know it by (a peer cannot
    /// redirect us from a holder), and nothing but a have-map request goes to a new address
    /// before it answers, so a lying list costs us a few small requests and nothing more.
    pub(super) fn take_exchange(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        from: SocketAddr,
        own_node_id: u32,
        listed: &[wire::PeerRecord],
    ) {
        if self.finished() || !self.peers.iter().any(|p| p.addr == from && !p.dropped) {
            // Lists are taken only from peers we use (whom we asked).
            parts.out.stats.dropped_unexpected += 1;
            return;
        }
        let mut added = false;
        for record in listed {
            let node_id = record.node_id.get();
            let known = node_id == own_node_id
                || self.candidates.iter().any(|&(id, _, _)| id == node_id)
                || self.peers.iter().any(|p| p.node_id == node_id);
            if known || self.candidates.len() >= CANDIDATES_MAX {
                continue;
            }
            let addr = wire::socket_addr(record.ip, record.port.get());
            self.candidates.push((node_id, addr, record.complete == 1));
            added = true;
        }
        if added {
            self.recruit(parts, now);
        }
    }
}
