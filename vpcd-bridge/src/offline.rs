//! The subcommands that work on a card database while no emulator serves it: `init`,
//! `status`, `export`, `import`; and `pki`, on the PKI new cards are made under.

use std::path::Path;

use emulator::RedbStore;

use crate::cards::{db_path, open_card, NewCard, PkiChoice};
use crate::cli::{InitArgs, Making};

/// `init`: initialises a card offline (or makes the demo card).
pub fn init(args: InitArgs) -> Result<(), String> {
    let path = db_path(args.db)?;
    let pki = PkiChoice {
        file: args.making.pki.clone(),
        seed: args.making.seed,
    };
    let Making { seed, profile, .. } = args.making;
    let options = emulator::tools::admin::InitOptions {
        so_pin: args.so_pin,
        pin: args.pin,
        label: args.label,
        dkek_shares: args.dkek_shares,
        pin_retry: args.pin_retry,
        key_domains: args.key_domains,
        dkek_domains: args.create_dkek_domain,
        transport_pin: args.transport_pin,
        session_pin: args.session_pin,
        public_key_auth: args.public_key_auth.map(|n| (n, args.required_pub_keys)),
        pka_replaceable: args.pka_replaceable,
        pka_and_pin: args.pka_and_pin,
    };
    // Nothing is made before the options are known to be good.
    options.validate()?;
    if options.pin.len() == 16 {
        eprintln!(
            "sc-hsm-emulator: note: OpenSC's PKCS#11 module accepts user PINs of at most 15 characters at login; this one has 16"
        );
    }
    if profile == Some(NewCard::Blank) {
        return Err(
            "init initialises the card: --profile takes demo or initialized here (run and sandbox make blank cards)"
                .into(),
        );
    }
    let erased = what_init_erases(&path)?;
    if !erased.is_empty() && !args.force {
        return Err(format!(
            "{} holds {} keys and objects; initialising erases them:\n{}\nGive --force to \
             initialise it all the same.",
            path.display(),
            erased.len(),
            erased.join("\n")
        ));
    }
    let mut card = open_card(&path, true, seed, &pki)?;
    if profile == Some(NewCard::Demo) {
        NewCard::Demo.make(&mut card)?;
        println!("Made the demo card {} in {}", card.serial(), path.display());
        return Ok(());
    }
    emulator::tools::admin::initialize(&mut card, &options)?;
    println!(
        "Initialised the card {} in {}",
        card.serial(),
        path.display()
    );
    if !erased.is_empty() {
        println!(
            "Erased {} keys and objects:\n{}",
            erased.len(),
            erased.join("\n")
        );
    }
    Ok(())
}

/// What initialising the card in `path` erases, a line each: every key and object but the
/// device key and its certificates (nothing for a file that holds no card yet).
fn what_init_erases(path: &Path) -> Result<Vec<String>, String> {
    if crate::cards::holds_no_card_yet(path) {
        return Ok(Vec::new());
    }
    let state = RedbStore::read(path).map_err(|e| e.to_string())?;
    let report = emulator::tools::report::Report::of_state(&state, usize::MAX);
    let device_key = emulator::model::objects::key_fid(emulator::model::key::DEVICE_KEY_ID);
    Ok(report
        .objects
        .iter()
        .filter(|o| {
            o.fid != device_key && o.fid != emulator::model::objects::EF_DEVICE_CERTIFICATES
        })
        .map(|o| {
            let label = o
                .label
                .as_deref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default();
            format!("  {:04X}  {} {}{label}", o.fid, o.kind, o.detail)
        })
        .collect())
}

