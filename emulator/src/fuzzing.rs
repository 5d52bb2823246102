//! Support for fuzzing and property tests: cards in interesting states, APDU sequences decoded
//! from arbitrary bytes, and the invariants every command must keep.
//!
//! Used by the `fuzz/` targets (libFuzzer), the fixed-time smoke runs in the test suite and
//! the proptest properties. Not part of the card's API.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::card::Card;
use crate::dkek::Dkek;
use crate::keystore::KeyMaterial;
use crate::rng::CardRng;
use crate::store::MemoryStore;
use crate::{hex, tlv};

/// The user PIN and SO-PIN of every prepared card.
pub const USER_PIN: &[u8] = b"648219";
pub const SO_PIN: [u8; 8] = *b"57621880";
/// The DKEK share of prepared cards with a DKEK.
pub const DKEK_SHARE: [u8; 32] = [0x3C; 32];

/// A deterministic, NOT cryptographically secure generator: fuzzing must be reproducible.
pub struct FuzzRng(u64);

impl FuzzRng {
    pub fn new(seed: u64) -> FuzzRng {
        FuzzRng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
}

impl CardRng for FuzzRng {
    fn fill_bytes(&mut self, out: &mut [u8]) {
        for b in out {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        }
    }
}

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
}

impl Start {
    pub const ALL: [Start; 5] = [
        Start::Blank,
        Start::Initialized,
        Start::LoggedIn,
        Start::WithKeysAndDkek,
        Start::DkekPending,
    ];

    pub fn from_byte(b: u8) -> Start {
        Start::ALL[usize::from(b) % Start::ALL.len()]
    }
}

