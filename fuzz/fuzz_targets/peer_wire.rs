//! Any bytes as a peer's TCP stream on the BitTorrent peer wire: no panic, no request for
//! more bytes than the limits allow, and every message re-encodes to its very bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    torrent::fuzz_checks::check_peer_wire(bytes);
});
