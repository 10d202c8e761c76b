//! Any bytes as bencode: no panic, and what decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| torrent::fuzz_checks::check_bencode(bytes));
