//! Where a card's database is and how a card is opened or made: the default database, the
//! numbered databases of several cards, the PKI new cards are made under, and what a new card
//! is made as ([`NewCard`], the one type the command line and fleet files share).

use std::path::{Path, PathBuf};

use emulator::model::pki::Pki;
use emulator::store::pki_file;
use emulator::tools::admin::InitOptions;
use emulator::{Card, RedbStore, Store};
use serde::Deserialize;

/// What a new card is made as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NewCard {
    /// As from the factory: not initialised, no PIN.
    #[default]
    Blank,
    /// Initialised with the OpenSC wiki's PINs (user PIN 648219, SO-PIN 3537363231383830).
    Initialized,
    /// The card of the OpenSC wiki's `pkcs15-tool -D` listing (PIN 648219, SO-PIN
    /// 3537363231383830, seven "Joe Doe" keys with certificates).
    Demo,
}

impl NewCard {
    /// The name the command line and fleet files give it.
    pub fn name(self) -> &'static str {
        match self {
            NewCard::Blank => "blank",
            NewCard::Initialized => "initialized",
            NewCard::Demo => "demo",
        }
    }

    /// Makes the freshly manufactured `card` what it is to be.
    pub fn make(self, card: &mut Card) -> Result<(), String> {
        match self {
            NewCard::Blank => Ok(()),
            NewCard::Initialized => emulator::tools::admin::initialize(card, &InitOptions::wiki()),
            NewCard::Demo => emulator::tools::profile::demo(card),
        }
    }
}

/// `--db`, or the default database `$XDG_DATA_HOME/sc-hsm-emulator/card.redb`.
pub fn db_path(db: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = db {
        return Ok(path);
    }
    let data_home = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".local/share"))
            .ok_or("neither XDG_DATA_HOME nor HOME is set: give --db PATH")?,
    };
    Ok(data_home.join("sc-hsm-emulator").join("card.redb"))
}

/// `path` with `-index` before the extension: the database (or trace) of card `index` when
/// one process serves several.
pub fn numbered(path: &Path, index: u16) -> PathBuf {
    if index == 0 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{index}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{index}"),
    };
    path.with_file_name(name)
}

/// Whether the database at `path` is missing or empty: opening it makes a new card.
pub fn holds_no_card_yet(path: &Path) -> bool {
    !path.exists() || std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
}

/// The PKI file kept beside the card database `db`.
pub fn pki_beside(db: &Path) -> PathBuf {
    db.with_file_name("emulator-pki.bin")
}

/// Where a new card's PKI comes from: `--pki FILE`, the seed of `--seed`, or the file beside
/// its database. Cards of one `run --cards N --seed S` share the PKI of S.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PkiChoice {
    pub file: Option<PathBuf>,
    pub seed: Option<u64>,
}

impl PkiChoice {
    /// The PKI for a new card whose database is `db`.
    fn resolve(&self, db: &Path) -> Result<Pki, String> {
        let file = match (&self.file, self.seed) {
            (Some(file), _) => file.clone(),
            (None, Some(seed)) => {
                return Pki::from_seed(seed)
                    .map_err(|e| format!("cannot make the PKI of --seed {seed}: {e:?}"))
            }
            (None, None) => pki_beside(db),
        };
        pki_file::load_or_create(&file, &mut *emulator::crypto::rng::system())
            .map_err(|e| e.to_string())
    }
}

/// Opens an existing card (or a new one when `create`) from its database, seeded or not; a
/// new card is made under the PKI `pki` names.
pub fn open_card(
    path: &Path,
    create: bool,
    seed: Option<u64>,
    pki: &PkiChoice,
) -> Result<Card, String> {
    if !create && !path.exists() {
        return Err(format!("no card database at {}", path.display()));
    }
    let mut store = RedbStore::open(path).map_err(|e| e.to_string())?;
    // Only a new card needs (and may create) the PKI.
    let is_new = store.load().map_err(|e| e.to_string())?.identity.is_none();
    let pki = if is_new {
        Some(pki.resolve(path)?)
    } else {
        None
    };
    Card::open_issued(Box::new(store), seed, pki.as_ref()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line and fleet files take the same three names, and `name` gives them.
    #[test]
    fn a_new_cards_name_is_what_the_command_line_and_fleet_files_take() {
        use clap::ValueEnum;
        for new_card in NewCard::value_variants() {
            assert_eq!(NewCard::from_str(new_card.name(), false), Ok(*new_card));
            use serde::de::value::{Error, StrDeserializer};
            let file = NewCard::deserialize(StrDeserializer::<Error>::new(new_card.name()));
            let file = file.unwrap();
            assert_eq!(file, *new_card);
        }
    }

    #[test]
    fn databases_of_several_cards() {
        assert_eq!(
            numbered(Path::new("/d/card.redb"), 0),
            Path::new("/d/card.redb")
        );
        assert_eq!(
            numbered(Path::new("/d/card.redb"), 1),
            Path::new("/d/card-1.redb")
        );
        assert_eq!(numbered(Path::new("/d/card"), 2), Path::new("/d/card-2"));
    }
}
