//! A smoke run of every fuzz target (the long runs use cargo-fuzz, see `fuzz/long-run.sh`):
//! the kept corpus first, then a fixed number of seeded random inputs, the same on every run
//! however loaded the machine is.

use std::path::Path;

use emulator::crypto::rng::SeededRng;
use emulator::testkit::targets;

struct Inputs(SeededRng);

impl Inputs {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next_u64() % max as u64) as usize;
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// APDU sequences in the format of `fuzzing::apdus`, biased towards the card's commands.
    fn apdu_sequence(&mut self) -> Vec<u8> {
        let mut out = vec![self.next_u64() as u8];
        for _ in 0..(self.next_u64() % 12) {
            let body = self.bytes(48);
            out.push((body.len() + 1) as u8);
            out.push((self.next_u64() % 0x60) as u8);
            out.extend(body);
        }
        out
    }
}

/// Runs `target` on the kept corpus of `name`, then on `count` generated inputs; returns how
/// many corpus inputs there were.
fn smoke(
    name: &str,
    target: fn(&[u8]),
    count: usize,
    generate: fn(&mut Inputs) -> Vec<u8>,
) -> usize {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/fuzz")
        .join(name);
    let mut kept = 0;
    if let Ok(entries) = std::fs::read_dir(&corpus) {
        for entry in entries.flatten() {
            target(&std::fs::read(entry.path()).unwrap());
            kept += 1;
        }
    }
    let mut inputs = Inputs(SeededRng::new(0x1234_5678_9ABC_DEF1, name.len() as u64));
    for _ in 0..count {
        target(&generate(&mut inputs));
    }
    kept
}

#[test]
fn transmit_on_cards_in_every_state() {
    // Both kept findings (fixtures/fuzz/transmit) replay.
    assert_eq!(
        smoke("transmit", targets::transmit, 150, Inputs::apdu_sequence),
        2
    );
}

#[test]
fn apdu_parser() {
    smoke("apdu", targets::apdu, 20_000, |i| i.bytes(300));
}

#[test]
fn tlv_parser() {
    smoke("tlv", targets::tlv, 20_000, |i| i.bytes(300));
}

#[test]
fn cvc_parser() {
    let real = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/real-card/nitrokey-hsm2-DENK0404144-fw4.1-EF2F02.bin"),
    )
    .unwrap();
    targets::cvc(&real);
    smoke("cvc", targets::cvc, 20_000, |i| {
        // Mutations of a real chain reach deeper than noise.
        let mut chain = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/real-card/nitrokey-hsm2-DENK0404144-fw4.1-EF2F02.bin"),
        )
        .unwrap();
        for _ in 0..(i.next_u64() % 4) {
            let at = (i.next_u64() as usize) % chain.len();
            chain[at] = i.next_u64() as u8;
        }
        chain.truncate((i.next_u64() as usize) % (chain.len() + 1));
        chain
    });
}

#[test]
fn secure_messaging_wrapper() {
    smoke("secure_messaging", targets::secure_messaging, 20_000, |i| {
        // Bodies that start like data objects reach past the first check.
        let mut out = Vec::new();
        for _ in 0..(1 + i.next_u64() % 3) {
            let tags = [0x87u8, 0x85, 0x97, 0x8E, 0x99];
            out.push(0x20);
            for _ in 0..(i.next_u64() % 4) {
                let tag = tags[(i.next_u64() % tags.len() as u64) as usize];
                let value = i.bytes(20);
                out.push(tag);
                out.push(value.len() as u8);
                out.extend(value);
            }
            out.resize(out.len().div_ceil(64) * 64, 0);
        }
        out
    });
}

#[test]
fn keyblob_parser() {
    // The kept finding (fixtures/fuzz/keyblob) replays.
    assert_eq!(
        smoke("keyblob", targets::keyblob, 3_000, |i| i.bytes(600)),
        1
    );
}
