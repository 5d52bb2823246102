//! Cross-checks of every curve against the OpenSSL 3 command line tool.

use super::*;
use std::{fs, path::Path, process::Command};

const EC_PUBLIC_KEY_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    der_tlv(tag, content)
}

/// Split one TLV off the front: (tag, content, rest).
fn read_tlv(data: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = data[0];
    let (len, header) = match data[1] {
        l if l < 0x80 => (l as usize, 2),
        l => {
            let n = (l & 0x7f) as usize;
            let len = data[2..2 + n]
                .iter()
                .fold(0usize, |acc, &b| acc << 8 | b as usize);
            (len, 2 + n)
        }
    };
    (tag, &data[header..header + len], &data[header + len..])
}

/// The TLVs inside a constructed value: (tag, content).
fn children(mut content: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (tag, value, rest) = read_tlv(content);
        out.push((tag, value));
        content = rest;
    }
    out
}

fn spki(curve: Curve, point: &[u8]) -> Vec<u8> {
    let mut algorithm = tlv(0x06, EC_PUBLIC_KEY_OID);
    algorithm.extend(tlv(0x06, curve.oid()));
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    let mut body = tlv(0x30, &algorithm);
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

fn spki_point(der: &[u8]) -> Vec<u8> {
    let (tag, body, _) = read_tlv(der);
    assert_eq!(tag, 0x30);
    let fields = children(body);
    assert_eq!(fields[1].0, 0x03);
    assert_eq!(fields[1].1[0], 0, "unused bits");
    fields[1].1[1..].to_vec()
}

/// SEC 1 ECPrivateKey with the named-curve OID and no public key.
fn sec1_private_key(curve: Curve, scalar: &[u8]) -> Vec<u8> {
    let mut body = tlv(0x02, &[1]);
    body.extend(tlv(0x04, scalar));
    body.extend(tlv(0xa0, &tlv(0x06, curve.oid())));
    tlv(0x30, &body)
}

/// (r, s) of a DER ECDSA-Sig-Value.
fn parse_signature(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (tag, body, rest) = read_tlv(der);
    assert_eq!(tag, 0x30);
    assert!(rest.is_empty());
    let fields = children(body);
    assert_eq!(fields.len(), 2);
    (fields[0].1.to_vec(), fields[1].1.to_vec())
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl CLI not available")
}

fn openssl_ok(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = openssl(dir, args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    crate::crypto::rng::system().fill_bytes(&mut out);
    out
}

fn new_scalar(curve: Curve) -> Zeroizing<Vec<u8>> {
    curve.generate(&mut *crate::crypto::rng::system())
}

/// The order minus `k`, as order_len bytes.
fn order_minus(curve: Curve, k: u8) -> Vec<u8> {
    let mut out = curve.domain().order.to_vec();
    let mut borrow = k;
    for byte in out.iter_mut().rev() {
        let (value, underflow) = byte.overflowing_sub(borrow);
        *byte = value;
        borrow = u8::from(underflow);
    }
    out
}

#[test]
fn domain_matches_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for curve in Curve::ALL {
        let name = curve.openssl_name();
        let der = openssl_ok(
            dir.path(),
            &[
                "ecparam",
                "-name",
                name,
                "-param_enc",
                "explicit",
                "-outform",
                "DER",
            ],
        );
        let (tag, body, _) = read_tlv(&der);
        assert_eq!(tag, 0x30);
        let fields = children(body);
        let field_id = children(fields[1].1);
        let curve_ab = children(fields[2].1);
        let (prime, a, b) = (field_id[1].1, curve_ab[0].1, curve_ab[1].1);
        let (base, order, cofactor) = (fields[3].1, fields[4].1, fields[5].1);

        let d = curve.domain();
        let (fl, ol) = (curve.field_len(), curve.order_len());
        assert!(int_eq(d.prime, prime), "{name} prime");
        assert!(int_eq(d.a, a), "{name} a");
        assert!(int_eq(d.b, b), "{name} b");
        assert_eq!(d.generator, base, "{name} generator");
        assert!(int_eq(d.order, order), "{name} order");
        assert!(int_eq(d.cofactor, cofactor), "{name} cofactor");
        assert_eq!(d.cofactor, [1]);
        assert_eq!(
            (d.prime.len(), d.a.len(), d.b.len()),
            (fl, fl, fl),
            "{name}"
        );
        assert_eq!(d.generator.len(), 1 + 2 * fl, "{name}");
        assert_eq!(d.order.len(), ol, "{name}");
        assert_ne!(d.order[0], 0, "{name} order_len");
        let bits = d.prime.len() * 8 - d.prime[0].leading_zeros() as usize;
        assert_eq!(bits, curve.field_bits(), "{name} field_bits");

        // Named-curve OID as OpenSSL encodes it.
        let named = openssl_ok(dir.path(), &["ecparam", "-name", name, "-outform", "DER"]);
        assert_eq!(named, tlv(0x06, curve.oid()), "{name} oid");

        // Recognition from explicit parameters.
        let h = Some(d.cofactor);
        assert_eq!(
            Curve::from_domain(d.prime, d.a, d.b, d.generator, d.order, h),
            Some(curve)
        );
        assert_eq!(
            Curve::from_domain(prime, a, b, base, order, Some(cofactor)),
            Some(curve)
        );
        assert_eq!(
            Curve::from_domain(d.prime, d.a, d.b, d.generator, d.order, None),
            Some(curve)
        );
        let (gx, gy) = d.generator[1..].split_at(fl);
        let mut stripped_g = vec![4u8];
        stripped_g.extend_from_slice(strip_zeros(gx));
        let mut padded_g = vec![4u8, 0];
        padded_g.extend_from_slice(gx);
        padded_g.push(0);
        padded_g.extend_from_slice(gy);
        if strip_zeros(gx).len() == strip_zeros(gy).len() {
            stripped_g.extend_from_slice(strip_zeros(gy));
            let s = strip_zeros;
            assert_eq!(
                Curve::from_domain(s(d.prime), s(d.a), s(d.b), &stripped_g, s(d.order), h),
                Some(curve)
            );
        }
        let pad = |x: &[u8]| [&[0u8, 0][..], x].concat();
        assert_eq!(
            Curve::from_domain(
                &pad(d.prime),
                &pad(d.a),
                &pad(d.b),
                &padded_g,
                &pad(d.order),
                h
            ),
            Some(curve)
        );

        // Any modified parameter is rejected.
        let flip = |x: &[u8]| {
            let mut x = x.to_vec();
            *x.last_mut().unwrap() ^= 1;
            x
        };
        let g = d.generator;
        assert_eq!(
            Curve::from_domain(&flip(d.prime), d.a, d.b, g, d.order, h),
            None
        );
        assert_eq!(
            Curve::from_domain(d.prime, &flip(d.a), d.b, g, d.order, h),
            None
        );
        assert_eq!(
            Curve::from_domain(d.prime, d.a, &flip(d.b), g, d.order, h),
            None
        );
        assert_eq!(
            Curve::from_domain(d.prime, d.a, d.b, &flip(g), d.order, h),
            None
        );
        assert_eq!(
            Curve::from_domain(d.prime, d.a, d.b, g, &flip(d.order), h),
            None
        );
        assert_eq!(
            Curve::from_domain(d.prime, d.a, d.b, g, d.order, Some(&[2])),
            None
        );
        assert_eq!(
            Curve::from_domain(d.prime, d.a, d.b, &g[1..], d.order, h),
            None
        );
    }
}

#[test]
fn from_domain_rejects_other_curves() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["secp224r1", "brainpoolP256t1"] {
        let der = openssl_ok(
            dir.path(),
            &[
                "ecparam",
                "-name",
                name,
                "-param_enc",
                "explicit",
                "-outform",
                "DER",
            ],
        );
        let fields = children(read_tlv(&der).1);
        let field_id = children(fields[1].1);
        let curve_ab = children(fields[2].1);
        let found = Curve::from_domain(
            field_id[1].1,
            curve_ab[0].1,
            curve_ab[1].1,
            fields[3].1,
            fields[4].1,
            Some(fields[5].1),
        );
        assert_eq!(found, None, "{name}");
    }
    assert_eq!(
        Curve::from_domain(&[7], &[1], &[2], &[4, 1, 1], &[5], None),
        None
    );
}

