//! Ready-made cards. `demo` is the card of the OpenSC wiki page's `pkcs15-tool -D` listing:
//! user PIN 648219, SO-PIN 3537363231383830, seven keys with key references and IDs 1 to 7,
//! labelled "Joe Doe (...)", each with a self-signed X.509 certificate in `CExx` and a
//! PKCS#15 private key description in `C4xx`.
//!
//! The card is made the way a host would make it: through its own APDUs (INITIALIZE, VERIFY,
//! GENERATE, SIGN for the certificates, UPDATE BINARY for descriptors and certificates), so
//! the private keys never leave it.

use super::admin::{self, InitOptions};
use super::hex;
use super::host;
use crate::apdu::tlv;
use crate::applet::command::Ins;
use crate::card::Card;
use crate::crypto::cvc;
use crate::crypto::ec::Curve;
use crate::model::objects;
use crate::model::pin::PinRef;

enum Kind {
    Rsa(u16),
    Ec(Curve),
}

/// The seven keys of the wiki listing: key reference and ID, label, type.
const DEMO_KEYS: [(u8, &str, Kind); 7] = [
    (1, "Joe Doe (RSA2048)", Kind::Rsa(2048)),
    (2, "Joe Doe (ECC-SECP256)", Kind::Ec(Curve::Secp256r1)),
    (3, "Joe Doe (ECC-SECP192)", Kind::Ec(Curve::Secp192r1)),
    (4, "Joe Doe (ECC-BP224)", Kind::Ec(Curve::BrainpoolP224r1)),
    (5, "Joe Doe (ECC-BP320)", Kind::Ec(Curve::BrainpoolP320r1)),
    (6, "Joe Doe (RSA1536)", Kind::Rsa(1536)),
    (7, "Joe Doe (RSA1024)", Kind::Rsa(1024)),
];

/// The certificates' serial numbers as the wiki listing shows them.
const DEMO_SERIALS: [&str; 7] = [
    "02B00F6CEC251CE5",
    "02F9D76BFF7291B1",
    "02E83DD1B2C2C857",
    "02E3A790DD0D1761",
    "026B07E37DBFA205",
    "02A7EEFA99415EBF",
    "02C05C90657208BC",
];

/// Sends `apdu`; the response data, or an error naming `what` failed.
fn exchange(card: &mut Card, apdu: &[u8], what: &str) -> Result<Vec<u8>, String> {
    let r = card.transmit(apdu);
    match r.as_slice() {
        [data @ .., 0x90, 0x00] => Ok(data.to_vec()),
        [.., a, b] => Err(format!("{what} failed with {a:02X}{b:02X}")),
        _ => Err(format!("{what} failed")),
    }
}

fn write_file(card: &mut Card, fid: u16, content: &[u8]) -> Result<(), String> {
    exchange(
        card,
        &host::update_binary(fid, content),
        &format!("writing {fid:04X}"),
    )
    .map(|_| ())
}

/// `30 { 31 { 30 { 06 commonName, 0C cn } } }`
fn name(cn: &str) -> Vec<u8> {
    let mut attribute = tlv::encode(0x06, &[0x55, 0x04, 0x03]);
    tlv::write(&mut attribute, 0x0C, cn.as_bytes());
    tlv::encode(0x30, &tlv::encode(0x31, &tlv::encode(0x30, &attribute)))
}

fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    tlv::encode(0x02, &v)
}

/// rsaEncryption (1.2.840.113549.1.1.1), sha256WithRSAEncryption (1.2.840.113549.1.1.11),
/// id-ecPublicKey (1.2.840.10045.2.1), ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const OID_RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_SHA256_WITH_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_ECDSA_WITH_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
const DER_NULL: [u8; 2] = [0x05, 0x00];

/// `30 { 06 oid, parameters }`
fn algorithm_identifier(oid: &[u8], parameters: &[u8]) -> Vec<u8> {
    let mut content = tlv::encode(0x06, oid);
    content.extend_from_slice(parameters);
    tlv::encode(0x30, &content)
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00];
    v.extend_from_slice(content);
    tlv::encode(0x03, &v)
}

/// The PKCS#15 private key description, as the wiki's card shows it: private, usage
/// decrypt/sign/signRecover/unwrap (RSA) or sign/derive (EC), sensitive, never extractable.
fn prkd(label: &str, id: u8, kind: &Kind) -> Vec<u8> {
    let mut common = tlv::encode(0x0C, label.as_bytes());
    tlv::write(&mut common, 0x03, &[0x07, 0x80]); // private
    tlv::write(&mut common, 0x04, &[0x01]); // auth id of the user PIN
    let usage: &[u8] = match kind {
        Kind::Rsa(_) => &[0x02, 0x74],
        Kind::Ec(_) => &[0x07, 0x20, 0x80],
    };
    let mut key = tlv::encode(0x04, &[id]);
    tlv::write(&mut key, 0x03, usage);
    tlv::write(&mut key, 0x03, &[0x03, 0xB8]); // sensitive, alwaysSensitive, neverExtract, local
    tlv::write(&mut key, 0x02, &[id]);
    let size = match kind {
        Kind::Rsa(bits) => *bits,
        Kind::Ec(curve) => curve.field_bits() as u16,
    };
    let mut attributes = tlv::encode(0x30, &tlv::encode(0x04, &[]));
    attributes.extend(der_integer(&size.to_be_bytes()));
    let mut body = tlv::encode(0x30, &common);
    tlv::write(&mut body, 0x30, &key);
    tlv::write(&mut body, 0xA1, &tlv::encode(0x30, &attributes));
    match kind {
        Kind::Rsa(_) => tlv::encode(0x30, &body),
        Kind::Ec(_) => tlv::encode(0xA0, &body),
    }
}

