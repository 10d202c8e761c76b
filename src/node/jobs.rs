//! Hashing jobs: work too slow for the reactor thread (hashing a file to share it,
//! checking a downloaded chunk), run elsewhere, and what the node does with their results.

use super::*;

/// Work too slow for the reactor thread, run by a hasher thread (or inline in a simulation)
/// with [`run_job`]; its result comes back through [`Node::handle_job_done`].
pub enum Job {
    /// Build (or load from cache) the manifest of a file in the node's directory.
    Share {
        state: Arc<dyn Storage>,
        name: String,
        chunk_bytes: u32,
        threads: usize,
    },
    /// Check one chunk of a download against its hash.
    CheckChunk {
        info_hash: Hash,
        chunk: u32,
        mapping: Arc<dyn Content>,
        offset: u64,
        len: usize,
        expected: Hash,
    },
}

/// The result of a [`Job`].
pub enum JobDone {
    Shared {
        name: String,
        /// The manifest, the file's stamp, and the file opened for serving: opened once, by
        /// the hasher, so that the reactor thread never opens a file the user named (a FIFO
        /// put in its place would block it).
        result: Result<(Manifest, FileStamp, Arc<dyn Content>), String>,
    },
    ChunkChecked {
        info_hash: Hash,
        chunk: u32,
        ok: bool,
    },
}

/// Runs a job to completion on the calling thread.
pub fn run_job(job: Job) -> JobDone {
    match job {
        Job::Share {
            state,
            name,
            chunk_bytes,
            threads,
        } => {
            let result = state
                .manifest_of(&name, chunk_bytes, threads)
                .map_err(|error| error.to_string());
            JobDone::Shared { name, result }
        }
        Job::CheckChunk {
            info_hash,
            chunk,
            mapping,
            offset,
            len,
            expected,
        } => {
            let ok = mapping.sha1(offset, len) == Some(expected);
            if ok && let Err(error) = mapping.release(offset, len) {
                // Not fatal: the pages stay mapped, costing memory, not data.
                log::warn!("cannot release the pages of chunk {chunk}: {error}");
            }
            JobDone::ChunkChecked {
                info_hash,
                chunk,
                ok,
            }
        }
    }
}

impl Node {
    /// A hasher thread finished a job.
    pub fn handle_job_done(&mut self, now: Instant, done: JobDone) {
        match done {
            JobDone::Shared { name, result } => {
                let asked = self.library.hashing_done(&name);
                match result {
                    Ok((manifest, stamp, mapping)) => {
                        // A cached manifest comes back at once; a new file was read and
                        // hashed on every hasher thread.
                        let seconds = asked.map_or(0.0, |t| (now - t).as_secs_f64());
                        log::info!(
                            "manifest of {name} ready in {seconds:.3} s ({} bytes, {} chunks, {})",
                            manifest.file_bytes,
                            manifest.chunk_count(),
                            crate::units::rate(manifest.file_bytes as f64 / seconds.max(1e-6))
                        );
                        let info_hash = self.library.add_shared(manifest, stamp, mapping);
                        self.announce(now, info_hash);
                        self.export_if_waiting(now, info_hash);
                    }
                    Err(error) => self.refuse(format!("cannot share {name}: {error}")),
                }
            }
            JobDone::ChunkChecked {
                info_hash,
                chunk,
                ok,
            } => {
                let Some(index) = self
                    .downloads
                    .iter()
                    .position(|d| d.info_hash() == Some(info_hash))
                else {
                    return;
                };
                let mut ctx = self.context();
                let verified = ctx.downloads[index].chunk_checked(&mut ctx.parts, now, chunk, ok);
                if let Some(from_node) = verified {
                    let bytes = ctx
                        .parts
                        .files
                        .get(&info_hash)
                        .map_or(0, |f| u64::from(f.manifest.chunk_len(chunk)));
                    self.tracker
                        .chunk_verified(now, &mut self.out, from_node, info_hash, bytes);
                    if let Some(file) = self.library.files().get(&info_hash) {
                        self.uploader.push_have(&mut self.out, now, file);
                    }
                    self.after_progress(now, info_hash);
                }
                // A chunk left the hashing queue: room to start another.
                self.fill_windows(now);
            }
        }
    }
}
