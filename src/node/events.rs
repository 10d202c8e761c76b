//! What a node reports to its user, typed: [`Event`]. The process prints each event either
//! as the line a person reads (its `Display`, the very line the node printed before events
//! were typed, which scripts and tests match), or with `torrent node --json` as one JSON
//! object per line (its [`Event::json_line`]), for scripts and dashboards.
//!
//! ## The JSON shapes (version [`EVENTS_VERSION`])
//!
//! Every line is one object with an `"event"` field naming its kind and a `"version"` field
//! (1 today; a field may be added within a version, never removed or changed). Info hashes
//! are 40 hex digits; sizes are bytes, rates bytes a second, times seconds.
//!
//! ```text
//! {"event":"sharing","name":"f.bin","info_hash":"…","bytes":700000,"chunks":3,"version":1}
//! {"event":"progress","id":1,"info_hash":null,"name":"f.bin","verified_bytes":0,
//!  "total_bytes":null,"bytes_per_s":0.0,"peers":0,"waiting_for_disk":false,"laying_out":false,"version":1}
//! {"event":"downloaded","id":1,"name":"f.bin","info_hash":"…","bytes":700000,"chunks":3,
//!  "seconds":0.25,"sources":[{"node":1,"addr":"127.0.0.1:4000","chunks":3}],"version":1}
//! {"event":"failed","id":2,"name":"absent.bin","info_hash":null,"reason":"…",
//!  "partial":{"fate":"none"},"version":1}
//! {"event":"peer_dropped","download":"f.bin","peer":3,"addr":"127.0.0.1:4001",
//!  "cause":"silent","reason":"stopped answering (nothing from it for 2.0 s)","version":1}
//! {"event":"message","text":"downloading f.bin","version":1}
//! {"event":"output","text":"node 2 at …\n…","version":1}
//! ```
//!
//! * `progress`, `downloaded` and `failed` carry the download's `id`, the one the control
//!   socket knows it by (`torrent ctl download-state ID`).
//! * `progress` comes about once a second for each running download (the first at once);
//!   `total_bytes` is `null` while no holder said how large the file is, and `info_hash`
//!   while the version is not chosen.
//! * `failed`'s `partial` says what became of the partial file: `{"fate":"none"}` (there was
//!   none), `{"fate":"kept","path":…,"verified_bytes":…,"file_bytes":…,"resume":…}` (kept;
//!   `resume` is the console command that resumes it),
//!   `{"fate":"removed","verified_bytes":…,"released_bytes":…}` or
//!   `{"fate":"not_removed","error":…}`.
//! * `downloaded`'s `sources` are the peers whose chunks verified; `node` is `null` for peers
//!   from a standard tracker, known by address only.
//! * `peer_dropped`'s `cause` is `silent` (nothing heard from the peer) or `pieces_lost` (it
//!   answers, but its pieces do not arrive); `reason` says so in words.
//! * `message` is every other line the node says; `output` is what a console command such
//!   as `status` or `help` prints.

use crate::node::Progress;
use crate::wire::{self, Hash};
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;

/// The version of the JSON shapes, in every line's `"version"` field.
pub const EVENTS_VERSION: u32 = 1;

/// One thing the node reports (see the module documentation for the JSON).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A file hashed, and the tracker knows the node holds it whole.
    Sharing {
        name: String,
        #[serde(serialize_with = "hex")]
        info_hash: Hash,
        bytes: u64,
        chunks: u32,
    },
    /// A running download, about once a second.
    Progress(ProgressReport),
    /// A download verified and published under its name.
    Downloaded {
        /// The id the control socket knows the download by.
        id: u64,
        name: String,
        #[serde(serialize_with = "hex")]
        info_hash: Hash,
        bytes: u64,
        chunks: u32,
        seconds: f64,
        sources: Vec<Source>,
    },
    /// A download gave up.
    Failed {
        id: u64,
        name: String,
        #[serde(serialize_with = "maybe_hex")]
        info_hash: Option<Hash>,
        reason: String,
        partial: PartialFate,
    },
    /// A download stopped asking a peer (its chunks go to others).
    PeerDropped {
        download: String,
        peer: u32,
        addr: SocketAddr,
        cause: DropCause,
        reason: String,
    },
    /// A download paused (`pause`): nothing is asked or taken for it until `resume`.
    Paused {
        id: u64,
        name: String,
        verified_bytes: u64,
        total_bytes: Option<u64>,
    },
    /// A paused download going on (`resume`), from a look-up, under the same id.
    Resumed { id: u64, name: String },
    /// A download cancelled (`cancel`), and what became of its partial file.
    Cancelled {
        id: u64,
        name: String,
        #[serde(serialize_with = "maybe_hex")]
        info_hash: Option<Hash>,
        partial: PartialFate,
    },
    /// Any other line the node says.
    Message { text: String },
    /// What a console command prints (`status`, `help`): one event, however many lines.
    Output { text: String },
}

