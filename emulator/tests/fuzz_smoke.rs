//! A fixed-time smoke run of every fuzz target (the long runs use cargo-fuzz, see
//! `fuzz/long-run.sh`): the kept corpus first, then seeded random inputs for a second or so.

use std::path::Path;
use std::time::{Duration, Instant};

use emulator::fuzzing::targets;

const BUDGET: Duration = Duration::from_millis(1500);

struct Inputs(u64);

impl Inputs {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
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

fn smoke(name: &str, target: fn(&[u8]), generate: fn(&mut Inputs) -> Vec<u8>) -> usize {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/fuzz")
        .join(name);
    let mut runs = 0;
    if let Ok(entries) = std::fs::read_dir(&corpus) {
        for entry in entries.flatten() {
            target(&std::fs::read(entry.path()).unwrap());
            runs += 1;
        }
    }
    let mut inputs = Inputs(0x1234_5678_9ABC_DEF1 ^ name.len() as u64);
    let start = Instant::now();
    while start.elapsed() < BUDGET {
        target(&generate(&mut inputs));
        runs += 1;
    }
    println!("{name}: {runs} inputs");
    runs
}

#[test]
fn transmit_on_cards_in_every_state() {
    assert!(smoke("transmit", targets::transmit, Inputs::apdu_sequence) > 10);
}

#[test]
fn apdu_parser() {
    assert!(smoke("apdu", targets::apdu, |i| i.bytes(300)) > 100);
}

#[test]
fn tlv_parser() {
    assert!(smoke("tlv", targets::tlv, |i| i.bytes(300)) > 100);
}

#[test]
fn cvc_parser() {
    let real = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/real-card/nitrokey-hsm2-DENK0404144-fw4.1-EF2F02.bin"),
    )
    .unwrap();
    targets::cvc(&real);
    assert!(
        smoke("cvc", targets::cvc, |i| {
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
        }) > 100
    );
}

#[test]
fn keyblob_parser() {
    assert!(smoke("keyblob", targets::keyblob, |i| i.bytes(600)) > 100);
}
