//! The progress of a node's downloads on a terminal: one indicatif bar for each running
//! download, in one `MultiProgress`, redrawn in place; whatever else the node prints goes
//! out through [`Bars::suspend`], above the bars, so that no line is drawn over. A download
//! whose size is not known yet (no holder answered) is a spinner with its bytes, never a
//! percentage. Quantities are in binary units, as the flags take them (`crate::units`).
//!
//! Only on a terminal: the process makes no bars when stdout is a pipe or a file (there,
//! `--progress` prints lines, and `--json` events).

use crate::node::{Progress, ProgressReport};
use crate::units;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Most bars at once (a node runs up to `DOWNLOADS_MAX` downloads, more lines than a
/// terminal has): the downloads past it are counted on one more line.
pub(super) const BARS_MAX: usize = 8;

/// The bar's template when the size is known, and the spinner's when it is not.
const BAR_TEMPLATE: &str = "[{bar:24}] {msg}";
const SPINNER_TEMPLATE: &str = "{spinner} {msg}";

/// The bars on the terminal (see the module documentation).
pub(super) struct Bars {
    multi: MultiProgress,
    /// The bar of each download shown, by the download's id, in the order they started.
    shown: Vec<Shown>,
    /// "and N more downloads", while more than [`BARS_MAX`] run.
    more: Option<ProgressBar>,
}

struct Shown {
    id: Option<u64>,
    bar: ProgressBar,
    /// Whether the bar has the bar's style (the size is known), not the spinner's.
    sized: bool,
}

impl Bars {
    /// Bars drawn on stdout (hidden by indicatif itself should stdout not be a terminal).
    pub(super) fn new() -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            shown: Vec::new(),
            more: None,
        }
    }

    /// Shows `reports`, one bar each (up to [`BARS_MAX`]): bars of downloads no longer
    /// running go, new ones come, the others move.
    pub(super) fn update(&mut self, reports: &[ProgressReport]) {
        let (shown, rest) = reports.split_at(reports.len().min(BARS_MAX));
        let multi = &self.multi;
        self.shown.retain(|old| {
            let running = shown.iter().any(|r| r.id == old.id);
            if !running {
                old.bar.finish_and_clear();
                multi.remove(&old.bar);
            }
            running
        });
        for report in shown {
            let index = match self.shown.iter().position(|s| s.id == report.id) {
                Some(index) => index,
                None => {
                    // Drawn nowhere until it is added, so that no empty bar shows first.
                    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
                    bar.set_style(style(false));
                    bar.set_message(message(&report.progress));
                    let bar = self.multi.add(bar);
                    self.shown.push(Shown {
                        id: report.id,
                        bar,
                        sized: false,
                    });
                    self.shown.len() - 1
                }
            };
            self.shown[index].show(&report.progress);
        }
        self.show_more(rest.len());
    }

    fn show_more(&mut self, count: usize) {
        match (&self.more, count) {
            (None, 0) => {}
            (Some(more), 0) => {
                more.finish_and_clear();
                self.multi.remove(more);
                self.more = None;
            }
            (Some(more), _) => more.set_message(more_message(count)),
            (None, _) => {
                let more = self.multi.add(ProgressBar::new_spinner());
                more.set_style(style(false));
                more.set_message(more_message(count));
                self.more = Some(more);
            }
        }
    }

    /// Runs `print` with the bars taken off the screen, then draws them again below what
    /// it printed.
    pub(super) fn suspend(&self, print: impl FnOnce()) {
        self.multi.suspend(print);
    }

    /// Takes every bar off the screen (the node exits).
    pub(super) fn clear(&mut self) {
        self.update(&[]);
    }
}

impl Shown {
    fn show(&mut self, progress: &Progress) {
        // The words first: a bar's style drawn beside an unknown size's words, for a frame,
        // would read as a size known.
        self.bar.set_message(message(progress));
        match progress.total_bytes {
            Some(total_bytes) => {
                if !self.sized {
                    self.bar.set_style(style(true));
                    self.sized = true;
                }
                self.bar.set_length(total_bytes);
                self.bar
                    .set_position(progress.verified_bytes.min(total_bytes));
            }
            None => {
                if self.sized {
                    self.bar.set_style(style(false));
                    self.bar.unset_length();
                    self.sized = false;
                }
                // Turns the spinner: the node is still at it.
                self.bar.tick();
            }
        }
    }
}

/// A bar's style, for a known size (`sized`) or not.
fn style(sized: bool) -> ProgressStyle {
    let template = if sized {
        BAR_TEMPLATE
    } else {
        SPINNER_TEMPLATE
    };
    match ProgressStyle::with_template(template) {
        Ok(style) => style.progress_chars("=> "),
        // The templates are constants, checked by a test: this is not reached.
        Err(_) => ProgressStyle::default_spinner(),
    }
}

