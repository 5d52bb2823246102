//! The key domain records (`dkek` for domain 0, `domain.1` ... `domain.15`): a DKEK absent,
//! awaiting shares or ready, or an XKEK agreed with another card. The key itself is stored as
//! the card stores its keys.

use zeroize::Zeroizing;

use crate::model::dkek::Dkek;
use crate::store::version::record::{DOMAIN_DKEK, DOMAIN_XKEK};

/// Kinds of a [`DOMAIN_DKEK`] record.
const ABSENT: u8 = 0;
const PENDING: u8 = 1;
const READY: u8 = 2;
/// The kind of a [`DOMAIN_XKEK`] record.
const EXCHANGE: u8 = 3;

/// The DKEK state; the DKEK itself is stored as the card stores its keys.
pub(crate) fn encode_dkek(dkek: &Dkek) -> Zeroizing<Vec<u8>> {
    let (kind, total, imported, value) = match dkek {
        Dkek::Absent => return Zeroizing::new(vec![DOMAIN_DKEK, ABSENT]),
        Dkek::Pending {
            total,
            imported,
            value,
        } => (PENDING, *total, *imported, value),
        Dkek::Ready { total, value } => (READY, *total, 0, value),
        // An XKEK domain, agreed (value) or not (zeros), and its UID.
        Dkek::Exchange { uid, value } => {
            let mut out = Zeroizing::new(vec![DOMAIN_XKEK, EXCHANGE, u8::from(value.is_some())]);
            out.extend_from_slice(value.as_ref().map_or(&[0; 32], |v| &**v));
            out.extend_from_slice(uid);
            return out;
        }
    };
    let mut out = Zeroizing::new(vec![DOMAIN_DKEK, kind, total, imported]);
    out.extend_from_slice(&value[..]);
    out
}

pub(crate) fn decode_dkek(bytes: &[u8]) -> Option<Dkek> {
    match bytes {
        [DOMAIN_DKEK, ABSENT] => Some(Dkek::Absent),
        [DOMAIN_XKEK, EXCHANGE, agreed @ (0 | 1), rest @ ..] if rest.len() > 32 => {
            let (value, uid) = rest.split_at(32);
            let value = Zeroizing::new(<[u8; 32]>::try_from(value).ok()?);
            Some(Dkek::Exchange {
                uid: uid.to_vec(),
                value: (*agreed == 1).then_some(value),
            })
        }
        [DOMAIN_DKEK, kind @ (PENDING | READY), total, imported, value @ ..] => {
            let value = Zeroizing::new(<[u8; 32]>::try_from(value).ok()?);
            Some(if *kind == PENDING {
                Dkek::Pending {
                    total: *total,
                    imported: *imported,
                    value,
                }
            } else {
                Dkek::Ready {
                    total: *total,
                    value,
                }
            })
        }
        _ => None,
    }
}
