//! The fuzz targets, one function each, shared by `fuzz/` and the smoke runs of the tests.

use super::{run, Start, DKEK_SHARE};
use crate::apdu::tlv;

/// A card in the state the first byte names, then the APDUs of the rest.
pub fn transmit(data: &[u8]) {
    if let Some((&state, rest)) = data.split_first() {
        run(Start::from_byte(state), rest);
    }
}

/// The APDU parser: never panics, and what it accepts encodes back to a command that
/// parses to the same thing.
pub fn apdu(data: &[u8]) {
    if let Ok(command) = crate::apdu::Command::parse(data) {
        let again =
            crate::apdu::Command::parse(&command.to_bytes()).expect("re-encoded command parses");
        assert_eq!(
            (
                again.cla,
                again.ins,
                again.p1,
                again.p2,
                &again.data,
                again.le
            ),
            (
                command.cla,
                command.ins,
                command.p1,
                command.p2,
                &command.data,
                command.le
            )
        );
    }
}

/// BER-TLV: what parses re-encodes to the same bytes when lengths are minimal.
pub fn tlv(data: &[u8]) {
    if let Some(tlvs) = tlv::parse_all(data) {
        let mut again = Vec::new();
        for t in &tlvs {
            tlv::write(&mut again, t.tag, t.value);
        }
        if again.len() == data.len() {
            assert_eq!(again, data);
        }
    }
    let _ = tlv::find(data, 0x7F49);
}

/// CV certificates (and chains of them).
pub fn cvc(data: &[u8]) {
    use crate::crypto::cvc::{self, CvKey};
    use crate::crypto::ec::Curve;
    let mut rest = data;
    while let Some((cert, after)) = cvc::decode(rest) {
        assert!(after.len() < rest.len());
        let _ = cvc::TaAlgorithm::from_oid(tlv::find(cert.public_key, 0x06).unwrap_or_default());
        let _ = cvc::role(cert.body);
        // As the certificate verification of PSO VERIFY CERTIFICATE reads it: the key
        // on its own and under an inherited curve, and its signature over the body.
        for inherited in [None, Some(Curve::BrainpoolP256r1)] {
            if let Some(key) = CvKey::parse(cert.public_key, inherited) {
                let _ = key.verifies(cert.body, cert.signature);
            }
        }
        rest = after;
    }
    // As MANAGE PKA and DECIPHER 84 read an authenticated request.
    if let Some(request) = cvc::decode_authenticated_request(data) {
        assert!(request.outer_signed.len() < data.len());
        if let Some(key) = CvKey::parse(request.inner.public_key, None) {
            let _ = key.verifies(request.inner.body, request.inner.signature);
        }
    }
}

/// Wrapped-key blobs: raw (refused by KCV/MAC), and sealed with a valid MAC around
/// fuzzed plaintext so the field parser and key import are reached.
pub fn keyblob(data: &[u8]) {
    use crate::crypto::keyblob::{seal_for_fuzzing, unwrap, KeyEncryptionKeys};
    let keys = KeyEncryptionKeys::derive(&DKEK_SHARE);
    assert!(unwrap(&keys, data).is_err() || data.len() > 40);
    if let Some((&selector, plain)) = data.split_first() {
        let key_type = [5u8, 6, 12, 15][usize::from(selector) % 4];
        let _ = unwrap(&keys, &seal_for_fuzzing(&keys, key_type, &[], plain));
    }
}

/// The secure messaging wrapper: protected commands (each input chunk one APDU body after a
/// fixed header) are unwrapped by a channel whose keys the input does not know; nothing
/// panics, a refused command is refused without a plain command coming out, and every answer
/// wraps.
pub fn secure_messaging(data: &[u8]) {
    use crate::apdu::secure_messaging::{Channel, SessionKeys};
    use crate::crypto::aes::AesKey;
    let mut channel = Channel::new(SessionKeys {
        enc: AesKey::Aes128(zeroize::Zeroizing::new([0x11; 16])),
        mac: AesKey::Aes128(zeroize::Zeroizing::new([0x22; 16])),
    });
    for chunk in data.chunks(64) {
        let Some((&ins, body)) = chunk.split_first() else {
            continue;
        };
        let mut apdu = vec![0x0C, ins, 0x00, 0x00, body.len() as u8];
        apdu.extend_from_slice(body);
        let Ok(command) = crate::apdu::Command::parse(&apdu) else {
            continue;
        };
        if let Ok(plain) = channel.unwrap_command(&command) {
            assert_eq!(plain.cla & 0x0C, 0);
        }
        let answer = channel.wrap_response(body, [0x90, 0x00]);
        assert!(answer.ends_with(&[0x8E, 0x08][..]) || answer.len() >= 14);
    }
}
