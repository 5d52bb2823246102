//! The control channel of a running card: what a test script does to the card in the reader.
//! One verb per request, the same over the card's Unix socket ([`server`], the `control`
//! subcommand's [`client`]) and the fleet's HTTP listener ([`crate::http`]):
//!
//! ```text
//! remove | insert | reset | state
//! snapshot save NAME | snapshot load NAME | snapshot list
//! fault add RULE | fault list | fault clear
//! timing [physical|none]
//! ```
//!
//! Every answer is two lines: `ok: ...` or `error: ...` for a person, then the same as one
//! JSON object (`{"ok":..,"message":..,"data":..}`) for a script. The verbs work on the
//! [`Slot`] the card's link serves: a change of presence makes the link leave vpcd and come
//! back ([`Slot::changed`]).

pub mod client;
pub mod server;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use emulator::tools::json;
use emulator::{FaultRule, Timing};
use vpcd_bridge::slot::Slot;
use zeroize::Zeroizing;

use crate::worker::lock;

/// How long `insert`, `reset` and `snapshot load` wait for pcscd to power the card up again
/// before they answer (pcscd looks at its readers every 0.4 s; a card back at once is seen
/// leaving first).
const BACK_IN_PCSCD: Duration = Duration::from_secs(5);

/// What to add to an answer once the card is back: whether pcscd has powered it up again.
fn back_in_pcscd(slot: &Slot, seen: u64, wait: Duration) -> &'static str {
    if slot.wait_powered_after(seen, wait) {
        "; pcscd has it again"
    } else {
        "; pcscd has not powered it up yet (is pcscd running with vpcd?)"
    }
}

/// The longest request line a control channel reads.
pub const MAX_REQUEST: usize = 4096;

/// What the control channel of one card reaches: its slot (once the card is open) and the
/// snapshots saved from it.
pub struct CardControl {
    slot: OnceLock<Arc<Slot>>,
    snapshots: Mutex<BTreeMap<String, Zeroizing<Vec<u8>>>>,
    /// How long a verb that brings the card back waits for pcscd ([`BACK_IN_PCSCD`]).
    back_wait: Duration,
}

impl Default for CardControl {
    fn default() -> CardControl {
        CardControl {
            slot: OnceLock::new(),
            snapshots: Mutex::default(),
            back_wait: BACK_IN_PCSCD,
        }
    }
}

/// The answer to one request.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub ok: bool,
    pub message: String,
    /// A JSON value, or `null`.
    pub data: String,
}

impl Answer {
    fn ok(message: impl Into<String>) -> Answer {
        Answer {
            ok: true,
            message: message.into(),
            data: "null".into(),
        }
    }

    fn error(message: impl Into<String>) -> Answer {
        Answer {
            ok: false,
            message: message.into(),
            data: "null".into(),
        }
    }

    /// The JSON line.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"ok\":{},\"message\":{},\"data\":{}}}",
            self.ok,
            json::string(&self.message),
            self.data
        )
    }

    /// Both lines, as the socket sends them.
    pub fn to_wire(&self) -> String {
        let word = if self.ok { "ok" } else { "error" };
        format!("{word}: {}\n{}\n", self.message, self.to_json())
    }
}

/// A snapshot's name: letters, digits, `-`, `_`, `.`; at most 64.
fn snapshot_name(name: &str) -> Result<&str, String> {
    let good = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if good {
        Ok(name)
    } else {
        Err(format!(
            "a snapshot name is 1 to 64 letters, digits, '-', '_' or '.', not {name:?}"
        ))
    }
}

const VERBS: &str = "remove, insert, reset, state, snapshot save|load NAME, snapshot list, fault add RULE, fault list, fault clear, timing physical|none";

impl CardControl {
    /// The card is open: from now on the verbs reach it.
    pub fn attach(&self, slot: Arc<Slot>) {
        let _ = self.slot.set(slot);
    }

