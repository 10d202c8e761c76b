//! Hashing a directory tree for sharing against hashing one file of the same bytes, as
//! issue 17 compares them (the tree at ≥ 0.9× the file, warm cache, on every core).
//!
//! ```text
//! cargo run --release --example tree_hash -- TREE_DIR FILE [RUNS] [THREADS]
//! ```
//!
//! Each run hashes the tree (`tree::walk::build`: the walk, every file opened by handle,
//! pieces across file boundaries) and the file (`storage::hash_chunks` over a read-only
//! mapping, as a node shares a file) with 1 MiB pieces, one after the other, the order
//! alternating from run to run; it prints each time and the medians. `bench/tree_hash.py`
//! makes the tree and the file and runs this.

use std::fs::File;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use torrent::storage::{self, Mapping};

/// The node's default chunk size: a tree and a file of up to 256 GiB keep it.
const PIECE_BYTES: u32 = 1 << 20;

fn hash_tree(path: &Path, threads: usize) -> Result<(Duration, u64), String> {
    let started = Instant::now();
    let built = torrent::tree::walk::build(path, PIECE_BYTES, threads)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = built
        .manifest
        .files()
        .iter()
        .map(|f| f.length_bytes())
        .sum();
    Ok((started.elapsed(), bytes))
}

fn hash_file(path: &Path, threads: usize) -> Result<(Duration, u64), String> {
    let started = Instant::now();
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mapping = Mapping::read_only(&file, len).map_err(|e| e.to_string())?;
    let hashes = storage::hash_chunks(&mapping, PIECE_BYTES, threads);
    std::hint::black_box(hashes);
    Ok((started.elapsed(), len))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: tree_hash TREE_DIR FILE [RUNS] [THREADS]";
    let (Some(tree), Some(file)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let number = |i: usize, default: usize| match args.get(i) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().ok().filter(|n| *n > 0).ok_or(()),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (Ok(runs), Ok(threads)) = (number(2, 5), number(3, cores)) else {
        eprintln!("{usage} (RUNS and THREADS are positive numbers)");
        return ExitCode::from(2);
    };
    let (mut tree_mbs, mut file_mbs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let tree_first = run % 2 == 0;
        let mut results = [None, None];
        for step in 0..2 {
            let is_tree = (step == 0) == tree_first;
            let result = if is_tree {
                hash_tree(Path::new(tree), threads)
            } else {
                hash_file(Path::new(file), threads)
            };
            match result {
                Ok(done) => results[usize::from(!is_tree)] = Some(done),
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let [Some((tree_time, tree_bytes)), Some((file_time, file_bytes))] = results else {
            unreachable!("both hashed");
        };
        if tree_bytes != file_bytes {
            eprintln!("the tree holds {tree_bytes} bytes and the file {file_bytes}");
            return ExitCode::FAILURE;
        }
        let mbs = |time: Duration| tree_bytes as f64 / time.as_secs_f64() / 1e6;
        println!(
            "run {}: tree {:.3} s ({:.0} MB/s), file {:.3} s ({:.0} MB/s), tree/file {:.2}",
            run + 1,
            tree_time.as_secs_f64(),
            mbs(tree_time),
            file_time.as_secs_f64(),
            mbs(file_time),
            mbs(tree_time) / mbs(file_time)
        );
        tree_mbs.push(mbs(tree_time));
        file_mbs.push(mbs(file_time));
        ratios.push(mbs(tree_time) / mbs(file_time));
    }
    let spread = |values: &[f64]| {
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        format!("{:.2} [{lo:.2}-{hi:.2}]", median(values.to_vec()))
    };
    println!(
        "median of {runs} on {threads} threads: tree {:.0} MB/s, file {:.0} MB/s, tree/file {}",
        median(tree_mbs),
        median(file_mbs),
        spread(&ratios)
    );
    ExitCode::SUCCESS
}
