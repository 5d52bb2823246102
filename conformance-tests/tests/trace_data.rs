//! The data trace (`--trace-data`, `--trace-data-json`) through pcscd and real clients: each
//! kind of secret, planted as a distinct canary value, is in neither format (hex or ASCII);
//! `trace show` prints it; `trace replay` of the card's own recording finds no difference
//! against the same seeded card and names the real ones against another card; and the
//! recordings of physical cards in `fixtures/real-card/transcripts/` replay as the fixtures'
//! README says. (Every card of the suite also writes a data trace that must decode every
//! command it carried out: `Sandbox`'s drop.)

use std::process::Command;

use conformance_tests::{arg, emulator_binary, text, Sandbox};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// The canaries: one distinct value per kind of secret.
const USER_PIN: &str = "Kanary61";
const SO_PIN: &str = "C0A1C0A2C0A3C0A4";
const NEW_PIN: &str = "Nw7Canry";
const RESET_PIN: &str = "Rs7Canry";
/// A DKEK share (and so the DKEK, the only share).
fn share() -> Vec<u8> {
    (0..32u32).map(|i| (i * 37 + 11) as u8).collect()
}
/// An EC private key (P-256 scalar) that goes into the card in an UNWRAP KEY.
const PRIVATE_KEY: &str = "0C0FFEE01D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D1D";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn spaced(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every form a value could take in a trace: ASCII, hex with and without spaces, any case.
fn forms(bytes: &[u8]) -> Vec<String> {
    let h = hex(bytes);
    let mut out = vec![
        h.clone(),
        spaced(&h),
        h.to_lowercase(),
        spaced(&h).to_lowercase(),
    ];
    if bytes.iter().all(|b| (0x20..0x7F).contains(b)) {
        out.push(String::from_utf8_lossy(bytes).into_owned());
    }
    out
}

fn emulator(args: &[&str]) -> std::process::Output {
    Command::new(emulator_binary())
        .args(args)
        .output()
        .expect("sc-hsm-emulator runs")
}

fn apdu(header: &str, data: &[u8]) -> String {
    let mut out = header.to_string();
    if data.len() > 255 {
        out.push_str(&format!("00{:04X}", data.len()));
    } else {
        out.push_str(&format!("{:02X}", data.len()));
    }
    out.push_str(&hex(data));
    out
}

#[test]
fn every_kind_of_secret_is_taken_out_of_both_formats() {
    let mut sandbox = Sandbox::pcscd_only();
    let dir = sandbox.scratch().to_path_buf();
    let json = arg(&dir, "canary.json");
    let txt = arg(&dir, "canary.txt");
    sandbox.insert_card_with(0, &["-v", "--trace-data-json", &json, "--trace-data", &txt]);
    let select = "00A404000BE82B0601040181C31F0201";
    // INITIALIZE (user PIN, SO-PIN), a DKEK share, CHANGE REFERENCE DATA, RESET RETRY COUNTER.
    sandbox.ok(
        "sc-hsm-tool",
        &[
            "--initialize",
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
            "--dkek-shares",
            "1",
        ],
    );
    let share = share();
    sandbox.ok(
        "opensc-tool",
        &["-s", select, "-s", &apdu("80520000", &share)],
    );
    sandbox.ok(
        "pkcs11-tool",
        &["--change-pin", "--pin", USER_PIN, "--new-pin", NEW_PIN],
    );
    sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--new-pin",
            RESET_PIN,
        ],
    );
    // UNWRAP KEY of a private key wrapped under the share (the DKEK), by the suite's own
    // implementation of the blob.
    let pem = arg(&dir, "canary.pem");
    let made = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys\nfrom cryptography.hazmat.primitives import serialization as s\nfrom cryptography.hazmat.primitives.asymmetric import ec\nk = ec.derive_private_key(int(sys.argv[1], 16), ec.SECP256R1())\nopen(sys.argv[2], 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))",
            PRIVATE_KEY,
            &pem,
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let blob = arg(&dir, "canary.blob");
    let wrapped = Command::new("/usr/bin/python3")
        .args([
            &format!("{SCRIPTS}/dkek_blob.py"),
            "encode",
            &hex(&share),
            &pem,
            "12",
            &blob,
        ])
        .output()
        .unwrap();
    assert!(wrapped.status.success(), "{}", text(&wrapped));
    let blob = std::fs::read(&blob).unwrap();
    let verify = apdu("00200081", RESET_PIN.as_bytes());
    let unwrap = apdu("80740593", &blob) + "0000";
    let out = sandbox.ok("opensc-tool", &["-s", select, "-s", &verify, "-s", &unwrap]);
    assert!(out.contains("SW1=0x90"), "{out}");

    // A session PIN, generated under secure messaging: the card re-initialised with option
    // 0004, an EC key for the channel's client to sign with.
    let mut init = vec![0x80, 0x02, 0x00, 0x05, 0x81, USER_PIN.len() as u8];
    init.extend_from_slice(USER_PIN.as_bytes());
    init.extend_from_slice(&[0x82, 0x08]);
    init.extend_from_slice(&emulator::tools::hex::decode(SO_PIN).unwrap());
    sandbox.ok(
        "opensc-tool",
        &["-s", select, "-s", &apdu("80500000", &init)],
    );
    sandbox.ok(
        "pkcs11-tool",
        &[
            "--login",
            "--pin",
            USER_PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
        ],
    );
    let lines = sandbox.python_client(
        "sm_client.py",
        &[
            "session",
            "--pin",
            USER_PIN,
            "--session-pin",
            "--show-session-pin",
        ],
    );
    let session_pin = lines
        .iter()
        .find_map(|l| l.strip_prefix("session_pin_value="))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_string();
    let session_pin = emulator::tools::hex::decode(&session_pin).unwrap();

    let both = [
        std::fs::read_to_string(&json).unwrap(),
        std::fs::read_to_string(&txt).unwrap(),
    ];
    let canaries: [(&str, Vec<u8>); 7] = [
        ("user PIN", USER_PIN.as_bytes().to_vec()),
        ("SO-PIN", emulator::tools::hex::decode(SO_PIN).unwrap()),
        ("new PIN", NEW_PIN.as_bytes().to_vec()),
        ("PIN set by the SO", RESET_PIN.as_bytes().to_vec()),
        ("DKEK share", share.clone()),
        ("session PIN", session_pin),
        (
            "private key",
            emulator::tools::hex::decode(PRIVATE_KEY).unwrap(),
        ),
    ];
    for (format, trace) in ["JSON", "text"].iter().zip(&both) {
        assert!(trace.len() > 1000, "{format}: {trace}");
        for (what, value) in &canaries {
            for form in forms(value) {
                assert!(
                    !trace.contains(&form),
                    "the {what} ({form}) is in the {format} data trace"
                );
            }
        }
        // Each was taken out where it occurred, and said so.
        for placeholder in [
            "[user-pin#1:8]",
            "[user-pin#2:8]",
            "[user-pin#3:8]",
            "[so-pin#1:8]",
            "[dkek-share#1:32]",
            "[wrapped-key-body#1:",
            "[session-pin#1:",
        ] {
            assert!(trace.contains(placeholder), "{format}: no {placeholder}");
        }
    }
    assert!(both[1].contains("[taken out: DKEK share #1, 32 bytes]"));
    assert!(both[1].contains("[secure messaging]"));
    // `trace show` reads the JSON back, filtered.
    let shown = emulator(&[
        "trace", "show", &json, "--only", "VERIFY", "--color", "never",
    ]);
    assert!(shown.status.success(), "{}", text(&shown));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("VERIFY") && !shown.contains("UNWRAP KEY"),
        "{shown}"
    );
    assert!(
        shown.contains("[taken out: user PIN #3, 8 bytes]"),
        "{shown}"
    );
}

