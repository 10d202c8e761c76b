//! Any bytes as a peer's TCP stream on the BitTorrent peer wire: no panic, no request for
//! more bytes than the limits allow, and every message re-encodes to its very bytes; and
//! the same stream into our downloader's connection (`peer_wire::leech`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    torrent::fuzz_checks::check_peer_wire(bytes);
    torrent::fuzz_checks::check_peer_wire_leech(bytes);
});
