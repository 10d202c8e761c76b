//! Whom a download may recruit, and when it asks the tracker again: the holders the tracker
//! listed (and those other peers told of), and the look-up schedule, which backs off while
//! the tracker's answer stays the same.

use super::peer::Peer;
use crate::wire::{self, Hash, HolderRecord, VersionRecord};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most holders one download knows of and may recruit: the tracker's lists (the last one
/// first) and peers other peers told of (`Download::handle_exchange`).
pub const CANDIDATES_MAX: usize = 2 * wire::LOOKUP_HOLDERS_MAX;
/// While no holder is usable, the tracker is asked again after this, doubling with every
/// answer that brings no holder we did not know, up to [`LOOKUP_RETRY_MAX`]: a stalled
/// download asked every second, for as long as it waited (issue 14).
pub const LOOKUP_RETRY: Duration = Duration::from_secs(1);
pub const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(30);
/// While a transfer runs, partial holders that do not help are let go this often
/// (`Peers::drop_unhelpful`); [`SWARM_REFRESH_SHORT`] while fewer than
/// `PARTIAL_PEERS_MAX` partial holders are in use, as at the start of a swarm, when new
/// ones appear every moment.
pub const SWARM_REFRESH: Duration = Duration::from_secs(1);
pub const SWARM_REFRESH_SHORT: Duration = Duration::from_millis(250);
/// While a transfer runs, the tracker is asked for new holders (downloaders that verified
/// chunks) after [`SWARM_REFRESH_SHORT`] or [`SWARM_REFRESH`] (as for dropping unhelpful
/// peers), spread between half and one and a half times that ([`Lookups::spread`]),
/// doubling once the answer has not changed for [`LOOKUP_STEADY`], up to
/// [`SWARM_LOOKUP_MAX`], and within the node's look-up budget (`LOOKUP_SPACING`; credit
/// that is due goes inside a look-up, `Node::handle_timeout`). New
/// partial holders are also learnt from peers ([`wire::Peers`]); asking the tracker every
/// 250 ms whatever it said, as before, made look-ups half of a downloader's datagrams to it
/// (issue 14's goal: at most 2 a second over any 10 s).
pub const SWARM_LOOKUP_MAX: Duration = Duration::from_secs(16);
/// Look-ups back off only once the tracker's answer has stayed the same (no holder we did
/// not know, the same number of holders) this long. At a swarm's start the answer stays the
/// same for the half second before the holder's first chunks verify, then changes every
/// moment: doubling at once made each downloader ask at 0.25, 0.5, 1 s and so miss the
/// first partial holders, and the simulated 200-node swarm's downloaders got their first
/// chunk 0.8 s later than when they asked every 250 ms (tests/sim_tstar.rs, seed 2).
const LOOKUP_STEADY: Duration = Duration::from_secs(2);

/// A holder we may recruit: node id, address, and whether it holds every chunk.
pub(super) type Candidate = (u32, SocketAddr, bool);

pub(super) struct Lookups {
    /// Holders from the last look-up, best first.
    candidates: Vec<Candidate>,
    /// When the tracker is asked for holders next (see [`LOOKUP_RETRY`], [`SWARM_LOOKUP_MAX`]).
    due: Option<Instant>,
    /// The wait before the look-up after next: doubles while nothing changes.
    backoff: Duration,
    /// When the tracker's answer last changed (or the download began): see
    /// [`LOOKUP_STEADY`].
    changed_at: Instant,
    /// How many holders of the chosen version the tracker counted in its last answer.
    holders_counted: u32,
    /// Look-up replies taken so far: varies the order partial holders are tried in.
    replies: u32,
    /// Look-ups scheduled so far: varies their spacing (see [`Lookups::spread`]).
    scheduled: u32,
}

impl Lookups {
    pub fn new(now: Instant) -> Lookups {
        Lookups {
            candidates: Vec::new(),
            // The first look-up goes with the `download` command (`Node::download`).
            due: Some(now + LOOKUP_RETRY),
            backoff: Duration::ZERO,
            changed_at: now,
            holders_counted: 0,
            replies: 0,
            scheduled: 0,
        }
    }

    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The holders listed before are gone: trying them again is for the peers we have, not
    /// for the candidates (see `Peers::recruit`).
    pub fn forget_candidates(&mut self) {
        self.candidates.clear();
    }

