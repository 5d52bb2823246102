//! The card is recognised, initialised and described by OpenSC as a SmartCard-HSM.

use conformance_tests::{initialize, Sandbox};

#[test]
fn opensc_tool_names_the_card_and_shows_its_atr() {
    let sandbox = Sandbox::start();
    let name = sandbox.ok("opensc-tool", &["-n"]);
    assert!(name.contains("SmartCard-HSM"), "{name}");
    let atr = sandbox.ok("opensc-tool", &["-a"]);
    assert!(
        atr.contains("3b:fe:18:00:00:81:31:fe:45:80:31:81:54:48:53:4d:31:73:80:21:40:81:07:fa"),
        "{atr}"
    );
}

#[test]
fn blank_card_reports_never_initialized_then_initialize_sets_pins() {
    let sandbox = Sandbox::start();
    let blank = sandbox.ok("sc-hsm-tool", &[]);
    assert!(
        blank.contains("SmartCard-HSM has never been initialized"),
        "{blank}"
    );

    initialize(&sandbox, None);
    let info = sandbox.ok("sc-hsm-tool", &[]);
    assert!(info.contains("Version              : 4.0"), "{info}");
    assert!(info.contains("SO-PIN tries left    : 15"), "{info}");
    assert!(info.contains("User PIN tries left  : 3"), "{info}");
    assert!(!info.contains("never been initialized"), "{info}");
    // Initialised without DKEK shares: nothing about a DKEK, and no error.
    assert!(!info.contains("DKEK"), "{info}");
    assert!(!info.contains("failed"), "{info}");
}

#[test]
fn label_given_at_initialize_shows_in_pkcs11_tool() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, Some("Conformance HSM"));
    let slots = sandbox.ok("pkcs11-tool", &["-L"]);
    assert!(
        slots.contains("token label        : Conformance HSM"),
        "{slots}"
    );
    assert!(slots.contains("firmware version   : 4.0"), "{slots}");
}

fn serial_of(dump: &str) -> String {
    dump.lines()
        .find_map(|l| l.trim().strip_prefix("Serial number  : "))
        .unwrap_or_else(|| panic!("no serial number in:\n{dump}"))
        .trim()
        .to_string()
}

#[test]
fn pkcs15_dump_shows_card_serial_and_pins() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    let dump = sandbox.ok("pkcs15-tool", &["-D"]);
    assert!(dump.contains("PKCS#15 Card [SmartCard-HSM]:"), "{dump}");
    assert!(dump.contains("PIN [UserPIN]"), "{dump}");
    assert!(dump.contains("PIN [SOPIN]"), "{dump}");
    let serial = serial_of(&dump);
    assert_eq!(serial.len(), 11, "{serial}");
}

#[test]
fn two_cards_have_different_serials() {
    let mut sandbox = Sandbox::start();
    sandbox.insert_card(1);
    let a = sandbox.ok("pkcs15-tool", &["--reader", "0", "-D"]);
    let b = sandbox.ok("pkcs15-tool", &["--reader", "1", "-D"]);
    assert_ne!(serial_of(&a), serial_of(&b));
    let slots = sandbox.ok("pkcs11-tool", &["-L"]);
    assert!(
        slots.contains(&serial_of(&a)) && slots.contains(&serial_of(&b)),
        "{slots}"
    );
}
