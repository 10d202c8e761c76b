//! `torrent demo`: a real local swarm in one command.
//!
//! Starts a tracker and nodes as child processes of this same binary on loopback ports the
//! kernel picks, writes a file of random bytes into the holders' directories, shares it,
//! downloads it on the other nodes (all at once), checks every copy byte for byte, prints a
//! summary, and stops every process it started: on success, on failure, and on Ctrl-C.

use crate::cli::DemoArgs;
use crate::rng::Rng;
use crossbeam_channel::{Receiver, Sender};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FILE_NAME: &str = "demo.bin";
/// How long a process may take to say it is ready (tracker listening, holder sharing).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the downloads may take in all.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines from the children waiting to be read. When it is full a child's reader thread
/// waits, and the child with it once its pipe fills; the demo reads lines all the time,
/// except while it checks a copy, and the nodes print a few lines each.
const LINES_QUEUED_MAX: usize = 1024;

/// A line a child printed, tagged with the child's name.
struct Line {
    who: String,
    text: String,
}

/// The children, stopped when this is dropped (whatever ends the demo).
struct Children {
    list: Vec<(String, Child)>,
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.list {
            if let Ok(None) = child.try_wait() {
                let pid = rustix::process::Pid::from_raw(child.id() as i32);
                // SIGTERM first, so that nodes tell the tracker they leave.
                if let Some(pid) = pid {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for (_, child) in &mut self.list {
            while let Ok(None) = child.try_wait() {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Children {
    /// Starts `torrent ARGS...` with stdout piped into `lines`.
    fn spawn(&mut self, who: &str, args: &[String], lines: &Sender<Line>) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {who}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (who_owned, lines) = (who.to_string(), lines.clone());
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines
                    .send(Line {
                        who: who_owned.clone(),
                        text,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
        self.list.push((who.to_string(), child));
        Ok(())
    }

    /// The exit status of a child, if it has exited.
    fn exited(&mut self, who: &str) -> Option<i32> {
        let (_, child) = self.list.iter_mut().find(|(name, _)| name == who)?;
        child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| status.code().unwrap_or(-1))
    }
}

/// Waits for a line starting with `prefix` from one of `whom`, and returns it. Lines from
/// others, or that say something else, are not needed here and are dropped.
fn wait_for(
    lines: &Receiver<Line>,
    stop: &AtomicBool,
    whom: &[String],
    prefix: &str,
) -> Result<Line, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{} did not say '{prefix}' within {} s",
                whom.join(", "),
                READY_TIMEOUT.as_secs()
            ));
        }
        match lines.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) if whom.contains(&line.who) && line.text.starts_with(prefix) => {
                return Ok(line);
            }
            Ok(_) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(format!("{} stopped", whom.join(", ")));
            }
        }
    }
}

/// Runs the demo; returns the exit code.
pub fn run_demo(args: DemoArgs) -> Result<i32, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot catch signals: {e}"))?;
    }
    let dir = &args.dir;
    for sub in ["node_files", "logs", "tracker_db"] {
        let path = dir.join(sub);
        if path.exists() {
            fs::remove_dir_all(&path)
                .map_err(|e| format!("cannot clear {}: {e}", path.display()))?;
        }
    }
    let files_dir = dir.join("node_files");
    let log_dir = dir.join("logs");
    let log_dir_text = log_dir.display().to_string();
    let (tx, lines) = crossbeam_channel::bounded::<Line>(LINES_QUEUED_MAX);
    let mut children = Children { list: Vec::new() };

    println!(
        "demo: 1 tracker, {} holders, {} downloaders, a {} file of random bytes, in {}",
        args.holders,
        args.nodes - args.holders,
        crate::units::bytes(args.size_bytes),
        dir.display()
    );
    let tracker_args: Vec<String> = [
        "tracker",
        "--listen",
        "127.0.0.1:0",
        "--db-dir",
        &dir.join("tracker_db").display().to_string(),
        "--log-dir",
        &log_dir_text,
    ]
    .map(String::from)
    .to_vec();
    children.spawn("tracker", &tracker_args, &tx)?;
    let ready = wait_for(&lines, &stop, &["tracker".into()], "tracker listening on ")?.text;
    let tracker_addr = ready
        .trim_start_matches("tracker listening on ")
        .to_string();
    println!("tracker listening on {tracker_addr}");

    let node_args = |id: u32| -> Vec<String> {
        let mut args_out: Vec<String> = vec![
            "node".into(),
            "--id".into(),
            id.to_string(),
            "--tracker".into(),
            tracker_addr.clone(),
            "--dir".into(),
            files_dir.join(format!("node{id}")).display().to_string(),
            "--log-dir".into(),
            log_dir_text.clone(),
        ];
        if let Some(piece_bytes) = args.piece_bytes {
            args_out.extend(["--piece-size".into(), piece_bytes.to_string()]);
        }
        args_out
    };

    let original = files_dir.join("node1").join(FILE_NAME);
    let started = Instant::now();
    write_random_file(&original, args.size_bytes, Rng::os_seed())
        .map_err(|e| format!("cannot write the file: {e}"))?;
    for id in 2..=args.holders {
        let copy = files_dir.join(format!("node{id}"));
        fs::create_dir_all(&copy).map_err(|e| e.to_string())?;
        fs::copy(&original, copy.join(FILE_NAME))
            .map_err(|e| format!("cannot copy the file: {e}"))?;
    }
    println!(
        "wrote {} into {} holders in {:.2} s",
        crate::units::bytes(args.size_bytes),
        args.holders,
        started.elapsed().as_secs_f64()
    );
    for id in 1..=args.holders {
        let mut holder = node_args(id);
        holder.extend(["--send".into(), FILE_NAME.into()]);
        children.spawn(&format!("node{id}"), &holder, &tx)?;
    }
    // The holders finish hashing in any order: wait for each one's first "sharing" line.
    let mut waiting: Vec<String> = (1..=args.holders).map(|id| format!("node{id}")).collect();
    while !waiting.is_empty() {
        let line = wait_for(&lines, &stop, &waiting, "sharing ")?;
        println!("{}: {}", line.who, line.text);
        waiting.retain(|who| *who != line.who);
    }

    let downloaders: Vec<u32> = (args.holders + 1..=args.nodes).collect();
    let started = Instant::now();
    for &id in &downloaders {
        let mut leecher = node_args(id);
        leecher.extend([
            "--download".into(),
            FILE_NAME.into(),
            "--exit-when-done".into(),
            "--progress".into(),
        ]);
        children.spawn(&format!("node{id}"), &leecher, &tx)?;
    }
    let outcome = follow_downloads(&mut children, &lines, &stop, &downloaders, args.size_bytes);
    let elapsed = started.elapsed();
    let results = outcome?;

    println!("\nverifying every copy byte for byte against the original...");
    let mut all_ok = true;
    for &id in &downloaders {
        let copy = files_dir.join(format!("node{id}")).join(FILE_NAME);
        let same = files_equal(&original, &copy).unwrap_or(false);
        all_ok &= same;
        println!(
            "  node{id}: {}",
            if same { "identical" } else { "DIFFERENT" }
        );
    }
    let total = args.size_bytes * downloaders.len() as u64;
    println!("\nsummary");
    println!(
        "  file           {} ({} bytes)",
        crate::units::bytes(args.size_bytes),
        args.size_bytes
    );
    println!(
        "  downloads      {} in {:.3} s, {} together",
        downloaders.len(),
        elapsed.as_secs_f64(),
        crate::units::rate(total as f64 / elapsed.as_secs_f64().max(1e-9))
    );
    for (who, line) in &results {
        println!("  {who:<14} {}", line.trim_start_matches("downloaded "));
    }
    println!("  logs           {}", log_dir.display());
    println!("  files          {}", files_dir.display());
    if all_ok {
        println!("\ndemo ok: every copy verified");
        Ok(0)
    } else {
        println!("\ndemo FAILED: a copy differs from the original");
        Ok(1)
    }
}

