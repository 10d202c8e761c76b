//! The node's process around its core (see [`super::Driver`]): the hasher threads, the
//! console thread, the control socket's orders, and stdout (lines or JSON, and progress).

mod bars;

use super::Driver;
use crate::console;
use crate::control::{self, DownloadState};
use crate::metrics::Exposition;
use crate::node::{Event, Job, JobDone, Node, NodeEvent};
use bars::Bars;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::Waker;
use std::collections::VecDeque;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest console line; longer input is cut and refused by the parser.
const CONSOLE_LINE_BYTES_MAX: u64 = 4096;
/// Console lines waiting for the reactor. When it is full the console thread waits, and so
/// stops reading stdin: a script piping in thousands of commands is held back, not buffered.
const CONSOLE_LINES_QUEUED_MAX: usize = 64;
/// Jobs in the hashers' channel: enough to keep every hasher busy. When it is full, a job
/// waits in the reactor's own queue ([`Hashers`]), whose length the node bounds (at most
/// `transfer::HASHING_BYTES_MAX` of chunks per download, one job per file shared).
const JOBS_QUEUED_MAX: usize = 64;
/// Results waiting for the reactor. When it is full, a hasher waits with its result.
const RESULTS_QUEUED_MAX: usize = 64;
/// How often the bars are redrawn on a terminal, and progress printed with `--progress` or
/// `--json`.
const PROGRESS_TTY_INTERVAL: Duration = Duration::from_millis(250);
const PROGRESS_PIPE_INTERVAL: Duration = Duration::from_secs(1);

/// The node's process around its core: the hasher threads, the console thread, and the
/// terminal.
pub(super) struct NodeDriver {
    pub(super) hashers: Hashers,
    pub(super) console: Receiver<console::Parsed>,
    /// Orders from the control socket's threads, each with where its reply goes.
    pub(super) control: Option<Receiver<control::Call>>,
    pub(super) screen: Screen,
    /// The peer wire's listener and connections, when the TCP port could be had.
    pub(super) peer_wire: Option<super::PeerWireSockets>,
}

impl Driver for NodeDriver {
    type Core = Node;
    const METRICS_PREFIX: &'static str = "torrent_node";

    fn metrics(&self, node: &Node, now: Instant, text: &mut Exposition) {
        let status = node.status_info(now);
        text.counters_of(Self::METRICS_PREFIX, "node", &status.counters);
        let running = status
            .downloads
            .iter()
            .filter(|d| d.state == DownloadState::Running);
        let (mut peers, mut rate) = (0, 0.0);
        for download in running {
            peers += download.peers;
            rate += download.bytes_per_s;
        }
        let count = |state| status.downloads.iter().filter(|d| d.state == state).count() as f64;
        text.gauge_by(
            "torrent_node_downloads",
            "downloads known (the finished ones kept for status), by state",
            "state",
            &[
                ("running", count(DownloadState::Running)),
                ("paused", count(DownloadState::Paused)),
                ("done", count(DownloadState::Done)),
                ("failed", count(DownloadState::Failed)),
                ("cancelled", count(DownloadState::Cancelled)),
            ],
        );
        text.gauge(
            "torrent_node_download_peers",
            "peers the running downloads use",
            peers as f64,
        );
        text.gauge(
            "torrent_node_download_bytes_per_second",
            "verified bytes a second, all running downloads together",
            rate,
        );
        text.gauge(
            "torrent_node_files",
            "files held, whole or in part",
            status.files.len() as f64,
        );
        text.gauge(
            "torrent_node_uptime_seconds",
            "seconds since the node started",
            status.uptime_s as f64,
        );
    }

    fn due(&self, node: &Node) -> Option<Instant> {
        self.screen.due(node)
    }

    fn take_inputs(&mut self, now: Instant, node: &mut Node, stop: bool) {
        while let Some(result) = self.hashers.result() {
            node.handle_job_done(now, result);
        }
        while let Ok(parsed) = self.console.try_recv() {
            node.handle_console(now, parsed);
        }
        while let Some(call) = self.control.as_ref().and_then(|c| c.try_recv().ok()) {
            // The connection's thread waits for this one reply: its channel has room.
            let _ = call.reply.try_send(node.handle_control(now, call.order));
        }
        if stop {
            node.handle_command(now, console::Command::Exit);
        }
    }

