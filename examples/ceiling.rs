//! The loopback ceiling: the least work that moves a file over UDP into a verified copy.
//!
//! One sender thread reads the file through a memory mapping and sends it in datagrams of
//! the node's size (a 36-byte header and `--piece-size` bytes of payload: 65,507-byte
//! datagrams by default). Datagrams small enough that a run of them fits one GSO send are
//! batched as the node's reactor batches them ([`torrent::udp`]: header and payload copied
//! into a batch, as the node copies a piece into its send buffer, then one GSO `sendmsg`
//! per run); larger ones, which gain nothing from it, go with one `sendmsg` each, header
//! and payload gathered straight from the mapping (the least work). One receiver thread
//! takes them with `recvmmsg` (and GRO) and writes each payload into a pre-sized
//! (fallocated) file with the node's own writer ([`torrent::storage::PieceWriter`]: `pwrite`,
//! small adjacent pieces gathered into one call); a completed chunk goes to hasher threads
//! (as many as cores, as the node has) that SHA-1 it through the node's mapping of the file
//! ([`torrent::storage::Mapping::sha1`]), compare it with the source's chunk hash and, as
//! the node does with a verified chunk, release its pages and start their write-back. At
//! the end the copy is synced, as the node syncs a finished download. So the ceiling does
//! the work a verifying downloader cannot avoid, in the node's own code, and none of the
//! protocol: no requests, no bookkeeping of peers, no tracker.
//!
//! Flow control, simple but enough that the receiver is never overrun: the receiver acks
//! every `window / 4` datagrams with the count it has received, and the sender never has
//! more than `window` datagrams unacknowledged. The window defaults to what fits in half
//! the receive buffer the kernel granted (counting each datagram's kernel overhead). If no
//! ack comes for 200 ms the sender assumes loss and carries on; lost datagrams are then
//! reported and the run fails, so a result printed with `0 lost` is a real transfer.
//!
//! ```text
//! cargo run --release --example ceiling -- --file BIG --out COPY [--piece-size 65471]
//!     [--chunk-size 1M] [--socket-buffer 4M] [--window DATAGRAMS]
//! ```
//!
//! Prints one line: `ceiling: BYTES bytes in S s (transfer T s, sync Y s), MB/s, ...`.

use memmap2::Mmap;
use rustix::event::{PollFd, PollFlags, Timespec};
use sha1::{Digest, Sha1};
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use torrent::storage::{Content, Mapping, PieceWriter};
use torrent::udp::{GSO_BYTES_MAX, RecvBatch, SEND_BATCH_MAX, SendBatch, Udp};

/// The node's piece header: 8 bytes common header, info hash 20, chunk 4, offset 4.
const HEADER_BYTES: usize = 36;
/// Largest IPv4 UDP payload.
const DATAGRAM_MAX: usize = 65_507;
/// What the kernel charges a datagram in the receive buffer beyond its payload (sk_buff,
/// rounding): an estimate on the safe side, used only for the default window.
const KERNEL_OVERHEAD_BYTES: usize = 1024;
const MAGIC: [u8; 4] = *b"CEIL";
const KIND_DATA: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_END: u8 = 3;
const KIND_END_ACK: u8 = 4;

struct Args {
    file: PathBuf,
    out: PathBuf,
    piece_bytes: usize,
    chunk_bytes: usize,
    socket_buffer: usize,
    window: Option<u64>,
}

