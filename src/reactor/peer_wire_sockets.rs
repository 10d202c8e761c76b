//! The node's peer wire sockets: a TCP listener on the address and port of its UDP socket
//! (the BitTorrent convention), and the connections it accepts. Bytes go to and from the
//! node's sans-IO connections through [`Node::peer_wire`]; this file only moves them.
//!
//! Each turn of the reactor's loop, after the node's timers: accept what waits, then for
//! each connection read what it may take and write what it has, each bounded per turn
//! ([`READ_BYTES_PER_TURN_MAX`], [`WRITE_BYTES_PER_TURN_MAX`]) so that the UDP socket is
//! never kept waiting by TCP. mio is edge-triggered: a socket left before `WouldBlock`
//! is remembered as still ready, and the loop comes back at once ([`PeerWireSockets::busy`]).

use crate::node::{ConnectionId, Node};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// The listener's token.
pub(super) const LISTENER: Token = Token(3);
/// Tokens of connections start here, far above the metrics server's (see
/// [`crate::metrics::MetricsServer::owns`]).
pub(super) const CONNECTION_TOKENS_START: usize = crate::metrics::TOKENS_END;
/// Connections accepted in one turn; the rest wait for the next.
const ACCEPTS_PER_TURN_MAX: usize = 32;
/// Bytes read from one connection in one turn.
const READ_BYTES_PER_TURN_MAX: usize = 256 * 1024;
/// Bytes written to one connection in one turn.
const WRITE_BYTES_PER_TURN_MAX: usize = 1024 * 1024;
/// Bytes read and written over all connections in one turn: a turn ends there, and the
/// next starts with the connection after the last one served.
const TURN_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Bytes of the buffer a connection is read into, before the node copies them.
const READ_CHUNK_BYTES: usize = 64 * 1024;

struct Stream {
    tcp: TcpStream,
    /// Not yet read to `WouldBlock` since mio said it was readable.
    readable: bool,
    /// Not yet written to `WouldBlock` since mio said it was writable.
    writable: bool,
}

/// See the module documentation.
pub(super) struct PeerWireSockets {
    listener: TcpListener,
    /// Not yet accepted to `WouldBlock`.
    listener_ready: bool,
    streams: BTreeMap<ConnectionId, Stream>,
    next_id: ConnectionId,
    /// Where the next turn starts (round-robin over connections).
    cursor: ConnectionId,
    scratch: Vec<u8>,
    /// A connection still has bytes to read or write: come back at once.
    busy: bool,
}

impl PeerWireSockets {
    /// Listens on TCP at `addr`, the UDP socket's address and port.
    pub(super) fn bind(addr: SocketAddr, registry: &Registry) -> io::Result<PeerWireSockets> {
        let mut listener = TcpListener::bind(addr)?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(PeerWireSockets {
            listener,
            listener_ready: true,
            streams: BTreeMap::new(),
            next_id: 0,
            cursor: 0,
            scratch: vec![0; READ_CHUNK_BYTES],
            busy: false,
        })
    }

    /// Whether `token` is one of ours.
    pub(super) fn owns(token: Token) -> bool {
        token == LISTENER || token.0 >= CONNECTION_TOKENS_START
    }

