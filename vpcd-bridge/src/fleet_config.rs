//! Which cards a process serves, each with its database and its vpcd slot: from the
//! configuration file of `serve --config` ([`FleetConfig::load`]), or from the arguments of
//! `run` ([`FleetConfig::of_run`]: card i on vpcd port PORT+i, with the database PATH-i).
//! Either way the cards are run by the same runtime ([`crate::fleet`]).
//!
//! The file, in TOML:
//!
//! ```toml
//! pki = "emulator-pki.bin"      # optional: the PKI new cards are made under
//! http = "127.0.0.1:9180"       # optional: /healthz and /metrics
//!
//! [[card]]
//! name = "room1-01"             # unique; in every log line and metric of the card
//! db = "room1-01.redb"          # unique
//! vpcd = "10.0.0.5:35963"       # host:port of the vpcd slot; unique
//! profile = "demo"              # optional: what a new card is ("demo", or "initialized":
//!                               # the OpenSC wiki's PINs; default: blank)
//! trace_data_json = "room1-01.trace.json"  # optional: --trace-data-json for this card
//!                               # (also trace, trace_json, trace_data)
//! ```
//!
//! Relative paths are relative to the file's directory. `${NAME}` in a value is replaced by
//! the environment variable NAME (a Kubernetes pod's name, say); one that is not set is a
//! mistake. Every mistake is reported with the card it concerns; nothing starts from a file
//! with a mistake.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use emulator::{FaultRule, Limits, Timing};
use serde::Deserialize;
use vpcd_bridge::Endpoint;

use crate::cards::{numbered, NewCard};
use crate::cli::RunArgs;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    pki: Option<PathBuf>,
    http: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    card: Vec<CardEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardEntry {
    name: String,
    db: PathBuf,
    vpcd: String,
    #[serde(default)]
    profile: NewCard,
    control: Option<PathBuf>,
    #[serde(default)]
    faults: Vec<String>,
    timing: Option<String>,
    trace: Option<PathBuf>,
    trace_json: Option<PathBuf>,
    trace_data: Option<PathBuf>,
    trace_data_json: Option<PathBuf>,
}

/// One card of the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardSpec {
    /// Names the card in every log line and metric.
    pub name: String,
    pub db: PathBuf,
    /// The vpcd slot the card goes into.
    pub vpcd: Endpoint,
    /// What the card is made as if its database holds none yet.
    pub new_card: NewCard,
    /// A deterministic card's seed (`run --seed`).
    pub seed: Option<u64>,
    pub limits: Limits,
    pub traces: TraceFiles,
    /// The card's control socket, if any.
    pub control: Option<PathBuf>,
    /// Fault rules in force from the start (their text form, checked).
    pub faults: Vec<String>,
    pub timing: Timing,
}

/// Where a card writes its traces, if anywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceFiles {
    pub text: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// The data trace: every exchange in full, decoded, secrets taken out.
    pub data_text: Option<PathBuf>,
    pub data_json: Option<PathBuf>,
}

/// A checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetConfig {
    pub pki: Option<PathBuf>,
    pub http: Option<std::net::SocketAddr>,
    /// The bearer token the HTTP control verbs require (without one: loopback only).
    pub token: Option<String>,
    pub cards: Vec<CardSpec>,
}

/// The text form of each rule, checked (`which` names the card in the mistake).
pub fn checked_faults(rules: &[String], which: &str) -> Result<Vec<String>, String> {
    rules
        .iter()
        .map(|r| {
            r.parse::<FaultRule>()
                .map(|rule| rule.to_string())
                .map_err(|e| format!("{which}: fault {r:?}: {e}"))
        })
        .collect()
}

