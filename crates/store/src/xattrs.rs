//! Reading and writing extended attributes of files and symlinks (never following links).

use crate::error::{IoPath, StoreError};
use crate::objects::Xattrs;
use std::fs::File;
use std::path::Path;

fn query_loop(
    path: &Path,
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0u8; 256];
    loop {
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < (1 << 24) => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e).at(path),
        }
    }
}

/// All extended attributes of `path` (not following a final symlink), sorted by name. Like
/// OSTree (libglnx), attributes with empty values are skipped. A filesystem without xattr
/// support yields an empty list.
pub fn read(path: &Path) -> Result<Xattrs, StoreError> {
    collect(
        path,
        |b| rustix::fs::llistxattr(path, b),
        |name, b| rustix::fs::lgetxattr(path, name, b),
    )
}

/// Like [`read`], through an open file (no path lookups; `path` is for messages).
pub fn read_fd(file: &File, path: &Path) -> Result<Xattrs, StoreError> {
    collect(
        path,
        |b| rustix::fs::flistxattr(file, b),
        |name, b| rustix::fs::fgetxattr(file, name, b),
    )
}

fn collect(
    path: &Path,
    mut list: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
    mut get: impl FnMut(&[u8], &mut [u8]) -> rustix::io::Result<usize>,
) -> Result<Xattrs, StoreError> {
    let names = match query_loop(path, &mut list) {
        Ok(n) => n,
        Err(StoreError::Io { source, .. })
            if source.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) =>
        {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let value = query_loop(path, |b| get(name, b))?;
        if !value.is_empty() {
            out.push((name.to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// Set xattrs on an open file.
pub fn set_fd(file: &File, path: &Path, xattrs: &Xattrs) -> Result<(), StoreError> {
    for (name, value) in xattrs {
        rustix::fs::fsetxattr(
            file,
            name.as_slice(),
            value,
            rustix::fs::XattrFlags::empty(),
        )
        .at(path)?;
    }
    Ok(())
}

/// Set xattrs on a path without following a final symlink.
pub fn set_path(path: &Path, xattrs: &Xattrs) -> Result<(), StoreError> {
    for (name, value) in xattrs {
        rustix::fs::lsetxattr(
            path,
            name.as_slice(),
            value,
            rustix::fs::XattrFlags::empty(),
        )
        .at(path)?;
    }
    Ok(())
}

/// Read one xattr of an open file, `None` if absent.
pub fn get_fd(file: &File, path: &Path, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    match query_loop(path, |b| rustix::fs::fgetxattr(file, name, b)) {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Io { source, .. })
            if source.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
