//! Every version number of what the emulator keeps on disk, in one place, and the fixture
//! folder that freezes each.
//!
//! A card database has two version numbers, each in a meta record of its own, and every
//! versioned record starts with a version byte of its own:
//!
//! | what | constant | kept in | versions |
//! |---|---|---|---|
//! | the tables: how records sit in redb | [`TABLES`] | meta `storage` | 1: plain records, no `storage` record; 2: each record sealed with a check, and a census of all ([`super::sealed`]) |
//! | the record set | [`RECORDS`] | meta `format` | 1: the record kinds of [`super::record`]; a kind grows through its own version byte, not this one |
//! | one record | [`record`] | the record's first byte | per kind, below |
//!
//! The record versions: [`record::CONFIG_OPTIONS`] and [`record::CONFIG_DOMAINS`] (the
//! configuration), [`record::PIN_PLAIN`] and [`record::PIN_FLAGS`] (a PIN),
//! [`record::DOMAIN_DKEK`] and [`record::DOMAIN_XKEK`] (a key domain), [`record::KEY`] (a key),
//! [`record::PKA`] (public-key authentication). The identity, seed and file records have no
//! version byte: a new layout of one of them needs a record of a new name.
//!
//! A record changes version only when it holds something the older version cannot say, and
//! is then written in the oldest version that can say it; so a card that uses nothing new
//! stays readable by older emulators. Each step is frozen in `fixtures/store/`, and the
//! record tests decode every fixture to its values and encode it back to the same bytes:
//!
//! | folder | tables | records first written there |
//! |---|---|---|
//! | `v1` | 1 (`card.redb`, `snapshot.bin`) | meta `format` 1; [`record::CONFIG_OPTIONS`], [`record::PIN_PLAIN`], [`record::DOMAIN_DKEK`] (domain 0), [`record::KEY`] (RSA, EC), identity, seed, files |
//! | `v2` | 2 (`card.redb`: the card of `v1`) | [`record::CONFIG_DOMAINS`], [`record::PIN_FLAGS`], [`record::DOMAIN_DKEK`] for domains 1-15, [`record::KEY`] with an AES key |
//! | `v3` | 2 | [`record::DOMAIN_XKEK`], [`record::PKA`] |
//!
//! A file written by a newer emulator (a version above the newest here) is refused with
//! [`super::StoreError::Newer`], never read as damaged.
//!
//! The other files the emulator writes carry one version each: [`SNAPSHOT`] (`export`),
//! [`ENCRYPTED_SNAPSHOT`] (`export --encrypt`) and [`PKI_FILE`] (the emulator PKI).

/// The table layout this emulator writes (meta `storage`), and the newest it reads.
pub const TABLES: u8 = 2;

/// The record set this emulator writes (meta `format`), and the newest it reads.
pub const RECORDS: u8 = 1;

/// The version byte each record kind starts with. For each kind, the newest this emulator
/// reads is the last named.
pub mod record {
    /// Configuration: `01` ‖ options (2).
    pub const CONFIG_OPTIONS: u8 = 1;
    /// Configuration: `02` ‖ options (2) ‖ key domain slots (1), when more than one.
    pub const CONFIG_DOMAINS: u8 = 2;
    /// PIN: `01` ‖ max ‖ left ‖ length ‖ salt (16) ‖ digest (32).
    pub const PIN_PLAIN: u8 = 1;
    /// PIN: `02` ‖ max ‖ left ‖ length ‖ flags (`01` transport PIN) ‖ salt ‖ digest.
    pub const PIN_FLAGS: u8 = 2;
    /// Key domain: `01` ‖ kind (`00` absent, `01` pending, `02` ready) ‖ ...: a DKEK.
    pub const DOMAIN_DKEK: u8 = 1;
    /// Key domain: `02` ‖ `03` ‖ agreed ‖ value (32) ‖ UID: an XKEK agreed with another card.
    pub const DOMAIN_XKEK: u8 = 2;
    /// Key: `01` ‖ TLVs.
    pub const KEY: u8 = 1;
    /// Public-key authentication: `01` ‖ total ‖ required ‖ registered keys.
    pub const PKA: u8 = 1;
}

/// The snapshot of `export` (`SC-HSM-EMULATOR-SNAPSHOT`).
pub const SNAPSHOT: u8 = 1;

/// The encrypted snapshot of `export --encrypt` (`SC-HSM-EMULATOR-ENCRYPTED-SNAPSHOT`).
pub const ENCRYPTED_SNAPSHOT: u8 = 1;

/// The emulator PKI's file (`SC-HSM-EMULATOR-PKI`).
pub const PKI_FILE: u8 = 1;
