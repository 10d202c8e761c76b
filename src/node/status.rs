//! What a node reports about itself: the `status` command, and the progress of downloads.

use super::download::{self, Download};
use super::downloads::Downloads;
use super::tracker_client::TrackerClient;
use super::upload::Uploader;
use super::{LocalFile, NodeStats};
use crate::control::{FileInfo, PeersInfo, StatusInfo};
use crate::storage::Storage;
use crate::units;
use crate::wire::{self, Hash};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// What `status` shows, borrowed from the node's parts: as the console's text, or as
/// [`StatusInfo`] for the control socket and the metrics.
pub(super) struct Report<'a> {
    pub(super) node_id: u32,
    pub(super) started: Instant,
    pub(super) tracker: &'a TrackerClient,
    pub(super) storage: &'a dyn Storage,
    pub(super) files: &'a BTreeMap<Hash, LocalFile>,
    pub(super) downloads: &'a Downloads,
    pub(super) piece_bytes: u32,
    pub(super) stats: &'a NodeStats,
    pub(super) uploader: &'a Uploader,
    /// `--max-download-rate` (or `limit down`), bytes a second.
    pub(super) download_limit: Option<u64>,
}

impl Report<'_> {
    /// The `status` command's text.
    pub(super) fn text(&self, now: Instant) -> String {
        let mut text = String::new();
        let registered = self.tracker.status_registration();
        let uptime = now.duration_since(self.started).as_secs();
        let _ = writeln!(
            text,
            "node {} ({registered} tracker {}), up {uptime} s",
            self.node_id,
            self.tracker.addr(),
        );
        let _ = writeln!(text, "dir {}", self.storage.files_dir().display());
        if let Some(line) = self.tracker.status_listed() {
            let _ = writeln!(text, "{line}");
        }
        let mut files: Vec<&LocalFile> = self.files.values().collect();
        files.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        let _ = writeln!(text, "files held: {}", files.len());
        for file in files {
            let m = &file.manifest;
            let _ = writeln!(
                text,
                "  {} {} bytes, {}/{} chunks",
                m.name,
                m.file_bytes,
                file.have.count(),
                m.chunk_count(),
            );
            // The info hash on a line of its own, inside the magnet link when there is one:
            // the only lines longer than 80 columns are those a user copies whole.
            if file.complete() {
                let magnet = crate::metainfo::magnet_link(m, self.tracker.addr());
                let _ = writeln!(text, "    {magnet}");
            } else {
                let _ = writeln!(text, "    {}", wire::hex(&m.info_hash));
            }
        }
        let tracker = self.tracker.heard();
        let downloads = self.downloads.all();
        for download in downloads.iter().filter(|d| !d.finished()) {
            let Some(progress) = download.report().progress(self.files, now) else {
                continue;
            };
            // The same reason the periodic line and a failure give (see download/diagnosis.rs).
            let why = match download.report().why(&tracker, now) {
                Some(reason) if download.transferring() => format!("; slow: {reason}"),
                Some(reason) => format!("; waiting: {reason}"),
                None => String::new(),
            };
            let _ = writeln!(text, "  downloading {progress}{why}");
        }
        for paused in self.downloads.paused() {
            let _ = writeln!(text, "  {}", super::downloads::paused_event(paused));
        }
        // Partial files no download is working on (one failed, or an earlier run was
        // stopped): their space is taken, so they are shown, with how to go on.
        let paused = self.downloads.paused().filter_map(|p| p.info_hash.clone());
        let paused: Vec<String> = paused.collect();
        let running: Vec<Hash> = downloads
            .iter()
            .filter(|d| !d.finished())
            .filter_map(|d| d.info_hash())
            .collect();
        // Read from the disk: the console's text only, which a person asks for.
        for partial in &self.storage.partials() {
            if running.contains(&partial.info_hash)
                || paused.contains(&wire::hex(&partial.info_hash))
            {
                continue;
            }
            let _ = writeln!(
                text,
                "  partial {}: {} kept ({} of {} bytes verified, {} bytes on disk), resumes with `{}`",
                partial.name,
                crate::storage::percent(partial.verified_bytes, partial.file_bytes),
                partial.verified_bytes,
                partial.file_bytes,
                partial.disk_bytes,
                download::resume_command(!self.tracker.finds_by_name(), partial)
            );
        }
        for download in downloads.iter().filter(|d| !d.finished()) {
            for line in download.report().peer_lines(self.piece_bytes, now) {
                let _ = writeln!(text, "    {line}");
            }
        }
        if let Some(rate) = self.download_limit {
            let _ = writeln!(text, "download limit {}", units::rate(rate as f64));
        }
        let s = self.stats;
        let limit = self
            .uploader
            .upload_limit()
            .map_or("no upload limit".into(), |rate| {
                format!("limit {}", units::rate(rate as f64))
            });
        let _ = writeln!(
            text,
            "uploaded {} pieces ({} bytes), {limit}; {}",
            s.pieces_sent,
            s.bytes_sent,
            self.uploader.peer_summary()
        );
        let _ = writeln!(
            text,
            "datagrams: {} received, {} malformed, {} unexpected",
            s.datagrams_received, s.dropped_malformed, s.dropped_unexpected,
        );
        if s.peer_wire_connections + s.peer_wire_refused_over_limit > 0 {
            let _ = writeln!(
                text,
                "peer wire: {} connections, {} refused over limits",
                s.peer_wire_connections, s.peer_wire_refused_over_limit,
            );
            let _ = writeln!(
                text,
                "  sent {} blocks ({} bytes), {} metadata pieces; {} requests refused",
                s.peer_wire_blocks_sent,
                s.peer_wire_bytes_sent,
                s.peer_wire_metadata_pieces_sent,
                s.peer_wire_requests_refused,
            );
            let _ = writeln!(
                text,
                "  closed: {} bad handshakes, {} not held, {} bad messages, {} timeouts",
                s.peer_wire_bad_handshakes,
                s.peer_wire_unknown_info_hash,
                s.peer_wire_bad_messages,
                s.peer_wire_timed_out,
            );
        }
        let cells = [
            ("requests over budget", s.dropped_over_budget),
            ("unrequested pieces", s.pieces_unrequested),
            ("duplicate pieces", s.pieces_duplicate),
            ("chunks failed SHA-1", s.chunks_failed_hash),
            ("requests rejected", s.requests_rejected),
            ("cookies handed out", s.welcomes_sent),
        ];
        table(&mut text, &cells);
        text.pop(); // The reactor prints the text as one line would be: without a last newline.
        text
    }

    /// What `status` says, for the control socket and the metrics (no disk read: it may be
    /// asked for hundreds of times a second).
    pub(super) fn info(&self, now: Instant) -> StatusInfo {
        let files = self.files.values().map(|file| FileInfo {
            name: file.manifest.name.clone(),
            info_hash: wire::hex(&file.manifest.info_hash),
            file_bytes: file.manifest.file_bytes,
            chunks_held: file.have.count(),
            chunk_count: file.manifest.chunk_count(),
            complete: file.complete(),
        });
        StatusInfo {
            node_id: self.node_id,
            tracker: self.tracker.addr().to_string(),
            uptime_s: now.duration_since(self.started).as_secs(),
            dir: self.storage.files_dir().display().to_string(),
            files: files.collect(),
            downloads: self.downloads.infos(self.files, now),
            counters: self.stats.clone(),
            upload_limit_bytes_per_s: self.uploader.upload_limit(),
            download_limit_bytes_per_s: self.download_limit,
        }
    }
}
impl Report<'_> {
    /// What `peers` answers: the structure, and the console's text.
    pub(super) fn peers(&self, now: Instant) -> (PeersInfo, String) {
        let (downloads, mut lines) = self.downloads.peers(self.piece_bytes, now);
        if downloads.is_empty() {
            lines.push("no download running".to_string());
        }
        lines.push(format!("uploads: {}", self.uploader.peer_summary()));
        let info = PeersInfo {
            downloads,
            uploads: self.uploader.upload_peers(),
        };
        (info, lines.join("\n"))
    }
}

