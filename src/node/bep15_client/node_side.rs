//! The node's use of its [`Bep15Client`]: datagrams and events to and from it, what is
//! announced when, and downloads by info hash or `.torrent`.

use super::*;
use crate::node::tracker_link;

impl Node {
    /// A datagram from the standard tracker's address.
    pub(in crate::node) fn handle_standard_datagram(&mut self, now: Instant, bytes: &[u8]) {
        let Some(standard) = &mut self.standard else {
            return;
        };
        match standard.handle_datagram(now, bytes) {
            Ok(()) => self.tracker.answered(),
            Err(ignored) => {
                match ignored {
                    Ignored::Malformed(_) => self.out.stats.dropped_malformed += 1,
                    _ => self.out.stats.dropped_unexpected += 1,
                }
                log::debug!("dropped a datagram from the tracker: {ignored:?}");
            }
        }
        self.after_standard(now);
    }

    /// Moves the standard tracker's datagrams to the send queue and acts on its events.
    pub(in crate::node) fn after_standard(&mut self, now: Instant) {
        let Some(standard) = &mut self.standard else {
            return;
        };
        let addr = standard.addr();
        let mut events = Vec::new();
        let mut buf = [0u8; crate::bep15::REQUEST_BYTES_MAX];
        while let Some(transmit) = standard.poll_transmit(&mut buf) {
            self.out
                .send_bytes(transmit.to, buf[..transmit.len].to_vec());
            self.tracker.asked(now);
        }
        while let Some(event) = standard.poll_event() {
            events.push(event);
        }
        for event in events {
            match event {
                StandardEvent::Connected => self.out.say(format!(
                    "connected to tracker udp://{addr} (standard BitTorrent, BEP 15: no credit, exit or ranking)"
                )),
                StandardEvent::Silent => self.out.say(format!(
                    "tracker udp://{addr} is not answering; retrying with backoff"
                )),
                StandardEvent::AnnounceUnanswered { info_hash } => self.out.say(format!(
                    "tracker udp://{addr} does not answer announces of {} (is the info hash on its whitelist?); retrying with backoff",
                    wire::hex(&info_hash)
                )),
                StandardEvent::Refused { info_hash, message } => {
                    let what = info_hash.map_or_else(
                        || "the connection".to_string(),
                        |h| format!("the announce of {}", wire::hex(&h)),
                    );
                    self.out.say(format!(
                        "tracker udp://{addr} refused {what}: {}",
                        message.escape_debug()
                    ));
                }
                StandardEvent::Announced {
                    info_hash,
                    peers,
                    seeders,
                    leechers,
                } => {
                    log::info!(
                        "tracker: {} has {seeders} seeders, {leechers} leechers; {} peers for us",
                        wire::hex(&info_hash),
                        peers.len()
                    );
                    if let Some(file) = self.files.get_mut(&info_hash)
                        && file.complete()
                        && file.acknowledged_chunks != Some(file.have.count())
                    {
                        file.acknowledged_chunks = Some(file.have.count());
                        self.out.say(tracker_link::sharing_line(&file.manifest));
                    }
                    let own = self.config.node_id;
                    let mut ctx = self.context();
                    for download in ctx
                        .downloads
                        .iter_mut()
                        .filter(|d| d.info_hash() == Some(info_hash))
                    {
                        download.handle_peers(&mut ctx.parts, now, own, &peers);
                    }
                }
            }
        }
    }

    /// What the standard tracker should know of `info_hash` now: held (whole or in part), or
    /// being downloaded.
    pub(in crate::node) fn standard_update(&mut self, now: Instant, info_hash: Hash) {
        let held = self.files.get(&info_hash).map(|file| {
            let m = &file.manifest;
            let left = if file.complete() {
                0
            } else {
                m.file_bytes - m.held_bytes(&file.have)
            };
            (m.file_bytes, left)
        });
        let downloading = self
            .downloads
            .iter()
            .any(|d| d.info_hash() == Some(info_hash) && !d.finished());
        let Some(standard) = &mut self.standard else {
            return;
        };
        match held {
            // Withdrawn (changed on disk) and not coming back by a download: not announced.
            Some((file_bytes, left)) if left == file_bytes && file_bytes > 0 && !downloading => {
                standard.remove(now, info_hash)
            }
            Some((_, left)) => standard.set_torrent(now, info_hash, Some(left), downloading),
            None if downloading => standard.set_torrent(now, info_hash, None, true),
            None => standard.remove(now, info_hash),
        }
        self.after_standard(now);
    }

