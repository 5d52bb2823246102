//! RSA keys generated through GENERATE ASYMMETRIC KEY PAIR, used through SIGN and DECIPHER;
//! OpenSSL judges every signature, the CV request's signatures and every decryption.

mod common;

use common::*;
use emulator::{apdu::tlv, crypto::cvc, tools::hex};

fn generate_rsa(card: &mut emulator::Card, id: u8, bits: u16) -> (Vec<u8>, CvRequest) {
    let (answer, sw) = send_ext(
        card,
        [0x00, 0x46, id, 0x00],
        &generate_request(&rsa_template(bits)),
    );
    assert_eq!(sw, "9000");
    let request = parse_cv_request(&answer);
    (answer, request)
}

fn device_spki(card: &emulator::Card) -> Vec<u8> {
    let chain = &card.state().files[&0x2F02].data;
    let (device, _) = cvc::decode(chain).unwrap();
    ec_spki(
        &hex::decode("2B2403030208010107").unwrap(),
        tlv::find(device.public_key, 0x86).unwrap(),
    )
}

#[test]
fn generated_rsa_keys_sign_and_decrypt_as_openssl_expects() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut card = logged_in_card();
    for (id, bits) in [(1u8, 1024u16), (2, 2048)] {
        let (answer, request) = generate_rsa(&mut card, id, bits);
        // Stored in CExx exactly as answered.
        assert_eq!(
            card.state().files[&u16::from_be_bytes([0xCE, id])].data,
            answer
        );
        let n = tlv::find(&request.public_key, 0x81).unwrap();
        let e = tlv::find(&request.public_key, 0x82).unwrap();
        assert_eq!((n.len() * 8, e), (usize::from(bits), &[1u8, 0, 1][..]));
        assert_eq!(
            tlv::find(&request.public_key, 0x06).unwrap(),
            OID_RSA_V15_SHA256
        );
        let spki = rsa_spki(n, e);

        // Inner self-signature (RSA PKCS#1 v1.5 SHA-256) and outer device signature.
        assert!(openssl_verifies(
            dir,
            &spki,
            "-sha256",
            &[],
            &request.body,
            &request.inner_signature
        ));
        assert_eq!(
            request.outer_car,
            card.state()
                .identity
                .as_ref()
                .unwrap()
                .device_chr
                .as_bytes()
        );
        assert!(openssl_verifies(
            dir,
            &device_spki(&card),
            "-sha256",
            &[],
            &request.outer_signed,
            &der_signature(&request.outer_signature)
        ));

        let message = b"message signed on the card";
        for (p2, digest) in [
            (0x31u8, "-sha1"),
            (0x32, "-sha224"),
            (0x33, "-sha256"),
            (0x34, "-sha384"),
            (0x35, "-sha512"),
        ] {
            let (sig, sw) = send_ext(&mut card, [0x80, 0x68, id, p2], message);
            assert_eq!(sw, "9000");
            assert!(
                openssl_verifies(dir, &spki, digest, &[], message, &sig),
                "PKCS#1 {p2:02X} {bits}"
            );
        }
        for (p2, digest) in [
            (0x41u8, "-sha1"),
            (0x42, "-sha224"),
            (0x43, "-sha256"),
            (0x44, "-sha384"),
            (0x45, "-sha512"),
        ] {
            let (sig, sw) = send_ext(&mut card, [0x80, 0x68, id, p2], message);
            assert_eq!(sw, "9000");
            // SHA-512 with a 64-byte salt does not fit RSA-1024: the salt is the longest
            // that fits, 128 - 64 - 2 = 62 bytes.
            let salt = if bits == 1024 && p2 == 0x45 {
                "rsa_pss_saltlen:62"
            } else {
                "rsa_pss_saltlen:digest"
            };
            assert!(
                openssl_verifies(
                    dir,
                    &spki,
                    digest,
                    &["rsa_padding_mode:pss", salt],
                    message,
                    &sig
                ),
                "PSS {p2:02X} {bits}"
            );
        }
        // 30: the host's DigestInfo; 40: a bare hash; 20: a block the host padded.
        let hash = emulator::crypto::hash::Hash::Sha256.digest(message);
        let info = [
            emulator::crypto::hash::Hash::Sha256.digest_info_prefix(),
            &hash,
        ]
        .concat();
        let (sig, sw) = send_ext(&mut card, [0x80, 0x68, id, 0x30], &info);
        assert_eq!(sw, "9000");
        assert!(openssl_verifies(dir, &spki, "-sha256", &[], message, &sig));
        let (sig, _) = send_ext(&mut card, [0x80, 0x68, id, 0x40], &hash);
        assert!(openssl_verifies(
            dir,
            &spki,
            "-sha256",
            &["rsa_padding_mode:pss", "rsa_pss_saltlen:digest"],
            message,
            &sig
        ));
        let k = usize::from(bits) / 8;
        let mut block = vec![0x00, 0x01];
        block.resize(k - info.len() - 1, 0xFF);
        block.push(0x00);
        block.extend_from_slice(&info);
        let (sig, sw) = send_ext(&mut card, [0x80, 0x68, id, 0x20], &block);
        assert_eq!((sig.len(), sw.as_str()), (k, "9000"));
        assert!(openssl_verifies(dir, &spki, "-sha256", &[], message, &sig));

        // OpenSSL encrypts; the card deciphers raw (21), PKCS#1 (22) and OAEP (23).
        std::fs::write(dir.join("pub.der"), &spki).unwrap();
        std::fs::write(dir.join("plain.bin"), b"secret").unwrap();
        for (p2, opts) in [
            (0x21u8, vec![]),
            (0x22, vec![]),
            (0x23, vec!["-pkeyopt", "rsa_padding_mode:oaep"]),
        ] {
            let mut args = vec![
                "pkeyutl",
                "-encrypt",
                "-pubin",
                "-keyform",
                "DER",
                "-inkey",
                "pub.der",
                "-in",
                "plain.bin",
                "-out",
                "enc.bin",
            ];
            args.extend(opts.iter());
            assert!(openssl(dir, &args).0);
            let enc = std::fs::read(dir.join("enc.bin")).unwrap();
            let (plain, sw) = send_ext(&mut card, [0x80, 0x62, id, p2], &enc);
            assert_eq!(sw, "9000", "{p2:02X}");
            if p2 == 0x21 {
                assert_eq!((plain.len(), &plain[..2]), (k, &[0x00, 0x02][..]));
                assert!(plain.ends_with(b"\x00secret"));
            } else {
                assert_eq!(plain, b"secret", "{p2:02X}");
            }
        }
    }
}

