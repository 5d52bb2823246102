//! The card at its transport edge: what a reader sees. [`Card::transmit`] takes the bytes of
//! one command APDU and returns the bytes of the answer; [`Card::power_on`],
//! [`Card::power_off`] and [`Card::reset`] are the contact events. Here an APDU is parsed,
//! unwrapped from secure messaging, put together across a chain (the APDU layer), parsed into a
//! request and handed to the application ([`Applet`]); its answer is cut to Le (the rest
//! waits for GET RESPONSE), traced, and wrapped again. The application never sees any of
//! this: it gets a request and gives an answer (and, once, the keys of a secure channel to
//! open).

use zeroize::{Zeroize, Zeroizing};

use crate::apdu::layer::{Incoming, Layer};
use crate::apdu::secure_messaging::Channel;
use crate::apdu::{Command, Response, Status};
use crate::applet::command::{self, describe::describe, Request};
use crate::applet::{Applet, Effect, Outcome};
use crate::crypto::rng::CardRng;
use crate::limits::Limits;
use crate::model::pki::Pki;
use crate::model::CardState;
use crate::store::{Store, StoreError};

pub mod data_trace;
pub mod trace;
pub mod work;

use crate::dissect::Context;
use data_trace::{DataTrace, DataTracer};
use trace::{TraceEvent, Tracer};
use work::{Pending, Work};

/// ATR of the contact SmartCard-HSM; OpenSC and CardContact's module bind by it.
pub const ATR: [u8; 24] = [
    0x3B, 0xFE, 0x18, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x31, 0x81, 0x54, 0x48, 0x53, 0x4D,
    0x31, 0x73, 0x80, 0x21, 0x40, 0x81, 0x07, 0xFA,
];

/// One emulated SmartCard-HSM.
pub struct Card {
    app: Applet,
    layer: Layer,
    /// The secure channel chip authentication opened, if any.
    channel: Option<Channel>,
    tracer: Option<Tracer>,
    data_trace: Option<DataTrace>,
    /// What the last command made the card do (for the timing profile).
    last_work: Work,
}

impl Card {
    /// Opens the card kept in `store`; a new (empty) store becomes a freshly manufactured card
    /// with its own device key and serial number, under a PKI made for it alone (no other
    /// card can verify it: [`Card::open_issued`] makes cards that can).
    pub fn open(store: Box<dyn Store>) -> Result<Card, StoreError> {
        Card::open_issued(store, None, None)
    }

    /// Opens (or makes) a deterministic test card whose randomness comes from `seed`: the same
    /// seed and the same commands give the same serial and the same keys, under the PKI the
    /// seed derives ([`Pki::from_seed`]). INSECURE, for tests only. A card made with a seed
    /// opens only with that seed, and a card made without one never opens with a seed.
    pub fn open_seeded(store: Box<dyn Store>, seed: u64) -> Result<Card, StoreError> {
        Card::open_issued(store, Some(seed), None)
    }

    /// Opens the card kept in `store`, seeded or not; a new card is made under `pki` (without
    /// one: the seed's PKI, or one made for this card alone).
    pub fn open_issued(
        store: Box<dyn Store>,
        seed: Option<u64>,
        pki: Option<&Pki>,
    ) -> Result<Card, StoreError> {
        Applet::open_issued(store, seed, pki).map(Card::around)
    }

    /// As [`Card::open`], drawing randomness from `rng`.
    pub fn open_with_rng(store: Box<dyn Store>, rng: Box<dyn CardRng>) -> Result<Card, StoreError> {
        Applet::open(store, rng, None).map(Card::around)
    }

    fn around(app: Applet) -> Card {
        Card {
            app,
            layer: Layer::default(),
            channel: None,
            tracer: None,
            data_trace: None,
            last_work: Work::Nothing,
        }
    }

    /// Calls `tracer` after every exchange with a [`TraceEvent`] (`None` stops tracing).
    pub fn set_tracer(&mut self, tracer: Option<Tracer>) {
        self.tracer = tracer;
    }

