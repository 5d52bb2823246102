//! PIN management through pkcs11-tool, opensc-explorer and sc-hsm-tool, as on the wiki page.

use conformance_tests::{initialize, text, Sandbox, PIN, SO_PIN};

fn user_tries(sandbox: &Sandbox) -> String {
    let info = sandbox.ok("sc-hsm-tool", &[]);
    info.lines()
        .find(|l| l.starts_with("User PIN"))
        .unwrap_or_else(|| panic!("no user PIN line:\n{info}"))
        .to_string()
}

fn so_tries(sandbox: &Sandbox) -> String {
    let info = sandbox.ok("sc-hsm-tool", &[]);
    info.lines()
        .find(|l| l.starts_with("SO-PIN"))
        .unwrap_or_else(|| panic!("no SO-PIN line:\n{info}"))
        .to_string()
}

#[test]
fn init_token_and_init_pin_as_on_the_wiki() {
    let sandbox = Sandbox::start();
    let out = sandbox.ok(
        "pkcs11-tool",
        &[
            "--init-token",
            "--init-pin",
            "--so-pin=3537363231383830",
            "--new-pin=648219",
            "--label=test",
            "--pin=648219",
        ],
    );
    assert!(out.contains("Token successfully initialized"), "{out}");
    assert!(out.contains("User PIN successfully initialized"), "{out}");
    let slots = sandbox.ok("pkcs11-tool", &["-L"]);
    assert!(slots.contains("token label        : test"), "{slots}");
    assert!(slots.contains("PIN initialized"), "{slots}");
    // The new user PIN logs in.
    sandbox.ok("pkcs11-tool", &["--login", "--pin", PIN, "--list-objects"]);
}

#[test]
fn user_and_so_pin_changes() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    let out = sandbox.ok(
        "pkcs11-tool",
        &["--change-pin", "--pin", PIN, "--new-pin", "123456"],
    );
    assert!(out.contains("PIN successfully changed"), "{out}");
    let wrong = sandbox.run("pkcs11-tool", &["--login", "--pin", PIN, "--list-objects"]);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("CKR_PIN_INCORRECT"),
        "{}",
        text(&wrong)
    );
    sandbox.ok(
        "pkcs11-tool",
        &["--change-pin", "--pin", "123456", "--new-pin", PIN],
    );

    let new_so = "0102030405060708";
    let out = sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO_PIN,
            "--change-pin",
            "--new-pin",
            new_so,
        ],
    );
    assert!(out.contains("PIN successfully changed"), "{out}");
    // The old SO-PIN no longer unblocks; the new one does.
    let old = sandbox.run(
        "pkcs11-tool",
        &[
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--new-pin",
            PIN,
        ],
    );
    assert!(!old.status.success(), "{}", text(&old));
    assert!(so_tries(&sandbox).contains("14"), "{}", so_tries(&sandbox));
    sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            new_so,
            "--init-pin",
            "--new-pin",
            PIN,
        ],
    );
    assert!(so_tries(&sandbox).contains("15"));
}

#[test]
fn three_wrong_pins_lock_and_the_so_unblocks() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    for expected in [
        "CKR_PIN_INCORRECT",
        "CKR_PIN_INCORRECT",
        "CKR_PIN_INCORRECT",
    ] {
        let out = sandbox.run(
            "pkcs11-tool",
            &["--login", "--pin", "111111", "--list-objects"],
        );
        assert!(!out.status.success());
        assert!(text(&out).contains(expected), "{}", text(&out));
    }
    let locked = sandbox.run("pkcs11-tool", &["--login", "--pin", PIN, "--list-objects"]);
    assert!(
        text(&locked).contains("CKR_PIN_LOCKED"),
        "{}",
        text(&locked)
    );
    assert_eq!(user_tries(&sandbox), "User PIN locked");

    let out = sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--new-pin",
            PIN,
        ],
    );
    assert!(out.contains("User PIN successfully initialized"), "{out}");
    assert!(
        user_tries(&sandbox).ends_with(": 3"),
        "{}",
        user_tries(&sandbox)
    );
    sandbox.ok("pkcs11-tool", &["--login", "--pin", PIN, "--list-objects"]);
}

