//! Byte-exact APDU exchanges with a card in memory: every command and every status word it
//! answers.

use crate::card::Card;
use crate::store::MemoryStore;
use crate::tools::hex;

const SELECT_AID: &str = "00A404000BE82B0601040181C31F020100";
/// INITIALIZE: options 0001, user PIN 648219, SO-PIN 3537363231383830, 3 retries.
const INIT: &str = "8050000019800200018106363438323139820835373632313838309101 03";
const USER_PIN: &str = "363438323139";
const SO_PIN: &str = "3537363231383830";

fn card() -> Card {
    Card::open(Box::new(MemoryStore::default())).unwrap()
}

/// Sends `apdu` (hex) and returns (data, SW) as hex.
fn send(card: &mut Card, apdu: &str) -> (String, String) {
    let apdu =
        hex::decode(&apdu.replace(' ', "")).unwrap_or_else(|| panic!("bad hex in test: {apdu}"));
    let response = card.transmit(&apdu);
    let (data, sw) = response.split_at(response.len() - 2);
    (hex::encode(data), hex::encode(sw))
}

fn sw(card: &mut Card, apdu: &str) -> String {
    send(card, apdu).1
}

fn selected() -> Card {
    let mut c = card();
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    c
}

fn initialized() -> Card {
    let mut c = selected();
    assert_eq!(sw(&mut c, INIT), "9000");
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    c
}

fn logged_in() -> Card {
    let mut c = initialized();
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    c
}

fn update(fid: &str, offset: u16, data: &[u8]) -> String {
    let mut body = vec![0x54, 0x02];
    body.extend_from_slice(&offset.to_be_bytes());
    crate::apdu::tlv::write(&mut body, 0x53, data);
    let mut apdu = hex::decode(&format!("00D7{fid}")).unwrap();
    apdu.push(0);
    apdu.extend_from_slice(&(body.len() as u16).to_be_bytes());
    apdu.extend_from_slice(&body);
    hex::encode(&apdu)
}

#[test]
fn select_application_answers_fci_fcp_or_nothing() {
    let mut c = card();
    assert_eq!(
        send(&mut c, SELECT_AID),
        ("6F0A8201788505000006 0400".replace(' ', ""), "9000".into())
    );
    assert_eq!(
        send(&mut c, "00A404040BE82B0601040181C31F020100"),
        ("620A82017885050000060400".into(), "9000".into())
    );
    assert_eq!(
        send(&mut c, "00A4040C0BE82B0601040181C31F0201"),
        ("".into(), "9000".into())
    );
    assert_eq!(sw(&mut c, "00A404010BE82B0601040181C31F020100"), "6A86");
}

#[test]
fn select_shows_options_after_initialize() {
    let mut c = initialized();
    assert_eq!(send(&mut c, SELECT_AID).0, "6F0A82017885050001060400");
}

#[test]
fn foreign_applications_are_not_found() {
    let mut c = card();
    assert_eq!(sw(&mut c, "00A4040007627601FF00000000"), "6A82");
    assert_eq!(sw(&mut c, "00A4040006A0000000010100"), "6A82");
}

#[test]
fn commands_before_select_answer_6d00() {
    let mut c = card();
    assert_eq!(sw(&mut c, "00200081"), "6D00");
    assert_eq!(sw(&mut c, "0084000008"), "6D00");
}

#[test]
fn select_resets_security_state() {
    let mut c = logged_in();
    assert_eq!(sw(&mut c, "00200081"), "9000");
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, "00200081"), "63C3");
}

#[test]
fn power_events_drop_the_session() {
    for event in [Card::power_off, Card::power_on, Card::reset] {
        let mut c = logged_in();
        event(&mut c);
        assert_eq!(sw(&mut c, "00200081"), "6D00");
        assert_eq!(sw(&mut c, SELECT_AID), "9000");
        assert_eq!(sw(&mut c, "00200081"), "63C3");
    }
}

