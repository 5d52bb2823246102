use super::*;
use crate::card::work::Work;
use crate::store::MemoryStore;
use crate::tools::hex;
use crate::tools::host;

fn card() -> FaultyCard {
    let mut card = Card::open_seeded(Box::new(MemoryStore::default()), 1).unwrap();
    crate::tools::admin::initialize(&mut card, &crate::tools::admin::InitOptions::wiki()).unwrap();
    FaultyCard::new(card)
}

fn answer(reply: Reply) -> String {
    match reply {
        Reply::Answer { bytes, .. } => hex::encode(&bytes),
        other => panic!("no answer: {other:?}"),
    }
}

fn rule(text: &str) -> FaultRule {
    text.parse().unwrap()
}

const VERIFY_STATUS: &str = "0020008100";

#[test]
fn a_status_rule_answers_instead_of_the_card_and_changes_nothing() {
    let mut card = card();
    assert!(answer(card.transmit(&host::select_application())).ends_with("9000"));
    card.add_fault(rule("on=VERIFY,status=6983"));
    let pin = host::verify(crate::model::pin::PinRef::User, b"648219");
    assert_eq!(answer(card.transmit(&pin)), "6983");
    // The card's own counter is untouched: the next VERIFY is the card's, and right.
    assert_eq!(
        answer(card.transmit(&hex::decode(VERIFY_STATUS).unwrap())),
        "63C3"
    );
    assert_eq!(answer(card.transmit(&pin)), "9000");
    assert_eq!(card.faults()[0].fired, 1);
    assert_eq!(card.injected(), 1);
}

#[test]
fn removal_ends_the_session_and_the_card_stays_out_until_inserted() {
    let mut card = card();
    answer(card.transmit(&host::select_application()));
    let pin = host::verify(crate::model::pin::PinRef::User, b"648219");
    assert_eq!(answer(card.transmit(&pin)), "9000");
    card.add_fault(rule("on=SIGN,remove"));
    let sign = hex::decode("8068012000").unwrap();
    assert_eq!(card.transmit(&sign), Reply::Removed);
    assert!(!card.is_inserted());
    assert_eq!(card.transmit(&host::select_application()), Reply::Absent);
    assert!(card.insert());
    answer(card.transmit(&host::select_application()));
    // A new session: the PIN must be given again; removal cost no try.
    assert_eq!(
        answer(card.transmit(&hex::decode(VERIFY_STATUS).unwrap())),
        "63C3"
    );
}

#[test]
fn remove_after_commits_the_change_and_sends_nothing() {
    let mut card = card();
    answer(card.transmit(&host::select_application()));
    let pin = host::verify(crate::model::pin::PinRef::User, b"648219");
    assert_eq!(answer(card.transmit(&pin)), "9000");
    card.add_fault(rule("on=UPDATE BINARY,remove-after"));
    let write = host::update_binary(0xCD01, b"kept");
    assert_eq!(card.transmit(&write), Reply::Removed);
    card.insert();
    assert!(card.card().state().files.contains_key(&0xCD01));
}

#[test]
fn delay_and_timing_make_the_answer_late() {
    let mut card = card();
    card.add_fault(rule("on=SELECT,delay=1500"));
    match card.transmit(&host::select_application()) {
        Reply::Answer { late, .. } => assert!(late >= Duration::from_millis(1500), "{late:?}"),
        other => panic!("{other:?}"),
    }
    card.set_timing(Timing::Physical);
    let pin = host::verify(crate::model::pin::PinRef::User, b"648219");
    match card.transmit(&pin) {
        Reply::Answer { late, bytes } => {
            assert_eq!(bytes, [0x90, 0x00]);
            // Late by what is left of the physical card's time (none, on a machine slower
            // than the card).
            assert!(late <= Timing::Physical.of(Work::PinCheck));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupt_flips_one_bit_of_the_data_and_keeps_the_status() {
    let mut plain = card();
    let mut faulty = card();
    let select = host::select_application();
    faulty.add_fault(rule("on=SELECT,corrupt"));
    let (good, bad) = (
        answer(plain.transmit(&select)),
        answer(faulty.transmit(&select)),
    );
    let (good, bad) = (hex::decode(&good).unwrap(), hex::decode(&bad).unwrap());
    assert_eq!(good.len(), bad.len());
    let flipped: u32 = good
        .iter()
        .zip(&bad)
        .map(|(a, b)| (a ^ b).count_ones())
        .sum();
    assert_eq!(flipped, 1);
    assert_eq!(good[good.len() - 2..], bad[bad.len() - 2..]);
    // An answer without data is left alone and the rule waits for one with data.
    let verify = hex::decode(VERIFY_STATUS).unwrap();
    faulty.add_fault(rule("on=VERIFY,corrupt"));
    assert_eq!(answer(faulty.transmit(&verify)), "63C3");
    assert_eq!(faulty.faults()[1].fired, 0);
    assert_eq!(faulty.injected(), 1, "only the SELECT's fault was injected");
}

#[test]
fn mute_runs_nothing_and_tear_loses_the_answer() {
    let mut card = card();
    answer(card.transmit(&host::select_application()));
    card.add_fault(rule("on=VERIFY,mute"));
    let pin = host::verify(crate::model::pin::PinRef::User, b"000000");
    assert_eq!(card.transmit(&pin), Reply::Mute);
    assert_eq!(
        answer(card.transmit(&hex::decode(VERIFY_STATUS).unwrap())),
        "63C3"
    );
    card.add_fault(rule("on=UPDATE BINARY,tear"));
    assert_eq!(
        card.transmit(&host::update_binary(0xCD02, b"x")),
        Reply::Torn
    );
    assert!(card.is_inserted());
}

#[test]
fn one_fault_per_command_the_first_rule_wins() {
    let mut card = card();
    card.add_fault(rule("on=SELECT,status=6A82"));
    card.add_fault(rule("on=SELECT,status=6F00"));
    assert_eq!(answer(card.transmit(&host::select_application())), "6A82");
    assert_eq!(answer(card.transmit(&host::select_application())), "6F00");
    assert!(answer(card.transmit(&host::select_application())).ends_with("9000"));
    assert_eq!(card.clear_faults(), 2);
}
