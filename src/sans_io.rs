//! What every sans-IO core ([`crate::tracker::Tracker`], [`crate::node::Node`]) offers the
//! code that drives it: the reactor in a process, the simulation in a test.
//!
//! A core never touches a socket, the clock or a random source. Its driver hands it what
//! arrived and the time (`handle_*`), then polls what it wants done (`poll_*`) until it says
//! `None`:
//!
//! ```text
//!   handle_datagram(now, from, bytes)   a datagram arrived
//!   handle_timeout(now)                 poll_timeout's moment came (a spurious call does nothing)
//!   poll_transmit(now, buf) -> Transmit the next datagram, written into buf
//!   poll_timeout() -> Instant           when to call handle_timeout next
//! ```
//!
//! Each core has more inputs and outputs of its own (the node's console commands, hashing
//! jobs and lines for the user; the tracker's snapshots for its database), which its driver
//! calls by name.

use std::net::SocketAddr;
use std::time::Instant;

/// One datagram a sans-IO core wants sent: `len` bytes at the front of the buffer it was
/// given by `poll_transmit`, to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub len: usize,
    /// Send it from the local address this remote's datagrams reach us at, not `to`'s: a
    /// tracker's challenge to the address a node advertises must come from the address the
    /// node asked. `None`: `to`'s own. (Matters only on a socket bound to all addresses; see
    /// `udp::ReplySources`.)
    pub source_as_for: Option<SocketAddr>,
}

/// The inputs and outputs every core shares. See the module documentation.
pub trait Core {
    /// A datagram from `from` arrived at `now`.
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]);
    /// Timers due at `now` fire; with nothing due, nothing happens.
    fn handle_timeout(&mut self, now: Instant);
    /// Writes the next datagram to send into `buf` (at least
    /// [`crate::wire::DATAGRAM_BYTES_MAX`] bytes); `None` when there is nothing (for now: a
    /// paced or rate-limited sender has more later, at `poll_timeout`).
    #[must_use]
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;
    /// When `handle_timeout` should next be called; `None` when nothing waits.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;
}
