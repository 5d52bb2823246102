//! Private keys held by the card (`CCxx`), with the use policy GENERATE gave them.
//!
//! Key material never leaves this module except as a signature, a decryption, a shared secret
//! (and, in a later issue, a DKEK-wrapped blob); it is wiped when dropped. Keys are kept parsed
//! in memory, so an operation does not decode the key again.

use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::BoxedUint;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ec::Curve;
use crate::rng::{Adapter, CardRng};
use crate::tlv;

/// Key id of the device authentication key (`CC00`).
pub const DEVICE_KEY_ID: u8 = 0x00;

/// RSA key sizes the card generates: 1024 to 4096 bits in steps of 256.
pub fn is_supported_rsa_size(bits: usize) -> bool {
    (1024..=4096).contains(&bits) && bits.is_multiple_of(256)
}

/// The private half of a key.
#[derive(Clone)]
pub enum KeyMaterial {
    Rsa(Box<rsa::PrivateKey>),
    Ec {
        curve: Curve,
        scalar: Zeroizing<Vec<u8>>,
    },
}

/// What GENERATE's optional tags allow: a usage counter (tag 90), a list of algorithm ids
/// (tag 91) and a key domain (tag 92).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Uses left; `None` is unlimited.
    pub uses_left: Option<u32>,
    /// Algorithm ids the key may be used with; `None` allows every algorithm of its type.
    pub algorithms: Option<Vec<u8>>,
    pub domain: Option<u8>,
}

impl KeyPolicy {
    pub fn allows(&self, algorithm: u8) -> bool {
        self.algorithms
            .as_ref()
            .is_none_or(|list| list.contains(&algorithm))
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
        }
    }
}

impl PartialEq for KeyRecord {
    fn eq(&self, other: &KeyRecord) -> bool {
        *self.encode() == *other.encode()
    }
}

impl Eq for KeyRecord {}

/// The stored bytes do not form a usable key, or an operation's input does not fit the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidKey;

/// Stable ids of the curves in the stored format.
const CURVE_IDS: [(Curve, u8); 12] = [
    (Curve::BrainpoolP256r1, 1),
    (Curve::Secp192r1, 2),
    (Curve::Secp256r1, 3),
    (Curve::Secp384r1, 4),
    (Curve::Secp521r1, 5),
    (Curve::Secp192k1, 6),
    (Curve::Secp256k1, 7),
    (Curve::BrainpoolP192r1, 8),
    (Curve::BrainpoolP224r1, 9),
    (Curve::BrainpoolP320r1, 10),
    (Curve::BrainpoolP384r1, 11),
    (Curve::BrainpoolP512r1, 12),
];

fn curve_id(curve: Curve) -> u8 {
    CURVE_IDS
        .iter()
        .find(|(c, _)| *c == curve)
        .map_or(0, |(_, id)| *id)
}

fn curve_from_id(id: u8) -> Option<Curve> {
    CURVE_IDS.iter().find(|(_, i)| *i == id).map(|(c, _)| *c)
}

/// Big-endian bytes of `n` without leading zeros.
pub fn trimmed(n: &BoxedUint) -> Vec<u8> {
    n.to_be_bytes_trimmed_vartime().to_vec()
}

fn boxed(bytes: &[u8]) -> BoxedUint {
    BoxedUint::from_be_slice_vartime(bytes)
}

/// Bit length of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    match bytes.get(skip) {
        Some(first) => (bytes.len() - skip) * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

fn is_odd(bytes: &[u8]) -> bool {
    bytes.last().is_some_and(|b| b & 1 == 1)
}

/// Runs an RSA constructor of the `rsa` crate, which can panic on values no real key has
/// (found by fuzzing UNWRAP): such input is refused, not a crash.
fn guarded(
    build: impl FnOnce() -> rsa::Result<rsa::PrivateKey> + std::panic::UnwindSafe,
) -> Option<rsa::PrivateKey> {
    std::panic::catch_unwind(build).ok()?.ok()
}

