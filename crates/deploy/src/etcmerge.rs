//! The three-way `/etc` merge, as ostree does it (`merge_configuration_from`): the node's changes
//! are the difference between the old deployment's defaults (`usr/etc`) and its `etc`; they are
//! replayed onto a copy of the new defaults. The local version of a changed file always wins
//! (no line merge); files the node did not touch take the new defaults.
//!
//! Entries are compared like ostree compares content objects with xattrs ignored: type, mode,
//! uid, gid and content (the symlink target for symlinks). Entries that are neither directories,
//! regular files nor symlinks are ignored.

use crate::error::{DeployError, IoPath};
use keel_utils::cmd;
use serde::Serialize;
use std::fs::{self, File, Metadata};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// How a path differs from the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the node's `/etc`.
    Added,
    /// In both, but different.
    Modified,
    /// In the defaults, deleted by the node.
    Removed,
}

impl Change {
    /// The letter `ostree admin config-diff` prints.
    pub fn letter(self) -> char {
        match self {
            Change::Added => 'A',
            Change::Modified => 'M',
            Change::Removed => 'D',
        }
    }
}

/// One changed path, relative to `/etc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcChange {
    /// Path relative to `/etc`, e.g. `ssh/sshd_config`.
    pub path: String,
    /// The kind of change.
    pub change: Change,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Dir,
    File,
    Link,
}

fn kind(md: &Metadata) -> Option<Kind> {
    let t = md.file_type();
    if t.is_dir() {
        Some(Kind::Dir)
    } else if t.is_file() {
        Some(Kind::File)
    } else if t.is_symlink() {
        Some(Kind::Link)
    } else {
        None
    }
}

