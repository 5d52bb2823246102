//! The stored format: how each part of [`CardState`] is written as records in three tables
//! (`meta` by name, `files` by FID, `keys` by key id), the same for every store. Every record
//! carries its own version byte, so a record kind can grow without touching the others;
//! version 1 of every kind is frozen in `fixtures/store/v1`, the kinds and versions added for
//! the 4.x card (AES keys, key domains, transport PINs) in `fixtures/store/v2`, those of trust
//! between cards (public-key authentication, XKEK domains) in `fixtures/store/v3`.
//!
//! | table | key | value |
//! |---|---|---|
//! | meta | `format` | `01` |
//! | meta | `identity` | TLV `01` device CHR, `02` root certificate |
//! | meta | `config` | `01` ‖ options (2); `02` ‖ options (2) ‖ key domain slots (1) when more than one |
//! | meta | `pin.user`, `pin.so` | `01` ‖ max ‖ left ‖ length ‖ salt (16) ‖ digest (32); `02` ‖ max ‖ left ‖ length ‖ flags (`01` transport PIN) ‖ salt ‖ digest |
//! | meta | `dkek` (domain 0), `domain.1` ... `domain.15` | `01 00` absent; `01 01` total imported value(32) pending; `01 02` total `00` value(32) ready; `02 03` agreed (`00`/`01`) value(32) UID: an XKEK domain |
//! | meta | `seed` | seed (8) ‖ boots (8) |
//! | meta | `pka` | `01` ‖ total ‖ required ‖ per registered key `30 { 01 slot, 02 CHR, 03 public key (7F49 content) }` |
//! | files | FID | sequence number (8) ‖ content |
//! | keys | key id | `01` ‖ TLV `01` kind (`05` RSA, `0C` EC, `0F` AES); RSA `81` n `82` e `83` d `84` p `85` q; EC `86` curve `87` scalar; AES `88` key; `90` uses left (4), `91` algorithms, `92` domain, `93` wrapping key |
//!
//! Every change of format must keep the records of `fixtures/store/` decoding: the fixture
//! tests fail on any change of these bytes.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::StoreError;
use crate::apdu::tlv;
use crate::crypto::ec::Curve;
use crate::crypto::rsa as rsa_key;
use crate::model::dkek::Dkek;
use crate::model::key::{KeyMaterial, KeyPolicy, KeyRecord};
use crate::model::pin::{PinRecord, PinRef, DIGEST_LEN, SALT_LEN};
use crate::model::pka::{Pka, RegisteredKey};
use crate::model::{CardState, Change, Config, FileEntry, Identity, MAX_KEY_DOMAINS};

/// Version of the stored format, kept under the `format` meta key.
pub(crate) const FORMAT_VERSION: u8 = 1;

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
    tables.set(Slot::Meta("format"), Some(&[FORMAT_VERSION]))?;
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
        Change::Identity(identity) => (Slot::Meta("identity"), bytes(encode_identity(identity))),
        Change::Config(config) => (
            Slot::Meta("config"),
            config.and_then(|c| bytes(encode_config(c))),
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
        Change::PutFile(fid, entry) => (Slot::File(*fid), bytes(encode_file(entry))),
        Change::DeleteFile(fid) => (Slot::File(*fid), None),
        Change::PutKey(id, key) => (Slot::Key(*id), Some(encode_key(key))),
        Change::DeleteKey(id) => (Slot::Key(*id), None),
        Change::Seed(seed, boots) => (
            Slot::Meta("seed"),
            bytes([seed.to_be_bytes(), boots.to_be_bytes()].concat()),
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
    /// Decodes every record into the card's state; a record that does not decode makes the
    /// whole store [`StoreError::Corrupt`].
    pub fn to_state(&self) -> Result<CardState, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("unreadable {what} record"));
        let mut state = CardState::default();
        if let Some(format) = self.meta.get("format") {
            if format.as_slice() != [FORMAT_VERSION] {
                return Err(StoreError::Corrupt(format!(
                    "stored format {format:?} is not version {FORMAT_VERSION}"
                )));
            }
        }
        if let Some(v) = self.meta.get("identity") {
            state.identity = Some(decode_identity(v).ok_or_else(|| corrupt("identity"))?);
        }
        if let Some(v) = self.meta.get("config") {
            state.config = Some(decode_config(v).ok_or_else(|| corrupt("config"))?);
        }
        for which in [PinRef::User, PinRef::So] {
            if let Some(v) = self.meta.get(pin_slot(which)) {
                let record = decode_pin(v).ok_or_else(|| corrupt("PIN"))?;
                match which {
                    PinRef::User => state.user_pin = Some(record),
                    PinRef::So => state.so_pin = Some(record),
                }
            }
        }
        if let Some(v) = self.meta.get("seed") {
            state.seed = Some(decode_seed(v).ok_or_else(|| corrupt("seed"))?);
        }
        if let Some(v) = self.meta.get("pka") {
            state.pka = Some(decode_pka(v).ok_or_else(|| corrupt("public-key authentication"))?);
        }
        if let Some(v) = self.meta.get("dkek") {
            state.dkek = decode_dkek(v).ok_or_else(|| corrupt("DKEK"))?;
        }
        for kd in 1..MAX_KEY_DOMAINS {
            let Some(v) = domain_slot(kd).and_then(|name| self.meta.get(name)) else {
                continue;
            };
            match decode_dkek(v) {
                Some(Dkek::Absent) | None => return Err(corrupt("key domain")),
                Some(dkek) => state.domains.insert(kd, dkek),
            };
        }
        for (fid, v) in &self.files {
            state
                .files
                .insert(*fid, decode_file(v).ok_or_else(|| corrupt("file"))?);
        }
        for (id, v) in &self.keys {
            state
                .keys
                .insert(*id, decode_key(v).ok_or_else(|| corrupt("key"))?);
        }
        Ok(state)
    }
}

