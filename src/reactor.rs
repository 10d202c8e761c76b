//! The reactor: the only code that owns sockets, the clock, threads and the terminal.
//!
//! One thread per process runs one mio loop, [`run`], around a sans-IO core ([`Tracker`] or
//! [`Node`]); what differs between the two processes is a [`Driver`] (the tracker's saves its
//! registry; the node's talks to its hasher and console threads and draws progress):
//!
//! ```text
//!   poll(timeout = core.poll_timeout())
//!   -> socket readable:  recvmmsg until WouldBlock, core.handle_datagram(now, from, bytes)
//!   -> driver.take_inputs: hasher results and console lines (drained with try_recv), and
//!                          SIGINT / SIGTERM as an exit command
//!   -> core.handle_timeout(now)   (a spurious call does nothing)
//!   -> driver.serve_sockets: the node's peer wire (TCP at the UDP socket's port), its
//!                           reads and writes bounded per turn (reactor/peer_wire_sockets.rs)
//!   -> driver.take_events:  the core's lines for stdout and the log, jobs for the hashers,
//!                           snapshots to save; the exit code when the process ends
//!   -> core.poll_transmit()       into a batch, sent with sendmmsg / GSO, until the core has
//!                                 nothing or the socket is full
//! ```
//!
//! The socket calls batch many datagrams each (`recvmmsg` with GRO, `sendmmsg`, GSO for runs
//! of equal pieces to one peer): see [`crate::udp`]. The cores still see one datagram at a
//! time.
//!
//! Helper threads (hashers, the console) never touch the core: they talk to the reactor
//! through crossbeam channels and wake it with a [`mio::Waker`].

use crate::Core;
use crate::cli::{self, NodeArgs, TrackerArgs};
use crate::console;
use crate::control;
use crate::impair::{ImpairConfig, Impairment, Verdict};
use crate::logging;
use crate::metrics::{Exposition, MetricsServer, UdpCounters};
use crate::mtu::Routes;
use crate::node::{self, Node, NodeConfig};
use crate::secrets::Secrets;
use crate::storage::StateDir;
use crate::tracker::{self, Tracker, TrackerConfig};
use crate::udp::{KernelRoutes, RecvBatch, ReplySources, SendBatch, Udp};
use crate::wire;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod node_process;
mod peer_wire_sockets;
use node_process::{Hashers, NodeDriver, Screen, start_console};
use peer_wire_sockets::PeerWireSockets;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
const SIGNALS: Token = Token(2);
/// Datagrams received before the reactor sends what they caused: keeps replies flowing
/// while a flood arrives.
const RECV_BATCH_MAX: usize = 256;
/// `recvmmsg` calls in one receive round, whatever they return (bounds a run of errors).
const RECV_CALLS_MAX: usize = 16;
/// Batches ([`crate::udp::SEND_BATCH_MAX`] datagrams each) sent before the reactor looks at
/// its socket again.
const SEND_ROUNDS_MAX: usize = 4;

/// Everything the process-level loop needs besides the core.
struct Io {
    poll: Poll,
    socket: UdpSocket,
    events: Events,
    signals: Signals,
    udp: Udp,
    recv_batch: RecvBatch,
    /// Datagrams from the core not yet sent: what the socket refused with WouldBlock stays
    /// here and goes first when it is writable again.
    send_batch: SendBatch,
    /// Which of our addresses each remote asked at, when bound to all of them.
    reply_sources: ReplySources,
    /// Set when a receive loop stopped at its batch limit, not at WouldBlock: poll again at once.
    more_to_read: bool,
    /// The last send met a full socket buffer: wait for WRITABLE before sending more.
    send_blocked: bool,
    /// Loss, duplication and reordering of received datagrams, when asked for (`--impair`).
    impairment: Option<Impairment>,
    /// `--metrics`: the scrape server, and whether one of its sockets is ready.
    metrics: Option<MetricsServer>,
    metrics_ready: bool,
    /// What went through the socket, for the metrics.
    udp_counters: UdpCounters,
    /// Tokens of the driver's own sockets that the last poll found ready, with whether
    /// readable and writable (the node's peer wire).
    driver_ready: Vec<Ready>,
}

