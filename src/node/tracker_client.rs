//! The node's tracker, whichever protocol it speaks: ours ([`OurTrackerClient`], in
//! `ours.rs`), or a standard BitTorrent tracker's BEP 15 ([`Bep15Client`], in `bep15.rs`,
//! chosen with `--tracker udp://HOST:PORT`).
//!
//! The node asks one thing of either: tell the tracker what we hold or download
//! ([`TrackerClient::update`]), find holders ([`TrackerClient::want_holders`]), count what
//! verified ([`TrackerClient::chunk_verified`]) and what went out
//! ([`TrackerClient::uploaded`]), leave ([`TrackerClient::exit`]). Both write their datagrams
//! into the node's [`Outbox`] as they go, and what the rest of the node must act on comes
//! back as [`TrackerNews`], taken after every call ([`TrackerClient::take_news`]).
//!
//! What differs stays here: our tracker knows node ids, gives upload credit and ranks
//! holders, acknowledges an exit, and finds files by name; a standard tracker knows only
//! info hashes and addresses (see `bep15.rs`).

mod bep15;
mod ours;

pub(super) use bep15::Bep15Client;
use bep15::{Ignored, StandardEvent};
pub(super) use ours::ListAsk;
use ours::OurTrackerClient;

use super::advertise::SelfAddresses;
use super::download::TrackerHeard;
use super::listing::ListPage;
use super::{LocalFile, NodeConfig, Outbox};
use crate::wire::{self, Hash, HolderRecord, VersionRecord};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// What the tracker said that concerns the rest of the node.
#[derive(Debug)]
pub(super) enum TrackerNews {
    /// A line for the user.
    Say(String),
    /// Our tracker gave the node a new token: keep it for the next run.
    SaveToken(u64),
    /// Our tracker may not know what we hold (first contact, it forgot us, or it lost a
    /// save): announce every file again.
    AnnounceAll,
    /// Our tracker recorded `chunks_held` chunks of `info_hash` for us.
    Acknowledged { info_hash: Hash, chunks_held: u32 },
    /// Our tracker's answer to a look-up of `name` (this node left out).
    Holders {
        name: String,
        versions: Vec<VersionRecord>,
        holders: Vec<HolderRecord>,
    },
    /// A standard tracker's answer to an announce of `info_hash`: peers other than us.
    Peers {
        info_hash: Hash,
        peers: Vec<SocketAddr>,
    },
    /// Our tracker's page of its list, for the node's list request `request_id`.
    Listed { request_id: u32, page: ListPage },
    /// Our tracker acknowledged the exit.
    ExitAcknowledged,
}

/// Why a datagram from the tracker's address was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dropped {
    Malformed,
    /// Well formed, but not an answer to anything we asked.
    Unexpected,
}

/// How leaving went with the tracker.
pub(super) enum Leaving {
    /// The tracker was told; its acknowledgement is worth waiting for.
    Wait,
    /// Nothing to wait for: how the tracker's record of the node ends.
    Done(&'static str),
}

/// The node's tracker client. See the module documentation.
pub(super) enum TrackerClient {
    Ours(OurTrackerClient),
    Bep15 {
        client: Bep15Client,
        /// The oldest request sent since the tracker last answered (see
        /// [`TrackerHeard::waiting_since`]).
        waiting_since: Option<Instant>,
    },
}

impl TrackerClient {
    /// The client `config` asks for. `token` is the identity our tracker gave the node in an
    /// earlier run; `seed` draws a BEP 15 client's peer id and transaction ids (a function,
    /// so that a secret is drawn only for the client that uses it).
    pub(super) fn new(
        config: &NodeConfig,
        me: SelfAddresses,
        token: u64,
        seed: impl FnOnce() -> u64,
        now: Instant,
    ) -> TrackerClient {
        if config.standard_tracker {
            TrackerClient::Bep15 {
                client: Bep15Client::new(config.tracker, me, seed()),
                waiting_since: None,
            }
        } else {
            TrackerClient::Ours(OurTrackerClient::new(
                config.tracker,
                config.node_id,
                token,
                me,
                config.heartbeat_interval,
                now,
            ))
        }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        match self {
            TrackerClient::Ours(ours) => ours.addr(),
            TrackerClient::Bep15 { client, .. } => client.addr(),
        }
    }

    /// Registered with our tracker. A standard tracker has no registration: false.
    pub(super) fn registered(&self) -> bool {
        match self {
            TrackerClient::Ours(ours) => ours.registered(),
            TrackerClient::Bep15 { .. } => false,
        }
    }

