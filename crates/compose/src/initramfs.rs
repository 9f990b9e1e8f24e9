//! The kernel and the initramfs: the kernel goes to `/usr/lib/modules/<kver>/vmlinuz`, the module
//! index is rebuilt for the modules the dpkg filters kept, and dracut (the tree's own, in a
//! chroot, with the tree's kernel) builds `/usr/lib/modules/<kver>/initramfs.img`, reproducibly.

use crate::chroot;
use crate::manifest::Kernel;
use anyhow::{bail, Context};
use std::fs;
use std::path::Path;

/// The kernel version of the tree: the one directory in `/usr/lib/modules`, if any.
pub fn kernel_version(tree: &Path) -> anyhow::Result<Option<String>> {
    let dir = tree.join("usr/lib/modules");
    let mut kvers = Vec::new();
    match fs::read_dir(&dir) {
        Ok(rd) => {
            for e in rd {
                let e = e.with_context(|| format!("reading {}", dir.display()))?;
                if e.file_type()?.is_dir() {
                    kvers.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    kvers.sort();
    match kvers.len() {
        0 => Ok(None),
        1 => Ok(kvers.pop()),
        _ => bail!(
            "the tree has several kernels ({}); install exactly one kernel package",
            kvers.join(", ")
        ),
    }
}

/// Move the kernel image (and its config) from `/boot` to `/usr/lib/modules/<kver>/`, and drop
/// the rest of `/boot` and the `/vmlinuz`, `/initrd.img` symlinks.
pub fn place_kernel(tree: &Path, kver: &str) -> anyhow::Result<()> {
    let moddir = tree.join("usr/lib/modules").join(kver);
    let vmlinuz = moddir.join("vmlinuz");
    let boot_image = tree.join("boot").join(format!("vmlinuz-{kver}"));
    if boot_image.exists() {
        fs::rename(&boot_image, &vmlinuz)
            .with_context(|| format!("moving {} to {}", boot_image.display(), vmlinuz.display()))?;
    }
    if !vmlinuz.exists() {
        bail!(
            "kernel {kver} has no image in /boot or {}",
            vmlinuz.display()
        );
    }
    let config = tree.join("boot").join(format!("config-{kver}"));
    if config.exists() {
        fs::rename(&config, moddir.join("config"))?;
    }
    for name in ["vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"] {
        let p = tree.join(name);
        if fs::symlink_metadata(&p).is_ok() {
            fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

/// Where [`place_kernel`] moved a file the kernel package lists under `/boot`, if it did.
pub fn moved_from_boot(listed: &str, kver: &str) -> Option<String> {
    let name = listed.strip_prefix("/boot/")?;
    let dest = match name.strip_suffix(kver)? {
        "vmlinuz-" => "vmlinuz",
        "config-" => "config",
        _ => return None,
    };
    Some(format!("/usr/lib/modules/{kver}/{dest}"))
}

/// The dracut command line (run inside the tree).
pub fn dracut_argv(kver: &str, k: &Kernel) -> Vec<String> {
    let mut argv: Vec<String> = [
        "dracut",
        "--force",
        "--no-hostonly",
        "--no-hostonly-cmdline",
        "--reproducible",
        "--no-early-microcode",
        "--compress",
        "zstd",
        "--kver",
        kver,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !k.dracut_modules.is_empty() {
        argv.push("--add".into());
        argv.push(k.dracut_modules.join(" "));
    }
    if !k.dracut_omit.is_empty() {
        argv.push("--omit".into());
        argv.push(k.dracut_omit.join(" "));
    }
    argv.push(format!("/usr/lib/modules/{kver}/initramfs.img"));
    argv
}

/// Rebuild the module index and build the initramfs with the tree's dracut.
pub fn build(tree: &Path, kver: &str, k: &Kernel, epoch: u64) -> anyhow::Result<()> {
    if !tree.join("usr/bin/dracut").exists() {
        bail!("manifest key kernel.initramfs: the tree has no dracut; add `dracut` to packages.install");
    }
    let env = [("SOURCE_DATE_EPOCH", epoch.to_string())];
    chroot::run(tree, &["depmod", "-a", kver], &env).context("rebuilding the module index")?;
    let argv = dracut_argv(kver, k);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    chroot::run(tree, &argv, &env).context("manifest key kernel.initramfs: dracut failed")?;
    let img = tree.join(format!("usr/lib/modules/{kver}/initramfs.img"));
    fs::set_permissions(&img, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("setting the mode of {}", img.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn kernel_is_moved_into_the_module_dir() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        assert_eq!(kernel_version(r).unwrap(), None);
        fs::create_dir_all(r.join("usr/lib/modules/6.1.0-9-amd64/kernel")).unwrap();
        fs::create_dir_all(r.join("boot")).unwrap();
        fs::write(r.join("boot/vmlinuz-6.1.0-9-amd64"), "kernel").unwrap();
        fs::write(r.join("boot/config-6.1.0-9-amd64"), "CONFIG_X=y").unwrap();
        symlink("boot/vmlinuz-6.1.0-9-amd64", r.join("vmlinuz")).unwrap();
        let kver = kernel_version(r).unwrap().unwrap();
        assert_eq!(kver, "6.1.0-9-amd64");
        place_kernel(r, &kver).unwrap();
        let moddir = r.join("usr/lib/modules/6.1.0-9-amd64");
        assert_eq!(
            fs::read_to_string(moddir.join("vmlinuz")).unwrap(),
            "kernel"
        );
        assert_eq!(
            fs::read_to_string(moddir.join("config")).unwrap(),
            "CONFIG_X=y"
        );
        assert!(fs::symlink_metadata(r.join("vmlinuz")).is_err());
        fs::create_dir_all(r.join("usr/lib/modules/6.1.0-10-amd64")).unwrap();
        let err = kernel_version(r).unwrap_err().to_string();
        assert!(err.contains("several kernels"), "{err}");
    }

    #[test]
    fn boot_files_are_found_where_they_were_moved() {
        let k = "6.1.0-9-amd64";
        for (listed, want) in [
            (
                "/boot/vmlinuz-6.1.0-9-amd64",
                Some("/usr/lib/modules/6.1.0-9-amd64/vmlinuz"),
            ),
            (
                "/boot/config-6.1.0-9-amd64",
                Some("/usr/lib/modules/6.1.0-9-amd64/config"),
            ),
            ("/boot/System.map-6.1.0-9-amd64", None),
            ("/boot/vmlinuz-6.1.0-8-amd64", None),
            ("/usr/bin/x", None),
        ] {
            assert_eq!(moved_from_boot(listed, k).as_deref(), want, "{listed}");
        }
    }

    #[test]
    fn dracut_command_line() {
        let k = Kernel {
            initramfs: true,
            dracut_modules: vec!["systemd".into(), "keel".into()],
            dracut_omit: vec!["plymouth".into()],
            ..Kernel::default()
        };
        let argv = dracut_argv("6.1.0-9-amd64", &k).join(" ");
        assert_eq!(
            argv,
            "dracut --force --no-hostonly --no-hostonly-cmdline --reproducible --no-early-microcode \
             --compress zstd --kver 6.1.0-9-amd64 --add systemd keel --omit plymouth \
             /usr/lib/modules/6.1.0-9-amd64/initramfs.img"
        );
    }
}