    fn take_events(&mut self, _now: Instant, node: &mut Node) -> Option<i32> {
        while let Some(event) = node.poll_event() {
            match event {
                NodeEvent::Report(event) => self.screen.report(&event),
                NodeEvent::Print(text) => self.screen.print(&text),
                NodeEvent::Job(job) => self.hashers.submit(job),
                NodeEvent::Exit(code) => {
                    self.screen.clear();
                    log::info!("node {} exits with code {code}", node.node_id());
                    return Some(code);
                }
            }
        }
        None
    }

    fn serve_sockets(
        &mut self,
        now: Instant,
        node: &mut Node,
        registry: &mio::Registry,
        ready: &[super::Ready],
    ) -> bool {
        let Some(sockets) = &mut self.peer_wire else {
            return false;
        };
        for &(token, readable, writable) in ready {
            sockets.ready(token, readable, writable);
        }
        sockets.serve(now, node, registry);
        sockets.busy()
    }

    fn has_transmit(&self, node: &Node, now: Instant) -> bool {
        node.has_transmit(now)
    }

    fn end_turn(&mut self, now: Instant, node: &Node) {
        self.screen.draw(node, now);
    }
}

/// The hasher threads: jobs in, results out, the reactor woken for each result. The
/// channels are bounded; jobs beyond [`JOBS_QUEUED_MAX`] wait in `waiting`, so that the
/// reactor never blocks on a send.
/// Generic over the job so that a test can run it with numbers.
pub(super) struct Hashers<J = Job, R = JobDone> {
    jobs: Sender<J>,
    waiting: VecDeque<J>,
    results: Receiver<R>,
}

impl<J: Send + 'static, R: Send + 'static> Hashers<J, R> {
    /// Starts `threads` threads that run `run` on each job.
    pub(super) fn start(threads: usize, waker: &Arc<Waker>, run: fn(J) -> R) -> Hashers<J, R> {
        let (job_tx, job_rx) = crossbeam_channel::bounded::<J>(JOBS_QUEUED_MAX);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<R>(RESULTS_QUEUED_MAX);
        for index in 0..threads.max(1) {
            let (job_rx, done_tx, waker) = (job_rx.clone(), done_tx.clone(), Arc::clone(waker));
            let spawned = std::thread::Builder::new()
                .name(format!("hasher-{index}"))
                .spawn(move || {
                    // Ends when the reactor drops the sender, i.e. when the process leaves.
                    for job in job_rx.iter() {
                        if done_tx.send(run(job)).is_err() {
                            return;
                        }
                        let _ = waker.wake();
                    }
                });
            if let Err(error) = spawned {
                log::error!("cannot start a hasher thread: {error}");
            }
        }
        Hashers {
            jobs: job_tx,
            waiting: VecDeque::new(),
            results: done_rx,
        }
    }

    /// Hands `job` to the hashers, or queues it behind the others when their channel is full.
    fn submit(&mut self, job: J) {
        self.waiting.push_back(job);
        self.offer_waiting();
    }

    /// A finished job's result, if one is waiting; each frees a place for a queued job.
    fn result(&mut self) -> Option<R> {
        let result = self.results.try_recv().ok();
        self.offer_waiting();
        result
    }

    fn offer_waiting(&mut self) {
        while let Some(job) = self.waiting.pop_front() {
            match self.jobs.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job)) => {
                    self.waiting.push_front(job);
                    return;
                }
                // The hashers live as long as the reactor: they are gone only if none could
                // be started, which was logged.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }
}

/// The console thread: reads stdin a line at a time and parses it, off the reactor thread as
/// the control socket's threads parse theirs; at end of input it stops reading and the node
/// keeps serving (until a signal or `exit`).
pub(super) fn start_console(waker: &Arc<Waker>) -> Receiver<console::Parsed> {
    let (tx, rx) = crossbeam_channel::bounded::<console::Parsed>(CONSOLE_LINES_QUEUED_MAX);
    let waker = Arc::clone(waker);
    let _ = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut input = stdin.lock();
            loop {
                let mut line = Vec::new();
                match (&mut input)
                    .take(CONSOLE_LINE_BYTES_MAX)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if line.last() != Some(&b'\n')
                            && line.len() as u64 == CONSOLE_LINE_BYTES_MAX
                        {
                            // Skip the rest of an overlong line; the parser refuses what we keep.
                            let mut rest = Vec::new();
                            let _ = input.read_until(b'\n', &mut rest);
                        }
                        let parsed = console::parse(&String::from_utf8_lossy(&line));
                        if tx.send(parsed).is_err() {
                            return;
                        }
                        let _ = waker.wake();
                    }
                }
            }
        });
    rx
}

