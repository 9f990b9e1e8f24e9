//! The boot configuration: BLS entries on the ESP, the `ostree/boot.<B>` symlink farm on the
//! root filesystem, kernels on the ESP, and the swap from one entry set to the next.
//!
//! Crash safety without symlinks on vfat: a swap builds `ostree/boot.<1-B>.0` and its
//! `boot.<1-B>` link, then writes every new entry as `<name>.conf.new` (ignored by systemd-boot
//! and ostree, which read only `*.conf`), all with versions above every existing entry. The
//! **commit point** is the rename of the new default entry to `.conf`: from then on the highest
//! version `.conf` entry references `boot.<1-B>`, so readers take that bootversion as current.
//! Before it, every `boot.<1-B>` entry is still `.new` and the old set is current. [`load`]
//! computes this view; [`repair`] makes the disk match it (rolls the remaining `.new` files
//! forward, or deletes them, and removes entries and farms of the other bootversion).

use crate::bls::{boot_order, version_cmp, BootEntry, Counter, EntryName, SORT_KEY};
use crate::error::{DeployError, IoPath};
use crate::kargs;
use crate::sysroot::{Deployment, Sysroot, BOOT_TRIES};
use keel_store::Repo;
use keel_utils::fatfile::write_atomic_nomode;
use keel_utils::fsutil::sync_dir;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// `loader/loader.conf` on the ESP.
pub const LOADER_CONF: &str = "timeout 0\neditor no\nauto-entries no\nauto-firmware no\n";

/// systemd-boot inside the deployed tree.
pub const SYSTEMD_BOOT_EFI: &str = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// One entry file found on the ESP.
#[derive(Debug, Clone)]
struct Found {
    path: PathBuf,
    name: EntryName,
    entry: BootEntry,
    pending: bool,
    bootversion: u8,
    bootcsum: String,
    deployment: String,
}

/// The boot configuration as it stands (after a virtual [`repair`]).
#[derive(Debug, Clone, Default)]
pub struct BootState {
    /// The current bootversion (`B` of `ostree/boot.B`), `None` before the first deployment.
    pub bootversion: Option<u8>,
    /// Deployments in entry order: highest `version` (the default) first.
    pub deployments: Vec<Deployment>,
    found: Vec<Found>,
    max_serial: u64,
}

impl BootState {
    /// Is this deployment name in the current set?
    pub fn contains(&self, name: &str) -> bool {
        self.deployments.iter().any(|d| d.name() == name)
    }
}

fn entries_dir(s: &Sysroot) -> PathBuf {
    s.boot().join("loader/entries")
}

/// Parse `/ostree/boot.<B>/<stateroot>/<bootcsum>/<index>`.
fn parse_bootlink(link: &str) -> Option<(u8, String, String, u32)> {
    let rest = link.strip_prefix("/ostree/boot.")?;
    let mut parts = rest.split('/');
    let b: u8 = parts.next()?.parse().ok()?;
    let (sr, csum, idx) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
    (b <= 1 && parts.next().is_none()).then(|| (b, sr.to_string(), csum.to_string(), idx))
}

