//! The device certificate chain in `2F02` verifies with OpenSSL: root self-signed, issuer signed
//! by the root, device certificate signed by the issuer, and the device key is the one that
//! signs for the card.

use std::path::Path;
use std::process::Command;

use emulator::{cvc, tlv, Card, MemoryStore};

/// SubjectPublicKeyInfo (DER) of a brainpoolP256r1 point.
fn spki(point: &[u8]) -> Vec<u8> {
    let algorithm = [
        &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01][..],
        &[
            0x06, 0x09, 0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07,
        ][..],
    ]
    .concat();
    let mut bits = vec![0x00];
    bits.extend_from_slice(point);
    let mut body = tlv::encode(0x30, &algorithm);
    tlv::write(&mut body, 0x03, &bits);
    tlv::encode(0x30, &body)
}

/// ECDSA-Sig-Value (DER) from plain r ‖ s.
fn der_signature(plain: &[u8]) -> Vec<u8> {
    let (r, s) = plain.split_at(plain.len() / 2);
    let int = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let mut v = if v.is_empty() { vec![0] } else { v };
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        tlv::encode(0x02, &v)
    };
    tlv::encode(0x30, &[int(r), int(s)].concat())
}

fn openssl_verifies(dir: &Path, name: &str, signer_point: &[u8], cert: &cvc::Decoded<'_>) -> bool {
    let key = dir.join(format!("{name}.spki.der"));
    let sig = dir.join(format!("{name}.sig"));
    let body = dir.join(format!("{name}.body"));
    std::fs::write(&key, spki(signer_point)).unwrap();
    std::fs::write(&sig, der_signature(cert.signature)).unwrap();
    std::fs::write(&body, cert.body).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-keyform", "DER", "-verify"])
        .arg(&key)
        .arg("-signature")
        .arg(&sig)
        .arg(&body)
        .output()
        .expect("openssl CLI");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

#[test]
fn device_chain_verifies_with_openssl() {
    let card = Card::open(Box::new(MemoryStore::default())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = card.state();
    let chain = &state.files[&0x2F02].data;
    let (device, rest) = cvc::decode(chain).unwrap();
    let (issuer, _) = cvc::decode(rest).unwrap();
    let root_bytes = &state.identity.as_ref().unwrap().root_certificate;
    let (root, _) = cvc::decode(root_bytes).unwrap();
    let point = |c: &cvc::Decoded<'_>| tlv::find(c.public_key, 0x86).unwrap().to_vec();

    assert!(openssl_verifies(dir.path(), "root", &point(&root), &root));
    assert!(openssl_verifies(
        dir.path(),
        "issuer",
        &point(&root),
        &issuer
    ));
    assert!(openssl_verifies(
        dir.path(),
        "device",
        &point(&issuer),
        &device
    ));
    // A flipped signature bit must fail (the check itself can fail).
    let mut bad = device.signature.to_vec();
    bad[5] ^= 1;
    let tampered = cvc::Decoded {
        signature: &bad,
        ..device.clone()
    };
    assert!(!openssl_verifies(
        dir.path(),
        "tampered",
        &point(&issuer),
        &tampered
    ));
}
