//! DKEK shares, WRAP KEY and UNWRAP KEY: blobs the emulator exports are decoded by an
//! independent implementation (Python `cryptography`), blobs made by that implementation and
//! by real cards are imported, and every imported key's signature is verified by OpenSSL.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use emulator::{apdu::tlv, tools::hex, Card, MemoryStore};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn blob_tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance-tests/scripts/dkek_blob.py")
}

/// A logged-in card whose DKEK is the XOR of `shares`.
fn card_with_shares(shares: &[[u8; 32]]) -> Card {
    let mut card = Card::open(Box::new(MemoryStore::default())).unwrap();
    let init = format!(
        "800200018106363438323139820835373632313838309101039201{:02X}",
        shares.len()
    );
    assert_eq!(send(&mut card, SELECT_AID).1, "9000");
    assert_eq!(
        send(&mut card, &format!("80500000{:02X}{init}", init.len() / 2)).1,
        "9000"
    );
    for share in shares {
        assert_eq!(
            send(&mut card, &format!("8052000020{}00", hex::encode(share))).1,
            "9000"
        );
    }
    assert_eq!(send(&mut card, VERIFY_PIN).1, "9000");
    card
}

fn openssl_sha256(dir: &Path, data: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("kcv-input.bin"), data).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "kcv-input.bin"])
        .current_dir(dir)
        .output()
        .unwrap();
    out.stdout
}

#[test]
fn shares_combine_into_the_dkek_with_the_kcv_openssl_computes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ([0x5Au8; 32], *b"0123456789abcdef0123456789ABCDEF");
    let mut card = Card::open(Box::new(MemoryStore::default())).unwrap();
    let init = "800200018106363438323139820835373632313838309101039201 02".replace(' ', "");
    assert_eq!(send(&mut card, SELECT_AID).1, "9000");
    assert_eq!(
        send(&mut card, &format!("80500000{:02X}{init}", init.len() / 2)).1,
        "9000"
    );
    // Status is readable without the PIN (a fresh session).
    assert_eq!(send(&mut card, SELECT_AID).1, "9000");
    assert_eq!(
        send(&mut card, "8052000000"),
        (hex::decode("02020000000000000000").unwrap(), "9000".into())
    );
    assert_eq!(
        send(&mut card, &format!("8052000020{}00", hex::encode(&a))).0[..2],
        [2, 1]
    );
    let (answer, sw) = send(&mut card, &format!("8052000020{}00", hex::encode(&b)));
    assert_eq!(sw, "9000");
    let xor: Vec<u8> = a.iter().zip(b).map(|(x, y)| x ^ y).collect();
    assert_eq!(answer[..2], [2, 0]);
    assert_eq!(answer[2..], openssl_sha256(dir.path(), &xor)[..8]);
    assert_eq!(
        send(&mut card, &format!("8052000020{}00", hex::encode(&a))).1,
        "6986"
    );
}