/// Read the ESP entries of this stateroot and compute the current deployment list.
pub fn load(s: &Sysroot) -> Result<BootState, DeployError> {
    let dir = entries_dir(s);
    let mut found = Vec::new();
    let mut max_serial = 0;
    let rd = match fs::read_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BootState::default()),
        r => r.at(&dir)?,
    };
    for e in rd {
        let e = e.at(&dir)?;
        let file = e.file_name().to_string_lossy().into_owned();
        let (base, pending) = match file.strip_suffix(".new") {
            Some(b) => (b.to_string(), true),
            None => (file.clone(), false),
        };
        let Some(name) = EntryName::parse(&base) else {
            continue;
        };
        max_serial = max_serial.max(name.serial);
        if name.stateroot != s.stateroot() {
            continue;
        }
        let path = e.path();
        let entry = BootEntry::parse(&fs::read_to_string(&path).at(&path)?);
        let Some((bootversion, sr, bootcsum, idx)) = entry.ostree_karg().and_then(parse_bootlink)
        else {
            tracing::warn!("{}: no valid ostree= argument; ignored", path.display());
            continue;
        };
        let link = s
            .root()
            .join(format!("ostree/boot.{bootversion}/{sr}/{bootcsum}/{idx}"));
        let deployment = match fs::read_link(&link) {
            Ok(t) => t
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        found.push(Found {
            path,
            name,
            entry,
            pending,
            bootversion,
            bootcsum,
            deployment,
        });
    }
    let current = found
        .iter()
        .filter(|f| !f.pending && !f.deployment.is_empty())
        .max_by(|a, b| {
            version_cmp(&a.entry.version, &b.entry.version).then(a.name.serial.cmp(&b.name.serial))
        })
        .map(|f| f.bootversion);
    let mut cur: Vec<&Found> = found
        .iter()
        .filter(|f| Some(f.bootversion) == current && !f.deployment.is_empty())
        .collect();
    cur.sort_by(|a, b| {
        version_cmp(&b.entry.version, &a.entry.version).then(b.name.serial.cmp(&a.name.serial))
    });
    let mut seen = HashSet::new();
    let mut deployments = Vec::new();
    for f in cur {
        let Some((commit, serial)) = Deployment::parse_name(&f.deployment) else {
            continue;
        };
        if !seen.insert(f.deployment.clone()) || !s.deploy_path(&f.deployment).is_dir() {
            continue;
        }
        deployments.push(Deployment {
            stateroot: s.stateroot().to_string(),
            commit,
            serial,
            bootcsum: f.bootcsum.clone(),
            kargs: kargs::split(&f.entry.options),
            entry: Some(f.name.clone()),
        });
    }
    Ok(BootState {
        bootversion: current,
        deployments,
        found,
        max_serial,
    })
}

/// The order systemd-boot will try the current entries in (its first is what boots next).
pub fn boot_menu(state: &BootState) -> Vec<&Deployment> {
    let mut v: Vec<(&Deployment, BootEntry)> = state
        .deployments
        .iter()
        .map(|d| {
            let e = BootEntry {
                version: d
                    .entry
                    .as_ref()
                    .map(|n| n.serial.to_string())
                    .unwrap_or_default(),
                sort_key: Some(SORT_KEY.into()),
                ..BootEntry::default()
            };
            (d, e)
        })
        .collect();
    v.retain(|(d, _)| d.entry.is_some());
    v.sort_by(|a, b| {
        let (na, nb) = (
            a.0.entry.as_ref().expect("kept"),
            b.0.entry.as_ref().expect("kept"),
        );
        boot_order((na, &a.1), (nb, &b.1))
    });
    v.into_iter().map(|(d, _)| d).collect()
}

fn remove_path(p: &Path) -> Result<(), DeployError> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(p),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).at(p),
        Ok(_) => fs::remove_file(p).at(p),
    }
}

/// Remove `ostree/boot.<b>` and every `ostree/boot.<b>.*` farm.
fn remove_farm(s: &Sysroot, b: u8) -> Result<(), DeployError> {
    let ostree = s.root().join("ostree");
    remove_path(&ostree.join(format!("boot.{b}")))?;
    let prefix = format!("boot.{b}.");
    for e in fs::read_dir(&ostree).at(&ostree)? {
        let e = e.at(&ostree)?;
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            remove_path(&e.path())?;
        }
    }
    Ok(())
}

/// Rename a file on the ESP and fsync it under its new name: vfat writes the new directory
/// entry with size 0 and no first cluster and fills them in only when the file's inode is
/// written back, so without this a power cut after the rename left empty entries (seen in the
/// power-cut VM test: "No loader found").
fn rename_on_esp(from: &Path, to: &Path) -> Result<(), DeployError> {
    fs::rename(from, to).at(to)?;
    File::open(to).and_then(|f| f.sync_all()).at(to)
}

fn syncfs(p: &Path) -> Result<(), DeployError> {
    let f = File::open(p).at(p)?;
    rustix::fs::syncfs(&f).at(p)
}

/// Remove temp files a killed atomic write left in `dir` (`.<name>.tmp-<pid>-<n>`).
fn remove_temp_files(dir: &Path) -> Result<(), DeployError> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd {
        let e = e.at(dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp-") && e.file_type().at(dir)?.is_file() {
            remove_path(&e.path())?;
        }
    }
    Ok(())
}

