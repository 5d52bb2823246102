//! Tearing: power lost at a random point of GENERATE (RSA and EC), UPDATE BINARY, DELETE FILE,
//! IMPORT DKEK SHARE, CHANGE REFERENCE DATA and VERIFY, hundreds of times, through the fault
//! rule `tear` of [`FaultyCard`]. After each cut the card is opened again from its redb file
//! (a real power-up: nothing of memory survives) and checked against a model of acknowledged
//! changes: every part the command touches holds its value from before the command or from
//! after it, never one between, and nothing else changed. The one state between that the card
//! makes on purpose is the PIN's anti-tearing charge: a try paid before the PIN is compared
//! (as the physical card does) stays paid when the power goes before the answer.

use std::collections::BTreeMap;
use std::path::Path;

use emulator::model::pin::PinRef;
use emulator::testkit::tearing::{Torn, PINS};
use emulator::tools::{hex, host};
use emulator::{Card, FaultRule, FaultyCard, RedbStore, Reply};

const SEED: u64 = 22;
const SO_PIN: &str = "3537363231383830";

fn open(path: &Path) -> FaultyCard {
    let store = RedbStore::open(path).unwrap();
    FaultyCard::new(Card::open_seeded(Box::new(store), SEED).unwrap())
}

fn sw(card: &mut FaultyCard, apdu: &[u8]) -> String {
    match card.transmit(apdu) {
        Reply::Answer { bytes, .. } => hex::encode(&bytes[bytes.len() - 2..]),
        other => panic!("no answer: {other:?}"),
    }
}

/// What the model knows of the card: what every acknowledged command left.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    files: BTreeMap<u16, Vec<u8>>,
    keys: Vec<u8>,
    pin: usize,
    tries: u8,
    dkek_imported: u8,
}

/// The parts of the card the model follows, read from the card itself.
fn observe(card: &FaultyCard) -> Model {
    let state = card.card().state();
    let pin = state.user_pin.as_ref().unwrap();
    let matching: Vec<usize> = (0..2).filter(|i| pin.matches(PINS[*i])).collect();
    assert_eq!(matching.len(), 1, "exactly one of the PINs is the card's");
    let dkek_imported = match &state.dkek {
        emulator::model::dkek::Dkek::Pending { imported, .. } => *imported,
        emulator::model::dkek::Dkek::Ready { total, .. } => *total,
        other => panic!("{other:?}"),
    };
    Model {
        files: state
            .files
            .iter()
            .map(|(fid, f)| (*fid, f.data.clone()))
            .collect(),
        keys: state.keys.keys().copied().filter(|k| *k != 0).collect(),
        pin: matching[0],
        tries: pin.tries_left,
        dkek_imported,
    }
}

/// A small generator for the test's own choices.
struct Choices(u64);

impl Choices {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn every_torn_command_leaves_the_state_from_before_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    {
        let mut card = Card::open_seeded(Box::new(RedbStore::open(&path).unwrap()), SEED).unwrap();
        let mut options = emulator::tools::admin::InitOptions::wiki();
        options.dkek_shares = Some(255);
        emulator::tools::admin::initialize(&mut card, &options).unwrap();
    }
    let mut choices = Choices(SEED);
    let mut model = observe(&open(&path));
    // How each torn command ended: (op, before / after / charged) -> count.
    let mut outcomes: BTreeMap<(Torn, &str), u32> = BTreeMap::new();
    let tears = 320;
    for round in 0..tears {
        let mut card = open(&path);
        assert_eq!(
            observe(&card),
            model,
            "round {round}: the card as the model left it"
        );
        assert_eq!(sw(&mut card, &host::select_application()), "9000");
        // A blocked-to-be PIN is reset first (with the SO-PIN, not torn).
        if model.tries < 2 {
            let unblock =
                emulator::apdu::extended([0x00, 0x2C, 0x01, 0x81], &hex::decode(SO_PIN).unwrap());
            assert_eq!(sw(&mut card, &unblock), "9000");
            model.tries = 3;
        }
        let pin = PINS[model.pin];
        let op = Torn::ALL[choices.next(Torn::ALL.len() as u64) as usize];
        let needs_login = op.needs_login();
        if needs_login {
            assert_eq!(sw(&mut card, &host::verify(PinRef::User, pin)), "9000");
        }
        let key_id = 1 + choices.next(30) as u8;
        let fid = 0xCD00 | choices.next(8) as u16;
        let content: Vec<u8> = (0..1 + choices.next(300))
            .map(|i| (i as u8) ^ round as u8)
            .collect();
        let present: Vec<u16> = model
            .files
            .keys()
            .copied()
            .filter(|f| f >> 8 == 0xCD)
            .chain(model.keys.iter().map(|k| 0xCC00 | u16::from(*k)))
            .collect();
        let target = match present.len() {
            0 => 0xCC00 | u16::from(key_id),
            n => present[choices.next(n as u64) as usize],
        };
        let apdu = op.apdu(key_id, fid, &content, target, round, model.pin);
        let on = op.command();
        // The command's effect when it runs whole, on a copy of the card from before.
        let after = {
            let twin_path = dir.path().join(format!("twin-{round}.redb"));
            std::fs::copy(&path, &twin_path).unwrap();
            drop(card);
            let mut twin = open(&twin_path);
            assert_eq!(sw(&mut twin, &host::select_application()), "9000");
            if needs_login {
                assert_eq!(sw(&mut twin, &host::verify(PinRef::User, pin)), "9000");
            }
            let status = sw(&mut twin, &apdu);
            let after = observe(&twin);
            drop(twin);
            std::fs::remove_file(&twin_path).unwrap();
            card = open(&path);
            assert_eq!(sw(&mut card, &host::select_application()), "9000");
            if needs_login {
                assert_eq!(sw(&mut card, &host::verify(PinRef::User, pin)), "9000");
            }
            (status, after)
        };
        let before = observe(&card);
        let rule: FaultRule = format!("on={on},probability=1,seed={round},tear")
            .parse()
            .unwrap();
        card.add_fault(rule);
        assert_eq!(card.transmit(&apdu), Reply::Torn, "round {round}: {op:?}");
        drop(card);
        let found = observe(&open(&path));
        let (status, after) = after;
        let mut charged = before.clone();
        charged.tries = before.tries.saturating_sub(1);
        let outcome = op.outcome(&before, &after, &charged, &found).unwrap_or_else(|| {
            panic!(
                "round {round}: {op:?} (whole: {status}) left a state between:\nbefore {before:?}\nafter {after:?}\nfound {found:?}"
            );
        });
        *outcomes.entry((op, outcome)).or_default() += 1;
        model = found;
    }
    let total: u32 = outcomes.values().sum();
    assert_eq!(total, tears);
    eprintln!("{tears} tears, 0 states between; by command and outcome: {outcomes:?}");
    // Every command that changes the card was torn both before and after its change; a
    // right PIN's try was seen charged.
    assert!(
        outcomes.contains_key(&(Torn::VerifyRight, "charged")),
        "{outcomes:?}"
    );
    for &op in Torn::changing() {
        for outcome in ["before", "after"] {
            assert!(
                outcomes.get(&(op, outcome)).copied().unwrap_or(0) > 0,
                "{op:?} never ended {outcome}: {outcomes:?}"
            );
        }
    }
}