#[test]
fn generate_and_public_point_match_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for curve in Curve::ALL {
        let name = curve.openssl_name();
        let d = curve.domain();
        let mut one = vec![0u8; curve.order_len()];
        *one.last_mut().unwrap() = 1;
        let scalars = [
            new_scalar(curve).to_vec(),
            one.clone(),
            order_minus(curve, 1),
        ];
        for scalar in &scalars {
            assert_eq!(scalar.len(), curve.order_len());
            assert!(scalar.as_slice() < d.order && scalar.iter().any(|&b| b != 0));
            let ours = curve.public_point(scalar).unwrap();
            fs::write(dir.path().join("key.der"), sec1_private_key(curve, scalar)).unwrap();
            let pub_der = openssl_ok(
                dir.path(),
                &[
                    "pkey", "-inform", "DER", "-in", "key.der", "-pubout", "-outform", "DER",
                ],
            );
            assert_eq!(ours, spki_point(&pub_der), "{name}");
            assert_eq!(pub_der, spki(curve, &ours), "{name} SPKI");
        }
        assert_eq!(curve.public_point(&one).unwrap(), d.generator, "{name} 1*G");

        let zero = vec![0u8; curve.order_len()];
        assert_eq!(curve.public_point(&zero), Err(EcError));
        assert_eq!(curve.public_point(d.order), Err(EcError));
        assert_eq!(curve.public_point(&order_minus(curve, 0)), Err(EcError));
        assert_eq!(curve.public_point(&scalars[0][1..]), Err(EcError));
        assert_eq!(
            curve.public_point(&[&[0u8][..], &scalars[0]].concat()),
            Err(EcError)
        );
        assert_eq!(curve.public_point(&[]), Err(EcError));
    }
}

