//! The data trace of a card in memory: every command's data decoded, the secrets taken out.

use std::sync::{Arc, Mutex};

use super::*;
use crate::applet::command::Ins;
use crate::card::data_trace::DataTraceEvent;
use crate::crypto::cvc;
use crate::crypto::ec::Curve;
use crate::dissect::UNDECODED;

/// A card whose data trace lands in the returned list.
fn traced(mut c: Card) -> (Card, Arc<Mutex<Vec<DataTraceEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    c.set_data_tracer(Some(Box::new(move |e: &DataTraceEvent| {
        sink.lock().unwrap().push(e.clone())
    })));
    (c, events)
}

fn all_text(events: &[DataTraceEvent]) -> String {
    events
        .iter()
        .map(|e| format!("{}\n{}", e.to_json(), e.to_text(false)))
        .collect()
}

fn cmd(ins: Ins, p1: u8, p2: u8, data: &[u8]) -> String {
    let mut apdu = vec![ins.class(), ins.code(), p1, p2, 0];
    apdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
    apdu.extend_from_slice(data);
    apdu.extend_from_slice(&[0, 0]);
    hex::encode(&apdu)
}

#[test]
fn a_session_is_decoded_field_by_field_without_its_secrets() {
    let (mut c, events) = traced(card());
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    // INITIALIZE with a user PIN and SO-PIN, one DKEK share.
    let init = "8050000019800200018106363438323139820835373632313838309201 01";
    assert_eq!(sw(&mut c, init), "9000");
    assert_eq!(sw(&mut c, SELECT_AID), "9000");
    assert_eq!(sw(&mut c, "8050000000"), "9000");
    assert_eq!(sw(&mut c, "80500000"), "9000");
    assert_eq!(sw(&mut c, &format!("0020008106{USER_PIN}")), "9000");
    let share = "D1".repeat(32);
    assert_eq!(sw(&mut c, &format!("8052000020{share}")), "9000");
    let ec = cvc::ec_key_template(Curve::Secp256r1);
    let body = cvc::generate_request(b"UTCA00001", &ec, b"ZZEM000000000001");
    assert_eq!(sw(&mut c, &cmd(Ins::GenerateKeyPair, 1, 0, &body)), "9000");
    assert_eq!(sw(&mut c, "00A4000402CC0100"), "9000");
    assert_eq!(
        sw(&mut c, &update("2F10", 0, b"\x30\x03\x02\x01\x05")),
        "9000"
    );
    let offset_0 = [0x54, 0x02, 0x00, 0x00];
    assert_eq!(
        sw(&mut c, &cmd(Ins::ReadBinaryOdd, 0xCE, 1, &offset_0)),
        "6282"
    );
    assert_eq!(
        sw(&mut c, &cmd(Ins::ReadBinaryOdd, 0x2F, 2, &offset_0)),
        "6282"
    );
    assert_eq!(
        sw(&mut c, &format!("8068017020{}00", "AB".repeat(32))),
        "9000"
    );
    // The blob comes in two pieces: 256 bytes, then the rest with GET RESPONSE.
    let (first, status) = send(&mut c, "80720192 00");
    assert!(status.starts_with("61"), "{status}");
    let (rest, status) = send(&mut c, &format!("00C00000{}", &status[2..]));
    assert_eq!(status, "9000");
    let blob = hex::decode(&(first + &rest)).unwrap();
    assert_eq!(sw(&mut c, "00E4000002CC01"), "9000");
    assert_eq!(sw(&mut c, "00E4000002CE01"), "9000");
    assert_eq!(sw(&mut c, &cmd(Ins::UnwrapKey, 2, 0x93, &blob)), "9000");
    assert_eq!(sw(&mut c, "0084000008"), "9000");
    assert_eq!(sw(&mut c, "0020008100"), "9000");
    assert_eq!(sw(&mut c, "8058000000"), "9000");
    let new_pin = "3132333435363738";
    assert_eq!(
        sw(&mut c, &format!("002400810E{USER_PIN}{new_pin}")),
        "9000"
    );
    assert_eq!(sw(&mut c, &format!("002C008110{SO_PIN}{new_pin}")), "9000");
    // A PIN split across the two parts of a chain: hidden in each, whole in the last.
    assert_eq!(sw(&mut c, "1020008104 3132 3334"), "9000");
    assert_eq!(sw(&mut c, "0020008104 3536 3738"), "9000");
    let events = events.lock().unwrap();
    let text = all_text(&events);
    let (first, last) = (&events[events.len() - 2], &events[events.len() - 1]);
    assert_eq!(first.apdu, "10 20 00 81 04 [user-pin#2:4]");
    assert_eq!(first.chain.as_deref(), Some("part 1"));
    assert_eq!(last.apdu, "00 20 00 81 04 [user-pin#2:4]");
    assert_eq!(last.chain.as_deref(), Some("last of 2"));
    assert_eq!(
        last.plain.as_deref(),
        Some("00 20 00 81 00 00 08 [user-pin#2:8]")
    );
    for secret in [USER_PIN, SO_PIN, &share, new_pin] {
        assert!(
            !text.replace(' ', "").contains(secret),
            "{secret} in the trace:\n{text}"
        );
    }
    for e in events.iter() {
        for f in e.all_fields() {
            assert_ne!(
                f.name, UNDECODED,
                "{} has undecoded data:\n{text}",
                e.command
            );
        }
    }
    // The wrapped key's body is taken out of both the WRAP answer and the UNWRAP command.
    let body_hex = hex::encode(&blob[blob.len() - 16 - 32..blob.len() - 16]);
    assert!(!text.replace(' ', "").contains(&body_hex), "{text}");
    assert!(text.contains("[wrapped-key-body#1:"), "{text}");
    // The configuration read with Le is decoded; without Le the card delivered nothing, and
    // the trace decodes nothing.
    assert_eq!(events[3].response, "00 01 03 01 04 00 00 00 90 00");
    assert_eq!(events[3].response_fields[3].meaning.as_deref(), Some("4.0"));
    assert_eq!(events[4].response, "90 00");
    assert!(events[4].response_fields.is_empty());
    // GET RESPONSE continues the WRAP answer, and says so.
    let continued = events.iter().find(|e| e.command == "GET RESPONSE").unwrap();
    assert!(continued
        .continues
        .as_deref()
        .unwrap()
        .starts_with("the answer of WRAP KEY, bytes 256 to "));
}
