//! The records: how each part of [`CardState`] is written in three tables (`meta` by name,
//! `files` by FID, `keys` by key id), the same for every store, one file per kind of record.
//! Which version each record has, and the fixture folder that froze it: [`super::version`].
//!
//! | table | key | value |
//! |---|---|---|
//! | meta | `format` | the record set's version ([`version::RECORDS`]) |
//! | meta | `identity` | TLV `01` device CHR, `02` root certificate ([`config`]) |
//! | meta | `config` | `01` ‖ options (2); `02` ‖ options (2) ‖ key domain slots (1) when more than one ([`config`]) |
//! | meta | `pin.user`, `pin.so` | `01` ‖ max ‖ left ‖ length ‖ salt (16) ‖ digest (32); `02` ‖ max ‖ left ‖ length ‖ flags (`01` transport PIN) ‖ salt ‖ digest ([`pin`]) |
//! | meta | `dkek` (domain 0), `domain.1` ... `domain.15` | `01 00` absent; `01 01` total imported value(32) pending; `01 02` total `00` value(32) ready; `02 03` agreed (`00`/`01`) value(32) UID: an XKEK domain ([`domain`]) |
//! | meta | `seed` | seed (8) ‖ boots (8) ([`config`]) |
//! | meta | `pka` | `01` ‖ total ‖ required ‖ per registered key `30 { 01 slot, 02 CHR, 03 public key (7F49 content) }` ([`pka`]) |
//! | files | FID | sequence number (8) ‖ content ([`file`]) |
//! | keys | key id | `01` ‖ TLV `01` kind (`05` RSA, `0C` EC, `0F` AES); RSA `81` n `82` e `83` d `84` p `85` q; EC `86` curve `87` scalar; AES `88` key; `90` uses left (4), `91` algorithms, `92` domain, `93` wrapping key ([`key`]) |
//!
//! Every change of format must keep the records of `fixtures/store/` decoding: the fixture
//! tests fail on any change of these bytes.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::version::{self, record as versions};
use super::StoreError;
use crate::model::dkek::Dkek;
use crate::model::pin::PinRef;
use crate::model::{CardState, Change, MAX_KEY_DOMAINS};

mod config;
mod domain;
mod file;
mod key;
mod pin;
mod pka;

pub(crate) use domain::{decode_dkek, encode_dkek};
pub(crate) use key::{decode_key, encode_key, stored_len};
pub(crate) use pin::{decode_pin, encode_pin};
pub(crate) use pka::{decode_pka, encode_pka};

/// The stored form of a card, as the store's three tables hold it.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Records {
    pub meta: BTreeMap<String, Vec<u8>>,
    pub files: BTreeMap<u16, Vec<u8>>,
    pub keys: BTreeMap<u8, Vec<u8>>,
}

/// Where a record lives.
pub(crate) enum Slot {
    Meta(&'static str),
    File(u16),
    Key(u8),
}

/// The three tables as one store keeps them: a record set (`Some`) or removed (`None`).
pub(crate) trait Tables {
    fn set(&mut self, slot: Slot, value: Option<&[u8]>) -> Result<(), StoreError>;
}

/// Writes one command's `changes` into `tables` (and the format version).
pub(crate) fn write(changes: &[Change], tables: &mut impl Tables) -> Result<(), StoreError> {
    tables.set(Slot::Meta("format"), Some(&[version::RECORDS]))?;
    for change in changes {
        let (slot, value) = encode(change)?;
        tables.set(slot, value.as_ref().map(|v| v.as_slice()))?;
    }
    Ok(())
}

/// Every name of a meta record, as `&'static str` (what [`Slot::Meta`] holds); `None` for a
/// name no version of the format writes.
pub(crate) fn meta_name(name: &str) -> Option<&'static str> {
    const NAMES: [&str; 8] = [
        "format", "identity", "config", "pin.user", "pin.so", "dkek", "seed", "pka",
    ];
    NAMES.into_iter().chain(DOMAIN_NAMES).find(|n| *n == name)
}

/// The meta record of key domain `kd` (1 ..= 15); domain 0 is `dkek`.
const DOMAIN_NAMES: [&str; MAX_KEY_DOMAINS as usize - 1] = [
    "domain.1",
    "domain.2",
    "domain.3",
    "domain.4",
    "domain.5",
    "domain.6",
    "domain.7",
    "domain.8",
    "domain.9",
    "domain.10",
    "domain.11",
    "domain.12",
    "domain.13",
    "domain.14",
    "domain.15",
];

fn domain_slot(kd: u8) -> Option<&'static str> {
    match kd {
        0 => Some("dkek"),
        _ => DOMAIN_NAMES.get(usize::from(kd) - 1).copied(),
    }
}

fn pin_slot(which: PinRef) -> &'static str {
    match which {
        PinRef::User => "pin.user",
        PinRef::So => "pin.so",
    }
}

/// A record as one change writes it: where, and the bytes (`None`: removed).
type Written = (Slot, Option<Zeroizing<Vec<u8>>>);