#[test]
fn unknown_class_and_instruction() {
    let mut c = selected();
    assert_eq!(sw(&mut c, "A0A40000022F02"), "6E00");
    // Secure messaging outside a channel (chip authentication opens one).
    assert_eq!(sw(&mut c, "0C200081"), "6882");
    assert_eq!(sw(&mut c, "AC200081"), "6E00");
    assert_eq!(sw(&mut c, "01200081"), "6E00"); // logical channel 1
    assert_eq!(sw(&mut c, "00FE0000"), "6D00");
    assert_eq!(sw(&mut c, "00AA0000"), "6D00");
}

#[test]
fn malformed_apdus_answer_6700() {
    let mut c = selected();
    assert_eq!(sw(&mut c, "00"), "6700");
    assert_eq!(sw(&mut c, "00A40400"), "6A82"); // case 1 SELECT: an empty AID is not ours
    assert_eq!(sw(&mut c, "00A404000B E82B06"), "6700");
    assert_eq!(sw(&mut c, "00200081000002 31"), "6700"); // extended Lc 2, one byte of data
    assert_eq!(sw(&mut c, "002000810031"), "6700"); // short Lc 0
}

#[test]
fn device_certificate_selects_with_its_size_and_reads_whole() {
    let mut c = selected();
    let (fci, status) = send(&mut c, "00A40000022F0200");
    assert_eq!(status, "9000");
    let size = c.state().files[&0x2F02].data.len();
    assert_eq!(
        fci,
        format!("6F0B8002{size:04X}820101 83022F02").replace(' ', "")
    );
    // Read in 255-byte chunks like OpenSC over vpcd; the last one ends with 6282.
    let mut content = String::new();
    let mut offset = 0usize;
    loop {
        let (data, status) = send(
            &mut c,
            &format!("00B1000004 5402{offset:04X} FF").replace(' ', ""),
        );
        content.push_str(&data);
        offset += data.len() / 2;
        if status == "6282" {
            break;
        }
        assert_eq!(status, "9000");
    }
    assert_eq!(
        hex::decode(&content).unwrap(),
        c.state().files[&0x2F02].data
    );
}

#[test]
fn read_binary_bounds() {
    let mut c = logged_in();
    assert_eq!(sw(&mut c, &update("CF01", 0, b"0123456789")), "9000");
    // Exactly to the end: 9000; past it: data and 6282; at or beyond EOF: no data, 6282.
    assert_eq!(
        send(&mut c, "00B1CF010454020000 0A"),
        (hex::encode(b"0123456789"), "9000".into())
    );
    assert_eq!(
        send(&mut c, "00B1CF0104540200080A"),
        (hex::encode(b"89"), "6282".into())
    );
    assert_eq!(
        send(&mut c, "00B1CF01045402000A0A"),
        ("".into(), "6282".into())
    );
    assert_eq!(
        send(&mut c, "00B1CF0104540201000A"),
        ("".into(), "6282".into())
    );
    // Plain B0 on the current EF.
    assert_eq!(
        send(&mut c, "00B0000304"),
        (hex::encode(b"3456"), "9000".into())
    );
    assert_eq!(sw(&mut c, "00B0810004"), "6A86");
    assert_eq!(sw(&mut c, "00B1CF01035402000A"), "6A80");
    assert_eq!(sw(&mut c, "00B1CF0104530200000A"), "6A80");
    assert_eq!(sw(&mut c, "00B1CE01045402000000"), "6A82");
}

#[test]
fn read_binary_without_current_ef_is_not_allowed() {
    let mut c = selected();
    assert_eq!(sw(&mut c, "00B1000004540200000A"), "6986");
}

#[test]
fn update_binary_creates_extends_and_guards() {
    let mut c = initialized();
    assert_eq!(sw(&mut c, &update("CF01", 0, b"abc")), "6982");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(sw(&mut c, &update("CF01", 0, b"")), "9000");
    assert_eq!(sw(&mut c, &update("CF01", 0, b"abc")), "9000");
    assert_eq!(sw(&mut c, &update("CF01", 3, b"def")), "9000");
    assert_eq!(sw(&mut c, &update("CF01", 1, b"X")), "9000");
    assert_eq!(c.state().files[&0xCF01].data, b"aXcdef");
    assert_eq!(sw(&mut c, &update("CF01", 9, b"gap")), "6B00");
    assert_eq!(sw(&mut c, &update("2F02", 0, b"x")), "6982");
    assert_eq!(sw(&mut c, &update("CC01", 0, b"x")), "6982");
    assert_eq!(sw(&mut c, &update("FFFF", 0, b"x")), "6A86");
    assert_eq!(
        sw(
            &mut c,
            &update(
                "CF02",
                0,
                &vec![0; crate::Limits::default().max_file_size + 1]
            )
        ),
        "6A84"
    );
    assert!(!c.state().files.contains_key(&0xCF02));
    // 0000 writes the current EF.
    assert_eq!(sw(&mut c, &update("0000", 6, b"g")), "9000");
    assert_eq!(c.state().files[&0xCF01].data, b"aXcdefg");
    assert_eq!(sw(&mut c, "00D7CF0105 5402000099"), "6A80");
}

