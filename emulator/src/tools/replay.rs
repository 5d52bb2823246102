//! `trace replay`: the commands of a recording sent to a card in order, each answer held
//! against the recorded one by the card's own decoding ([`crate::dissect::compare`]): the
//! status word exactly, then field by field, with signatures, challenges, generated keys and
//! (unless the comparison is exact) what depends on the card's contents compared by shape.
//!
//! Recordings: the data trace's JSON lines (`--trace-data-json`), OpenSC debug logs in their
//! older and newer forms, and pcsc-spy output ([`super::recording`]). A data trace carries no
//! secret: the PINs, shares and wrapped keys it took out are given back with
//! [`Secrets`]; a command that needs one that is not given is skipped and said so, as is a
//! command under secure messaging (its session keys are in no recording) and a fault.

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::recording::{self, Exchange};
use crate::apdu::Command;
use crate::card::data_trace::DataTraceEvent;
use crate::dissect::{self, Dissector, Field, SecretBook, SecretKind, Shown};
use crate::Card;

/// One command of a recording, with what the card answered then.
pub struct Step {
    /// Where it is: the event number or the line of the log.
    pub at: String,
    pub command: String,
    /// The command as recorded; `None` when it cannot be sent (and why).
    apdu: Result<Vec<Shown>, String>,
    recorded: Recorded,
}

enum Recorded {
    /// A data trace's event: the answer decoded, its status word.
    Decoded { fields: Vec<Field>, sw: String },
    /// A log's bytes: data ‖ SW (empty if the log lost the answer).
    Raw(Vec<u8>),
}

/// The secret values a data trace took out, given back by kind and number.
#[derive(Default)]
pub struct Secrets {
    values: HashMap<(SecretKind, u32), Zeroizing<Vec<u8>>>,
    /// Values taken as defaults (the wiki's PINs), to say so.
    pub defaults_used: Vec<String>,
}

impl Secrets {
    /// Reads `KIND#N=HEX` (`user-pin#1=363438323139`), or `KIND#N=ascii:TEXT`.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        let (name, value) = text.split_once('=').ok_or_else(|| {
            format!("{text:?}: expected KIND#N=HEX, like user-pin#1=363438323139")
        })?;
        let (kind, n) = name.split_once('#').unwrap_or((name, "1"));
        let kind = SecretKind::from_id(kind).ok_or_else(|| {
            let kinds: Vec<&str> = SecretKind::ALL.iter().map(|k| k.id()).collect();
            format!("{kind:?} is not a kind of secret ({})", kinds.join(", "))
        })?;
        let n: u32 = n
            .parse()
            .map_err(|_| format!("{name:?}: the number after # is not a number"))?;
        let value = match value.strip_prefix("ascii:") {
            Some(text) => text.as_bytes().to_vec(),
            None => super::hex::decode(value)
                .ok_or_else(|| format!("{name}: the value is not hex (or ascii:TEXT)"))?,
        };
        self.values.insert((kind, n), Zeroizing::new(value));
        Ok(())
    }

    fn get(&mut self, kind: SecretKind, n: u32, len: usize) -> Result<&[u8], String> {
        // The wiki's PINs, the ones every example uses, stand in for the first of each.
        let default: Option<&[u8]> = match (kind, n) {
            (SecretKind::UserPin, 1) => Some(b"648219"),
            (SecretKind::SoPin, 1) => Some(&[0x35, 0x37, 0x36, 0x32, 0x31, 0x38, 0x38, 0x30]),
            _ => None,
        };
        if let (std::collections::hash_map::Entry::Vacant(slot), Some(value)) = (
            self.values.entry((kind, n)),
            default.filter(|v| v.len() == len),
        ) {
            slot.insert(Zeroizing::new(value.to_vec()));
            self.defaults_used.push(format!(
                "{}#{n} taken as the wiki's {}",
                kind.id(),
                kind.label()
            ));
        }
        match self.values.get(&(kind, n)) {
            Some(v) if v.len() == len => Ok(v),
            Some(v) => Err(format!(
                "{}#{n} is {len} bytes in the recording, {} as given",
                kind.id(),
                v.len()
            )),
            None => Err(format!(
                "holds {}#{n} ({len} bytes, taken out of the trace): give --secret {}#{n}=HEX",
                kind.id(),
                kind.id()
            )),
        }
    }

    fn fill(&mut self, shown: &[Shown]) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut out = Zeroizing::new(Vec::new());
        for part in shown {
            match part {
                Shown::Byte(b) => out.push(*b),
                Shown::Hidden { kind, .. } if *kind == SecretKind::Withheld => {
                    return Err("its data was not decoded by the card that recorded it".into())
                }
                Shown::Hidden { kind, n, len } => out.extend_from_slice(self.get(*kind, *n, *len)?),
            }
        }
        Ok(out)
    }
}

