//! Tearing through the real stack: a PC/SC client (libpcsclite, through the sandbox's pcscd
//! and vpcd) sends GENERATE (EC and RSA), UPDATE BINARY, DELETE FILE, IMPORT DKEK SHARE,
//! CHANGE REFERENCE DATA and VERIFY while a `tear` rule of the control channel cuts the power
//! at a random point of the command. The client sees its transmission fail; once pcscd has
//! seen the card leave and come back, the client reads the card back with APDUs and checks it
//! against a model of acknowledged changes: the state from before the command or from after
//! it, never one between (a PIN's try charged before the comparison, the card's anti-tearing,
//! is the one state between the card makes on purpose).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

use conformance_tests::{offline, text, Sandbox};
use emulator::model::pin::PinRef;
use emulator::testkit::tearing::{Torn, PINS};
use emulator::tools::{hex, host};

const READER: &str = "Virtual PCD 00 00";

struct Client {
    context: pcsc::Context,
    reader: CString,
    card: Option<pcsc::Card>,
}

impl Client {
    fn new() -> Client {
        Client {
            context: pcsc::Context::establish(pcsc::Scope::User).expect("PC/SC context"),
            reader: CString::new(READER).unwrap(),
            card: None,
        }
    }

    /// pcscd's event count of the reader and whether a card is in it.
    fn reader_state(&self) -> (u32, bool) {
        let mut states = [pcsc::ReaderState::new(
            self.reader.clone(),
            pcsc::State::UNAWARE,
        )];
        self.context
            .get_status_change(Duration::ZERO, &mut states)
            .expect("reader state");
        (
            states[0].event_count(),
            states[0].event_state().contains(pcsc::State::PRESENT),
        )
    }

