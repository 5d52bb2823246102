//! The wrapped-key blob of WRAP KEY and UNWRAP KEY: a private or secret key encrypted and
//! authenticated under keys derived from a key domain's DKEK, in the format real
//! SmartCard-HSMs export and import.
//!
//! ```text
//! KCV (8) ‖ key type (1) ‖ len+default algorithm OID ‖ len+allowed algorithms
//!   ‖ len+access conditions ‖ len+key OID
//!   ‖ AES-256-CBC(Kenc, IV 0){ random (8) ‖ key size in bits (2) ‖ len+field ... ‖ 80 00.. }
//!   ‖ AES-CMAC(Kmac) over everything before it (16)
//! ```
//!
//! An AES key (type `0F`, OID 2.16.840.1.101.3.4.1) has no fields: the encrypted part is
//! `random (8) ‖ key length in bytes (2) ‖ key ‖ 80 00..`.
//!
//! Kenc = SHA-256(DKEK ‖ 00000001), Kmac = SHA-256(DKEK ‖ 00000002). UNWRAP checks KCV and
//! MAC before it decrypts anything.

use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
use ::rsa::BoxedUint;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::aes::{self, AesKey};
use super::ec::Curve;
use super::rng::CardRng;
use super::rsa::{self, boxed, trimmed};
use super::CryptoError;
use crate::model::dkek::kcv;
use crate::model::key::{KeyMaterial, KeyPolicy, KeyRecord};

/// Key types of the blob.
const TYPE_RSA: u8 = 5;
const TYPE_RSA_CRT: u8 = 6;
const TYPE_EC: u8 = 12;
const TYPE_AES: u8 = 15;

/// Default algorithm OIDs (TR-03110 terminal authentication).
const OID_RSA: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x01, 0x02];
const OID_EC: &[u8] = &[0x04, 0x00, 0x7F, 0x00, 0x07, 0x02, 0x02, 0x02, 0x02, 0x03];
/// 2.16.840.1.101.3.4.1, AES.
const OID_AES: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01];

/// Real cards export RSA keys up to this size in CRT form, larger ones as (d, n, e).
const LARGEST_CRT_EXPORT: usize = 2048;

/// Why a blob was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobError {
    /// KCV or MAC do not match this DKEK, or the content does not decode to a valid key
    /// (`6A80`; the two are not told apart).
    Rejected,
    /// A key type or curve the card does not support (`6A81`).
    Unsupported,
}

/// Encryption and MAC keys derived from a DKEK (AES-256 both).
pub struct KeyEncryptionKeys {
    kcv: [u8; 8],
    enc: AesKey,
    mac: AesKey,
}

impl KeyEncryptionKeys {
    pub fn derive(dkek: &[u8; 32]) -> KeyEncryptionKeys {
        let derive = |counter: u32| {
            let mut h = Sha256::new();
            h.update(dkek);
            h.update(counter.to_be_bytes());
            AesKey::Aes256(Zeroizing::new(<[u8; 32]>::from(h.finalize())))
        };
        KeyEncryptionKeys {
            kcv: kcv(dkek),
            enc: derive(1),
            mac: derive(2),
        }
    }

    /// The KCV of the DKEK these keys come from.
    pub fn kcv(&self) -> [u8; 8] {
        self.kcv
    }

    fn mac(&self, data: &[u8]) -> [u8; 16] {
        aes::cmac(&self.mac, data)
    }

    /// AES-256-CBC (IV 0) of `plain` padded to whole blocks.
    fn encrypt_padded(&self, plain: &[u8]) -> Vec<u8> {
        aes::cbc_encrypt_padded(&self.enc, &[0; aes::BLOCK], plain)
    }

    fn decrypt_cbc(&self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, BlobError> {
        aes::cbc_decrypt(&self.enc, data).map_err(|_| BlobError::Rejected)
    }
}

fn put_field(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

fn take_field<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], BlobError> {
    let (len, rest) = input.split_first_chunk::<2>().ok_or(BlobError::Rejected)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return Err(BlobError::Rejected);
    }
    let (value, rest) = rest.split_at(len);
    *input = rest;
    Ok(value)
}

/// The next `N` length-prefixed fields.
fn take_fields<'a, const N: usize>(input: &mut &'a [u8]) -> Result<[&'a [u8]; N], BlobError> {
    let mut out = [&[][..]; N];
    for field in &mut out {
        *field = take_field(input)?;
    }
    Ok(out)
}

