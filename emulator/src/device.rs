//! Card manufacture: the device authentication key `CC00` and its CV certificate chain in
//! `2F02`, with a card holder reference that gives each card its own serial number.
//!
//! The chain has the structure of a real card's (root CA → device issuer CA → device), under
//! a root made for this card alone: root and issuer keys are discarded once they have signed.

use crate::cvc::{self, Body, DomainParameters};
use crate::keystore::{Curve, KeyRecord};
use crate::rng::CardRng;
use crate::state::Identity;

/// What manufacture produces.
pub struct Manufactured {
    pub identity: Identity,
    /// Content of `2F02`: device certificate followed by the issuer certificate.
    pub device_certificates: Vec<u8>,
    pub device_key: KeyRecord,
}

/// Country code and mnemonic of every name this emulator issues ("ZZ" is user-assigned).
const NAME_PREFIX: &str = "ZZEM";

/// brainpoolP256r1 (RFC 5639), the curve of real device keys.
const BRAINPOOL_P256R1: DomainParameters<'static> = DomainParameters {
    prime: &hex32(b"A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377"),
    a: &hex32(b"7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9"),
    b: &hex32(b"26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6"),
    generator: &GENERATOR,
    order: &hex32(b"A9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7"),
    cofactor: &[0x01],
};

const GENERATOR: [u8; 65] = {
    let x = hex32(b"8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262");
    let y = hex32(b"547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997");
    let mut out = [0u8; 65];
    out[0] = 0x04;
    let mut i = 0;
    while i < 32 {
        out[1 + i] = x[i];
        out[33 + i] = y[i];
        i += 1;
    }
    out
};

const fn hex32(text: &[u8; 64]) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not an uppercase hex digit"),
        }
    }
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(text[2 * i]) << 4) | nibble(text[2 * i + 1]);
        i += 1;
    }
    out
}

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

    let root_key = KeyRecord::generate_ec(Curve::BrainpoolP256r1, rng);
    let issuer_key = KeyRecord::generate_ec(Curve::BrainpoolP256r1, rng);
    let device_key = KeyRecord::generate_ec(Curve::BrainpoolP256r1, rng);

    let sign = |signer: &KeyRecord, body: &[u8]| {
        let signature = signer
            .sign_ecdsa_sha256_plain(body)
            .expect("freshly generated keys are valid");
        cvc::certificate(body, &signature)
    };
    let point = |key: &KeyRecord| {
        key.ec_public_point()
            .expect("freshly generated keys are valid")
    };

    let root_body = Body {
        car: &root_chr,
        public_key: &cvc::ec_public_key(&point(&root_key), Some(&BRAINPOOL_P256R1)),
        chr: &root_chr,
        role: 0xC0,
        effective,
        expiry: root_expiry,
    }
    .encode();
    let root_certificate = sign(&root_key, &root_body);

    let issuer_body = Body {
        car: &root_chr,
        public_key: &cvc::ec_public_key(&point(&issuer_key), None),
        chr: &issuer_chr,
        role: 0x80,
        effective,
        expiry: root_expiry,
    }
    .encode();
    let issuer_certificate = sign(&root_key, &issuer_body);

    let device_body = Body {
        car: &issuer_chr,
        public_key: &cvc::ec_public_key(&point(&device_key), None),
        chr: &device_chr,
        role: 0x00,
        effective,
        expiry: device_expiry,
    }
    .encode();
    let device_certificate = sign(&issuer_key, &device_body);

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
        let made = manufacture(&mut *crate::rng::system());
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
        let device_point = crate::tlv::find(device.public_key, 0x86).unwrap();
        assert_eq!(device_point, made.device_key.ec_public_point().unwrap());
    }

    #[test]
    fn two_cards_have_different_serials() {
        let a = manufacture(&mut *crate::rng::system());
        let b = manufacture(&mut *crate::rng::system());
        assert_ne!(a.identity.serial(), b.identity.serial());
    }

    #[test]
    fn domain_constants_match_the_real_root() {
        // The CardContact root certificate carries brainpoolP256r1 with full parameters.
        let root =
            include_bytes!("../../fixtures/real-card/cardcontact-root-DESRCACC100001.cvcert");
        let (cert, _) = cvc::decode(root).unwrap();
        let p = BRAINPOOL_P256R1;
        for (tag, value) in [
            (0x81, p.prime),
            (0x82, p.a),
            (0x83, p.b),
            (0x84, p.generator),
            (0x85, p.order),
        ] {
            assert_eq!(
                crate::tlv::find(cert.public_key, tag).unwrap(),
                value,
                "tag {tag:02X}"
            );
        }
    }
}