impl Event {
    pub fn message(text: impl Into<String>) -> Event {
        Event::Message { text: text.into() }
    }

    /// The event as one line of JSON (without the newline), with its `"version"`.
    pub fn json_line(&self) -> String {
        #[derive(Serialize)]
        struct Versioned<'a> {
            #[serde(flatten)]
            event: &'a Event,
            version: u32,
        }
        let line = serde_json::to_string(&Versioned {
            event: self,
            version: EVENTS_VERSION,
        });
        // Strings, numbers and addresses only: serialising cannot fail. Should it, a line
        // that still parses says so rather than a line lost.
        line.unwrap_or_else(|error| {
            format!(
                "{{\"event\":\"message\",\"text\":{:?},\"version\":{EVENTS_VERSION}}}",
                error.to_string()
            )
        })
    }
}

/// One running download's progress, with the id the control socket knows it by.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgressReport {
    pub id: Option<u64>,
    #[serde(serialize_with = "maybe_hex")]
    pub info_hash: Option<Hash>,
    #[serde(flatten)]
    pub progress: Progress,
}

/// A peer whose chunks of a published download verified.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Source {
    /// `None` for a peer from a standard tracker, known by its address only.
    pub node: Option<u32>,
    pub addr: SocketAddr,
    pub chunks: u32,
}

/// What became of a failed download's partial file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum PartialFate {
    /// The download failed before it had a partial file.
    None,
    /// Chunks verified: kept for `resume` (a console command) to go on.
    Kept {
        path: String,
        verified_bytes: u64,
        file_bytes: u64,
        resume: String,
    },
    /// Removed, releasing its space: nothing was verified (a failure), or the download was
    /// cancelled.
    Removed {
        verified_bytes: u64,
        released_bytes: u64,
    },
    /// The removal failed.
    NotRemoved { error: String },
}

/// Why a download stopped asking a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropCause {
    /// Nothing came from the peer for a while.
    Silent,
    /// The peer answers, but its pieces are lost.
    PiecesLost,
}

fn hex<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&wire::hex(hash))
}

fn maybe_hex<S: Serializer>(hash: &Option<Hash>, serializer: S) -> Result<S::Ok, S::Error> {
    match hash {
        Some(hash) => hex(hash, serializer),
        None => serializer.serialize_none(),
    }
}

/// The lines the node printed before its events were typed, byte for byte.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Sharing {
                name,
                info_hash,
                bytes,
                chunks,
            } => write!(
                f,
                "sharing {name} ({}, {bytes} bytes, {chunks} chunks)",
                wire::hex(info_hash)
            ),
            Event::Progress(report) => write!(f, "progress {}", report.progress),
            Event::Paused {
                id,
                name,
                verified_bytes,
                total_bytes,
            } => {
                write!(f, "paused download {id} ({name}): {verified_bytes} ")?;
                if let Some(total) = total_bytes {
                    write!(f, "of {total} ")?;
                }
                write!(f, "bytes verified; `resume {id}` goes on")
            }
            Event::Resumed { id, name } => write!(f, "resumed download {id} ({name})"),
            Event::Cancelled {
                id, name, partial, ..
            } => write!(f, "cancelled download {id} ({name}){partial}"),
            Event::Downloaded {
                name,
                info_hash,
                bytes,
                chunks,
                seconds,
                sources,
                ..
            } => {
                let rate = crate::units::rate(*bytes as f64 / seconds.max(1e-6));
                write!(
                    f,
                    "downloaded {name} ({}) {bytes} bytes in {seconds:.3} s ({rate}) from ",
                    wire::hex(info_hash)
                )?;
                if *chunks == 0 {
                    return f.write_str("no peer (the file is empty)");
                }
                if sources.is_empty() {
                    return f.write_str("no peer (resumed from disk)");
                }
                for (index, source) in sources.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    match source.node {
                        Some(node) => write!(f, "node {node}: {} chunks", source.chunks)?,
                        None => write!(f, "{}: {} chunks", source.addr, source.chunks)?,
                    }
                }
                Ok(())
            }
            Event::Failed {
                name,
                reason,
                partial,
                ..
            } => write!(f, "download {name} failed: {reason}{partial}"),
            Event::PeerDropped {
                download,
                peer,
                cause,
                reason,
                ..
            } => match cause {
                DropCause::Silent => write!(
                    f,
                    "node {peer} {reason}; its chunks of {download} go to others"
                ),
                DropCause::PiecesLost => write!(
                    f,
                    "{download}: {reason}; its chunks go to others for a while"
                ),
            },
            Event::Message { text } | Event::Output { text } => f.write_str(text),
        }
    }
}

