//! Helpers of the format: hex, addresses, chunk arithmetic.

use super::*;

#[test]
fn hex_round_trip() {
    let hash: Hash = core::array::from_fn(|i| (i * 13) as u8);
    let text = hex(&hash);
    assert_eq!(text, "000d1a2734414e5b6875828f9ca9b6c3d0ddeaf7");
    assert_eq!(parse_hex(&text), Some(hash));
    assert_eq!(parse_hex(&text.to_uppercase()), Some(hash));
}

#[test]
fn parse_hex_refuses() {
    let good = "f".repeat(40);
    assert_eq!(parse_hex(&good), Some([0xff; HASH_BYTES]));
    let plus = format!("+f{}", "f".repeat(38));
    let minus = format!("-f{}", "f".repeat(38));
    let accented = format!("é{}", "f".repeat(38)); // 40 bytes, 39 characters
    let space = format!(" f{}", "f".repeat(38));
    for text in [
        "",
        &good[1..],
        &format!("{good}f"),
        &plus,
        &minus,
        &accented,
        &space,
    ] {
        assert_eq!(parse_hex(text), None, "{text:?}");
    }
    assert_eq!(parse_hex(&format!("g{}", &good[1..])), None);
}

#[test]
fn addresses_round_trip() {
    for addr in [
        "127.0.0.1:6881",
        "[::1]:9",
        "[2001:db8::7]:65535",
        "10.1.2.3:0",
    ] {
        let addr: SocketAddr = addr.parse().unwrap();
        assert_eq!(socket_addr(ip_to_bytes(addr.ip()), addr.port()), addr);
    }
    assert_eq!(HOLDERS[0].ip, ip_to_bytes("127.0.0.1".parse().unwrap()));
}

#[test]
fn chunk_arithmetic() {
    assert_eq!(chunk_count(100_000, CHUNK_BYTES), 7);
    assert_eq!(
        chunk_len(100_000, CHUNK_BYTES, 6),
        100_000 - 6 * CHUNK_BYTES
    );
    assert_eq!(chunk_len(100_000, CHUNK_BYTES, 7), 0);
    assert_eq!(bitmap_len(0), 0);
    assert_eq!(bitmap_len(10), 2);
    assert_eq!(bitmap_len(16), 2);
}

// ---------------------------------------------------------------- the fuzz corpus
