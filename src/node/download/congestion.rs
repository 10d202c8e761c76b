//! The pace a downloader asks of each holder across a network: a small model of the path's
//! bottleneck in the manner of BBR (Cardwell et al., 2016), run at the receiver, with
//! BBRv2's answer to policers and a loss threshold instead of reacting to every loss.
//!
//! **Why this model.** Three were studied. LEDBAT (RFC 6817, uTP) grows a window until a
//! target one-way delay (100 ms) and yields to TCP; it reads every loss as congestion and
//! halves, which on a path with 1% random loss keeps it far below the link (issue 14's goal
//! is 0.9× TCP there), and a 100 ms target is a full tbf queue. A window that halves on loss
//! (our unpaced rule, Reno's) has the same flaw and dumps each window at line rate into a
//! shallow queue. BBR models the bottleneck's rate and the path's smallest delay, paces at
//! the rate, and is insensitive to random loss by construction: that is what the goals ask
//! (fill a link whatever its random loss, keep a 4 MB queue short, keep a 256 KB queue from
//! overflowing). Running it at the receiver suits a receiver-driven transfer: the receiver
//! sees directly the bytes that reach it per unit of time, which a sender has to infer from
//! acknowledgements, and it already owns the request window and the loss detection. The
//! holder only keeps the pace a request carries (`node::upload::pacer`, bursts of 2 ms as
//! quinn-proto's pacer sends them).
//!
//! **What it trusts.**
//! * *Delivery rate*: each round (about a round trip, at least [`ROUND_MIN`]) gives the bytes
//!   that arrived over its length, or over the time the holder took to send them when that
//!   was longer (its stamps say; a receiver that read a batch late would otherwise count a
//!   few milliseconds of the path twice); the bottleneck estimate is the largest sample of
//!   the last [`BANDWIDTH_ROUNDS`] rounds. Pieces that arrive after their request timed out count:
//!   they crossed the bottleneck. A round that is short of requests gives a low sample that
//!   the maximum ignores.
//! * *Loss, as a rate over enough pieces*: losses (time-outs) are counted over intervals of
//!   at least [`LOSS_INTERVAL_PIECES`] pieces settled (arrived or lost). A rate below
//!   [`LOSS_PERCENT_POLICED`] is random loss and changes nothing: 1% or 3% of pieces lost on
//!   a clean link do not slow it. Above it, something drops what exceeds a rate (a policer,
//!   a shallow queue overflowing): the pace is held at the rate delivered during that
//!   interval for [`POLICED_HOLD_ROUNDS`] rounds without probing (BBRv1's long-term rate,
//!   BBRv2's loss threshold), so that probing does not keep feeding the policer. An interval
//!   during which a queue stood is not a policer (a policer queues nothing) but a queue
//!   overflowing, answered below.
//! * *Loss while a queue stands*: the queue overflows. Alone on the path, our own probe
//!   did it; beside a flow that fills every queue until it loses (TCP), holding the rate
//!   that gets through cedes the link to it a little more at each of its slow starts and
//!   cuts (ours got 7-15% of a shared tbf, 2026-12-07). So the shared phase does what that
//!   flow does: cut ([`SHARED_DECREASE_PERCENT`], at most once per
//!   [`SHARED_CUT_ROUNDS_MIN`] rounds) and grow by a datagram per round trip, never above
//!   the estimate, until the queue is gone.
//! * *One-way queueing delay*, as uTP and LEDBAT measure it: each piece carries the holder's
//!   clock when it left; our clock at arrival less that stamp is the delay plus an unknown
//!   offset, which cancels against the smallest such difference seen. A round trip would
//!   also count the time requests wait in the holder's own pacing queue, which we cause on
//!   purpose. Only the smallest delay of a round counts.
//!
//! **What it ignores.** CPU scheduling delay: a receiver (or holder) not scheduled for a
//! few milliseconds reads (or sends) every piece of the batch it then drains late, but the
//! pieces after the batch are on time again, and a round lasts at least [`ROUND_MIN`]: its
//! smallest delay is one of those. Only a queue that stands a whole round counts. A single
//! late piece. Loss below the threshold.
//!
//! **The cycle.** Startup multiplies the pace by [`STARTUP_GAIN_PERCENT`]% each round until
//! the delivery rate stops growing, a queue stands or a loss interval crosses the threshold;
//! rounds at the inverse gain drain what it queued (none when no queue stands); then rounds
//! cycle through
//! [`PROBE_GAINS`]: one at 5/4 finds out whether more gets through, the next at 3/4 drains
//! the queue that probe built, six at the estimate. A standing queue above
//! [`QUEUE_DELAY_MAX`] sets the next round to the delivery rate.
//!
//! Where it runs: toward peers across a network by default (`--pace net`); on loopback-class
//! routes (and in the simulation) it measures but does not pace unless `--pace all`, see
//! `node::PaceMode` and bench/README.md for why.

