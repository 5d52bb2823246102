//! `snapshot load` of the control channel, in process: a card with 50 EC keys and 50 data
//! objects in a real redb file is replaced in place by a snapshot of itself taken before its
//! second half was made (every record removed, written or kept in one transaction), and back.
//!
//!     cargo bench -p sc-hsm-emulator-card --bench snapshot

use criterion::{criterion_group, criterion_main, Criterion};
use emulator::apdu::extended;
use emulator::crypto::cvc;
use emulator::crypto::ec::Curve;
use emulator::model::pin::PinRef;
use emulator::tools::host;
use emulator::{Card, RedbStore};

fn ok(card: &mut Card, apdu: &[u8]) {
    let r = card.transmit(apdu);
    assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
}

/// Adds EC keys `ids` and data objects of 200 bytes with the same numbers.
fn fill(card: &mut Card, ids: std::ops::Range<u8>) {
    let template = cvc::ec_key_template(Curve::Secp256r1);
    let request = cvc::generate_request(b"UTCA00001", &template, b"ZZEM000000000001");
    for id in ids {
        ok(card, &extended([0x00, 0x46, id, 0x00], &request));
        ok(
            card,
            &host::update_binary(0xCD00 | u16::from(id), &[id; 200]),
        );
    }
}

fn snapshot_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("card.redb")).unwrap();
    let mut card = Card::open(Box::new(store)).unwrap();
    emulator::tools::admin::initialize(&mut card, &emulator::tools::admin::InitOptions::wiki())
        .unwrap();
    ok(&mut card, &host::select_application());
    ok(&mut card, &host::verify(PinRef::User, b"648219"));
    fill(&mut card, 1..26);
    let half = card.snapshot().unwrap();
    fill(&mut card, 26..51);
    let full = card.snapshot().unwrap();
    assert_eq!(card.state().keys.len(), 51);
    let data_objects = card
        .state()
        .files
        .keys()
        .filter(|f| *f >> 8 == 0xCD)
        .count();
    assert_eq!(data_objects, 50);
    c.bench_function(
        "snapshot load x2 (card of 25+25 keys and objects <-> 50+50)",
        |b| {
            b.iter(|| {
                card.restore(&half).unwrap();
                card.restore(&full).unwrap();
            })
        },
    );
    c.bench_function("snapshot save (50 keys, 50 data objects)", |b| {
        b.iter(|| card.snapshot().unwrap())
    });
    assert_eq!(card.state().keys.len(), 51);
}

criterion_group!(benches, snapshot_load);
criterion_main!(benches);
