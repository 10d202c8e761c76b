//! Hashing jobs: work too slow for the reactor thread (hashing a file to share it,
//! checking a downloaded chunk), run elsewhere; the node takes their results in
//! `Node::handle_job_done`.

use crate::storage::{Bitmap, Content, FileStamp, Manifest, Storage};
use crate::tree::TreeManifest;
use crate::wire::{self, Hash};
use std::sync::Arc;

/// Work too slow for the reactor thread, run by a hasher thread (or inline in a simulation)
/// with [`run_job`]; its result comes back through `Node::handle_job_done`.
pub enum Job {
    /// Build (or load from cache) the manifest of a file in the node's directory.
    Share {
        state: Arc<dyn Storage>,
        name: String,
        /// A tree described by a `.torrent` made elsewhere: checked against it rather than
        /// described anew.
        described: Option<Arc<TreeManifest>>,
        chunk_bytes: u32,
        threads: usize,
    },
    /// Open (creating it, or resuming it) the partial content of a download: a tree's,
    /// whose many files would hold up the reactor.
    OpenPartial {
        /// The run of the download that asked (see `CheckChunk`).
        run: u64,
        state: Arc<dyn Storage>,
        manifest: Manifest,
    },
    /// Make a download whose every chunk verified durable and move it into place
    /// ([`Storage::publish`]).
    Publish {
        /// The run of the download that asked (see `CheckChunk`).
        run: u64,
        state: Arc<dyn Storage>,
        manifest: Arc<Manifest>,
        content: Arc<dyn Content>,
    },
    /// Check one chunk of a download against its hash.
    CheckChunk {
        /// The run of the download whose transfer asked (see `Downloads::push`): a result
        /// that comes back after that transfer ended (paused, cancelled) is for nobody, even
        /// when the same download runs again by then (resumed, under the same id) and the
        /// chunk's bytes were written anew.
        run: u64,
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
    PartialOpened {
        run: u64,
        /// What [`Storage::open_partial`] answered.
        result: std::io::Result<(Arc<dyn Content>, Bitmap)>,
    },
    Published {
        run: u64,
        /// What [`Storage::publish`] answered: the file opened for serving, and its stamp.
        result: std::io::Result<(Arc<dyn Content>, FileStamp)>,
    },
    ChunkChecked {
        run: u64,
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
            described,
            chunk_bytes,
            threads,
        } => {
            let result = match described {
                Some(tree) => state.share_described_tree(tree, threads),
                None => state.manifest_of(&name, chunk_bytes, threads),
            };
            let result = result
                .map_err(|error| error.to_string())
                .and_then(|shared| fetchable(&name, shared, wire::INFO_BYTES_MAX as usize));
            JobDone::Shared { name, result }
        }
        Job::OpenPartial {
            run,
            state,
            manifest,
        } => JobDone::PartialOpened {
            run,
            result: state.open_partial(&manifest),
        },
        Job::Publish {
            run,
            state,
            manifest,
            content,
        } => JobDone::Published {
            run,
            result: state.publish(&manifest, &content),
        },
        Job::CheckChunk {
            run,
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
                run,
                info_hash,
                chunk,
                ok,
            }
        }
    }
}

/// What was shared, unless it is a tree whose description is longer than `info_bytes_max`:
/// peers would refuse it ([`wire::INFO_BYTES_MAX`]), so it could be shared but never
/// downloaded. Such a tree holds some 150,000 files or more.
fn fetchable(
    name: &str,
    shared: (Manifest, FileStamp, Arc<dyn Content>),
    info_bytes_max: usize,
) -> Result<(Manifest, FileStamp, Arc<dyn Content>), String> {
    let Some(tree) = &shared.0.tree else {
        return Ok(shared);
    };
    let info_bytes = tree.info_bytes().len();
    if info_bytes <= info_bytes_max {
        return Ok(shared);
    }
    Err(format!(
        "cannot share {name}: its description ({} files) takes {info_bytes} bytes, and peers \
         accept at most {info_bytes_max}; share its subdirectories one by one",
        tree.files().len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StateDir;

    /// A tree whose description would pass what peers accept is refused, with its size
    /// and what to do; one within it is shared.
    #[test]
    fn a_tree_too_long_to_describe_is_not_shared() {
        let dir = std::env::temp_dir().join(format!("torrent-jobs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = StateDir::open(&dir).unwrap();
        let tree = state.files_dir().join("t");
        std::fs::create_dir_all(tree.join("a")).unwrap();
        for i in 0..20 {
            std::fs::write(tree.join("a").join(format!("f{i}")), [i as u8; 100]).unwrap();
        }
        let shared = state.manifest_of("t", 1 << 20, 1).unwrap();
        let length = shared.0.tree.as_ref().unwrap().info_bytes().len();
        let shared_again = state.manifest_of("t", 1 << 20, 1).unwrap();
        assert!(fetchable("t", shared, length).is_ok());
        let refused = fetchable("t", shared_again, length - 1).err().unwrap();
        assert!(refused.contains("20 files"), "{refused}");
        assert!(
            refused.contains(&format!("at most {}", length - 1)),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
