//! The parsers of recordings, on samples and on the real-card fixtures.

use super::{detect, parse, Exchange, Format};
use crate::tools::hex::decode;

fn bytes(hex: &str) -> Vec<u8> {
    decode(hex).unwrap()
}

fn exchange(command: &str, response: &str, line: usize) -> Exchange {
    Exchange {
        command: bytes(command),
        response: bytes(response),
        line,
    }
}

#[test]
fn opensc_old_format() {
    // A command over three lines whose middle line's ASCII column reads like hex, an
    // answer whose ASCII column does too, and a command cut off before its answer.
    let text = "\
2015-08-21 21:05:00.491 [cardmod] apdu.c:384:sc_single_transmit: called
2015-08-21 21:05:00.493 
Outgoing APDU data [   33 bytes] =====================================
00 D6 00 00 1C 30 31 32 33 34 35 36 37 38 39 41 .....0123456789A
45 35 20 46 36 20 41 31 20 42 32 20 43 33 20 44 E5 F6 A1 B2 C3 D
34 4
======================================================================
2015-08-21 21:05:00.519 
Incoming APDU data [    7 bytes] =====================================
41 42 20 43 44 90 00 AB CD..
======================================================================
2015-08-21 21:05:00.520 Outgoing APDU data [    8 bytes] =====================================
00 A4 08 00 02 2F 00 00 ...../..
======================================================================
2015-08-21 21:05:00.521 [cardmod] reader-pcsc.c:184:pcsc_internal_transmit: called
2015-08-21 21:05:00.5[...]
";
    assert_eq!(detect(text), Some(Format::OpenscOld));
    assert_eq!(
        parse(text, Format::OpenscOld).unwrap(),
        vec![
            exchange(
                "00D600001C 30313233343536373839 41 4535204636204131204232204333204434",
                "41422043449000",
                3
            ),
            exchange("00A40800022F0000", "", 12),
        ]
    );
}

#[test]
fn opensc_new_format() {
    let text = "\
P:344; T:0x140492797491264 14:09:28.211 [sc-hsm-tool] reader-pcsc.c:326:pcsc_transmit:
Outgoing APDU (17 bytes):
00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01 ......+.........
00                                              .

P:344; T:0x140492797491264 14:09:28.247 [sc-hsm-tool] reader-pcsc.c:335:pcsc_transmit:
Incoming APDU (14 bytes):
6F 0A 82 01 78 85 05 00 01 06 04 01 90 00 o...x.........

Incoming APDU (2 bytes):
90 00 ..

P:344; T:0x1 14:09:28.250 [sc-hsm-tool] reader-pcsc.c:326:pcsc_transmit: Outgoing APDU (1 byte):
B0 .

P:344; T:0x1 14:09:28.251 [sc-hsm-tool] reader-pcsc.c:326:pcsc_transmit: Outgoing APDU (4 bytes):
00 20 00 81 . ..

P:344; T:0x1 14:09:28.2[...]
Incoming APDU (2 bytes):
63 C3 c.
";
    assert_eq!(detect(text), Some(Format::OpenscNew));
    // The answer with no command before it is skipped; a command followed by another
    // command, or by a cut, has no answer (the answer after the cut may not be its own).
    assert_eq!(
        parse(text, Format::OpenscNew).unwrap(),
        vec![
            exchange(
                "00A404000BE82B0601040181C31F020100",
                "6F0A8201788505000106040190 00",
                2
            ),
            exchange("B0", "", 13),
            exchange("00200081", "", 16),
        ]
    );
}

#[test]
fn opensc_command_cut_inside_its_hex_is_dropped() {
    let text = "Outgoing APDU (13 bytes):\n00 20 00 81 08 31 3[...]\n";
    assert_eq!(parse(text, Format::OpenscNew).unwrap(), vec![]);
    // The answer's hex cut: the command stays, without an answer.
    let text =
        "Outgoing APDU (4 bytes):\n00 20 00 81 . ..\n\nIncoming APDU (20 bytes):\n6F 0A[...]\n";
    assert_eq!(
        parse(text, Format::OpenscNew).unwrap(),
        vec![exchange("00200081", "", 1)]
    );
}

