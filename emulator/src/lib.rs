//! An emulated CardContact SmartCard-HSM: the card's applet state machine, sans I/O.
//!
//! Bytes in, bytes out: [`Card::transmit`] takes a command APDU and returns the response APDU;
//! [`Card::power_on`], [`Card::power_off`] and [`Card::reset`] are the contact events. The
//! card's persistent state lives in a [`store::Store`] (redb on disk, or memory), committed
//! before each answer leaves the card.
#![forbid(unsafe_code)]

pub mod admin;
pub mod apdu;
mod applet;
pub mod card;
pub mod crypto;
pub mod cvc;
mod device;
pub mod dkek;
pub mod ec;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod hash;
pub mod hex;
pub mod keyblob;
pub mod keystore;
pub mod limits;
pub mod pin;
pub mod profile;
pub mod report;
pub mod rng;
pub mod state;
pub mod status;
pub mod store;
pub mod tlv;
pub mod trace;

pub use applet::{AID, VERSION};
pub use card::{Card, ATR};
pub use limits::Limits;
pub use status::Status;
pub use store::{MemoryStore, RedbStore, Store, StoreError};
