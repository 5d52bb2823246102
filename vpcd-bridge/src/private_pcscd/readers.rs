//! The reader configuration of a private pcscd: vpcd's ports and the readers' names.

use std::path::{Path, PathBuf};

/// The TCP port vpcd listens on for `slot`.
pub fn vpcd_port(slot: u16) -> u16 {
    35963 + slot
}

/// Writes a pcscd reader configuration with `slots` vpcd slots (ports 35963 onwards) into
/// `dir/reader.conf.d` (for `pcscd --config`); returns that directory. Every path written is
/// absolute (pcscd loads drivers from its own working directory), whatever `dir` is.
///
/// One vpcd reader entry has two slots, and the driver keeps its slots in a table of its own
/// that every reader loaded from the same file shares: a second entry would take over the
/// first one's slots. So each further pair of slots gets a copy of the driver
/// (`dir/drivers/`), which pcscd loads apart, and a name of its own ([`reader_name`]).
pub fn write_reader_config(dir: &Path, slots: u16) -> Result<PathBuf, String> {
    let driver = crate::host::HostParts::find()?.vpcd_driver;
    write_reader_config_with(dir, slots, &driver)
}

pub(super) fn write_reader_config_with(
    dir: &Path,
    slots: u16,
    vpcd_driver: &Path,
) -> Result<PathBuf, String> {
    let dir = std::path::absolute(dir)
        .map_err(|e| format!("cannot make {} absolute: {e}", dir.display()))?;
    let conf = dir.join("reader.conf.d");
    let drivers = dir.join("drivers");
    let failed = |what: &Path, e: std::io::Error| format!("cannot write {}: {e}", what.display());
    std::fs::create_dir_all(&conf).map_err(|e| failed(&conf, e))?;
    let mut entries = String::new();
    for pair in 0..slots.div_ceil(2).max(1) {
        let driver = if pair == 0 {
            vpcd_driver.to_path_buf()
        } else {
            std::fs::create_dir_all(&drivers).map_err(|e| failed(&drivers, e))?;
            let copy = drivers.join(format!("libifdvpcd-{pair}.so"));
            std::fs::copy(vpcd_driver, &copy).map_err(|e| {
                format!("cannot copy the vpcd driver {}: {e}", vpcd_driver.display())
            })?;
            copy
        };
        let port = vpcd_port(2 * pair);
        entries.push_str(&format!(
            "FRIENDLYNAME \"{}\"\nDEVICENAME /dev/null:0x{port:04X}\nLIBPATH {}\nCHANNELID 0x{port:04X}\n\n",
            reader_family(pair),
            driver.display()
        ));
    }
    let file = conf.join("vpcd");
    std::fs::write(&file, entries).map_err(|e| failed(&file, e))?;
    Ok(conf)
}

/// The friendly name of the reader entry of slots `2 * pair` and `2 * pair + 1`: pcscd names
/// its slots by it ("... 00 00", "... 00 01"), so each entry needs its own.
fn reader_family(pair: u16) -> String {
    match pair {
        0 => "Virtual PCD".to_string(),
        n => format!("Virtual PCD {n}"),
    }
}

/// The name pcscd gives the reader of vpcd slot `slot` (see [`write_reader_config`]): "Virtual
/// PCD 00 00" and "... 00 01" for slots 0 and 1, "Virtual PCD 1 00 00" and "... 00 01" for 2
/// and 3, and so on.
pub fn reader_name(slot: u16) -> String {
    format!("{} 00 {:02}", reader_family(slot / 2), slot % 2)
}
