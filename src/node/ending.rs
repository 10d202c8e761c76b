//! How a node ends. `exit`, SIGTERM or SIGINT end it when asked; with `--exit-when-done` it
//! ends by itself once its work is done (code 0), or as soon as a piece of it fails or is
//! refused (code 1). Leaving, it tells the tracker and waits at most [`EXIT_WAIT`] for the
//! acknowledgement, then emits its exit code once.
//!
//! The node asks when to leave ([`Ending::done`] after its work moved on, [`Ending::stopped`]
//! on `exit` or a signal); the leaving itself is done here: [`Ending::begin_exit`] says what
//! the exit cuts short and tells the tracker, and [`Ending::finish_exit`] (on the tracker's
//! acknowledgement, or when the wait is over in [`Ending::handle_timeout`]) says how the
//! node left and emits the exit event.

use super::downloads::Downloads;
use super::library::Library;
use super::outbox::{NodeEvent, Outbox};
use super::status;
use super::tracker_client::{Leaving, TrackerClient};
use std::time::{Duration, Instant};

/// How long `exit` waits for the tracker's acknowledgement before leaving anyway.
pub(super) const EXIT_WAIT: Duration = Duration::from_secs(1);

/// Whether and how the node ends (see the module documentation).
pub(super) struct Ending {
    /// `--exit-when-done`: leave once the work asked for is done or has failed.
    exit_when_done: bool,
    /// A share, download or export asked for was refused or failed: with `exit_when_done`,
    /// the node leaves with code 1.
    refused: bool,
    /// Once leaving has begun: the exit code, and until when to wait for the tracker
    /// (`None` once the exit code went out).
    leaving: Option<(i32, Option<Instant>)>,
}

impl Ending {
    pub(super) fn new() -> Ending {
        Ending {
            exit_when_done: false,
            refused: false,
            leaving: None,
        }
    }

    pub(super) fn set_exit_when_done(&mut self, on: bool) {
        self.exit_when_done = on;
    }

    /// A share, download or export asked for was refused or failed.
    pub(super) fn note_refusal(&mut self) {
        self.refused = true;
    }

    pub(super) fn leaving(&self) -> bool {
        self.leaving.is_some()
    }

    /// With `--exit-when-done`, the code to leave with now: 1 once something was refused or
    /// a download failed, 0 once no work is left; `None` to go on.
    fn code_when_done(&self, download_failed: bool, work_left: bool) -> Option<i32> {
        if !self.exit_when_done || self.leaving() {
            None
        } else if self.refused || download_failed {
            Some(1)
        } else if !work_left {
            Some(0)
        } else {
            None
        }
    }

    /// With `--exit-when-done`, the code to leave with now, given the node's `downloads`
    /// and `library` (see [`Ending::code_when_done`]).
    pub(super) fn done(&self, downloads: &Downloads, library: &Library) -> Option<i32> {
        self.code_when_done(downloads.any_failed(), work_left(downloads, library))
    }

    /// The code `exit`, SIGTERM or SIGINT leaves with, given the node's `downloads` and
    /// `library` (see [`Ending::code_when_stopped`]).
    pub(super) fn stopped(&self, downloads: &Downloads, library: &Library) -> i32 {
        self.code_when_stopped(work_left(downloads, library))
    }

    /// The code `exit` or a signal leaves with: with `--exit-when-done` and work left, the
    /// script did not get what it asked for (1); otherwise leaving is the normal end (0).
    fn code_when_stopped(&self, work_left: bool) -> i32 {
        i32::from(self.exit_when_done && work_left)
    }

    /// Starts leaving with `code`: says what the exit cuts short (a line for each piece of
    /// work, saying what is kept) and tells the tracker, whose answer is awaited until
    /// `now + EXIT_WAIT`. What the tracker client says comes back: the node acts on its
    /// news, then finishes at once when no answer is awaited ([`Leaving::Done`]). `None`
    /// when the node is leaving already.
    pub(super) fn begin_exit(
        &mut self,
        now: Instant,
        code: i32,
        out: &mut Outbox,
        tracker: &mut TrackerClient,
        library: &Library,
        downloads: &Downloads,
    ) -> Option<Leaving> {
        if !self.begin(now, code) {
            return None;
        }
        let lines = status::interrupted(
            downloads.all(),
            library.files(),
            library.hashing(),
            library.exports_waiting(),
            now,
        );
        for line in lines {
            out.say(line);
        }
        Some(tracker.exit(now, out, library.files()))
    }

