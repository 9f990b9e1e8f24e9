//! The boot configuration: BLS entries on the ESP, the `ostree/boot.<B>` symlink farm on the
//! root filesystem, kernels on the ESP, and the swap from one entry set to the next.
//!
//! Crash safety without symlinks or atomic renames on vfat (see [`crate::esp`]): a swap builds
//! `ostree/boot.<1-B>.0` and its `boot.<1-B>` link, and writes the whole new entry set into the
//! **journal** `ostree/boot.<1-B>.keel-entries/` on the root filesystem, all synced, with
//! versions above every existing entry. Then it creates the entries on the ESP directly under
//! their final names, the new default first. The **commit point** is the new default entry being
//! complete on disk: from then on the highest-version valid `.conf` entry references
//! `boot.<1-B>`, so systemd-boot and [`load`] take that bootversion as current. A cut while the
//! default is being created leaves it empty or short (no `ostree=`), which systemd-boot skips
//! and [`load`] ignores, so the old set stays current. [`repair`] makes the disk match [`load`]'s
//! view: it creates the journal's entries still missing, removes entries and farms of the other
//! bootversion and empty entries, and retires (never deletes) files that may share clusters
//! with another (twins of a half-done rename, garbage), so no cut can free a live file's data.

use crate::bls::{boot_order, version_cmp, BootEntry, Counter, EntryName, SORT_KEY};
use crate::error::{DeployError, IoPath};
use crate::esp;
use crate::kargs;
use crate::sysroot::{Deployment, Sysroot, BOOT_TRIES};
use keel_store::Repo;
use keel_utils::fatfile::write_atomic_nomode;
use keel_utils::fsutil::{sync_dir, write_atomic};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

mod repair;
pub use repair::repair;

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
    /// The file's bytes, to recognize twins.
    text: String,
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
    /// Entry files of this stateroot without a complete entry (empty or cut short by a power
    /// cut during their creation, or garbage): systemd-boot skips them; repair removes them.
    broken: Vec<PathBuf>,
    /// The journal of the current set (file name and text of every entry it should have).
    journal: Vec<(EntryName, String)>,
    /// The current bootversion has a journal that does not describe its entries.
    stale_journal: bool,
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

/// The journal directory of bootversion `b`: the entry set that bootversion must have.
fn journal_dir(s: &Sysroot, b: u8) -> PathBuf {
    s.root().join(format!("ostree/boot.{b}.keel-entries"))
}

/// The journal of bootversion `b`, sorted by serial, highest first (empty when there is none).
fn read_journal(s: &Sysroot, b: u8) -> Result<Vec<(EntryName, String)>, DeployError> {
    let dir = journal_dir(s, b);
    let rd = match fs::read_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => r.at(&dir)?,
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.at(&dir)?;
        let Some(name) = EntryName::parse(&e.file_name().to_string_lossy()) else {
            continue;
        };
        out.push((name, fs::read_to_string(e.path()).at(&e.path())?));
    }
    out.sort_by_key(|(n, _)| std::cmp::Reverse(n.serial));
    Ok(out)
}

/// The farm link an entry boots through: (bootversion, bootcsum, deployment name or "" when
/// the entry points nowhere: no link, or no deployment behind it). `None` when the entry is not
/// complete.
fn resolve(s: &Sysroot, entry: &BootEntry) -> Option<(u8, String, String)> {
    if entry.linux.is_empty() || entry.initrd.is_empty() {
        return None;
    }
    let (bootversion, sr, bootcsum, idx) = entry.ostree_karg().and_then(parse_bootlink)?;
    let link = s
        .root()
        .join(format!("ostree/boot.{bootversion}/{sr}/{bootcsum}/{idx}"));
    let deployment = fs::read_link(&link)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|name| s.deploy_path(name).join("usr").is_dir())
        .unwrap_or_default();
    Some((bootversion, bootcsum, deployment))
}

