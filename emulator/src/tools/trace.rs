//! The formats of `--trace` and `--trace-json`: a card's [`TraceEvent`]s as one line of text
//! for a person or one JSON object for a machine. What an event holds (and never holds: no
//! command or response data beyond file identifiers and offsets) is the card's business
//! ([`crate::card::trace`]).

use std::time::SystemTime;

use super::json;
use crate::card::trace::TraceEvent;

fn seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl TraceEvent {
    /// One line for a person (time of day in UTC).
    pub fn to_text(&self, at: SystemTime) -> String {
        let [cla, ins, p1, p2] = self.header;
        let le = self.le.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        let t = seconds(at);
        let day = t.rem_euclid(86_400.0);
        let clock = format!(
            "{:02}:{:02}:{:09.6}",
            (day / 3600.0) as u32,
            (day / 60.0) as u32 % 60,
            day % 60.0
        );
        let fault = match &self.fault {
            Some(fault) => format!("  FAULT: {fault}"),
            None => String::new(),
        };
        format!(
            "{clock} {:<28} {cla:02X} {ins:02X} {p1:02X} {p2:02X}  {:<44} Lc {:<5} Le {:<5} -> {:>5} bytes  {} {}  {} us{fault}",
            self.command,
            self.parameters,
            self.lc,
            le,
            self.response_len,
            self.status,
            self.status.meaning(),
            self.duration.as_micros()
        )
    }

    /// One JSON object for a machine.
    pub fn to_json(&self, at: SystemTime) -> String {
        let [cla, ins, p1, p2] = self.header;
        format!(
            "{{\"time\":{:.6},\"command\":{},\"cla\":\"{cla:02X}\",\"ins\":\"{ins:02X}\",\"p1\":\"{p1:02X}\",\"p2\":\"{p2:02X}\",\"parameters\":{},\"lc\":{},\"le\":{},\"response_length\":{},\"sw\":\"{}\",\"sw_meaning\":{},\"duration_us\":{},\"fault\":{}}}",
            seconds(at),
            json::string(self.command),
            json::string(&self.parameters),
            self.lc,
            self.le.map(|n| n.to_string()).unwrap_or_else(|| "null".into()),
            self.response_len,
            self.status,
            json::string(self.status.meaning()),
            self.duration.as_micros(),
            json::or_null(self.fault.as_deref().map(json::string))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apdu::Status;
    use std::time::Duration;

    #[test]
    fn json_lines_are_json() {
        let event = TraceEvent {
            command: "VERIFY",
            header: [0x00, 0x20, 0x00, 0x81],
            parameters: "user \"PIN\"".into(),
            lc: 6,
            le: None,
            response_len: 0,
            status: Status::PinTriesLeft(2),
            duration: Duration::from_micros(42),
            fault: None,
        };
        let json = event.to_json(SystemTime::UNIX_EPOCH);
        assert!(
            json.starts_with(r#"{"time":0.000000,"command":"VERIFY""#),
            "{json}"
        );
        assert!(json.contains(r#""parameters":"user \"PIN\"""#), "{json}");
        assert!(
            json.contains(r#""sw":"63C2""#) && json.contains(r#""le":null"#),
            "{json}"
        );
        assert!(event
            .to_text(SystemTime::UNIX_EPOCH)
            .contains("63C2 wrong PIN or not verified, tries left"));
    }
}