/// An RSA key from modulus, public and private exponent (and primes, if known), checked to be
/// plausible before the `rsa` crate sees it.
pub fn rsa_from_components(
    n: &[u8],
    e: &[u8],
    d: &[u8],
    primes: &[&[u8]],
) -> Option<rsa::PrivateKey> {
    let bits = bit_length(n);
    let plausible = (1024..=4096).contains(&bits)
        && is_odd(n)
        && is_odd(e)
        && (2..bits).contains(&bit_length(e))
        && (2..=bits).contains(&bit_length(d))
        && primes
            .iter()
            .all(|p| is_odd(p) && (2..bits).contains(&bit_length(p)));
    if !plausible {
        return None;
    }
    let (n, e, d) = (boxed(n), boxed(e), boxed(d));
    let primes: Vec<BoxedUint> = primes.iter().map(|p| boxed(p)).collect();
    guarded(move || rsa::PrivateKey::from_components(n, e, d, primes))
}

/// An RSA key from its primes and public exponent, checked like [`rsa_from_components`].
pub fn rsa_from_primes(p: &[u8], q: &[u8], e: &[u8]) -> Option<rsa::PrivateKey> {
    let (pb, qb) = (bit_length(p), bit_length(q));
    let plausible = is_odd(p)
        && is_odd(q)
        && (512..=2048).contains(&pb)
        && (512..=2048).contains(&qb)
        && is_odd(e)
        && (2..pb + qb).contains(&bit_length(e));
    if !plausible {
        return None;
    }
    let (p, q, e) = (boxed(p), boxed(q), boxed(e));
    guarded(move || rsa::PrivateKey::from_p_q(p, q, e))
}

