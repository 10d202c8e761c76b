//! One download fed any sequence of peer messages, timeouts and hash results, from its
//! holders or a stranger: no panic, its account holds, nothing unverified counts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _published = torrent::fuzz_checks::check_download_messages(bytes);
});
