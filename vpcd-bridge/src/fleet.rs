//! `serve --config FILE`: many cards from one process, each with its own database and vpcd
//! slot ([`crate::fleet_config`]). Each card runs in a thread of its own and connects,
//! reconnects and fails on its own: a dead endpoint or a locked database stalls no other card.
//! SIGHUP reads the file again and stops the cards that went or changed and starts the new
//! ones, touching no other; a file with a mistake is reported and the running fleet kept.
//! SIGTERM and SIGINT stop every card (each powered off, its database closed) and the process.
//!
//! With `http` set, a listener answers `GET /healthz` (`200` when every card's database is
//! open, `503` and the cards that are not otherwise) and `GET /metrics` (Prometheus text: per
//! card connected, APDUs, error answers, the class of the last status word, connections; the
//! process's resident memory and open files). Every log line of a card carries its name,
//! serial and vpcd slot.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use emulator::tools::admin::InitOptions;
use emulator::TraceEvent;
use vpcd_bridge::link::LinkStats;

use crate::fleet_config::{CardSpec, FleetConfig, NewCard};
use crate::{open_card, PkiChoice};

/// What one card reports.
#[derive(Default)]
struct CardMetrics {
    serial: Mutex<String>,
    /// The database is open and the card serving (or trying to reach vpcd).
    open: AtomicBool,
    /// Why it is not, when it failed.
    failure: Mutex<Option<String>>,
    apdus: AtomicU64,
    errors: AtomicU64,
    /// SW1's high nibble of the last answer (`9` success, `6` error), 0 before any.
    last_class: AtomicU8,
    link: LinkStats,
}

/// A running card: its spec, how to stop it, its thread and metrics.
struct Worker {
    spec: CardSpec,
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
    metrics: Arc<CardMetrics>,
}

type Registry = Arc<Mutex<BTreeMap<String, (CardSpec, Arc<CardMetrics>)>>>;

/// Locks `mutex`, also when a thread panicked while holding it: what it guards (names, counters,
/// a failure message) is written in one assignment at a time, so it is whole either way.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// Runs the fleet of `path` until SIGTERM or SIGINT.
pub fn serve(path: &Path) -> Result<(), String> {
    let config = FleetConfig::load(path)?;
    let registry: Registry = Arc::default();
    if let Some(address) = config.http {
        let listener = std::net::TcpListener::bind(address)
            .map_err(|e| format!("cannot listen on {address} for /healthz and /metrics: {e}"))?;
        let registry = Arc::clone(&registry);
        std::thread::spawn(move || http(listener, &registry));
        tracing::info!(%address, "serving /healthz and /metrics");
    }
    let mut workers: BTreeMap<String, Worker> = BTreeMap::new();
    let mut pki = config.pki.clone();
    reconcile(&mut workers, &registry, &config, &mut pki);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => match FleetConfig::load(path) {
                    Ok(config) => {
                        tracing::info!(config = %path.display(), "SIGHUP: reloading");
                        reconcile(&mut workers, &registry, &config, &mut pki);
                    }
                    Err(e) => tracing::error!(error = %e, "SIGHUP: the file has a mistake; the running cards stay as they are"),
                },
                _ = term.recv() => { tracing::info!("SIGTERM: stopping every card"); break }
                _ = int.recv() => { tracing::info!("SIGINT: stopping every card"); break }
            }
        }
    });
    for (_, worker) in std::mem::take(&mut workers) {
        stop(worker);
    }
    Ok(())
}

/// Stops the cards that are not in `config` (or changed), starts the ones that are not running.
/// The PKI named by the first file stays the fleet's PKI.
fn reconcile(
    workers: &mut BTreeMap<String, Worker>,
    registry: &Registry,
    config: &FleetConfig,
    pki: &mut Option<PathBuf>,
) {
    if pki.is_none() {
        pki.clone_from(&config.pki);
    }
    let wanted: BTreeMap<&str, &CardSpec> =
        config.cards.iter().map(|c| (c.name.as_str(), c)).collect();
    let going: Vec<String> = workers
        .iter()
        .filter(|(name, w)| wanted.get(name.as_str()) != Some(&&w.spec))
        .map(|(name, _)| name.clone())
        .collect();
    for name in going {
        if let Some(worker) = workers.remove(&name) {
            lock(registry).remove(&name);
            tracing::info!(card = %name, "removed from the fleet");
            stop(worker);
        }
    }
    for spec in &config.cards {
        if workers.contains_key(&spec.name) {
            continue;
        }
        let worker = start(spec.clone(), pki.clone());
        lock(registry).insert(
            spec.name.clone(),
            (spec.clone(), Arc::clone(&worker.metrics)),
        );
        workers.insert(spec.name.clone(), worker);
    }
}

fn stop(worker: Worker) {
    let _ = worker.stop.send(true);
    let _ = worker.thread.join();
}

