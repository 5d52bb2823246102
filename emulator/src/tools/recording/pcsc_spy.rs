//! pcsc-spy output.

use super::*;

/// Drops terminal colour sequences (`ESC [ ... m`), which pcsc-spy writes unless run with `-n`.
pub(super) fn strip_ansi(line: &str) -> Cow<'_, str> {
    if !line.contains('\x1b') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A line naming a PC/SC call: the thread's prefix (spaces, four per thread after the first,
/// and with `-t` a `(tN) ` tag) and the name. pcsc-spy writes SCardControl as `SCarControl`.
pub(super) fn spy_call_name(line: &str) -> Option<(&str, &str)> {
    let mut rest = line.trim_start_matches(' ');
    if let Some(tagged) = rest.strip_prefix("(t") {
        let digits = tagged.len()
            - tagged
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        rest = tagged[digits..].strip_prefix(") ")?;
        if digits == 0 {
            return None;
        }
    }
    let name = rest.trim_end();
    if name.starts_with("SCar") && name.chars().all(|c| c.is_ascii_alphanumeric()) {
        Some((&line[..line.len() - rest.len()], name))
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Send,
    Recv,
}

/// One buffer argument of a transmit: the length pcsc-spy announced for it and the hex read.
#[derive(Default)]
pub(super) struct Buffer {
    declared: Option<(usize, usize)>, // (byte count, its line)
    bytes: Vec<u8>,
    seen: bool, // its field line was there
    null: bool,
    cut: bool,
}

impl Buffer {
    /// True when the buffer holds all the bytes announced for it.
    fn whole(&self) -> bool {
        self.seen
            && !self.null
            && !self.cut
            && self.declared.is_none_or(|(n, _)| n == self.bytes.len())
    }
}

/// An SCardTransmit call being read; calls of several threads can be open at once, told
/// apart by their prefix.
pub(super) struct Call {
    prefix: String,
    line: usize,
    send: Buffer,
    recv: Buffer,
    reading: Option<(Side, usize)>, // the buffer whose hex lines come now, and its field line
}

impl Call {
    fn buffer(&mut self, side: Side) -> &mut Buffer {
        match side {
            Side::Send => &mut self.send,
            Side::Recv => &mut self.recv,
        }
    }

    /// Ends the hex of the buffer being read: it must hold the announced number of bytes.
    fn close(&mut self) -> Result<(), String> {
        let Some((side, field)) = self.reading.take() else {
            return Ok(());
        };
        let buffer = self.buffer(side);
        if let Some((n, at)) = buffer.declared {
            if !buffer.null && !buffer.cut && n != buffer.bytes.len() {
                let name = match side {
                    Side::Send => "bSendBuffer",
                    Side::Recv => "bRecvBuffer",
                };
                return Err(format!(
                    "line {field}: {name} holds {} bytes, line {at} announced {n}",
                    buffer.bytes.len()
                ));
            }
        }
        Ok(())
    }

    /// One hex line (`0010 00 A4 ...`, or ` NULL`) of the buffer being read.
    fn dump_line(&mut self, text: &str, line: usize) -> Result<(), String> {
        let Some((side, _)) = self.reading else {
            return Ok(());
        };
        let buffer = self.buffer(side);
        let text = text.trim();
        if text == "NULL" {
            buffer.null = true;
            return Ok(());
        }
        if buffer.cut {
            return Ok(());
        }
        let (offset, hex) = text.split_once(' ').unwrap_or((text, ""));
        if offset.len() < 4 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
            if text.contains(CUT) {
                buffer.cut = true;
                return Ok(());
            }
            return Err(format!("line {line}: `{offset}` is not a hex dump offset"));
        }
        let offset = usize::from_str_radix(offset, 16)
            .map_err(|_| format!("line {line}: hex dump offset `{offset}` is too large"))?;
        if offset != buffer.bytes.len() {
            return Err(format!(
                "line {line}: hex dump offset {offset:04X}, expected {:04X}",
                buffer.bytes.len()
            ));
        }
        let want = match buffer.declared {
            Some((n, at)) if n <= buffer.bytes.len() => {
                return Err(format!(
                    "line {line}: more hex than the {n} bytes announced on line {at}"
                ));
            }
            Some((n, _)) => (n - buffer.bytes.len()).min(PER_LINE),
            None => PER_LINE,
        };
        let (got, stop) = hex_tokens(hex, want);
        let read = got.len();
        buffer.bytes.extend(got);
        if let Some((n, at)) = buffer.declared.filter(|_| read < want) {
            if text.contains(CUT) {
                buffer.cut = true;
                return Ok(());
            }
            return Err(format!(
                "line {line}: expected {} more hex bytes, found {} ({n} bytes announced on line {at})",
                want - read,
                found(stop)
            ));
        }
        Ok(())
    }

    /// The exchange this call recorded, if its command is whole; `answered` is false when
    /// the call failed or its result was not seen.
    fn finish(mut self, answered: bool) -> Result<Option<Exchange>, String> {
        self.close()?;
        if !self.send.whole() {
            return Ok(None);
        }
        let response = if answered && self.recv.whole() {
            check_answer(&self.recv.bytes, self.line)?;
            self.recv.bytes
        } else {
            Vec::new()
        };
        Ok(Some(Exchange {
            command: self.send.bytes,
            response,
            line: self.line,
        }))
    }
}