/// Reads a recording: a data trace's JSON lines, an OpenSC debug log or pcsc-spy output.
pub fn load(text: &str) -> Result<Vec<Step>, String> {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.trim_start().starts_with('{') {
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                let event = DataTraceEvent::from_json(line).map_err(|e| {
                    if line.contains("\"response_length\"") {
                        format!(
                            "line {}: a --trace-json trace holds no data to replay; record with --trace-data-json",
                            i + 1
                        )
                    } else {
                        format!("line {}: {e}", i + 1)
                    }
                })?;
                Ok(step_of_event(event))
            })
            .collect();
    }
    let format = recording::detect(text).ok_or(
        "not a recording this tool reads: a --trace-data-json trace, an OpenSC debug log (\"Outgoing APDU\") or pcsc-spy output",
    )?;
    Ok(recording::parse(text, format)?
        .into_iter()
        .map(step_of_exchange)
        .collect())
}

fn step_of_event(event: DataTraceEvent) -> Step {
    let apdu = if event.fault.is_some() {
        Err("a fault was injected here".to_string())
    } else if event.secure_messaging {
        Err("under secure messaging (no recording holds the session keys)".to_string())
    } else {
        dissect::read_shown(&event.apdu).ok_or_else(|| "its APDU does not read".to_string())
    };
    Step {
        at: format!("#{}", event.n),
        command: event.command,
        apdu,
        recorded: Recorded::Decoded {
            fields: event.response_fields,
            sw: event.sw,
        },
    }
}

fn step_of_exchange(exchange: Exchange) -> Step {
    let ins = exchange.command.get(1).copied().unwrap_or(0);
    let cla = exchange.command.first().copied().unwrap_or(0);
    let apdu = if cla & 0x0C == 0x0C && cla & 0x60 == 0 {
        Err("under secure messaging (no recording holds the session keys)".to_string())
    } else {
        Ok(exchange.command.iter().map(|b| Shown::Byte(*b)).collect())
    };
    Step {
        at: format!("line {}", exchange.line),
        command: crate::applet::command::name_of(ins).into(),
        apdu,
        recorded: Recorded::Raw(exchange.response),
    }
}

/// What became of one step.
pub enum Outcome {
    Matched,
    Differs(Vec<String>),
    Skipped(String),
}

/// The outcome of a replay, step by step.
pub struct Report {
    pub steps: Vec<(String, String, Outcome)>,
}

impl Report {
    pub fn count(&self, f: fn(&Outcome) -> bool) -> usize {
        self.steps.iter().filter(|(_, _, o)| f(o)).count()
    }
    pub fn matched(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Matched))
    }
    pub fn differed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Differs(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }
}

/// How to replay.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Compare what depends on the card's contents exactly too.
    pub exact: bool,
    /// Select the application before the first command (for an excerpt of a session, which
    /// assumes it selected).
    pub select: bool,
}

/// Sends every step to `card` and compares its answers.
pub fn replay(
    card: &mut Card,
    steps: Vec<Step>,
    secrets: &mut Secrets,
    options: Options,
) -> Report {
    let exact = options.exact;
    if options.select {
        let mut select = vec![0x00, 0xA4, 0x04, 0x00, crate::AID.len() as u8];
        select.extend_from_slice(&crate::AID);
        drop(card.transmit(&select));
    }
    let mut book = SecretBook::default();
    let mut report = Report { steps: Vec::new() };
    for step in steps {
        let outcome = match step.apdu.and_then(|shown| secrets.fill(&shown)) {
            Err(why) => Outcome::Skipped(why),
            Ok(apdu) => {
                let answer = card.transmit(&apdu);
                compare(&mut book, &apdu, &step.recorded, &answer, exact)
            }
        };
        report.steps.push((step.at, step.command, outcome));
    }
    report
}

/// The answer now against the recorded one.
fn compare(
    book: &mut SecretBook,
    apdu: &[u8],
    recorded: &Recorded,
    answer: &[u8],
    exact: bool,
) -> Outcome {
    let (data, sw) = answer.split_at(answer.len().saturating_sub(2));
    let sw = super::hex::encode(sw);
    let Ok(command) = Command::parse(apdu) else {
        return Outcome::Skipped("its APDU is not one".into());
    };
    let header = [command.cla, command.ins, command.p1, command.p2];
    // The command may hold a PIN given back with --secret.
    let command_data = Zeroizing::new(command.data);
    let mut dissector = Dissector::new(book);
    let (recorded_fields, recorded_sw) = match recorded {
        Recorded::Decoded { fields, sw } => (fields.clone(), sw.clone()),
        Recorded::Raw(raw) if raw.len() < 2 => {
            return Outcome::Skipped("the recording lost the answer".into())
        }
        Recorded::Raw(raw) => {
            let (data, sw) = raw.split_at(raw.len() - 2);
            (
                dissector.response(header, &command_data, data).fields,
                super::hex::encode(sw),
            )
        }
    };
    // A piece of an answer (61xx, GET RESPONSE): a data trace decoded the whole answer, so
    // the piece is held to its status word only.
    let piece = matches!(recorded, Recorded::Decoded { .. })
        && (header[1] == crate::applet::command::Ins::GetResponse.code()
            || recorded_sw.starts_with("61"));
    let differences = if recorded_sw != sw {
        vec![format!("status word: recorded {recorded_sw}, now {sw}")]
    } else if piece {
        Vec::new()
    } else {
        let fresh = dissector.response(header, &command_data, data).fields;
        dissect::compare::fields(&recorded_fields, &fresh, exact)
    };
    if differences.is_empty() {
        Outcome::Matched
    } else {
        Outcome::Differs(differences)
    }
}