fn parse_size(text: &str) -> Result<usize, String> {
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 10),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 20),
        Some(b'G' | b'g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    digits
        .parse::<usize>()
        .map(|n| n << shift)
        .map_err(|_| format!("bad size: {text}"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        file: PathBuf::new(),
        out: PathBuf::new(),
        piece_bytes: DATAGRAM_MAX - HEADER_BYTES,
        chunk_bytes: 1 << 20,
        socket_buffer: 4 << 20,
        window: None,
    };
    let mut list = std::env::args().skip(1);
    while let Some(flag) = list.next() {
        let mut value = || list.next().ok_or(format!("{flag} needs a value"));
        match flag.trim_start_matches('-') {
            "file" => args.file = value()?.into(),
            "out" => args.out = value()?.into(),
            "piece-size" => args.piece_bytes = parse_size(&value()?)?,
            "chunk-size" => args.chunk_bytes = parse_size(&value()?)?,
            "socket-buffer" => args.socket_buffer = parse_size(&value()?)?,
            "window" => args.window = Some(parse_size(&value()?)? as u64),
            "help" | "h" => {
                println!(
                    "ceiling --file BIG --out COPY [--piece-size 65471] [--chunk-size 1M] \
                     [--socket-buffer 4M] [--window DATAGRAMS]"
                );
                std::process::exit(0);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.file.as_os_str().is_empty() || args.out.as_os_str().is_empty() {
        return Err("--file and --out are required".into());
    }
    if args.piece_bytes == 0 || args.piece_bytes + HEADER_BYTES > DATAGRAM_MAX {
        return Err(format!(
            "--piece-size must be 1 to {}",
            DATAGRAM_MAX - HEADER_BYTES
        ));
    }
    if args.chunk_bytes == 0 {
        return Err("--chunk-size must be positive".into());
    }
    Ok(args)
}

fn main() {
    match run(parse_args().unwrap_or_else(|e| {
        eprintln!("ceiling: {e}");
        std::process::exit(2)
    })) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("ceiling: {e}");
            std::process::exit(1)
        }
    }
}

fn header(kind: u8, a: u64, b: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..4].copy_from_slice(&MAGIC);
    h[4] = kind;
    h[8..16].copy_from_slice(&a.to_be_bytes());
    h[16..24].copy_from_slice(&b.to_be_bytes());
    h
}

fn parse_header(bytes: &[u8]) -> Option<(u8, u64, u64)> {
    if bytes.len() < HEADER_BYTES || bytes[..4] != MAGIC {
        return None;
    }
    let a = u64::from_be_bytes(bytes[8..16].try_into().ok()?);
    let b = u64::from_be_bytes(bytes[16..24].try_into().ok()?);
    Some((bytes[4], a, b))
}

/// Waits until `socket` is ready for `flags`, at most `timeout`; false when it timed out.
fn wait(socket: &UdpSocket, flags: PollFlags, timeout: Duration) -> Result<bool, String> {
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = [PollFd::new(socket, flags)];
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(ready) => Ok(ready > 0),
        Err(rustix::io::Errno::INTR) => Ok(true),
        Err(e) => Err(format!("poll: {e}")),
    }
}

