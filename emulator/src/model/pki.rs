//! The emulator's PKI: a root CA and a device issuer CA (the "DICA") that certify the device
//! key of every card made under them, as CardContact's root `DESRCACC100001` and its issuers
//! do for real cards. Cards of one PKI can verify each other's device certificates, which
//! public-key authentication and XKEK key domains build on.
//!
//! A PKI is made once per installation and kept in a file (mode 0600: it holds the two CA
//! private keys) beside the card databases, or named with `--pki`; a `--seed` card derives
//! its PKI from the seed. It is a test PKI: nothing outside the emulator trusts it unless its
//! root certificate is exported into a trust store.
//!
//! File format: `SC-HSM-EMULATOR-PKI` ‖ version `01` ‖ TLVs `01` root CHR, `02` root private
//! scalar, `03` root certificate, `04` issuer CHR, `05` issuer private scalar, `06` issuer
//! certificate (brainpoolP256r1, ECDSA-SHA-256, as real chains).

use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

use crate::apdu::tlv;
use crate::crypto::cvc::{self, Body, OID_TA_ECDSA_SHA256};
use crate::crypto::ec::Curve;
use crate::crypto::rng::{CardRng, SeededRng};
use crate::model::key::{KeyMaterial, KeyRecord};

/// The curve of every key of the chain (real device chains use brainpoolP256r1).
pub const CURVE: Curve = Curve::BrainpoolP256r1;

/// CHAT role bytes of the chain: root CA, device issuer CA, device.
pub const ROLE_ROOT: u8 = 0xC0;
pub const ROLE_ISSUER: u8 = 0x80;
pub const ROLE_DEVICE: u8 = 0x00;

/// Country code and mnemonic of every name this emulator issues ("ZZ" is user-assigned).
pub const NAME_PREFIX: &str = "ZZEM";

const MAGIC: &[u8] = b"SC-HSM-EMULATOR-PKI";
const VERSION: u8 = 1;

/// One certification authority: its name, private key and certificate.
#[derive(Clone)]
pub struct Authority {
    pub chr: String,
    key: KeyRecord,
    pub certificate: Vec<u8>,
}

/// A root CA and the device issuer CA it certified.
#[derive(Clone)]
pub struct Pki {
    pub root: Authority,
    pub issuer: Authority,
}

/// A PKI file that cannot be read, written or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiError(pub String);

impl std::fmt::Display for PkiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PkiError {}

/// Names only: the private keys never reach a log.
impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("root", &self.root.chr)
            .field("issuer", &self.issuer.chr)
            .finish()
    }
}

impl Authority {
    /// Certifies `point` under the name `chr` with `role`, valid for `years` from today.
    pub fn certify(&self, point: &[u8], chr: &str, role: u8, years: u32) -> Vec<u8> {
        // Only the root carries the domain parameters (as real chains do).
        let domain = (role == ROLE_ROOT).then(|| CURVE.domain());
        let (y, m, d) = cvc::today();
        let body = Body {
            car: &self.chr,
            public_key: &cvc::ec_public_key(OID_TA_ECDSA_SHA256, point, domain.as_ref()),
            chr,
            role,
            effective: cvc::date_digits(y, m, d),
            expiry: cvc::date_digits(y + years, m, d.min(28)),
        }
        .encode();
        let signature = self
            .key
            .sign_ecdsa_sha256_plain(&body)
            .expect("the authority's key is an EC key");
        cvc::certificate(&body, &signature)
    }

    fn point(&self) -> Vec<u8> {
        self.key
            .ec_public_point()
            .expect("the authority's key is an EC key")
    }
}

impl Pki {
    /// Makes a new PKI: a root with a name of its own and an issuer certified by it.
    pub fn generate(rng: &mut dyn CardRng) -> Pki {
        let mut digits = [0u8; 4];
        rng.fill_bytes(&mut digits);
        let id: String = digits.iter().map(|b| char::from(b'0' + b % 10)).collect();
        let root_key = KeyRecord::generate_ec(CURVE, rng);
        let issuer_key = KeyRecord::generate_ec(CURVE, rng);
        let mut root = Authority {
            chr: format!("{NAME_PREFIX}SR{id}00001"),
            key: root_key,
            certificate: Vec::new(),
        };
        root.certificate = root.certify(&root.point(), &root.chr, ROLE_ROOT, 20);
        let issuer_chr = format!("{NAME_PREFIX}DI{id}00001");
        let issuer = Authority {
            certificate: root.certify(
                &issuer_key.ec_public_point().expect("EC key"),
                &issuer_chr,
                ROLE_ISSUER,
                20,
            ),
            chr: issuer_chr,
            key: issuer_key,
        };
        Pki { root, issuer }
    }

    /// The PKI of `--seed seed` cards: the same seed gives the same keys and names.
    pub fn from_seed(seed: u64) -> Pki {
        // Boot numbers of seeded cards count up from 0; the PKI draws from a stream of its own.
        Pki::generate(&mut SeededRng::new(seed, u64::MAX))
    }

