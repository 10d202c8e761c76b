//! A flood sender for measuring the tracker under abuse: many small unauthenticated
//! datagrams a second, batched with `sendmmsg`, from one source address or from many.
//!
//! Not part of the tracker or the node: `examples/flood.rs` is its command line, and
//! `tests/flood.rs` runs it on a thread inside a network namespace (issue 13's flood goals).
//! It lives in the library so that the test can run it without building the example.
//!
//! * **Kinds** ([`FloodKind`]): our protocol's `Register` with a random node id and no token
//!   (what an anonymous sender can make the tracker do most cheaply for itself), random bytes,
//!   or BEP 15 announces of random info hashes (after a real connect handshake per socket,
//!   so that every announce carries a valid connection id and reaches the swarm tables).
//! * **Sources.** One socket per source address, bound to it with a port the kernel picks;
//!   the addresses must be local (assigned to an interface, or inside a `local` route such
//!   as `ip route add local 10.77.4.0/22 dev lo`), and connected to the target. Batches go
//!   round-robin over the sockets.
//! * **Pacing.** By the clock: by time t, `rate × t` datagrams are due; a sender that falls
//!   behind by more than [`BACKLOG_MAX`] of a second forgets the debt instead of bursting
//!   (counted in [`FloodReport::behind`]), so the achieved rate is what the machine could do.
//! * **Replies** are drained after every batch (`recvmmsg`, [`crate::udp::RecvBatch`]) and
//!   counted, refusals apart: how much of the flood the tracker answered.
//!
//! Everything is bounded: [`RATE_MAX`], [`DURATION_MAX`], [`SOURCES_MAX`].

use crate::bep15;
use crate::rng::Rng;
use crate::udp::{RecvBatch, Udp};
use crate::wire::{self, Message, NodeAuth, U32, U64};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags};
use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Most datagrams a second a flood may ask for.
pub const RATE_MAX: u32 = 2_000_000;
/// Longest flood.
pub const DURATION_MAX: Duration = Duration::from_secs(60);
/// Most source addresses (one socket each).
pub const SOURCES_MAX: usize = 4_096;
/// Datagrams in one `sendmmsg`.
pub const BATCH_MAX: usize = 64;
/// Largest datagram a flood sends (a BEP 15 announce is 98 bytes).
const DATAGRAM_BYTES_MAX: usize = 128;
/// How far behind schedule the sender may fall, as a fraction of a second of datagrams,
/// before it gives the debt up rather than burst to catch up.
pub const BACKLOG_MAX: f64 = 0.1;
/// Replies drained from one socket after one batch, at most (so that a socket flooded with
/// replies does not stall the sending).
const REPLY_DRAIN_MAX: usize = 4 * crate::udp::RECV_SLOTS;
/// How long a BEP 15 connect waits for its reply before it is sent again, and how many
/// times it is sent.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_ATTEMPTS_MAX: u32 = 6;

/// What each datagram of a flood is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodKind {
    /// Our protocol's Register: a random node id, token zero.
    Register,
    /// 1 to 120 random bytes.
    Garbage,
    /// A BEP 15 announce (event `started`) of a random info hash, with a valid connection id.
    Bep15Announce,
}

impl FloodKind {
    pub fn parse(text: &str) -> Result<FloodKind, String> {
        match text {
            "register" => Ok(FloodKind::Register),
            "garbage" => Ok(FloodKind::Garbage),
            "bep15-announce" => Ok(FloodKind::Bep15Announce),
            other => Err(format!(
                "unknown kind '{other}' (register, garbage or bep15-announce)"
            )),
        }
    }
}

/// One flood: what, to whom, how fast, how long, from where.
#[derive(Clone, Debug)]
pub struct FloodConfig {
    pub target: SocketAddr,
    pub kind: FloodKind,
    /// Datagrams a second, 1 to [`RATE_MAX`].
    pub rate_per_s: u32,
    /// At most [`DURATION_MAX`].
    pub duration: Duration,
    /// Local addresses to send from, one socket each (1 to [`SOURCES_MAX`]).
    pub sources: Vec<IpAddr>,
    /// Seeds the random ids, hashes and bytes.
    pub seed: u64,
}