    /// Our tracker knows node ids, so peers may tell each other of holders
    /// (`exchange.rs`); a standard tracker's peers are addresses only.
    pub(super) fn exchanges_peers(&self) -> bool {
        matches!(self, TrackerClient::Ours(_))
    }

    /// Our tracker finds files by name; a standard one by info hash only.
    pub(super) fn finds_by_name(&self) -> bool {
        matches!(self, TrackerClient::Ours(_))
    }

    /// What downloads are told of the tracker. A standard tracker has no registration:
    /// requests go to it at once.
    pub(super) fn heard(&self) -> TrackerHeard {
        match self {
            TrackerClient::Ours(ours) => TrackerHeard {
                addr: ours.addr(),
                registered: ours.registered(),
                waiting_since: ours.waiting_since(),
            },
            TrackerClient::Bep15 {
                client,
                waiting_since,
            } => TrackerHeard {
                addr: client.addr(),
                registered: true,
                waiting_since: *waiting_since,
            },
        }
    }

    /// The first line of `status` says this of the tracker.
    pub(super) fn status_registration(&self) -> String {
        match self {
            TrackerClient::Ours(ours) if ours.registered() => "registered with".to_string(),
            TrackerClient::Ours(_) => "not registered with".to_string(),
            TrackerClient::Bep15 { client, .. } => format!(
                "announcing {} info hashes to standard (BEP 15)",
                client.torrent_count()
            ),
        }
    }

    /// Where our tracker sends peers to reach us, and whether that is what we advertise.
    pub(super) fn status_listed(&self) -> Option<String> {
        let TrackerClient::Ours(ours) = self else {
            return None;
        };
        let listed = ours.listing().listed()?;
        let advertised = match ours.me().advertise() {
            Some(advertise) if advertise == listed => " (our advertised address)".to_string(),
            Some(advertise) => {
                format!(" (not our advertised {advertise}: the tracker has not verified it)")
            }
            None => String::new(),
        };
        Some(format!("the tracker gives peers {listed}{advertised}"))
    }

    // ---- inputs -------------------------------------------------------------------------

    /// A datagram from the tracker's address.
    pub(super) fn handle_datagram(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        bytes: &[u8],
    ) -> Result<(), Dropped> {
        match self {
            TrackerClient::Ours(ours) => {
                let message = wire::decode(bytes).map_err(|error| {
                    log::debug!("dropped datagram from {}: {error}", ours.addr());
                    Dropped::Malformed
                })?;
                ours.handle_message(now, out, files, message)
                    .map_err(|message| {
                        log::debug!(
                            "dropped {:?} from the tracker: not a tracker reply",
                            message.kind()
                        );
                        Dropped::Unexpected
                    })
            }
            TrackerClient::Bep15 {
                client,
                waiting_since,
            } => {
                // BEP 15 replies carry no magic of ours: they are told apart by their source.
                let result = match client.handle_datagram(now, bytes) {
                    Ok(()) => {
                        *waiting_since = None;
                        Ok(())
                    }
                    Err(ignored) => {
                        log::debug!("dropped a datagram from the tracker: {ignored:?}");
                        Err(match ignored {
                            Ignored::Malformed(_) => Dropped::Malformed,
                            _ => Dropped::Unexpected,
                        })
                    }
                };
                flush(client, waiting_since, now, out);
                result
            }
        }
    }

    /// Timers that are due fire. While `leaving`, no registration or announce starts.
    pub(super) fn handle_timeout(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        leaving: bool,
    ) {
        match self {
            TrackerClient::Ours(ours) => ours.handle_timeout(now, out, files, leaving),
            TrackerClient::Bep15 {
                client,
                waiting_since,
            } => {
                if !leaving {
                    client.handle_timeout(now);
                    flush(client, waiting_since, now, out);
                }
            }
        }
    }

    /// When [`TrackerClient::handle_timeout`] (or credit that is due) needs the node.
    #[must_use]
    pub(super) fn poll_timeout(&self, leaving: bool) -> Option<Instant> {
        match self {
            TrackerClient::Ours(ours) => ours.poll_timeout(leaving),
            TrackerClient::Bep15 { client, .. } if !leaving => client.poll_timeout(),
            TrackerClient::Bep15 { .. } => None,
        }
    }

