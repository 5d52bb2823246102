//! Anti-tearing: a power cut between the retry counter's decrement and the answer costs the
//! try, even for the right PIN. The cut is injected as a store that stops committing (the
//! process "dies") after the decrement was made durable in the real redb file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use emulator::model::{CardState, Change};
use emulator::{Card, RedbStore, Store, StoreError};

/// A redb store whose commits stop working after `budget` more of them.
struct DyingStore {
    inner: RedbStore,
    budget: Arc<AtomicUsize>,
}

impl Store for DyingStore {
    fn load(&mut self) -> Result<CardState, StoreError> {
        self.inner.load()
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        if self.budget.load(Ordering::SeqCst) == 0 {
            return Err(StoreError::Io("power cut".into()));
        }
        self.budget.fetch_sub(1, Ordering::SeqCst);
        self.inner.commit(changes)
    }
}

fn transmit(card: &mut Card, hex: &str) -> String {
    emulator::tools::hex::encode(&card.transmit(&emulator::tools::hex::decode(hex).unwrap()))
}

#[test]
fn a_cut_after_the_decrement_costs_the_try_even_for_the_right_pin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    let budget = Arc::new(AtomicUsize::new(usize::MAX));
    {
        let store = DyingStore {
            inner: RedbStore::open(&path).unwrap(),
            budget: Arc::clone(&budget),
        };
        let mut card = Card::open(Box::new(store)).unwrap();
        assert_eq!(
            transmit(&mut card, "00A404000BE82B0601040181C31F020100"),
            "6F0A820178850500000604009000"
        );
        assert_eq!(
            transmit(
                &mut card,
                "8050000019800200018106363438323139820835373632313838309101 03"
                    .replace(' ', "")
                    .as_str()
            ),
            "9000"
        );
        assert_eq!(
            transmit(&mut card, "00A404000BE82B0601040181C31F020100").len(),
            28
        );
        // The next commit (the decrement) is the last one that reaches the disk.
        budget.store(1, Ordering::SeqCst);
        // The right PIN: the decrement is durable, the restore is cut; no 9000 leaves.
        assert_eq!(transmit(&mut card, "0020008106363438323139"), "6581");
    }
    // Power comes back: the try is gone although the PIN was right.
    let mut card = Card::open(Box::new(RedbStore::open(&path).unwrap())).unwrap();
    assert_eq!(card.state().user_pin.as_ref().unwrap().tries_left, 2);
    assert_eq!(
        transmit(&mut card, "00A404000BE82B0601040181C31F020100").len(),
        28
    );
    assert_eq!(transmit(&mut card, "00200081"), "63C2");
    // Nothing is lost beyond that try: the right PIN works and restores the counter.
    assert_eq!(transmit(&mut card, "0020008106363438323139"), "9000");
    assert_eq!(card.state().user_pin.as_ref().unwrap().tries_left, 3);
}

#[test]
fn a_cut_before_the_decrement_costs_nothing_and_compares_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    let budget = Arc::new(AtomicUsize::new(usize::MAX));
    {
        let store = DyingStore {
            inner: RedbStore::open(&path).unwrap(),
            budget: Arc::clone(&budget),
        };
        let mut card = Card::open(Box::new(store)).unwrap();
        transmit(&mut card, "00A404000BE82B0601040181C31F020100");
        transmit(
            &mut card,
            "8050000019800200018106363438323139820835373632313838309101 03"
                .replace(' ', "")
                .as_str(),
        );
        budget.store(0, Ordering::SeqCst);
        // Without a durable decrement the PIN is not even compared: wrong or right, 6581.
        assert_eq!(transmit(&mut card, "0020008106313131313131"), "6581");
        assert_eq!(transmit(&mut card, "0020008106363438323139"), "6581");
    }
    let card = Card::open(Box::new(RedbStore::open(&path).unwrap())).unwrap();
    assert_eq!(card.state().user_pin.as_ref().unwrap().tries_left, 3);
}
