//! One card at work: a thread of its own with a runtime of its own (a slow command, an RSA-4096
//! key generation, never holds up another card), the card opened or made from its database,
//! its traces and metrics, and its link to vpcd until it is told to stop. `run` and
//! `serve --config` start the same workers ([`crate::fleet`]).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use emulator::{DataTraceEvent, DataTracer, FaultRule, FaultyCard, TraceEvent, Tracer};
use vpcd_bridge::link::{self, LinkOptions, LinkStats};
use vpcd_bridge::slot::Slot;

use crate::cards::{holds_no_card_yet, open_card, PkiChoice};
use crate::control::server::ControlSocket;
use crate::control::CardControl;
use crate::fleet_config::{CardSpec, TraceFiles};

/// The bridge's one poison-tolerant lock (the registry, names, counters, a failure message).
pub use vpcd_bridge::slot::lock;

/// What one card reports (`/healthz`, `/metrics`).
#[derive(Default)]
pub struct CardMetrics {
    pub serial: Mutex<String>,
    /// The database is open and the card serving (or trying to reach vpcd).
    pub open: AtomicBool,
    /// Why it is not, when it failed.
    pub failure: Mutex<Option<String>>,
    pub apdus: AtomicU64,
    pub errors: AtomicU64,
    /// SW1's high nibble of the last answer (`9` success, `6` error), 0 before any.
    pub last_class: AtomicU8,
    /// Faults the card's rules injected.
    pub faults: AtomicU64,
    pub link: LinkStats,
}

/// A card that opened: its serial, and whether it was made just now.
#[derive(Clone, Debug)]
pub struct Opened {
    pub serial: String,
    pub new: bool,
}

/// Where a worker says whether its card opened.
pub type OpenedReceiver = mpsc::Receiver<Result<Opened, String>>;

/// A running card: its spec, how to stop it, its thread and metrics.
pub struct Worker {
    pub spec: CardSpec,
    pub metrics: Arc<CardMetrics>,
    /// What the control channel (socket and HTTP) reaches.
    pub control: Arc<CardControl>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    /// Starts the card of `spec` (a new card is made under `pki`); `on_present` is called once,
    /// when pcscd first powers the card up. The receiver hears once whether the card opened.
    pub fn start(
        spec: CardSpec,
        pki: PkiChoice,
        on_present: Box<dyn FnOnce() + Send>,
    ) -> (Worker, OpenedReceiver) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (opened_tx, opened_rx) = mpsc::channel();
        let metrics = Arc::new(CardMetrics::default());
        let shared = Arc::clone(&metrics);
        let control = Arc::new(CardControl::default());
        let thread_control = Arc::clone(&control);
        let thread_spec = spec.clone();
        let thread = std::thread::spawn(move || {
            let spec = thread_spec;
            let span = tracing::info_span!("card", name = %spec.name, vpcd = %spec.vpcd, serial = tracing::field::Empty);
            let _entered = span.enter();
            let outcome = serve(
                &spec,
                &pki,
                (&shared, &thread_control),
                stopped,
                on_present,
                &span,
                &opened_tx,
            );
            if let Err(why) = outcome {
                tracing::error!(error = %why, "card not served");
                *lock(&shared.failure) = Some(why.clone());
                let _ = opened_tx.send(Err(why));
            }
        });
        let worker = Worker {
            spec,
            metrics,
            control,
            stop,
            thread,
        };
        (worker, opened_rx)
    }

    /// Stops the card (powered off, its database closed) and waits for its thread.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

