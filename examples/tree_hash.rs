//! Hashing a directory tree for sharing against hashing one file of the same bytes, as
//! issue 17 compares them (the tree at ≥ 0.9× the file, warm cache, on every core).
//!
//! ```text
//! cargo run --release --example tree_hash -- TREE_DIR FILE [RUNS] [THREADS]
//! ```
//!
//! Each run hashes the tree (`tree::walk::build`: the walk, every file opened by handle,
//! pieces across file boundaries, hashed while the walk goes on) and the file
//! (`storage::hash_chunks` over `Mapping::read_only`, as a node shares a file: `pread` in
//! 1 MiB blocks) with 1 MiB pieces, one after the other, the order
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

/// CPU seconds this process has used so far, every thread's (those ended included), from
/// /proc/self/stat: user and system clock ticks, 100 a second. `None` where it cannot be read.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
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
    let mut cpu_ratios = Vec::new();
    for run in 0..runs {
        let tree_first = run % 2 == 0;
        let mut results = [None, None];
        for step in 0..2 {
            let is_tree = (step == 0) == tree_first;
            let cpu_before = cpu_seconds();
            let result = if is_tree {
                hash_tree(Path::new(tree), threads)
            } else {
                hash_file(Path::new(file), threads)
            };
            let cpu = cpu_seconds()
                .zip(cpu_before)
                .map(|(after, before)| after - before);
            match result {
                Ok((time, bytes)) => results[usize::from(!is_tree)] = Some((time, bytes, cpu)),
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let [
            Some((tree_time, tree_bytes, tree_cpu)),
            Some((file_time, file_bytes, file_cpu)),
        ] = results
        else {
            unreachable!("both hashed");
        };
        if tree_bytes != file_bytes {
            eprintln!("the tree holds {tree_bytes} bytes and the file {file_bytes}");
            return ExitCode::FAILURE;
        }
        let mbs = |time: Duration| tree_bytes as f64 / time.as_secs_f64() / 1e6;
        // CPU seconds per byte, the file's over the tree's: below 1 where the tree costs more
        // work, whatever else the machine runs meanwhile.
        let cpu_ratio = tree_cpu.zip(file_cpu).map(|(tree, file)| file / tree);
        println!(
            "run {}: tree {:.3} s ({:.0} MB/s, {:.2} CPU s), file {:.3} s ({:.0} MB/s, {:.2} CPU s), tree/file {:.2}",
            run + 1,
            tree_time.as_secs_f64(),
            mbs(tree_time),
            tree_cpu.unwrap_or(f64::NAN),
            file_time.as_secs_f64(),
            mbs(file_time),
            file_cpu.unwrap_or(f64::NAN),
            mbs(tree_time) / mbs(file_time)
        );
        cpu_ratios.extend(cpu_ratio);
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
    if cpu_ratios.len() == runs {
        println!(
            "CPU seconds, file/tree (1 when the tree costs no more work than the file): {}",
            spread(&cpu_ratios)
        );
    }
    ExitCode::SUCCESS
}