/// Big-endian bytes of `n`, left-padded with zeros to `len`.
fn padded(n: &BoxedUint, len: usize) -> Zeroizing<Vec<u8>> {
    let bytes = Zeroizing::new(trimmed(n));
    let mut out = Zeroizing::new(vec![0u8; len.saturating_sub(bytes.len())]);
    out.extend_from_slice(&bytes);
    out
}

/// Wraps `key` into a blob; `BadInput` for an EC key whose public point cannot be computed.
pub fn wrap(
    keys: &KeyEncryptionKeys,
    key: &KeyRecord,
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, CryptoError> {
    let mut plain = Zeroizing::new(vec![0u8; 8]);
    rng.fill_bytes(&mut plain[..8]);
    let (key_type, oid) = match &key.material {
        KeyMaterial::Rsa(rsa_key) => {
            let k = rsa_key.size();
            let half = k.div_ceil(2);
            plain.extend_from_slice(&((k * 8) as u16).to_be_bytes());
            let n = padded(rsa_key.n().as_ref(), k);
            let e = Zeroizing::new(trimmed(rsa_key.e()));
            let primes = rsa_key.primes();
            let crt = match (
                primes,
                rsa_key.dp(),
                rsa_key.dq(),
                rsa_key.crt_coefficient(),
            ) {
                ([p, q], Some(dp), Some(dq), Some(qinv)) if k * 8 <= LARGEST_CRT_EXPORT => {
                    Some((p, q, dp, dq, qinv))
                }
                _ => None,
            };
            match crt {
                Some((p, q, dp, dq, qinv)) => {
                    for value in [
                        padded(dp, half),
                        padded(dq, half),
                        padded(p.as_ref(), half),
                        padded(&qinv, half),
                        padded(q.as_ref(), half),
                    ] {
                        put_field(&mut plain, &value);
                    }
                    put_field(&mut plain, &n);
                    put_field(&mut plain, &e);
                    (TYPE_RSA_CRT, OID_RSA)
                }
                None => {
                    put_field(&mut plain, &padded(rsa_key.d(), k));
                    put_field(&mut plain, &n);
                    put_field(&mut plain, &e);
                    (TYPE_RSA, OID_RSA)
                }
            }
        }
        KeyMaterial::Ec { curve, scalar } => {
            let d = curve.domain();
            plain.extend_from_slice(&(curve.field_bits() as u16).to_be_bytes());
            let point = curve.public_point(scalar)?;
            for value in [
                d.a,
                d.b,
                d.prime,
                d.order,
                d.generator,
                scalar.as_slice(),
                point.as_slice(),
            ] {
                put_field(&mut plain, value);
            }
            (TYPE_EC, OID_EC)
        }
        KeyMaterial::Aes(secret) => {
            let secret = secret.as_bytes();
            plain.extend_from_slice(&(secret.len() as u16).to_be_bytes());
            plain.extend_from_slice(secret);
            (TYPE_AES, OID_AES)
        }
    };
    let encrypted = keys.encrypt_padded(&plain);
    // No list of allowed algorithms: an empty field.
    let algorithms = key.policy.algorithms.as_deref().unwrap_or(&[]);
    Ok(seal(keys, key_type, oid, algorithms, &encrypted))
}

/// The blob around `encrypted`: KCV, key type, default algorithm OID, allowed algorithms,
/// empty access conditions and key OID, the encrypted key, and the MAC over all of it.
fn seal(
    keys: &KeyEncryptionKeys,
    key_type: u8,
    oid: &[u8],
    algorithms: &[u8],
    encrypted: &[u8],
) -> Vec<u8> {
    let mut blob = keys.kcv.to_vec();
    blob.push(key_type);
    for field in [oid, algorithms, &[], &[]] {
        put_field(&mut blob, field);
    }
    blob.extend_from_slice(encrypted);
    let mac = keys.mac(&blob);
    blob.extend_from_slice(&mac);
    blob
}

/// A blob around `plain` with a valid KCV and MAC, so that fuzzing reaches the parsing of
/// decrypted content.
#[cfg(feature = "testkit")]
pub fn seal_for_fuzzing(
    keys: &KeyEncryptionKeys,
    key_type: u8,
    algorithms: &[u8],
    plain: &[u8],
) -> Vec<u8> {
    let mut body = plain.to_vec();
    body.resize(body.len().div_ceil(16).max(1) * 16, 0);
    let body = aes::encrypt_blocks(&keys.enc, &[0; aes::BLOCK], &body);
    seal(keys, key_type, OID_EC, algorithms, &body)
}

/// Unwraps a blob into a key; KCV and MAC are checked before anything is decrypted.
pub fn unwrap(keys: &KeyEncryptionKeys, blob: &[u8]) -> Result<KeyRecord, BlobError> {
    if blob.len() < 8 + 1 + 8 + 16 + 16 {
        return Err(BlobError::Rejected);
    }
    let (authenticated, mac) = blob.split_at(blob.len() - 16);
    let mac_ok = super::constant_time_eq(&keys.mac(authenticated), mac);
    if authenticated[..8] != keys.kcv || !mac_ok {
        return Err(BlobError::Rejected);
    }
    let key_type = authenticated[8];
    let mut rest = &authenticated[9..];
    let [_default_oid, algorithms, _access_conditions, _key_oid] = take_fields(&mut rest)?;
    let algorithms = algorithms.to_vec();
    if rest.is_empty() || rest.len() % 16 != 0 {
        return Err(BlobError::Rejected);
    }
    let plain = keys.decrypt_cbc(rest)?;
    let mut fields = plain.get(10..).ok_or(BlobError::Rejected)?;
    let material = match key_type {
        TYPE_AES => {
            let len = usize::from(u16::from_be_bytes([plain[8], plain[9]]));
            let (secret, rest) = fields.split_at_checked(len).ok_or(BlobError::Rejected)?;
            fields = rest;
            KeyMaterial::Aes(AesKey::from_slice(secret).ok_or(BlobError::Rejected)?)
        }
        TYPE_RSA => {
            let [d, n, e] = take_fields(&mut fields)?;
            let key = rsa::from_components(n, e, d, &[]).ok_or(BlobError::Rejected)?;
            KeyMaterial::Rsa(Box::new(key))
        }
        TYPE_RSA_CRT => {
            // dp, dq and the CRT coefficient follow from p, q and e.
            let [_dp, _dq, p, _pq, q, n, e] = take_fields(&mut fields)?;
            let key = rsa::from_primes(p, q, e).ok_or(BlobError::Rejected)?;
            if trimmed(key.n().as_ref()) != trimmed(&boxed(n)) {
                return Err(BlobError::Rejected);
            }
            KeyMaterial::Rsa(Box::new(key))
        }
        TYPE_EC => {
            let [a, b, prime, order, generator, d, q] = take_fields(&mut fields)?;
            let curve = Curve::from_domain(prime, a, b, generator, order, None)
                .ok_or(BlobError::Unsupported)?;
            // The scalar, left-padded to the order's length.
            let skip = d.iter().take_while(|b| **b == 0).count();
            let d = &d[skip..];
            if d.len() > curve.order_len() {
                return Err(BlobError::Rejected);
            }
            let mut scalar = Zeroizing::new(vec![0u8; curve.order_len() - d.len()]);
            scalar.extend_from_slice(d);
            let point = curve
                .public_point(&scalar)
                .map_err(|_| BlobError::Rejected)?;
            if !q.is_empty() && q != point.as_slice() {
                return Err(BlobError::Rejected);
            }
            KeyMaterial::Ec { curve, scalar }
        }
        _ => return Err(BlobError::Unsupported),
    };
    // What follows the fields must be the ISO 7816-4 padding.
    match fields.split_first() {
        Some((0x80, zeros)) if zeros.iter().all(|z| *z == 0) => {}
        _ => return Err(BlobError::Rejected),
    }
    Ok(KeyRecord {
        material,
        policy: KeyPolicy {
            uses_left: None,
            algorithms: (!algorithms.is_empty()).then_some(algorithms),
            domain: None,
            wrapping_key: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::aes::KeyLength;
    use crate::tools::hex;

    fn real_blob(file: &str) -> Vec<u8> {
        // sc-hsm-tool wrap file: 30 82 039A { 04 82 016B <blob>, PRKD, CV request }.
        let path = format!(
            "{}/../fixtures/real-card/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let wrap_file = std::fs::read(path).unwrap();
        let (outer, _) = crate::apdu::tlv::read(&wrap_file).unwrap();
        let (blob, _) = crate::apdu::tlv::read(outer.value).unwrap();
        assert_eq!(blob.tag, 0x04);
        blob.value.to_vec()
    }

    fn dkek(hex_text: &str) -> [u8; 32] {
        hex::decode(hex_text).unwrap().try_into().unwrap()
    }

    #[test]
    fn imports_keys_exported_by_real_cards() {
        for (file, dkek_hex, d) in [
            (
                "nitrokey-hsm-DENK0105702-wrapkey-ec-secp256k1-kcv97E3.bin",
                "2848CB6E994F5A00C365C3C255ED130512CE1EB06BF08D348EEB8B2F866E3E50",
                "1FCE3FF149ED92C7B9D4F63B82B2B542CBD3F4152C6CD4687A69EC6B88C43BC4",
            ),
            (
                "nitrokey-hsm-DENK0105702-wrapkey-ec-secp256k1-kcvECC9.bin",
                "5965ADD4F58B867F21795FE4A4A7641D1F57E784CCFD68453609C45D6326862B",
                "721FB160E3AE01226C38A79E70519119B406849F13FAF878E787A6BE111C0D0F",
            ),
        ] {
            let keys = KeyEncryptionKeys::derive(&dkek(dkek_hex));
            let key = unwrap(&keys, &real_blob(file)).unwrap();
            match &key.material {
                KeyMaterial::Ec { curve, scalar } => {
                    assert_eq!(*curve, Curve::Secp256k1);
                    assert_eq!(hex::encode(scalar), d);
                }
                _ => panic!("expected an EC key"),
            }
        }
    }

    #[test]
    fn a_blob_under_another_dkek_or_with_any_bit_flipped_is_rejected() {
        let blob = real_blob("nitrokey-hsm-DENK0105702-wrapkey-ec-secp256k1-kcv97E3.bin");
        let right = KeyEncryptionKeys::derive(&dkek(
            "2848CB6E994F5A00C365C3C255ED130512CE1EB06BF08D348EEB8B2F866E3E50",
        ));
        let wrong = KeyEncryptionKeys::derive(&dkek(
            "5965ADD4F58B867F21795FE4A4A7641D1F57E784CCFD68453609C45D6326862B",
        ));
        assert_eq!(unwrap(&wrong, &blob).err(), Some(BlobError::Rejected));
        for bit in 0..blob.len() * 8 {
            let mut tampered = blob.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                unwrap(&right, &tampered).err(),
                Some(BlobError::Rejected),
                "bit {bit}"
            );
        }
        assert_eq!(
            unwrap(&right, &blob[..blob.len() - 1]).err(),
            Some(BlobError::Rejected)
        );
        assert_eq!(unwrap(&right, &[]).err(), Some(BlobError::Rejected));
    }

    #[test]
    fn wrap_then_unwrap_gives_the_same_key() {
        let mut rng = crate::crypto::rng::system();
        let keys = KeyEncryptionKeys::derive(&[0x42; 32]);
        let mut rsa_small = KeyRecord::generate_rsa(1024, &[1, 0, 1], &mut *rng).unwrap();
        rsa_small.policy.algorithms = Some(vec![0x31, 0x33]);
        let rsa_large = KeyRecord::generate_rsa(2304, &[1, 0, 1], &mut *rng).unwrap();
        let mut all = vec![rsa_small, rsa_large];
        all.extend(
            Curve::ALL
                .into_iter()
                .map(|c| KeyRecord::generate_ec(c, &mut *rng)),
        );
        for length in [KeyLength::Aes128, KeyLength::Aes192, KeyLength::Aes256] {
            let mut key = KeyRecord::generate_aes(length, &mut *rng);
            key.policy.algorithms = Some(vec![0x10, 0x11, 0x18, 0x99]);
            all.push(key);
        }
        for key in all {
            let blob = wrap(&keys, &key, &mut *rng).unwrap();
            let expected_type = match &key.material {
                KeyMaterial::Rsa(k) if k.size() * 8 <= 2048 => TYPE_RSA_CRT,
                KeyMaterial::Rsa(_) => TYPE_RSA,
                KeyMaterial::Ec { .. } => TYPE_EC,
                KeyMaterial::Aes(_) => TYPE_AES,
            };
            assert_eq!(blob[8], expected_type);
            let back = unwrap(&keys, &blob).unwrap();
            assert_eq!(back.policy, key.policy);
            match (&back.material, &key.material) {
                // d may come back as another exponent with the same effect (mod λ(n)).
                (KeyMaterial::Rsa(a), KeyMaterial::Rsa(b)) => {
                    assert_eq!((a.n(), a.e()), (b.n(), b.e()));
                    let primes = |k: &::rsa::PrivateKey| {
                        let mut v: Vec<Vec<u8>> =
                            k.primes().iter().map(|p| trimmed(p.as_ref())).collect();
                        v.sort();
                        v
                    };
                    assert_eq!(primes(a), primes(b));
                }
                _ => assert_eq!(back, key, "{key:?}"),
            }
        }
    }
}
