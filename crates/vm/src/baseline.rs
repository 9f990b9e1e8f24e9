//! The boot benchmark's baseline (issue 13): the very tree of a Keel commit (same Debian
//! packages, kernel and dracut initramfs) booted the plain way, with nothing of Keel's boot path.
//!
//! The disk has the layout of a Keel image (GPT; partition 1 a 512 MiB ESP, partition 2 an ext4
//! root labelled `root`, 3 GiB in all) and the same firmware path (systemd-boot from the tree as
//! `EFI/BOOT/BOOTX64.EFI`, `timeout 0`, one BLS entry), but the entry boots the tree's own
//! `vmlinuz` and `initramfs.img` with `root=LABEL=root rw` and the tree's default kargs only: no
//! `ostree=` (so the initramfs's keel module does not run prepare-root) and no `ignition.*`
//! (nothing is provisioned). The root filesystem is the tree itself as a plain root:
//! - `/usr/etc` copied to `/etc`;
//! - Keel's units (`keel-*`) unlinked from every `.wants`/`.requires`/`.upholds` directory and
//!   masked, so none of them runs;
//! - what a Debian installer leaves behind and a Keel node has from its first boot on: the tree's
//!   users (`systemd-sysusers`), `/var` from tmpfiles.d (as `keel image build` does), a machine
//!   id, the SSH host keys sshd is configured to serve, a random seed, and the benchmark's SSH
//!   key for `core`. So each boot of the baseline is a steady-state boot, comparable with a Keel
//!   node's second boot.
//!
//! No loop device or mount is used: `mkfs.ext4 -d` fills the root filesystem from the directory
//! straight into the disk file at the partition's offset (`-E offset=`), and `mkfs.vfat --offset`
//! plus `mcopy` write the ESP (this build machine's kernel has no vfat driver). Run as root, so
//! the checkout and the filesystem keep the tree's owners.

use anyhow::{bail, Context, Result};
use keel_utils::cmd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;
/// Size of the baseline disk: `keel image build`'s default, so both root filesystems are alike.
pub const DISK_BYTES: u64 = 3 << 30;
const ESP_OFFSET: u64 = MIB;
const ESP_BYTES: u64 = 512 * MIB;
const ROOT_OFFSET: u64 = ESP_OFFSET + ESP_BYTES;
/// Root partition: from the ESP's end to 1 MiB before the disk's end (the backup GPT).
const ROOT_BYTES: u64 = DISK_BYTES - ROOT_OFFSET - MIB;
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const ROOT_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
/// The ESP directory holding the kernel and initramfs.
const ESP_KERNEL_DIR: &str = "baseline";
/// systemd-boot's configuration, as on a Keel image: no menu, no automatic entries.
pub const LOADER_CONF: &str = "timeout 0\neditor no\nauto-entries no\nauto-firmware no\n";
/// The user the benchmark logs in as.
pub const USER: &str = "core";

/// Build the baseline disk of commit `rev` of the repository `repo` in `work` (checked out with
/// the `keel` binary), with `ssh_pubkey` authorized for [`USER`]; returns the raw disk's path
/// (`work/baseline.raw`). The checkout is removed again.
pub fn build_baseline(
    keel: &Path,
    repo: &Path,
    rev: &str,
    work: &Path,
    ssh_pubkey: &str,
) -> Result<PathBuf> {
    let tree = work.join("baseline-root");
    let esp = work.join("baseline-esp");
    for d in [&tree, &esp] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
        }
    }
    cmd::run(
        Command::new(keel)
            .arg("repo")
            .arg("--repo")
            .arg(repo)
            .arg("checkout")
            .arg(rev)
            .arg(&tree),
    )
    .with_context(|| format!("checking out {rev} of {}", repo.display()))?;
    make_plain_root(&tree, ssh_pubkey)?;
    stage_esp(&tree, &esp)?;
    let disk = work.join("baseline.raw");
    let tmp = work.join("baseline.raw.tmp");
    assemble(&tmp, &tree, &esp)?;
    std::fs::rename(&tmp, &disk).with_context(|| format!("renaming to {}", disk.display()))?;
    for d in [&tree, &esp] {
        std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
    }
    Ok(disk)
}

