//! Support for fuzzing and property tests (cargo feature `testkit`): cards in interesting
//! states, APDU sequences decoded from arbitrary bytes, the invariants every command must keep
//! ([`invariants`]) and the fuzz targets ([`targets`]).
//!
//! Used by the `fuzz/` targets (libFuzzer), the fixed-size smoke runs in the test suite and
//! the proptest properties. Not part of the card's API.

// Test support: a fuzz target or a property reports a broken invariant, or a prepared state
// that could not be made, by panicking; that is what libFuzzer and proptest catch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod invariants;
pub mod targets;
pub mod tearing;

use std::sync::OnceLock;

use crate::apdu::tlv;
use crate::applet::command::Ins;
use crate::card::Card;
use crate::crypto::rng::SeededRng;
use crate::crypto::{cvc, ec::Curve};
use crate::model::pin::PinRef;
use crate::store::MemoryStore;
use crate::tools::hex;
use crate::tools::host::{self, Initialization};

/// The user PIN and SO-PIN of every prepared card.
pub const USER_PIN: &[u8] = b"648219";
pub const SO_PIN: [u8; 8] = *b"57621880";
/// The DKEK share of prepared cards with a DKEK.
pub const DKEK_SHARE: [u8; 32] = [0x3C; 32];

/// The states a fuzzed card starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Blank,
    Initialized,
    LoggedIn,
    /// Logged in, a DKEK, an RSA-1024 key (id 1) and a P-256 key (id 2, usage counter 3,
    /// algorithms 70 and 73), a data object and a CA certificate file.
    WithKeysAndDkek,
    /// Initialised for two DKEK shares, one imported.
    DkekPending,
    /// A 4.x card, logged in: 4 key domain slots; domain 0 with the DKEK share, domain 1
    /// with the same share, domain 2 waiting for one share; an AES-128 key (id 1, algorithms
    /// 10 11 18 99, counter 5) in domain 1, an AES-256 key (id 2) and a P-256 key allowing
    /// DERIVE (id 3, algorithms 70 98).
    FourK,
}

impl Start {
    pub const ALL: [Start; 6] = [
        Start::Blank,
        Start::Initialized,
        Start::LoggedIn,
        Start::WithKeysAndDkek,
        Start::DkekPending,
        Start::FourK,
    ];

    pub fn from_byte(b: u8) -> Start {
        Start::ALL[usize::from(b) % Start::ALL.len()]
    }
}

fn init_apdu(dkek_shares: Option<u8>, key_domains: Option<u8>) -> Vec<u8> {
    Initialization {
        options: 0x0001,
        user_pin: USER_PIN,
        so_pin: &SO_PIN,
        user_pin_tries: 3,
        dkek_shares,
        key_domains,
        public_keys: None,
    }
    .apdu()
}

/// Sends `apdu` and panics unless it succeeds (setting up a prepared card).
fn must(card: &mut Card, apdu: &[u8]) -> Vec<u8> {
    let r = card.transmit(apdu);
    assert_eq!(
        &r[r.len() - 2..],
        &[0x90, 0x00],
        "setup APDU {} failed",
        hex::encode(apdu)
    );
    r[..r.len() - 2].to_vec()
}

/// The stored state of a prepared card, made once per process.
fn prepared_store(start: Start) -> MemoryStore {
    static STORES: OnceLock<Vec<MemoryStore>> = OnceLock::new();
    let stores = STORES.get_or_init(|| Start::ALL.iter().map(|s| build(*s)).collect());
    stores[Start::ALL.iter().position(|s| *s == start).unwrap_or(0)].snapshot()
}

/// A GENERATE request for `template` with the policy TLVs `extra`.
fn generate(key_id: u8, template: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut body = cvc::generate_request(b"UTCA00001", template, b"ZZEM000000000001");
    body.extend_from_slice(extra);
    host::command(Ins::GenerateKeyPair, key_id, 0x00, &body)
}