#[test]
fn private_data_needs_the_pin_and_keys_are_never_readable() {
    let mut c = logged_in();
    assert_eq!(sw(&mut c, &update("CD01", 0, b"secret")), "9000");
    assert_eq!(
        send(&mut c, "00B1CD01045402000000"),
        (hex::encode(b"secret"), "6282".into())
    );
    assert_eq!(send(&mut c, "00B1CD010454020000 06").1, "9000");
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, "00B1CD01045402000006"), "6982");
    // The device key selects as an empty EF with its key information (domain 0), reads as
    // 6982.
    assert_eq!(
        send(&mut c, "00A4000002CC0000"),
        (
            "6F1080020000820101 8302CC00 A503920100".replace(' ', ""),
            "9000".into()
        )
    );
    assert_eq!(sw(&mut c, "00B1CC00045402000010"), "6982");
    assert_eq!(sw(&mut c, "00A4000002CC0100"), "6A82");
}

#[test]
fn select_by_path_and_other_p1_answer_6a86() {
    let mut c = selected();
    assert_eq!(sw(&mut c, "00A40800022F0000"), "6A86");
    assert_eq!(sw(&mut c, "00A40000032F020000"), "6700");
    assert_eq!(sw(&mut c, "00A40000022F0300"), "6A82");
}

#[test]
fn delete_file_rules() {
    let mut c = initialized();
    assert_eq!(sw(&mut c, "00E40200022F02"), "6982");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(sw(&mut c, &update("C901", 0, b"x")), "9000");
    assert_eq!(sw(&mut c, "00E4020002C901"), "9000");
    assert_eq!(sw(&mut c, "00E4020002C901"), "6A82");
    assert_eq!(sw(&mut c, "00E40200022F02"), "6982");
    assert_eq!(sw(&mut c, "00E4020002CC00"), "6982");
    assert_eq!(sw(&mut c, "00E4020002CC01"), "6A82");
    assert_eq!(sw(&mut c, "00E4030002C901"), "6A86");
    assert_eq!(sw(&mut c, "00E4020001C9"), "6700");
}

#[test]
fn a_full_card_answers_6a84_and_writes_nothing() {
    let mut c = logged_in();
    let used = crate::limits::storage_used(c.state());
    c = c.with_limits(crate::Limits {
        storage_bytes: used + 100,
        ..crate::Limits::default()
    });
    assert_eq!(sw(&mut c, &update("CF01", 0, &[1; 60])), "9000");
    // 60 + 16 used of 100: 25 more bytes do not fit, neither does a new file.
    assert_eq!(sw(&mut c, &update("CF01", 60, &[2; 25])), "6A84");
    assert_eq!(c.state().files[&0xCF01].data, vec![1; 60]);
    assert_eq!(sw(&mut c, &update("CF02", 0, &[3; 10])), "6A84");
    assert!(!c.state().files.contains_key(&0xCF02));
    // Overwriting in place needs no room.
    assert_eq!(sw(&mut c, &update("CF01", 0, &[4; 60])), "9000");
    // Deleting makes room again.
    assert_eq!(sw(&mut c, "00E4020002CF01"), "9000");
    assert_eq!(sw(&mut c, &update("CF02", 0, &[3; 10])), "9000");
    // The object count OpenSC can list is a limit too.
    let mut c = logged_in();
    let mut created = 0;
    loop {
        let fid = format!(
            "{:04X}",
            if created < 256 {
                0xCF00 + created
            } else {
                0xC900 + created - 256
            }
        );
        let status = sw(&mut c, &update(&fid, 0, b"x"));
        if status != "9000" {
            assert_eq!(status, "6A84");
            break;
        }
        created += 1;
    }
    assert_eq!(
        c.state().files.len() + c.state().keys.len(),
        crate::limits::MAX_OBJECTS
    );
}