    /// The file form (see the module documentation).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(MAGIC.to_vec());
        out.push(VERSION);
        for (base, authority) in [(0x01, &self.root), (0x04, &self.issuer)] {
            let KeyMaterial::Ec { scalar, .. } = &authority.key.material else {
                unreachable!("authorities hold EC keys");
            };
            tlv::write(&mut out, base, authority.chr.as_bytes());
            tlv::write(&mut out, base + 1, scalar);
            tlv::write(&mut out, base + 2, &authority.certificate);
        }
        out
    }

    /// Reads the file form; every key must match its certificate.
    pub fn decode(bytes: &[u8]) -> Result<Pki, PkiError> {
        let bad = |what: &str| PkiError(format!("not an emulator PKI file: {what}"));
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| bad("no header"))?;
        let (version, rest) = rest.split_first().ok_or_else(|| bad("no version"))?;
        if *version != VERSION {
            return Err(PkiError(format!(
                "emulator PKI file version {version} is not {VERSION}"
            )));
        }
        let authority = |base: u16, name: &str| -> Result<Authority, PkiError> {
            let field = |tag: u16| tlv::find(rest, tag).ok_or_else(|| bad(name));
            let chr = String::from_utf8(field(base)?.to_vec()).map_err(|_| bad(name))?;
            let key = KeyRecord {
                material: KeyMaterial::Ec {
                    curve: CURVE,
                    scalar: Zeroizing::new(field(base + 1)?.to_vec()),
                },
                policy: Default::default(),
            };
            let certificate = field(base + 2)?.to_vec();
            let point = key.ec_public_point().map_err(|_| bad(name))?;
            let (decoded, _) = cvc::decode(&certificate).ok_or_else(|| bad(name))?;
            if decoded.chr != chr.as_bytes()
                || tlv::find(decoded.public_key, 0x86) != Some(point.as_slice())
            {
                return Err(bad(&format!(
                    "the {name} key does not match its certificate"
                )));
            }
            Ok(Authority {
                chr,
                key,
                certificate,
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
        Pki::decode(&bytes).map_err(|e| PkiError(format!("{}: {e}", path.display())))
    }

    /// Reads the PKI kept in `path`, or makes one there if there is none. Two processes that
    /// race to make it end up with the same one: the file appears whole or not at all, and
    /// only the first to link it wins.
    pub fn load_or_create(path: &Path, rng: &mut dyn CardRng) -> Result<Pki, PkiError> {
        if path.exists() {
            return Pki::load(path);
        }
        let pki = Pki::generate(rng);
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io =
            |e: std::io::Error| PkiError(format!("cannot write the PKI {}: {e}", path.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut temp = tempfile::Builder::new()
            .prefix(".pki-")
            .tempfile_in(dir)
            .map_err(io)?;
        temp.write_all(&pki.encode()).map_err(io)?;
        temp.as_file().sync_all().map_err(io)?;
        match std::fs::hard_link(temp.path(), path) {
            Ok(()) => {
                tracing::info!(root = %pki.root.chr, path = %path.display(), "made a new emulator PKI");
                Ok(pki)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Pki::load(path),
            Err(e) => Err(io(e)),
        }
    }

    /// Certifies a device key: the device certificate, signed by the issuer.
    pub fn certify_device(&self, point: &[u8], device_chr: &str) -> Vec<u8> {
        self.issuer.certify(point, device_chr, ROLE_DEVICE, 15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cvc::CvKey;

    #[test]
    fn the_chain_verifies_from_the_root() {
        let pki = Pki::from_seed(7);
        let (root, _) = cvc::decode(&pki.root.certificate).unwrap();
        assert_eq!(root.car, root.chr);
        let root_key = CvKey::parse(root.public_key, None).unwrap();
        assert!(root_key.verifies(root.body, root.signature));
        let (issuer, _) = cvc::decode(&pki.issuer.certificate).unwrap();
        assert_eq!(issuer.car, root.chr);
        assert!(root_key.verifies(issuer.body, issuer.signature));
        assert_eq!(cvc::role(issuer.body), Some(ROLE_ISSUER));
    }

    #[test]
    fn a_seed_gives_the_same_pki_and_the_file_form_round_trips() {
        let a = Pki::from_seed(42);
        assert_eq!(a.encode(), Pki::from_seed(42).encode());
        assert_ne!(a.root.chr, Pki::from_seed(43).root.chr);
        let back = Pki::decode(&a.encode()).unwrap();
        assert_eq!(back.encode(), a.encode());
    }

    #[test]
    fn damaged_files_are_refused() {
        let good = Pki::from_seed(1).encode();
        assert!(Pki::decode(b"hello").is_err());
        let mut wrong_version = good.to_vec();
        wrong_version[MAGIC.len()] = 9;
        assert!(Pki::decode(&wrong_version)
            .unwrap_err()
            .0
            .contains("version 9"));
        // Another PKI's root key under this root certificate.
        let other = Pki::from_seed(2);
        let mut mixed = Pki::from_seed(1);
        mixed.root.key = other.root.key;
        assert!(Pki::decode(&mixed.encode())
            .unwrap_err()
            .0
            .contains("does not match"));
    }

    #[test]
    fn racing_creators_share_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pki");
        let first = Pki::load_or_create(&path, &mut SeededRng::new(1, 0)).unwrap();
        let second = Pki::load_or_create(&path, &mut SeededRng::new(2, 0)).unwrap();
        assert_eq!(first.encode(), second.encode());
    }
}
