//! BER-TLV as the card uses it: one- and two-byte tags, definite lengths up to three length
//! bytes. Parsing never panics; anything malformed is `None`.

/// One decoded TLV: its tag (as the tag bytes read big-endian) and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u16,
    pub value: &'a [u8],
}

/// Reads one TLV from the start of `input`; returns it and the remaining bytes.
pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&first, mut rest) = input.split_first()?;
    let mut tag = u16::from(first);
    if first & 0x1F == 0x1F {
        let (&second, after) = rest.split_first()?;
        if second & 0x80 != 0 {
            return None; // tags of three bytes or more are not used by the card
        }
        tag = (tag << 8) | u16::from(second);
        rest = after;
    }
    let (len, rest) = read_length(rest)?;
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((Tlv { tag, value }, rest))
}

/// Reads a BER definite length: `0..=7F`, `81 xx`, `82 xx xx`.
pub fn read_length(input: &[u8]) -> Option<(usize, &[u8])> {
    match input {
        [n, rest @ ..] if *n < 0x80 => Some((usize::from(*n), rest)),
        [0x81, n, rest @ ..] => Some((usize::from(*n), rest)),
        [0x82, hi, lo, rest @ ..] => Some((usize::from(u16::from_be_bytes([*hi, *lo])), rest)),
        _ => None,
    }
}

/// Splits `input` into a sequence of TLVs; `None` if any part is malformed.
pub fn parse_all(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = read(input)?;
        out.push(tlv);
        input = rest;
    }
    Some(out)
}

/// Finds the first TLV with `tag` among the TLVs of `input`.
pub fn find(input: &[u8], tag: u16) -> Option<&[u8]> {
    parse_all(input)?
        .into_iter()
        .find(|t| t.tag == tag)
        .map(|t| t.value)
}

/// Appends a BER length to `out`.
pub fn write_length(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        _ => {
            out.push(0x82);
            out.extend_from_slice(&(len.min(0xFFFF) as u16).to_be_bytes());
        }
    }
}

/// Appends one TLV to `out`.
pub fn write(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    if tag > 0xFF {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    write_length(out, value.len());
    out.extend_from_slice(value);
}

/// One TLV as a new vector.
pub fn encode(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 5);
    write(&mut out, tag, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_forms() {
        let (t, rest) = read(&[0x54, 0x02, 0x01, 0x02, 0xFF]).unwrap();
        assert_eq!((t.tag, t.value, rest), (0x54, &[1u8, 2][..], &[0xFFu8][..]));
        let mut long = vec![0x53, 0x81, 0x80];
        long.extend(vec![7; 0x80]);
        assert_eq!(read(&long).unwrap().0.value.len(), 0x80);
        let mut longer = vec![0x7F, 0x21, 0x82, 0x01, 0x00];
        longer.extend(vec![7; 0x100]);
        let (t, _) = read(&longer).unwrap();
        assert_eq!((t.tag, t.value.len()), (0x7F21, 0x100));
    }

    #[test]
    fn malformed_is_none() {
        assert_eq!(read(&[]), None);
        assert_eq!(read(&[0x53]), None);
        assert_eq!(read(&[0x53, 0x05, 0x01]), None);
        assert_eq!(read(&[0x53, 0x83, 0, 0, 1]), None);
        assert_eq!(read(&[0x5F]), None);
        assert_eq!(read(&[0x5F, 0x81, 0x01, 0x00]), None);
        assert_eq!(parse_all(&[0x80, 0x01, 0x00, 0x81]), None);
    }

    #[test]
    fn encodes_what_it_reads() {
        for len in [0usize, 1, 0x7F, 0x80, 0xFF, 0x100, 0x1234] {
            let value = vec![0x5A; len];
            for tag in [0x53u16, 0x5F20, 0x7F49] {
                let enc = encode(tag, &value);
                let (t, rest) = read(&enc).unwrap();
                assert_eq!((t.tag, t.value, rest.len()), (tag, &value[..], 0));
            }
        }
    }
}
