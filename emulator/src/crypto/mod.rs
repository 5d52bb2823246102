//! The card's cryptography: curves ([`ec`]), [`rsa`], [`aes`], hashes, the random source, CV
//! certificates ([`cvc`]) and the wrapped-key blob ([`keyblob`]); here, the key operations of
//! SIGN (`80 68`), DECIPHER (`80 62`) and CIPHER SYMMETRIC (`80 78`) by algorithm identifier.

pub mod aes;
pub mod cvc;
pub mod ec;
pub mod hash;
pub mod keyblob;
pub mod rng;
pub mod rsa;

use ec::Curve;
use hash::Hash;
use rng::CardRng;

use crate::model::key::KeyMaterial;

/// An algorithm identifier of SIGN, DECIPHER or CIPHER SYMMETRIC (P2).
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
    /// `10`: AES-CBC encryption with IV 0, whole blocks.
    AesCbcEncrypt,
    /// `11`: AES-CBC decryption with IV 0, whole blocks.
    AesCbcDecrypt,
    /// `18`: AES-CMAC.
    AesCmac,
    /// `99`: key derivation ([`aes::derive`]), the derived value answered in clear.
    AesDerive,
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

    /// The algorithm of a CIPHER SYMMETRIC P2.
    pub fn for_cipher(p2: u8) -> Option<Algorithm> {
        match p2 {
            0x10 => Some(Algorithm::AesCbcEncrypt),
            0x11 => Some(Algorithm::AesCbcDecrypt),
            0x18 => Some(Algorithm::AesCmac),
            0x99 => Some(Algorithm::AesDerive),
            _ => None,
        }
    }

    /// Whether the operation has a result without input (a CMAC of nothing).
    pub fn accepts_empty_input(self) -> bool {
        self == Algorithm::AesCmac
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

/// A curve refused a scalar or a point: input that does not fit the key.
impl From<ec::EcError> for CryptoError {
    fn from(_: ec::EcError) -> CryptoError {
        CryptoError::BadInput
    }
}

/// Runs `algorithm` with `key` on `input`.
pub fn perform(
    key: &KeyMaterial,
    algorithm: Algorithm,
    input: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    match key {
        KeyMaterial::Rsa(key) => rsa::operation(key, algorithm, input, rng),
        KeyMaterial::Ec { curve, scalar } => ec_operation(*curve, scalar, algorithm, input),
        KeyMaterial::Aes(key) => aes_operation(key, algorithm, input),
    }
}

fn aes_operation(
    key: &aes::AesKey,
    algorithm: Algorithm,
    input: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    match algorithm {
        Algorithm::AesCbcEncrypt => aes::cbc_encrypt(key, input),
        // The answer leaves the card; the copy wiped here is the card's own.
        Algorithm::AesCbcDecrypt => aes::cbc_decrypt(key, input).map(|plain| plain.to_vec()),
        Algorithm::AesCmac => Ok(aes::cmac(key, input).to_vec()),
        Algorithm::AesDerive => aes::derive(key, input).map(|value| value.to_vec()),
        _ => Err(CryptoError::WrongKeyType),
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

/// Whether `a` and `b` are equal, in time that depends on their lengths only (MACs, PINs).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        assert_eq!(Algorithm::for_cipher(0x18), Some(Algorithm::AesCmac));
        assert_eq!(Algorithm::for_cipher(0x99), Some(Algorithm::AesDerive));
        for bad in [0x00, 0x12, 0x19, 0x98, 0x9A] {
            assert_eq!(Algorithm::for_cipher(bad), None, "{bad:02X}");
        }
    }
}
