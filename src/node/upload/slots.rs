//! Upload slots: which few peers a holder serves at once, for how long, and whether its
//! upload is in demand. See the uploader's module doc for why a holder serves a few peers
//! at a time.
//!
//! Whether a peer still has pieces queued is the uploader's to say (its queues), so the
//! methods that judge a slot idle take it as `queued(peer)`.

use super::rate;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most peers served pieces at once (see the uploader's module doc). Peers whose slot
/// ended keep being sent what they asked before, so `UPLOAD_TASKS_MAX` bounds those.
pub const UPLOAD_SLOTS_MAX: usize = 4;
/// How long a peer holds a slot while others are refused, at least; a slow uploader keeps
/// it longer, for [`SLOT_TURN_CHUNKS`] chunks of the peer's share of the measured rate, at
/// most [`SLOT_TURN_MAX`].
pub const SLOT_TURN: Duration = Duration::from_millis(500);
const SLOT_TURN_CHUNKS: u32 = 2;
const SLOT_TURN_MAX: Duration = Duration::from_secs(4);
/// A slot whose peer has had nothing queued and asked nothing for this long is free again.
/// Counted from its last piece sent as well as from its last request: a downloader asks for
/// more as pieces arrive, a round trip after they leave, and one that asked for the start of
/// a chunk waits for its first piece before asking for the rest (see `transfer.rs`); counted
/// from the request alone, the slot went to another peer while that piece was on its way,
/// at a round trip of 20 ms mid-chunk, and the chunk's rest waited seconds for a new slot.
pub const SLOT_IDLE: Duration = Duration::from_millis(100);
/// A peer refused this recently counts as waiting for a slot.
const WAITING_RECENT: Duration = Duration::from_secs(1);

/// A peer allowed to queue pieces.
struct Slot {
    to: SocketAddr,
    granted_at: Instant,
    /// How long it keeps the slot while others are refused.
    turn: Duration,
    /// Its last range accepted stops short of the chunk's end: its turn waits for the rest
    /// (a chunk left half-sent helps nobody, and a spreading holder would offer it again).
    mid_chunk: bool,
    /// When it last asked for pieces, or its last queued piece left: see [`SLOT_IDLE`].
    last_active: Instant,
}

impl Slot {
    /// Nothing queued for the slot's peer, and it asked nothing for [`SLOT_IDLE`].
    fn idle(&self, now: Instant, queued: &impl Fn(SocketAddr) -> bool) -> bool {
        now.saturating_duration_since(self.last_active) >= SLOT_IDLE && !queued(self.to)
    }
}

/// The peers being served, at most [`UPLOAD_SLOTS_MAX`].
pub struct Slots {
    slots: Vec<Slot>,
    /// How many slots the measured upload rate allows (see [`rate::slots_for`]).
    allowed: usize,
    /// When a piece request was last refused for want of a slot.
    refused_at: Option<Instant>,
}

impl Default for Slots {
    fn default() -> Self {
        Slots {
            slots: Vec::new(),
            allowed: UPLOAD_SLOTS_MAX,
            refused_at: None,
        }
    }
}

impl Slots {
    /// Whether `from` may queue pieces now: it holds a slot, or one is free and it gets it.
    /// How many are free depends on the measured upload rate (`bytes_per_s`): a node that
    /// can send only a chunk or so in [`rate::SLOT_CHUNK_TIME`] serves one peer at a time
    /// (shared by four, each would wait four times as long for every chunk, and pass it on
    /// that much later).
    pub fn take(
        &mut self,
        now: Instant,
        from: SocketAddr,
        chunk_bytes: u32,
        bytes_per_s: Option<u64>,
        queued: impl Fn(SocketAddr) -> bool,
    ) -> bool {
        self.allowed = rate::slots_for(bytes_per_s, chunk_bytes, UPLOAD_SLOTS_MAX);
        let waiting = self.waiting(now);
        self.slots.retain(|slot| {
            // Its turn is over while others wait: what it asked before is still sent.
            let held = now.saturating_duration_since(slot.granted_at);
            let over = waiting && held >= slot.turn && (!slot.mid_chunk || held >= SLOT_TURN_MAX);
            !slot.idle(now, &queued) && !over
        });
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.to == from) {
            slot.last_active = now;
            return true;
        }
        if self.slots.len() < self.allowed {
            let turn = bytes_per_s.map_or(SLOT_TURN, |rate| {
                let share = (rate / self.allowed as u64).max(1);
                let nanos = u128::from(chunk_bytes) * u128::from(SLOT_TURN_CHUNKS) * 1_000_000_000
                    / u128::from(share);
                Duration::from_nanos(nanos.min(SLOT_TURN_MAX.as_nanos()) as u64).max(SLOT_TURN)
            });
            self.slots.push(Slot {
                to: from,
                granted_at: now,
                turn,
                mid_chunk: false,
                last_active: now,
            });
            return true;
        }
        self.refused_at = Some(now);
        false
    }

    /// A peer was refused a slot lately.
    fn waiting(&self, now: Instant) -> bool {
        self.refused_at
            .is_some_and(|t| now.saturating_duration_since(t) < WAITING_RECENT)
    }

    /// Every slot is in use, or a peer was refused lately; but a node with nothing queued
    /// (`tasks` 0) and every slot idle is not in demand, whoever was refused a moment ago:
    /// showing only its least-sent chunks then leaves its upload idle while the swarm waits
    /// on chunks it does not show (the simulation had the holder idle for 0.5 s while 198
    /// downloaders lacked a chunk two slow ones held).
    pub fn in_demand(
        &self,
        now: Instant,
        tasks: usize,
        queued: impl Fn(SocketAddr) -> bool,
    ) -> bool {
        let in_use = self
            .slots
            .iter()
            .filter(|slot| !slot.idle(now, &queued))
            .count();
        if in_use == 0 && tasks == 0 {
            return false;
        }
        in_use >= self.allowed || self.waiting(now)
    }

    /// `peer`'s last range stops short of its chunk's end (or does not).
    pub fn set_mid_chunk(&mut self, peer: SocketAddr, mid_chunk: bool) {
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.to == peer) {
            slot.mid_chunk = mid_chunk;
        }
    }

    /// `peer`'s last queued piece just left: its slot is not idle yet.
    pub fn sent_last(&mut self, peer: SocketAddr, now: Instant) {
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.to == peer) {
            slot.last_active = now;
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }
}
