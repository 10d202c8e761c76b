//! The far side of the fuzzed download: its holders and a stranger. They answer what the
//! download sent them, honestly or with a flaw the input picks, and send it forged
//! messages of every kind it takes. Every message is encoded here, as a peer would send it;
//! the harness decodes it, as the node would, before the download sees it.

use super::Input;
use crate::storage::Manifest;
use crate::wire::{self, Hash, Message, RejectReason, U16, U32, U64};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

/// Holders the look-up lists; any input may come from one of them or from the stranger.
pub const HOLDERS: usize = 3;
pub const CHUNK_BYTES: u32 = wire::CHUNK_BYTES_MIN;
/// Sizes of the file: one chunk of one byte, one whole chunk, three chunks (the last
/// short) and five.
const FILE_BYTES: [u64; 4] = [1, CHUNK_BYTES as u64, 40_000, 70_001];
/// Requests an address remembers for an answer (the latest).
const PENDING_PER_ADDRESS_MAX: usize = 64;
/// Addresses peer lists may name beside the holders and the stranger.
const NAMED_ADDRESSES_MAX: usize = 8;

/// The byte at `at` of the file: a formula, so that the swarm knows every right byte and
/// every chunk differs.
pub fn file_byte(at: u64) -> u8 {
    (at.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (at / 251) as u8
}

pub(super) struct Swarm {
    pub file: Vec<u8>,
    pub manifest: Manifest,
    /// The holders, then the stranger, then addresses peer lists named.
    addresses: Vec<SocketAddr>,
    /// Where the download may send: the holders, and addresses peer lists named.
    told: BTreeSet<SocketAddr>,
    /// What the download sent to each address and nobody answered yet.
    pending: BTreeMap<SocketAddr, VecDeque<Vec<u8>>>,
    /// Datagrams sent to the download and not yet delivered: (from, bytes).
    outgoing: Vec<(SocketAddr, Vec<u8>)>,
    buf: Vec<u8>,
}

impl Swarm {
    /// A swarm sharing a file of the size `shape` picks.
    pub fn new(shape: u8) -> Swarm {
        let file_bytes = FILE_BYTES[usize::from(shape) % FILE_BYTES.len()];
        let file: Vec<u8> = (0..file_bytes).map(file_byte).collect();
        let hashes = file
            .chunks(CHUNK_BYTES as usize)
            .map(crate::hash::sha1)
            .collect();
        let manifest = Manifest::new("fuzzed.bin".into(), file_bytes, CHUNK_BYTES, hashes);
        let holders: Vec<SocketAddr> = (0..HOLDERS)
            .map(|i| SocketAddr::from(([127, 0, 0, 2 + i as u8], 7000)))
            .collect();
        let stranger = SocketAddr::from(([127, 0, 0, 99], 7000));
        Swarm {
            file,
            manifest,
            addresses: [holders.as_slice(), &[stranger]].concat(),
            told: holders.into_iter().collect(),
            pending: BTreeMap::new(),
            outgoing: Vec::new(),
            buf: vec![0; wire::DATAGRAM_BYTES_MAX],
        }
    }

    pub fn chunk_count(&self) -> u32 {
        self.manifest.chunk_count()
    }

    /// The datagrams the swarm sent since the last call, in order.
    pub fn take_outgoing(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.outgoing)
    }

    /// The download sent `datagram` to `to`: it must go to an address the download was told
    /// of, and it waits there for an answer.
    pub fn received(&mut self, to: SocketAddr, datagram: &[u8]) {
        assert!(
            self.told.contains(&to),
            "the download sent to {to}, which nobody told it of"
        );
        assert!(
            wire::decode(datagram).is_ok(),
            "a datagram that does not decode"
        );
        let queue = self.pending.entry(to).or_default();
        if queue.len() == PENDING_PER_ADDRESS_MAX {
            queue.pop_front();
        }
        queue.push_back(datagram.to_vec());
    }

    /// A look-up reply listing the file and the holders in `mask`; a holder whose bit is set
    /// in `partial` claims to hold only some chunks.
    pub fn look_up_reply(
        &self,
        mask: u8,
        partial: u8,
    ) -> (Vec<wire::VersionRecord>, Vec<wire::HolderRecord>) {
        let chunks = self.chunk_count();
        let holders: Vec<wire::HolderRecord> = (0..HOLDERS)
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| {
                let addr = self.addresses[i];
                let chunks_held = if partial & (1 << i) != 0 {
                    chunks / 2
                } else {
                    chunks
                };
                wire::HolderRecord {
                    node_id: U32::new(node_id(i)),
                    version: 0,
                    reserved: 0,
                    port: U16::new(addr.port()),
                    ip: wire::ip_to_bytes(addr.ip()),
                    upload_credit_bytes: U64::new(0),
                    chunks_held: U32::new(chunks_held),
                }
            })
            .collect();
        if holders.is_empty() {
            return (Vec::new(), holders);
        }
        let version = wire::VersionRecord {
            info_hash: self.manifest.info_hash,
            file_bytes: U64::new(self.manifest.file_bytes),
            chunk_bytes: U32::new(CHUNK_BYTES),
            holder_count: U32::new(HOLDERS as u32),
        };
        (vec![version], holders)
    }

    /// Sends `message` from `from` to the download. A peer list names addresses the
    /// download may then send to.
    fn send(&mut self, from: SocketAddr, message: &Message<'_>) {
        if let Message::Peers { peers, .. } = message {
            for record in peers.iter() {
                self.told
                    .insert(wire::socket_addr(record.ip, record.port.get()));
            }
        }
        if let Ok(len) = message.encode(&mut self.buf) {
            self.outgoing.push((from, self.buf[..len].to_vec()));
        }
    }

    /// A holder, the stranger, or an address a peer list named.
    pub fn address(&self, byte: u8) -> SocketAddr {
        self.addresses[usize::from(byte) % self.addresses.len()]
    }

    /// A refusal of any chunk, for any reason.
    pub fn forged_reject(&mut self, input: &mut Input<'_>) -> Option<()> {
        let from = self.address(input.byte()?);
        let chunk = u32::from(input.byte()?);
        let reason = RejectReason::ALL[usize::from(input.byte()?) % RejectReason::ALL.len()];
        let rejection = wire::Rejection {
            info_hash: self.manifest.info_hash,
            chunk,
            reason,
        };
        self.send(from, &Message::Reject(rejection));
        Some(())
    }

    /// A welcome with the sender's own cookie, or another.
    pub fn forged_welcome(&mut self, input: &mut Input<'_>) -> Option<()> {
        let from = self.address(input.byte()?);
        let cookie = match input.byte()? {
            0..128 => cookie_of(from),
            other => u64::from(other),
        };
        let welcome = wire::Welcome {
            cookie: U64::new(cookie),
        };
        self.send(from, &Message::Welcome(&welcome));
        Some(())
    }

    /// The echo of a probe of any size, asked for or not.
    pub fn forged_probe_reply(&mut self, input: &mut Input<'_>) -> Option<()> {
        let from = self.address(input.byte()?);
        let reply = wire::MtuProbeReply {
            info_hash: self.manifest.info_hash,
            probe_bytes: U32::new(u32::from(input.u16()?)),
        };
        self.send(from, &Message::MtuProbeReply(&reply));
        Some(())
    }

    /// An address that was sent something answers one of those requests (the oldest unless
    /// `which` picks another), as an uploader would: a welcome when the cookie is not its
    /// own, a refusal for a range outside the file. The bits of `flaws` spoil the answer:
    /// pieces get a wrong byte (bit 0) or lose every other one (bit 1); a have-map shows only
    /// the chunks bits 2 to 5 pick (bit 1); a manifest part gets a wrong hash (bit 2); a
    /// probe's echo is lost (bit 0); and the request is kept, to be answered again (bit 7).
    pub fn answer(&mut self, input: &mut Input<'_>, clock_us: u32) -> Option<()> {
        let (pick, which, flaws) = (input.byte()?, input.byte()?, input.byte()?);
        let waiting: Vec<SocketAddr> = self
            .pending
            .iter()
            .filter(|(_, queue)| !queue.is_empty())
            .map(|(addr, _)| *addr)
            .collect();
        if waiting.is_empty() {
            return Some(());
        }
        let to_us = waiting[usize::from(pick) % waiting.len()];
        let queue = self.pending.get_mut(&to_us)?;
        let index = usize::from(which) % queue.len();
        let datagram = if flaws & 0x80 != 0 {
            queue.get(index)?.clone() // answered again later, as a duplicate would be
        } else {
            queue.remove(index)?
        };
        let Ok(message) = wire::decode(&datagram) else {
            panic!("the download sent a datagram that does not decode");
        };
        let info_hash = self.manifest.info_hash;
        let cookie = match &message {
            Message::HaveRequest(ask) => ask.cookie.get(),
            Message::ManifestRequest(request) => request.ask.cookie.get(),
            Message::PieceRequest(request) => request.ask.cookie.get(),
            Message::PacedPieceRequest(paced) => paced.request.ask.cookie.get(),
            Message::MtuProbe(probe) => probe.ask.cookie.get(),
            _ => return Some(()),
        };
        if cookie != cookie_of(to_us) {
            let welcome = wire::Welcome {
                cookie: U64::new(cookie_of(to_us)),
            };
            self.send(to_us, &Message::Welcome(&welcome));
            return Some(());
        }
        let chunks = self.chunk_count();
        match message {
            Message::HaveRequest(_) => {
                let mut bitmap = vec![0u8; wire::bitmap_len(chunks)];
                for chunk in 0..chunks {
                    if flaws & 2 == 0 || flaws & (4 << (chunk % 4)) != 0 {
                        bitmap[(chunk / 8) as usize] |= 0x80 >> (chunk % 8);
                    }
                }
                let fixed = wire::HaveMap {
                    info_hash,
                    node_id: U32::new(self.node_id_of(to_us)),
                    chunk_count: U32::new(chunks),
                    first_chunk: U32::new(0),
                };
                self.send(
                    to_us,
                    &Message::HaveMap {
                        fixed: &fixed,
                        bitmap: &bitmap,
                    },
                );
            }
            Message::ManifestRequest(request) => {
                let first = request.first_chunk.get().min(chunks);
                let count = (chunks - first).min(wire::MANIFEST_HASHES_PER_PART_MAX as u32);
                let mut hashes = self.manifest.hashes[first as usize..][..count as usize].to_vec();
                if flaws & 4 != 0
                    && let Some(hash) = hashes.first_mut()
                {
                    hash[0] ^= 1;
                }
                let fixed = wire::ManifestPart {
                    info_hash,
                    file_bytes: U64::new(self.manifest.file_bytes),
                    chunk_bytes: U32::new(CHUNK_BYTES),
                    first_chunk: U32::new(first),
                    hash_count: U16::new(count as u16),
                    flags: 0,
                    reserved: 0,
                };
                let name = self.manifest.name.clone();
                let part = Message::ManifestPart {
                    fixed: &fixed,
                    hashes: &hashes,
                    name: &name,
                };
                self.send(to_us, &part);
            }
            Message::PieceRequest(request) => self.send_pieces(to_us, request, None, flaws),
            Message::PacedPieceRequest(paced) => {
                let sent_us = clock_us ^ u32::from(flaws);
                self.send_pieces(to_us, &paced.request, Some(sent_us), flaws)
            }
            Message::MtuProbe(probe) => {
                let reply = wire::MtuProbeReply {
                    info_hash,
                    probe_bytes: probe.probe_bytes,
                };
                // A path that carries only smaller datagrams loses the probe.
                if flaws & 1 == 0 {
                    self.send(to_us, &Message::MtuProbeReply(&reply));
                }
            }
            _ => {}
        }
        Some(())
    }

    /// The pieces of `request`, as the holder sends them; with `flaws`, one carries a wrong
    /// byte (bit 0) or every other one is lost (bit 1).
    fn send_pieces(
        &mut self,
        to_us: SocketAddr,
        request: &wire::PieceRequest,
        sent_us: Option<u32>,
        flaws: u8,
    ) {
        let (chunk, offset, length) = (
            request.chunk.get(),
            request.offset.get(),
            request.length.get(),
        );
        let chunk_len = self.manifest.chunk_len(chunk);
        if chunk >= self.chunk_count()
            || u64::from(offset) + u64::from(length) > u64::from(chunk_len)
        {
            let rejection = wire::Rejection {
                info_hash: self.manifest.info_hash,
                chunk,
                reason: RejectReason::BadRange,
            };
            self.send(to_us, &Message::Reject(rejection));
            return;
        }
        let piece_bytes = request.piece_bytes.get();
        let start = u64::from(chunk) * u64::from(CHUNK_BYTES);
        let mut at = offset;
        let mut count = 0u32;
        while at < offset + length {
            let len = piece_bytes.min(offset + length - at);
            let from = (start + u64::from(at)) as usize;
            let mut data = self.file[from..from + len as usize].to_vec();
            if flaws & 1 != 0 && count == 0 {
                data[0] ^= 0xff;
            }
            let lost = flaws & 2 != 0 && count % 2 == 1;
            let piece = wire::Piece {
                info_hash: self.manifest.info_hash,
                chunk: U32::new(chunk),
                offset: U32::new(at),
            };
            if !lost {
                match sent_us {
                    None => self.send(
                        to_us,
                        &Message::Piece {
                            fixed: &piece,
                            data: &data,
                        },
                    ),
                    Some(sent_us) => {
                        let fixed = wire::StampedPiece {
                            piece,
                            sent_us: U32::new(sent_us.wrapping_add(count)),
                        };
                        self.send(
                            to_us,
                            &Message::StampedPiece {
                                fixed: &fixed,
                                data: &data,
                            },
                        );
                    }
                }
            }
            at += len;
            count += 1;
        }
    }

    /// A piece nobody asked for: any chunk, offset and length, with the file's bytes there
    /// (when there are any) or wrong ones.
    pub fn forged_piece(&mut self, input: &mut Input<'_>) -> Option<()> {
        let from = self.address(input.byte()?);
        let chunk = u32::from(input.byte()? % 8);
        let offset = u32::from(input.u16()?);
        let len = usize::from(input.u16()?).clamp(1, 2 * super::PIECE_BYTES as usize);
        let wrong = input.byte()?;
        let start = u64::from(chunk) * u64::from(CHUNK_BYTES) + u64::from(offset);
        let mut data: Vec<u8> = (0..len as u64).map(|i| file_byte(start + i)).collect();
        if wrong & 1 != 0 {
            data[usize::from(wrong) % len] ^= wrong | 1;
        }
        let piece = wire::Piece {
            info_hash: self.manifest.info_hash,
            chunk: U32::new(chunk),
            offset: U32::new(offset),
        };
        self.send(
            from,
            &Message::Piece {
                fixed: &piece,
                data: &data,
            },
        );
        Some(())
    }

    /// A have-map of any chunk count and start, with bits from the input.
    pub fn forged_have_map(&mut self, input: &mut Input<'_>) -> Option<()> {
        let from = self.address(input.byte()?);
        let shape = input.byte()?;
        let chunk_count = if shape & 1 == 0 {
            self.chunk_count()
        } else {
            u32::from(shape >> 1)
        };
        let first_chunk = 8 * u32::from(input.byte()? % 4);
        let len = usize::from(input.byte()? % 8);
        let bitmap = input.take(len).to_vec();
        let fixed = wire::HaveMap {
            info_hash: self.manifest.info_hash,
            node_id: U32::new(self.node_id_of(from)),
            chunk_count: U32::new(chunk_count),
            first_chunk: U32::new(first_chunk),
        };
        self.send(
            from,
            &Message::HaveMap {
                fixed: &fixed,
                bitmap: &bitmap,
            },
        );
        Some(())
    }

    /// A manifest part with any first chunk and count, a shape and name that may be wrong,
    /// and hashes that may be.
    pub fn forged_manifest_part(&mut self, input: &mut Input<'_>) -> Option<()> {
        let from = self.address(input.byte()?);
        let first = u32::from(input.byte()? % 8);
        let count = usize::from(input.byte()? % 8);
        let flaws = input.byte()?;
        let mut hashes: Vec<Hash> = (0..count)
            .map(|i| {
                self.manifest
                    .hashes
                    .get(first as usize + i)
                    .copied()
                    .unwrap_or([i as u8; 20])
            })
            .collect();
        if flaws & 1 != 0
            && let Some(hash) = hashes.last_mut()
        {
            hash[19] ^= 0x55;
        }
        let file_bytes = if flaws & 2 != 0 {
            self.manifest.file_bytes + u64::from(CHUNK_BYTES)
        } else {
            self.manifest.file_bytes
        };
        let chunk_bytes = if flaws & 4 != 0 {
            2 * CHUNK_BYTES
        } else {
            CHUNK_BYTES
        };
        let name = if flaws & 8 != 0 {
            "other.bin".to_string()
        } else {
            self.manifest.name.clone()
        };
        let fixed = wire::ManifestPart {
            info_hash: self.manifest.info_hash,
            file_bytes: U64::new(file_bytes),
            chunk_bytes: U32::new(chunk_bytes),
            first_chunk: U32::new(first),
            hash_count: U16::new(count as u16),
            flags: 0,
            reserved: 0,
        };
        self.send(
            from,
            &Message::ManifestPart {
                fixed: &fixed,
                hashes: &hashes,
                name: &name,
            },
        );
        Some(())
    }

    /// A peer list naming holders, the stranger, or new addresses.
    pub fn peer_list(&mut self, input: &mut Input<'_>) -> Option<()> {
        let from = self.address(input.byte()?);
        let count = usize::from(input.byte()?) % (wire::PEERS_PER_EXCHANGE_MAX + 1);
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            let pick = input.byte()?;
            let addr = if pick & 0x80 == 0 {
                self.address(pick)
            } else {
                SocketAddr::from(([127, 0, 1, pick & 0x7f], 7000))
            };
            if !self.addresses.contains(&addr)
                && self.addresses.len() < HOLDERS + 1 + NAMED_ADDRESSES_MAX
            {
                self.addresses.push(addr);
            }
            // Now and then a holder's id at another address: a list may not redirect us.
            let node_id = if pick & 0x40 != 0 {
                node_id(usize::from(pick) % HOLDERS)
            } else {
                self.node_id_of(addr)
            };
            records.push(wire::PeerRecord {
                node_id: U32::new(node_id),
                port: U16::new(addr.port()),
                complete: pick & 1,
                reserved: 0,
                ip: wire::ip_to_bytes(addr.ip()),
            });
        }
        let fixed = wire::Peers {
            info_hash: self.manifest.info_hash,
            node_id: U32::new(self.node_id_of(from)),
            peer_count: U16::new(records.len() as u16),
            reserved: [0; 2],
        };
        self.send(
            from,
            &Message::Peers {
                fixed: &fixed,
                peers: &records,
            },
        );
        Some(())
    }

    pub fn node_id_of(&self, addr: SocketAddr) -> u32 {
        match self.addresses.iter().position(|a| *a == addr) {
            Some(index) => node_id(index),
            None => 1_000,
        }
    }
}

fn node_id(index: usize) -> u32 {
    11 + index as u32
}

/// The cookie the holder at `addr` hands out.
fn cookie_of(addr: SocketAddr) -> u64 {
    0xc00c_1e00_0000_0000
        | u64::from(addr.port()) << 8
        | u64::from(wire::ip_to_bytes(addr.ip())[15])
}