use std::time::{Duration, Instant};

/// Shortest round: the holder paces in bursts of about 2 ms, and a round of two bursts
/// could read one burst more or less as a 50% error in the delivery rate; ten make it 10%.
pub const ROUND_MIN: Duration = Duration::from_millis(10);
/// Shortest round in startup. Startup only keeps the largest sample and multiplies it, so
/// a round read low costs little, while its length is what a transfer waits for the link:
/// from [`PACE_START`] to 300 MB/s takes six rounds, 60 ms of 10 ms rounds, which on the
/// clean netlab link was a quarter of a 32 MiB transfer (2026-12-07).
pub const STARTUP_ROUND_MIN: Duration = Duration::from_millis(5);
/// Rounds whose largest delivery rate is the bottleneck estimate.
pub const BANDWIDTH_ROUNDS: usize = 10;
/// A round that delivered less than this share (in percent) of the pace it asked, with no
/// queue and no loss, was held back by something other than the path (a process not
/// scheduled, our own window): its sample does not lower the estimate.
pub const LIMITED_BY_PATH_PERCENT: u64 = 75;
/// Pace before anything was measured, bytes per second.
pub const PACE_START: u64 = 8 << 20;
/// Slowest pace ever asked, bytes per second.
pub const PACE_MIN: u64 = 64 << 10;
/// Startup's gain (2/ln 2, BBR's), in percent.
pub const STARTUP_GAIN_PERCENT: u64 = 289;
/// Startup ends after this many rounds in a row without 25% more delivered.
pub const STARTUP_FLAT_ROUNDS: u32 = 3;
/// A round's smallest one-way delay this far above the path's smallest is a queue: startup
/// ends, and the drain after it lasts until the queue is below half of it.
pub const STARTUP_QUEUE_DELAY: Duration = Duration::from_millis(5);
/// In startup, pieces that queued above [`STARTUP_QUEUE_DELAY`] for this long in a row end
/// it at once, without waiting for the round: at its gain, a round's excess is a lot of
/// queue. (A receiver not scheduled for a while drains the batch that waited in well under
/// this, and the pieces after it are on time.)
pub const STARTUP_QUEUE_STANDING: Duration = Duration::from_millis(3);
/// Most rounds a drain lasts.
pub const DRAIN_ROUNDS_MAX: u32 = 10;
/// The gains of the probing cycle, in percent, one per round.
pub const PROBE_GAINS: [u64; 8] = [125, 75, 100, 100, 100, 100, 100, 100];
/// Loss rates are judged over at least this many pieces settled (arrived or timed out):
/// at 3% random loss, 256 pieces lose 8 on average and more than 20 (the threshold below)
/// about once in ten thousand intervals.
pub const LOSS_INTERVAL_PIECES: u32 = 256;
/// An interval that lost more than this share of its pieces (in percent) met something that
/// drops what exceeds a rate: a policer, or a queue overflowing. Random loss stays below
/// (the goals go up to 3%).
pub const LOSS_PERCENT_POLICED: u32 = 8;
/// Intervals in a row above [`LOSS_PERCENT_POLICED`] it takes to say policed: time-outs come
/// in batches (a scan finds every piece of a run at once), so one interval can read high.
pub const POLICED_INTERVALS: u32 = 2;
/// Rounds the pace stays at the rate a policed interval delivered, without probing.
pub const POLICED_HOLD_ROUNDS: u32 = 100;
/// Loss counted in the first rounds of a hold belongs to pieces sent before it (a time-out
/// is counted up to a second late): only later intervals say whether the hold stopped it.
pub const POLICED_SETTLE_ROUNDS: u32 = 20;
/// Pieces in flight from a paced peer cover its pace over twice the smallest round trip
/// plus this (BBR's in-flight cap of two bandwidth-delay products, plus room for the
/// holder's 2 ms bursts and our own reaction time): more would only wait in the holder's
/// pacing queue, where a request that waits longer than the retransmission timeout (at
/// least 40 ms) is taken for lost, asked again and sent twice.
pub const IN_FLIGHT_EXTRA: Duration = Duration::from_millis(20);
/// The in-flight cap is never below this many pieces.
pub const IN_FLIGHT_PIECES_MIN: u32 = 4;
/// A standing queue longer than this makes the next round go at the delivery rate.
pub const QUEUE_DELAY_MAX: Duration = Duration::from_millis(10);
/// In a queue shared with a flow that fills it (TCP), a round that lost pieces cuts the
/// pace to this share (in percent) of what it was. TCP's CUBIC cuts its window to 70%.
pub const SHARED_DECREASE_PERCENT: u64 = 85;
/// Rounds between two cuts. A paced flow loses a piece at nearly every overflow of a
/// tail-drop queue, since its pieces arrive evenly, while TCP's arrive in bursts and a
/// whole window's losses cost it one cut: on the netlab's tbf, cut once per loss every
/// other round, ours settled at 2 MB/s beside TCP's 10 (2026-12-07). With this many rounds
/// between cuts, growing as TCP grows, the two settle near halves of the link.
pub const SHARED_CUT_ROUNDS_MIN: u32 = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Startup {
        flat_rounds: u32,
        best: u64,
    },
    Drain {
        rounds: u32,
    },
    Probe {
        cycle: usize,
    },
    /// A policer was met: pace at `rate` until `rounds_left` reaches 0.
    Policed {
        rate: u64,
        rounds_left: u32,
    },
    /// A queue stands and overflows: another flow fills it (a TCP flow does, until it
    /// loses). Pace at `rate`, grown by a datagram per round trip and cut on loss, as TCP
    /// grows and cuts its window, so that the two converge to halves of the link.
    Shared {
        rate: u64,
        rounds_since_cut: u32,
    },
}