/// Turn the Keel tree at `root` into a plain root filesystem (see the module doc).
pub fn make_plain_root(root: &Path, ssh_pubkey: &str) -> Result<()> {
    let etc = root.join("etc");
    if etc.symlink_metadata().is_ok() {
        bail!(
            "{} exists: not a Keel tree (it keeps /etc in /usr/etc)",
            etc.display()
        );
    }
    cmd::run(
        Command::new("cp")
            .arg("-a")
            .arg(root.join("usr/etc"))
            .arg(&etc),
    )
    .context("copying /usr/etc to /etc")?;
    mask_keel_units(root)?;
    let r = format!("--root={}", root.display());
    cmd::run(Command::new("systemd-sysusers").arg(&r)).context("creating the tree's users")?;
    cmd::run(Command::new("systemd-tmpfiles").args(["--create", "--prefix=/var", &r]))
        .context("creating /var from the tree's tmpfiles.d")?;
    let machine_id = etc.join("machine-id");
    if machine_id.exists() {
        std::fs::remove_file(&machine_id)?;
    }
    cmd::run(Command::new("systemd-machine-id-setup").arg(&r)).context("making a machine id")?;
    host_keys(root)?;
    let seed_dir = root.join("var/lib/systemd");
    std::fs::create_dir_all(&seed_dir)?;
    let mut seed = vec![0u8; 512];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut seed)?;
    write_mode(&seed_dir.join("random-seed"), &seed, 0o600)?;
    install_ssh_key(root, USER, ssh_pubkey)
}

/// Is `name` one of Keel's units?
pub fn is_keel_unit(name: &str) -> bool {
    name.starts_with("keel-")
        && [
            ".service", ".path", ".timer", ".socket", ".target", ".mount",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Unlink Keel's units from every `.wants`, `.requires` and `.upholds` directory of
/// `/usr/lib/systemd/system` and `/etc/systemd/system` in `root`, and mask each (a link to
/// `/dev/null` in `/etc/systemd/system`), whether the tree ships it or only links it. Returns
/// the masked units, sorted.
pub fn mask_keel_units(root: &Path) -> Result<Vec<String>> {
    let mut units = Vec::new();
    for base in ["usr/lib/systemd/system", "etc/systemd/system"] {
        let base = root.join(base);
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in entries {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dep_dir = [".wants", ".requires", ".upholds"]
                .iter()
                .any(|s| name.ends_with(s));
            if is_dep_dir && e.file_type()?.is_dir() {
                for link in std::fs::read_dir(e.path())? {
                    let link = link?;
                    let unit = link.file_name().to_string_lossy().into_owned();
                    if is_keel_unit(&unit) {
                        std::fs::remove_file(link.path())
                            .with_context(|| format!("removing {}", link.path().display()))?;
                        units.push(unit);
                    }
                }
            } else if is_keel_unit(&name) {
                units.push(name);
            }
        }
    }
    units.sort();
    units.dedup();
    let etc_units = root.join("etc/systemd/system");
    std::fs::create_dir_all(&etc_units)?;
    for u in &units {
        let p = etc_units.join(u);
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
        symlink("/dev/null", &p).with_context(|| format!("masking {u}"))?;
    }
    Ok(units)
}

/// The host key files sshd serves according to `config` (the text of `sshd_config` and its
/// drop-ins), relative to the root (`etc/ssh/ssh_host_ed25519_key`).
pub fn configured_host_keys(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let key = w.next()?;
            let path = w.next()?;
            key.eq_ignore_ascii_case("HostKey")
                .then(|| path.trim_start_matches('/').to_string())
        })
        .collect()
}

/// Make the SSH host keys, as Debian's openssh-server does when installed: the ones the
/// configuration names (Keel's serves Ed25519 and ECDSA, which `keel-sshd-keygen.service`
/// makes on a node's first boot), or ssh-keygen's default set when it names none.
fn host_keys(root: &Path) -> Result<()> {
    let ssh = root.join("etc/ssh");
    let mut config = std::fs::read_to_string(ssh.join("sshd_config")).unwrap_or_default();
    if let Ok(dir) = std::fs::read_dir(ssh.join("sshd_config.d")) {
        let mut drop_ins: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        drop_ins.sort();
        for p in drop_ins {
            config.push_str(&std::fs::read_to_string(&p)?);
            config.push('\n');
        }
    }
    let keys = configured_host_keys(&config);
    if keys.is_empty() {
        cmd::run(Command::new("ssh-keygen").arg("-A").arg("-f").arg(root))
            .context("making SSH host keys")?;
    }
    for k in keys {
        let path = root.join(&k);
        if path.exists() {
            continue;
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some(kind) = name
            .strip_prefix("ssh_host_")
            .and_then(|n| n.strip_suffix("_key"))
        else {
            bail!("cannot tell the key type of host key {k}");
        };
        cmd::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", "", "-C", "", "-f"])
                .arg(&path),
        )
        .with_context(|| format!("making SSH host key {k}"))?;
    }
    Ok(())
}

