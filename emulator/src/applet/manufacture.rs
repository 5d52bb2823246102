//! How the application comes to be: its state loaded from the store, and a new store made
//! into a freshly manufactured card (device key, serial number, certificate chain). A card
//! made with a seed counts its boots, so that each opening draws other randomness.

use super::session::Session;
use super::Applet;
use super::Power;
use crate::crypto::rng::{self, CardRng, SeededRng};
use crate::crypto::CryptoError;
use crate::limits::Limits;
use crate::model::pki::Pki;
use crate::model::{identity, key, objects, Change, FileEntry};
use crate::store::{Store, StoreError};

/// A key of a new card (or of its PKI) that could not be made: the card is not made.
fn unmade(error: CryptoError) -> StoreError {
    StoreError::Refused(format!("cannot make the card's keys ({error:?})"))
}

impl Applet {
    /// Opens the card kept in `store`, seeded or not; a new card is made under `pki` (without
    /// one: the seed's PKI, or one made for this card alone). A card made with a seed opens
    /// only with that seed, and a card made without one never opens with a seed.
    pub fn open_issued(
        mut store: Box<dyn Store>,
        seed: Option<u64>,
        pki: Option<&Pki>,
    ) -> Result<Applet, StoreError> {
        let state = store.load()?;
        let Some(seed) = seed else {
            if let Some((seed, _)) = state.seed {
                return Err(StoreError::Refused(format!(
                    "this card was made with --seed {seed} (deterministic, insecure): pass --seed {seed} to use it"
                )));
            }
            return Applet::open(store, rng::system(), pki);
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
        let derived = match pki.is_none() && state.identity.is_none() {
            true => Some(Pki::from_seed(seed).map_err(unmade)?),
            false => None,
        };
        let rng = Box::new(SeededRng::new(seed, boot));
        Applet::open(store, rng, pki.or(derived.as_ref()))
    }

    /// Opens the card in `store`, drawing randomness from `rng`, manufacturing it under `pki`
    /// (or a PKI of its own) if the store is new.
    pub fn open(
        mut store: Box<dyn Store>,
        rng: Box<dyn CardRng>,
        pki: Option<&Pki>,
    ) -> Result<Applet, StoreError> {
        let state = store.load()?;
        let mut applet = Applet {
            state,
            store,
            session: Session::default(),
            rng,
            limits: Limits::default(),
            power: Power::default(),
        };
        if applet.state.identity.is_none() {
            applet.manufacture(pki)?;
        }
        Ok(applet)
    }

    /// Makes this (new) card: its identity, device certificates and device key, committed.
    fn manufacture(&mut self, pki: Option<&Pki>) -> Result<(), StoreError> {
        let own;
        let pki = match pki {
            Some(pki) => pki,
            None => {
                own = Pki::generate(&mut *self.rng).map_err(unmade)?;
                &own
            }
        };
        let made = identity::manufacture(&mut *self.rng, pki).map_err(unmade)?;
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
        self.store.commit(&batch)?;
        for change in batch {
            self.state.apply(change);
        }
        tracing::info!(serial = self.serial(), "manufactured a new card");
        Ok(())
    }
}
