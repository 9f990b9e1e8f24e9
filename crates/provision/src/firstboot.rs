//! The first-boot marker: the boot loader adds `ignition.firstboot` to the kernel command line
//! while `ignition.firstboot` exists on the boot partition. It is removed only after every stage
//! succeeded, by a unit ordered after them (like Fedora CoreOS'
//! `coreos-ignition-firstboot-complete.service`).

use anyhow::{bail, Context, Result};
use std::path::Path;

/// File name of the marker on the boot partition.
pub const MARKER: &str = keel_proto::node::KARG_FIRSTBOOT;

/// Removes `<boot>/ignition.firstboot` durably. A missing marker is an error (as with FCOS'
/// `rm` without `-f`): provisioning ran although it was not the first boot, or the marker was
/// already removed, and someone should look.
pub fn complete(boot: &Path) -> Result<()> {
    let marker = boot.join(MARKER);
    if !marker.exists() {
        bail!("first-boot marker {} does not exist (was it already removed, or is the boot partition not mounted at {}?)", marker.display(), boot.display());
    }
    std::fs::remove_file(&marker).with_context(|| {
        format!(
            "removing {} (is {} mounted read-write?)",
            marker.display(),
            boot.display()
        )
    })?;
    keel_utils::fsutil::sync_dir(boot).with_context(|| format!("syncing {}", boot.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_marker_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(MARKER), "").unwrap();
        complete(d.path()).unwrap();
        assert!(!d.path().join(MARKER).exists());
        let err = complete(d.path()).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
