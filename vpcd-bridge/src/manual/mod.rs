//! Shell completions and manual pages, made from the command line's own clap definitions
//! ([`crate::cli`]), so that they never disagree with `--help`: `completions SHELL` prints a
//! completion script, `man` writes one page per command (`sc-hsm-emulator.1`,
//! `sc-hsm-emulator-sandbox.1`, `sc-hsm-emulator-pki-export.1`, ...) or prints the top one.
//! `scripts/build-deb` puts both into the Debian package.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, ValueEnum};
use clap_mangen::roff::{bold, roman, Roff};

use crate::cli::Cli;

/// The program's name: the completion scripts' command and the top page's title.
const NAME: &str = "sc-hsm-emulator";

/// The manual section of every page (user commands).
const SECTION: &str = "1";

/// The shells `completions` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash (with or without the bash-completion package).
    Bash,
    /// zsh (a `_sc-hsm-emulator` function for `fpath`).
    Zsh,
    /// fish.
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// `completions SHELL`: the completion script on standard output.
pub fn completions(shell: Shell) -> Result<(), String> {
    to_stdout(&completion_script(shell))
}

/// `man`: with a directory, every page written into it (made if need be) and each file's path
/// printed; without one, the top page on standard output.
pub fn man(out_dir: Option<&Path>) -> Result<(), String> {
    let Some(dir) = out_dir else {
        let top = pages()?
            .into_iter()
            .next()
            .ok_or("no manual page was made")?;
        return to_stdout(&top.roff);
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut listing = String::new();
    for path in write_pages(dir)? {
        listing.push_str(&format!("{}\n", path.display()));
    }
    to_stdout(listing.as_bytes())
}

/// The completion script for `shell`.
fn completion_script(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell.generator(), &mut Cli::command(), NAME, &mut script);
    match shell {
        Shell::Bash => mend_bash_states(&String::from_utf8_lossy(&script)).into_bytes(),
        Shell::Zsh | Shell::Fish => script,
    }
}

/// The bash script walks the words typed so far into a state named after the command path
/// (`sc__hsm__emulator__subcmd__pki`) and then completes by that state. clap_complete 4.6
/// spells the program's name in the states' case arms differently when the name has a hyphen
/// (`sc__subcmd__hsm__subcmd__emulator__subcmd__pki`, clap-rs/clap#6421), so no arm below the
/// top level ever matches and nothing after a command completes. The arms are given the
/// spelling of the walk; once clap_complete spells both alike, there is nothing to replace.
fn mend_bash_states(script: &str) -> String {
    let arms = format!("{}__subcmd__", NAME.replace('-', "__subcmd__"));
    let walk = format!("{}__subcmd__", NAME.replace('-', "__"));
    script.replace(&arms, &walk)
}

/// One manual page: its file name (`sc-hsm-emulator-pki-export.1`) and its roff text.
struct Page {
    file: String,
    roff: Vec<u8>,
}

/// Writes every page into `dir`; the files written, the top page first.
fn write_pages(dir: &Path) -> Result<Vec<PathBuf>, String> {
    pages()?
        .into_iter()
        .map(|page| {
            let path = dir.join(&page.file);
            std::fs::write(&path, &page.roff)
                .map(|()| path.clone())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        })
        .collect()
}

/// A page for the program and for each of its visible commands at every depth, the top page
/// first, then depth first in the order of `--help`.
fn pages() -> Result<Vec<Page>, String> {
    // Building the whole tree once gives every command its display name
    // (sc-hsm-emulator-pki-export) and its full usage line (sc-hsm-emulator pki export).
    let mut root = without_help_command(Cli::command());
    root.build();
    let mut pages = Vec::new();
    add_pages(&root, None, &mut pages).map_err(|e| format!("cannot render a manual page: {e}"))?;
    Ok(pages)
}

/// `help` is a command only on the command line: `--help` and the pages say the same.
fn without_help_command(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    names
        .iter()
        .fold(cmd.disable_help_subcommand(true), |cmd, name| {
            cmd.mut_subcommand(name, without_help_command)
        })
}

