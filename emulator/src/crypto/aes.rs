//! AES with a key of 16, 24 or 32 bytes: CBC with a zero IV, CMAC, and the key derivation of
//! CIPHER SYMMETRIC `99`. The card's AES keys use it, and so do the key blob (AES-256) and
//! secure messaging (AES-128).
//!
//! A key is an [`AesKey`], whose length is its type: no operation can fail on the key, only on
//! its input. Keys and key schedules are wiped when dropped (the `zeroize` feature of the `aes`
//! crate).

use aes::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes192, Aes256};
use cmac::{Cmac, Mac};
use zeroize::Zeroizing;

use super::rng::CardRng;
use super::CryptoError;

/// The AES block size.
pub const BLOCK: usize = 16;

/// Largest output of the key derivation: HKDF-SHA256 gives at most 255 blocks of 32 bytes.
pub const MAX_DERIVED_LEN: usize = 255 * 32;

/// The three key lengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyLength {
    Aes128,
    Aes192,
    Aes256,
}

impl KeyLength {
    /// Bytes of a key of this length.
    pub fn bytes(self) -> usize {
        match self {
            KeyLength::Aes128 => 16,
            KeyLength::Aes192 => 24,
            KeyLength::Aes256 => 32,
        }
    }
}

/// An AES key of one of the three lengths, wiped when dropped.
#[derive(Clone)]
pub enum AesKey {
    Aes128(Zeroizing<[u8; 16]>),
    Aes192(Zeroizing<[u8; 24]>),
    Aes256(Zeroizing<[u8; 32]>),
}

impl AesKey {
    /// The key of `bytes`: `None` unless they are 16, 24 or 32.
    pub fn from_slice(bytes: &[u8]) -> Option<AesKey> {
        Some(match bytes.len() {
            16 => AesKey::Aes128(Zeroizing::new(bytes.try_into().ok()?)),
            24 => AesKey::Aes192(Zeroizing::new(bytes.try_into().ok()?)),
            32 => AesKey::Aes256(Zeroizing::new(bytes.try_into().ok()?)),
            _ => return None,
        })
    }

    /// A new random key of `length`.
    pub fn generate(length: KeyLength, rng: &mut dyn CardRng) -> AesKey {
        match length {
            KeyLength::Aes128 => {
                let mut key = Zeroizing::new([0u8; 16]);
                rng.fill_bytes(&mut key[..]);
                AesKey::Aes128(key)
            }
            KeyLength::Aes192 => {
                let mut key = Zeroizing::new([0u8; 24]);
                rng.fill_bytes(&mut key[..]);
                AesKey::Aes192(key)
            }
            KeyLength::Aes256 => {
                let mut key = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut key[..]);
                AesKey::Aes256(key)
            }
        }
    }

    /// The key's bytes (for its stored form and its wrapped form only).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            AesKey::Aes128(k) => &k[..],
            AesKey::Aes192(k) => &k[..],
            AesKey::Aes256(k) => &k[..],
        }
    }

    pub fn length(&self) -> KeyLength {
        match self {
            AesKey::Aes128(_) => KeyLength::Aes128,
            AesKey::Aes192(_) => KeyLength::Aes192,
            AesKey::Aes256(_) => KeyLength::Aes256,
        }
    }

    /// One block encrypted (what secure messaging's IV is made of).
    pub fn encrypt_block(&self, block: &[u8; BLOCK]) -> [u8; BLOCK] {
        let mut out = *block;
        Schedule::new(self).encrypt(&mut out);
        out
    }
}

/// An AES key schedule of one of the three sizes.
enum Schedule {
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
}

/// Runs `$body` with `$c` bound to the cipher of `$schedule`, whatever its size.
macro_rules! with_cipher {
    ($schedule:expr, $c:ident => $body:expr) => {
        match $schedule {
            Schedule::Aes128($c) => $body,
            Schedule::Aes192($c) => $body,
            Schedule::Aes256($c) => $body,
        }
    };
}

impl Schedule {
    fn new(key: &AesKey) -> Schedule {
        match key {
            AesKey::Aes128(k) => Schedule::Aes128(Aes128::new((&**k).into())),
            AesKey::Aes192(k) => Schedule::Aes192(Aes192::new((&**k).into())),
            AesKey::Aes256(k) => Schedule::Aes256(Aes256::new((&**k).into())),
        }
    }

    fn encrypt(&self, block: &mut [u8; BLOCK]) {
        let mut b = Block::<Aes128>::from(*block);
        with_cipher!(self, c => c.encrypt_block(&mut b));
        block.copy_from_slice(&b);
    }

