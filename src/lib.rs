//! # torrent
//!
//! Peer-to-peer file distribution over UDP: a **tracker** that knows which nodes are alive
//! and who holds which file, and **nodes** that share files from their directory and download
//! files by name from several holders at once, in chunks checked by SHA-1. One binary runs
//! either role (`torrent tracker`, `torrent node`), or a whole local swarm (`torrent demo`).
//!
//! ## Layers
//!
//! ```text
//!  main.rs, cli.rs        the command line: flags in, a config out, exit code 2 on a bad one
//!  reactor.rs             the only code with sockets, the clock, threads, signals, stdout:
//!                         one mio loop per process around one sans-IO core
//!                         (reactor/node_process.rs: a node's hasher and console threads,
//!                         control orders, and stdout: its events as lines or JSON, and
//!                         the progress of its downloads, as bars on a terminal in
//!                         reactor/node_process/bars.rs)
//!  udp.rs                 many datagrams per system call (recvmmsg + GRO, sendmmsg, GSO),
//!                         sockets that never fragment, the kernel's route MTUs, the
//!                         host's interface addresses
//!  mtu.rs                 how large a datagram may be toward each peer: 64 KiB on loopback,
//!                         1,232 bytes for control, pieces sized by a DPLPMTUD search
//!  sans_io.rs             what every core offers its driver: the `Core` trait and `Transmit`
//!  tracker.rs, node.rs    sans-IO state machines: handle_datagram / handle_timeout /
//!                         handle_command in, poll_transmit / poll_timeout / poll_event out;
//!                         `now` and a random seed are passed in, never read
//!  node/download.rs       one download: look-up, manifest, peers, timeouts, verification
//!                         (a router: what it fetches, its peers, look-ups, manifest,
//!                         phases and what it reports are types of their own in
//!                         node/download/*.rs)
//!  node/download/transfer.rs  which chunk from whom (rarest first, endgame, piece runs),
//!                         and the account of pieces in flight, its invariants asserted
//!  node/download/congestion.rs  the pace asked of each peer across a network: a BBR-like
//!                         model of the path's bottleneck, run at the receiver
//!  node/upload.rs         serving peers (each sender's budget, cookies, pieces read from
//!                         the file, rate limit;
//!                         node/upload/pacer.rs keeps the pace each peer asked for)
//!  node/tracker_client.rs  the node's tracker client, one type with two variants: ours
//!                         (tracker_client/ours.rs) and BEP 15 for a standard tracker
//!                         (tracker_client/bep15.rs, `--tracker udp://`), and one set of
//!                         news for the node
//!  node/library.rs        the files a node holds, those being hashed, exports waiting
//!  node/downloads.rs      the downloads running and finished, and which one a message is for
//!  node/events.rs         what a node reports, typed: a line for a person (as ever), or one
//!                         JSON object per line with `--json`, versioned
//!  node/*.rs              the node's other parts, one subject each (its configuration, its
//!                         outbox, the parts a download borrows, a download's start checks,
//!                         hashing jobs, how it ends, status, watching the directory, peer
//!                         exchange, what checkers inspect): the map is in node.rs's
//!                         module doc
//!  tracker/register.rs, tracker/saving.rs  registration (cookies, tokens) and registry
//!                         saves (at most one a second; replies wait for their token's save)
//!  budget.rs              per-sender datagram budgets at the door (the tracker's; the
//!                         node's uploader's, for peers' requests)
//!  wire.rs                every datagram of ours: fixed-layout big-endian views, checked decode
//!  wire/list.rs, tracker/list.rs, node/listing.rs  `list`: pages of what a tracker offers,
//!                         in (name, info hash) order from a cursor; asked for by id
//!  bep15.rs               the standard BitTorrent UDP tracker protocol (BEP 15) on the wire,
//!                         same style; tracker/bep15_server.rs is its server, beside our own
//!                         protocol, and node/tracker_client/bep15.rs its client
//!  peer_wire.rs           the BitTorrent peer wire (BEP 3, 6, 9, 10) over TCP: the codec,
//!                         and peer_wire/connection.rs, one connection of a seed, sans-IO;
//!                         node/peer_wire_seed.rs keeps a node's connections and limits,
//!                         reactor/peer_wire_sockets.rs its TCP listener and sockets
//!  bencode.rs, metainfo.rs  `.torrent` files and magnet links: written by `export`, read
//!                         by `download` (bencode::Slice reads in place, raw spans kept)
//!  tree.rs                a multi-file content (a directory, as BitTorrent v1 describes
//!                         one): its files, pieces and info hash; not yet used by the node.
//!                         tree/paths.rs checks every path from outside (limits, case
//!                         collisions); tree/layout.rs maps a piece to the files it spans;
//!                         tree/walk.rs builds one from a directory on disk, never
//!                         following a link, its pieces hashed while it walks
//!                         (tree/walk/streaming.rs); tree/hashing.rs hashes pieces on threads;
//!                         tree/parse.rs reads a `.torrent` made elsewhere (hybrid v1+v2,
//!                         pad files), identified by its info dictionary's bytes as given;
//!                         tree/content.rs makes its files one Content (read, hashed and
//!                         written across file boundaries, pad files as zeros)
//!  storage.rs             manifests, have-bitmaps, stamps of shared files, and the traits
//!                         the node does all its file work through: Storage (its
//!                         directory) and Content (one file's bytes)
//!  storage/state.rs       Storage on the filesystem: the node's state directory, identity,
//!                         partial files, publishing
//!  storage/memory.rs      Storage in memory, for the simulation and tests
//!  storage/dir.rs         every file under the node's directory opened by a directory
//!                         handle, never through a link, never a FIFO or device; the lock
//!  storage/mapping.rs     Content on the filesystem, memory mappings (storage/writer.rs
//!                         batches pieces into fewer writes): one of two modules allowed
//!                         `unsafe` (with udp.rs)
//!  hash.rs                SHA-1 (the SHA-NI one: see the module doc for the figures)
//!  impair.rs              seeded loss, duplication, reordering for fault tests (`--impair`)
//!  rng.rs, logging.rs     the injected random source; the log file (rotated at a size)
//!  units.rs               rates and sizes as the user sees them (binary, as flags take them)
//!  secrets.rs             tokens and keys: getrandom in processes, seeded SHA-1 in simulations
//!  console.rs             the original's console commands (`torrent -setMode send <file>`)
//!  metrics.rs             `--metrics ADDR`: the Prometheus text format over a small HTTP
//!                         responder in the reactor's loop
//!  control.rs             the control socket (JSON lines on a Unix socket, served by threads
//!                         that hand typed commands to the reactor) and `torrent ctl`
//!  demo.rs                a tracker and nodes as child processes, verified end to end
//!
//!  test tools, built only with the `testing` feature (which the tests, benches, examples
//!  and fuzz targets turn on), not part of the product:
//!  sim.rs, sim/           a tracker and many nodes in one process: virtual clock, seeded
//!                         network and faults (sim/link.rs: capacities, delays, queues),
//!                         checkers (see tests/sim_swarm.rs)
//!  fuzz_checks.rs         the invariants the fuzz targets check, replayed by
//!                         tests/fuzz_corpus.rs; node/download/fuzz.rs drives one download
//!                         with a fuzzed swarm's messages (it builds the node's private parts)
//!  flood.rs               a sendmmsg flood sender for measuring the tracker under abuse
//!                         (examples/flood.rs, tests/flood.rs)
//! ```
//!
//! ## One piece's path
//!
//! A downloading node's [`node::Node`] decides it wants pieces 0..16 of chunk 7 from a peer
//! and queues a [`wire::PieceRequest`]; the reactor takes it from `poll_transmit` and sends
//! it. The holder's reactor receives the datagram and hands the bytes to its node's
//! `handle_datagram`; [`wire::decode`] checks it (magic, version, kind, lengths, cookie
//! comes next) without copying; the uploader queues the range and, one `poll_transmit` at a
//! time, reads each piece from the file (`pread`; MTU-sized pieces a block of the range at
//! a time) into the send buffer behind a [`wire::Piece`] header. Back at the downloader, the piece is written in place into the
//! partial file (`pwrite`; the file is also mapped, for hashing). When all of chunk 7's pieces are in, a hasher thread computes its
//! SHA-1 (the reactor goes on); only if it matches the manifest does the chunk count, get
//! recorded in the have-file, credited to the sender at the tracker, and served to others.
//! When every chunk matched, the file is synced and renamed to its name.
//!
//! ## Threads
//!
//! The reactor thread, hasher threads (one per core) and a console thread. Helpers reach
//! the reactor only through crossbeam channels and a `mio::Waker`.

#![deny(unsafe_code)]

pub mod bencode;
pub mod bep15;
pub mod budget;
pub mod cli;
pub mod console;
pub mod control;
pub mod demo;
#[cfg(any(test, feature = "testing"))]
pub mod flood;
#[cfg(any(test, feature = "testing"))]
pub mod fuzz_checks;
pub mod hash;
pub mod impair;
pub mod logging;
pub mod metainfo;
pub mod metrics;
pub mod mtu;
pub mod node;
pub mod peer_wire;
pub mod reactor;
pub mod rng;
pub mod sans_io;
pub mod secrets;
#[cfg(any(test, feature = "testing"))]
pub mod sim;
pub mod storage;
pub mod tracker;
pub mod tree;
pub mod udp;
pub mod units;
pub mod wire;

pub use sans_io::{Core, Transmit};