#[test]
fn generate_is_in_range() {
    let mut rng = crate::crypto::rng::system();
    for curve in Curve::ALL {
        let d = curve.domain();
        for _ in 0..32 {
            let k = curve.generate(&mut *rng);
            assert_eq!(k.len(), curve.order_len());
            assert!(k.as_slice() < d.order && k.iter().any(|&b| b != 0));
        }
    }
}

#[test]
fn signatures_cross_verify_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for curve in Curve::ALL {
        let name = curve.openssl_name();
        let scalar = new_scalar(curve);
        let point = curve.public_point(&scalar).unwrap();
        fs::write(dir.path().join("pub.der"), spki(curve, &point)).unwrap();
        fs::write(dir.path().join("key.der"), sec1_private_key(curve, &scalar)).unwrap();
        for len in [1, 8, 20, 28, 32, 48, 64] {
            let hash = random_bytes(len);
            let (r, s) = curve.sign_prehash(&scalar, &hash).unwrap();
            assert_eq!((r.len(), s.len()), (curve.order_len(), curve.order_len()));
            assert!(curve.verify_prehash(&point, &hash, &r, &s), "{name} {len}");
            assert_eq!(
                curve.sign_prehash(&scalar, &hash).unwrap(),
                (r.clone(), s.clone())
            );

            fs::write(dir.path().join("hash.bin"), &hash).unwrap();
            fs::write(dir.path().join("sig.der"), der_signature(&r, &s)).unwrap();
            let verify = [
                "pkeyutl", "-verify", "-pubin", "-inkey", "pub.der", "-keyform", "DER", "-in",
                "hash.bin", "-sigfile", "sig.der",
            ];
            let out = openssl(dir.path(), &verify);
            assert!(
                out.status.success(),
                "{name} hash {len}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );

            // A corrupted signature fails on both sides.
            let mut bad_s = s.clone();
            *bad_s.last_mut().unwrap() ^= 1;
            assert!(!curve.verify_prehash(&point, &hash, &r, &bad_s));
            fs::write(dir.path().join("sig.der"), der_signature(&r, &bad_s)).unwrap();
            assert!(
                !openssl(dir.path(), &verify).status.success(),
                "{name} bad sig"
            );
            let mut bad_hash = hash.clone();
            bad_hash[0] ^= 0x80;
            assert!(!curve.verify_prehash(&point, &bad_hash, &r, &s));

            // An OpenSSL signature verifies here.
            let sig = openssl_ok(
                dir.path(),
                &[
                    "pkeyutl", "-sign", "-inkey", "key.der", "-keyform", "DER", "-in", "hash.bin",
                ],
            );
            let (r2, s2) = parse_signature(&sig);
            assert!(
                curve.verify_prehash(&point, &hash, &r2, &s2),
                "{name} openssl {len}"
            );
            // High s (n - s) is equally valid.
            let neg_s = sub_be(curve.domain().order, &s2);
            assert!(
                curve.verify_prehash(&point, &hash, &r2, &neg_s),
                "{name} n-s"
            );
        }
        // OpenSSL takes at most 64 hash bytes. A 66-byte hash with 16 leading zero
        // bits is, after bits2int, hash >> (528 - order bits); that value as an
        // order_len (P-521: 64) byte hash must give the same signature check.
        let mut long = random_bytes(66);
        long[..2].fill(0);
        let (r, s) = curve.sign_prehash(&scalar, &long).unwrap();
        assert!(curve.verify_prehash(&point, &long, &r, &s), "{name} 66");
        let shifted = shr_be(&long, 66 * 8 - curve.order_bits());
        let as_hash = left_pad(&shifted, curve.order_len().min(64)).unwrap();
        fs::write(dir.path().join("hash.bin"), &as_hash).unwrap();
        fs::write(dir.path().join("sig.der"), der_signature(&r, &s)).unwrap();
        let verify = [
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.der", "-keyform", "DER", "-in",
            "hash.bin", "-sigfile", "sig.der",
        ];
        assert!(openssl(dir.path(), &verify).status.success(), "{name} 66");

        assert_eq!(curve.sign_prehash(&scalar, &[]), Err(EcError));
        assert_eq!(curve.sign_prehash(&scalar[1..], &[1; 32]), Err(EcError));
        assert!(!curve.verify_prehash(&point, &[], &[1], &[1]));
        let zero = vec![0u8; curve.order_len()];
        let (r, s) = curve.sign_prehash(&scalar, &[1; 32]).unwrap();
        assert!(!curve.verify_prehash(&point, &[1; 32], &zero, &s));
        assert!(!curve.verify_prehash(&point, &[1; 32], &r, curve.domain().order));
        assert!(!curve.verify_prehash(&point[1..], &[1; 32], &r, &s));
    }
}

