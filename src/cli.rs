//! The command line: `torrent tracker ...`, `torrent node ...`, `torrent demo ...`.
//!
//! Parsed with getopts in long-only mode, so the original's single-dash spelling
//! (`torrent node -node_id 1`) works beside `--id 1`. Every constant of the original's
//! `configs.py` has a flag. A bad flag or value is a [`UsageError`]: one line, exit code 2.

use crate::console;
use crate::impair::ImpairConfig;
use crate::logging;
use crate::node::{NodeConfig, PaceMode};
use crate::tracker::TrackerConfig;
use crate::wire;
use getopts::{Matches, Options, ParsingStyle};
mod config;
mod ctl;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A command line that cannot be run; `main` prints it and exits with code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    Help(String),
    Version,
    Tracker(TrackerArgs),
    Node(NodeArgs),
    Demo(DemoArgs),
    Ctl(crate::control::CtlArgs),
}

#[derive(Debug, Clone)]
pub struct TrackerArgs {
    pub listen: SocketAddr,
    pub db_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The log is moved to `_tracker.log.1` when it reaches this size.
    pub log_bytes_max: u64,
    pub expiry: Duration,
    pub heartbeat_interval: Duration,
    /// Told to standard BitTorrent (BEP 15) clients.
    pub announce_interval: Duration,
    pub log_level: log::LevelFilter,
    pub impair: Option<ImpairConfig>,
    /// `--metrics ADDR`: where to serve Prometheus metrics.
    pub metrics: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct NodeArgs {
    pub node_id: u32,
    pub tracker: SocketAddr,
    /// `--tracker udp://...`: a standard BitTorrent tracker (BEP 15), not ours.
    pub standard_tracker: bool,
    pub dir: PathBuf,
    pub log_dir: PathBuf,
    /// The log is moved to `node<N>.log.1` when it reaches this size.
    pub log_bytes_max: u64,
    /// `None`: the local address that routes to the tracker (see `reactor::listen_toward`).
    pub listen: Option<SocketAddr>,
    /// `--advertise ADDR[:PORT]`: what trackers are asked to give peers (see [`Advertise`]).
    pub advertise: Option<Advertise>,
    pub send: Vec<String>,
    /// Names whose standard `.torrent` is written once the file is held.
    pub export: Vec<String>,
    /// What to download: [`console::Command::Download`] (a name, maybe pinned),
    /// [`console::Command::DownloadByHash`] or [`console::Command::DownloadTorrent`].
    pub download: Vec<console::Command>,
    pub exit_when_done: bool,
    pub give_up_after: Duration,
    pub peers: usize,
    pub piece_bytes: u32,
    pub chunk_bytes: u32,
    pub heartbeat_interval: Duration,
    pub socket_buffer_bytes: usize,
    pub max_upload_bytes_per_s: Option<u64>,
    pub max_download_bytes_per_s: Option<u64>,
    /// Which peers downloads ask for a pace (`--pace`).
    pub pace: PaceMode,
    pub log_level: log::LevelFilter,
    pub progress: bool,
    /// `--json`: stdout carries one JSON object per line, for each event (see
    /// `node/events.rs`), and no progress bars.
    pub json: bool,
    pub impair: Option<ImpairConfig>,
    /// `--metrics ADDR`: where to serve Prometheus metrics.
    pub metrics: Option<SocketAddr>,
}

/// `--advertise ADDR[:PORT]`: the address (and port) trackers are asked to give peers for
/// this node, instead of the one they see its datagrams come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertise {
    pub ip: IpAddr,
    /// `None`: the port the node's socket is bound to.
    pub port: Option<u16>,
}

impl Advertise {
    /// The address, with the bound port when none was given.
    pub fn addr(&self, bound_port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(bound_port))
    }
}

#[derive(Debug, Clone)]
pub struct DemoArgs {
    pub size_bytes: u64,
    pub nodes: u32,
    pub holders: u32,
    pub dir: PathBuf,
    pub piece_bytes: Option<u32>,
}

/// The end of `torrent node --help`.
pub const NODE_EXIT_CODES: &str = "\
exit codes:
  0  with --exit-when-done: every --download verified and published, every --send
     hashed, every --export written. Without it: stopped by 'exit', SIGTERM or SIGINT
     (downloads cut short are listed, with what of them is kept)
  1  with --exit-when-done: a download, send or export failed or was refused, or the
     node was stopped ('exit', SIGTERM, SIGINT) before all were done; a line says
     which. Either way: the node could not start (its directory, socket or log)
  2  a bad command line (a flag, a value, a directory flag naming a file, a tracker
     at port 0): one line says what is wrong
";

pub const USAGE: &str = "\
torrent: peer-to-peer file distribution over UDP (a tracker and many nodes)

usage:
  torrent demo [options]      a local swarm: tracker and nodes on loopback, verified
  torrent tracker [options]   run the tracker
  torrent node --id N [options]
                              run a node; commands on stdin (type 'help')
  torrent ctl --dir DIR COMMAND
                              drive a running node through its control socket
  torrent <command> --help    the options of a command
  torrent --version
";

/// Parses the whole command line (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, UsageError> {
    let Some((command, rest)) = args.split_first() else {
        // Nothing to do is a usage error, as for a tool run by scripts: a wrapper that lost
        // its arguments must not look as though it succeeded.
        return Err(UsageError(format!("no command given\n\n{USAGE}")));
    };
    match command.as_str() {
        "-h" | "--help" | "help" | "-help" => Ok(Invocation::Help(USAGE.to_string())),
        "-V" | "--version" | "-version" => Ok(Invocation::Version),
        "tracker" => parse_tracker(rest),
        "node" => parse_node(rest),
        "demo" => parse_demo(rest),
        "ctl" => ctl::parse_ctl(rest),
        other => Err(UsageError(format!(
            "unknown command '{other}'{}; expected tracker, node, ctl or demo (see torrent --help)",
            did_you_mean(other, &["tracker", "node", "ctl", "demo"])
                .map_or(String::new(), |known| format!(" (did you mean '{known}'?)"))
        ))),
    }
}