/// Directories where Keel writes files atomically (and a kill can leave temp files).
fn write_dirs(s: &Sysroot) -> Vec<PathBuf> {
    let b = s.boot();
    let mut dirs = vec![
        entries_dir(s),
        b.join("loader"),
        b.join("EFI/BOOT"),
        b.join("EFI/systemd"),
        s.stateroot_dir(),
        s.stateroot_dir().join("deploy"),
    ];
    if let Ok(rd) = fs::read_dir(b.join("ostree")) {
        dirs.extend(rd.flatten().map(|e| e.path()));
    }
    dirs
}

/// Make the disk match [`load`]'s view: finish or undo an interrupted swap, and remove temp
/// files of interrupted writes.
pub fn repair(s: &Sysroot, state: &BootState, repo: &Repo) -> Result<(), DeployError> {
    for d in write_dirs(s) {
        remove_temp_files(&d)?;
    }
    let Some(b) = state.bootversion else {
        for f in &state.found {
            remove_path(&f.path)?;
        }
        return Ok(());
    };
    let mut changed = false;
    let mut pending: Vec<&Found> = state
        .found
        .iter()
        .filter(|f| f.bootversion == b && f.pending)
        .collect();
    pending.sort_by_key(|f| std::cmp::Reverse(f.name.serial));
    for f in pending {
        let to = entries_dir(s).join(f.name.file_name());
        rename_on_esp(&f.path, &to)?;
        changed = true;
    }
    for f in state
        .found
        .iter()
        .filter(|f| f.bootversion != b || f.deployment.is_empty())
    {
        remove_path(&f.path)?;
        changed = true;
    }
    if changed {
        sync_dir(&entries_dir(s)).at(&entries_dir(s))?;
    }
    remove_farm(s, 1 - b)?;
    write_refs(repo, b, &state.deployments)?;
    Ok(())
}

/// `refs/heads/ostree/<B>/0/<i>` for each deployment, like ostree, so that `ostree admin
/// cleanup` and `keel cleanup` never prune a deployed commit; other `ostree/` refs go.
fn write_refs(repo: &Repo, b: u8, list: &[Deployment]) -> Result<(), DeployError> {
    let want: Vec<(String, _)> = list
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("ostree/{b}/0/{i}"), d.commit))
        .collect();
    for (name, c) in repo.list_refs()? {
        if name.starts_with("ostree/") && !want.iter().any(|(n, w)| *n == name && *w == c) {
            repo.set_ref(&name, None)?;
        }
    }
    for (name, c) in &want {
        if repo.read_ref(name)? != Some(*c) {
            repo.set_ref(name, Some(c))?;
        }
    }
    Ok(())
}

/// The kernel version directory of a checked-out deployment.
pub fn deployed_kernel(deploy: &Path) -> Result<PathBuf, DeployError> {
    let modules = deploy.join("usr/lib/modules");
    for e in fs::read_dir(&modules).at(&modules)? {
        let p = e.at(&modules)?.path();
        if p.join("vmlinuz").is_file() && p.join("initramfs.img").is_file() {
            return Ok(p);
        }
    }
    Err(DeployError::Layout {
        path: modules,
        reason: "no <kver>/vmlinuz with initramfs.img in this deployment".into(),
    })
}

/// The ESP directory of a kernel: `ostree/<stateroot>-<bootcsum>`.
pub fn kernel_dir(stateroot: &str, bootcsum: &str) -> String {
    format!("ostree/{stateroot}-{bootcsum}")
}

/// Copy `src` to `dst` on the ESP unless `dst` already has the same bytes.
fn install_file(src: &Path, dst: &Path) -> Result<bool, DeployError> {
    let data = fs::read(src).at(src)?;
    if fs::read(dst).is_ok_and(|d| d == data) {
        return Ok(false);
    }
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    write_atomic_nomode(dst, |f| f.write_all(&data)).at(dst)?;
    Ok(true)
}

/// Copy a kernel or initramfs into its ESP directory unless it is there: the directory is named
/// by the checksum of both files and each is written atomically, so a present file of the right
/// size is the right file (as ostree trusts it), and the large files are not re-read every swap.
fn install_boot_file(src: &Path, dst: &Path) -> Result<(), DeployError> {
    let len = fs::metadata(src).at(src)?.len();
    if fs::metadata(dst).is_ok_and(|m| m.len() == len) {
        return Ok(());
    }
    install_file(src, dst).map(|_| ())
}

