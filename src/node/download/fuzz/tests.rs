use super::*;

/// Rewrites the curated seed corpus of the `download_messages` fuzz target from the inputs
/// of the tests here. Run by hand after the harness's input format changes:
/// `cargo test --lib -- --ignored write_download_fuzz_corpus`.
#[test]
#[ignore = "writes files; run by hand after the harness's input format changes"]
fn write_download_fuzz_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/download_messages");
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = [
        ("seed-honest-one-byte", rounds(0, 60, 0, 0)),
        ("seed-honest-three-chunks", rounds(2, 150, 0, 0)),
        ("seed-honest-paced", rounds(7, 200, 0, 0)),
        ("seed-honest-probing", rounds(15, 200, 0, 0)),
        ("seed-corrupted-chunk", corrupted()),
        ("seed-lost-pieces", lost()),
        ("seed-forged-pieces", forged()),
        ("seed-silent-swarm", silent()),
    ];
    for (name, input) in seeds {
        std::fs::write(dir.join(name), input).unwrap();
    }
}

/// An input: the shape byte, then `rounds` of "an address answers its oldest request"
/// (with `flaws` for the first `flawed` rounds) and "a hash check finishes".
fn rounds(shape: u8, rounds: usize, flawed: usize, flaws: u8) -> Vec<u8> {
    let mut input = vec![shape];
    for round in 0..rounds {
        let flaws = if round < flawed { flaws } else { 0 };
        input.extend_from_slice(&[0, round as u8, 0, flaws, 11, 0]);
    }
    input
}

/// Honest holders complete the download, for every file size, pace mode and route, and
/// every chunk is credited once.
#[test]
fn honest_holders_complete_the_download() {
    for shape in 0..24 {
        let outcome = check_download_messages(&rounds(shape, 400, 0, 0));
        let chunks = Swarm::new(shape % 4).chunk_count();
        assert!(outcome.published, "shape {shape}: {outcome:?}");
        assert!(!outcome.failed);
        assert_eq!(outcome.chunks_verified, chunks, "shape {shape}");
        assert_eq!(outcome.chunks_failed_hash, 0);
    }
}

/// A wrong byte in a chunk fails its SHA-1: the chunk is fetched again, and the file is
/// published with the right bytes (which `check` compares) all the same.
fn corrupted() -> Vec<u8> {
    let mut input = rounds(2, 12, 12, 1);
    for round in 0..400u32 {
        // The clock moves to the download's next deadline, then holders answer.
        input.extend_from_slice(&[10, 0, round as u8, 0, 0, 11, 0]);
    }
    input
}

#[test]
fn a_corrupted_chunk_is_fetched_again() {
    let outcome = check_download_messages(&corrupted());
    assert!(outcome.published, "{outcome:?}");
    assert!(outcome.chunks_failed_hash > 0, "{outcome:?}");
}

/// Lost pieces (every other one of each answer, for a while) are asked again once the
/// clock passes their timeout.
fn lost() -> Vec<u8> {
    let mut input = rounds(3, 60, 60, 2);
    for round in 0..400u32 {
        input.extend_from_slice(&[10, 0, round as u8, 0, 0, 11, 0]);
    }
    input
}

#[test]
fn lost_pieces_are_asked_again() {
    let outcome = check_download_messages(&lost());
    assert!(outcome.published, "{outcome:?}");
}

/// Forged pieces with wrong bytes, and nothing else, never make a chunk count.
fn forged() -> Vec<u8> {
    let mut input = vec![2];
    for i in 0..200u16 {
        let [hi, lo] = ((u32::from(i) * 4096 % 16_384) as u16).to_be_bytes();
        input.extend_from_slice(&[1, i as u8, i as u8 % 3, hi, lo, 0x10, 0x00, 0x03]);
        input.extend_from_slice(&[11, 0]);
    }
    input
}

#[test]
fn forged_pieces_alone_verify_nothing() {
    let outcome = check_download_messages(&forged());
    assert!(!outcome.published);
    assert_eq!(outcome.chunks_verified, 0);
}

/// No holder answers: the download gives up once the clock passes its deadline.
fn silent() -> Vec<u8> {
    [vec![1], [10].repeat(200)].concat()
}

#[test]
fn a_silent_swarm_is_given_up() {
    let outcome = check_download_messages(&silent());
    assert!(outcome.failed, "{outcome:?}");
}

/// The harness's own check bites: a held chunk whose bytes change behind the download's
/// back is caught.
#[test]
#[should_panic(expected = "is held with wrong bytes")]
fn a_held_chunk_with_wrong_bytes_is_caught() {
    let input = rounds(3, 200, 0, 0);
    let mut input = Input(&input);
    let mut harness = Harness::new(&mut input).unwrap();
    let info_hash = harness.swarm.manifest.info_hash;
    // Until chunk 1 is held, and the file not yet published (it is then read-only).
    while !harness.files.get(&info_hash).is_some_and(|f| f.have.get(1)) {
        harness.step(&mut input).unwrap();
        harness.check(Reread::NewlyHeld);
    }
    assert!(!harness.said_downloaded);
    let file = &harness.files[&info_hash];
    let mut writer = std::sync::Arc::clone(&file.mapping).writer();
    let at = u64::from(CHUNK_BYTES);
    assert!(writer.write(harness.now, at, &[!swarm::file_byte(at)]));
    assert!(writer.flush(harness.now));
    harness.check(Reread::AllHeld);
}
