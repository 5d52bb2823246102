//! The vpcd link itself: APDU rate through pcscd, and the card coming back after pcscd restarts.

use std::time::Instant;

use conformance_tests::{Sandbox, PIN, SO_PIN};

/// Hundreds of APDUs through pcscd + vpcd, each answered. The rate is printed; how fast the
/// link is (TCP_QUICKACK against vpcd's two-segment frames, see `link.rs`) is measured by the
/// stack bench, not asserted here.
#[test]
fn hundreds_of_apdus_through_pcscd_are_each_answered() {
    let sandbox = Sandbox::start();
    const N: usize = 400;
    let mut args = vec![
        "-s".to_string(),
        "00A404000BE82B0601040181C31F020100".to_string(),
    ];
    for _ in 1..N {
        args.push("-s".into());
        args.push("0084000008".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    let out = sandbox.ok("opensc-tool", &args);
    let elapsed = start.elapsed();
    assert_eq!(out.matches("SW1=0x90, SW2=0x00").count(), N, "{out}");
    let rate = N as f64 / elapsed.as_secs_f64();
    println!("{N} APDUs through pcscd + vpcd in {elapsed:?}: {rate:.0} APDU/s");
}

#[test]
fn card_comes_back_after_pcscd_restarts() {
    let mut sandbox = Sandbox::start();
    let serial_before = sandbox.ok("pkcs15-tool", &["-D"]);
    sandbox.restart_pcscd();
    sandbox.wait_for_card(0);
    let serial_after = sandbox.ok("pkcs15-tool", &["-D"]);
    assert_eq!(serial_before, serial_after);
}

#[test]
fn two_cards_in_one_process_stay_independent() {
    let mut sandbox = Sandbox::pcscd_only();
    sandbox.insert_two_cards_in_one_process();
    let serial = |reader: &str| {
        let dump = sandbox.ok("pkcs15-tool", &["--reader", reader, "-D"]);
        dump.lines()
            .find(|l| l.contains("Serial number"))
            .unwrap_or_default()
            .to_string()
    };
    assert_ne!(serial("0"), serial("1"));
    sandbox.ok(
        "sc-hsm-tool",
        &[
            "--reader",
            "0",
            "--initialize",
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
            "--label",
            "first",
        ],
    );
    // Card 1 is still blank, and wrong PINs on card 0 leave it alone.
    assert!(sandbox
        .ok("sc-hsm-tool", &["--reader", "1"])
        .contains("never been initialized"));
    sandbox.ok(
        "sc-hsm-tool",
        &[
            "--reader",
            "1",
            "--initialize",
            "--so-pin",
            SO_PIN,
            "--pin",
            PIN,
            "--label",
            "second",
        ],
    );
    let _ = sandbox.run(
        "pkcs11-tool",
        &[
            "--slot-index",
            "0",
            "--login",
            "--pin",
            "000000",
            "--list-objects",
        ],
    );
    assert!(sandbox
        .ok("sc-hsm-tool", &["--reader", "0"])
        .contains("User PIN tries left  : 2"));
    assert!(sandbox
        .ok("sc-hsm-tool", &["--reader", "1"])
        .contains("User PIN tries left  : 3"));
    let slots = sandbox.ok("pkcs11-tool", &["-L"]);
    assert!(
        slots.contains("token label        : first")
            && slots.contains("token label        : second"),
        "{slots}"
    );
}

#[test]
fn a_client_holding_the_card_for_long_delays_others_but_breaks_nothing() {
    let sandbox = Sandbox::start();
    let log = sandbox.scratch().join("hold.log");
    let mut holder = sandbox
        .command(env!("CARGO_BIN_EXE_hold-card"))
        .arg("3000")
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    conformance_tests::wait_until("the holder's transaction", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("HOLDING")
    });
    // This client waits for the transaction to end, then works normally.
    let name = sandbox.ok("opensc-tool", &["-n"]);
    assert!(name.contains("SmartCard-HSM"), "{name}");
    assert!(
        std::fs::read_to_string(&log).unwrap().contains("RELEASED"),
        "opensc-tool got in during the transaction"
    );
    assert!(holder.wait().unwrap().success());
    sandbox.ok("pkcs11-tool", &["--generate-random", "16"]);
}

#[test]
fn a_second_emulator_on_the_same_database_is_refused_clearly() {
    let sandbox = Sandbox::start();
    let out = std::process::Command::new(conformance_tests::emulator_binary())
        .args(["run", "--vpcd", "127.0.0.1:1"])
        .arg("--db")
        .arg(sandbox.db_path(0))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("is already in use by another emulator process"),
        "{message}"
    );
    // The running card is unharmed.
    sandbox.ok("opensc-tool", &["-n"]);
}

const SELECT: &str = "00A404000BE82B0601040181C31F020100";
const CLIENT: &str = env!("CARGO_BIN_EXE_pcsc-client");

/// vpcd frames a 1-byte APDU exactly like its control messages (`00` power off, `01` on, `02`
/// reset, `04` ATR). Each such APDU is answered `6700`, and no client of the reader blocks.
#[test]
fn one_byte_apdus_are_answered_6700_and_block_nothing() {
    let sandbox = Sandbox::start();
    let bytes = ["00", "01", "02", "03", "04", "05", "FF"];
    let mut apdus = vec![SELECT];
    apdus.extend_from_slice(&bytes);
    apdus.push(SELECT);
    let answers = sandbox.raw_client(CLIENT, &apdus);
    assert_eq!(answers.len(), bytes.len() + 2, "{answers:?}");
    for (byte, answer) in bytes.iter().zip(&answers[1..]) {
        assert_eq!(answer, "6700", "{byte}");
    }
    for select in [&answers[0], &answers[bytes.len() + 1]] {
        assert!(
            select.starts_with("6F") && select.ends_with("9000"),
            "{answers:?}"
        );
    }
    // Another client of the same reader is served.
    sandbox.ok("opensc-tool", &["-a"]);
}