/// Counters as a table of three columns, each a label and a right-aligned number, so that
/// a row fits 80 columns (numbers up to 99,999; larger ones widen their cell).
fn table(text: &mut String, cells: &[(&str, u64)]) {
    for row in cells.chunks(3) {
        text.push(' ');
        for (label, value) in row {
            let _ = write!(text, " {label:<20}{value:>5}");
        }
        text.push('\n');
    }
}

/// One line for each piece of work an exit cuts short (downloads, files being hashed,
/// exports waiting for their file), saying what is kept.
pub(super) fn interrupted(
    downloads: &[Download],
    files: &BTreeMap<Hash, LocalFile>,
    hashing: &[(String, Instant)],
    exports_waiting: &[String],
    now: Instant,
) -> Vec<String> {
    let mut lines = Vec::new();
    for download in downloads.iter().filter(|d| !d.finished()) {
        let name = download.name();
        let line = match download.report().progress(files, now) {
            Some(Progress {
                verified_bytes,
                total_bytes: Some(total_bytes),
                ..
            }) if download.transferring() && total_bytes > 0 => {
                let percent = (100 * u128::from(verified_bytes) / u128::from(total_bytes)) as u64;
                format!(
                    "download {name} interrupted at {percent}% ({verified_bytes} of {total_bytes} bytes verified; the partial file is kept, and downloading {name} again resumes it)"
                )
            }
            _ => format!(
                "download {name} interrupted before its transfer began (nothing was written)"
            ),
        };
        lines.push(line);
    }
    for (name, _) in hashing {
        lines.push(format!(
            "send {name} interrupted while it was being hashed (not shared)"
        ));
    }
    for name in exports_waiting {
        lines.push(format!(
            "export {name} not written: the node stopped before it held {name}"
        ));
    }
    lines
}