/// One round being measured.
#[derive(Clone, Copy, Debug)]
struct Round {
    started_at: Instant,
    bytes: u64,
    /// Smallest one-way delay of the round above the path's base, microseconds.
    queue_delay_us: Option<u32>,
    /// Pieces found lost during the round.
    lost: u32,
    /// The holder's stamps of the earliest and latest piece sent of those that arrived in
    /// the round, microseconds of its clock (wrapping).
    sent_us: Option<(u32, u32)>,
}

impl Round {
    fn new(now: Instant) -> Round {
        Round {
            started_at: now,
            bytes: 0,
            queue_delay_us: None,
            lost: 0,
            sent_us: None,
        }
    }
}

/// Pieces settled since a loss interval began: arrived (and their bytes) or timed out.
#[derive(Clone, Copy, Debug)]
struct LossInterval {
    started_at: Instant,
    bytes: u64,
    arrived: u32,
    lost: u32,
    /// A round of the interval ended with a standing queue (above [`QUEUE_DELAY_MAX`]):
    /// its losses are a queue overflowing, not a policer, which queues nothing.
    queue_stood: bool,
}

impl LossInterval {
    fn new(now: Instant) -> LossInterval {
        LossInterval {
            started_at: now,
            bytes: 0,
            arrived: 0,
            lost: 0,
            queue_stood: false,
        }
    }
}

