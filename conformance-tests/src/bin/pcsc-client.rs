//! A raw PC/SC client: connects to reader 0 (or the reader named by `--reader NAME`) and
//! sends each APDU given in hex, one `SCardTransmit` each, printing `<apdu-hex> -> <answer>`
//! per line: the response in hex, or `ERROR <what>`. An APDU `x<N>` is an extended UPDATE
//! BINARY of N bytes in all (for APDUs larger than a vpcd frame). Independent of the card's
//! code: bytes in, bytes out.

use std::ffi::CString;
use std::io::Write;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut reader = "Virtual PCD 00 00".to_string();
    if args.first().map(String::as_str) == Some("--reader") && args.len() > 1 {
        reader = args.remove(1);
        args.remove(0);
    }
    let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("PC/SC context");
    let reader = CString::new(reader).unwrap();
    let card = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .expect("connect");
    let mut buf = vec![0u8; 70_000];
    let mut out = std::io::stdout();
    for arg in &args {
        let apdu = match arg.strip_prefix('x') {
            Some(n) => long_apdu(n.parse().expect("a length after x")),
            None => decode(arg),
        };
        match card.transmit(&apdu, &mut buf) {
            Ok(answer) => writeln!(out, "{arg} -> {}", encode(answer)),
            Err(e) => writeln!(out, "{arg} -> ERROR {e}"),
        }
        .unwrap();
        out.flush().unwrap();
    }
}

/// An extended UPDATE BINARY of `len` bytes in all, whatever its length field can say.
fn long_apdu(len: usize) -> Vec<u8> {
    let mut apdu = vec![0x00, 0xD7, 0xCF, 0x01, 0x00, 0xFF, 0xFF];
    apdu.resize(len, 0x5A);
    apdu
}

fn decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
