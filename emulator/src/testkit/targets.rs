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
    let mut rest = data;
    while let Some((cert, after)) = crate::crypto::cvc::decode(rest) {
        assert!(after.len() < rest.len());
        let _ = crate::crypto::cvc::TaAlgorithm::from_oid(
            tlv::find(cert.public_key, 0x06).unwrap_or_default(),
        );
        rest = after;
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
