//! Persistence: where a card's [`CardState`] lives between power cycles.
//!
//! [`RedbStore`] keeps one card in one redb file and commits each command's batch in one
//! durable transaction. [`MemoryStore`] keeps it in memory (unit tests, throw-away cards).

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::dkek::Dkek;
use crate::keystore::KeyRecord;
use crate::pin::{PinRecord, PinRef};
use crate::state::{CardState, Change, Config, FileEntry, Identity};
use crate::tlv;

/// Why the store could not load or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Another process holds the database open.
    Locked(PathBuf),
    /// The file exists but is not a card this version understands.
    Corrupt(String),
    /// Any I/O or database failure.
    Io(String),
    /// The card cannot be opened this way (e.g. a `--seed` mismatch).
    Refused(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Locked(path) => write!(
                f,
                "the card database {} is already in use by another emulator process",
                path.display()
            ),
            StoreError::Corrupt(why) => write!(f, "the card database is damaged: {why}"),
            StoreError::Io(why) => write!(f, "card database error: {why}"),
            StoreError::Refused(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A place to keep one card's persistent state.
pub trait Store: Send {
    /// Reads the whole state; an empty state for a new store.
    fn load(&mut self) -> Result<CardState, StoreError>;
    /// Makes all `changes` durable together, or none of them.
    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError>;

    /// Applies `changes` together without waiting for them to reach the disk: a crash may
    /// lose them (all together). Only for writes whose loss leaves the card safer, such as
    /// restoring a PIN's retry counter after the right PIN.
    fn commit_relaxed(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        self.commit(changes)
    }
}

/// A store that forgets everything when dropped. Clones share the same records (a test can
/// keep a handle on a card's store); [`MemoryStore::snapshot`] makes an independent copy.
#[derive(Default, Clone)]
pub struct MemoryStore {
    records: Arc<Mutex<Records>>,
    fail_commits: Arc<AtomicBool>,
}

impl MemoryStore {
    /// An independent copy of the stored state.
    pub fn snapshot(&self) -> MemoryStore {
        MemoryStore {
            records: Arc::new(Mutex::new(self.lock().clone())),
            fail_commits: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        // A panic while holding the lock leaves records that are still whole.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A switch that, while set, makes every commit fail (to test that a failed commit
    /// changes nothing). It stays usable after the store moved into a card.
    pub fn failure_switch(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.fail_commits)
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<CardState, StoreError> {
        self.lock().to_state()
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected commit failure".into()));
        }
        let mut records = self.lock();
        for change in changes {
            records.apply(change);
        }
        Ok(())
    }
}

/// The stored form, shared by both stores: three key/value maps.
#[derive(Default, Clone)]
struct Records {
    meta: std::collections::BTreeMap<String, Vec<u8>>,
    files: std::collections::BTreeMap<u16, Vec<u8>>,
    keys: std::collections::BTreeMap<u8, Vec<u8>>,
}

/// Version of the stored format, kept under the `format` meta key.
const FORMAT_VERSION: u8 = 1;

enum Op {
    Meta(&'static str, Option<Vec<u8>>),
    File(u16, Option<Vec<u8>>),
    Key(u8, Option<zeroize::Zeroizing<Vec<u8>>>),
}

fn pin_key(which: PinRef) -> &'static str {
    match which {
        PinRef::User => "pin.user",
        PinRef::So => "pin.so",
    }
}

/// How one change is written as key/value operations.
fn encode(change: &Change) -> Op {
    match change {
        Change::Identity(identity) => {
            let mut v = tlv::encode(0x01, identity.device_chr.as_bytes());
            tlv::write(&mut v, 0x02, &identity.root_certificate);
            Op::Meta("identity", Some(v))
        }
        Change::Config(config) => Op::Meta(
            "config",
            config.map(|c| {
                let [hi, lo] = c.options.to_be_bytes();
                vec![1, hi, lo]
            }),
        ),
        Change::Pin(which, record) => {
            Op::Meta(pin_key(*which), record.as_ref().map(|r| r.encode()))
        }
        Change::Dkek(dkek) => Op::Meta("dkek", Some(dkek.encode())),
        Change::PutFile(fid, entry) => {
            let mut v = entry.seq.to_be_bytes().to_vec();
            v.extend_from_slice(&entry.data);
            Op::File(*fid, Some(v))
        }
        Change::DeleteFile(fid) => Op::File(*fid, None),
        Change::PutKey(id, key) => Op::Key(*id, Some(key.encode())),
        Change::DeleteKey(id) => Op::Key(*id, None),
        Change::Seed(seed, boots) => Op::Meta(
            "seed",
            Some([seed.to_be_bytes(), boots.to_be_bytes()].concat()),
        ),
    }
}

impl Records {
    fn apply(&mut self, change: &Change) {
        self.meta.insert("format".into(), vec![FORMAT_VERSION]);
        match encode(change) {
            Op::Meta(k, Some(v)) => {
                self.meta.insert(k.into(), v);
            }
            Op::Meta(k, None) => {
                self.meta.remove(k);
            }
            Op::File(fid, Some(v)) => {
                self.files.insert(fid, v);
            }
            Op::File(fid, None) => {
                self.files.remove(&fid);
            }
            Op::Key(id, Some(v)) => {
                self.keys.insert(id, v.to_vec());
            }
            Op::Key(id, None) => {
                self.keys.remove(&id);
            }
        }
    }

    fn to_state(&self) -> Result<CardState, StoreError> {
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
            let chr = tlv::find(v, 0x01).ok_or_else(|| corrupt("identity"))?;
            let root = tlv::find(v, 0x02).ok_or_else(|| corrupt("identity"))?;
            state.identity = Some(Identity {
                device_chr: String::from_utf8(chr.to_vec()).map_err(|_| corrupt("identity"))?,
                root_certificate: root.to_vec(),
            });
        }
        if let Some(v) = self.meta.get("config") {
            state.config = match v.as_slice() {
                [1, hi, lo] => Some(Config {
                    options: u16::from_be_bytes([*hi, *lo]),
                }),
                _ => return Err(corrupt("config")),
            };
        }
        for which in [PinRef::User, PinRef::So] {
            if let Some(v) = self.meta.get(pin_key(which)) {
                let record = PinRecord::decode(v).ok_or_else(|| corrupt("PIN"))?;
                match which {
                    PinRef::User => state.user_pin = Some(record),
                    PinRef::So => state.so_pin = Some(record),
                }
            }
        }
        if let Some(v) = self.meta.get("seed") {
            let (seed, boots) = v.split_at_checked(8).ok_or_else(|| corrupt("seed"))?;
            let seed = u64::from_be_bytes(seed.try_into().map_err(|_| corrupt("seed"))?);
            let boots = u64::from_be_bytes(boots.try_into().map_err(|_| corrupt("seed"))?);
            state.seed = Some((seed, boots));
        }
        if let Some(v) = self.meta.get("dkek") {
            state.dkek = Dkek::decode(v).ok_or_else(|| corrupt("DKEK"))?;
        }
        for (fid, v) in &self.files {
            if v.len() < 8 {
                return Err(corrupt("file"));
            }
            let (seq, data) = v.split_at(8);
            let seq = u64::from_be_bytes(seq.try_into().map_err(|_| corrupt("file"))?);
            state.files.insert(
                *fid,
                FileEntry {
                    seq,
                    data: data.to_vec(),
                },
            );
        }
        for (id, v) in &self.keys {
            state
                .keys
                .insert(*id, KeyRecord::decode(v).ok_or_else(|| corrupt("key"))?);
        }
        Ok(state)
    }
}

/// First line of a snapshot file.
const SNAPSHOT_MAGIC: &[u8] = b"SC-HSM-EMULATOR-SNAPSHOT\n";
const SNAPSHOT_VERSION: u8 = 1;

impl Records {
    /// `magic ‖ version ‖ A0{meta} A1{files} A2{keys} ‖ SHA-256 of all before`.
    fn to_snapshot(&self) -> zeroize::Zeroizing<Vec<u8>> {
        use sha2::Digest;
        let mut body = zeroize::Zeroizing::new(Vec::new());
        let mut meta = Vec::new();
        for (k, v) in &self.meta {
            let mut entry = tlv::encode(0x0C, k.as_bytes());
            tlv::write(&mut entry, 0x04, v);
            tlv::write(&mut meta, 0x30, &entry);
        }
        tlv::write(&mut body, 0xA0, &meta);
        let mut files = Vec::new();
        for (fid, v) in &self.files {
            let mut entry = tlv::encode(0x02, &fid.to_be_bytes());
            tlv::write(&mut entry, 0x04, v);
            tlv::write(&mut files, 0x30, &entry);
        }
        tlv::write(&mut body, 0xA1, &files);
        let mut keys = zeroize::Zeroizing::new(Vec::new());
        for (id, v) in &self.keys {
            let mut entry = zeroize::Zeroizing::new(tlv::encode(0x02, &[*id]));
            tlv::write(&mut entry, 0x04, v);
            tlv::write(&mut keys, 0x30, &entry);
        }
        tlv::write(&mut body, 0xA2, &keys);
        let mut out = zeroize::Zeroizing::new(SNAPSHOT_MAGIC.to_vec());
        out.push(SNAPSHOT_VERSION);
        out.extend_from_slice(&body);
        let digest = sha2::Sha256::digest(&out[..]);
        out.extend_from_slice(&digest);
        out
    }

    fn from_snapshot(bytes: &[u8]) -> Result<Records, StoreError> {
        use sha2::Digest;
        let bad = |why: &str| StoreError::Refused(format!("the snapshot is damaged: {why}"));
        let rest = bytes
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or_else(|| bad("not a card snapshot"))?;
        let (&version, rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
        if version != SNAPSHOT_VERSION {
            return Err(bad(&format!("version {version} is not {SNAPSHOT_VERSION}")));
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
                match (section.tag, k.value) {
                    (0xA0, name) => {
                        let name = std::str::from_utf8(name).map_err(|_| bad("malformed name"))?;
                        records.meta.insert(name.to_string(), v.value.to_vec());
                    }
                    (0xA1, [hi, lo]) => {
                        records
                            .files
                            .insert(u16::from_be_bytes([*hi, *lo]), v.value.to_vec());
                    }
                    (0xA2, [id]) => {
                        records.keys.insert(*id, v.value.to_vec());
                    }
                    _ => return Err(bad("unknown section")),
                }
            }
        }
        // It must make a whole card.
        records.to_state().map_err(|e| bad(&e.to_string()))?;
        Ok(records)
    }
}

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
        txn.open_table(META).map_err(io)?;
        txn.open_table(FILES).map_err(io)?;
        txn.open_table(KEYS).map_err(io)?;
        txn.commit().map_err(io)?;
        Ok(RedbStore { db })
    }
}