#[test]
fn enumerate_lists_files_in_creation_order_then_keys() {
    let mut c = logged_in();
    assert_eq!(
        send(&mut c, "80580000000000"),
        ("2F02CC00".into(), "9000".into())
    );
    for fid in ["2F03", "C901", "CD01", "C401"] {
        assert_eq!(sw(&mut c, &update(fid, 0, b"x")), "9000");
    }
    assert_eq!(send(&mut c, "80580000000000").0, "2F022F03C901CD01C401CC00");
    assert_eq!(sw(&mut c, "80580100000000"), "6A86");
}

#[test]
fn verify_status_and_attempts() {
    let mut c = selected();
    // Never initialised: both PINs are missing.
    assert_eq!(sw(&mut c, "00200081"), "6A88");
    assert_eq!(sw(&mut c, "00200088"), "6A88");
    assert_eq!(sw(&mut c, "0020008106313233343536"), "6A88");
    let mut c = initialized();
    assert_eq!(sw(&mut c, "00200085"), "6A88");
    assert_eq!(sw(&mut c, "00200086"), "6A88");
    assert_eq!(sw(&mut c, "00200081"), "63C3");
    assert_eq!(sw(&mut c, "00200088"), "63CF");
    assert_eq!(sw(&mut c, "0020008106313131313131"), "63C2");
    assert_eq!(sw(&mut c, "00200081"), "63C2");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(sw(&mut c, "00200081"), "9000");
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, "00200081"), "63C3");
    assert_eq!(sw(&mut c, "00200181"), "6A86");
    assert_eq!(
        sw(&mut c, "002000811131313131313131313131313131313131"),
        "6700"
    );
    assert_eq!(sw(&mut c, &format!("0020008808{SO_PIN}")), "9000");
    assert_eq!(sw(&mut c, "00200088"), "9000");
    assert_eq!(sw(&mut c, "002000880631323334 3536"), "63CE");
}

#[test]
fn three_wrong_pins_block_and_blocked_stays_blocked() {
    let mut c = initialized();
    for left in ["63C2", "63C1", "63C0"] {
        assert_eq!(sw(&mut c, "0020008106313131313131"), left);
    }
    assert_eq!(sw(&mut c, "00200081"), "6983");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "6983");
    assert_eq!(c.state().user_pin.as_ref().unwrap().tries_left, 0);
}

#[test]
fn change_reference_data_user_and_so() {
    let mut c = initialized();
    // Wrong old PIN costs a try.
    assert_eq!(sw(&mut c, "002400810C313131313131 313233343536"), "63C2");
    // New PIN of another length is allowed (6..=16).
    assert_eq!(
        sw(&mut c, &format!("002400810E{USER_PIN}3132333435363738")),
        "9000"
    );
    assert_eq!(sw(&mut c, "00200081"), "9000");
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, "002000810831323334353637 38"), "9000");
    // Too short a new PIN, or nothing after the old one.
    assert_eq!(sw(&mut c, "002400810A31323334353637383132"), "6700");
    assert_eq!(sw(&mut c, "002400810831323334353637 38"), "6700");
    // SO-PIN: 8 ‖ 8 bytes.
    assert_eq!(
        sw(&mut c, &format!("0024008810{SO_PIN}3132333435363738")),
        "9000"
    );
    assert_eq!(
        sw(&mut c, &format!("0024008810{SO_PIN}3132333435363738")),
        "63CE"
    );
    assert_eq!(sw(&mut c, "00240088083132333435363738"), "6700");
    assert_eq!(sw(&mut c, "002400850A31323334353637383132"), "6A88");
    assert_eq!(sw(&mut c, "002401810A31323334353637383132"), "6A86");
}

