//! [`RedbStore`]: one card in one redb database file, one durable transaction per command.
//!
//! Stored format 2 (format 1 files are converted when opened for writing): every record of
//! [`super::record`] is kept as `payload ‖ check`, the check being the first 16 bytes of
//! SHA-256 over the table, the key and the payload, so a damaged value or key is found; the
//! meta record `census` holds the number of records and the XOR of all their checks, so a
//! record lost or added is found too; `storage` holds the format version. Every load verifies
//! all of it, and a damaged file is refused with what is damaged, never read as another card.
//!
//! A failed write (a full disk) closes the database: the next commit opens it again, so the
//! card works again as soon as the cause is gone. A panic inside the database library is
//! contained and reported as a damaged file.

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

use super::record::{self, Records, Slot, Tables};
use super::{snapshot, Store, StoreError};
use crate::model::{CardState, Change};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FILES: TableDefinition<u16, &[u8]> = TableDefinition::new("files");
const KEYS: TableDefinition<u8, &[u8]> = TableDefinition::new("keys");

/// The version of the stored format this module writes (meta `storage`).
pub(crate) const STORAGE_VERSION: u8 = 2;
/// Meta keys of the storage layer itself, kept unsealed.
const STORAGE: &str = "storage";
const CENSUS: &str = "census";
const CHECK_LEN: usize = 16;

/// One card in one redb database file.
pub struct RedbStore {
    path: PathBuf,
    /// `None` after a failed write, until the next commit opens the file again.
    db: Option<redb::Database>,
}

/// An error of the database library: the operating system's I/O errors stay I/O errors (a
/// full disk, a permission), everything else means the file is not what redb wrote (a read
/// past its end or of nonsense included).
fn io<E: Into<redb::Error>>(e: E) -> StoreError {
    use std::io::ErrorKind::{InvalidData, UnexpectedEof};
    match e.into() {
        redb::Error::Io(e) if !matches!(e.kind(), InvalidData | UnexpectedEof) => {
            StoreError::Io(e.to_string())
        }
        redb::Error::PreviousIo => StoreError::Io("a previous write failed".into()),
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// Runs a call into the database library, turning a panic into a damaged-file error.
fn contained<T>(what: &str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StoreError::Corrupt(format!(
            "the database library failed while {what} (the file is not a sound redb database)"
        )))
    })
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
struct Census {
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
struct Open<'txn> {
    meta: redb::Table<'txn, &'static str, &'static [u8]>,
    files: redb::Table<'txn, u16, &'static [u8]>,
    keys: redb::Table<'txn, u8, &'static [u8]>,
    census: Census,
}

