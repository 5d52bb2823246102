//! The PIN records (`pin.user`, `pin.so`): retry counters, length, salt and digest, never the
//! PIN itself.

use crate::model::pin::{PinRecord, DIGEST_LEN, SALT_LEN};
use crate::store::version::record::{PIN_FLAGS, PIN_PLAIN};

/// Flag of a [`PIN_FLAGS`] record: a transport PIN.
const PIN_TRANSPORT: u8 = 0x01;

/// A PIN: version, max, left, length, (flags,) salt, digest. The clear PIN is never stored.
/// A PIN without flags keeps version [`PIN_PLAIN`].
pub(crate) fn encode_pin(pin: &PinRecord) -> Vec<u8> {
    let mut out = match pin.must_change {
        false => vec![PIN_PLAIN, pin.max_tries, pin.tries_left, pin.len],
        true => vec![
            PIN_FLAGS,
            pin.max_tries,
            pin.tries_left,
            pin.len,
            PIN_TRANSPORT,
        ],
    };
    out.extend_from_slice(&pin.salt);
    out.extend_from_slice(&pin.digest);
    out
}

pub(crate) fn decode_pin(bytes: &[u8]) -> Option<PinRecord> {
    let (max_tries, tries_left, len, must_change, rest) = match bytes {
        [PIN_PLAIN, max, left, len, rest @ ..] => (*max, *left, *len, false, rest),
        [PIN_FLAGS, max, left, len, PIN_TRANSPORT, rest @ ..] => (*max, *left, *len, true, rest),
        _ => return None,
    };
    if rest.len() != SALT_LEN + DIGEST_LEN {
        return None;
    }
    let (salt, digest) = rest.split_at(SALT_LEN);
    Some(PinRecord {
        max_tries,
        tries_left,
        must_change,
        len,
        salt: salt.try_into().ok()?,
        digest: digest.try_into().ok()?,
    })
}