/// What a download's bar says beside it: its name, its bytes (of how many, when known), its
/// rate, its peers, and the time left; an unknown size says so, and is no percentage.
pub(super) fn message(progress: &Progress) -> String {
    let peers = match progress.peers {
        1 => "1 peer".to_string(),
        count => format!("{count} peers"),
    };
    let verified = units::bytes(progress.verified_bytes);
    let rate = units::rate(progress.bytes_per_s);
    let mut text = match progress.total_bytes {
        None => format!(
            "{} {verified} of a size not known yet, {rate}, {peers}",
            progress.name
        ),
        Some(total_bytes) => {
            let percent = if total_bytes == 0 {
                100.0
            } else {
                100.0 * progress.verified_bytes.min(total_bytes) as f64 / total_bytes as f64
            };
            let left = total_bytes.saturating_sub(progress.verified_bytes);
            // No rate yet (no chunk verified lately): no guess of the time left.
            let eta = if left > 0 && progress.bytes_per_s > 0.0 {
                format!(", {:.0} s left", left as f64 / progress.bytes_per_s)
            } else {
                String::new()
            };
            format!(
                "{} {percent:.1}% {verified} of {}, {rate}, {peers}{eta}",
                progress.name,
                units::bytes(total_bytes)
            )
        }
    };
    if progress.waiting_for_disk {
        text.push_str(", waiting for disk space");
    }
    if progress.laying_out {
        text.push_str(", laying out its files");
    }
    text
}

fn more_message(count: usize) -> String {
    match count {
        1 => "and 1 more download (status lists it)".to_string(),
        count => format!("and {count} more downloads (status lists them)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(total_bytes: Option<u64>, peers: usize) -> Progress {
        Progress {
            name: "f.bin".to_string(),
            verified_bytes: 512 << 10,
            total_bytes,
            bytes_per_s: 128.0 * 1024.0,
            peers,
            waiting_for_disk: false,
            laying_out: false,
        }
    }

    #[test]
    fn a_known_size_reads_as_a_share_of_it_in_binary_units() {
        assert_eq!(
            message(&progress(Some(2 << 20), 2)),
            "f.bin 25.0% 512.0 KiB of 2.0 MiB, 128.0 KiB/s, 2 peers, 12 s left"
        );
        let mut waiting = progress(Some(2 << 20), 1);
        waiting.bytes_per_s = 0.0;
        waiting.waiting_for_disk = true;
        assert_eq!(
            message(&waiting),
            "f.bin 25.0% 512.0 KiB of 2.0 MiB, 0 B/s, 1 peer, waiting for disk space"
        );
    }

    #[test]
    fn an_unknown_size_is_no_percentage() {
        let mut unknown = progress(None, 0);
        unknown.verified_bytes = 0;
        unknown.bytes_per_s = 0.0;
        let text = message(&unknown);
        assert_eq!(text, "f.bin 0 B of a size not known yet, 0 B/s, 0 peers");
        assert!(!text.contains('%'));
    }

    #[test]
    fn an_empty_file_is_whole() {
        let mut empty = progress(Some(0), 1);
        empty.verified_bytes = 0;
        assert_eq!(
            message(&empty),
            "f.bin 100.0% 0 B of 0 B, 128.0 KiB/s, 1 peer"
        );
    }

    #[test]
    fn the_templates_parse() {
        assert!(ProgressStyle::with_template(BAR_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(SPINNER_TEMPLATE).is_ok());
    }

    /// Bars come and go with the downloads (drawn nowhere: the test's stdout is no terminal).
    #[test]
    fn bars_follow_the_running_downloads() {
        let report = |id: u64, total_bytes: Option<u64>| ProgressReport {
            id: Some(id),
            info_hash: None,
            progress: progress(total_bytes, 1),
        };
        let mut bars = Bars::new();
        bars.multi.set_draw_target(ProgressDrawTarget::hidden());
        let many: Vec<ProgressReport> = (0..BARS_MAX as u64 + 3)
            .map(|id| report(id, None))
            .collect();
        bars.update(&many);
        assert_eq!(bars.shown.len(), BARS_MAX);
        assert_eq!(
            bars.more.as_ref().map(|m| m.message()),
            Some("and 3 more downloads (status lists them)".to_string())
        );
        bars.update(&[report(1, None)]);
        assert_eq!(bars.shown.len(), 1);
        assert!(bars.more.is_none());
        assert!(!bars.shown[0].sized);
        bars.update(&[report(1, Some(2 << 20))]);
        assert!(bars.shown[0].sized);
        assert_eq!(bars.shown[0].bar.length(), Some(2 << 20));
        assert_eq!(bars.shown[0].bar.position(), 512 << 10);
        bars.clear();
        assert!(bars.shown.is_empty());
    }
}
