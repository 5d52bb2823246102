//! Secure messaging with the device key through pcscd and vpcd: chip authentication
//! (TR-03110 id-CA-ECDH-AES-CBC-CMAC-128) and commands in secure messaging by the suite's own
//! client (`scripts/sm_client.py`, Python's `cryptography`: every MAC checked, the signature
//! verified against the key's CV request), the channel ending with the first plain command or
//! a wrong MAC, session PINs (option `0004`), and OpenSC's `pkcs15-tool --test-session-pin`
//! where OpenSC was built with OpenPACE.

use conformance_tests::{field, offline, opensc, text, Sandbox, PIN};

/// `scripts/sm_client.py session ARGS` inside the sandbox; its lines.
fn client(sandbox: &Sandbox, args: &[&str]) -> Vec<String> {
    let mut all = vec!["session"];
    all.extend_from_slice(args);
    sandbox.python_client("sm_client.py", &all)
}

/// A card initialised offline with `init_args`, served in slot 0, with an EC key 1.
fn card(init_args: &[&str]) -> Sandbox {
    let mut sandbox = Sandbox::pcscd_only();
    let db = sandbox.db_path(0);
    let mut args = vec!["init", "--db", db.to_str().unwrap()];
    args.extend_from_slice(init_args);
    offline(&args);
    let trace = sandbox.scratch().join("trace.txt");
    sandbox.insert_card_with(0, &["-v", "--trace", trace.to_str().unwrap()]);
    sandbox.generate_key_pair("EC:prime256v1", "01", &[]);
    sandbox
}

#[test]
fn commands_in_secure_messaging_are_answered_in_it() {
    let sandbox = card(&[]);
    let lines = client(&sandbox, &["--sign", "1"]);
    assert_eq!(
        lines[0], "ca mse=9000 ga=9000 token_verified=true",
        "{lines:?}"
    );
    assert_eq!(lines[1], "verify sw=9000 mac_verified=true", "{lines:?}");
    assert_eq!(
        lines[2], "sign sw=9000 mac_verified=true verified=true",
        "{lines:?}"
    );
    // A plain SELECT ended the channel: a protected command finds none.
    assert_eq!(lines[3], "plain_ends sw=6882", "{lines:?}");
    let trace = std::fs::read_to_string(sandbox.scratch().join("trace.txt")).unwrap();
    assert!(
        trace
            .lines()
            .any(|l| l.contains("SIGN") && l.contains("[secure messaging]") && l.contains("9000")),
        "{trace}"
    );
}

#[test]
fn a_wrong_mac_ends_the_channel() {
    let sandbox = card(&[]);
    let lines = client(&sandbox, &["--tamper"]);
    assert_eq!(lines[2], "tamper sw=6988 again=6882", "{lines:?}");
}

#[test]
fn session_pins_need_option_0004_and_stand_for_the_pin() {
    let without = card(&[]);
    let lines = client(&without, &["--session-pin"]);
    assert_eq!(field(&lines[2], "sw"), "6A81", "{lines:?}");
    assert_eq!(field(&lines[2], "mac_verified"), "true", "{lines:?}");
    let with = card(&["--session-pin"]);
    let lines = client(&with, &["--session-pin"]);
    assert_eq!(
        lines[2], "session_pin sw=9000 mac_verified=true length=8",
        "{lines:?}"
    );
    // After the channel, the session PIN verifies as the user PIN; a wrong one costs a try.
    assert_eq!(
        lines[3], "session_pin_verify sw=9000 wrong=63C2",
        "{lines:?}"
    );
}

#[test]
fn opensc_generates_and_verifies_a_session_pin() {
    let sandbox = card(&["--session-pin"]);
    if !sandbox.trust_for_chip_authentication() {
        // Debian's OpenSC has no OpenPACE: the card announces session PINs, and OpenSC
        // cannot open the channel they need.
        let out = sandbox.run("pkcs15-tool", &["--test-session-pin", "--pin", PIN]);
        assert!(!out.status.success());
        assert!(
            text(&out).contains("Operation failed: Not supported"),
            "{}",
            text(&out)
        );
        opensc().note("pkcs15-tool --test-session-pin needs OpenSC with OpenPACE");
        return;
    }
    let out = sandbox.ok("pkcs15-tool", &["--test-session-pin", "--pin", PIN]);
    assert!(
        out.contains("Generated session PIN (in hexadecimal form): "),
        "{out}"
    );
    assert!(out.contains("Verified session PIN"), "{out}");
    // The card announces session PINs (option 0004 in its FCI), so OpenSC does not warn.
    assert!(!out.contains("Card does not support session PIN"), "{out}");
    let trace = std::fs::read_to_string(sandbox.scratch().join("trace.txt")).unwrap();
    for step in ["GENERAL AUTHENTICATE", "GENERATE SESSION PIN"] {
        assert!(
            trace
                .lines()
                .any(|l| l.contains(step) && l.contains("9000")),
            "{step}: {trace}"
        );
    }
    assert!(
        trace
            .lines()
            .any(|l| l.contains("GENERATE SESSION PIN") && l.contains("[secure messaging]")),
        "{trace}"
    );
}