fn decode_blob(dir: &Path, dkek: &[u8; 32], blob: &[u8]) -> Result<serde_like::Json, String> {
    std::fs::write(dir.join("blob.bin"), blob).unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg(blob_tool())
        .args(["decode", &hex::encode(dkek), "blob.bin"])
        .current_dir(dir)
        .output()
        .expect("python3 with the cryptography package");
    if out.status.success() {
        Ok(serde_like::Json(
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Just enough JSON reading for the decoder's flat output.
mod serde_like {
    pub struct Json(pub String);
    impl Json {
        pub fn get(&self, key: &str) -> String {
            let needle = format!("\"{key}\": ");
            let start = self
                .0
                .find(&needle)
                .unwrap_or_else(|| panic!("no {key} in {}", self.0))
                + needle.len();
            let rest = &self.0[start..];
            let end = rest.find([',', '\n']).unwrap_or(rest.len());
            rest[..end].trim_matches('"').replace("\\n", "\n")
        }
    }
}

#[test]
fn wrapped_keys_decode_independently_and_clone_to_another_card() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let shares = [[0x11u8; 32], [0x27u8; 32]];
    let dkek: [u8; 32] = std::array::from_fn(|i| shares[0][i] ^ shares[1][i]);
    let mut a = card_with_shares(&shares);
    let mut b = card_with_shares(&shares);
    let mut other = card_with_shares(&[[0x99u8; 32]]);

    let (rsa_req, sw) = send_ext(
        &mut a,
        [0x00, 0x46, 1, 0x00],
        &generate_request(&rsa_template(2048)),
    );
    assert_eq!(sw, "9000");
    let rsa_req = parse_cv_request(&rsa_req);
    let n = tlv::find(&rsa_req.public_key, 0x81).unwrap().to_vec();
    let rsa_spki = rsa_spki(&n, &[1, 0, 1]);

    let (blob, sw) = send_ext(&mut a, [0x80, 0x72, 1, 0x92], &[]);
    assert_eq!(sw, "9000");
    let fields = decode_blob(dir, &dkek, &blob).expect("the independent decoder accepts the blob");
    assert_eq!(fields.get("type"), "6");
    assert_eq!(fields.get("n").to_uppercase(), hex::encode(&n));
    assert_eq!(fields.get("size"), "2048");
    // Under another DKEK the independent decoder refuses it too.
    assert!(decode_blob(dir, &[0x99; 32], &blob).is_err());

    // Card B (same shares) imports it and signs; OpenSSL verifies with card A's public key.
    let (attestation, sw) = send_ext(&mut b, [0x80, 0x74, 5, 0x93], &blob);
    assert_eq!(sw, "9000");
    let attestation = parse_cv_request(&attestation);
    assert_eq!(tlv::find(&attestation.public_key, 0x81).unwrap(), &n[..]);
    let (sig, sw) = send_ext(&mut b, [0x80, 0x68, 5, 0x33], b"cloned");
    assert_eq!(sw, "9000");
    assert!(openssl_verifies(
        dir,
        &rsa_spki,
        "-sha256",
        &[],
        b"cloned",
        &sig
    ));
    assert!(
        !b.state().files.contains_key(&0xCE05),
        "an unwrapped key gets no CExx"
    );
    // The key id is taken now.
    assert_eq!(send_ext(&mut b, [0x80, 0x74, 5, 0x93], &blob).1, "6A89");

    // A card with another DKEK refuses it and stays as it was.
    let keys_before = other.state().keys.len();
    assert_eq!(send_ext(&mut other, [0x80, 0x74, 5, 0x93], &blob).1, "6A80");
    assert_eq!(other.state().keys.len(), keys_before);

    // EC on a curve with a crate and on a custom one.
    for (id, curve) in [
        (2u8, emulator::crypto::ec::Curve::Secp256r1),
        (3, emulator::crypto::ec::Curve::BrainpoolP320r1),
    ] {
        let (req, sw) = send_ext(
            &mut a,
            [0x00, 0x46, id, 0x00],
            &generate_request(&emulator::crypto::cvc::ec_key_template(curve)),
        );
        assert_eq!(sw, "9000");
        let point = tlv::find(&parse_cv_request(&req).public_key, 0x86)
            .unwrap()
            .to_vec();
        let (blob, _) = send_ext(&mut a, [0x80, 0x72, id, 0x92], &[]);
        let fields = decode_blob(dir, &dkek, &blob).unwrap();
        assert_eq!(fields.get("type"), "12");
        assert_eq!(fields.get("q").to_uppercase(), hex::encode(&point));
        assert_eq!(send_ext(&mut b, [0x80, 0x74, id, 0x93], &blob).1, "9000");
        let (sig, _) = send_ext(&mut b, [0x80, 0x68, id, 0x73], b"ec clone");
        assert!(openssl_verifies(
            dir,
            &ec_spki(curve.oid(), &point),
            "-sha256",
            &[],
            b"ec clone",
            &sig
        ));
    }
}

#[test]
fn imports_blobs_made_by_the_independent_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let dkek: [u8; 32] = std::array::from_fn(|i| i as u8);
    let mut card = card_with_shares(&[dkek]);
    for (id, blob, pem, p2, digest) in [
        (1u8, "rsa2048-crt.blob", "rsa2048.pem", 0x33u8, "-sha256"),
        (2, "rsa2048-plain.blob", "rsa2048.pem", 0x33, "-sha256"),
        (3, "rsa3072-plain.blob", "rsa3072.pem", 0x34, "-sha384"),
        (4, "p256.blob", "p256.pem", 0x73, "-sha256"),
        (5, "p384.blob", "p384.pem", 0x74, "-sha384"),
    ] {
        let blob = std::fs::read(fixtures().join("wrapped").join(blob)).unwrap();
        assert_eq!(
            send_ext(&mut card, [0x80, 0x74, id, 0x93], &blob).1,
            "9000",
            "{pem}"
        );
        let (sig, sw) = send_ext(&mut card, [0x80, 0x68, id, p2], b"known answer");
        assert_eq!(sw, "9000", "{pem}");
        let out = Command::new("openssl")
            .args(["pkey", "-in"])
            .arg(fixtures().join("wrapped").join(pem))
            .args(["-pubout", "-outform", "DER"])
            .output()
            .unwrap();
        assert!(
            openssl_verifies(dir.path(), &out.stdout, digest, &[], b"known answer", &sig),
            "{pem}"
        );
    }
    // The P-256 blob carries the allowed algorithms 70 and 73.
    assert_eq!(send_ext(&mut card, [0x80, 0x68, 4, 0x71], b"x").1, "6A81");
}

#[test]
fn imports_keys_exported_by_real_cards_through_the_2f10_staging_file() {
    let share =
        hex::decode("2848CB6E994F5A00C365C3C255ED130512CE1EB06BF08D348EEB8B2F866E3E50").unwrap();
    let mut card = card_with_shares(&[share.try_into().unwrap()]);
    let wrap_file = std::fs::read(
        fixtures().join("real-card/nitrokey-hsm-DENK0105702-wrapkey-ec-secp256k1-kcv97E3.bin"),
    )
    .unwrap();
    let (outer, _) = tlv::read(&wrap_file).unwrap();
    let (blob, _) = tlv::read(outer.value).unwrap();
    // Stage the blob in EF 2F10 with UPDATE BINARY, then UNWRAP without data.
    let mut body = vec![0x54, 0x02, 0x00, 0x00];
    tlv::write(&mut body, 0x53, blob.value);
    assert_eq!(
        send_ext(&mut card, [0x00, 0xD7, 0x2F, 0x10], &body).1,
        "9000"
    );
    assert_eq!(send(&mut card, "80740193000000").1, "9000");
    let (_, sw) = send_ext(&mut card, [0x80, 0x68, 1, 0x73], b"real key");
    assert_eq!(sw, "9000");
    match &card.state().keys[&1].material {
        emulator::model::key::KeyMaterial::Ec { scalar, .. } => {
            assert_eq!(
                hex::encode(scalar),
                "1FCE3FF149ED92C7B9D4F63B82B2B542CBD3F4152C6CD4687A69EC6B88C43BC4"
            )
        }
        other => panic!("{:?}", other as *const _),
    }
}

#[test]
fn tampered_blobs_are_refused_and_change_nothing() {
    let mut card = card_with_shares(&[[7u8; 32]]);
    let (_, sw) = send_ext(
        &mut card,
        [0x00, 0x46, 1, 0x00],
        &generate_request(&rsa_template(1024)),
    );
    assert_eq!(sw, "9000");
    let (blob, _) = send_ext(&mut card, [0x80, 0x72, 1, 0x92], &[]);
    for bit in (0..blob.len() * 8).step_by(7) {
        let mut tampered = blob.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(
            send_ext(&mut card, [0x80, 0x74, 9, 0x93], &tampered).1,
            "6A80",
            "bit {bit}"
        );
    }
    assert!(!card.state().keys.contains_key(&9));
    assert_eq!(send_ext(&mut card, [0x80, 0x74, 9, 0x93], &blob).1, "9000");
}

#[test]
fn wrap_and_unwrap_refusals() {
    let mut card = card_with_shares(&[[7u8; 32]]);
    assert_eq!(send(&mut card, "80720192").1, "6A88"); // no key 01
    assert_eq!(send(&mut card, "80720092").1, "6985"); // the device key is never exported
    assert_eq!(send(&mut card, "80720193").1, "6A86");
    assert_eq!(send(&mut card, "80740192").1, "6A86");
    assert_eq!(send(&mut card, "80740193").1, "6A82"); // nothing staged in 2F10
                                                       // No DKEK: a card initialised without shares.
    let mut plain = logged_in_card();
    let (_, sw) = send_ext(
        &mut plain,
        [0x00, 0x46, 1, 0x00],
        &generate_request(&rsa_template(1024)),
    );
    assert_eq!(sw, "9000");
    assert_eq!(send(&mut plain, "80720192").1, "6A88");
    assert_eq!(
        send_ext(&mut plain, [0x80, 0x74, 2, 0x93], &[0; 64]).1,
        "6A88"
    );
    // Without the PIN.
    assert_eq!(send(&mut card, SELECT_AID).1, "9000");
    assert_eq!(send(&mut card, "80720192").1, "6982");
    // Re-initialisation erases the DKEK.
    assert_eq!(send(&mut card, INIT).1, "9000");
    assert_eq!(send(&mut card, "8052000000").1, "6D00");
}
