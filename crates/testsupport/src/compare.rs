//! Comparing two directory trees entry by entry: type, permission bits (including set-id and
//! sticky), owner, content, symlink target and xattrs. Modification times are never compared
//! (the store sets them to 0 or leaves them at checkout time).

use crate::xattr;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What to compare.
#[derive(Clone, Debug)]
pub struct Options {
    /// Compare uid and gid.
    pub owner: bool,
    /// How permission bits of the first tree must appear in the second.
    pub modes: ModeRule,
    /// Compare xattrs.
    pub xattrs: bool,
    /// xattr names never compared (e.g. `user.ostreemeta` on bare-user checkouts).
    pub ignore_xattrs: Vec<Vec<u8>>,
    /// Treat xattrs with an empty value as absent: ostree 2022.7 drops them when it commits
    /// (checked: `setfattr -n user.e -v ""`, commit, `ostree ls -X` lists no `user.e`).
    pub skip_empty_xattrs: bool,
    /// Compare the metadata of the two roots themselves (not only their contents).
    pub root_meta: bool,
    /// Stop after this many differences.
    pub max_diffs: usize,
}

impl Options {
    /// Everything: owner, all mode bits, xattrs, root metadata.
    pub fn exact() -> Self {
        Options {
            owner: true,
            modes: ModeRule::Exact,
            xattrs: true,
            ignore_xattrs: Vec::new(),
            skip_empty_xattrs: false,
            root_meta: true,
            max_diffs: 20,
        }
    }
}

/// Expected relation between the permission bits of the first and second tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeRule {
    /// All of `0o7777` equal.
    Exact,
    /// A user-mode checkout of the first tree: directories keep all bits; regular files drop
    /// set-id bits, get `u+r`, and only `0o775` is compared (ostree 2022.7 `checkout -U` also
    /// drops sticky and `o+w` on files when it hardlinks bare-user objects, but keeps them when
    /// it copies from bare or archive repos).
    UserMode,
}

impl ModeRule {
    /// The (expected, actual) bits to compare for an entry of metadata `a` (first tree) and
    /// `b` (second tree).
    fn project(self, a: &fs::Metadata, b: &fs::Metadata) -> (u32, u32) {
        let (ma, mb) = (a.mode() & 0o7777, b.mode() & 0o7777);
        match self {
            ModeRule::UserMode if a.is_file() => ((ma & 0o775) | 0o400, mb & 0o775),
            _ => (ma, mb),
        }
    }
}

/// One difference, by path relative to the compared roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Relative path (empty for the root).
    pub path: PathBuf,
    /// What differs, e.g. `mode 104755 vs 100755`.
    pub what: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}: {}", self.path.display(), self.what)
    }
}

/// Compare trees `a` and `b`; returns up to `opts.max_diffs` differences (empty = equal).
pub fn compare(a: &Path, b: &Path, opts: &Options) -> io::Result<Vec<Difference>> {
    let mut diffs = Vec::new();
    walk(a, b, Path::new(""), opts, &mut diffs)?;
    Ok(diffs)
}

fn kind(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

fn sorted_names(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

fn walk(
    a: &Path,
    b: &Path,
    rel: &Path,
    opts: &Options,
    diffs: &mut Vec<Difference>,
) -> io::Result<()> {
    let full = |root: &Path| {
        if rel.as_os_str().is_empty() {
            root.to_owned()
        } else {
            root.join(rel)
        }
    };
    let (pa, pb) = (full(a), full(b));
    let (ma, mb) = (fs::symlink_metadata(&pa)?, fs::symlink_metadata(&pb)?);
    let mut push = |what: String| {
        diffs.push(Difference {
            path: rel.to_owned(),
            what,
        })
    };
    if kind(&ma) != kind(&mb) {
        push(format!("{} vs {}", kind(&ma), kind(&mb)));
        return Ok(());
    }
    if !rel.as_os_str().is_empty() || opts.root_meta {
        compare_meta(&pa, &pb, &ma, &mb, opts, &mut push)?;
    }
    if ma.is_dir() {
        let (na, nb) = (sorted_names(&pa)?, sorted_names(&pb)?);
        let (mut i, mut j) = (0, 0);
        while (i < na.len() || j < nb.len()) && diffs.len() < opts.max_diffs {
            let order = match (na.get(i), nb.get(j)) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    diffs.push(Difference {
                        path: rel.join(&na[i]),
                        what: "only in the first tree".into(),
                    });
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    diffs.push(Difference {
                        path: rel.join(&nb[j]),
                        what: "only in the second tree".into(),
                    });
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    walk(a, b, &rel.join(&na[i]), opts, diffs)?;
                    i += 1;
                    j += 1;
                }
            }
        }
    }
    diffs.truncate(opts.max_diffs);
    Ok(())
}