fn options() -> Options {
    let mut opts = Options::new();
    opts.parsing_style(ParsingStyle::StopAtFirstFree)
        .long_only(true);
    opts.optflag("h", "help", "print this help");
    opts
}

/// Parses `args`, refusing words that are not options.
fn matches(opts: &Options, args: &[String]) -> Result<Matches, UsageError> {
    let matches = options_and_words(opts, args)?;
    if let Some(free) = matches.free.first() {
        return Err(UsageError(format!("unexpected argument '{free}'")));
    }
    Ok(matches)
}

/// Parses `args`; an unknown option's error names the closest known one.
fn options_and_words(opts: &Options, args: &[String]) -> Result<Matches, UsageError> {
    opts.parse(args).map_err(|error| {
        let hint = match &error {
            getopts::Fail::UnrecognizedOption(name) => {
                let names = option_names(opts);
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                did_you_mean(name.trim_start_matches('-'), &names)
                    .map_or(String::new(), |known| format!(" (did you mean --{known}?)"))
            }
            _ => String::new(),
        };
        UsageError(format!("{error}{hint}"))
    })
}

/// The long names of `opts`' options, read from its usage text (getopts keeps its list
/// private): the lines that start with an option, up to the column of descriptions.
fn option_names(opts: &Options) -> Vec<String> {
    let usage = opts.usage("");
    let mut names = Vec::new();
    for line in usage.lines() {
        let option = line.trim_start();
        if !option.starts_with('-') || line.len() - option.len() > 8 {
            continue;
        }
        let column = &option[..option.find("  ").unwrap_or(option.len())];
        for name in column.split(", ") {
            let name = name
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_start_matches('-');
            if name.len() > 1 {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// The known word closest to `typed`, when it is close enough to be what was meant: at most
/// a third of its letters wrong (one for short words).
fn did_you_mean<'a>(typed: &str, known: &[&'a str]) -> Option<&'a str> {
    let allowed = (typed.chars().count() / 3).max(1);
    known
        .iter()
        .map(|&word| (edit_distance(typed, word), word))
        .filter(|&(distance, _)| distance <= allowed)
        .min()
        .map(|(_, word)| word)
}

/// Levenshtein distance: insertions, deletions and substitutions of one character.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn help(opts: &Options, brief: &str) -> Invocation {
    Invocation::Help(double_dash(&opts.usage(brief)))
}

