//! The card keeps its state across emulator restarts, clean or not.

use conformance_tests::{emulator_binary, initialize, opensc_tool_responses, text, Sandbox};

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

/// The answer `9000` to a correct VERIFY acknowledges the restored retry counter: a SIGKILL
/// right after it (as CI runners, OOM killers and container stops do) costs no try.
#[test]
fn a_correct_pin_then_sigkill_costs_no_try() {
    const SELECT: &str = "00A404000BE82B0601040181C31F020100";
    let mut sandbox = Sandbox::start();
    initialize(&sandbox, None);
    let answers = |sandbox: &Sandbox, apdu: &str| {
        let out = sandbox.run("opensc-tool", &["-s", SELECT, "-s", apdu]);
        opensc_tool_responses(&String::from_utf8_lossy(&out.stdout))
    };
    for round in 0..3 {
        let verify = answers(&sandbox, "0020008106363438323139");
        assert_eq!(verify[1].1, "9000", "round {round}");
        sandbox.stop_card(0, "KILL");
        sandbox.restart_killed_card(0);
        assert_eq!(
            answers(&sandbox, "00200081")[1].1,
            "63C3",
            "round {round}: a correct PIN cost a try"
        );
    }
}

/// A populated card database with one byte flipped, at every 128th byte of the file (32 places
/// in every 4 KiB page): `status` either shows the same card or refuses with what is damaged.
/// It never panics (exit 101) and never shows another card; `run` refuses what `status` does.
#[test]
fn a_flipped_byte_anywhere_is_harmless_or_refused_never_another_card() {
    let mut sandbox = Sandbox::start();
    initialize(&sandbox, Some("damage"));
    sandbox.generate_key_pair("EC:prime256v1", "01", &[]);
    sandbox.write_data_object("public", &[0x5A; 600], false);
    sandbox.write_data_object("private", b"secret contents", true);
    sandbox.stop_card(0, "TERM");
    let db = sandbox.db_path(0);
    let status = |path: &std::path::Path| {
        std::process::Command::new(emulator_binary())
            .args(["status", "--db"])
            .arg(path)
            .output()
            .unwrap()
    };
    let original = status(&db);
    assert!(original.status.success(), "{}", text(&original));
    let bytes = std::fs::read(&db).unwrap();
    let copy = sandbox.scratch().join("flipped.redb");
    let (mut same, mut refused) = (0, 0);
    for at in (0..bytes.len()).step_by(128) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        std::fs::write(&copy, &flipped).unwrap();
        let out = status(&copy);
        match out.status.code() {
            Some(0) => {
                assert_eq!(out.stdout, original.stdout, "byte {at} showed another card");
                same += 1;
            }
            Some(1) => {
                let why = text(&out);
                assert!(why.contains("damaged"), "byte {at}: {why}");
                refused += 1;
            }
            other => panic!("byte {at}: status ended with {other:?}: {}", text(&out)),
        }
    }
    println!(
        "{same} flips harmless, {refused} refused, of {}",
        same + refused
    );
    assert!(refused > 0, "no flip was found");
}

/// A full disk: a commit that finds no room fails with 6581 and changes nothing (a PIN whose
/// decrement could not be written is not compared); once there is room again the card works as
/// before, and every acknowledged change survives a restart.
#[test]
fn a_full_disk_answers_6581_and_the_card_works_again_once_there_is_room() {
    const SELECT: &str = "00A404000BE82B0601040181C31F020100";
    const VERIFY: &str = "0020008106363438323139";
    const CLIENT: &str = env!("CARGO_BIN_EXE_pcsc-client");
    let update = |fid: &str, byte: u8, len: usize| {
        let data = format!("540200005382{len:04X}{}", format!("{byte:02X}").repeat(len));
        format!("00D7{fid}00{:04X}{data}", data.len() / 2)
    };
    let read = |fid: &str| format!("00B1{fid}000004540200000000");
    // READ BINARY asks for 65536 bytes: the whole file, then "end of file reached".
    let filled = |byte: u8, len: usize| format!("{}6282", format!("{byte:02X}").repeat(len));
    let mut sandbox = Sandbox::pcscd_only();
    let small = sandbox.mount_tmpfs("small", 1024);
    let db = small.join("card.redb");
    sandbox.insert_card_on(0, &db, &[]);
    initialize(&sandbox, None);
    let first = update("CF01", 0x11, 2000);
    let answers = sandbox.raw_client(CLIENT, &[SELECT, VERIFY, &first]);
    assert_eq!(answers[1..], ["9000", "9000"]);

    // Fill the disk: nothing can be committed.
    let filler = small.join("filler");
    let fill = format!("of={}", filler.display());
    sandbox.run_in_mounts("dd", &["if=/dev/zero", &fill, "bs=4k"]);
    let (second, third) = (update("CF02", 0x22, 30000), update("CF03", 0x33, 30000));
    let full = sandbox.raw_client(CLIENT, &[SELECT, VERIFY, &second, &third, &read("CF01")]);
    // The PIN's decrement cannot be written, so the PIN is not compared: not logged in.
    assert_eq!(full[1..4], ["6581", "6982", "6982"], "{full:?}");
    assert_eq!(full[4], filled(0x11, 2000), "CF01 changed");

    // Room again: everything works, without a restart, and the refused VERIFY cost no try.
    sandbox.run_in_mounts("rm", &[filler.to_str().unwrap()]);
    let fourth = update("CF04", 0x44, 30000);
    let again = sandbox.raw_client(
        CLIENT,
        &[SELECT, "00200081", VERIFY, &fourth, &read("CF04")],
    );
    assert_eq!(again[1..4], ["63C3", "9000", "9000"], "{again:?}");
    assert_eq!(again[4], filled(0x44, 30000));

    // Every acknowledged change is there after a restart; nothing refused is.
    sandbox.stop_card(0, "TERM");
    sandbox.insert_card_on(0, &db, &[]);
    let after = sandbox.raw_client(
        CLIENT,
        &[
            SELECT,
            VERIFY,
            &read("CF01"),
            &read("CF04"),
            "00A4000002CF02",
        ],
    );
    assert_eq!(after[1], "9000");
    assert_eq!(after[2], filled(0x11, 2000));
    assert_eq!(after[3], filled(0x44, 30000));
    assert_eq!(after[4], "6A82");
}