impl FloodConfig {
    fn check(&self) -> Result<(), String> {
        if self.rate_per_s == 0 || self.rate_per_s > RATE_MAX {
            return Err(format!("rate must be 1 to {RATE_MAX} datagrams a second"));
        }
        if self.duration.is_zero() || self.duration > DURATION_MAX {
            return Err(format!(
                "duration must be above 0 and at most {} s",
                DURATION_MAX.as_secs()
            ));
        }
        if self.sources.is_empty() || self.sources.len() > SOURCES_MAX {
            return Err(format!("1 to {SOURCES_MAX} source addresses"));
        }
        if self
            .sources
            .iter()
            .any(|s| s.is_ipv4() != self.target.is_ipv4())
        {
            return Err("source addresses and target must be of one family".into());
        }
        Ok(())
    }
}

/// What a flood did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FloodReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Datagrams not sent because the socket buffer was full (`EAGAIN`).
    pub would_block: u64,
    /// Datagrams not sent for lack of buffers (`ENOBUFS`, a full queue on the way out).
    pub no_buffers: u64,
    /// Datagrams not sent for another error (the first one is in `first_error`).
    pub other_errors: u64,
    pub first_error: Option<String>,
    /// Datagrams that were due but given up because the sender fell behind.
    pub behind: u64,
    /// Replies received (all kinds).
    pub replies: u64,
    /// Of those, refusals: our `Refused`, or a BEP 15 error reply (e.g. "tracker full").
    pub refusals: u64,
    /// Sockets that completed the BEP 15 connect handshake (BEP 15 floods only).
    pub connected: usize,
    /// Sockets the flood sent from.
    pub sockets: usize,
    pub elapsed: Duration,
}

impl FloodReport {
    /// Datagrams a second actually sent.
    pub fn rate_per_s(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for FloodReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} datagrams in {:.2} s ({:.0}/s) from {} sockets; EAGAIN {}, ENOBUFS {}, \
             other errors {}, given up behind schedule {}; replies {} (refusals {})",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.rate_per_s(),
            self.sockets,
            self.would_block,
            self.no_buffers,
            self.other_errors,
            self.behind,
            self.replies,
            self.refusals
        )?;
        if self.connected > 0 {
            write!(f, "; BEP 15 connected sockets {}", self.connected)?;
        }
        if let Some(error) = &self.first_error {
            write!(f, "; first error: {error}")?;
        }
        Ok(())
    }
}

/// Parses `A-B` (an inclusive range of IPv4 addresses, at most [`SOURCES_MAX`]) or a
/// comma-separated list of addresses.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, String> {
    if let Some((first, last)) = text.split_once('-') {
        let parse = |t: &str| {
            t.trim()
                .parse::<Ipv4Addr>()
                .map_err(|e| format!("bad address '{t}': {e}"))
        };
        let (first, last) = (u32::from(parse(first)?), u32::from(parse(last)?));
        if last < first || (last - first) as usize >= SOURCES_MAX {
            return Err(format!(
                "a range must go upwards and hold at most {SOURCES_MAX} addresses"
            ));
        }
        return Ok((first..=last)
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .collect());
    }
    let list: Vec<IpAddr> = text
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<IpAddr>()
                .map_err(|e| format!("bad address '{t}': {e}"))
        })
        .collect::<Result<_, _>>()?;
    if list.is_empty() || list.len() > SOURCES_MAX {
        return Err(format!("1 to {SOURCES_MAX} source addresses"));
    }
    Ok(list)
}

/// `count` consecutive IPv4 addresses from `base`.
pub fn consecutive_sources(base: Ipv4Addr, count: usize) -> Result<Vec<IpAddr>, String> {
    if count == 0 || count > SOURCES_MAX {
        return Err(format!("1 to {SOURCES_MAX} source addresses"));
    }
    let base = u32::from(base);
    (0..count as u32)
        .map(|i| {
            base.checked_add(i)
                .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                .ok_or_else(|| "the range passes 255.255.255.255".to_string())
        })
        .collect()
}

