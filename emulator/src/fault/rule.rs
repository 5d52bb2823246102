//! A fault rule: which command it watches, when it fires, how often, and what it does. One
//! text form serves the command line (`--fault`), fleet files and the control channel:
//!
//! ```text
//! on=SIGN,status=6F00
//! on=VERIFY,nth=2,times=3,status=6983
//! on=UPDATE BINARY,every=4,times=forever,tear
//! on=68,probability=0.25,seed=7,times=10,delay=1500
//! ```
//!
//! `on` is a command's name from the card's command table (any case) or its INS in hex.
//! At most one of `nth=N` (the Nth such command), `every=N` (every Nth), `after=N` (every one
//! after the first N) and `probability=P` (each with probability P, drawn from `seed=S`);
//! without one, the next such command. `times=N` (default 1) or `times=forever` bounds how
//! often it fires. Exactly one action: `status=XXXX`, `delay=MS`, `remove`, `remove-after`,
//! `tear`, `mute`, `corrupt`.

use std::fmt;
use std::time::Duration;

use crate::applet::command::Ins;

/// Which commands a rule watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum On {
    /// Every instruction with this name in the command table (READ BINARY has two).
    Name(&'static str),
    /// One instruction byte.
    Ins(u8),
}

impl On {
    fn parse(text: &str) -> Result<On, String> {
        let wanted = text.trim();
        if let Some(ins) = Ins::ALL
            .iter()
            .find(|i| i.name().eq_ignore_ascii_case(wanted))
        {
            return Ok(On::Name(ins.name()));
        }
        let hex = wanted.trim_start_matches("0x").trim_start_matches("0X");
        if hex.len() == 2 {
            if let Ok(code) = u8::from_str_radix(hex, 16) {
                return match Ins::from_code(code) {
                    Some(_) => Ok(On::Ins(code)),
                    None => Err(format!("no command of the card has INS {code:02X}")),
                };
            }
        }
        Err(format!(
            "no command of the card is called {wanted:?}: use a name of the command table ({}) or an INS in hex",
            command_names().join(", ")
        ))
    }

    /// Whether the instruction byte `ins` is one this rule watches.
    pub fn matches(&self, ins: u8) -> bool {
        match self {
            On::Name(name) => Ins::from_code(ins).is_some_and(|i| i.name() == *name),
            On::Ins(code) => *code == ins,
        }
    }
}

/// The names of the command table, each once.
fn command_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Ins::ALL.iter().map(|i| i.name()).collect();
    names.dedup();
    names
}

impl fmt::Display for On {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            On::Name(name) => f.write_str(name),
            On::Ins(code) => write!(f, "{code:02X}"),
        }
    }
}

/// Which of the watched commands the rule fires on.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// The next one.
    Next,
    /// The Nth one (counting from 1, from when the rule was added).
    Nth(u64),
    /// Every Nth one.
    Every(u64),
    /// Every one after the first N.
    After(u64),
    /// Each one with probability `p`, drawn from a generator seeded with `seed`.
    Probability { p: f64, seed: u64 },
}

/// How often a rule fires at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    Limited(u64),
    Forever,
}

/// What a firing rule does to the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer this status word instead of running the command (nothing changes).
    Status([u8; 2]),
    /// Run the command, answer this much later.
    Delay(Duration),
    /// The card is pulled out before the command runs.
    Remove,
    /// The card is pulled out after the command ran and committed, before its answer.
    RemoveAfter,
    /// Power is lost during the command: its changes are made whole or not at all, no answer
    /// leaves, the card is back at the next power-up.
    Tear,
    /// The card never answers this command.
    Mute,
    /// One bit of the answer's data flipped (the status word kept).
    Corrupt,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Status([a, b]) => write!(f, "status={a:02X}{b:02X}"),
            Action::Delay(d) => write!(f, "delay={}", d.as_millis()),
            Action::Remove => f.write_str("remove"),
            Action::RemoveAfter => f.write_str("remove-after"),
            Action::Tear => f.write_str("tear"),
            Action::Mute => f.write_str("mute"),
            Action::Corrupt => f.write_str("corrupt"),
        }
    }
}

/// One fault rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub on: On,
    pub when: When,
    pub times: Times,
    pub action: Action,
}

impl FaultRule {
    /// A rule that does `action` on the next `on` command, once.
    pub fn new(on: &str, action: Action) -> Result<FaultRule, String> {
        Ok(FaultRule {
            on: On::parse(on)?,
            when: When::Next,
            times: Times::Limited(1),
            action,
        })
    }
}

/// The longest delay a rule may ask for: ten minutes.
const MAX_DELAY_MS: u64 = 600_000;

fn number(key: &str, value: &str) -> Result<u64, String> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 || key == "after" || key == "seed" => Ok(n),
        Ok(_) => Err(format!("{key} must be at least 1")),
        Err(_) => Err(format!("{key} takes a whole number, not {value:?}")),
    }
}

