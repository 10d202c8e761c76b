//! Chunk throughput, in bytes per second: the wire codec for pieces and piece requests,
//! SHA-1 of a chunk, writing pieces into a mapped file and hashing it, and a whole transfer
//! between two nodes through the in-process simulation (no latency, no loss).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use torrent::console::Command;
use torrent::sim::{NetConfig, Sim};
use torrent::storage::{Content, Mapping};
use torrent::wire::{self, Message, PeerAsk, U32, U64};

const MIB: usize = 1024 * 1024;
/// Piece sizes measured: the largest (one IPv4 datagram) and one that fits an Ethernet MTU.
const PIECE_SIZES: [usize; 2] = [wire::PIECE_BYTES_MAX, 1400];

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn piece_fixed() -> wire::Piece {
    wire::Piece {
        info_hash: [7; wire::HASH_BYTES],
        chunk: U32::new(3),
        offset: U32::new(0),
    }
}

fn piece_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("piece");
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    for size in PIECE_SIZES {
        let data = pattern(size);
        let fixed = piece_fixed();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("encode", size), &data, |b, data| {
            b.iter(|| {
                let message = Message::Piece {
                    fixed: &fixed,
                    data: black_box(data),
                };
                black_box(message.encode(&mut buf).expect("fits"))
            })
        });
        let len = Message::Piece {
            fixed: &fixed,
            data: &data,
        }
        .encode(&mut buf)
        .expect("fits");
        let datagram = buf[..len].to_vec();
        group.bench_with_input(
            BenchmarkId::new("decode", size),
            &datagram,
            |b, datagram| {
                b.iter(|| match wire::decode(black_box(datagram)) {
                    Ok(Message::Piece { data, .. }) => black_box(data.len()),
                    other => panic!("not a piece: {other:?}"),
                })
            },
        );
    }
    group.finish();
}

fn piece_request_codec(c: &mut Criterion) {
    let request = wire::PieceRequest {
        ask: PeerAsk {
            cookie: U64::new(0x0123_4567_89ab_cdef),
            node_id: U32::new(9),
            info_hash: [7; wire::HASH_BYTES],
        },
        chunk: U32::new(3),
        offset: U32::new(0),
        length: U32::new(16 * 1400),
        piece_bytes: U32::new(1400),
    };
    let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
    let len = Message::PieceRequest(&request)
        .encode(&mut buf)
        .expect("fits");
    let datagram = buf[..len].to_vec();
    let mut group = c.benchmark_group("piece_request");
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("encode", |b| {
        b.iter(|| black_box(Message::PieceRequest(black_box(&request)).encode(&mut buf)))
    });
    group.bench_function("decode", |b| {
        b.iter(|| black_box(wire::decode(black_box(&datagram)).is_ok()))
    });
    group.finish();
}

fn sha1_chunk(c: &mut Criterion) {
    let chunk = pattern(MIB);
    let mut group = c.benchmark_group("sha1");
    group.throughput(Throughput::Bytes(MIB as u64));
    // The design card's crate and the one the node uses (SHA-NI when the CPU has it),
    // side by side: the figures behind choosing the second (see the README).
    group.bench_function("1MiB sha1_smol", |b| {
        b.iter(|| {
            black_box(
                sha1_smol::Sha1::from(black_box(&chunk[..]))
                    .digest()
                    .bytes(),
            )
        })
    });
    group.bench_function("1MiB sha1 (RustCrypto)", |b| {
        use sha1::Digest;
        b.iter(|| black_box(sha1::Sha1::digest(black_box(&chunk[..]))))
    });
    group.finish();
}

/// Pieces copied into a mapped file (as a download writes them), then the chunk hashed.
fn mapping_write_and_hash(c: &mut Criterion) {
    let path = std::env::temp_dir().join(format!("torrent-bench-{}.part", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");
    file.set_len(MIB as u64).expect("size the temp file");
    let mapping = Mapping::read_write(&file, &path, MIB as u64).expect("map the temp file");
    let mut group = c.benchmark_group("mapping_write_hash");
    group.throughput(Throughput::Bytes(MIB as u64));
    for size in PIECE_SIZES {
        let piece = pattern(size);
        group.bench_with_input(BenchmarkId::from_parameter(size), &piece, |b, piece| {
            let now = Instant::now();
            b.iter(|| {
                for offset in (0..MIB).step_by(size) {
                    let len = size.min(MIB - offset);
                    assert!(mapping.write(now, offset as u64, &piece[..len]));
                }
                black_box(mapping.sha1(0, MIB))
            })
        });
    }
    group.finish();
    drop(mapping);
    let _ = std::fs::remove_file(&path);
}

/// Tracker, one holder and one downloader in the simulation: the time from the download
/// command to the published, verified file (sharing and hashing the source is not counted).
fn sim_transfer(c: &mut Criterion) {
    const LEN: usize = 16 * MIB;
    const NAME: &str = "blob.bin";
    let bytes = pattern(LEN);
    let mut group = c.benchmark_group("sim_transfer");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("16MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for seed in 0..iters {
                let mut sim = Sim::new(seed, NetConfig::default());
                let holder = sim.add_node(|_| {});
                let downloader = sim.add_node(|_| {});
                sim.write_file(holder, NAME, &bytes);
                sim.command(
                    holder,
                    Command::Send {
                        name: NAME.to_string(),
                    },
                );
                sim.run_until(
                    |sim| sim.said_starting(holder, "sharing "),
                    Duration::from_secs(10),
                )
                .expect("sharing");
                let started = Instant::now();
                sim.command(
                    downloader,
                    Command::Download {
                        name: NAME.to_string(),
                        pin: None,
                    },
                );
                sim.run_until(
                    |sim| sim.said_starting(downloader, "downloaded "),
                    Duration::from_secs(60),
                )
                .expect("download");
                total += started.elapsed();
                assert!(sim.file(downloader, NAME).as_deref() == Some(&bytes[..]));
            }
            total
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    piece_codec,
    piece_request_codec,
    sha1_chunk,
    mapping_write_and_hash,
    sim_transfer
);
criterion_main!(benches);