fn encode_identity(identity: &Identity) -> Vec<u8> {
    let mut v = tlv::encode(0x01, identity.device_chr.as_bytes());
    tlv::write(&mut v, 0x02, &identity.root_certificate);
    v
}

fn decode_identity(v: &[u8]) -> Option<Identity> {
    Some(Identity {
        device_chr: String::from_utf8(tlv::find(v, 0x01)?.to_vec()).ok()?,
        root_certificate: tlv::find(v, 0x02)?.to_vec(),
    })
}

pub(crate) fn encode_pka(pka: &Pka) -> Vec<u8> {
    let mut v = vec![1, pka.total, pka.required];
    for (slot, key) in &pka.keys {
        let mut entry = tlv::encode(0x01, &[*slot]);
        tlv::write(&mut entry, 0x02, &key.chr);
        tlv::write(&mut entry, 0x03, &key.public_key);
        tlv::write(&mut v, 0x30, &entry);
    }
    v
}

fn decode_pka(v: &[u8]) -> Option<Pka> {
    let [1, total, required, entries @ ..] = v else {
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

fn encode_config(config: Config) -> Vec<u8> {
    let [hi, lo] = config.options.to_be_bytes();
    match config.key_domains {
        0 | 1 => vec![1, hi, lo],
        slots => vec![2, hi, lo, slots],
    }
}

fn decode_config(v: &[u8]) -> Option<Config> {
    let options = |hi: u8, lo: u8| u16::from_be_bytes([hi, lo]);
    match v {
        [1, hi, lo] => Some(Config::with_options(options(*hi, *lo))),
        [2, hi, lo, slots @ 2..=MAX_KEY_DOMAINS] => Some(Config {
            options: options(*hi, *lo),
            key_domains: *slots,
        }),
        _ => None,
    }
}

fn decode_seed(v: &[u8]) -> Option<(u64, u64)> {
    let (seed, boots) = v.split_at_checked(8)?;
    Some((
        u64::from_be_bytes(seed.try_into().ok()?),
        u64::from_be_bytes(boots.try_into().ok()?),
    ))
}

fn encode_file(entry: &FileEntry) -> Vec<u8> {
    let mut v = entry.seq.to_be_bytes().to_vec();
    v.extend_from_slice(&entry.data);
    v
}

fn decode_file(v: &[u8]) -> Option<FileEntry> {
    let (seq, data) = v.split_at_checked(8)?;
    Some(FileEntry {
        seq: u64::from_be_bytes(seq.try_into().ok()?),
        data: data.to_vec(),
    })
}

/// Flag of a version 2 PIN record: a transport PIN.
const PIN_TRANSPORT: u8 = 0x01;

/// A PIN: version, max, left, length, (flags,) salt, digest. The clear PIN is never stored.
/// A PIN without flags keeps version 1.
pub(crate) fn encode_pin(pin: &PinRecord) -> Vec<u8> {
    let mut out = match pin.must_change {
        false => vec![1, pin.max_tries, pin.tries_left, pin.len],
        true => vec![2, pin.max_tries, pin.tries_left, pin.len, PIN_TRANSPORT],
    };
    out.extend_from_slice(&pin.salt);
    out.extend_from_slice(&pin.digest);
    out
}

pub(crate) fn decode_pin(bytes: &[u8]) -> Option<PinRecord> {
    let (max_tries, tries_left, len, must_change, rest) = match bytes {
        [1, max, left, len, rest @ ..] => (*max, *left, *len, false, rest),
        [2, max, left, len, PIN_TRANSPORT, rest @ ..] => (*max, *left, *len, true, rest),
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

/// The DKEK state; the DKEK itself is stored as the card stores its keys.
pub(crate) fn encode_dkek(dkek: &Dkek) -> Zeroizing<Vec<u8>> {
    let (kind, total, imported, value) = match dkek {
        Dkek::Absent => return Zeroizing::new(vec![1, 0]),
        Dkek::Pending {
            total,
            imported,
            value,
        } => (1, *total, *imported, value),
        Dkek::Ready { total, value } => (2, *total, 0, value),
        // Version 2: an XKEK domain, agreed (value) or not (zeros), and its UID.
        Dkek::Exchange { uid, value } => {
            let mut out = Zeroizing::new(vec![2, 3, u8::from(value.is_some())]);
            out.extend_from_slice(value.as_ref().map_or(&[0; 32], |v| &**v));
            out.extend_from_slice(uid);
            return out;
        }
    };
    let mut out = Zeroizing::new(vec![1, kind, total, imported]);
    out.extend_from_slice(&value[..]);
    out
}

pub(crate) fn decode_dkek(bytes: &[u8]) -> Option<Dkek> {
    match bytes {
        [1, 0] => Some(Dkek::Absent),
        [2, 3, agreed @ (0 | 1), rest @ ..] if rest.len() > 32 => {
            let (value, uid) = rest.split_at(32);
            let value = Zeroizing::new(<[u8; 32]>::try_from(value).ok()?);
            Some(Dkek::Exchange {
                uid: uid.to_vec(),
                value: (*agreed == 1).then_some(value),
            })
        }
        [1, kind @ (1 | 2), total, imported, value @ ..] => {
            let value = Zeroizing::new(<[u8; 32]>::try_from(value).ok()?);
            Some(if *kind == 1 {
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

/// Stable ids of the curves in the stored format.
const CURVE_IDS: [(Curve, u8); 12] = [
    (Curve::BrainpoolP256r1, 1),
    (Curve::Secp192r1, 2),
    (Curve::Secp256r1, 3),
    (Curve::Secp384r1, 4),
    (Curve::Secp521r1, 5),
    (Curve::Secp192k1, 6),
    (Curve::Secp256k1, 7),
    (Curve::BrainpoolP192r1, 8),
    (Curve::BrainpoolP224r1, 9),
    (Curve::BrainpoolP320r1, 10),
    (Curve::BrainpoolP384r1, 11),
    (Curve::BrainpoolP512r1, 12),
];

fn curve_id(curve: Curve) -> u8 {
    CURVE_IDS
        .iter()
        .find(|(c, _)| *c == curve)
        .map_or(0, |(_, id)| *id)
}

fn curve_from_id(id: u8) -> Option<Curve> {
    CURVE_IDS.iter().find(|(_, i)| *i == id).map(|(c, _)| *c)
}

/// Tags of a key record.
mod tag {
    pub const KIND: u16 = 0x01;
    pub const RSA_N: u16 = 0x81;
    pub const RSA_E: u16 = 0x82;
    pub const RSA_D: u16 = 0x83;
    pub const RSA_P: u16 = 0x84;
    pub const RSA_Q: u16 = 0x85;
    pub const EC_CURVE: u16 = 0x86;
    pub const EC_SCALAR: u16 = 0x87;
    pub const AES_KEY: u16 = 0x88;
    pub const USES_LEFT: u16 = 0x90;
    pub const ALGORITHMS: u16 = 0x91;
    pub const DOMAIN: u16 = 0x92;
    pub const WRAPPING_KEY: u16 = 0x93;
}
const KIND_RSA: u8 = 5;
const KIND_EC: u8 = 12;
const KIND_AES: u8 = 15;
const KEY_FORMAT: u8 = 1;

/// A key record (TLV), wiped on drop.
pub(crate) fn encode_key(key: &KeyRecord) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![KEY_FORMAT]);
    match &key.material {
        KeyMaterial::Rsa(rsa) => {
            tlv::write(&mut out, tag::KIND, &[KIND_RSA]);
            let (n, e) = rsa_key::public_parts(rsa);
            tlv::write(&mut out, tag::RSA_N, &n);
            tlv::write(&mut out, tag::RSA_E, &e);
            for (t, secret) in [tag::RSA_D, tag::RSA_P, tag::RSA_Q]
                .into_iter()
                .zip(rsa_key::secret_parts(rsa))
            {
                tlv::write(&mut out, t, &secret);
            }
        }
        KeyMaterial::Ec { curve, scalar } => {
            tlv::write(&mut out, tag::KIND, &[KIND_EC]);
            tlv::write(&mut out, tag::EC_CURVE, &[curve_id(*curve)]);
            tlv::write(&mut out, tag::EC_SCALAR, scalar);
        }
        KeyMaterial::Aes(key) => {
            tlv::write(&mut out, tag::KIND, &[KIND_AES]);
            tlv::write(&mut out, tag::AES_KEY, key);
        }
    }
    if let Some(n) = key.policy.uses_left {
        tlv::write(&mut out, tag::USES_LEFT, &n.to_be_bytes());
    }
    if let Some(list) = &key.policy.algorithms {
        tlv::write(&mut out, tag::ALGORITHMS, list);
    }
    if let Some(domain) = key.policy.domain {
        tlv::write(&mut out, tag::DOMAIN, &[domain]);
    }
    if let Some(id) = key.policy.wrapping_key {
        tlv::write(&mut out, tag::WRAPPING_KEY, &[id]);
    }
    out
}

pub(crate) fn decode_key(bytes: &[u8]) -> Option<KeyRecord> {
    let (&format, body) = bytes.split_first()?;
    if format != KEY_FORMAT {
        return None;
    }
    let field = |t| tlv::find(body, t);
    let material = match field(tag::KIND)? {
        [KIND_RSA] => {
            let primes = [field(tag::RSA_P)?, field(tag::RSA_Q)?];
            let key = rsa_key::from_components(
                field(tag::RSA_N)?,
                field(tag::RSA_E)?,
                field(tag::RSA_D)?,
                &primes,
            )?;
            KeyMaterial::Rsa(Box::new(key))
        }
        [KIND_EC] => {
            let curve = curve_from_id(*field(tag::EC_CURVE)?.first()?)?;
            let scalar = field(tag::EC_SCALAR)?;
            curve.public_point(scalar).ok()?;
            KeyMaterial::Ec {
                curve,
                scalar: Zeroizing::new(scalar.to_vec()),
            }
        }
        [KIND_AES] => {
            let key = field(tag::AES_KEY)?;
            if !crate::crypto::aes::KEY_LENGTHS.contains(&key.len()) {
                return None;
            }
            KeyMaterial::Aes(Zeroizing::new(key.to_vec()))
        }
        _ => return None,
    };
    let byte = |t| match field(t) {
        Some([b]) => Ok(Some(*b)),
        Some(_) => Err(()),
        None => Ok(None),
    };
    let policy = KeyPolicy {
        uses_left: match field(tag::USES_LEFT) {
            Some(v) => Some(u32::from_be_bytes(v.try_into().ok()?)),
            None => None,
        },
        algorithms: field(tag::ALGORITHMS).map(<[u8]>::to_vec),
        domain: byte(tag::DOMAIN).ok()?,
        wrapping_key: byte(tag::WRAPPING_KEY).ok()?,
    };
    Some(KeyRecord { material, policy })
}

/// Bytes a key takes in the store (what the storage limit counts).
pub(crate) fn stored_len(key: &KeyRecord) -> usize {
    encode_key(key).len()
}

#[cfg(test)]
mod tests;