/// Starts the thread of one card.
fn start(spec: CardSpec, pki: Option<PathBuf>) -> Worker {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(CardMetrics::default());
    let shared = Arc::clone(&metrics);
    let thread_spec = spec.clone();
    let thread = std::thread::spawn(move || {
        let spec = thread_spec;
        let span = tracing::info_span!("card", name = %spec.name, vpcd = %spec.vpcd, serial = tracing::field::Empty);
        let _entered = span.enter();
        let fail = |why: String| {
            tracing::error!(error = %why, "card not served");
            *lock(&shared.failure) = Some(why);
        };
        let choice = PkiChoice {
            file: pki,
            seed: None,
        };
        let new = crate::holds_no_card_yet(&spec.db);
        let mut card = match open_card(&spec.db, true, None, &choice) {
            Ok(card) => card,
            Err(e) => return fail(e),
        };
        if new {
            let made = match spec.profile {
                NewCard::Blank => Ok(()),
                NewCard::Initialized => {
                    emulator::tools::admin::initialize(&mut card, &InitOptions::wiki())
                }
                NewCard::Demo => emulator::tools::profile::demo(&mut card),
            };
            if let Err(e) = made {
                return fail(e);
            }
        }
        span.record("serial", tracing::field::display(card.serial()));
        *lock(&shared.serial) = card.serial().to_string();
        let counting = Arc::clone(&shared);
        card.set_tracer(Some(Box::new(move |event: &TraceEvent| {
            counting.apdus.fetch_add(1, Ordering::Relaxed);
            let [sw1, _] = event.status.sw();
            if !event.status.is_success() {
                counting.errors.fetch_add(1, Ordering::Relaxed);
            }
            counting.last_class.store(sw1 >> 4, Ordering::Relaxed);
        })));
        shared.open.store(true, Ordering::Relaxed);
        tracing::info!(db = %spec.db.display(), "card ready");
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => return fail(format!("cannot start the runtime: {e}")),
        };
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        runtime.block_on(vpcd_bridge::link::run_observed(
            &mut card,
            &spec.vpcd,
            shutdown,
            || tracing::info!("pcscd powered the card up"),
            &shared.link,
        ));
        shared.open.store(false, Ordering::Relaxed);
        tracing::info!("card stopped");
    });
    Worker {
        spec,
        stop,
        thread,
        metrics,
    }
}

/// Answers `/healthz` and `/metrics`, one connection at a time (they are small and quick).
fn http(listener: std::net::TcpListener, registry: &Registry) {
    for stream in listener.incoming().flatten() {
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        // The headers are read and ignored.
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
            header.clear();
        }
        let path = line.split_whitespace().nth(1).unwrap_or("");
        let (status, body) = match (line.split_whitespace().next(), path) {
            (Some("GET"), "/healthz") => healthz(registry),
            (Some("GET"), "/metrics") => ("200 OK", metrics(registry)),
            (Some("GET"), _) => (
                "404 Not Found",
                "not found: try /healthz or /metrics\n".into(),
            ),
            _ => ("405 Method Not Allowed", "only GET\n".into()),
        };
        let mut stream = &stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn healthz(registry: &Registry) -> (&'static str, String) {
    let cards = lock(registry);
    let down: Vec<String> = cards
        .iter()
        .filter(|(_, (_, m))| !m.open.load(Ordering::Relaxed))
        .map(|(name, (_, m))| {
            let why = lock(&m.failure).clone();
            format!("{name}: {}", why.unwrap_or_else(|| "starting".into()))
        })
        .collect();
    if down.is_empty() {
        ("200 OK", format!("ok: {} cards\n", cards.len()))
    } else {
        ("503 Service Unavailable", format!("{}\n", down.join("\n")))
    }
}

/// A metric family: name, type, help, and how to read it from a card's metrics.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CardMetrics) -> u64,
);

fn metrics(registry: &Registry) -> String {
    let cards = lock(registry);
    let mut out = String::new();
    let families: [Family; 6] = [
        (
            "sc_hsm_card_up",
            "gauge",
            "Whether the card's database is open and the card served.",
            |m| u64::from(m.open.load(Ordering::Relaxed)),
        ),
        (
            "sc_hsm_card_connected",
            "gauge",
            "Whether the card's link to vpcd is up.",
            |m| u64::from(m.link.connected.load(Ordering::Relaxed)),
        ),
        (
            "sc_hsm_card_apdus_total",
            "counter",
            "APDUs the card answered.",
            |m| m.apdus.load(Ordering::Relaxed),
        ),
        (
            "sc_hsm_card_errors_total",
            "counter",
            "APDUs answered with an error status word.",
            |m| m.errors.load(Ordering::Relaxed),
        ),
        (
            "sc_hsm_card_last_status_class",
            "gauge",
            "High nibble of SW1 of the last answer (9 success, 6 error, 0 none yet).",
            |m| u64::from(m.last_class.load(Ordering::Relaxed)),
        ),
        (
            "sc_hsm_card_connections_total",
            "counter",
            "Connections to vpcd (each reconnect adds one).",
            |m| m.link.connections.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, value) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (card, (spec, m)) in cards.iter() {
            let serial = lock(&m.serial).clone();
            out.push_str(&format!(
                "{name}{{card=\"{card}\",serial=\"{serial}\",vpcd=\"{}\"}} {}\n",
                spec.vpcd,
                value(m)
            ));
        }
    }
    let page = 4096u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    out.push_str(&format!(
        "# HELP process_resident_memory_bytes Resident memory.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}\n\
         # HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {fds}\n"
    ));
    out
}