    /// Says how node `node_id` leaves (`how`: what became of the tracker's record of it) and
    /// emits the exit event, once.
    pub(super) fn finish_exit(&mut self, out: &mut Outbox, node_id: u32, how: &str) {
        if let Some(code) = self.finish() {
            out.say(format!("node {node_id} leaving: {how}"));
            out.event(NodeEvent::Exit(code));
        }
    }

    /// When the tracker did not acknowledge the exit in time: leave anyway.
    pub(super) fn handle_timeout(&mut self, now: Instant, out: &mut Outbox, node_id: u32) {
        if self.wait_over(now) {
            let how = "the tracker did not answer in time; it forgets this node when it expires";
            self.finish_exit(out, node_id, how);
        }
    }

    /// Begins leaving with `code`, waiting for the tracker until `now + EXIT_WAIT`; `false`
    /// when the node is leaving already.
    fn begin(&mut self, now: Instant, code: i32) -> bool {
        if self.leaving() {
            return false;
        }
        self.leaving = Some((code, Some(now + EXIT_WAIT)));
        true
    }

    /// The exit code, the first time it is asked for once leaving has begun.
    fn finish(&mut self) -> Option<i32> {
        let (code, deadline) = self.leaving.as_mut()?;
        deadline.take().map(|_| *code)
    }

    /// Whether the wait for the tracker's acknowledgement is over.
    fn wait_over(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now >= deadline)
    }

    fn deadline(&self) -> Option<Instant> {
        self.leaving.and_then(|(_, deadline)| deadline)
    }

    /// When a timeout is due for the ending: the tracker's deadline while leaving, or at
    /// once (any moment in the past, such as `started`) after a refusal under
    /// `--exit-when-done`, which ends a script.
    pub(super) fn poll_timeout(&self, started: Instant) -> Option<Instant> {
        match self.leaving {
            Some((_, deadline)) => deadline,
            None => (self.exit_when_done && self.refused).then_some(started),
        }
    }
}

/// Downloads running or paused, files being hashed to share, or exports waiting for their
/// file.
fn work_left(downloads: &Downloads, library: &Library) -> bool {
    downloads.any_unfinished() || library.busy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_goes_out_once() {
        let now = Instant::now();
        let mut ending = Ending::new();
        assert_eq!(ending.finish(), None, "not leaving yet");
        assert!(ending.begin(now, 1));
        assert!(!ending.begin(now, 0), "the first code stands");
        assert!(!ending.wait_over(now));
        assert!(ending.wait_over(now + EXIT_WAIT));
        assert_eq!(ending.finish(), Some(1));
        assert_eq!(ending.finish(), None);
        assert_eq!(ending.poll_timeout(now), None, "nothing left to wait for");
    }

    #[test]
    fn a_refusal_ends_a_script_at_once_with_code_1() {
        let started = Instant::now();
        let mut ending = Ending::new();
        ending.note_refusal();
        assert_eq!(ending.code_when_done(false, true), None, "not a script");
        assert_eq!(ending.poll_timeout(started), None);
        ending.set_exit_when_done(true);
        assert_eq!(ending.poll_timeout(started), Some(started));
        assert_eq!(ending.code_when_done(false, true), Some(1));
        assert_eq!(ending.code_when_stopped(true), 1);
        assert_eq!(ending.code_when_stopped(false), 0);
    }

    #[test]
    fn a_script_ends_with_0_once_no_work_is_left() {
        let mut ending = Ending::new();
        ending.set_exit_when_done(true);
        assert_eq!(ending.code_when_done(false, true), None);
        assert_eq!(ending.code_when_done(true, true), Some(1));
        assert_eq!(ending.code_when_done(false, false), Some(0));
    }
}