/// The pace model of one path (one holder, as seen by this downloader).
#[derive(Clone, Debug)]
pub struct Congestion {
    phase: Phase,
    /// Delivery rates of the last rounds, bytes per second (a ring).
    samples: [u64; BANDWIDTH_ROUNDS],
    rounds: usize,
    round: Round,
    loss: LossInterval,
    rtt_min: Option<Duration>,
    /// Our clock's zero for one-way delays.
    epoch: Instant,
    /// The smallest (our clock − the holder's stamp) seen, microseconds, wrapping: the
    /// one-way delay without a queue, plus the clocks' offset.
    base_offset_us: Option<u32>,
    /// The last round's queueing delay was above [`QUEUE_DELAY_MAX`].
    queued: bool,
    /// Since when every piece arrived with a queue above [`STARTUP_QUEUE_DELAY`].
    late_since: Option<Instant>,
    /// The last round's delivery rate.
    last_delivered: u64,
    /// The last round's queueing delay (its smallest one-way delay above the base).
    last_queue_delay: Duration,
    /// The size of the last piece's datagram: what TCP would add per round trip.
    datagram_bytes: u64,
    /// Loss intervals judged policed, for tests.
    policed_intervals: u32,
    /// Loss intervals in a row above [`LOSS_PERCENT_POLICED`].
    lossy_intervals: u32,
}

impl Congestion {
    pub fn new(now: Instant) -> Congestion {
        Congestion {
            phase: Phase::Startup {
                flat_rounds: 0,
                best: 0,
            },
            samples: [0; BANDWIDTH_ROUNDS],
            rounds: 0,
            round: Round::new(now),
            loss: LossInterval::new(now),
            rtt_min: None,
            epoch: now,
            base_offset_us: None,
            queued: false,
            late_since: None,
            last_delivered: 0,
            last_queue_delay: Duration::ZERO,
            datagram_bytes: 0,
            policed_intervals: 0,
            lossy_intervals: 0,
        }
    }

    /// The bottleneck estimate, bytes per second (0 before the first round).
    pub fn bandwidth(&self) -> u64 {
        self.samples.iter().copied().max().unwrap_or(0)
    }

    /// Loss intervals so far whose loss rate said a policer (or an overflowing queue).
    #[cfg(test)]
    pub fn policed_intervals(&self) -> u32 {
        self.policed_intervals
    }

    /// The pace to ask for now, bytes per second.
    pub fn pace(&self) -> u64 {
        let bandwidth = self.bandwidth();
        let pace = match self.phase {
            Phase::Startup { .. } if bandwidth == 0 => PACE_START,
            Phase::Startup { .. } => bandwidth * STARTUP_GAIN_PERCENT / 100,
            Phase::Drain { .. } => bandwidth * 100 / STARTUP_GAIN_PERCENT,
            Phase::Policed { rate, .. } | Phase::Shared { rate, .. } => rate,
            Phase::Probe { .. } if self.queued => self.last_delivered.min(bandwidth),
            Phase::Probe { cycle } => bandwidth * PROBE_GAINS[cycle] / 100,
        };
        pace.max(PACE_MIN)
    }

    /// Most pieces to keep in flight from this path when each takes `datagram_bytes`: what
    /// the pace delivers in two smallest round trips, the queue that stood in the last round
    /// and [`IN_FLIGHT_EXTRA`]. A queue another flow keeps standing delays every piece by as
    /// much; without it in the cap, pieces in flight, not the pace, would bound the rate.
    pub fn in_flight_pieces_max(&self, datagram_bytes: u32) -> u32 {
        let time =
            self.rtt_min.unwrap_or(Duration::ZERO) * 2 + self.last_queue_delay + IN_FLIGHT_EXTRA;
        let bytes = u128::from(self.pace()) * time.as_nanos() / 1_000_000_000;
        let pieces = bytes / u128::from(datagram_bytes.max(1));
        (pieces.min(u128::from(u32::MAX)) as u32).max(IN_FLIGHT_PIECES_MIN)
    }

