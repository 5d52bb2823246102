//! The data trace ([`super::Card::set_data_tracer`]): every command and answer in full, each
//! data field decoded ([`crate::dissect`]), the secrets taken out by field. One
//! [`DataTraceEvent`] per APDU on the wire; the parts of a chain are held until the chain is
//! complete (a secret may span parts), and the pieces of an answer fetched with GET RESPONSE
//! are shown with the secrets of the whole answer taken out.
//!
//! What the data trace never holds: a PIN, a session PIN, a DKEK share, a deciphered value,
//! key material, the encrypted body of a wrapped key. A command the card could not decode
//! (malformed, refused before parsing, a chain broken off) shows its header and the length of
//! its data, not the data.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::apdu::{Command, Response, Status};
use crate::dissect::{self, Dissection, Dissector, Field, Hidden, SecretBook};

/// Where a card sends its data trace events.
pub type DataTracer = Box<dyn FnMut(&DataTraceEvent) + Send>;

/// One APDU exchange in full, decoded, with the secrets taken out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataTraceEvent {
    /// Seconds since 1970 (written by the host; 0 from the card).
    #[serde(default)]
    pub time: f64,
    /// The exchange's number since tracing started, from 1.
    pub n: u64,
    pub command: String,
    /// What P1-P2 say ([`crate::applet::command::describe`]).
    #[serde(default)]
    pub parameters: String,
    /// The command APDU as the reader sent it, in hex; what was taken out stands as
    /// `[kind#n:length]`.
    pub apdu: String,
    /// Under secure messaging, the command as the card read it once unwrapped; for the last
    /// part of a chain, the whole command the parts make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<String>,
    /// The secure messaging objects of a protected command (`87`, `97`, `8E`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_fields: Vec<Field>,
    /// The command data, decoded (for a chain: on its last part, the whole data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command_fields: Vec<Field>,
    /// The answer as the card sent it (data and SW), in hex.
    pub response: String,
    /// Under secure messaging, the answer before it was wrapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_response: Option<String>,
    /// The answer data, decoded; when part of it waits for GET RESPONSE, the whole answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_fields: Vec<Field>,
    pub sw: String,
    #[serde(default)]
    pub sw_meaning: String,
    #[serde(default)]
    pub secure_messaging: bool,
    /// `part k` for a non-final part of a chain, `last of k` for the part that completes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// For GET RESPONSE: whose answer this piece continues, and which bytes of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
    #[serde(default)]
    pub duration_us: u64,
    /// The fault a rule injected ([`crate::fault`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

impl DataTraceEvent {
    /// One JSON object (one line).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Reads one line of `--trace-data-json`.
    pub fn from_json(line: &str) -> Result<DataTraceEvent, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    /// Every field of the command and the answer, depth first.
    pub fn all_fields(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        for f in self
            .protected_fields
            .iter()
            .chain(&self.command_fields)
            .chain(&self.response_fields)
        {
            f.walk(&mut out);
        }
        out
    }
}

/// A part of a chain held until the chain completes.
struct HeldPart {
    event: DataTraceEvent,
    /// The part's APDU as the card read it (unwrapped), wiped when dropped.
    apdu: Zeroizing<Vec<u8>>,
    /// Where its data starts in the complete command's data.
    offset: usize,
}

/// The rest of an answer that waits for GET RESPONSE.
struct PendingAnswer {
    command: String,
    hidden: Vec<Hidden>,
    /// Where the next piece starts in the whole answer.
    offset: usize,
    total: usize,
}

/// What one exchange gave the data trace along the way ([`super::Card::transmit`]).
#[derive(Default)]
pub(crate) struct Capture {
    /// The APDU as the card read it after unwrapping (for a protected command) - its own
    /// part, not the chain.
    pub plain: Option<Zeroizing<Vec<u8>>>,
    /// The protected APDU as it came from the reader.
    pub wire: Option<Vec<u8>>,
    /// The complete command's dissection, the length of its data, and the whole command
    /// shown through its secrets (what a chain's parts make).
    pub command: Option<(Dissection, usize, String)>,
    /// The whole answer of the application, dissected, and its length.
    pub response: Option<(Dissection, usize)>,
}

/// The data trace state of a card.
pub(crate) struct DataTrace {
    tracer: DataTracer,
    book: SecretBook,
    n: u64,
    chain: Vec<HeldPart>,
    pending: Option<PendingAnswer>,
}

