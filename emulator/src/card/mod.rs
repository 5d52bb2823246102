//! The card as a whole: its persistent state (with the store that keeps it), its volatile
//! session, and the path of every APDU: parse, APDU layer, application, answer.

use zeroize::{Zeroize, Zeroizing};

use crate::apdu::layer::{Incoming, Layer};
use crate::apdu::secure_messaging::Channel;
use crate::apdu::{Command, Response, Status};
use crate::applet::command::{self, describe::describe, Request};
use crate::applet::session::Session;
use crate::applet::{self};
use crate::crypto::rng::{self, CardRng, SeededRng};
use crate::limits::Limits;
use crate::model::pki::Pki;
use crate::model::{identity, key, objects, Batch, CardState, Change, FileEntry};
use crate::store::{Store, StoreError};

pub mod trace;

use trace::{TraceEvent, Tracer};

/// ATR of the contact SmartCard-HSM; OpenSC and CardContact's module bind by it.
pub const ATR: [u8; 24] = [
    0x3B, 0xFE, 0x18, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x31, 0x81, 0x54, 0x48, 0x53, 0x4D,
    0x31, 0x73, 0x80, 0x21, 0x40, 0x81, 0x07, 0xFA,
];

/// One emulated SmartCard-HSM.
pub struct Card {
    pub(crate) state: CardState,
    tracer: Option<Tracer>,
    pub(crate) limits: Limits,
    store: Box<dyn Store>,
    pub(crate) rng: Box<dyn CardRng>,
    pub(crate) session: Session,
    layer: Layer,
    /// The secure channel chip authentication opened, if any.
    pub(crate) channel: Option<Channel>,
    /// A channel GENERAL AUTHENTICATE just agreed, opened once its answer is out.
    pub(crate) next_channel: Option<Channel>,
    /// The session PIN GENERATE SESSION PIN made (until reset or power off).
    pub(crate) session_pin: Option<Zeroizing<Vec<u8>>>,
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
        mut store: Box<dyn Store>,
        seed: Option<u64>,
        pki: Option<&Pki>,
    ) -> Result<Card, StoreError> {
        let state = store.load()?;
        let Some(seed) = seed else {
            if let Some((seed, _)) = state.seed {
                return Err(StoreError::Refused(format!(
                    "this card was made with --seed {seed} (deterministic, insecure): pass --seed {seed} to use it"
                )));
            }
            return Card::make(store, rng::system(), pki);
        };
        let boot = match (state.identity.is_some(), state.seed) {
            (false, _) => 0,
            (true, Some((stored, boots))) if stored == seed => boots + 1,
            (true, Some((stored, _))) => {
                return Err(StoreError::Refused(format!(
                    "this card was made with --seed {stored}, not {seed}"
                )))
            }
            (true, None) => {
                return Err(StoreError::Refused(
                    "this card was not made with --seed; it cannot be opened with one".into(),
                ))
            }
        };
        store.commit(&[Change::Seed(seed, boot)])?;
        tracing::warn!(
            seed,
            boot,
            "deterministic card (--seed): its keys are predictable, for tests only"
        );
        // Only a card still to be made needs the seed's PKI.
        let derived = (pki.is_none() && state.identity.is_none()).then(|| Pki::from_seed(seed));
        let rng = Box::new(SeededRng::new(seed, boot));
        Card::make(store, rng, pki.or(derived.as_ref()))
    }

    /// As [`Card::open`], drawing randomness from `rng`.
    pub fn open_with_rng(store: Box<dyn Store>, rng: Box<dyn CardRng>) -> Result<Card, StoreError> {
        Card::make(store, rng, None)
    }

    /// Opens the card in `store`, manufacturing it under `pki` (or a PKI of its own) if the
    /// store is new.
    fn make(
        mut store: Box<dyn Store>,
        rng: Box<dyn CardRng>,
        pki: Option<&Pki>,
    ) -> Result<Card, StoreError> {
        let state = store.load()?;
        let mut card = Card {
            state,
            tracer: None,
            limits: Limits::default(),
            store,
            rng,
            session: Session::default(),
            layer: Layer::default(),
            channel: None,
            next_channel: None,
            session_pin: None,
        };
        if card.state.identity.is_none() {
            let own;
            let pki = match pki {
                Some(pki) => pki,
                None => {
                    own = Pki::generate(&mut *card.rng);
                    &own
                }
            };
            let made = identity::manufacture(&mut *card.rng, pki);
            let batch = vec![
                Change::Identity(made.identity),
                Change::PutFile(
                    objects::EF_DEVICE_CERTIFICATES,
                    FileEntry {
                        seq: 0,
                        data: made.device_certificates,
                    },
                ),
                Change::PutKey(key::DEVICE_KEY_ID, made.device_key),
            ];
            card.store.commit(&batch)?;
            for change in batch {
                card.state.apply(change);
            }
            tracing::info!(serial = card.serial(), "manufactured a new card");
        }
        Ok(card)
    }

    /// Calls `tracer` after every exchange with a [`TraceEvent`] (`None` stops tracing).
    pub fn set_tracer(&mut self, tracer: Option<Tracer>) {
        self.tracer = tracer;
    }

    /// The capacity limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The same card with other capacity limits.
    pub fn with_limits(mut self, limits: Limits) -> Card {
        self.limits = limits;
        self
    }

    /// The serial number middleware shows (device CHR minus its last five characters).
    pub fn serial(&self) -> &str {
        self.state.identity.as_ref().map_or("", |i| i.serial())
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
        self.session = Session::default();
        self.layer.clear();
        self.channel = None;
        self.next_channel = None;
        self.session_pin = None;
    }

    /// The first plain command (or a refused protected one) ends the secure channel, and the
    /// authentications made in it.
    fn end_channel(&mut self) {
        if self.channel.take().is_some() {
            self.session.drop_security();
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
        let mut command = match Command::parse(apdu) {
            Ok(command) => command,
            Err(status) => {
                tracing::debug!(len = apdu.len(), sw = %status, "malformed APDU");
                self.layer.malformed();
                self.end_channel();
                return Response::from(status).to_bytes();
            }
        };
        // Secure messaging: a protected command is unwrapped (its answer wrapped below); a
        // plain one ends the channel.
        // (Classes 00-0F and 80-8F only: others stay unsupported, 6E00.)
        let protected = command.cla & 0x0C == 0x0C && command.cla & 0x60 == 0;
        if protected {
            let Some(channel) = self.channel.as_mut() else {
                return Response::from(Status::SecureMessagingNotSupported).to_bytes();
            };
            match channel.unwrap_command(&command) {
                Ok(plain) => command = plain,
                Err(error) => {
                    tracing::debug!(?error, "secure messaging refused; channel ended");
                    self.end_channel();
                    return Response::from(Status::from(error)).to_bytes();
                }
            }
        } else {
            self.end_channel();
        }
        let header = [command.cla, command.ins, command.p1, command.p2];
        let (lc, le) = (command.data.len(), command.le);
        let name = command::name_of(command.ins);
        let mut parameters = String::new();
        let response = match self.layer.receive(command) {
            Incoming::Answered(response) => response,
            Incoming::Complete(mut command) => {
                let response = match Request::parse(&command) {
                    Ok(request) => {
                        if self.tracer.is_some() {
                            parameters = describe(&request);
                            if protected {
                                parameters.push_str(" [secure messaging]");
                            }
                        }
                        applet::dispatch(self, request).unwrap_or_else(Response::from)
                    }
                    Err(status) => status.into(),
                };
                let response = self.layer.respond(command.ne(), response);
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
                parameters,
                lc,
                le,
                response_len: response.data.len(),
                status: response.status,
                duration: started.elapsed(),
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
        if let Some(channel) = self.next_channel.take() {
            self.channel = Some(channel);
            self.session.drop_security();
        }
        answer
    }

    /// Makes `batch` durable, then applies it in memory. On failure nothing changes and the
    /// command answers `6581`.
    pub(crate) fn commit(&mut self, batch: Batch) -> Result<(), Status> {
        if let Err(e) = self.store.commit(&batch) {
            tracing::error!(error = %e, "commit failed; command refused with 6581");
            return Err(e.into());
        }
        for change in batch {
            self.state.apply(change);
        }
        Ok(())
    }

    /// Read-only view of the persistent state (status tools, tests).
    pub fn state(&self) -> &CardState {
        &self.state
    }
}
