//! The card keeps its state across emulator restarts, clean or not.

use conformance_tests::{initialize, Sandbox};

fn snapshot(sandbox: &Sandbox) -> (String, String, String) {
    let dump = sandbox.ok("pkcs15-tool", &["-D"]);
    let serial = dump
        .lines()
        .find(|l| l.contains("Serial number"))
        .unwrap_or_default()
        .to_string();
    let info = sandbox.ok("sc-hsm-tool", &[]);
    // PKCS#11 object handles change between sessions; labels and flags must not.
    let objects = sandbox
        .ok("pkcs11-tool", &["--list-objects"])
        .lines()
        .filter(|l| l.starts_with("  "))
        .collect::<Vec<_>>()
        .join("\n");
    (
        format!("{serial}\n{}", dump.lines().next().unwrap_or_default()),
        info,
        objects,
    )
}

fn survives(signal: &str) {
    let mut sandbox = Sandbox::start();
    initialize(&sandbox, Some("persistent"));
    sandbox.write_data_object("memo", b"remember me", false);
    // One wrong PIN, so the counter is not at its maximum.
    let _ = sandbox.run(
        "pkcs11-tool",
        &["--login", "--pin", "000000", "--list-objects"],
    );

    let before = snapshot(&sandbox);
    assert!(before.0.contains("[persistent]"), "{}", before.0);
    assert!(
        before.1.contains("User PIN tries left  : 2"),
        "{}",
        before.1
    );
    assert!(before.2.contains("memo"), "{}", before.2);

    sandbox.stop_card(0, signal);
    sandbox.restart_card(0);
    assert_eq!(snapshot(&sandbox), before);
}

#[test]
fn state_survives_sigterm() {
    survives("TERM");
}

#[test]
fn state_survives_sigkill() {
    survives("KILL");
}
