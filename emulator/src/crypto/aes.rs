//! AES with a key of 16, 24 or 32 bytes: CBC with a zero IV, CMAC, and the key derivation of
//! CIPHER SYMMETRIC `99`. The card's AES keys use it, and so does the key blob (AES-256).
//!
//! Key schedules are wiped when dropped (the `zeroize` feature of the `aes` crate).

use aes::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes192, Aes256};
use cmac::{Cmac, Mac};
use zeroize::Zeroizing;

use super::CryptoError;

/// The AES block size.
pub const BLOCK: usize = 16;

/// Largest output of the key derivation: HKDF-SHA256 gives at most 255 blocks of 32 bytes.
pub const MAX_DERIVED_LEN: usize = 255 * 32;

/// Key lengths of the card's AES keys.
pub const KEY_LENGTHS: [usize; 3] = [16, 24, 32];

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
    fn new(key: &[u8]) -> Result<Schedule, CryptoError> {
        let bad = |_| CryptoError::WrongKeyType;
        Ok(match key.len() {
            16 => Schedule::Aes128(Aes128::new_from_slice(key).map_err(bad)?),
            24 => Schedule::Aes192(Aes192::new_from_slice(key).map_err(bad)?),
            32 => Schedule::Aes256(Aes256::new_from_slice(key).map_err(bad)?),
            _ => return Err(CryptoError::WrongKeyType),
        })
    }

    fn encrypt(&self, block: &mut [u8]) {
        let mut b = Block::<Aes128>::default();
        b.copy_from_slice(block);
        with_cipher!(self, c => c.encrypt_block(&mut b));
        block.copy_from_slice(&b);
    }

    fn decrypt(&self, block: &mut [u8]) {
        let mut b = Block::<Aes128>::default();
        b.copy_from_slice(block);
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
pub fn cbc_encrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    cbc_encrypt_iv(key, &[0; BLOCK], data)
}

/// AES-CBC encryption of whole blocks with `iv`.
pub fn cbc_encrypt_iv(key: &[u8], iv: &[u8; BLOCK], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let schedule = Schedule::new(key)?;
    whole_blocks(data)?;
    let mut out = data.to_vec();
    let mut chain = *iv;
    for block in out.chunks_exact_mut(BLOCK) {
        block.iter_mut().zip(chain).for_each(|(b, c)| *b ^= c);
        schedule.encrypt(block);
        chain.copy_from_slice(block);
    }
    Ok(out)
}

/// AES-CBC decryption with IV 0 of whole blocks. The plaintext is wiped when dropped.
pub fn cbc_decrypt(key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    cbc_decrypt_iv(key, &[0; BLOCK], data)
}

/// AES-CBC decryption of whole blocks with `iv`; the plaintext is wiped when dropped.
pub fn cbc_decrypt_iv(
    key: &[u8],
    iv: &[u8; BLOCK],
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let schedule = Schedule::new(key)?;
    whole_blocks(data)?;
    let mut out = Zeroizing::new(data.to_vec());
    let mut chain = *iv;
    for block in out.chunks_exact_mut(BLOCK) {
        let mut next = [0u8; BLOCK];
        next.copy_from_slice(block);
        schedule.decrypt(block);
        block.iter_mut().zip(chain).for_each(|(b, c)| *b ^= c);
        chain = next;
    }
    Ok(out)
}

/// AES-CMAC (NIST SP 800-38B) of `data`, which may be empty.
pub fn cmac(key: &[u8], data: &[u8]) -> Result<[u8; BLOCK], CryptoError> {
    fn run<C: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Result<[u8; BLOCK], CryptoError> {
        let mut mac = <C as KeyInit>::new_from_slice(key).map_err(|_| CryptoError::WrongKeyType)?;
        mac.update(data);
        let tag = mac.finalize().into_bytes();
        let mut out = [0u8; BLOCK];
        out.copy_from_slice(&tag);
        Ok(out)
    }
    match key.len() {
        16 => run::<Cmac<Aes128>>(key, data),
        24 => run::<Cmac<Aes192>>(key, data),
        32 => run::<Cmac<Aes256>>(key, data),
        _ => Err(CryptoError::WrongKeyType),
    }
}

/// The key derivation of CIPHER SYMMETRIC `99`: HKDF-SHA256 (RFC 5869) with the AES key as
/// input keying material, no salt, `parameter` as info, and as many output bytes as the
/// parameter has (1 to [`MAX_DERIVED_LEN`]).
pub fn derive(key: &[u8], parameter: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if !KEY_LENGTHS.contains(&key.len()) {
        return Err(CryptoError::WrongKeyType);
    }
    if parameter.is_empty() || parameter.len() > MAX_DERIVED_LEN {
        return Err(CryptoError::WrongLength);
    }
    let mut out = Zeroizing::new(vec![0u8; parameter.len()]);
    hkdf::Hkdf::<sha2::Sha256>::new(None, key)
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
            let c = cbc_encrypt(&h(key), &xored).unwrap();
            assert_eq!(hex::encode(&c), expected);
            assert_eq!(*cbc_decrypt(&h(key), &c).unwrap(), xored);
        }
    }

    #[test]
    fn cmac_matches_nist_sp800_38b() {
        // D.1 (AES-128), empty message and one block; D.2 (AES-192), empty message.
        let k128 = h("2B7E151628AED2A6ABF7158809CF4F3C");
        assert_eq!(
            hex::encode(&cmac(&k128, &[]).unwrap()),
            "BB1D6929E95937287FA37D129B756746"
        );
        assert_eq!(
            hex::encode(&cmac(&k128, &h("6BC1BEE22E409F96E93D7E117393172A")).unwrap()),
            "070A16B46B4D4144F79BDD9DD04A287C"
        );
        let k192 = h("8E73B0F7DA0E6452C810F32B809079E562F8EAD2522C6B7B");
        assert_eq!(
            hex::encode(&cmac(&k192, &[]).unwrap()),
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
            assert_eq!(hex::encode(&derive(&key, &info).unwrap()), expected);
        }
        assert_eq!(derive(&[1; 16], &[]), Err(CryptoError::WrongLength));
        assert_eq!(derive(&[1; 8], &[1]), Err(CryptoError::WrongKeyType));
    }

    #[test]
    fn bad_lengths() {
        let key = [1u8; 16];
        assert_eq!(cbc_encrypt(&key, &[]), Err(CryptoError::WrongLength));
        assert_eq!(cbc_encrypt(&key, &[0; 15]), Err(CryptoError::BadInput));
        assert!(cbc_decrypt(&key, &[0; 17]).is_err());
        assert_eq!(
            cbc_encrypt(&[0; 20], &[0; 16]),
            Err(CryptoError::WrongKeyType)
        );
        assert_eq!(cmac(&[0; 8], b"x"), Err(CryptoError::WrongKeyType));
    }
}
