//! Assembling a disk: create the file, write the GPT, make and mount the root filesystem, let
//! the caller fill it, then turn what the caller left in `<root>/boot` into the EFI system
//! partition (the node mounts the ESP at /boot, so that directory stays an empty mount point).

use crate::esp;
use crate::layout::{self, ESP_OFFSET, ROOT_LABEL, ROOT_OFFSET};
use crate::loopdev::{LoopDevice, Mount};
use anyhow::{bail, Context, Result};
use keel_utils::cmd;
use std::path::Path;
use std::process::Command;

/// Image builds attach loop devices and mount filesystems: root only.
pub fn require_root(what: &str) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("{what} must run as root (it attaches loop devices and mounts filesystems); run it with sudo");
    }
    Ok(())
}

/// Build the disk `raw` of `disk_bytes`. `work` is a scratch directory on the same machine;
/// `populate` gets the mounted root filesystem and fills it (ESP content goes to `<root>/boot`).
pub fn assemble(
    raw: &Path,
    disk_bytes: u64,
    work: &Path,
    populate: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let file = std::fs::File::create(raw).with_context(|| format!("creating {}", raw.display()))?;
    file.set_len(disk_bytes)
        .with_context(|| format!("sizing {} to {disk_bytes} bytes", raw.display()))?;
    drop(file);
    cmd::run(
        Command::new("sgdisk")
            .args(layout::sgdisk_args(disk_bytes))
            .arg(raw),
    )
    .with_context(|| format!("writing the partition table of {}", raw.display()))?;
    let root_bytes = layout::root_size(disk_bytes);
    {
        let dev = LoopDevice::attach(raw, ROOT_OFFSET, root_bytes)?;
        cmd::run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", ROOT_LABEL])
                .args(["-E", "lazy_itable_init=0,lazy_journal_init=0"])
                .arg(dev.path()),
        )
        .context("creating the root filesystem")?;
        let mnt = work.join("root");
        std::fs::create_dir_all(&mnt)?;
        let mount = Mount::new(dev.path(), &mnt)?;
        let boot = mnt.join("boot");
        std::fs::create_dir_all(&boot)?;
        populate(&mnt)?;
        // What the caller put in /boot belongs on the ESP (another byte range of the same
        // file); /boot itself stays an empty mount point.
        esp::write(raw, ESP_OFFSET, &boot)?;
        std::fs::remove_dir_all(&boot)
            .and_then(|_| std::fs::create_dir(&boot))
            .with_context(|| format!("emptying {}", boot.display()))?;
        mount.unmount()?;
        drop(dev);
    }
    Ok(())
}
