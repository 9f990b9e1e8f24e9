//! What a failed boot does: reboot while systemd-boot is still trying the booted entry, so that
//! its boot counting runs out and the previous deployment comes back by itself (greenboot's
//! "red" boot, for both a red health check and a failing initramfs). Bounded: never on a
//! blessed entry, never on the first boot (provisioning failures must stay visible in
//! emergency mode), and on an entry whose tries are used up only when another entry exists to
//! fall back to.
//!
//! systemd-boot tells the OS which entry it booted and whether it is being counted in the EFI
//! variable `LoaderBootCountPath` (the entry's path on the ESP, named after the decrement); the
//! entry list is in `LoaderEntries`. Both are UTF-16LE after 4 bytes of attributes.

use crate::bls::{Counter, EntryName};
use keel_utils::cmd;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the kernel shows EFI variables.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// The vendor UUID of systemd's boot loader interface variables.
const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// The first-boot karg (provisioning runs on this boot).
const FIRSTBOOT_KARG: &str = keel_proto::node::KARG_FIRSTBOOT;

/// What to do about a failed boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reboot: systemd-boot tries the entry again or falls back.
    Reboot(String),
    /// Stay (emergency mode, or a degraded system): say why.
    Stay(String),
}

/// What the boot loader reported about this boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// The kernel command line.
    pub cmdline: String,
    /// The file name of the booted entry when it is being counted.
    pub counted_entry: Option<String>,
    /// How many entries the boot loader listed.
    pub entries: usize,
}

/// Decide whether a failed boot reboots (pure; see the module doc for the rule).
pub fn decide(info: &BootInfo) -> Decision {
    if keel_utils::cmdline::kernel_params(&info.cmdline).any(|p| p == (FIRSTBOOT_KARG, None)) {
        return Decision::Stay(format!(
            "first boot ({FIRSTBOOT_KARG}): provisioning failures are not retried"
        ));
    }
    let Some(file) = &info.counted_entry else {
        return Decision::Stay(
            "the booted entry is not being counted (blessed, or not booted by systemd-boot)".into(),
        );
    };
    let Some(Counter { left, done }) = EntryName::parse(file).and_then(|n| n.counter) else {
        return Decision::Stay(format!("{file}: not a counted Keel entry"));
    };
    let done = done.unwrap_or(0);
    if left > 0 {
        return Decision::Reboot(format!(
            "entry {file} has {left} boot tries left ({done} used): rebooting to try again"
        ));
    }
    if info.entries > 1 {
        return Decision::Reboot(format!(
            "entry {file} used its {done} boot tries: rebooting into the previous entry"
        ));
    }
    Decision::Stay(format!(
        "entry {file} used its {done} boot tries and there is no other entry to fall back to"
    ))
}

fn efivar_path(efivars: &Path, name: &str) -> PathBuf {
    efivars.join(format!("{name}-{LOADER_GUID}"))
}

/// The strings in an EFI variable's content: attributes, then NUL-separated UTF-16LE.
fn efivar_strings(raw: &[u8]) -> Vec<String> {
    let units: Vec<u16> = raw
        .get(4..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    units
        .split(|u| *u == 0)
        .filter(|s| !s.is_empty())
        .map(String::from_utf16_lossy)
        .collect()
}

/// Read what the boot loader reported, from `efivars` and the command line at `cmdline`.
pub fn boot_info(efivars: &Path, cmdline: &Path) -> BootInfo {
    let read = |name: &str| {
        fs::read(efivar_path(efivars, name))
            .map(|raw| efivar_strings(&raw))
            .unwrap_or_default()
    };
    BootInfo {
        cmdline: fs::read_to_string(cmdline).unwrap_or_default(),
        counted_entry: read("LoaderBootCountPath")
            .first()
            .and_then(|p| p.rsplit(['\\', '/']).next().map(str::to_string)),
        entries: read("LoaderEntries").len(),
    }
}

/// The number of entry files in `dir` (the ESP's `loader/entries`), for when the boot loader
/// did not list its entries.
fn entry_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".conf"))
            .count()
    })
}