/// `status`: serial, version, PINs, DKEK and every object.
pub fn status(path: &Path, json: bool) -> Result<(), String> {
    if !path.exists() {
        return Err(format!("no card database at {}", path.display()));
    }
    // Read only: nothing is written or created, seeded cards show too.
    let state = RedbStore::read(path).map_err(|e| e.to_string())?;
    if state.identity.is_none() {
        return Err(format!("{} holds no card", path.display()));
    }
    let limit = emulator::Limits::default().storage_bytes;
    let report = emulator::tools::report::Report::of_state(&state, limit);
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `export`: the card's snapshot in `out`, encrypted when `passphrase` is given (`Some(None)`:
/// asked for on the terminal).
pub fn export(path: &Path, out: &Path, passphrase: Option<Option<&Path>>) -> Result<(), String> {
    if !path.exists() {
        return Err(format!("no card database at {}", path.display()));
    }
    let snapshot = RedbStore::snapshot_of(path).map_err(|e| e.to_string())?;
    let bytes = match passphrase {
        None => snapshot,
        Some(file) => {
            let passphrase = passphrase_from(file, true)?;
            let sealed = emulator::store::encrypted::encrypt(
                &snapshot,
                passphrase.as_bytes(),
                &mut *emulator::crypto::rng::system(),
            )
            .map_err(|e| e.to_string())?;
            zeroize::Zeroizing::new(sealed)
        }
    };
    write_private(out, &bytes)?;
    println!("Exported {} to {}", path.display(), out.display());
    Ok(())
}

/// Writes `bytes` to `out` with mode 0600: into a new file beside it, synced, then renamed
/// over `out`, so a failure (a full disk) leaves any previous `out` as it was.
fn write_private(out: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", out.display());
    let dir = match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    // tempfile makes the file with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".sc-hsm-export-")
        .tempfile_in(&dir)
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(out).map_err(|e| failed(e.error))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(failed)
}

/// The passphrase: the first line of `file`, or asked for on the terminal (twice when
/// `confirm`).
fn passphrase_from(
    file: Option<&Path>,
    confirm: bool,
) -> Result<zeroize::Zeroizing<String>, String> {
    let passphrase = match file {
        Some(file) => {
            let text =
                zeroize::Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                    format!("cannot read the passphrase from {}: {e}", file.display())
                })?);
            zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
        }
        None => {
            let ask = |prompt: &str| {
                rpassword::prompt_password(prompt)
                    .map(zeroize::Zeroizing::new)
                    .map_err(|e| format!("cannot ask for the passphrase (no terminal? use --passphrase-file): {e}"))
            };
            let first = ask("Passphrase: ")?;
            if confirm && *ask("The passphrase again: ")? != *first {
                return Err("the two passphrases differ".into());
            }
            first
        }
    };
    if passphrase.is_empty() {
        return Err("the passphrase is empty".into());
    }
    Ok(passphrase)
}

/// `import`: a new card database from a snapshot (plain or encrypted); nothing is left behind
/// when it is refused.
pub fn import(path: &Path, input: &Path, passphrase_file: Option<&Path>) -> Result<(), String> {
    let file = zeroize::Zeroizing::new(
        std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?,
    );
    let snapshot = if emulator::store::encrypted::is_encrypted(&file) {
        let passphrase = passphrase_from(passphrase_file, false)?;
        emulator::store::encrypted::decrypt(&file, passphrase.as_bytes())
            .map_err(|e| e.to_string())?
    } else {
        file
    };
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

/// `pki export`: the root's CV certificate to `out`, or into `out_dir` named by its holder
/// reference (the PKI is made first if missing).
pub fn pki_export(file: &Path, out: Option<&Path>, out_dir: Option<&Path>) -> Result<(), String> {
    let existed = file.exists();
    let pki =
        emulator::store::pki_file::load_or_create(file, &mut *emulator::crypto::rng::system())
            .map_err(|e| e.to_string())?;
    if !existed {
        eprintln!(
            "sc-hsm-emulator: made a new emulator PKI in {}",
            file.display()
        );
    }
    let out = match (out, out_dir) {
        (Some(out), _) => out.to_path_buf(),
        (None, Some(dir)) => dir.join(&pki.root.chr),
        (None, None) => return Err("give --out FILE or --out-dir DIR".into()),
    };
    std::fs::write(&out, &pki.root.certificate)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("{}", pki.root.chr);
    Ok(())
}

/// `pki show`: where the PKI is and the names of its two CAs.
pub fn pki_show(file: &Path) -> Result<(), String> {
    let pki = emulator::store::pki_file::load(file).map_err(|e| e.to_string())?;
    println!("PKI file:    {}", file.display());
    println!("Root CA:     {}", pki.root.chr);
    println!("Device issuer CA: {}", pki.issuer.chr);
    Ok(())
}