    /// `wait` made different for every node and every look-up, between half and one and a
    /// half times it. Downloads that began together would otherwise ask the tracker in step
    /// (every reply comes a moment after the same command), so that a partial holder that
    /// appears between two rounds stays unknown to all until the next: 200 simulated
    /// downloaders asking every 250 ms in step spread the first chunks several times slower
    /// than the same asking spread out (tests/sim_tstar.rs). Derived from the node id, as the
    /// order of candidates is, so that a simulation stays replayable.
    fn spread(&mut self, wait: Duration, own_node_id: u32) -> Duration {
        self.scheduled = self.scheduled.wrapping_add(1);
        let key = (u64::from(own_node_id) << 32) | u64::from(self.scheduled);
        // The top 16 bits of a well-mixed draw: a fraction of 1 in steps of 1/65,536.
        let fraction = (crate::rng::Rng::new(key).next_u64() >> 48) as f64 / 65_536.0;
        wait.mul_f64(0.5 + fraction)
    }

    /// The tracker listed `holders` of the versions it knows; `chosen` is the index of ours,
    /// `version`. They become the candidates, and the schedule starts again when the answer
    /// changed and there is `room` for a holder we did not know. Returns how many
    /// candidates there are.
    #[allow(clippy::too_many_arguments)]
    pub fn take_holders(
        &mut self,
        now: Instant,
        own_node_id: u32,
        chosen: usize,
        version: &VersionRecord,
        holders: &[HolderRecord],
        peers: &[Peer],
        room: bool,
    ) -> usize {
        let known_before: Vec<u32> = self
            .candidates
            .iter()
            .map(|&(node_id, _, _)| node_id)
            .chain(peers.iter().map(|p| p.node_id))
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
        self.replies += 1;
        let salt = (u64::from(own_node_id) << 32) | u64::from(self.replies);
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
        if self.candidates.is_empty() {
            return 0;
        }
        // Something changed when the tracker lists a holder we did not know and could take:
        // the backoff starts again (a new holder may be followed by others).
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
            self.changed_at = now;
        }
        if changed && room {
            self.backoff = Duration::ZERO;
            self.due = Some(now + self.spread(SWARM_REFRESH_SHORT, own_node_id));
        }
        self.candidates.len()
    }

    /// Peers of a download by info hash, from a standard tracker: addresses only. Each gets a
    /// node id made from its address (only logs and bad-chunk bookkeeping use it here), and
    /// counts as a partial holder until its have-map says more. Returns how many there are.
    pub fn take_addresses(&mut self, own_node_id: u32, addresses: &[SocketAddr]) -> usize {
        self.candidates = addresses
            .iter()
            .take(super::PEERS_PER_DOWNLOAD_MAX)
            .map(|&addr| (address_node_id(addr, own_node_id), addr, false))
            .collect();
        self.candidates.len()
    }

    /// Holders a peer told of (peer exchange): those known under no id yet become
    /// candidates, up to [`CANDIDATES_MAX`]. Returns whether any did.
    pub fn take_told(
        &mut self,
        own_node_id: u32,
        listed: &[wire::PeerRecord],
        peers: &[Peer],
    ) -> bool {
        let mut added = false;
        for record in listed {
            let node_id = record.node_id.get();
            let known = node_id == own_node_id
                || self.candidates.iter().any(|&(id, _, _)| id == node_id)
                || peers.iter().any(|p| p.node_id == node_id);
            if known || self.candidates.len() >= CANDIDATES_MAX {
                continue;
            }
            let addr = wire::socket_addr(record.ip, record.port.get());
            self.candidates.push((node_id, addr, record.complete == 1));
            added = true;
        }
        added
    }

    /// How many partial holders of the last look-up `Peers::recruit` would take now if
    /// there were room: not in use, and not dropped lately. Dropping a partial holder for
    /// another makes sense only when there is another: in a small swarm, where every
    /// downloader already uses every other, a peer dropped for holding nothing we need (or
    /// for being busy) would be missed for `DROPPED_PEER_RETRY` while it gains the very
    /// chunks we lack (S3: three of eight downloaders sat idle for 3 to 4 s that way).
    pub fn recruitable_partial(&self, peers: &[Peer], now: Instant) -> usize {
        self.candidates
            .iter()
            .filter(|(node_id, addr, complete)| {
                !complete
                    && match peers.iter().find(|p| p.node_id == *node_id) {
                        Some(peer) => peer.may_return(*addr, now),
                        None => peers.len() < super::PEERS_PER_DOWNLOAD_MAX,
                    }
            })
            .count()
    }

    /// When the tracker is asked next.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The node's look-up budget holds the look-up this download wanted until `at`.
    pub fn defer(&mut self, at: Instant) {
        self.due = Some(at);
    }

    /// A datagram goes to the tracker now anyway: the look-up goes with it.
    pub fn bring_forward(&mut self, now: Instant) {
        self.due = Some(now);
    }

    /// Every peer in use holds nothing we still need: ask within `interval`, whatever the
    /// backoff.
    pub fn hurry(&mut self, now: Instant, interval: Duration) {
        if self.due.is_some_and(|t| t > now + interval) {
            self.backoff = Duration::ZERO;
            self.due = Some(now + interval);
        }
    }

    /// Whether to ask the tracker now; if so, the next look-up is scheduled. `need_holders`:
    /// no peer is usable (the stalled download's backoff, [`LOOKUP_RETRY`] to
    /// [`LOOKUP_RETRY_MAX`]); otherwise a transfer runs with `partial_peers` partial holders
    /// in use, `partial_room` telling whether that is fewer than it may use.
    pub fn fire(
        &mut self,
        now: Instant,
        need_holders: bool,
        partial_room: bool,
        own_node_id: u32,
    ) -> bool {
        if self.due.is_some_and(|t| t > now) {
            return false;
        }
        let (first, max) = if need_holders {
            (LOOKUP_RETRY, LOOKUP_RETRY_MAX)
        } else if partial_room {
            (SWARM_REFRESH_SHORT, SWARM_LOOKUP_MAX)
        } else {
            (SWARM_REFRESH, SWARM_LOOKUP_MAX)
        };
        let wait = self.backoff.clamp(first, max);
        // Spread while a swarm runs, where asking in step delays everyone's news of new
        // holders; not while no holder is usable, where it would only make the backoff
        // less regular (the stall's one per 10 s on average).
        let spread = self.spread(wait, own_node_id);
        self.due = Some(now + if need_holders { wait } else { spread });
        let steady = now.saturating_duration_since(self.changed_at) >= LOOKUP_STEADY;
        self.backoff = if steady {
            (wait * 2).min(max)
        } else {
            Duration::ZERO
        };
        true
    }
}

