//! Placeholder replaced by the console parser branch.
use crate::wire;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Nothing,
    Help,
    Status,
    Send {
        name: String,
    },
    Download {
        name: String,
        pin: Option<wire::Hash>,
    },
    Exit,
}

pub const HELP: &str = "commands: torrent -setMode send <file> | torrent -setMode download <file>[@<info hash>] | torrent -setMode exit | status | help";

pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(Command::Nothing),
        ["help"] => Ok(Command::Help),
        ["status"] => Ok(Command::Status),
        ["torrent", "-setMode", "exit"] | ["exit"] => Ok(Command::Exit),
        ["torrent", "-setMode", "send", name] | ["send", name] => Ok(Command::Send {
            name: name.to_string(),
        }),
        ["torrent", "-setMode", "download", name] | ["download", name] => Ok(Command::Download {
            name: name.to_string(),
            pin: None,
        }),
        _ => Err(format!("unknown command; {HELP}")),
    }
}