/// The worker's life: open (or make) the card, serve it until told to stop.
fn serve(
    spec: &CardSpec,
    pki: &PkiChoice,
    (metrics, control): (&Arc<CardMetrics>, &Arc<CardControl>),
    mut stopped: tokio::sync::watch::Receiver<bool>,
    on_present: Box<dyn FnOnce() + Send>,
    span: &tracing::Span,
    opened: &mpsc::Sender<Result<Opened, String>>,
) -> Result<(), String> {
    let new = holds_no_card_yet(&spec.db);
    let mut card = open_card(&spec.db, true, spec.seed, pki)?.with_limits(spec.limits);
    if new {
        spec.new_card.make(&mut card)?;
    }
    let serial = card.serial().to_string();
    span.record("serial", tracing::field::display(&serial));
    *lock(&metrics.serial) = serial.clone();
    card.set_tracer(Some(tracer(&spec.traces, Arc::clone(metrics))?));
    card.set_data_tracer(data_tracer(&spec.traces)?);
    let mut card = FaultyCard::new(card);
    for rule in &spec.faults {
        let rule: FaultRule = rule.parse().map_err(|e| format!("fault {rule:?}: {e}"))?;
        card.add_fault(rule);
    }
    card.set_timing(spec.timing);
    let slot = Slot::new(card);
    control.attach(Arc::clone(&slot));
    let _socket = match &spec.control {
        Some(path) => Some(ControlSocket::listen(path, Arc::clone(control))?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    metrics.open.store(true, Ordering::Relaxed);
    tracing::info!(db = %spec.db.display(), "card ready");
    let _ = opened.send(Ok(Opened { serial, new }));
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let options = LinkOptions {
        on_present: Some(Box::new(move || {
            tracing::info!("pcscd powered the card up");
            on_present();
        })),
        stats: Some(&metrics.link),
        ..LinkOptions::default()
    };
    runtime.block_on(link::run(&slot, &spec.vpcd, shutdown, options));
    metrics.open.store(false, Ordering::Relaxed);
    tracing::info!("card stopped");
    Ok(())
}

/// A trace file, created or truncated, written a line at a time.
fn open_trace(path: &Path) -> Result<std::io::LineWriter<std::fs::File>, String> {
    std::fs::File::create(path)
        .map(std::io::LineWriter::new)
        .map_err(|e| format!("cannot write the trace {}: {e}", path.display()))
}

/// The card's data tracer, when a data trace file is named: every exchange in full, decoded,
/// written as text and/or JSON lines (created or truncated).
fn data_tracer(files: &TraceFiles) -> Result<Option<DataTracer>, String> {
    if files.data_text.is_none() && files.data_json.is_none() {
        return Ok(None);
    }
    let mut text = files.data_text.as_deref().map(open_trace).transpose()?;
    let mut json = files.data_json.as_deref().map(open_trace).transpose()?;
    Ok(Some(Box::new(move |event: &DataTraceEvent| {
        let mut event = event.clone();
        event.time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if let Some(out) = text.as_mut() {
            let _ = write!(out, "{}", event.to_text(false));
        }
        if let Some(out) = json.as_mut() {
            let _ = writeln!(out, "{}", event.to_json());
        }
    })))
}

/// The card's tracer: every exchange counted in `metrics`, and written to the trace files
/// (created or truncated), text and/or JSON lines.
fn tracer(files: &TraceFiles, metrics: Arc<CardMetrics>) -> Result<Tracer, String> {
    let mut text = files.text.as_deref().map(open_trace).transpose()?;
    let mut json = files.json.as_deref().map(open_trace).transpose()?;
    Ok(Box::new(move |event: &TraceEvent| {
        if event.fault.is_some() {
            // The fault's own line in the trace; the answer (if any) is counted below or
            // was counted with the card's event.
            metrics.faults.fetch_add(1, Ordering::Relaxed);
        } else {
            metrics.apdus.fetch_add(1, Ordering::Relaxed);
            if !event.status.is_success() {
                metrics.errors.fetch_add(1, Ordering::Relaxed);
            }
            let [sw1, _] = event.status.sw();
            metrics.last_class.store(sw1 >> 4, Ordering::Relaxed);
        }
        if text.is_none() && json.is_none() {
            return;
        }
        let now = std::time::SystemTime::now();
        if let Some(out) = text.as_mut() {
            let _ = writeln!(out, "{}", event.to_text(now));
        }
        if let Some(out) = json.as_mut() {
            let _ = writeln!(out, "{}", event.to_json(now));
        }
    }))
}
