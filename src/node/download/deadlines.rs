//! The download's own deadlines: when it gives up for want of help, and, while the disk is
//! full, when it tries again. The deadlines of its peers, look-ups, manifest and transfer
//! belong to those parts; `Download::poll_timeout` gathers them all, and a spurious
//! `handle_timeout` finds nothing due here.

use std::io::Error;
use std::time::{Duration, Instant};

/// How often a download waiting for disk space tries again.
pub const DISK_RETRY: Duration = Duration::from_secs(1);

pub(super) struct Deadlines {
    started: Instant,
    give_up_after: Duration,
    /// The download fails at this moment if no peer is active by then; help (see
    /// [`Deadlines::helped`]) moves it on.
    give_up_at: Instant,
    /// While the disk is full: when to try again (to open the partial file, or to publish).
    /// Nothing else is due meanwhile, and the download does not give up.
    disk_retry_at: Option<Instant>,
}

impl Deadlines {
    pub fn new(now: Instant, give_up_after: Duration) -> Deadlines {
        Deadlines {
            started: now,
            give_up_after,
            give_up_at: now + give_up_after,
            disk_retry_at: None,
        }
    }

    /// How long ago the download began.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Something moved the download on (a manifest part, a verified chunk, room on the
    /// disk): the time it waits before giving up starts again.
    pub fn helped(&mut self, now: Instant) {
        self.give_up_at = now + self.give_up_after;
    }

    /// When a download with no active peer gives up.
    pub fn give_up_at(&self) -> Instant {
        self.give_up_at
    }

    pub fn give_up_due(&self, now: Instant) -> bool {
        now >= self.give_up_at
    }

    /// Why a download gave up when nothing more precise is known.
    pub fn no_holder_reason(&self, name: &str) -> String {
        format!(
            "no holder of {name} was found within {} s",
            self.give_up_after.as_secs()
        )
    }

    /// The disk is full (`error`, met by the download of `name`): try again in
    /// [`DISK_RETRY`]. The line that says so when the wait begins now, so that it is said
    /// once.
    pub fn wait_for_space(&mut self, now: Instant, name: &str, error: &Error) -> Option<String> {
        let begins = self.disk_retry_at.is_none();
        self.disk_retry_at = Some(now + DISK_RETRY);
        begins.then(|| {
            format!(
                "download {name} waiting for disk space: {error}; trying again every {} s",
                DISK_RETRY.as_secs()
            )
        })
    }

    pub fn waiting_for_disk(&self) -> bool {
        self.disk_retry_at.is_some()
    }

    pub fn disk_retry_at(&self) -> Option<Instant> {
        self.disk_retry_at
    }

    pub fn disk_retry_due(&self, now: Instant) -> bool {
        self.disk_retry_at.is_some_and(|at| at <= now)
    }

    /// The disk took what it refused: the wait is over. True when there was one.
    pub fn end_disk_wait(&mut self) -> bool {
        self.disk_retry_at.take().is_some()
    }
}
