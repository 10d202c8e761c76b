//! The tracker against a hostile node and a careless operator, with the real binary (issue
//! 13): a registered node cannot predict another's token (finding 2), and a tracker that lost
//! its last saves, or all of them, learns every node's files again within about one
//! heartbeat (finding 3).

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};
use torrent::rng::Rng;
use torrent::wire::{self, Message, NodeAuth, U32, U64};

/// A hand-driven client of the tracker protocol on its own socket.
struct Client {
    socket: UdpSocket,
    tracker: SocketAddr,
}

impl Client {
    fn new(tracker: SocketAddr) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a test socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("set a read timeout");
        Client { socket, tracker }
    }

    fn send(&self, message: &Message) {
        let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
        let len = message.encode(&mut buf).expect("encodes");
        self.socket
            .send_to(&buf[..len], self.tracker)
            .expect("send to the tracker");
    }

    /// The next datagram from the tracker, within `LINE_TIMEOUT`.
    fn receive(&self) -> Vec<u8> {
        let deadline = Instant::now() + LINE_TIMEOUT;
        let mut buf = vec![0u8; wire::DATAGRAM_BYTES_MAX];
        loop {
            assert!(Instant::now() < deadline, "the tracker did not answer");
            if let Ok((len, from)) = self.socket.recv_from(&mut buf)
                && from == self.tracker
            {
                return buf[..len].to_vec();
            }
        }
    }

    /// Registers `node_id` (echoing the cookie when challenged) and returns its token.
    fn register(&self, node_id: u32) -> u64 {
        let mut cookie = 0;
        let deadline = Instant::now() + LINE_TIMEOUT;
        while Instant::now() < deadline {
            self.send(&Message::Register(&wire::Register {
                auth: auth(node_id, 0),
                cookie: U64::new(cookie),
                holdings_digest: U64::new(0),
                ..bytemuck::Zeroable::zeroed()
            }));
            let reply = self.receive();
            match wire::decode(&reply) {
                Ok(Message::Challenge(challenge)) => cookie = challenge.cookie.get(),
                Ok(Message::Registered(registered)) => return registered.auth.token.get(),
                other => panic!("unexpected reply to a Register: {other:?}"),
            }
        }
        panic!("never registered");
    }
}

fn auth(node_id: u32, token: u64) -> NodeAuth {
    NodeAuth {
        node_id: U32::new(node_id),
        token: U64::new(token),
    }
}

/// The SplitMix64 state after the step that output `out`: what the attacker of finding 2
/// computed from its own token.
fn invert_splitmix(out: u64) -> u64 {
    fn undo_xorshift(y: u64, shift: u32) -> u64 {
        let mut x = y;
        for _ in 0..64 / shift {
            x = y ^ (x >> shift);
        }
        x
    }
    fn inverse(odd: u64) -> u64 {
        let mut x = odd;
        for _ in 0..5 {
            x = x.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(x)));
        }
        x
    }
    let mut z = undo_xorshift(out, 31);
    z = undo_xorshift(z.wrapping_mul(inverse(0x94d0_49bb_1331_11eb)), 27);
    undo_xorshift(z.wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9)), 30)
}

/// Finding 2: one registration revealed the token generator, so an Exit forged with the
/// next tokens removed the node that registered after the attacker.
#[test]
fn one_token_predicts_no_other() {
    let scratch = Scratch::new("predict-token");
    let mut tracker = tracker(&scratch);
    let attacker = Client::new(tracker.addr);
    let own_token = attacker.register(900);
    tracker.proc.expect_line("node 900 registered from ");

    let mut victim = node(&scratch, 1, tracker.addr, &[]);
    victim.proc.expect_line("registered with tracker ");
    tracker.proc.expect_line("node 1 registered from ");

    // The generator's next outputs, as the attacker computes them from its own token.
    let mut generator = Rng::new(invert_splitmix(own_token));
    for _ in 0..8 {
        let predicted = generator.next_u64();
        attacker.send(&Message::Exit(&wire::Exit {
            auth: auth(1, predicted),
        }));
    }
    // The attacker's own Exit, sent after the forged ones from the same socket, is handled
    // after them: once it is acknowledged, the forged ones have had their effect.
    attacker.send(&Message::Exit(&wire::Exit {
        auth: auth(900, own_token),
    }));
    let line = tracker
        .proc
        .wait_line(
            |line| line.starts_with("node 900 exited") || line.starts_with("node 1 exited"),
            LINE_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(line, "node 900 exited", "a forged Exit removed node 1");
    // Node 1 is still registered: its heartbeat is answered, and a look-up of its own works.
    victim.proc.send_line("status");
    victim.proc.expect_line("datagrams: ");
}

/// Copies every file of `from` into `to` (the tracker database: two small files).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from)
        .expect("read the database folder")
        .flatten()
    {
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a database file");
    }
}

