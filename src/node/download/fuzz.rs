//! The body of the `download_messages` fuzz target: one [`Download`] driven by whatever its
//! holders, and strangers, might send it. It lives here, inside the node, because a download
//! and the parts it works on are the node's own; `crate::fuzz_checks` hands it the input.
//!
//! A download of a small file, whose bytes come from a formula so that the harness knows
//! every right byte, is told of a few holders by a look-up reply. Then the fuzz input is a
//! sequence of inputs, in any order and from any holder or a stranger: pieces of any chunk
//! and offset with right or wrong data, rejects of every reason, have-maps, manifest parts
//! (right or forged), welcomes, MTU probe echoes, peer lists, new look-up replies, the clock
//! moving on, and hash checks finishing in any order. An input may also make a holder answer
//! one of the requests the download sent it, honestly or with a flaw, so that the download
//! can finish. Every datagram is encoded and decoded as it would be between two nodes, and
//! only what decodes reaches the download, as at a node; after each input the download fills
//! its windows and the harness takes what it sent, as the node does.
//!
//! Checked after every input, beside the transfer's account (`Download::check_invariants`,
//! which runs in debug builds, as fuzz builds are):
//!
//! * every datagram the download sent decodes, and goes to an address it was told of (a
//!   holder, or one a peer list named), never to a stranger that merely wrote to it;
//! * a chunk the node's table holds has the file's bytes: it matched its SHA-1;
//! * a download that finished well published the file, byte for byte, and said so;
//! * at most one hash check per chunk waits, and progress never exceeds the file.

mod swarm;
#[cfg(test)]
mod tests;

use super::{Asked, Download, TrackerHeard};
use crate::mtu::Routes;
use crate::node::{Job, JobDone, LocalFile, NodeConfig, NodeEvent, Outbox, PaceMode, Parts};
use crate::storage::{MemoryStorage, Storage};
use crate::wire::{self, Hash, Message};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarm::{CHUNK_BYTES, Swarm};

const OWN_NODE_ID: u32 = 7;
/// The piece size the node asks for: four pieces to a whole chunk.
const PIECE_BYTES: u32 = 4096;
/// Longest step of the clock one input asks for.
const CLOCK_STEP_MS_MAX: u64 = 65_535;

/// What became of one run, for tests that check the harness reaches what it should.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub published: bool,
    pub failed: bool,
    pub chunks_verified: u32,
    pub chunks_failed_hash: u64,
}

/// Runs one fuzz input; panics when an invariant breaks.
pub fn check_download_messages(bytes: &[u8]) -> Outcome {
    let mut input = Input(bytes);
    let Some(mut harness) = Harness::new(&mut input) else {
        return Outcome::default();
    };
    while harness.step(&mut input).is_some() {
        harness.check(Reread::NewlyHeld);
    }
    harness.check(Reread::AllHeld);
    harness.outcome()
}

