//! What a download shows of itself, read-only: its progress, a line per peer for `status`,
//! each peer's figures for `peers`, and why it is slow, waiting or failed. A [`Report`]
//! borrows the download's parts for one question (`Download::report`), as the node's
//! `status::Report` borrows the node's.

use super::deadlines::Deadlines;
use super::diagnosis::{Diagnosis, PeerView, TrackerHeard};
use super::peer::Peer;
use super::peers::Peers;
use super::phase::Phase;
use crate::control::PeerInfo;
use crate::node::{LocalFile, Progress};
use crate::wire::Hash;
use std::collections::BTreeMap;
use std::time::Instant;

/// A download's parts, borrowed to report on them (see the module documentation).
pub(crate) struct Report<'a> {
    pub(super) name: &'a str,
    pub(super) phase: &'a Phase,
    pub(super) peers: &'a Peers,
    pub(super) deadlines: &'a Deadlines,
    pub(super) diagnosis: &'a Diagnosis,
}

impl Report<'_> {
    /// How far the download is, `None` once it finished.
    pub fn progress(&self, files: &BTreeMap<Hash, LocalFile>, now: Instant) -> Option<Progress> {
        if self.phase.finished() {
            return None;
        }
        let peers = self.peers.iter().filter(|p| !p.dropped).count();
        let (verified_bytes, total_bytes, bytes_per_s) = self.phase.progress(files, now);
        Some(Progress {
            name: self.name.to_string(),
            verified_bytes,
            total_bytes,
            bytes_per_s,
            peers,
            waiting_for_disk: self.deadlines.waiting_for_disk(),
            laying_out: matches!(self.phase, Phase::Opening(_)),
        })
    }

    /// One line per peer for `status` (see [`Peer::status_line`]).
    pub fn peer_lines(&self, piece_bytes_max: u32, now: Instant) -> Vec<String> {
        self.peers
            .iter()
            .enumerate()
            .map(|(index, p)| p.status_line(piece_bytes_max, now, self.phase.in_flight(index)))
            .collect()
    }

    /// Each peer, for `peers`.
    pub fn peer_infos(&self) -> Vec<PeerInfo> {
        let peers = self.peers.iter().enumerate();
        peers
            .map(|(index, p)| p.info(self.phase.in_flight(index)))
            .collect()
    }

    /// Why the download is slow, waiting or failed, in a sentence (see `diagnosis.rs`);
    /// `None` when nothing stands out.
    pub fn why(&self, tracker: &TrackerHeard, now: Instant) -> Option<String> {
        let views: Vec<PeerView<'_>> = self.peers.iter().map(Peer::view).collect();
        self.diagnosis.explain(self.name, &views, tracker, now)
    }

    /// The line said when the download is slow or still waiting, and why; `None` when
    /// nothing stands out.
    pub fn slow(&self, tracker: &TrackerHeard, now: Instant) -> Option<String> {
        let reason = self.why(tracker, now)?;
        // Not "download NAME ...": scripts and checkers take that for the end of one.
        Some(match self.phase {
            Phase::Transfer(_) => format!("slow download of {}: {reason}", self.name),
            _ => format!("waiting to download {}: {reason}", self.name),
        })
    }
}