    /// What the tracker said since the last call, in order.
    pub(super) fn take_news(&mut self) -> Vec<TrackerNews> {
        let mut news = Vec::new();
        match self {
            TrackerClient::Ours(ours) => {
                while let Some(item) = ours.poll_news() {
                    news.push(item);
                }
            }
            TrackerClient::Bep15 { client, .. } => {
                let addr = client.addr();
                while let Some(event) = client.poll_event() {
                    news.push(bep15_news(addr, event));
                }
            }
        }
        news
    }

    // ---- what the node asks -------------------------------------------------------------

    /// Tell the tracker what the node holds of `info_hash` now (`files`), and whether a
    /// download of it runs. Our tracker is sent an announce, retried until acknowledged; a
    /// standard tracker's client announces it from now on (`started`, `completed`), or stops.
    pub(super) fn update(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        info_hash: Hash,
        downloading: bool,
    ) {
        match self {
            TrackerClient::Ours(ours) => ours.announce(now, out, files, info_hash),
            TrackerClient::Bep15 {
                client,
                waiting_since,
            } => {
                let held = files.get(&info_hash).map(|file| {
                    let m = &file.manifest;
                    let left = if file.complete() {
                        0
                    } else {
                        m.file_bytes - m.held_bytes(&file.have)
                    };
                    (m.file_bytes, left)
                });
                match held {
                    // Withdrawn (changed on disk) and not coming back by a download: not
                    // announced.
                    Some((file_bytes, left))
                        if left == file_bytes && file_bytes > 0 && !downloading =>
                    {
                        client.remove(now, info_hash)
                    }
                    Some((_, left)) => client.set_torrent(now, info_hash, Some(left), downloading),
                    None if downloading => client.set_torrent(now, info_hash, None, true),
                    None => client.remove(now, info_hash),
                }
                flush(client, waiting_since, now, out);
            }
        }
    }

    /// A download of `name` (info hashes `info_hashes`, when known) needs holders: our
    /// tracker is looked up by name, a standard one announced to for peers.
    pub(super) fn want_holders(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        name: &str,
        info_hashes: &[Hash],
    ) {
        match self {
            TrackerClient::Ours(ours) => ours.lookup(now, out, files, name),
            TrackerClient::Bep15 {
                client,
                waiting_since,
            } => {
                for info_hash in info_hashes {
                    client.want_peers(now, *info_hash);
                }
                flush(client, waiting_since, now, out);
            }
        }
    }

    /// Asks our tracker for a page of what it offers (see `wire/list.rs`); the answer comes
    /// as [`TrackerNews::Listed`]. A standard tracker cannot list: the error says so.
    pub(super) fn list(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
        ask: ListAsk,
    ) -> Result<(), String> {
        match self {
            TrackerClient::Ours(ours) => {
                ours.list(now, out, files, ask);
                Ok(())
            }
            TrackerClient::Bep15 { client, .. } => Err(format!(
                "tracker udp://{} is a standard (BEP 15) tracker: BEP 15 has no request that lists what a tracker offers (it knows info hashes only, and tells peers only for an info hash it is given)",
                client.addr()
            )),
        }
    }

    /// Stops asking for list request `request_id`'s page.
    pub(super) fn forget_list(&mut self, request_id: u32) {
        if let TrackerClient::Ours(ours) = self {
            ours.forget_list(request_id);
        }
    }

    /// Whether a download of `info_hash` is announced to a standard tracker as wanting
    /// peers (our tracker keeps no such state).
    pub(super) fn wants_peers(&self, info_hash: &Hash) -> bool {
        match self {
            TrackerClient::Ours(_) => false,
            TrackerClient::Bep15 { client, .. } => client.wants_peers(info_hash),
        }
    }

    /// A chunk of `bytes` of `info_hash` that `from_node` uploaded to us verified: credit
    /// for it with our tracker, `downloaded` for a standard one.
    pub(super) fn chunk_verified(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        from_node: u32,
        info_hash: Hash,
        bytes: u64,
    ) {
        match self {
            TrackerClient::Ours(ours) => ours.credit(now, out, from_node, info_hash, bytes),
            TrackerClient::Bep15 { client, .. } => client.count_downloaded(info_hash, bytes),
        }
    }

    /// `payload_bytes` of `info_hash` went to a peer (a standard tracker's `uploaded`; our
    /// tracker learns it from the downloaders' credit).
    pub(super) fn uploaded(&mut self, info_hash: Hash, payload_bytes: u64) {
        if let TrackerClient::Bep15 { client, .. } = self {
            client.count_uploaded(info_hash, payload_bytes);
        }
    }

