//! The card a test drives: a [`Card`] in a reader that a test can pull it out of and put it
//! back into, whose commands fault rules ([`FaultRule`]) make fail, slow down, go unanswered
//! or lose power half-way, and which can take as long as the physical card ([`Timing`]).
//! The vpcd bridge serves every card through one of these (its control channel sets the
//! rules); Rust tests use it directly, without pcscd:
//!
//! ```
//! use emulator::fault::{FaultRule, FaultyCard, Reply};
//! use emulator::{Card, MemoryStore};
//!
//! let mut card = FaultyCard::new(Card::open(Box::new(MemoryStore::default())).unwrap());
//! card.add_fault("on=SELECT,status=6F00".parse::<FaultRule>().unwrap());
//! let select = [0x00, 0xA4, 0x04, 0x00, 0x0B, 0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01, 0x00];
//! assert!(matches!(card.transmit(&select), Reply::Answer { bytes, .. } if bytes == [0x6F, 0x00]));
//! assert!(matches!(card.transmit(&select), Reply::Answer { bytes, .. } if bytes.ends_with(&[0x90, 0x00])));
//! card.remove();
//! assert!(matches!(card.transmit(&select), Reply::Absent));
//! ```

pub mod rule;
pub mod timing;

use std::time::{Duration, Instant};

pub use rule::{Action, Armed, FaultRule, On, Times, When};
pub use timing::Timing;

use crate::apdu::Status;
use crate::applet::command::name_of;
use crate::card::trace::TraceEvent;
use crate::card::Card;

/// What became of one command.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// The answer, to be sent `late` from now (a delay rule, the timing profile).
    Answer { bytes: Vec<u8>, late: Duration },
    /// The card was pulled out (before or after the command ran): no answer. It stays out
    /// until [`FaultyCard::insert`].
    Removed,
    /// Power was lost during the command: no answer; the card is back at the next power-up.
    Torn,
    /// No answer, ever (the reader's or the client's timeout decides).
    Mute,
    /// There is no card in the reader.
    Absent,
}

/// A card in a reader, under a test's control.
pub struct FaultyCard {
    card: Card,
    inserted: bool,
    rules: Vec<Armed>,
    timing: Timing,
    injected: u64,
}

impl FaultyCard {
    /// `card`, inserted, with no rule and no timing profile.
    pub fn new(card: Card) -> FaultyCard {
        FaultyCard {
            card,
            inserted: true,
            rules: Vec::new(),
            timing: Timing::None,
            injected: 0,
        }
    }

    pub fn card(&self) -> &Card {
        &self.card
    }

    pub fn card_mut(&mut self) -> &mut Card {
        &mut self.card
    }

    pub fn into_card(self) -> Card {
        self.card
    }

    /// Whether the card is in the reader.
    pub fn is_inserted(&self) -> bool {
        self.inserted
    }

    /// Pulls the card out: it loses power (its session ends). Returns whether it was in.
    pub fn remove(&mut self) -> bool {
        self.card.power_off();
        std::mem::replace(&mut self.inserted, false)
    }

    /// Puts the card back (the reader powers it up next). Returns whether it was out.
    pub fn insert(&mut self) -> bool {
        !std::mem::replace(&mut self.inserted, true)
    }

    /// Adds a rule after the others (the first rule that fires on a command acts).
    pub fn add_fault(&mut self, rule: FaultRule) {
        self.rules.push(Armed::new(rule));
    }

    /// The rules, with how often each saw its command and fired.
    pub fn faults(&self) -> &[Armed] {
        &self.rules
    }

