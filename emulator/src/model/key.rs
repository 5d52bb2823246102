//! Private keys held by the card (`CCxx`), with the use policy GENERATE gave them.
//!
//! Key material leaves the card only as a signature, a decryption, a shared secret, a MAC, a
//! derived value or a DKEK-wrapped blob; it is wiped when dropped. Keys are kept parsed in
//! memory, so an operation does not decode the key again. How a key is stored is the store's
//! business (`store/record/key.rs`), and so is what it costs there ([`crate::limits`]).

use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::crypto::aes::{AesKey, KeyLength};
use crate::crypto::ec::Curve;
use crate::crypto::rng::{Adapter, CardRng};
use crate::crypto::CryptoError;

/// Key id of the device authentication key (`CC00`).
pub const DEVICE_KEY_ID: u8 = 0x00;

/// The private half of a key.
#[derive(Clone)]
pub enum KeyMaterial {
    Rsa(Box<rsa::PrivateKey>),
    Ec {
        curve: Curve,
        scalar: Zeroizing<Vec<u8>>,
    },
    /// An AES key of 16, 24 or 32 bytes (GENERATE SYMMETRIC KEY).
    Aes(AesKey),
}

/// What GENERATE's optional tags allow: a usage counter (tag 90), a list of algorithm ids
/// (tag 91), a key domain (tag 92) and, for AES keys, the key that may wrap it (tag 93).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Uses left; `None` is unlimited.
    pub uses_left: Option<u32>,
    /// Algorithm ids the key may be used with; `None` allows every algorithm of its type.
    pub algorithms: Option<Vec<u8>>,
    pub domain: Option<u8>,
    /// Tag 93 of GENERATE SYMMETRIC KEY: the id of a key allowed to wrap this one. Stored and
    /// reported; no command of the card wraps with a key of its own.
    pub wrapping_key: Option<u8>,
}

impl KeyPolicy {
    pub fn allows(&self, algorithm: u8) -> bool {
        self.algorithms
            .as_ref()
            .is_none_or(|list| list.contains(&algorithm))
    }

    /// The key domain the key belongs to (`0` when GENERATE named none).
    pub fn domain_or_default(&self) -> u8 {
        self.domain.unwrap_or(0)
    }
}

/// A private key as the card stores it.
#[derive(Clone)]
pub struct KeyRecord {
    pub material: KeyMaterial,
    pub policy: KeyPolicy,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.material {
            KeyMaterial::Rsa(key) => write!(
                f,
                "KeyRecord::Rsa({} bits, <redacted>, {:?})",
                key.size() * 8,
                self.policy
            ),
            KeyMaterial::Ec { curve, .. } => {
                write!(f, "KeyRecord::Ec({curve:?}, <redacted>, {:?})", self.policy)
            }
            KeyMaterial::Aes(key) => write!(
                f,
                "KeyRecord::Aes({} bits, <redacted>, {:?})",
                key.length().bytes() * 8,
                self.policy
            ),
        }
    }
}

/// Two keys are equal when they are the same numbers: modulus, exponents and primes; curve and
/// scalar; AES key. Secret parts are compared in constant time.
impl PartialEq for KeyMaterial {
    fn eq(&self, other: &KeyMaterial) -> bool {
        use crate::crypto::constant_time_eq;
        use crate::crypto::rsa::{public_parts, secret_parts};
        match (self, other) {
            (KeyMaterial::Rsa(a), KeyMaterial::Rsa(b)) => {
                let (a_secret, b_secret) = (secret_parts(a), secret_parts(b));
                public_parts(a) == public_parts(b)
                    && a_secret.len() == b_secret.len()
                    && a_secret
                        .iter()
                        .zip(&b_secret)
                        .all(|(x, y)| constant_time_eq(x, y))
            }
            (
                KeyMaterial::Ec { curve, scalar },
                KeyMaterial::Ec {
                    curve: other_curve,
                    scalar: other_scalar,
                },
            ) => curve == other_curve && constant_time_eq(scalar, other_scalar),
            (KeyMaterial::Aes(a), KeyMaterial::Aes(b)) => {
                constant_time_eq(a.as_bytes(), b.as_bytes())
            }
            _ => false,
        }
    }
}

impl Eq for KeyMaterial {}

/// Two records are equal when they hold the same key under the same policy.
impl PartialEq for KeyRecord {
    fn eq(&self, other: &KeyRecord) -> bool {
        self.material == other.material && self.policy == other.policy
    }
}

impl Eq for KeyRecord {}

impl KeyRecord {
    /// Generates an EC key.
    pub fn generate_ec(curve: Curve, rng: &mut dyn CardRng) -> KeyRecord {
        KeyRecord {
            material: KeyMaterial::Ec {
                curve,
                scalar: curve.generate(rng),
            },
            policy: KeyPolicy::default(),
        }
    }

    /// Generates an RSA key of `bits` bits with public exponent `exponent`.
    pub fn generate_rsa(
        bits: usize,
        exponent: &[u8],
        rng: &mut dyn CardRng,
    ) -> Result<KeyRecord, CryptoError> {
        let key = rsa::PrivateKey::new_with_exp(
            &mut Adapter(rng),
            bits,
            crate::crypto::rsa::boxed(exponent),
        )
        .map_err(|_| CryptoError::BadInput)?;
        Ok(KeyRecord {
            material: KeyMaterial::Rsa(Box::new(key)),
            policy: KeyPolicy::default(),
        })
    }

    /// Generates an AES key of `length`.
    pub fn generate_aes(length: KeyLength, rng: &mut dyn CardRng) -> KeyRecord {
        KeyRecord {
            material: KeyMaterial::Aes(AesKey::generate(length, rng)),
            policy: KeyPolicy::default(),
        }
    }

    /// The uncompressed public point `04 X Y` of an EC key.
    pub fn ec_public_point(&self) -> Result<Vec<u8>, CryptoError> {
        match &self.material {
            KeyMaterial::Ec { curve, scalar } => Ok(curve.public_point(scalar)?),
            KeyMaterial::Rsa(_) | KeyMaterial::Aes(_) => Err(CryptoError::WrongKeyType),
        }
    }

    /// ECDSA with SHA-256 over `message`, as the plain `r || s` CV certificates carry.
    pub fn sign_ecdsa_sha256_plain(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.material {
            KeyMaterial::Ec { curve, scalar } => {
                let (r, s) = curve.sign_prehash(scalar, &Sha256::digest(message))?;
                Ok([r, s].concat())
            }
            KeyMaterial::Rsa(_) | KeyMaterial::Aes(_) => Err(CryptoError::WrongKeyType),
        }
    }
}
