//! Free-space checks made before anything is written, so a full `/boot` or root filesystem
//! fails early with the filesystem and the bytes needed, never halfway through.

use crate::error::{DeployError, IoPath};
use std::fs;
use std::path::{Path, PathBuf};

/// Bytes kept free on every filesystem on top of what an operation needs.
pub const RESERVE: u64 = 1 << 20;

/// The mount holding `path`: (mount point, "source (fstype)"), from /proc/self/mountinfo.
fn mount_of(path: &Path) -> (PathBuf, String) {
    let canon = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(PathBuf, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < sep + 3 || fields.len() < 5 {
            continue;
        }
        let mount = PathBuf::from(unescape(fields[4]));
        if !canon.starts_with(&mount) {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(b, _)| mount.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((
                mount,
                format!("{} ({})", unescape(fields[sep + 2]), fields[sep + 1]),
            ));
        }
    }
    best.unwrap_or_else(|| (canon, "unknown filesystem".into()))
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Bytes available on the filesystem holding `path` (`f_bavail`: ext4's root reserve is not
/// counted, so a check passes only when ordinary space is there).
pub fn available(path: &Path) -> Result<u64, DeployError> {
    let st = rustix::fs::statvfs(path).at(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Fail with [`DeployError::NoSpace`] unless `needed` bytes (plus [`RESERVE`]) are free on the
/// filesystem holding `path`.
pub fn ensure(path: &Path, needed: u64, what: &str) -> Result<(), DeployError> {
    let avail = available(path)?;
    let needed = needed + RESERVE;
    if avail >= needed {
        return Ok(());
    }
    let (mount, filesystem) = mount_of(path);
    Err(DeployError::NoSpace {
        filesystem,
        mount,
        what: what.to_string(),
        needed,
        available: avail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_errors_name_the_filesystem_and_bytes() {
        let t = tempfile::tempdir().unwrap();
        assert!(ensure(t.path(), 1, "a test").is_ok());
        let e = ensure(t.path(), u64::MAX / 4, "a huge kernel").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("a huge kernel") && msg.contains("bytes needed"),
            "{msg}"
        );
        match e {
            DeployError::NoSpace {
                mount, filesystem, ..
            } => {
                assert!(t.path().starts_with(&mount), "{mount:?}");
                assert!(filesystem.contains('('), "{filesystem}");
            }
            other => panic!("{other}"),
        }
    }
}
