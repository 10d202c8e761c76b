//! Any bytes as a multi-file `.torrent`: no panic, and what is accepted can be placed (every
//! path checked, no collisions), is identified by its info bytes as given, and its pieces
//! cover every file exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| torrent::fuzz_checks::check_tree_torrent(bytes));