/// Record tags of the stored format.
mod tag {
    pub const KIND: u16 = 0x01;
    pub const RSA_N: u16 = 0x81;
    pub const RSA_E: u16 = 0x82;
    pub const RSA_D: u16 = 0x83;
    pub const RSA_P: u16 = 0x84;
    pub const RSA_Q: u16 = 0x85;
    pub const EC_CURVE: u16 = 0x86;
    pub const EC_SCALAR: u16 = 0x87;
    pub const USES_LEFT: u16 = 0x90;
    pub const ALGORITHMS: u16 = 0x91;
    pub const DOMAIN: u16 = 0x92;
}
const KIND_RSA: u8 = 5;
const KIND_EC: u8 = 12;
const FORMAT: u8 = 1;

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
    ) -> Result<KeyRecord, InvalidKey> {
        let key = rsa::PrivateKey::new_with_exp(&mut Adapter(rng), bits, boxed(exponent))
            .map_err(|_| InvalidKey)?;
        Ok(KeyRecord {
            material: KeyMaterial::Rsa(Box::new(key)),
            policy: KeyPolicy::default(),
        })
    }

    /// The uncompressed public point `04 X Y` of an EC key.
    pub fn ec_public_point(&self) -> Result<Vec<u8>, InvalidKey> {
        match &self.material {
            KeyMaterial::Ec { curve, scalar } => curve.public_point(scalar).map_err(|_| InvalidKey),
            KeyMaterial::Rsa(_) => Err(InvalidKey),
        }
    }

    /// ECDSA with SHA-256 over `message`, as the plain `r || s` CV certificates carry.
    pub fn sign_ecdsa_sha256_plain(&self, message: &[u8]) -> Result<Vec<u8>, InvalidKey> {
        match &self.material {
            KeyMaterial::Ec { curve, scalar } => {
                let (r, s) = curve
                    .sign_prehash(scalar, &Sha256::digest(message))
                    .map_err(|_| InvalidKey)?;
                Ok([r, s].concat())
            }
            KeyMaterial::Rsa(_) => Err(InvalidKey),
        }
    }

    /// Serialised form (TLV), wiped on drop.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![FORMAT]);
        match &self.material {
            KeyMaterial::Rsa(key) => {
                tlv::write(&mut out, tag::KIND, &[KIND_RSA]);
                tlv::write(&mut out, tag::RSA_N, &trimmed(key.n().as_ref()));
                tlv::write(&mut out, tag::RSA_E, &trimmed(key.e()));
                let d = Zeroizing::new(trimmed(key.d()));
                tlv::write(&mut out, tag::RSA_D, &d);
                for (t, prime) in [tag::RSA_P, tag::RSA_Q].into_iter().zip(key.primes()) {
                    let p = Zeroizing::new(trimmed(prime.as_ref()));
                    tlv::write(&mut out, t, &p);
                }
            }
            KeyMaterial::Ec { curve, scalar } => {
                tlv::write(&mut out, tag::KIND, &[KIND_EC]);
                tlv::write(&mut out, tag::EC_CURVE, &[curve_id(*curve)]);
                tlv::write(&mut out, tag::EC_SCALAR, scalar);
            }
        }
        if let Some(n) = self.policy.uses_left {
            tlv::write(&mut out, tag::USES_LEFT, &n.to_be_bytes());
        }
        if let Some(list) = &self.policy.algorithms {
            tlv::write(&mut out, tag::ALGORITHMS, list);
        }
        if let Some(domain) = self.policy.domain {
            tlv::write(&mut out, tag::DOMAIN, &[domain]);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<KeyRecord> {
        let (&format, body) = bytes.split_first()?;
        if format != FORMAT {
            return None;
        }
        let field = |t| tlv::find(body, t);
        let material = match field(tag::KIND)? {
            [KIND_RSA] => {
                let primes = [field(tag::RSA_P)?, field(tag::RSA_Q)?];
                let key = rsa_from_components(
                    field(tag::RSA_N)?,
                    field(tag::RSA_E)?,
                    field(tag::RSA_D)?,
                    &primes,
                )?;
                KeyMaterial::Rsa(Box::new(key))
            }
            [KIND_EC] => {
                let curve = curve_from_id(*field(tag::EC_CURVE)?.first()?)?;
                let scalar = field(tag::EC_SCALAR)?;
                curve.public_point(scalar).ok()?;
                KeyMaterial::Ec {
                    curve,
                    scalar: Zeroizing::new(scalar.to_vec()),
                }
            }
            _ => return None,
        };
        let policy = KeyPolicy {
            uses_left: match field(tag::USES_LEFT) {
                Some(v) => Some(u32::from_be_bytes(v.try_into().ok()?)),
                None => None,
            },
            algorithms: field(tag::ALGORITHMS).map(<[u8]>::to_vec),
            domain: match field(tag::DOMAIN) {
                Some([d]) => Some(*d),
                Some(_) => return None,
                None => None,
            },
        };
        Some(KeyRecord { material, policy })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_key_round_trips_and_signs() {
        let mut rng = crate::rng::system();
        let mut key = KeyRecord::generate_ec(Curve::BrainpoolP256r1, &mut *rng);
        key.policy = KeyPolicy {
            uses_left: Some(7),
            algorithms: Some(vec![0x70]),
            domain: None,
        };
        let point = key.ec_public_point().unwrap();
        assert_eq!((point.len(), point[0]), (65, 0x04));
        let decoded = KeyRecord::decode(&key.encode()).unwrap();
        assert_eq!(decoded, key);
        assert_eq!(decoded.policy.uses_left, Some(7));
        assert_eq!(key.sign_ecdsa_sha256_plain(b"hello").unwrap().len(), 64);
        assert!(format!("{key:?}").contains("redacted"));
    }

    #[test]
    fn rsa_key_round_trips() {
        let mut rng = crate::rng::system();
        let key = KeyRecord::generate_rsa(1024, &[1, 0, 1], &mut *rng).unwrap();
        let decoded = KeyRecord::decode(&key.encode()).unwrap();
        assert_eq!(decoded, key);
        let KeyMaterial::Rsa(k) = &decoded.material else {
            panic!("not RSA")
        };
        assert_eq!(k.size(), 128);
        assert!(!format!("{key:?}").contains(&crate::hex::encode(&trimmed(k.d()))[..16]));
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(KeyRecord::decode(&[]).is_none());
        assert!(KeyRecord::decode(&[1, 0x01, 0x01, 0x0C]).is_none());
        assert!(KeyRecord::decode(&[9]).is_none());
    }

    #[test]
    fn rsa_sizes() {
        assert!(
            is_supported_rsa_size(1024)
                && is_supported_rsa_size(1536)
                && is_supported_rsa_size(4096)
        );
        assert!(
            !is_supported_rsa_size(1000)
                && !is_supported_rsa_size(768)
                && !is_supported_rsa_size(4352)
        );
    }
}