/// An extended APDU longer than a vpcd frame (pcsc-lite accepts it) makes vpcd drop the link:
/// the card comes back by itself, without a restart of the emulator or of pcscd.
#[test]
fn the_card_comes_back_by_itself_after_vpcd_drops_the_link() {
    let sandbox = Sandbox::start();
    let serial = sandbox.ok("pkcs15-tool", &["-D"]);
    for len in ["x65536", "x65540", "x65548"] {
        let answers = sandbox.raw_client(CLIENT, &[SELECT, len]);
        assert!(answers[1].starts_with("ERROR"), "{len}: {answers:?}");
        let dropped = Instant::now();
        sandbox.wait_for_card(0);
        println!(
            "{len}: the card was back {:?} after the link dropped",
            dropped.elapsed()
        );
        assert_eq!(sandbox.ok("pkcs15-tool", &["-D"]), serial);
    }
}

/// A file larger than a vpcd frame can carry (`--max-file-size 65535`, what 2-byte offsets
/// address): READ BINARY answers what fits in a frame and the rest waits behind `61xx` for GET
/// RESPONSE; nothing hangs.
#[test]
fn an_answer_larger_than_a_vpcd_frame_waits_behind_61xx() {
    let mut sandbox = Sandbox::pcscd_only();
    sandbox.insert_card_with(0, &["--max-file-size", "65535"]);
    conformance_tests::initialize(&sandbox, None);
    let update = |offset: u16, byte: u8, len: usize| {
        let data = format!(
            "5402{offset:04X}5382{len:04X}{}",
            format!("{byte:02X}").repeat(len)
        );
        format!("00D7CF0100{:04X}{data}", data.len() / 2)
    };
    let answers = sandbox.raw_client(
        CLIENT,
        &[
            SELECT,
            "0020008106363438323139",
            &update(0, 0xAA, 60000),
            &update(60000, 0xBB, 5535),
            "00B1CF01000004540200000000",
            "00C0000000",
            "00C0000000",
        ],
    );
    assert_eq!(answers[1..4], ["9000", "9000", "9000"]);
    // 65,533 bytes of data (the frame's 65,535 with the status word), then 61 02.
    let first = &answers[4];
    assert_eq!(first.len(), 2 * 65_533 + 4);
    assert!(first.ends_with("6102"), "{}", &first[first.len() - 4..]);
    let mut content = first[..2 * 65_533].to_string();
    content.push_str(
        answers[5]
            .strip_suffix("9000")
            .expect("the rest, then 9000"),
    );
    assert_eq!(
        content,
        format!("{}{}", "AA".repeat(60000), "BB".repeat(5535))
    );
    assert_eq!(answers[6], "6985", "nothing more waits");
}

/// vpcd serves one card per slot: a second emulator on a served port connects (vpcd's listen
/// backlog takes it) but is never talked to; it says so instead of claiming to be inserted.
#[test]
fn a_second_card_on_a_served_slot_says_that_vpcd_does_not_talk_to_it() {
    let mut sandbox = Sandbox::start();
    let other = sandbox.scratch().join("other.redb");
    let other = other.to_str().unwrap();
    let me = conformance_tests::emulator_binary();
    sandbox.spawn_inside(
        0,
        me,
        &["run", "-v", "--vpcd", "127.0.0.1:35963", "--db", other],
    );
    conformance_tests::wait_until("the second card to notice", || {
        sandbox
            .card_log(0)
            .contains("does not talk to this card: another card is probably in this slot")
    });
    let log = sandbox.card_log(0);
    assert_eq!(log.matches("card inserted into vpcd").count(), 1, "{log}");
}

/// More cards than one vpcd reader entry has slots: `run --cards 5` against a pcscd with a
/// 6-slot configuration, and `sandbox --cards 4`; each card is its own.
#[test]
fn more_than_two_cards_each_in_its_own_reader() {
    let serials = |output: &str| {
        let mut serials: Vec<String> = output
            .lines()
            .filter(|l| l.contains("Serial number"))
            .map(str::to_string)
            .collect();
        let n = serials.len();
        serials.sort();
        serials.dedup();
        (n, serials.len())
    };
    let mut sandbox = Sandbox::with_slots(6);
    sandbox.insert_cards_in_one_process(5);
    let mut dumps = String::new();
    for reader in 0..5 {
        dumps.push_str(&sandbox.ok("pkcs15-tool", &["--reader", &reader.to_string(), "-D"]));
    }
    assert_eq!(serials(&dumps), (5, 5), "{dumps}");
    let readers = sandbox.ok("opensc-tool", &["-l"]);
    for name in [
        "Virtual PCD 00 01",
        "Virtual PCD 1 00 00",
        "Virtual PCD 2 00 00",
    ] {
        assert!(readers.contains(name), "{readers}");
    }

    let out = std::process::Command::new(conformance_tests::emulator_binary())
        .args(["sandbox", "--cards", "4", "--", "sh", "-c"])
        .arg("for r in 0 1 2 3; do pkcs15-tool --reader $r -D; done")
        .output()
        .unwrap();
    let text = conformance_tests::text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(serials(&text), (4, 4), "{text}");
}
