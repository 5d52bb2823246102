//! A PC/SC client for the crash-consistency test: it runs state-changing commands against the
//! card in reader 0 while the test SIGKILLs the emulator at random moments, keeps a model of
//! every change the card acknowledged, and after each reconnection checks that every
//! acknowledged change is there (an unacknowledged one may or may not be, but whole).
//!
//! Output, one line each: `ACK <op>`, `RECONNECT`, `CHECKED <n>`, `VIOLATION <what>`, and at
//! the end `DONE acks=<n> reconnects=<n> checks=<n>`.
//!
//! Arguments: seed, stop file (the client ends when it exists), generation file (a number the
//! test raises each time the card is back after a kill; the client waits for it before it
//! reconnects, so that it does not hammer pcscd while vpcd's slot is empty).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use emulator::apdu::tlv;
use emulator::crypto::rng::SeededRng;
use emulator::model::pin::PinRef;
use emulator::tools::host;

const PIN: &[u8] = b"648219";
const SO_PIN: &[u8] = b"57621880";

/// The client's choices: reproducible from the seed.
struct Rng(SeededRng);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The link to the card; any transport error drops it.
struct Link {
    ctx: Option<pcsc::Context>,
    card: Option<pcsc::Card>,
}

impl Link {
    fn transmit(&mut self, apdu: &[u8]) -> Option<(Vec<u8>, u16)> {
        let card = self.card.as_ref()?;
        let mut buf = vec![0u8; 65538];
        match card.transmit(apdu, &mut buf) {
            Ok(r) if r.len() >= 2 => {
                let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
                Some((r[..r.len() - 2].to_vec(), sw))
            }
            _ => {
                self.card = None;
                None
            }
        }
    }