#[test]
fn reset_retry_counter_unblocks_with_the_so_pin() {
    let mut c = initialized();
    for _ in 0..3 {
        sw(&mut c, "0020008106313131313131");
    }
    assert_eq!(sw(&mut c, "00200081"), "6983");
    // Wrong SO-PIN costs an SO try.
    assert_eq!(
        sw(&mut c, "002C00810E3131313131313131 313233343536"),
        "63CE"
    );
    assert_eq!(
        sw(&mut c, &format!("002C00810E{SO_PIN}313233343536")),
        "9000"
    );
    assert_eq!(sw(&mut c, "00200088"), "63CF");
    assert_eq!(sw(&mut c, "00200081"), "63C3");
    assert_eq!(sw(&mut c, "0020008106313233343536"), "9000");
    // P1 01: counter only.
    for _ in 0..3 {
        sw(&mut c, "0020008106313131313131");
    }
    assert_eq!(sw(&mut c, &format!("002C018108{SO_PIN}")), "9000");
    assert_eq!(sw(&mut c, "0020008106313233343536"), "9000");
    assert_eq!(
        sw(&mut c, &format!("002C02810 8{SO_PIN}").replace(' ', "")),
        "6A86"
    );
    assert_eq!(sw(&mut c, &format!("002C008208{SO_PIN}")), "6A86");
    assert_eq!(sw(&mut c, &format!("002C008108{SO_PIN}")), "6700");
    assert_eq!(sw(&mut c, &format!("002C00810B{SO_PIN}313233")), "6700");
}

#[test]
fn reset_retry_counter_refused_when_option_is_off() {
    let mut c = selected();
    let init = INIT.replace(' ', "").replace("80020001", "80020000");
    assert_eq!(sw(&mut c, &init), "9000");
    assert_eq!(
        sw(&mut c, &format!("002C00810E{SO_PIN}313233343536")),
        "6986"
    );
    assert_eq!(sw(&mut c, "00200088"), "63CF");
}

#[test]
fn reset_retry_counter_on_blank_card() {
    let mut c = selected();
    assert_eq!(
        sw(&mut c, &format!("002C00810E{SO_PIN}313233343536")),
        "6A88"
    );
}

#[test]
fn reinitialize_checks_the_so_pin_and_erases_objects() {
    let mut c = logged_in();
    assert_eq!(sw(&mut c, &update("CF01", 0, b"x")), "9000");
    let wrong = INIT.replace(' ', "").replace(SO_PIN, "3131313131313131");
    assert_eq!(sw(&mut c, &wrong), "63CE");
    assert!(c.state().files.contains_key(&0xCF01));
    assert_eq!(sw(&mut c, INIT), "9000");
    let fids: Vec<u16> = c.state().files.keys().copied().collect();
    assert_eq!(fids, vec![0x2F02]);
    assert_eq!(c.state().keys.keys().copied().collect::<Vec<_>>(), vec![0]);
    assert_eq!(sw(&mut c, "00200088"), "63CF");
}

#[test]
fn blocked_so_pin_cannot_reinitialize() {
    let mut c = initialized();
    let wrong = INIT.replace(' ', "").replace(SO_PIN, "3131313131313131");
    for n in (0..15).rev() {
        assert_eq!(sw(&mut c, &wrong), format!("63C{n:X}"));
    }
    assert_eq!(sw(&mut c, INIT), "6983");
    assert_eq!(sw(&mut c, "00200088"), "6983");
}

#[test]
fn initialize_rejects_bad_parameters() {
    let mut c = selected();
    assert_eq!(sw(&mut c, "8050000003 810131"), "6A80");
    // PIN too short, SO-PIN of 7 bytes, no SO-PIN, broken TLV, unknown tag, PKA.
    for data in [
        "800200018105313233343582083132333435363738",
        "8002000181063132333435368207 31323334353637",
        "800200018106313233343536",
        "8002000181",
        "8002000181063132333435368208313233343536373899 0100",
    ] {
        let data = data.replace(' ', "");
        let apdu = format!("80500000{:02X}{data}", data.len() / 2);
        assert_eq!(sw(&mut c, &apdu), "6A80", "{data}");
    }
    // Public-key authentication: n of m with 1 <= n <= m <= 90, two bytes.
    let base = "8002000181063132333435368208 3132333435363738".replace(' ', "");
    for pka in ["93020102", "93020000", "93025B01", "930101", "9303020101"] {
        let data = format!("{base}{pka}");
        let apdu = format!("80500000{:02X}{data}", data.len() / 2);
        assert_eq!(sw(&mut c, &apdu), "6A80", "{pka}");
    }
    assert_eq!(sw(&mut c, "00200088"), "6A88");
}