/// Act on a failed boot: log the decision, and reboot (without waiting) when it says so.
/// `esp_entries` (the ESP's `loader/entries`, when mounted) counts the entries when the boot
/// loader did not list them. Returns the decision.
pub fn handle_failed_boot(
    efivars: &Path,
    cmdline: &Path,
    esp_entries: Option<&Path>,
) -> anyhow::Result<Decision> {
    let mut info = boot_info(efivars, cmdline);
    if let Some(dir) = esp_entries {
        info.entries = info.entries.max(entry_files(dir));
    }
    let d = decide(&info);
    let line = match &d {
        Decision::Reboot(why) => format!("boot failed: {why}"),
        Decision::Stay(why) => format!("boot failed, not rebooting: {why}"),
    };
    tracing::warn!("{line}");
    to_console(&line);
    if let Decision::Reboot(_) = d {
        cmd::run(Command::new("systemctl").args(["--no-block", "reboot"]))?;
    }
    Ok(d)
}

/// Put `line` into the kernel log (best effort), so that the console shows why the machine
/// reboots or stays, also in the initramfs.
fn to_console(line: &str) {
    if let Ok(mut f) = fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = f.write_all(format!("<3>keel: {line}\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(cmdline: &str, entry: Option<&str>, entries: usize) -> BootInfo {
        BootInfo {
            cmdline: cmdline.into(),
            counted_entry: entry.map(str::to_string),
            entries,
        }
    }

    #[test]
    fn decisions() {
        let table = [
            (
                info("root=LABEL=root rw", Some("ostree-7-keel+2-1.conf"), 2),
                true,
            ),
            (
                info("root=LABEL=root", Some("ostree-7-keel+0-3.conf"), 2),
                true,
            ),
            (
                info("root=LABEL=root", Some("ostree-7-keel+0-3.conf"), 1),
                false,
            ),
            (info("root=LABEL=root", None, 2), false),
            (
                info("rw ignition.firstboot", Some("ostree-1-keel+2-1.conf"), 1),
                false,
            ),
            (
                info("rw ignition.firstboot=1", Some("ostree-1-keel+2-1.conf"), 1),
                true,
            ),
            (info("rw", Some("other-entry.conf"), 2), false),
        ];
        for (i, want) in table {
            let got = decide(&i);
            assert_eq!(matches!(got, Decision::Reboot(_)), want, "{i:?}: {got:?}");
        }
    }

    fn efivar(strings: &[&str]) -> Vec<u8> {
        let mut raw = vec![6, 0, 0, 0];
        for s in strings {
            for u in s.encode_utf16().chain([0]) {
                raw.extend(u.to_le_bytes());
            }
        }
        raw
    }

    #[test]
    fn reads_the_boot_loader_variables() {
        let t = tempfile::tempdir().unwrap();
        let vars = t.path();
        fs::write(
            efivar_path(vars, "LoaderBootCountPath"),
            efivar(&["\\loader\\entries\\ostree-9-keel+1-2.conf"]),
        )
        .unwrap();
        fs::write(
            efivar_path(vars, "LoaderEntries"),
            efivar(&[
                "ostree-9-keel.conf",
                "ostree-8-keel.conf",
                "auto-reboot-to-firmware-setup",
            ]),
        )
        .unwrap();
        let cmdline = vars.join("cmdline");
        fs::write(&cmdline, "root=LABEL=root rw panic=10\n").unwrap();
        let got = boot_info(vars, &cmdline);
        assert_eq!(
            got,
            info(
                "root=LABEL=root rw panic=10\n",
                Some("ostree-9-keel+1-2.conf"),
                3
            )
        );
        assert!(matches!(decide(&got), Decision::Reboot(_)));
        fs::create_dir(vars.join("entries")).unwrap();
        for f in ["ostree-9-keel+1-2.conf", "ostree-8-keel.conf", "x.conf.new"] {
            fs::write(vars.join("entries").join(f), "").unwrap();
        }
        assert_eq!(entry_files(&vars.join("entries")), 2);
        let none = boot_info(&vars.join("missing"), &vars.join("missing"));
        assert_eq!(none, BootInfo::default());
        assert!(matches!(decide(&none), Decision::Stay(_)));
    }
}
