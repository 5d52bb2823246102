//! PINs: the user PIN (reference `81`) and the SO-PIN (reference `88`).
//!
//! A PIN is kept as a salted SHA-256 digest plus its length (CHANGE REFERENCE DATA splits
//! old‖new at the stored length) and its retry counter. The clear PIN never reaches the store.

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::apdu::Status;

/// Which PIN a command names in P2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PinRef {
    /// `81`: the user PIN.
    User,
    /// `88`: the SO-PIN (initialization code), 8 bytes.
    So,
}

impl PinRef {
    pub fn from_p2(p2: u8) -> Option<PinRef> {
        match p2 {
            0x81 => Some(PinRef::User),
            0x88 => Some(PinRef::So),
            _ => None,
        }
    }

    /// The reference byte (P2).
    pub fn p2(self) -> u8 {
        match self {
            PinRef::User => 0x81,
            PinRef::So => 0x88,
        }
    }

    /// What logs and traces call it.
    pub fn name(self) -> &'static str {
        match self {
            PinRef::User => "user PIN",
            PinRef::So => "SO-PIN",
        }
    }
}

/// Length rules of each PIN.
pub const USER_PIN_LENGTHS: std::ops::RangeInclusive<usize> = 6..=16;
pub const SO_PIN_LENGTH: usize = 8;
/// Retry counter of the SO-PIN; it cannot be reset.
pub const SO_PIN_TRIES: u8 = 15;
/// Default retry counter of the user PIN (INITIALIZE tag 91 may set another).
pub const DEFAULT_USER_PIN_TRIES: u8 = 3;

pub(crate) const SALT_LEN: usize = 16;
pub(crate) const DIGEST_LEN: usize = 32;
const DOMAIN: &[u8] = b"sc-hsm-emulator PIN v1";

/// A PIN as stored: salted digest, length and retry counter.
#[derive(Clone, PartialEq, Eq)]
pub struct PinRecord {
    pub max_tries: u8,
    pub tries_left: u8,
    /// A transport PIN (INITIALIZE option `0002`): VERIFY answers `6984` until CHANGE
    /// REFERENCE DATA replaces it.
    pub must_change: bool,
    pub(crate) len: u8,
    pub(crate) salt: [u8; SALT_LEN],
    pub(crate) digest: [u8; DIGEST_LEN],
}

impl std::fmt::Debug for PinRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinRecord")
            .field("max_tries", &self.max_tries)
            .field("tries_left", &self.tries_left)
            .field("must_change", &self.must_change)
            .finish_non_exhaustive()
    }
}

fn digest(salt: &[u8; SALT_LEN], pin: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(salt);
    h.update(pin);
    h.finalize().into()
}

impl PinRecord {
    /// A new PIN with a full retry counter.
    pub fn new(pin: &[u8], max_tries: u8, salt: [u8; SALT_LEN]) -> PinRecord {
        PinRecord {
            max_tries,
            tries_left: max_tries,
            must_change: false,
            len: pin.len() as u8,
            salt,
            digest: digest(&salt, pin),
        }
    }

    /// The stored PIN's length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_blocked(&self) -> bool {
        self.tries_left == 0
    }

    /// Whether `candidate` is this PIN (constant time in the digest comparison).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let mut d = digest(&self.salt, candidate);
        let diff = d
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        d.zeroize();
        diff == 0 && candidate.len() == self.len()
    }

    /// The same PIN as a transport PIN (`true`) or an ordinary one.
    pub fn transport(self, must_change: bool) -> PinRecord {
        PinRecord {
            must_change,
            ..self
        }
    }

    /// The record after one more wrong (or not yet judged) attempt.
    pub fn with_try_used(&self) -> PinRecord {
        PinRecord {
            tries_left: self.tries_left.saturating_sub(1),
            ..self.clone()
        }
    }

    /// The record with its counter back at the maximum.
    pub fn with_counter_reset(&self) -> PinRecord {
        PinRecord {
            tries_left: self.max_tries,
            ..self.clone()
        }
    }

    /// The status word for "not verified" / "wrong": tries left, or blocked.
    pub fn status(&self) -> Status {
        if self.is_blocked() {
            Status::AuthenticationBlocked
        } else {
            Status::PinTriesLeft(self.tries_left)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_pin() {
        let p = PinRecord::new(b"648219", 3, [7; 16]);
        assert!(p.matches(b"648219"));
        assert!(!p.matches(b"648218"));
        assert!(!p.matches(b"6482190"));
        assert!(!p.matches(b""));
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn counter_goes_down_and_resets() {
        let p = PinRecord::new(b"648219", 3, [1; 16]);
        let p = p.with_try_used().with_try_used();
        assert_eq!(p.status(), Status::PinTriesLeft(1));
        let p = p.with_try_used();
        assert!(p.is_blocked());
        assert_eq!(p.status(), Status::AuthenticationBlocked);
        assert_eq!(p.with_try_used().tries_left, 0);
        assert_eq!(p.with_counter_reset().tries_left, 3);
    }
}