/// getopts in long-only mode lists long options with one dash (`-id N`); both spellings
/// work, and the help shows the usual one (`--id N`), as every other text here does.
fn double_dash(usage: &str) -> String {
    let mut out = String::with_capacity(usage.len() + 64);
    for line in usage.lines() {
        let option = line.trim_start();
        let indent = line.len() - option.len();
        // Option lines are indented by 4 or 8; wrapped descriptions by more.
        if !option.starts_with('-') || indent > 8 {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // The option column ends at the first run of two spaces; the description follows.
        let (column, rest) = option.split_at(option.find("  ").unwrap_or(option.len()));
        let names: Vec<String> = column
            .split(", ")
            .map(|name| {
                if name.starts_with("--") || name.trim_end().len() <= 2 {
                    name.to_string()
                } else {
                    format!("-{name}")
                }
            })
            .collect();
        // Keep the descriptions aligned: in their column, or on the next line when the
        // longer option leaves no room (as getopts does for long options).
        let description = rest.trim_start();
        let description_column = line.len() - description.len();
        let names = names.join(", ");
        out.push_str(&line[..indent]);
        out.push_str(&names);
        if !description.is_empty() {
            if indent + names.len() + 2 > description_column {
                out.push('\n');
                out.push_str(&" ".repeat(description_column));
            } else {
                out.push_str(&" ".repeat(description_column - indent - names.len()));
            }
            out.push_str(description);
        } else {
            out.push_str(rest);
        }
        out.push('\n');
    }
    out
}

fn parse_tracker(args: &[String]) -> Result<Invocation, UsageError> {
    let tracker_defaults = TrackerConfig::default();
    let mut opts = options();
    opts.optopt(
        "",
        "listen",
        &format!("address to listen on (default {TRACKER_ADDRESS_DEFAULT}; port 0 picks one)"),
        "ADDR",
    );
    opts.optopt(
        "",
        "db-dir",
        "where the registry is saved (default tracker_db)",
        "DIR",
    );
    opts.optopt(
        "",
        "log-dir",
        "where _tracker.log goes (default logs)",
        "DIR",
    );
    opts.optopt("", "log-size", &log_size_help(), "BYTES");
    opts.optopt(
        "",
        "expiry",
        &format!(
            "forget a node silent this long, seconds (default {})",
            tracker_defaults.expiry.as_secs()
        ),
        "SECS",
    );
    opts.optopt(
        "",
        "heartbeat-interval",
        &format!(
            "heartbeat interval told to nodes, seconds (default {})",
            tracker_defaults.heartbeat_interval.as_secs()
        ),
        "SECS",
    );
    opts.optopt(
        "",
        "announce-interval",
        &format!(
            "announce interval told to standard BitTorrent clients, seconds (default {})",
            tracker_defaults.announce_interval.as_secs()
        ),
        "SECS",
    );
    opts.optopt(
        "",
        "log-level",
        "error, warn, info, debug or trace (default info)",
        "LEVEL",
    );
    opts.optopt("", "impair", "test faults: drop, duplicate, reorder received datagrams, e.g. loss=0.05,duplicate=0.01,reorder=0.02,delay-ms=20,seed=1", "SPEC");
    metrics_option(&mut opts);
    let args = &config::with_config(&mut opts, args)?;
    let m = matches(&opts, args)?;
    if m.opt_present("help") {
        return Ok(help(&opts, "usage: torrent tracker [options]"));
    }
    Ok(Invocation::Tracker(TrackerArgs {
        listen: address(&m, "listen", TRACKER_ADDRESS_DEFAULT)?,
        db_dir: directory(&m, "db-dir", "tracker_db")?,
        log_dir: directory(&m, "log-dir", "logs")?,
        log_bytes_max: log_size(&m)?,
        expiry: seconds(&m, "expiry", tracker_defaults.expiry)?,
        heartbeat_interval: seconds(
            &m,
            "heartbeat-interval",
            tracker_defaults.heartbeat_interval,
        )?,
        announce_interval: seconds(&m, "announce-interval", tracker_defaults.announce_interval)?,
        log_level: log_level(&m)?,
        impair: impair(&m)?,
        metrics: metrics_address(&m)?,
    }))
}

fn parse_node(args: &[String]) -> Result<Invocation, UsageError> {
    let node_defaults = NodeConfig::new(0, SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut opts = options();
    opts.optopt(
        "",
        "id",
        "this node's id (also -node_id, the original's spelling)",
        "N",
    );
    opts.optopt("", "node_id", "same as --id", "N");
    opts.optopt(
        "",
        "tracker",
        &format!("our tracker at HOST:PORT (default {TRACKER_ADDRESS_DEFAULT}), or a standard BitTorrent tracker at udp://HOST:PORT (BEP 15: opentracker, aquatic_udp; files are then found by info hash, and there is no credit, exit or ranking)"),
        "ADDR",
    );
    opts.optopt(
        "",
        "dir",
        "this node's files (default FILES-DIR/node<N>)",
        "DIR",
    );
    opts.optopt(
        "",
        "files-dir",
        "parent of node directories (default node_files)",
        "DIR",
    );
    opts.optopt(
        "",
        "log-dir",
        "where node<N>.log goes (default logs)",
        "DIR",
    );
    opts.optopt("", "log-size", &log_size_help(), "BYTES");
    opts.optopt(
        "",
        "listen",
        "address to listen on (default: the local address that routes to the tracker, any free port; 127.0.0.1 for a tracker on loopback)",
        "ADDR",
    );
    opts.optopt(
        "",
        "advertise",
        "the address (and port; default the one listened on) trackers give peers for this node, instead of the one they see it at: a NAT's outer address with a port forward, or another interface of a multi-homed host. Our tracker gives it out once a challenge sent there reaches this node (or when it is the address the tracker sees, another port); a standard tracker is told the port (and the IPv4 address, which most ignore)",
        "ADDR[:PORT]",
    );
    opts.optmulti(
        "",
        "send",
        "share FILE from the node's directory, or a file or directory where it is (a path with a '/': shared in place, and again on the next start) (repeatable)",
        "FILE",
    );
    opts.optmulti(
        "",
        "export",
        "write FILE.torrent (standard BitTorrent) once FILE is shared or held (repeatable)",
        "FILE",
    );
    opts.optmulti(
        "",
        "download",
        "download FILE, or FILE@INFOHASH to pin a version; or X.torrent, a 40-hex info hash or a magnet link (by info hash: for a udp:// tracker) (repeatable)",
        "FILE",
    );
    opts.optopt(
        "",
        "output",
        "publish every --download in DIR (created if missing) instead of the node's directory; their partial data is kept there too",
        "DIR",
    );
    opts.optflag(
        "",
        "exit-when-done",
        "exit 0 once every --download is verified and every --send and --export done; 1 as soon as one fails, or when stopped before (see exit codes below)",
    );
    opts.optopt(
        "",
        "give-up-after",
        &format!(
            "fail a download with no usable holder for this long, seconds (default {})",
            node_defaults.give_up_after.as_secs()
        ),
        "SECS",
    );
    opts.optopt(
        "",
        "peers",
        &format!(
            "holders to download from at once (default {})",
            node_defaults.peers_max
        ),
        "N",
    );
    opts.optopt("", "piece-size", &format!("data bytes per datagram at most (default {}, the most one IPv4 datagram holds; toward a peer across a network, what the path carries)", node_defaults.piece_bytes), "BYTES");
    opts.optopt(
        "",
        "chunk-size",
        &format!(
            "chunk size for shared files, a power of two, {} to {} (default {})",
            show_bytes(wire::CHUNK_BYTES_MIN.into()),
            show_bytes(wire::CHUNK_BYTES_MAX.into()),
            show_bytes(node_defaults.chunk_bytes.into())
        ),
        "BYTES",
    );
    opts.optopt(
        "",
        "heartbeat-interval",
        &format!(
            "seconds between heartbeats to the tracker (default {})",
            node_defaults.heartbeat_interval.as_secs()
        ),
        "SECS",
    );
    opts.optopt(
        "",
        "socket-buffer",
        &format!(
            "socket buffer to ask the kernel for (default {})",
            show_bytes(SOCKET_BUFFER_BYTES_DEFAULT)
        ),
        "BYTES",
    );
    opts.optopt(
        "",
        "max-upload-rate",
        "upload budget for the node, bytes/s, K/M/G = 2^10/2^20/2^30 (default unlimited)",
        "RATE",
    );
    opts.optopt(
        "",
        "max-download-rate",
        "download budget for the node (the pieces its downloads ask for), bytes/s, K/M/G = 2^10/2^20/2^30 (default unlimited)",
        "RATE",
    );
    opts.optopt(
        "",
        "pace",
        "ask peers to pace their pieces at the rate that reaches us, measured as BBR does: net (default: peers across a network, not on loopback), all, off",
        "WHICH",
    );
    opts.optopt(
        "",
        "log-level",
        "error, warn, info, debug or trace (default info; debug logs pieces)",
        "LEVEL",
    );
    opts.optflag(
        "",
        "progress",
        "print a progress line every second when stdout is not a terminal (on a terminal: a bar per download)",
    );
    opts.optflag(
        "",
        "json",
        "print each event as one JSON object per line (sharing, progress every second, downloaded, failed, peer_dropped, message, output), versioned; nothing else on stdout",
    );
    opts.optopt("", "impair", "test faults: drop, duplicate, reorder received datagrams, e.g. loss=0.05,duplicate=0.01,reorder=0.02,delay-ms=20,seed=1", "SPEC");
    metrics_option(&mut opts);
    let args = &config::with_config(&mut opts, args)?;
    let m = matches(&opts, args)?;
    if m.opt_present("help") {
        let text = double_dash(&opts.usage("usage: torrent node --id N [options]"));
        return Ok(Invocation::Help(format!("{text}\n{NODE_EXIT_CODES}")));
    }
    let id_text = m
        .opt_str("id")
        .or_else(|| m.opt_str("node_id"))
        .ok_or_else(|| UsageError("missing --id N (the node's id)".into()))?;
    let node_id = whole_number("id", &id_text, 0, u64::from(u32::MAX))? as u32;
    let files_dir = directory(&m, "files-dir", "node_files")?;
    let mut send = Vec::new();
    for name in m.opt_strs("send") {
        // A path (with a '/') is shared where it is; the node checks its name.
        if let Some(problem) = wire::name_problem(name.as_bytes()).filter(|_| !name.contains('/')) {
            return Err(UsageError(format!("--send {name:?}: {problem}")));
        }
        send.push(name);
    }
    let mut export = Vec::new();
    for name in m.opt_strs("export") {
        if let Some(problem) = wire::name_problem(name.as_bytes()) {
            return Err(UsageError(format!("--export {name:?}: {problem}")));
        }
        export.push(name);
    }
    let mut download = Vec::new();
    for spec in m.opt_strs("download") {
        download.push(
            console::parse_download(&spec)
                .map_err(|e| UsageError(format!("--download {spec:?}: {e}")))?,
        );
    }
    if let Some(output) = m.opt_str("output") {
        if download.is_empty() {
            return Err(UsageError("--output goes with --download".into()));
        }
        if output.is_empty() {
            return Err(UsageError("--output: an empty directory name".into()));
        }
        download = download
            .into_iter()
            .map(|command| console::Command::DownloadTo {
                download: Box::new(command),
                output: output.clone(),
            })
            .collect();
    }
    let (tracker, standard_tracker) = match m.opt_str("tracker") {
        Some(text) => tracker_address(&text).map_err(|e| UsageError(format!("--tracker: {e}")))?,
        None => match torrent_tracker(&download) {
            Some((path, url)) => tracker_address(&url).map_err(|e| {
                UsageError(format!(
                    "the tracker of {path}, {url}, cannot be used ({e}); give --tracker"
                ))
            })?,
            None => (resolve("tracker", TRACKER_ADDRESS_DEFAULT)?, false),
        },
    };
    let piece_bytes = piece_size(&m, wire::PIECE_BYTES_MAX as u64)?;
    let chunk_bytes = bytes(
        &m,
        "chunk-size",
        u64::from(crate::storage::CHUNK_BYTES_DEFAULT),
        u64::from(wire::CHUNK_BYTES_MIN),
        u64::from(wire::CHUNK_BYTES_MAX),
    )?;
    if !chunk_bytes.is_power_of_two() {
        return Err(UsageError(
            "--chunk-size: must be a power of two from 16K to 64M".into(),
        ));
    }
    let peers = count(&m, "peers", node_defaults.peers_max)?;
    let advertise = match m.opt_str("advertise") {
        Some(text) => Some(
            advertise_address(&text, tracker)
                .map_err(|e| UsageError(format!("--advertise: {e}")))?,
        ),
        None => None,
    };
    Ok(Invocation::Node(NodeArgs {
        node_id,
        tracker,
        standard_tracker,
        dir: match m.opt_str("dir") {
            Some(_) => directory(&m, "dir", "")?,
            None => {
                let dir = files_dir.join(format!("node{node_id}"));
                not_a_file("files-dir", &dir)?;
                dir
            }
        },
        log_dir: directory(&m, "log-dir", "logs")?,
        log_bytes_max: log_size(&m)?,
        listen: match m.opt_str("listen") {
            Some(_) => Some(address(&m, "listen", "")?),
            None => None,
        },
        advertise,
        send,
        export,
        download,
        exit_when_done: m.opt_present("exit-when-done"),
        give_up_after: seconds(&m, "give-up-after", node_defaults.give_up_after)?,
        peers,
        piece_bytes,
        chunk_bytes: chunk_bytes as u32,
        heartbeat_interval: seconds(&m, "heartbeat-interval", node_defaults.heartbeat_interval)?,
        socket_buffer_bytes: bytes(
            &m,
            "socket-buffer",
            SOCKET_BUFFER_BYTES_DEFAULT,
            1,
            SOCKET_BUFFER_BYTES_MAX,
        )? as usize,
        max_upload_bytes_per_s: rate_option(&m, "max-upload-rate")?,
        max_download_bytes_per_s: rate_option(&m, "max-download-rate")?,
        pace: match m.opt_str("pace").as_deref() {
            None | Some("net") => PaceMode::OffLoopback,
            Some("all") => PaceMode::Always,
            Some("off") => PaceMode::Off,
            Some(other) => {
                return Err(UsageError(format!(
                    "--pace: '{other}' is not one of net, all, off"
                )));
            }
        },
        log_level: log_level(&m)?,
        progress: m.opt_present("progress"),
        json: m.opt_present("json"),
        impair: impair(&m)?,
        metrics: metrics_address(&m)?,
    }))
}

fn parse_demo(args: &[String]) -> Result<Invocation, UsageError> {
    let mut opts = options();
    opts.optopt(
        "",
        "size",
        "size of the generated file, bytes, K/M/G suffixes (default 64M)",
        "BYTES",
    );
    opts.optopt(
        "",
        "nodes",
        "number of nodes, holders included (default 4)",
        "N",
    );
    opts.optopt(
        "",
        "holders",
        "nodes that share the file at the start (default 2)",
        "N",
    );
    opts.optopt(
        "",
        "dir",
        "working directory for files and logs (default demo-run)",
        "DIR",
    );
    opts.optopt(
        "",
        "piece-size",
        "data bytes per datagram (default: the node's)",
        "BYTES",
    );
    let m = matches(&opts, args)?;
    if m.opt_present("help") {
        return Ok(help(&opts, "usage: torrent demo [options]"));
    }
    let nodes = count(&m, "nodes", 4)? as u32;
    let holders = count(&m, "holders", 2)? as u32;
    if holders >= nodes || nodes > 64 {
        return Err(UsageError(
            "--holders must be less than --nodes, and --nodes at most 64".into(),
        ));
    }
    let piece_bytes = match m.opt_str("piece-size") {
        None => None,
        Some(_) => Some(piece_size(&m, 0)?),
    };
    Ok(Invocation::Demo(DemoArgs {
        size_bytes: bytes(&m, "size", 64 << 20, 1, DEMO_BYTES_MAX)?,
        nodes,
        holders,
        dir: directory(&m, "dir", "demo-run")?,
        piece_bytes,
    }))
}

/// `--tracker`: `udp://HOST:PORT[/path]` is a standard BitTorrent tracker (BEP 15), plain
/// `HOST:PORT` is ours. (Our tracker answers BEP 15 too, so `udp://` may point at it, as
/// a standard one.) Returns the address and whether it is standard.
fn tracker_address(text: &str) -> Result<(SocketAddr, bool), String> {
    match text.split_once("://") {
        None => Ok((reachable(text, resolve_text(text)?)?, false)),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("udp") => {
            // `udp://HOST:PORT/announce`, as in a .torrent: the path means nothing in BEP 15.
            let host_port = rest.split('/').next().unwrap_or_default();
            if host_port.is_empty() {
                return Err(format!("'{text}' has no HOST:PORT after udp://"));
            }
            Ok((reachable(text, resolve_text(host_port)?)?, true))
        }
        Some((scheme, _)) => Err(format!(
            "'{text}': only udp:// trackers (BEP 15) are supported, not {scheme}://; plain HOST:PORT is our own tracker"
        )),
    }
}

/// A tracker's address must name one host and port: port 0 and the unspecified address
/// (`0.0.0.0`, `::`) are fine to listen on, but nothing answers there, and a node would ask
/// forever.
fn reachable(text: &str, addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() == 0 {
        return Err(format!(
            "'{text}' has port 0, which no tracker listens on; give the tracker's port"
        ));
    }
    if addr.ip().is_unspecified() {
        return Err(format!(
            "'{text}' is the unspecified address {}, which names no host; give the tracker's address",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// `--advertise ADDR[:PORT]`: an IP address or host name, with or without a port (an IPv6
/// address with a port in brackets). It must name one host that peers of `tracker` can
/// send to: not the unspecified address, not multicast or broadcast, not port 0, and of the
/// tracker's address family (peers reach us the way they reach the tracker).
fn advertise_address(text: &str, tracker: SocketAddr) -> Result<Advertise, String> {
    let advertise = if let Ok(addr) = text.parse::<SocketAddr>() {
        Advertise {
            ip: addr.ip(),
            port: Some(addr.port()),
        }
    } else if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        Advertise { ip, port: None }
    } else {
        // A host name, with a port after its last colon or without one.
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("'{text}': port {port} is not one of 1 to 65535"))?;
                (host, Some(port))
            }
            _ => (text, None),
        };
        let mut addrs: Vec<SocketAddr> = (host, port.unwrap_or(0))
            .to_socket_addrs()
            .map_err(|error| format!("cannot use '{text}': {error}"))?
            .collect();
        // Prefer the tracker's family, as peers reach us the way they reach it.
        addrs.sort_by_key(|addr| addr.is_ipv4() != tracker.is_ipv4());
        let addr = addrs
            .first()
            .ok_or_else(|| format!("'{text}' resolves to no address"))?;
        Advertise {
            ip: addr.ip(),
            port,
        }
    };
    let ip = advertise.ip;
    if advertise.port == Some(0) {
        return Err(format!(
            "'{text}' has port 0, which peers cannot send to; give the port peers should use, or none for the one listened on"
        ));
    }
    if ip.is_unspecified() {
        return Err(format!(
            "'{text}' is the unspecified address {ip}, which names no host; give the address peers should send to"
        ));
    }
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_multicast() || broadcast {
        return Err(format!(
            "'{text}' is a {} address, not one host's",
            if broadcast { "broadcast" } else { "multicast" }
        ));
    }
    if ip.to_canonical().is_ipv4() != tracker.ip().to_canonical().is_ipv4() {
        return Err(format!(
            "'{text}' is an {} address but the tracker ({tracker}) is {}: peers reach this node the way they reach the tracker",
            if ip.is_ipv4() { "IPv4" } else { "IPv6" },
            if tracker.is_ipv4() { "IPv4" } else { "IPv6" },
        ));
    }
    Ok(advertise)
}

/// Without `--tracker`, the first `--download X.torrent` whose `announce` is a `udp://` URL
/// names the tracker (a standard one): its path and that URL. Unreadable files are left to
/// the node, which says why when it starts the download.
fn torrent_tracker(downloads: &[console::Command]) -> Option<(String, String)> {
    downloads.iter().find_map(|download| {
        let download = match download {
            console::Command::DownloadTo { download, .. } => download,
            other => other,
        };
        let console::Command::DownloadTorrent { path } = download else {
            return None;
        };
        let bytes = std::fs::read(path).ok()?;
        let url = crate::metainfo::parse_torrent(&bytes).ok()?.announce?;
        let scheme = url.split_once("://")?.0;
        scheme
            .eq_ignore_ascii_case("udp")
            .then(|| (path.clone(), url))
    })
}

/// `--piece-size`: from [`wire::PIECE_BYTES_MIN`] (peers refuse smaller pieces) to
/// [`wire::PIECE_BYTES_MAX`] (one IPv4 datagram).
fn piece_size(m: &Matches, default: u64) -> Result<u32, UsageError> {
    bytes(
        m,
        "piece-size",
        default,
        wire::PIECE_BYTES_MIN as u64,
        wire::PIECE_BYTES_MAX as u64,
    )
    .map(|n| n as u32)
}

fn log_size_help() -> String {
    format!(
        "move the log to LOG.1 (replacing the last one) when it reaches this size (default {})",
        show_bytes(logging::LOG_BYTES_MAX)
    )
}

/// `--log-size`: from [`logging::LOG_BYTES_MIN`] to any size.
fn log_size(m: &Matches) -> Result<u64, UsageError> {
    bytes(
        m,
        "log-size",
        logging::LOG_BYTES_MAX,
        logging::LOG_BYTES_MIN,
        u64::MAX >> 1,
    )
}

/// A directory flag (`--log-dir`, `--dir`, ...): made later if missing, but a path that is
/// (or lies under) a file is refused now, in words, rather than as "File exists".
fn directory(m: &Matches, name: &str, default: &str) -> Result<PathBuf, UsageError> {
    let path = PathBuf::from(m.opt_str(name).unwrap_or_else(|| default.to_string()));
    not_a_file(name, &path)?;
    Ok(path)
}

/// Refuses `path` when it, or the nearest part of it that exists, is not a directory.
fn not_a_file(name: &str, path: &Path) -> Result<(), UsageError> {
    let existing = path
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && std::fs::metadata(p).is_ok());
    let Some(existing) = existing else {
        return Ok(());
    };
    if std::fs::metadata(existing).is_ok_and(|meta| meta.is_dir()) {
        return Ok(());
    }
    if existing == path {
        Err(UsageError(format!(
            "--{name} {} is a file, not a directory",
            path.display()
        )))
    } else {
        Err(UsageError(format!(
            "--{name} {}: {} is a file, not a directory",
            path.display(),
            existing.display()
        )))
    }
}

fn address(m: &Matches, name: &str, default: &str) -> Result<SocketAddr, UsageError> {
    let text = m.opt_str(name).unwrap_or_else(|| default.to_string());
    resolve(name, &text)
}

/// Resolves `HOST:PORT` for option `--name`, preferring IPv4.
fn resolve(name: &str, text: &str) -> Result<SocketAddr, UsageError> {
    resolve_text(text).map_err(|e| UsageError(format!("--{name}: {e}")))
}

fn resolve_text(text: &str) -> Result<SocketAddr, String> {
    let mut addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("cannot use '{text}': {error}"))?
        .collect();
    // Prefer IPv4: "localhost" resolves to both, and the original's tracker is IPv4.
    addrs.sort_by_key(|addr| !addr.is_ipv4());
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

/// Where our tracker listens, and where a node looks for it, unless told otherwise (the
/// original's `TRACKER_ADDR`). The other defaults are the configurations' own
/// ([`TrackerConfig::default`], [`NodeConfig::new`]), so that each is written once.
pub const TRACKER_ADDRESS_DEFAULT: &str = "127.0.0.1:12345";
/// The socket buffer asked of the kernel (the original's `BUFFER_SIZE`); the log says when the
/// kernel grants less.
pub const SOCKET_BUFFER_BYTES_DEFAULT: u64 = 4 << 20;
/// Longest duration a flag takes, in seconds (about four months).
pub const SECONDS_MAX: f64 = 1e7;
/// Shortest duration a flag takes, in seconds: shorter timers would only spin the loop.
pub const SECONDS_MIN: f64 = 0.001;
/// Most holders (`--peers`), demo nodes and the like a count flag takes.
pub const COUNT_MAX: usize = 1024;
/// Largest socket buffer asked of the kernel.
pub const SOCKET_BUFFER_BYTES_MAX: u64 = 1 << 30;
/// Largest file `torrent demo` makes.
pub const DEMO_BYTES_MAX: u64 = 1 << 40;

fn seconds(m: &Matches, name: &str, default: Duration) -> Result<Duration, UsageError> {
    let Some(text) = m.opt_str(name) else {
        return Ok(default);
    };
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > SECONDS_MAX => Err(UsageError(format!(
            "--{name}: '{text}' is too large: at most {SECONDS_MAX:.0} seconds"
        ))),
        Ok(s) if s.is_finite() && s > 0.0 && s < SECONDS_MIN => Err(UsageError(format!(
            "--{name}: '{text}' is too small: at least {SECONDS_MIN} seconds"
        ))),
        Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(UsageError(format!(
            "--{name}: '{text}' is not a positive number of seconds"
        ))),
    }
}

