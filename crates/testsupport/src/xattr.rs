//! Reading and writing extended attributes of a path without following symlinks.

use std::io;
use std::path::Path;

/// All xattrs of `path` (not following symlinks), sorted by name.
pub fn list(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let size = rustix::fs::llistxattr_query(path)?;
    let mut names = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut names[..])?;
    names.truncate(n);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let len = rustix::fs::lgetxattr_query(path, name)?;
        let mut value = vec![0u8; len];
        let got = rustix::fs::lgetxattr(path, name, &mut value[..])?;
        value.truncate(got);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Set xattr `name` = `value` on `path` (not following symlinks).
pub fn set(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// Whether the filesystem holding `dir` accepts xattrs in `namespace` (e.g. `user`, `security`,
/// `trusted`) on a regular file: probes with a scratch file that is removed again.
pub fn supported(dir: &Path, namespace: &str) -> bool {
    let probe = dir.join(format!(".xattr-probe-{namespace}"));
    if std::fs::write(&probe, b"").is_err() {
        return false;
    }
    let ok = set(&probe, &format!("{namespace}.keelprobe"), b"1").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}