/// A user's uid, gid and home directory in `passwd` (the text of `/etc/passwd`).
pub fn passwd_entry(passwd: &str, user: &str) -> Option<(u32, u32, String)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || f[0] != user {
            return None;
        }
        Some((f[2].parse().ok()?, f[3].parse().ok()?, f[5].to_string()))
    })
}

/// Authorize `pubkey` for `user` of the root `root`: `~/.ssh` (0700) and
/// `~/.ssh/authorized_keys` (0600), owned by the user, as is the home directory.
pub fn install_ssh_key(root: &Path, user: &str, pubkey: &str) -> Result<()> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd"))
        .with_context(|| format!("reading {}/etc/passwd", root.display()))?;
    let Some((uid, gid, home)) = passwd_entry(&passwd, user) else {
        bail!("user {user} is not in {}/etc/passwd", root.display());
    };
    let home = root.join(home.trim_start_matches('/'));
    let ssh = home.join(".ssh");
    let keys = ssh.join("authorized_keys");
    if !home.is_dir() {
        std::fs::create_dir_all(&home)?;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))?;
    }
    std::fs::create_dir_all(&ssh)?;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700))?;
    write_mode(&keys, format!("{}\n", pubkey.trim()).as_bytes(), 0o600)?;
    for p in [&home, &ssh, &keys] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to {user}", p.display()))?;
    }
    Ok(())
}

fn write_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// The kernel version directory of `root`'s `/usr/lib/modules` holding `vmlinuz` and
/// `initramfs.img` (there must be exactly one).
pub fn kernel_dir(root: &Path) -> Result<PathBuf> {
    let modules = root.join("usr/lib/modules");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&modules)
        .with_context(|| format!("listing {}", modules.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("vmlinuz").is_file() && p.join("initramfs.img").is_file())
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!(
            "no kernel with vmlinuz and initramfs.img in {}",
            modules.display()
        ),
        _ => bail!("several kernels in {}: {found:?}", modules.display()),
    }
}

/// The baseline's kernel command line: the root by label, read-write, then the tree's default
/// kargs (`/usr/lib/keel/kargs`) and the serial console unless they name it; never Keel's own
/// arguments (`ostree=`, `ignition.*`), which would make the initramfs act as Keel's.
pub fn kernel_options(default_kargs: &str) -> String {
    let mut args = vec!["root=LABEL=root".to_string(), "rw".to_string()];
    for a in keel_utils::cmdline::words(default_kargs) {
        let keel = a.starts_with("ostree=") || a.starts_with("ignition.");
        let ours = a.starts_with("root=") || a == "rw" || a == "ro";
        if !keel && !ours && !args.iter().any(|x| x == a) {
            args.push(a.to_string());
        }
    }
    if !args.iter().any(|a| a.starts_with("console=ttyS0")) {
        args.push("console=ttyS0,115200n8".into());
    }
    args.join(" ")
}

/// The one BLS type 1 entry, for kernel version `kver`.
pub fn bls_entry(kver: &str, options: &str) -> String {
    format!(
        "title Debian {kver} (Keel tree, plain boot)\nversion 1\n\
         linux /{ESP_KERNEL_DIR}/vmlinuz\ninitrd /{ESP_KERNEL_DIR}/initramfs.img\noptions {options}\n"
    )
}