/// Shared with the thread that runs a flood: stop it early, wait until it is sending.
#[derive(Debug, Default)]
pub struct FloodControl {
    stop: AtomicBool,
    sent: AtomicU64,
    /// Whether the flood has sent its first batch, or ended (`(sending, ended)`), and the
    /// condition a waiter sleeps on until either is true.
    progress: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl FloodControl {
    /// Ends the flood at its next batch.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Datagrams sent so far (updated after every batch): above zero once the flood has
    /// begun, after any BEP 15 handshakes.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until the flood sends (true) or ends without sending, or `timeout` passes
    /// (false).
    pub fn wait_sending(&self, timeout: Duration) -> bool {
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let (progress, _) = self
            .changed
            .wait_timeout_while(progress, timeout, |(sending, ended)| !*sending && !*ended)
            .unwrap_or_else(|e| e.into_inner());
        progress.0
    }

    fn set(&self, update: impl FnOnce(&mut (bool, bool))) {
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        update(&mut progress);
        self.changed.notify_all();
    }
}

/// One source: its socket, its batching state for replies, and its BEP 15 connection id.
struct Source {
    socket: UdpSocket,
    udp: Udp,
    connection_id: Option<u64>,
}

/// Runs a flood until its duration has passed (counted from its first datagram, after any
/// BEP 15 handshakes) or `control` stops it; returns what it did. Fails only when it cannot
/// start (a bad config, a source address that cannot be bound, no BEP 15 connect answered).
pub fn run(config: &FloodConfig, control: &FloodControl) -> Result<FloodReport, String> {
    let result = run_until_done(config, control);
    control.set(|progress| progress.1 = true);
    result
}

fn run_until_done(config: &FloodConfig, control: &FloodControl) -> Result<FloodReport, String> {
    config.check()?;
    let mut rng = Rng::new(config.seed);
    let mut sources = Vec::with_capacity(config.sources.len());
    for &ip in &config.sources {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("cannot bind a socket to {ip}: {e}"))?;
        // Connected: the kernel looks the route up once, not per datagram, and only the
        // target's replies are received.
        socket.connect(config.target).map_err(|e| {
            format!(
                "cannot connect a socket from {ip} to {}: {e}",
                config.target
            )
        })?;
        let udp = Udp::new(&socket).map_err(|e| format!("cannot set up a socket: {e}"))?;
        sources.push(Source {
            socket,
            udp,
            connection_id: None,
        });
    }
    let mut report = FloodReport {
        sockets: sources.len(),
        ..FloodReport::default()
    };
    let mut replies = RecvBatch::new();
    if config.kind == FloodKind::Bep15Announce {
        report.connected = connect_all(config, &mut sources, &mut rng, &mut replies, control);
        // Only sockets with a connection id send: the others' announces would be dropped
        // unread, which measures nothing the garbage flood does not.
        sources.retain(|s| s.connection_id.is_some());
        if sources.is_empty() {
            return Err(format!(
                "no BEP 15 connect to {} was answered",
                config.target
            ));
        }
    }

