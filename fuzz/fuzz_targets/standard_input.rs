//! What a node reads from outside our own protocol (a `.torrent`, a magnet link, a standard
//! tracker's reply): no panic, and what is accepted passes the node's own checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| torrent::fuzz_checks::check_standard_input(bytes));