impl RedbStore {
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
        Ok(records.to_snapshot())
    }

    /// Writes the card of `snapshot` into this (empty) database in one transaction (`import`).
    /// A damaged snapshot is refused before anything is written.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        let records = Records::from_snapshot(snapshot)?;
        if !self.records()?.meta.is_empty() {
            return Err(StoreError::Refused(
                "the target database already holds a card".into(),
            ));
        }
        let txn = self.db.begin_write().map_err(io)?;
        {
            let mut meta = txn.open_table(META).map_err(io)?;
            let mut files = txn.open_table(FILES).map_err(io)?;
            let mut keys = txn.open_table(KEYS).map_err(io)?;
            for (k, v) in &records.meta {
                meta.insert(k.as_str(), v.as_slice()).map_err(io)?;
            }
            for (fid, v) in &records.files {
                files.insert(*fid, v.as_slice()).map_err(io)?;
            }
            for (id, v) in &records.keys {
                keys.insert(*id, v.as_slice()).map_err(io)?;
            }
        }
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

impl RedbStore {
    fn write(
        &mut self,
        changes: &[Change],
        durability: redb::Durability,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(durability).map_err(io)?;
        {
            let mut meta = txn.open_table(META).map_err(io)?;
            let mut files = txn.open_table(FILES).map_err(io)?;
            let mut keys = txn.open_table(KEYS).map_err(io)?;
            meta.insert("format", [FORMAT_VERSION].as_slice())
                .map_err(io)?;
            for change in changes {
                match encode(change) {
                    Op::Meta(k, Some(v)) => {
                        meta.insert(k, v.as_slice()).map_err(io)?;
                    }
                    Op::Meta(k, None) => {
                        meta.remove(k).map_err(io)?;
                    }
                    Op::File(fid, Some(v)) => {
                        files.insert(fid, v.as_slice()).map_err(io)?;
                    }
                    Op::File(fid, None) => {
                        files.remove(fid).map_err(io)?;
                    }
                    Op::Key(id, Some(v)) => {
                        keys.insert(id, v.as_slice()).map_err(io)?;
                    }
                    Op::Key(id, None) => {
                        keys.remove(id).map_err(io)?;
                    }
                }
            }
        }
        txn.commit().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample_changes() -> Vec<Change> {
        vec![
            Change::Identity(Identity {
                device_chr: "ZZEM123456700000".into(),
                root_certificate: vec![0x7F, 0x21, 0x00],
            }),
            Change::Config(Some(Config { options: 1 })),
            Change::Pin(PinRef::User, Some(PinRecord::new(b"648219", 3, [9; 16]))),
            Change::Dkek(Dkek::awaiting(2)),
            Change::PutFile(
                0x2F03,
                FileEntry {
                    seq: 4,
                    data: vec![1, 2, 3],
                },
            ),
            Change::PutFile(
                0xCD01,
                FileEntry {
                    seq: 5,
                    data: vec![],
                },
            ),
            Change::PutKey(
                0,
                KeyRecord::generate_ec(
                    crate::ec::Curve::BrainpoolP256r1,
                    &mut *crate::rng::system(),
                ),
            ),
        ]
    }

    fn summary(s: &CardState) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            s.identity, s.config, s.user_pin, s.so_pin, s.dkek, s.files, s.keys
        )
    }

    #[test]
    fn redb_round_trip_and_file_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/card.redb");
        let changes = sample_changes();
        let mut expected = CardState::default();
        {
            let mut store = RedbStore::open(&path).unwrap();
            assert_eq!(
                summary(&store.load().unwrap()),
                summary(&CardState::default())
            );
            store.commit(&changes).unwrap();
            store.commit(&[Change::DeleteFile(0xCD01)]).unwrap();
        }
        for c in changes {
            expected.apply(c);
        }
        expected.apply(Change::DeleteFile(0xCD01));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut store = RedbStore::open(&path).unwrap();
        assert_eq!(summary(&store.load().unwrap()), summary(&expected));
    }

    #[test]
    fn memory_store_matches_redb_encoding() {
        let mut store = MemoryStore::default();
        let changes = sample_changes();
        store.commit(&changes).unwrap();
        let mut expected = CardState::default();
        for c in changes {
            expected.apply(c);
        }
        assert_eq!(summary(&store.load().unwrap()), summary(&expected));
    }

    #[test]
    fn second_open_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.redb");
        let _first = RedbStore::open(&path).unwrap();
        match RedbStore::open(&path) {
            Err(StoreError::Locked(p)) => assert_eq!(p, path),
            other => panic!("expected Locked, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = RedbStore::open(&dir.path().join("a.redb")).unwrap();
        source.commit(&sample_changes()).unwrap();
        let snapshot = source.snapshot().unwrap();
        let mut target = RedbStore::open(&dir.path().join("b.redb")).unwrap();
        target.restore(&snapshot).unwrap();
        assert_eq!(
            summary(&target.load().unwrap()),
            summary(&source.load().unwrap())
        );
        // A second restore into a database that holds a card is refused.
        assert!(matches!(
            target.restore(&snapshot),
            Err(StoreError::Refused(_))
        ));
        // Any flipped byte is caught by the checksum (or the magic).
        let mut empty = RedbStore::open(&dir.path().join("c.redb")).unwrap();
        for i in (0..snapshot.len()).step_by(13) {
            let mut damaged = snapshot.to_vec();
            damaged[i] ^= 0x40;
            assert!(
                matches!(empty.restore(&damaged), Err(StoreError::Refused(e)) if e.contains("damaged")),
                "byte {i}"
            );
        }
        assert!(matches!(
            empty.restore(&snapshot[..snapshot.len() - 1]),
            Err(StoreError::Refused(_))
        ));
        assert!(
            empty.load().unwrap().identity.is_none(),
            "nothing was written"
        );
    }

    #[test]
    fn unknown_format_is_refused() {
        let mut store = MemoryStore::default();
        store.lock().meta.insert("format".into(), vec![99]);
        assert!(matches!(store.load(), Err(StoreError::Corrupt(_))));
    }
}