/// One datagram from the (non-blocking) `socket`, waiting at most `timeout` for it.
fn recv_within(
    socket: &UdpSocket,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<Option<usize>, String> {
    loop {
        match socket.recv(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait(socket, PollFlags::IN, timeout)? {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
    }
}

fn socket(buffer: usize) -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    // Asked as the node asks; the kernel caps it at rmem_max / wmem_max.
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, buffer);
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(&socket, buffer);
    Ok(socket)
}

fn run(args: Args) -> Result<bool, String> {
    let source = File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    // SAFETY: the file is not modified while this program runs.
    let source = unsafe { Mmap::map(&source) }.map_err(|e| format!("map source: {e}"))?;
    let size = source.len();
    let chunks = size.div_ceil(args.chunk_bytes);
    // The manifest, as a holder has it: not part of the timed transfer.
    let expected: Vec<[u8; 20]> = source
        .chunks(args.chunk_bytes)
        .map(|chunk| Sha1::digest(chunk).into())
        .collect();

    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&args.out)
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    if size > 0 {
        // Reserved up front, as the node reserves a download's space.
        if rustix::fs::fallocate(&out, rustix::fs::FallocateFlags::empty(), 0, size as u64).is_err()
        {
            out.set_len(size as u64)
                .map_err(|e| format!("reserve {size} bytes: {e}"))?;
        }
    }
    let target = Arc::new(
        Mapping::read_write(&out, &args.out, size as u64).map_err(|e| format!("map copy: {e}"))?,
    );

    let rx_socket = socket(args.socket_buffer)?;
    let tx_socket = socket(args.socket_buffer)?;
    rx_socket
        .connect(tx_socket.local_addr().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    tx_socket
        .connect(rx_socket.local_addr().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    // Set up for batching as the node's socket is (this also makes them non-blocking).
    let rx_udp = Udp::new(&rx_socket).map_err(|e| format!("receiver socket: {e}"))?;
    let tx_udp = Udp::new(&tx_socket).map_err(|e| format!("sender socket: {e}"))?;
    let rx_addr = rx_socket.local_addr().map_err(|e| e.to_string())?;
    // getsockopt reports twice what was set (the kernel's bookkeeping share included).
    let granted =
        rustix::net::sockopt::socket_recv_buffer_size(&rx_socket).map_err(|e| e.to_string())? / 2;
    let datagram_bytes = args.piece_bytes + HEADER_BYTES;
    let window = args
        .window
        .unwrap_or(((granted / 2) / (datagram_bytes + KERNEL_OVERHEAD_BYTES)).max(4) as u64);
    let ack_every = (window / 4).max(1);
    let total_datagrams = size.div_ceil(args.piece_bytes) as u64;

    // Hashers: as many threads as cores, fed completed chunks.
    let (jobs, job_rx) = crossbeam_channel::unbounded::<usize>();
    let bad = Arc::new(AtomicU64::new(0));
    let verified = Arc::new(AtomicU64::new(0));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let expected = Arc::new(expected);
    let hashers: Vec<_> = (0..threads)
        .map(|_| {
            let (job_rx, target, expected, bad, verified) = (
                job_rx.clone(),
                Arc::clone(&target),
                Arc::clone(&expected),
                Arc::clone(&bad),
                Arc::clone(&verified),
            );
            let chunk_bytes = args.chunk_bytes;
            std::thread::spawn(move || {
                for chunk in job_rx {
                    let start = chunk * chunk_bytes;
                    let len = chunk_bytes.min(size - start);
                    // The receiver wrote this chunk whole (and flushed its writer) before
                    // sending its index, and never writes it again.
                    if target.sha1(start as u64, len) == Some(expected[chunk]) {
                        verified.fetch_add(1, Ordering::Relaxed);
                        let _ = target.release(start as u64, len);
                    } else {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    drop(job_rx);

    let started = Instant::now();
    let receiver = {
        let target = Arc::clone(&target);
        let (piece_bytes, chunk_bytes) = (args.piece_bytes, args.chunk_bytes);
        std::thread::spawn(move || -> Result<u64, String> {
            let mut batch = RecvBatch::new();
            let mut writer = PieceWriter::new(target);
            // Chunks complete in this batch: handed to the hashers once their bytes are
            // written, after the batch.
            let mut complete = Vec::new();
            let mut received = 0u64;
            let mut chunk_left: Vec<usize> = (0..chunks)
                .map(|c| chunk_bytes.min(size - c * chunk_bytes))
                .collect();
            let mut ended = false;
            while !ended {
                match batch.recv(&rx_udp, &rx_socket) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if !wait(&rx_socket, PollFlags::IN, Duration::from_secs(10))? {
                            return Err("receiver: nothing for 10 s".into());
                        }
                        continue;
                    }
                    Err(e) => return Err(format!("receiver: {e}")),
                }
                // For the log of a failing disk only: one clock reading per batch.
                let now = Instant::now();
                batch.for_each(|_, datagram| {
                    let Some((kind, seq, _)) = parse_header(datagram) else {
                        return;
                    };
                    if kind == KIND_END {
                        // Loopback keeps a socket pair's datagrams in order: all data is in.
                        let _ = rx_socket.send(&header(KIND_END_ACK, received, 0));
                        ended = true;
                        return;
                    }
                    if kind != KIND_DATA || ended {
                        return;
                    }
                    let offset = seq as usize * piece_bytes;
                    let payload = &datagram[HEADER_BYTES..];
                    if offset + payload.len() > size {
                        return;
                    }
                    if !writer.write(now, offset as u64, payload) {
                        return;
                    }
                    received += 1;
                    // A piece may straddle a chunk boundary when the piece size does not
                    // divide the chunk size.
                    let (mut at, end) = (offset, offset + payload.len());
                    while at < end {
                        let chunk = at / chunk_bytes;
                        let upto = end.min((chunk + 1) * chunk_bytes);
                        chunk_left[chunk] -= upto - at;
                        if chunk_left[chunk] == 0 {
                            complete.push(chunk);
                        }
                        at = upto;
                    }
                    if received.is_multiple_of(ack_every) || received == total_datagrams {
                        let _ = rx_socket.send(&header(KIND_ACK, received, 0));
                    }
                });
                if !complete.is_empty() {
                    writer.flush(now);
                    for chunk in complete.drain(..) {
                        let _ = jobs.send(chunk);
                    }
                }
            }
            Ok(received)
        })
    };

    // The sender, on this thread.
    let ack_timeout = Duration::from_millis(200);
    let mut acked = 0u64;
    let mut stalls = 0u64;
    let mut ack_buf = [0u8; 64];
    let mut batch = SendBatch::new();
    let mut seq = 0u64;
    while seq < total_datagrams {
        while seq - acked >= window {
            match recv_within(&tx_socket, &mut ack_buf, ack_timeout)? {
                Some(n) => {
                    if let Some((KIND_ACK, count, _)) = parse_header(&ack_buf[..n]) {
                        acked = acked.max(count);
                    }
                }
                None => {
                    // Lost datagrams or acks: carry on, the end reports what was lost.
                    stalls += 1;
                    acked = seq;
                }
            }
        }
        if 2 * datagram_bytes > GSO_BYTES_MAX {
            // No run fits one GSO send: one gathered sendmsg, straight from the mapping.
            let offset = seq as usize * args.piece_bytes;
            let payload = &source[offset..(offset + args.piece_bytes).min(size)];
            let head = header(KIND_DATA, seq, offset as u64);
            loop {
                match rustix::net::sendmsg(
                    &tx_socket,
                    &[IoSlice::new(&head), IoSlice::new(payload)],
                    &mut rustix::net::SendAncillaryBuffer::default(),
                    rustix::net::SendFlags::empty(),
                ) {
                    Ok(_) => break,
                    // A full send buffer: wait until there is room.
                    Err(rustix::io::Errno::NOBUFS | rustix::io::Errno::AGAIN) => {
                        wait(&tx_socket, PollFlags::OUT, ack_timeout)?;
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(format!("sendmsg: {e}")),
                }
            }
            seq += 1;
            continue;
        }
        // As many datagrams as the window allows, one batch at a time.
        let mut room = (window - (seq - acked)).min(SEND_BATCH_MAX as u64);
        batch.fill(|buf| {
            if room == 0 || seq == total_datagrams {
                return None;
            }
            let offset = seq as usize * args.piece_bytes;
            let payload = &source[offset..(offset + args.piece_bytes).min(size)];
            buf[..HEADER_BYTES].copy_from_slice(&header(KIND_DATA, seq, offset as u64));
            buf[HEADER_BYTES..HEADER_BYTES + payload.len()].copy_from_slice(payload);
            seq += 1;
            room -= 1;
            Some(torrent::Transmit {
                to: rx_addr,
                len: HEADER_BYTES + payload.len(),
                source_as_for: None,
            })
        });
        loop {
            match batch.flush(&tx_udp, &tx_socket, &torrent::udp::ReplySources::default()) {
                Ok(()) => break,
                // A full send buffer on loopback: wait until there is room.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(&tx_socket, PollFlags::OUT, ack_timeout)?;
                }
                Err(e) => return Err(format!("send: {e}")),
            }
        }
    }
    // Tell the receiver we are done, again after each timeout, until it answers.
    tx_socket
        .send(&header(KIND_END, total_datagrams, 0))
        .map_err(|e| e.to_string())?;
    let mut timeouts = 0;
    loop {
        match recv_within(&tx_socket, &mut ack_buf, ack_timeout)? {
            Some(n) => {
                if let Some((KIND_END_ACK, _, _)) = parse_header(&ack_buf[..n]) {
                    break;
                }
            }
            None => {
                timeouts += 1;
                if timeouts > 25 {
                    return Err("receiver did not answer the end".into());
                }
                tx_socket
                    .send(&header(KIND_END, total_datagrams, 0))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    let received = receiver
        .join()
        .map_err(|_| "receiver panicked".to_string())??;
    for hasher in hashers {
        hasher.join().map_err(|_| "hasher panicked".to_string())?;
    }
    let transfer = started.elapsed();
    target.flush().map_err(|e| format!("msync: {e}"))?;
    out.sync_all().map_err(|e| format!("fsync: {e}"))?;
    let elapsed = started.elapsed();
    let lost = total_datagrams - received.min(total_datagrams);
    let (verified, bad) = (
        verified.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
    );
    println!(
        "ceiling: {size} bytes in {:.3} s (transfer {:.3} s, sync {:.3} s), {:.1} MB/s, \
         {total_datagrams} datagrams of {datagram_bytes} bytes, window {window}, \
         {lost} lost, {stalls} stalls, chunks verified {verified}/{chunks}, bad {bad}",
        elapsed.as_secs_f64(),
        transfer.as_secs_f64(),
        (elapsed - transfer).as_secs_f64(),
        size as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6,
    );
    Ok(lost == 0 && bad == 0 && verified == chunks as u64)
}
