//! The portable snapshot of `export`/`import`: every record of a card in one file,
//!
//! ```text
//! "SC-HSM-EMULATOR-SNAPSHOT\n" ‖ version 01
//!   ‖ A0 { 30 { 0C name, 04 value } ... }   meta records
//!   ‖ A1 { 30 { 02 FID, 04 value } ... }    file records
//!   ‖ A2 { 30 { 02 key id, 04 value } ... } key records
//!   ‖ SHA-256 of everything before
//! ```
//!
//! The values are the records of [`super::record`], so a snapshot holds the card's keys as
//! the database does.

use sha2::Digest;
use zeroize::Zeroizing;

use super::record::{self, Records, Slot, Tables};
use super::version::SNAPSHOT as VERSION;
use super::StoreError;
use crate::apdu::tlv;

/// First line of a snapshot file.
const MAGIC: &[u8] = b"SC-HSM-EMULATOR-SNAPSHOT\n";

/// Appends one section: a `30 { key TLV, 04 value }` entry per record.
fn section<'a>(out: &mut Vec<u8>, tag: u16, entries: impl Iterator<Item = (Vec<u8>, &'a [u8])>) {
    let mut content = Zeroizing::new(Vec::new());
    for (key, value) in entries {
        let mut entry = Zeroizing::new(key);
        tlv::write(&mut entry, 0x04, value);
        tlv::write(&mut content, 0x30, &entry);
    }
    tlv::write(out, tag, &content);
}

/// The snapshot of `records`.
pub(crate) fn encode(records: &Records) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(MAGIC.to_vec());
    out.push(VERSION);
    let meta = records
        .meta
        .iter()
        .map(|(k, v)| (tlv::encode(0x0C, k.as_bytes()), v.as_slice()));
    section(&mut out, 0xA0, meta);
    let files = records
        .files
        .iter()
        .map(|(fid, v)| (tlv::encode(0x02, &fid.to_be_bytes()), v.as_slice()));
    section(&mut out, 0xA1, files);
    let keys = records
        .keys
        .iter()
        .map(|(id, v)| (tlv::encode(0x02, &[*id]), v.as_slice()));
    section(&mut out, 0xA2, keys);
    let digest = sha2::Sha256::digest(&out[..]);
    out.extend_from_slice(&digest);
    out
}

/// The records of a snapshot, refused unless it is whole and makes a whole card.
pub(crate) fn decode(bytes: &[u8]) -> Result<Records, StoreError> {
    let bad = |why: &str| StoreError::Refused(format!("the snapshot is damaged: {why}"));
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("not a card snapshot"))?;
    let (&version, rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
    if version > VERSION {
        return Err(StoreError::Newer {
            what: "snapshot format".into(),
            found: version,
            newest: VERSION,
        });
    }
    if version != VERSION {
        return Err(bad(&format!("version {version} is not {VERSION}")));
    }
    let (body, digest) = rest
        .split_at_checked(rest.len().saturating_sub(32))
        .ok_or_else(|| bad("truncated"))?;
    if digest.len() != 32 || sha2::Sha256::digest(&bytes[..bytes.len() - 32])[..] != *digest {
        return Err(bad("checksum mismatch"));
    }
    let sections = tlv::parse_all(body).ok_or_else(|| bad("malformed"))?;
    let mut records = Records::default();
    for section in sections {
        for entry in tlv::parse_all(section.value).ok_or_else(|| bad("malformed"))? {
            let fields = tlv::parse_all(entry.value).ok_or_else(|| bad("malformed"))?;
            let (Some(k), Some(v)) = (fields.first(), fields.get(1)) else {
                return Err(bad("malformed entry"));
            };
            let value = v.value.to_vec();
            match (section.tag, k.value) {
                (0xA0, name) => {
                    let name = std::str::from_utf8(name).map_err(|_| bad("malformed name"))?;
                    records.meta.insert(name.to_string(), value);
                }
                (0xA1, [hi, lo]) => {
                    records.files.insert(u16::from_be_bytes([*hi, *lo]), value);
                }
                (0xA2, [id]) => {
                    records.keys.insert(*id, value);
                }
                _ => return Err(bad("unknown section")),
            }
        }
    }
    // It must make a whole card.
    records.to_state().map_err(|e| match e {
        newer @ StoreError::Newer { .. } => newer,
        other => bad(&other.to_string()),
    })?;
    Ok(records)
}

/// Writes the card of `new` in place of `old` into `tables` (one transaction): every record
/// `new` lacks is removed, every record of `new` set (`snapshot load`).
pub(crate) fn overwrite(
    old: &Records,
    new: &Records,
    tables: &mut impl Tables,
) -> Result<(), StoreError> {
    let meta = |name: &str| {
        record::meta_name(name)
            .map(Slot::Meta)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown record {name:?}")))
    };
    for name in old.meta.keys().filter(|n| !new.meta.contains_key(*n)) {
        tables.set(meta(name)?, None)?;
    }
    for fid in old.files.keys().filter(|f| !new.files.contains_key(f)) {
        tables.set(Slot::File(*fid), None)?;
    }
    for id in old.keys.keys().filter(|k| !new.keys.contains_key(k)) {
        tables.set(Slot::Key(*id), None)?;
    }
    for (name, value) in &new.meta {
        tables.set(meta(name)?, Some(value))?;
    }
    for (fid, value) in &new.files {
        tables.set(Slot::File(*fid), Some(value))?;
    }
    for (id, value) in &new.keys {
        tables.set(Slot::Key(*id), Some(value))?;
    }
    Ok(())
}