impl std::str::FromStr for FaultRule {
    type Err = String;

    fn from_str(text: &str) -> Result<FaultRule, String> {
        let mut on = None;
        let mut when = None;
        let mut seed = None;
        let mut times = Times::Limited(1);
        let mut action = None;
        let set_when = |w: When, when: &mut Option<When>| match when {
            Some(_) => Err("give at most one of nth, every, after and probability".to_string()),
            None => {
                *when = Some(w);
                Ok(())
            }
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
                None => (part.to_ascii_lowercase(), None),
            };
            let value_of =
                |key: &str| value.ok_or_else(|| format!("{key} needs a value: {key}=..."));
            let mut set_action = |a: Action| {
                match action {
                Some(_) => Err("give exactly one action: status, delay, remove, remove-after, tear, mute or corrupt".to_string()),
                None => {
                    action = Some(a);
                    Ok(())
                }
            }
            };
            match key.as_str() {
                "on" => on = Some(On::parse(value_of("on")?)?),
                "nth" => set_when(When::Nth(number("nth", value_of("nth")?)?), &mut when)?,
                "every" => set_when(When::Every(number("every", value_of("every")?)?), &mut when)?,
                "after" => set_when(When::After(number("after", value_of("after")?)?), &mut when)?,
                "probability" => {
                    let v = value_of("probability")?;
                    let p: f64 = v
                        .parse()
                        .ok()
                        .filter(|p: &f64| (0.0..=1.0).contains(p))
                        .ok_or_else(|| format!("probability is a number from 0 to 1, not {v:?}"))?;
                    set_when(When::Probability { p, seed: 0 }, &mut when)?;
                }
                "seed" => seed = Some(number("seed", value_of("seed")?)?),
                "times" => {
                    let v = value_of("times")?;
                    times = match v {
                        "forever" => Times::Forever,
                        n => Times::Limited(number("times", n)?),
                    };
                }
                "status" => {
                    let v = value_of("status")?;
                    let sw = u16::from_str_radix(v, 16)
                        .ok()
                        .filter(|_| v.len() == 4)
                        .ok_or_else(|| format!("status takes four hex digits, like 6F00, not {v:?}"))?;
                    let sw = sw.to_be_bytes();
                    if !matches!(sw[0], 0x61..=0x6F | 0x90..=0x9F) {
                        return Err(format!(
                            "{v} is not a status word (SW1 is 61 to 6F or 90 to 9F)"
                        ));
                    }
                    set_action(Action::Status(sw))?;
                }
                "delay" => {
                    let ms = number("delay", value_of("delay")?)?;
                    if ms > MAX_DELAY_MS {
                        return Err(format!("delay is at most {MAX_DELAY_MS} ms"));
                    }
                    set_action(Action::Delay(Duration::from_millis(ms)))?;
                }
                "remove" => set_action(Action::Remove)?,
                "remove-after" => set_action(Action::RemoveAfter)?,
                "tear" => set_action(Action::Tear)?,
                "mute" => set_action(Action::Mute)?,
                "corrupt" => set_action(Action::Corrupt)?,
                other => {
                    return Err(format!(
                        "unknown part {other:?}: a rule is on=COMMAND[,nth=N|every=N|after=N|probability=P,seed=S][,times=N|forever],ACTION"
                    ))
                }
            }
            if value.is_some()
                && matches!(
                    key.as_str(),
                    "remove" | "remove-after" | "tear" | "mute" | "corrupt"
                )
            {
                return Err(format!("{key} takes no value"));
            }
        }
        let on = on.ok_or("a rule needs on=COMMAND (a command name or an INS in hex)")?;
        let action = action.ok_or(
            "a rule needs an action: status=XXXX, delay=MS, remove, remove-after, tear, mute or corrupt",
        )?;
        let when = match (when, seed) {
            (Some(When::Probability { p, .. }), seed) => When::Probability {
                p,
                seed: seed.unwrap_or(0),
            },
            (_, Some(_)) => return Err("seed goes with probability".into()),
            (when, None) => when.unwrap_or(When::Next),
        };
        Ok(FaultRule {
            on,
            when,
            times,
            action,
        })
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "on={}", self.on)?;
        match self.when {
            When::Next => {}
            When::Nth(n) => write!(f, ",nth={n}")?,
            When::Every(n) => write!(f, ",every={n}")?,
            When::After(n) => write!(f, ",after={n}")?,
            When::Probability { p, seed } => write!(f, ",probability={p},seed={seed}")?,
        }
        match self.times {
            Times::Limited(1) => {}
            Times::Limited(n) => write!(f, ",times={n}")?,
            Times::Forever => f.write_str(",times=forever")?,
        }
        write!(f, ",{}", self.action)
    }
}

