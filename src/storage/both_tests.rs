//! The same operations against both storages, the filesystem's ([`StateDir`]) and memory's
//! ([`MemoryStorage`]), with the same expected results: what the simulation learns on
//! memory holds on disk.

use super::*;
use std::time::Instant;

/// A storage under test, and the user's hand on its files.
trait Harness {
    fn storage(&self) -> &dyn Storage;
    /// The same directory opened again, as a node started again finds it.
    fn reopen(&self) -> Box<dyn Harness>;
    /// Writes a file in place (a new one when missing), as a user would.
    fn put(&self, name: &str, bytes: &[u8]);
    /// Puts another file in the name's place (rename over it), as a user would.
    fn replace(&self, name: &str, bytes: &[u8]);
    fn remove(&self, name: &str);
    fn read(&self, name: &str) -> Option<Vec<u8>>;
}

struct OnDisk {
    dir: PathBuf,
    state: StateDir,
    /// Whether this one removes the directory when dropped (not a reopened one).
    owner: bool,
}

impl Drop for OnDisk {
    fn drop(&mut self) {
        if self.owner {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Harness for OnDisk {
    fn storage(&self) -> &dyn Storage {
        &self.state
    }

    fn reopen(&self) -> Box<dyn Harness> {
        Box::new(OnDisk {
            state: StateDir::open(&self.dir).unwrap(),
            dir: self.dir.clone(),
            owner: false,
        })
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        fs::write(self.dir.join(name), bytes).unwrap();
    }

    fn replace(&self, name: &str, bytes: &[u8]) {
        let other = self.dir.join(".user-tmp");
        fs::write(&other, bytes).unwrap();
        fs::rename(&other, self.dir.join(name)).unwrap();
    }

    fn remove(&self, name: &str) {
        fs::remove_file(self.dir.join(name)).unwrap();
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join(name)).ok()
    }
}

struct InMemory(Arc<MemoryStorage>);

impl Harness for InMemory {
    fn storage(&self) -> &dyn Storage {
        &*self.0
    }

    fn reopen(&self) -> Box<dyn Harness> {
        Box::new(InMemory(Arc::clone(&self.0)))
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        self.0.put_file(name, bytes).unwrap();
    }

    fn replace(&self, name: &str, bytes: &[u8]) {
        assert!(self.0.remove_file(name));
        self.0.put_file(name, bytes).unwrap();
    }

    fn remove(&self, name: &str) {
        assert!(self.0.remove_file(name));
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.0.file(name)
    }
}

/// Runs `test` on a fresh storage of each kind; `tag` names the disk's scratch directory.
fn on_both(tag: &str, test: impl Fn(&dyn Harness)) {
    let dir = std::env::temp_dir().join(format!("torrent-both-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let disk = OnDisk {
        state: StateDir::open(&dir).unwrap(),
        dir,
        owner: true,
    };
    test(&disk);
    test(&InMemory(Arc::new(MemoryStorage::new(format!(
        "memory/{tag}"
    )))));
}

const CHUNK_BYTES: u32 = 16 << 10;

/// 40,000 bytes: three chunks, the last one short.
fn data() -> Vec<u8> {
    (0..40_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn manifest_of_data(name: &str) -> Manifest {
    let data = data();
    let hashes = data
        .chunks(CHUNK_BYTES as usize)
        .map(crate::hash::sha1)
        .collect();
    Manifest::new(name.into(), data.len() as u64, CHUNK_BYTES, hashes)
}

/// Writes chunk `chunk` of [`data`] into `content`, as a download does.
fn write_chunk(content: &Arc<dyn Content>, manifest: &Manifest, chunk: u32) {
    let now = Instant::now();
    let offset = manifest.chunk_offset(chunk);
    let len = manifest.chunk_len(chunk) as usize;
    let bytes = &data()[offset as usize..offset as usize + len];
    let mut writer = Arc::clone(content).writer();
    // In pieces, as they arrive.
    for (i, piece) in bytes.chunks(1400).enumerate() {
        assert!(writer.write(now, offset + i as u64 * 1400, piece));
    }
    assert!(writer.flush(now));
    assert_eq!(
        content.sha1(offset, len),
        Some(manifest.hashes[chunk as usize])
    );
}

#[test]
fn a_download_resumes_after_a_restart_with_the_chunks_recorded() {
    on_both("resume", |user| {
        let storage = user.storage();
        let manifest = manifest_of_data("d.bin");
        assert_eq!(storage.partial_manifest(&manifest.info_hash), None);
        let (content, claimed) = storage.open_partial(&manifest).unwrap();
        assert_eq!((content.len(), claimed.count()), (40_000, 0));
        let mut have = Bitmap::new(3);
        for chunk in [0, 2] {
            write_chunk(&content, &manifest, chunk);
        }
        // Chunk 2 is written but its verification was not recorded before the "crash".
        have.set(0);
        storage
            .record_verified(&manifest.info_hash, &have, 0)
            .unwrap();
        drop(content);

        let again = user.reopen();
        let storage = again.storage();
        assert_eq!(
            storage.partial_manifest(&manifest.info_hash),
            Some(manifest.clone())
        );
        let (content, claimed) = storage.open_partial(&manifest).unwrap();
        assert_eq!(claimed, have, "only the recorded chunk is claimed");
        let offset = manifest.chunk_offset(0);
        assert_eq!(
            content.sha1(offset, CHUNK_BYTES as usize),
            Some(manifest.hashes[0])
        );
        let summaries = storage.partials();
        assert_eq!(summaries.len(), 1);
        let summary = &summaries[0];
        assert_eq!(
            (
                &summary.name[..],
                summary.file_bytes,
                summary.verified_bytes
            ),
            ("d.bin", 40_000, u64::from(CHUNK_BYTES))
        );
        assert!(summary.disk_bytes >= 40_000, "the space is reserved");
        assert_eq!(
            storage.partial_summary(&manifest.info_hash).as_ref(),
            Some(summary)
        );
        assert!(storage.partial_path(&manifest.info_hash).ends_with(format!(
            ".torrent/partial/{}.part",
            wire::hex(&manifest.info_hash)
        )));

        // Removed, it starts from nothing.
        storage.remove_partial(&manifest.info_hash).unwrap();
        assert_eq!(storage.partial_summary(&manifest.info_hash), None);
        assert_eq!(storage.partial_manifest(&manifest.info_hash), None);
        assert!(storage.partials().is_empty());
        storage.remove_partial(&manifest.info_hash).unwrap();
        let (_, claimed) = storage.open_partial(&manifest).unwrap();
        assert_eq!(claimed.count(), 0);
    });
}

#[test]
fn a_shared_file_is_hashed_once_and_a_verified_download_is_published() {
    on_both("publish", |user| {
        let storage = user.storage();
        let data = data();
        user.put("d.bin", &data);
        let (manifest, stamp, serving) = storage.manifest_of("d.bin", CHUNK_BYTES, 2).unwrap();
        assert_eq!(manifest, manifest_of_data("d.bin"));
        assert_eq!(storage.stamp_of("d.bin").unwrap(), stamp);
        let mut back = vec![0; 1400];
        assert!(serving.read_into(38_600, &mut back));
        assert_eq!(back, data[38_600..]);
        assert!(!serving.read_into(38_601, &mut back), "past the end");
        let (cached, cached_stamp, _) = storage.manifest_of("d.bin", CHUNK_BYTES, 1).unwrap();
        assert_eq!((cached, cached_stamp), (manifest.clone(), stamp));

        // The same file downloaded under another name.
        let copy = manifest_of_data("copy.bin");
        let (content, _) = storage.open_partial(&copy).unwrap();
        let mut have = Bitmap::new(3);
        for chunk in 0..3 {
            write_chunk(&content, &copy, chunk);
            have.set(chunk);
            storage
                .record_verified(&copy.info_hash, &have, chunk)
                .unwrap();
            content
                .release(copy.chunk_offset(chunk), copy.chunk_len(chunk) as usize)
                .unwrap();
        }
        assert!(!storage.name_taken("copy.bin"));
        let (published, stamp) = storage.publish(&copy, &content).unwrap();
        assert_eq!(user.read("copy.bin").as_deref(), Some(&data[..]));
        assert!(storage.name_taken("copy.bin"));
        assert_eq!(storage.stamp_of("copy.bin").unwrap(), stamp);
        let mut whole = vec![0; data.len()];
        assert!(published.read_into(0, &mut whole));
        assert_eq!(whole, data);
        let mut writer = Arc::clone(&published).writer();
        let now = Instant::now();
        assert!(
            !(writer.write(now, 0, &[1]) && writer.flush(now)),
            "a published file is served, not written"
        );
        assert_eq!(storage.partial_summary(&copy.info_hash), None);
        assert!(storage.partials().is_empty());
        assert!(
            storage.publish(&copy, &content).is_err(),
            "publishing twice fails"
        );
        // Its manifest was kept: sharing it again finds the same.
        let (again, again_stamp, _) = storage.manifest_of("copy.bin", CHUNK_BYTES, 1).unwrap();
        assert_eq!((again, again_stamp), (copy, stamp));
    });
}

#[test]
fn publishing_never_replaces_a_file_and_keeps_the_download() {
    on_both("no-replace", |user| {
        let storage = user.storage();
        let manifest = manifest_of_data("d.bin");
        let (content, _) = storage.open_partial(&manifest).unwrap();
        for chunk in 0..3 {
            write_chunk(&content, &manifest, chunk);
        }
        user.put("d.bin", b"the user's own");
        let error = storage.publish(&manifest, &content).err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(user.read("d.bin").as_deref(), Some(&b"the user's own"[..]));
        assert!(storage.partial_summary(&manifest.info_hash).is_some());
        // Once the name is free, publishing again carries on.
        user.remove("d.bin");
        storage.publish(&manifest, &content).unwrap();
        assert_eq!(user.read("d.bin"), Some(data()));
    });
}

#[test]
fn stamps_tell_a_rewrite_from_a_replacement_and_renew_the_manifest() {
    on_both("stamps", |user| {
        let storage = user.storage();
        user.put("d.bin", &data());
        let (manifest, stamp, serving) = storage.manifest_of("d.bin", CHUNK_BYTES, 1).unwrap();
        assert_eq!(storage.stamp_of("d.bin").unwrap(), stamp);
        // Written in place (another length, so that no clock granularity hides it).
        user.put("d.bin", &data()[..30_000]);
        // What is served is what is there now: past the new end, a read fails (no crash).
        let mut piece = vec![0; 1400];
        assert!(!serving.read_into(38_600, &mut piece));
        assert_eq!(serving.sha1(0, 40_000), None);
        assert!(serving.read_into(28_600, &mut piece));
        assert_eq!(piece, data()[28_600..30_000]);
        let rewritten = storage.stamp_of("d.bin").unwrap();
        assert_ne!(rewritten, stamp);
        assert!(!stamp.replaced_by(&rewritten));
        assert_eq!(rewritten.file_bytes(), 30_000);
        let (renewed, _, _) = storage.manifest_of("d.bin", CHUNK_BYTES, 1).unwrap();
        assert_eq!(renewed.file_bytes, 30_000);
        assert_ne!(renewed.info_hash, manifest.info_hash);
        // Another file put in its place.
        user.replace("d.bin", &data());
        assert!(rewritten.replaced_by(&storage.stamp_of("d.bin").unwrap()));
        user.remove("d.bin");
        let gone = storage.stamp_of("d.bin").err().unwrap();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        let missing = storage.manifest_of("d.bin", CHUNK_BYTES, 1).err().unwrap();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn a_hostile_name_is_refused_everywhere() {
    on_both("hostile", |user| {
        let storage = user.storage();
        user.put("x", b"a file beside the hostile names");
        for name in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\0b"] {
            assert!(storage.name_taken(name), "{name:?} counts as taken");
            let error = storage.stamp_of(name).err().unwrap();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{name:?}");
            let error = storage.manifest_of(name, CHUNK_BYTES, 1).err().unwrap();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    });
}

#[test]
fn tokens_are_kept_per_node_id_across_restarts() {
    on_both("tokens", |user| {
        let storage = user.storage();
        assert_eq!(storage.load_token(1), 0);
        storage.save_token(1, 0xaa).unwrap();
        storage.save_token(2, 0xbb).unwrap();
        storage.save_token(2, 0xcc).unwrap();
        let again = user.reopen();
        assert_eq!(again.storage().load_token(1), 0xaa);
        assert_eq!(again.storage().load_token(2), 0xcc);
        assert_eq!(again.storage().load_token(3), 0);
    });
}

#[test]
fn exports_never_replace_a_file_and_named_files_are_read_bounded() {
    on_both("export", |user| {
        let storage = user.storage();
        let path = storage.write_file("d.torrent", b"d8:announce").unwrap();
        assert_eq!(path, storage.files_dir().join("d.torrent"));
        assert_eq!(user.read("d.torrent").as_deref(), Some(&b"d8:announce"[..]));
        let error = storage.write_file("d.torrent", b"other").err().unwrap();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(user.read("d.torrent").as_deref(), Some(&b"d8:announce"[..]));
        // By its name in the node's directory, or by its whole path; at most the limit.
        assert_eq!(
            storage.read_named_file("d.torrent", 1_000).unwrap(),
            b"d8:announce"
        );
        let whole = storage.files_dir().join("d.torrent");
        assert_eq!(
            storage.read_named_file(whole.to_str().unwrap(), 2).unwrap(),
            b"d8"
        );
        let error = storage
            .read_named_file("missing.torrent", 10)
            .err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    });
}