/// A token of the driver's that a poll found ready: readable, writable.
type Ready = (Token, bool, bool);

impl Io {
    fn new(
        listen: SocketAddr,
        buffer_bytes: usize,
        impair: Option<ImpairConfig>,
    ) -> Result<(Io, usize), String> {
        let std_socket = std::net::UdpSocket::bind(listen).map_err(|error| match error.kind() {
            io::ErrorKind::AddrInUse => format!("cannot listen on {listen}: the address is in use (is another tracker or node running there?)"),
            _ => format!("cannot listen on {listen}: {error}"),
        })?;
        std_socket
            .set_nonblocking(true)
            .map_err(|e| format!("cannot make the socket non-blocking: {e}"))?;
        let granted = size_buffers(&std_socket, buffer_bytes);
        let udp = Udp::new(&std_socket).map_err(|e| format!("cannot set up the socket: {e}"))?;
        let mut socket = UdpSocket::from_std(std_socket);
        let poll = Poll::new().map_err(|e| format!("cannot create a poll: {e}"))?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("cannot register the socket: {e}"))?;
        let mut signals =
            Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot catch signals: {e}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("cannot register signals: {e}"))?;
        let io = Io {
            poll,
            socket,
            events: Events::with_capacity(64),
            signals,
            udp,
            recv_batch: RecvBatch::new(),
            send_batch: SendBatch::new(),
            reply_sources: ReplySources::new(listen),
            more_to_read: false,
            send_blocked: false,
            impairment: impair.map(Impairment::new),
            metrics: None,
            metrics_ready: false,
            udp_counters: UdpCounters::default(),
            driver_ready: Vec::new(),
        };
        Ok((io, granted))
    }

    /// Serves metrics on `addr` (`--metrics`); returns the address bound.
    fn listen_for_scrapes(&mut self, addr: SocketAddr) -> Result<SocketAddr, String> {
        let server = MetricsServer::bind(addr, self.poll.registry())
            .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
        let bound = server.local_addr().unwrap_or(addr);
        self.metrics = Some(server);
        Ok(bound)
    }

    /// Answers the scrapes that are ready, with `render`'s text.
    fn serve_scrapes(&mut self, render: &mut dyn FnMut(UdpCounters) -> String) {
        if !std::mem::take(&mut self.metrics_ready) {
            return;
        }
        let udp = self.udp_counters;
        if let Some(server) = &mut self.metrics {
            server.serve(self.poll.registry(), &mut || render(udp));
        }
    }

    /// When the next held-back datagram (impairment) is due.
    fn held_due(&self) -> Option<Instant> {
        self.impairment.as_ref().and_then(Impairment::poll_timeout)
    }

    fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Waits for readiness until `deadline`; returns whether a signal asked us to stop.
    fn wait(&mut self, deadline: Option<Instant>) -> bool {
        let timeout = if self.more_to_read {
            Some(Duration::ZERO)
        } else {
            // Round up to the next millisecond: epoll counts whole milliseconds, and waking
            // a hair early would only spin.
            deadline.map(|t| {
                let left = t.saturating_duration_since(Instant::now());
                Duration::from_millis(left.as_micros().div_ceil(1000) as u64)
            })
        };
        if let Err(error) = self.poll.poll(&mut self.events, timeout) {
            // Interrupted by a signal: the signal pipe tells us which on the next round.
            if error.kind() != io::ErrorKind::Interrupted {
                log::error!("poll failed: {error}");
            }
        }
        let mut stop = false;
        for event in self.events.iter() {
            if event.token() == SIGNALS {
                stop = true;
            } else if PeerWireSockets::owns(event.token()) {
                // A reset or a hang-up shows as readable: the read finds it.
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_write_closed();
                self.driver_ready.push((event.token(), readable, writable));
            } else if MetricsServer::owns(event.token()) {
                self.metrics_ready = true;
            }
        }
        if stop {
            // Drain the pipe so the next poll does not report it again.
            let mut caught = None;
            for signal in self.signals.pending() {
                caught = Some(signal);
            }
            stop = caught.is_some();
            if let Some(signal) = caught {
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                log::info!("{name} received: leaving");
            }
        }
        stop
    }

    /// Receives about [`RECV_BATCH_MAX`] datagrams (whole `recvmmsg` batches), handing each
    /// to the core (through the impairment, when there is one).
    ///
    /// Each batch is handed over with the clock read after its `recvmmsg`, not `now` (read
    /// when the poll returned): a datagram's time must never be earlier than its arrival. A
    /// process descheduled between the two reads (15 ms on the 2 shared cores) would
    /// otherwise date the datagrams that arrived meanwhile before they were sent, and a
    /// paced download's delay model would take that as the path's base delay and every
    /// later piece as queued by as much, for the rest of the transfer (2026-12-07).
    /// Returns the clock of the last batch, for what the loop does next: the core's time
    /// never goes back.
    fn receive(&mut self, mut now: Instant, core: &mut impl Core) -> Instant {
        let counters = &mut self.udp_counters;
        let mut handle = |now: Instant, from: SocketAddr, bytes: &[u8]| {
            counters.udp_datagrams_received += 1;
            counters.udp_payload_bytes_received += bytes.len() as u64;
            core.handle_datagram(now, from, bytes)
        };
        self.more_to_read = false;
        let impairment = &mut self.impairment;
        if let Some(impairment) = impairment {
            while let Some((from, bytes)) = impairment.poll_held(now) {
                handle(now, from, &bytes);
            }
        }
        let mut received = 0;
        for _ in 0..RECV_CALLS_MAX {
            match self.recv_batch.recv(&self.udp, &self.socket) {
                Ok(_) => {
                    now = now.max(Instant::now());
                    self.recv_batch.learn_sources(&mut self.reply_sources);
                    received += self.recv_batch.for_each(|from, bytes| {
                        match impairment.as_mut().map(|i| i.judge(now, from, bytes)) {
                            None | Some(Verdict::Deliver) => handle(now, from, bytes),
                            Some(Verdict::DeliverTwice) => {
                                handle(now, from, bytes);
                                handle(now, from, bytes);
                            }
                            Some(Verdict::Drop | Verdict::Held) => {}
                        }
                    });
                    if received >= RECV_BATCH_MAX {
                        break;
                    }
                }
                // Drained: mio reports readiness again when the next datagram arrives.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return now,
                // A signal arrived mid-call: nothing was lost, try again.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from an earlier send (port unreachable: a peer is gone) surface
                // here on Linux; the core finds out by timeout, so they are only logged.
                Err(error) => log::debug!("recvmmsg: {error}"),
            }
        }
        self.more_to_read = true;
        now
    }

    /// Sends what the core has to send, up to [`SEND_ROUNDS_MAX`] batches. Returns true when
    /// the core may have more.
    fn transmit(&mut self, now: Instant, core: &mut impl Core) -> bool {
        let (mut datagrams, mut bytes) = (0, 0);
        let more = self.transmit_counting(now, core, (&mut datagrams, &mut bytes));
        self.udp_counters.udp_datagrams_sent += datagrams;
        self.udp_counters.udp_payload_bytes_sent += bytes;
        more
    }

    fn transmit_counting(
        &mut self,
        now: Instant,
        core: &mut impl Core,
        (datagrams, bytes): (&mut u64, &mut u64),
    ) -> bool {
        let mut next = |buf: &mut [u8]| {
            let transmit = core.poll_transmit(now, buf)?;
            *datagrams += 1;
            *bytes += transmit.len as u64;
            Some(transmit)
        };
        // What the socket refused last time goes first.
        if !self.flush() {
            return false;
        }
        for _ in 0..SEND_ROUNDS_MAX {
            let core_has_more = self.send_batch.fill(&mut next);
            if !self.flush() || !core_has_more {
                return false;
            }
        }
        true
    }

    /// Sends the batch; false when the socket is full (the rest is kept for later).
    fn flush(&mut self) -> bool {
        self.send_blocked = false;
        match self
            .send_batch
            .flush(&self.udp, &self.socket, &self.reply_sources)
        {
            Ok(()) => true,
            // The socket buffer is full: keep the rest, wait for WRITABLE. (Interrupted calls
            // are retried inside, and a datagram the network refused is dropped there like
            // any lost datagram: the core finds out by timeout.)
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                self.send_blocked = true;
                false
            }
            // Nothing else comes out of a flush; if it did, the batch is kept for the next
            // WRITABLE.
            Err(error) => {
                log::debug!("send: {error}");
                false
            }
        }
    }
}