/// A rule at work: how many watched commands it saw and how often it fired.
#[derive(Clone, Debug)]
pub struct Armed {
    pub rule: FaultRule,
    pub seen: u64,
    pub fired: u64,
    rng: u64,
}

impl Armed {
    pub fn new(rule: FaultRule) -> Armed {
        let rng = match rule.when {
            When::Probability { seed, .. } => seed,
            _ => 0x5C_4A_11,
        };
        Armed {
            rule,
            seen: 0,
            fired: 0,
            rng,
        }
    }

    /// Whether it may still fire.
    pub fn spent(&self) -> bool {
        matches!(self.rule.times, Times::Limited(n) if self.fired >= n)
    }

    /// Counts one watched command; whether the rule fires on it.
    pub fn fires(&mut self) -> bool {
        self.seen += 1;
        if self.spent() {
            return false;
        }
        let fire = match self.rule.when {
            When::Next => true,
            When::Nth(n) => self.seen == n,
            When::Every(n) => self.seen.is_multiple_of(n),
            When::After(n) => self.seen > n,
            When::Probability { p, .. } => {
                let unit = (self.next_random() >> 11) as f64 / ((1u64 << 53) as f64);
                unit < p
            }
        };
        if fire {
            self.fired += 1;
        }
        fire
    }

    /// A number from the rule's own generator (splitmix64): which bit to flip, where the power
    /// goes.
    pub fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_reads_and_writes_back() {
        for text in [
            "on=SIGN,status=6F00",
            "on=VERIFY,nth=2,times=3,status=6983",
            "on=UPDATE BINARY,every=4,times=forever,tear",
            "on=68,probability=0.25,seed=7,times=10,delay=1500",
            "on=READ BINARY,after=3,corrupt",
            "on=GENERATE ASYMMETRIC KEY PAIR,remove-after",
            "on=SELECT,mute",
            "on=DELETE FILE,remove",
        ] {
            let rule: FaultRule = text.parse().unwrap();
            assert_eq!(rule.to_string(), text);
        }
        let rule: FaultRule = " on = sign , status = 6f00 ".parse().unwrap();
        assert_eq!(rule.to_string(), "on=SIGN,status=6F00");
        assert_eq!(
            "on=0x20,tear".parse::<FaultRule>().unwrap().on,
            On::Ins(0x20)
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| text.parse::<FaultRule>().unwrap_err();
        assert!(err("on=FLY,status=6F00").contains("no command of the card is called \"FLY\""));
        assert!(err("on=12,status=6F00").contains("no command of the card has INS 12"));
        assert!(err("status=6F00").contains("needs on=COMMAND"));
        assert!(err("on=SIGN").contains("needs an action"));
        assert!(err("on=SIGN,status=6F00,tear").contains("exactly one action"));
        assert!(err("on=SIGN,status=6F0").contains("four hex digits"));
        assert!(err("on=SIGN,status=1234").contains("not a status word"));
        assert!(err("on=SIGN,nth=0,tear").contains("at least 1"));
        assert!(err("on=SIGN,nth=2,every=3,tear").contains("at most one of"));
        assert!(err("on=SIGN,seed=3,tear").contains("seed goes with probability"));
        assert!(err("on=SIGN,probability=2,tear").contains("from 0 to 1"));
        assert!(err("on=SIGN,tear=1").contains("takes no value"));
        assert!(err("on=SIGN,colour=red").contains("unknown part"));
        assert!(err("on=SIGN,delay=9999999").contains("at most"));
    }

    #[test]
    fn when_a_rule_fires() {
        let fires = |text: &str, n: usize| {
            let mut armed = Armed::new(text.parse().unwrap());
            (0..n).map(|_| armed.fires()).collect::<Vec<_>>()
        };
        assert_eq!(fires("on=SIGN,tear", 3), [true, false, false]);
        assert_eq!(fires("on=SIGN,nth=2,tear", 3), [false, true, false]);
        assert_eq!(
            fires("on=SIGN,every=2,times=forever,tear", 5),
            [false, true, false, true, false]
        );
        assert_eq!(
            fires("on=SIGN,after=2,times=2,tear", 5),
            [false, false, true, true, false]
        );
        let half = fires("on=SIGN,probability=0.5,seed=1,times=forever,tear", 1000);
        let count = half.iter().filter(|f| **f).count();
        assert!((400..600).contains(&count), "{count}");
        assert_eq!(
            half,
            fires("on=SIGN,probability=0.5,seed=1,times=forever,tear", 1000)
        );
        assert!(fires("on=SIGN,probability=0,times=forever,tear", 100)
            .iter()
            .all(|f| !f));
    }

    #[test]
    fn names_match_their_instructions() {
        let on = On::parse("read binary").unwrap();
        assert!(on.matches(0xB0) && on.matches(0xB1) && !on.matches(0xD7));
        assert!(On::parse("B1").unwrap().matches(0xB1));
        assert!(!On::parse("B1").unwrap().matches(0xB0));
    }
}
