//! How often a failing disk is reported in the log.
//!
//! A download writes every piece (or run of pieces) with its own `pwrite`, so a disk that
//! fails fails thousands of times a second, and a warning per write buried everything else
//! in the log. The first error is logged whole; later ones are counted and summed up in at
//! most one line per [`WRITE_ERROR_REPORT_INTERVAL`]; what is still counted when the file
//! is closed goes in a last line. The time of each error is passed in (the node's `now`), so
//! that neither the storage nor this logic reads a clock.

use std::time::{Duration, Instant};

/// At most one summary line of write errors per file in this time.
pub const WRITE_ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What to log for a write error just counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteErrorLine {
    /// The file's first error: log it whole.
    First,
    /// `count` errors (this one included) since the line written at `since`.
    Summary { count: u64, since: Instant },
}

/// Write errors of one file, and when they were last reported.
#[derive(Debug, Default)]
pub struct WriteErrorLog {
    /// Errors counted since the last line.
    unreported: u64,
    /// When the last line was written; `None` before the first error.
    reported_at: Option<Instant>,
}

impl WriteErrorLog {
    /// Counts an error at `now`; returns the line to log, when one is due.
    pub fn on_error(&mut self, now: Instant) -> Option<WriteErrorLine> {
        let Some(since) = self.reported_at else {
            self.reported_at = Some(now);
            return Some(WriteErrorLine::First);
        };
        self.unreported += 1;
        if now.saturating_duration_since(since) < WRITE_ERROR_REPORT_INTERVAL {
            return None;
        }
        self.reported_at = Some(now);
        let count = std::mem::take(&mut self.unreported);
        Some(WriteErrorLine::Summary { count, since })
    }

    /// Errors counted and not yet in a line (for a last line when the file is closed).
    pub fn take_unreported(&mut self) -> u64 {
        std::mem::take(&mut self.unreported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk failing every write for 2.5 s, one write a millisecond: the first error, then one
    /// summary a second, and the rest at close; every error is in exactly one of them.
    #[test]
    fn a_flood_of_errors_is_one_line_then_one_a_second() {
        let t0 = Instant::now();
        let mut log = WriteErrorLog::default();
        let mut lines = Vec::new();
        for ms in 0..2_500 {
            let now = t0 + Duration::from_millis(ms);
            if let Some(line) = log.on_error(now) {
                lines.push((now, line));
            }
        }
        assert_eq!(
            lines,
            [
                (t0, WriteErrorLine::First),
                (
                    t0 + Duration::from_millis(1_000),
                    WriteErrorLine::Summary {
                        count: 1_000,
                        since: t0
                    }
                ),
                (
                    t0 + Duration::from_millis(2_000),
                    WriteErrorLine::Summary {
                        count: 1_000,
                        since: t0 + Duration::from_millis(1_000)
                    }
                ),
            ]
        );
        assert_eq!(
            log.take_unreported(),
            499,
            "2,500 errors = 1 + 1,000 + 1,000 + 499"
        );
        assert_eq!(log.take_unreported(), 0);
    }

    /// Errors spaced further than the interval each get a line of their own (a count of 1).
    #[test]
    fn rare_errors_are_each_reported() {
        let t0 = Instant::now();
        let mut log = WriteErrorLog::default();
        assert_eq!(log.on_error(t0), Some(WriteErrorLine::First));
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(
            log.on_error(t1),
            Some(WriteErrorLine::Summary {
                count: 1,
                since: t0
            })
        );
        assert_eq!(log.take_unreported(), 0);
    }
}