/// A whole number from `min` to `max` for `--name`, or a line that says which bound it
/// missed ("too large: at most N"), or that it is no number.
fn whole_number(name: &str, text: &str, min: u64, max: u64) -> Result<u64, UsageError> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UsageError(format!(
            "--{name}: '{text}' is not a whole number from {min} to {max}"
        )));
    }
    match digits.parse::<u64>() {
        Ok(n) if n > max => Err(UsageError(format!(
            "--{name}: '{text}' is too large: at most {max}"
        ))),
        Ok(n) if n < min => Err(UsageError(format!(
            "--{name}: '{text}' is too small: at least {min}"
        ))),
        Ok(n) => Ok(n),
        // Only digits, yet no u64: it overflowed.
        Err(_) => Err(UsageError(format!(
            "--{name}: '{text}' is too large: at most {max}"
        ))),
    }
}

fn count(m: &Matches, name: &str, default: usize) -> Result<usize, UsageError> {
    let Some(text) = m.opt_str(name) else {
        return Ok(default);
    };
    whole_number(name, &text, 1, COUNT_MAX as u64).map(|n| n as usize)
}

/// A size for `--name` (`1400`, `64K`, `1M`), from `min` to `max` bytes.
fn bytes(m: &Matches, name: &str, default: u64, min: u64, max: u64) -> Result<u64, UsageError> {
    let Some(text) = m.opt_str(name) else {
        return Ok(default);
    };
    size(name, &text, min, max)
}