#[test]
fn opensc_byte_count_mismatch_names_the_line() {
    // Fewer bytes than declared: the ASCII column is where the hex stops.
    let text = "\
2015-08-21 21:05:00.493 
Outgoing APDU data [    8 bytes] =====================================
00 A4 08 00 02 2F 00 ......./
======================================================================
";
    let e = parse(text, Format::OpenscOld).unwrap_err();
    assert!(e.starts_with("line 3:"), "{e}");
    assert!(e.contains("declared on line 2"), "{e}");
    // A token that is not hex where the declared count wants one.
    let text = "Outgoing APDU (5 bytes):\n00 A4 0G 00 00 .....\n";
    let e = parse(text, Format::OpenscNew).unwrap_err();
    assert!(e.starts_with("line 2:") && e.contains("`0G`"), "{e}");
    // More hex than declared.
    let text = "Incoming APDU (2 bytes):\n6A 82 j.\n90 00 ..\n";
    let e = parse(text, Format::OpenscNew).unwrap_err();
    assert!(e.starts_with("line 3:") && e.contains("more hex"), "{e}");
    // A header whose count cannot be read.
    let e = parse("Outgoing APDU (many bytes):\n", Format::OpenscNew).unwrap_err();
    assert!(e.starts_with("line 1:"), "{e}");
    // An answer too short to hold a status word.
    let text = "Outgoing APDU (4 bytes):\n00 20 00 81\n\nIncoming APDU (1 byte):\n90 .\n";
    let e = parse(text, Format::OpenscNew).unwrap_err();
    assert!(e.starts_with("line 4:"), "{e}");
}

/// pcsc-spy output, as `pcsc-spy -n` prints it (an excerpt of `fixtures/wire/pcsc-spy-demo.txt`).
const SPY: &str = "\
SCardTransmit
 i hCard: 0x4A59F1E9
 i pioSendPci.dwProtocol: 0x00000002
 i pioSendPci.cbPciLength: 0x00000010
 i bSendLength 0x00000011 (17)
 i bSendBuffer
 i  0000 00 A4 04 00 0B E8 2B 06 01 04 01 81 C3 1F 02 01 ......+.........
 i  0010 00                                              .
 o pioRecvPci.dwProtocol: 0x00000001
 o pioRecvPci.cbPciLength: 0x00000010
 o bRecvLength 0x00000030 (48)
 o bRecvBuffer
 o  0000 2F 02 CE 01 C4 01 CE 02 C4 02 CE 03 C4 03 CE 04 /...............
 o  0010 C4 04 CE 05 C4 05 CE 06 C4 06 CE 07 C4 07 CC 00 ................
 o  0020 CC 01 CC 02 CC 03 CC 04 CC 05 CC 06 CC 07 90 00 ................
 => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000202]
SCardEndTransaction
 i hCard: 0x4A59F1E9
 i dwDisposition: SCARD_LEAVE_CARD (0x00000000)
 => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000043]
SCarControl
 i hCard: 0x017DEDDA
 i dwControlCode: CM_IOCTL_GET_FEATURE_REQUEST (0x42000D48)
 i bSendLength 0x00000002 (2)
 i bSendBuffer
 i  0000 41 42                                           AB
 o bRecvLength 0x00000000 (0)
 o bRecvBuffer
 => Feature not supported. (SCARD_E_UNSUPPORTED_FEATURE [0x8010001F])  [0.000057]
SCardTransmit
 i hCard: 0x4A59F1E9
 i pioSendPci.dwProtocol: 0x00000002
 i pioSendPci.cbPciLength: 0x00000010
 i bSendLength 0x00000007 (7)
 i bSendBuffer
 i  0000 00 CA 01 02 41 20 42                            ....A B
 o pioRecvPci.dwProtocol: 0x00000001
 o pioRecvPci.cbPciLength: 0x00000010
 o bRecvLength 0x00000004 (4)
 o bRecvBuffer
 o  0000 41 42 90 00                                     AB..
 => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000202]
