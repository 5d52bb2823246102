//! One card's link to vpcd: connect, serve frames, reconnect when pcscd goes away. The card
//! sits in a [`Slot`]: while it is out of the reader the link stays away from vpcd (pcscd sees
//! an empty slot), and a change of presence the control channel makes, or a fault that pulls
//! the card or cuts its power, drops the connection.

use std::future::Future;
use std::time::{Duration, Instant};

use emulator::Reply;
use socket2::SockRef;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::frame::{self, Control, Request};
use crate::slot::Slot;

/// Where a card's vpcd listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Endpoint, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("expected HOST:PORT, got {s:?}"))?;
        let port = port
            .parse()
            .map_err(|_| format!("invalid port {port:?} in {s:?}"))?;
        if host.is_empty() {
            return Err(format!("missing host in {s:?}"));
        }
        Ok(Endpoint {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        })
    }
}

/// How long to wait before trying again while vpcd is not listening: from the first delay,
/// doubled after each refused attempt, up to the last.
const CONNECT_RETRY: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(250));

/// Fails a connection that reached itself.
///
/// vpcd's ports lie in the range Linux gives outgoing connections their local port from. Dialing
/// a local port that nobody listens on can be given that same port as the local one, and TCP
/// then connects the socket to itself: it "connects", hears its own frames, and holds the port
/// vpcd is about to bind. Such a connection is closed at once with a reset (no TIME_WAIT keeps
/// the port) and counts as refused.
fn refuse_self_connection(stream: TcpStream) -> std::io::Result<TcpStream> {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) if local == peer => {
            // Deprecated because a lingering close blocks the thread; a zero linger does not
            // linger at all.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connected to itself (nobody listens on that port yet)",
            ))
        }
        _ => Ok(stream),
    }
}

/// How long a card that starts before vpcd listens tries to connect without pausing.
///
/// pcscd looks for a card once when it loads the reader, and then every 0.4 s; vpcd accepts the
/// card only when pcscd looks. A card that connects before that first look is present at once;
/// one that connects a moment later waits 0.4 s. Trying again at once (a refused connection on
/// loopback takes microseconds) connects within microseconds of vpcd's listen, before pcscd's
/// first look, which is what lets a sandbox come up in a few tens of milliseconds.
const EAGER_CONNECT: Duration = Duration::from_millis(500);

/// How long to stay away after a link dropped or was bounced.
const RECONNECT_DELAY: Duration = Duration::from_millis(20);

/// Whether pcscd may still believe the card present from a link that is gone.
///
/// vpcd ejects a card whose link breaks (a frame that does not fit, a card killed in the
/// middle of an APDU), but pcscd notices a removal only if a presence check finds no card. If
/// the card is back before that check, pcscd keeps its old state, never powers the card up
/// again and reports it absent to every client. The link then makes the next presence check
/// fail once (closes the connection), so that pcscd sees the removal, and comes straight back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// A previous link was in use and dropped: bounce at the first presence check.
    Likely,
    /// A new process (a previous one may have died): bounce if pcscd checks presence and
    /// powers nothing up within [`Waits::power_up`].
    Possible,
    /// Just bounced: never bounce again on this connection.
    No,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// vpcd closed it.
    Closed,
    /// The link closed it to make pcscd see the card removed (see [`Stale`]).
    Bounced,
    /// The card left the reader: pulled out, reset, torn or silenced by the control channel
    /// or a fault rule. It comes back at once if it is still in.
    Pulled,
}

/// How long a card must stay out of the reader for pcscd to have seen it gone (pcscd looks
/// every 0.4 s): a card back sooner bounces once (see [`Stale`]).
const SURELY_SEEN_GONE: Duration = Duration::from_millis(1500);

/// What a link reports while it runs (for a server's metrics): whether it is connected to
/// vpcd now, and how often it connected.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connected: std::sync::atomic::AtomicBool,
    pub connections: std::sync::atomic::AtomicU64,
}