impl<'txn> Open<'txn> {
    fn tables(txn: &'txn redb::WriteTransaction) -> Result<Open<'txn>, StoreError> {
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
    fn finish(mut self) -> Result<(), StoreError> {
        let census = self.census.encode();
        self.meta.insert(CENSUS, census.as_slice()).map_err(io)?;
        self.meta
            .insert(STORAGE, [STORAGE_VERSION].as_slice())
            .map_err(io)?;
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
    fn seal(&mut self, slot: Slot, payload: Option<&[u8]>) -> Result<(), StoreError> {
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
struct Stored {
    meta: Vec<(String, Vec<u8>)>,
    files: Vec<(u16, Vec<u8>)>,
    keys: Vec<(u8, Vec<u8>)>,
}

impl Stored {
    fn read(txn: &redb::ReadTransaction) -> Result<Stored, StoreError> {
        Ok(Stored {
            meta: read_table(txn, META, |name| name.to_string())?,
            files: read_table(txn, FILES, |fid| fid)?,
            keys: read_table(txn, KEYS, |id| id)?,
        })
    }

    /// The records, verified: every check and the census (format 2), or as they are (format
    /// 1, which has neither).
    fn records(self) -> Result<Records, StoreError> {
        let version = self
            .meta
            .iter()
            .find(|(k, _)| k == STORAGE)
            .map(|(_, v)| v.clone());
        let sealed = match version.as_deref() {
            None => false,
            Some([STORAGE_VERSION]) => true,
            Some(other) => {
                return Err(StoreError::Corrupt(format!(
                    "stored format {other:?} is not one this version reads (1 or {STORAGE_VERSION})"
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

impl RedbStore {
    /// Opens the card database at `path` for reading and writing, creating it (mode 0600,
    /// parent directories 0700) if it does not exist; a file of stored format 1 is converted.
    /// Fails with [`StoreError::Locked`] if another process has it open.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut store = RedbStore {
            path: path.to_path_buf(),
            db: None,
        };
        store.database()?;
        store.convert()?;
        Ok(store)
    }

    /// Opens `path` only to read it: nothing is written or created, a file that needs redb's
    /// recovery is read from a private copy. [`Store::commit`] on such a store is refused.
    pub fn read(path: &Path) -> Result<CardState, StoreError> {
        let records = Self::read_records(path)?;
        records.to_state()
    }

    /// A portable, versioned, checksummed copy of the card at `path` (`export`), read without
    /// writing. It holds the card's keys as the database does.
    pub fn snapshot_of(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let records = Self::read_records(path)?;
        records.to_state()?;
        Ok(snapshot::encode(&records))
    }

    fn read_records(path: &Path) -> Result<Records, StoreError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| StoreError::Io(format!("cannot read {}: {e}", path.display())))?;
        if meta.len() == 0 {
            return Err(StoreError::Refused(format!(
                "{} is empty: it holds no card",
                path.display()
            )));
        }
        let locked_or = |e: redb::DatabaseError| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.to_path_buf()),
            redb::DatabaseError::RepairAborted => StoreError::Io("needs recovery".into()),
            other => StoreError::Corrupt(format!("{}: {other}", path.display())),
        };
        let opened = contained("opening the file", || {
            redb::Builder::new().open_read_only(path).map_err(locked_or)
        });
        match opened {
            Ok(db) => contained("reading the records", || {
                let txn = db.begin_read().map_err(io)?;
                Stored::read(&txn)?.records()
            }),
            // A file left by a killed process needs redb's recovery, which writes: read a
            // private copy instead, never the file itself.
            Err(StoreError::Io(_)) | Err(StoreError::Corrupt(_)) => Self::read_copy(path),
            Err(e) => Err(e),
        }
    }

    fn read_copy(path: &Path) -> Result<Records, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix("sc-hsm-read-")
            .tempdir()
            .map_err(|e| StoreError::Io(format!("cannot make a private copy: {e}")))?;
        let copy = dir.path().join("card.redb");
        std::fs::copy(path, &copy)
            .map_err(|e| StoreError::Io(format!("cannot read {}: {e}", path.display())))?;
        // Errors name the file, not its copy.
        let copy_name = copy.display().to_string();
        let original = path.display().to_string();
        let rename = |e: StoreError| match e {
            StoreError::Corrupt(why) => StoreError::Corrupt(why.replace(&copy_name, &original)),
            StoreError::Io(why) => StoreError::Io(why.replace(&copy_name, &original)),
            other => other,
        };
        let store = RedbStore::open_existing(&copy).map_err(rename)?;
        store.records().map_err(rename)
    }

    /// Opens an existing file for reading and writing (after a failed write, or a copy).
    fn open_existing(path: &Path) -> Result<RedbStore, StoreError> {
        let mut store = RedbStore {
            path: path.to_path_buf(),
            db: None,
        };
        store.database()?;
        Ok(store)
    }

    /// The open database, opened (again) if a failed write closed it.
    fn database(&mut self) -> Result<&redb::Database, StoreError> {
        if self.db.is_none() {
            self.db = Some(self.open_file()?);
        }
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::Io("the database is not open".into()))
    }

    fn open_file(&self) -> Result<redb::Database, StoreError> {
        let path = &self.path;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
        // A card is made only in a private file, whatever the mode of an empty one was.
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
        if empty {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Io(format!("cannot protect {}: {e}", path.display())))?;
        }
        let locked_or_io = |e: redb::DatabaseError| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.to_path_buf()),
            redb::DatabaseError::Storage(redb::StorageError::Io(e))
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                StoreError::Io(format!("cannot open {}: {e}", path.display()))
            }
            other => StoreError::Corrupt(format!("{}: {other}", path.display())),
        };
        contained("opening the file", || {
            let backend = redb::backends::FileBackend::new(file).map_err(locked_or_io)?;
            redb::Database::builder()
                .create_with_backend(backend)
                .map_err(locked_or_io)
        })
    }

