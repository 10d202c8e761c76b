//! `torrent`: run as tracker, node or demo (see `torrent --help`).

use std::process::ExitCode;
use torrent::cli::{self, Invocation};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let invocation = match cli::parse(&args) {
        Ok(invocation) => invocation,
        Err(error) => {
            eprintln!("torrent: {error}");
            return ExitCode::from(2);
        }
    };
    let result = match invocation {
        Invocation::Help(text) => {
            print!("{text}");
            Ok(0)
        }
        Invocation::Version => {
            println!("torrent {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Invocation::Tracker(args) => torrent::reactor::run_tracker(args),
        Invocation::Node(args) => torrent::reactor::run_node(args),
        Invocation::Demo(args) => torrent::demo::run_demo(args),
        Invocation::Ctl(args) => Ok(torrent::control::run_ctl(args)),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("torrent: {error}");
            ExitCode::from(1)
        }
    }
}