impl FleetConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<FleetConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        FleetConfig::parse(&text, dir).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Checks the text of a configuration whose relative paths start at `dir`, with `${NAME}`
    /// taken from the process's environment.
    pub fn parse(text: &str, dir: &Path) -> Result<FleetConfig, String> {
        FleetConfig::parse_with(text, dir, &|name| std::env::var(name).ok())
    }

    /// As [`FleetConfig::parse`], with `${NAME}` taken from `env`.
    pub fn parse_with(
        text: &str,
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FleetConfig, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        let expand =
            |what: &str, value: &str| expand(value, env).map_err(|e| format!("{what}: {e}"));
        let http = file
            .http
            .map(|a| expand("http", &a))
            .transpose()?
            .map(|a| {
                a.parse().map_err(|_| {
                    format!("http: {a:?} is not an address and port, like \"127.0.0.1:9180\"")
                })
            })
            .transpose()?;
        let mut cards = Vec::new();
        let (mut names, mut dbs, mut endpoints) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for (i, mut entry) in file.card.into_iter().enumerate() {
            let raw = format!("card {}", i + 1);
            entry.name = expand(&raw, &entry.name)?;
            let which = format!("card {} ({:?})", i + 1, entry.name);
            entry.vpcd = expand(&which, &entry.vpcd)?;
            let db = expand(&which, &entry.db.to_string_lossy())?;
            entry.db = PathBuf::from(db);
            if entry.name.is_empty()
                || !entry
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(format!(
                    "{which}: a name is letters, digits, '-', '_' and '.' (it names the card in logs and metrics)"
                ));
            }
            let vpcd: Endpoint = entry
                .vpcd
                .parse()
                .map_err(|e| format!("{which}: vpcd: {e}"))?;
            let db = dir.join(&entry.db);
            let control = match entry.control {
                Some(path) => Some(dir.join(expand(&which, &path.to_string_lossy())?)),
                None => default_control(&db),
            };
            let faults = checked_faults(&entry.faults, &which)?;
            let trace_file = |path: &Option<PathBuf>| -> Result<Option<PathBuf>, String> {
                path.as_ref()
                    .map(|p| expand(&which, &p.to_string_lossy()).map(|p| dir.join(p)))
                    .transpose()
            };
            let traces = TraceFiles {
                text: trace_file(&entry.trace)?,
                json: trace_file(&entry.trace_json)?,
                data_text: trace_file(&entry.trace_data)?,
                data_json: trace_file(&entry.trace_data_json)?,
            };
            let timing = match &entry.timing {
                Some(t) => t.parse().map_err(|e| format!("{which}: timing: {e}"))?,
                None => Timing::None,
            };
            if !names.insert(entry.name.clone()) {
                return Err(format!("{which}: the name is used twice"));
            }
            if !dbs.insert(db.clone()) {
                return Err(format!(
                    "{which}: the database {} is used twice",
                    db.display()
                ));
            }
            if !endpoints.insert(vpcd.to_string()) {
                return Err(format!("{which}: the vpcd slot {vpcd} is used twice"));
            }
            cards.push(CardSpec {
                name: entry.name,
                db,
                vpcd,
                new_card: entry.profile,
                seed: None,
                limits: Limits::default(),
                traces,
                control,
                faults,
                timing,
            });
        }
        let pki = file
            .pki
            .map(|p| expand("pki", &p.to_string_lossy()).map(PathBuf::from))
            .transpose()?;
        let token = match file.token_file {
            None => None,
            Some(path) => {
                let path = dir.join(expand("token_file", &path.to_string_lossy())?);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("token_file: cannot read {}: {e}", path.display()))?;
                let token = text.trim().to_string();
                if token.len() < 16 {
                    return Err(format!(
                        "token_file: {} holds a token of {} characters: give at least 16",
                        path.display(),
                        token.len()
                    ));
                }
                Some(token)
            }
        };
        Ok(FleetConfig {
            pki: pki.map(|p| dir.join(p)),
            http,
            token,
            cards,
        })
    }
}

impl FleetConfig {
    /// The cards of `run`: card i (of `--cards N`) in the vpcd slot at PORT+i, with the database
    /// `db` numbered i (`card.redb`, `card-1.redb`, ...), the seed SEED+i, and its own traces;
    /// each named by its database's file name.
    pub fn of_run(args: &RunArgs, db: &Path) -> Result<FleetConfig, String> {
        let limits = Limits {
            storage_bytes: args.storage,
            max_file_size: args.max_file_size,
            max_keys: args.max_keys,
        };
        let mut cards = Vec::new();
        for index in 0..args.cards {
            let db = numbered(db, index);
            let port = args.vpcd.port.checked_add(index);
            cards.push(CardSpec {
                name: db
                    .file_stem()
                    .map_or_else(|| index.to_string(), |s| s.to_string_lossy().into()),
                vpcd: Endpoint {
                    host: args.vpcd.host.clone(),
                    port: port.ok_or("vpcd port out of range")?,
                },
                new_card: args.making.profile.unwrap_or_default(),
                seed: args.making.seed.map(|s| s.wrapping_add(u64::from(index))),
                limits,
                traces: TraceFiles {
                    text: args.traces.trace.as_ref().map(|f| numbered(f, index)),
                    json: args.traces.trace_json.as_ref().map(|f| numbered(f, index)),
                    data_text: args.traces.trace_data.as_ref().map(|f| numbered(f, index)),
                    data_json: args
                        .traces
                        .trace_data_json
                        .as_ref()
                        .map(|f| numbered(f, index)),
                },
                control: match &args.control {
                    Some(path) => Some(numbered(path, index)),
                    None => default_control(&db),
                },
                faults: checked_faults(&args.driving.fault, "--fault")?,
                timing: args.driving.timing,
                db,
            });
        }
        Ok(FleetConfig {
            pki: args.making.pki.clone(),
            http: None,
            token: None,
            cards,
        })
    }
}

/// The control socket of a card whose database is `db`: beside it, `.control` for `.redb`;
/// none (with a warning) where that path is too long for a Unix socket.
fn default_control(db: &Path) -> Option<PathBuf> {
    let path = db.with_extension("control");
    if path.as_os_str().len() > crate::control::server::MAX_SOCKET_PATH {
        tracing::warn!(
            path = %path.display(),
            "no control socket: the path beside the database is too long for a Unix socket (give --control PATH)"
        );
        return None;
    }
    Some(path)
}