/// Initialises `card` as the wiki's demo card.
pub fn demo(card: &mut Card) -> Result<(), String> {
    admin::initialize(card, &InitOptions::wiki())?;
    card.power_on();
    exchange(card, &host::select_application(), "SELECT")?;
    exchange(card, &host::verify(PinRef::User, b"648219"), "VERIFY")?;
    let (y, m, d) = cvc::today();
    let validity = {
        let utc = |year: u32| format!("{:02}{m:02}{:02}000000Z", year % 100, d.min(28));
        let mut v = tlv::encode(0x17, utc(y).as_bytes());
        tlv::write(&mut v, 0x17, utc(y + 10).as_bytes());
        tlv::encode(0x30, &v)
    };
    for ((id, label, kind), serial) in DEMO_KEYS.iter().zip(DEMO_SERIALS) {
        let template = match kind {
            Kind::Rsa(bits) => cvc::rsa_key_template(*bits),
            Kind::Ec(curve) => cvc::ec_key_template(*curve),
        };
        let chr = format!("{}{id:05}", card.serial());
        let request = cvc::generate_request(b"UTCA00001", &template, chr.as_bytes());
        let answer = exchange(
            card,
            &host::command(Ins::GenerateKeyPair, *id, 0x00, &request),
            "GENERATE",
        )?;
        let public_key =
            cvc::decode_request_public_key(&answer).ok_or("GENERATE answered no public key")?;

        // The self-signed certificate, signed on the card.
        let (spki, signature_algorithm, sign_p2) = match kind {
            Kind::Rsa(_) => {
                let n = tlv::find(&public_key, 0x81).ok_or("no modulus")?;
                let e = tlv::find(&public_key, 0x82).ok_or("no exponent")?;
                let rsa = tlv::encode(0x30, &[der_integer(n), der_integer(e)].concat());
                let algorithm = algorithm_identifier(OID_RSA_ENCRYPTION, &DER_NULL);
                (
                    tlv::encode(0x30, &[algorithm, bit_string(&rsa)].concat()),
                    algorithm_identifier(OID_SHA256_WITH_RSA, &DER_NULL),
                    0x33,
                )
            }
            Kind::Ec(curve) => {
                let point = tlv::find(&public_key, 0x86).ok_or("no public point")?;
                let curve_oid = tlv::encode(0x06, curve.oid());
                let algorithm = algorithm_identifier(OID_EC_PUBLIC_KEY, &curve_oid);
                (
                    tlv::encode(0x30, &[algorithm, bit_string(point)].concat()),
                    algorithm_identifier(OID_ECDSA_WITH_SHA256, &[]),
                    0x73,
                )
            }
        };
        let mut tbs = tlv::encode(0xA0, &der_integer(&[2]));
        let serial = hex::decode(serial).ok_or("a demo certificate serial is not hex")?;
        tbs.extend(tlv::encode(0x02, &serial));
        tbs.extend_from_slice(&signature_algorithm);
        tbs.extend(name(label));
        tbs.extend_from_slice(&validity);
        tbs.extend(name(label));
        tbs.extend(spki);
        let tbs = tlv::encode(0x30, &tbs);
        let signature = exchange(card, &host::command(Ins::Sign, *id, sign_p2, &tbs), "SIGN")?;
        let certificate = tlv::encode(
            0x30,
            &[tbs, signature_algorithm, bit_string(&signature)].concat(),
        );

        // OpenSC's order: the certificate replaces the CV request in CExx, then the PRKD.
        let ce = objects::certificate_fid(*id);
        exchange(
            card,
            &host::command(Ins::DeleteFile, 0x02, 0x00, &ce.to_be_bytes()),
            "DELETE FILE",
        )?;
        write_file(card, ce, &certificate)?;
        write_file(
            card,
            u16::from_be_bytes([0xC4, *id]),
            &prkd(label, *id, kind),
        )?;
    }
    card.power_off();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_card_has_the_seven_keys_of_the_wiki() {
        let mut card = Card::open(Box::new(crate::MemoryStore::default())).unwrap();
        demo(&mut card).unwrap();
        let state = card.state();
        assert_eq!(
            state.keys.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5, 6, 7]
        );
        for id in 1..=7u8 {
            assert_eq!(
                state.files[&u16::from_be_bytes([0xCE, id])].data[0],
                0x30,
                "CE{id:02X} is an X.509 certificate"
            );
            assert!(state.files.contains_key(&u16::from_be_bytes([0xC4, id])));
        }
    }
}
