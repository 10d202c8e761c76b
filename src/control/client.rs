//! `torrent ctl`: one request to a running node's control socket, its answer printed (as
//! text, or the JSON line with `--json`), and an exit code a script can test: 0 done, 1
//! refused or failed (or no node answers), 2 for a bad command line (see `cli.rs`).

use super::{DownloadState, Reply, Request, SOCKET_NAME};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often `download --wait` asks for the download's state.
pub const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest reply line read (a `status` of a node holding many files is the longest).
pub const REPLY_BYTES_MAX: u64 = 16 << 20;

/// What `torrent ctl` was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlArgs {
    /// The node's directory (its control socket is in `DIR/.torrent/`).
    pub dir: PathBuf,
    pub request: Request,
    /// Print the JSON reply lines instead of text.
    pub json: bool,
    /// With `download` or `download-state`: return once the download is verified (0), or failed or was
    /// cancelled (1).
    pub wait: bool,
}

/// Runs `torrent ctl`; returns the exit code.
pub fn run_ctl(args: CtlArgs) -> i32 {
    let path = socket_path(&args.dir);
    let mut link = match Link::connect(&path) {
        Ok(link) => link,
        Err(error) => {
            eprintln!(
                "torrent: cannot reach a node's control socket at {}: {error} (is a node running with --dir {}?)",
                path.display(),
                args.dir.display()
            );
            return 1;
        }
    };
    let reply = match link.ask(&args.request) {
        Ok(reply) => reply,
        // The node may leave before its reply is written: gone is what `exit` asked for.
        Err(Unanswered::Closed) if args.request == Request::Exit => Reply {
            ok: true,
            message: Some("the node left".into()),
            ..Reply::default()
        },
        Err(error) => {
            eprintln!("torrent: the node did not answer: {error}");
            return 1;
        }
    };
    if !args.wait || !reply.ok {
        return show(&args, &reply);
    }
    let Some(id) = reply.download.as_ref().map(|d| d.id) else {
        // Nothing started (already held, or already downloading): nothing to wait for.
        return show(&args, &reply);
    };
    if !args.json
        && let Some(message) = &reply.message
    {
        println!("{message}");
    }
    loop {
        std::thread::sleep(WAIT_POLL_INTERVAL);
        let state = match link.ask(&Request::DownloadState { id }) {
            Ok(state) => state,
            Err(error) => {
                eprintln!("torrent: the node stopped answering while downloading: {error}");
                return 1;
            }
        };
        // A paused download has not ended: the wait goes on until it is resumed and ends.
        let going = state
            .download
            .as_ref()
            .is_some_and(|d| matches!(d.state, DownloadState::Running | DownloadState::Paused));
        if !state.ok || !going {
            return show(&args, &state);
        }
    }
}

/// Prints `reply` and says what exit code it means.
fn show(args: &CtlArgs, reply: &Reply) -> i32 {
    let failed = reply.download.as_ref().is_some_and(|d| match d.state {
        DownloadState::Failed => true,
        // What was waited for will not come; a `cancel` itself did what it was asked.
        DownloadState::Cancelled => args.wait,
        _ => false,
    });
    if args.json {
        print!("{}", super::reply_line(reply.clone()));
    } else if let Some(error) = &reply.error {
        eprintln!("torrent: {error}");
    } else if let Some(text) = &reply.text {
        println!("{text}");
    } else if args.wait
        && let Some(download) = &reply.download
    {
        let state = match download.state {
            DownloadState::Done => "downloaded and verified",
            DownloadState::Failed => "failed (the node's output says why)",
            DownloadState::Running => "running",
            DownloadState::Paused => "paused",
            DownloadState::Cancelled => "cancelled",
        };
        println!("{} {state}", download.name);
    } else if let Some(message) = &reply.message {
        println!("{message}");
    }
    i32::from(!reply.ok || failed)
}

/// The control socket of the node whose directory is `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(crate::storage::STATE_DIR_NAME).join(SOCKET_NAME)
}

/// A connection to a node's control socket.
struct Link {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Link {
    fn connect(path: &Path) -> std::io::Result<Link> {
        let stream = UnixStream::connect(path)?;
        Ok(Link {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    fn ask(&mut self, request: &Request) -> Result<Reply, Unanswered> {
        let line = super::request_line(request);
        // A node that refuses this client answers and closes at once, perhaps before the
        // request is written: its answer is read even when the write failed.
        let _ = self.writer.write_all(line.as_bytes());
        let mut answer = Vec::new();
        let read =
            std::io::Read::take(&mut self.reader, REPLY_BYTES_MAX).read_until(b'\n', &mut answer);
        match read {
            Ok(0) => Err(Unanswered::Closed),
            Ok(_) => serde_json::from_slice(&answer).map_err(Unanswered::NotJson),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                Err(Unanswered::Closed)
            }
            Err(error) => Err(Unanswered::Io(error)),
        }
    }
}

/// Why a request got no reply.
#[derive(Debug)]
enum Unanswered {
    /// The node closed the connection (it left, or it refused this client).
    Closed,
    NotJson(serde_json::Error),
    Io(std::io::Error),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::Closed => write!(f, "it closed the connection"),
            Unanswered::NotJson(error) => write!(f, "its answer is not JSON: {error}"),
            Unanswered::Io(error) => write!(f, "{error}"),
        }
    }
}