/// Read the ESP entries of this stateroot and compute the current deployment list.
pub fn load(s: &Sysroot) -> Result<BootState, DeployError> {
    let dir = entries_dir(s);
    let mut found = Vec::new();
    let mut broken = Vec::new();
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
        // Not UTF-8 is garbage, like a file cut short.
        let text = fs::read_to_string(&path).unwrap_or_default();
        let entry = BootEntry::parse(&text);
        let Some((bootversion, bootcsum, deployment)) = resolve(s, &entry) else {
            tracing::warn!("{}: not a complete boot entry; ignored", path.display());
            broken.push(path);
            continue;
        };
        found.push(Found {
            path,
            name,
            entry,
            text,
            pending,
            bootversion,
            bootcsum,
            deployment,
        });
    }
    let default = found
        .iter()
        .filter(|f| !f.pending && !f.deployment.is_empty())
        .max_by(|a, b| {
            version_cmp(&a.entry.version, &b.entry.version).then(a.name.serial.cmp(&b.name.serial))
        });
    let current = default.map(|f| f.bootversion);
    // The journal describes the current set only if the default entry came from it (ostree
    // may have written this bootversion since; a cut in `rewrite_kargs` may leave it behind).
    let mut journal = match current {
        Some(b) => read_journal(s, b)?,
        None => Vec::new(),
    };
    let stale_journal = default.is_some_and(|d| {
        !journal.is_empty()
            && !journal
                .iter()
                .any(|(n, t)| n.serial == d.name.serial && *t == d.text)
    });
    if stale_journal {
        journal.clear();
    }
    // The current set: the journal's entries, each as its file on the ESP is (systemd renames
    // files for boot counting, and the ESP holds the kargs that boot), or as journaled when the
    // file is still missing; without a journal (sysroots written before it), the ESP's entries.
    let present = |serial: u64| {
        found.iter().find(|f| {
            !f.pending
                && Some(f.bootversion) == current
                && !f.deployment.is_empty()
                && f.name.serial == serial
        })
    };
    let of_found = |f: &Found| {
        (
            f.name.clone(),
            f.entry.clone(),
            f.bootcsum.clone(),
            f.deployment.clone(),
        )
    };
    let mut cur: Vec<(EntryName, BootEntry, String, String)> = if journal.is_empty() {
        found
            .iter()
            .filter(|f| Some(f.bootversion) == current && !f.deployment.is_empty())
            .map(of_found)
            .collect()
    } else {
        journal
            .iter()
            .filter_map(|(name, text)| match present(name.serial) {
                Some(f) => Some(of_found(f)),
                None => {
                    let entry = BootEntry::parse(text);
                    let (_, bootcsum, deployment) = resolve(s, &entry)?;
                    Some((name.clone(), entry, bootcsum, deployment))
                }
            })
            .collect()
    };
    cur.sort_by(|a, b| version_cmp(&b.1.version, &a.1.version).then(b.0.serial.cmp(&a.0.serial)));
    let mut seen = HashSet::new();
    let mut deployments = Vec::new();
    for (name, entry, bootcsum, deployment) in cur {
        let Some((commit, serial)) = Deployment::parse_name(&deployment) else {
            continue;
        };
        if !seen.insert(deployment.clone()) || !s.deploy_path(&deployment).is_dir() {
            continue;
        }
        deployments.push(Deployment {
            stateroot: s.stateroot().to_string(),
            commit,
            serial,
            bootcsum,
            kargs: kargs::split(&entry.options),
            entry: Some(name),
        });
    }
    Ok(BootState {
        bootversion: current,
        deployments,
        found,
        broken,
        journal,
        stale_journal,
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

fn syncfs(p: &Path) -> Result<(), DeployError> {
    let f = File::open(p).at(p)?;
    rustix::fs::syncfs(&f).at(p)
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

/// Copy a kernel or initramfs into its ESP directory unless it is there. The directory is
/// named by the checksum of both files; a file of the right size is trusted when a current entry
/// boots it (`in_use`), otherwise compared byte for byte (a cut can leave a file of any size).
/// Written directly under its name (never renamed, see [`crate::esp`]); referenced by an entry
/// only after it is synced.
fn install_boot_file(src: &Path, dst: &Path, in_use: bool) -> Result<(), DeployError> {
    let len = fs::metadata(src).at(src)?.len();
    if let Ok(m) = fs::metadata(dst) {
        if m.len() == len && (in_use || fs::read(dst).ok() == Some(fs::read(src).at(src)?)) {
            return Ok(());
        }
        remove_path(dst)?;
    }
    let data = fs::read(src).at(src)?;
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).at(parent)?;
    }
    esp::create_synced(dst, &data)
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
        let in_use = state.deployments.iter().any(|o| o.bootcsum == d.bootcsum);
        install_boot_file(&kdir.join("vmlinuz"), &esp.join("vmlinuz"), in_use)?;
        install_boot_file(
            &kdir.join("initramfs.img"),
            &esp.join("initramfs.img"),
            in_use,
        )?;
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
    // The new entries, default first, and their journal.
    let n = list.len() as u64;
    let mut out = Vec::new();
    let mut entries = Vec::new();
    let journal = journal_dir(s, nb);
    fs::create_dir_all(&journal).at(&journal)?;
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
        let text = BootEntry {
            title: title(repo, d),
            version: name.serial.to_string(),
            sort_key: Some(SORT_KEY.into()),
            linux: format!("/{kd}/vmlinuz"),
            initrd: format!("/{kd}/initramfs.img"),
            options: opts.join(" "),
        }
        .to_text();
        let jpath = journal.join(name.file_name());
        fs::write(&jpath, &text).at(&jpath)?;
        entries.push((name.clone(), text));
        out.push(Deployment {
            entry: Some(name),
            ..d.clone()
        });
    }
    let tmp_link = ostree.join(format!(".boot.{nb}.tmp"));
    remove_path(&tmp_link)?;
    symlink(format!("boot.{nb}.0"), &tmp_link).at(&tmp_link)?;
    syncfs(&ostree)?;
    let boot_link = ostree.join(format!("boot.{nb}"));
    fs::rename(&tmp_link, &boot_link).at(&boot_link)?;
    sync_dir(&ostree).at(&ostree)?;
    // The commit point is the first (default) entry complete on the ESP.
    let dir = entries_dir(s);
    fs::create_dir_all(&dir).at(&dir)?;
    let mut written = HashSet::new();
    for (name, text) in &entries {
        let path = dir.join(name.file_name());
        esp::create_synced(&path, text.as_bytes())?;
        written.insert(path);
    }
    for f in &state.found {
        if !written.contains(&f.path) {
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
                keel_utils::cmdline::words(&f.entry.options)
                    .into_iter()
                    .filter(|a| keel_utils::cmdline::key(a) == "ostree")
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
            let text = entry.to_text();
            // The journal first, so that an entry recreated from it has the new kargs too.
            if let Some((jname, _)) = state
                .journal
                .iter()
                .find(|(n, _)| n.serial == f.name.serial)
            {
                let jpath = journal_dir(s, f.bootversion).join(jname.file_name());
                write_atomic(&jpath, text.as_bytes(), 0o644).at(&jpath)?;
            }
            // A rename over the entry (the name must stay, for systemd-bless-boot): if a cut
            // leaves the temp file as a twin, repair retires it rather than deleting it.
            write_atomic_nomode(&f.path, |w| w.write_all(text.as_bytes())).at(&f.path)?;
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
            esp::remove_dir_keeping_retired(&e.path())?;
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