SCardTransmit
 i hCard: 0x4A59F1E9
 i pioSendPci.dwProtocol: 0x00000002
 i pioSendPci.cbPciLength: 0x00000010
 i bSendLength 0x00000004 (4)
 i bSendBuffer
 i  0000 80 50 00 00                                     .P..
 o pioRecvPci.dwProtocol: 0x00000001
 o pioRecvPci.cbPciLength: 0x00000010
 o bRecvLength 0x00000000 (0)
 o bRecvBuffer
 => Transaction failed. (SCARD_E_NOT_TRANSACTED [0x80100016])  [0.000805]
SCardTransmit
 i hCard: 0x4A59F1E9
 i pioSendPci.dwProtocol: 0x00000002
 i pioSendPci.cbPciLength: 0x00000010
 i bSendLength 0x00000004 (4)
 i bSendBuffer
 i  0000 00 20 00 81                                     . ..
";

#[test]
fn pcsc_spy() {
    assert_eq!(detect(SPY), Some(Format::PcscSpy));
    // SCardControl buffers are not APDUs; a failed transmit and one whose result the
    // text does not reach have no answer.
    assert_eq!(
        parse(SPY, Format::PcscSpy).unwrap(),
        vec![
            exchange(
                "00A404000BE82B0601040181C31F020100",
                "2F02CE01C401CE02C402CE03C403CE04 C404CE05C405CE06C406CE07C407CC00 CC01CC02CC03CC04CC05CC06CC07 9000",
                1
            ),
            exchange("00CA0102412042", "41429000", 30),
            exchange("80500000", "", 43),
            exchange("00200081", "", 55),
        ]
    );
}

