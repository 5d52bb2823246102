//! The card's random number source.

/// A cryptographically secure random source the card draws keys, salts and challenges from.
pub trait CardRng: Send {
    fn fill_bytes(&mut self, out: &mut [u8]);
}

impl<R: rand_core::CryptoRng + Send> CardRng for R {
    fn fill_bytes(&mut self, out: &mut [u8]) {
        rand_core::Rng::fill_bytes(self, out)
    }
}

/// The operating system's random source.
pub fn system() -> Box<dyn CardRng> {
    Box::new(rand_core::UnwrapErr(getrandom::SysRng))
}

/// The one deterministic generator: reproducible test cards (`--seed`), fuzzing and test data.
/// SHA-256 in counter mode over a key derived from the seed and the card's boot count.
/// INSECURE: anyone who knows the seed knows every key the card makes.
pub struct SeededRng {
    key: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl SeededRng {
    pub fn new(seed: u64, boot: u64) -> SeededRng {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"sc-hsm-emulator seeded RNG v1 (insecure)");
        h.update(seed.to_be_bytes());
        h.update(boot.to_be_bytes());
        SeededRng {
            key: h.finalize().into(),
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }
}

impl SeededRng {
    /// The next 8 bytes as a number (test data, fuzzing inputs).
    pub fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_be_bytes(b)
    }
}

impl CardRng for SeededRng {
    fn fill_bytes(&mut self, out: &mut [u8]) {
        use sha2::Digest;
        for b in out {
            if self.used == self.block.len() {
                let mut h = sha2::Sha256::new();
                h.update(self.key);
                h.update(self.counter.to_be_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *b = self.block[self.used];
            self.used += 1;
        }
    }
}

/// Lends a [`CardRng`] to crates that take a `rand_core` generator.
pub struct Adapter<'a>(pub &'a mut dyn CardRng);

impl rand_core::TryRng for Adapter<'_> {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.0.fill_bytes(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.0.fill_bytes(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Adapter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat_per_seed_and_boot_only() {
        let draw = |seed, boot| {
            let mut r = SeededRng::new(seed, boot);
            let mut a = [0u8; 40];
            r.fill_bytes(&mut a[..7]);
            r.fill_bytes(&mut a[7..]);
            a
        };
        assert_eq!(draw(1, 0), draw(1, 0));
        assert_ne!(draw(1, 0), draw(2, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
    }
}
