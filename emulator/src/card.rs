//! The card as a whole: persistent state, volatile session state, and the APDU layer that
//! every transport shares (command chaining, `61xx` + GET RESPONSE, Le).

use zeroize::Zeroize;

use crate::apdu::{Command, Response};
use crate::device;
use crate::limits::Limits;
use crate::rng::{self, CardRng};
use crate::state::{Batch, CardState, Change, FileEntry};
use crate::status::Status;
use crate::store::{Store, StoreError};
use crate::trace::{TraceEvent, Tracer};
use crate::{applet, files, keystore};

/// ATR of the contact SmartCard-HSM; OpenSC and CardContact's module bind by it.
pub const ATR: [u8; 24] = [
    0x3B, 0xFE, 0x18, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x31, 0x81, 0x54, 0x48, 0x53, 0x4D,
    0x31, 0x73, 0x80, 0x21, 0x40, 0x81, 0x07, 0xFA,
];

/// Largest command data accepted across a chain.
const MAX_CHAINED_DATA: usize = 65_536;

/// What the card forgets on power off, power on, reset, and (for security) applet selection.
#[derive(Default)]
pub(crate) struct Session {
    pub applet_selected: bool,
    pub current_ef: Option<u16>,
    pub user_verified: bool,
    pub so_verified: bool,
    /// Data of the non-final commands of a chain, and the header they share.
    chain: Option<Chain>,
    /// Response bytes not yet fetched with GET RESPONSE.
    pending: Vec<u8>,
}

struct Chain {
    header: [u8; 4],
    data: Vec<u8>,
}

impl Session {
    /// Drops every security status (what SELECT of the applet does).
    pub fn log_out(&mut self) {
        self.user_verified = false;
        self.so_verified = false;
    }
}

/// One emulated SmartCard-HSM.
pub struct Card {
    pub(crate) state: CardState,
    tracer: Option<Tracer>,
    pub(crate) limits: Limits,
    store: Box<dyn Store>,
    pub(crate) rng: Box<dyn CardRng>,
    pub(crate) session: Session,
}

impl Card {
    /// Opens the card kept in `store`; a new (empty) store becomes a freshly manufactured card
    /// with its own device key and serial number.
    pub fn open(mut store: Box<dyn Store>) -> Result<Card, StoreError> {
        if let Some((seed, _)) = store.load()?.seed {
            return Err(StoreError::Refused(format!(
                "this card was made with --seed {seed} (deterministic, insecure): pass --seed {seed} to use it"
            )));
        }
        Card::open_with_rng(store, rng::system())
    }

    /// Opens (or makes) a deterministic test card whose randomness comes from `seed`: the same
    /// seed and the same commands give the same serial and the same keys. INSECURE, for tests
    /// only. A card made with a seed opens only with that seed, and a card made without one
    /// never opens with a seed.
    pub fn open_seeded(mut store: Box<dyn Store>, seed: u64) -> Result<Card, StoreError> {
        let state = store.load()?;
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
        Card::open_with_rng(store, Box::new(rng::SeededRng::new(seed, boot)))
    }