/// Bytes the ESP needs for `list`: kernels not there yet, plus entries.
pub fn esp_bytes_needed(s: &Sysroot, bootcsum: &str, boot_bytes: u64) -> u64 {
    let present = s.boot().join(kernel_dir(s.stateroot(), bootcsum));
    let kernel = if present.join("vmlinuz").is_file() && present.join("initramfs.img").is_file() {
        0
    } else {
        boot_bytes
    };
    kernel + 64 * 1024
}

/// systemd-boot binaries and `loader.conf` on the ESP, from the default deployment's tree.
fn install_bootloader(s: &Sysroot, deploy: &Path) -> Result<(), DeployError> {
    let efi = deploy.join(SYSTEMD_BOOT_EFI);
    if efi.is_file() {
        install_file(&efi, &s.boot().join("EFI/systemd/systemd-bootx64.efi"))?;
        install_file(&efi, &s.boot().join("EFI/BOOT/BOOTX64.EFI"))?;
    } else {
        tracing::warn!(
            "{}: missing; the ESP's boot loader is left as it is",
            efi.display()
        );
    }
    let loader = s.boot().join("loader");
    fs::create_dir_all(&loader).at(&loader)?;
    let conf = loader.join("loader.conf");
    if fs::read_to_string(&conf).ok().as_deref() != Some(LOADER_CONF) {
        write_atomic_nomode(&conf, |f| f.write_all(LOADER_CONF.as_bytes())).at(&conf)?;
    }
    Ok(())
}

fn title(repo: &Repo, d: &Deployment) -> String {
    let hex = d.commit.to_hex();
    let version = repo
        .read_commit(&d.commit)
        .ok()
        .and_then(|c| c.version().map(str::to_string))
        .unwrap_or_else(|| hex[..10].to_string());
    format!("Keel {version} ({}, {})", d.stateroot, &hex[..8])
}

/// Swap to a new entry set for `list` (default first). Deployments without an entry are new and
/// get `+3` boot counting; existing ones keep their counter. Returns `list` with its new entries.
pub fn write(
    s: &Sysroot,
    state: &BootState,
    list: &[Deployment],
    repo: &Repo,
) -> Result<Vec<Deployment>, DeployError> {
    let nb = state.bootversion.map_or(1, |b| 1 - b);
    remove_farm(s, nb)?;
    for d in list {
        let kdir = deployed_kernel(&s.deploy_path(&d.name()))?;
        let esp = s.boot().join(kernel_dir(&d.stateroot, &d.bootcsum));
        install_boot_file(&kdir.join("vmlinuz"), &esp.join("vmlinuz"))?;
        install_boot_file(&kdir.join("initramfs.img"), &esp.join("initramfs.img"))?;
    }
    if let Some(first) = list.first() {
        install_bootloader(s, &s.deploy_path(&first.name()))?;
    }
    // The farm: boot.<nb>.0/<stateroot>/<bootcsum>/<i> -> the deployment.
    let ostree = s.root().join("ostree");
    let farm = ostree.join(format!("boot.{nb}.0"));
    let mut links = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let idx = list[..i]
            .iter()
            .filter(|o| o.bootcsum == d.bootcsum)
            .count();
        let dir = farm.join(&d.stateroot).join(&d.bootcsum);
        fs::create_dir_all(&dir).at(&dir)?;
        let link = dir.join(idx.to_string());
        symlink(
            format!("../../../deploy/{}/deploy/{}", d.stateroot, d.name()),
            &link,
        )
        .at(&link)?;
        links.push(format!(
            "/ostree/boot.{nb}/{}/{}/{idx}",
            d.stateroot, d.bootcsum
        ));
    }
    let tmp_link = ostree.join(format!(".boot.{nb}.tmp"));
    remove_path(&tmp_link)?;
    symlink(format!("boot.{nb}.0"), &tmp_link).at(&tmp_link)?;
    syncfs(&ostree)?;
    let boot_link = ostree.join(format!("boot.{nb}"));
    fs::rename(&tmp_link, &boot_link).at(&boot_link)?;
    sync_dir(&ostree).at(&ostree)?;
    // New entries as `.conf.new`, then the commit point, then the rest.
    let dir = entries_dir(s);
    fs::create_dir_all(&dir).at(&dir)?;
    let n = list.len() as u64;
    let mut out = Vec::new();
    let mut pending = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let counter = match &d.entry {
            Some(e) => e.counter,
            None => Some(Counter {
                left: BOOT_TRIES,
                done: None,
            }),
        };
        let name = EntryName {
            serial: state.max_serial + n - i as u64,
            stateroot: d.stateroot.clone(),
            counter,
        };
        let mut opts = d.kargs.clone();
        opts.push(format!("ostree={}", links[i]));
        let kd = kernel_dir(&d.stateroot, &d.bootcsum);
        let entry = BootEntry {
            title: title(repo, d),
            version: name.serial.to_string(),
            sort_key: Some(SORT_KEY.into()),
            linux: format!("/{kd}/vmlinuz"),
            initrd: format!("/{kd}/initramfs.img"),
            options: opts.join(" "),
        };
        let final_path = dir.join(name.file_name());
        let new_path = dir.join(format!("{}.new", name.file_name()));
        write_atomic_nomode(&new_path, |f| f.write_all(entry.to_text().as_bytes()))
            .at(&new_path)?;
        pending.push((new_path, final_path));
        out.push(Deployment {
            entry: Some(name),
            ..d.clone()
        });
    }
    syncfs(&dir)?;
    for (new_path, final_path) in &pending {
        rename_on_esp(new_path, final_path)?;
        sync_dir(&dir).at(&dir)?;
    }
    let keep: HashSet<&PathBuf> = pending.iter().map(|(_, p)| p).collect();
    for f in &state.found {
        if !keep.contains(&f.path) {
            remove_path(&f.path)?;
        }
    }
    sync_dir(&dir).at(&dir)?;
    write_refs(repo, nb, &out)?;
    if let Some(b) = state.bootversion {
        remove_farm(s, b)?;
    }
    remove_unused_kernels(s, &out)?;
    Ok(out)
}