    /// A piece of `bytes` arrived at `now`, stamped `sent_us` by its holder; `rtt` is its
    /// round trip when it answered a request still counted (a piece that arrives after its
    /// request timed out has none, and its bytes count all the same: they crossed the
    /// bottleneck).
    pub fn on_piece(
        &mut self,
        now: Instant,
        bytes: u64,
        rtt: Option<Duration>,
        sent_us: Option<u32>,
    ) {
        self.end_round_if_due(now);
        self.round.bytes += bytes;
        self.datagram_bytes = bytes;
        self.loss.bytes += bytes;
        self.loss.arrived += 1;
        if rtt.is_none() {
            // Its request timed out and was counted lost: it was only late.
            self.loss.lost = self.loss.lost.saturating_sub(1);
        }
        self.end_loss_interval_if_due(now);
        if let Some(rtt) = rtt {
            self.rtt_min = Some(self.rtt_min.map_or(rtt, |min| min.min(rtt)));
        }
        // An unstamped piece (too large to carry the stamp) says nothing of the queue.
        let Some(sent_us) = sent_us else {
            return;
        };
        self.round.sent_us = Some(match self.round.sent_us {
            None => (sent_us, sent_us),
            // Differences of nearby stamps, read as signed, as below.
            Some((first, last)) => (
                if (sent_us.wrapping_sub(first) as i32) < 0 {
                    sent_us
                } else {
                    first
                },
                if (sent_us.wrapping_sub(last) as i32) > 0 {
                    sent_us
                } else {
                    last
                },
            ),
        });
        let local_us = now.saturating_duration_since(self.epoch).as_micros() as u32;
        let offset = local_us.wrapping_sub(sent_us);
        let base = *self.base_offset_us.get_or_insert(offset);
        // Differences of nearby values, read as signed: a smaller offset is a new base.
        let above = offset.wrapping_sub(base) as i32;
        let queue_delay_us = if above < 0 {
            self.base_offset_us = Some(offset);
            0
        } else {
            above as u32
        };
        self.round.queue_delay_us = Some(
            self.round
                .queue_delay_us
                .map_or(queue_delay_us, |min| min.min(queue_delay_us)),
        );
        if Duration::from_micros(u64::from(queue_delay_us)) <= STARTUP_QUEUE_DELAY {
            self.late_since = None;
        } else {
            let since = *self.late_since.get_or_insert(now);
            if matches!(self.phase, Phase::Startup { .. })
                && now.saturating_duration_since(since) >= STARTUP_QUEUE_STANDING
            {
                self.phase = Phase::Drain { rounds: 0 };
            }
        }
    }

    /// `pieces` requested from this path timed out.
    pub fn on_loss(&mut self, now: Instant, pieces: u32) {
        self.end_round_if_due(now);
        self.round.lost = self.round.lost.saturating_add(pieces);
        self.loss.lost = self.loss.lost.saturating_add(pieces);
        self.end_loss_interval_if_due(now);
    }

    fn round_length(&self) -> Duration {
        let least = match self.phase {
            Phase::Startup { .. } => STARTUP_ROUND_MIN,
            _ => ROUND_MIN,
        };
        self.rtt_min.map_or(least, |rtt| rtt.max(least))
    }

    /// Judges the loss interval once it has enough pieces: above the threshold, the pace
    /// holds at what the interval delivered.
    fn end_loss_interval_if_due(&mut self, now: Instant) {
        let settled = self.loss.arrived.saturating_add(self.loss.lost);
        if settled < LOSS_INTERVAL_PIECES {
            return;
        }
        let interval = std::mem::replace(&mut self.loss, LossInterval::new(now));
        if interval.arrived == 0 {
            // Nothing got through at all: a policer passes its rate, so this is a path that
            // went dark (a route down, or a black hole for the size asked), which the
            // timeouts and the path search answer. Pacing at what arrived, nothing, would
            // only slow whatever comes after it.
            self.lossy_intervals = 0;
            return;
        }
        // A policer queues nothing: loss with a standing queue is a queue overflowing,
        // which the shared phase answers round by round.
        let lossy = !interval.queue_stood
            && u64::from(interval.lost) * 100
                > u64::from(settled) * u64::from(LOSS_PERCENT_POLICED);
        self.lossy_intervals = if lossy { self.lossy_intervals + 1 } else { 0 };
        if self.lossy_intervals < POLICED_INTERVALS {
            return;
        }
        self.lossy_intervals = 0;
        if let Phase::Policed { rounds_left, .. } = self.phase {
            if rounds_left + POLICED_SETTLE_ROUNDS > POLICED_HOLD_ROUNDS {
                // Time-outs of pieces sent before the hold, counted late.
                return;
            }
            // As lossy at the rate that got through as above it: the loss does not come
            // from our rate (a policer or a full queue pass their rate without loss), so
            // slowing down would not help. Probe again.
            log::debug!(
                "{} of {settled} pieces lost at the policed rate: random loss, not a policer",
                interval.lost
            );
            self.phase = Phase::Probe { cycle: 0 };
            return;
        }
        let elapsed = now.saturating_duration_since(interval.started_at);
        let delivered =
            (u128::from(interval.bytes) * 1_000_000_000 / elapsed.as_nanos().max(1)) as u64;
        // What got through while the rest was dropped is the rate that gets through; a
        // policer's burst allowance can make it more than the policer's rate, so the smaller
        // of it and the current estimate.
        let bandwidth = self.bandwidth();
        let rate = if bandwidth == 0 {
            delivered
        } else {
            delivered.min(bandwidth)
        }
        .max(PACE_MIN);
        for sample in self.samples.iter_mut() {
            *sample = (*sample).min(rate);
        }
        log::debug!(
            "{} of {settled} pieces lost: paced at {rate} bytes/s for {POLICED_HOLD_ROUNDS} rounds",
            interval.lost
        );
        self.policed_intervals = self.policed_intervals.saturating_add(1);
        self.phase = Phase::Policed {
            rate,
            rounds_left: POLICED_HOLD_ROUNDS,
        };
    }

