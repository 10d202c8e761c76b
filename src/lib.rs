//! # torrent
//!
//! (The architecture essay is written once the layers exist; see the module docs.)

#![deny(unsafe_code)]

pub mod cli;
pub mod console;
pub mod node;
pub mod rng;
#[doc(hidden)]
pub mod sim;
pub mod storage;
pub mod tracker;
pub mod wire;

use std::net::SocketAddr;

/// One datagram a sans-IO core wants sent: `len` bytes at the front of the buffer it was
/// given by `poll_transmit`, to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub len: usize,
}
