//! The node's state that its downloads work with, borrowed apart from the download list for
//! one input: the outbox, the table of files, the storage, the configuration, what the
//! tracker answered lately and the download limit. The node builds it for every input it
//! routes to the downloads (`Node::context`), and a command does the same
//! (`Commander::context`), both with [`Parts::new`].

use super::config::NodeConfig;
use super::download::TrackerHeard;
use super::library::{Library, LocalFile};
use super::outbox::Outbox;
use super::rate_limit::RequestLimit;
use crate::storage::Storage;
use crate::wire::Hash;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The node's state that a download works with, borrowed apart from the download list.
/// A bundle of borrows, not an owner: its fields are the node's own parts, open to the
/// node's modules (a download reads the configuration, writes into the outbox and the
/// table of files) for the length of one input.
pub(crate) struct Parts<'a> {
    pub(super) out: &'a mut Outbox,
    pub(super) files: &'a mut BTreeMap<Hash, LocalFile>,
    pub(super) state: &'a Arc<dyn Storage>,
    pub(super) config: &'a NodeConfig,
    /// Whether the tracker answers, for downloads that must say why they cannot go on.
    pub(super) tracker: TrackerHeard,
    /// The node's download limit, which piece requests spend.
    pub(super) download_limit: Option<&'a mut RequestLimit>,
}

impl<'a> Parts<'a> {
    /// The parts of a node around its downloads: `library`'s table of files, and the
    /// download limit when one is set.
    pub(super) fn new(
        out: &'a mut Outbox,
        library: &'a mut Library,
        state: &'a Arc<dyn Storage>,
        config: &'a NodeConfig,
        tracker: TrackerHeard,
        download_limit: &'a mut Option<RequestLimit>,
    ) -> Parts<'a> {
        Parts {
            out,
            files: library.files_mut(),
            state,
            config,
            tracker,
            download_limit: download_limit.as_mut(),
        }
    }
}