    fn records(&self) -> Result<Records, StoreError> {
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| StoreError::Io("the database is not open".into()))?;
        contained("reading the records", || {
            let txn = db.begin_read().map_err(io)?;
            Stored::read(&txn)?.records()
        })
    }

    /// Rewrites a file of stored format 1 (no checks, no census) in format 2, in one
    /// transaction; a new file gets the format's records.
    fn convert(&mut self) -> Result<(), StoreError> {
        let records = self.records()?;
        let db = self.database()?;
        contained("converting the file", || {
            let txn = db.begin_write().map_err(io)?;
            let current = {
                let meta = txn.open_table(META).map_err(io)?;
                let version = meta.get(STORAGE).map_err(io)?.map(|v| v.value().to_vec());
                version
            };
            if current.as_deref() == Some(&[STORAGE_VERSION]) {
                return Ok(());
            }
            {
                let mut tables = Open::tables(&txn)?;
                tables.census = Census::default();
                for (name, v) in &records.meta {
                    let name = record::meta_name(name)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown record {name:?}")))?;
                    tables.seal(Slot::Meta(name), Some(v))?;
                }
                for (fid, v) in &records.files {
                    tables.seal(Slot::File(*fid), Some(v))?;
                }
                for (id, v) in &records.keys {
                    tables.seal(Slot::Key(*id), Some(v))?;
                }
                tables.finish()?;
            }
            txn.commit().map_err(io)
        })
    }

    /// A portable, versioned, checksummed copy of the whole card (`export`). It holds the
    /// card's keys as the database does: keep it as private as the database file.
    pub fn snapshot(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let records = self.records()?;
        records.to_state()?;
        Ok(snapshot::encode(&records))
    }

    /// Writes the card of `snapshot` into this (empty) database in one transaction (`import`).
    /// A damaged snapshot is refused before anything is written.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        let records = snapshot::decode(snapshot)?;
        if records_hold_a_card(&self.records()?) {
            return Err(StoreError::Refused(
                "the target database already holds a card".into(),
            ));
        }
        self.transaction(|tables| {
            for (name, v) in &records.meta {
                let name = record::meta_name(name)
                    .ok_or_else(|| StoreError::Refused(format!("unknown record {name:?}")))?;
                tables.set(Slot::Meta(name), Some(v))?;
            }
            for (fid, v) in &records.files {
                tables.set(Slot::File(*fid), Some(v))?;
            }
            for (id, v) in &records.keys {
                tables.set(Slot::Key(*id), Some(v))?;
            }
            Ok(())
        })
    }

    /// Runs `write` in one durable transaction. A failure closes the database (redb refuses
    /// every later write after an I/O error); the next transaction opens it again.
    fn transaction(
        &mut self,
        write: impl FnOnce(&mut Open<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let db = self.database()?;
        let result = contained("writing", || {
            let txn = db.begin_write().map_err(io)?;
            {
                let mut tables = Open::tables(&txn)?;
                write(&mut tables)?;
                tables.finish()?;
            }
            txn.commit().map_err(io)
        });
        if result.is_err() {
            self.db = None;
        }
        result
    }
}

/// Whether `records` hold a card (more than the format's own records).
fn records_hold_a_card(records: &Records) -> bool {
    records.meta.keys().any(|k| k != "format") || !records.files.is_empty()
}

impl Store for RedbStore {
    fn load(&mut self) -> Result<CardState, StoreError> {
        self.database()?;
        self.records()?.to_state()
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        self.transaction(|tables| record::write(changes, tables))
    }
}
