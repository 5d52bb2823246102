//! EC keys on the 12 curves generated through GENERATE, used through SIGN and DECIPHER (ECDH);
//! OpenSSL judges the CV request's signatures, every ECDSA signature and every shared secret.

mod common;

use common::*;
use emulator::crypto::ec::Curve;
use emulator::{apdu::tlv, tools::hex};

fn ec_template(curve: Curve) -> Vec<u8> {
    emulator::crypto::cvc::ec_key_template(curve)
}

#[test]
fn every_curve_generates_signs_and_derives_as_openssl_expects() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut card = logged_in_card();
    for (i, curve) in Curve::ALL.into_iter().enumerate() {
        let id = 0x10 + i as u8;
        let (answer, sw) = send_ext(
            &mut card,
            [0x00, 0x46, id, 0x00],
            &generate_request(&ec_template(curve)),
        );
        assert_eq!(sw, "9000", "{curve:?}");
        let request = parse_cv_request(&answer);
        // The answer carries the domain parameters in the order of a real card's answer.
        let tags: Vec<u16> = tlv::parse_all(&request.public_key)
            .unwrap()
            .iter()
            .map(|t| t.tag)
            .collect();
        assert_eq!(
            tags,
            vec![0x06, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87],
            "{curve:?}"
        );
        let point = tlv::find(&request.public_key, 0x86).unwrap().to_vec();
        let spki = ec_spki(curve.oid(), &point);
        assert!(
            openssl_verifies(
                dir,
                &spki,
                "-sha256",
                &[],
                &request.body,
                &der_signature(&request.inner_signature)
            ),
            "inner signature on {curve:?}"
        );

        let message = format!("signed on {curve:?}").into_bytes();
        for (p2, digest) in [
            (0x71u8, "-sha1"),
            (0x72, "-sha224"),
            (0x73, "-sha256"),
            (0x74, "-sha384"),
            (0x75, "-sha512"),
        ] {
            let (sig, sw) = send_ext(&mut card, [0x80, 0x68, id, p2], &message);
            assert_eq!(sw, "9000");
            assert!(
                openssl_verifies(dir, &spki, digest, &[], &message, &sig),
                "{curve:?} {p2:02X}"
            );
            assert_minimal_der(&sig);
        }
        // 70: a hash of any length, truncated to the order's size by the card.
        for len in [20usize, 32, 48, 64] {
            let hash: Vec<u8> = (0..len as u8)
                .map(|b| b.wrapping_mul(7).wrapping_add(i as u8))
                .collect();
            let (sig, sw) = send_ext(&mut card, [0x80, 0x68, id, 0x70], &hash);
            assert_eq!(sw, "9000");
            std::fs::write(dir.join("pub.der"), &spki).unwrap();
            std::fs::write(dir.join("hash.bin"), &hash).unwrap();
            std::fs::write(dir.join("sig.der"), &sig).unwrap();
            let (ok, text) = openssl(
                dir,
                &[
                    "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der", "-in",
                    "hash.bin", "-sigfile", "sig.der",
                ],
            );
            assert!(ok, "{curve:?} hash of {len} bytes: {text}");
        }

        // ECDH with a key OpenSSL generated: both sides find the same secret.
        let name = curve.openssl_name();
        assert!(
            openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    &format!("ec_paramgen_curve:{name}"),
                    "-out",
                    "peer.pem"
                ]
            )
            .0
        );
        assert!(
            openssl(
                dir,
                &["pkey", "-in", "peer.pem", "-pubout", "-outform", "DER", "-out", "peer.der"]
            )
            .0
        );
        let peer_spki = std::fs::read(dir.join("peer.der")).unwrap();
        let peer_point = &peer_spki[peer_spki.len() - (1 + 2 * curve.field_len())..];
        let (shared, sw) = send_ext(&mut card, [0x80, 0x62, id, 0x80], peer_point);
        assert_eq!(sw, "9000");
        std::fs::write(dir.join("card.der"), &spki).unwrap();
        assert!(
            openssl(
                dir,
                &[
                    "pkeyutl",
                    "-derive",
                    "-inkey",
                    "peer.pem",
                    "-peerkey",
                    "card.der",
                    "-peerform",
                    "DER",
                    "-out",
                    "secret.bin"
                ]
            )
            .0
        );
        let secret = std::fs::read(dir.join("secret.bin")).unwrap();
        assert_eq!(
            (shared[0], &shared[1..=curve.field_len()]),
            (0x04, &secret[..]),
            "ECDH on {curve:?}"
        );
        // A point off the curve is refused.
        let mut bad = peer_point.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            send_ext(&mut card, [0x80, 0x62, id, 0x80], &bad).1,
            "6A80",
            "{curve:?}"
        );
        assert_eq!(
            send_ext(&mut card, [0x80, 0x62, id, 0x80], &peer_point[1..]).1,
            "6700",
            "{curve:?}"
        );
    }
}