fn entries(dir: &Path) -> Result<Vec<(String, Metadata)>, DeployError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        let md = e.metadata().at(&e.path())?;
        if kind(&md).is_some() {
            out.push((e.file_name().to_string_lossy().into_owned(), md));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut ra, mut rb) = (
        BufReader::new(File::open(a)?),
        BufReader::new(File::open(b)?),
    );
    let (mut ba, mut bb) = (vec![0u8; 65536], vec![0u8; 65536]);
    loop {
        let na = read_full(&mut ra, &mut ba)?;
        let nb = read_full(&mut rb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn differs(a: &Path, ma: &Metadata, b: &Path, mb: &Metadata) -> Result<bool, DeployError> {
    if kind(ma) != kind(mb)
        || ma.mode() != mb.mode()
        || ma.uid() != mb.uid()
        || ma.gid() != mb.gid()
    {
        return Ok(true);
    }
    if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
        return Ok(false);
    }
    Ok(match kind(ma) {
        Some(Kind::File) => ma.len() != mb.len() || !same_content(a, b).at(a)?,
        Some(Kind::Link) => fs::read_link(a).at(a)? != fs::read_link(b).at(b)?,
        _ => false,
    })
}

/// The node's changes: `current` (its `/etc`) against `defaults` (its `usr/etc`), in path order.
/// A modified directory is listed and searched; an added one is listed alone, like ostree.
pub fn diff(defaults: &Path, current: &Path) -> Result<Vec<EtcChange>, DeployError> {
    let mut out = Vec::new();
    diff_dir(defaults, current, "", &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn diff_dir(a: &Path, b: &Path, prefix: &str, out: &mut Vec<EtcChange>) -> Result<(), DeployError> {
    let ea = entries(a)?;
    let eb = entries(b)?;
    let rel = |n: &str| {
        if prefix.is_empty() {
            n.to_string()
        } else {
            format!("{prefix}/{n}")
        }
    };
    for (name, ma) in &ea {
        let path = rel(name);
        match eb.iter().find(|(n, _)| n == name) {
            None => out.push(EtcChange {
                path,
                change: Change::Removed,
            }),
            Some((_, mb)) => {
                let (pa, pb) = (a.join(name), b.join(name));
                if differs(&pa, ma, &pb, mb)? {
                    out.push(EtcChange {
                        path: path.clone(),
                        change: Change::Modified,
                    });
                }
                if kind(ma) == Some(Kind::Dir) && kind(mb) == Some(Kind::Dir) {
                    diff_dir(&pa, &pb, &path, out)?;
                }
            }
        }
    }
    for (name, _) in &eb {
        if !ea.iter().any(|(n, _)| n == name) {
            out.push(EtcChange {
                path: rel(name),
                change: Change::Added,
            });
        }
    }
    Ok(())
}

fn remove_any(p: &Path) -> Result<(), DeployError> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(p),
        Ok(md) if md.is_dir() => fs::remove_dir_all(p).at(p),
        Ok(_) => fs::remove_file(p).at(p),
    }
}

/// Copy `rel` from `src_root` to `dst_root` with every attribute (`cp -a`), creating missing
/// parent directories with the attributes they have under `src_root`.
pub(crate) fn copy_preserving(
    src_root: &Path,
    rel: &str,
    dst_root: &Path,
) -> Result<(), DeployError> {
    let dst_root = std::path::absolute(dst_root).at(dst_root)?;
    cmd::run(
        Command::new("cp")
            .current_dir(src_root)
            .args(["-a", "--parents", "--no-dereference", "--"])
            .arg(rel)
            .arg(&dst_root),
    )?;
    Ok(())
}

/// Copy the tree `src` to the new path `dst` with every attribute (`cp -a`).
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(), DeployError> {
    cmd::run(
        Command::new("cp")
            .args(["-a", "--no-target-directory", "--"])
            .arg(src)
            .arg(dst),
    )?;
    Ok(())
}

/// Replay the node's changes (`old_defaults` → `old_etc`) onto `new_etc`, which starts as a copy
/// of the new defaults. Returns the changes applied.
pub fn merge(
    old_defaults: &Path,
    old_etc: &Path,
    new_etc: &Path,
) -> Result<Vec<EtcChange>, DeployError> {
    let changes = diff(old_defaults, old_etc)?;
    for c in &changes {
        let dst = new_etc.join(&c.path);
        if c.change == Change::Removed {
            remove_any(&dst)?;
            continue;
        }
        let src = old_etc.join(&c.path);
        let ms = fs::symlink_metadata(&src).at(&src)?;
        let md = fs::symlink_metadata(&dst).ok();
        let dst_is_dir = md.as_ref().is_some_and(|m| m.is_dir());
        if c.change == Change::Modified && ms.is_dir() && dst_is_dir {
            // Children were diffed one by one; carry over the directory's own attributes.
            fs::set_permissions(&dst, ms.permissions()).at(&dst)?;
            rustix::fs::chown(&dst, Some(uid(ms.uid())), Some(gid(ms.gid()))).at(&dst)?;
            continue;
        }
        if c.change == Change::Modified && !ms.is_dir() && dst_is_dir {
            return Err(DeployError::EtcMerge {
                path: c.path.clone(),
                reason:
                    "modified locally, but the new version makes it a directory; move the local \
                         file aside (e.g. into the directory) in /etc and deploy again"
                        .into(),
            });
        }
        remove_any(&dst)?;
        copy_preserving(old_etc, &c.path, new_etc)?;
    }
    Ok(changes)
}

fn uid(n: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(n)
}

fn gid(n: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// One node of a test tree: path, and `Some(content)` for a file, `None` for a directory,
    /// `Some("->target")` for a symlink.
    type Spec<'a> = &'a [(&'a str, Option<&'a str>)];

    fn build(root: &Path, spec: Spec) {
        fs::create_dir_all(root).unwrap();
        for (p, c) in spec {
            let path = root.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            match c {
                None => fs::create_dir_all(&path).unwrap(),
                Some(t) if t.starts_with("->") => symlink(&t[2..], &path).unwrap(),
                Some(t) => fs::write(&path, t).unwrap(),
            }
        }
    }

    fn snapshot(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let md = fs::symlink_metadata(&p).unwrap();
                if md.is_symlink() {
                    out.push((rel, format!("->{}", fs::read_link(&p).unwrap().display())));
                } else if md.is_dir() {
                    out.push((rel, "dir".into()));
                    walk(root, &p, out);
                } else {
                    out.push((rel, fs::read_to_string(&p).unwrap()));
                }
            }
        }
        walk(root, root, &mut out);
        out.sort();
        out
    }

    struct Case<'a> {
        name: &'a str,
        old_defaults: Spec<'a>,
        old_etc: Spec<'a>,
        new_defaults: Spec<'a>,
        diff: &'a [(&'a str, Change)],
        result: Spec<'a>,
    }

    #[test]
    fn three_way_merge_table() {
        use Change::*;
        let cases = [
            Case {
                name: "edit, delete and add survive; new defaults arrive",
                old_defaults: &[
                    ("foo.conf", Some("foo1")),
                    ("bar.conf", Some("bar1")),
                    ("same", Some("s1")),
                ],
                old_etc: &[
                    ("foo.conf", Some("local")),
                    ("same", Some("s1")),
                    ("local.conf", Some("mine")),
                ],
                new_defaults: &[
                    ("foo.conf", Some("foo2")),
                    ("bar.conf", Some("bar2")),
                    ("same", Some("s2")),
                    ("new.conf", Some("n")),
                ],
                diff: &[
                    ("bar.conf", Removed),
                    ("foo.conf", Modified),
                    ("local.conf", Added),
                ],
                result: &[
                    ("foo.conf", Some("local")),
                    ("same", Some("s2")),
                    ("new.conf", Some("n")),
                    ("local.conf", Some("mine")),
                ],
            },
            Case {
                name: "nested changes; removed directory; added directory with content",
                old_defaults: &[
                    ("d", None),
                    ("d/a", Some("1")),
                    ("d/b", Some("2")),
                    ("gone", None),
                    ("gone/x", Some("x")),
                ],
                old_etc: &[
                    ("d", None),
                    ("d/a", Some("1x")),
                    ("d/b", Some("2")),
                    ("mine", None),
                    ("mine/y", Some("y")),
                ],
                new_defaults: &[
                    ("d", None),
                    ("d/a", Some("1n")),
                    ("d/b", Some("2n")),
                    ("gone", None),
                    ("gone/x", Some("x2")),
                ],
                diff: &[("d/a", Modified), ("gone", Removed), ("mine", Added)],
                result: &[
                    ("d", None),
                    ("d/a", Some("1x")),
                    ("d/b", Some("2n")),
                    ("mine", None),
                    ("mine/y", Some("y")),
                ],
            },
            Case {
                name: "symlink retargeted locally; file replaced by symlink",
                old_defaults: &[("l", Some("->a")), ("f", Some("c"))],
                old_etc: &[("l", Some("->b")), ("f", Some("->l"))],
                new_defaults: &[("l", Some("->a2")), ("f", Some("c2"))],
                diff: &[("f", Modified), ("l", Modified)],
                result: &[("l", Some("->b")), ("f", Some("->l"))],
            },
            Case {
                name: "added file inside a directory the new defaults dropped",
                old_defaults: &[("p", None), ("p/q", Some("1"))],
                old_etc: &[("p", None), ("p/q", Some("1")), ("p/r", Some("mine"))],
                new_defaults: &[("other", Some("o"))],
                diff: &[("p/r", Added)],
                result: &[("other", Some("o")), ("p", None), ("p/r", Some("mine"))],
            },
            Case {
                name: "no local changes",
                old_defaults: &[("a", Some("1"))],
                old_etc: &[("a", Some("1"))],
                new_defaults: &[("a", Some("2"))],
                diff: &[],
                result: &[("a", Some("2"))],
            },
        ];
        for c in cases {
            let t = tempfile::tempdir().unwrap();
            let (od, oe, ne) = (
                t.path().join("od"),
                t.path().join("oe"),
                t.path().join("ne"),
            );
            build(&od, c.old_defaults);
            build(&oe, c.old_etc);
            build(&ne, c.new_defaults);
            let want_diff: Vec<EtcChange> = c
                .diff
                .iter()
                .map(|(p, ch)| EtcChange {
                    path: p.to_string(),
                    change: *ch,
                })
                .collect();
            assert_eq!(diff(&od, &oe).unwrap(), want_diff, "{}: diff", c.name);
            assert_eq!(
                merge(&od, &oe, &ne).unwrap(),
                want_diff,
                "{}: merge",
                c.name
            );
            let want_root = t.path().join("want");
            build(&want_root, c.result);
            assert_eq!(snapshot(&ne), snapshot(&want_root), "{}: result", c.name);
        }
    }

    #[test]
    fn mode_and_owner_changes_count_and_carry_over() {
        let t = tempfile::tempdir().unwrap();
        let (od, oe, ne) = (
            t.path().join("od"),
            t.path().join("oe"),
            t.path().join("ne"),
        );
        for d in [&od, &oe, &ne] {
            build(d, &[("secret", Some("s")), ("dir", None)]);
        }
        fs::set_permissions(oe.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(oe.join("dir"), fs::Permissions::from_mode(0o700)).unwrap();
        let changes = merge(&od, &oe, &ne).unwrap();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(
            fs::metadata(ne.join("secret")).unwrap().mode() & 0o7777,
            0o600
        );
        assert_eq!(fs::metadata(ne.join("dir")).unwrap().mode() & 0o7777, 0o700);
    }

    #[test]
    fn modified_file_that_became_a_directory_is_a_conflict() {
        let t = tempfile::tempdir().unwrap();
        let (od, oe, ne) = (
            t.path().join("od"),
            t.path().join("oe"),
            t.path().join("ne"),
        );
        build(&od, &[("x.conf", Some("1"))]);
        build(&oe, &[("x.conf", Some("local"))]);
        build(&ne, &[("x.conf", None), ("x.conf/part", Some("p"))]);
        let e = merge(&od, &oe, &ne).unwrap_err().to_string();
        assert!(e.contains("x.conf") && e.contains("directory"), "{e}");
    }
}