fn add_pages(
    cmd: &clap::Command,
    parent: Option<&str>,
    pages: &mut Vec<Page>,
) -> std::io::Result<()> {
    let name = page_name(cmd);
    pages.push(Page {
        file: format!("{name}.{SECTION}"),
        roff: render(cmd, parent)?,
    });
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        add_pages(sub, Some(&name), pages)?;
    }
    Ok(())
}

/// A built command's page name: its display name, the path of commands joined by `-`.
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned()
}

/// What the roff crate puts before every text it renders: a string `Aq` for apostrophes. A
/// page needs it once, at its top.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// The roff text of `cmd`'s page: the title line, clap_mangen's sections, the command's
/// after-help text (its examples) kept as written, then SEE ALSO.
fn render(cmd: &clap::Command, parent: Option<&str>) -> std::io::Result<Vec<u8>> {
    let name = page_name(cmd);
    let man = clap_mangen::Man::new(cmd.clone());
    // clap_mangen leaves an empty date unquoted, which shifts the title line's fields: the
    // line is written here, the date that of SOURCE_DATE_EPOCH when it is set (package
    // builds), otherwise left empty.
    let mut out = PREAMBLE.as_bytes().to_vec();
    writeln!(
        out,
        ".TH {} {SECTION} \"{}\" \"{NAME} {}\" \"User Commands\"",
        name.to_uppercase(),
        source_date().unwrap_or_default(),
        env!("CARGO_PKG_VERSION"),
    )?;
    let mut section = |render: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        let mut text = Vec::new();
        render(&mut text)?;
        out.extend_from_slice(text.strip_prefix(PREAMBLE.as_bytes()).unwrap_or(&text));
        std::io::Result::Ok(())
    };
    section(&|w| man.render_name_section(w))?;
    section(&|w| man.render_synopsis_section(w))?;
    section(&|w| man.render_description_section(w))?;
    if cmd.get_arguments().any(|arg| !arg.is_hide_set()) {
        section(&|w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|sub| !sub.is_hide_set()) {
        section(&|w| man.render_subcommands_section(w))?;
    }
    let mut roff = Roff::new();
    if let Some(after) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        after_help(&mut roff, &after.to_string());
    }
    see_also(&mut roff, parent);
    section(&|w| roff.to_writer(w))?;
    Ok(out)
}

/// SOURCE_DATE_EPOCH (seconds since 1970) as the date a page shows, YYYY-MM-DD (UTC).
fn source_date() -> Option<String> {
    let seconds: i64 = std::env::var("SOURCE_DATE_EPOCH")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(civil_date(seconds.div_euclid(86_400)))
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01), as YYYY-MM-DD.
fn civil_date(days: i64) -> String {
    // Howard Hinnant's days-to-civil: eras of 400 years, years starting in March.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The after-help text ("Examples:" and indented command lines, or a sample file) as its own
/// section, its indented lines unfilled so that each stays one line with its alignment.
/// clap_mangen would fill them into one paragraph under "EXTRA".
fn after_help(roff: &mut Roff, text: &str) {
    let mut lines: Vec<&str> = text.lines().collect();
    let examples = lines
        .first()
        .is_some_and(|first| first.starts_with("Example"));
    roff.control("SH", [if examples { "EXAMPLES" } else { "NOTES" }]);
    if lines.first() == Some(&"Examples:") {
        lines.remove(0);
    }
    let mut unfilled = false;
    for line in lines {
        let indented = line.starts_with(' ');
        if indented != unfilled {
            roff.control(if indented { "nf" } else { "fi" }, []);
            unfilled = indented;
        }
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else {
            roff.text([roman(line)]);
        }
    }
    if unfilled {
        roff.control("fi", []);
    }
}

/// SEE ALSO: a command's page names the page of the command it belongs to; the top page
/// names the programs it works with.
fn see_also(roff: &mut Roff, parent: Option<&str>) {
    let others: &[(&str, &str)] = match parent {
        Some(parent) => &[(parent, SECTION)],
        None => &[
            ("pcscd", "8"),
            ("pkcs11-tool", "1"),
            ("pkcs15-tool", "1"),
            ("sc-hsm-tool", "1"),
        ],
    };
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, (page, section)) in others.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(*page));
        line.push(roman(format!("({section})")));
    }
    roff.text(line);
}

/// Writes `bytes` to standard output; a reader that stopped early (`| head`) is no error.
fn to_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write to standard output: {e}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
