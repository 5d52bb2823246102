//! Helpers shared by the emulator's integration tests: a card in memory driven by APDUs, and
//! OpenSSL as the independent judge of every cryptographic result.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use emulator::{apdu::tlv, tools::hex, Card, MemoryStore};

pub const SELECT_AID: &str = "00A404000BE82B0601040181C31F020100";
pub const INIT: &str = "8050000019800200018106363438323139820835373632313838309101 03";
pub const VERIFY_PIN: &str = "0020008106363438323139";

/// Sends `apdu` (hex); returns the response data and SW as hex.
pub fn send(card: &mut Card, apdu: &str) -> (Vec<u8>, String) {
    let response = card.transmit(&hex::decode(apdu).expect("hex"));
    let (data, sw) = response.split_at(response.len() - 2);
    (data.to_vec(), hex::encode(sw))
}

/// Sends an extended APDU with `data`.
pub fn send_ext(card: &mut Card, header: [u8; 4], data: &[u8]) -> (Vec<u8>, String) {
    let response = card.transmit(&emulator::apdu::extended(header, data));
    let (data, sw) = response.split_at(response.len() - 2);
    (data.to_vec(), hex::encode(sw))
}

/// A card in memory, initialised with the wiki's PINs, user logged in.
pub fn logged_in_card() -> Card {
    let mut card = Card::open(Box::new(MemoryStore::default())).unwrap();
    for apdu in [SELECT_AID, INIT, SELECT_AID, VERIFY_PIN] {
        assert_eq!(send(&mut card, apdu).1, "9000", "{apdu}");
    }
    card
}

/// The GENERATE request body OpenSC sends: profile, CAR, public key template, CHR.
pub fn generate_request(public_key_template: &[u8]) -> Vec<u8> {
    emulator::crypto::cvc::generate_request(b"UTCA00001", public_key_template, b"ZZEM000000000001")
}

pub const OID_RSA_V15_SHA256: &[u8] = emulator::crypto::cvc::OID_TA_RSA_V15_SHA256;
pub const OID_ECDSA_SHA256: &[u8] = emulator::crypto::cvc::OID_TA_ECDSA_SHA256;

/// `7F49` of an RSA GENERATE request.
pub fn rsa_template(bits: u16) -> Vec<u8> {
    emulator::crypto::cvc::rsa_key_template(bits)
}

/// The parts of an authenticated CV request.
pub struct CvRequest {
    pub body: Vec<u8>,
    pub public_key: Vec<u8>,
    pub inner_signature: Vec<u8>,
    /// The bytes the outer signature covers: the `7F21` TLV and the `42` TLV.
    pub outer_signed: Vec<u8>,
    pub outer_car: Vec<u8>,
    pub outer_signature: Vec<u8>,
}

pub fn parse_cv_request(bytes: &[u8]) -> CvRequest {
    let (outer, rest) = tlv::read(bytes).expect("67 TLV");
    assert_eq!((outer.tag, rest.len()), (0x67, 0));
    let (cert, after_cert) = tlv::read(outer.value).expect("7F21");
    assert_eq!(cert.tag, 0x7F21);
    let (car, after_car) = tlv::read(after_cert).expect("42");
    assert_eq!(car.tag, 0x42);
    let (sig, end) = tlv::read(after_car).expect("5F37");
    assert_eq!((sig.tag, end.len()), (0x5F37, 0));
    let (body, after_body) = tlv::read(cert.value).expect("7F4E");
    assert_eq!(body.tag, 0x7F4E);
    let (inner_sig, end) = tlv::read(after_body).expect("inner 5F37");
    assert_eq!((inner_sig.tag, end.len()), (0x5F37, 0));
    let body_tlv = &cert.value[..cert.value.len() - after_body.len()];
    CvRequest {
        body: body_tlv.to_vec(),
        public_key: tlv::find(body.value, 0x7F49).expect("7F49").to_vec(),
        inner_signature: inner_sig.value.to_vec(),
        outer_signed: outer.value[..outer.value.len() - after_car.len()].to_vec(),
        outer_car: car.value.to_vec(),
        outer_signature: sig.value.to_vec(),
    }
}

fn der_int(v: &[u8]) -> Vec<u8> {
    let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
    let mut v = if v.is_empty() { vec![0] } else { v };
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    tlv::encode(0x02, &v)
}

/// SubjectPublicKeyInfo (DER) of an RSA key.
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let algorithm = tlv::encode(
        0x30,
        &[
            tlv::encode(0x06, &hex::decode("2A864886F70D010101").unwrap()),
            vec![0x05, 0x00],
        ]
        .concat(),
    );
    let key = tlv::encode(0x30, &[der_int(n), der_int(e)].concat());
    let mut bits = vec![0x00];
    bits.extend_from_slice(&key);
    tlv::encode(0x30, &[algorithm, tlv::encode(0x03, &bits)].concat())
}

/// SubjectPublicKeyInfo (DER) of an EC point on the named curve with DER OID content `curve_oid`.
pub fn ec_spki(curve_oid: &[u8], point: &[u8]) -> Vec<u8> {
    let algorithm = tlv::encode(
        0x30,
        &[
            tlv::encode(0x06, &hex::decode("2A8648CE3D0201").unwrap()),
            tlv::encode(0x06, curve_oid),
        ]
        .concat(),
    );
    let mut bits = vec![0x00];
    bits.extend_from_slice(point);
    tlv::encode(0x30, &[algorithm, tlv::encode(0x03, &bits)].concat())
}

/// ECDSA-Sig-Value (DER) from plain r ‖ s.
pub fn der_signature(plain: &[u8]) -> Vec<u8> {
    let (r, s) = plain.split_at(plain.len() / 2);
    tlv::encode(0x30, &[der_int(r), der_int(s)].concat())
}

/// Runs `openssl args` in `dir`; returns (success, output).
pub fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Whether OpenSSL verifies `signature` (DER for EC, raw for RSA) over `message` with the key
/// `spki`, using `dgst` with the given digest and extra `-sigopt`s.
pub fn openssl_verifies(
    dir: &Path,
    spki: &[u8],
    digest: &str,
    sigopts: &[&str],
    message: &[u8],
    signature: &[u8],
) -> bool {
    std::fs::write(dir.join("key.der"), spki).unwrap();
    std::fs::write(dir.join("msg.bin"), message).unwrap();
    std::fs::write(dir.join("sig.bin"), signature).unwrap();
    let mut args = vec![
        "dgst",
        digest,
        "-keyform",
        "DER",
        "-verify",
        "key.der",
        "-signature",
        "sig.bin",
    ];
    for opt in sigopts {
        args.extend(["-sigopt", opt]);
    }
    args.push("msg.bin");
    let (ok, text) = openssl(dir, &args);
    ok && text.contains("Verified OK")
}
