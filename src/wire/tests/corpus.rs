//! The starting corpus of the `wire_decode` fuzz target, written from the samples here.

use super::*;

/// Rewrites the curated seed corpus of the `wire_decode` fuzz target: one valid datagram per
/// kind and a few refused ones. Run by hand after a format change:
/// `cargo test --lib -- --ignored write_wire_fuzz_corpus`.
#[test]
#[ignore = "writes files; run by hand after a wire format change"]
fn write_wire_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_decode");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = samples()
        .iter()
        .map(|message| (format!("kind-{:?}", message.kind()), encoded(message)))
        .collect();
    let exit_ack = encoded(&Message::ExitAck(&EXIT_ACK));
    let mut bad_magic = exit_ack.clone();
    bad_magic[0] = b'X';
    let lookup = encoded(&samples()[4]);
    let lookup_fixed = &lookup[..8 + size_of::<Lookup>()];
    let mut lying = encoded(&samples()[5]);
    lying[8 + 3] = 4;
    let mut spare = encoded(&Message::HaveMap {
        fixed: &HAVE_MAP,
        bitmap: &BITMAP,
    });
    *spare.last_mut().unwrap() |= 1;
    let [a, b] = LIST_RECORDS;
    let b_as_a = ListRecord { name_bytes: 5, ..b };
    let out_of_order = encoded(&Message::ListReply {
        fixed: &LIST_REPLY,
        records: &[a, b_as_a],
        names: "a.bina.bin",
    });
    files.extend([
        ("invalid-list-reply-out-of-order".into(), out_of_order),
        ("invalid-truncated".into(), exit_ack[..5].to_vec()),
        ("invalid-bad-magic".into(), bad_magic),
        (
            "invalid-name-dotdot".into(),
            with_name(lookup_fixed, b"../x"),
        ),
        (
            "invalid-name-not-utf8".into(),
            with_name(lookup_fixed, b"\xff"),
        ),
        ("invalid-lying-holder-count".into(), lying),
        ("invalid-have-map-spare-bit".into(), spare),
    ]);
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
