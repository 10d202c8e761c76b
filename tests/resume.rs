//! A downloader killed with SIGKILL and started again continues where it was: it fetches at
//! most the chunks that were not yet verified, and the result is byte-identical.

mod common;

use common::*;

#[test]
fn a_killed_downloader_resumes_where_it_was() {
    let scratch = Scratch::new("resume");
    let name = "resume.bin";
    let chunks = 64u32;
    let data = random_bytes(77, chunks as usize * 64 * 1024);
    scratch.put_file(1, name, &data);
    let tracker = tracker(&scratch);
    // Throttled, so that the kill lands mid-transfer (64 chunks of 64 KiB at 1 MiB/s).
    let _holder = holder(
        &scratch,
        1,
        tracker.addr,
        name,
        &["--max-upload-rate", "1M", "--chunk-size", "64K"],
    );
    let mut first = downloader(&scratch, 2, tracker.addr, name, &[]);
    let dir = scratch.node_dir(2);
    first.wait_verified(&dir, 16);
    first.kill_and_wait();
    let verified_before = verified_chunks(&dir);
    assert!(
        verified_before < chunks && !dir.join(name).exists(),
        "the download finished before the kill; slow it down"
    );

    let mut second = downloader(&scratch, 2, tracker.addr, name, &[]);
    let line = second.expect_downloaded(name);
    assert_file_is(&dir.join(name), &data);
    let fetched = chunks_from(&line, 1);
    assert!(fetched >= 1, "nothing fetched after the restart? {line}");
    assert!(
        fetched <= chunks - verified_before,
        "fetched {fetched} chunks after the restart, but only {} were missing: {line}",
        chunks - verified_before
    );
}
