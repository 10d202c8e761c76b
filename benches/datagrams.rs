//! Decoding and encoding every datagram kind, in datagrams per second (criterion reports the
//! time per datagram and, from the bytes, the throughput).
//!
//! Our own protocol's samples are the committed fuzz corpus (`fuzz/corpus/wire_decode/kind-*`,
//! one valid datagram of every kind, replayed by `cargo test` too), so a kind added to the
//! protocol is measured as soon as its corpus file exists. BEP 15's requests and responses
//! are built here with the crate's own encoders.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use torrent::bep15::{self, AnnounceRequest, AnnounceResponse, RequestHeader, ScrapeStats};
use torrent::wire::{self, Hash, U16, U32, U64};

/// Every valid datagram of the committed corpus, named by its kind.
fn corpus_samples() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_decode");
    let mut samples: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .filter_map(|entry| {
            let entry = entry.expect("corpus entry");
            let name = entry.file_name().into_string().ok()?;
            let kind = name.strip_prefix("kind-")?.to_string();
            Some((kind, std::fs::read(entry.path()).expect("corpus file")))
        })
        .collect();
    samples.sort();
    for (kind, bytes) in &samples {
        assert!(
            wire::decode(bytes).is_ok(),
            "corpus sample kind-{kind} must decode"
        );
    }
    assert!(samples.len() >= 18, "one sample of every kind expected");
    samples
}

fn our_protocol(c: &mut Criterion) {
    let mut group = c.benchmark_group("datagram");
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    for (kind, bytes) in corpus_samples() {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("decode", &kind), &bytes, |b, bytes| {
            b.iter(|| black_box(wire::decode(black_box(bytes)).is_ok()))
        });
        let message = wire::decode(&bytes).expect("checked above");
        group.bench_with_input(BenchmarkId::new("encode", &kind), &message, |b, message| {
            b.iter(|| black_box(black_box(message).encode(&mut buf)))
        });
    }
    group.finish();
}

const INFO_HASH: Hash = [0x5a; wire::HASH_BYTES];

fn announce_request() -> AnnounceRequest {
    AnnounceRequest {
        header: RequestHeader {
            connection_id: U64::new(0x0123_4567_89ab_cdef),
            action: U32::new(bep15::ACTION_ANNOUNCE),
            transaction_id: U32::new(7),
        },
        info_hash: INFO_HASH,
        peer_id: *b"-TR0100-abcdefghijkl",
        downloaded_bytes: U64::new(0),
        left_bytes: U64::new(1 << 30),
        uploaded_bytes: U64::new(0),
        event: U32::new(2),
        ip: [0; 4],
        key: U32::new(99),
        num_want: U32::new(u32::MAX),
        port: U16::new(6881),
    }
}

/// BEP 15 as the tracker sees it: requests decoded, responses encoded (and decoded, as a
/// client would).
fn bep15_datagrams(c: &mut Criterion) {
    let mut group = c.benchmark_group("bep15");
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];

    let len = bep15::encode_connect_request(&mut buf, 7).expect("fits");
    let connect = buf[..len].to_vec();
    let announce = bytemuck::bytes_of(&announce_request()).to_vec();
    let hashes = [INFO_HASH; 16];
    let len = bep15::encode_scrape_request(&mut buf, 1, 7, &hashes).expect("fits");
    let scrape = buf[..len].to_vec();
    for (name, request) in [
        ("connect", &connect),
        ("announce", &announce),
        ("scrape16", &scrape),
    ] {
        assert!(bep15::decode_request(request).is_ok(), "{name} must decode");
        group.throughput(Throughput::Bytes(request.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("decode_request", name),
            request,
            |b, bytes| b.iter(|| black_box(bep15::decode_request(black_box(bytes)).is_ok())),
        );
    }

    // Responses: the sizes a tracker sends most, connect and an announce with 50 peers.
    let peers: Vec<SocketAddr> = (0..50u16)
        .map(|i| SocketAddr::from((Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), 6881 + i)))
        .collect();
    let fixed = AnnounceResponse {
        header: bep15::ResponseHeader {
            action: U32::new(bep15::ACTION_ANNOUNCE),
            transaction_id: U32::new(7),
        },
        interval_s: U32::new(120),
        leechers: U32::new(10),
        seeders: U32::new(40),
    };
    let stats = [ScrapeStats {
        seeders: U32::new(40),
        completed: U32::new(3),
        leechers: U32::new(10),
    }; 16];
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_response/connect", |b| {
        b.iter(|| black_box(bep15::encode_connect_response(&mut buf, 7, black_box(42))))
    });
    group.bench_function("encode_response/announce50", |b| {
        b.iter(|| {
            black_box(bep15::encode_announce_response(
                &mut buf,
                &fixed,
                false,
                black_box(&peers),
            ))
        })
    });
    group.bench_function("encode_response/scrape16", |b| {
        b.iter(|| {
            black_box(bep15::encode_scrape_response(
                &mut buf,
                7,
                black_box(&stats),
            ))
        })
    });
    group.bench_function("encode_response/error", |b| {
        b.iter(|| {
            black_box(bep15::encode_error_response(
                &mut buf,
                7,
                black_box("unknown info hash"),
            ))
        })
    });
    let len = bep15::encode_announce_response(&mut buf, &fixed, false, &peers).expect("fits");
    let response = buf[..len].to_vec();
    group.throughput(Throughput::Bytes(response.len() as u64));
    group.bench_function("decode_response/announce50", |b| {
        b.iter(|| black_box(bep15::decode_response(black_box(&response), false).is_ok()))
    });
    group.finish();
}

criterion_group!(benches, our_protocol, bep15_datagrams);
criterion_main!(benches);
