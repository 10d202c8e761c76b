//! Datagram dispatch: each arriving datagram goes to the tracker link, the uploader or
//! the downloads, after the per-sender budget at the door.

use super::*;

impl Node {
    /// A datagram arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.out.stats.datagrams_received += 1;
        if from == self.tracker.addr() {
            let handled = self
                .tracker
                .handle_datagram(now, &mut self.out, &self.files, bytes);
            match handled {
                Ok(()) => {}
                Err(tracker_client::Dropped::Malformed) => self.out.stats.dropped_malformed += 1,
                Err(tracker_client::Dropped::Unexpected) => self.out.stats.dropped_unexpected += 1,
            }
            self.take_tracker_news(now);
            return;
        }
        let message = match wire::decode(bytes) {
            Ok(message) => message,
            Err(error) => {
                self.out.stats.dropped_malformed += 1;
                log::debug!("dropped datagram from {from}: {error}");
                return;
            }
        };
        match message {
            Message::HaveRequest(_)
            | Message::ManifestRequest(_)
            | Message::PieceRequest(_)
            | Message::PacedPieceRequest(_)
            | Message::MtuProbe(_)
                if self.budgets.admit(now, from) == Verdict::Drop =>
            {
                // Only requests count: what we asked for is never dropped here.
                self.out.stats.dropped_over_budget += 1;
            }
            Message::HaveRequest(_)
            | Message::ManifestRequest(_)
            | Message::PieceRequest(_)
            | Message::PacedPieceRequest(_)
            | Message::MtuProbe(_) => {
                if let Some((info_hash, asker)) =
                    self.uploader
                        .handle_request(&mut self.out, &self.files, now, from, &message)
                {
                    self.exchange_peers(now, from, info_hash, asker);
                }
            }
            Message::Peers { fixed, peers } => {
                let own = self.config.node_id;
                let mut ctx = self.context();
                if let Some(download) = ctx
                    .downloads
                    .iter_mut()
                    .find(|d| d.info_hash() == Some(fixed.info_hash) && !d.finished())
                {
                    download.handle_exchange(&mut ctx.parts, now, from, own, peers);
                } else {
                    self.out.stats.dropped_unexpected += 1;
                }
            }
            Message::Welcome(_) => {
                // A cookie is per address: every download using this peer needs it.
                let mut ctx = self.context();
                for download in ctx.downloads.iter_mut() {
                    let _ = download.handle_peer_message(&mut ctx.parts, now, from, &message);
                }
            }
            Message::HaveMap { .. }
            | Message::MtuProbeReply(_)
            | Message::ManifestPart { .. }
            | Message::Piece { .. }
            | Message::StampedPiece { .. }
            | Message::Reject(_) => {
                let mut ctx = self.context();
                let mut progressed = None;
                for download in ctx.downloads.iter_mut() {
                    if let Some(result) =
                        download.handle_peer_message(&mut ctx.parts, now, from, &message)
                    {
                        progressed = Some(result);
                        break;
                    }
                }
                match progressed {
                    Some(download::Handled::Consumed) => {}
                    Some(download::Handled::ManifestReady(info_hash)) => {
                        self.after_progress(now, info_hash)
                    }
                    None => {
                        if let Message::Piece { .. } | Message::StampedPiece { .. } = message {
                            self.out.stats.pieces_unrequested += 1;
                        } else {
                            self.out.stats.dropped_unexpected += 1;
                        }
                    }
                }
            }
            _ => {
                self.out.stats.dropped_unexpected += 1;
                log::debug!(
                    "dropped {:?} from {from}: not a peer message",
                    message.kind()
                );
            }
        }
        self.fill_windows(now);
    }
}