    fn end_round_if_due(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.round.started_at);
        if elapsed < self.round_length() {
            return;
        }
        let round = std::mem::replace(&mut self.round, Round::new(now));
        // A round in which nothing arrived says nothing of the path (we asked for nothing).
        if round.bytes == 0 {
            return;
        }
        // What arrived over the longer of the round and the time the holder took to send it
        // (BBR's guard against compressed acknowledgements): a receiver not scheduled for a
        // few milliseconds reads a batch late, and a round that ends just after it holds more
        // than the path carried in the round. The holder's clock says how long that batch
        // took to send; on the netlab's 12.5 MB/s bottleneck, rounds read up to 21 MB/s
        // without this, and the probes that followed overflowed its queue (2026-12-07).
        let send_span = round.sent_us.map_or(Duration::ZERO, |(first, last)| {
            Duration::from_micros(u64::from(last.wrapping_sub(first)))
        });
        let span = elapsed.max(send_span);
        let delivered = (u128::from(round.bytes) * 1_000_000_000 / span.as_nanos().max(1)) as u64;
        let bandwidth_before = self.bandwidth();
        let asked = self.pace();
        let queue_delay = Duration::from_micros(u64::from(round.queue_delay_us.unwrap_or(0)));
        // A round that got less than LIMITED_BY_PATH_PERCENT of what it asked, with no queue
        // and no loss, was not limited by the path: a path that carries less than it is
        // asked builds a queue (or drops, as a policer does). Something else held it back,
        // a holder or a receiver not scheduled (two cores shared by several processes), or
        // our own window. Its sample may raise the estimate, never lower it (BBR's
        // application-limited samples); on loopback, ten such rounds in a row lowered the
        // pace to a tenth, which the next 100 ms of CPU could not use (2026-12-07).
        let limited_by_path = u128::from(delivered) * 100
            >= u128::from(asked) * u128::from(LIMITED_BY_PATH_PERCENT)
            || queue_delay > STARTUP_QUEUE_DELAY / 2
            || round.lost > 0;
        self.samples[self.rounds % BANDWIDTH_ROUNDS] = if limited_by_path {
            delivered
        } else {
            delivered.max(bandwidth_before)
        };
        self.rounds += 1;
        self.last_delivered = delivered;
        self.queued = queue_delay > QUEUE_DELAY_MAX;
        self.last_queue_delay = queue_delay;
        self.loss.queue_stood |= self.queued;
        let overflowing = self.queued && round.lost > 0;
        self.phase = match self.phase {
            // Pieces lost while a queue stands: the queue overflows. Alone on the path, our
            // own probe did that, and the cut drains it; beside a flow that fills every
            // queue, only a cut on loss, as that flow's own, leaves room for both.
            Phase::Probe { .. } | Phase::Drain { .. } | Phase::Policed { .. } if overflowing => {
                Phase::Shared {
                    rate: (delivered * SHARED_DECREASE_PERCENT / 100).max(PACE_MIN),
                    rounds_since_cut: 0,
                }
            }
            // The queue is gone: we are alone again, or the other flow backed off. Probe
            // from the estimate.
            Phase::Shared { .. } if queue_delay <= STARTUP_QUEUE_DELAY / 2 => {
                Phase::Probe { cycle: 0 }
            }
            Phase::Shared {
                rate,
                rounds_since_cut,
            } if overflowing && rounds_since_cut >= SHARED_CUT_ROUNDS_MIN => Phase::Shared {
                rate: (rate * SHARED_DECREASE_PERCENT / 100).max(PACE_MIN),
                rounds_since_cut: 0,
            },
            Phase::Shared {
                rate,
                rounds_since_cut,
            } => {
                // A datagram more per round trip, as TCP's window grows: per second, a
                // datagram per round trip squared (a round trip of at least a round, so that
                // a queue that almost drained does not make it leap). Never above the
                // largest delivery of the last rounds: alone on the path, that is the
                // bottleneck, and more would only overflow the queue again; beside another
                // flow, what we deliver grows with what we send, and the estimate with it.
                let rtt = (self.rtt_min.unwrap_or(Duration::ZERO) + queue_delay).max(ROUND_MIN);
                let rtt_us = rtt.as_micros().max(1);
                let increase = u128::from(self.datagram_bytes) * elapsed.as_micros() * 1_000_000
                    / (rtt_us * rtt_us);
                let grown = rate.saturating_add(increase.min(u128::from(u64::MAX)) as u64);
                Phase::Shared {
                    rate: grown.min(self.bandwidth().max(rate)),
                    rounds_since_cut: rounds_since_cut.saturating_add(1),
                }
            }
            Phase::Startup { flat_rounds, best } => {
                let grew = delivered > best + best / 4;
                let flat_rounds = if grew { 0 } else { flat_rounds + 1 };
                if queue_delay > STARTUP_QUEUE_DELAY / 2
                    && (flat_rounds >= STARTUP_FLAT_ROUNDS || queue_delay > STARTUP_QUEUE_DELAY)
                {
                    Phase::Drain { rounds: 0 }
                } else if flat_rounds >= STARTUP_FLAT_ROUNDS {
                    // Flat without a queue: something other than a queue limits the delivery
                    // (our window, a CPU, a policer's losses), so startup's excess queued
                    // nothing and a drain would only idle the link for a round.
                    Phase::Probe { cycle: 2 }
                } else {
                    Phase::Startup {
                        flat_rounds,
                        best: if grew { delivered } else { best },
                    }
                }
            }
            Phase::Drain { rounds }
                if rounds + 1 < DRAIN_ROUNDS_MAX && queue_delay > STARTUP_QUEUE_DELAY / 2 =>
            {
                Phase::Drain { rounds: rounds + 1 }
            }
            Phase::Drain { .. } => Phase::Probe { cycle: 2 },
            Phase::Policed {
                rate,
                rounds_left: 0,
            } => {
                // Probing starts again from the held rate.
                for sample in self.samples.iter_mut() {
                    *sample = (*sample).min(rate);
                }
                Phase::Probe { cycle: 0 }
            }
            Phase::Policed { rate, rounds_left } => Phase::Policed {
                rate,
                rounds_left: rounds_left - 1,
            },
            // A probe that found more, with no queue, probes again at once: capacity freed
            // (another peer of the holder finished) is taken in a few rounds instead of a
            // few cycles.
            Phase::Probe { cycle: 0 }
                if delivered > bandwidth_before + bandwidth_before / 8
                    && queue_delay <= STARTUP_QUEUE_DELAY =>
            {
                Phase::Probe { cycle: 0 }
            }
            Phase::Probe { cycle } => Phase::Probe {
                cycle: (cycle + 1) % PROBE_GAINS.len(),
            },
        };
        // What the model saw, a round at a time (about 100 lines a second): what was asked
        // against what arrived is how a pace that costs throughput was found.
        log::debug!(
            "round of {} us: asked {asked} B/s, delivered {delivered} B/s, queue {} us, \
             {} of {} pieces lost this interval; now {:?} at {} B/s",
            elapsed.as_micros(),
            queue_delay.as_micros(),
            self.loss.lost,
            self.loss.arrived.saturating_add(self.loss.lost),
            self.phase,
            self.pace()
        );
    }
}
#[cfg(test)]
mod tests;