fn compare_meta(
    pa: &Path,
    pb: &Path,
    ma: &fs::Metadata,
    mb: &fs::Metadata,
    opts: &Options,
    push: &mut impl FnMut(String),
) -> io::Result<()> {
    let (want, got) = opts.modes.project(ma, mb);
    if !ma.file_type().is_symlink() && want != got {
        push(format!("mode {want:o} vs {got:o}"));
    }
    if opts.owner && (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
        push(format!(
            "owner {}:{} vs {}:{}",
            ma.uid(),
            ma.gid(),
            mb.uid(),
            mb.gid()
        ));
    }
    if ma.file_type().is_symlink() {
        let (ta, tb) = (fs::read_link(pa)?, fs::read_link(pb)?);
        if ta != tb {
            push(format!(
                "symlink target {} vs {}",
                ta.display(),
                tb.display()
            ));
        }
    } else if ma.is_file() {
        if ma.len() != mb.len() {
            push(format!("size {} vs {}", ma.len(), mb.len()));
        } else if let Some(offset) = first_content_difference(pa, pb)? {
            push(format!("content differs at byte {offset}"));
        }
    }
    if opts.xattrs {
        let keep = |list: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(Vec<u8>, Vec<u8>)> {
            list.into_iter()
                .filter(|(n, v)| {
                    !(opts.ignore_xattrs.contains(n) || (opts.skip_empty_xattrs && v.is_empty()))
                })
                .collect()
        };
        let (xa, xb) = (keep(xattr::list(pa)?), keep(xattr::list(pb)?));
        if xa != xb {
            push(format!(
                "xattrs {} vs {}",
                show_xattrs(&xa),
                show_xattrs(&xb)
            ));
        }
    }
    Ok(())
}

fn show_xattrs(list: &[(Vec<u8>, Vec<u8>)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(n, v)| {
            format!(
                "{}={:?}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// Offset of the first differing byte of two files of equal length, if any.
fn first_content_difference(pa: &Path, pb: &Path) -> io::Result<Option<u64>> {
    let (mut fa, mut fb) = (fs::File::open(pa)?, fs::File::open(pb)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if let Some(i) = ba[..n.min(m)]
            .iter()
            .zip(&bb[..n.min(m)])
            .position(|(x, y)| x != y)
        {
            return Ok(Some(offset + i as u64));
        }
        if n != m {
            return Ok(Some(offset + n.min(m) as u64));
        }
        if n == 0 {
            return Ok(None);
        }
        offset += n as u64;
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn reports_each_kind_of_difference_by_path() {
        type Mutate = fn(&Path);
        let cases: [(&str, Mutate, &str); 6] = [
            (
                "content",
                |d| fs::write(d.join("f"), b"hellO").unwrap(),
                "/f: content differs at byte 4",
            ),
            (
                "size",
                |d| fs::write(d.join("f"), b"hello!").unwrap(),
                "/f: size 5 vs 6",
            ),
            (
                "mode",
                |d| fs::set_permissions(d.join("f"), fs::Permissions::from_mode(0o4644)).unwrap(),
                "/f: mode 644 vs 4644",
            ),
            (
                "link",
                |d| {
                    fs::remove_file(d.join("l")).unwrap();
                    symlink("g", d.join("l")).unwrap()
                },
                "/l: symlink target f vs g",
            ),
            (
                "extra",
                |d| fs::write(d.join("new"), b"").unwrap(),
                "/new: only in the second tree",
            ),
            (
                "type",
                |d| {
                    fs::remove_file(d.join("f")).unwrap();
                    fs::create_dir(d.join("f")).unwrap()
                },
                "/f: regular file vs directory",
            ),
        ];
        for (name, mutate, expected) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
            for d in [&a, &b] {
                fs::create_dir(d).unwrap();
                fs::write(d.join("f"), b"hello").unwrap();
                fs::set_permissions(d.join("f"), fs::Permissions::from_mode(0o644)).unwrap();
                symlink("f", d.join("l")).unwrap();
            }
            assert!(
                compare(&a, &b, &Options::exact()).unwrap().is_empty(),
                "{name}: equal before"
            );
            mutate(&b);
            let diffs: Vec<String> = compare(&a, &b, &Options::exact())
                .unwrap()
                .iter()
                .map(|d| d.to_string())
                .collect();
            assert_eq!(diffs, vec![expected.to_string()], "{name}");
        }
    }
}
