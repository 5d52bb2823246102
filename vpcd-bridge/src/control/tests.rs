use super::*;
use emulator::{Card, FaultyCard, MemoryStore};

fn control() -> (CardControl, Arc<Slot>) {
    let mut card = Card::open_seeded(Box::new(MemoryStore::default()), 3).unwrap();
    emulator::tools::admin::initialize(&mut card, &emulator::tools::admin::InitOptions::wiki())
        .unwrap();
    let slot = Slot::new(FaultyCard::new(card));
    let control = CardControl {
        back_wait: std::time::Duration::ZERO,
        ..CardControl::default()
    };
    control.attach(Arc::clone(&slot));
    (control, slot)
}

#[test]
fn presence_verbs_change_the_slot_and_tell_the_link() {
    let (control, slot) = control();
    let mut presence = slot.watch();
    let answer = control.execute("remove");
    assert!(answer.ok, "{answer:?}");
    assert!(!slot.lock().is_inserted());
    assert!(presence.has_changed().unwrap());
    presence.borrow_and_update();
    assert_eq!(
        control.execute("remove").message,
        "the card was already out of the reader"
    );
    let reset = control.execute("reset");
    assert!(!reset.ok && reset.message.contains("insert it first"));
    assert!(control.execute("insert").ok);
    assert!(slot.lock().is_inserted());
    assert!(presence.has_changed().unwrap());
    assert!(control.execute("reset").ok);
}

#[test]
fn state_is_json_with_the_card_and_its_faults() {
    let (control, _slot) = control();
    assert!(control.execute("fault add on=SIGN,status=6F00").ok);
    let state = control.execute("state");
    assert!(state.ok);
    assert!(
        state
            .data
            .starts_with("{\"inserted\":true,\"timing\":\"none\""),
        "{}",
        state.data
    );
    assert!(
        state.data.contains("\"rule\":\"on=SIGN,status=6F00\""),
        "{}",
        state.data
    );
    assert!(state.data.contains("\"serial\""), "{}", state.data);
    assert!(state.to_json().starts_with("{\"ok\":true,\"message\":"));
    assert!(state.to_wire().starts_with("ok: inserted in the reader"));
}

#[test]
fn snapshots_restore_the_saved_card_in_place() {
    let (control, slot) = control();
    assert!(control.execute("snapshot save clean").ok);
    let write = emulator::tools::host::update_binary(0xCD01, b"later");
    {
        let mut card = slot.lock();
        card.transmit(&emulator::tools::host::select_application());
        card.transmit(&emulator::tools::host::verify(
            emulator::model::pin::PinRef::User,
            b"648219",
        ));
        card.transmit(&write);
        assert!(card.card().state().files.contains_key(&0xCD01));
    }
    let presence = slot.watch();
    let loaded = control.execute("snapshot load clean");
    assert!(loaded.ok, "{loaded:?}");
    assert!(!slot.lock().card().state().files.contains_key(&0xCD01));
    assert!(
        presence.has_changed().unwrap(),
        "a load is a removal and an insertion"
    );
    assert_eq!(control.execute("snapshot list").message, "clean");
    assert!(!control.execute("snapshot load other").ok);
    assert!(!control.execute("snapshot save ../etc").ok);
}

#[test]
fn bad_requests_are_named_and_change_nothing() {
    let (control, slot) = control();
    for (line, says) in [
        ("", "an empty request"),
        ("fly", "unknown request \"fly\""),
        (
            "fault add on=FLY,tear",
            "no command of the card is called \"FLY\"",
        ),
        ("fault add on=SIGN", "needs an action"),
        ("fault add", "needs on=COMMAND"),
        ("timing fast", "unknown timing"),
        ("snapshot load", "unknown request"),
    ] {
        let answer = control.execute(line);
        assert!(!answer.ok, "{line}");
        assert!(answer.message.contains(says), "{line}: {}", answer.message);
        assert!(answer.to_wire().starts_with("error: "));
    }
    assert!(slot.lock().faults().is_empty());
    assert!(slot.lock().is_inserted());
}

#[test]
fn timing_and_fault_list() {
    let (control, slot) = control();
    assert_eq!(
        control.execute("timing physical").message,
        "timing physical"
    );
    assert_eq!(slot.lock().timing(), emulator::Timing::Physical);
    assert!(
        control
            .execute("fault add on=VERIFY,nth=2,times=forever,delay=10")
            .ok
    );
    let list = control.execute("fault list");
    assert_eq!(
        list.message,
        "[on=VERIFY,nth=2,times=forever,delay=10: seen 0, fired 0]"
    );
    assert_eq!(
        control.execute("fault clear").message,
        "1 fault rule(s) cleared"
    );
}
