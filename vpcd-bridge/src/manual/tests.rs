//! The completions name every command, and the manual pages render as pages.

use super::*;

/// Every visible command below `cmd`, as the words typed: ["pki", "export"].
fn commands(cmd: &clap::Command, path: &[String], all: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let mut words = path.to_vec();
        words.push(sub.get_name().to_owned());
        all.push(words.clone());
        commands(sub, &words, all);
    }
}

fn all_commands() -> Vec<Vec<String>> {
    let mut root = without_help_command(Cli::command());
    root.build();
    let mut all = Vec::new();
    commands(&root, &[], &mut all);
    all
}

fn page_text(file: &str) -> String {
    let pages = pages().unwrap();
    let page = pages
        .iter()
        .find(|page| page.file == file)
        .unwrap_or_else(|| panic!("no page {file}"));
    String::from_utf8(page.roff.clone()).unwrap()
}

#[test]
fn the_bash_completion_offers_every_command() {
    let script = String::from_utf8(completion_script(Shell::Bash)).unwrap();
    assert!(
        script.contains("complete -F _sc__hsm__emulator"),
        "{}",
        &script[script.len().saturating_sub(400)..]
    );
    let words: std::collections::HashSet<&str> = script
        .split(|c: char| c.is_whitespace() || "\"'()|;,".contains(c))
        .collect();
    let all = all_commands();
    for name in [
        "sandbox",
        "completions",
        "man",
        "export",
        "show",
        "fault",
        "add",
    ] {
        assert!(all.iter().any(|c| c.last().unwrap() == name), "{name}");
    }
    for command in &all {
        let name = command.last().unwrap();
        assert!(
            words.contains(name.as_str()),
            "the bash completion does not offer `{}`",
            command.join(" ")
        );
    }
    // Options of nested commands too.
    assert!(words.contains("--out-dir") && words.contains("--profile"));
}

