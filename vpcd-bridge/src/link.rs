//! One card's link to vpcd: connect, serve frames, reconnect when pcscd goes away.

use std::future::Future;
use std::time::{Duration, Instant};

use emulator::Card;
use socket2::SockRef;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::frame::{self, Control, Request};

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
}

/// Keeps `card` connected to vpcd at `endpoint` until `shutdown` completes.
///
/// Transport errors never end the loop: they are logged and the card reconnects. The card is
/// powered off whenever the link drops, as a card pulled from a reader is.
pub async fn run(card: &mut Card, endpoint: &Endpoint, shutdown: impl Future<Output = ()>) {
    run_notifying(card, endpoint, shutdown, || {}).await
}

/// What a link reports while it runs (for a server's metrics): whether it is connected to
/// vpcd now, and how often it connected.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connected: std::sync::atomic::AtomicBool,
    pub connections: std::sync::atomic::AtomicU64,
}

/// As [`run`]; `on_present` is called once, when pcscd first powers the card up (from then on
/// pcscd reports the card present).
pub async fn run_notifying(
    card: &mut Card,
    endpoint: &Endpoint,
    shutdown: impl Future<Output = ()>,
    on_present: impl FnOnce(),
) {
    run_observed(card, endpoint, shutdown, on_present, &LinkStats::default()).await
}