    /// As [`Card::open`], drawing randomness from `rng`.
    pub fn open_with_rng(
        mut store: Box<dyn Store>,
        rng: Box<dyn CardRng>,
    ) -> Result<Card, StoreError> {
        let state = store.load()?;
        let mut card = Card {
            state,
            tracer: None,
            limits: Limits::default(),
            store,
            rng,
            session: Session::default(),
        };
        if card.state.identity.is_none() {
            let made = device::manufacture(&mut *card.rng);
            let batch = vec![
                Change::Identity(made.identity),
                Change::PutFile(
                    files::EF_DEVICE_CERTIFICATES,
                    FileEntry {
                        seq: 0,
                        data: made.device_certificates,
                    },
                ),
                Change::PutKey(keystore::DEVICE_KEY_ID, made.device_key),
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
        self.session = Session::default();
    }

    /// Deactivation: everything volatile is lost.
    pub fn power_off(&mut self) {
        self.session = Session::default();
    }

    /// Warm reset: as power off and on.
    pub fn reset(&mut self) {
        self.session = Session::default();
    }

    /// Processes one command APDU and returns the response APDU (data ‖ SW1 SW2).
    pub fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        let started = std::time::Instant::now();
        let response = match Command::parse(apdu) {
            Ok(command) => {
                let header = (
                    command.cla,
                    command.ins,
                    command.p1,
                    command.p2,
                    command.data.len(),
                    command.le,
                );
                let name = applet::command_name(&command);
                let parameters = self
                    .tracer
                    .as_ref()
                    .map(|_| crate::trace::parameters(&command));
                let response = self.process(command);
                log_exchange(name, header, &response);
                if let (Some(tracer), Some(parameters)) = (self.tracer.as_mut(), parameters) {
                    tracer(&TraceEvent {
                        command: name,
                        header: [header.0, header.1, header.2, header.3],
                        parameters,
                        lc: header.4,
                        le: header.5,
                        response_len: response.data.len(),
                        status: response.status,
                        duration: started.elapsed(),
                    });
                }
                response
            }
            Err(status) => {
                tracing::debug!(len = apdu.len(), sw = %status, "malformed APDU");
                self.session.pending.clear();
                Response::from(status)
            }
        };
        response.to_bytes()
    }

    /// The APDU layer: GET RESPONSE, chaining, class check, then the applet, then Le.
    fn process(&mut self, command: Command) -> Response {
        if command.ins == applet::INS_GET_RESPONSE && command.cla_without_chaining() == 0x00 {
            return self.get_response(&command);
        }
        self.session.pending.clear();
        if !matches!(command.cla_without_chaining(), 0x00 | 0x80) {
            self.session.chain = None;
            return Status::ClaNotSupported.into();
        }
        let command = match self.chain(command) {
            Ok(Some(command)) => command,
            Ok(None) => return Response::empty(),
            Err(status) => return status.into(),
        };
        let mut command = command;
        let response = applet::dispatch(self, &command).unwrap_or_else(Response::from);
        let response = self.limit_to_le(&command, response);
        // Command data may hold a PIN or a DKEK share: wipe it.
        command.data.zeroize();
        response
    }

    /// Collects chained data; returns the complete command once the last part arrives.
    fn chain(&mut self, mut command: Command) -> Result<Option<Command>, Status> {
        let header = [
            command.cla_without_chaining(),
            command.ins,
            command.p1,
            command.p2,
        ];
        if let Some(chain) = &self.session.chain {
            if chain.header != header {
                self.session.chain = None;
                return Err(Status::LastCommandOfChainExpected);
            }
        }
        if command.is_chained() {
            let chain = self.session.chain.get_or_insert_with(|| Chain {
                header,
                data: Vec::new(),
            });
            if chain.data.len() + command.data.len() > MAX_CHAINED_DATA {
                self.session.chain = None;
                return Err(Status::WrongLength);
            }
            chain.data.extend_from_slice(&command.data);
            return Ok(None);
        }
        if let Some(mut chain) = self.session.chain.take() {
            if chain.data.len() + command.data.len() > MAX_CHAINED_DATA {
                chain.data.zeroize();
                return Err(Status::WrongLength);
            }
            chain.data.extend_from_slice(&command.data);
            command.data.zeroize();
            command.data = chain.data;
            command.extended = true;
        }
        Ok(Some(command))
    }

    /// Cuts the response to Ne bytes; the rest waits for GET RESPONSE behind `61xx`.
    ///
    /// Le absent means Ne = 0 (ISO 7816-4): the command is carried out and answers its status
    /// word without data. OpenSC sends UNWRAP KEY this way and cannot take data in return;
    /// hosts that send GENERATE without Le read the result from `CExx` instead.
    fn limit_to_le(&mut self, command: &Command, mut response: Response) -> Response {
        let ne = command.ne();
        if response.data.len() > ne && response.status == Status::Success {
            let rest = response.data.split_off(ne);
            if ne > 0 {
                self.session.pending = rest;
                response.status = Status::MoreData(self.session.pending.len());
            }
        }
        response
    }

    fn get_response(&mut self, command: &Command) -> Response {
        if command.p1 != 0 || command.p2 != 0 {
            return Status::IncorrectP1P2.into();
        }
        if self.session.pending.is_empty() {
            return Status::ConditionsNotSatisfied.into();
        }
        let n = command.le.unwrap_or(256).min(self.session.pending.len());
        let rest = self.session.pending.split_off(n);
        let data = std::mem::replace(&mut self.session.pending, rest);
        let status = if self.session.pending.is_empty() {
            Status::Success
        } else {
            Status::MoreData(self.session.pending.len())
        };
        Response { data, status }
    }

    /// Makes `batch` durable, then applies it in memory. On failure nothing changes and the
    /// command answers `6581`.
    pub(crate) fn commit(&mut self, batch: Batch) -> Result<(), Status> {
        self.commit_with(batch, false)
    }

    /// As [`Card::commit`], without waiting for the disk: only for changes whose loss in a
    /// crash leaves the card safer (see [`Store::commit_relaxed`]).
    pub(crate) fn commit_relaxed(&mut self, batch: Batch) -> Result<(), Status> {
        self.commit_with(batch, true)
    }

    fn commit_with(&mut self, batch: Batch, relaxed: bool) -> Result<(), Status> {
        let written = if relaxed {
            self.store.commit_relaxed(&batch)
        } else {
            self.store.commit(&batch)
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "commit failed; command refused with 6581");
            return Err(Status::MemoryFailure);
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

/// Logs one exchange: the command's name, header bytes and lengths, never its data.
fn log_exchange(
    name: &str,
    (cla, _ins, p1, p2, lc, le): (u8, u8, u8, u8, usize, Option<usize>),
    response: &Response,
) {
    tracing::debug!(
        command = name,
        cla,
        p1,
        p2,
        lc,
        le,
        resp = response.data.len(),
        sw = %response.status,
        "apdu"
    );
}
