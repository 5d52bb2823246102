//! Public-key authentication (n-of-m): INITIALIZE tag `93` sets how many public keys the card
//! takes (m) and how many must authenticate (n); key custodians register their keys (each on
//! a card of the same PKI) with MANAGE PKA, then authenticate with a signature over a
//! challenge instead of, or with, the user PIN.

use std::collections::BTreeMap;

use crate::model::{OPTION_PKA_AND_PIN, OPTION_PKA_REPLACEABLE};

/// Most public keys INITIALIZE tag 93 can ask for (what `sc-hsm-tool` accepts).
pub const MAX_KEYS: u8 = 90;

/// One registered key: the holder reference and public key of the custodian's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredKey {
    pub chr: Vec<u8>,
    /// Content of the request's `7F49`, domain parameters included.
    pub public_key: Vec<u8>,
}

/// The configuration and the keys registered so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pka {
    /// m: how many keys the card takes.
    pub total: u8,
    /// n: how many must authenticate.
    pub required: u8,
    /// Registered keys by slot (0 .. total).
    pub keys: BTreeMap<u8, RegisteredKey>,
}

/// How the user is authenticated on a card.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserRule {
    /// The user PIN (no public-key authentication configured).
    #[default]
    Pin,
    /// The user PIN or a quorum of `required` public keys.
    PinOrKeys { required: u8 },
    /// The user PIN and a quorum of `required` public keys (option `0010`).
    PinAndKeys { required: u8 },
}

impl UserRule {
    pub fn of(pka: Option<&Pka>, options: u16) -> UserRule {
        match pka {
            None => UserRule::Pin,
            Some(pka) if options & OPTION_PKA_AND_PIN != 0 => UserRule::PinAndKeys {
                required: pka.required,
            },
            Some(pka) => UserRule::PinOrKeys {
                required: pka.required,
            },
        }
    }
}

impl Pka {
    /// A new configuration: `total` keys (1 ..= 90), `required` of them (1 ..= total).
    pub fn new(total: u8, required: u8) -> Option<Pka> {
        ((1..=MAX_KEYS).contains(&total) && (1..=total).contains(&required)).then(|| Pka {
            total,
            required,
            keys: BTreeMap::new(),
        })
    }

    /// The first free slot, if any.
    pub fn free_slot(&self) -> Option<u8> {
        (0..self.total).find(|i| !self.keys.contains_key(i))
    }

    /// The slot of the registered key named `chr`.
    pub fn slot_of(&self, chr: &[u8]) -> Option<u8> {
        self.keys
            .iter()
            .find(|(_, k)| k.chr == chr)
            .map(|(slot, _)| *slot)
    }

    /// The status MANAGE PKA answers: total, missing, required, authenticated.
    pub fn status(&self, authenticated: usize) -> [u8; 4] {
        let registered = u8::try_from(self.keys.len()).unwrap_or(u8::MAX);
        [
            self.total,
            self.total.saturating_sub(registered),
            self.required,
            u8::try_from(authenticated).unwrap_or(u8::MAX),
        ]
    }

    /// Whether a registered key may be replaced (option `0008`).
    pub fn replaceable(options: u16) -> bool {
        options & OPTION_PKA_REPLACEABLE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_status() {
        assert!(Pka::new(0, 0).is_none());
        assert!(Pka::new(3, 4).is_none());
        assert!(Pka::new(91, 1).is_none());
        let mut pka = Pka::new(3, 2).unwrap();
        assert_eq!(pka.status(0), [3, 3, 2, 0]);
        pka.keys.insert(
            0,
            RegisteredKey {
                chr: b"A".to_vec(),
                public_key: vec![],
            },
        );
        assert_eq!(pka.free_slot(), Some(1));
        assert_eq!(pka.slot_of(b"A"), Some(0));
        assert_eq!(pka.status(1), [3, 2, 2, 1]);
    }
}
