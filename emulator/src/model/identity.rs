//! The card's identity, fixed when it is made: the device authentication key `CC00` and its
//! CV certificate chain in `2F02`, with a card holder reference that gives each card its own
//! serial number.
//!
//! The chain has the structure of a real card's (root CA → device issuer CA → device), under
//! a root made for this card alone: root and issuer keys are discarded once they have signed.

use crate::crypto::cvc::{self, Body, OID_TA_ECDSA_SHA256};
use crate::crypto::ec::Curve;
use crate::crypto::rng::CardRng;
use crate::model::key::KeyRecord;

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

/// Country code and mnemonic of every name this emulator issues ("ZZ" is user-assigned).
const NAME_PREFIX: &str = "ZZEM";

/// The curve of real device keys.
const DEVICE_CURVE: Curve = Curve::BrainpoolP256r1;

/// CHAT role bytes of the chain: root CA, device issuer CA, device.
const ROLE_ROOT: u8 = 0xC0;
const ROLE_ISSUER: u8 = 0x80;
const ROLE_DEVICE: u8 = 0x00;

/// Makes a new card identity.
pub fn manufacture(rng: &mut dyn CardRng) -> Manufactured {
    let mut digits = [0u8; 7];
    rng.fill_bytes(&mut digits);
    let serial: String = digits.iter().map(|b| char::from(b'0' + b % 10)).collect();
    let device_chr = format!("{NAME_PREFIX}{serial}00000");
    let root_chr = format!("{NAME_PREFIX}SRCA00001");
    let issuer_chr = format!("{NAME_PREFIX}DICA00001");

    let (y, m, d) = cvc::today();
    let effective = cvc::date_digits(y, m, d);
    let root_expiry = cvc::date_digits(y + 20, m, d.min(28));
    let device_expiry = cvc::date_digits(y + 15, m, d.min(28));

    let root_key = KeyRecord::generate_ec(DEVICE_CURVE, rng);
    let issuer_key = KeyRecord::generate_ec(DEVICE_CURVE, rng);
    let device_key = KeyRecord::generate_ec(DEVICE_CURVE, rng);

    // Each certificate: `holder`'s key certified by `signer` under the name `car`.
    let certify = |signer: &KeyRecord, car: &str, holder: &KeyRecord, chr: &str, role: u8| {
        let point = holder
            .ec_public_point()
            .expect("freshly generated keys are valid");
        // Only the root carries the domain parameters (as real chains do).
        let domain = (role == ROLE_ROOT).then(|| DEVICE_CURVE.domain());
        let body = Body {
            car,
            public_key: &cvc::ec_public_key(OID_TA_ECDSA_SHA256, &point, domain.as_ref()),
            chr,
            role,
            effective,
            expiry: if role == ROLE_DEVICE {
                device_expiry
            } else {
                root_expiry
            },
        }
        .encode();
        let signature = signer
            .sign_ecdsa_sha256_plain(&body)
            .expect("freshly generated keys are valid");
        cvc::certificate(&body, &signature)
    };
    let root_certificate = certify(&root_key, &root_chr, &root_key, &root_chr, ROLE_ROOT);
    let issuer_certificate = certify(&root_key, &root_chr, &issuer_key, &issuer_chr, ROLE_ISSUER);
    let device_certificate = certify(
        &issuer_key,
        &issuer_chr,
        &device_key,
        &device_chr,
        ROLE_DEVICE,
    );

    let mut device_certificates = device_certificate;
    device_certificates.extend_from_slice(&issuer_certificate);
    Manufactured {
        identity: Identity {
            device_chr,
            root_certificate,
        },
        device_certificates,
        device_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_decodes_and_names_the_serial() {
        let made = manufacture(&mut *crate::crypto::rng::system());
        let chr = &made.identity.device_chr;
        assert_eq!(chr.len(), 16);
        assert!(chr.starts_with("ZZEM") && chr.ends_with("00000"));
        assert_eq!(made.identity.serial().len(), 11);
        let (device, rest) = cvc::decode(&made.device_certificates).unwrap();
        assert_eq!(device.chr, chr.as_bytes());
        assert_eq!(device.car, b"ZZEMDICA00001");
        let (issuer, rest) = cvc::decode(rest).unwrap();
        assert_eq!(issuer.car, b"ZZEMSRCA00001");
        assert!(rest.is_empty());
        let (root, _) = cvc::decode(&made.identity.root_certificate).unwrap();
        assert_eq!(root.chr, root.car);
        let device_point = crate::apdu::tlv::find(device.public_key, 0x86).unwrap();
        assert_eq!(device_point, made.device_key.ec_public_point().unwrap());
    }

    #[test]
    fn two_cards_have_different_serials() {
        let a = manufacture(&mut *crate::crypto::rng::system());
        let b = manufacture(&mut *crate::crypto::rng::system());
        assert_ne!(a.identity.serial(), b.identity.serial());
    }

    #[test]
    fn domain_constants_match_the_real_root() {
        // The CardContact root certificate carries brainpoolP256r1 with full parameters.
        let root =
            include_bytes!("../../../fixtures/real-card/cardcontact-root-DESRCACC100001.cvcert");
        let (cert, _) = cvc::decode(root).unwrap();
        for (tag, value) in DEVICE_CURVE.domain().tagged().into_iter().take(5) {
            assert_eq!(
                crate::apdu::tlv::find(cert.public_key, tag).unwrap(),
                value,
                "tag {tag:02X}"
            );
        }
    }
}