/// The fuzz input, read from the front; every read is `None` once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    /// Up to `len` bytes (fewer when the input ends).
    fn take(&mut self, len: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// The download, the parts of a node around it, and the swarm it downloads from.
struct Harness {
    swarm: Swarm,
    download: Download,
    out: Outbox,
    files: BTreeMap<Hash, LocalFile>,
    storage: Arc<dyn Storage>,
    /// The same storage, to look at what was written.
    memory: Arc<MemoryStorage>,
    config: NodeConfig,
    /// Hash checks the node's hashers would be running.
    jobs: Vec<Job>,
    /// The virtual clock: it starts at `start` and moves only when an input says so.
    start: Instant,
    now: Instant,
    said_downloaded: bool,
    chunks_verified: u32,
    /// Held chunks whose bytes were read back since they became held.
    held_read: BTreeSet<u32>,
    buf: Vec<u8>,
}

/// Which held chunks [`Harness::check`] reads back.
#[derive(Clone, Copy)]
enum Reread {
    NewlyHeld,
    AllHeld,
}

impl Harness {
    /// From the input's first byte: the file's size, the pace mode, the route MTU.
    fn new(input: &mut Input<'_>) -> Option<Harness> {
        let shape = input.byte()?;
        let swarm = Swarm::new(shape % 4);
        let tracker = SocketAddr::from(([127, 0, 0, 1], 6969));
        let mut config = NodeConfig::new(OWN_NODE_ID, tracker);
        config.piece_bytes = PIECE_BYTES;
        let paces = [PaceMode::Off, PaceMode::OffLoopback, PaceMode::Always];
        config.pace = paces[usize::from(shape / 4 % 3)];
        // Loopback routes (the assumed MTU of 127.0.0.0/8), or a 1,500-byte path, which
        // makes the download search for its MTU with probes.
        if shape / 12 % 2 == 1 {
            config.routes = Routes::fixed(1_500);
        }
        let now = Instant::now();
        let memory = Arc::new(MemoryStorage::new("fuzz"));
        let name = swarm.manifest.name.clone();
        let download = Download::new(Asked::by_name(name, None), now, config.give_up_after);
        let mut harness = Harness {
            swarm,
            download,
            out: Outbox::new(),
            files: BTreeMap::new(),
            storage: Arc::clone(&memory) as Arc<dyn Storage>,
            memory,
            config,
            jobs: Vec::new(),
            start: now,
            now,
            said_downloaded: false,
            chunks_verified: 0,
            held_read: BTreeSet::new(),
            buf: vec![0; wire::DATAGRAM_BYTES_MAX],
        };
        harness.look_up(u8::MAX, 0);
        harness.check(Reread::NewlyHeld);
        Some(harness)
    }

    fn outcome(&self) -> Outcome {
        Outcome {
            published: self.said_downloaded,
            failed: self.download.failed(),
            chunks_verified: self.chunks_verified,
            chunks_failed_hash: self.out.stats.chunks_failed_hash,
        }
    }

    /// Runs `act` on the download with the parts of a node around it.
    fn with_parts<T>(
        &mut self,
        act: impl FnOnce(&mut Download, &mut Parts<'_>, Instant) -> T,
    ) -> T {
        let mut parts = Parts {
            out: &mut self.out,
            files: &mut self.files,
            state: &self.storage,
            config: &self.config,
            tracker: TrackerHeard {
                addr: self.config.tracker,
                registered: true,
                waiting_since: None,
            },
            download_limit: None,
        };
        act(&mut self.download, &mut parts, self.now)
    }

    /// The tracker's reply to a look-up: the holders in `mask` (see
    /// [`Swarm::look_up_reply`]).
    fn look_up(&mut self, mask: u8, partial: u8) {
        let (versions, holders) = self.swarm.look_up_reply(mask, partial);
        self.with_parts(|download, parts, now| {
            download.handle_lookup(parts, now, &versions, &holders);
            download.fill_windows(parts, now);
        });
    }

    /// Hands what the swarm sent to the download as the node would: only what decodes, each
    /// kind to the method the node calls for it, and then the windows are filled.
    fn deliver(&mut self) {
        for (from, bytes) in self.swarm.take_outgoing() {
            let Ok(message) = wire::decode(&bytes) else {
                continue;
            };
            self.with_parts(|download, parts, now| {
                match &message {
                    Message::Peers { fixed, peers } => {
                        if download.info_hash() == Some(fixed.info_hash) && !download.finished() {
                            download.handle_exchange(parts, now, from, peers);
                        }
                    }
                    _ => _ = download.handle_peer_message(parts, now, from, &message),
                }
                download.fill_windows(parts, now);
            });
        }
    }

    /// One input; `None` when the fuzz input ran out.
    fn step(&mut self, input: &mut Input<'_>) -> Option<()> {
        match input.byte()? % 12 {
            0 => {
                let clock_us = self.now.saturating_duration_since(self.start).as_micros();
                self.swarm.answer(input, clock_us as u32)?;
            }
            1 => self.swarm.forged_piece(input)?,
            2 => self.swarm.forged_have_map(input)?,
            3 => self.swarm.forged_manifest_part(input)?,
            4 => self.swarm.forged_reject(input)?,
            5 => self.swarm.forged_welcome(input)?,
            6 => self.swarm.forged_probe_reply(input)?,
            7 => self.swarm.peer_list(input)?,
            8 => {
                let (mask, partial) = (input.byte()?, input.byte()?);
                self.look_up(mask, partial);
            }
            9 => {
                let step_ms = u64::from(input.u16()?).min(CLOCK_STEP_MS_MAX);
                self.now += Duration::from_millis(step_ms);
                self.fire_timers();
            }
            10 => {
                // The node wakes when the download asked to.
                if let Some(due) = self.download.poll_timeout() {
                    self.now = self.now.max(due);
                }
                self.fire_timers();
            }
            _ => self.finish_hash_check(input)?,
        }
        self.deliver();
        Some(())
    }

    fn fire_timers(&mut self) {
        self.with_parts(|download, parts, now| {
            let _look_up = download.handle_timeout(parts, now);
            download.fill_windows(parts, now);
        });
    }

    /// One of the hash checks waiting finishes, as a hasher thread would, and its result
    /// goes back to the download.
    fn finish_hash_check(&mut self, input: &mut Input<'_>) -> Option<()> {
        let which = usize::from(input.byte()?);
        if self.jobs.is_empty() {
            return Some(());
        }
        let job = self.jobs.swap_remove(which % self.jobs.len());
        let (chunk, ok) = match crate::node::run_job(job) {
            JobDone::ChunkChecked { chunk, ok, .. } => (chunk, ok),
            JobDone::Published { result, .. } => {
                self.with_parts(|download, parts, now| download.published(parts, now, result));
                return Some(());
            }
            _ => panic!("a download asked for a job other than a hash check or publishing"),
        };
        let credited = self.with_parts(|download, parts, now| {
            let credited = download.chunk_checked(parts, now, chunk, ok);
            download.fill_windows(parts, now);
            credited
        });
        if let Some(from) = credited {
            assert!(ok, "chunk {chunk} credited to node {from} without matching");
            self.chunks_verified += 1;
        }
        Some(())
    }

    /// Takes what the download sent and said, and checks what holds after every input.
    /// Held chunks are read back when they become held, and all of them at the end (reading
    /// every one after every input made a run several times slower).
    fn check(&mut self, reread: Reread) {
        while let Some((to, len)) = self.out.pop_control(&mut self.buf) {
            self.swarm.received(to, &self.buf[..len]);
        }
        while let Some(event) = self.out.pop_event() {
            match event {
                NodeEvent::Job(job) => self.jobs.push(job),
                NodeEvent::Report(event @ crate::node::Event::Downloaded { .. }) => {
                    assert!(!self.said_downloaded, "said twice: {event}");
                    self.said_downloaded = true;
                }
                NodeEvent::Report(_) | NodeEvent::Print(_) | NodeEvent::Exit(_) => {}
            }
        }
        assert!(
            // A hash check per chunk at most, and the publishing once all verified.
            self.jobs.len() <= self.swarm.chunk_count() as usize + 1,
            "{} jobs wait for {} chunks",
            self.jobs.len(),
            self.swarm.chunk_count()
        );
        if let Some(file) = self.files.get(&self.swarm.manifest.info_hash) {
            let mut bytes = vec![0u8; CHUNK_BYTES as usize];
            self.held_read.retain(|&chunk| file.have.get(chunk));
            let held = (0..self.swarm.chunk_count()).filter(|&c| file.have.get(c));
            let unread: Vec<u32> = match reread {
                Reread::AllHeld => held.collect(),
                Reread::NewlyHeld => held.filter(|c| !self.held_read.contains(c)).collect(),
            };
            for chunk in unread {
                self.held_read.insert(chunk);
                let len = self.swarm.manifest.chunk_len(chunk) as usize;
                let start = chunk as usize * CHUNK_BYTES as usize;
                assert!(
                    file.mapping.read_into(start as u64, &mut bytes[..len]),
                    "chunk {chunk} is held but cannot be read"
                );
                assert!(
                    bytes[..len] == self.swarm.file[start..start + len],
                    "chunk {chunk} is held with wrong bytes"
                );
            }
        }
        let done = self.download.finished() && !self.download.failed();
        assert_eq!(done, self.said_downloaded, "finished and said differ");
        if done {
            assert_eq!(
                self.memory.file(&self.swarm.manifest.name).as_deref(),
                Some(self.swarm.file.as_slice()),
                "a finished download published other bytes"
            );
        }
        if let Some(progress) = self.download.report().progress(&self.files, self.now) {
            let total_bytes = progress
                .total_bytes
                .unwrap_or(self.swarm.manifest.file_bytes);
            assert!(progress.verified_bytes <= total_bytes);
        }
    }
}
