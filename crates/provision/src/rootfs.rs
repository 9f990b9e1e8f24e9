//! Paths and owners inside the target root: symlinks are followed on every element but the last
//! and resolved inside the root (never escaping it), and user/group names are looked up in the
//! root's own `/etc/passwd` and `/etc/group`.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

const MAX_LINKS: usize = 40;

/// Maps a config path (absolute, clean) to a host path under `root`, following symlinks in
/// its parent directories as if `root` were `/`. The last element is not followed.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let Some(name) = p.file_name() else {
        bail!("path {path:?} has no file name");
    };
    let parent = resolve_dir(root, p.parent().unwrap_or(Path::new("/")))?;
    Ok(root
        .join(parent.strip_prefix("/").unwrap_or(&parent))
        .join(name))
}

/// Resolves a directory path fully (all symlinks followed), returning it as an absolute path
/// relative to the root (`/a/b`).
fn resolve_dir(root: &Path, dir: &Path) -> Result<PathBuf> {
    let mut todo: Vec<std::ffi::OsString> = dir.components().rev().filter_map(comp).collect();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let candidate = cur.join(&c);
        let host = root.join(candidate.strip_prefix("/").unwrap_or(&candidate));
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    bail!(
                        "too many levels of symbolic links resolving {} in {}",
                        dir.display(),
                        root.display()
                    );
                }
                let target = std::fs::read_link(&host)
                    .with_context(|| format!("reading link {}", host.display()))?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                todo.extend(target.components().rev().filter_map(comp));
            }
            _ => cur = candidate,
        }
    }
    Ok(cur)
}

fn comp(c: Component) -> Option<std::ffi::OsString> {
    match c {
        Component::Normal(s) => Some(s.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

/// Users and groups of the target root, by name.
#[derive(Debug, Default, Clone)]
pub struct Accounts {
    /// name → (uid, primary gid, home)
    users: HashMap<String, (u32, u32, String)>,
    groups: HashMap<String, u32>,
}

impl Accounts {
    /// Reads `/etc/passwd` and `/etc/group` of `root` (missing files mean no entries).
    pub fn load(root: &Path) -> Result<Accounts> {
        let mut a = Accounts::default();
        for line in read_lines(&root.join("etc/passwd"))? {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(name), Some(uid), Some(gid)) = (
                f.first(),
                f.get(2).and_then(|s| s.parse().ok()),
                f.get(3).and_then(|s| s.parse().ok()),
            ) {
                a.users.insert(
                    name.to_string(),
                    (uid, gid, f.get(5).unwrap_or(&"").to_string()),
                );
            }
        }
        for line in read_lines(&root.join("etc/group"))? {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(name), Some(gid)) = (f.first(), f.get(2).and_then(|s| s.parse().ok())) {
                a.groups.insert(name.to_string(), gid);
            }
        }
        Ok(a)
    }

    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users.get(name).map(|u| u.0)
    }

    /// The user's primary group id.
    pub fn primary_gid(&self, name: &str) -> Option<u32> {
        self.users.get(name).map(|u| u.1)
    }

    /// The user's home directory as written in the root's `/etc/passwd`.
    pub fn home(&self, name: &str) -> Option<&str> {
        self.users.get(name).map(|u| u.2.as_str())
    }

    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.get(name).copied()
    }

    pub fn has_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }
}

/// A writer for `fsutil`/`batch` temp files: the data, then the owner (before the mode is set,
/// since chown clears set-id bits).
pub fn owned_content(
    data: &[u8],
    uid: u32,
    gid: u32,
) -> impl FnOnce(&mut std::fs::File) -> std::io::Result<()> + '_ {
    move |f| {
        std::io::Write::write_all(f, data)?;
        rustix::fs::fchown(
            &*f,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
        Ok(())
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolve_table() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("usr/etc")).unwrap();
        std::fs::create_dir_all(r.join("var/home")).unwrap();
        symlink("/var/home", r.join("home")).unwrap();
        symlink("../usr/etc", r.join("etc2")).unwrap();
        symlink("/../../..", r.join("escape")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("/a/b", Ok("a/b")),
            ("/home/core/x", Ok("var/home/core/x")),
            ("/etc2/hosts", Ok("usr/etc/hosts")),
            ("/home", Ok("home")),
            ("/escape/etc/passwd", Ok("etc/passwd")),
            ("/loop/x", Err("too many levels")),
            ("/", Err("no file name")),
        ];
        for (path, want) in cases {
            match (resolve(r, path), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, r.join(w), "{path}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{path}: {e}"),
                (got, w) => panic!("{path}: got {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn accounts_from_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ncore:x:1000:1001::/home/core:/bin/bash\nbad\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\ncore:x:1001:\n").unwrap();
        let a = Accounts::load(d.path()).unwrap();
        assert_eq!(a.uid("core"), Some(1000));
        assert_eq!(a.primary_gid("core"), Some(1001));
        assert_eq!(a.home("core"), Some("/home/core"));
        assert_eq!(a.gid("core"), Some(1001));
        assert_eq!(a.uid("nobody"), None);
        let empty = Accounts::load(&d.path().join("none")).unwrap();
        assert!(!empty.has_user("root"));
    }
}
