//! Host-side tools built on the card's own APDUs: offline initialisation ([`admin`]), the demo
//! card ([`profile`]), the `status` report ([`report`]), APDU traces ([`trace`]), the command
//! APDUs a host sends ([`host`]) and hex text ([`hex`]).

pub mod admin;
pub mod hex;
pub mod host;
pub mod profile;
pub mod report;
pub mod trace;
