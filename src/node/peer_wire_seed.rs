//! Standard BitTorrent clients downloading from the node over the peer wire (BEP 3 over
//! TCP, with BEP 6 Fast and BEP 9 metadata): the node's table of connections, each a
//! sans-IO [`Connection`], and the limits over them. The reactor owns the sockets: it hands
//! each connection's bytes in and takes its bytes out through [`PeerWireDoor`], which
//! borrows what the connections need of the node (its files, its upload limit, its
//! counters) for one call.
//!
//! Only files held whole are served; a handshake for a file held in part (or not at all)
//! is refused, and the connections of a file the node stops holding whole (unshared,
//! changed on disk) are closed at the next sweep of their timers. Serving partly held files (a bitfield of the chunks held, `have` as they
//! verify) may come later.
//!
//! **Choking.** An interested peer is unchoked while fewer than [`UNCHOKED_MAX`]
//! connections are; a peer that loses interest is choked and frees its slot. Choking by
//! measured rate, with an optimistic unchoke (issue 18, "a good citizen"), is a later step.
//!
//! **Upload limit.** Every block's bytes are spent from the same bucket as the UDP
//! uploader's pieces (`--max-upload-rate`), so TCP does not bypass the limit; a block
//! waits for the bucket as a piece does, and the node wakes when it allows one again.

use super::{LocalFile, NodeStats, Uploader};
use crate::metainfo;
use crate::peer_wire::connection::{Close, Connection, SeedFile};
use crate::peer_wire::{BLOCK_BYTES, PeerId};
use crate::wire::Hash;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Peer wire connections open at once, over all peers.
pub const CONNECTIONS_MAX: usize = 128;
/// Peer wire connections open at once from one IP address.
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 8;
/// Connections unchoked at once (served). See the module doc.
pub const UNCHOKED_MAX: usize = 16;
/// How often the connections' timers (handshake and idle timeouts, keep-alives) are
/// looked at: they are seconds long, and one look at every connection costs little.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The reactor's name for a connection.
pub type ConnectionId = u64;

/// See the module documentation.
pub(crate) struct PeerWireSeed {
    peer_id: PeerId,
    udp_port: u16,
    connections: BTreeMap<ConnectionId, (IpAddr, Connection)>,
    per_address: HashMap<IpAddr, usize>,
    /// Connections the node closed, for the reactor to drop (at most [`CONNECTIONS_MAX`]).
    closed: VecDeque<ConnectionId>,
    next_sweep: Option<Instant>,
    /// When the upload limit allows a block again, if a connection waits for it.
    limit_wait: Option<Instant>,
}

