//! The emulator's logs name every APDU but never carry PINs, key material or the DKEK, at
//! any level.

use std::process::Command;

use conformance_tests::{arg, Sandbox, PIN, SO_PIN};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
const BLOB_TOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dkek_blob.py");
/// The DKEK of the fixture share `dkek-share-kcv97E3.pbe` (password "passwordpassword").
const DKEK: &str = "2848CB6E994F5A00C365C3C255ED130512CE1EB06BF08D348EEB8B2F866E3E50";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn a_trace_log_of_a_whole_session_names_commands_and_holds_no_secret() {
    let mut sandbox = Sandbox::pcscd_only();
    sandbox.insert_card_with(0, &["-vv"]);
    let dir = sandbox.scratch();
    sandbox.ok(
        "sc-hsm-tool",
        &[
            "--initialize",
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
            "--dkek-shares",
            "1",
        ],
    );
    let share = format!("{FIXTURES}/real-card/dkek-share-kcv97E3.pbe");
    sandbox.ok(
        "sc-hsm-tool",
        &[
            "--import-dkek-share",
            &share,
            "--password",
            "passwordpassword",
        ],
    );
    sandbox.generate_key_pair("EC:prime256v1", "01", &[]);
    let data = arg(dir, "data.txt");
    std::fs::write(&data, b"log me not").unwrap();
    sandbox.sign("01", "ECDSA-SHA256", &data, &arg(dir, "sig"), &[]);
    let wrapped = arg(dir, "wrapped.bin");
    sandbox.ok(
        "sc-hsm-tool",
        &["--wrap-key", &wrapped, "--key-reference", "1", "--pin", PIN],
    );
    sandbox.ok(
        "sc-hsm-tool",
        &[
            "--unwrap-key",
            &wrapped,
            "--key-reference",
            "2",
            "--pin",
            PIN,
        ],
    );
    sandbox.ok(
        "pkcs11-tool",
        &["--change-pin", "--pin", PIN, "--new-pin", "135790"],
    );

    // The private key, recovered independently from the wrap file with the known DKEK.
    let wrap_file = std::fs::read(&wrapped).unwrap();
    let (outer, _) = emulator::apdu::tlv::read(&wrap_file).unwrap();
    let (blob, _) = emulator::apdu::tlv::read(outer.value).unwrap();
    std::fs::write(arg(dir, "blob.bin"), blob.value).unwrap();
    let decoded = Command::new("/usr/bin/python3")
        .args([BLOB_TOOL, "decode", DKEK, &arg(dir, "blob.bin")])
        .output()
        .unwrap();
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let decoded = String::from_utf8_lossy(&decoded.stdout);
    let d = decoded
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"d\": \""))
        .unwrap()
        .trim_end_matches("\",")
        .to_uppercase();
    assert_eq!(d.len(), 64);

    // Each line without its timestamp: six digits of microseconds hold a 6-digit PIN now and
    // then (the secrets below are searched for in what the card wrote, not in the clock).
    let log = sandbox
        .card_log(0)
        .lines()
        .map(|line| match line.split_once(' ') {
            Some((time, rest)) if time.ends_with('Z') && time.contains('T') => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
        .to_uppercase();
    assert!(!log.is_empty());
    for name in [
        "SELECT",
        "VERIFY",
        "INITIALIZE DEVICE",
        "MANAGE KEY DOMAIN",
        "GENERATE ASYMMETRIC KEY PAIR",
        "SIGN",
        "WRAP KEY",
        "UNWRAP KEY",
        "CHANGE REFERENCE DATA",
    ] {
        assert!(
            log.contains(&format!("COMMAND=\"{name}\"")),
            "{name} missing from the log"
        );
    }
    assert!(log.contains("SW=9000"));
    for (what, secret) in [
        ("user PIN", PIN.to_string()),
        ("user PIN as hex", hex(PIN.as_bytes())),
        ("new user PIN", "135790".to_string()),
        ("new user PIN as hex", hex(b"135790")),
        ("SO-PIN", SO_PIN.to_string()),
        ("SO-PIN bytes as text", "57621880".to_string()),
        ("DKEK", DKEK.to_string()),
        ("private key", d.clone()),
        ("private key, first half", d[..32].to_string()),
        ("private key, second half", d[32..].to_string()),
    ] {
        assert!(!log.contains(&secret), "the {what} is in the log");
    }
}
