//! The sealed tables (table layout 2, [`super::version::TABLES`]): every record kept as
//! `payload ‖ check`, and the census (the number of records and the XOR of their checks) that
//! finds a record lost or added. [`Open`] writes through a transaction's three tables, [`Stored`] reads and verifies
//! them; [`super::database`] owns the file and the transactions.

use redb::{ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

use super::record::{self, Records, Slot, Tables};
use super::version::TABLES;
use super::StoreError;

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FILES: TableDefinition<u16, &[u8]> = TableDefinition::new("files");
const KEYS: TableDefinition<u8, &[u8]> = TableDefinition::new("keys");

/// Meta keys of the storage layer itself, kept unsealed.
pub(super) const STORAGE: &str = "storage";
const CENSUS: &str = "census";
const CHECK_LEN: usize = 16;

/// An error of the database library: the operating system's I/O errors stay I/O errors (a
/// full disk, a permission), everything else means the file is not what redb wrote (a read
/// past its end or of nonsense included).
pub(super) fn io<E: Into<redb::Error>>(e: E) -> StoreError {
    use std::io::ErrorKind::{InvalidData, UnexpectedEof};
    match e.into() {
        redb::Error::Io(e) if !matches!(e.kind(), InvalidData | UnexpectedEof) => {
            StoreError::Io(e.to_string())
        }
        redb::Error::PreviousIo => StoreError::Io("a previous write failed".into()),
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// The check of one record: table, key and payload.
fn check(slot: &Slot, payload: &[u8]) -> [u8; CHECK_LEN] {
    let mut h = Sha256::new();
    h.update(b"sc-hsm-emulator record v2");
    match slot {
        Slot::Meta(name) => {
            h.update([0x01, name.len() as u8]);
            h.update(name.as_bytes());
        }
        Slot::File(fid) => {
            h.update([0x02, 2]);
            h.update(fid.to_be_bytes());
        }
        Slot::Key(id) => h.update([0x03, 1, *id]),
    }
    h.update(payload);
    let mut out = [0; CHECK_LEN];
    out.copy_from_slice(&h.finalize()[..CHECK_LEN]);
    out
}

/// What a record is called in a message.
fn name(slot: &Slot) -> String {
    match slot {
        Slot::Meta(name) => format!("the {name} record"),
        Slot::File(fid) => format!("the record of file {fid:04X}"),
        Slot::Key(id) => format!("the record of key CC{id:02X}"),
    }
}

/// The number of records and the XOR of their checks.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Census {
    count: u32,
    xor: [u8; CHECK_LEN],
}

impl Census {
    fn toggle(&mut self, check: &[u8], added: bool) {
        self.xor.iter_mut().zip(check).for_each(|(x, c)| *x ^= c);
        self.count = if added {
            self.count.wrapping_add(1)
        } else {
            self.count.wrapping_sub(1)
        };
    }

    fn encode(&self) -> Vec<u8> {
        [&self.count.to_be_bytes()[..], &self.xor].concat()
    }

    fn decode(bytes: &[u8]) -> Option<Census> {
        let (count, xor) = bytes.split_first_chunk::<4>()?;
        Some(Census {
            count: u32::from_be_bytes(*count),
            xor: xor.try_into().ok()?,
        })
    }
}

/// The three tables of one write transaction, and the census they keep.
pub(super) struct Open<'txn> {
    meta: redb::Table<'txn, &'static str, &'static [u8]>,
    files: redb::Table<'txn, u16, &'static [u8]>,
    keys: redb::Table<'txn, u8, &'static [u8]>,
    pub(super) census: Census,
}

impl<'txn> Open<'txn> {
    pub(super) fn tables(txn: &'txn redb::WriteTransaction) -> Result<Open<'txn>, StoreError> {
        let meta = txn.open_table(META).map_err(io)?;
        let census = match meta.get(CENSUS).map_err(io)? {
            Some(v) => Census::decode(v.value())
                .ok_or_else(|| StoreError::Corrupt("the census record is damaged".into()))?,
            None => Census::default(),
        };
        Ok(Open {
            meta,
            files: txn.open_table(FILES).map_err(io)?,
            keys: txn.open_table(KEYS).map_err(io)?,
            census,
        })
    }

    /// The stored value now under `slot`, if any.
    fn old(&self, slot: &Slot) -> Result<Option<Vec<u8>>, StoreError> {
        let old = match slot {
            Slot::Meta(name) => self
                .meta
                .get(*name)
                .map_err(io)?
                .map(|v| v.value().to_vec()),
            Slot::File(fid) => self
                .files
                .get(*fid)
                .map_err(io)?
                .map(|v| v.value().to_vec()),
            Slot::Key(id) => self.keys.get(*id).map_err(io)?.map(|v| v.value().to_vec()),
        };
        Ok(old)
    }

    /// Writes the census and the format version.
    pub(super) fn finish(mut self) -> Result<(), StoreError> {
        let census = self.census.encode();
        self.meta.insert(CENSUS, census.as_slice()).map_err(io)?;
        self.meta.insert(STORAGE, [TABLES].as_slice()).map_err(io)?;
        Ok(())
    }
}

/// Sets or removes `key` in one redb table.
fn set_in<K: redb::Key + 'static>(
    table: &mut redb::Table<'_, K, &'static [u8]>,
    key: K::SelfType<'_>,
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    match value {
        Some(v) => table.insert(key, v).map(drop),
        None => table.remove(key).map(drop),
    }
    .map_err(io)
}

impl Open<'_> {
    /// Stores `payload` sealed under `slot`, counting it in the census (whatever was there
    /// before is not counted out: for converting a file).
    pub(super) fn seal(&mut self, slot: Slot, payload: Option<&[u8]>) -> Result<(), StoreError> {
        let sealed = payload.map(|payload| {
            let check = check(&slot, payload);
            self.census.toggle(&check, true);
            [payload, &check].concat()
        });
        let value = sealed.as_deref();
        match slot {
            Slot::Meta(name) => set_in(&mut self.meta, name, value),
            Slot::File(fid) => set_in(&mut self.files, fid, value),
            Slot::Key(id) => set_in(&mut self.keys, id, value),
        }
    }
}

