//! What a connection does with the peer's bytes: the handshake and its answer, then each
//! message in turn (requests checked and queued, cancels, BEP 9 requests answered).

use super::{Close, Connection, Open, REQUESTS_QUEUED_MAX, SeedFile, WRITE_BUFFER_BYTES_MAX};
use crate::peer_wire::{
    Block, DecodeError, Decoded, EXTENDED_HANDSHAKE_ID, HANDSHAKE_BYTES, Handshake,
    METADATA_PIECE_BYTES, Message, Metadata, Needs, OUR_UT_METADATA_ID, OurExtendedHandshake,
    UT_METADATA, decode, decode_extended_handshake, decode_handshake, decode_metadata,
    encode_extended_handshake, metadata_piece_len,
};
use crate::wire::Hash;
use std::collections::VecDeque;
use std::sync::Arc;

impl Connection {
    /// Reads the peer's handshake, and answers it. False while it is not whole or once the
    /// connection is closed.
    pub(super) fn read_handshake(
        &mut self,
        lookup: &mut dyn FnMut(&Hash) -> Option<SeedFile>,
    ) -> bool {
        let theirs = match decode_handshake(&self.read_buf) {
            Ok(Decoded::NeedBytes(_)) => return false,
            Ok(Decoded::Whole { value, .. }) => *value,
            Err(_) => {
                self.close(Close::NotBitTorrent);
                return false;
            }
        };
        if theirs.peer_id == self.our_peer_id {
            self.close(Close::Ourselves);
            return false;
        }
        let Some(file) = lookup(&theirs.info_hash) else {
            self.close(Close::UnknownInfoHash);
            return false;
        };
        self.read_buf.drain(..HANDSHAKE_BYTES);
        let ours = Handshake::ours(theirs.info_hash, self.our_peer_id);
        self.write_buf.extend_from_slice(ours.as_bytes());
        if theirs.extensions() {
            let extended = encode_extended_handshake(&OurExtendedHandshake {
                metadata_bytes: u32::try_from(file.info.len()).ok(),
                listen_port: None,
                request_queue: REQUESTS_QUEUED_MAX as u32,
                udp_port: Some(self.udp_port),
            });
            self.push(&Message::Extended {
                id: EXTENDED_HANDSHAKE_ID,
                payload: &extended,
            });
        }
        let fast = theirs.fast();
        if fast {
            self.push(&Message::HaveAll);
        } else {
            let mut bits = vec![0xffu8; file.piece_count.div_ceil(8) as usize];
            let spare = bits.len() as u32 * 8 - file.piece_count;
            if let Some(last) = bits.last_mut() {
                *last = 0xff << spare;
            }
            self.push(&Message::Bitfield(&bits));
        }
        self.open = Some(Open {
            file,
            fast,
            extensions: theirs.extensions(),
            peer_ut_metadata: None,
            interested: false,
            choked: true,
            requests: VecDeque::new(),
        });
        true
    }

    /// Reads whole messages from the read buffer while the write buffer has room.
    pub(super) fn read_messages(&mut self) {
        let mut taken = 0;
        while self.closed.is_none() && self.write_pending() < WRITE_BUFFER_BYTES_MAX {
            let buf = std::mem::take(&mut self.read_buf);
            let decoded = decode(&buf[taken..]);
            let step = match decoded {
                Ok(Decoded::NeedBytes(_)) => None,
                Ok(Decoded::Whole { value, len }) => {
                    self.handle_message(&value);
                    Some(len)
                }
                Err(error) => match error.skip_bytes() {
                    Some(len) => {
                        if let DecodeError::RequestTooLong { block, .. } = error {
                            self.refuse_request(&block);
                        }
                        Some(len)
                    }
                    None => {
                        self.close(Close::BadMessage(error));
                        None
                    }
                },
            };
            if self.closed.is_some() {
                return;
            }
            self.read_buf = buf;
            match step {
                Some(len) => taken += len,
                None => break,
            }
        }
        self.read_buf.drain(..taken);
    }