/// Give the current entries of the deployments in `list` their kargs, rewriting each entry file
/// under its own name (atomically; `ostree=` kept). Unlike [`write`] no entry is renamed, so the
/// name systemd-boot passed in `LoaderBootCountPath` stays valid and `systemd-bless-boot` can
/// still bless this boot (for dropping `ignition.firstboot` during the first boot).
pub fn rewrite_kargs(
    s: &Sysroot,
    state: &BootState,
    list: &[Deployment],
) -> Result<(), DeployError> {
    let mut changed = false;
    for d in list {
        for f in state.found.iter().filter(|f| {
            Some(f.bootversion) == state.bootversion && !f.pending && f.deployment == d.name()
        }) {
            let mut opts = d.kargs.clone();
            opts.extend(
                f.entry
                    .options
                    .split_whitespace()
                    .filter(|a| a.starts_with("ostree="))
                    .map(str::to_string),
            );
            let options = opts.join(" ");
            if options == f.entry.options {
                continue;
            }
            let entry = BootEntry {
                options,
                ..f.entry.clone()
            };
            write_atomic_nomode(&f.path, |w| w.write_all(entry.to_text().as_bytes())).at(&f.path)?;
            changed = true;
        }
    }
    if changed {
        sync_dir(&entries_dir(s)).at(&entries_dir(s))?;
    }
    Ok(())
}

/// Delete ESP kernel directories of this stateroot that no entry uses.
pub(crate) fn remove_unused_kernels(s: &Sysroot, list: &[Deployment]) -> Result<(), DeployError> {
    let dir = s.boot().join("ostree");
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(());
    };
    let prefix = format!("{}-", s.stateroot());
    let used: HashSet<String> = list
        .iter()
        .map(|d| format!("{prefix}{}", d.bootcsum))
        .collect();
    for e in rd {
        let e = e.at(&dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && !used.contains(&name) {
            remove_path(&e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootlinks_parse() {
        let table = [
            ("/ostree/boot.1/keel/abc/0", Some((1, "keel", "abc", 0))),
            ("/ostree/boot.0/keel/abc/12", Some((0, "keel", "abc", 12))),
            ("/ostree/boot.2/keel/abc/0", None),
            ("/ostree/boot.1/keel/abc", None),
            ("/ostree/boot.1/keel/abc/0/x", None),
            ("/ostree/deploy/keel/abc/0", None),
        ];
        for (link, want) in table {
            let got = parse_bootlink(link);
            let got = got
                .as_ref()
                .map(|(b, sr, c, i)| (*b, sr.as_str(), c.as_str(), *i));
            assert_eq!(got, want, "{link}");
        }
    }
}