/// As [`run_notifying`], keeping `stats` up to date.
pub async fn run_observed(
    card: &mut Card,
    endpoint: &Endpoint,
    shutdown: impl Future<Output = ()>,
    on_present: impl FnOnce(),
    stats: &LinkStats,
) {
    use std::sync::atomic::Ordering;
    let mut on_present = Some(on_present);
    tokio::pin!(shutdown);
    let mut announced_waiting = false;
    let mut stale = Stale::Possible;
    let mut retry = CONNECT_RETRY.0;
    let started = Instant::now();
    loop {
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
                        card.power_off();
                        stats.connected.store(false, Ordering::Relaxed);
                        break;
                    }
                    outcome = serve_with(card, stream, &mut on_present, Waits::default(), stale) => outcome,
                };
                stats.connected.store(false, Ordering::Relaxed);
                card.power_off();
                stale = match outcome {
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

/// Serves one connection until vpcd closes it.
///
/// Latency: vpcd writes the length and the payload of each frame in two `send()`s. With
/// Nagle on its side and delayed ACKs on ours, the payload would wait ~40 ms for our ACK.
/// `TCP_QUICKACK` before every read (Linux clears it after use) acknowledges at once; answers
/// go out as one write with `TCP_NODELAY`.
pub async fn serve(
    card: &mut Card,
    stream: TcpStream,
    on_present: &mut Option<impl FnOnce()>,
) -> std::io::Result<Ended> {
    serve_with(card, stream, on_present, Waits::default(), Stale::No).await
}

/// As [`serve`], with other [`Waits`] and a [`Stale`] state to clear.
pub async fn serve_with(
    card: &mut Card,
    mut stream: TcpStream,
    on_present: &mut Option<impl FnOnce()>,
    waits: Waits,
    stale: Stale,
) -> std::io::Result<Ended> {
    stream.set_nodelay(true)?;
    // Every answer must fit a frame: longer response data waits behind 61xx.
    card.set_max_response_data(frame::MAX_PAYLOAD - 2);
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
    stream.readable().await?;
    tracing::info!(serial = card.serial(), "card inserted into vpcd");
    // A control byte whose meaning the next frame decides.
    let mut pending: Option<Control> = None;
    // Since when pcscd has checked presence without powering the card up on this link.
    let mut unpowered_since: Option<Instant> = None;
    let mut powered = false;
    loop {
        let read = frame::read(&mut stream, quickack);
        let next = match pending {
            None => read.await?,
            Some(control) => {
                let wait = match control {
                    Control::PowerOff => waits.after_power_off,
                    Control::PowerOn | Control::Reset => waits.atr_request,
                };
                match tokio::time::timeout(wait, read).await {
                    Ok(next) => next?,
                    Err(_) => {
                        // Nothing followed: vpcd is waiting for an answer to an APDU.
                        tracing::debug!(?control, "a 1-byte APDU, not a control message");
                        pending = None;
                        send(&mut stream, &WRONG_LENGTH).await?;
                        continue;
                    }
                }
            }
        };
        let Some(payload) = next else {
            return Ok(Ended::Closed);
        };
        let request = Request::from_payload(payload);
        match (pending.take(), &request) {
            (Some(control @ (Control::PowerOn | Control::Reset)), Request::AtrRequest) => {
                tracing::debug!(?control, "power event");
                if control == Control::Reset {
                    card.reset();
                } else {
                    card.power_on();
                }
                send(&mut stream, card.atr()).await?;
                powered = true;
                // pcscd now knows the card and reports it present.
                if let Some(notify) = on_present.take() {
                    notify();
                }
                continue;
            }
            (Some(control), _) => {
                // A frame came without waiting for an answer: the byte was a control message.
                tracing::debug!(?control, "power event");
                match control {
                    Control::PowerOff => card.power_off(),
                    Control::PowerOn => card.power_on(),
                    Control::Reset => card.reset(),
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
                let answer = card.transmit(&apdu);
                // The command may have carried a PIN or a DKEK share.
                apdu.fill(0);
                send(&mut stream, &answer).await?;
            }
        }
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
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn send_frame(s: &mut TcpStream, payload: &[u8]) {
        s.write_all(&frame::encode(payload).unwrap()).await.unwrap();
    }

    async fn recv_frame(s: &mut TcpStream) -> Vec<u8> {
        frame::read(s, |_| {}).await.unwrap().unwrap()
    }

    fn memory_card() -> Card {
        Card::open(Box::new(emulator::MemoryStore::default())).unwrap()
    }

    /// A memory card linked to a stand-in for vpcd's listening socket (this module's unit
    /// tests only): the listener, the card's stop signal and its task.
    async fn card_behind_listener() -> (
        TcpListener,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: listener.local_addr().unwrap().port(),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let card_task = tokio::spawn(async move {
            let mut card = memory_card();
            run(&mut card, &endpoint, async {
                let _ = stop_rx.await;
            })
            .await;
        });
        (listener, stop_tx, card_task)
    }

    /// A socket bound to a port and connected to that same port reaches itself (TCP's
    /// simultaneous open), which is what a card dialing a vpcd port nobody listens on can get.
    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_to_itself_counts_as_refused_and_frees_its_port() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(addr).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        assert_eq!(stream.local_addr().unwrap(), stream.peer_addr().unwrap());
        let refused = refuse_self_connection(stream).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        // Closed with a reset: vpcd can bind the port at once.
        std::net::TcpListener::bind(addr).expect("the port is free again");

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        assert!(refuse_self_connection(stream).is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_atr_apdus_and_power_events_and_reconnects() {
        let (listener, stop_tx, card_task) = card_behind_listener().await;

        let select = emulator::tools::hex::decode("00A404000BE82B0601040181C31F020100").unwrap();
        for round in 0..2 {
            let (mut vpcd, _) = listener.accept().await.unwrap();
            // A power-on and its ATR request, as vpcd sends them.
            send_frame(&mut vpcd, &[0x01]).await;
            send_frame(&mut vpcd, &[0x04]).await;
            assert_eq!(
                recv_frame(&mut vpcd).await,
                emulator::ATR.to_vec(),
                "round {round}"
            );
            send_frame(&mut vpcd, &[0x01]).await;
            // Length and payload in separate segments, as vpcd sends them.
            vpcd.write_all(&(select.len() as u16).to_be_bytes())
                .await
                .unwrap();
            vpcd.flush().await.unwrap();
            vpcd.write_all(&select).await.unwrap();
            let answer = recv_frame(&mut vpcd).await;
            assert_eq!(&answer[answer.len() - 2..], &[0x90, 0x00]);
            // VERIFY status works while selected; after power off the applet is gone.
            send_frame(&mut vpcd, &[0x00, 0x20, 0x00, 0x81]).await;
            assert_eq!(recv_frame(&mut vpcd).await, vec![0x6A, 0x88]);
            send_frame(&mut vpcd, &[0x00]).await;
            send_frame(&mut vpcd, &[0x01]).await;
            send_frame(&mut vpcd, &[0x00, 0x20, 0x00, 0x81]).await;
            assert_eq!(recv_frame(&mut vpcd).await, vec![0x6D, 0x00]);
            // vpcd goes away: the card must come back on its own.
            drop(vpcd);
        }
        let (mut vpcd, _) = listener.accept().await.unwrap();
        stop_tx.send(()).unwrap();
        card_task.await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(
            vpcd.read_to_end(&mut rest).await.unwrap(),
            0,
            "the card closes its link on shutdown"
        );
    }

    /// vpcd misbehaving: a frame cut off mid-APDU, a length that lies, a zero-length frame.
    /// The card answers what it can, never exits, and is back on the next connection.
    #[tokio::test(flavor = "current_thread")]
    async fn survives_broken_frames_and_dropped_sockets() {
        let (listener, stop_tx, card_task) = card_behind_listener().await;
        // 1. The socket drops in the middle of an APDU (length sent, half the payload).
        let (mut vpcd, _) = listener.accept().await.unwrap();
        vpcd.write_all(&[0x00, 0x11, 0x00, 0xA4, 0x04])
            .await
            .unwrap();
        drop(vpcd);
        // 2. A length that promises more than ever comes, then the socket closes.
        let (mut vpcd, _) = listener.accept().await.unwrap();
        vpcd.write_all(&[0xFF, 0xFF, 0x00, 0x84, 0x00, 0x00, 0x08])
            .await
            .unwrap();
        drop(vpcd);
        // 3. A zero-length frame gets an answer (6700), and the link stays up.
        let (mut vpcd, _) = listener.accept().await.unwrap();
        vpcd.write_all(&[0x00, 0x00]).await.unwrap();
        assert_eq!(recv_frame(&mut vpcd).await, vec![0x67, 0x00]);
        send_frame(&mut vpcd, &[0x01]).await;
        send_frame(&mut vpcd, &[0x04]).await;
        assert_eq!(recv_frame(&mut vpcd).await, emulator::ATR.to_vec());
        stop_tx.send(()).unwrap();
        card_task.await.unwrap();
    }

    /// A 1-byte frame is a control message only if what follows says so; otherwise it was an
    /// APDU and is answered 6700, and the card's session is untouched.
    #[tokio::test(flavor = "current_thread")]
    async fn one_byte_frames_are_told_apart_by_what_follows() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut vpcd = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (link, _) = listener.accept().await.unwrap();
        let waits = Waits {
            atr_request: Duration::from_millis(100),
            after_power_off: Duration::from_millis(200),
            power_up: Duration::from_secs(1),
            silent_vpcd: Duration::from_secs(3),
        };
        let card_task = tokio::spawn(async move {
            let mut card = memory_card();
            let mut notified = Some(|| {});
            serve_with(&mut card, link, &mut notified, waits, Stale::No).await
        });
        let select = emulator::tools::hex::decode("00A404000BE82B0601040181C31F020100").unwrap();
        let verify_status = [0x00, 0x20, 0x00, 0x81];
        send_frame(&mut vpcd, &[0x01]).await;
        send_frame(&mut vpcd, &[0x04]).await;
        assert_eq!(recv_frame(&mut vpcd).await, emulator::ATR.to_vec());
        send_frame(&mut vpcd, &select).await;
        assert!(recv_frame(&mut vpcd).await.ends_with(&[0x90, 0x00]));
        // 1-byte APDUs: nothing follows them, so each is answered 6700 and the applet stays
        // selected (VERIFY status answers 6A88, not 6D00).
        for byte in [0x02, 0x01, 0x00, 0x03, 0x04, 0xFF] {
            send_frame(&mut vpcd, &[byte]).await;
            assert_eq!(recv_frame(&mut vpcd).await, vec![0x67, 0x00], "{byte:02X}");
            send_frame(&mut vpcd, &verify_status).await;
            assert_eq!(recv_frame(&mut vpcd).await, vec![0x6A, 0x88], "{byte:02X}");
        }
        // A real power-off, then vpcd's presence check: the session is gone.
        send_frame(&mut vpcd, &[0x00]).await;
        send_frame(&mut vpcd, &[0x04]).await;
        assert_eq!(recv_frame(&mut vpcd).await, vec![0x67, 0x00]);
        send_frame(&mut vpcd, &verify_status).await;
        assert_eq!(recv_frame(&mut vpcd).await, vec![0x6D, 0x00]);
        // A real reset and its ATR request.
        send_frame(&mut vpcd, &[0x02]).await;
        send_frame(&mut vpcd, &[0x04]).await;
        assert_eq!(recv_frame(&mut vpcd).await, emulator::ATR.to_vec());
        drop(vpcd);
        card_task.await.unwrap().unwrap();
    }

    /// A link that may have left pcscd with a stale "present" closes at a presence check, so
    /// that pcscd sees the card removed: at once after a drop, or when pcscd powers nothing up.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stale_present_state_is_cleared_by_one_failed_presence_check() {
        let waits = Waits {
            atr_request: Duration::from_millis(100),
            after_power_off: Duration::from_millis(200),
            power_up: Duration::from_millis(50),
            silent_vpcd: Duration::from_secs(3),
        };
        for (stale, polls_answered) in [(Stale::Likely, 0), (Stale::Possible, 1)] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut vpcd = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (link, _) = listener.accept().await.unwrap();
            let card_task = tokio::spawn(async move {
                let mut card = memory_card();
                serve_with(&mut card, link, &mut Some(|| {}), waits, stale).await
            });
            for _ in 0..polls_answered {
                send_frame(&mut vpcd, &[0x04]).await;
                assert_eq!(recv_frame(&mut vpcd).await, vec![0x67, 0x00], "{stale:?}");
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            send_frame(&mut vpcd, &[0x04]).await;
            let mut rest = Vec::new();
            assert_eq!(vpcd.read_to_end(&mut rest).await.unwrap(), 0, "{stale:?}");
            assert_eq!(card_task.await.unwrap().unwrap(), Ended::Bounced);
        }
    }

    #[test]
    fn endpoint_parsing() {
        assert_eq!(
            "127.0.0.1:35963".parse::<Endpoint>(),
            Ok(Endpoint {
                host: "127.0.0.1".into(),
                port: 35963
            })
        );
        assert_eq!("[::1]:35964".parse::<Endpoint>().unwrap().host, "::1");
        assert!("localhost".parse::<Endpoint>().is_err());
        assert!(":1".parse::<Endpoint>().is_err());
        assert!("h:99999".parse::<Endpoint>().is_err());
    }
}