/// Which version of its name a download takes from a look-up reply: once one is chosen (or
/// pinned), that one, and later look-ups only refresh its holders; before, the one most
/// holders have. An unpinned download that had several to choose from says which it took,
/// once.
pub(super) struct VersionChoice {
    pinned: bool,
    told: bool,
}

impl VersionChoice {
    pub fn new(pinned: bool) -> VersionChoice {
        VersionChoice {
            pinned,
            told: false,
        }
    }

    /// The index in `versions` of the one to take, given the one chosen so far
    /// (`info_hash`), with the sentence for the user when there is one to say.
    pub fn choose(
        &mut self,
        versions: &[VersionRecord],
        info_hash: Option<Hash>,
        name: &str,
    ) -> Option<(usize, Option<String>)> {
        let chosen = match info_hash {
            Some(info_hash) => versions.iter().position(|v| v.info_hash == info_hash),
            None => (0..versions.len())
                .max_by_key(|&i| (versions[i].holder_count.get(), std::cmp::Reverse(i))),
        }?;
        let mut line = None;
        if versions.len() > 1 && !self.pinned && !self.told {
            self.told = true;
            let version = &versions[chosen];
            line = Some(format!(
                "{} versions of {name} are announced; taking {} ({} holders); pin another with {name}@<info hash>",
                versions.len(),
                wire::hex(&version.info_hash),
                version.holder_count.get(),
            ));
        }
        Some((chosen, line))
    }
}

/// A node id for a peer known only by its address (from a standard tracker): FNV-1a of the
/// address, never our own id. Two peers may collide (one in four billion); the second is
/// then taken for the first at a new address, which costs a little speed, not correctness.
fn address_node_id(addr: SocketAddr, own_node_id: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in wire::ip_to_bytes(addr.ip())
        .iter()
        .chain(&addr.port().to_be_bytes())
    {
        hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
    }
    if hash == own_node_id { hash ^ 1 } else { hash }
}