    fn handle_message(&mut self, message: &Message<'_>) {
        let Some(open) = &mut self.open else { return };
        let allowed = match message.needs() {
            Needs::Nothing => true,
            Needs::Fast => open.fast,
            Needs::Extensions => open.extensions,
        };
        if !allowed {
            self.close(Close::ProtocolViolation);
            return;
        }
        match *message {
            Message::Interested => open.interested = true,
            Message::NotInterested => open.interested = false,
            Message::Request(block) => self.take_request(block),
            Message::Cancel(block) => {
                let before = open.requests.len();
                open.requests.retain(|queued| queued != block);
                // BEP 6: a Fast peer gets a piece or a reject for every request.
                if open.fast && open.requests.len() < before {
                    self.push_reject(block);
                }
            }
            Message::Extended { id, payload } => self.handle_extended(id, payload),
            // We seed: what the peer has, its choking of us, its blocks, its DHT port,
            // suggestions and allowed fast pieces change nothing.
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Have { .. }
            | Message::Bitfield(_)
            | Message::Piece { .. }
            | Message::Port(_)
            | Message::Suggest { .. }
            | Message::HaveAll
            | Message::HaveNone
            | Message::RejectRequest(_)
            | Message::AllowedFast { .. }
            | Message::Unknown { .. } => {}
        }
    }

    /// Queues a request after checking it against the file and the queue's bound.
    fn take_request(&mut self, block: &Block) {
        let Some(open) = &mut self.open else { return };
        if open.choked {
            // BEP 6: rejected; BEP 3: a request while choked is simply dropped.
            if open.fast {
                self.push_reject(block);
            }
            return;
        }
        let (piece, begin, length) = (block.piece.get(), block.begin.get(), block.length.get());
        let in_range = open.file.piece_len(piece).is_some_and(|piece_len| {
            begin
                .checked_add(length)
                .is_some_and(|end| end <= piece_len)
        });
        if !in_range || open.requests.len() >= REQUESTS_QUEUED_MAX {
            self.refuse_request(block);
            return;
        }
        open.requests.push_back(*block);
    }

    /// A request we will not serve: a reject for a Fast peer, the end for another.
    fn refuse_request(&mut self, block: &Block) {
        self.refused_requests += 1;
        match &self.open {
            Some(open) if open.fast => self.push_reject(block),
            _ => self.close(Close::BadRequest),
        }
    }

    fn handle_extended(&mut self, id: u8, payload: &[u8]) {
        let Some(open) = &mut self.open else { return };
        match id {
            EXTENDED_HANDSHAKE_ID => match decode_extended_handshake(payload) {
                Ok(handshake) => open.peer_ut_metadata = handshake.message_id(UT_METADATA),
                Err(error) => self.close(Close::BadMessage(error)),
            },
            OUR_UT_METADATA_ID => {
                let piece = match decode_metadata(payload) {
                    Ok(Metadata::Request { piece }) => piece,
                    // Data and rejects are for a peer that asked: we did not.
                    Ok(_) => return,
                    Err(error) => {
                        self.close(Close::BadMessage(error));
                        return;
                    }
                };
                // A peer that gave BEP 9 no id cannot be answered.
                let Some(their_id) = open.peer_ut_metadata else {
                    return;
                };
                let info = Arc::clone(&open.file.info);
                let total = info.len() as u32;
                let reply = match metadata_piece_len(total, piece) {
                    Some(len) => {
                        let start = piece as usize * METADATA_PIECE_BYTES as usize;
                        self.metadata_pieces_sent += 1;
                        Metadata::Data {
                            piece,
                            total_bytes: total,
                            data: &info[start..start + len],
                        }
                    }
                    None => Metadata::Reject { piece },
                };
                let mut payload = vec![0u8; METADATA_PIECE_BYTES as usize + 256];
                match reply.encode(&mut payload) {
                    Ok(len) => self.push(&Message::Extended {
                        id: their_id,
                        payload: &payload[..len],
                    }),
                    Err(error) => log::error!("peer wire: cannot encode metadata: {error:?}"),
                }
            }
            // Extensions we did not offer: ignored, as BEP 10 says.
            _ => {}
        }
    }
}