fn init_apdu(dkek_shares: Option<u8>) -> Vec<u8> {
    let mut data = tlv::encode(0x80, &[0x00, 0x01]);
    tlv::write(&mut data, 0x81, USER_PIN);
    tlv::write(&mut data, 0x82, &SO_PIN);
    tlv::write(&mut data, 0x91, &[3]);
    if let Some(n) = dkek_shares {
        tlv::write(&mut data, 0x92, &[n]);
    }
    let mut apdu = vec![0x80, 0x50, 0x00, 0x00, data.len() as u8];
    apdu.extend_from_slice(&data);
    apdu
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

pub const SELECT: [u8; 17] = [
    0x00, 0xA4, 0x04, 0x00, 0x0B, 0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
    0x00,
];

fn verify_apdu() -> Vec<u8> {
    let mut apdu = vec![0x00, 0x20, 0x00, 0x81, USER_PIN.len() as u8];
    apdu.extend_from_slice(USER_PIN);
    apdu
}

use crate::apdu::extended;

/// The stored state of a prepared card, made once per process.
fn prepared_store(start: Start) -> MemoryStore {
    static STORES: OnceLock<Vec<MemoryStore>> = OnceLock::new();
    let stores = STORES.get_or_init(|| Start::ALL.iter().map(|s| build(*s)).collect());
    stores[Start::ALL.iter().position(|s| *s == start).unwrap_or(0)].snapshot()
}

fn build(start: Start) -> MemoryStore {
    let store = MemoryStore::default();
    // Setup draws from its own stream; a fuzzed session must never replay it (its output
    // would then contain the keys setup made).
    let mut card = Card::open_with_rng(Box::new(store.clone()), Box::new(FuzzRng::new(SETUP_SEED)))
        .expect("memory store");
    must(&mut card, &SELECT);
    match start {
        Start::Blank => {}
        Start::Initialized | Start::LoggedIn => {
            must(&mut card, &init_apdu(None));
        }
        Start::DkekPending => {
            must(&mut card, &init_apdu(Some(2)));
            must(&mut card, &extended([0x80, 0x52, 0x00, 0x00], &DKEK_SHARE));
        }
        Start::WithKeysAndDkek => {
            must(&mut card, &init_apdu(Some(1)));
            must(&mut card, &extended([0x80, 0x52, 0x00, 0x00], &DKEK_SHARE));
            must(&mut card, &verify_apdu());
            let rsa = crate::cvc::rsa_key_template(1024);
            must(
                &mut card,
                &extended([0x00, 0x46, 0x01, 0x00], &generate_body(&rsa, &[])),
            );
            let ec = crate::cvc::ec_key_template(crate::ec::Curve::Secp256r1);
            let mut policy = tlv::encode(0x90, &3u32.to_be_bytes());
            tlv::write(&mut policy, 0x91, &[0x70, 0x73]);
            must(
                &mut card,
                &extended([0x00, 0x46, 0x02, 0x00], &generate_body(&ec, &policy)),
            );
            let mut update = vec![0x54, 0x02, 0x00, 0x00];
            tlv::write(&mut update, 0x53, b"private data object");
            must(&mut card, &extended([0x00, 0xD7, 0xCD, 0x01], &update));
            let mut update = vec![0x54, 0x02, 0x00, 0x00];
            tlv::write(&mut update, 0x53, &[0x30, 0x03, 0x02, 0x01, 0x00]);
            must(&mut card, &extended([0x00, 0xD7, 0xCA, 0x01], &update));
        }
    }
    drop(card);
    store
}

fn generate_body(template: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut body = crate::cvc::generate_request(b"UTCA00001", template, b"ZZEM000000000001");
    body.extend_from_slice(extra);
    body
}

const SETUP_SEED: u64 = 0x0005_EED0_F5E7_0000;

/// A card in state `start` (the session too: selected, and logged in where the state says so).
pub fn card(start: Start, seed: u64) -> Card {
    let rng = FuzzRng::new((seed << 16) | 0xF022);
    let mut card =
        Card::open_with_rng(Box::new(prepared_store(start)), Box::new(rng)).expect("memory store");
    must(&mut card, &SELECT);
    if matches!(start, Start::LoggedIn | Start::WithKeysAndDkek) {
        must(&mut card, &verify_apdu());
    }
    card
}

/// Headers that steer fuzzed APDUs into every command of the card.
const HEADERS: [[u8; 4]; 24] = [
    [0x00, 0xA4, 0x04, 0x00],
    [0x00, 0xA4, 0x00, 0x00],
    [0x00, 0xB1, 0x00, 0x00],
    [0x00, 0xB0, 0x00, 0x00],
    [0x00, 0xD7, 0xCF, 0x01],
    [0x00, 0xD7, 0x2F, 0x10],
    [0x00, 0xE4, 0x02, 0x00],
    [0x80, 0x58, 0x00, 0x00],
    [0x00, 0x20, 0x00, 0x81],
    [0x00, 0x20, 0x00, 0x88],
    [0x00, 0x24, 0x00, 0x81],
    [0x00, 0x24, 0x00, 0x88],
    [0x00, 0x2C, 0x00, 0x81],
    [0x00, 0x2C, 0x01, 0x81],
    [0x80, 0x50, 0x00, 0x00],
    [0x80, 0x52, 0x00, 0x00],
    [0x00, 0x46, 0x03, 0x00],
    [0x80, 0x68, 0x01, 0x20],
    [0x80, 0x68, 0x02, 0x70],
    [0x80, 0x62, 0x01, 0x21],
    [0x80, 0x62, 0x02, 0x80],
    [0x80, 0x72, 0x01, 0x92],
    [0x80, 0x74, 0x05, 0x93],
    [0x00, 0x84, 0x00, 0x00],
];

/// Decodes arbitrary bytes into APDUs: each starts with a length byte; a chunk whose first
/// byte is below 0x60 gets one of the card's own command headers in front of the rest, so
/// the fuzzer reaches every command quickly.
pub fn apdus(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&len, after)) = rest.split_first() {
        let n = usize::from(len).min(after.len());
        let (chunk, tail) = after.split_at(n);
        rest = tail;
        match chunk.split_first() {
            Some((&selector, body)) if selector < 0x60 => {
                let mut apdu = HEADERS[usize::from(selector) % HEADERS.len()].to_vec();
                apdu.extend_from_slice(body);
                out.push(apdu);
            }
            _ => out.push(chunk.to_vec()),
        }
    }
    out
}

/// What the invariants compare before and after a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub user_tries: Option<u8>,
    pub so_tries: Option<u8>,
    pub user_pin: Option<Vec<u8>>,
    pub so_pin: Option<Vec<u8>>,
    pub config: Option<u16>,
    pub dkek: Vec<u8>,
    pub files: BTreeMap<u16, Vec<u8>>,
    pub keys: BTreeMap<u8, Vec<u8>>,
}

impl Snapshot {
    pub fn of(card: &Card) -> Snapshot {
        let s = card.state();
        Snapshot {
            user_tries: s.user_pin.as_ref().map(|p| p.tries_left),
            so_tries: s.so_pin.as_ref().map(|p| p.tries_left),
            user_pin: s.user_pin.as_ref().map(|p| p.encode()),
            so_pin: s.so_pin.as_ref().map(|p| p.encode()),
            config: s.config.map(|c| c.options),
            dkek: s.dkek.encode(),
            files: s.files.iter().map(|(k, f)| (*k, f.data.clone())).collect(),
            keys: s
                .keys
                .iter()
                .map(|(k, v)| (*k, v.encode().to_vec()))
                .collect(),
        }
    }

    /// The same snapshot with the retry counters left out.
    fn without_counters(&self) -> Snapshot {
        let strip = |pin: &Option<Vec<u8>>| pin.as_ref().map(|p| [&p[..2], &p[3..]].concat());
        Snapshot {
            user_tries: None,
            so_tries: None,
            user_pin: strip(&self.user_pin),
            so_pin: strip(&self.so_pin),
            ..self.clone()
        }
    }
}

