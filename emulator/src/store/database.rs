//! [`RedbStore`]: one card in one redb database file, one durable transaction per command.
//!
//! Table layout 2 ([`super::version::TABLES`]; layout 1 files are converted when opened for
//! writing): every record of [`super::record`] is kept as `payload ‖ check`, the check being the first 16 bytes of
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

use redb::{ReadableDatabase, ReadableTable};

use super::record::{self, Records, Slot};
use super::sealed::{io, Census, Open, Stored, META, STORAGE};
use super::version::TABLES;
use super::{snapshot, Store, StoreError};
use crate::model::{CardState, Change};

/// One card in one redb database file.
pub struct RedbStore {
    path: PathBuf,
    /// `None` after a failed write, until the next commit opens the file again.
    db: Option<redb::Database>,
}

/// Runs a call into the database library, turning a panic into a damaged-file error.
fn contained<T>(what: &str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StoreError::Corrupt(format!(
            "the database library failed while {what} (the file is not a sound redb database)"
        )))
    })
}

/// The first bytes of every redb file.
const REDB_MAGIC: &[u8] = b"redb\x1a\x0a\xa9\x0d\x0a";

/// Refuses a path that is plainly no card database (a directory, a file that does not start
/// as a redb file) before redb gets it: such a file is not damaged, it is something else. A
/// file whose first bytes differ from redb's in one or two places is a card database with a
/// damaged header, and redb says so.
fn is_a_card_database(path: &Path) -> Result<(), StoreError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        return Err(StoreError::Refused(format!(
            "{} is a directory, not a card database",
            path.display()
        )));
    }
    let mut head = [0u8; 9];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    });
    match read {
        Ok(0) => Ok(()),
        Ok(n) if differences(&head[..n], REDB_MAGIC) <= 2 => Ok(()),
        Ok(_) => Err(StoreError::Refused(format!(
            "{} is not a card database (not a redb file)",
            path.display()
        ))),
        Err(e) => Err(StoreError::Io(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// In how many places `a` and `b` differ, over the length of the shorter.
fn differences(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

impl RedbStore {
    /// Opens the card database at `path` for reading and writing, creating it (mode 0600,
    /// parent directories 0700) if it does not exist; a file of stored format 1 is converted.
    /// Fails with [`StoreError::Locked`] if another process has it open.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        is_a_card_database(path)?;
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
        is_a_card_database(path)?;
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
            if current.as_deref() == Some(&[TABLES]) {
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
        let old = self.records()?;
        if records_hold_a_card(&old) {
            return Err(StoreError::Refused(
                "the target database already holds a card".into(),
            ));
        }
        self.transaction(|tables| snapshot::overwrite(&old, &records, tables))
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

    fn take_snapshot(&mut self) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        self.database()?;
        self.snapshot()
    }

    fn replace_with(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        let new = snapshot::decode(snapshot)?;
        new.to_state()?;
        self.database()?;
        let old = self.records()?;
        self.transaction(|tables| snapshot::overwrite(&old, &new, tables))
    }
}
