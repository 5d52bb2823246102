//! The vsmartcard `vpcd` transport: connects emulated cards to pcscd.
//!
//! vpcd (the pcscd driver) listens on TCP; the card connects as a client. Every frame, in
//! both directions, is a 2-byte big-endian length and a payload. One-byte payloads from vpcd
//! are control messages (power off, power on, reset, get ATR); longer ones are command APDUs,
//! each answered with exactly one response frame. This crate knows frames and sockets, not
//! PINs or files: it hands APDUs to [`emulator::Card::transmit`] and returns what comes back.
//! [`private_pcscd`] runs a pcscd of one's own for such cards (the `sandbox` subcommand, the
//! conformance tests).
#![forbid(unsafe_code)]
// No unwrap or expect outside tests: a transport error is logged and the card reconnects.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod frame;
pub mod host;
pub mod link;
pub mod private_pcscd;
pub mod slot;

pub use link::Endpoint;