    fn decrypt(&self, block: &mut [u8; BLOCK]) {
        let mut b = Block::<Aes128>::from(*block);
        with_cipher!(self, c => c.decrypt_block(&mut b));
        block.copy_from_slice(&b);
    }
}

/// Whether `data` can be processed by CBC without padding: whole blocks, at least one.
fn whole_blocks(data: &[u8]) -> Result<(), CryptoError> {
    if data.is_empty() {
        Err(CryptoError::WrongLength)
    } else if !data.len().is_multiple_of(BLOCK) {
        Err(CryptoError::BadInput)
    } else {
        Ok(())
    }
}

/// ISO 7816-4 / ISO 9797-1 padding method 2 in place: `80`, then zeros to whole blocks.
pub fn iso_pad(buf: &mut Vec<u8>) {
    buf.push(0x80);
    buf.resize(buf.len().div_ceil(BLOCK) * BLOCK, 0);
}

/// AES-CBC encryption with IV 0 of whole blocks.
pub fn cbc_encrypt(key: &AesKey, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    cbc_encrypt_iv(key, &[0; BLOCK], data)
}

/// AES-CBC encryption of whole blocks with `iv`.
pub fn cbc_encrypt_iv(key: &AesKey, iv: &[u8; BLOCK], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    whole_blocks(data)?;
    Ok(encrypt_blocks(key, iv, data))
}

/// `data` padded (method 2) and encrypted with AES-CBC under `iv`: whole blocks by
/// construction, so nothing can fail.
pub fn cbc_encrypt_padded(key: &AesKey, iv: &[u8; BLOCK], data: &[u8]) -> Vec<u8> {
    let mut padded = Zeroizing::new(data.to_vec());
    iso_pad(&mut padded);
    encrypt_blocks(key, iv, &padded)
}

/// CBC over the whole blocks of `data` (callers see to it that there is nothing else).
pub(crate) fn encrypt_blocks(key: &AesKey, iv: &[u8; BLOCK], data: &[u8]) -> Vec<u8> {
    let schedule = Schedule::new(key);
    let mut out = Vec::with_capacity(data.len());
    let mut chain = *iv;
    for block in data.chunks_exact(BLOCK) {
        chain.iter_mut().zip(block).for_each(|(c, b)| *c ^= b);
        schedule.encrypt(&mut chain);
        out.extend_from_slice(&chain);
    }
    out
}

/// AES-CBC decryption with IV 0 of whole blocks. The plaintext is wiped when dropped.
pub fn cbc_decrypt(key: &AesKey, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    cbc_decrypt_iv(key, &[0; BLOCK], data)
}

/// AES-CBC decryption of whole blocks with `iv`; the plaintext is wiped when dropped.
pub fn cbc_decrypt_iv(
    key: &AesKey,
    iv: &[u8; BLOCK],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    whole_blocks(data)?;
    let schedule = Schedule::new(key);
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    let mut chain = *iv;
    for block in data.chunks_exact(BLOCK) {
        let mut plain = Zeroizing::new([0u8; BLOCK]);
        plain.copy_from_slice(block);
        schedule.decrypt(&mut plain);
        plain.iter_mut().zip(chain).for_each(|(p, c)| *p ^= c);
        out.extend_from_slice(&plain[..]);
        chain.copy_from_slice(block);
    }
    Ok(out)
}

/// AES-CMAC (NIST SP 800-38B) of `data`, which may be empty.
pub fn cmac(key: &AesKey, data: &[u8]) -> [u8; BLOCK] {
    fn run<C: Mac + KeyInit>(mut mac: C, data: &[u8]) -> [u8; BLOCK] {
        mac.update(data);
        let tag = mac.finalize().into_bytes();
        let mut out = [0u8; BLOCK];
        out.copy_from_slice(&tag);
        out
    }
    match key {
        AesKey::Aes128(k) => run(<Cmac<Aes128> as KeyInit>::new((&**k).into()), data),
        AesKey::Aes192(k) => run(<Cmac<Aes192> as KeyInit>::new((&**k).into()), data),
        AesKey::Aes256(k) => run(<Cmac<Aes256> as KeyInit>::new((&**k).into()), data),
    }
}

