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
