//! The link against a stand-in for vpcd's socket: frames, power events, reconnects, 1-byte
//! APDUs, stale presence, endpoints.

use super::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

async fn send_frame(s: &mut TcpStream, payload: &[u8]) {
    s.write_all(&frame::encode(payload).unwrap()).await.unwrap();
}

async fn recv_frame(s: &mut TcpStream) -> Vec<u8> {
    frame::read(s, |_| {}).await.unwrap().unwrap()
}

fn memory_card() -> std::sync::Arc<Slot> {
    let card = emulator::Card::open(Box::new(emulator::MemoryStore::default())).unwrap();
    Slot::new(emulator::FaultyCard::new(card))
}

/// A memory card linked to a stand-in for vpcd's listening socket (this module's unit
/// tests only): the listener, the card's stop signal and its task.
async fn card_behind_listener() -> (
    TcpListener,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (listener, stop, task, _) = slot_behind_listener().await;
    (listener, stop, task)
}

/// As [`card_behind_listener`], with the card's slot.
async fn slot_behind_listener() -> (
    TcpListener,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    std::sync::Arc<Slot>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: listener.local_addr().unwrap().port(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let slot = memory_card();
    let shared = std::sync::Arc::clone(&slot);
    let card_task = tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        run(&shared, &endpoint, stop, LinkOptions::default()).await;
    });
    (listener, stop_tx, card_task, slot)
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
        let slot = memory_card();
        let mut options = LinkOptions {
            waits,
            ..LinkOptions::default()
        };
        serve(&slot, link, Stale::No, &mut options, &mut slot.watch()).await
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
            let slot = memory_card();
            let mut options = LinkOptions {
                waits,
                ..LinkOptions::default()
            };
            serve(&slot, link, stale, &mut options, &mut slot.watch()).await
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

/// Powers the card up through `vpcd` as pcscd does: `01`, then the ATR request.
async fn power_up(vpcd: &mut TcpStream) {
    send_frame(vpcd, &[0x01]).await;
    send_frame(vpcd, &[0x04]).await;
    assert_eq!(recv_frame(vpcd).await, emulator::ATR.to_vec());
}

/// Whether `vpcd`'s connection was closed by the card (within a second).
async fn closed(vpcd: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(1), vpcd.read_to_end(&mut rest)).await,
        Ok(Ok(0))
    )
}

const SELECT: &str = "00A404000BE82B0601040181C31F020100";

/// A card the control channel pulls out leaves vpcd and stays away until it is put back.
#[tokio::test(flavor = "current_thread")]
async fn a_removed_card_leaves_vpcd_until_it_is_inserted() {
    let (listener, stop, task, slot) = slot_behind_listener().await;
    let (mut vpcd, _) = listener.accept().await.unwrap();
    power_up(&mut vpcd).await;
    assert!(slot.lock().remove());
    slot.changed();
    assert!(closed(&mut vpcd).await);
    let away = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(away.is_err(), "a removed card does not connect");
    assert!(slot.lock().insert());
    slot.changed();
    let (mut vpcd, _) = listener.accept().await.unwrap();
    power_up(&mut vpcd).await;
    let _ = stop.send(());
    task.await.unwrap();
}

/// A rule that pulls the card before SELECT runs: no answer, the connection closes, the card
/// stays out; a torn command closes it too, and that card comes back at once.
#[tokio::test(flavor = "current_thread")]
async fn faults_that_send_no_answer_close_the_connection() {
    let (listener, stop, task, slot) = slot_behind_listener().await;
    let select = emulator::tools::hex::decode(SELECT).unwrap();
    let (mut vpcd, _) = listener.accept().await.unwrap();
    power_up(&mut vpcd).await;
    slot.lock().add_fault("on=SELECT,tear".parse().unwrap());
    send_frame(&mut vpcd, &select).await;
    assert!(closed(&mut vpcd).await);
    // Back at once (the power came back).
    let (mut vpcd, _) = listener.accept().await.unwrap();
    slot.lock().add_fault("on=SELECT,remove".parse().unwrap());
    power_up(&mut vpcd).await;
    send_frame(&mut vpcd, &select).await;
    assert!(closed(&mut vpcd).await);
    assert!(!slot.lock().is_inserted());
    let away = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(away.is_err(), "a pulled card stays out");
    let _ = stop.send(());
    task.await.unwrap();
}

/// A mute card answers nothing until the control channel resets it; a delayed answer comes
/// late, whole.
#[tokio::test(flavor = "current_thread")]
async fn mute_holds_the_answer_until_the_card_is_reset_and_delay_sends_it_late() {
    let (listener, stop, task, slot) = slot_behind_listener().await;
    let select = emulator::tools::hex::decode(SELECT).unwrap();
    let (mut vpcd, _) = listener.accept().await.unwrap();
    power_up(&mut vpcd).await;
    slot.lock()
        .add_fault("on=SELECT,delay=300".parse().unwrap());
    let asked = Instant::now();
    send_frame(&mut vpcd, &select).await;
    assert!(recv_frame(&mut vpcd).await.ends_with(&[0x90, 0x00]));
    assert!(asked.elapsed() >= Duration::from_millis(300));
    slot.lock().add_fault("on=SELECT,mute".parse().unwrap());
    send_frame(&mut vpcd, &select).await;
    let mut byte = [0u8; 1];
    let silent = tokio::time::timeout(Duration::from_millis(300), vpcd.read(&mut byte)).await;
    assert!(silent.is_err(), "a mute card sends nothing");
    slot.lock().card_mut().reset();
    slot.changed();
    assert!(closed(&mut vpcd).await);
    let (mut vpcd, _) = listener.accept().await.unwrap();
    power_up(&mut vpcd).await;
    let _ = stop.send(());
    task.await.unwrap();
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