    /// Calls `tracer` after every exchange with the exchange in full, decoded, its secrets
    /// taken out ([`data_trace::DataTraceEvent`]; `None` stops it).
    pub fn set_data_tracer(&mut self, tracer: Option<DataTracer>) {
        self.data_trace = tracer.map(DataTrace::new);
    }

    /// The capacity limits in force.
    pub fn limits(&self) -> Limits {
        self.app.limits()
    }

    /// The same card with other capacity limits.
    pub fn with_limits(mut self, limits: Limits) -> Card {
        self.app.set_limits(limits);
        self
    }

    /// The serial number middleware shows (device CHR minus its last five characters).
    pub fn serial(&self) -> &str {
        self.app.serial()
    }

    /// The answer to reset.
    pub fn atr(&self) -> &'static [u8] {
        &ATR
    }

    /// Contact activation: the card starts with a clean session.
    pub fn power_on(&mut self) {
        self.forget_session();
    }

    /// Deactivation: everything volatile is lost.
    pub fn power_off(&mut self) {
        self.forget_session();
    }

    /// Warm reset: as power off and on.
    pub fn reset(&mut self) {
        self.forget_session();
    }

    fn forget_session(&mut self) {
        self.app.power_cycle();
        self.layer.clear();
        self.channel = None;
    }

    /// The first plain command (or a refused protected one) ends the secure channel, and the
    /// authentications made in it.
    fn end_channel(&mut self) {
        if self.channel.take().is_some() {
            self.app.secure_channel(false);
            tracing::debug!("secure channel ended");
        }
    }

    /// The most response data one answer may carry on this card's transport (vpcd: 65,533
    /// bytes); a longer answer waits behind `61xx` for GET RESPONSE.
    pub fn set_max_response_data(&mut self, max: usize) {
        self.layer.set_max_data(max);
    }

    /// Processes one command APDU and returns the response APDU (data ‖ SW1 SW2).
    pub fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        let started = std::time::Instant::now();
        if let Some(data_trace) = self.data_trace.as_mut() {
            data_trace.arrived(apdu);
        }
        let mut command = match Command::parse(apdu) {
            Ok(command) => command,
            Err(status) => {
                tracing::debug!(len = apdu.len(), sw = %status, "malformed APDU");
                self.layer.malformed();
                self.end_channel();
                return self.refuse(status);
            }
        };
        // Secure messaging: a protected command is unwrapped (its answer wrapped below); a
        // plain one ends the channel.
        // (Classes 00-0F and 80-8F only: others stay unsupported, 6E00.)
        let protected = command.cla & 0x0C == 0x0C && command.cla & 0x60 == 0;
        if protected {
            let Some(channel) = self.channel.as_mut() else {
                return self.refuse(Status::SecureMessagingNotSupported);
            };
            match channel.unwrap_command(&command) {
                Ok(plain) => {
                    if let Some(data_trace) = self.data_trace.as_mut() {
                        data_trace.unwrapped(&plain);
                    }
                    command = plain
                }
                Err(error) => {
                    tracing::debug!(?error, "secure messaging refused; channel ended");
                    self.end_channel();
                    return self.refuse(Status::from(error));
                }
            }
        } else {
            self.end_channel();
        }
        let header = [command.cla, command.ins, command.p1, command.p2];
        let (lc, le) = (command.data.len(), command.le);
        let name = command::name_of(command.ins);
        let mut parameters = String::new();
        let mut effect = None;
        self.last_work = Work::Nothing;
        let response = match self.layer.receive(command) {
            Incoming::Answered(response) => response,
            Incoming::Complete(mut command) => {
                if let Some(data_trace) = self.data_trace.as_mut() {
                    let context = Context {
                        user_pin_len: self.app.state().user_pin.as_ref().map(|p| p.len()),
                    };
                    data_trace.complete(&command, &context);
                }
                let outcome = match Request::parse(&command) {
                    Ok(request) => {
                        if self.tracer.is_some() || self.data_trace.is_some() {
                            parameters = describe(&request);
                            if protected {
                                parameters.push_str(" [secure messaging]");
                            }
                        }
                        let pending = Pending::of(&request);
                        let outcome = self.app.dispatch(request);
                        if outcome.response.status.is_success() {
                            self.last_work = pending.done(self.app.state());
                        }
                        outcome
                    }
                    Err(status) => Outcome::from(Response::from(status)),
                };
                effect = outcome.effect;
                let response = self.layer.respond(command.ne(), outcome.response);
                if let Some(data_trace) = self.data_trace.as_mut() {
                    // What the card delivers: this answer and what waits for GET RESPONSE.
                    let mut whole = Zeroizing::new(response.data.clone());
                    whole.extend_from_slice(self.layer.pending());
                    data_trace.answered(&command, &whole);
                }
                // Command data may hold a PIN or a DKEK share: wipe it.
                command.data.zeroize();
                response
            }
        };
        tracing::debug!(
            command = name,
            cla = header[0],
            p1 = header[2],
            p2 = header[3],
            lc,
            le,
            resp = response.data.len(),
            sw = %response.status,
            "apdu"
        );
        if let Some(tracer) = self.tracer.as_mut() {
            tracer(&TraceEvent {
                command: name,
                header,
                parameters: parameters.clone(),
                lc,
                le,
                response_len: response.data.len(),
                status: response.status,
                duration: started.elapsed(),
                fault: None,
            });
        }
        let answer = match self.channel.as_mut() {
            Some(channel) if protected => {
                let sw = response.status.sw();
                let mut wrapped = channel.wrap_response(&response.data, sw);
                wrapped.extend_from_slice(&sw);
                wrapped
            }
            _ => response.to_bytes(),
        };
        if let Some(data_trace) = self.data_trace.as_mut() {
            let duration = started.elapsed().as_micros() as u64;
            data_trace.finish(name, parameters, &response, &answer, duration);
        }
        if let Some(Effect::OpenSecureChannel(keys)) = effect {
            self.channel = Some(Channel::new(keys));
            self.app.secure_channel(true);
        }
        answer
    }

    /// The answer to a command refused before it could be parsed; the data trace says so.
    fn refuse(&mut self, status: Status) -> Vec<u8> {
        let bytes = Response::from(status).to_bytes();
        if let Some(data_trace) = self.data_trace.as_mut() {
            data_trace.refused(status, &bytes);
        }
        bytes
    }

    /// Hands `event` to the tracer, if any (an injected fault's event).
    pub(crate) fn trace(&mut self, event: &TraceEvent) {
        if let Some(tracer) = self.tracer.as_mut() {
            tracer(event);
        }
        if let Some(data_trace) = self.data_trace.as_mut() {
            data_trace.fault(event);
        }
    }

    /// What the last command made the card do (for the timing profile; [`Work::Nothing`]
    /// after a refusal).
    pub fn last_work(&self) -> Work {
        self.last_work
    }

    /// Runs one command with the power cut after `commits` of its commits: a later commit
    /// is not made, no answer leaves, and the card comes back as from a power-up, with what
    /// its store holds. Returns whether the cut came while the command still had changes to
    /// make (`false`: it had finished and only its answer was lost).
    pub fn transmit_torn(&mut self, apdu: &[u8], commits: u32) -> bool {
        self.app.cut_power_after(commits);
        drop(self.transmit(apdu));
        let cut = self.app.power_restored();
        self.forget_session();
        cut
    }

    /// The whole card as a portable snapshot (what `export` writes). It holds the card's
    /// keys as its store does.
    pub fn snapshot(&mut self) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        self.app.snapshot()
    }

    /// Replaces the whole card by the one in `snapshot` (same serial, keys, counters), as if
    /// that card had been put in the reader instead: the session ends. A damaged snapshot is
    /// refused and the card left as it was.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        self.app.restore(snapshot)?;
        self.forget_session();
        Ok(())
    }

    /// Read-only view of the persistent state (status tools, tests).
    pub fn state(&self) -> &CardState {
        self.app.state()
    }

    /// The application inside (unit tests look at its session).
    #[cfg(test)]
    pub(crate) fn applet(&self) -> &Applet {
        &self.app
    }

    /// Whether the session counts as the user's (the test kit's invariants ask).
    #[cfg(feature = "testkit")]
    pub(crate) fn user_authenticated(&self) -> bool {
        self.app.user_authenticated()
    }
}

#[cfg(test)]
mod tests;
