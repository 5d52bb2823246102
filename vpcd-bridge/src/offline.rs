//! The subcommands that work on a card database while no emulator serves it: `init`,
//! `status`, `export`, `import`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use emulator::{Card, RedbStore};

use crate::cli::{InitArgs, Making, Profile};
use crate::{db_path, open_card};

/// `init`: initialises a card offline (or makes the demo card).
pub fn init(args: InitArgs) -> Result<(), String> {
    let path = db_path(args.db)?;
    let Making { seed, profile } = args.making;
    let mut card = open_card(&path, true, seed)?;
    if let Some(Profile::Demo) = profile {
        emulator::tools::profile::demo(&mut card)?;
        println!("Made the demo card {} in {}", card.serial(), path.display());
        return Ok(());
    }
    let options = emulator::tools::admin::InitOptions {
        so_pin: args.so_pin,
        pin: args.pin,
        label: args.label,
        dkek_shares: args.dkek_shares,
        pin_retry: args.pin_retry,
    };
    emulator::tools::admin::initialize(&mut card, &options)?;
    println!(
        "Initialised the card {} in {}",
        card.serial(),
        path.display()
    );
    Ok(())
}

/// `status`: serial, version, PINs, DKEK and every object.
pub fn status(path: &Path) -> Result<(), String> {
    if !path.exists() {
        return Err(format!("no card database at {}", path.display()));
    }
    // Status changes nothing and draws no randomness: seeded cards open too.
    let store = RedbStore::open(path).map_err(|e| e.to_string())?;
    let card = Card::open_with_rng(Box::new(store), emulator::crypto::rng::system())
        .map_err(|e| e.to_string())?;
    print!("{}", emulator::tools::report::Report::of(&card));
    Ok(())
}

/// `export`: the card's snapshot in `out` (mode 0600).
pub fn export(path: &Path, out: &Path) -> Result<(), String> {
    if !path.exists() {
        return Err(format!("no card database at {}", path.display()));
    }
    let snapshot = RedbStore::open(path)
        .and_then(|s| s.snapshot())
        .map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    std::io::Write::write_all(&mut file, &snapshot)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("Exported {} to {}", path.display(), out.display());
    Ok(())
}

/// `import`: a new card database from a snapshot; nothing is left behind when it is refused.
pub fn import(path: &Path, input: &Path) -> Result<(), String> {
    let snapshot = zeroize::Zeroizing::new(
        std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?,
    );
    let existed = path.exists();
    let mut store = RedbStore::open(path).map_err(|e| e.to_string())?;
    if let Err(e) = store.restore(&snapshot) {
        drop(store);
        if !existed {
            let _ = std::fs::remove_file(path);
        }
        return Err(e.to_string());
    }
    println!("Imported {} into {}", input.display(), path.display());
    Ok(())
}