/// Every secret the card holds: PIN values in use, the DKEK, private key material.
fn secrets(card: &Card) -> Vec<Vec<u8>> {
    let mut out = vec![USER_PIN.to_vec(), SO_PIN.to_vec()];
    let s = card.state();
    if let Dkek::Pending { value, .. } | Dkek::Ready { value, .. } = &s.dkek {
        out.push(value.to_vec());
    }
    for key in s.keys.values() {
        match &key.material {
            KeyMaterial::Ec { scalar, .. } => out.push(scalar.to_vec()),
            KeyMaterial::Rsa(k) => {
                use rsa::traits::PrivateKeyParts;
                out.push(crate::keystore::trimmed(k.d()));
                for p in k.primes() {
                    out.push(crate::keystore::trimmed(p.as_ref()));
                }
            }
        }
    }
    out
}

/// A broken invariant, with what broke it.
#[derive(Debug)]
pub struct Violation(pub String);

/// Checks the invariants of one exchange.
pub fn check(
    before: &Snapshot,
    secrets_before: &[Vec<u8>],
    apdu: &[u8],
    response: &[u8],
    after: &Snapshot,
) -> Result<(), Violation> {
    let fail = |what: &str| {
        Err(Violation(format!(
            "{what}: APDU {} answered {}",
            hex::encode(apdu),
            hex::encode(response)
        )))
    };
    let (data, sw) = response.split_at(response.len().saturating_sub(2));
    let ins = apdu.get(1).copied().unwrap_or(0);
    let ok = sw == [0x90, 0x00] || sw.first() == Some(&0x61) || sw == [0x62, 0x82];

    // 1. Retry counters rise only through a successful PIN command or (re)initialisation.
    for (old, new) in [
        (before.user_tries, after.user_tries),
        (before.so_tries, after.so_tries),
    ] {
        if let (Some(old), Some(new)) = (old, new) {
            if new > old && !(ok && matches!(ins, 0x20 | 0x24 | 0x2C | 0x50)) {
                return fail("a retry counter rose without a correct PIN");
            }
        }
    }
    // 2. Blocked stays blocked: the SO-PIN forever, the user PIN until RESET RETRY COUNTER
    //    or INITIALIZE.
    if before.so_tries == Some(0) && after.so_tries != Some(0) {
        return fail("a blocked SO-PIN was unblocked");
    }
    if before.user_tries == Some(0)
        && after.user_tries != Some(0)
        && !(ok && matches!(ins, 0x2C | 0x50))
    {
        return fail("a blocked user PIN was unblocked");
    }
    // 3. No secret in any response (blobs are encrypted, so this holds for WRAP too).
    for secret in secrets_before {
        let window = secret.len().min(32);
        if window >= 6
            && data
                .windows(window)
                .any(|w| secret.windows(window).any(|s| s == w))
        {
            return fail("a response carries a secret");
        }
    }
    // 4. A refused command changes nothing, except the try a wrong PIN costs.
    if !ok {
        if before.without_counters() != after.without_counters() {
            return fail("a refused command changed the card");
        }
        let dropped = |old: Option<u8>, new: Option<u8>| old.zip(new).is_some_and(|(o, n)| o != n);
        let wrong_pin = sw.first() == Some(&0x63);
        if (dropped(before.user_tries, after.user_tries)
            || dropped(before.so_tries, after.so_tries))
            && !wrong_pin
        {
            return fail("a refused command changed a retry counter");
        }
    }
    // 5. The device key and its certificates are always there; a generated key comes with
    //    its CV request in CExx, holding that key's public key.
    if !after.keys.contains_key(&0) || !after.files.contains_key(&0x2F02) {
        return fail("the device key or 2F02 is gone");
    }
    // A non-final part of a chain (CLA bit 10) is acknowledged before anything runs.
    let chained = apdu.first().is_some_and(|cla| cla & 0x10 != 0);
    if ok && ins == 0x46 && !chained {
        let id = apdu.get(2).copied().unwrap_or(0);
        let (Some(_), Some(request)) = (
            after.keys.get(&id),
            after.files.get(&u16::from_be_bytes([0xCE, id])),
        ) else {
            return fail("GENERATE left a key without its CV request");
        };
        if request.as_slice() != data && !data.is_empty() {
            return fail("the stored CV request differs from the answer");
        }
    }
    Ok(())
}

