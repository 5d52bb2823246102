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
use zeroize::{Zeroize, Zeroizing};

use crate::apdu::layer::is_get_response;
use crate::apdu::{Command, Response, Status};
use crate::dissect::{self, Context, Dissection, Dissector, Field, Hidden, SecretBook};
use crate::hex;

/// Where a card sends its data trace events.
pub type DataTracer = Box<dyn FnMut(&DataTraceEvent) + Send>;

/// One APDU exchange in full, decoded, with the secrets taken out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Where its data starts in the complete command's data, and how long it is.
    offset: usize,
    len: usize,
}

/// The rest of an answer that waits for GET RESPONSE.
struct PendingAnswer {
    command: String,
    hidden: Vec<Hidden>,
    /// Where the next piece starts in the whole answer.
    offset: usize,
    total: usize,
}

/// A complete command, decoded.
struct DecodedCommand {
    dissection: Dissection,
    /// The length of its data (a chain's parts together).
    len: usize,
    /// The whole command shown through its secrets (what a chain's parts make).
    whole: String,
}

/// What the exchange under way gave the data trace so far.
#[derive(Default)]
struct Exchange {
    /// The APDU as the reader sent it (it may hold a PIN: wiped when dropped).
    wire: Zeroizing<Vec<u8>>,
    /// Under secure messaging, the command as the card read it once unwrapped.
    unwrapped: Option<Zeroizing<Vec<u8>>>,
    command: Option<DecodedCommand>,
    /// The whole answer of the application, decoded, and its length.
    response: Option<(Dissection, usize)>,
}

/// The data trace state of a card: the numbering of secrets, the parts of a chain held, the
/// rest of an answer, and the exchange under way.
pub(crate) struct DataTrace {
    tracer: DataTracer,
    book: SecretBook,
    n: u64,
    chain: Vec<HeldPart>,
    pending: Option<PendingAnswer>,
    current: Exchange,
}