fn size(name: &str, text: &str, min: u64, max: u64) -> Result<u64, UsageError> {
    match parse_size(text) {
        Size::Bytes(n) if n > max => Err(UsageError(format!(
            "--{name}: '{text}' is too large: at most {}",
            show_bytes(max)
        ))),
        Size::Bytes(n) if n < min => Err(UsageError(format!(
            "--{name}: '{text}' is too small: at least {}",
            show_bytes(min)
        ))),
        Size::Bytes(n) => Ok(n),
        Size::Overflow => Err(UsageError(format!(
            "--{name}: '{text}' is too large: at most {}",
            show_bytes(max)
        ))),
        Size::Unreadable => Err(UsageError(format!(
            "--{name}: '{text}' is not a size like 1400, 64K or 1M"
        ))),
    }
}

/// `65536` as `64K`, `1048576` as `1M`, others as they are.
fn show_bytes(n: u64) -> String {
    for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", n >> shift);
        }
    }
    n.to_string()
}

enum Size {
    Bytes(u64),
    Overflow,
    Unreadable,
}

fn parse_size(text: &str) -> Size {
    let text = text.trim();
    let Some((last_index, last)) = text.char_indices().last() else {
        return Size::Unreadable;
    };
    let (digits, shift) = match last {
        'k' | 'K' => (&text[..last_index], 10),
        'm' | 'M' => (&text[..last_index], 20),
        'g' | 'G' => (&text[..last_index], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Size::Unreadable;
    }
    match digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
    {
        Some(n) => Size::Bytes(n),
        None => Size::Overflow,
    }
}

/// `1400`, `64K`, `1M`, `2G` (powers of 2^10).
pub fn parse_bytes(text: &str) -> Option<u64> {
    match parse_size(text) {
        Size::Bytes(n) => Some(n),
        Size::Overflow | Size::Unreadable => None,
    }
}

/// `--metrics ADDR`, on the tracker and the node alike.
fn metrics_option(opts: &mut Options) {
    opts.optopt(
        "",
        "metrics",
        "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100; port 0 picks one)",
        "ADDR",
    );
}

fn metrics_address(m: &Matches) -> Result<Option<SocketAddr>, UsageError> {
    match m.opt_str("metrics") {
        Some(_) => address(m, "metrics", "").map(Some),
        None => Ok(None),
    }
}

fn impair(m: &Matches) -> Result<Option<ImpairConfig>, UsageError> {
    m.opt_str("impair")
        .map(|text| ImpairConfig::parse(&text).map_err(|e| UsageError(format!("--impair: {e}"))))
        .transpose()
}

fn log_level(m: &Matches) -> Result<log::LevelFilter, UsageError> {
    let Some(text) = m.opt_str("log-level") else {
        return Ok(log::LevelFilter::Info);
    };
    text.parse().map_err(|_| {
        UsageError(format!(
            "--log-level: '{text}' is not one of error, warn, info, debug, trace"
        ))
    })
}

/// The rate a flag gives, bytes a second (`64M`), if given.
fn rate_option(m: &getopts::Matches, flag: &str) -> Result<Option<u64>, UsageError> {
    let Some(text) = m.opt_str(flag) else {
        return Ok(None);
    };
    if let Size::Unreadable = parse_size(&text) {
        return Err(UsageError(format!(
            "--{flag}: '{text}' is not a rate like 64M"
        )));
    }
    Ok(Some(size(flag, &text, 1, u64::MAX >> 1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_is_named_and_a_far_one_is_not() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "node"), 4);
        assert_eq!(edit_distance("node", "node"), 0);
        let known = ["tracker", "listen", "piece-size", "peers"];
        assert_eq!(did_you_mean("trackr", &known), Some("tracker"));
        assert_eq!(did_you_mean("pieces-size", &known), Some("piece-size"));
        assert_eq!(did_you_mean("peer", &known), Some("peers"));
        assert_eq!(did_you_mean("zzzzzz", &known), None);
        assert!(matches!(parse(&[]), Err(UsageError(text)) if text.contains("no command")));
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn seed_spelling_and_long_flags_agree() {
        let Ok(Invocation::Node(seed)) = parse(&args("node -node_id 7")) else {
            panic!("seed spelling refused")
        };
        let Ok(Invocation::Node(long)) =
            parse(&args("node --id 7 --send a.txt --download b.txt --peers 5"))
        else {
            panic!("long flags refused")
        };
        assert_eq!((seed.node_id, long.node_id), (7, 7));
        assert_eq!(seed.dir, PathBuf::from("node_files/node7"));
        assert_eq!(long.send, vec!["a.txt".to_string()]);
        assert_eq!(
            long.download,
            vec![console::Command::Download {
                name: "b.txt".to_string(),
                pin: None
            }]
        );
        assert!(!long.standard_tracker);
        assert_eq!(long.peers, 5);
        assert_eq!(seed.tracker, "127.0.0.1:12345".parse().unwrap());
    }

    #[test]
    fn advertise_takes_an_address_with_or_without_a_port() {
        let advertise = |line: &str| match parse(&args(line)) {
            Ok(Invocation::Node(node)) => node.advertise,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(advertise("node --id 1"), None);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for (line, expected) in [
            (
                "node --id 1 --advertise 203.0.113.7",
                (ip("203.0.113.7"), None),
            ),
            (
                "node --id 1 --advertise 203.0.113.7:6881",
                (ip("203.0.113.7"), Some(6881)),
            ),
            (
                "node --id 1 --advertise localhost:6881",
                (ip("127.0.0.1"), Some(6881)),
            ),
            (
                "node --id 1 --tracker [::1]:6969 --advertise 2001:db8::7",
                (ip("2001:db8::7"), None),
            ),
            (
                "node --id 1 --tracker [::1]:6969 --advertise [2001:db8::7]:6881",
                (ip("2001:db8::7"), Some(6881)),
            ),
        ] {
            let advertise = advertise(line).unwrap_or_else(|| panic!("{line}: none"));
            assert_eq!((advertise.ip, advertise.port), expected, "{line}");
        }
        let bound = advertise("node --id 1 --advertise 203.0.113.7").unwrap();
        assert_eq!(bound.addr(4000), "203.0.113.7:4000".parse().unwrap());
        for (line, says) in [
            ("node --id 1 --advertise 0.0.0.0", "unspecified"),
            ("node --id 1 --advertise 10.0.0.1:0", "port 0"),
            ("node --id 1 --advertise 239.1.2.3", "multicast"),
            ("node --id 1 --advertise 255.255.255.255", "broadcast"),
            (
                "node --id 1 --advertise 2001:db8::7",
                "IPv6 address but the tracker",
            ),
            ("node --id 1 --advertise 10.0.0.1:70000", "port 70000"),
            ("node --id 1 --advertise nowhere.invalid", "nowhere.invalid"),
        ] {
            match parse(&args(line)) {
                Err(UsageError(text)) => {
                    assert!(text.starts_with("--advertise: "), "{line}: {text}");
                    assert!(text.contains(says), "{line}: {text}");
                }
                other => panic!("{line} was accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for line in [
            "node",
            "node --id x",
            "node --id 1 --piece-size 70000",
            "node --id 1 --chunk-size 1000",
            "node --id 1 --send .hidden",
            "node --id 1 --output /x",
            "node --id 1 --download a@nothex",
            "node --id 1 --tracker http://127.0.0.1:6969/announce",
            "node --id 1 --tracker udp://",
            "node --id 1 --tracker udp:///announce",
            "node --id 1 --tracker udp://127.0.0.1",
            "node --id 1 --tracker udp://nowhere.invalid:6969",
            "node --id 1 --download magnet:?dn=x",
            "node --id 1 --bogus",
            "node --id 1 extra",
            "tracker --expiry -1",
            "tracker --listen nowhere",
            "demo --holders 4 --nodes 4",
            "fly",
        ] {
            assert!(parse(&args(line)).is_err(), "{line} was accepted");
        }
    }

    #[test]
    fn help_shows_long_options_with_two_dashes() {
        let Ok(Invocation::Help(text)) = parse(&args("node --help")) else {
            panic!("no help")
        };
        assert!(
            text.contains("\n    -h, --help          print this help\n"),
            "{text}"
        );
        assert!(
            text.contains("\n        --id N          this node's id"),
            "{text}"
        );
        assert!(
            text.contains("\n        --files-dir DIR\n                        parent"),
            "{text}"
        );
        assert!(text.contains("\n        --exit-when-done \n"), "{text}");
        assert!(!text.contains("\n        -id"), "{text}");
    }

    #[test]
    fn tracker_forms_and_downloads_by_info_hash() {
        let hex = "00112233445566778899aabbccddeeff00112233";
        let line = format!(
            "node --id 1 --tracker udp://127.0.0.1:6969/announce --download {hex} --download x.torrent --download magnet:?xt=urn:btih:{hex}&dn=a.bin"
        );
        let Ok(Invocation::Node(node)) = parse(&args(&line)) else {
            panic!("refused: {line}")
        };
        assert!(node.standard_tracker);
        assert_eq!(node.tracker, "127.0.0.1:6969".parse().unwrap());
        let info_hash = wire::parse_hex(hex).unwrap();
        assert_eq!(
            node.download,
            vec![
                console::Command::DownloadByHash {
                    info_hash,
                    name: None
                },
                console::Command::DownloadTorrent {
                    path: "x.torrent".into()
                },
                console::Command::DownloadByHash {
                    info_hash,
                    name: Some("a.bin".into())
                },
            ]
        );
        let Ok(Invocation::Node(node)) = parse(&args("node --id 1 --tracker UDP://127.0.0.1:7"))
        else {
            panic!("upper-case scheme refused")
        };
        assert!(node.standard_tracker);
        let Ok(Invocation::Node(node)) = parse(&args("node --id 1 --tracker 127.0.0.1:7")) else {
            panic!("plain address refused")
        };
        assert!(!node.standard_tracker);
        let Err(UsageError(message)) = parse(&args("node --id 1 --tracker http://x:1/announce"))
        else {
            panic!("http accepted")
        };
        assert!(message.contains("only udp://"), "{message}");
    }

    #[test]
    fn sizes_and_pins() {
        assert_eq!(parse_bytes("64K"), Some(65536));
        assert_eq!(parse_bytes("1M"), Some(1 << 20));
        assert_eq!(parse_bytes("3G"), Some(3 << 30));
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("x"), None);
        let Ok(console::Command::Download { name, pin }) =
            console::parse_download("f.bin@00112233445566778899aabbccddeeff00112233")
        else {
            panic!("pin refused")
        };
        assert_eq!(name, "f.bin");
        assert_eq!(pin.unwrap()[1], 0x11);
    }
}
