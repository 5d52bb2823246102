//! The formats of `--trace` and `--trace-json`: a card's [`TraceEvent`]s as one line of text
//! for a person or one JSON object for a machine. What an event holds (and never holds: no
//! command or response data beyond file identifiers and offsets) is the card's business
//! ([`crate::card::trace`]).

use std::time::SystemTime;

use super::json;
use crate::card::data_trace::DataTraceEvent;
use crate::card::trace::TraceEvent;
use crate::dissect::{Field, Varies};

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

/// Colours of the text form on a terminal (none in a file).
struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn bold(&self, t: &str) -> String {
        self.wrap("1", t)
    }
    fn dim(&self, t: &str) -> String {
        self.wrap("2", t)
    }
    fn secret(&self, t: &str) -> String {
        self.wrap("35", t)
    }
    fn status(&self, sw: &str, t: &str) -> String {
        let code = match sw {
            "9000" => "32",
            _ if sw.starts_with("61") || sw.starts_with("62") => "33",
            _ => "31",
        };
        self.wrap(code, t)
    }
}

/// Hex with placeholders, 32 bytes a line, each line after the first indented by `indent`.
fn wrapped_hex(text: &str, indent: &str) -> String {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.is_empty() {
        return "(nothing)".into();
    }
    tokens
        .chunks(32)
        .map(|c| c.join(" "))
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// The hex of a field line: at most 32 bytes, then how many there are.
fn short_hex(hex: &str, len: usize) -> String {
    if hex.len() > 64 {
        format!("{}... ({len} bytes)", &hex[..64])
    } else {
        hex.to_string()
    }
}

fn field_lines(field: &Field, depth: usize, paint: &Paint, out: &mut String) {
    let indent = "  ".repeat(depth + 2);
    let tag = field.tag.as_deref().unwrap_or("");
    let name = format!("{tag:<5}{}", field.name);
    let value = if let Some(secret) = &field.secret {
        paint.secret(&format!(
            "[taken out: {} #{}, {} bytes]",
            secret.kind.label(),
            secret.n,
            field.len
        ))
    } else if !field.fields.is_empty() {
        paint.dim(&format!("({} bytes)", field.len))
    } else {
        let hex = field
            .hex
            .as_deref()
            .map(|h| short_hex(h, field.len))
            .unwrap_or_default();
        match &field.meaning {
            Some(m) if hex.is_empty() => m.clone(),
            Some(m) => format!("{hex}  = {m}"),
            None => hex,
        }
    };
    let varies = match field.varies {
        Some(Varies::Random) => paint.dim("  (random)"),
        Some(Varies::Contents) => paint.dim("  (card's contents)"),
        None => String::new(),
    };
    let pad = 46usize
        .saturating_sub(indent.len() + name.chars().count())
        .max(1);
    out.push_str(&format!(
        "{indent}{name}{}{value}{varies}\n",
        " ".repeat(pad)
    ));
    for f in &field.fields {
        field_lines(f, depth + 1, paint, out);
    }
}

impl DataTraceEvent {
    /// The exchange for a person: a heading line, the command and its fields, the answer and
    /// its fields (ANSI colours when `colour`).
    pub fn to_text(&self, colour: bool) -> String {
        let paint = Paint(colour);
        let mut out = String::new();
        let clock = if self.time > 0.0 {
            let day = self.time.rem_euclid(86_400.0);
            format!(
                "{:02}:{:02}:{:09.6} ",
                (day / 3600.0) as u32,
                (day / 60.0) as u32 % 60,
                day % 60.0
            )
        } else {
            String::new()
        };
        let mut heading = format!(
            "#{:<5} {clock}{}  {}",
            self.n,
            paint.bold(&format!("{:<30}", self.command)),
            self.parameters
        );
        for note in [&self.chain, &self.continues].into_iter().flatten() {
            heading.push_str(&format!("  [{note}]"));
        }
        if self.secure_messaging {
            heading.push_str("  [secure messaging]");
        }
        let sw = paint.status(&self.sw, &format!("{} {}", self.sw, self.sw_meaning));
        out.push_str(&format!(
            "{heading}  -> {sw}  {}\n",
            paint.dim(&format!("{} us", self.duration_us))
        ));
        if let Some(fault) = &self.fault {
            out.push_str(&format!(
                "    {}\n",
                paint.secret(&format!("FAULT: {fault}"))
            ));
        }
        let pad = "      ";
        out.push_str(&format!("  > {}\n", wrapped_hex(&self.apdu, pad)));
        for f in &self.protected_fields {
            field_lines(f, 0, &paint, &mut out);
        }
        if let Some(plain) = &self.plain {
            out.push_str(&format!("  >> {}\n", wrapped_hex(plain, pad)));
        }
        for f in &self.command_fields {
            field_lines(f, 0, &paint, &mut out);
        }
        if !self.response.is_empty() {
            out.push_str(&format!("  < {}\n", wrapped_hex(&self.response, pad)));
        }
        if let Some(plain) = &self.plain_response {
            out.push_str(&format!("  << {}\n", wrapped_hex(plain, pad)));
        }
        for f in &self.response_fields {
            field_lines(f, 0, &paint, &mut out);
        }
        out
    }
}

/// One line of `--trace-json` (the short trace) for a person, as `trace show` prints it.
pub fn short_line(value: &serde_json::Value, colour: bool) -> String {
    let paint = Paint(colour);
    let get = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let number = |k: &str| value.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let sw = get("sw");
    let mut line = format!(
        "{}  {} {} {} {}  {}  Lc {} -> {} bytes  {}  {}",
        paint.bold(&format!("{:<30}", get("command"))),
        get("cla"),
        get("ins"),
        get("p1"),
        get("p2"),
        get("parameters"),
        number("lc"),
        number("response_length"),
        paint.status(sw, &format!("{sw} {}", get("sw_meaning"))),
        paint.dim(&format!("{} us", number("duration_us")))
    );
    if let Some(fault) = value.get("fault").and_then(|v| v.as_str()) {
        line.push_str(&paint.secret(&format!("  FAULT: {fault}")));
    }
    line
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
