//! SHA-1, in one place: chunk checksums, info hashes, cookies and connection ids.
//!
//! The design card named `sha1_smol`; it hashed 362 MiB/s against 1.2 GiB/s for RustCrypto's
//! `sha1` (which uses the CPU's SHA instructions when it has them) in `cargo bench --bench
//! throughput -- sha1` on this machine class, and hashing is most of a downloader's CPU time
//! after copying. Hence this crate; bench/README.md ("Choices the figures forced") records
//! the figures.

use crate::wire::Hash;
use sha1::Digest;

/// An incremental SHA-1.
#[derive(Clone, Default)]
pub struct Sha1(sha1::Sha1);

impl Sha1 {
    pub fn new() -> Sha1 {
        Sha1(sha1::Sha1::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Hash {
        self.0.finalize().into()
    }
}

/// SHA-1 of `bytes`.
pub fn sha1(bytes: &[u8]) -> Hash {
    sha1::Sha1::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            crate::wire::hex(&sha1(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        let mut sha = Sha1::new();
        sha.update(b"hel");
        sha.update(b"lo");
        assert_eq!(
            crate::wire::hex(&sha.finish()),
            "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
        );
    }
}
