//! What writing a download costs, without the network: pieces written into a fresh
//! (fallocated) partial file the way a downloader does (through a `PieceWriter`), each chunk
//! hashed and released once complete. Prints the CPU seconds (user + system) of the whole process.
//!
//! `cargo run --release --example write_pieces -- [SIZE_MIB] [PIECE_BYTES] [STREAMS] [DIR]`
//!
//! STREAMS chunks are filled at once, a piece of each in turn (two holders sending to one
//! downloader interleave like this); chunks are taken in order from STREAMS places spread
//! over the file.

use std::sync::Arc;
use std::time::Instant;
use torrent::storage::{Manifest, StateDir, Storage};

const CHUNK_BYTES: u32 = 1 << 20;

/// User + system CPU seconds of this process so far (from `/proc/self/stat`, in ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib: u64 = args.first().map_or(1024, |a| a.parse().expect("SIZE_MIB"));
    let piece_bytes: usize = args
        .get(1)
        .map_or(65_471, |a| a.parse().expect("PIECE_BYTES"));
    let streams: u32 = args.get(2).map_or(2, |a| a.parse().expect("STREAMS"));
    let dir = std::path::PathBuf::from(args.get(3).map_or("/tmp/write_pieces", String::as_str));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the directory");
    let file_bytes = size_mib << 20;
    let chunk_count = (file_bytes / u64::from(CHUNK_BYTES)) as u32;
    let piece: Vec<u8> = (0..piece_bytes).map(|i| (i * 7 + 1) as u8).collect();
    // Hashes do not matter here: the example measures the work, not the verdict.
    let manifest = Manifest::new(
        "write_pieces.bin".into(),
        file_bytes,
        CHUNK_BYTES,
        vec![[0; 20]; chunk_count as usize],
    );
    let state = StateDir::open(&dir).expect("state directory");
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let (mapping, _) = state.open_partial(&manifest).expect("partial file");
    let mut writer = Arc::clone(&mapping).writer();
    let per_stream = chunk_count / streams;
    for round in 0..per_stream {
        let chunks: Vec<u32> = (0..streams).map(|s| s * per_stream + round).collect();
        let mut offset = 0usize;
        // For the log of a failing disk only: one clock reading per round.
        let now = Instant::now();
        while offset < CHUNK_BYTES as usize {
            let len = piece_bytes.min(CHUNK_BYTES as usize - offset);
            for &chunk in &chunks {
                let at = u64::from(chunk) * u64::from(CHUNK_BYTES) + offset as u64;
                assert!(writer.write(now, at, &piece[..len]));
            }
            offset += len;
        }
        // As the download does before it hands complete chunks to the hashers.
        writer.flush(now);
        for &chunk in &chunks {
            let at = u64::from(chunk) * u64::from(CHUNK_BYTES);
            let hash = mapping.sha1(at, CHUNK_BYTES as usize);
            std::hint::black_box(hash);
            mapping.release(at, CHUNK_BYTES as usize).expect("release");
        }
    }
    let written = started.elapsed().as_secs_f64();
    let cpu_written = cpu_seconds() - cpu_before;
    mapping.flush().expect("flush");
    println!(
        "{size_mib} MiB, pieces of {piece_bytes} B, {streams} streams: written+hashed in {written:.3} s, {cpu_written:.3} CPU s; with flush {:.3} s, {:.3} CPU s",
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu_before
    );
    let _ = std::fs::remove_dir_all(&dir);
}