/// What a process does around its core on each turn of the one loop, [`run`]: the inputs that
/// come from elsewhere than the socket, and the core's own events.
trait Driver {
    type Core: Core;
    /// A moment of its own to wake at, besides the core's timers (the node's progress).
    fn due(&self, _core: &Self::Core) -> Option<Instant> {
        None
    }
    /// After the datagrams: what other threads sent (hasher results, console lines), and
    /// whether a signal asked the process to stop.
    fn take_inputs(&mut self, now: Instant, core: &mut Self::Core, stop: bool);
    /// After the core's timers: its events (lines, jobs, snapshots to save). The exit code
    /// once the process ends.
    fn take_events(&mut self, now: Instant, core: &mut Self::Core) -> Option<i32>;
    /// Whether the core has datagrams waiting besides what the last send took.
    fn has_transmit(&self, _core: &Self::Core, _now: Instant) -> bool {
        false
    }
    /// At the end of a turn (the node redraws its progress).
    fn end_turn(&mut self, _now: Instant, _core: &Self::Core) {}
    /// After the core's timers: the driver's own sockets (the node's peer wire), with
    /// those the last poll found ready. Returns whether one has more to do at once.
    fn serve_sockets(
        &mut self,
        _now: Instant,
        _core: &mut Self::Core,
        _registry: &mio::Registry,
        _ready: &[Ready],
    ) -> bool {
        false
    }
    /// The process's metrics besides the socket's counters (`--metrics`).
    fn metrics(&self, core: &Self::Core, now: Instant, text: &mut Exposition);
    /// What the process's metric names start with.
    const METRICS_PREFIX: &'static str;
}

