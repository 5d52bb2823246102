//! Two answers to the same command, compared field by field: what `trace replay` reports.
//! Fields that are new each time ([`Varies::Random`]) are compared by shape (present, same
//! place); fields that depend on what the card holds ([`Varies::Contents`]) too, unless the
//! comparison is exact; fields taken out by length.

use super::{Field, Varies};

/// Where two answers differ, one line each (the path of names, then recorded vs now).
pub fn fields(recorded: &[Field], fresh: &[Field], exact_contents: bool) -> Vec<String> {
    let mut out = Vec::new();
    list(recorded, fresh, exact_contents, "", &mut out);
    out
}

fn list(recorded: &[Field], fresh: &[Field], exact: bool, path: &str, out: &mut Vec<String>) {
    for (r, f) in recorded.iter().zip(fresh) {
        one(r, f, exact, path, out);
    }
    let at = if path.is_empty() { "the answer" } else { path };
    // More or fewer of what depends on the card's contents (files, keys) is the contents'.
    let counts = |f: &&Field| exact || f.varies != Some(Varies::Contents);
    for extra in recorded.iter().skip(fresh.len()).filter(counts) {
        out.push(format!(
            "{at}: recorded {} ({} bytes), now absent",
            label(extra),
            extra.len
        ));
    }
    for extra in fresh.iter().skip(recorded.len()).filter(counts) {
        out.push(format!(
            "{at}: now {} ({} bytes), not recorded",
            label(extra),
            extra.len
        ));
    }
}

fn label(f: &Field) -> String {
    match &f.tag {
        Some(tag) => format!("{tag} {}", f.name),
        None => f.name.clone(),
    }
}

fn one(r: &Field, f: &Field, exact: bool, path: &str, out: &mut Vec<String>) {
    let here = if path.is_empty() {
        label(r)
    } else {
        format!("{path} / {}", label(r))
    };
    let varies = r.varies.or(f.varies);
    // What a file holds may be of another structure altogether on another card.
    let contents = r.varies == Some(Varies::Contents) || f.varies == Some(Varies::Contents);
    if r.tag != f.tag || r.name != f.name {
        if !contents || exact {
            out.push(format!("{here}: recorded {}, now {}", label(r), label(f)));
        }
        return;
    }
    let by_shape = match varies {
        Some(Varies::Random) => true,
        Some(Varies::Contents) => !exact,
        None => false,
    };
    if by_shape {
        return;
    }
    if r.secret.is_some() || f.secret.is_some() {
        if r.len != f.len {
            out.push(format!("{here}: recorded {} bytes, now {}", r.len, f.len));
        }
        return;
    }
    if !r.fields.is_empty() || !f.fields.is_empty() {
        list(&r.fields, &f.fields, exact, &here, out);
        return;
    }
    if r.hex != f.hex {
        out.push(format!("{here}: recorded {}, now {}", shown(r), shown(f)));
    }
}

fn shown(f: &Field) -> String {
    let hex = f.hex.as_deref().unwrap_or("");
    let hex = if hex.len() > 48 {
        format!("{}... ({} bytes)", &hex[..48], f.len)
    } else {
        hex.to_string()
    };
    match &f.meaning {
        Some(m) if !hex.is_empty() => format!("{hex} ({m})"),
        _ => hex,
    }
}
