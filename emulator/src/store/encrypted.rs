//! Encrypted snapshots, for backups that travel: a snapshot sealed under a passphrase with a
//! memory-hard KDF (Argon2id) and an AEAD (XChaCha20-Poly1305).
//!
//! ```text
//! "SC-HSM-EMULATOR-ENCRYPTED-SNAPSHOT\n" ‖ version 01
//!   ‖ Argon2id memory KiB (4) ‖ passes (4) ‖ lanes (4) ‖ salt (16) ‖ nonce (24)
//!   ‖ XChaCha20-Poly1305(key, nonce, aad = everything before){ snapshot } ‖ tag (16)
//! ```

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use zeroize::Zeroizing;

use super::version::ENCRYPTED_SNAPSHOT as VERSION;
use super::StoreError;
use crate::crypto::rng::CardRng;

const MAGIC: &[u8] = b"SC-HSM-EMULATOR-ENCRYPTED-SNAPSHOT\n";
/// Argon2id with 64 MiB of memory and three passes (RFC 9106's second recommendation).
const MEMORY_KIB: u32 = 64 * 1024;
const PASSES: u32 = 3;
const LANES: u32 = 1;
const HEADER: usize = MAGIC.len() + 1 + 12 + 16 + 24;

/// Whether `file` is an encrypted snapshot.
pub fn is_encrypted(file: &[u8]) -> bool {
    file.starts_with(MAGIC)
}

fn key(
    passphrase: &[u8],
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, StoreError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|e| {
        StoreError::Refused(format!("the encrypted snapshot's KDF parameters: {e}"))
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, &mut key[..])
        .map_err(|e| StoreError::Refused(format!("deriving the key: {e}")))?;
    Ok(key)
}

/// `snapshot` sealed under `passphrase`.
pub fn encrypt(
    snapshot: &[u8],
    passphrase: &[u8],
    rng: &mut dyn CardRng,
) -> Result<Vec<u8>, StoreError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let mut out = MAGIC.to_vec();
    out.push(VERSION);
    for n in [MEMORY_KIB, PASSES, LANES] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let key = key(passphrase, &salt, MEMORY_KIB, PASSES, LANES)?;
    let cipher = XChaCha20Poly1305::new((&*key).into());
    let sealed = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: snapshot,
                aad: &out,
            },
        )
        .map_err(|_| StoreError::Refused("encrypting the snapshot failed".into()))?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The snapshot inside `file`; a wrong passphrase or any changed byte is refused.
pub fn decrypt(file: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let bad = |why: &str| StoreError::Refused(format!("the encrypted snapshot {why}"));
    if !is_encrypted(file) || file.len() < HEADER + 16 {
        return Err(bad("is damaged (truncated)"));
    }
    let (header, sealed) = file.split_at(HEADER);
    let fields = &header[MAGIC.len()..];
    if fields[0] > VERSION {
        return Err(StoreError::Newer {
            what: "encrypted snapshot format".into(),
            found: fields[0],
            newest: VERSION,
        });
    }
    if fields[0] != VERSION {
        return Err(bad(&format!("has version {}, not {VERSION}", fields[0])));
    }
    let number = |at: usize| {
        u32::from_be_bytes([fields[at], fields[at + 1], fields[at + 2], fields[at + 3]])
    };
    let (m, t, p) = (number(1), number(5), number(9));
    if m > 4 * 1024 * 1024 || t > 100 || p > 64 {
        return Err(bad("asks for more than this program will spend on its key"));
    }
    let salt = &fields[13..29];
    let nonce: [u8; 24] = fields[29..53].try_into().map_err(|_| bad("is damaged"))?;
    let key = key(passphrase, salt, m, t, p)?;
    let cipher = XChaCha20Poly1305::new((&*key).into());
    cipher
        .decrypt(
            (&nonce).into(),
            Payload {
                msg: sealed,
                aad: header,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| bad("does not open with this passphrase (or is damaged)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rng::SeededRng;

    #[test]
    fn a_snapshot_opens_with_its_passphrase_only() {
        let snapshot = b"SC-HSM-EMULATOR-SNAPSHOT\n\x01 the card".to_vec();
        let file = encrypt(&snapshot, b"correct horse", &mut SeededRng::new(1, 0)).unwrap();
        assert!(is_encrypted(&file));
        assert!(!file.windows(8).any(|w| w == b"the card"));
        assert_eq!(&*decrypt(&file, b"correct horse").unwrap(), &snapshot);
        assert!(decrypt(&file, b"correct horsf").is_err());
        for at in [0, MAGIC.len() + 2, HEADER - 1, HEADER, file.len() - 1] {
            let mut damaged = file.clone();
            damaged[at] ^= 1;
            assert!(decrypt(&damaged, b"correct horse").is_err(), "byte {at}");
        }
        assert!(decrypt(&file[..file.len() - 1], b"correct horse").is_err());
    }
}
