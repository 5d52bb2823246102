//! The emulator's PKI: a root CA and a device issuer CA (the "DICA") that certify the device
//! key of every card made under them, as CardContact's root `DESRCACC100001` and its issuers
//! do for real cards. Cards of one PKI can verify each other's device certificates, which
//! public-key authentication and XKEK key domains build on.
//!
//! A PKI is made once per installation and kept in a file beside the card databases
//! (`store/pki_file.rs`), or named with `--pki`; a `--seed` card derives its PKI from the
//! seed. It is a test PKI: nothing outside the emulator trusts it unless its root certificate
//! is exported into a trust store.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::apdu::tlv;
use crate::crypto::cvc::{self, Body, OID_TA_ECDSA_SHA256};
use crate::crypto::ec::Curve;
use crate::crypto::rng::{CardRng, SeededRng};
use crate::crypto::CryptoError;

/// The curve of every key of the chain (real device chains use brainpoolP256r1).
pub const CURVE: Curve = Curve::BrainpoolP256r1;

/// CHAT role bytes of the chain: root CA, device issuer CA, device.
pub const ROLE_ROOT: u8 = 0xC0;
pub const ROLE_ISSUER: u8 = 0x80;
pub const ROLE_DEVICE: u8 = 0x00;

/// Country code and mnemonic of every name this emulator issues ("ZZ" is user-assigned).
pub const NAME_PREFIX: &str = "ZZEM";

/// One certification authority: its name, private key (with the public point that goes with
/// it) and certificate.
#[derive(Clone)]
pub struct Authority {
    pub chr: String,
    scalar: Zeroizing<Vec<u8>>,
    point: Vec<u8>,
    pub certificate: Vec<u8>,
}

/// A root CA and the device issuer CA it certified.
#[derive(Clone)]
pub struct Pki {
    pub root: Authority,
    pub issuer: Authority,
}

/// Names only: the private keys never reach a log.
impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("root", &self.root.chr)
            .field("issuer", &self.issuer.chr)
            .finish()
    }
}

/// Why an authority's parts do not make an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorityError {
    /// The private key is not a key of [`CURVE`], or the certificate does not decode.
    Malformed,
    /// The certificate names another holder or carries another public key.
    Mismatch,
}

impl Authority {
    /// A new authority named `chr`, with a fresh key; its certificate is still to be made.
    fn generate(chr: String, rng: &mut dyn CardRng) -> Result<Authority, CryptoError> {
        let scalar = CURVE.generate(rng);
        let point = CURVE.public_point(&scalar)?;
        Ok(Authority {
            chr,
            scalar,
            point,
            certificate: Vec::new(),
        })
    }

    /// The authority whose private key is `scalar` and whose certificate is `certificate`, as
    /// a PKI file keeps them: the certificate must name `chr` and carry the key's point.
    pub fn from_parts(
        chr: String,
        scalar: Zeroizing<Vec<u8>>,
        certificate: Vec<u8>,
    ) -> Result<Authority, AuthorityError> {
        let point = CURVE
            .public_point(&scalar)
            .map_err(|_| AuthorityError::Malformed)?;
        let (decoded, _) = cvc::decode(&certificate).ok_or(AuthorityError::Malformed)?;
        if decoded.chr != chr.as_bytes()
            || tlv::find(decoded.public_key, 0x86) != Some(point.as_slice())
        {
            return Err(AuthorityError::Mismatch);
        }
        Ok(Authority {
            chr,
            scalar,
            point,
            certificate,
        })
    }

    /// The private key (for the PKI file only).
    pub(crate) fn private_scalar(&self) -> &[u8] {
        &self.scalar
    }

    /// Certifies `point` under the name `chr` with `role`, valid for `years` from today.
    pub fn certify(
        &self,
        point: &[u8],
        chr: &str,
        role: u8,
        years: u32,
    ) -> Result<Vec<u8>, CryptoError> {
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
        let (r, s) = CURVE.sign_prehash(&self.scalar, &Sha256::digest(&body))?;
        Ok(cvc::certificate(&body, &[r, s].concat()))
    }
}

impl Pki {
    /// Makes a new PKI: a root with a name of its own and an issuer certified by it.
    pub fn generate(rng: &mut dyn CardRng) -> Result<Pki, CryptoError> {
        let mut digits = [0u8; 4];
        rng.fill_bytes(&mut digits);
        let id: String = digits.iter().map(|b| char::from(b'0' + b % 10)).collect();
        let mut root = Authority::generate(format!("{NAME_PREFIX}SR{id}00001"), rng)?;
        let mut issuer = Authority::generate(format!("{NAME_PREFIX}DI{id}00001"), rng)?;
        root.certificate = root.certify(&root.point, &root.chr, ROLE_ROOT, 20)?;
        issuer.certificate = root.certify(&issuer.point, &issuer.chr, ROLE_ISSUER, 20)?;
        Ok(Pki { root, issuer })
    }

    /// The PKI of `--seed seed` cards: the same seed gives the same keys and names.
    pub fn from_seed(seed: u64) -> Result<Pki, CryptoError> {
        // Boot numbers of seeded cards count up from 0; the PKI draws from a stream of its own.
        Pki::generate(&mut SeededRng::new(seed, u64::MAX))
    }

    /// Certifies a device key: the device certificate, signed by the issuer.
    pub fn certify_device(&self, point: &[u8], device_chr: &str) -> Result<Vec<u8>, CryptoError> {
        self.issuer.certify(point, device_chr, ROLE_DEVICE, 15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cvc::CvKey;

    #[test]
    fn the_chain_verifies_from_the_root() {
        let pki = Pki::from_seed(7).unwrap();
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
    fn a_seed_gives_the_same_pki() {
        let a = Pki::from_seed(42).unwrap();
        let b = Pki::from_seed(42).unwrap();
        assert_eq!(a.root.chr, b.root.chr);
        assert_eq!(a.root.private_scalar(), b.root.private_scalar());
        assert_eq!(a.issuer.private_scalar(), b.issuer.private_scalar());
        assert_ne!(a.root.chr, Pki::from_seed(43).unwrap().root.chr);
    }

    #[test]
    fn an_authority_is_made_only_of_a_key_and_its_own_certificate() {
        let pki = Pki::from_seed(1).unwrap();
        let other = Pki::from_seed(2).unwrap();
        let parts = |a: &Authority| {
            (
                a.chr.clone(),
                Zeroizing::new(a.private_scalar().to_vec()),
                a.certificate.clone(),
            )
        };
        let (chr, scalar, certificate) = parts(&pki.root);
        assert!(Authority::from_parts(chr.clone(), scalar.clone(), certificate.clone()).is_ok());
        let (_, other_scalar, _) = parts(&other.root);
        assert_eq!(
            Authority::from_parts(chr.clone(), other_scalar, certificate.clone()).err(),
            Some(AuthorityError::Mismatch)
        );
        assert_eq!(
            Authority::from_parts("ZZEMSR000000001".into(), scalar.clone(), certificate).err(),
            Some(AuthorityError::Mismatch)
        );
        assert_eq!(
            Authority::from_parts(chr, scalar, b"not a certificate".to_vec()).err(),
            Some(AuthorityError::Malformed)
        );
    }
}