/// `trace replay` of a session the card recorded: the same seeded card answers it the same;
/// a card made without the demo keys differs where the keys are asked for, and only there.
#[test]
fn a_recording_replays_against_the_same_card_and_names_real_differences() {
    let mut sandbox = Sandbox::pcscd_only();
    let dir = sandbox.scratch().to_path_buf();
    let json = arg(&dir, "session.json");
    sandbox.insert_card_with(
        0,
        &[
            "-v",
            "--seed",
            "7",
            "--profile",
            "demo",
            "--trace-data-json",
            &json,
        ],
    );
    sandbox.ok("pkcs15-tool", &["-D"]);
    let data = arg(&dir, "data.txt");
    std::fs::write(&data, b"replayed").unwrap();
    sandbox.sign("02", "ECDSA-SHA256", &data, &arg(&dir, "sig"), &[]);
    sandbox.ok("pkcs11-tool", &["--login", "--pin", "648219", "-O"]);
    // The sandbox's directory goes with it: keep the recording.
    let kept = tempfile::tempdir().unwrap();
    let dir = kept.path().to_path_buf();
    let recorded = arg(&dir, "session.json");
    std::fs::copy(&json, &recorded).unwrap();
    let json = recorded;
    drop(sandbox);

    let fresh = arg(&dir, "fresh.redb");
    let same = emulator(&[
        "trace",
        "replay",
        &json,
        "--db",
        &fresh,
        "--seed",
        "7",
        "--profile",
        "demo",
        "--exact",
    ]);
    let report = String::from_utf8_lossy(&same.stdout);
    assert!(same.status.success(), "{}", text(&same));
    assert!(report.contains(" 0 different, 0 skipped"), "{report}");

    let other = arg(&dir, "other.redb");
    let differs = emulator(&[
        "trace",
        "replay",
        &json,
        "--db",
        &other,
        "--seed",
        "7",
        "--profile",
        "initialized",
    ]);
    let report = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(differs.status.code(), Some(1), "{report}");
    let differing: Vec<&str> = report.lines().filter(|l| l.contains("DIFFERS")).collect();
    assert!(!differing.is_empty(), "{report}");
    // The keys and their certificates are missing: their files are not found, and nothing
    // is signed. The PIN, the card's configuration, its version are the same.
    assert!(
        report.contains("status word: recorded 9000, now 6A82"),
        "{report}"
    );
    for line in &differing {
        assert!(
            ["SELECT", "READ BINARY", "SIGN", "ENUMERATE OBJECTS"]
                .iter()
                .any(|c| line.contains(c)),
            "an unexpected difference: {line}\n{report}"
        );
    }
}

