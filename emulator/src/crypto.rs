//! The card's private-key operations, by algorithm identifier (SIGN `80 68`, DECIPHER `80 62`).

use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign};
use zeroize::Zeroizing;

use crate::ec::{self, Curve};
use crate::hash::Hash;
use crate::keystore::KeyMaterial;
use crate::rng::{Adapter, CardRng};

/// An algorithm identifier of SIGN or DECIPHER (P2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `20`: raw RSA on a modulus-length block.
    RsaRaw,
    /// `30`: PKCS#1 v1.5 on a DigestInfo; `31`-`35`: the card hashes first.
    RsaPkcs1(Option<Hash>),
    /// `40`: PSS on a hash, bare (chosen by its length) or in a DigestInfo (OpenSC sends
    /// that); `41`-`45`: the card hashes first.
    RsaPss(Option<Hash>),
    /// `70`: ECDSA on a hash of any length; `71`-`75`: the card hashes first.
    Ecdsa(Option<Hash>),
    /// `21`: raw RSA decryption, the whole block is returned.
    RsaDecryptRaw,
    /// `22`: RSA decryption with PKCS#1 v1.5 unpadding.
    RsaDecryptPkcs1,
    /// `23`: RSA decryption with OAEP (SHA-1, MGF1-SHA-1, empty label, as Java Card's
    /// `ALG_RSA_PKCS1_OAEP` that the card is built on).
    RsaDecryptOaep,
    /// `80`: ECDH, answering the shared point.
    Ecdh,
}

impl Algorithm {
    /// The algorithm of a SIGN P2.
    pub fn for_sign(p2: u8) -> Option<Algorithm> {
        let hash = Hash::from_nibble(p2 & 0x0F);
        match (p2 & 0xF0, p2 & 0x0F) {
            (0x20, 0) => Some(Algorithm::RsaRaw),
            (0x30, 0) => Some(Algorithm::RsaPkcs1(None)),
            (0x30, _) => hash.map(|h| Algorithm::RsaPkcs1(Some(h))),
            (0x40, 0) => Some(Algorithm::RsaPss(None)),
            (0x40, _) => hash.map(|h| Algorithm::RsaPss(Some(h))),
            (0x70, 0) => Some(Algorithm::Ecdsa(None)),
            (0x70, _) => hash.map(|h| Algorithm::Ecdsa(Some(h))),
            _ => None,
        }
    }

    /// The algorithm of a DECIPHER P2.
    pub fn for_decipher(p2: u8) -> Option<Algorithm> {
        match p2 {
            0x21 => Some(Algorithm::RsaDecryptRaw),
            0x22 => Some(Algorithm::RsaDecryptPkcs1),
            0x23 => Some(Algorithm::RsaDecryptOaep),
            0x80 => Some(Algorithm::Ecdh),
            _ => None,
        }
    }

    fn is_rsa(self) -> bool {
        !matches!(self, Algorithm::Ecdsa(_) | Algorithm::Ecdh)
    }
}

/// Why an operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The algorithm does not apply to this type of key (`6A81`).
    WrongKeyType,
    /// The input has the wrong length (`6700`).
    WrongLength,
    /// The input is malformed for the key: a value not below the modulus, a point not on the
    /// curve, padding that does not decode (`6A80`).
    BadInput,
}

/// Runs `algorithm` with `key` on `input`.
pub fn perform(
    key: &KeyMaterial,
    algorithm: Algorithm,
    input: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    match (key, algorithm.is_rsa()) {
        (KeyMaterial::Rsa(key), true) => rsa_operation(key, algorithm, input, rng),
        (KeyMaterial::Ec { curve, scalar }, false) => {
            ec_operation(*curve, scalar, algorithm, input)
        }
        _ => Err(CryptoError::WrongKeyType),
    }
}

fn rsa_raw(
    key: &rsa::PrivateKey,
    block: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    let k = key.size();
    if block.len() != k {
        return Err(CryptoError::WrongLength);
    }
    let c = BoxedUint::from_be_slice_vartime(block);
    if c >= *key.n().as_ref() {
        return Err(CryptoError::BadInput);
    }
    let m = rsa::hazmat::rsa_decrypt_and_check(key, Some(&mut Adapter(rng)), &c)
        .map_err(|_| CryptoError::BadInput)?;
    let bytes = Zeroizing::new(m.to_be_bytes_trimmed_vartime().to_vec());
    let mut out = vec![0u8; k - bytes.len()];
    out.extend_from_slice(&bytes);
    Ok(out)
}

fn pss_sign(
    key: &rsa::PrivateKey,
    hash: Hash,
    digest: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    let salt = hash.output_len();
    let mut rng = Adapter(rng);
    let result = match hash {
        Hash::Sha1 => key.sign_with_rng(
            &mut rng,
            rsa::pss::Pss::<sha1::Sha1>::new_with_salt(salt),
            digest,
        ),
        Hash::Sha224 => key.sign_with_rng(
            &mut rng,
            rsa::pss::Pss::<sha2::Sha224>::new_with_salt(salt),
            digest,
        ),
        Hash::Sha256 => key.sign_with_rng(
            &mut rng,
            rsa::pss::Pss::<sha2::Sha256>::new_with_salt(salt),
            digest,
        ),
        Hash::Sha384 => key.sign_with_rng(
            &mut rng,
            rsa::pss::Pss::<sha2::Sha384>::new_with_salt(salt),
            digest,
        ),
        Hash::Sha512 => key.sign_with_rng(
            &mut rng,
            rsa::pss::Pss::<sha2::Sha512>::new_with_salt(salt),
            digest,
        ),
    };
    result.map_err(|_| CryptoError::BadInput)
}

