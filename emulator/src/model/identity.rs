//! The card's identity, fixed when it is made: the device authentication key `CC00` and its
//! CV certificate chain in `2F02`, with a card holder reference that gives each card its own
//! serial number.
//!
//! The chain has the structure of a real card's (root CA → device issuer CA → device): the
//! issuer of the emulator's [`Pki`] certifies the device key. Cards made before the PKI
//! existed keep the chain of the root that was made for them alone.

use crate::crypto::rng::CardRng;
use crate::crypto::CryptoError;
use crate::model::key::KeyRecord;
use crate::model::pki::{self, Pki};

/// Facts fixed when the card is made: they never change afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Card holder reference of the device certificate, e.g. `ZZEM123456700000`.
    pub device_chr: String,
    /// The self-made root CV certificate that anchors the device chain.
    pub root_certificate: Vec<u8>,
}

impl Identity {
    /// The serial number OpenSC shows: the device CHR minus its last five characters.
    pub fn serial(&self) -> &str {
        let n = self.device_chr.len().saturating_sub(5);
        &self.device_chr[..n]
    }
}

/// What manufacture produces.
pub struct Manufactured {
    pub identity: Identity,
    /// Content of `2F02`: device certificate followed by the issuer certificate.
    pub device_certificates: Vec<u8>,
    pub device_key: KeyRecord,
}

/// Makes a new card identity under `pki`.
pub fn manufacture(rng: &mut dyn CardRng, pki: &Pki) -> Result<Manufactured, CryptoError> {
    let mut digits = [0u8; 7];
    rng.fill_bytes(&mut digits);
    let serial: String = digits.iter().map(|b| char::from(b'0' + b % 10)).collect();
    let device_chr = format!("{}{serial}00000", pki::NAME_PREFIX);
    let device_key = KeyRecord::generate_ec(pki::CURVE, rng);
    let point = device_key.ec_public_point()?;
    let mut device_certificates = pki.certify_device(&point, &device_chr)?;
    device_certificates.extend_from_slice(&pki.issuer.certificate);
    Ok(Manufactured {
        identity: Identity {
            device_chr,
            root_certificate: pki.root.certificate.clone(),
        },
        device_certificates,
        device_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cvc::{self, CvKey};

    #[test]
    fn chain_decodes_verifies_and_names_the_serial() {
        let pki = Pki::from_seed(3).unwrap();
        let made = manufacture(&mut *crate::crypto::rng::system(), &pki).unwrap();
        let chr = &made.identity.device_chr;
        assert_eq!(chr.len(), 16);
        assert!(chr.starts_with("ZZEM") && chr.ends_with("00000"));
        assert_eq!(made.identity.serial().len(), 11);
        let (device, rest) = cvc::decode(&made.device_certificates).unwrap();
        assert_eq!(device.chr, chr.as_bytes());
        assert_eq!(device.car, pki.issuer.chr.as_bytes());
        let (issuer, rest) = cvc::decode(rest).unwrap();
        assert_eq!(issuer.car, pki.root.chr.as_bytes());
        assert!(rest.is_empty());
        let (root, _) = cvc::decode(&made.identity.root_certificate).unwrap();
        assert_eq!(root.chr, root.car);
        let root_key = CvKey::parse(root.public_key, None).unwrap();
        let issuer_key = CvKey::parse(issuer.public_key, root_key.curve()).unwrap();
        assert!(root_key.verifies(issuer.body, issuer.signature));
        assert!(issuer_key.verifies(device.body, device.signature));
        let device_point = crate::apdu::tlv::find(device.public_key, 0x86).unwrap();
        assert_eq!(device_point, made.device_key.ec_public_point().unwrap());
    }

    #[test]
    fn two_cards_have_different_serials() {
        let pki = Pki::from_seed(3).unwrap();
        let a = manufacture(&mut *crate::crypto::rng::system(), &pki).unwrap();
        let b = manufacture(&mut *crate::crypto::rng::system(), &pki).unwrap();
        assert_ne!(a.identity.serial(), b.identity.serial());
    }

    #[test]
    fn domain_constants_match_the_real_root() {
        // The CardContact root certificate carries brainpoolP256r1 with full parameters.
        let root =
            include_bytes!("../../../fixtures/real-card/cardcontact-root-DESRCACC100001.cvcert");
        let (cert, _) = cvc::decode(root).unwrap();
        for (tag, value) in pki::CURVE.domain().tagged().into_iter().take(5) {
            assert_eq!(
                crate::apdu::tlv::find(cert.public_key, tag).unwrap(),
                value,
                "tag {tag:02X}"
            );
        }
    }
}