/// `apdu` (encoded as `command` is) in hex, its data (at `offset` of the dissected data)
/// shown through `hidden`.
fn show_apdu(apdu: &[u8], command: &Command, offset: usize, hidden: &[Hidden]) -> String {
    let start = if command.data.is_empty() {
        apdu.len()
    } else {
        command.data_offset().min(apdu.len())
    };
    let end = (start + command.data.len()).min(apdu.len());
    [
        hex::spaced(&apdu[..start]),
        dissect::show(&apdu[start..end], offset, hidden),
        hex::spaced(&apdu[end..]),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
}

/// `apdu` (the encoding of `command`) with its data withheld: a command that was not decoded.
fn withheld(apdu: &[u8], command: &Command, book: &mut SecretBook) -> String {
    let hidden = Dissector::new(book).withhold(&command.data);
    show_apdu(apdu, command, 0, &hidden)
}

impl DataTrace {
    pub fn new(tracer: DataTracer) -> DataTrace {
        DataTrace {
            tracer,
            book: SecretBook::default(),
            n: 0,
            chain: Vec::new(),
            pending: None,
            current: Exchange::default(),
        }
    }

    fn emit(&mut self, mut event: DataTraceEvent) {
        self.n += 1;
        event.n = self.n;
        (self.tracer)(&event);
    }

    /// A command APDU arrives, as the reader sent it.
    pub fn arrived(&mut self, apdu: &[u8]) {
        self.current = Exchange {
            wire: Zeroizing::new(apdu.to_vec()),
            ..Exchange::default()
        };
    }

    /// Under secure messaging: the command as the card read it once unwrapped.
    pub fn unwrapped(&mut self, command: &Command) {
        self.current.unwrapped = Some(Zeroizing::new(command.to_bytes()));
    }

    /// A command is complete (a chain's parts joined): its data decoded, `context` telling
    /// what the bytes do not (the length of the user PIN).
    pub fn complete(&mut self, command: &Command, context: &Context) {
        let header = [command.cla, command.ins, command.p1, command.p2];
        let dissection = Dissector::new(&mut self.book).command(header, &command.data, context);
        let whole = show_apdu(
            &Zeroizing::new(command.to_bytes()),
            command,
            0,
            &dissection.hidden,
        );
        self.current.command = Some(DecodedCommand {
            dissection,
            len: command.data.len(),
            whole,
        });
    }

    /// The application's answer to `command`, whole (what waits for GET RESPONSE included).
    pub fn answered(&mut self, command: &Command, whole: &[u8]) {
        let header = [command.cla, command.ins, command.p1, command.p2];
        let dissection = Dissector::new(&mut self.book).response(header, &command.data, whole);
        self.current.response = Some((dissection, whole.len()));
    }

    /// Traces the held parts of a chain that will not complete, their data withheld.
    fn flush_chain(&mut self) {
        for mut part in std::mem::take(&mut self.chain) {
            if let Ok(command) = Command::parse(&part.apdu) {
                part.event.apdu = withheld(&part.apdu, &command, &mut self.book);
            }
            self.emit(part.event);
        }
    }

    /// The command that arrived was refused before it could be parsed (malformed, or
    /// protected without a channel): its header and the length of the rest.
    pub fn refused(&mut self, status: Status, response: &[u8]) {
        self.flush_chain();
        self.pending = None;
        let apdu = std::mem::take(&mut self.current).wire;
        let (header, body) = apdu.split_at(apdu.len().min(4));
        let hidden = Dissector::new(&mut self.book).withhold(body);
        let event = DataTraceEvent {
            command: apdu
                .get(1)
                .map_or("unknown", |ins| crate::applet::command::name_of(*ins))
                .into(),
            parameters: format!("not decoded ({} bytes after the header)", body.len()),
            apdu: [hex::spaced(header), dissect::show(body, 0, &hidden)]
                .join(" ")
                .trim()
                .to_string(),
            response: hex::spaced(response),
            sw: status.to_string(),
            sw_meaning: status.meaning().into(),
            ..DataTraceEvent::default()
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
            apdu: hex::spaced(&event.header),
            sw: event.status.to_string(),
            sw_meaning: event.status.meaning().into(),
            duration_us: event.duration.as_micros() as u64,
            fault: event.fault.clone(),
            ..DataTraceEvent::default()
        };
        self.emit(fault);
    }

    /// The exchange under way ends: the layer or the application answered `sent`, which left
    /// the card as `answer` (wrapped under secure messaging).
    pub fn finish(
        &mut self,
        name: &str,
        parameters: String,
        sent: &Response,
        answer: &[u8],
        duration_us: u64,
    ) {
        let Exchange {
            wire,
            unwrapped,
            command: decoded,
            response,
        } = std::mem::take(&mut self.current);
        // The part as the card read it (unwrapped, or as it came), and the protected APDU.
        let (apdu, protected) = match unwrapped {
            Some(plain) => (plain, Some(wire)),
            None => (wire, None),
        };
        let Ok(mut command) = Command::parse(&apdu) else {
            return;
        };
        let mut event = DataTraceEvent {
            command: name.into(),
            parameters,
            sw: sent.status.to_string(),
            sw_meaning: sent.status.meaning().into(),
            secure_messaging: protected.is_some(),
            duration_us,
            ..DataTraceEvent::default()
        };
        if let Some(wire) = &protected {
            event.apdu = hex::spaced(wire);
            event.protected_fields = Command::parse(wire).map_or_else(
                |_| Vec::new(),
                |wire| Dissector::new(&mut self.book).secure_messaging(&wire.data),
            );
            event.response = hex::spaced(answer);
        }
        let protected = protected.is_some();
        // Where the command shows: on the wire, or (protected) as unwrapped.
        let place = |event: &mut DataTraceEvent, shown: String| {
            if protected {
                event.plain = Some(shown);
            } else {
                event.apdu = shown;
            }
        };
        let get_response = is_get_response(&command);

        match decoded {
            // A non-final part of a chain: held until the chain completes.
            None if command.is_chained() && sent.status == Status::Success => {
                let offset = self.chain.iter().map(|p| p.len).sum();
                event.chain = Some(format!("part {}", self.chain.len() + 1));
                event.response = hex::spaced(answer);
                self.chain.push(HeldPart {
                    event,
                    apdu,
                    offset,
                    len: command.data.len(),
                });
                command.data.zeroize();
                return;
            }
            // The whole command: shown part by part if it was chained.
            Some(decoded) => {
                let hidden = &decoded.dissection.hidden;
                let parts = std::mem::take(&mut self.chain);
                let count = parts.len();
                for mut part in parts {
                    if let Ok(mut part_command) = Command::parse(&part.apdu) {
                        let shown = show_apdu(&part.apdu, &part_command, part.offset, hidden);
                        part_command.data.zeroize();
                        place(&mut part.event, shown);
                    }
                    self.emit(part.event);
                }
                let offset = decoded.len - command.data.len();
                place(&mut event, show_apdu(&apdu, &command, offset, hidden));
                if count > 0 {
                    event.chain = Some(format!("last of {}", count + 1));
                    event.plain = Some(decoded.whole);
                }
                event.command_fields = decoded.dissection.fields;
            }
            // Answered by the layer: GET RESPONSE, or a refusal (its data not decoded).
            None => {
                self.flush_chain();
                if get_response {
                    place(&mut event, hex::spaced(&apdu));
                } else {
                    place(&mut event, withheld(&apdu, &command, &mut self.book));
                }
            }
        }
        command.data.zeroize();

        // The answer: the whole of it decoded; what was sent shown through its secrets.
        let piece = &sent.data;
        let (hidden, offset) = match response {
            Some((dissection, total)) => {
                event.response_fields = dissection.fields;
                self.pending = (piece.len() < total).then(|| PendingAnswer {
                    command: name.into(),
                    hidden: dissection.hidden.clone(),
                    offset: piece.len(),
                    total,
                });
                (dissection.hidden, 0)
            }
            None if get_response => match self.pending.take() {
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
            None => {
                self.pending = None;
                (Vec::new(), 0)
            }
        };
        let shown = [
            dissect::show(piece, offset, &hidden),
            hex::spaced(&sent.status.sw()),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        if protected {
            event.plain_response = Some(shown);
        } else {
            event.response = shown;
        }
        self.emit(event);
    }
}
