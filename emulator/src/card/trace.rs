//! What a card reports after every exchange when a tracer is set ([`super::Card::set_tracer`]):
//! the command's name, what its P1-P2 say ([`crate::applet::command::describe`]), lengths, the
//! status word and the time the card took. Never command or response data beyond file
//! identifiers and offsets: no PIN, key or DKEK share can reach a trace. The text and JSON
//! forms are host-side formatting ([`crate::tools::trace`]).

use std::time::Duration;

use crate::apdu::Status;

/// Where a card sends its trace events.
pub type Tracer = Box<dyn FnMut(&TraceEvent) + Send>;

/// One traced exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    pub command: &'static str,
    pub header: [u8; 4],
    pub parameters: String,
    pub lc: usize,
    pub le: Option<usize>,
    pub response_len: usize,
    pub status: Status,
    pub duration: Duration,
    /// The fault a rule injected into this exchange ([`crate::fault`]), in words: the
    /// status word given instead, the delay, the removal, the tear.
    pub fault: Option<String>,
}
