//! What the simulation's checkers and tests read of a node's insides beside its interface:
//! every bounded queue and table against its limit, what the node would announce, and how
//! many times it sent each chunk. An [`Inspect`] borrows the node's parts for that
//! (`Node::inspect`); nothing here is part of the node's interface.

use super::downloads::{DOWNLOADS_MAX, Downloads};
use super::exchange::Exchange;
use super::library::{FILES_MAX, Library};
use super::listing::Listings;
use super::outbox::Outbox;
use super::upload::Uploader;
use crate::wire::Hash;
use std::collections::BTreeMap;

/// A bounded queue or table: its name, how long it is now and its named limit.
pub type QueueLen = (&'static str, usize, usize);

/// A node's parts, borrowed to look inside them (see the module documentation).
pub struct Inspect<'a> {
    pub(super) library: &'a Library,
    pub(super) downloads: &'a Downloads,
    pub(super) uploader: &'a Uploader,
    pub(super) exchange: &'a Exchange,
    pub(super) listings: &'a Listings,
    pub(super) out: &'a Outbox,
}

impl Inspect<'_> {
    /// How many bytes of each chunk of the complete file `name` were queued for peers (see
    /// `upload::Spread`): how many times the holder sent each chunk.
    pub fn chunk_sends(&self, name: &str) -> Option<Vec<u64>> {
        let files = self.library.files();
        let file = files.values().find(|f| f.manifest.name == name)?;
        self.uploader.debug_chunk_sends(file.manifest.info_hash)
    }

    /// What the node would announce: info hash → chunks held, for every file it holds
    /// some of (or an empty file).
    pub fn announceable(&self) -> BTreeMap<Hash, u32> {
        self.library.announceable()
    }

    /// Every bounded queue and table of the node, with its `*_MAX` limit.
    pub fn queue_lens(&self) -> Vec<QueueLen> {
        let mut lens = Vec::from(self.out.queue_lens());
        let files = self.library.len();
        lens.push(("node files (held and hashing)", files, FILES_MAX));
        lens.push(("node downloads", self.downloads.len(), DOWNLOADS_MAX));
        lens.extend(self.uploader.queue_lens());
        lens.push(self.exchange.queue_len());
        lens.push(self.listings.queue_len());
        lens
    }
}