    /// Polls until the card is back (or 60 s pass), then selects the applet.
    fn reconnect(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if self.ctx.is_none() {
                self.ctx = pcsc::Context::establish(pcsc::Scope::User).ok();
            }
            if let Some(ctx) = &self.ctx {
                let reader = CString::new("Virtual PCD 00 00").unwrap();
                match ctx.connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
                    Ok(card) => {
                        self.card = Some(card);
                        if let Some((_, 0x9000)) = self.transmit(&host::select_application()) {
                            return true;
                        }
                    }
                    Err(
                        pcsc::Error::InvalidHandle
                        | pcsc::Error::NoService
                        | pcsc::Error::ServiceStopped,
                    ) => self.ctx = None,
                    Err(_) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

use emulator::apdu::extended as ext;

fn init_apdu() -> Vec<u8> {
    host::Initialization {
        options: 0x0001,
        user_pin: PIN,
        so_pin: SO_PIN,
        user_pin_tries: 3,
        dkek_shares: Some(1),
        key_domains: Some(2),
        public_keys: None,
    }
    .apdu()
}

fn p256_request() -> Vec<u8> {
    let template = emulator::crypto::cvc::ec_key_template(emulator::crypto::ec::Curve::Secp256r1);
    emulator::crypto::cvc::generate_request(b"UTCA00001", &template, b"ZZEM000000000001")
}

/// What the card acknowledged, and the one change that may be in flight.
#[derive(Default, Clone)]
struct Model {
    files: BTreeMap<u16, Vec<u8>>,
    keys: BTreeSet<u8>,
    dkek_ready: bool,
    /// Key domain 1 exists (created with a DKEK the card generated).
    domain1: bool,
    /// A change sent but not acknowledged: the card may show it or not.
    in_flight: Option<Box<Model>>,
}

struct Client {
    link: Link,
    rng: Rng,
    model: Model,
    acks: usize,
    reconnects: usize,
    checks: usize,
    out: std::io::Stdout,
}

impl Client {
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    /// Sends `apdu` as the state-changing step of `op`; `after` is the model if it succeeds.
    /// `None` when the link broke (the change is then in flight), `Some(false)` if refused.
    fn change(&mut self, op: &str, apdu: &[u8], after: Model) -> Option<bool> {
        self.model.in_flight = Some(Box::new(after.clone()));
        match self.link.transmit(apdu) {
            Some((_, 0x9000)) => {
                self.model = after;
                self.acks += 1;
                self.say(&format!("ACK {op}"));
                Some(true)
            }
            Some((_, sw)) => {
                // Refused: nothing may have changed.
                self.model.in_flight = None;
                self.say(&format!("REFUSED {op} {sw:04X}"));
                Some(false)
            }
            None => None,
        }
    }

    /// Logs in; a PIN worn down by kills in the middle of VERIFY (each costs a try, by
    /// design) is reset with the SO-PIN first.
    fn login(&mut self) -> Option<bool> {
        let (_, status) = self.link.transmit(&[0x00, 0x20, 0x00, 0x81])?;
        if status == 0x6983 || status == 0x63C0 || status == 0x63C1 {
            let mut reset = vec![0x00, 0x2C, 0x01, 0x81, SO_PIN.len() as u8];
            reset.extend_from_slice(SO_PIN);
            self.link.transmit(&reset)?;
        }
        let (_, sw) = self.link.transmit(&host::verify(PinRef::User, PIN))?;
        Some(sw == 0x9000)
    }

    fn read(&mut self, fid: u16) -> Option<Option<Vec<u8>>> {
        let [hi, lo] = fid.to_be_bytes();
        let (_, sw) = self
            .link
            .transmit(&[0x00, 0xA4, 0x00, 0x00, 0x02, hi, lo, 0x00])?;
        if sw == 0x6A82 {
            return Some(None);
        }
        let (data, _) = self
            .link
            .transmit(&ext([0x00, 0xB1, hi, lo], &[0x54, 0x02, 0x00, 0x00]))?;
        Some(Some(data))
    }

    /// Compares the card with the model; an in-flight change may or may not have happened.
    fn check(&mut self) -> bool {
        let candidates: Vec<Model> = std::iter::once(self.model.clone())
            .chain(self.model.in_flight.clone().map(|m| *m))
            .collect();
        let Some((listing, 0x9000)) = self.link.transmit(&ext([0x80, 0x58, 0, 0], &[])) else {
            return false;
        };
        let listed: BTreeSet<u16> = listing
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        let mut seen_files = BTreeMap::new();
        let fids: BTreeSet<u16> = candidates
            .iter()
            .flat_map(|m| m.files.keys().copied())
            .chain(listed.iter().copied().filter(|f| f >> 8 == 0xCF))
            .collect();
        for fid in fids {
            match self.read(fid) {
                Some(content) => {
                    seen_files.insert(fid, content);
                }
                None => return false,
            }
        }
        let Some((dkek, 0x9000)) = self.link.transmit(&[0x80, 0x52, 0x00, 0x00, 0x00]) else {
            return false;
        };
        let dkek_ready = dkek.get(1) == Some(&0);
        // A slot that holds no domain answers 6A88.
        let domain1 = match self.link.transmit(&[0x80, 0x52, 0x00, 0x01, 0x00]) {
            Some((status, 0x9000)) => !status.is_empty(),
            Some((_, 0x6A88)) => false,
            _ => return false,
        };
        let matches = |m: &Model| {
            m.files
                .iter()
                .all(|(f, c)| seen_files.get(f) == Some(&Some(c.clone())))
                && seen_files
                    .iter()
                    .all(|(f, c)| c.is_none() || m.files.contains_key(f))
                && m.keys
                    .iter()
                    .all(|k| listed.contains(&u16::from_be_bytes([0xCC, *k])))
                && listed
                    .iter()
                    .filter(|f| *f >> 8 == 0xCC && **f != 0xCC00)
                    .all(|f| m.keys.contains(&((*f & 0xFF) as u8)))
                && m.dkek_ready == dkek_ready
                && m.domain1 == domain1
        };
        match candidates.iter().position(matches) {
            Some(i) => {
                if i == 1 {
                    // The in-flight change made it before the kill: adopt it.
                    self.model = candidates[1].clone();
                }
                self.model.in_flight = None;
                self.checks += 1;
                let n = self.checks;
                self.say(&format!("CHECKED {n}"));
            }
            None => {
                let keys: Vec<String> = listed.iter().map(|f| format!("{f:04X}")).collect();
                self.say(&format!(
                    "VIOLATION card files {:?} objects {:?} dkek_ready {dkek_ready} domain1 {domain1} vs model files {:?} keys {:?} dkek_ready {} domain1 {} (in flight: {})",
                    seen_files.iter().map(|(f, c)| (format!("{f:04X}"), c.as_ref().map(|c| c.len()))).collect::<Vec<_>>(),
                    keys,
                    self.model.files.iter().map(|(f, c)| (format!("{f:04X}"), c.len())).collect::<Vec<_>>(),
                    self.model.keys,
                    self.model.dkek_ready,
                    self.model.domain1,
                    self.model.in_flight.is_some()
                ));
            }
        }
        true
    }

    /// One random operation; `None` when the link broke.
    fn step(&mut self) -> Option<()> {
        let mut next = self.model.clone();
        next.in_flight = None;
        match self.rng.below(100) {
            0..=39 => {
                // UPDATE BINARY at offset 0 replaces the whole content.
                let fid = 0xCF00 | self.rng.below(6) as u16;
                let len = 1 + self.rng.below(700) as usize;
                let content: Vec<u8> = (0..len).map(|_| self.rng.next() as u8).collect();
                let mut data = vec![0x54, 0x02, 0x00, 0x00];
                tlv::write(&mut data, 0x53, &content);
                next.files.insert(fid, content);
                let [hi, lo] = fid.to_be_bytes();
                self.change("UPDATE", &ext([0x00, 0xD7, hi, lo], &data), next)?;
            }
            40..=44 => {
                let fid = 0xCF00 | self.rng.below(6) as u16;
                if next.files.remove(&fid).is_some() {
                    let [hi, lo] = fid.to_be_bytes();
                    self.change("DELETE", &[0x00, 0xE4, 0x02, 0x00, 0x02, hi, lo], next)?;
                }
            }
            45..=49 => {
                // An AES key, in key domain 1 when there is one.
                let id = 1 + self.rng.below(8) as u8;
                if !self.model.keys.contains(&id) {
                    next.keys.insert(id);
                    let policy = if self.model.domain1 {
                        vec![0x91, 0x02, 0x10, 0x18, 0x92, 0x01, 0x01]
                    } else {
                        vec![0x91, 0x02, 0x10, 0x18]
                    };
                    self.change("GENERATE-AES", &ext([0x00, 0x48, id, 0xB2], &policy), next)?;
                }
            }
            50..=54 => {
                // Key domain 1: created (DKEK generated by the card) or deleted; deleting
                // is refused while a key of the domain exists.
                next.domain1 = !self.model.domain1;
                let apdu = if self.model.domain1 {
                    ext([0x80, 0x52, 0x03, 0x01], &[])
                } else {
                    ext([0x80, 0x52, 0x01, 0x01], &[0x00])
                };
                self.change("KEY-DOMAIN", &apdu, next)?;
            }
            55..=59 => {
                let id = 1 + self.rng.below(8) as u8;
                if self.model.keys.contains(&id) {
                    next.keys.remove(&id);
                    next.files.remove(&u16::from_be_bytes([0xCE, id]));
                    self.change(
                        "DELETE-KEY",
                        &[0x00, 0xE4, 0x02, 0x00, 0x02, 0xCC, id],
                        next,
                    )?;
                } else {
                    next.keys.insert(id);
                    // GENERATE also writes CExx; the model checks only public data objects, so
                    // it is not tracked here. The id may hold an AES key: replaced.
                    self.change(
                        "GENERATE",
                        &ext([0x00, 0x46, id, 0x00], &p256_request()),
                        next,
                    )?;
                }
            }
            60..=74 => {
                // A wrong PIN (costs a try), then the right one (restores the counter).
                self.link.transmit(&host::verify(PinRef::User, b"000000"))?;
                self.login()?;
            }
            75..=84 if self.model.dkek_ready => {
                let present: Vec<u8> = self.model.keys.iter().copied().collect();
                if let Some(&id) = present.first() {
                    let (blob, sw) = self.link.transmit(&ext([0x80, 0x72, id, 0x92], &[]))?;
                    if sw == 0x9000 {
                        let target = 9 + self.rng.below(6) as u8;
                        if !self.model.keys.contains(&target) {
                            next.keys.insert(target);
                            self.change("UNWRAP", &ext([0x80, 0x74, target, 0x93], &blob), next)?;
                        }
                    }
                }
            }
            75..=84 => {
                next.dkek_ready = true;
                self.change(
                    "IMPORT-DKEK-SHARE",
                    &ext([0x80, 0x52, 0, 0], &[0x5A; 32]),
                    next,
                )?;
            }
            _ => {
                next = Model::default();
                self.change("INITIALIZE", &init_apdu(), next)?;
            }
        }
        Some(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let stop_file = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "/nonexistent".into());
    let generation_file = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "/nonexistent".into());
    let generation = || -> u64 {
        std::fs::read_to_string(&generation_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut client = Client {
        link: Link {
            ctx: None,
            card: None,
        },
        rng: Rng(SeededRng::new(seed, 0)),
        model: Model::default(),
        acks: 0,
        reconnects: 0,
        checks: 0,
        out: std::io::stdout(),
    };
    if !client.link.reconnect() {
        client.say("VIOLATION the card never came up");
        return;
    }
    // A known start: initialised, one DKEK share imported.
    let _ = client.link.transmit(&init_apdu());
    let _ = client.link.transmit(&ext([0x80, 0x52, 0, 0], &[0x5A; 32]));
    client.model = Model {
        dkek_ready: true,
        ..Model::default()
    };
    let mut logged_in = client.login() == Some(true);
    while !Path::new(&stop_file).exists() {
        if logged_in && client.step().is_some() {
            continue;
        }
        // The link broke (the emulator was killed): wait until the test says the card is
        // back, then reconnect, check, log in again.
        client.reconnects += 1;
        client.say("RECONNECT");
        let seen = generation();
        let waiting = Instant::now();
        while generation() == seen
            && !Path::new(&stop_file).exists()
            && waiting.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !client.link.reconnect() {
            client.say("VIOLATION the card did not come back within 60 s");
            break;
        }
        if !client.check() {
            continue;
        }
        logged_in = client.login() == Some(true);
    }
    if client.link.card.is_some() {
        client.check();
    }
    let (acks, reconnects, checks) = (client.acks, client.reconnects, client.checks);
    client.say(&format!(
        "DONE acks={acks} reconnects={reconnects} checks={checks}"
    ));
}