#[test]
fn dkek_share_import_and_status() {
    let mut c = selected();
    let with_shares = |n: u8| {
        let data = format!("800200018106{USER_PIN}8208{SO_PIN}910103 9201{n:02X}").replace(' ', "");
        format!("80500000{:02X}{data}", data.len() / 2)
    };
    assert_eq!(sw(&mut c, &with_shares(2)), "9000");
    assert_eq!(
        send(&mut c, "8052000000"),
        ("02020000000000000000".into(), "9000".into())
    );
    let share_a = "11".repeat(32);
    let share_b = "22".repeat(32);
    assert_eq!(
        send(&mut c, &format!("8052000020{share_a}00")).0,
        "02010000000000000000"
    );
    let (answer, status) = send(&mut c, &format!("8052000020{share_b}00"));
    assert_eq!(status, "9000");
    let kcv = crate::model::dkek::kcv(&[0x33; 32]);
    assert_eq!(answer, format!("0200{}", hex::encode(&kcv)));
    assert_eq!(sw(&mut c, &format!("8052000020{share_a}00")), "6986");
    assert_eq!(sw(&mut c, "80520000031122 33"), "6700");
    assert_eq!(sw(&mut c, "8052010000"), "6700");
    assert_eq!(sw(&mut c, "8052050000"), "6A86");
    assert_eq!(sw(&mut c, "8052000100"), "6A86");
    // 0 shares: the card makes a random DKEK.
    assert_eq!(sw(&mut c, &with_shares(0)), "9000");
    let (answer, _) = send(&mut c, "8052000000");
    assert_eq!(&answer[..4], "0000");
    assert_ne!(&answer[4..], "0000000000000000");
    // No tag 92: no DKEK, and the status query answers 6D00.
    assert_eq!(sw(&mut c, INIT), "9000");
    assert_eq!(sw(&mut c, "8052000000"), "6D00");
}

#[test]
fn get_challenge() {
    let mut c = selected();
    let (a, s) = send(&mut c, "0084000008");
    assert_eq!((a.len(), s.as_str()), (16, "9000"));
    let (b, _) = send(&mut c, "0084000008");
    assert_ne!(a, b);
    assert_eq!(send(&mut c, "0084000000").0.len(), 512);
    assert_eq!(send(&mut c, "00840000000400").0.len(), 2048);
    assert_eq!(sw(&mut c, "00840000000401"), "6700");
    assert_eq!(sw(&mut c, "00840000"), "6700");
    assert_eq!(sw(&mut c, "0084010008"), "6A86");
}

#[test]
fn get_response_serves_what_le_held_back() {
    let mut c = selected();
    // ENUMERATE with a short Le of 2 bytes: 2F02, then CC00 behind 6102.
    assert_eq!(send(&mut c, "8058000002"), ("2F02".into(), "6102".into()));
    assert_eq!(send(&mut c, "00C0000002"), ("CC00".into(), "9000".into()));
    assert_eq!(sw(&mut c, "00C0000002"), "6985");
    // Any other command drops what was pending.
    assert_eq!(send(&mut c, "8058000001"), ("2F".into(), "6103".into()));
    assert_eq!(sw(&mut c, "00200081"), "6A88");
    assert_eq!(sw(&mut c, "00C0000002"), "6985");
    // 256 and more pending: 6100.
    let (data, status) = send(&mut c, "00840000000400");
    assert_eq!((data.len(), status.as_str()), (2048, "9000"));
    let (data, status) = send(&mut c, "008400000004 00");
    assert_eq!((data.len(), status.as_str()), (2048, "9000"));
    assert_eq!(sw(&mut c, "00C0010000"), "6A86");
}

