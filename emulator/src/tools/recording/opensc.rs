//! OpenSC debug logs, older and newer form.

use super::*;

pub(super) fn opensc_header(
    line: &str,
    format: Format,
) -> Option<Result<(Direction, usize), String>> {
    for (label, direction) in [
        ("Outgoing APDU", Direction::Outgoing),
        ("Incoming APDU", Direction::Incoming),
    ] {
        let Some(at) = line.find(label) else {
            continue;
        };
        let rest = &line[at + label.len()..];
        let count = match format {
            // "Outgoing APDU data [    8 bytes] ====="
            Format::OpenscOld => {
                let Some(rest) = rest.strip_prefix(" data [") else {
                    continue;
                };
                let rest = rest.trim_start();
                let digits =
                    rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                match (
                    rest[..digits].parse(),
                    rest[digits..].starts_with(" bytes]"),
                ) {
                    (Ok(n), true) => Ok(n),
                    _ => Err(()),
                }
            }
            // "Outgoing APDU (17 bytes):" or "(1 byte):"
            Format::OpenscNew => {
                let Some(rest) = rest.strip_prefix(" (") else {
                    continue;
                };
                let digits =
                    rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let tail = &rest[digits..];
                match (
                    rest[..digits].parse(),
                    tail.starts_with(" bytes):") || tail.starts_with(" byte):"),
                ) {
                    (Ok(n), true) => Ok(n),
                    _ => Err(()),
                }
            }
            Format::PcscSpy => return None,
        };
        return Some(
            count
                .map(|n| (direction, n))
                .map_err(|()| format!("{label} header without a byte count it can read")),
        );
    }
    None
}

/// A hex dump as read: its bytes, the index of the line after it, and whether a cut or the
/// end of the text broke it off.
pub(super) struct Dump {
    bytes: Vec<u8>,
    next: usize,
    cut: bool,
}

/// Reads the `count` bytes of the dump after the header on `lines[header]`: at most 16 per
/// line, from the line start, so that the ASCII column after them is never taken for hex.
pub(super) fn opensc_dump(lines: &[&str], header: usize, count: usize) -> Result<Dump, String> {
    let mut bytes = Vec::with_capacity(count);
    let mut i = header + 1;
    while bytes.len() < count {
        let Some(line) = lines.get(i) else {
            return Ok(Dump {
                bytes,
                next: i,
                cut: true,
            });
        };
        let want = (count - bytes.len()).min(PER_LINE);
        let (got, stop) = hex_tokens(line, want);
        let short = got.len() < want;
        bytes.extend(got);
        i += 1;
        if short {
            if line.contains(CUT) {
                return Ok(Dump {
                    bytes,
                    next: i,
                    cut: true,
                });
            }
            return Err(format!(
                "line {i}: expected {} more hex bytes, found {} ({count} bytes declared on line {}, {} read)",
                count - bytes.len(),
                found(stop),
                header + 1,
                bytes.len()
            ));
        }
    }
    // The dump is followed by a separator or a log line, never by more hex.
    if let Some(line) = lines.get(i) {
        if line.split_whitespace().next().and_then(hex_byte).is_some() {
            return Err(format!(
                "line {}: more hex than the {count} bytes declared on line {}",
                i + 1,
                header + 1
            ));
        }
    }
    Ok(Dump {
        bytes,
        next: i,
        cut: false,
    })
}

pub(super) fn parse_opensc(text: &str, format: Format) -> Result<Vec<Exchange>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut exchanges = Vec::new();
    // The last command seen whose answer has not come yet, with its header's line number.
    let mut pending: Option<(Vec<u8>, usize)> = None;
    let unanswered = |(command, line): (Vec<u8>, usize)| Exchange {
        command,
        response: Vec::new(),
        line,
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_annotation(line) {
            i += 1;
            continue;
        }
        let header = match opensc_header(line, format) {
            Some(Ok(header)) => header,
            Some(Err(e)) => return Err(format!("line {}: {e}", i + 1)),
            None => {
                if line.contains(CUT) {
                    exchanges.extend(pending.take().map(unanswered));
                }
                i += 1;
                continue;
            }
        };
        let (direction, count) = header;
        let dump = opensc_dump(&lines, i, count)?;
        match direction {
            Direction::Outgoing => {
                exchanges.extend(pending.take().map(unanswered));
                if !dump.cut {
                    pending = Some((dump.bytes, i + 1));
                }
            }
            Direction::Incoming => {
                if !dump.cut {
                    check_answer(&dump.bytes, i + 1)?;
                }
                if let Some((command, line)) = pending.take() {
                    let response = if dump.cut { Vec::new() } else { dump.bytes };
                    exchanges.push(Exchange {
                        command,
                        response,
                        line,
                    });
                }
            }
        }
        i = dump.next;
    }
    exchanges.extend(pending.map(unanswered));
    Ok(exchanges)
}

// ---- pcsc-spy ----
