//! What arrives for a download: manifest parts until the manifest checks, then pieces
//! written into the partial file, chunks handed to the hasher and counted once their SHA-1
//! matched, and the finished file published.

use super::*;

impl Download {
    pub(super) fn manifest_part(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        index: usize,
        fixed: &wire::ManifestPart,
        hashes: &[Hash],
        name: &str,
    ) -> Handled {
        if !self.learn_from_part(fixed, name) {
            log::debug!(
                "manifest part from node {} is no manifest we accept; ignored",
                self.peers[index].node_id
            );
            return Handled::Consumed;
        }
        let Phase::Manifest(fetch) = &mut self.phase else {
            return Handled::Consumed;
        };
        let version = fetch.version;
        let fits = name == self.name
            && fixed.file_bytes == version.file_bytes
            && fixed.chunk_bytes == version.chunk_bytes
            && fixed.first_chunk.get() as usize == fetch.hashes.len();
        if !fits {
            log::debug!(
                "manifest part from node {} does not fit; ignored",
                self.peers[index].node_id
            );
            return Handled::Consumed;
        }
        fetch.hashes.extend_from_slice(hashes);
        fetch.attempts = 0;
        self.give_up_at = now + self.give_up_after;
        let count = wire::chunk_count(version.file_bytes.get(), version.chunk_bytes.get());
        if (fetch.hashes.len() as u32) < count {
            if hashes.is_empty() {
                // A part that moves nothing forward: this peer cannot help with the manifest.
                self.drop_peer(parts, now, index);
                return Handled::Consumed;
            }
            self.ask_manifest(parts, now);
            return Handled::Consumed;
        }
        let hashes = std::mem::take(&mut fetch.hashes);
        let manifest = Manifest::new(
            self.name.clone(),
            version.file_bytes.get(),
            version.chunk_bytes.get(),
            hashes,
        );
        if manifest.info_hash != version.info_hash {
            log::warn!(
                "node {} sent a manifest that does not match the info hash; dropping it",
                self.peers[index].node_id
            );
            self.drop_peer(parts, now, index);
            if let Phase::Manifest(fetch) = &mut self.phase {
                fetch.source = None;
                if let Some(by_hash) = &self.by_hash {
                    // What that peer told of the name and shape goes with it.
                    let (file_bytes, chunk_bytes) = by_hash.shape.unwrap_or((0, 0));
                    fetch.version.file_bytes = U64::new(file_bytes);
                    fetch.version.chunk_bytes = U32::new(chunk_bytes);
                    if !by_hash.name_known {
                        self.name = wire::hex(&version.info_hash);
                    }
                }
            }
            self.recruit(parts, now);
            return Handled::Consumed;
        }
        if self.by_hash.is_some() && parts.state.name_taken(&self.name) {
            let reason = format!(
                "{} already exists in {}",
                self.name,
                parts.state.files_dir().display()
            );
            self.fail(parts, reason);
            return Handled::Consumed;
        }
        self.start_transfer(parts, now, manifest);
        Handled::ManifestReady(version.info_hash)
    }

