//! The wire bytes of a whole session stay as they were: `fixtures/wire/demo-seed-1.session` is
//! what a seeded demo card answered real OpenSC (`pkcs15-tool -D`, then a signature with
//! `pkcs11-tool`) through pcscd and vpcd, recorded by `fixtures/wire/record.sh`. The same card,
//! opened the same way, must answer every command of it with the same bytes.

use emulator::tools::hex;
use emulator::{Card, RedbStore};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/wire");

/// One line of a session file.
enum Step {
    /// `@ reset PROGRAM`: a program starts.
    Reset(String),
    /// `> COMMAND` and the `< ANSWER` after it.
    Exchange(Vec<u8>, Vec<u8>),
}

fn steps(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    while let Some(line) = lines.next() {
        if let Some(program) = line.strip_prefix("@ reset ") {
            steps.push(Step::Reset(program.to_string()));
            continue;
        }
        let command = line.strip_prefix("> ").expect("a command line");
        let answer = lines
            .next()
            .and_then(|l| l.strip_prefix("< "))
            .expect("an answer after each command");
        steps.push(Step::Exchange(
            hex::decode(command).expect("hex"),
            hex::decode(answer).expect("hex"),
        ));
    }
    steps
}

#[test]
fn a_seeded_demo_session_answers_the_recorded_bytes() {
    let snapshot = std::fs::read(format!("{FIXTURES}/demo-seed-1.snapshot")).unwrap();
    let session = std::fs::read_to_string(format!("{FIXTURES}/demo-seed-1.session")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(&dir.path().join("card.redb")).unwrap();
    store.restore(&snapshot).unwrap();
    let mut card = Card::open_seeded(Box::new(store), 1).unwrap();
    card.power_on();
    let (mut program, mut exchanges) = (String::new(), 0);
    for step in steps(&session) {
        match step {
            Step::Reset(name) => {
                card.reset();
                program = name;
            }
            Step::Exchange(command, recorded) => {
                exchanges += 1;
                let answer = card.transmit(&command);
                assert_eq!(
                    hex::encode(&answer),
                    hex::encode(&recorded),
                    "{program}: the answer to {}",
                    hex::encode(&command)
                );
            }
        }
    }
    // pkcs15-tool -D and the signature: SELECTs, reads of every file, VERIFY, SIGN.
    assert!(exchanges > 150, "only {exchanges} exchanges replayed");
}
