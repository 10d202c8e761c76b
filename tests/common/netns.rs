//! Network namespaces for the tests that need a real network (`tests/real_link.rs`): a
//! [`Netns`] guard that deletes its namespace on drop, veth links between namespaces, setup
//! commands run inside one (each bounded in time), the kernel's fragment counter, and the
//! real binary started inside one.
//!
//! Everything is made inside namespaces of the test's own, named after the process and the
//! test so that tests run in parallel: no link or address ever appears in the namespace the
//! test was started in, and nothing is sent anywhere else.

use super::{Proc, spawn_command};
use crossbeam_channel::RecvTimeoutError;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one setup command (`ip`, `nft`, `tc`, `ethtool`) may take: they return in
/// milliseconds, but a machine busy with other tests can be slow to start a process.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// Offloads turned off on every link, so that each packet crosses it wire-sized: a GSO run or
/// a GRO-merged packet would cross a veth as one large packet, which no real wire carries.
/// A kernel that lacks one of them has nothing to turn off, so failures are ignored.
const OFFLOADS: [&str; 6] = [
    "gso",
    "tso",
    "gro",
    "tx-udp-segmentation",
    "rx-gro-list",
    "rx-udp-gro-forwarding",
];

/// Why tests on namespaces cannot run here, if they cannot: they need root and these tools
/// (each asked for its version, the one call every one of them answers).
pub fn missing_requirement(tools: &[&str]) -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for tool in tools {
        let flag = if matches!(*tool, "ip" | "tc") {
            "-V"
        } else {
            "--version"
        };
        let mut command = Command::new(tool);
        command.arg(flag);
        if run_bounded(command, None).is_err() {
            return Some(format!("needs '{tool}'"));
        }
    }
    None
}

/// Runs `command` with `input` on its stdin, and returns its stdout; the error has its
/// stderr. The command is killed (by its PID) if it outlives [`COMMAND_TIMEOUT`].
pub fn run_bounded(mut command: Command, input: Option<&str>) -> Result<String, String> {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // Dropped at the end of this block: end of input.
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot write to {what}: {e}"))?;
    }
    // The pipes are read by threads so that the wait below has a deadline: each sends what
    // it read when its pipe closes, which is when the command exits.
    let (tx, rx) = crossbeam_channel::bounded(2);
    for (index, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        let mut pipe = pipe.expect("piped");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send((index, text));
        });
    }
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut outputs = [String::new(), String::new()];
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((index, text)) => outputs[index] = text,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish within {} s",
                    COMMAND_TIMEOUT.as_secs()
                ));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for {what}: {e}"))?;
    let [stdout, stderr] = outputs;
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!("{what} failed ({status}): {}", stderr.trim()))
    }
}

/// `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let mut command = Command::new("ip");
    command.args(args);
    run_bounded(command, None)
}

/// A network namespace of the test's own, deleted on drop. Declare it before the processes
/// started in it, so that they are killed first (a namespace lives on while a process is in
/// it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Makes namespace `name` with its loopback up.
    pub fn add(name: &str) -> Result<Netns, String> {
        ip(&["netns", "add", name])?;
        let netns = Netns {
            name: name.to_string(),
        };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut list = vec!["-n", &self.name];
        list.extend_from_slice(args);
        ip(&list)
    }

    /// Runs `argv` inside this namespace, `input` on its stdin; returns its stdout.
    pub fn run(&self, argv: &[&str], input: Option<&str>) -> Result<String, String> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(argv);
        run_bounded(command, input)
    }

    /// Loads an nftables ruleset (`nft -f -`) in this namespace.
    pub fn nft(&self, ruleset: &str) -> Result<(), String> {
        self.run(&["nft", "-f", "-"], Some(ruleset)).map(drop)
    }

    /// Turns this namespace's IPv4 forwarding on (a router).
    pub fn forward(&self) -> Result<(), String> {
        self.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], None)
            .map(drop)
    }

    /// `Ip: FragCreates` of this namespace's `/proc/net/snmp`: IP fragments the kernel made
    /// here, of datagrams sent from here or forwarded through here.
    pub fn frag_creates(&self) -> Result<u64, String> {
        let text = self.run(&["cat", "/proc/net/snmp"], None)?;
        frag_creates_in(&text).ok_or_else(|| format!("no Ip: FragCreates in {text}"))
    }

    /// Starts the real binary inside this namespace (`ip netns exec` execs it: the PID the
    /// harness kills is the binary's).
    pub fn spawn(&self, name: &str, cwd: &Path, args: &[String]) -> Proc {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_torrent")])
            .args(args);
        spawn_command(name, cwd, command)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(error) = ip(&["netns", "del", &self.name]) {
            eprintln!("could not delete namespace {}: {error}", self.name);
        }
    }
}

/// The `FragCreates` field of `/proc/net/snmp`'s two `Ip:` lines (names, then values).
pub fn frag_creates_in(snmp: &str) -> Option<u64> {
    let mut rows = snmp.lines().filter(|line| line.starts_with("Ip:"));
    let (names, values) = (rows.next()?, rows.next()?);
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "FragCreates")
        .and_then(|(_, value)| value.parse().ok())
}

/// A veth pair `a_dev` in `a` and `b_dev` in `b`, both up at `mtu` bytes with offloads off.
/// Made inside `a` with its peer moved straight to `b`: the pair never appears in the
/// namespace the test was started in.
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str, mtu: u32) -> Result<(), String> {
    a.ip(&[
        "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", &b.name,
    ])?;
    let mtu = mtu.to_string();
    for (netns, dev) in [(a, a_dev), (b, b_dev)] {
        netns.ip(&["link", "set", dev, "mtu", &mtu, "up"])?;
        for feature in OFFLOADS {
            let _ = netns.run(&["ethtool", "-K", dev, feature, "off"], None);
        }
    }
    Ok(())
}