/// The node's stdout: what it reports, as lines for a person or (`--json`) as JSON lines
/// (see `node/events.rs`), and the progress of its downloads: bars on a terminal
/// ([`Bars`]), `progress ...` lines with `--progress`, `progress` events with `--json`.
pub(super) struct Screen {
    json: bool,
    tty: bool,
    forced: bool,
    next_draw: Option<Instant>,
    /// On a terminal, without `--json`.
    bars: Option<Bars>,
}

impl Screen {
    /// `forced`: `--progress`; `json`: `--json` (then no bars, and only JSON on stdout).
    pub(super) fn new(forced: bool, json: bool) -> Screen {
        let tty = io::stdout().is_terminal();
        Screen {
            json,
            tty,
            forced,
            next_draw: None,
            bars: (tty && !json).then(Bars::new),
        }
    }

    fn interval(&self) -> Option<Duration> {
        if self.json || (self.forced && !self.tty) {
            Some(PROGRESS_PIPE_INTERVAL)
        } else if self.tty {
            Some(PROGRESS_TTY_INTERVAL)
        } else {
            None
        }
    }

    /// When the progress should next be drawn; `None` when there is nothing to show.
    fn due(&self, node: &Node) -> Option<Instant> {
        self.interval()?;
        // Asked on every turn of the loop: a cheap question, not a built report.
        if node.downloading() {
            self.next_draw
        } else {
            None
        }
    }

    fn draw(&mut self, node: &Node, now: Instant) {
        let Some(interval) = self.interval() else {
            return;
        };
        if self.next_draw.is_some_and(|t| t > now) {
            return;
        }
        let reports = node.progress_reports(now);
        if reports.is_empty() {
            self.clear();
            self.next_draw = None;
            return;
        }
        self.next_draw = Some(now + interval);
        if let Some(bars) = &mut self.bars {
            bars.update(&reports);
            return;
        }
        let mut stdout = io::stdout().lock();
        for report in reports {
            let _ = writeln!(stdout, "{}", self.shown(&Event::Progress(report)));
        }
        let _ = stdout.flush();
    }

    fn clear(&mut self) {
        if let Some(bars) = &mut self.bars {
            bars.clear();
        }
    }

    /// An event as stdout shows it: its line, or its JSON.
    fn shown(&self, event: &Event) -> String {
        if self.json {
            event.json_line()
        } else {
            event.to_string()
        }
    }

    /// A line of the process's own (where it listens, ...), as a message.
    pub(super) fn say(&mut self, line: &str) {
        self.report(&Event::message(line));
    }

    /// Writes `event` to stdout and its line to the log.
    fn report(&mut self, event: &Event) {
        log::info!("{event}");
        self.write(&self.shown(event));
    }

    /// Prints without logging (see [`NodeEvent::Print`]): an `output` event in JSON.
    fn print(&mut self, text: &str) {
        if self.json {
            let output = Event::Output {
                text: text.to_string(),
            };
            self.write(&output.json_line());
        } else {
            self.write(text);
        }
    }

    /// Writes `text` and a newline; on a terminal, above the bars, which it never overwrites.
    fn write(&mut self, text: &str) {
        let print = || {
            let mut stdout = io::stdout().lock();
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        };
        match &self.bars {
            Some(bars) => bars.suspend(print),
            None => print(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::WAKER;
    use super::*;

    /// Far more jobs than the channels hold, submitted by a reactor that must never block:
    /// every job is run, once, and its result comes back.
    #[test]
    fn hashers_run_every_job_when_more_are_submitted_than_their_channel_holds() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
        let mut hashers = Hashers::start(2, &waker, |n: u32| n * 2);
        let jobs = 4 * (JOBS_QUEUED_MAX + RESULTS_QUEUED_MAX) as u32;
        for n in 0..jobs {
            hashers.submit(n);
        }
        let mut results = Vec::new();
        let mut events = mio::Events::with_capacity(4);
        let deadline = Instant::now() + Duration::from_secs(30);
        while results.len() < jobs as usize {
            assert!(
                Instant::now() < deadline,
                "{} of {jobs} results came back",
                results.len()
            );
            while let Some(result) = hashers.result() {
                results.push(result);
            }
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
        }
        results.sort_unstable();
        assert_eq!(results, (0..jobs).map(|n| n * 2).collect::<Vec<_>>());
    }
}