#[test]
fn le_is_respected_for_long_files() {
    let mut c = logged_in();
    assert_eq!(sw(&mut c, &update("CF01", 0, &[0x5A; 600])), "9000");
    let (data, status) = send(&mut c, "00B1CF010454020000 00");
    assert_eq!((data.len() / 2, status.as_str()), (256, "9000"));
    let (data, status) = send(&mut c, "00B1CF01000004540200000000");
    assert_eq!((data.len() / 2, status.as_str()), (600, "6282"));
    // Le absent: Ne = 0, the status word alone (the command still runs).
    assert_eq!(send(&mut c, "80580000"), ("".into(), "9000".into()));
    assert_eq!(
        send(&mut c, "00A404000BE82B0601040181C31F0201"),
        ("".into(), "9000".into())
    );
    assert_eq!(sw(&mut c, "00B1CF010454020000"), "6700"); // READ BINARY needs Le
}

#[test]
fn command_chaining_joins_data() {
    let mut c = logged_in();
    let full = update("CF01", 0, b"chained data!");
    let apdu = hex::decode(&full).unwrap();
    let data = &apdu[7..];
    let (first, second) = data.split_at(5);
    let part = |cla: u8, chunk: &[u8]| {
        let mut a = vec![cla, 0xD7, 0xCF, 0x01, chunk.len() as u8];
        a.extend_from_slice(chunk);
        hex::encode(&a)
    };
    assert_eq!(sw(&mut c, &part(0x10, first)), "9000");
    assert!(!c.state().files.contains_key(&0xCF01));
    assert_eq!(sw(&mut c, &part(0x00, second)), "9000");
    assert_eq!(c.state().files[&0xCF01].data, b"chained data!");
    // A different command in the middle of a chain.
    assert_eq!(sw(&mut c, &part(0x10, first)), "9000");
    assert_eq!(sw(&mut c, "00200081"), "6883");
    assert_eq!(sw(&mut c, "00200081"), "9000");
}

#[test]
fn failed_commit_answers_6581_and_changes_nothing() {
    let store = MemoryStore::default();
    let fail = store.failure_switch();
    let mut c = Card::open(Box::new(store)).unwrap();
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, INIT), "9000");
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    // A wrong PIN whose try cannot be recorded is not even compared.
    assert_eq!(sw(&mut c, "0020008106313131313131"), "6581");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "6581");
    assert_eq!(c.state().user_pin.as_ref().unwrap().tries_left, 3);
    assert_eq!(sw(&mut c, &update("CF01", 0, b"lost")), "6581");
    assert!(!c.state().files.contains_key(&0xCF01));
    assert_eq!(sw(&mut c, INIT), "6581");
    assert_eq!(c.state().so_pin.as_ref().unwrap().tries_left, 15);
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    assert_eq!(sw(&mut c, &update("CF01", 0, b"kept")), "9000");
    assert_eq!(c.state().files[&0xCF01].data, b"kept");
}

#[test]
fn a_store_that_cannot_commit_cannot_make_a_card() {
    let store = MemoryStore::default();
    store
        .failure_switch()
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(Card::open(Box::new(store)).is_err());
}

#[test]
fn state_survives_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.redb");
    let serial;
    {
        let mut c = Card::open(Box::new(crate::RedbStore::open(&path).unwrap())).unwrap();
        serial = c.serial().to_string();
        assert_eq!(sw(&mut c, SELECT_AID), "9000");
        assert_eq!(sw(&mut c, INIT), "9000");
        assert_eq!(sw(&mut c, &update("2F03", 0, b"label")), "9000");
        assert_eq!(sw(&mut c, "0020008106313131313131"), "63C2");
    }
    let mut c = Card::open(Box::new(crate::RedbStore::open(&path).unwrap())).unwrap();
    assert_eq!(c.serial(), serial);
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, "00200081"), "63C2");
    assert_eq!(c.state().files[&0x2F03].data, b"label");
}

mod four_k;

#[test]
fn a_session_pin_needs_secure_messaging() {
    let mut c = logged_in();
    assert_eq!(sw(&mut c, "805A018100"), "6982");
    assert_eq!(sw(&mut c, "805A018800"), "6A86");
    assert_eq!(sw(&mut c, "805A01810100"), "6700");
}

mod data_trace;
mod trust;