/// The recordings of physical cards replay with exactly the differences their README lists.
#[test]
fn physical_card_transcripts_replay_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let readme =
        std::fs::read_to_string(format!("{FIXTURES}/real-card/transcripts/README.md")).unwrap();
    // Lines of the form: `replay: FILE | ARGS | compared N | same M`
    let mut checked = 0;
    for line in readme.lines().filter_map(|l| l.strip_prefix("replay: ")) {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [file, args, compared, same] = parts[..] else {
            panic!("a replay line of the README has four parts: {line}");
        };
        let db = dir.path().join(format!("card-{checked}.redb"));
        let db = db.to_str().unwrap();
        let (init, args) = args.split_once(";;").unwrap_or(("", args));
        if !init.trim().is_empty() {
            let mut made = vec!["init", "--db", db];
            made.extend(init.split_whitespace());
            let out = emulator(&made);
            assert!(out.status.success(), "{}", text(&out));
        }
        let path = format!("{FIXTURES}/real-card/transcripts/{file}");
        let mut all = vec!["trace", "replay", &path, "--db", db, "--select"];
        all.extend(args.split_whitespace());
        let out = emulator(&all);
        let report = String::from_utf8_lossy(&out.stdout);
        let summary = report.lines().last().unwrap_or("");
        assert!(
            summary.contains(&format!("{compared} compared, {same} the same")),
            "{file}: expected {compared} compared, {same} the same:\n{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 3, "{readme}");
}
