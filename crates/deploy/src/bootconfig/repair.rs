//! [`repair`]: make the disk match what [`super::load`] computed, after a crash or a power
//! cut (see the module documentation of [`super`] and of [`crate::esp`]).

use super::{entries_dir, journal_dir, remove_farm, remove_path, write_refs, BootState, Found};
use crate::error::{DeployError, IoPath};
use crate::esp;
use crate::sysroot::Sysroot;
use keel_store::Repo;
use keel_utils::fsutil::sync_dir;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Remove temp files a killed atomic write left in `dir` (`.<name>.tmp-<pid>-<n>`), on the
/// root filesystem (whose renames are atomic, so a temp file never has a twin there).
fn remove_temp_files(dir: &Path) -> Result<(), DeployError> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd {
        let e = e.at(dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if esp::temp_target(&name).is_some() && e.file_type().at(dir)?.is_file() {
            remove_path(&e.path())?;
        }
    }
    Ok(())
}

/// ESP directories where Keel writes files (and a kill can leave temp files).
fn esp_write_dirs(s: &Sysroot) -> Vec<PathBuf> {
    let b = s.boot();
    let mut dirs = vec![
        entries_dir(s),
        b.join("loader"),
        b.join("EFI/BOOT"),
        b.join("EFI/systemd"),
    ];
    if let Ok(rd) = fs::read_dir(b.join("ostree")) {
        dirs.extend(rd.flatten().map(|e| e.path()));
    }
    dirs
}

/// Remove an entry file Keel created (it was never renamed, so it has no twin); an empty one
/// owns no clusters at all. A non-empty file that is not a complete entry is retired instead:
/// after a cut its clusters may belong to another file.
fn remove_broken(p: &Path) -> Result<(), DeployError> {
    match fs::metadata(p) {
        Ok(m) if m.len() > 0 => esp::retire(p),
        _ => remove_path(p),
    }
}

/// Make the disk match [`load`]'s view: finish or undo an interrupted swap, and clean up what
/// interrupted writes left (see the module documentation).
pub fn repair(s: &Sysroot, state: &BootState, repo: &Repo) -> Result<(), DeployError> {
    for d in esp_write_dirs(s) {
        esp::clean_temp_files(&d)?;
    }
    for d in [s.stateroot_dir(), s.stateroot_dir().join("deploy")] {
        remove_temp_files(&d)?;
    }
    let dir = entries_dir(s);
    let mut changed = !state.broken.is_empty();
    for p in &state.broken {
        remove_broken(p)?;
    }
    let Some(b) = state.bootversion else {
        for f in &state.found {
            remove_path(&f.path)?;
        }
        return Ok(());
    };
    // Twins: two files of one serial with the same bytes (a rename cut in half: a `.conf.new`
    // of an older Keel beside its `.conf`, or systemd's boot-counting rename). Keep one.
    let mut by_serial: HashMap<u64, Vec<&Found>> = HashMap::new();
    for f in &state.found {
        by_serial.entry(f.name.serial).or_default().push(f);
    }
    let mut retired: HashSet<&Path> = HashSet::new();
    for group in by_serial.values() {
        let Some(keep) = group
            .iter()
            .min_by_key(|f| (f.pending, f.name.counter.is_some()))
        else {
            continue;
        };
        for f in group {
            if f.path != keep.path && f.text == keep.text {
                esp::retire(&f.path)?;
                retired.insert(&f.path);
                changed = true;
            }
        }
    }
    let live = |f: &&Found| !retired.contains(f.path.as_path());
    // `.conf.new` entries of the current set (an older Keel's swap): created as `.conf`.
    for f in state
        .found
        .iter()
        .filter(live)
        .filter(|f| f.pending && f.bootversion == b)
    {
        let to = dir.join(f.name.file_name());
        if !to.exists() {
            esp::create_synced(&to, f.text.as_bytes())?;
        }
        remove_path(&f.path)?;
        changed = true;
    }
    // Roll forward: the journal's entries not on the ESP yet.
    let on_esp: HashSet<u64> = state
        .found
        .iter()
        .filter(live)
        .filter(|f| f.bootversion == b)
        .map(|f| f.name.serial)
        .collect();
    for (name, text) in &state.journal {
        if !on_esp.contains(&name.serial) {
            esp::create_synced(&dir.join(name.file_name()), text.as_bytes())?;
            changed = true;
        }
    }
    let journaled: HashSet<u64> = state.journal.iter().map(|(n, _)| n.serial).collect();
    for f in state.found.iter().filter(live).filter(|f| {
        !f.pending
            && (f.bootversion != b
                || f.deployment.is_empty()
                || !(state.journal.is_empty() || journaled.contains(&f.name.serial)))
    }) {
        if f.bootversion == b && f.deployment.is_empty() {
            tracing::warn!(
                "{}: boots no deployment (its ostree= target is gone); removed",
                f.path.display()
            );
        }
        remove_path(&f.path)?;
        changed = true;
    }
    for f in state
        .found
        .iter()
        .filter(live)
        .filter(|f| f.pending && f.bootversion != b)
    {
        remove_path(&f.path)?;
        changed = true;
    }
    if changed {
        sync_dir(&dir).at(&dir)?;
    }
    if state.stale_journal {
        remove_path(&journal_dir(s, b))?;
    }
    remove_farm(s, 1 - b)?;
    write_refs(repo, b, &state.deployments)?;
    Ok(())
}
