//! Console commands: `help`, `status`, sharing, downloading by name, exporting `.torrent`
//! files, exiting, and downloads by info hash or `.torrent`.

use super::*;

impl Node {
    /// A line typed at the console: a command, or a one-line complaint with a pointer to
    /// `help` (in order with the output of earlier commands).
    pub fn handle_console_line(&mut self, now: Instant, line: &str) {
        match console::parse(line) {
            Ok(command) => self.handle_command(now, command),
            Err(error) => self.out.say(error.to_string()),
        }
    }

    /// A command from the console (or a signal, as `Exit`).
    pub fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Nothing => {}
            Command::Help => self.out.print(console::HELP.to_string()),
            Command::Status => {
                let status = self.status(now);
                self.out.print(status);
            }
            Command::Send { name } => self.share(now, name),
            Command::Download { name, pin } => self.download(now, name, pin),
            Command::DownloadByHash { info_hash, name } => {
                self.download_by_hash(now, info_hash, name, None)
            }
            Command::DownloadTorrent { path } => self.download_torrent(now, &path),
            Command::Export { name } => self.export(now, name),
            Command::Exit => self.stop(now),
        }
    }

    /// Writes `DIR/<name>.torrent` for a held file now, or once a file of that name being
    /// hashed or downloaded is held.
    fn export(&mut self, now: Instant, name: String) {
        if let Some(manifest) = self.library.manifest_named(&name) {
            return self.write_torrent(now, &manifest);
        }
        let coming = self.library.is_hashing(&name)
            || self
                .downloads
                .iter()
                .any(|d| d.name() == name && !d.finished());
        if !coming {
            self.refuse(format!(
                "cannot export {name}: this node does not hold it (share or download it first)"
            ));
        } else if let Err(line) = self.library.wait_for_export(name) {
            self.refuse(line);
        }
    }

    /// Runs a waiting export of `info_hash`'s name, if any.
    pub(super) fn export_if_waiting(&mut self, now: Instant, info_hash: Hash) {
        if let Some(manifest) = self.library.take_export(info_hash) {
            self.write_torrent(now, &manifest);
        }
    }

    /// Writes `DIR/<name>.torrent`, never over an existing file (the user's, or an earlier
    /// export: remove it to export again). A failed export, with `--exit-when-done`, ends the
    /// node with 1, as a failed download does: a script must not go on without the file.
    fn write_torrent(&mut self, now: Instant, manifest: &Manifest) {
        let name = &manifest.name;
        let torrent_name = match crate::metainfo::torrent_name(name) {
            Ok(torrent_name) => torrent_name,
            Err(problem) => {
                let line = format!("cannot export {name}: {problem} once '.torrent' is added");
                self.refuse(line);
                return self.check_done(now);
            }
        };
        let bytes = crate::metainfo::torrent_file(manifest, self.config.tracker);
        match self.state.write_file(&torrent_name, &bytes) {
            Ok(path) => self.out.say(format!(
                "exported {name} to {} ({})",
                path.display(),
                crate::metainfo::magnet_link(manifest, self.config.tracker)
            )),
            Err(error) => {
                self.refuse(format!("cannot export {name}: {error}"));
                self.check_done(now);
            }
        }
    }

    pub(super) fn share(&mut self, now: Instant, name: String) {
        if let Some(problem) = wire::name_problem(name.as_bytes()) {
            self.refuse(format!("cannot share {name:?}: {problem}"));
            return;
        }
        if self.library.is_hashing(&name) {
            self.out.say(format!("{name} is already being hashed"));
            return;
        }
        if let Err(line) = self.library.start_hashing(&name, now) {
            self.refuse(line);
            return;
        }
        let (state, chunk_bytes, threads) = (
            self.state.clone(),
            self.config.chunk_bytes,
            self.config.hash_threads,
        );
        self.out.event(NodeEvent::Job(Job::Share {
            state,
            name,
            chunk_bytes,
            threads,
        }));
    }

    pub(super) fn download(&mut self, now: Instant, name: String, pin: Option<Hash>) {
        if let Some(problem) = wire::name_problem(name.as_bytes()) {
            self.refuse(format!("cannot download {name:?}: {problem}"));
            return;
        }
        if !self.tracker.finds_by_name() {
            // A standard tracker knows info hashes, not names.
            match pin {
                Some(info_hash) => self.download_by_hash(now, info_hash, Some(name), None),
                None => self.refuse_download(
                    now,
                    format!(
                        "cannot download {name} by name from a standard tracker: give its .torrent, its info hash, a magnet link, or {name}@<info hash>"
                    ),
                ),
            }
            return;
        }
        if self
            .downloads
            .iter()
            .any(|d| d.name() == name && !d.finished())
        {
            self.out.say(format!("{name} is already downloading"));
            return;
        }
        if self.state.name_taken(&name) {
            // The very version asked for, held whole: nothing to do.
            if let Some(file) = pin.and_then(|pin| self.library.files().get(&pin))
                && file.complete()
                && file.manifest.name == name
            {
                self.out.say(format!(
                    "this node already holds {name} ({})",
                    wire::hex(&file.manifest.info_hash)
                ));
                self.check_done(now);
                return;
            }
            let shared = self
                .library
                .files()
                .values()
                .any(|f| f.manifest.name == name && f.stamp.is_some());
            let line = format!(
                "download {name} failed: {name} already exists in {}{}; nothing was downloaded",
                self.state.files_dir().display(),
                if shared { " (this node shares it)" } else { "" }
            );
            self.refuse(line);
            return;
        }
        if self.downloads.iter().filter(|d| !d.finished()).count() >= DOWNLOADS_MAX {
            self.refuse(format!(
                "cannot download {name}: {DOWNLOADS_MAX} downloads are running"
            ));
            return;
        }
        self.downloads.retain(|d| !d.finished());
        self.downloads.push(Download::new(
            name.clone(),
            pin,
            now,
            self.config.give_up_after,
        ));
        self.want_holders(now, &name);
    }

    /// Downloads `info_hash`: with a standard tracker, peers are found by it and the name
    /// (unless given) comes from the manifest they send; with ours, a name is needed and the
    /// download is pinned to `info_hash`.
    pub(super) fn download_by_hash(
        &mut self,
        now: Instant,
        info_hash: Hash,
        name: Option<String>,
        shape: Option<(u64, u32)>,
    ) {
        let hex = wire::hex(&info_hash);
        if self.tracker.finds_by_name() {
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
        if self
            .library
            .files()
            .get(&info_hash)
            .is_some_and(|f| f.complete())
        {
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
        self.update_tracker(now, info_hash);
    }

    /// Downloads what the `.torrent` at `path` describes. A relative path is looked for in the
    /// working directory, then in the node's files directory.
    pub(super) fn download_torrent(&mut self, now: Instant, path: &str) {
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
    pub(super) fn refuse_download(&mut self, _now: Instant, line: String) {
        self.refuse(line);
    }
}
