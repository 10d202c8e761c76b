//! What a node is told when it starts: everything on its command line (the original's
//! `configs.py`, per node), with the defaults written once, here.

use crate::mtu::Routes;
use crate::wire;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything a node is told on its command line (the original's `configs.py`, per node).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub node_id: u32,
    pub tracker: SocketAddr,
    /// The tracker is a standard BitTorrent one (BEP 15, `udp://`), not ours.
    pub standard_tracker: bool,
    /// The address our socket is bound to: its port is told to a standard tracker as the
    /// peer port, and the tracker's lists are cleaned of it.
    pub local_addr: SocketAddr,
    /// `--advertise`: the address (port filled in) trackers are asked to give peers instead
    /// of the one they see us at (see `advertise.rs`).
    pub advertise: Option<SocketAddr>,
    /// This host's interface addresses, for recognising ourselves in a standard tracker's
    /// peer list when bound to all addresses (read by the reactor; empty in a simulation).
    pub interface_ips: Vec<std::net::IpAddr>,
    /// Holders a download pulls from at once (the original's `MAX_SPLITTNES_RATE`).
    pub peers_max: usize,
    /// Data bytes per piece datagram (the original's `CHUNK_PIECES_SIZE`).
    pub piece_bytes: u32,
    /// Chunk size for files this node shares (raised automatically for huge files).
    pub chunk_bytes: u32,
    /// How often the node tells the tracker it is alive (the original's `NODE_TIME_INTERVAL`).
    pub heartbeat_interval: Duration,
    /// A download with no usable holder for this long fails.
    pub give_up_after: Duration,
    /// Upload budget for the whole node, bytes per second.
    pub max_upload_bytes_per_s: Option<u64>,
    /// Download budget for the whole node, bytes per second (the pieces its downloads ask).
    pub max_download_bytes_per_s: Option<u64>,
    /// Most pieces in flight from one peer: bounded by the receive buffer the kernel granted.
    pub window_pieces_max: u32,
    /// Threads used to hash a file being shared.
    pub hash_threads: usize,
    /// Route MTUs toward peers (the kernel's in a real process): how large a datagram to a
    /// peer may be (see [`crate::mtu`]).
    pub routes: Routes,
    /// Which peers a download asks for a pace (`--pace`).
    pub pace: PaceMode,
}

/// Which peers a download asks to pace their pieces at the rate it measures (see
/// `node/download/congestion.rs`). Unpaced peers send as fast as they can, and the window of
/// one that loses pieces halves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaceMode {
    Off,
    /// Peers across a network, not those on loopback-class routes (the default): on a real
    /// link pacing keeps a bottleneck's queue from overflowing and random loss from slowing
    /// the transfer (bench/netlab.py). Loopback-class routes, which include the simulation's,
    /// stay unpaced: a paced swarm there finished later (bench/README.md, "Congestion
    /// control").
    OffLoopback,
    Always,
}

impl PaceMode {
    /// Whether a peer whose route has `route_mtu` is paced.
    pub fn applies(self, route_mtu: u32) -> bool {
        match self {
            PaceMode::Off => false,
            PaceMode::OffLoopback => route_mtu < crate::mtu::LOOPBACK_MTU_MIN,
            PaceMode::Always => true,
        }
    }
}

impl NodeConfig {
    pub fn new(node_id: u32, tracker: SocketAddr) -> NodeConfig {
        NodeConfig {
            node_id,
            tracker,
            standard_tracker: false,
            local_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            advertise: None,
            interface_ips: Vec::new(),
            peers_max: 3,
            piece_bytes: wire::PIECE_BYTES_MAX as u32,
            chunk_bytes: crate::storage::CHUNK_BYTES_DEFAULT,
            heartbeat_interval: Duration::from_secs(20),
            give_up_after: Duration::from_secs(30),
            max_upload_bytes_per_s: None,
            max_download_bytes_per_s: None,
            window_pieces_max: 64,
            hash_threads: 2,
            routes: Routes::assumed(),
            pace: PaceMode::OffLoopback,
        }
    }
}
