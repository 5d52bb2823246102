//! What lies between the APDUs on the wire and the complete commands the application sees
//! (ISO 7816-4 5.3): command chaining, the class check, response data cut to Ne, and the rest
//! held for GET RESPONSE behind `61xx`.

use zeroize::{Zeroize, Zeroizing};

use super::{Command, Response, Status};
use crate::applet::command::Ins;

/// Largest command data accepted across a chain.
const MAX_CHAINED_DATA: usize = 65_536;

/// Whether `command` is a GET RESPONSE this layer answers (class `00`).
pub(crate) fn is_get_response(command: &Command) -> bool {
    command.ins == Ins::GetResponse.code() && command.cla_without_chaining() == 0x00
}

/// The transmission state of one card session; power events and a malformed APDU clear it.
pub(crate) struct Layer {
    /// Data of the non-final commands of a chain, and the header they share.
    chain: Option<Chain>,
    /// Response bytes not yet fetched with GET RESPONSE.
    pending: Vec<u8>,
    /// The most response data the transport carries in one answer.
    max_data: usize,
}

impl Default for Layer {
    fn default() -> Layer {
        Layer {
            chain: None,
            pending: Vec::new(),
            max_data: super::MAX_LE,
        }
    }
}

struct Chain {
    header: [u8; 4],
    data: Zeroizing<Vec<u8>>,
}

/// What became of one command APDU.
pub(crate) enum Incoming {
    /// A complete command for the application (a chain's parts joined).
    Complete(Command),
    /// Answered here: GET RESPONSE, a non-final part of a chain, a refused class or chain.
    Answered(Response),
}

impl Layer {
    /// Limits every answer to `max_data` bytes of data (the transport's frame): the rest of a
    /// longer answer waits behind `61xx`.
    pub fn set_max_data(&mut self, max_data: usize) {
        self.max_data = max_data.max(1);
    }

    /// Forgets the session (power events), keeping the transport's limit.
    pub fn clear(&mut self) {
        *self = Layer {
            max_data: self.max_data,
            ..Layer::default()
        };
    }

    /// The answer data waiting for GET RESPONSE.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// A malformed APDU: pending response data is lost, as after any other command.
    pub fn malformed(&mut self) {
        self.pending.clear();
    }

    /// Takes one parsed command APDU.
    pub fn receive(&mut self, command: Command) -> Incoming {
        if is_get_response(&command) {
            return Incoming::Answered(self.get_response(&command));
        }
        self.pending.clear();
        if !matches!(command.cla_without_chaining(), 0x00 | 0x80) {
            self.chain = None;
            return Incoming::Answered(Status::ClaNotSupported.into());
        }
        match self.chain(command) {
            Ok(Some(command)) => Incoming::Complete(command),
            Ok(None) => Incoming::Answered(Response::empty()),
            Err(status) => Incoming::Answered(status.into()),
        }
    }

    /// Collects chained data; returns the complete command once the last part arrives.
    fn chain(&mut self, mut command: Command) -> Result<Option<Command>, Status> {
        let header = [
            command.cla_without_chaining(),
            command.ins,
            command.p1,
            command.p2,
        ];
        if self
            .chain
            .as_ref()
            .is_some_and(|chain| chain.header != header)
        {
            self.chain = None;
            command.data.zeroize();
            return Err(Status::LastCommandOfChainExpected);
        }
        let last = !command.is_chained();
        if last && self.chain.is_none() {
            return Ok(Some(command));
        }
        let chain = self.chain.get_or_insert_with(|| Chain {
            header,
            data: Zeroizing::new(Vec::new()),
        });
        let fits = chain.data.len() + command.data.len() <= MAX_CHAINED_DATA;
        if fits {
            chain.data.extend_from_slice(&command.data);
        }
        // Command data may hold a PIN or a DKEK share: the copy in the chain is what counts.
        command.data.zeroize();
        if !fits {
            self.chain = None;
            return Err(Status::WrongLength);
        }
        if !last {
            return Ok(None);
        }
        if let Some(chain) = self.chain.take() {
            command.data = chain.data.to_vec();
            command.extended = true;
        }
        Ok(Some(command))
    }

    /// Cuts the application's answer to Ne bytes; the rest waits for GET RESPONSE behind `61xx`.
    ///
    /// Le absent means Ne = 0 (ISO 7816-4): the command is carried out and answers its status
    /// word without data. OpenSC sends UNWRAP KEY this way and cannot take data in return;
    /// hosts that send GENERATE without Le read the result from `CExx` instead.
    /// An answer longer than the transport carries is cut the same way, whatever its status.
    pub fn respond(&mut self, ne: usize, mut response: Response) -> Response {
        let limit = ne.min(self.max_data);
        let len = response.data.len();
        if len > limit && (response.status == Status::Success || len > self.max_data) {
            let rest = response.data.split_off(limit);
            if limit > 0 {
                self.pending = rest;
                response.status = Status::MoreData(self.pending.len());
            }
        }
        response
    }

    fn get_response(&mut self, command: &Command) -> Response {
        if command.p1 != 0 || command.p2 != 0 {
            return Status::IncorrectP1P2.into();
        }
        if self.pending.is_empty() {
            return Status::ConditionsNotSatisfied.into();
        }
        let n = command
            .le
            .unwrap_or(256)
            .min(self.pending.len())
            .min(self.max_data);
        let rest = self.pending.split_off(n);
        let data = std::mem::replace(&mut self.pending, rest);
        let status = if self.pending.is_empty() {
            Status::Success
        } else {
            Status::MoreData(self.pending.len())
        };
        Response { data, status }
    }
}