/// Waits until the tracker database in `db` holds `nodes` nodes and `files` files.
fn wait_saved(tracker: &mut Tracker, db: &Path, nodes: usize, files: usize) {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        if let Ok(Some(snapshot)) = torrent::tracker::db::load(db)
            && snapshot.nodes.len() == nodes
            && snapshot.files.len() == files
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the registry was never saved with {nodes} nodes and {files} files\n{}",
            tracker.proc.describe()
        );
        tracker.proc.read_for(Duration::from_millis(5));
    }
}

/// After the restart at `restarted_at`, the holder announces again within about one
/// heartbeat (1 s here), and a downloader then finds the file.
fn holder_is_learned_again(
    scratch: &Scratch,
    second: &mut Tracker,
    restarted_at: Instant,
    name: &str,
    data: &[u8],
) {
    second
        .proc
        .wait_line(
            |line| line.starts_with("node 1 announced "),
            Duration::from_secs(6),
        )
        .unwrap_or_else(|e| panic!("the holder never announced again: {e}"));
    let took = restarted_at.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "announced again after {took:?}"
    );
    let mut downloader = downloader(scratch, 2, second.addr, name, &["--give-up-after", "10"]);
    assert_eq!(
        downloader.proc.expect_exit(DOWNLOAD_TIMEOUT),
        0,
        "{}",
        downloader.proc.describe()
    );
    assert_file_is(&scratch.node_dir(2).join(name), data);
}

const QUICK: [&str; 2] = ["--heartbeat-interval", "1"];

/// Finding 3: the tracker is killed after it saved a node but before it saved that node's
/// announce. The node was accepted as returning and never announced again.
#[test]
fn a_tracker_restarted_from_a_stale_save_learns_the_files_again() {
    let scratch = Scratch::new("stale-save");
    let name = "stale.bin";
    let data = random_bytes(51, 300_000);
    let mut first = tracker_on(&scratch, "127.0.0.1:0", &QUICK);
    let addr = first.addr;
    let mut holder1 = node(&scratch, 1, addr, &QUICK);
    holder1.proc.expect_line("registered with tracker ");
    wait_saved(&mut first, &scratch.db(), 1, 0);
    // The save that knows the node but not its file: what a kill inside the save window
    // after the announce leaves on disk.
    let stale = scratch.root.join("stale_db");
    copy_dir(&scratch.db(), &stale);
    scratch.put_file(1, name, &data);
    holder1
        .proc
        .send_line(&format!("torrent -setMode send {name}"));
    holder1.proc.expect_line(&format!("sharing {name} "));
    first.proc.kill();
    std::fs::remove_dir_all(scratch.db()).expect("remove the database");
    copy_dir(&stale, &scratch.db());

    let restarted_at = Instant::now();
    let mut second = tracker_on(&scratch, &addr.to_string(), &QUICK);
    let restored = second.proc.expect_line("restored ");
    assert!(
        restored.starts_with("restored 1 nodes and 0 files"),
        "{restored}"
    );
    holder_is_learned_again(&scratch, &mut second, restarted_at, name, &data);
}