/// How a link runs, for both entry points ([`run`], [`serve`]).
#[derive(Default)]
pub struct LinkOptions<'a> {
    /// Called once, when pcscd first powers the card up (from then on pcscd reports the card
    /// present).
    pub on_present: Option<Box<dyn FnOnce() + Send + 'a>>,
    /// Kept up to date while the link runs.
    pub stats: Option<&'a LinkStats>,
    /// How long the link waits for what vpcd sends (tests shorten them).
    pub waits: Waits,
}

/// Keeps the card of `slot` connected to vpcd at `endpoint` while it is in the reader, until
/// `shutdown` completes.
///
/// Transport errors never end the loop: they are logged and the card reconnects. The card is
/// powered off whenever the link drops, as a card pulled from a reader is.
pub async fn run(
    slot: &Slot,
    endpoint: &Endpoint,
    shutdown: impl Future<Output = ()>,
    mut options: LinkOptions<'_>,
) {
    use std::sync::atomic::Ordering;
    let unobserved = LinkStats::default();
    let stats = options.stats.unwrap_or(&unobserved);
    tokio::pin!(shutdown);
    let mut presence = slot.watch();
    let mut announced_waiting = false;
    let mut stale = Stale::Possible;
    let mut retry = CONNECT_RETRY.0;
    let started = Instant::now();
    loop {
        if !slot.lock().is_inserted() {
            // Out of the reader: stay away from vpcd until the card is put back.
            let out_since = Instant::now();
            tracing::info!(%endpoint, "card removed from the reader");
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    changed = presence.changed() => if changed.is_err() { return },
                }
                if slot.lock().is_inserted() {
                    break;
                }
            }
            tracing::info!(%endpoint, "card inserted into the reader");
            if out_since.elapsed() >= SURELY_SEEN_GONE {
                stale = Stale::Possible;
            }
        }
        presence.borrow_and_update();
        let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            result = connect => result,
        };
        let pause = match stream.and_then(refuse_self_connection) {
            Ok(stream) => {
                announced_waiting = false;
                retry = CONNECT_RETRY.0;
                tracing::debug!(%endpoint, "connected to vpcd");
                stats.connections.fetch_add(1, Ordering::Relaxed);
                stats.connected.store(true, Ordering::Relaxed);
                let outcome = tokio::select! {
                    _ = &mut shutdown => {
                        slot.lock().card_mut().power_off();
                        stats.connected.store(false, Ordering::Relaxed);
                        break;
                    }
                    outcome = serve(slot, stream, stale, &mut options, &mut presence) => outcome,
                };
                stats.connected.store(false, Ordering::Relaxed);
                slot.lock().card_mut().power_off();
                stale = match outcome {
                    Ok(Ended::Pulled) => {
                        tracing::info!(%endpoint, "the card left vpcd");
                        // Back at once (a reset, a tear): pcscd has not seen it gone yet.
                        Stale::Likely
                    }
                    Ok(Ended::Bounced) => {
                        tracing::info!(%endpoint, "link bounced so that pcscd sees the card removed; reconnecting");
                        Stale::No
                    }
                    Ok(Ended::Closed) => {
                        tracing::info!(%endpoint, "vpcd closed the link; reconnecting");
                        Stale::Likely
                    }
                    Err(e) => {
                        tracing::warn!(%endpoint, error = %e, "vpcd link failed; reconnecting");
                        Stale::Likely
                    }
                };
                RECONNECT_DELAY
            }
            Err(e) => {
                if !announced_waiting {
                    tracing::info!(%endpoint, error = %e, "waiting for vpcd (is pcscd running with the vpcd driver?)");
                    announced_waiting = true;
                } else {
                    tracing::trace!(%endpoint, error = %e, "vpcd still unreachable");
                }
                if started.elapsed() < EAGER_CONNECT {
                    tokio::task::yield_now().await;
                    continue;
                }
                let pause = retry;
                retry = (retry * 2).min(CONNECT_RETRY.1);
                pause
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!(%endpoint, "card link stopped");
}

/// How long the link waits to tell a 1-byte APDU from a vpcd control message of the same byte.
///
/// vpcd sends an APDU of one byte exactly as its control messages, and it waits for an answer
/// only to an APDU. What follows tells them apart: a real power-on (`01`) or reset (`02`) is at
/// once followed by its ATR request (`04`), and a real power-off (`00`) by the next presence
/// check (`04`, every 0.4 s). Nothing follows an APDU until it is answered: vpcd holds the
/// slot's lock meanwhile. So a `01`/`02` without an ATR request within
/// [`Waits::atr_request`], or a `00` followed by nothing within [`Waits::after_power_off`], was
/// an APDU and is answered `6700`. A `04` that follows no power-on or reset is a presence
/// check or an APDU: both get `6700` (a presence check only needs an answer).
///
/// [`Waits::power_up`]: how long after its first presence check a pcscd that does not believe
/// the card present powers it up (see [`Stale`]).
#[derive(Clone, Copy, Debug)]
pub struct Waits {
    pub atr_request: Duration,
    pub after_power_off: Duration,
    pub power_up: Duration,
    /// How long vpcd may stay silent after the connection before the link says so.
    pub silent_vpcd: Duration,
}

impl Default for Waits {
    fn default() -> Waits {
        Waits {
            atr_request: Duration::from_secs(1),
            after_power_off: Duration::from_secs(3),
            power_up: Duration::from_millis(1200),
            silent_vpcd: Duration::from_secs(3),
        }
    }
}

/// The answer to a 1-byte APDU (and to presence checks): wrong length.
const WRONG_LENGTH: [u8; 2] = [0x67, 0x00];

/// The frame of `6F00` (no precise diagnosis), for an answer that does not fit a frame.
const NO_PRECISE_DIAGNOSIS: [u8; 4] = [0x00, 0x02, 0x6F, 0x00];

/// Serves one connection until vpcd closes it, clearing a [`Stale`] state pcscd may hold.
///
/// Latency: vpcd writes the length and the payload of each frame in two `send()`s. With
/// Nagle on its side and delayed ACKs on ours, the payload would wait ~40 ms for our ACK.
/// `TCP_QUICKACK` before every read (Linux clears it after use) acknowledges at once; answers
/// go out as one write with `TCP_NODELAY`.
pub async fn serve(
    slot: &Slot,
    mut stream: TcpStream,
    stale: Stale,
    options: &mut LinkOptions<'_>,
    presence: &mut watch::Receiver<u64>,
) -> std::io::Result<Ended> {
    let waits = options.waits;
    stream.set_nodelay(true)?;
    // Every answer must fit a frame: longer response data waits behind 61xx.
    slot.lock()
        .card_mut()
        .set_max_response_data(frame::MAX_PAYLOAD - 2);
    let quickack = |s: &TcpStream| {
        // Best effort: a socket that refuses it only gets slower.
        let _ = SockRef::from(s).set_tcp_quickack(true);
    };
    // vpcd talks to one card per slot: a connection it does not talk to sits in its backlog.
    let first = tokio::time::timeout(waits.silent_vpcd, stream.readable()).await;
    if first.is_err() {
        tracing::warn!(
            "vpcd accepted the connection but does not talk to this card: another card is probably in this slot (vpcd serves one card per slot); waiting"
        );
    }
    tokio::select! {
        readable = stream.readable() => readable?,
        _ = presence.changed() => return Ok(Ended::Pulled),
    }
    tracing::info!(
        serial = slot.lock().card().serial(),
        "card inserted into vpcd"
    );
    // A control byte whose meaning the next frame decides.
    let mut pending: Option<Control> = None;
    // Since when pcscd has checked presence without powering the card up on this link.
    let mut unpowered_since: Option<Instant> = None;
    let mut powered = false;
    loop {
        let read = frame::read(&mut stream, quickack);
        let wait = match pending {
            None => None,
            Some(Control::PowerOff) => Some(waits.after_power_off),
            Some(Control::PowerOn | Control::Reset) => Some(waits.atr_request),
        };
        // A read given up half-way loses nothing: the connection goes with it.
        let next = tokio::select! {
            next = read_within(read, wait) => next,
            _ = presence.changed() => return Ok(Ended::Pulled),
        };
        let next = match next {
            Some(next) => next?,
            None => {
                // Nothing followed: vpcd is waiting for an answer to an APDU.
                tracing::debug!(control = ?pending, "a 1-byte APDU, not a control message");
                pending = None;
                send(&mut stream, &WRONG_LENGTH).await?;
                continue;
            }
        };
        let Some(payload) = next else {
            return Ok(Ended::Closed);
        };
        let request = Request::from_payload(payload);
        match (pending.take(), &request) {
            (Some(control @ (Control::PowerOn | Control::Reset)), Request::AtrRequest) => {
                tracing::debug!(?control, "power event");
                let atr = {
                    let mut card = slot.lock();
                    if control == Control::Reset {
                        card.card_mut().reset();
                    } else {
                        card.card_mut().power_on();
                    }
                    card.card().atr()
                };
                send(&mut stream, atr).await?;
                powered = true;
                slot.powered_up();
                // pcscd now knows the card and reports it present.
                if let Some(notify) = options.on_present.take() {
                    notify();
                }
                continue;
            }
            (Some(control), _) => {
                // A frame came without waiting for an answer: the byte was a control message.
                tracing::debug!(?control, "power event");
                let mut card = slot.lock();
                match control {
                    Control::PowerOff => card.card_mut().power_off(),
                    Control::PowerOn => card.card_mut().power_on(),
                    Control::Reset => card.card_mut().reset(),
                }
            }
            (None, _) => {}
        }
        match request {
            Request::Control(control) => pending = Some(control),
            Request::AtrRequest if !powered => {
                // A presence check before any power-up on this link.
                let since = *unpowered_since.get_or_insert_with(Instant::now);
                let bounce = match stale {
                    Stale::Likely => true,
                    Stale::Possible => since.elapsed() >= waits.power_up,
                    Stale::No => false,
                };
                if bounce {
                    return Ok(Ended::Bounced);
                }
                send(&mut stream, &WRONG_LENGTH).await?;
            }
            Request::AtrRequest | Request::ShortApdu(_) => {
                send(&mut stream, &WRONG_LENGTH).await?;
            }
            Request::Apdu(mut apdu) => {
                let reply = slot.lock().transmit(&apdu);
                // The command may have carried a PIN or a DKEK share.
                apdu.fill(0);
                presence.borrow_and_update();
                match reply {
                    Reply::Answer { bytes, late } => {
                        if !late.is_zero() {
                            tokio::select! {
                                _ = tokio::time::sleep(late) => {}
                                _ = presence.changed() => return Ok(Ended::Pulled),
                            }
                        }
                        send(&mut stream, &bytes).await?;
                    }
                    Reply::Removed | Reply::Torn | Reply::Absent => return Ok(Ended::Pulled),
                    Reply::Mute => {
                        // Silent until the control channel acts on the card (or vpcd goes).
                        tracing::info!("the card does not answer (a mute fault)");
                        let gone = frame::read(&mut stream, quickack);
                        tokio::select! {
                            _ = presence.changed() => return Ok(Ended::Pulled),
                            _ = gone => return Ok(Ended::Pulled),
                        }
                    }
                }
            }
        }
    }
}

/// `read`, given up after `wait` (`None`: waits as long as it takes); `None` when given up.
async fn read_within<T>(read: impl Future<Output = T>, wait: Option<Duration>) -> Option<T> {
    match wait {
        None => Some(read.await),
        Some(wait) => tokio::time::timeout(wait, read).await.ok(),
    }
}

/// Sends one answer as one frame.
async fn send(stream: &mut TcpStream, answer: &[u8]) -> std::io::Result<()> {
    match frame::encode(answer) {
        Some(bytes) => stream.write_all(&bytes).await,
        None => {
            // Cannot happen for the card's answers (capped above); never leave vpcd waiting.
            tracing::error!(len = answer.len(), "answer does not fit a vpcd frame");
            stream.write_all(&NO_PRECISE_DIAGNOSIS).await
        }
    }
}

#[cfg(test)]
mod tests;