/// The key derivation of CIPHER SYMMETRIC `99`: HKDF-SHA256 (RFC 5869) with the AES key as
/// input keying material, no salt, `parameter` as info, and as many output bytes as the
/// parameter has (1 to [`MAX_DERIVED_LEN`]).
pub fn derive(key: &AesKey, parameter: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if parameter.is_empty() || parameter.len() > MAX_DERIVED_LEN {
        return Err(CryptoError::WrongLength);
    }
    let mut out = Zeroizing::new(vec![0u8; parameter.len()]);
    hkdf::Hkdf::<sha2::Sha256>::new(None, key.as_bytes())
        .expand(parameter, &mut out)
        .map_err(|_| CryptoError::WrongLength)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::hex;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn key(s: &str) -> AesKey {
        AesKey::from_slice(&h(s)).unwrap()
    }

    #[test]
    fn cbc_matches_nist_sp800_38a() {
        // F.2.1 / F.2.5: CBC-AES128 and CBC-AES256, first block, IV 000102...0F. IV 0 here,
        // so the published IV is XORed into the plaintext first.
        let iv = h("000102030405060708090A0B0C0D0E0F");
        let plain = h("6BC1BEE22E409F96E93D7E117393172A");
        let xored: Vec<u8> = plain.iter().zip(&iv).map(|(a, b)| a ^ b).collect();
        for (key, expected) in [
            (
                "2B7E151628AED2A6ABF7158809CF4F3C",
                "7649ABAC8119B246CEE98E9B12E9197D",
            ),
            (
                "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4",
                "F58C4C04D6E5F1BA779EABFB5F7BFBD6",
            ),
        ] {
            let c = cbc_encrypt(&self::key(key), &xored).unwrap();
            assert_eq!(hex::encode(&c), expected);
            assert_eq!(*cbc_decrypt(&self::key(key), &c).unwrap(), xored);
            // The padded form is the same CBC over the data and one block of padding.
            let padded = cbc_encrypt_padded(&self::key(key), &[0; BLOCK], &xored);
            assert_eq!(&padded[..BLOCK], &c[..]);
            assert_eq!(padded.len(), 2 * BLOCK);
        }
    }

    #[test]
    fn cmac_matches_nist_sp800_38b() {
        // D.1 (AES-128), empty message and one block; D.2 (AES-192), empty message.
        let k128 = key("2B7E151628AED2A6ABF7158809CF4F3C");
        assert_eq!(
            hex::encode(&cmac(&k128, &[])),
            "BB1D6929E95937287FA37D129B756746"
        );
        assert_eq!(
            hex::encode(&cmac(&k128, &h("6BC1BEE22E409F96E93D7E117393172A"))),
            "070A16B46B4D4144F79BDD9DD04A287C"
        );
        let k192 = key("8E73B0F7DA0E6452C810F32B809079E562F8EAD2522C6B7B");
        assert_eq!(
            hex::encode(&cmac(&k192, &[])),
            "D17DDF46ADAACDE531CAC483DE7A9367"
        );
    }

    #[test]
    fn derivation_is_hkdf_sha256_with_the_parameter_as_info() {
        // Values from Python's `cryptography`: HKDF(SHA256, length=len(info), salt=None,
        // info).derive(key).
        for (key, info, expected) in [
            (
                [0x0Bu8; 32].to_vec(),
                [0x5Au8; 32].to_vec(),
                "3DCBBA6ED72280E926C4FC9BDD1007AD9B49127AE0CDEAC3A1B71233189DF3A6",
            ),
            (
                [0x0Bu8; 16].to_vec(),
                [0x5Au8; 40].to_vec(),
                "57AD23F2B5DB7D35B0ACFB14C7A10F19444EF0005A98D75E09868D85A6A247304E98D12A8C6F17A5",
            ),
        ] {
            let key = AesKey::from_slice(&key).unwrap();
            assert_eq!(hex::encode(&derive(&key, &info).unwrap()), expected);
        }
        let key = AesKey::from_slice(&[1; 16]).unwrap();
        assert_eq!(derive(&key, &[]), Err(CryptoError::WrongLength));
    }

    #[test]
    fn bad_lengths() {
        let key = AesKey::from_slice(&[1u8; 16]).unwrap();
        assert_eq!(cbc_encrypt(&key, &[]), Err(CryptoError::WrongLength));
        assert_eq!(cbc_encrypt(&key, &[0; 15]), Err(CryptoError::BadInput));
        assert!(cbc_decrypt(&key, &[0; 17]).is_err());
        // A key of another length is not an AES key at all.
        for len in [0, 8, 15, 17, 20, 31, 33] {
            assert!(AesKey::from_slice(&vec![0; len]).is_none(), "{len}");
        }
        for length in [KeyLength::Aes128, KeyLength::Aes192, KeyLength::Aes256] {
            let key = AesKey::from_slice(&vec![0; length.bytes()]).unwrap();
            assert_eq!(key.length(), length);
        }
    }
}
