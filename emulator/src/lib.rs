//! An emulated CardContact SmartCard-HSM: the card's applet state machine, sans I/O.
//!
//! Bytes in, bytes out: [`Card::transmit`] takes a command APDU and returns the response APDU;
//! [`Card::power_on`], [`Card::power_off`] and [`Card::reset`] are the contact events. The
//! card's persistent state lives in a [`Store`] (redb on disk, or memory), committed before
//! each answer leaves the card.
//!
//! The parts: [`apdu`] (the ISO 7816 layer every transport shares), the application
//! (commands, access, handlers; private), [`model`] (what the card holds), [`crypto`],
//! [`store`] (persistence and the stored format) and [`tools`] (host-side: offline
//! initialisation, the demo card, reports, traces).
#![forbid(unsafe_code)]
// No panics on the way of an APDU: no unwrap or expect outside tests (as opcard-rs). The few
// `allow`s that remain say why each cannot fail.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod apdu;
mod applet;
mod card;
pub mod crypto;
pub mod dissect;
pub mod fault;
pub mod hex;
mod limits;
pub mod model;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tools;

pub use apdu::Status;
pub use applet::{AID, VERSION};
pub use card::data_trace::{DataTraceEvent, DataTracer};
pub use card::trace::{TraceEvent, Tracer};
pub use card::work::Work;
pub use card::{Card, ATR};
pub use fault::{FaultRule, FaultyCard, Reply, Timing};
pub use limits::Limits;
pub use store::{MemoryStore, RedbStore, Store, StoreError};