#[test]
fn rsa_sizes_of_the_spec_and_refusals() {
    let mut card = logged_in_card();
    for bits in [1536u16, 3072, 4096] {
        let (_, request) = generate_rsa(&mut card, 3, bits);
        assert_eq!(
            tlv::find(&request.public_key, 0x81).unwrap().len() * 8,
            usize::from(bits)
        );
    }
    for bits in [512u16, 1000, 4352, 8192] {
        let (_, sw) = send_ext(
            &mut card,
            [0x00, 0x46, 4, 0x00],
            &generate_request(&rsa_template(bits)),
        );
        assert_eq!(sw, "6A81", "{bits}");
    }
    assert!(!card.state().keys.contains_key(&4));
}

#[test]
fn key_use_status_words() {
    let mut card = logged_in_card();
    let (_, _) = generate_rsa(&mut card, 1, 1024);
    // Wrong key type for ECDSA and ECDH; unknown algorithm ids; wrong lengths.
    assert_eq!(
        send_ext(&mut card, [0x80, 0x68, 1, 0x70], &[0; 32]).1,
        "6A81"
    );
    assert_eq!(
        send_ext(&mut card, [0x80, 0x62, 1, 0x80], &[4; 65]).1,
        "6A81"
    );
    assert_eq!(
        send_ext(&mut card, [0x80, 0x68, 1, 0x99], &[0; 32]).1,
        "6A81"
    );
    assert_eq!(
        send_ext(&mut card, [0x80, 0x68, 1, 0x20], &[0; 100]).1,
        "6700"
    );
    assert_eq!(
        send_ext(&mut card, [0x80, 0x68, 1, 0x40], &[0; 33]).1,
        "6700"
    );
    assert_eq!(
        send_ext(&mut card, [0x80, 0x68, 1, 0x20], &[0xFF; 128]).1,
        "6A80"
    );
    assert_eq!(
        send_ext(&mut card, [0x80, 0x62, 1, 0x22], &[0; 127]).1,
        "6700"
    );
    // Missing key, the device key, no login.
    assert_eq!(send_ext(&mut card, [0x80, 0x68, 9, 0x33], b"x").1, "6A82");
    assert_eq!(send_ext(&mut card, [0x80, 0x68, 0, 0x73], b"x").1, "6A81");
    assert_eq!(send(&mut card, SELECT_AID).1, "9000");
    assert_eq!(send_ext(&mut card, [0x80, 0x68, 1, 0x33], b"x").1, "6982");
    assert_eq!(
        send_ext(
            &mut card,
            [0x00, 0x46, 2, 0x00],
            &generate_request(&rsa_template(1024))
        )
        .1,
        "6982"
    );
}

#[test]
fn usage_counter_and_algorithm_list_are_enforced() {
    let mut card = logged_in_card();
    let mut request = generate_request(&rsa_template(1024));
    tlv::write(&mut request, 0x90, &2u32.to_be_bytes());
    tlv::write(&mut request, 0x91, &[0x33]);
    let (_, sw) = send_ext(&mut card, [0x00, 0x46, 1, 0x00], &request);
    assert_eq!(sw, "9000");
    assert_eq!(send_ext(&mut card, [0x80, 0x68, 1, 0x31], b"x").1, "6A81");
    assert_eq!(send_ext(&mut card, [0x80, 0x68, 1, 0x33], b"x").1, "9000");
    assert_eq!(send_ext(&mut card, [0x80, 0x68, 1, 0x33], b"x").1, "9000");
    assert_eq!(send_ext(&mut card, [0x80, 0x68, 1, 0x33], b"x").1, "6984");
    // Key domains other than the default one do not exist on this card.
    let mut request = generate_request(&rsa_template(1024));
    tlv::write(&mut request, 0x92, &[1]);
    assert_eq!(
        send_ext(&mut card, [0x00, 0x46, 2, 0x00], &request).1,
        "6A88"
    );
    // A malformed request.
    assert_eq!(
        send_ext(&mut card, [0x00, 0x46, 2, 0x00], &[0x7F, 0x49, 0x05, 0x06]).1,
        "6A80"
    );
    assert_eq!(
        send_ext(
            &mut card,
            [0x00, 0x46, 0, 0x00],
            &generate_request(&rsa_template(1024))
        )
        .1,
        "6A86"
    );
}
