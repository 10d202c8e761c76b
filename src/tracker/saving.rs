//! Saving the registry: at most one snapshot a second whatever the load
//! ([`REGISTRY_SAVE_DELAY`]), and the replies that hand out a new token held until the
//! reactor says the snapshot holding it was written.

use super::*;

impl Tracker {
    /// Starts the save delay at the first change after the last snapshot; a held reply
    /// wants the save as soon as the one-a-second limit allows.
    pub(super) fn schedule_save(&mut self, now: Instant) {
        if !self.registry_changed || self.registry_save_ready {
            return;
        }
        let earliest = self
            .registry_snapshot_at
            .map_or(now, |at| at + REGISTRY_SAVE_DELAY);
        let wanted = if self.held_registered.len() > self.held_covered {
            now
        } else {
            now + REGISTRY_SAVE_DELAY
        };
        let due = wanted.max(earliest);
        let due = self.registry_save_due.map_or(due, |old| old.min(due));
        self.registry_save_due = Some(due);
        if due <= now {
            self.save_ready(now);
        }
    }

    /// The save is due: `poll_snapshot` hands out the next snapshot, and the one after is
    /// due no sooner than [`REGISTRY_SAVE_DELAY`] from now.
    pub(super) fn save_ready(&mut self, now: Instant) {
        self.registry_save_due = None;
        self.registry_save_ready = true;
        self.registry_snapshot_at = Some(now);
    }

    /// Some(snapshot) once [`REGISTRY_SAVE_DELAY`] passed (in `handle_timeout` or
    /// `handle_datagram`) since the first change after the last snapshot; the reactor writes it
    /// with `db::save`. Heartbeats alone change nothing stored, so they cause no writes.
    #[must_use]
    pub fn poll_snapshot(&mut self) -> Option<Snapshot> {
        if !std::mem::take(&mut self.registry_save_ready) {
            return None;
        }
        self.take_snapshot()
    }

    /// Some(snapshot) when anything changed since the last one, whether or not its save is
    /// due: for a clean stop, so that nothing the tracker acknowledged is forgotten.
    #[must_use]
    pub fn poll_snapshot_at_stop(&mut self) -> Option<Snapshot> {
        self.registry_save_ready = false;
        self.take_snapshot()
    }

    pub(super) fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.registry_save_due = None;
        if !std::mem::take(&mut self.registry_changed) {
            return None;
        }
        self.stats.snapshots += 1;
        self.held_covered = self.held_registered.len();
        Some(self.snapshot())
    }

    /// The reactor wrote (`saved`) or failed to write the last snapshot from `poll_snapshot`.
    /// Written, the replies that hand out the tokens it holds go out; failed, the registry
    /// counts as changed, so that the next save (no sooner than a second) tries again.
    pub fn snapshot_written(&mut self, now: Instant, saved: bool) {
        let covered = std::mem::take(&mut self.held_covered);
        if !saved {
            self.registry_changed = true;
            self.schedule_save(now);
            return;
        }
        for (node_id, addr) in self.held_registered.drain(..covered).collect::<Vec<_>>() {
            let Some(node) = self.nodes.get_mut(&node_id) else {
                continue;
            };
            node.token_saved = true;
            if node.addr == addr {
                let registered = self.registered_reply(node_id);
                self.reply(addr, Outgoing::Registered(registered));
            }
        }
        self.schedule_save(now);
    }

    /// Registered replies waiting for the save of the token they carry.
    pub fn held_reply_count(&self) -> usize {
        self.held_registered.len()
    }

    /// The registry as stored, in a deterministic order.
    pub fn snapshot(&self) -> Snapshot {
        let nodes = self
            .nodes
            .iter()
            .map(|(&node_id, node)| db::NodeEntry {
                node_id,
                addr: node.addr.to_string(),
                token: db::token_to_text(node.token),
                upload_credit_bytes: node.upload_credit_bytes,
                token_confirmed: node.token_confirmed,
            })
            .collect();
        let files = self
            .files
            .iter()
            .map(|(info_hash, file)| db::FileEntry {
                info_hash: wire::hex(info_hash),
                name: file.name.clone(),
                file_bytes: file.file_bytes,
                chunk_bytes: file.chunk_bytes,
                holders: file
                    .holders
                    .iter()
                    .map(|(&node_id, &chunks_held)| db::FileHolder {
                        node_id,
                        chunks_held,
                    })
                    .collect(),
            })
            .collect();
        Snapshot { nodes, files }
    }
}
