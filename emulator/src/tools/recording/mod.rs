//! Recorded APDU exchanges read back from text logs: OpenSC debug logs (the format before 0.20
//! and the one since) and the output of `pcsc-spy` (pcsc-lite).
//!
//! Only what the log itself shows is returned: the bytes of each command and of the answer the
//! card gave it. Logs quoted in bug reports are often excerpts; this module takes a line
//! holding `[...]` as the mark of such a cut (a command before it whose answer is not yet seen
//! is kept without an answer, a hex dump broken by it is not trusted), and a line starting
//! with `#` as an annotation added to the log, not part of it.

use std::borrow::Cow;

/// One command and the answer a card gave it, as a recording holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The command APDU bytes as sent.
    pub command: Vec<u8>,
    /// The answer: data followed by SW1 SW2 (at least 2 bytes), or empty if the recording has
    /// the command but its answer was cut off.
    pub response: Vec<u8>,
    /// 1-based line number in the input where the command starts.
    pub line: usize,
}

/// Which kind of log a text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenSC debug log up to about 0.19: `Outgoing APDU data [    8 bytes] =====`, the hex,
    /// then a line of `=`.
    OpenscOld,
    /// OpenSC debug log since 0.20: `Outgoing APDU (17 bytes):`, the hex, then an empty line.
    OpenscNew,
    /// `pcsc-spy` output: `SCardTransmit` blocks with `bSendBuffer` and `bRecvBuffer` dumps.
    PcscSpy,
}

/// Where a cut in a quoted log is marked.
pub(super) const CUT: &str = "[...]";

/// Bytes per line in both OpenSC's and pcsc-spy's hex dumps.
pub(super) const PER_LINE: usize = 16;

/// Detects the format (None if the text holds none of them).
pub fn detect(text: &str) -> Option<Format> {
    let lines: Vec<Cow<'_, str>> = text.lines().map(strip_ansi).collect();
    for (i, line) in lines.iter().enumerate() {
        if is_annotation(line) {
            continue;
        }
        for format in [Format::OpenscOld, Format::OpenscNew] {
            if let Some(Ok(_)) = opensc_header(line, format) {
                return Some(format);
            }
        }
        // A pcsc-spy call: its name on a line, its first argument (or result) on the next.
        if let Some(prefix) = spy_call_name(line).map(|(prefix, _)| prefix) {
            if let Some(next) = lines.get(i + 1) {
                if let Some(rest) = next.strip_prefix(prefix) {
                    if rest.starts_with(" i ")
                        || rest.starts_with(" o ")
                        || rest.starts_with(" => ")
                    {
                        return Some(Format::PcscSpy);
                    }
                }
            }
        }
    }
    None
}

/// All exchanges of `text` in order. Errors name the line and what was wrong (a byte count
/// that does not match the hex that follows, a non-hex token where hex was expected).
///
/// A command with no answer before the next command, a `[...]` cut or the end of the text
/// comes back with an empty response; so does a `pcsc-spy` transmit that failed. An answer
/// with no command before it is skipped, and so is a command whose own hex is cut off.
pub fn parse(text: &str, format: Format) -> Result<Vec<Exchange>, String> {
    match format {
        Format::OpenscOld | Format::OpenscNew => parse_opensc(text, format),
        Format::PcscSpy => parse_spy(text),
    }
}

/// A line added to a quoted log by whoever kept it (no log line of these tools starts so).
pub(super) fn is_annotation(line: &str) -> bool {
    line.starts_with('#')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Outgoing,
    Incoming,
}

/// An answer must at least hold SW1 SW2.
pub(super) fn check_answer(bytes: &[u8], line: usize) -> Result<(), String> {
    if bytes.len() == 1 {
        return Err(format!("line {line}: an answer of 1 byte has no SW1 SW2"));
    }
    Ok(())
}

/// The leading tokens of `text` that are exactly two hex digits, at most `max` of them, and
/// the token that ended the run early (None when `max` was reached or the line ran out).
pub(super) fn hex_tokens(text: &str, max: usize) -> (Vec<u8>, Option<&str>) {
    let mut bytes = Vec::new();
    for token in text.split_whitespace() {
        if bytes.len() == max {
            return (bytes, None);
        }
        match hex_byte(token) {
            Some(b) => bytes.push(b),
            None => return (bytes, Some(token)),
        }
    }
    (bytes, None)
}

pub(super) fn hex_byte(token: &str) -> Option<u8> {
    if token.len() == 2 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(token, 16).ok()
    } else {
        None
    }
}

/// What a short dump line stopped at, for an error message.
pub(super) fn found(stop: Option<&str>) -> String {
    match stop {
        Some(token) => format!("`{token}`"),
        None => "the end of the line".into(),
    }
}

// ---- OpenSC ----

/// The header of an OpenSC APDU dump anywhere in `line` (a timestamp or thread prefix may
/// come before it): its direction and declared byte count. An error if the header text is
/// there but its count cannot be read.
mod opensc;
mod pcsc_spy;

use opensc::{opensc_header, parse_opensc};
use pcsc_spy::{parse_spy, spy_call_name, strip_ansi};
#[cfg(test)]
mod tests;