/// Lay out the ESP's contents in `esp`: systemd-boot, loader.conf, the entry, kernel and
/// initramfs.
fn stage_esp(root: &Path, esp: &Path) -> Result<()> {
    let kdir = kernel_dir(root)?;
    let kver = kdir.file_name().unwrap_or_default().to_string_lossy();
    let kargs = std::fs::read_to_string(root.join("usr/lib/keel/kargs")).unwrap_or_default();
    let sdboot = root.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi");
    let copies = [
        (sdboot.clone(), "EFI/BOOT/BOOTX64.EFI"),
        (sdboot, "EFI/systemd/systemd-bootx64.efi"),
        (kdir.join("vmlinuz"), "baseline/vmlinuz"),
        (kdir.join("initramfs.img"), "baseline/initramfs.img"),
    ];
    for (from, to) in copies {
        let to = esp.join(to);
        std::fs::create_dir_all(to.parent().unwrap_or(esp))?;
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    let entries = esp.join("loader/entries");
    std::fs::create_dir_all(&entries)?;
    std::fs::write(esp.join("loader/loader.conf"), LOADER_CONF)?;
    std::fs::write(
        entries.join("baseline.conf"),
        bls_entry(&kver, &kernel_options(&kargs)),
    )?;
    Ok(())
}

/// `sgdisk` arguments for the baseline's table (a Keel image's layout on [`DISK_BYTES`]).
pub fn sgdisk_args() -> Vec<String> {
    let (esp, root) = (ESP_OFFSET / 512, ROOT_OFFSET / 512);
    vec![
        "--clear".into(),
        format!("--new=1:{esp}:{}", esp + ESP_BYTES / 512 - 1),
        format!("--typecode=1:{ESP_TYPE}"),
        "--change-name=1:EFI-SYSTEM".into(),
        format!("--new=2:{root}:{}", root + ROOT_BYTES / 512 - 1),
        format!("--typecode=2:{ROOT_TYPE}"),
        "--change-name=2:root".into(),
    ]
}

/// Write the disk `disk`: table, ESP from `esp`, root filesystem from `root`.
fn assemble(disk: &Path, root: &Path, esp: &Path) -> Result<()> {
    std::fs::File::create(disk)
        .and_then(|f| f.set_len(DISK_BYTES))
        .with_context(|| format!("creating {}", disk.display()))?;
    cmd::run(Command::new("sgdisk").args(sgdisk_args()).arg(disk))
        .context("writing the baseline's partition table")?;
    cmd::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "root", "-E"])
            .arg(format!(
                "offset={ROOT_OFFSET},lazy_itable_init=0,lazy_journal_init=0"
            ))
            .arg("-d")
            .arg(root)
            .arg(disk)
            .arg(format!("{}k", ROOT_BYTES / 1024)),
    )
    .context("making the baseline's root filesystem from the tree")?;
    cmd::run(
        Command::new("mkfs.vfat")
            .args(["-F", "32", "-n", "EFI-SYSTEM"])
            .arg(format!("--offset={}", ESP_OFFSET / 512))
            .arg(disk)
            .arg((ESP_BYTES / 1024).to_string()),
    )
    .context("making the baseline's EFI system partition")?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(esp)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    cmd::run(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-s", "-Q", "-m", "-i"])
            .arg(format!("{}@@{ESP_OFFSET}", disk.display()))
            .args(&entries)
            .arg("::/"),
    )
    .context("filling the baseline's EFI system partition")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_drops_keel_arguments() {
        for (kargs, want) in [
            (
                "console=tty0 console=ttyS0,115200n8 panic=10\n",
                "root=LABEL=root rw console=tty0 console=ttyS0,115200n8 panic=10",
            ),
            ("", "root=LABEL=root rw console=ttyS0,115200n8"),
            (
                "ro root=/dev/vda2 quiet ignition.firstboot ostree=/ostree/boot.1/x rw quiet",
                "root=LABEL=root rw quiet console=ttyS0,115200n8",
            ),
        ] {
            assert_eq!(kernel_options(kargs), want, "{kargs:?}");
        }
    }

    #[test]
    fn entry_and_table() {
        let e = bls_entry("6.1.0-28-amd64", "root=LABEL=root rw");
        for want in [
            "linux /baseline/vmlinuz\n",
            "initrd /baseline/initramfs.img\n",
            "options root=LABEL=root rw\n",
        ] {
            assert!(e.contains(want), "{want:?} not in {e}");
        }
        assert!(!e.contains("ostree"), "{e}");
        let t = sgdisk_args().join(" ");
        assert!(
            t.contains("--new=1:2048:1050623") && t.contains("--new=2:1050624:6289407"),
            "{t}"
        );
    }

    #[test]
    fn keel_units_are_told_apart() {
        for (name, want) in [
            ("keel-healthcheck.service", true),
            ("keel-finalize-staged.path", true),
            ("keel-agent.timer", true),
            ("keel-agent.service.d", false),
            ("ssh.service", false),
            ("mykeel-x.service", false),
        ] {
            assert_eq!(is_keel_unit(name), want, "{name}");
        }
    }

    #[test]
    fn masks_keel_units_and_their_links() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let lib = root.join("usr/lib/systemd/system");
        let etc = root.join("etc/systemd/system");
        for dir in [
            lib.join("multi-user.target.wants"),
            lib.join("boot-complete.target.requires"),
            etc.join("multi-user.target.wants"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
        }
        for f in [
            "keel-healthcheck.service",
            "keel-growfs.service",
            "ssh.service",
        ] {
            std::fs::write(lib.join(f), "[Unit]\n").unwrap();
        }
        let links = [
            (
                lib.join("boot-complete.target.requires/keel-healthcheck.service"),
                "../keel-healthcheck.service",
            ),
            (
                lib.join("multi-user.target.wants/keel-growfs.service"),
                "../keel-growfs.service",
            ),
            (
                etc.join("multi-user.target.wants/keel-agent.service"),
                "/lib/systemd/system/keel-agent.service",
            ),
            (
                etc.join("multi-user.target.wants/ssh.service"),
                "/lib/systemd/system/ssh.service",
            ),
        ];
        for (l, to) in &links {
            symlink(to, l).unwrap();
        }
        let masked = mask_keel_units(root).unwrap();
        assert_eq!(
            masked,
            [
                "keel-agent.service",
                "keel-growfs.service",
                "keel-healthcheck.service"
            ]
        );
        for (l, _) in &links[..3] {
            assert!(l.symlink_metadata().is_err(), "{} kept", l.display());
        }
        assert!(
            links[3].0.symlink_metadata().is_ok(),
            "ssh.service unlinked"
        );
        for u in &masked {
            assert_eq!(
                std::fs::read_link(etc.join(u)).unwrap(),
                Path::new("/dev/null")
            );
        }
        assert!(lib.join("keel-growfs.service").is_file(), "unit files stay");
        // Idempotent.
        assert_eq!(mask_keel_units(root).unwrap(), masked);
    }

    #[test]
    fn host_keys_from_config() {
        let conf = "# HostKey /etc/ssh/commented\nAuthorizedKeysFile .ssh/authorized_keys\n\
                    HostKey /etc/ssh/ssh_host_ed25519_key\nhostkey /etc/ssh/ssh_host_ecdsa_key\n";
        assert_eq!(
            configured_host_keys(conf),
            ["etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ecdsa_key"]
        );
        assert!(configured_host_keys("Port 22\n").is_empty());
    }

    #[test]
    fn passwd_lookup() {
        let p = "root:x:0:0:root:/root:/bin/bash\ncore:x:1000:1001:Keel admin:/var/home/core:/bin/bash\n";
        assert_eq!(
            passwd_entry(p, "core"),
            Some((1000, 1001, "/var/home/core".into()))
        );
        assert_eq!(passwd_entry(p, "cor"), None);
        assert_eq!(passwd_entry("core:x:y:1:::", "core"), None);
    }

    #[test]
    fn ssh_key_for_core() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let me = std::fs::metadata(root).unwrap();
        let (uid, gid) = (
            std::os::unix::fs::MetadataExt::uid(&me),
            std::os::unix::fs::MetadataExt::gid(&me),
        );
        std::fs::write(
            root.join("etc/passwd"),
            format!("core:x:{uid}:{gid}:Keel admin:/var/home/core:/bin/bash\n"),
        )
        .unwrap();
        install_ssh_key(root, "core", "ssh-ed25519 AAAA test\n").unwrap();
        let keys = root.join("var/home/core/.ssh/authorized_keys");
        assert_eq!(
            std::fs::read_to_string(&keys).unwrap(),
            "ssh-ed25519 AAAA test\n"
        );
        for (p, mode) in [
            (keys.as_path(), 0o600),
            (&root.join("var/home/core/.ssh"), 0o700),
            (&root.join("var/home/core"), 0o700),
        ] {
            let m = std::fs::metadata(p).unwrap();
            assert_eq!(m.permissions().mode() & 0o7777, mode, "{}", p.display());
        }
        assert!(install_ssh_key(root, "nobody", "k").is_err());
    }

    #[test]
    fn kernel_is_found() {
        let d = tempfile::tempdir().unwrap();
        assert!(kernel_dir(d.path()).is_err());
        let k = d.path().join("usr/lib/modules/6.1.0-28-amd64");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::create_dir_all(d.path().join("usr/lib/modules/6.1.0-27-amd64")).unwrap();
        assert!(kernel_dir(d.path()).is_err(), "no vmlinuz yet");
        std::fs::write(k.join("vmlinuz"), b"k").unwrap();
        std::fs::write(k.join("initramfs.img"), b"i").unwrap();
        assert_eq!(kernel_dir(d.path()).unwrap(), k);
    }

    /// A whole disk from a small fake tree, read back with sgdisk, mtools and debugfs.
    #[test]
    fn disk_from_a_small_tree() {
        let tools = [
            "sgdisk",
            "mkfs.ext4",
            "mkfs.vfat",
            "mcopy",
            "mtype",
            "debugfs",
            "ssh-keygen",
            "systemd-sysusers",
            "systemd-tmpfiles",
            "systemd-machine-id-setup",
        ];
        if let Some(t) = tools.iter().find(|t| !cmd::have(t)) {
            keel_testsupport::skip(&format!(
                "disk_from_a_small_tree: {t} missing (apt-get install {})",
                cmd::package_for(t)
            ));
            return;
        }
        if std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .ok()
            != Some(0)
        {
            keel_testsupport::skip("disk_from_a_small_tree: needs root (owners in the filesystem)");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("tree");
        let put = |p: &str, s: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        put("usr/etc/hostname", "baseline\n");
        put(
            "usr/etc/ssh/sshd_config.d/40-keel.conf",
            "HostKey /etc/ssh/ssh_host_ed25519_key\n",
        );
        put(
            "usr/lib/sysusers.d/core.conf",
            "u core 1000 \"Keel admin\" /var/home/core /bin/sh\n",
        );
        put("usr/lib/tmpfiles.d/core.conf", "d /var/home 0755 0 0 -\n");
        put("usr/lib/keel/kargs", "console=ttyS0,115200n8 panic=10\n");
        put("usr/lib/systemd/boot/efi/systemd-bootx64.efi", "MZ");
        put("usr/lib/systemd/system/keel-growfs.service", "[Unit]\n");
        put("usr/lib/modules/6.1.0-28-amd64/vmlinuz", "kernel");
        put("usr/lib/modules/6.1.0-28-amd64/initramfs.img", "initrd");
        std::fs::create_dir_all(root.join("var")).unwrap();
        make_plain_root(&root, "ssh-ed25519 AAAA bench").unwrap();
        let esp = d.path().join("esp");
        stage_esp(&root, &esp).unwrap();
        let disk = d.path().join("disk.raw");
        assemble(&disk, &root, &esp).unwrap();

        let table = cmd::run_stdout(Command::new("sgdisk").arg("-p").arg(&disk)).unwrap();
        assert!(
            table.contains("EFI-SYSTEM") && table.contains(" root"),
            "{table}"
        );
        let mtype = |p: &str| {
            cmd::run_stdout(
                Command::new("mtype")
                    .env("MTOOLS_SKIP_CHECK", "1")
                    .arg("-i")
                    .arg(format!("{}@@{ESP_OFFSET}", disk.display()))
                    .arg(format!("::{p}")),
            )
            .unwrap()
        };
        assert_eq!(mtype("/loader/loader.conf"), LOADER_CONF);
        assert!(mtype("/loader/entries/baseline.conf")
            .contains("options root=LABEL=root rw console=ttyS0,115200n8 panic=10\n"));
        assert_eq!(mtype("/baseline/initramfs.img"), "initrd");
        assert_eq!(mtype("/EFI/BOOT/BOOTX64.EFI"), "MZ");
        let debugfs = |req: &str| {
            cmd::run_stdout(
                Command::new("debugfs")
                    .arg("-R")
                    .arg(req)
                    .arg(format!("{}?offset={ROOT_OFFSET}", disk.display())),
            )
            .unwrap()
        };
        assert_eq!(debugfs("cat /etc/hostname"), "baseline\n");
        let keys = debugfs("stat /var/home/core/.ssh/authorized_keys");
        assert!(
            keys.contains("User:  1000") && keys.contains("Mode:  0600"),
            "{keys}"
        );
        assert!(debugfs("stat /etc/ssh/ssh_host_ed25519_key").contains("Mode:  0600"));
        assert_eq!(debugfs("cat /etc/machine-id").trim().len(), 32);
        let masked = debugfs("stat /etc/systemd/system/keel-growfs.service");
        assert!(masked.contains("/dev/null"), "{masked}");
    }
}