impl Tables for Open<'_> {
    fn set(&mut self, slot: Slot, value: Option<&[u8]>) -> Result<(), StoreError> {
        if let Some(old) = self.old(&slot)? {
            let old_check = old.len().checked_sub(CHECK_LEN).map(|at| &old[at..]);
            self.census
                .toggle(old_check.unwrap_or(&[0; CHECK_LEN]), false);
        }
        self.seal(slot, value)
    }
}

/// Every entry of one table (none if the table does not exist yet), its keys made owned by
/// `owned`.
fn read_table<K: redb::Key + 'static, T>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<K, &'static [u8]>,
    owned: impl Fn(K::SelfType<'_>) -> T,
) -> Result<Vec<(T, Vec<u8>)>, StoreError> {
    let table = match txn.open_table(table) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut entries = Vec::new();
    for item in table.iter().map_err(io)? {
        let (k, v) = item.map_err(io)?;
        entries.push((owned(k.value()), v.value().to_vec()));
    }
    Ok(entries)
}

/// Every stored value of a database, as the tables hold them.
#[derive(Default)]
pub(super) struct Stored {
    meta: Vec<(String, Vec<u8>)>,
    files: Vec<(u16, Vec<u8>)>,
    keys: Vec<(u8, Vec<u8>)>,
}

impl Stored {
    pub(super) fn read(txn: &redb::ReadTransaction) -> Result<Stored, StoreError> {
        Ok(Stored {
            meta: read_table(txn, META, |name| name.to_string())?,
            files: read_table(txn, FILES, |fid| fid)?,
            keys: read_table(txn, KEYS, |id| id)?,
        })
    }

    /// The records, verified: every check and the census (table layout 2), or as they are
    /// (layout 1, which has neither).
    pub(super) fn records(self) -> Result<Records, StoreError> {
        let version = self
            .meta
            .iter()
            .find(|(k, _)| k == STORAGE)
            .map(|(_, v)| v.clone());
        let sealed = match version.as_deref() {
            None => false,
            Some([TABLES]) => true,
            Some([found]) if *found > TABLES => {
                return Err(StoreError::Newer {
                    what: "stored format".into(),
                    found: *found,
                    newest: TABLES,
                })
            }
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "stored format {other:?} is not one this version reads (1 or {TABLES})"
                )))
            }
        };
        let mut records = Records::default();
        let mut census = Census::default();
        let mut expected = None;
        let mut open = |slot: Slot, value: Vec<u8>| -> Result<Vec<u8>, StoreError> {
            if !sealed {
                return Ok(value);
            }
            let damaged =
                || StoreError::Corrupt(format!("{} fails its integrity check", name(&slot)));
            let at = value.len().checked_sub(CHECK_LEN).ok_or_else(damaged)?;
            let (payload, stored_check) = value.split_at(at);
            if check(&slot, payload) != stored_check {
                return Err(damaged());
            }
            census.toggle(stored_check, true);
            Ok(payload.to_vec())
        };
        for (key, value) in self.meta {
            match key.as_str() {
                STORAGE => {}
                CENSUS => {
                    expected = Some(Census::decode(&value).ok_or_else(|| {
                        StoreError::Corrupt("the census record is damaged".into())
                    })?)
                }
                known => {
                    let slot = Slot::Meta(record::meta_name(known).ok_or_else(|| {
                        StoreError::Corrupt(format!("an unknown record {known:?} is stored"))
                    })?);
                    let payload = open(slot, value)?;
                    records.meta.insert(key, payload);
                }
            }
        }
        for (fid, value) in self.files {
            let payload = open(Slot::File(fid), value)?;
            records.files.insert(fid, payload);
        }
        for (id, value) in self.keys {
            let payload = open(Slot::Key(id), value)?;
            records.keys.insert(id, payload);
        }
        if sealed {
            let expected = expected
                .ok_or_else(|| StoreError::Corrupt("the census record is missing".into()))?;
            if expected != census {
                return Err(StoreError::Corrupt(format!(
                    "records are missing or were added: the census counts {}, the file holds {}",
                    expected.count, census.count
                )));
            }
        }
        Ok(records)
    }
}