    /// Downloads `info_hash`: with a standard tracker, peers are found by it and the name
    /// (unless given) comes from the manifest they send; with ours, a name is needed and the
    /// download is pinned to `info_hash`.
    pub(in crate::node) fn download_by_hash(
        &mut self,
        now: Instant,
        info_hash: Hash,
        name: Option<String>,
        shape: Option<(u64, u32)>,
    ) {
        let hex = wire::hex(&info_hash);
        if self.standard.is_none() {
            match name {
                Some(name) => self.download(now, name, Some(info_hash)),
                None => self.refuse_download(
                    now,
                    format!(
                        "cannot download {hex} by info hash alone from this tracker: give a name, NAME@{hex}, or use a standard tracker (--tracker udp://HOST:PORT)"
                    ),
                ),
            }
            return;
        }
        let label = name.clone().unwrap_or_else(|| hex.clone());
        if let Some(name) = &name
            && let Some(problem) = wire::name_problem(name.as_bytes())
        {
            return self.refuse_download(now, format!("cannot download {name:?}: {problem}"));
        }
        if self
            .downloads
            .iter()
            .any(|d| d.info_hash() == Some(info_hash) && !d.finished())
        {
            return self.out.say(format!("{label} is already downloading"));
        }
        if self.files.get(&info_hash).is_some_and(|f| f.complete()) {
            return self
                .out
                .say(format!("this node already holds {label} ({hex})"));
        }
        if let Some(name) = &name
            && self.state.name_taken(name)
        {
            let line = format!(
                "download {name} failed: {name} already exists in {}",
                self.state.files_dir().display()
            );
            return self.refuse_download(now, line);
        }
        if self.downloads.iter().filter(|d| !d.finished()).count() >= DOWNLOADS_MAX {
            return self.refuse(format!(
                "cannot download {label}: {DOWNLOADS_MAX} downloads are running"
            ));
        }
        self.downloads.retain(|d| !d.finished());
        self.downloads.push(Download::by_info_hash(
            info_hash,
            name,
            shape,
            now,
            self.config.give_up_after,
        ));
        self.standard_update(now, info_hash);
    }

    /// Downloads what the `.torrent` at `path` describes. A relative path is looked for in the
    /// working directory, then in the node's files directory.
    pub(in crate::node) fn download_torrent(&mut self, now: Instant, path: &str) {
        // Never blocks the reactor: a FIFO or device under that name is refused.
        let read = self
            .state
            .read_named_file(path, crate::metainfo::TORRENT_BYTES_MAX as u64 + 1);
        let torrent = read
            .map_err(|error| error.to_string())
            .and_then(|bytes| crate::metainfo::parse_torrent(&bytes));
        match torrent {
            Ok(t) => self.download_by_hash(
                now,
                t.info_hash,
                Some(t.name),
                Some((t.file_bytes, t.chunk_bytes)),
            ),
            Err(error) => self.refuse_download(now, format!("cannot download {path}: {error}")),
        }
    }

    /// Says why a download cannot start; with `--exit-when-done`, that is a failure (exit 1).
    pub(in crate::node) fn refuse_download(&mut self, _now: Instant, line: String) {
        self.refuse(line);
    }

    /// A failed download stops asking for peers; what it verified stays announced (it is
    /// served), and with nothing verified the info hash is no longer announced.
    pub(in crate::node) fn standard_forget_failed(&mut self, now: Instant) {
        let Some(standard) = &self.standard else {
            return;
        };
        let failed: Vec<Hash> = self
            .downloads
            .iter()
            .filter(|d| d.failed())
            .filter_map(|d| d.info_hash())
            .filter(|h| standard.wants_peers(h))
            .collect();
        for info_hash in failed {
            self.standard_update(now, info_hash);
        }
    }

    /// A download asks for holders: announce its info hash for peers.
    pub(in crate::node) fn standard_want_peers(&mut self, now: Instant, name: &str) {
        let hashes: Vec<Hash> = self
            .downloads
            .iter()
            .filter(|d| d.name() == name && !d.finished())
            .filter_map(|d| d.info_hash())
            .collect();
        for info_hash in hashes {
            if let Some(standard) = &mut self.standard {
                standard.want_peers(now, info_hash);
            }
        }
        self.after_standard(now);
    }
}
