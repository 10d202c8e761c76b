//! Any bytes sent to a fresh tracker (our protocol or BEP 15): no panic, no amplification.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| torrent::fuzz_checks::check_tracker_datagram(bytes));
