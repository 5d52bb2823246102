//! vpcd framing: `length (2 bytes, big endian) ‖ payload`.

use tokio::io::{AsyncRead, AsyncReadExt};

/// A vpcd control message (a 1-byte frame `00`, `01` or `02`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    PowerOff,
    PowerOn,
    Reset,
}

/// What one frame from vpcd is, as far as the frame alone tells. vpcd sends a 1-byte APDU
/// exactly as it sends its control messages; the link tells them apart by what follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `00`, `01`, `02`: a control message, or a 1-byte APDU of that byte.
    Control(Control),
    /// `04`: the ATR request of a power-on or reset, a presence check, or a 1-byte APDU `04`.
    AtrRequest,
    /// Any other 1-byte payload: never a control message, so a 1-byte APDU.
    ShortApdu(u8),
    Apdu(Vec<u8>),
}

impl Request {
    /// Interprets one frame payload.
    pub fn from_payload(payload: Vec<u8>) -> Request {
        match payload.as_slice() {
            [0x00] => Request::Control(Control::PowerOff),
            [0x01] => Request::Control(Control::PowerOn),
            [0x02] => Request::Control(Control::Reset),
            [0x04] => Request::AtrRequest,
            [other] => Request::ShortApdu(*other),
            _ => Request::Apdu(payload),
        }
    }
}

/// The largest payload of a frame: its length is two bytes.
pub const MAX_PAYLOAD: usize = 0xFFFF;

/// Encodes one frame: length and payload in one buffer, to be sent with one write.
///
/// `None` for an empty payload (vpcd closes the link on a zero-length frame) or one longer than
/// a frame can carry.
pub fn encode(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(payload.len()).ok().filter(|n| *n > 0)?;
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// Reads one frame payload; `Ok(None)` on a clean end of stream before a frame starts.
///
/// `before_each_read` runs on the reader before the length and before the payload are read
/// (the TCP link uses it to re-arm `TCP_QUICKACK`).
pub async fn read<R: AsyncRead + Unpin>(
    reader: &mut R,
    before_each_read: impl Fn(&R),
) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    before_each_read(reader);
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut payload = vec![0u8; usize::from(u16::from_be_bytes(len))];
    before_each_read(reader);
    reader.read_exact(&mut payload).await?;
    Ok(Some(payload))
}

/// Fuzz target: a byte stream as vpcd might send it, read frame by frame and answered by a
/// card, until the stream ends or breaks. Never panics.
#[cfg(any(test, feature = "testkit"))]
pub fn fuzz_frames(data: &[u8]) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let mut card = match emulator::Card::open_with_rng(
        Box::new(emulator::MemoryStore::default()),
        Box::new(emulator::crypto::rng::SeededRng::new(1, 0)),
    ) {
        Ok(card) => card,
        Err(_) => return,
    };
    runtime.block_on(async {
        let mut reader = data;
        while let Ok(Some(payload)) = read(&mut reader, |_| {}).await {
            match Request::from_payload(payload) {
                Request::Control(Control::PowerOff) => card.power_off(),
                Request::Control(Control::PowerOn) => card.power_on(),
                Request::Control(Control::Reset) => card.reset(),
                Request::AtrRequest | Request::ShortApdu(_) => {}
                Request::Apdu(apdu) => {
                    let answer = card.transmit(&apdu);
                    assert!(answer.len() >= 2);
                    assert!(encode(&answer).is_some());
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_and_apdus() {
        assert_eq!(
            Request::from_payload(vec![0]),
            Request::Control(Control::PowerOff)
        );
        assert_eq!(
            Request::from_payload(vec![1]),
            Request::Control(Control::PowerOn)
        );
        assert_eq!(
            Request::from_payload(vec![2]),
            Request::Control(Control::Reset)
        );
        assert_eq!(Request::from_payload(vec![4]), Request::AtrRequest);
        assert_eq!(Request::from_payload(vec![3]), Request::ShortApdu(3));
        assert_eq!(Request::from_payload(vec![9]), Request::ShortApdu(9));
        assert_eq!(
            Request::from_payload(vec![0, 0xA4]),
            Request::Apdu(vec![0, 0xA4])
        );
    }

    #[test]
    fn fuzz_smoke_of_frame_streams() {
        // A fixed amount of work for the vpcd_frames fuzz target: seeded random streams.
        let mut rng = emulator::crypto::rng::SeededRng::new(0x2545_F491, 0);
        let mut next = || rng.next_u64();
        let mut runs = 0;
        while runs < 200 {
            let mut stream = Vec::new();
            for _ in 0..(next() % 6) {
                let len = (next() % 40) as usize;
                // Mostly well-formed frames, sometimes a lying length.
                let declared = if next() % 5 == 0 {
                    next() as u16
                } else {
                    len as u16
                };
                stream.extend_from_slice(&declared.to_be_bytes());
                stream.extend((0..len).map(|_| next() as u8));
            }
            fuzz_frames(&stream);
            runs += 1;
        }
    }

    #[test]
    fn encode_refuses_empty_and_oversized() {
        assert_eq!(encode(&[0x90, 0x00]), Some(vec![0, 2, 0x90, 0x00]));
        assert_eq!(encode(&[]), None);
        assert_eq!(encode(&vec![0; 65_536]), None);
        assert_eq!(encode(&vec![0; 65_535]).map(|f| f.len()), Some(65_537));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_frames_split_anywhere() {
        let bytes = [0u8, 3, 0xAA, 0xBB, 0xCC, 0, 1, 0x04];
        // One byte per read: length and payload arrive in pieces.
        let mut reader = tokio_test_reader(&bytes);
        assert_eq!(
            read(&mut reader, |_| {}).await.unwrap(),
            Some(vec![0xAA, 0xBB, 0xCC])
        );
        assert_eq!(read(&mut reader, |_| {}).await.unwrap(), Some(vec![0x04]));
        assert_eq!(read(&mut reader, |_| {}).await.unwrap(), None);
        // A stream that ends inside a frame is an error, not a silent end.
        let mut reader = tokio_test_reader(&[0, 5, 1, 2]);
        assert!(read(&mut reader, |_| {}).await.is_err());
    }

    /// The link re-arms TCP_QUICKACK through this hook (Linux clears it after each ACK): it runs
    /// before the length and before the payload of every frame, the two segments vpcd sends.
    #[tokio::test(flavor = "current_thread")]
    async fn the_hook_runs_before_both_reads_of_every_frame() {
        let calls = std::cell::Cell::new(0);
        let bytes = [0u8, 2, 0x90, 0x00, 0, 1, 0x04];
        let mut reader = &bytes[..];
        for expected in [2, 4] {
            read(&mut reader, |_| calls.set(calls.get() + 1))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(calls.get(), expected);
        }
    }

    /// A reader that yields one byte per read call.
    fn tokio_test_reader(bytes: &[u8]) -> impl AsyncRead + Unpin {
        struct OneByte(std::collections::VecDeque<u8>);
        impl AsyncRead for OneByte {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if let Some(b) = self.0.pop_front() {
                    buf.put_slice(&[b]);
                }
                std::task::Poll::Ready(Ok(()))
            }
        }
        OneByte(bytes.iter().copied().collect())
    }
}