/// Big-endian integer shifted right by `bits`.
fn shr_be(x: &[u8], bits: usize) -> Vec<u8> {
    let x = &x[..x.len() - bits / 8];
    let mut out = vec![0u8; x.len()];
    for i in 0..x.len() {
        let high = if i == 0 { 0 } else { u16::from(x[i - 1]) };
        out[i] = (((high << 8) | u16::from(x[i])) >> (bits % 8)) as u8;
    }
    out
}

/// x - y for big-endian integers, x >= y, result as long as x.
fn sub_be(x: &[u8], y: &[u8]) -> Vec<u8> {
    let y = left_pad(y, x.len()).unwrap();
    let mut out = vec![0u8; x.len()];
    let mut borrow = 0i16;
    for i in (0..x.len()).rev() {
        let mut v = i16::from(x[i]) - i16::from(y[i]) - borrow;
        borrow = i16::from(v < 0);
        if v < 0 {
            v += 256;
        }
        out[i] = v as u8;
    }
    out
}

#[test]
fn ecdh_matches_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for curve in Curve::ALL {
        let name = curve.openssl_name();
        let fl = curve.field_len();
        let paramgen = format!("ec_paramgen_curve:{name}");
        openssl_ok(
            dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &paramgen,
                "-outform",
                "DER",
                "-out",
                "peer.der",
            ],
        );
        let peer_pub = openssl_ok(
            dir.path(),
            &[
                "pkey", "-inform", "DER", "-in", "peer.der", "-pubout", "-outform", "DER",
            ],
        );
        let peer = spki_point(&peer_pub);

        let scalar = new_scalar(curve);
        let ours = curve.public_point(&scalar).unwrap();
        fs::write(dir.path().join("ours.der"), spki(curve, &ours)).unwrap();
        let secret = openssl_ok(
            dir.path(),
            &[
                "pkeyutl",
                "-derive",
                "-inkey",
                "peer.der",
                "-keyform",
                "DER",
                "-peerkey",
                "ours.der",
                "-peerform",
                "DER",
            ],
        );
        let shared = curve.ecdh(&scalar, &peer).unwrap();
        assert_eq!(shared.len(), 1 + 2 * fl);
        assert_eq!(shared[0], 4);
        assert_eq!(&shared[1..1 + fl], secret.as_slice(), "{name}");

        // Both directions give the same full point.
        let other = new_scalar(curve);
        let other_point = curve.public_point(&other).unwrap();
        assert_eq!(
            *curve.ecdh(&scalar, &other_point).unwrap(),
            *curve.ecdh(&other, &ours).unwrap(),
            "{name}"
        );

        // Invalid peers and scalars.
        let mut off_curve = peer.clone();
        *off_curve.last_mut().unwrap() ^= 1;
        assert_eq!(curve.ecdh(&scalar, &off_curve), Err(EcError), "{name}");
        assert_eq!(curve.ecdh(&scalar, &[0]), Err(EcError));
        assert_eq!(curve.ecdh(&scalar, &[]), Err(EcError));
        assert_eq!(curve.ecdh(&scalar, &peer[..peer.len() - 1]), Err(EcError));
        assert_eq!(
            curve.ecdh(&scalar, &[&peer[..], &[0]].concat()),
            Err(EcError)
        );
        let mut compressed = vec![2 + (peer[2 * fl] & 1)];
        compressed.extend_from_slice(&peer[1..1 + fl]);
        assert_eq!(curve.ecdh(&scalar, &compressed), Err(EcError));
        let mut hybrid = peer.clone();
        hybrid[0] = 6 + (peer[2 * fl] & 1);
        assert_eq!(curve.ecdh(&scalar, &hybrid), Err(EcError));
        let mut x_is_p = vec![4u8];
        x_is_p.extend_from_slice(curve.domain().prime);
        x_is_p.extend_from_slice(&peer[1 + fl..]);
        assert_eq!(curve.ecdh(&scalar, &x_is_p), Err(EcError));
        let zero_point = vec![0u8; 1 + 2 * fl];
        let mut zero_point4 = zero_point.clone();
        zero_point4[0] = 4;
        assert_eq!(curve.ecdh(&scalar, &zero_point), Err(EcError));
        assert_eq!(curve.ecdh(&scalar, &zero_point4), Err(EcError));
        let zero = vec![0u8; curve.order_len()];
        assert_eq!(curve.ecdh(&zero, &peer), Err(EcError));
        assert_eq!(curve.ecdh(curve.domain().order, &peer), Err(EcError));
    }
}

