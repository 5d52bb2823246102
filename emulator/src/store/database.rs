//! [`RedbStore`]: one card in one redb database file, one transaction per command.

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::record::{self, Records, Slot, Tables};
use super::{snapshot, Store, StoreError};
use crate::model::{CardState, Change};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const FILES: TableDefinition<u16, &[u8]> = TableDefinition::new("files");
const KEYS: TableDefinition<u8, &[u8]> = TableDefinition::new("keys");

/// One card in one redb database file.
pub struct RedbStore {
    db: redb::Database,
}

fn io<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The three tables of one write transaction.
struct Open<'txn> {
    meta: redb::Table<'txn, &'static str, &'static [u8]>,
    files: redb::Table<'txn, u16, &'static [u8]>,
    keys: redb::Table<'txn, u8, &'static [u8]>,
}

impl<'txn> Open<'txn> {
    fn tables(txn: &'txn redb::WriteTransaction) -> Result<Open<'txn>, StoreError> {
        Ok(Open {
            meta: txn.open_table(META).map_err(io)?,
            files: txn.open_table(FILES).map_err(io)?,
            keys: txn.open_table(KEYS).map_err(io)?,
        })
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

impl Tables for Open<'_> {
    fn set(&mut self, slot: Slot, value: Option<&[u8]>) -> Result<(), StoreError> {
        match slot {
            Slot::Meta(name) => set_in(&mut self.meta, name, value),
            Slot::File(fid) => set_in(&mut self.files, fid, value),
            Slot::Key(id) => set_in(&mut self.keys, id, value),
        }
    }
}

impl RedbStore {
    /// Opens the card database at `path`, creating it (mode 0600, parent directories 0700) if
    /// it does not exist. Fails with [`StoreError::Locked`] if another process has it open.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", parent.display())))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
        let locked_or_io = |e: redb::DatabaseError| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.to_path_buf()),
            other => StoreError::Io(format!("cannot open {}: {other}", path.display())),
        };
        let backend = redb::backends::FileBackend::new(file).map_err(locked_or_io)?;
        let db = redb::Database::builder()
            .create_with_backend(backend)
            .map_err(locked_or_io)?;
        let txn = db.begin_write().map_err(io)?;
        Open::tables(&txn)?;
        txn.commit().map_err(io)?;
        Ok(RedbStore { db })
    }

    fn records(&self) -> Result<Records, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let mut records = Records::default();
        for item in txn.open_table(META).map_err(io)?.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            records
                .meta
                .insert(k.value().to_string(), v.value().to_vec());
        }
        for item in txn.open_table(FILES).map_err(io)?.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            records.files.insert(k.value(), v.value().to_vec());
        }
        for item in txn.open_table(KEYS).map_err(io)?.iter().map_err(io)? {
            let (k, v) = item.map_err(io)?;
            records.keys.insert(k.value(), v.value().to_vec());
        }
        Ok(records)
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
        if !self.records()?.meta.is_empty() {
            return Err(StoreError::Refused(
                "the target database already holds a card".into(),
            ));
        }
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut tables = Open::tables(&txn)?;
            for (name, v) in &records.meta {
                tables
                    .meta
                    .insert(name.as_str(), v.as_slice())
                    .map_err(io)?;
            }
            for (fid, v) in &records.files {
                tables.set(Slot::File(*fid), Some(v))?;
            }
            for (id, v) in &records.keys {
                tables.set(Slot::Key(*id), Some(v))?;
            }
        }
        txn.commit().map_err(io)
    }

    fn write(
        &mut self,
        changes: &[Change],
        durability: redb::Durability,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(durability).map_err(io)?;
        record::write(changes, &mut Open::tables(&txn)?)?;
        txn.commit().map_err(io)
    }
}

impl Store for RedbStore {
    fn load(&mut self) -> Result<CardState, StoreError> {
        self.records()?.to_state()
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        self.write(changes, redb::Durability::Immediate)
    }

    fn commit_relaxed(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        self.write(changes, redb::Durability::None)
    }
}
