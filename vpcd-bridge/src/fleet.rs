//! The one card runtime of the binary: a fleet of [`Worker`]s, each card in a thread of its
//! own that connects, reconnects and fails on its own (a dead endpoint or a locked database
//! stalls no other card), kept in one registry by name. `run` is a fleet made from its
//! arguments; `serve --config FILE` one made from a file, where SIGHUP reads the file again and
//! stops the cards that went or changed and starts the new ones, touching no other (a file with
//! a mistake is reported and the running fleet kept). SIGTERM and SIGINT stop every card (each
//! powered off, its database closed) and the process.
//!
//! With `http` set, [`crate::http`] answers `/healthz` and `/metrics` from the registry. Every
//! log line of a card carries its name, serial and vpcd slot.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::cards::PkiChoice;
use crate::fleet_config::{CardSpec, FleetConfig};
use crate::worker::{lock, OpenedReceiver, Worker};

/// The running cards by name: the one map the fleet, its reload and its HTTP listener share.
pub type Registry = Arc<Mutex<BTreeMap<String, Worker>>>;

/// The cards of one process and the PKI their new cards are made under.
pub struct Fleet {
    cards: Registry,
    pki: PkiChoice,
}

impl Fleet {
    pub fn new(pki: PkiChoice) -> Fleet {
        Fleet {
            cards: Registry::default(),
            pki,
        }
    }

    /// The registry, for the HTTP listener.
    pub fn registry(&self) -> Registry {
        Arc::clone(&self.cards)
    }

    /// Starts the card of `spec`; `on_present` is called when pcscd first powers it up. The
    /// receiver hears whether it opened.
    pub fn start(&self, spec: CardSpec, on_present: Box<dyn FnOnce() + Send>) -> OpenedReceiver {
        let name = spec.name.clone();
        let (worker, opened) = Worker::start(spec, self.pki.clone(), on_present);
        let replaced = lock(&self.cards).insert(name, worker);
        if let Some(replaced) = replaced {
            replaced.stop();
        }
        opened
    }

    /// Stops the cards that are not in `cards` (or changed), starts the ones that are not
    /// running.
    pub fn reconcile(&self, cards: &[CardSpec]) {
        let wanted: BTreeMap<&str, &CardSpec> =
            cards.iter().map(|c| (c.name.as_str(), c)).collect();
        let going: Vec<Worker> = {
            let mut running = lock(&self.cards);
            let names: Vec<String> = running
                .iter()
                .filter(|(name, w)| wanted.get(name.as_str()) != Some(&&w.spec))
                .map(|(name, _)| name.clone())
                .collect();
            names.iter().filter_map(|n| running.remove(n)).collect()
        };
        for worker in going {
            tracing::info!(card = %worker.spec.name, "removed from the fleet");
            worker.stop();
        }
        for spec in cards {
            if !lock(&self.cards).contains_key(&spec.name) {
                drop(self.start(spec.clone(), Box::new(|| {})));
            }
        }
    }

    /// Stops every card.
    pub fn stop_all(&self) {
        let all = std::mem::take(&mut *lock(&self.cards));
        for (_, worker) in all {
            worker.stop();
        }
    }
}

/// `serve --check`: the file's cards, one line each, or its first mistake.
pub fn check(path: &Path) -> Result<(), String> {
    let config = FleetConfig::load(path)?;
    for card in &config.cards {
        println!("{} {} {}", card.name, card.vpcd, card.db.display());
    }
    println!(
        "{}: {} cards, no mistake",
        path.display(),
        config.cards.len()
    );
    Ok(())
}

/// `serve --config FILE`: the fleet of `path` until SIGTERM or SIGINT. The PKI named by the
/// first file stays the fleet's PKI.
pub fn serve(path: &Path) -> Result<(), String> {
    let config = FleetConfig::load(path)?;
    let fleet = Fleet::new(PkiChoice {
        file: config.pki.clone(),
        seed: None,
    });
    if let Some(address) = config.http {
        crate::http::listen(address, fleet.registry(), config.token.clone())?;
    }
    fleet.reconcile(&config.cards);
    let reload = || match FleetConfig::load(path) {
        Ok(config) => {
            tracing::info!(config = %path.display(), "SIGHUP: reloading");
            fleet.reconcile(&config.cards);
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the file has a mistake; the running cards stay as they are")
        }
    };
    let waited = until_stopped(Some(reload));
    fleet.stop_all();
    waited
}

/// Waits for SIGTERM or SIGINT; with `reload`, SIGHUP calls it (without, SIGHUP keeps its
/// default action).
pub fn until_stopped(mut reload: Option<impl FnMut()>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        };
        let mut hup = match reload {
            Some(_) => signal(SignalKind::hangup()).ok(),
            None => None,
        };
        loop {
            let hangup = async {
                match hup.as_mut() {
                    Some(hup) => hup.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = hangup => {
                    if let Some(reload) = reload.as_mut() {
                        reload();
                    }
                }
                _ = term.recv() => { tracing::info!("SIGTERM: stopping every card"); break }
                _ = int.recv() => { tracing::info!("SIGINT: stopping every card"); break }
            }
        }
    });
    Ok(())
}
