//! What the node's parts hand out: small datagrams to send ([`Outbox::send`]), lines and
//! jobs for the process around the node ([`NodeEvent`]), and the counters `status` shows
//! ([`NodeStats`]). Every queue is bounded; what does not fit is dropped and counted.

use super::Job;
use super::events::Event;
use crate::wire::{self, Message};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Most small datagrams (requests, replies) waiting to be sent.
pub const CONTROL_QUEUE_MAX: usize = 8192;
/// Most lines, jobs and other events waiting to be polled.
pub const EVENT_QUEUE_MAX: usize = 8192;

/// What the node tells the process around it.
pub enum NodeEvent {
    /// Something for the user (stdout: a line, or JSON with `--json`) and the log.
    Report(Event),
    /// Lines for the user only (stdout), not the log: the answers to `status` and `help`,
    /// which a script may ask for thousands of times (each `status` is kilobytes).
    Print(String),
    /// Run this on a hasher thread and hand the result to `handle_job_done`.
    Job(Job),
    /// The node is done; exit the process with this code.
    Exit(i32),
}

/// Counters of what arrived and what was dropped, shown by `status` (and, by these names, in
/// the control socket's status).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeStats {
    pub datagrams_received: u64,
    pub dropped_malformed: u64,
    pub dropped_unexpected: u64,
    /// Requests dropped because their sender went over its budget ([`crate::budget`]).
    pub dropped_over_budget: u64,
    pub welcomes_sent: u64,
    pub requests_rejected: u64,
    pub pieces_received: u64,
    pub pieces_unrequested: u64,
    pub pieces_duplicate: u64,
    /// Pieces taken for lost because their timeout passed.
    pub pieces_timed_out: u64,
    /// Pieces taken for lost because a piece asked later of the same paced holder arrived
    /// first (see `download::timers::scan_timeouts`).
    pub pieces_lost_out_of_order: u64,
    pub pieces_sent: u64,
    pub bytes_sent: u64,
    pub chunks_failed_hash: u64,
    /// Manifests (a file's hashes, or a tree's info dictionary) refused whole: not hashing to
    /// the info hash listed, or describing a tree that cannot be placed (a path with `..`,
    /// two paths one on a case-insensitive file system, lengths past the shape...).
    pub manifests_refused: u64,
    pub upload_queue_full: u64,
    /// Piece requests refused for want of an upload slot.
    pub requests_busy: u64,
    /// Requests to start a chunk refused while chunks sent fewer times wait (spreading).
    pub requests_elsewhere: u64,
    /// Have-maps sent unasked, when a chunk verified, to peers that asked lately.
    pub haves_pushed: u64,
    /// Peers told, as the node left, that it no longer shares what they asked of it.
    pub farewells_sent: u64,
    pub control_queue_full: u64,
    /// Peer wire (TCP) connections accepted, and refused over a connection limit.
    pub peer_wire_connections: u64,
    pub peer_wire_refused_over_limit: u64,
    /// Peer wire connections closed: a stream that was not a BitTorrent handshake (or our
    /// own peer id), a file not held whole, a message refused, a timeout, a failed read.
    /// libtorrent, as configured by default, first tries an encrypted stream (MSE, which we
    /// do not speak), then comes back in plain text: each of its peers adds one bad
    /// handshake.
    pub peer_wire_bad_handshakes: u64,
    pub peer_wire_unknown_info_hash: u64,
    pub peer_wire_bad_messages: u64,
    pub peer_wire_timed_out: u64,
    pub peer_wire_read_failed: u64,
    /// Peer wire connections closed because the node stopped holding their file whole.
    pub peer_wire_withdrawn: u64,
    /// Peer wire requests refused: out of the file's range, too long, or too many queued.
    pub peer_wire_requests_refused: u64,
    /// Blocks and their bytes sent on the peer wire, and BEP 9 metadata pieces.
    pub peer_wire_blocks_sent: u64,
    pub peer_wire_bytes_sent: u64,
    pub peer_wire_metadata_pieces_sent: u64,
}

/// A small datagram waiting to be sent.
struct Outgoing {
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// Queues shared by the node's parts: what to send, what to tell, what was counted.
pub(crate) struct Outbox {
    control: VecDeque<Outgoing>,
    events: VecDeque<NodeEvent>,
    /// Plain counters, which every part adds to.
    pub(crate) stats: NodeStats,
    /// Where a datagram is encoded before it is copied, at its length, into the queue.
    scratch: Vec<u8>,
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox {
            control: VecDeque::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
            scratch: vec![0; wire::DATAGRAM_BYTES_MAX],
        }
    }

    /// Writes the next small datagram into `buf` (which must hold
    /// [`wire::DATAGRAM_BYTES_MAX`] bytes): where to, and how long.
    pub(super) fn pop_control(&mut self, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let outgoing = self.control.pop_front()?;
        let len = outgoing.bytes.len();
        buf[..len].copy_from_slice(&outgoing.bytes);
        Some((outgoing.to, len))
    }

    pub(super) fn pop_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// The outbox's queues, each with its `*_MAX` limit (for the simulation's checkers).
    pub(super) fn queue_lens(&self) -> [super::QueueLen; 2] {
        [
            ("node control queue", self.control.len(), CONTROL_QUEUE_MAX),
            ("node event queue", self.events.len(), EVENT_QUEUE_MAX),
        ]
    }

    /// Queues a datagram already encoded (a standard tracker's), under the same bound as
    /// [`Outbox::send`].
    pub(crate) fn send_bytes(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.control.len() >= CONTROL_QUEUE_MAX {
            self.stats.control_queue_full += 1;
            return;
        }
        self.control.push_back(Outgoing { to, bytes });
    }

    /// Datagrams waiting in the control queue.
    pub(crate) fn control_len(&self) -> usize {
        self.control.len()
    }

    /// Queues a small datagram; dropped and counted when the queue is full (it is bounded,
    /// and every request it carries is retried on a timer).
    pub(crate) fn send(&mut self, to: SocketAddr, message: &Message<'_>) {
        if self.control.len() >= CONTROL_QUEUE_MAX {
            self.stats.control_queue_full += 1;
            return;
        }
        match message.encode(&mut self.scratch) {
            Ok(len) => self.control.push_back(Outgoing {
                to,
                bytes: self.scratch[..len].to_vec(),
            }),
            Err(error) => log::error!("cannot encode {:?}: {error:?}", message.kind()),
        }
    }

    /// A line for the user that no script needs typed: an [`Event::Message`].
    pub(crate) fn say(&mut self, line: String) {
        self.report(Event::message(line));
    }

    pub(crate) fn report(&mut self, event: Event) {
        self.event(NodeEvent::Report(event));
    }

    /// Lines for stdout alone: see [`NodeEvent::Print`].
    pub(crate) fn print(&mut self, text: String) {
        self.event(NodeEvent::Print(text));
    }

    pub(crate) fn event(&mut self, event: NodeEvent) {
        if self.events.len() < EVENT_QUEUE_MAX {
            self.events.push_back(event);
        } else {
            log::warn!("event queue full; an event was dropped");
        }
    }
}