    /// mio said `token` is ready.
    pub(super) fn ready(&mut self, token: Token, readable: bool, writable: bool) {
        if token == LISTENER {
            self.listener_ready = true;
            return;
        }
        let id = (token.0 - CONNECTION_TOKENS_START) as ConnectionId;
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.readable |= readable;
            stream.writable |= writable;
        }
    }

    /// Whether a socket was left before `WouldBlock` with something to do.
    pub(super) fn busy(&self) -> bool {
        self.busy
    }

    /// One turn: accept, read, write, drop what the node closed.
    pub(super) fn serve(&mut self, now: Instant, node: &mut Node, registry: &Registry) {
        self.busy = false;
        if self.listener_ready {
            self.accept(now, node, registry);
        }
        // Round-robin: from the connection after the one the last turn ended with.
        let after = self.streams.range(self.cursor..).map(|(id, _)| *id);
        let before = self.streams.range(..self.cursor).map(|(id, _)| *id);
        let ids: Vec<ConnectionId> = after.chain(before).collect();
        let mut moved = 0;
        for id in ids {
            if moved >= TURN_BYTES_MAX {
                self.busy = true;
                break;
            }
            self.cursor = id + 1;
            let read = self.read(now, node, id);
            let written = read.and_then(|read| Some(read + self.write(now, node, id)?));
            match written {
                Some(bytes) => moved += bytes,
                None => {
                    node.peer_wire().hang_up(id);
                    self.drop_stream(id, registry);
                }
            }
        }
        while let Some(id) = node.peer_wire().poll_closed() {
            self.drop_stream(id, registry);
        }
    }

    fn accept(&mut self, now: Instant, node: &mut Node, registry: &Registry) {
        for _ in 0..ACCEPTS_PER_TURN_MAX {
            match self.listener.accept() {
                Ok((mut tcp, remote)) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let token =
                        Token(CONNECTION_TOKENS_START + (id as usize % CONNECTION_TOKENS_START));
                    // Dropped at once when refused: the peer sees the connection closed.
                    if !node.peer_wire().accept(now, id, remote) {
                        continue;
                    }
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(error) = registry.register(&mut tcp, token, interest) {
                        // Cannot be polled: forget it as if the peer had left.
                        log::debug!("peer wire: cannot register a connection: {error}");
                        node.peer_wire().hang_up(id);
                        continue;
                    }
                    // Blocks go out as soon as they are queued; the write buffer batches.
                    let _ = tcp.set_nodelay(true);
                    let stream = Stream {
                        tcp,
                        readable: true,
                        writable: true,
                    };
                    self.streams.insert(id, stream);
                }
                // Drained: mio reports the listener again when a connection arrives.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    return;
                }
                // A signal arrived mid-call: try again.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // A connection reset before it was accepted, or out of file descriptors:
                // logged, and the listener is looked at again next turn (not at once:
                // out of descriptors, that would spin).
                Err(error) => {
                    log::debug!("peer wire: accept: {error}");
                    return;
                }
            }
        }
        // Left at the bound, not at WouldBlock: come back at once for the rest.
        self.busy = true;
    }

    /// Reads what the connection may take this turn; returns the bytes read, `None` when
    /// the peer closed it or the socket failed.
    fn read(&mut self, now: Instant, node: &mut Node, id: ConnectionId) -> Option<usize> {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Some(0);
        };
        let mut read = 0;
        while stream.readable && read < READ_BYTES_PER_TURN_MAX {
            let room = node.peer_wire().read_room(id).min(self.scratch.len());
            if room == 0 {
                // Backpressure: the node reads again once the peer has taken our bytes.
                return Some(read);
            }
            match stream.tcp.read(&mut self.scratch[..room]) {
                // The peer closed its side.
                Ok(0) => return None,
                Ok(n) => {
                    read += n;
                    node.peer_wire().receive(now, id, &self.scratch[..n]);
                }
                // Drained: mio reports the socket again when bytes arrive.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    stream.readable = false;
                }
                // A signal arrived mid-call: try again.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // Reset by the peer, or another failure: the connection is over.
                Err(_) => return None,
            }
        }
        if stream.readable && node.peer_wire().read_room(id) > 0 {
            self.busy = true;
        }
        Some(read)
    }

    /// Writes what the connection has, this turn; returns the bytes written, `None` when
    /// the socket failed.
    fn write(&mut self, now: Instant, node: &mut Node, id: ConnectionId) -> Option<usize> {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Some(0);
        };
        let mut written = 0;
        while stream.writable && written < WRITE_BYTES_PER_TURN_MAX {
            let mut door = node.peer_wire();
            let out = door.output(now, id);
            if out.is_empty() {
                break;
            }
            match stream.tcp.write(out) {
                Ok(n) => {
                    written += n;
                    door.sent(now, id, n);
                }
                // The socket buffer is full: mio reports it writable when it drains.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    stream.writable = false;
                }
                // A signal arrived mid-call: try again.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // Reset by the peer, or another failure: the connection is over.
                Err(_) => return None,
            }
        }
        if stream.writable && node.peer_wire().has_output(now, id) {
            self.busy = true;
        }
        // What was sent may have made room to read messages held back.
        if stream.readable && node.peer_wire().read_room(id) > 0 {
            self.busy = true;
        }
        Some(written)
    }

    fn drop_stream(&mut self, id: ConnectionId, registry: &Registry) {
        if let Some(mut stream) = self.streams.remove(&id) {
            let _ = registry.deregister(&mut stream.tcp);
        }
    }
}