fn assert_minimal_der(sig: &[u8]) {
    let (seq, rest) = tlv::read(sig).unwrap();
    assert_eq!((seq.tag, rest.len()), (0x30, 0));
    for int in tlv::parse_all(seq.value).unwrap() {
        assert_eq!(int.tag, 0x02);
        let v = int.value;
        assert!(
            !(v.len() > 1 && v[0] == 0 && v[1] & 0x80 == 0),
            "non-minimal INTEGER {}",
            hex::encode(v)
        );
        assert!(v[0] & 0x80 == 0, "negative INTEGER");
    }
}

#[test]
fn unknown_domain_parameters_are_refused() {
    let mut card = logged_in_card();
    let d = Curve::Secp256r1.domain();
    let mut b = d.b.to_vec();
    b[31] ^= 1;
    let mut inner = tlv::encode(0x06, OID_ECDSA_SHA256);
    for (tag, value) in [
        (0x81, d.prime),
        (0x82, d.a),
        (0x83, &b[..]),
        (0x84, d.generator),
        (0x85, d.order),
        (0x87, d.cofactor),
    ] {
        tlv::write(&mut inner, tag, value);
    }
    let (_, sw) = send_ext(
        &mut card,
        [0x00, 0x46, 1, 0x00],
        &generate_request(&tlv::encode(0x7F49, &inner)),
    );
    assert_eq!(sw, "6A81");
    assert!(!card.state().keys.contains_key(&1));
}

#[test]
fn ec_keys_refuse_rsa_algorithms() {
    let mut card = logged_in_card();
    let (_, sw) = send_ext(
        &mut card,
        [0x00, 0x46, 1, 0x00],
        &generate_request(&ec_template(Curve::Secp256r1)),
    );
    assert_eq!(sw, "9000");
    for p2 in [0x20u8, 0x31, 0x40] {
        assert_eq!(send_ext(&mut card, [0x80, 0x68, 1, p2], &[0; 32]).1, "6A81");
    }
    for p2 in [0x21u8, 0x22, 0x23] {
        assert_eq!(send_ext(&mut card, [0x80, 0x62, 1, p2], &[0; 32]).1, "6A81");
    }
    assert_eq!(
        send_ext(&mut card, [0x80, 0x68, 1, 0x70], &[0; 65]).1,
        "6700"
    );
}

#[test]
fn the_key_limit_answers_6a84() {
    let mut card = logged_in_card().with_limits(emulator::Limits {
        max_keys: 2,
        ..emulator::Limits::default()
    });
    for id in [1u8, 2] {
        assert_eq!(
            send_ext(
                &mut card,
                [0x00, 0x46, id, 0x00],
                &generate_request(&ec_template(Curve::Secp256r1))
            )
            .1,
            "9000"
        );
    }
    assert_eq!(
        send_ext(
            &mut card,
            [0x00, 0x46, 3, 0x00],
            &generate_request(&ec_template(Curve::Secp256r1))
        )
        .1,
        "6A84"
    );
    assert!(!card.state().keys.contains_key(&3) && !card.state().files.contains_key(&0xCE03));
    // Replacing a key is not a new key.
    assert_eq!(
        send_ext(
            &mut card,
            [0x00, 0x46, 2, 0x00],
            &generate_request(&ec_template(Curve::Secp256r1))
        )
        .1,
        "9000"
    );
}
