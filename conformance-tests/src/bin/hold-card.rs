//! Holds the card in reader 0 inside a PC/SC transaction for the given number of
//! milliseconds, talking to it every 100 ms, then releases it. Prints `HOLDING` once the
//! transaction is open and `RELEASED <n> APDUs` after it ends.

use std::ffi::CString;
use std::io::Write;
use std::time::{Duration, Instant};

fn main() {
    let millis: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("PC/SC context");
    let reader = CString::new("Virtual PCD 00 00").unwrap();
    let mut card = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .expect("connect");
    let tx = card.transaction().expect("begin transaction");
    println!("HOLDING");
    let _ = std::io::stdout().flush();
    let start = Instant::now();
    let mut apdus = 0;
    let mut buf = [0u8; 300];
    while start.elapsed() < Duration::from_millis(millis) {
        let answer = tx
            .transmit(&emulator::tools::host::select_application(), &mut buf)
            .expect("transmit while holding");
        assert_eq!(&answer[answer.len() - 2..], &[0x90, 0x00]);
        apdus += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    tx.end(pcsc::Disposition::LeaveCard)
        .map_err(|(_, e)| e)
        .expect("end transaction");
    println!("RELEASED {apdus} APDUs");
}
