//! The layout's limits, kept by a test rather than by memory: which part may use which (the
//! application never reaches the card around it, the model never the store, the card never a
//! host tool), and how large a file may grow (500 lines for production code, 150 for the
//! binary's `main.rs`). Tests live in files of their own (`tests.rs`, `tests/`) and do not
//! count.

use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Every `.rs` file below `dir`, with whether it is test code.
fn sources(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), false)];
    while let Some((dir, in_tests)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push((path, in_tests || name == "tests"));
            } else if name.ends_with(".rs") {
                out.push((path, in_tests || name == "tests.rs"));
            }
        }
    }
    out.sort();
    out
}

/// The lines of `path` that are production code: not comments, not an inline test module.
fn code_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let code = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => &text,
    };
    code.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//"))
        .map(str::to_string)
        .collect()
}

fn production(dir: &str) -> Vec<PathBuf> {
    sources(&Path::new(ROOT).join(dir))
        .into_iter()
        .filter(|(_, test)| !test)
        .map(|(path, _)| path)
        .collect()
}

/// Files of `dir` whose code names any of `forbidden`.
fn uses(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for path in production(dir) {
        for line in code_lines(&path) {
            if forbidden.iter().any(|f| line.contains(f)) {
                found.push(format!("{}: {line}", path.display()));
            }
        }
    }
    found
}

#[test]
fn each_part_uses_only_what_is_below_it() {
    // The application is the card's inside: it never names the card, its transport state or
    // a host tool.
    let applet = uses(
        "emulator/src/applet",
        &["crate::card", "impl Card", "Card::", "crate::tools"],
    );
    assert!(applet.is_empty(), "applet/ reaches out: {applet:#?}");
    // The card's data knows no storage encoding and does no file I/O.
    let model = uses(
        "emulator/src/model",
        &["crate::store", "crate::applet", "std::fs", "std::io"],
    );
    assert!(model.is_empty(), "model/ reaches out: {model:#?}");
    // The store keeps the model; it knows no application or card.
    let store = uses("emulator/src/store", &["crate::applet", "crate::card"]);
    assert!(store.is_empty(), "store/ reaches out: {store:#?}");
    // The transport edge uses the application and the APDU layer, never a host tool.
    let card = uses("emulator/src/card", &["crate::tools"]);
    assert!(card.is_empty(), "card/ uses a host tool: {card:#?}");
    // The data trace's decoders work for the card: no host tool, no card state.
    let dissect = uses("emulator/src/dissect", &["crate::tools", "crate::card"]);
    assert!(dissect.is_empty(), "dissect/ reaches out: {dissect:#?}");
}

#[test]
fn no_production_file_is_over_its_limit() {
    let mut over = Vec::new();
    for dir in ["emulator/src", "vpcd-bridge/src"] {
        for path in production(dir) {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            let limit = if path.ends_with("vpcd-bridge/src/main.rs") {
                150
            } else {
                500
            };
            if lines > limit {
                over.push(format!("{}: {lines} lines (limit {limit})", path.display()));
            }
        }
    }
    assert!(over.is_empty(), "{over:#?}");
}

#[test]
fn the_scan_sees_the_files_it_judges() {
    // Guards the two tests above against passing on an empty tree.
    assert!(production("emulator/src/applet").len() > 15);
    assert!(production("vpcd-bridge/src")
        .iter()
        .any(|p| p.ends_with("main.rs")));
    assert!(!uses("emulator/src/card", &["crate::applet"]).is_empty());
}