/// Finding 3, the other way: the tracker comes back with an empty database. The node got a
/// new token on its next heartbeat but did not announce again.
#[test]
fn a_tracker_restarted_on_an_empty_db_learns_the_files_again() {
    let scratch = Scratch::new("empty-db");
    let name = "empty.bin";
    let data = random_bytes(52, 300_000);
    scratch.put_file(1, name, &data);
    let first = tracker_on(&scratch, "127.0.0.1:0", &QUICK);
    let addr = first.addr;
    let _holder1 = holder(&scratch, 1, addr, name, &QUICK);
    let mut first = first;
    first.proc.kill();
    std::fs::remove_dir_all(scratch.db()).expect("empty the database");

    let restarted_at = Instant::now();
    let mut second = tracker_on(&scratch, &addr.to_string(), &QUICK);
    holder_is_learned_again(&scratch, &mut second, restarted_at, name, &data);
}

/// Finding 10: a database folder the tracker cannot write ran "normally" and lost every
/// registration at the next restart. `/proc/self` is a folder nobody can create files in,
/// not even root (tests may run as root, for whom permissions do not stop a write).
#[test]
fn an_unwritable_db_folder_is_refused_at_start() {
    let scratch = Scratch::new("db-unwritable");
    let mut list = args(&[
        "tracker",
        "--listen",
        "127.0.0.1:0",
        "--db-dir",
        "/proc/self",
    ]);
    list.push("--log-dir".into());
    list.push(scratch.logs().display().to_string());
    let mut tracker = spawn("tracker", &scratch.root, &list);
    assert_eq!(
        tracker.expect_exit(LINE_TIMEOUT),
        2,
        "{}",
        tracker.describe()
    );
    let stderr = tracker.stderr_lines().join("\n");
    assert!(
        stderr.contains("the tracker database folder /proc/self is not writable"),
        "{stderr}"
    );
}

/// Finding 9: every new registration forced a registry save (15-58 a second under a flood).
/// 500 ids registered as fast as one socket can: every one answered, each token on disk
/// before its reply, and at most one save a second (the log says `registry saved: ...`
/// once per save).
#[test]
fn a_burst_of_registrations_is_saved_at_most_once_a_second() {
    const IDS: u32 = 500;
    let scratch = Scratch::new("register-burst");
    let mut tracker = tracker(&scratch);
    let client = Client::new(tracker.addr);
    let started = Instant::now();
    let register = |node_id: u32, cookie: u64| {
        client.send(&Message::Register(&wire::Register {
            auth: auth(node_id, 0),
            cookie: U64::new(cookie),
            holdings_digest: U64::new(0),
            ..bytemuck::Zeroable::zeroed()
        }));
    };
    // One cookie per address serves every id.
    register(1, 0);
    let cookie = match wire::decode(&client.receive()) {
        Ok(Message::Challenge(challenge)) => challenge.cookie.get(),
        other => panic!("expected a Challenge, got {other:?}"),
    };
    // In batches, so that the replies fit the test socket's receive buffer.
    for batch in (1..=IDS).collect::<Vec<_>>().chunks(100) {
        for &node_id in batch {
            register(node_id, cookie);
        }
        for _ in batch {
            let reply = client.receive();
            let Ok(Message::Registered(registered)) = wire::decode(&reply) else {
                panic!("expected Registered, got {:?}", wire::decode(&reply));
            };
            let (node_id, token) = (registered.auth.node_id.get(), registered.auth.token.get());
            // The token handed out is already on disk.
            let saved = torrent::tracker::db::load(&scratch.db())
                .expect("readable")
                .expect("saved before the reply");
            assert!(
                saved
                    .nodes
                    .iter()
                    .any(|n| n.node_id == node_id && n.token == format!("{token:016x}")),
                "node {node_id}'s token was handed out before it was saved"
            );
        }
    }
    tracker.proc.terminate();
    assert_eq!(tracker.proc.expect_exit(LINE_TIMEOUT), 0);
    let elapsed = started.elapsed();
    let log = std::fs::read_to_string(scratch.logs().join("_tracker.log")).expect("the log");
    let saves = log
        .lines()
        .filter(|l| l.contains("registry saved: "))
        .count();
    // One a second at most while registering, and the one at the stop.
    let allowed = elapsed.as_secs() as usize + 2;
    assert!(
        (1..=allowed).contains(&saves),
        "{saves} saves in {elapsed:?}\n{log}"
    );
}
