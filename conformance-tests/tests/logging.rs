//! The emulator's logs name every APDU but never carry PINs.

use conformance_tests::{Sandbox, PIN, SO_PIN};

#[test]
fn trace_log_names_commands_and_redacts_pins() {
    let mut sandbox = Sandbox::pcscd_only();
    sandbox.insert_card_with(0, &["-vv"]);
    sandbox.ok(
        "sc-hsm-tool",
        &["--initialize", "--so-pin", SO_PIN, "--pin", PIN],
    );
    sandbox.ok("pkcs11-tool", &["--login", "--pin", PIN, "--list-objects"]);
    sandbox.ok(
        "pkcs11-tool",
        &["--change-pin", "--pin", PIN, "--new-pin", "135790"],
    );
    let log = sandbox.card_log(0);
    for name in [
        "SELECT",
        "VERIFY",
        "INITIALIZE DEVICE",
        "ENUMERATE OBJECTS",
        "READ BINARY",
        "CHANGE REFERENCE DATA",
    ] {
        assert!(
            log.contains(&format!("command=\"{name}\"")),
            "{name} missing from the log"
        );
    }
    assert!(log.contains("sw=9000"), "status words are logged");
    let so_pin_bytes: String = SO_PIN
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    for secret in [
        PIN.to_string(),            // ASCII
        "363438323139".to_string(), // hex of the ASCII PIN
        "36 34 38 32 31 39".to_string(),
        "135790".to_string(),
        "313335373930".to_string(),
        so_pin_bytes,           // the SO-PIN as sent (8 bytes = these hex digits)
        "57621880".to_string(), // the SO-PIN bytes read as ASCII
    ] {
        assert!(
            !log.to_uppercase().contains(&secret.to_uppercase()),
            "secret {secret:?} found in the log"
        );
    }
}