/// Where the data of an encoded APDU starts, given its length.
fn data_start(apdu: &[u8], data_len: usize) -> usize {
    if data_len == 0 {
        apdu.len().min(4)
    } else if apdu.get(4) == Some(&0) && apdu.len() >= 7 + data_len {
        7
    } else {
        5
    }
}

/// `apdu` in hex with its data (at `offset` of the dissected data) shown through `hidden`.
pub(crate) fn show_apdu(apdu: &[u8], data_len: usize, offset: usize, hidden: &[Hidden]) -> String {
    let start = data_start(apdu, data_len).min(apdu.len());
    let end = (start + data_len).min(apdu.len());
    [
        dissect::spaced(&apdu[..start]),
        dissect::show(&apdu[start..end], offset, hidden),
        dissect::spaced(&apdu[end..]),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
}

/// `apdu` with its data withheld (a command that was not decoded).
fn withheld(apdu: &[u8], data_len: usize, book: &mut SecretBook) -> String {
    let start = data_start(apdu, data_len).min(apdu.len());
    let end = (start + data_len).min(apdu.len());
    let hidden = Dissector::new(book).withhold(&apdu[start..end]);
    show_apdu(apdu, data_len, 0, &hidden)
}

impl DataTrace {
    pub fn new(tracer: DataTracer) -> DataTrace {
        DataTrace {
            tracer,
            book: SecretBook::default(),
            n: 0,
            chain: Vec::new(),
            pending: None,
        }
    }

    pub fn book(&mut self) -> &mut SecretBook {
        &mut self.book
    }

    fn emit(&mut self, mut event: DataTraceEvent) {
        self.n += 1;
        event.n = self.n;
        (self.tracer)(&event);
    }

    /// Traces the held parts of a chain that will not complete, their data withheld.
    fn flush_chain(&mut self) {
        for mut part in std::mem::take(&mut self.chain) {
            let len = part.event.command_fields.first().map_or(0, |f| f.len);
            part.event.apdu = withheld(&part.apdu, len, &mut self.book);
            self.emit(part.event);
        }
    }

    /// A malformed APDU or one refused before it could be parsed: its header and length.
    pub fn refused(&mut self, apdu: &[u8], response: &[u8], status: Status) {
        self.flush_chain();
        self.pending = None;
        let header = apdu.get(..4).map(dissect::spaced).unwrap_or_default();
        let rest = apdu.len().saturating_sub(4);
        let body = &apdu[apdu.len().min(4)..];
        let hidden = Dissector::new(&mut self.book).withhold(body);
        let shown = dissect::show(body, 0, &hidden);
        let event = DataTraceEvent {
            command: apdu
                .get(1)
                .map_or("unknown", |ins| crate::applet::command::name_of(*ins))
                .into(),
            parameters: format!("not decoded ({rest} bytes after the header)"),
            apdu: [header, shown].join(" ").trim().to_string(),
            response: dissect::spaced(response),
            sw: status.to_string(),
            sw_meaning: status.meaning().into(),
            ..blank()
        };
        self.emit(event);
    }

    /// A fault a rule injected into an exchange ([`crate::fault`]): its header and what the
    /// fault did (the exchange itself, when the card ran it, is the event before).
    pub fn fault(&mut self, event: &crate::card::trace::TraceEvent) {
        self.pending = None;
        let fault = DataTraceEvent {
            command: event.command.into(),
            parameters: event.parameters.clone(),
            apdu: dissect::spaced(&event.header),
            response: String::new(),
            sw: event.status.to_string(),
            sw_meaning: event.status.meaning().into(),
            duration_us: event.duration.as_micros() as u64,
            fault: event.fault.clone(),
            ..blank()
        };
        self.emit(fault);
    }

    /// One exchange the card carried out (the layer or the application answered it).
    #[allow(clippy::too_many_arguments)]
    pub fn exchange(
        &mut self,
        command: &Command,
        capture: Capture,
        name: &str,
        parameters: String,
        sent: &Response,
        answer: &[u8],
        duration_us: u64,
    ) {
        let plain_apdu: Zeroizing<Vec<u8>> = match &capture.plain {
            Some(plain) => plain.clone(),
            None => Zeroizing::new(command.to_bytes()),
        };
        let part_len = command.data.len();
        let mut event = DataTraceEvent {
            command: name.into(),
            parameters,
            sw: sent.status.to_string(),
            sw_meaning: sent.status.meaning().into(),
            secure_messaging: capture.wire.is_some(),
            duration_us,
            ..blank()
        };
        if let Some(wire) = &capture.wire {
            event.apdu = dissect::spaced(wire);
            event.protected_fields = protected(&mut self.book, wire);
            event.response = dissect::spaced(answer);
        }
        let is_get_response = command.ins == crate::applet::command::Ins::GetResponse.code()
            && command.cla_without_chaining() == 0;

        // A non-final part of a chain: held until the chain completes.
        if capture.command.is_none() && command.is_chained() && sent.status == Status::Success {
            let offset = self.chain.iter().map(|p| p.event_len()).sum();
            event.chain = Some(format!("part {}", self.chain.len() + 1));
            event.response = dissect::spaced(answer);
            event.command_fields = vec![Field {
                name: "part of a chained command".into(),
                len: part_len,
                ..Field::default()
            }];
            self.chain.push(HeldPart {
                event,
                apdu: plain_apdu,
                offset,
            });
            return;
        }

        match capture.command {
            Some((command_dissection, complete_len, whole)) => {
                // The whole command: shown part by part if it was chained.
                let offset = complete_len - part_len;
                let parts = std::mem::take(&mut self.chain);
                let count = parts.len();
                for mut part in parts {
                    let len = part.event_len();
                    let shown = show_apdu(&part.apdu, len, part.offset, &command_dissection.hidden);
                    if part.event.secure_messaging {
                        part.event.plain = Some(shown);
                    } else {
                        part.event.apdu = shown;
                    }
                    part.event.command_fields.clear();
                    self.emit(part.event);
                }
                let shown = show_apdu(&plain_apdu, part_len, offset, &command_dissection.hidden);
                if capture.wire.is_some() {
                    event.plain = Some(shown);
                } else {
                    event.apdu = shown;
                }
                if count > 0 {
                    event.chain = Some(format!("last of {}", count + 1));
                    event.plain = Some(whole);
                }
                event.command_fields = command_dissection.fields;
            }
            None => {
                self.flush_chain();
                if !is_get_response {
                    let shown = withheld(&plain_apdu, part_len, &mut self.book);
                    if capture.wire.is_some() {
                        event.plain = Some(shown);
                    } else {
                        event.apdu = shown;
                    }
                } else if capture.wire.is_none() {
                    event.apdu = dissect::spaced(&plain_apdu);
                }
            }
        }

        // The answer: the whole of it decoded; what was sent shown through its secrets.
        let piece = &sent.data;
        let (hidden, offset) = match (&capture.response, is_get_response) {
            (Some((dissection, total)), _) => {
                event.response_fields = dissection.fields.clone();
                let hidden = dissection.hidden.clone();
                self.pending = (piece.len() < *total).then(|| PendingAnswer {
                    command: name.into(),
                    hidden: hidden.clone(),
                    offset: piece.len(),
                    total: *total,
                });
                (hidden, 0)
            }
            (None, true) => match self.pending.take() {
                Some(mut pending) => {
                    event.continues = Some(format!(
                        "the answer of {}, bytes {} to {} of {}",
                        pending.command,
                        pending.offset,
                        pending.offset + piece.len(),
                        pending.total
                    ));
                    let out = (pending.hidden.clone(), pending.offset);
                    pending.offset += piece.len();
                    if pending.offset < pending.total {
                        self.pending = Some(pending);
                    }
                    out
                }
                None => (Vec::new(), 0),
            },
            (None, false) => {
                self.pending = None;
                (Vec::new(), 0)
            }
        };
        let shown = [
            dissect::show(piece, offset, &hidden),
            dissect::spaced(&sent.status.sw()),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        if capture.wire.is_some() {
            event.plain_response = Some(shown);
        } else {
            event.response = shown;
        }
        self.emit(event);
    }
}

impl HeldPart {
    fn event_len(&self) -> usize {
        self.event.command_fields.first().map_or(0, |f| f.len)
    }
}

/// The secure messaging objects of a protected APDU (ciphertext and MAC only: no secret).
fn protected(book: &mut SecretBook, wire: &[u8]) -> Vec<Field> {
    let Ok(command) = Command::parse(wire) else {
        return Vec::new();
    };
    let mut d = Dissector::new(book);
    d.secure_messaging(&command.data)
}

fn blank() -> DataTraceEvent {
    DataTraceEvent {
        time: 0.0,
        n: 0,
        command: String::new(),
        parameters: String::new(),
        apdu: String::new(),
        plain: None,
        protected_fields: Vec::new(),
        command_fields: Vec::new(),
        response: String::new(),
        plain_response: None,
        response_fields: Vec::new(),
        sw: String::new(),
        sw_meaning: String::new(),
        secure_messaging: false,
        chain: None,
        continues: None,
        duration_us: 0,
        fault: None,
    }
}