/// The byte count in `0x0000000C (12)`.
pub(super) fn spy_length(text: &str, line: usize) -> Result<usize, String> {
    let hex = text.split_whitespace().next().unwrap_or("");
    hex.strip_prefix("0x")
        .and_then(|h| usize::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("line {line}: `{text}` is not a length"))
}

pub(super) fn parse_spy(text: &str) -> Result<Vec<Exchange>, String> {
    let lines: Vec<Cow<'_, str>> = text.lines().map(strip_ansi).collect();
    let mut exchanges = Vec::new();
    let mut open: Vec<Call> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let number = i + 1;
        if is_annotation(line) {
            continue;
        }
        if let Some((prefix, name)) = spy_call_name(line) {
            // A new call of a thread ends whatever that thread had open (a cut log).
            if let Some(at) = open.iter().position(|c| c.prefix == prefix) {
                exchanges.extend(open.remove(at).finish(false)?);
            }
            if name == "SCardTransmit" {
                open.push(Call {
                    prefix: prefix.to_string(),
                    line: number,
                    send: Buffer::default(),
                    recv: Buffer::default(),
                    reading: None,
                });
            }
            continue;
        }
        // The open call this line belongs to: its prefix, then " i ", " o " or " => ".
        let at = open.iter().position(|c| {
            line.strip_prefix(c.prefix.as_str()).is_some_and(|r| {
                r.starts_with(" i ") || r.starts_with(" o ") || r.starts_with(" => ")
            })
        });
        let is_dump = at.is_some_and(|at| {
            let rest = &line[open[at].prefix.len()..];
            !rest.starts_with(" => ") && rest[3..].starts_with(' ')
        });
        if line.contains(CUT) && !is_dump {
            // The log is cut here: no open call will see the rest of its lines.
            for call in open.drain(..) {
                exchanges.extend(call.finish(false)?);
            }
            continue;
        }
        let Some(at) = at else {
            continue;
        };
        let call = &mut open[at];
        let rest = &line[call.prefix.len()..];
        if let Some(result) = rest.strip_prefix(" => ") {
            let answered = result.contains("SCARD_S_SUCCESS");
            exchanges.extend(open.remove(at).finish(answered)?);
            continue;
        }
        let side = if rest.starts_with(" i ") {
            Side::Send
        } else {
            Side::Recv
        };
        let field = &rest[3..];
        if field.starts_with(' ') {
            match call.reading {
                Some((reading, _)) if reading == side => call.dump_line(field, number)?,
                _ => {}
            }
            continue;
        }
        call.close()?;
        let (length, buffer) = match side {
            Side::Send => ("bSendLength", "bSendBuffer"),
            Side::Recv => ("bRecvLength", "bRecvBuffer"),
        };
        if let Some(value) = field.strip_prefix(length) {
            call.buffer(side).declared = Some((spy_length(value.trim(), number)?, number));
        } else if field.trim_end() == buffer {
            call.buffer(side).seen = true;
            call.reading = Some((side, number));
        }
    }
    for call in open {
        exchanges.extend(call.finish(false)?);
    }
    exchanges.sort_by_key(|e| e.line);
    Ok(exchanges)
}