/// The end of a `failed` line: what became of the partial file (nothing when there was none).
impl fmt::Display for PartialFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartialFate::None => Ok(()),
            PartialFate::Kept {
                path,
                verified_bytes,
                file_bytes,
                resume,
            } => write!(
                f,
                "; kept {} ({verified_bytes} of {file_bytes} bytes verified) in {path}: \
                 `{resume}` resumes it",
                crate::storage::percent(*verified_bytes, *file_bytes),
            ),
            PartialFate::Removed {
                verified_bytes,
                released_bytes,
            } => {
                let nothing = if *verified_bytes == 0 {
                    "nothing was verified, so "
                } else {
                    ""
                };
                write!(
                    f,
                    "; {nothing}its partial file is removed ({released_bytes} bytes released)"
                )
            }
            PartialFate::NotRemoved { error } => {
                write!(f, "; cannot remove its partial file: {error}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: Hash = [0xab; 20];
    const HEX: &str = "abababababababababababababababababababab";

    fn json(event: &Event) -> serde_json::Value {
        serde_json::from_str(&event.json_line()).expect("a JSON line")
    }

    #[test]
    fn pause_resume_and_cancel_read_as_lines_and_as_json() {
        let paused = Event::Paused {
            id: 3,
            name: "f.bin".into(),
            verified_bytes: 262_144,
            total_bytes: Some(6_291_456),
        };
        assert_eq!(
            paused.to_string(),
            "paused download 3 (f.bin): 262144 of 6291456 bytes verified; `resume 3` goes on"
        );
        assert_eq!(json(&paused)["event"], "paused");
        assert_eq!(json(&paused)["total_bytes"], 6_291_456);
        let unknown = Event::Paused {
            id: 3,
            name: "f.bin".into(),
            verified_bytes: 262_144,
            total_bytes: None,
        };
        assert!(unknown.to_string().contains(": 262144 bytes verified;"));
        let resumed = Event::Resumed {
            id: 3,
            name: "f.bin".into(),
        };
        assert_eq!(resumed.to_string(), "resumed download 3 (f.bin)");
        let cancelled = Event::Cancelled {
            id: 3,
            name: "f.bin".into(),
            info_hash: Some(HASH),
            partial: PartialFate::Removed {
                verified_bytes: 262_144,
                released_bytes: 6_291_456,
            },
        };
        assert_eq!(
            cancelled.to_string(),
            "cancelled download 3 (f.bin); its partial file is removed (6291456 bytes released)"
        );
        let value = json(&cancelled);
        assert_eq!(
            (
                &value["event"],
                &value["info_hash"],
                &value["partial"]["fate"]
            ),
            (&"cancelled".into(), &HEX.into(), &"removed".into())
        );
    }

    #[test]
    fn sharing_reads_as_before_and_as_json() {
        let event = Event::Sharing {
            name: "f.bin".into(),
            info_hash: HASH,
            bytes: 700_000,
            chunks: 3,
        };
        assert_eq!(
            event.to_string(),
            format!("sharing f.bin ({HEX}, 700000 bytes, 3 chunks)")
        );
        assert_eq!(
            json(&event),
            serde_json::json!({"event": "sharing", "name": "f.bin", "info_hash": HEX,
                "bytes": 700_000, "chunks": 3, "version": EVENTS_VERSION})
        );
        assert!(!event.json_line().contains('\n'));
    }

    #[test]
    fn downloaded_names_its_sources_by_node_or_by_address() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut event = Event::Downloaded {
            id: 1,
            name: "f.bin".into(),
            info_hash: HASH,
            bytes: 1 << 20,
            chunks: 4,
            seconds: 0.5,
            sources: vec![
                Source {
                    node: Some(1),
                    addr,
                    chunks: 3,
                },
                Source {
                    node: None,
                    addr,
                    chunks: 1,
                },
            ],
        };
        assert_eq!(
            event.to_string(),
            format!(
                "downloaded f.bin ({HEX}) 1048576 bytes in 0.500 s (2.0 MiB/s) from node 1: 3 \
                 chunks, 127.0.0.1:4000: 1 chunks"
            )
        );
        let value = json(&event);
        assert_eq!(value["event"], "downloaded");
        assert_eq!(value["id"], 1);
        assert_eq!(value["sources"][0]["node"], 1);
        assert_eq!(value["sources"][1]["node"], serde_json::Value::Null);
        assert_eq!(value["sources"][1]["addr"], "127.0.0.1:4000");
        if let Event::Downloaded { sources, .. } = &mut event {
            sources.clear();
        }
        assert!(
            event
                .to_string()
                .ends_with("from no peer (resumed from disk)")
        );
    }

    #[test]
    fn failed_says_what_became_of_the_partial_file() {
        let mut event = Event::Failed {
            id: 2,
            name: "absent.bin".into(),
            info_hash: None,
            reason: "nobody holds absent.bin".into(),
            partial: PartialFate::None,
        };
        assert_eq!(
            event.to_string(),
            "download absent.bin failed: nobody holds absent.bin"
        );
        let value = json(&event);
        assert_eq!(value["id"], 2);
        assert_eq!(value["info_hash"], serde_json::Value::Null);
        assert_eq!(value["partial"]["fate"], "none");
        if let Event::Failed { partial, .. } = &mut event {
            *partial = PartialFate::Removed {
                verified_bytes: 0,
                released_bytes: 4096,
            };
        }
        assert_eq!(
            event.to_string(),
            "download absent.bin failed: nobody holds absent.bin; nothing was verified, so \
             its partial file is removed (4096 bytes released)"
        );
        assert_eq!(json(&event)["partial"]["released_bytes"], 4096);
    }

    #[test]
    fn a_dropped_peer_reads_as_before() {
        let silent = Event::PeerDropped {
            download: "f.bin".into(),
            peer: 3,
            addr: "127.0.0.1:4001".parse().unwrap(),
            cause: DropCause::Silent,
            reason: "stopped answering (nothing from it for 2.0 s)".into(),
        };
        assert_eq!(
            silent.to_string(),
            "node 3 stopped answering (nothing from it for 2.0 s); its chunks of f.bin go to \
             others"
        );
        let value = json(&silent);
        assert_eq!(value["cause"], "silent");
        assert_eq!(value["peer"], 3);
    }

    #[test]
    fn progress_keeps_an_unknown_size_unknown() {
        let event = Event::Progress(ProgressReport {
            id: Some(7),
            info_hash: None,
            progress: Progress {
                name: "f.bin".into(),
                verified_bytes: 0,
                total_bytes: None,
                bytes_per_s: 0.0,
                peers: 0,
                waiting_for_disk: false,
                laying_out: false,
            },
        });
        assert_eq!(
            event.to_string(),
            "progress f.bin size not known yet, 0 peers"
        );
        let value = json(&event);
        assert_eq!(value["event"], "progress");
        assert_eq!(value["id"], 7);
        assert_eq!(value["name"], "f.bin");
        assert_eq!(value["total_bytes"], serde_json::Value::Null);
        assert_eq!(value["version"], EVENTS_VERSION);
    }

    #[test]
    fn messages_and_output_are_their_text() {
        let output = Event::Output {
            text: "line one\nline two".into(),
        };
        assert_eq!(output.to_string(), "line one\nline two");
        let line = output.json_line();
        assert_eq!(line.lines().count(), 1, "one line: {line}");
        assert_eq!(json(&output)["text"], "line one\nline two");
        assert_eq!(json(&Event::message("hi"))["event"], "message");
    }
}