fn build(start: Start) -> MemoryStore {
    let store = MemoryStore::default();
    // Setup draws from its own stream; a fuzzed session must never replay it (its output
    // would then contain the keys setup made).
    let mut card = Card::open_with_rng(
        Box::new(store.clone()),
        Box::new(SeededRng::new(SETUP_SEED, 0)),
    )
    .expect("memory store");
    let import_share = host::manage_key_domain(0x00, 0, &DKEK_SHARE);
    must(&mut card, &host::select_application());
    match start {
        Start::Blank => {}
        Start::Initialized | Start::LoggedIn => {
            must(&mut card, &init_apdu(None, None));
        }
        Start::DkekPending => {
            must(&mut card, &init_apdu(Some(2), None));
            must(&mut card, &import_share);
        }
        Start::FourK => {
            must(&mut card, &init_apdu(Some(1), Some(4)));
            must(&mut card, &import_share);
            must(&mut card, &host::verify(PinRef::User, USER_PIN));
            must(&mut card, &host::manage_key_domain(0x01, 1, &[1]));
            must(&mut card, &host::manage_key_domain(0x00, 1, &DKEK_SHARE));
            must(&mut card, &host::manage_key_domain(0x01, 2, &[1]));
            let mut policy = tlv::encode(0x90, &5u32.to_be_bytes());
            tlv::write(&mut policy, 0x91, &[0x10, 0x11, 0x18, 0x99]);
            tlv::write(&mut policy, 0x92, &[1]);
            must(
                &mut card,
                &host::command(Ins::GenerateSymmetricKey, 1, 0xB0, &policy),
            );
            must(
                &mut card,
                &host::command(Ins::GenerateSymmetricKey, 2, 0xB2, &[]),
            );
            let ec = cvc::ec_key_template(Curve::Secp256r1);
            must(
                &mut card,
                &generate(3, &ec, &tlv::encode(0x91, &[0x70, 0x98])),
            );
        }
        Start::WithKeysAndDkek => {
            must(&mut card, &init_apdu(Some(1), None));
            must(&mut card, &import_share);
            must(&mut card, &host::verify(PinRef::User, USER_PIN));
            must(&mut card, &generate(1, &cvc::rsa_key_template(1024), &[]));
            let mut policy = tlv::encode(0x90, &3u32.to_be_bytes());
            tlv::write(&mut policy, 0x91, &[0x70, 0x73]);
            let ec = cvc::ec_key_template(Curve::Secp256r1);
            must(&mut card, &generate(2, &ec, &policy));
            must(
                &mut card,
                &host::update_binary(0xCD01, b"private data object"),
            );
            let ca_certificate = [0x30, 0x03, 0x02, 0x01, 0x00];
            must(&mut card, &host::update_binary(0xCA01, &ca_certificate));
        }
    }
    drop(card);
    store
}

const SETUP_SEED: u64 = 0x0005_EED0_F5E7_0000;

/// A card in state `start` (the session too: selected, and logged in where the state says so).
pub fn card(start: Start, seed: u64) -> Card {
    let rng = SeededRng::new((seed << 16) | 0xF022, 0);
    let mut card =
        Card::open_with_rng(Box::new(prepared_store(start)), Box::new(rng)).expect("memory store");
    must(&mut card, &host::select_application());
    if matches!(
        start,
        Start::LoggedIn | Start::WithKeysAndDkek | Start::FourK
    ) {
        must(&mut card, &host::verify(PinRef::User, USER_PIN));
    }
    card
}

/// Headers that steer fuzzed APDUs into every command of the card: each instruction of the
/// command table with its class and each of its typical P1-P2 values.
fn headers() -> &'static [[u8; 4]] {
    static HEADERS: OnceLock<Vec<[u8; 4]>> = OnceLock::new();
    HEADERS.get_or_init(|| {
        Ins::ALL
            .iter()
            .flat_map(|ins| {
                ins.examples().iter().map(|p1p2| {
                    let [p1, p2] = p1p2.to_be_bytes();
                    [ins.class(), ins.code(), p1, p2]
                })
            })
            .collect()
    })
}

/// Decodes arbitrary bytes into APDUs: each starts with a length byte; a chunk whose first
/// byte is below 0x60 gets one of the card's own command headers in front of the rest, so
/// the fuzzer reaches every command quickly.
pub fn apdus(data: &[u8]) -> Vec<Vec<u8>> {
    let headers = headers();
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&len, after)) = rest.split_first() {
        let n = usize::from(len).min(after.len());
        let (chunk, tail) = after.split_at(n);
        rest = tail;
        match chunk.split_first() {
            Some((&selector, body)) if selector < 0x60 => {
                let mut apdu = headers[usize::from(selector) % headers.len()].to_vec();
                apdu.extend_from_slice(body);
                out.push(apdu);
            }
            _ => out.push(chunk.to_vec()),
        }
    }
    out
}

/// Runs the APDUs decoded from `data` on a card in `start`, checking every invariant after
/// every command. Panics on a violation (what a fuzz target wants).
pub fn run(start: Start, data: &[u8]) {
    let mut card = card(start, u64::from(data.first().copied().unwrap_or(0)));
    for apdu in apdus(data).iter().take(64) {
        let before = invariants::Snapshot::of(&card);
        let secrets = invariants::secrets(&card);
        let authenticated = invariants::user_authenticated(&card);
        let response = card.transmit(apdu);
        assert!(response.len() >= 2, "an answer without a status word");
        let after = invariants::Snapshot::of(&card);
        if let Err(invariants::Violation(what)) =
            invariants::check(&before, &secrets, apdu, &response, &after).and_then(|()| {
                invariants::check_access(authenticated, &before, apdu, &response, &after)
            })
        {
            panic!("invariant broken: {what}");
        }
    }
}

#[cfg(test)]
mod tests;
