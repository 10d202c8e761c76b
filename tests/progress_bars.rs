//! A node's progress bars on a terminal (a pseudo terminal here), read back through a small
//! terminal model: a bar per running download while it runs, in binary units; what the node
//! prints meanwhile (events, a `status` typed during the download) stays whole on the
//! screen, never drawn over; and when the download ends no bar is left behind.
//!
//! The terminal's echo is off: what a person types is echoed by the terminal itself, which
//! the node does not see until the line ends (see the README).

mod common;

use common::*;
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{LocalModes, OptionalActions, Winsize, tcgetattr, tcsetattr, tcsetwinsize};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

const FILE_BYTES: usize = 2 << 20;
/// The model's width: wide enough that no line of the test wraps.
const COLUMNS: u16 = 200;

/// The screen after `bytes`, every row from the first: printable characters at the cursor,
/// `\r`, `\n`, and the few CSI sequences indicatif and the node use (cursor up and down,
/// column, erase in line and below; colours and cursor visibility are ignored).
fn render(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                if rows.len() <= row {
                    rows.push(Vec::new());
                }
            }
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut command = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_digit() || c == ';' || c == '?' {
                        params.push(c);
                    } else {
                        command = c;
                        break;
                    }
                }
                let n: usize = params.trim_start_matches('?').parse().unwrap_or(0);
                match command {
                    'A' => row = row.saturating_sub(n.max(1)),
                    'B' => {
                        row += n.max(1);
                        while rows.len() <= row {
                            rows.push(Vec::new());
                        }
                    }
                    'G' => col = n.saturating_sub(1),
                    'K' if n == 2 => rows[row].clear(),
                    'K' => rows[row].truncate(col),
                    'J' => {
                        rows[row].truncate(col);
                        rows.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c if !c.is_control() => {
                let line = &mut rows[row];
                while line.len() < col {
                    line.push(' ');
                }
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
            _ => {}
        }
    }
    rows.into_iter()
        .map(|r| r.into_iter().collect::<String>().trim_end().to_string())
        .collect()
}

#[test]
fn the_terminal_model_follows_redraws() {
    let rows = render(b"one\r\n[=> ] a\x1b[1A\r\x1b[2Ktwo\r\n\x1b[2K[==>] a\r\nthree");
    assert_eq!(rows, ["two", "[==>] a", "three"]);
}

#[test]
fn bars_show_a_download_and_never_cover_what_is_printed() {
    let scratch = Scratch::new("progress-bars");
    scratch.put_file(1, "f.bin", &random_bytes(40, FILE_BYTES));
    let tracker = tracker(&scratch);
    // About two seconds for the file: the bar is seen, and a status is typed meanwhile.
    let _holder = holder(
        &scratch,
        1,
        tracker.addr,
        "f.bin",
        &["--chunk-size", "256K", "--max-upload-rate", "1M"],
    );

    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("a pseudo terminal");
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave_path = ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave_path.to_str().unwrap())
        .expect("open the terminal's other end");
    let size = Winsize {
        ws_row: 50,
        ws_col: COLUMNS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(&slave, size).unwrap();
    let mut modes = tcgetattr(&slave).unwrap();
    modes.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&slave, OptionalActions::Now, &modes).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_torrent"))
        .args(node_args(
            &scratch,
            2,
            tracker.addr,
            &["--download", "f.bin"],
        ))
        .current_dir(&scratch.root)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::null())
        .spawn()
        .expect("start the node");
    // Read the terminal until the node is gone (then the read fails: no one holds the other
    // end, the test's copy having gone to the child).
    // What the node drew, and a signal at every read (and at the end), so that the test
    // waits for what it looks for, not for a while.
    let screen = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
    let reader = {
        let screen = Arc::clone(&screen);
        let mut master = std::fs::File::from(master);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.0.lock().unwrap().extend_from_slice(&buf[..n]);
                screen.1.notify_all();
            }
            screen.1.notify_all();
        })
    };
    let wait_for = |what: &str| {
        let deadline = Instant::now() + DOWNLOAD_TIMEOUT;
        let (drawn, read) = &*screen;
        let mut bytes = drawn.lock().unwrap();
        while !String::from_utf8_lossy(&bytes).contains(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "'{what}' never drawn; the screen:\n{}",
                render(&bytes).join("\n")
            );
            bytes = read.wait_timeout(bytes, left).unwrap().0;
        }
    };
    // The bar, with the size known, in binary units.
    wait_for("of 2.0 MiB");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"status\n").unwrap();
    wait_for("files held: ");
    wait_for("downloaded f.bin (");
    stdin.write_all(b"exit\n").unwrap();
    let (exited, status) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = exited.send(child.wait());
    });
    let status = status
        .recv_timeout(LINE_TIMEOUT)
        .expect("the node exits after 'exit'")
        .unwrap();
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();

    let bytes = screen.0.lock().unwrap().clone();
    let rows = render(&bytes);
    let shown = rows.join("\n");
    let bar = String::from_utf8_lossy(&bytes);
    assert!(
        bar.contains("] f.bin ") && bar.contains("% "),
        "no bar was drawn:\n{shown}"
    );
    // Whole lines, each on a row of its own, nothing drawn over them.
    let whole = |prefix: &str, suffix: &str| {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(prefix) && r.ends_with(suffix)),
            "no whole row '{prefix}...{suffix}' on the screen:\n{shown}"
        );
    };
    whole("node 2 listening on 127.0.0.1:", "");
    whole("downloaded f.bin (", "from node 1: 8 chunks");
    whole("node 2 (registered with tracker ", "");
    whole("files held: ", "");
    whole("node 2 leaving: ", "");
    // No bar left behind, and no row where a bar and a line met.
    for row in &rows {
        assert!(
            !row.contains("of 2.0 MiB") && !row.contains("size not known yet"),
            "a bar was left on the screen: {row:?}\n{shown}"
        );
    }
}
