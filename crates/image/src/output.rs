//! Output formats: the raw disk is converted (or compressed) into the requested file, written
//! to a temporary sibling and renamed into place so a crash never leaves a half-written image
//! under the final name.

use anyhow::{Context, Result};
use keel_utils::{cmd, fsutil};
use std::path::Path;
use std::process::Command;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Compressed qcow2 for QEMU/KVM.
    Qcow2,
    /// Raw disk image (sparse).
    Raw,
    /// Raw disk image compressed with xz (for bare metal: `xz -dc | dd`).
    #[value(name = "raw.xz")]
    RawXz,
}

impl Format {
    /// The format implied by an output file name, if any.
    pub fn from_name(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".qcow2") {
            Some(Format::Qcow2)
        } else if name.ends_with(".raw.xz") {
            Some(Format::RawXz)
        } else if name.ends_with(".raw") || name.ends_with(".img") {
            Some(Format::Raw)
        } else {
            None
        }
    }
}

/// Turn the finished raw disk `raw` into `out` in `format`. `raw` must be in the same
/// directory tree as `out` (it is renamed for `Raw`).
pub fn finish(raw: &Path, out: &Path, format: Format) -> Result<()> {
    let tmp = fsutil::temp_sibling(out);
    match format {
        Format::Raw => {
            std::fs::rename(raw, &tmp)
                .with_context(|| format!("moving the raw disk to {}", tmp.display()))?;
        }
        Format::Qcow2 => {
            cmd::run(
                Command::new("qemu-img")
                    .args(["convert", "-c", "-f", "raw", "-O", "qcow2"])
                    .args(["-o", "compression_type=zlib"])
                    .arg(raw)
                    .arg(&tmp),
            )
            .context("converting the disk to qcow2")?;
        }
        Format::RawXz => {
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            cmd::run_inherit(
                Command::new("xz")
                    .args(["-c", "-T0", "-6", "--"])
                    .arg(raw)
                    .stdout(file),
            )
            .context("compressing the disk with xz")?;
        }
    }
    let f = std::fs::File::open(&tmp)?;
    f.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (name, want) in [
            ("keel.qcow2", Some(Format::Qcow2)),
            ("out/keel.raw.xz", Some(Format::RawXz)),
            ("keel.raw", Some(Format::Raw)),
            ("keel.img", Some(Format::Raw)),
            ("keel.xz", None),
            ("keel", None),
        ] {
            assert_eq!(Format::from_name(Path::new(name)), want, "{name}");
        }
    }
}