impl PeerWireSeed {
    pub(crate) fn new(peer_id: PeerId, udp_port: u16) -> PeerWireSeed {
        PeerWireSeed {
            peer_id,
            udp_port,
            connections: BTreeMap::new(),
            per_address: HashMap::new(),
            closed: VecDeque::new(),
            next_sweep: None,
            limit_wait: None,
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_sweep, self.limit_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The peer wire part of the node, borrowed with what it needs for one call.
pub struct PeerWireDoor<'a> {
    pub(super) seed: &'a mut PeerWireSeed,
    pub(super) files: &'a BTreeMap<Hash, LocalFile>,
    pub(super) uploader: &'a mut Uploader,
    pub(super) stats: &'a mut NodeStats,
}

impl PeerWireDoor<'_> {
    /// A connection arrived from `remote`: whether to keep it (refused and counted over
    /// [`CONNECTIONS_MAX`] or [`CONNECTIONS_PER_ADDRESS_MAX`]).
    pub fn accept(&mut self, now: Instant, id: ConnectionId, remote: SocketAddr) -> bool {
        let ip = remote.ip();
        let from_ip = self.seed.per_address.get(&ip).copied().unwrap_or(0);
        if self.seed.connections.len() >= CONNECTIONS_MAX
            || from_ip >= CONNECTIONS_PER_ADDRESS_MAX
            || self.seed.connections.contains_key(&id)
        {
            self.stats.peer_wire_refused_over_limit += 1;
            return false;
        }
        self.stats.peer_wire_connections += 1;
        *self.seed.per_address.entry(ip).or_insert(0) += 1;
        let connection = Connection::new(now, self.seed.peer_id, self.seed.udp_port);
        self.seed.connections.insert(id, (ip, connection));
        self.seed.next_sweep.get_or_insert(now + SWEEP_INTERVAL);
        true
    }

    /// Bytes the reactor may read for `id` now (0: none, for now).
    pub fn read_room(&self, id: ConnectionId) -> usize {
        self.seed
            .connections
            .get(&id)
            .map_or(0, |(_, connection)| connection.read_room())
    }

    /// Bytes arrived on `id`.
    pub fn receive(&mut self, now: Instant, id: ConnectionId, bytes: &[u8]) {
        let files = self.files;
        let Some((_, connection)) = self.seed.connections.get_mut(&id) else {
            return;
        };
        connection.receive(now, bytes, &mut |info_hash| seed_file(files, info_hash));
        self.settle(id);
    }

    /// What to send on `id` now: first, blocks asked for, as far as the write buffer and
    /// the upload limit allow.
    pub fn output(&mut self, now: Instant, id: ConnectionId) -> &[u8] {
        self.fill(now, id);
        match self.seed.connections.get(&id) {
            Some((_, connection)) => connection.output(),
            None => &[],
        }
    }

    /// Whether `id` has bytes to send now, or blocks it could queue.
    pub fn has_output(&self, now: Instant, id: ConnectionId) -> bool {
        let limit_waits = self.seed.limit_wait.is_some_and(|at| at > now);
        self.seed
            .connections
            .get(&id)
            .is_some_and(|(_, c)| c.write_pending() > 0 || (c.can_fill() && !limit_waits))
    }

    /// The reactor sent `bytes` of [`PeerWireDoor::output`] on `id`.
    pub fn sent(&mut self, now: Instant, id: ConnectionId, bytes: usize) {
        if let Some((_, connection)) = self.seed.connections.get_mut(&id) {
            connection.sent(now, bytes);
            self.settle(id);
        }
    }

    /// The peer closed `id`, or its socket failed: forget it.
    pub fn hang_up(&mut self, id: ConnectionId) {
        if self.seed.connections.contains_key(&id) {
            self.remove(id);
        }
    }

    /// The next connection the node closed (a hostile or timed-out peer): the reactor
    /// drops its socket.
    pub fn poll_closed(&mut self) -> Option<ConnectionId> {
        self.seed.closed.pop_front()
    }

    /// Fires the connections' timers when the sweep is due; forgets a wait for the
    /// upload limit that is over. A spurious call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.seed.limit_wait.is_some_and(|at| at <= now) {
            self.seed.limit_wait = None;
        }
        if self.seed.next_sweep.is_none_or(|at| at > now) {
            return;
        }
        let ids: Vec<ConnectionId> = self.seed.connections.keys().copied().collect();
        for id in ids {
            if let Some((_, connection)) = self.seed.connections.get_mut(&id) {
                connection.handle_timeout(now);
                // A file unshared or changed on disk is no longer served (within a sweep).
                let held = |hash| self.files.get(&hash).is_some_and(|file| file.complete());
                if connection.info_hash().is_some_and(|hash| !held(hash)) {
                    connection.withdraw();
                }
                self.settle(id);
            }
        }
        self.seed.next_sweep = (!self.seed.connections.is_empty()).then_some(now + SWEEP_INTERVAL);
    }

    fn fill(&mut self, now: Instant, id: ConnectionId) {
        if self.seed.limit_wait.is_some_and(|at| at > now) {
            return;
        }
        let Some((_, connection)) = self.seed.connections.get_mut(&id) else {
            return;
        };
        let uploader = &mut *self.uploader;
        let (blocks, bytes) =
            connection.fill(&mut |len| uploader.try_spend_upload(now, u64::from(len)));
        self.stats.peer_wire_blocks_sent += blocks;
        self.stats.peer_wire_bytes_sent += bytes;
        if connection.can_fill() {
            let waiting = connection.next_block_bytes().unwrap_or(BLOCK_BYTES);
            self.seed.limit_wait = uploader.upload_ready_at(u64::from(waiting));
        }
        self.settle(id);
    }

    /// After a connection changed: its counts, its close, and who is unchoked.
    fn settle(&mut self, id: ConnectionId) {
        let Some((_, connection)) = self.seed.connections.get_mut(&id) else {
            return;
        };
        let (refused, metadata) = connection.take_counts();
        self.stats.peer_wire_requests_refused += refused;
        self.stats.peer_wire_metadata_pieces_sent += metadata;
        if let Some(why) = connection.closed() {
            let counter = match why {
                Close::NotBitTorrent | Close::Ourselves => &mut self.stats.peer_wire_bad_handshakes,
                Close::UnknownInfoHash => &mut self.stats.peer_wire_unknown_info_hash,
                Close::BadMessage(_) | Close::ProtocolViolation | Close::BadRequest => {
                    &mut self.stats.peer_wire_bad_messages
                }
                Close::TimedOut => &mut self.stats.peer_wire_timed_out,
                Close::ReadFailed => &mut self.stats.peer_wire_read_failed,
                Close::Withdrawn => &mut self.stats.peer_wire_withdrawn,
            };
            *counter += 1;
            log::debug!("peer wire connection {id} closed: {why:?}");
            self.remove(id);
            self.seed.closed.push_back(id);
            return;
        }
        if !connection.interested() && !connection.choked() {
            connection.choke();
        }
        self.unchoke_waiting();
    }

    /// Unchokes interested peers while slots are free.
    fn unchoke_waiting(&mut self) {
        let connections = self.seed.connections.values_mut().map(|(_, c)| c);
        let mut unchoked = 0;
        let mut waiting = Vec::new();
        for connection in connections {
            if !connection.choked() {
                unchoked += 1;
            } else if connection.interested() {
                waiting.push(connection);
            }
        }
        for connection in waiting
            .into_iter()
            .take(UNCHOKED_MAX.saturating_sub(unchoked))
        {
            connection.unchoke();
        }
    }

    fn remove(&mut self, id: ConnectionId) {
        let Some((ip, _)) = self.seed.connections.remove(&id) else {
            return;
        };
        if let Some(count) = self.seed.per_address.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.seed.per_address.remove(&ip);
            }
        }
        self.unchoke_waiting();
    }
}

/// The file `info_hash` names, when the node holds it whole.
fn seed_file(files: &BTreeMap<Hash, LocalFile>, info_hash: &Hash) -> Option<SeedFile> {
    let file = files.get(info_hash).filter(|file| file.complete())?;
    let manifest = &file.manifest;
    let info = Arc::clone(file.info_bytes.get_or_init(|| match &manifest.tree {
        Some(tree) => tree.info_bytes().into(),
        None => metainfo::info_dict(manifest).to_bytes().into(),
    }));
    Some(SeedFile {
        info_hash: *info_hash,
        file_bytes: manifest.file_bytes,
        piece_bytes: manifest.chunk_bytes,
        piece_count: manifest.chunk_count(),
        content: Arc::clone(&file.mapping),
        info,
    })
}