/// `value` with every `${NAME}` replaced by `env(NAME)`.
fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("{value:?}: a \"${{\" without its \"}}\""))?;
        let name = &after[..end];
        let found =
            env(name).ok_or_else(|| format!("${{{name}}} is not set in the environment"))?;
        out.push_str(&found);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
pki = "fleet-pki.bin"
http = "127.0.0.1:9180"

[[card]]
name = "a"
db = "a.redb"
vpcd = "127.0.0.1:35963"

[[card]]
name = "b.2"
db = "/abs/b.redb"
vpcd = "host-b:35964"
profile = "demo"
"#;

    #[test]
    fn a_good_file() {
        let c = FleetConfig::parse(GOOD, Path::new("/etc/fleet")).unwrap();
        assert_eq!(
            c.pki.as_deref(),
            Some(Path::new("/etc/fleet/fleet-pki.bin"))
        );
        assert_eq!(c.http.unwrap().port(), 9180);
        assert_eq!(c.cards.len(), 2);
        assert_eq!(c.cards[0].db, Path::new("/etc/fleet/a.redb"));
        assert_eq!(c.cards[0].new_card, NewCard::Blank);
        assert_eq!(c.cards[1].db, Path::new("/abs/b.redb"));
        assert_eq!(c.cards[1].vpcd.host, "host-b");
        assert_eq!(c.cards[1].new_card, NewCard::Demo);
    }

    #[test]
    fn traces_per_card_are_named_beside_the_file() {
        let text = "[[card]]\nname = \"a\"\ndb = \"a.redb\"\nvpcd = \"127.0.0.1:35963\"\ntrace_data = \"a.trace\"\ntrace_data_json = \"/var/log/${CARD}.json\"\n";
        let env = |name: &str| (name == "CARD").then(|| "a".to_string());
        let c = FleetConfig::parse_with(text, Path::new("/etc/fleet"), &env).unwrap();
        let traces = &c.cards[0].traces;
        assert_eq!(
            traces.data_text.as_deref(),
            Some(Path::new("/etc/fleet/a.trace"))
        );
        assert_eq!(
            traces.data_json.as_deref(),
            Some(Path::new("/var/log/a.json"))
        );
        assert_eq!((&traces.text, &traces.json), (&None, &None));
    }

    #[test]
    fn environment_variables_are_expanded() {
        let env = |name: &str| (name == "POD_NAME").then(|| "card-3".to_string());
        let text = "[[card]]\nname = \"${POD_NAME}\"\ndb = \"/data/${POD_NAME}.redb\"\nvpcd = \"runner-${POD_NAME}:35963\"\n";
        let c = FleetConfig::parse_with(text, Path::new("."), &env).unwrap();
        assert_eq!(c.cards[0].name, "card-3");
        assert_eq!(c.cards[0].db, Path::new("/data/card-3.redb"));
        assert_eq!(c.cards[0].vpcd.host, "runner-card-3");
        let unset = text.replace("POD_NAME}\"\ndb", "NODE}\"\ndb");
        let err = FleetConfig::parse_with(&unset, Path::new("."), &env).unwrap_err();
        assert_eq!(err, "card 1: ${NODE} is not set in the environment");
        let open = "http = \"${HOST\"";
        assert!(FleetConfig::parse_with(open, Path::new("."), &env)
            .unwrap_err()
            .contains("without its"));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = Path::new(".");
        let err = |text: &str| FleetConfig::parse(text, dir).unwrap_err();
        let card = |name: &str, db: &str, vpcd: &str| {
            format!("[[card]]\nname = \"{name}\"\ndb = \"{db}\"\nvpcd = \"{vpcd}\"\n")
        };
        let twice = card("a", "a.redb", "h:1") + &card("a", "b.redb", "h:2");
        assert!(
            err(&twice).contains("card 2 (\"a\"): the name is used twice"),
            "{}",
            err(&twice)
        );
        let db_twice = card("a", "a.redb", "h:1") + &card("b", "a.redb", "h:2");
        assert!(
            err(&db_twice).contains("card 2 (\"b\"): the database"),
            "{}",
            err(&db_twice)
        );
        let slot_twice = card("a", "a.redb", "h:1") + &card("b", "b.redb", "h:1");
        assert!(
            err(&slot_twice).contains("vpcd slot h:1 is used twice"),
            "{}",
            err(&slot_twice)
        );
        assert!(err(&card("a", "a.redb", "nohost")).contains("card 1 (\"a\"): vpcd"));
        assert!(err(&card("a b", "a.redb", "h:1")).contains("a name is letters"));
        let unknown = card("a", "a.redb", "h:1") + "colour = \"red\"\n";
        assert!(
            err(&unknown).contains("unknown field `colour`"),
            "{}",
            err(&unknown)
        );
        assert!(err("http = \"localhost\"").contains("http: \"localhost\" is not an address"));
        let profile = card("a", "a.redb", "h:1") + "profile = \"shiny\"\n";
        assert!(
            err(&profile).contains("unknown variant `shiny`"),
            "{}",
            err(&profile)
        );
        // TOML syntax errors come with their line.
        assert!(err("[[card]\n").contains("line 1"), "{}", err("[[card]\n"));
    }
}
