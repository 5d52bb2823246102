//! Both stores keep and give back every part of a card, to the byte; the redb file is private
//! and locked; snapshots round-trip and refuse damage.

use std::os::unix::fs::PermissionsExt;

use redb::ReadableTable;

use super::*;
use crate::model::dkek::Dkek;
use crate::model::key::KeyRecord;
use crate::model::pin::{PinRecord, PinRef};
use crate::model::{Config, FileEntry, Identity};

fn sample_changes() -> Vec<Change> {
    vec![
        Change::Identity(Identity {
            device_chr: "ZZEM123456700000".into(),
            root_certificate: vec![0x7F, 0x21, 0x00],
        }),
        Change::Config(Some(Config::with_options(1))),
        Change::Pin(PinRef::User, Some(PinRecord::new(b"648219", 3, [9; 16]))),
        Change::Domain(0, Dkek::awaiting(2)),
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
                crate::crypto::ec::Curve::BrainpoolP256r1,
                &mut *crate::crypto::rng::system(),
            ),
        ),
    ]
}

#[test]
fn redb_round_trip_and_file_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/card.redb");
    let changes = sample_changes();
    let mut expected = CardState::default();
    {
        let mut store = RedbStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), CardState::default());
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
    assert_eq!(store.load().unwrap(), expected);
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
    assert_eq!(store.load().unwrap(), expected);
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
    assert_eq!(target.load().unwrap(), source.load().unwrap());
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
    store.lock().meta.insert("format".into(), vec![1, 0]);
    assert!(matches!(store.load(), Err(StoreError::Corrupt(_))));
}

/// A version above the newest this emulator reads is a newer emulator's, and said so: of the
/// record set, of one record, of the tables, of a snapshot.
#[test]
fn what_a_newer_emulator_wrote_is_refused_as_newer_not_as_damaged() {
    let newer = |store: &mut MemoryStore| match store.load() {
        Err(e @ StoreError::Newer { .. }) => e.to_string(),
        other => panic!("expected a newer format, got {:?}", other.map(|_| ())),
    };
    let mut store = MemoryStore::default();
    store.lock().meta.insert("format".into(), vec![99]);
    assert_eq!(
        newer(&mut store),
        "written by a newer sc-hsm-emulator: record format 99, this one reads up to 1"
    );
    let mut store = MemoryStore::default();
    store.commit(&sample_changes()).unwrap();
    store.lock().meta.get_mut("pin.user").unwrap()[0] = 3;
    assert_eq!(
        newer(&mut store),
        "written by a newer sc-hsm-emulator: PIN record version 3, this one reads up to 2"
    );
    // A record of a known version that does not decode is damage, as before.
    store.lock().meta.get_mut("pin.user").unwrap()[0] = 0;
    assert!(matches!(store.load(), Err(StoreError::Corrupt(w)) if w == "unreadable PIN record"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    sample_database(&path);
    tamper(&path, |txn| {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert("storage", [3u8].as_slice()).unwrap();
    });
    let said = "written by a newer sc-hsm-emulator: stored format 3, this one reads up to 2";
    let opened = RedbStore::open(&path).map(|_| ());
    assert!(matches!(&opened, Err(e @ StoreError::Newer { .. }) if e.to_string() == said));
    let read = RedbStore::read(&path).map(|_| ());
    assert!(matches!(&read, Err(e @ StoreError::Newer { .. }) if e.to_string() == said));

    let mut snapshot = {
        let path = dir.path().join("second.redb");
        sample_database(&path);
        RedbStore::snapshot_of(&path).unwrap().to_vec()
    };
    snapshot[b"SC-HSM-EMULATOR-SNAPSHOT\n".len()] = 2;
    let mut target = RedbStore::open(&dir.path().join("third.redb")).unwrap();
    assert_eq!(
        target.restore(&snapshot).unwrap_err().to_string(),
        "written by a newer sc-hsm-emulator: snapshot format 2, this one reads up to 1"
    );
}

/// A store of the sample card at `path`, closed again.
fn sample_database(path: &std::path::Path) {
    let mut store = RedbStore::open(path).unwrap();
    store.commit(&sample_changes()).unwrap();
}

/// Changes the file at `path` directly through redb, as damage would.
fn tamper(path: &std::path::Path, change: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    change(&txn);
    txn.commit().unwrap();
}

const FILES: redb::TableDefinition<u16, &[u8]> = redb::TableDefinition::new("files");
const META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");

fn refusal(path: &std::path::Path) -> String {
    match RedbStore::open(path).and_then(|mut s| s.load()) {
        Err(StoreError::Corrupt(why)) => why,
        other => panic!("expected a damaged database, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_damaged_value_is_named_and_the_card_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    sample_database(&path);
    tamper(&path, |txn| {
        let mut files = txn.open_table(FILES).unwrap();
        let mut value = files.get(0x2F03).unwrap().unwrap().value().to_vec();
        value[9] ^= 0x01;
        files.insert(0x2F03, value.as_slice()).unwrap();
    });
    assert_eq!(
        refusal(&path),
        "the record of file 2F03 fails its integrity check"
    );
    // Reading only says the same, and writes nothing.
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(RedbStore::read(&path), Err(StoreError::Corrupt(w)) if w.contains("2F03")));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_record_under_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    sample_database(&path);
    tamper(&path, |txn| {
        let mut files = txn.open_table(FILES).unwrap();
        let value = files.remove(0x2F03).unwrap().unwrap().value().to_vec();
        files.insert(0x9303, value.as_slice()).unwrap();
    });
    assert_eq!(
        refusal(&path),
        "the record of file 9303 fails its integrity check"
    );
}

#[test]
fn a_lost_record_is_found_by_the_census() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    sample_database(&path);
    tamper(&path, |txn| {
        txn.open_table(META).unwrap().remove("pin.user").unwrap();
    });
    assert!(
        refusal(&path).starts_with("records are missing or were added"),
        "{}",
        refusal(&path)
    );
}

#[test]
fn an_unknown_record_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    sample_database(&path);
    tamper(&path, |txn| {
        let mut meta = txn.open_table(META).unwrap();
        let value = meta.remove("pin.user").unwrap().unwrap().value().to_vec();
        meta.insert("pin.usfr", value.as_slice()).unwrap();
    });
    assert_eq!(refusal(&path), "an unknown record \"pin.usfr\" is stored");
}

/// A text file or a directory given as a database is no card database, not a damaged one; an
/// empty file is where a new card is made.
#[test]
fn a_text_file_or_a_directory_is_not_a_card_database() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello\n").unwrap();
    for path in [text.as_path(), dir.path()] {
        for result in [
            RedbStore::open(path).map(|_| ()),
            RedbStore::read(path).map(|_| ()),
        ] {
            match result {
                Err(StoreError::Refused(why)) => assert!(
                    why.contains("not a card database") && why.contains(&*path.to_string_lossy()),
                    "{why}"
                ),
                other => panic!("{}: {:?}", path.display(), other.err()),
            }
        }
    }
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "hello\n");
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, "").unwrap();
    assert!(RedbStore::open(&empty).is_ok());
    // A card database whose first byte is damaged is still a damaged card database.
    let card = dir.path().join("card.redb");
    sample_database(&card);
    let mut bytes = std::fs::read(&card).unwrap();
    bytes[0] ^= 0x10;
    std::fs::write(&card, &bytes).unwrap();
    assert!(
        refusal(&card).contains("magic number"),
        "{}",
        refusal(&card)
    );
}
