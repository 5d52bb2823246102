//! One card's link to vpcd: connect, serve frames, reconnect when pcscd goes away.

use std::future::Future;
use std::time::Duration;

use emulator::Card;
use socket2::SockRef;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::frame::{self, Request};

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

/// How long to wait before connecting again after vpcd was unreachable or went away.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Keeps `card` connected to vpcd at `endpoint` until `shutdown` completes.
///
/// Transport errors never end the loop: they are logged and the card reconnects. The card is
/// powered off whenever the link drops, as a card pulled from a reader is.
pub async fn run(card: &mut Card, endpoint: &Endpoint, shutdown: impl Future<Output = ()>) {
    run_notifying(card, endpoint, shutdown, || {}).await
}

/// As [`run`]; `on_present` is called once, when pcscd first asks for the ATR (from then on
/// pcscd reports the card present).
pub async fn run_notifying(
    card: &mut Card,
    endpoint: &Endpoint,
    shutdown: impl Future<Output = ()>,
    on_present: impl FnOnce(),
) {
    let mut on_present = Some(on_present);
    tokio::pin!(shutdown);
    let mut announced_waiting = false;
    loop {
        let connect = TcpStream::connect((endpoint.host.as_str(), endpoint.port));
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            result = connect => result,
        };
        match stream {
            Ok(stream) => {
                announced_waiting = false;
                tracing::info!(%endpoint, serial = card.serial(), "card inserted into vpcd");
                let outcome = tokio::select! {
                    _ = &mut shutdown => {
                        card.power_off();
                        break;
                    }
                    outcome = serve(card, stream, &mut on_present) => outcome,
                };
                card.power_off();
                match outcome {
                    Ok(()) => tracing::info!(%endpoint, "vpcd closed the link; reconnecting"),
                    Err(e) => {
                        tracing::warn!(%endpoint, error = %e, "vpcd link failed; reconnecting")
                    }
                }
            }
            Err(e) => {
                if !announced_waiting {
                    tracing::info!(%endpoint, error = %e, "waiting for vpcd (is pcscd running with the vpcd driver?)");
                    announced_waiting = true;
                } else {
                    tracing::trace!(%endpoint, error = %e, "vpcd still unreachable");
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
    tracing::info!(%endpoint, "card link stopped");
}

/// Serves one connection until vpcd closes it.
///
/// Latency: vpcd writes the length and the payload of each frame in two `send()`s. With
/// Nagle on its side and delayed ACKs on ours, the payload would wait ~40 ms for our ACK.
/// `TCP_QUICKACK` before every read (Linux clears it after use) acknowledges at once; answers
/// go out as one write with `TCP_NODELAY`.
pub async fn serve(
    card: &mut Card,
    mut stream: TcpStream,
    on_present: &mut Option<impl FnOnce()>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let quickack = |s: &TcpStream| {
            // Best effort: a socket that refuses it only gets slower.
            let _ = SockRef::from(s).set_tcp_quickack(true);
        };
        let Some(payload) = frame::read(&mut stream, quickack).await? else {
            return Ok(());
        };
        let answer = match Request::from_payload(payload) {
            Request::PowerOff => {
                tracing::debug!("power off");
                card.power_off();
                None
            }
            Request::PowerOn => {
                tracing::debug!("power on");
                card.power_on();
                None
            }
            Request::Reset => {
                tracing::debug!("reset");
                card.reset();
                None
            }
            Request::GetAtr => {
                if let Some(notify) = on_present.take() {
                    notify();
                }
                Some(card.atr().to_vec())
            }
            Request::UnknownControl(byte) => {
                tracing::warn!(byte, "unknown vpcd control byte ignored");
                None
            }
            Request::Apdu(mut apdu) => {
                let answer = card.transmit(&apdu);
                // The command may have carried a PIN or a DKEK share.
                apdu.fill(0);
                Some(answer)
            }
        };
        if let Some(answer) = answer {
            match frame::encode(&answer) {
                Some(bytes) => stream.write_all(&bytes).await?,
                None => tracing::error!(
                    len = answer.len(),
                    "answer does not fit a vpcd frame; dropped"
                ),
            }
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

    #[tokio::test(flavor = "current_thread")]
    async fn answers_atr_apdus_and_power_events_and_reconnects() {
        let (listener, stop_tx, card_task) = card_behind_listener().await;

        let select = emulator::tools::hex::decode("00A404000BE82B0601040181C31F020100").unwrap();
        for round in 0..2 {
            let (mut vpcd, _) = listener.accept().await.unwrap();
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
        send_frame(&mut vpcd, &[0x04]).await;
        assert_eq!(recv_frame(&mut vpcd).await, emulator::ATR.to_vec());
        stop_tx.send(()).unwrap();
        card_task.await.unwrap();
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
