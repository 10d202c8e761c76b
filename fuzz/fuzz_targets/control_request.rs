//! Any line sent to a node's control socket: no panic, accepted names are safe names, and
//! every refusal is one JSON line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| torrent::fuzz_checks::check_control_request(bytes));
