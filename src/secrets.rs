//! Where tokens and keys come from, injected into the sans-IO cores as [`crate::rng::Rng`] is.
//!
//! [`crate::rng::Rng`] (SplitMix64) is for tie-breaks, samples and simulated faults: one of its
//! outputs reveals its state, and with it every output before and after. So no secret is ever
//! drawn from it. A secret (a node's token, a cookie or connection-id key, the key of a
//! keyed hash) comes from a [`Secrets`], each drawn on its own:
//!
//! * [`Secrets::Os`] in real processes: every draw is a fresh `getrandom(2)` (rustix), so a
//!   token says nothing about the next one, nor about any key.
//! * [`Secrets::Seeded`] in simulations and tests: draw `n` is the SHA-1 of a domain string,
//!   the seed and `n`, so a run replays from its seed while one output still reveals neither
//!   the seed nor the other outputs (SHA-1 has no known preimage attack).

use crate::hash::Sha1;

/// The source of every secret of a core (see the module doc).
#[derive(Clone, Debug)]
pub enum Secrets {
    /// The operating system's random source: for real processes.
    Os,
    /// SHA-1 of (seed, counter): replayable, for simulations and tests only.
    Seeded { seed: u64, drawn: u64 },
}

/// A seed means a replayable run (a simulation or a test): [`Secrets::Seeded`].
impl From<u64> for Secrets {
    fn from(seed: u64) -> Secrets {
        Secrets::seeded(seed)
    }
}

impl Secrets {
    pub fn os() -> Secrets {
        Secrets::Os
    }

    pub fn seeded(seed: u64) -> Secrets {
        Secrets::Seeded { seed, drawn: 0 }
    }

    /// Fills `out` with secret bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        match self {
            Secrets::Os => os_fill(out),
            Secrets::Seeded { seed, drawn } => {
                for block in out.chunks_mut(20) {
                    let mut sha = Sha1::new();
                    sha.update(b"torrent seeded secret\0");
                    sha.update(&seed.to_be_bytes());
                    sha.update(&drawn.to_be_bytes());
                    *drawn += 1;
                    let digest = sha.finish();
                    block.copy_from_slice(&digest[..block.len()]);
                }
            }
        }
    }

    pub fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        u64::from_be_bytes(bytes)
    }

    pub fn key16(&mut self) -> [u8; 16] {
        let mut key = [0u8; 16];
        self.fill(&mut key);
        key
    }
}

/// `getrandom(2)`, blocking only until the kernel's pool is first initialised (at boot).
fn os_fill(out: &mut [u8]) {
    let mut filled = 0;
    while filled < out.len() {
        match rustix::rand::getrandom(&mut out[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            // A signal arrived before any byte was read: ask again.
            Err(rustix::io::Errno::INTR) => {}
            // Only on a kernel without getrandom (before 3.17), which the rest of the
            // program does not support either: no secret is better than a guessable one.
            Err(error) => panic!("getrandom failed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_replays_and_os_does_not_repeat() {
        let (mut a, mut b) = (Secrets::seeded(7), Secrets::seeded(7));
        let draws: Vec<u64> = (0..4).map(|_| a.u64()).collect();
        assert_eq!(draws, (0..4).map(|_| b.u64()).collect::<Vec<_>>());
        assert_ne!(draws[0], draws[1]);
        assert_ne!(Secrets::seeded(8).u64(), draws[0]);
        // Not SplitMix64 of the seed: a draw is not the generator's output.
        assert_ne!(crate::rng::Rng::new(7).next_u64(), draws[0]);
        let (mut x, mut y) = (Secrets::os(), Secrets::os());
        assert_ne!(x.key16(), y.key16());
        assert_ne!(x.u64(), x.u64());
    }
}
