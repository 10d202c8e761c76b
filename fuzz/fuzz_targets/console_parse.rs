//! Any UTF-8 line typed at the console: no panic, and accepted names are safe names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| torrent::fuzz_checks::check_console_line(bytes));