    /// Waits until pcscd has seen the card leave and come back since event count `since`.
    fn wait_back(&mut self, since: u32) {
        self.card = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (count, present) = self.reader_state();
            if count.wrapping_sub(since) >= 2 && present {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the card never came back after the tear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `apdu`; the answer, or `None` when the transmission failed.
    fn try_send(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        if self.card.is_none() {
            let card = self
                .context
                .connect(&self.reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
                .expect("connect");
            self.card = Some(card);
        }
        let mut buffer = vec![0u8; 70_000];
        let answer = self
            .card
            .as_ref()
            .unwrap()
            .transmit(apdu, &mut buffer)
            .ok()?;
        (answer.len() >= 2).then(|| answer.to_vec())
    }

    fn send(&mut self, apdu: &[u8]) -> (Vec<u8>, String) {
        let answer = self.try_send(apdu).expect("an answer");
        let (data, sw) = answer.split_at(answer.len() - 2);
        (data.to_vec(), hex::encode(sw))
    }

    fn ok(&mut self, apdu: &[u8]) -> Vec<u8> {
        let (data, sw) = self.send(apdu);
        assert_eq!(sw, "9000", "{}", hex::encode(apdu));
        data
    }
}

/// What the model follows of the card.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    keys: Vec<u8>,
    files: BTreeMap<u16, Vec<u8>>,
    pin: usize,
    tries: u8,
    dkek_missing: u8,
}

fn read_file(client: &mut Client, fid: u16) -> Vec<u8> {
    let mut content = Vec::new();
    loop {
        let offset = content.len() as u16;
        let [f1, f2] = fid.to_be_bytes();
        let [o1, o2] = offset.to_be_bytes();
        let (data, sw) = client.send(&[0x00, 0xB1, f1, f2, 0x04, 0x54, 0x02, o1, o2, 0x00]);
        content.extend_from_slice(&data);
        if sw != "9000" || data.len() < 256 {
            return content;
        }
    }
}

/// Reads the card back with APDUs (and logs the user in, with the PIN that is right now).
fn observe(client: &mut Client, likely_pin: usize) -> Model {
    client.ok(&host::select_application());
    let (_, status) = client.send(&[0x00, 0x20, 0x00, 0x81]);
    assert!(status.starts_with("63C"), "{status}");
    let tries = u8::from_str_radix(&status[3..], 16).unwrap();
    // Private data objects (CD..) are read after the PIN.
    let pin = [likely_pin, 1 - likely_pin]
        .into_iter()
        .find(|i| client.send(&host::verify(PinRef::User, PINS[*i])).1 == "9000")
        .expect("one of the PINs is right");
    let objects = client.ok(&[0x80, 0x58, 0x00, 0x00, 0x00]);
    let fids: Vec<u16> = objects
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let keys = fids
        .iter()
        .filter(|f| *f >> 8 == 0xCC && *f & 0xFF != 0)
        .map(|f| *f as u8)
        .collect();
    let files = fids
        .iter()
        .filter(|f| *f >> 8 == 0xCD)
        .map(|f| (*f, read_file(client, *f)))
        .collect();
    let dkek = client.ok(&[0x80, 0x52, 0x00, 0x00, 0x00]);
    Model {
        keys,
        files,
        pin,
        tries,
        dkek_missing: dkek[1],
    }
}

#[test]
fn torn_commands_through_pcscd_leave_the_state_from_before_or_after_them() {
    let mut sandbox = Sandbox::pcscd_only();
    let db = sandbox.db_path(0);
    let init = offline(&["init", "--db", db.to_str().unwrap(), "--dkek-shares", "255"]);
    assert!(init.status.success(), "{}", text(&init));
    sandbox.insert_card_on(0, &db, &["-v"]);
    let socket = sandbox
        .command("true")
        .get_envs()
        .find(|(k, _)| *k == "PCSCLITE_CSOCK_NAME")
        .and_then(|(_, v)| v.map(|v| v.to_owned()))
        .expect("the sandbox's pcscd socket");
    std::env::set_var("PCSCLITE_CSOCK_NAME", socket);
    let mut client = Client::new();
    let mut model = observe(&mut client, 0);
    let mut choice = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: u64| {
        choice ^= choice << 13;
        choice ^= choice >> 7;
        choice ^= choice << 17;
        choice % n
    };
    let mut outcomes: BTreeMap<(Torn, &str), u32> = BTreeMap::new();
    let rounds = 200;
    let started = Instant::now();
    for round in 0..rounds {
        if model.tries < 3 {
            let so_pin = hex::decode("3537363231383830").unwrap();
            client.ok(&emulator::apdu::extended([0x00, 0x2C, 0x01, 0x81], &so_pin));
            model.tries = 3;
        }
        let op = Torn::ALL[next(Torn::ALL.len() as u64) as usize];
        let free_key = (1..=60u8)
            .find(|k| !model.keys.contains(k))
            .expect("a free key id");
        let fid = 0xCD00 | next(6) as u16;
        let content: Vec<u8> = (0..1 + next(200))
            .map(|i| (i as u8) ^ round as u8)
            .collect();
        let existing: Vec<u16> = model
            .files
            .keys()
            .copied()
            .chain(model.keys.iter().map(|k| 0xCC00 | u16::from(*k)))
            .collect();
        let target = match existing.len() {
            0 => 0xCD05,
            n => existing[next(n as u64) as usize],
        };
        let apdu = op.apdu(free_key, fid, &content, target, round, model.pin);
        let on = op.command();
        // What the model expects once the command ran whole.
        let mut after = model.clone();
        match op {
            Torn::GenerateEc | Torn::GenerateRsa => {
                after.keys.push(free_key);
                after.keys.sort_unstable();
            }
            Torn::UpdateBinary => {
                after.files.insert(fid, content.clone());
            }
            Torn::DeleteFile => {
                after.files.remove(&target);
                after.keys.retain(|k| 0xCC00 | u16::from(*k) != target);
            }
            Torn::ImportDkekShare => after.dkek_missing -= 1,
            Torn::ChangePin => {
                after.pin = 1 - model.pin;
                after.tries = 3;
            }
            Torn::VerifyRight => after.tries = 3,
            Torn::VerifyWrong => after.tries -= 1,
        }
        let rule = format!("on={on},probability=1,seed={round},tear");
        sandbox.control(0, &["fault", "add", &rule]);
        let (since, _) = client.reader_state();
        let answer = client.try_send(&apdu);
        assert!(
            answer.is_none(),
            "round {round}: {op:?} was answered: {answer:?}"
        );
        client.wait_back(since);
        let found = observe(&mut client, model.pin);
        sandbox.control(0, &["fault", "clear"]);
        let mut charged = model.clone();
        charged.tries = model.tries - 1;
        let outcome = op.outcome(&model, &after, &charged, &found).unwrap_or_else(|| {
            panic!("round {round}: {op:?} left a state between:\nbefore {model:?}\nafter {after:?}\nfound {found:?}")
        });
        *outcomes.entry((op, outcome)).or_default() += 1;
        model = found;
    }
    eprintln!(
        "{rounds} tears through pcscd in {:.1} s, 0 states between: {outcomes:?}",
        started.elapsed().as_secs_f64()
    );
    for &op in Torn::changing() {
        assert!(
            outcomes.contains_key(&(op, "before")) && outcomes.contains_key(&(op, "after")),
            "{op:?} was not torn both before and after its change: {outcomes:?}"
        );
    }
}
