//! `sc-hsm-emulator run`: the card(s) of the command line in vpcd's reader(s) until SIGINT or
//! SIGTERM: a fleet made from the arguments ([`FleetConfig::of_run`]), run by the same
//! runtime as `serve --config`. Unlike a fleet file's, every card must open: a locked or
//! damaged database stops the start.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::cards::{db_path, PkiChoice};
use crate::cli::RunArgs;
use crate::fleet::{until_stopped, Fleet};
use crate::fleet_config::FleetConfig;

pub fn run(args: RunArgs) -> Result<(), String> {
    let base = db_path(args.db.clone())?;
    let config = FleetConfig::of_run(&args, &base)?;
    // Cards of one `run --cards N --seed S` share the PKI of S.
    let fleet = Fleet::new(PkiChoice {
        file: config.pki.clone(),
        seed: args.making.seed,
    });
    // The ready file, once pcscd has powered up every card.
    let present = Arc::new(AtomicUsize::new(0));
    let total = config.cards.len();
    let mut opening = Vec::new();
    for spec in config.cards {
        let on_present = notify_ready(Arc::clone(&present), total, args.ready_file.clone());
        let db = spec.db.clone();
        opening.push((db, fleet.start(spec, on_present)));
    }
    for (db, opened) in opening {
        let opened = match opened.recv() {
            Ok(Ok(opened)) => opened,
            Ok(Err(why)) => {
                fleet.stop_all();
                return Err(why);
            }
            Err(_) => {
                fleet.stop_all();
                return Err(format!(
                    "the card of {} ended before it opened",
                    db.display()
                ));
            }
        };
        if let (false, Some(profile)) = (opened.new, args.making.profile) {
            eprintln!(
                "sc-hsm-emulator: {} already holds the card {}: --profile {} makes only new cards, this one is served as it is",
                db.display(),
                opened.serial,
                profile.name()
            );
        }
    }
    if let Some(file) = &args.started_file {
        std::fs::write(file, b"").map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    let waited = until_stopped(None::<fn()>);
    fleet.stop_all();
    waited
}

/// What a card calls when pcscd first powers it up: the last of `total` writes `ready_file`.
fn notify_ready(
    present: Arc<AtomicUsize>,
    total: usize,
    ready_file: Option<PathBuf>,
) -> Box<dyn FnOnce() + Send> {
    Box::new(move || {
        let seen = present.fetch_add(1, Ordering::SeqCst) + 1;
        if let (true, Some(file)) = (seen == total, ready_file) {
            if let Err(e) = std::fs::write(&file, b"") {
                tracing::error!(file = %file.display(), error = %e, "cannot write the ready file");
            }
        }
    })
}