#[test]
fn pcsc_spy_in_colour_and_with_threads() {
    // Without -n every line is coloured (after the thread's indent); with -t every line
    // carries its thread's tag; a second thread is indented by four spaces, and the two
    // threads' lines can interleave.
    let text = " (t0) \x1b[34mSCardTransmit\x1b[0m
 (t0) \x1b[32m i bSendLength 0x00000004 (4)\x1b[0m
 (t1) \x1b[34mSCardTransmit\x1b[0m
 (t1) \x1b[32m i bSendLength 0x00000002 (2)\x1b[0m
 (t0) \x1b[32m i bSendBuffer\x1b[0m
 (t1) \x1b[32m i bSendBuffer\x1b[0m
 (t0) \x1b[32m i  0000 80 50 00 00                                     .P..\x1b[0m
 (t1) \x1b[32m i  0000 00 B0                                           ..\x1b[0m
 (t1) \x1b[35m o bRecvLength 0x00000002 (2)\x1b[0m
 (t0) \x1b[35m o bRecvLength 0x00000002 (2)\x1b[0m
 (t0) \x1b[35m o bRecvBuffer\x1b[0m
 (t1) \x1b[35m o bRecvBuffer\x1b[0m
 (t1) \x1b[35m o  0000 6D 00                                           m.\x1b[0m
 (t0) \x1b[35m o  0000 90 00                                           ..\x1b[0m
 (t1)  => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000202]
 (t0)  => Command successful. (SCARD_S_SUCCESS [0x00000000])  [0.000202]
";
    assert_eq!(detect(text), Some(Format::PcscSpy));
    assert_eq!(
        parse(text, Format::PcscSpy).unwrap(),
        vec![exchange("80500000", "9000", 1), exchange("00B0", "6D00", 3)]
    );
}

#[test]
fn pcsc_spy_mismatch_names_the_line() {
    let text = "\
SCardTransmit
 i bSendLength 0x00000005 (5)
 i bSendBuffer
 i  0000 80 50 00 00                                     .P..
 o bRecvLength 0x00000002 (2)
";
    let e = parse(text, Format::PcscSpy).unwrap_err();
    assert!(e.starts_with("line 4:"), "{e}");
    let text = "\
SCardTransmit
 i bSendLength 0x00000002 (2)
 i bSendBuffer
 i  0000 80 5X                                           .P
";
    let e = parse(text, Format::PcscSpy).unwrap_err();
    assert!(e.starts_with("line 4:") && e.contains("`5X`"), "{e}");
    let text = "\
SCardTransmit
 i bSendLength 0x00000002 (2)
 i bSendBuffer
 i  0010 80 50                                           .P
";
    let e = parse(text, Format::PcscSpy).unwrap_err();
    assert!(e.starts_with("line 4:") && e.contains("offset"), "{e}");
}

#[test]
fn no_format() {
    assert_eq!(detect(""), None);
    assert_eq!(
        detect("Sending: 00 A4 04 00\nReceived (SW1=0x90, SW2=0x00)\n"),
        None
    );
    assert_eq!(detect("SCardTransmit failed\n"), None);
}

/// The transcripts of physical cards in `fixtures/real-card/transcripts/`: the format each
/// is in and the exchanges counted by hand (see that directory's README).
#[test]
fn real_card_transcripts() {
    const DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/real-card/transcripts/"
    );
    let files: [(&str, Option<Format>, usize); 7] = [
        (
            "opensc-528-identive-sct3522cc-minidriver-2015.log",
            Some(Format::OpenscOld),
            4,
        ),
        (
            "opensc-715-omnikey3121-linux-pkcs15-tool-2016.log",
            Some(Format::OpenscOld),
            0,
        ),
        (
            "opensc-2432-sc-hsm-1.2-scr355-and-nitrokey-transport-pin.log",
            Some(Format::OpenscNew),
            1,
        ),
        (
            "opensc-3602-nitrokey-hsm2-fw4.1-unwrap.log",
            Some(Format::OpenscNew),
            2,
        ),
        (
            "colinpaice-blog-2021-nitrokey-hsm-verify.log",
            Some(Format::OpenscNew),
            0,
        ),
        ("nitrokey-forum-2134-hsm2-verify-derive-cipher.log", None, 0),
        ("sc-hsm-tool-status-outputs-no-apdu.log", None, 0),
    ];
    let read = |name: &str| {
        std::fs::read_to_string(format!("{DIR}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    for (name, format, count) in files {
        let text = read(name);
        assert_eq!(detect(&text), format, "{DIR}{name}");
        let Some(format) = format else { continue };
        let exchanges = parse(&text, format).unwrap_or_else(|e| panic!("{DIR}{name}: {e}"));
        assert_eq!(exchanges.len(), count, "{DIR}{name}: {exchanges:02X?}");
        assert!(
            exchanges.iter().all(|e| e.response.len() >= 2),
            "{DIR}{name}: every exchange found here is complete"
        );
    }

    // A few of them byte for byte.
    let e = parse(&read(files[0].0), Format::OpenscOld).unwrap();
    assert_eq!(e[0], exchange("00A40800022F0000", "6A86", 20));
    assert_eq!(e[2].command, bytes("80580000000000"));
    assert_eq!(e[2].response.len(), 48);
    assert_eq!(e[3].command, bytes("00B1000004540200 0000"));
    assert_eq!(e[3].response.len(), 95);
    assert_eq!(e[3].response[93..], [0x90, 0x00]);
    let e = parse(&read(files[3].0), Format::OpenscNew).unwrap();
    assert_eq!(e[0].response, bytes("6F0A82017885050001060401 9000"));
    assert_eq!(e[1], exchange("00A4000002CE0200", "6A82", 37));
}

/// `fixtures/wire/pcsc-spy-demo.txt`: a real capture of opensc-tool against the demo card.
#[test]
fn pcsc_spy_capture() {
    let text = include_str!("../../../../fixtures/wire/pcsc-spy-demo.txt");
    assert_eq!(detect(text), Some(Format::PcscSpy));
    let e = parse(text, Format::PcscSpy).unwrap();
    let commands: Vec<Vec<u8>> = e.iter().map(|e| e.command.clone()).collect();
    assert_eq!(
        commands,
        [
            "00A4040007627601FF000000",
            "00A4040006A00000000101",
            "00A404000BE82B0601040181C31F020100",
            "00A4040C0BE82B0601040181C31F0201",
            "80500000",
            "0020008106363438323139",
            "8058000000",
        ]
        .map(bytes)
    );
    assert!(e.iter().all(|e| e.response.len() >= 2));
    assert_eq!(e[0].response, bytes("6A82"));
    assert_eq!(e[6].response.len(), 48);
    assert_eq!(e[6].response[46..], [0x90, 0x00]);
}
