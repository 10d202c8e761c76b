//! A download by info hash alone, for a standard tracker (`--tracker udp://`): it starts
//! from peer addresses instead of a look-up reply, and learns its name (unless a `.torrent`,
//! a magnet link or a pin gave it) and its shape (unless a `.torrent` gave them) from the
//! first manifest part; the whole manifest must still hash to the info hash.

use super::*;

/// What a download by info hash knows before its manifest.
pub(super) struct ByHash {
    pub(super) name_known: bool,
    pub(super) shape: Option<(u64, u32)>,
}

impl Download {
    /// A download by info hash, whose peers come from a standard tracker
    /// ([`Download::handle_peers`]). Without `name`, the name is the one in the manifest the
    /// peers send (checked as any name from the network, and against the info hash with the
    /// rest of the manifest); until then the download is called by its info hash.
    pub fn by_info_hash(
        info_hash: Hash,
        name: Option<String>,
        shape: Option<(u64, u32)>,
        now: Instant,
        give_up_after: Duration,
    ) -> Download {
        let name_known = name.is_some();
        let name = name.unwrap_or_else(|| wire::hex(&info_hash));
        Download {
            by_hash: Some(ByHash { name_known, shape }),
            ..Download::new(name, Some(info_hash), now, give_up_after)
        }
    }

    /// Peers of our info hash from a standard tracker: addresses only. Each gets a node id
    /// made from its address (only logs and bad-chunk bookkeeping use it here), and counts as
    /// a partial holder until its have-map says more.
    pub(super) fn take_peers(
        &mut self,
        parts: &mut Parts<'_>,
        now: Instant,
        own_node_id: u32,
        peers: &[SocketAddr],
    ) {
        let (Some(info_hash), Some(by_hash)) = (self.info_hash, &self.by_hash) else {
            return;
        };
        if self.finished() {
            return;
        }
        let shape = by_hash.shape;
        self.candidates = peers
            .iter()
            .take(PEERS_PER_DOWNLOAD_MAX)
            .map(|&addr| (address_node_id(addr, own_node_id), addr, false))
            .collect();
        self.diagnosis.on_lookup(self.candidates.len());
        if self.candidates.is_empty() {
            return;
        }
        if let Phase::LookingUp = self.phase {
            match parts.state.partial_manifest(&info_hash) {
                Some(manifest) => {
                    log::info!("resuming {} from its partial file", manifest.name);
                    self.name = manifest.name.clone();
                    self.start_transfer(parts, now, manifest);
                }
                None => {
                    let (file_bytes, chunk_bytes) = shape.unwrap_or((0, 0));
                    self.phase = Phase::Manifest(ManifestFetch {
                        version: VersionRecord {
                            info_hash,
                            file_bytes: U64::new(file_bytes),
                            chunk_bytes: U32::new(chunk_bytes),
                            holder_count: U32::new(0),
                        },
                        hashes: Vec::new(),
                        source: None,
                        sent_at: None,
                        attempts: 0,
                    })
                }
            }
        }
        self.recruit(parts, now);
    }

    /// A download by info hash learns its shape (and name, unless given) from the first
    /// manifest part; false when that part cannot be the start of a manifest we accept.
    pub(super) fn learn_from_part(&mut self, fixed: &wire::ManifestPart, name: &str) -> bool {
        let Some(by_hash) = &self.by_hash else {
            return true;
        };
        let Phase::Manifest(fetch) = &mut self.phase else {
            return true;
        };
        if !fetch.hashes.is_empty() || fixed.first_chunk.get() != 0 {
            return true;
        }
        let (file_bytes, chunk_bytes) = (fixed.file_bytes.get(), fixed.chunk_bytes.get());
        if by_hash.shape.is_none() {
            if !wire::shape_ok(file_bytes, chunk_bytes) {
                return false;
            }
            fetch.version.file_bytes = fixed.file_bytes;
            fetch.version.chunk_bytes = fixed.chunk_bytes;
        }
        if !by_hash.name_known {
            if wire::name_problem(name.as_bytes()).is_some() {
                return false;
            }
            self.name = name.to_string();
        }
        true
    }
}

/// A node id for a peer known only by its address (from a standard tracker): FNV-1a of the
/// address, never our own id. Two peers may collide (one in four billion); the second is
/// then taken for the first at a new address, which costs a little speed, not correctness.
fn address_node_id(addr: SocketAddr, own_node_id: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in wire::ip_to_bytes(addr.ip())
        .iter()
        .chain(&addr.port().to_be_bytes())
    {
        hash = (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193);
    }
    if hash == own_node_id { hash ^ 1 } else { hash }
}