fn pkcs1_sign(
    key: &rsa::PrivateKey,
    hash: Option<Hash>,
    digest: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let scheme = match hash {
        None => Pkcs1v15Sign::new_unprefixed(),
        Some(Hash::Sha1) => Pkcs1v15Sign::new::<sha1::Sha1>(),
        Some(Hash::Sha224) => Pkcs1v15Sign::new::<sha2::Sha224>(),
        Some(Hash::Sha256) => Pkcs1v15Sign::new::<sha2::Sha256>(),
        Some(Hash::Sha384) => Pkcs1v15Sign::new::<sha2::Sha384>(),
        Some(Hash::Sha512) => Pkcs1v15Sign::new::<sha2::Sha512>(),
    };
    if hash.is_none() && digest.len() + 11 > key.size() {
        return Err(CryptoError::WrongLength);
    }
    key.sign(scheme, digest).map_err(|_| CryptoError::BadInput)
}

/// RSA PKCS#1 v1.5 signature with `hash` over `message` (CV request self-signatures).
pub fn rsa_pkcs1_sign_message(
    key: &rsa::PrivateKey,
    hash: Hash,
    message: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    pkcs1_sign(key, Some(hash), &hash.digest(message))
}

/// RSA-PSS signature with `hash` over `message` (CV request self-signatures).
pub fn rsa_pss_sign_message(
    key: &rsa::PrivateKey,
    hash: Hash,
    message: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    pss_sign(key, hash, &hash.digest(message), rng)
}

fn rsa_operation(
    key: &rsa::PrivateKey,
    algorithm: Algorithm,
    input: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    match algorithm {
        Algorithm::RsaRaw | Algorithm::RsaDecryptRaw => rsa_raw(key, input, rng),
        Algorithm::RsaPkcs1(None) => pkcs1_sign(key, None, input),
        Algorithm::RsaPkcs1(Some(hash)) => pkcs1_sign(key, Some(hash), &hash.digest(input)),
        Algorithm::RsaPss(None) => {
            let (hash, digest) = Hash::identify(input).ok_or(CryptoError::WrongLength)?;
            pss_sign(key, hash, digest, rng)
        }
        Algorithm::RsaPss(Some(hash)) => pss_sign(key, hash, &hash.digest(input), rng),
        Algorithm::RsaDecryptPkcs1 => {
            if input.len() != key.size() {
                return Err(CryptoError::WrongLength);
            }
            key.decrypt_blinded(&mut Adapter(rng), Pkcs1v15Encrypt, input)
                .map_err(|_| CryptoError::BadInput)
        }
        Algorithm::RsaDecryptOaep => {
            if input.len() != key.size() {
                return Err(CryptoError::WrongLength);
            }
            key.decrypt_blinded(&mut Adapter(rng), Oaep::<sha1::Sha1>::new(), input)
                .map_err(|_| CryptoError::BadInput)
        }
        Algorithm::Ecdsa(_) | Algorithm::Ecdh => Err(CryptoError::WrongKeyType),
    }
}

fn ec_operation(
    curve: Curve,
    scalar: &[u8],
    algorithm: Algorithm,
    input: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    match algorithm {
        Algorithm::Ecdsa(hash) => {
            let digest = match hash {
                Some(h) => h.digest(input),
                None if input.is_empty() || input.len() > 64 => {
                    return Err(CryptoError::WrongLength)
                }
                None => input.to_vec(),
            };
            let (r, s) = curve
                .sign_prehash(scalar, &digest)
                .map_err(|_| CryptoError::BadInput)?;
            Ok(ec::der_signature(&r, &s))
        }
        Algorithm::Ecdh => {
            if input.len() != 1 + 2 * curve.field_len() {
                return Err(CryptoError::WrongLength);
            }
            let shared = curve
                .ecdh(scalar, input)
                .map_err(|_| CryptoError::BadInput)?;
            Ok(shared.to_vec())
        }
        _ => Err(CryptoError::WrongKeyType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_ids() {
        assert_eq!(Algorithm::for_sign(0x20), Some(Algorithm::RsaRaw));
        assert_eq!(Algorithm::for_sign(0x30), Some(Algorithm::RsaPkcs1(None)));
        assert_eq!(
            Algorithm::for_sign(0x33),
            Some(Algorithm::RsaPkcs1(Some(Hash::Sha256)))
        );
        assert_eq!(
            Algorithm::for_sign(0x45),
            Some(Algorithm::RsaPss(Some(Hash::Sha512)))
        );
        assert_eq!(
            Algorithm::for_sign(0x71),
            Some(Algorithm::Ecdsa(Some(Hash::Sha1)))
        );
        for bad in [0x00, 0x21, 0x36, 0x46, 0x76, 0x80, 0x2F] {
            assert_eq!(Algorithm::for_sign(bad), None, "{bad:02X}");
        }
        assert_eq!(
            Algorithm::for_decipher(0x21),
            Some(Algorithm::RsaDecryptRaw)
        );
        assert_eq!(Algorithm::for_decipher(0x80), Some(Algorithm::Ecdh));
        assert_eq!(Algorithm::for_decipher(0x20), None);
    }
}