    /// Reports the credit gathered so far to our tracker.
    pub(super) fn send_credits(&mut self, now: Instant, out: &mut Outbox) {
        if let TrackerClient::Ours(ours) = self {
            ours.send_credits(now, out);
        }
    }

    /// Credit is due, and the look-up budget alone would let a look-up carry it (see
    /// `ours.rs`); never with a standard tracker, which takes no credit.
    pub(super) fn credit_may_ride(&self, now: Instant) -> bool {
        match self {
            TrackerClient::Ours(ours) => ours.credit_due(now) && ours.lookup_budget_allows(now),
            TrackerClient::Bep15 { .. } => false,
        }
    }

    /// Credit gathered for our tracker is due at `now`.
    pub(super) fn credit_due(&self, now: Instant) -> bool {
        match self {
            TrackerClient::Ours(ours) => ours.credit_due(now),
            TrackerClient::Bep15 { .. } => false,
        }
    }

    /// When a look-up for new holders may go (our tracker's budget); a standard tracker's
    /// announces are spaced by its client itself.
    pub(super) fn lookup_allowed_at(&self, now: Instant) -> Instant {
        match self {
            TrackerClient::Ours(ours) => ours.lookup_allowed_at(now),
            TrackerClient::Bep15 { .. } => now,
        }
    }

    /// A look-up for new holders goes now (spent from our tracker's budget).
    pub(super) fn lookup_spent(&mut self, now: Instant) {
        if let TrackerClient::Ours(ours) = self {
            ours.lookup_spent(now);
        }
    }

    /// After [`TrackerNews::AnnounceAll`] was acted on: every request waiting goes again.
    pub(super) fn resend_pending(&mut self, now: Instant) {
        if let TrackerClient::Ours(ours) = self {
            ours.resend_pending(now);
        }
    }

    /// Leaving. Our tracker is told (credit first) and acknowledges; a standard tracker is
    /// sent `stopped` announces, which are not answered.
    pub(super) fn exit(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        files: &BTreeMap<Hash, LocalFile>,
    ) -> Leaving {
        match self {
            TrackerClient::Ours(ours) => match ours.exit(now, out, files) {
                true => Leaving::Wait,
                false => Leaving::Done("not registered with the tracker"),
            },
            TrackerClient::Bep15 {
                client,
                waiting_since,
            } => {
                // BEP 15 has no acknowledged exit: `stopped` announces go out with the exit.
                client.stop_all(now);
                flush(client, waiting_since, now, out);
                Leaving::Done("'stopped' announces sent to the tracker")
            }
        }
    }
}

/// Moves a BEP 15 client's datagrams into the node's queue.
fn flush(
    client: &mut Bep15Client,
    waiting_since: &mut Option<Instant>,
    now: Instant,
    out: &mut Outbox,
) {
    let mut buf = [0u8; crate::bep15::REQUEST_BYTES_MAX];
    while let Some(transmit) = client.poll_transmit(&mut buf) {
        out.send_bytes(transmit.to, buf[..transmit.len].to_vec());
        waiting_since.get_or_insert(now);
    }
}

/// What a standard tracker's event means for the node.
fn bep15_news(addr: SocketAddr, event: StandardEvent) -> TrackerNews {
    match event {
        StandardEvent::Connected => TrackerNews::Say(format!(
            "connected to tracker udp://{addr} (standard BitTorrent, BEP 15: no credit, exit or ranking)"
        )),
        StandardEvent::Silent => TrackerNews::Say(format!(
            "tracker udp://{addr} is not answering; retrying with backoff"
        )),
        StandardEvent::AnnounceUnanswered { info_hash } => TrackerNews::Say(format!(
            "tracker udp://{addr} does not answer announces of {} (is the info hash on its whitelist?); retrying with backoff",
            wire::hex(&info_hash)
        )),
        StandardEvent::Refused { info_hash, message } => {
            let what = info_hash.map_or_else(
                || "the connection".to_string(),
                |h| format!("the announce of {}", wire::hex(&h)),
            );
            TrackerNews::Say(format!(
                "tracker udp://{addr} refused {what}: {}",
                message.escape_debug()
            ))
        }
        StandardEvent::Announced {
            info_hash,
            peers,
            seeders,
            leechers,
        } => {
            log::info!(
                "tracker: {} has {seeders} seeders, {leechers} leechers; {} peers for us",
                wire::hex(&info_hash),
                peers.len()
            );
            TrackerNews::Peers { info_hash, peers }
        }
    }
}