    /// Runs one request line.
    pub fn execute(&self, line: &str) -> Answer {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(slot) = self.slot.get() else {
            return Answer::error("the card is not open yet");
        };
        match words.as_slice() {
            ["remove"] => {
                let was_in = slot.lock().remove();
                slot.changed();
                Answer::ok(if was_in {
                    "removed: the card left the reader"
                } else {
                    "the card was already out of the reader"
                })
            }
            ["insert"] => {
                let seen = slot.power_ups();
                let was_out = slot.lock().insert();
                if !was_out {
                    return Answer::ok("the card was already in the reader");
                }
                slot.changed();
                Answer::ok(format!(
                    "inserted: the card is back in the reader{}",
                    back_in_pcscd(slot, seen, self.back_wait)
                ))
            }
            ["reset"] => {
                let mut card = slot.lock();
                if !card.is_inserted() {
                    return Answer::error("the card is out of the reader: insert it first");
                }
                let seen = slot.power_ups();
                card.card_mut().reset();
                drop(card);
                slot.changed();
                Answer::ok(format!(
                    "reset: the card was powered off and on (its session ended){}",
                    back_in_pcscd(slot, seen, self.back_wait)
                ))
            }
            ["state"] => self.state(slot),
            ["snapshot", "save", name] => self.save(slot, name),
            ["snapshot", "load", name] => self.load(slot, name),
            ["snapshot", "list"] => {
                let names: Vec<String> = lock(&self.snapshots).keys().cloned().collect();
                let mut answer = Answer::ok(match names.len() {
                    0 => "no snapshot saved".to_string(),
                    _ => names.join(" "),
                });
                answer.data = format!(
                    "[{}]",
                    names
                        .iter()
                        .map(|n| json::string(n))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                answer
            }
            ["fault", "add", ..] => {
                let text = line.trim_start()["fault".len()..].trim_start()["add".len()..].trim();
                match text.parse::<FaultRule>() {
                    Ok(rule) => {
                        let shown = rule.to_string();
                        slot.lock().add_fault(rule);
                        let mut answer = Answer::ok(format!("fault added: {shown}"));
                        answer.data = json::string(&shown);
                        answer
                    }
                    Err(e) => Answer::error(format!("bad fault rule {text:?}: {e}")),
                }
            }
            ["fault", "list"] => {
                let card = slot.lock();
                let rules: Vec<(String, u64, u64)> = card
                    .faults()
                    .iter()
                    .map(|a| (a.rule.to_string(), a.seen, a.fired))
                    .collect();
                drop(card);
                let mut answer = Answer::ok(match rules.len() {
                    0 => "no fault rule".to_string(),
                    _ => rules
                        .iter()
                        .map(|(r, seen, fired)| format!("[{r}: seen {seen}, fired {fired}]"))
                        .collect::<Vec<_>>()
                        .join(" "),
                });
                answer.data = faults_json(&rules);
                answer
            }
            ["fault", "clear"] => {
                let n = slot.lock().clear_faults();
                Answer::ok(format!("{n} fault rule(s) cleared"))
            }
            ["timing"] => Answer::ok(format!("timing {}", slot.lock().timing().name())),
            ["timing", profile] => match profile.parse::<Timing>() {
                Ok(timing) => {
                    slot.lock().set_timing(timing);
                    Answer::ok(format!("timing {}", timing.name()))
                }
                Err(e) => Answer::error(e),
            },
            [] => Answer::error(format!("an empty request: give a verb ({VERBS})")),
            _ => Answer::error(format!("unknown request {line:?}: the verbs are {VERBS}")),
        }
    }

    fn state(&self, slot: &Slot) -> Answer {
        let card = slot.lock();
        let report = emulator::tools::report::Report::of(card.card());
        let rules: Vec<(String, u64, u64)> = card
            .faults()
            .iter()
            .map(|a| (a.rule.to_string(), a.seen, a.fired))
            .collect();
        let inserted = card.is_inserted();
        let message = format!(
            "{} {}, serial {}, timing {}, {} fault rule(s), {} fault(s) injected",
            if inserted { "inserted" } else { "removed" },
            if inserted {
                "in the reader"
            } else {
                "out of the reader"
            },
            card.card().serial(),
            card.timing().name(),
            rules.len(),
            card.injected()
        );
        let data = format!(
            "{{\"inserted\":{inserted},\"timing\":{},\"faults_injected\":{},\"faults\":{},\"card\":{}}}",
            json::string(card.timing().name()),
            card.injected(),
            faults_json(&rules),
            report.to_json()
        );
        drop(card);
        let mut answer = Answer::ok(message);
        answer.data = data;
        answer
    }

    fn save(&self, slot: &Slot, name: &str) -> Answer {
        let name = match snapshot_name(name) {
            Ok(name) => name,
            Err(e) => return Answer::error(e),
        };
        let snapshot = slot.lock().card_mut().snapshot();
        match snapshot {
            Ok(bytes) => {
                let size = bytes.len();
                lock(&self.snapshots).insert(name.to_string(), bytes);
                Answer::ok(format!("snapshot {name} saved ({size} bytes)"))
            }
            Err(e) => Answer::error(format!("cannot save the snapshot: {e}")),
        }
    }

    fn load(&self, slot: &Slot, name: &str) -> Answer {
        let name = match snapshot_name(name) {
            Ok(name) => name,
            Err(e) => return Answer::error(e),
        };
        let Some(bytes) = lock(&self.snapshots).get(name).cloned() else {
            return Answer::error(format!("no snapshot called {name}: save it first"));
        };
        let seen = slot.power_ups();
        let mut card = slot.lock();
        // A load is a removal and an insertion of the card of the snapshot.
        card.remove();
        let restored = card.card_mut().restore(&bytes);
        card.insert();
        let (keys, files) = {
            let state = card.card().state();
            (state.keys.len().saturating_sub(1), state.files.len())
        };
        drop(card);
        slot.changed();
        match restored {
            Ok(()) => Answer::ok(format!(
                "snapshot {name} loaded: {keys} key(s) and {files} file(s); the card was removed and inserted{}",
                back_in_pcscd(slot, seen, self.back_wait)
            )),
            Err(e) => Answer::error(format!("cannot load snapshot {name}: {e}")),
        }
    }
}

fn faults_json(rules: &[(String, u64, u64)]) -> String {
    let items: Vec<String> = rules
        .iter()
        .map(|(rule, seen, fired)| {
            format!(
                "{{\"rule\":{},\"seen\":{seen},\"fired\":{fired}}}",
                json::string(rule)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests;