    /// Removes every rule; returns how many there were.
    pub fn clear_faults(&mut self) -> usize {
        std::mem::take(&mut self.rules).len()
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// How many faults the rules injected so far.
    pub fn injected(&self) -> u64 {
        self.injected
    }

    /// One command: run by the card, or faulted by the first rule that fires on it.
    pub fn transmit(&mut self, apdu: &[u8]) -> Reply {
        if !self.inserted {
            return Reply::Absent;
        }
        let started = Instant::now();
        let Some(firing) = self.firing_rule(apdu) else {
            let bytes = self.card.transmit(apdu);
            return self.answer(bytes, started, Duration::ZERO);
        };
        let action = self.rules[firing].rule.action;
        let reply = match action {
            Action::Status(sw) => {
                self.trace(firing, apdu, Status::from_sw(sw), 0, started);
                return self.answer(sw.to_vec(), started, Duration::ZERO);
            }
            Action::Delay(delay) => {
                let bytes = self.card.transmit(apdu);
                self.trace(firing, apdu, status_of(&bytes), bytes.len(), started);
                return self.answer(bytes, started, delay);
            }
            Action::Corrupt => {
                let mut bytes = self.card.transmit(apdu);
                let data_bits = (bytes.len().saturating_sub(2) * 8) as u64;
                if data_bits == 0 {
                    // Nothing to corrupt: the rule did not fire after all.
                    self.rules[firing].fired -= 1;
                    self.injected -= 1;
                    return self.answer(bytes, started, Duration::ZERO);
                }
                let bit = self.rules[firing].next_random() % data_bits;
                bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
                self.trace(firing, apdu, status_of(&bytes), bytes.len(), started);
                return self.answer(bytes, started, Duration::ZERO);
            }
            Action::Remove => {
                self.remove();
                Reply::Removed
            }
            Action::RemoveAfter => {
                drop(self.card.transmit(apdu));
                self.remove();
                Reply::Removed
            }
            Action::Tear => {
                // Where the power goes: before the command's first commit, after it, or
                // after its second (a PIN's try is paid in a commit of its own).
                let commits = (self.rules[firing].next_random() % 3) as u32;
                self.card.transmit_torn(apdu, commits);
                Reply::Torn
            }
            Action::Mute => Reply::Mute,
        };
        self.trace(firing, apdu, Status::Other([0, 0]), 0, started);
        reply
    }

    /// The index of the first rule that fires on `apdu` (every rule watching it counts it).
    /// Only a complete command counts: not a link of a chain.
    fn firing_rule(&mut self, apdu: &[u8]) -> Option<usize> {
        let [cla, ins, ..] = *apdu else {
            return None;
        };
        if cla & 0x10 != 0 {
            return None;
        }
        let mut firing = None;
        for (index, armed) in self.rules.iter_mut().enumerate() {
            if !armed.rule.on.matches(ins) {
                continue;
            }
            if firing.is_some() {
                armed.seen += 1;
            } else if armed.fires() {
                firing = Some(index);
            }
        }
        if firing.is_some() {
            self.injected += 1;
        }
        firing
    }

    /// The answer, late by `extra` beyond what the timing profile asks.
    fn answer(&self, bytes: Vec<u8>, started: Instant, extra: Duration) -> Reply {
        let physical = self.timing.of(self.card.last_work());
        Reply::Answer {
            bytes,
            late: physical.saturating_sub(started.elapsed()) + extra,
        }
    }

    /// Marks the fault of rule `firing` in the card's trace.
    fn trace(&mut self, firing: usize, apdu: &[u8], status: Status, len: usize, started: Instant) {
        let armed = &self.rules[firing];
        let what = match armed.rule.action {
            Action::Status(_) => "status word given instead of running the command".to_string(),
            Action::Delay(d) => format!("answer delayed by {} ms", d.as_millis()),
            Action::Corrupt => "one bit of the answer's data flipped".to_string(),
            Action::Remove => "card removed before the command ran; no answer".to_string(),
            Action::RemoveAfter => "card removed after the command ran; no answer".to_string(),
            Action::Tear => "power lost during the command; no answer".to_string(),
            Action::Mute => "no answer".to_string(),
        };
        let mut header = [0u8; 4];
        for (h, b) in header.iter_mut().zip(apdu) {
            *h = *b;
        }
        let event = TraceEvent {
            command: name_of(header[1]),
            header,
            parameters: String::new(),
            lc: apdu.len().saturating_sub(5),
            le: None,
            response_len: len.saturating_sub(2),
            status,
            duration: started.elapsed(),
            fault: Some(format!("{what} (rule {})", armed.rule)),
        };
        self.card.trace(&event);
    }
}

/// The status word at the end of an answer.
fn status_of(bytes: &[u8]) -> Status {
    match bytes {
        [.., a, b] => Status::from_sw([*a, *b]),
        _ => Status::Other([0, 0]),
    }
}

#[cfg(test)]
mod tests;