#[test]
fn opensc_explorer_script_from_the_wiki() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, None);
    let script = sandbox.scratch().join("explorer.txt");
    std::fs::write(
        &script,
        "cd aid:E82B0601040181C31F0201\n\
         ls\n\
         verify CHV129 \"648219\"\n\
         change CHV129 \"648219\" \"123456\"\n\
         change CHV129 \"123456\" \"648219\"\n\
         change CHV136 \"3537363231383830\" \"3537363231383830\"\n",
    )
    .unwrap();
    let out = sandbox.ok("opensc-explorer", &[script.to_str().unwrap()]);
    assert!(out.contains(" 2F02 \t wEF"), "{out}");
    assert!(out.contains("Code correct."), "{out}");
    assert_eq!(out.matches("PIN changed.").count(), 3, "{out}");
    // The PIN is back to the original and the counters are full.
    assert!(user_tries(&sandbox).ends_with(": 3"));
    assert!(so_tries(&sandbox).ends_with(": 15"));
    sandbox.ok("pkcs11-tool", &["--login", "--pin", PIN, "--list-objects"]);
}

#[test]
fn reinitialize_needs_the_so_pin_and_empties_the_card() {
    let sandbox = Sandbox::start();
    initialize(&sandbox, Some("first"));
    sandbox.write_data_object("keep?", b"some data", false);

    let wrong = sandbox.ok(
        "sc-hsm-tool",
        &["--initialize", "--so-pin", "1111111111111111", "--pin", PIN],
    );
    assert!(wrong.contains("PIN code or key incorrect"), "{wrong}");
    assert!(
        so_tries(&sandbox).ends_with(": 14"),
        "{}",
        so_tries(&sandbox)
    );
    assert!(sandbox
        .ok("pkcs11-tool", &["--list-objects"])
        .contains("keep?"));

    initialize(&sandbox, None);
    assert!(so_tries(&sandbox).ends_with(": 15"));
    let objects = sandbox.ok("pkcs11-tool", &["--list-objects"]);
    assert!(!objects.contains("keep?"), "{objects}");
    let dump = sandbox.ok("pkcs15-tool", &["-D"]);
    assert!(dump.contains("PKCS#15 Card [SmartCard-HSM]"), "{dump}");
}

/// The card takes user PINs of 6 to 16 characters, as a real SmartCard-HSM does (sc-hsm-tool
/// sets one of 16); OpenSC's PKCS#11 module announces 6 to 15 (for PIN-pad readers, since
/// 2014) and refuses 16 at C_Login with CKR_PIN_LEN_RANGE.
#[test]
fn a_pin_of_16_characters_works_on_the_card_and_opensc_pkcs11_stops_at_15() {
    const LONG: &str = "1234567890123456";
    let sandbox = Sandbox::start();
    let out = sandbox.ok(
        "sc-hsm-tool",
        &["--initialize", "--so-pin", SO_PIN, "--pin", LONG],
    );
    assert!(!out.contains("failed"), "{out}");
    let verify = sandbox.run(
        "opensc-tool",
        &[
            "-s",
            "00A404000BE82B0601040181C31F020100",
            "-s",
            "002000811031323334353637383930313233343536",
        ],
    );
    let answers =
        conformance_tests::opensc_tool_responses(&String::from_utf8_lossy(&verify.stdout));
    assert_eq!(answers[1].1, "9000", "{}", text(&verify));
    let listing = sandbox.ok("pkcs11-tool", &["-L"]);
    assert!(listing.contains("pin min/max        : 6/15"), "{listing}");
    let login = sandbox.run("pkcs11-tool", &["--login", "--pin", LONG, "--list-objects"]);
    assert!(!login.status.success());
    assert!(
        text(&login).contains("CKR_PIN_LEN_RANGE"),
        "{}",
        text(&login)
    );
}