/// Shows progress until every downloader exited; returns each one's "downloaded" line.
fn follow_downloads(
    children: &mut Children,
    lines: &Receiver<Line>,
    stop: &AtomicBool,
    downloaders: &[u32],
    size_bytes: u64,
) -> Result<Vec<(String, String)>, String> {
    let tty = io::stdout().is_terminal();
    let deadline = Instant::now() + DOWNLOAD_TIMEOUT;
    let mut finished: Vec<(String, String)> = Vec::new();
    let mut percent: Vec<(String, String)> = downloaders
        .iter()
        .map(|id| (format!("node{id}"), "0%".to_string()))
        .collect();
    let mut last_print = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted; stopping every process".into());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "downloads did not finish within {} s",
                DOWNLOAD_TIMEOUT.as_secs()
            ));
        }
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some(rest) = line.text.strip_prefix("progress ") {
                    let value = rest.split_whitespace().nth(1).unwrap_or("?").to_string();
                    if let Some(slot) = percent.iter_mut().find(|(who, _)| *who == line.who) {
                        slot.1 = value;
                    }
                } else if line.text.starts_with("downloaded ") {
                    if let Some(slot) = percent.iter_mut().find(|(who, _)| *who == line.who) {
                        slot.1 = "100%".into();
                    }
                    finished.push((line.who.clone(), line.text.clone()));
                } else if line.text.contains("failed") {
                    println!("{}: {}", line.who, line.text);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err("lost the children's output".into());
            }
        }
        if last_print.elapsed() >= Duration::from_millis(if tty { 200 } else { 1000 }) {
            last_print = Instant::now();
            let status: Vec<String> = percent
                .iter()
                .map(|(who, p)| format!("{who} {p}"))
                .collect();
            if tty {
                print!(
                    "\rdownloading {}: {}\x1b[K",
                    crate::units::bytes(size_bytes),
                    status.join("  ")
                );
                let _ = io::stdout().flush();
            } else {
                println!("downloading: {}", status.join("  "));
            }
        }
        let mut all_exited = true;
        for id in downloaders {
            let who = format!("node{id}");
            match children.exited(&who) {
                None => all_exited = false,
                Some(0) => {}
                Some(code) => return Err(format!("{who} exited with code {code}; see its log")),
            }
        }
        if all_exited {
            // Collect lines still in the pipe.
            while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                if line.text.starts_with("downloaded ") {
                    finished.push((line.who, line.text));
                }
            }
            if tty {
                println!();
            }
            return Ok(finished);
        }
    }
}

/// Writes `size` pseudo-random bytes (incompressible, different every run).
fn write_random_file(path: &Path, size: u64, seed: u64) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file = io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut rng = Rng::new(seed);
    let mut block = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Compares two files byte for byte.
pub fn files_equal(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
