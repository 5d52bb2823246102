//! Host-side tools built on the card's own APDUs: offline initialisation ([`admin`]), the demo
//! card ([`profile`]), the `status` report ([`report`]), APDU traces ([`trace`]), the command
//! APDUs a host sends ([`host`]), hex text ([`hex`]) and JSON strings ([`json`]).

pub mod admin;
pub mod host;
pub mod json;
pub mod profile;
pub mod recording;
pub mod replay;
pub mod report;
pub mod trace;

/// Hex text, where the tools have always had it.
pub use crate::hex;