    let mut buffers = vec![[0u8; DATAGRAM_BYTES_MAX]; BATCH_MAX];
    let mut lens = [0usize; BATCH_MAX];
    let start = Instant::now();
    let rate = f64::from(config.rate_per_s);
    let backlog_max = ((rate * BACKLOG_MAX) as u64).max(BATCH_MAX as u64);
    // Datagrams accounted for (sent, refused by the kernel, or given up).
    let mut done: u64 = 0;
    let mut next_source = 0;
    while !control.stopped() {
        let elapsed = start.elapsed();
        if elapsed >= config.duration {
            break;
        }
        let due = (rate * elapsed.as_secs_f64()) as u64;
        if due.saturating_sub(done) > backlog_max {
            report.behind += due - done - backlog_max;
            done = due - backlog_max;
        }
        let owed = due.saturating_sub(done) as usize;
        if owed == 0 {
            // Paced by the clock: the next datagram is due in 1/rate s; wake for a batch.
            let wait = Duration::from_secs_f64((BATCH_MAX as f64 / rate).min(0.01));
            std::thread::sleep(wait.min(config.duration.saturating_sub(elapsed)));
            continue;
        }
        let count = owed.min(BATCH_MAX);
        let source = &sources[next_source];
        next_source = (next_source + 1) % sources.len();
        for (buffer, len) in buffers.iter_mut().zip(lens.iter_mut()).take(count) {
            *len = fill(config.kind, source.connection_id, &mut rng, buffer);
        }
        send_batch(&source.socket, &buffers, &lens[..count], &mut report);
        done += count as u64;
        if control.sent.swap(report.sent, Ordering::Relaxed) == 0 && report.sent > 0 {
            control.set(|progress| progress.0 = true);
        }
        drain(
            source,
            config.kind,
            &mut replies,
            REPLY_DRAIN_MAX,
            &mut report,
        );
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Writes one datagram of `kind` into `buf`; returns its length.
fn fill(kind: FloodKind, connection_id: Option<u64>, rng: &mut Rng, buf: &mut [u8]) -> usize {
    match kind {
        FloodKind::Register => {
            // Zeroed, then the id: any field a later version adds (a cookie) stays empty,
            // as an anonymous sender's would.
            let mut register: wire::Register = bytemuck::Zeroable::zeroed();
            register.auth = NodeAuth {
                node_id: U32::new(rng.next_u64() as u32),
                token: U64::new(0),
            };
            // A Register always fits the 128-byte buffer.
            Message::Register(&register).encode(buf).unwrap_or(0)
        }
        FloodKind::Garbage => {
            let len = 1 + rng.below(120) as usize;
            for chunk in buf[..len].chunks_mut(8) {
                let bytes = rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            len
        }
        FloodKind::Bep15Announce => {
            let mut announce: bep15::AnnounceRequest = bytemuck::Zeroable::zeroed();
            announce.header.connection_id = U64::new(connection_id.unwrap_or(0));
            announce.header.action = U32::new(bep15::ACTION_ANNOUNCE);
            announce.header.transaction_id = U32::new(rng.next_u64() as u32);
            for part in [&mut announce.info_hash, &mut announce.peer_id] {
                for chunk in part.chunks_mut(8) {
                    let bytes = rng.next_u64().to_le_bytes();
                    chunk.copy_from_slice(&bytes[..chunk.len()]);
                }
            }
            announce.left_bytes = U64::new(1 << 20);
            announce.event = U32::new(2); // started
            announce.key = U32::new(rng.next_u64() as u32);
            announce.num_want = U32::new(u32::MAX); // -1: the tracker's default
            announce.port = wire::U16::new(1 + rng.below(65_535) as u16);
            let bytes = bytemuck::bytes_of(&announce);
            buf[..bytes.len()].copy_from_slice(bytes);
            bytes.len()
        }
    }
}

/// One `sendmmsg` of the batch on the connected `socket` (again for the rest when the kernel took only part of it),
/// counting what the kernel refused.
fn send_batch(
    socket: &UdpSocket,
    buffers: &[[u8; DATAGRAM_BYTES_MAX]],
    lens: &[usize],
    report: &mut FloodReport,
) {
    let slices: Vec<[IoSlice<'_>; 1]> = buffers
        .iter()
        .zip(lens)
        .map(|(buffer, &len)| [IoSlice::new(&buffer[..len])])
        .collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = lens
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut messages: Vec<MMsgHdr<'_>> = slices
        .iter()
        .zip(&mut controls)
        .map(|(slice, control)| MMsgHdr::new(slice, control))
        .collect();
    let mut first = 0;
    while first < messages.len() {
        match rustix::net::sendmmsg(socket, &mut messages[first..], SendFlags::DONTWAIT) {
            // The kernel stops at the first datagram it cannot send; the next call reports
            // that one's error. (It never reports 0 for a non-empty batch; counting at least
            // one keeps the loop finite whatever it says.)
            Ok(count) => {
                let count = count.clamp(1, messages.len() - first);
                report.sent += count as u64;
                first += count;
            }
            // A signal came before anything was sent: try again.
            Err(rustix::io::Errno::INTR) => {}
            // The socket buffer is full: the rest of the batch is not sent (the pacing
            // goes on; a flood does not queue).
            Err(rustix::io::Errno::AGAIN) => {
                report.would_block += (messages.len() - first) as u64;
                return;
            }
            Err(rustix::io::Errno::NOBUFS) => {
                report.no_buffers += (messages.len() - first) as u64;
                return;
            }
            // Anything else (an ICMP error from an earlier datagram, a route gone): this
            // datagram is lost, the rest go on.
            Err(error) => {
                report.other_errors += 1;
                report
                    .first_error
                    .get_or_insert_with(|| format!("sendmmsg: {error}"));
                first += 1;
            }
        }
    }
}

/// Takes up to `max` replies waiting on `source`'s socket, counting them.
fn drain(
    source: &Source,
    kind: FloodKind,
    batch: &mut RecvBatch,
    max: usize,
    report: &mut FloodReport,
) {
    let mut taken = 0;
    while taken < max {
        match batch.recv(&source.udp, &source.socket) {
            Ok(_) => {
                taken += batch.for_each(|_, bytes| {
                    report.replies += 1;
                    if is_refusal(kind, bytes) {
                        report.refusals += 1;
                    }
                });
            }
            // Nothing more waiting, or an error (an ICMP error queued on the socket): stop
            // draining this socket for now.
            Err(_) => return,
        }
    }
}

fn is_refusal(kind: FloodKind, bytes: &[u8]) -> bool {
    match kind {
        FloodKind::Bep15Announce => matches!(
            bep15::decode_response(bytes, false),
            Ok(bep15::Response::Error { .. })
        ),
        _ => matches!(wire::decode(bytes), Ok(Message::Refused(_))),
    }
}

/// The BEP 15 connect handshake on every socket: a connect each, then replies taken as they
/// come, the unanswered sent again every [`CONNECT_TIMEOUT`]. Returns how many connected.
fn connect_all(
    config: &FloodConfig,
    sources: &mut [Source],
    rng: &mut Rng,
    batch: &mut RecvBatch,
    control: &FloodControl,
) -> usize {
    let transaction_ids: Vec<u32> = sources.iter().map(|_| rng.next_u64() as u32).collect();
    let mut buf = [0u8; 16];
    for _attempt in 0..CONNECT_ATTEMPTS_MAX {
        for (source, &transaction_id) in sources.iter().zip(&transaction_ids) {
            if source.connection_id.is_none()
                && let Ok(len) = bep15::encode_connect_request(&mut buf, transaction_id)
            {
                // A lost connect is sent again at the next attempt.
                let _ = source.socket.send(&buf[..len]);
            }
        }
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while Instant::now() < deadline && !control.stopped() {
            let mut any = false;
            for (source, &transaction_id) in sources.iter_mut().zip(&transaction_ids) {
                if source.connection_id.is_some() {
                    continue;
                }
                while let Ok(n) = batch.recv(&source.udp, &source.socket) {
                    if n == 0 {
                        break;
                    }
                    batch.for_each(|_, bytes| {
                        if let Ok(bep15::Response::Connect(reply)) =
                            bep15::decode_response(bytes, config.target.is_ipv6())
                            && reply.header.transaction_id.get() == transaction_id
                        {
                            source.connection_id = Some(reply.connection_id.get());
                        }
                    });
                    any = true;
                }
            }
            if sources.iter().all(|s| s.connection_id.is_some()) {
                return sources.len();
            }
            if !any {
                // Waiting for replies to arrive; the next look is a millisecond away.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    sources.iter().filter(|s| s.connection_id.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_as_a_range_or_a_list() {
        let range = parse_sources("10.77.0.254-10.77.1.1").unwrap();
        assert_eq!(range.len(), 4);
        assert_eq!(range[3], "10.77.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(parse_sources("10.0.0.1,10.0.0.2").unwrap().len(), 2);
        assert!(parse_sources("10.0.0.2-10.0.0.1").is_err());
        assert!(parse_sources("10.0.0.0-10.0.255.255").is_err());
        assert_eq!(
            consecutive_sources("10.77.4.0".parse().unwrap(), 1000)
                .unwrap()
                .len(),
            1000
        );
    }

    #[test]
    fn every_kind_is_what_it_claims() {
        let mut rng = Rng::new(1);
        let mut buf = [0u8; DATAGRAM_BYTES_MAX];
        let len = fill(FloodKind::Register, None, &mut rng, &mut buf);
        match wire::decode(&buf[..len]) {
            Ok(Message::Register(register)) => assert_eq!(register.auth.token.get(), 0),
            other => panic!("not a Register: {other:?}"),
        }
        let len = fill(FloodKind::Bep15Announce, Some(7), &mut rng, &mut buf);
        match bep15::decode_request(&buf[..len]) {
            Ok(bep15::Request::Announce(announce)) => {
                assert_eq!(announce.header.connection_id.get(), 7)
            }
            other => panic!("not an announce: {other:?}"),
        }
        let len = fill(FloodKind::Garbage, None, &mut rng, &mut buf);
        assert!((1..=120).contains(&len));
    }

    #[test]
    fn a_flood_on_loopback_is_paced_and_counted() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let config = FloodConfig {
            target: receiver.local_addr().unwrap(),
            kind: FloodKind::Garbage,
            rate_per_s: 20_000,
            duration: Duration::from_millis(200),
            sources: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            seed: 1,
        };
        let control = FloodControl::default();
        let report = run(&config, &control).unwrap();
        assert_eq!(control.sent(), report.sent);
        // 4,000 due in 0.2 s; the last batch's worth may not be due yet when time is up.
        assert!(
            report.sent + report.would_block + report.behind >= 3_000,
            "{report}"
        );
        assert!(report.sent <= 4_000 + BATCH_MAX as u64, "{report}");
    }
}