#[test]
fn der_signature_is_minimal() {
    assert_eq!(
        der_signature(&[0, 0, 0x7f], &[0x80, 1]),
        [0x30, 0x08, 0x02, 0x01, 0x7f, 0x02, 0x03, 0x00, 0x80, 0x01]
    );
    assert_eq!(
        der_signature(&[0, 0], &[0, 0x00, 0x01]),
        [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01]
    );
    assert_eq!(
        der_signature(&[0x00, 0x80], &[0x7f, 0xff]),
        [0x30, 0x08, 0x02, 0x02, 0x00, 0x80, 0x02, 0x02, 0x7f, 0xff]
    );
    // P-521 sized values need a long-form sequence length.
    let r = [0xffu8; 66];
    let der = der_signature(&r, &r);
    assert_eq!(&der[..3], &[0x30, 0x81, 2 * (2 + 67)]);
    assert_eq!(&der[3..6], &[0x02, 67, 0x00]);
    assert_eq!(parse_signature(&der).0[1..], r);
}

#[test]
fn bits2int_truncates_to_order_bits() {
    // P-521: a 66-byte hash keeps its leftmost 521 bits (shift right by 7).
    let z = Curve::Secp521r1.bits2int(&[0xff; 66]).unwrap();
    assert_eq!(z.len(), 66);
    assert_eq!(z[0], 0x01);
    assert!(z[1..].iter().all(|&b| b == 0xff));
    let mut hash = vec![0u8; 66];
    hash[65] = 0x80;
    let z = Curve::Secp521r1.bits2int(&hash).unwrap();
    assert_eq!(z[65], 0x01);
    // P-256: a 64-byte hash keeps its first 32 bytes; a short one is left-padded.
    let hash: Vec<u8> = (0..64).collect();
    assert_eq!(Curve::Secp256r1.bits2int(&hash).unwrap(), hash[..32]);
    let z = Curve::Secp256r1.bits2int(&[1, 2]).unwrap();
    assert_eq!(z.len(), 32);
    assert_eq!(z[30..], [1, 2]);
    assert_eq!(Curve::Secp256r1.bits2int(&[]), None);
}
