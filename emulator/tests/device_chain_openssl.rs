//! The device certificate chain in `2F02` verifies with OpenSSL: root self-signed, issuer signed
//! by the root, device certificate signed by the issuer, and the device key is the one that
//! signs for the card.

mod common;

use std::path::Path;

use emulator::{apdu::tlv, crypto::cvc, Card, MemoryStore};

/// brainpoolP256r1 (1.3.36.3.3.2.8.1.1.7).
const BRAINPOOL_P256R1: &[u8] = &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07];

fn verifies(dir: &Path, signer_point: &[u8], cert: &cvc::Decoded<'_>) -> bool {
    let spki = common::ec_spki(BRAINPOOL_P256R1, signer_point);
    common::openssl_verifies(
        dir,
        &spki,
        "-sha256",
        &[],
        cert.body,
        &common::der_signature(cert.signature),
    )
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

    assert!(verifies(dir.path(), &point(&root), &root));
    assert!(verifies(dir.path(), &point(&root), &issuer));
    assert!(verifies(dir.path(), &point(&issuer), &device));
    // A flipped signature bit must fail (the check itself can fail).
    let mut bad = device.signature.to_vec();
    bad[5] ^= 1;
    let tampered = cvc::Decoded {
        signature: &bad,
        ..device.clone()
    };
    assert!(!verifies(dir.path(), &point(&issuer), &tampered));
}