/// Runs the APDUs decoded from `data` on a card in `start`, checking every invariant after
/// every command. Panics on a violation (what a fuzz target wants).
pub fn run(start: Start, data: &[u8]) {
    let mut card = card(start, u64::from(data.first().copied().unwrap_or(0)));
    for apdu in apdus(data).iter().take(64) {
        let before = Snapshot::of(&card);
        let secrets = secrets(&card);
        let response = card.transmit(apdu);
        assert!(response.len() >= 2, "an answer without a status word");
        let after = Snapshot::of(&card);
        if let Err(Violation(what)) = check(&before, &secrets, apdu, &response, &after) {
            panic!("invariant broken: {what}");
        }
    }
}

/// The fuzz targets, one function each, shared by `fuzz/` and the smoke runs of the tests.
pub mod targets {
    use super::*;

    /// A card in the state the first byte names, then the APDUs of the rest.
    pub fn transmit(data: &[u8]) {
        if let Some((&state, rest)) = data.split_first() {
            run(Start::from_byte(state), rest);
        }
    }

    /// The APDU parser: never panics, and what it accepts encodes back to a command that
    /// parses to the same thing.
    pub fn apdu(data: &[u8]) {
        if let Ok(command) = crate::apdu::Command::parse(data) {
            let again = crate::apdu::Command::parse(&command.to_bytes())
                .expect("re-encoded command parses");
            assert_eq!(
                (
                    again.cla,
                    again.ins,
                    again.p1,
                    again.p2,
                    &again.data,
                    again.le
                ),
                (
                    command.cla,
                    command.ins,
                    command.p1,
                    command.p2,
                    &command.data,
                    command.le
                )
            );
        }
    }

    /// BER-TLV: what parses re-encodes to the same bytes when lengths are minimal.
    pub fn tlv(data: &[u8]) {
        if let Some(tlvs) = tlv::parse_all(data) {
            let mut again = Vec::new();
            for t in &tlvs {
                tlv::write(&mut again, t.tag, t.value);
            }
            if again.len() == data.len() {
                assert_eq!(again, data);
            }
        }
        let _ = tlv::find(data, 0x7F49);
    }

    /// CV certificates (and chains of them).
    pub fn cvc(data: &[u8]) {
        let mut rest = data;
        while let Some((cert, after)) = crate::cvc::decode(rest) {
            assert!(after.len() < rest.len());
            let _ = crate::cvc::TaAlgorithm::from_oid(
                tlv::find(cert.public_key, 0x06).unwrap_or_default(),
            );
            rest = after;
        }
    }

    /// Wrapped-key blobs: raw (refused by KCV/MAC), and sealed with a valid MAC around
    /// fuzzed plaintext so the field parser and key import are reached.
    pub fn keyblob(data: &[u8]) {
        use crate::keyblob::{seal_for_fuzzing, unwrap, KeyEncryptionKeys};
        let keys = KeyEncryptionKeys::derive(&DKEK_SHARE);
        assert!(unwrap(&keys, data).is_err() || data.len() > 40);
        if let Some((&selector, plain)) = data.split_first() {
            let key_type = [5u8, 6, 12, 15][usize::from(selector) % 4];
            let _ = unwrap(&keys, &seal_for_fuzzing(&keys, key_type, &[], plain));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_state_builds() {
        for start in Start::ALL {
            let mut card = card(start, 7);
            let r = card.transmit(&[0x00, 0x20, 0x00, 0x81]);
            let expected: &[u8] = match start {
                Start::Blank => &[0x6A, 0x88],
                Start::Initialized | Start::DkekPending => &[0x63, 0xC3],
                Start::LoggedIn | Start::WithKeysAndDkek => &[0x90, 0x00],
            };
            assert_eq!(r, expected, "{start:?}");
        }
    }

    #[test]
    fn the_checker_catches_what_it_names() {
        let card = card(Start::WithKeysAndDkek, 1);
        let before = Snapshot::of(&card);
        let secrets = secrets(&card);
        let mut after = before.clone();
        after.files.insert(0xCF09, vec![1]);
        assert!(check(
            &before,
            &secrets,
            &[0x00, 0xD7, 0xCF, 0x09],
            &[0x69, 0x82],
            &after
        )
        .is_err());
        let mut leaked = secrets[2].clone();
        leaked.extend_from_slice(&[0x90, 0x00]);
        assert!(check(
            &before,
            &secrets,
            &[0x00, 0x84, 0x00, 0x00, 0x20],
            &leaked,
            &before
        )
        .is_err());
        let mut raised = before.clone();
        raised.user_tries = Some(9);
        assert!(check(
            &before,
            &secrets,
            &[0x00, 0x84, 0x00, 0x00, 0x08],
            &[0x90, 0x00],
            &raised
        )
        .is_err());
        assert!(check(
            &before,
            &secrets,
            &[0x00, 0x84, 0x00, 0x00, 0x08],
            &[1, 2, 0x90, 0x00],
            &before
        )
        .is_ok());
    }
}