#[test]
fn every_state_of_the_bash_completion_has_its_case_arm() {
    let script = String::from_utf8(completion_script(Shell::Bash)).unwrap();
    // The states the walk over the typed words reaches: cmd="STATE".
    let states: std::collections::BTreeSet<&str> = script
        .split("cmd=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|state| !state.is_empty())
        .collect();
    // The arms of `case "${cmd}" in`: a line holding only STATE).
    let arms: std::collections::BTreeSet<&str> = script
        .lines()
        .filter_map(|line| line.trim().strip_suffix(')'))
        .filter(|label| label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    assert!(states.len() > 30, "{states:?}");
    let missing: Vec<_> = states.difference(&arms).collect();
    assert!(missing.is_empty(), "states without an arm: {missing:?}");
    assert!(states.contains("sc__hsm__emulator__subcmd__pki__subcmd__export"));
    assert!(states.contains("sc__hsm__emulator__subcmd__reader__subcmd__config"));
}

#[test]
fn zsh_and_fish_completions_name_the_program() {
    let zsh = String::from_utf8(completion_script(Shell::Zsh)).unwrap();
    assert!(zsh.starts_with("#compdef sc-hsm-emulator"), "{zsh:.200}");
    let fish = String::from_utf8(completion_script(Shell::Fish)).unwrap();
    assert!(fish.contains("complete -c sc-hsm-emulator"), "{fish:.200}");
    for command in all_commands() {
        let name = command.last().unwrap();
        assert!(zsh.contains(&format!("'{name}:")), "zsh: {name}");
        assert!(fish.contains(&format!("-a \"{name}\"")), "fish: {name}");
    }
}

#[test]
fn every_command_has_a_manual_page() {
    let pages = pages().unwrap();
    let files: Vec<&str> = pages.iter().map(|page| page.file.as_str()).collect();
    let mut wanted = vec!["sc-hsm-emulator.1".to_string()];
    wanted.extend(
        all_commands()
            .iter()
            .map(|words| format!("sc-hsm-emulator-{}.1", words.join("-"))),
    );
    assert_eq!(files, wanted);
    for file in [
        "sc-hsm-emulator-sandbox.1",
        "sc-hsm-emulator-pki-export.1",
        "sc-hsm-emulator-trace-show.1",
        "sc-hsm-emulator-control-fault-add.1",
        "sc-hsm-emulator-completions.1",
        "sc-hsm-emulator-man.1",
    ] {
        assert!(files.contains(&file), "{file} missing from {files:?}");
    }
    assert!(
        !files.iter().any(|file| file.contains("-help")),
        "{files:?}"
    );
}

#[test]
fn a_page_has_the_sections_of_a_manual_page() {
    for page in pages().unwrap() {
        let text = String::from_utf8(page.roff).unwrap();
        let name = page.file.trim_end_matches(".1");
        // The roff crate's apostrophe string once, then the title line with its five fields.
        let title = format!("{PREAMBLE}.TH {} 1 \"", name.to_uppercase());
        assert!(text.starts_with(&title), "{}: {text:.160}", page.file);
        let fields = format!(
            "\" \"sc-hsm-emulator {}\" \"User Commands\"\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text
            .lines()
            .nth(2)
            .is_some_and(|l| format!("{l}\n").ends_with(&fields)));
        assert_eq!(text.matches(".ds Aq").count(), 2, "{}", page.file);
        // NAME as whatis and mandb read it: "name \- summary".
        let name_line = format!(".SH NAME\n{} \\- ", name.replace('-', "\\-"));
        assert!(text.contains(&name_line), "{}: {text:.300}", page.file);
        for section in [".SH SYNOPSIS", ".SH DESCRIPTION", ".SH \"SEE ALSO\""] {
            assert!(text.contains(section), "{}: no {section}", page.file);
        }
        // Only roff: no terminal colours or other control characters from clap.
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{}",
            page.file
        );
    }
}

#[test]
fn the_sandbox_page_keeps_its_examples_and_hides_internal_options() {
    let text = page_text("sc-hsm-emulator-sandbox.1");
    assert!(
        text.contains("\\fBsc\\-hsm\\-emulator sandbox\\fR"),
        "{text}"
    );
    assert!(text.contains("\\fB\\-\\-profile\\fR"), "{text}");
    // The examples one a line, unfilled, as `--help` shows them.
    assert!(
        text.contains(
            ".SH EXAMPLES\n.nf\n  sc\\-hsm\\-emulator sandbox \\-\\- pkcs11\\-tool \\-L\n  \
             sc\\-hsm\\-emulator sandbox \\-\\-profile demo \\-\\- pkcs15\\-tool \\-D\n"
        ),
        "{text}"
    );
    assert!(!text.contains(".SH EXTRA"), "{text}");
    assert!(
        text.contains(".SH \"SEE ALSO\"\n\\fBsc\\-hsm\\-emulator\\fR(1)\n"),
        "{text}"
    );
    // Options the sandbox passes to `run` are not for people.
    let run = page_text("sc-hsm-emulator-run.1");
    assert!(!run.contains("ready\\-file"), "{run}");
    assert!(run.contains("\\fB\\-\\-vpcd\\fR"), "{run}");
}

#[test]
fn a_nested_page_names_its_parent() {
    let text = page_text("sc-hsm-emulator-pki-export.1");
    assert!(
        text.contains("\\fBsc\\-hsm\\-emulator pki export\\fR"),
        "{text}"
    );
    assert!(
        text.contains("\\fBsc\\-hsm\\-emulator\\-pki\\fR(1)"),
        "{text}"
    );
    let top = page_text("sc-hsm-emulator.1");
    assert!(top.contains("sc\\-hsm\\-emulator\\-sandbox(1)"), "{top}");
    assert!(top.contains("\\fBpcscd\\fR(8)"), "{top}");
}

#[test]
fn dates_from_day_numbers() {
    assert_eq!(civil_date(0), "1970-01-01");
    assert_eq!(civil_date(11_016), "2000-02-29");
    assert_eq!(civil_date(19_723), "2024-01-01");
    assert_eq!(civil_date(-1), "1969-12-31");
}

#[test]
fn man_writes_every_page_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    std::fs::create_dir(&out).unwrap();
    let written = write_pages(&out).unwrap();
    assert_eq!(written.len(), pages().unwrap().len());
    assert_eq!(written[0], out.join("sc-hsm-emulator.1"));
    for path in &written {
        assert!(std::fs::metadata(path).unwrap().len() > 200, "{path:?}");
    }
}
