//! The public-key authentication record (`pka`): how many keys, how many required, and each
//! registered key's holder reference and public key.

use crate::apdu::tlv;
use crate::model::pka::{Pka, RegisteredKey};
use crate::store::version::record::PKA;

pub(crate) fn encode_pka(pka: &Pka) -> Vec<u8> {
    let mut v = vec![PKA, pka.total, pka.required];
    for (slot, key) in &pka.keys {
        let mut entry = tlv::encode(0x01, &[*slot]);
        tlv::write(&mut entry, 0x02, &key.chr);
        tlv::write(&mut entry, 0x03, &key.public_key);
        tlv::write(&mut v, 0x30, &entry);
    }
    v
}

pub(crate) fn decode_pka(v: &[u8]) -> Option<Pka> {
    let [PKA, total, required, entries @ ..] = v else {
        return None;
    };
    let mut pka = Pka::new(*total, *required)?;
    for entry in tlv::parse_all(entries)? {
        if entry.tag != 0x30 {
            return None;
        }
        let [slot] = tlv::find(entry.value, 0x01)? else {
            return None;
        };
        if *slot >= pka.total {
            return None;
        }
        let key = RegisteredKey {
            chr: tlv::find(entry.value, 0x02)?.to_vec(),
            public_key: tlv::find(entry.value, 0x03)?.to_vec(),
        };
        pka.keys.insert(*slot, key);
    }
    Some(pka)
}
