//! The key records (`keys` table, by key id): the key's kind and numbers (RSA n, e, d, p, q; EC
//! curve and scalar; AES key) and its policy (use counter, algorithms, domain, wrapping key), as
//! TLVs after the version byte.

use zeroize::Zeroizing;

use crate::apdu::tlv;
use crate::crypto::aes::AesKey;
use crate::crypto::ec::Curve;
use crate::crypto::rsa as rsa_key;
use crate::model::key::{KeyMaterial, KeyPolicy, KeyRecord};
use crate::store::version::record::KEY;

/// The stable id of a curve in the stored format.
fn curve_id(curve: Curve) -> u8 {
    match curve {
        Curve::BrainpoolP256r1 => 1,
        Curve::Secp192r1 => 2,
        Curve::Secp256r1 => 3,
        Curve::Secp384r1 => 4,
        Curve::Secp521r1 => 5,
        Curve::Secp192k1 => 6,
        Curve::Secp256k1 => 7,
        Curve::BrainpoolP192r1 => 8,
        Curve::BrainpoolP224r1 => 9,
        Curve::BrainpoolP320r1 => 10,
        Curve::BrainpoolP384r1 => 11,
        Curve::BrainpoolP512r1 => 12,
    }
}

/// The curve of a stored id.
fn curve_from_id(id: u8) -> Option<Curve> {
    Some(match id {
        1 => Curve::BrainpoolP256r1,
        2 => Curve::Secp192r1,
        3 => Curve::Secp256r1,
        4 => Curve::Secp384r1,
        5 => Curve::Secp521r1,
        6 => Curve::Secp192k1,
        7 => Curve::Secp256k1,
        8 => Curve::BrainpoolP192r1,
        9 => Curve::BrainpoolP224r1,
        10 => Curve::BrainpoolP320r1,
        11 => Curve::BrainpoolP384r1,
        12 => Curve::BrainpoolP512r1,
        _ => return None,
    })
}

/// Tags of a key record.
mod tag {
    pub const KIND: u16 = 0x01;
    pub const RSA_N: u16 = 0x81;
    pub const RSA_E: u16 = 0x82;
    pub const RSA_D: u16 = 0x83;
    pub const RSA_P: u16 = 0x84;
    pub const RSA_Q: u16 = 0x85;
    pub const EC_CURVE: u16 = 0x86;
    pub const EC_SCALAR: u16 = 0x87;
    pub const AES_KEY: u16 = 0x88;
    pub const USES_LEFT: u16 = 0x90;
    pub const ALGORITHMS: u16 = 0x91;
    pub const DOMAIN: u16 = 0x92;
    pub const WRAPPING_KEY: u16 = 0x93;
}
const KIND_RSA: u8 = 5;
const KIND_EC: u8 = 12;
const KIND_AES: u8 = 15;

/// A key record (TLV), wiped on drop.
pub(crate) fn encode_key(key: &KeyRecord) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![KEY]);
    match &key.material {
        KeyMaterial::Rsa(rsa) => {
            tlv::write(&mut out, tag::KIND, &[KIND_RSA]);
            let (n, e) = rsa_key::public_parts(rsa);
            tlv::write(&mut out, tag::RSA_N, &n);
            tlv::write(&mut out, tag::RSA_E, &e);
            for (t, secret) in [tag::RSA_D, tag::RSA_P, tag::RSA_Q]
                .into_iter()
                .zip(rsa_key::secret_parts(rsa))
            {
                tlv::write(&mut out, t, &secret);
            }
        }
        KeyMaterial::Ec { curve, scalar } => {
            tlv::write(&mut out, tag::KIND, &[KIND_EC]);
            tlv::write(&mut out, tag::EC_CURVE, &[curve_id(*curve)]);
            tlv::write(&mut out, tag::EC_SCALAR, scalar);
        }
        KeyMaterial::Aes(key) => {
            tlv::write(&mut out, tag::KIND, &[KIND_AES]);
            tlv::write(&mut out, tag::AES_KEY, key.as_bytes());
        }
    }
    if let Some(n) = key.policy.uses_left {
        tlv::write(&mut out, tag::USES_LEFT, &n.to_be_bytes());
    }
    if let Some(list) = &key.policy.algorithms {
        tlv::write(&mut out, tag::ALGORITHMS, list);
    }
    if let Some(domain) = key.policy.domain {
        tlv::write(&mut out, tag::DOMAIN, &[domain]);
    }
    if let Some(id) = key.policy.wrapping_key {
        tlv::write(&mut out, tag::WRAPPING_KEY, &[id]);
    }
    out
}

pub(crate) fn decode_key(bytes: &[u8]) -> Option<KeyRecord> {
    let (&format, body) = bytes.split_first()?;
    if format != KEY {
        return None;
    }
    let field = |t| tlv::find(body, t);
    let material = match field(tag::KIND)? {
        [KIND_RSA] => {
            let primes = [field(tag::RSA_P)?, field(tag::RSA_Q)?];
            let key = rsa_key::from_components(
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
        [KIND_AES] => KeyMaterial::Aes(AesKey::from_slice(field(tag::AES_KEY)?)?),
        _ => return None,
    };
    let byte = |t| match field(t) {
        Some([b]) => Ok(Some(*b)),
        Some(_) => Err(()),
        None => Ok(None),
    };
    let policy = KeyPolicy {
        uses_left: match field(tag::USES_LEFT) {
            Some(v) => Some(u32::from_be_bytes(v.try_into().ok()?)),
            None => None,
        },
        algorithms: field(tag::ALGORITHMS).map(<[u8]>::to_vec),
        domain: byte(tag::DOMAIN).ok()?,
        wrapping_key: byte(tag::WRAPPING_KEY).ok()?,
    };
    Some(KeyRecord { material, policy })
}

/// Bytes a key takes in the store (what the storage limit counts).
pub(crate) fn stored_len(key: &KeyRecord) -> usize {
    encode_key(key).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids are frozen: a key of each curve reads back on its curve, and no two share one.
    #[test]
    fn every_curve_has_its_own_stored_id() {
        let ids: Vec<u8> = Curve::ALL.into_iter().map(curve_id).collect();
        for (curve, id) in Curve::ALL.into_iter().zip(&ids) {
            assert_eq!(curve_from_id(*id), Some(curve));
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=12).collect::<Vec<u8>>());
        assert_eq!(curve_id(Curve::BrainpoolP256r1), 1);
        assert_eq!(curve_id(Curve::Secp256r1), 3);
        assert_eq!(curve_from_id(0), None);
        assert_eq!(curve_from_id(13), None);
    }
}