    pub(super) fn start_transfer(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        manifest: Manifest,
    ) {
        let (mapping, claimed) = match parts.state.open_partial(&manifest) {
            Ok(opened) => opened,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                self.wait_for_space(parts, now, &error);
                self.phase = Phase::WaitingForSpace(manifest);
                return;
            }
            Err(error) => {
                self.fail(parts, error.to_string());
                return;
            }
        };
        if self.disk_retry_at.take().is_some() {
            parts.out.say(format!(
                "download {}: disk space found, going on",
                self.name
            ));
            self.give_up_at = now + self.give_up_after;
            // Nobody was asked anything while we waited: their silence was ours.
            for peer in self.peers.iter_mut() {
                peer.last_heard = now;
            }
        }
        let count = manifest.chunk_count();
        let manifest = Arc::new(manifest);
        let piece_bytes_max = parts
            .config
            .piece_bytes
            .clamp(1, wire::PIECE_BYTES_MAX as u32);
        let mut transfer = Transfer::new(
            Arc::clone(&manifest),
            Arc::clone(&mapping),
            piece_bytes_max,
            parts.config.node_id,
            now,
        );
        for chunk in (0..count).filter(|&c| claimed.get(c)) {
            // Verified by an earlier run: checked again before it counts.
            transfer.recheck(chunk);
            parts
                .out
                .event(crate::node::NodeEvent::Job(transfer.check_job(chunk)));
        }
        parts.files.insert(
            manifest.info_hash,
            LocalFile {
                manifest: Arc::clone(&manifest),
                mapping: Arc::clone(&mapping),
                have: Bitmap::new(count),
                acknowledged_chunks: None,
                announce_due: None,
                stamp: None,
            },
        );
        // Have-maps that arrived while the manifest was fetched count from now on.
        for peer in self.peers.iter_mut().filter(|p| !p.dropped) {
            if peer.have.as_ref().is_some_and(|have| have.len() != count) {
                peer.have = None;
            }
            transfer.replace_have(None, peer.have.as_ref());
        }
        self.phase = Phase::Transfer(transfer);
        if count == 0 {
            self.publish(parts, now);
        }
    }

    pub(super) fn piece(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        index: usize,
        fixed: &wire::Piece,
        sent_us: Option<u32>,
        data: &[u8],
    ) {
        let (chunk, offset) = (fixed.chunk.get(), fixed.offset.get());
        let Phase::Transfer(transfer) = &mut self.phase else {
            parts.out.stats.pieces_unrequested += 1;
            return;
        };
        let peer = &mut self.peers[index];
        peer.last_heard = now;
        let taken = match transfer.take_piece(peer.node_id, chunk, offset, data, now) {
            Ok(taken) => taken,
            Err(transfer::Refused::Unrequested) => {
                parts.out.stats.pieces_unrequested += 1;
                return;
            }
            Err(transfer::Refused::Duplicate) => {
                parts.out.stats.pieces_duplicate += 1;
                return;
            }
        };
        parts.out.stats.pieces_received += 1;
        let datagram_bytes = (data.len() + wire::PIECE_OVERHEAD_BYTES) as u32;
        if let Some(narrowed) = peer.evidence.on_piece(now, datagram_bytes) {
            // Smaller pieces arrive where larger ones stopped: now that is known, not guessed.
            parts.out.say(format!(
                "{}: {}",
                self.name,
                diagnosis::Reason::BlackHole {
                    node_id: peer.node_id,
                    lost_bytes: narrowed.lost_bytes,
                    piece_bytes: narrowed.datagram_bytes - wire::PIECE_OVERHEAD_BYTES as u32,
                }
            ));
        }
        peer.bytes_received += data.len() as u64;
        peer.pieces_received += 1;
        peer.first_piece_at.get_or_insert(now);
        peer.busy_streak = 0;
        peer.pieces_lost_in_a_row = 0;
        peer.first_loss_in_a_row = None;
        let sample = taken
            .asked_at
            .map(|sent_at| now.saturating_duration_since(sent_at));
        if let Some(asked_at) = taken.asked_at
            && peer.paced
            && taken.owner == Some(index)
            && peer.newest_answered.is_none_or(|t| asked_at > t)
        {
            // A later request was answered: whatever was asked before it and is still
            // missing was lost, and a scan soon finds it (see `scan_timeouts`). Only toward
            // paced peers: the simulation and loopback keep their timing.
            peer.newest_answered = Some(asked_at);
            transfer.scan_soon(now);
        }
        if let Some(sample) = sample {
            peer.srtt = Some(peer.srtt.map_or(sample, |srtt| (srtt * 7 + sample) / 8));
        }
        peer.congestion
            .on_piece(now, data.len() as u64, sample, sent_us);
        let more_in_flight = transfer.in_flight(index) > 0;
        let queued_too_long = peer.pace.on_piece(now, sample, more_in_flight);
        if sample.is_some()
            && let Some(owner) = taken.owner
        {
            // Only the owner's own pieces say how long its queue is.
            let queued_too_long = queued_too_long && owner == index;
            let owner = &mut self.peers[owner];
            let window_max = pace::window_max(
                parts.config.window_pieces_max,
                parts.config.piece_bytes,
                taken.piece_bytes,
            );
            owner.window = pace::next_window(owner.window, queued_too_long, window_max);
        }
        log::debug!(
            "piece {} of chunk {chunk} from node {}",
            taken.piece,
            self.peers[index].node_id
        );
        if taken.chunk_complete {
            parts
                .out
                .event(crate::node::NodeEvent::Job(transfer.check_job(chunk)));
        }
    }

    /// A hasher thread checked `chunk`. Returns the node to credit when it verified.
    pub(super) fn take_hash_result(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        chunk: u32,
        ok: bool,
    ) -> Option<u32> {
        let Phase::Transfer(transfer) = &mut self.phase else {
            return None;
        };
        let Some(from) = transfer.hash_checked(chunk, ok) else {
            // Not hashing (a late duplicate result): nothing to do.
            return None;
        };
        let info_hash = transfer.manifest().info_hash;
        if !ok {
            if from == parts.config.node_id {
                // A chunk an earlier run recorded, not intact after all: fetch it.
                return None;
            }
            parts.out.stats.chunks_failed_hash += 1;
            log::warn!(
                "chunk {chunk} of {} from node {from} failed its SHA-1; fetching it again",
                self.name
            );
            transfer.remember_bad(chunk, from);
            if let Some(index) = self.peers.iter().position(|p| p.node_id == from) {
                self.peers[index].bad_chunks += 1;
                if self.peers[index].bad_chunks >= BAD_CHUNKS_MAX {
                    log::warn!("node {from} sent {BAD_CHUNKS_MAX} bad chunks; dropping it");
                    self.drop_peer(parts, now, index);
                }
            }
            return None;
        }
        let file = parts.files.get_mut(&info_hash)?;
        file.have.set(chunk);
        if let Err(error) = parts.state.record_verified(&info_hash, &file.have, chunk) {
            log::warn!("cannot record chunk {chunk} as verified: {error}");
        }
        self.give_up_at = now + self.give_up_after;
        if let Some(peer) = self.peers.iter_mut().find(|p| p.node_id == from) {
            peer.chunks_verified += 1;
        }
        log::info!("chunk {chunk} of {} verified, from node {from}", self.name);
        if file.have.is_full() {
            self.publish(parts, now);
        }
        (from != parts.config.node_id).then_some(from)
    }

    /// Says (once) that the disk is full and what is missing; tries again in [`DISK_RETRY`].
    pub(super) fn wait_for_space(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        error: &std::io::Error,
    ) {
        if self.disk_retry_at.is_none() {
            parts.out.say(format!(
                "download {} waiting for disk space: {error}; trying again every {} s",
                self.name,
                DISK_RETRY.as_secs()
            ));
        }
        self.disk_retry_at = Some(now + DISK_RETRY);
    }

    pub(super) fn publish(&mut self, parts: &mut Parts<'_>, now: Instant) {
        let Phase::Transfer(transfer) = &self.phase else {
            return;
        };
        let manifest = Arc::clone(transfer.manifest());
        let (serving, stamp) = match parts.state.publish(&manifest, transfer.mapping()) {
            Ok(published) => published,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => {
                // Every chunk verified and recorded: keep them, and publish once there is room.
                self.wait_for_space(parts, now, &error);
                return;
            }
            Err(error) => {
                parts.files.remove(&manifest.info_hash);
                self.fail(parts, format!("cannot publish: {error}"));
                return;
            }
        };
        if let Some(file) = parts.files.get_mut(&manifest.info_hash) {
            // From now on the file is the user's: served with `pread`, watched for changes.
            file.have = Bitmap::full(manifest.chunk_count());
            file.mapping = serving;
            file.stamp = Some(stamp);
        }
        let seconds = now.saturating_duration_since(self.started).as_secs_f64();
        let rate = crate::units::rate(manifest.file_bytes as f64 / seconds.max(1e-6));
        let mut sources: Vec<String> = self
            .peers
            .iter()
            .filter(|p| p.chunks_verified > 0)
            .map(|p| match self.by_hash {
                // Peers from a standard tracker are known by address only.
                Some(_) => format!("{}: {} chunks", p.addr, p.chunks_verified),
                None => format!("node {}: {} chunks", p.node_id, p.chunks_verified),
            })
            .collect();
        if manifest.chunk_count() == 0 {
            sources.push("no peer (the file is empty)".to_string());
        } else if sources.is_empty() {
            sources.push("no peer (resumed from disk)".to_string());
        }
        parts.out.say(format!(
            "downloaded {} ({}) {} bytes in {seconds:.3} s ({rate}) from {}",
            manifest.name,
            wire::hex(&manifest.info_hash),
            manifest.file_bytes,
            sources.join(", ")
        ));
        self.disk_retry_at = None;
        self.phase = Phase::Done;
    }
}
