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
