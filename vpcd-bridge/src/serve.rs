//! `sc-hsm-emulator run`: the card(s) in vpcd's reader(s) until SIGINT/SIGTERM, one thread
//! per card, each reconnecting on its own.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use emulator::tools::admin::InitOptions;
use emulator::Limits;
use emulator::{TraceEvent, Tracer};
use vpcd_bridge::Endpoint;

use crate::cli::{Making, Profile, RunArgs};
use crate::{db_path, numbered, open_card, PkiChoice};

pub fn run(args: RunArgs) -> Result<(), String> {
    let base = db_path(args.db)?;
    let limits = Limits {
        storage_bytes: args.storage,
        max_file_size: args.max_file_size,
        max_keys: args.max_keys,
    };
    let pki = PkiChoice::of(&args.making);
    let Making { seed, profile, .. } = args.making;
    // Open every card first: a locked or damaged database stops the start.
    let mut opened = Vec::new();
    for index in 0..args.cards {
        let path = numbered(&base, index);
        // Each card of a seeded process gets its own seed (seed + index).
        let seed = seed.map(|s| s.wrapping_add(u64::from(index)));
        let new = crate::holds_no_card_yet(&path);
        let mut card = open_card(&path, true, seed, &pki)?.with_limits(limits);
        match (new, profile) {
            (true, Some(Profile::Demo)) => emulator::tools::profile::demo(&mut card)?,
            (true, None) if args.initialize => {
                emulator::tools::admin::initialize(&mut card, &InitOptions::wiki())?
            }
            (false, Some(Profile::Demo)) => {
                eprintln!(
                    "sc-hsm-emulator: {} already holds the card {}: --profile demo makes only new cards, this one is served as it is",
                    path.display(),
                    card.serial()
                );
            }
            _ => {}
        }
        let text = args.traces.trace.as_ref().map(|f| numbered(f, index));
        let json = args.traces.trace_json.as_ref().map(|f| numbered(f, index));
        card.set_tracer(tracer(text.as_deref(), json.as_deref())?);
        let endpoint = Endpoint {
            host: args.vpcd.host.clone(),
            port: args
                .vpcd
                .port
                .checked_add(index)
                .ok_or("vpcd port out of range")?,
        };
        tracing::info!(db = %path.display(), serial = card.serial(), vpcd = %endpoint, "SmartCard-HSM emulator ready");
        opened.push((card, endpoint));
    }
    // One thread per card, so that a slow command (RSA-4096 key generation) on one card never
    // holds up another.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let present = Arc::new(AtomicUsize::new(0));
    let total = opened.len();
    let threads: Vec<_> = opened
        .into_iter()
        .map(|(mut card, endpoint)| {
            let mut stopped = stopped.clone();
            let present = Arc::clone(&present);
            let ready_file = args.ready_file.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let on_present = move || {
                    let seen = present.fetch_add(1, Ordering::SeqCst) + 1;
                    if let (true, Some(file)) = (seen == total, ready_file) {
                        if let Err(e) = std::fs::write(&file, b"") {
                            tracing::error!(file = %file.display(), error = %e, "cannot write the ready file");
                        }
                    }
                };
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                runtime()?.block_on(vpcd_bridge::link::run_notifying(
                    &mut card, &endpoint, shutdown, on_present,
                ));
                Ok(())
            })
        })
        .collect();
    if let Some(file) = &args.started_file {
        std::fs::write(file, b"").map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    runtime()?.block_on(shutdown_signal());
    let _ = stop.send(true);
    for thread in threads {
        thread
            .join()
            .map_err(|_| "a card thread panicked".to_string())??;
    }
    Ok(())
}

/// A tracer writing text and/or JSON lines to files (created or truncated).
fn tracer(text: Option<&Path>, json: Option<&Path>) -> Result<Option<Tracer>, String> {
    use std::io::Write;
    let open = |path: &Path| {
        std::fs::File::create(path)
            .map(std::io::LineWriter::new)
            .map_err(|e| format!("cannot write the trace {}: {e}", path.display()))
    };
    let mut text = text.map(open).transpose()?;
    let mut json = json.map(open).transpose()?;
    if text.is_none() && json.is_none() {
        return Ok(None);
    }
    Ok(Some(Box::new(move |event: &TraceEvent| {
        let now = std::time::SystemTime::now();
        if let Some(out) = text.as_mut() {
            let _ = writeln!(out, "{}", event.to_text(now));
        }
        if let Some(out) = json.as_mut() {
            let _ = writeln!(out, "{}", event.to_json(now));
        }
    })))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