/// The reactor's loop, the same for every core: wait for the socket, a signal, a wake-up or
/// the next timer; receive; take the other inputs; fire the core's timers; take its events;
/// send. Returns the exit code.
fn run<D: Driver>(io: &mut Io, core: &mut D::Core, driver: &mut D) -> i32 {
    loop {
        let deadline = earliest(
            earliest(core.poll_timeout(), driver.due(core)),
            io.held_due(),
        );
        let stop = io.wait(deadline);
        let now = io.receive(Instant::now(), core);
        io.serve_scrapes(&mut |udp| {
            let mut text = Exposition::new();
            text.counters_of(D::METRICS_PREFIX, "the socket", &udp);
            driver.metrics(core, now, &mut text);
            text.into_text()
        });
        driver.take_inputs(now, core, stop);
        core.handle_timeout(now);
        let sockets_busy = driver.serve_sockets(now, core, io.poll.registry(), &io.driver_ready);
        io.driver_ready.clear();
        if let Some(code) = driver.take_events(now, core) {
            while io.transmit(now, core) {}
            return code;
        }
        let core_has_more = io.transmit(now, core);
        if sockets_busy {
            io.more_to_read = true;
        }
        if core_has_more || (driver.has_transmit(core, now) && !io.send_blocked) {
            // More to send: come straight back after a look at the socket. Not when the
            // socket is full: polling again at once would spin until it drains (on a slow
            // link, all the time); its WRITABLE event wakes the loop instead.
            io.more_to_read = true;
        }
        driver.end_turn(now, core);
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Asks the kernel for `bytes` of receive and send buffer (forcing past `rmem_max` when
/// root), and returns the receive buffer actually granted.
fn size_buffers(socket: &std::net::UdpSocket, bytes: usize) -> usize {
    use rustix::net::sockopt;
    if sockopt::set_socket_recv_buffer_size_force(socket, bytes).is_err() {
        let _ = sockopt::set_socket_recv_buffer_size(socket, bytes);
    }
    if sockopt::set_socket_send_buffer_size_force(socket, bytes).is_err() {
        let _ = sockopt::set_socket_send_buffer_size(socket, bytes);
    }
    // Linux reports twice what it counts as payload room (the rest is bookkeeping).
    let granted = sockopt::socket_recv_buffer_size(socket).unwrap_or(0);
    if granted < bytes {
        log::warn!(
            "asked for a {bytes}-byte receive buffer, the system granted {granted} (raise net.core.rmem_max)"
        );
    }
    granted
}

// ---- tracker ------------------------------------------------------------------------------

/// Runs the tracker until SIGINT or SIGTERM. Returns the exit code.
pub fn run_tracker(args: TrackerArgs) -> Result<i32, String> {
    logging::init(
        &args.log_dir,
        "_tracker.log",
        args.log_level,
        args.log_bytes_max,
    )
    .map_err(|e| format!("cannot open the log in {}: {e}", args.log_dir.display()))?;
    let config = TrackerConfig {
        expiry: args.expiry,
        heartbeat_interval: args.heartbeat_interval,
        announce_interval: args.announce_interval,
        routes: Routes::new(KernelRoutes::default()),
    };
    let snapshot = tracker::db::load(&args.db_dir)
        .map_err(|e| format!("cannot read the tracker database: {e}"))?;
    // Now, not at the first save (up to a second after the first change): a folder that
    // cannot be made is an error at start, not a line in the log later.
    std::fs::create_dir_all(&args.db_dir).map_err(|e| {
        format!(
            "cannot create the tracker database folder {}: {e}",
            args.db_dir.display()
        )
    })?;
    if let Err(error) = tracker::db::check_writable(&args.db_dir) {
        // Running on would lose every registration at the next restart.
        eprintln!(
            "torrent: the tracker database folder {} is not writable ({error}): the registry could not be saved",
            args.db_dir.display()
        );
        return Ok(2);
    }
    let (mut io, _) = Io::new(
        args.listen,
        cli::SOCKET_BUFFER_BYTES_DEFAULT as usize,
        args.impair,
    )?;
    // Replies answer separate requests: equal ones to one client may go as one GSO send.
    io.send_batch.group_replies();
    let now = Instant::now();
    let restored = snapshot.is_some();
    let mut tracker = match snapshot {
        Some(snapshot) => Tracker::from_snapshot(config, Secrets::os(), now, snapshot),
        None => Tracker::new(config, Secrets::os(), now),
    };
    let local = io.local_addr();
    say(&format!("tracker listening on {local}"));
    if let Some(addr) = args.metrics {
        let bound = io.listen_for_scrapes(addr)?;
        say(&format!("metrics at http://{bound}/metrics"));
    }
    if restored {
        say(&format!(
            "restored {} nodes and {} files from {}",
            tracker.node_count(),
            tracker.file_count(),
            args.db_dir.display()
        ));
    }
    let mut driver = TrackerDriver {
        db_dir: args.db_dir,
        stop: false,
    };
    Ok(run(&mut io, &mut tracker, &mut driver))
}

/// The tracker's process around its core: its events to stdout and the log, its registry
/// to disk.
struct TrackerDriver {
    db_dir: std::path::PathBuf,
    /// A signal asked the tracker to stop: it saves and leaves at the end of this turn.
    stop: bool,
}

impl Driver for TrackerDriver {
    type Core = Tracker;
    const METRICS_PREFIX: &'static str = "torrent_tracker";

    fn metrics(&self, tracker: &Tracker, _now: Instant, text: &mut Exposition) {
        text.counters_of(Self::METRICS_PREFIX, "tracker", tracker.stats());
        text.gauge(
            "torrent_tracker_nodes",
            "nodes registered",
            tracker.node_count() as f64,
        );
        text.gauge(
            "torrent_tracker_files",
            "files some node holds",
            tracker.file_count() as f64,
        );
    }

    fn take_inputs(&mut self, _now: Instant, _tracker: &mut Tracker, stop: bool) {
        self.stop |= stop;
    }

    fn take_events(&mut self, now: Instant, tracker: &mut Tracker) -> Option<i32> {
        while let Some(event) = tracker.poll_event() {
            match event {
                // Malformed datagrams are routine on an open port: log them, do not print.
                tracker::TrackerEvent::Dropped { .. } => log::debug!("{event}"),
                // Standard clients announce every couple of minutes each: the log, not stdout.
                // One per standard announce: tens of thousands a second under load.
                tracker::TrackerEvent::Bep15Announced { .. } => log::debug!("{event}"),
                _ => say(&event.to_string()),
            }
        }
        // Batched: at most one save per `REGISTRY_SAVE_DELAY`, so replies may go out up to
        // that long before what they acknowledge is on disk (see the constant for why).
        if let Some(snapshot) = tracker.poll_snapshot() {
            let saved = save_registry(&self.db_dir, &snapshot);
            // Replies that hand out a newly saved token go out only now.
            tracker.snapshot_written(now, saved);
        }
        if !self.stop {
            return None;
        }
        if let Some(snapshot) = tracker.poll_snapshot_at_stop() {
            save_registry(&self.db_dir, &snapshot);
        }
        say(&format!("tracker stopping ({})", tracker.stats()));
        Some(0)
    }
}

/// Where a node listens when not told: the local address the kernel would send from to reach
/// the tracker, any free port. Peers learn our address from the tracker, which sees it as the
/// source of our datagrams, so this is the address they can reach (127.0.0.1 only when the
/// tracker is on loopback too). With no route to the tracker yet, every address.
fn listen_toward(tracker: SocketAddr) -> SocketAddr {
    let unspecified: SocketAddr = match tracker {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // Connecting a UDP socket sends nothing: the kernel only looks up the route.
    let routed = std::net::UdpSocket::bind(unspecified)
        .and_then(|socket| socket.connect(tracker).map(|()| socket))
        .and_then(|socket| socket.local_addr());
    match routed {
        Ok(local) => SocketAddr::new(local.ip(), 0),
        Err(_) => unspecified,
    }
}

/// This host's interface addresses when `local` is unspecified (bound to all of them), for
/// the node to recognise itself in peer lists; none otherwise, or when they cannot be read
/// (the node then recognises itself only at its bound and advertised addresses).
fn interface_ips(local: SocketAddr) -> Vec<std::net::IpAddr> {
    if !local.ip().is_unspecified() {
        return Vec::new();
    }
    crate::udp::interface_addresses(crate::node::INTERFACE_ADDRESSES_MAX).unwrap_or_else(|error| {
        log::warn!(
            "cannot list this host's addresses ({error}): a peer list may name us unrecognised"
        );
        Vec::new()
    })
}

/// Writes the registry and says so in the log (one line per save, which tests count); a
/// failure goes to stderr too, and the tracker tries again no sooner than a second later.
fn save_registry(db_dir: &std::path::Path, snapshot: &tracker::Snapshot) -> bool {
    match tracker::db::save(db_dir, snapshot) {
        Ok(()) => {
            log::info!(
                "registry saved: {} nodes, {} files",
                snapshot.nodes.len(),
                snapshot.files.len()
            );
            true
        }
        Err(error) => {
            let line = format!("cannot save the registry to {}: {error}", db_dir.display());
            log::error!("{line}");
            eprintln!("{line}");
            false
        }
    }
}

// ---- node ---------------------------------------------------------------------------------

/// Raises this process's limit of open files to the most it may have: a tree being shared
/// or downloaded keeps each of its files open (up to [`crate::tree::paths::FILES_MAX`]),
/// and the soft limit a shell gives (often 1,024) would refuse a tree of a few thousand
/// files that the hard limit allows. A limit that cannot be raised stays as it was.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            log::debug!("cannot raise the limit of open files: {error}");
        }
    }
}

/// Runs a node until `exit`, a signal, or (with `--exit-when-done`) the end of its
/// downloads. Returns the exit code.
pub fn run_node(args: NodeArgs) -> Result<i32, String> {
    raise_open_files_limit();
    let state = match StateDir::open_exclusive(&args.dir) {
        Ok(state) => state,
        // Another node process uses the directory: the command line asked for what cannot
        // be, as a bad flag does (exit 2), and nothing was touched.
        Err(error) if error.kind() == std::io::ErrorKind::ResourceBusy => {
            eprintln!("torrent: {error}");
            return Ok(2);
        }
        Err(e) => return Err(format!("cannot use directory {}: {e}", args.dir.display())),
    };
    let state_shared_in_place = crate::storage::Storage::shared_in_place(&state);
    logging::init(
        &args.log_dir,
        &format!("node{}.log", args.node_id),
        args.log_level,
        args.log_bytes_max,
    )
    .map_err(|e| format!("cannot open the log in {}: {e}", args.log_dir.display()))?;
    let listen = args.listen.unwrap_or_else(|| listen_toward(args.tracker));
    let (mut io, granted_bytes) = Io::new(listen, args.socket_buffer_bytes, args.impair)?;
    let local = io.local_addr();
    if local.ip() != args.tracker.ip() && local.ip().is_loopback() {
        log::warn!(
            "listening on {local} but the tracker is at {}: peers elsewhere cannot reach us",
            args.tracker
        );
    }
    // Pieces in flight from all peers together must fit in what the kernel granted (half of
    // it is payload room; each datagram costs its size plus bookkeeping).
    let piece_cost = u64::from(args.piece_bytes) + wire::PIECE_OVERHEAD_BYTES as u64 + 1024;
    let window_pieces_max =
        ((granted_bytes as u64 / 2 / piece_cost) / args.peers as u64).clamp(4, 4096) as u32;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let config = NodeConfig {
        peers_max: args.peers,
        piece_bytes: args.piece_bytes,
        chunk_bytes: args.chunk_bytes,
        heartbeat_interval: args.heartbeat_interval,
        give_up_after: args.give_up_after,
        max_upload_bytes_per_s: args.max_upload_bytes_per_s,
        max_download_bytes_per_s: args.max_download_bytes_per_s,
        pace: args.pace,
        window_pieces_max,
        hash_threads: threads,
        standard_tracker: args.standard_tracker,
        local_addr: local,
        advertise: args.advertise.map(|advertise| advertise.addr(local.port())),
        interface_ips: interface_ips(local),
        routes: Routes::new(KernelRoutes::default()),
        ..NodeConfig::new(args.node_id, args.tracker)
    };
    log::info!(
        "node {} at {local}, dir {}, window {window_pieces_max} pieces per peer",
        args.node_id,
        args.dir.display()
    );
    let advertise = config.advertise;
    // The peer wire listens on TCP at the UDP socket's address and port (BitTorrent's
    // convention). A port taken on TCP leaves the node without it, not without UDP.
    let peer_wire = match PeerWireSockets::bind(local, io.poll.registry()) {
        Ok(sockets) => Some(sockets),
        Err(error) => {
            log::warn!(
                "no peer wire (standard BitTorrent clients cannot download from us): cannot listen on TCP {local}: {error}"
            );
            None
        }
    };
    // Before the node starts, so that a script may connect as soon as it sees the first line.
    let control_listener = state.bind_control();
    let now = Instant::now();
    let mut node = Node::new(config, Arc::new(state), Secrets::os(), now);
    let mut screen = Screen::new(args.progress, args.json);
    node.set_exit_when_done(args.exit_when_done);
    match advertise {
        Some(advertise) => screen.say(&format!(
            "node {} listening on {local}, advertising {advertise}",
            args.node_id
        )),
        None => screen.say(&format!("node {} listening on {local}", args.node_id)),
    }
    if let Some(addr) = args.metrics {
        let bound = io.listen_for_scrapes(addr)?;
        screen.say(&format!("metrics at http://{bound}/metrics"));
    }

    let waker = Arc::new(
        Waker::new(io.poll.registry(), WAKER).map_err(|e| format!("cannot create a waker: {e}"))?,
    );
    let hashers = Hashers::start(threads, &waker, node::run_job);
    let console = start_console(&waker);
    let control = match control_listener {
        Ok(listener) => {
            let waker = Arc::clone(&waker);
            Some(control::serve(listener, move || {
                let _ = waker.wake();
            }))
        }
        Err(error) => {
            // The console and signals still drive the node.
            screen.say(&format!(
                "no control socket (torrent ctl cannot reach this node): {error}"
            ));
            None
        }
    };
    // What an earlier run shared in place, then what this command line asks.
    for path in state_shared_in_place {
        let path = path.display().to_string();
        node.handle_command(now, console::Command::SendAt { path });
    }
    for name in &args.send {
        let command = match name.contains('/') {
            true => console::Command::SendAt { path: name.clone() },
            false => console::Command::Send { name: name.clone() },
        };
        node.handle_command(now, command);
    }
    for download in &args.download {
        node.handle_command(now, download.clone());
    }
    // After the sends and downloads, so that each waits for its file.
    for name in &args.export {
        node.handle_command(now, console::Command::Export { name: name.clone() });
    }
    let mut driver = NodeDriver {
        hashers,
        console,
        control,
        screen,
        peer_wire,
    };
    Ok(run(&mut io, &mut node, &mut driver))
}

/// Prints a line to stdout, whole, and to the log.
fn say(line: &str) {
    log::info!("{line}");
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core that keeps the time it was given with each datagram.
    struct Dated(Vec<Instant>);

    impl Core for Dated {
        fn handle_datagram(&mut self, now: Instant, _from: SocketAddr, _bytes: &[u8]) {
            self.0.push(now);
        }
        fn handle_timeout(&mut self, _now: Instant) {}
        fn poll_transmit(&mut self, _now: Instant, _buf: &mut [u8]) -> Option<crate::Transmit> {
            None
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
    }

    /// The loop read the clock, then (descheduled) a datagram arrived: the core must not be
    /// told it arrived before it was sent, or a paced download reads every later piece as
    /// queued by the time the process waited.
    #[test]
    fn a_datagram_is_never_dated_before_it_was_sent() {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        std_socket.set_nonblocking(true).unwrap();
        let listen = std_socket.local_addr().unwrap();
        let udp = Udp::new(&std_socket).unwrap();
        let mut socket = UdpSocket::from_std(std_socket);
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)
            .unwrap();
        let mut io = Io {
            poll,
            socket,
            events: Events::with_capacity(4),
            // No signal caught: the test process keeps its own handling of Ctrl-C.
            signals: Signals::new(Vec::<i32>::new()).unwrap(),
            udp,
            recv_batch: RecvBatch::new(),
            send_batch: SendBatch::new(),
            reply_sources: ReplySources::new(listen),
            more_to_read: false,
            send_blocked: false,
            impairment: None,
            metrics: None,
            metrics_ready: false,
            udp_counters: UdpCounters::default(),
            driver_ready: Vec::new(),
        };
        let loop_clock = Instant::now();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"piece", listen).unwrap();
        let sent_at = Instant::now();
        io.poll
            .poll(&mut io.events, Some(Duration::from_secs(10)))
            .unwrap();
        let mut core = Dated(Vec::new());
        let after = io.receive(loop_clock, &mut core);
        assert_eq!(core.0.len(), 1, "the datagram was received");
        assert!(core.0[0] >= sent_at, "dated before it was sent");
        assert!(after >= core.0[0], "the loop's clock went back");
    }
}
