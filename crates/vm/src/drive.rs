//! A VM's private files: the writable firmware variables and, unless the image itself is to be
//! changed (`--persist`), a qcow2 overlay backed by the image so the image stays pristine.

use anyhow::{bail, Context, Result};
use keel_utils::cmd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Disk format of an image file, from its name (`.qcow2` or a raw image).
pub fn format_of(image: &Path) -> &'static str {
    match image.extension().and_then(|e| e.to_str()) {
        Some("qcow2") => "qcow2",
        _ => "raw",
    }
}

/// The disk a VM boots from and its firmware variables, inside the VM's state directory.
#[derive(Debug, Clone)]
pub struct VmDisk {
    /// File QEMU opens as the virtio disk.
    pub disk: PathBuf,
    /// Its format.
    pub format: String,
    /// Writable copy of the OVMF variables.
    pub vars: PathBuf,
}

impl VmDisk {
    /// Prepare `dir` for booting `image`: copy the firmware variables and create the overlay
    /// (or use `image` directly when `persist`). `grow_to` makes the overlay's virtual disk that
    /// many bytes (larger than the image) so first boot has room to grow into.
    pub fn prepare(
        image: &Path,
        dir: &Path,
        persist: bool,
        vars_template: &Path,
        grow_to: Option<u64>,
    ) -> Result<Self> {
        if !image.is_file() {
            bail!(
                "image {} does not exist; build one with `keel image build`",
                image.display()
            );
        }
        if image.extension().and_then(|e| e.to_str()) == Some("xz") {
            bail!(
                "image {} is xz-compressed; decompress it first (xz -dk {})",
                image.display(),
                image.display()
            );
        }
        if !vars_template.is_file() {
            bail!(
                "UEFI firmware variables {} are missing; install the Debian package `ovmf` (apt-get install ovmf)",
                vars_template.display()
            );
        }
        let vars = dir.join("OVMF_VARS.fd");
        std::fs::copy(vars_template, &vars).with_context(|| {
            format!("copying {} to {}", vars_template.display(), vars.display())
        })?;
        let format = format_of(image);
        if persist {
            return Ok(VmDisk {
                disk: image.to_path_buf(),
                format: format.into(),
                vars,
            });
        }
        let backing = std::fs::canonicalize(image)
            .with_context(|| format!("resolving {}", image.display()))?;
        let overlay = dir.join("overlay.qcow2");
        cmd::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
                .arg(&backing)
                .arg(&overlay)
                .args(grow_to.map(|b| b.to_string())),
        )
        .with_context(|| format!("creating a qcow2 overlay on {}", image.display()))?;
        Ok(VmDisk {
            disk: overlay,
            format: "qcow2".into(),
            vars,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        for (name, want) in [
            ("keel.qcow2", "qcow2"),
            ("keel.raw", "raw"),
            ("keel.img", "raw"),
            ("dir.qcow2/keel", "raw"),
        ] {
            assert_eq!(format_of(Path::new(name)), want, "{name}");
        }
    }

    #[test]
    fn missing_image_and_xz_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let err = VmDisk::prepare(
            &dir.path().join("nope.qcow2"),
            dir.path(),
            false,
            Path::new("/x"),
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("keel image build"), "{err}");
        let xz = dir.path().join("keel.raw.xz");
        std::fs::write(&xz, b"").unwrap();
        let err = VmDisk::prepare(&xz, dir.path(), false, Path::new("/x"), None).unwrap_err();
        assert!(err.to_string().contains("xz -dk"), "{err}");
    }

    #[test]
    fn overlay_keeps_image_pristine() {
        if !cmd::have("qemu-img") || !Path::new(crate::qemu::OVMF_VARS).is_file() {
            keel_testsupport::skip(
                "overlay_keeps_image_pristine: needs qemu-img (qemu-utils) and ovmf",
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("base.raw");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let vm = dir.path().join("vm");
        std::fs::create_dir(&vm).unwrap();
        let vars = Path::new(crate::qemu::OVMF_VARS);
        let d = VmDisk::prepare(&image, &vm, false, vars, Some(8 << 20)).unwrap();
        assert_eq!(d.format, "qcow2");
        let info = cmd::run_stdout(Command::new("qemu-img").arg("info").arg(&d.disk)).unwrap();
        assert!(info.contains("backing file:"), "{info}");
        assert!(info.contains("base.raw"), "{info}");
        assert!(info.contains("virtual size: 8 MiB"), "{info}");
        let p = VmDisk::prepare(&image, &vm, true, vars, None).unwrap();
        assert_eq!(
            (p.disk.as_path(), p.format.as_str()),
            (image.as_path(), "raw")
        );
        assert!(p.vars.is_file());
    }
}
