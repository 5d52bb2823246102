//! Private keys held by the card (`CCxx`). Key material never leaves this module except as a
//! signature (and, in a later issue, a DKEK-wrapped blob); it is wiped when dropped.

use bp256::r1::BrainpoolP256r1;
use ecdsa::signature::hazmat::PrehashSigner;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::rng::CardRng;

/// Key id of the device authentication key (`CC00`).
pub const DEVICE_KEY_ID: u8 = 0x00;

/// The elliptic curves the card can hold keys on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    BrainpoolP256r1,
}

impl Curve {
    fn id(self) -> u8 {
        match self {
            Curve::BrainpoolP256r1 => 1,
        }
    }

    fn from_id(id: u8) -> Option<Curve> {
        match id {
            1 => Some(Curve::BrainpoolP256r1),
            _ => None,
        }
    }

    /// Byte length of a field element / scalar.
    pub fn size(self) -> usize {
        match self {
            Curve::BrainpoolP256r1 => 32,
        }
    }
}

/// A private key as the card stores it.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyRecord {
    Ec {
        curve: Curve,
        scalar: Zeroizing<Vec<u8>>,
    },
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRecord::Ec { curve, .. } => write!(f, "KeyRecord::Ec({curve:?}, <redacted>)"),
        }
    }
}

/// A key that cannot be used: the stored bytes do not form a valid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidKey;

impl KeyRecord {
    /// Generates a new EC key.
    pub fn generate_ec(curve: Curve, rng: &mut dyn CardRng) -> KeyRecord {
        loop {
            let mut candidate = Zeroizing::new(vec![0u8; curve.size()]);
            rng.fill_bytes(&mut candidate);
            let record = KeyRecord::Ec {
                curve,
                scalar: candidate,
            };
            if record.ec_public_point().is_ok() {
                return record;
            }
        }
    }

    /// The uncompressed public point `04 X Y` of an EC key.
    pub fn ec_public_point(&self) -> Result<Vec<u8>, InvalidKey> {
        match self {
            KeyRecord::Ec {
                curve: Curve::BrainpoolP256r1,
                scalar,
            } => {
                let sk = bp256::r1::SecretKey::from_slice(scalar).map_err(|_| InvalidKey)?;
                Ok(sk.public_key().to_sec1_bytes().to_vec())
            }
        }
    }

    /// ECDSA with SHA-256 over `message`, as the plain `r || s` CV certificates carry.
    pub fn sign_ecdsa_sha256_plain(&self, message: &[u8]) -> Result<Vec<u8>, InvalidKey> {
        let digest = Sha256::digest(message);
        match self {
            KeyRecord::Ec {
                curve: Curve::BrainpoolP256r1,
                scalar,
            } => {
                let key = ecdsa::SigningKey::<BrainpoolP256r1>::from_slice(scalar)
                    .map_err(|_| InvalidKey)?;
                let sig: ecdsa::Signature<BrainpoolP256r1> =
                    key.sign_prehash(&digest).map_err(|_| InvalidKey)?;
                Ok(sig.to_bytes().to_vec())
            }
        }
    }

    /// Serialised form: version, kind, curve, scalar.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        match self {
            KeyRecord::Ec { curve, scalar } => {
                let mut out = Zeroizing::new(vec![1, 12, curve.id()]);
                out.extend_from_slice(scalar);
                out
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Option<KeyRecord> {
        match bytes {
            [1, 12, curve, scalar @ ..] => {
                let curve = Curve::from_id(*curve)?;
                (scalar.len() == curve.size()).then(|| KeyRecord::Ec {
                    curve,
                    scalar: Zeroizing::new(scalar.to_vec()),
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_and_signs() {
        let mut rng = crate::rng::system();
        let key = KeyRecord::generate_ec(Curve::BrainpoolP256r1, &mut *rng);
        let point = key.ec_public_point().unwrap();
        assert_eq!((point.len(), point[0]), (65, 0x04));
        assert_eq!(KeyRecord::decode(&key.encode()), Some(key.clone()));
        assert_eq!(key.sign_ecdsa_sha256_plain(b"hello").unwrap().len(), 64);
        assert!(!format!("{key:?}").contains(&crate::hex::encode(&key.encode()[3..])));
    }
}
