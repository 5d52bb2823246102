//! The working directories of private pcscds whose owner ended without removing them.

use std::time::Duration;

/// The file in a working directory that names the process owning it: `pid start-time`.
pub(super) const OWNER: &str = "owner";

/// A process's start time (clock ticks after boot, `/proc/PID/stat` field 22), which tells a
/// process from a later one with the same PID.
pub(super) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count from after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Removes the working directories (`prefix*` in the temporary directory) of processes that
/// ended without removing theirs (killed with SIGKILL): they may hold a card's private keys.
/// A directory without a readable owner file is removed once it is a minute old.
pub(super) fn remove_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mine = std::os::unix::fs::MetadataExt::uid(&meta)
            == std::fs::metadata("/proc/self")
                .map_or(u32::MAX, |m| std::os::unix::fs::MetadataExt::uid(&m));
        if !meta.is_dir() || !mine {
            continue;
        }
        let old = || {
            meta.modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(60))
        };
        // An owner file that does not parse may be one being written this instant (another
        // process between creating its directory and writing its owner): only its age counts.
        let owner = std::fs::read_to_string(path.join(OWNER)).ok();
        let mut fields = owner
            .iter()
            .flat_map(|o| o.split_whitespace())
            .map(|f| f.parse::<u64>().ok());
        let stale = match (fields.next().flatten(), fields.next().flatten()) {
            (Some(pid), Some(started)) => {
                u32::try_from(pid).ok().and_then(start_time) != Some(started)
            }
            _ => old(),
        };
        if stale {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_directories_of_ended_processes_are_removed() {
        let prefix = format!("sc-hsm-stale-test-{}-", std::process::id());
        let make = |owner: Option<String>| {
            let dir = tempfile::Builder::new()
                .prefix(&prefix)
                .tempdir()
                .unwrap()
                .keep();
            if let Some(owner) = owner {
                std::fs::write(dir.join(OWNER), owner).unwrap();
            }
            dir
        };
        let me = std::process::id();
        let alive = make(Some(format!("{me} {}", start_time(me).unwrap())));
        let being_written = make(Some(String::new()));
        let no_owner_yet = make(None);
        // A process id that is not running, or not with that start time.
        let ended = make(Some(format!("{me} 1")));
        remove_stale(&prefix);
        for kept in [&alive, &being_written, &no_owner_yet] {
            assert!(kept.exists(), "{} was removed", kept.display());
            std::fs::remove_dir_all(kept).unwrap();
        }
        assert!(!ended.exists());
    }
}