/// The record one change writes.
fn encode(change: &Change) -> Result<Written, StoreError> {
    let bytes = |v: Vec<u8>| Some(Zeroizing::new(v));
    Ok(match change {
        Change::Identity(identity) => (
            Slot::Meta("identity"),
            bytes(config::encode_identity(identity)),
        ),
        Change::Config(configuration) => (
            Slot::Meta("config"),
            configuration.and_then(|c| bytes(config::encode_config(c))),
        ),
        Change::Pin(which, record) => (
            Slot::Meta(pin_slot(*which)),
            record.as_ref().and_then(|r| bytes(encode_pin(r))),
        ),
        Change::Domain(kd, dkek) => {
            // INITIALIZE allocates at most MAX_KEY_DOMAINS slots.
            let name = domain_slot(*kd).ok_or_else(|| {
                StoreError::Refused(format!("key domain {kd} is past the last slot"))
            })?;
            match (*kd, dkek) {
                (1.., Dkek::Absent) => (Slot::Meta(name), None),
                _ => (Slot::Meta(name), Some(encode_dkek(dkek))),
            }
        }
        Change::PutFile(fid, entry) => (Slot::File(*fid), bytes(file::encode_file(entry))),
        Change::DeleteFile(fid) => (Slot::File(*fid), None),
        Change::PutKey(id, key) => (Slot::Key(*id), Some(encode_key(key))),
        Change::DeleteKey(id) => (Slot::Key(*id), None),
        Change::Seed(seed, boots) => (
            Slot::Meta("seed"),
            bytes(config::encode_seed(*seed, *boots)),
        ),
        Change::Pka(pka) => (
            Slot::Meta("pka"),
            pka.as_ref().and_then(|p| bytes(encode_pka(p))),
        ),
    })
}

/// Sets or removes `key` in one of [`Records`]' maps.
fn set_in<K: Ord>(map: &mut BTreeMap<K, Vec<u8>>, key: K, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            map.insert(key, v.to_vec());
        }
        None => {
            map.remove(&key);
        }
    }
}

impl Tables for Records {
    fn set(&mut self, slot: Slot, value: Option<&[u8]>) -> Result<(), StoreError> {
        match slot {
            Slot::Meta(name) => set_in(&mut self.meta, name.to_string(), value),
            Slot::File(fid) => set_in(&mut self.files, fid, value),
            Slot::Key(id) => set_in(&mut self.keys, id, value),
        }
        Ok(())
    }
}

impl Records {
    /// Decodes every record into the card's state. A record that does not decode makes the
    /// whole store [`StoreError::Corrupt`]; one of a version above the newest this emulator
    /// reads, [`StoreError::Newer`].
    pub fn to_state(&self) -> Result<CardState, StoreError> {
        let mut state = CardState::default();
        if let Some(format) = self.meta.get("format") {
            match format.as_slice() {
                [version::RECORDS] => {}
                [found] if *found > version::RECORDS => {
                    return Err(StoreError::Newer {
                        what: "record format".into(),
                        found: *found,
                        newest: version::RECORDS,
                    })
                }
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "record format {other:?} is not version {}",
                        version::RECORDS
                    )))
                }
            }
        }
        if let Some(v) = self.meta.get("identity") {
            state.identity = Some(plain("identity", v, config::decode_identity)?);
        }
        if let Some(v) = self.meta.get("config") {
            let newest = versions::CONFIG_DOMAINS;
            state.config = Some(versioned("config", v, newest, config::decode_config)?);
        }
        for which in [PinRef::User, PinRef::So] {
            if let Some(v) = self.meta.get(pin_slot(which)) {
                let record = versioned("PIN", v, versions::PIN_FLAGS, decode_pin)?;
                match which {
                    PinRef::User => state.user_pin = Some(record),
                    PinRef::So => state.so_pin = Some(record),
                }
            }
        }
        if let Some(v) = self.meta.get("seed") {
            state.seed = Some(plain("seed", v, config::decode_seed)?);
        }
        if let Some(v) = self.meta.get("pka") {
            let what = "public-key authentication";
            state.pka = Some(versioned(what, v, versions::PKA, decode_pka)?);
        }
        if let Some(v) = self.meta.get("dkek") {
            state.dkek = versioned("DKEK", v, versions::DOMAIN_XKEK, decode_dkek)?;
        }
        for kd in 1..MAX_KEY_DOMAINS {
            let Some(v) = domain_slot(kd).and_then(|name| self.meta.get(name)) else {
                continue;
            };
            match versioned("key domain", v, versions::DOMAIN_XKEK, decode_dkek)? {
                Dkek::Absent => return Err(unreadable("key domain")),
                dkek => state.domains.insert(kd, dkek),
            };
        }
        for (fid, v) in &self.files {
            state
                .files
                .insert(*fid, plain("file", v, file::decode_file)?);
        }
        for (id, v) in &self.keys {
            state
                .keys
                .insert(*id, versioned("key", v, versions::KEY, decode_key)?);
        }
        Ok(state)
    }
}

fn unreadable(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what} record"))
}

/// Decodes a record without a version byte.
fn plain<T>(
    what: &str,
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Option<T>,
) -> Result<T, StoreError> {
    decode(bytes).ok_or_else(|| unreadable(what))
}

/// Decodes a record whose first byte is its version: a version above `newest` was written by a
/// newer emulator; anything else that does not decode is damage.
fn versioned<T>(
    what: &str,
    bytes: &[u8],
    newest: u8,
    decode: impl Fn(&[u8]) -> Option<T>,
) -> Result<T, StoreError> {
    match bytes.first() {
        Some(&found) if found > newest => Err(StoreError::Newer {
            what: format!("{what} record version"),
            found,
            newest,
        }),
        _ => plain(what, bytes, decode),
    }
}

#[cfg(test)]
mod tests;
