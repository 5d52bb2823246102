//! The file that keeps an installation's emulator PKI ([`Pki`]) beside its card databases:
//! mode 0600, since it holds both CA private keys; written whole and linked into place, so two
//! processes that make it at the same time end up with the same PKI.
//!
//! Format: `SC-HSM-EMULATOR-PKI` ‖ version ([`super::version::PKI_FILE`]) ‖ TLVs `01` root CHR, `02` root private
//! scalar, `03` root certificate, `04` issuer CHR, `05` issuer private scalar, `06` issuer
//! certificate (brainpoolP256r1, ECDSA-SHA-256, as real chains).

use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

use super::version::PKI_FILE as VERSION;
use crate::apdu::tlv;
use crate::crypto::rng::CardRng;
use crate::model::pki::{Authority, AuthorityError, Pki};

const MAGIC: &[u8] = b"SC-HSM-EMULATOR-PKI";

/// A PKI file that cannot be read, written or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiError(pub String);

impl std::fmt::Display for PkiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PkiError {}

/// The file form of `pki`.
pub fn encode(pki: &Pki) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(MAGIC.to_vec());
    out.push(VERSION);
    for (base, authority) in [(0x01, &pki.root), (0x04, &pki.issuer)] {
        tlv::write(&mut out, base, authority.chr.as_bytes());
        tlv::write(&mut out, base + 1, authority.private_scalar());
        tlv::write(&mut out, base + 2, &authority.certificate);
    }
    out
}

/// Reads the file form; every key must match its certificate.
pub fn decode(bytes: &[u8]) -> Result<Pki, PkiError> {
    let bad = |what: &str| PkiError(format!("not an emulator PKI file: {what}"));
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| bad("no header"))?;
    let (version, rest) = rest.split_first().ok_or_else(|| bad("no version"))?;
    if *version > VERSION {
        return Err(PkiError(format!(
            "written by a newer sc-hsm-emulator: emulator PKI file version {version}, this one reads up to {VERSION}"
        )));
    }
    if *version != VERSION {
        return Err(PkiError(format!(
            "emulator PKI file version {version} is not {VERSION}"
        )));
    }
    let authority = |base: u16, name: &str| -> Result<Authority, PkiError> {
        let field = |tag: u16| tlv::find(rest, tag).ok_or_else(|| bad(name));
        let chr = String::from_utf8(field(base)?.to_vec()).map_err(|_| bad(name))?;
        let scalar = Zeroizing::new(field(base + 1)?.to_vec());
        let certificate = field(base + 2)?.to_vec();
        Authority::from_parts(chr, scalar, certificate).map_err(|e| match e {
            AuthorityError::Malformed => bad(name),
            AuthorityError::Mismatch => {
                bad(&format!("the {name} key does not match its certificate"))
            }
        })
    };
    Ok(Pki {
        root: authority(0x01, "root")?,
        issuer: authority(0x04, "issuer")?,
    })
}

/// Reads the PKI kept in `path`.
pub fn load(path: &Path) -> Result<Pki, PkiError> {
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| PkiError(format!("cannot read the PKI {}: {e}", path.display())))?,
    );
    decode(&bytes).map_err(|e| PkiError(format!("{}: {e}", path.display())))
}

/// Reads the PKI kept in `path`, or makes one there if there is none. Two processes that race
/// to make it end up with the same one: the file appears whole or not at all, and only the
/// first to link it wins.
pub fn load_or_create(path: &Path, rng: &mut dyn CardRng) -> Result<Pki, PkiError> {
    if path.exists() {
        return load(path);
    }
    let pki =
        Pki::generate(rng).map_err(|e| PkiError(format!("cannot make the PKI's keys: {e:?}")))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |e: std::io::Error| PkiError(format!("cannot write the PKI {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".pki-")
        .tempfile_in(dir)
        .map_err(io)?;
    temp.write_all(&encode(&pki)).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    match std::fs::hard_link(temp.path(), path) {
        Ok(()) => {
            tracing::info!(root = %pki.root.chr, path = %path.display(), "made a new emulator PKI");
            Ok(pki)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rng::SeededRng;

    #[test]
    fn a_seeded_pki_is_the_same_file_and_round_trips() {
        let a = Pki::from_seed(42).unwrap();
        assert_eq!(encode(&a), encode(&Pki::from_seed(42).unwrap()));
        let back = decode(&encode(&a)).unwrap();
        assert_eq!(encode(&back), encode(&a));
    }

    #[test]
    fn damaged_files_are_refused() {
        let good = encode(&Pki::from_seed(1).unwrap());
        assert!(decode(b"hello").is_err());
        let mut wrong_version = good.to_vec();
        wrong_version[MAGIC.len()] = 9;
        assert!(decode(&wrong_version).unwrap_err().0.contains("version 9"));
        // Another PKI's root key under this root certificate.
        let other = encode(&Pki::from_seed(2).unwrap());
        let root_key = |file: &[u8]| tlv::find(&file[MAGIC.len() + 1..], 0x02).unwrap().to_vec();
        let mixed: Vec<u8> = {
            let (mine, theirs) = (root_key(&good), root_key(&other));
            let at = good
                .windows(mine.len())
                .position(|w| w == mine.as_slice())
                .unwrap();
            [&good[..at], &theirs[..], &good[at + mine.len()..]].concat()
        };
        assert!(decode(&mixed).unwrap_err().0.contains("does not match"));
    }

    #[test]
    fn racing_creators_share_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pki");
        let first = load_or_create(&path, &mut SeededRng::new(1, 0)).unwrap();
        let second = load_or_create(&path, &mut SeededRng::new(2, 0)).unwrap();
        assert_eq!(encode(&first), encode(&second));
    }
}
