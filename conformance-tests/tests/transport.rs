//! The vpcd link itself: APDU rate through pcscd, and the card coming back after pcscd restarts.

use std::time::Instant;

use conformance_tests::{Sandbox, PIN, SO_PIN};

/// vpcd sends each frame in two segments; without TCP_QUICKACK on the card's side every APDU
/// waits ~40 ms for a delayed ACK (about 20 APDUs per second). This pins the fix: the rate is
/// printed, and the assertion sits far below the measured figure and far above the stall.
#[test]
fn hundreds_of_apdus_per_second_through_pcscd() {
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
    assert!(
        rate > 100.0,
        "only {rate:.1} APDU/s: the 40 ms delayed-ACK stall is back?"
    );
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