/// One download's progress, for `--progress` lines (and, in JSON, the fields of
/// a `progress` event: see `events.rs`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Progress {
    pub name: String,
    pub verified_bytes: u64,
    /// `None` until a holder's answer says how large the file is.
    pub total_bytes: Option<u64>,
    pub bytes_per_s: f64,
    pub peers: usize,
    /// The disk had no room (for the partial file, or for publishing); retried every second.
    pub waiting_for_disk: bool,
    /// A tree's partial files and directories are being made, before any is asked for.
    pub laying_out: bool,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers = match self.peers {
            1 => "1 peer".to_string(),
            count => format!("{count} peers"),
        };
        let Some(total_bytes) = self.total_bytes else {
            // An unknown size is not a complete file (it used to show as 100%).
            write!(f, "{} size not known yet, {peers}", self.name)?;
            return self.fmt_disk(f);
        };
        let percent = if total_bytes == 0 {
            100.0
        } else {
            100.0 * self.verified_bytes as f64 / total_bytes as f64
        };
        let left = if self.bytes_per_s > 0.0 {
            format!(
                "{:.0} s left",
                total_bytes.saturating_sub(self.verified_bytes) as f64 / self.bytes_per_s
            )
        } else {
            "-".to_string()
        };
        write!(
            f,
            "{} {percent:.1}% {} {peers} {left}",
            self.name,
            crate::units::rate(self.bytes_per_s),
        )?;
        self.fmt_disk(f)
    }
}

impl Progress {
    fn fmt_disk(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.waiting_for_disk {
            f.write_str(", waiting for disk space")?;
        }
        if self.laying_out {
            f.write_str(", laying out its files")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(total_bytes: Option<u64>, peers: usize) -> Progress {
        Progress {
            name: "f.bin".to_string(),
            verified_bytes: 250_000,
            total_bytes,
            bytes_per_s: 125_000.0,
            peers,
            waiting_for_disk: false,
            laying_out: false,
        }
    }

    #[test]
    fn the_progress_line_says_what_is_known() {
        assert_eq!(
            progress(Some(1_000_000), 2).to_string(),
            "f.bin 25.0% 122.1 KiB/s 2 peers 6 s left"
        );
        assert_eq!(
            progress(Some(1_000_000), 1).to_string(),
            "f.bin 25.0% 122.1 KiB/s 1 peer 6 s left"
        );
        // Nobody answered yet: no size, so no percentage (not 100%).
        assert_eq!(
            progress(None, 0).to_string(),
            "f.bin size not known yet, 0 peers"
        );
        let mut empty = progress(Some(0), 1);
        empty.verified_bytes = 0;
        empty.waiting_for_disk = true;
        assert_eq!(
            empty.to_string(),
            "f.bin 100.0% 122.1 KiB/s 1 peer 0 s left, waiting for disk space"
        );
        // A tree's files being made: nothing asked for yet.
        let mut tree = progress(Some(1_000_000), 1);
        (tree.verified_bytes, tree.bytes_per_s, tree.laying_out) = (0, 0.0, true);
        assert_eq!(
            tree.to_string(),
            "f.bin 0.0% 0 B/s 1 peer -, laying out its files"
        );
    }
}
