//! RSA as the card uses it: keys built from stored or imported components (checked to be
//! plausible first), their public parts, and the private-key operations of SIGN and DECIPHER.

use rsa::pss::Pss;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{hazmat, BoxedUint, Oaep, Pkcs1v15Encrypt, Pkcs1v15Sign, PrivateKey};
use zeroize::Zeroizing;

use super::hash::{with_digest, Hash};
use super::rng::{Adapter, CardRng};
use super::{Algorithm, CryptoError};

/// RSA key sizes the card generates: 1024 to 4096 bits in steps of 256.
pub fn is_supported_size(bits: usize) -> bool {
    (1024..=4096).contains(&bits) && bits.is_multiple_of(256)
}

/// Modulus and public exponent, big-endian without leading zeros.
pub fn public_parts(key: &PrivateKey) -> (Vec<u8>, Vec<u8>) {
    (trimmed(key.n().as_ref()), trimmed(key.e()))
}

/// The private exponent and primes (what no response may ever carry).
pub fn secret_parts(key: &PrivateKey) -> Vec<Zeroizing<Vec<u8>>> {
    let mut out = vec![Zeroizing::new(trimmed(key.d()))];
    out.extend(
        key.primes()
            .iter()
            .map(|p| Zeroizing::new(trimmed(p.as_ref()))),
    );
    out
}

/// Big-endian bytes of `n` without leading zeros.
pub fn trimmed(n: &BoxedUint) -> Vec<u8> {
    n.to_be_bytes_trimmed_vartime().to_vec()
}

/// A big-endian unsigned integer as the `rsa` crate takes it.
pub fn boxed(bytes: &[u8]) -> BoxedUint {
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
    build: impl FnOnce() -> rsa::Result<PrivateKey> + std::panic::UnwindSafe,
) -> Option<PrivateKey> {
    std::panic::catch_unwind(build).ok()?.ok()
}

/// An RSA key from modulus, public and private exponent (and primes, if known), checked to be
/// plausible before the `rsa` crate sees it.
pub fn from_components(n: &[u8], e: &[u8], d: &[u8], primes: &[&[u8]]) -> Option<PrivateKey> {
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
    guarded(move || PrivateKey::from_components(n, e, d, primes))
}

/// An RSA key from its primes and public exponent, checked like [`from_components`].
pub fn from_primes(p: &[u8], q: &[u8], e: &[u8]) -> Option<PrivateKey> {
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
    guarded(move || PrivateKey::from_p_q(p, q, e))
}

fn rsa_raw(key: &PrivateKey, block: &[u8], rng: &mut dyn CardRng) -> Result<Vec<u8>, CryptoError> {
    let k = key.size();
    if block.len() != k {
        return Err(CryptoError::WrongLength);
    }
    let c = BoxedUint::from_be_slice_vartime(block);
    if c >= *key.n().as_ref() {
        return Err(CryptoError::BadInput);
    }
    let m = hazmat::rsa_decrypt_and_check(key, Some(&mut Adapter(rng)), &c)
        .map_err(|_| CryptoError::BadInput)?;
    let bytes = Zeroizing::new(m.to_be_bytes_trimmed_vartime().to_vec());
    let mut out = vec![0u8; k - bytes.len()];
    out.extend_from_slice(&bytes);
    Ok(out)
}

fn pss_sign(
    key: &PrivateKey,
    hash: Hash,
    digest: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    // The salt is as long as the hash, unless that does not fit the key (RSA-1024 with
    // SHA-512): then the longest that fits, emLen - hLen - 2 (RFC 8017, 9.1.1).
    let em_len = (key.n().bit_width() as usize - 1).div_ceil(8);
    let salt = hash
        .output_len()
        .min(em_len.saturating_sub(hash.output_len() + 2));
    let mut rng = Adapter(rng);
    with_digest!(hash, D => key.sign_with_rng(&mut rng, Pss::<D>::new_with_salt(salt), digest))
        .map_err(|_| CryptoError::BadInput)
}

fn pkcs1_sign(key: &PrivateKey, hash: Option<Hash>, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let scheme = match hash {
        None => Pkcs1v15Sign::new_unprefixed(),
        Some(hash) => with_digest!(hash, D => Pkcs1v15Sign::new::<D>()),
    };
    if hash.is_none() && digest.len() + 11 > key.size() {
        return Err(CryptoError::WrongLength);
    }
    key.sign(scheme, digest).map_err(|_| CryptoError::BadInput)
}

/// RSA PKCS#1 v1.5 signature with `hash` over `message` (CV request self-signatures).
pub fn pkcs1_sign_message(
    key: &PrivateKey,
    hash: Hash,
    message: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    pkcs1_sign(key, Some(hash), &hash.digest(message))
}

/// RSA-PSS signature with `hash` over `message` (CV request self-signatures).
pub fn pss_sign_message(
    key: &PrivateKey,
    hash: Hash,
    message: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    pss_sign(key, hash, &hash.digest(message), rng)
}

/// Whether `signature` is an RSA signature over `message` by the key (`modulus`,
/// `exponent`) with a CV certificate's algorithm: PKCS#1 v1.5 or PSS (salt as long as the
/// hash). Keys of unsupported sizes never verify.
pub fn verifies(
    modulus: &[u8],
    exponent: &[u8],
    algorithm: super::cvc::TaAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> bool {
    use super::cvc::TaAlgorithm;
    if !(1024..=4096).contains(&bit_length(modulus)) {
        return false;
    }
    let Ok(key) = rsa::PublicKey::new(boxed(modulus), boxed(exponent)) else {
        return false;
    };
    match algorithm {
        TaAlgorithm::RsaPkcs1(hash) => key
            .verify(
                with_digest!(hash, D => Pkcs1v15Sign::new::<D>()),
                &hash.digest(message),
                signature,
            )
            .is_ok(),
        TaAlgorithm::RsaPss(hash) => {
            with_digest!(hash, D => key.verify(Pss::<D>::new(), &hash.digest(message), signature))
                .is_ok()
        }
        TaAlgorithm::Ecdsa(_) => false,
    }
}

/// Runs an RSA `algorithm` of SIGN or DECIPHER.
pub(super) fn operation(
    key: &PrivateKey,
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
        _ => Err(CryptoError::WrongKeyType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert!(is_supported_size(1024) && is_supported_size(1536) && is_supported_size(4096));
        assert!(!is_supported_size(1000) && !is_supported_size(768) && !is_supported_size(4352));
    }
}
