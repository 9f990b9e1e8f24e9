//! How big the tree is, by package: the sum of the regular files each package owns (per dpkg's
//! file lists), hard links counted once, plus what belongs to no package (the initramfs, the keel
//! binary, generated files).

use keel_utils::progress::human_bytes;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Label for bytes that no package owns.
pub const UNOWNED: &str = "(not from a package)";

/// Tree size, total and by package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeReport {
    /// Bytes in all regular files of the tree.
    pub total: u64,
    /// (package, bytes), largest first; includes [`UNOWNED`].
    pub by_package: Vec<(String, u64)>,
}

impl SizeReport {
    /// The top `n` lines and the total, for people.
    pub fn render(&self, n: usize) -> String {
        let mut s = format!("tree size by package (top {n}, largest first):\n");
        for (name, bytes) in self.by_package.iter().take(n) {
            s.push_str(&format!("  {:>10}  {name}\n", human_bytes(*bytes)));
        }
        s.push_str(&format!(
            "  {:>10}  total ({} packages)\n",
            human_bytes(self.total),
            self.by_package.iter().filter(|(n, _)| n != UNOWNED).count()
        ));
        s
    }
}

/// Every regular file of the tree (not following symlinks): (dev, ino) → size.
fn all_files(tree: &Path) -> io::Result<HashMap<(u64, u64), u64>> {
    let mut out = HashMap::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                out.insert((md.dev(), md.ino()), md.len());
            }
        }
    }
    Ok(out)
}

/// Where a path from a package's file list is in the tree: the parent directories are resolved
/// through the tree's own symlinks (`/lib` → `usr/lib`), the last component is not followed.
fn locate(root: &Path, listed: &str) -> Option<PathBuf> {
    let rel = listed.trim_start_matches('/');
    let p = Path::new(rel);
    let parent = root.join(p.parent()?).canonicalize().ok()?;
    if !parent.starts_with(root) {
        return None;
    }
    Some(parent.join(p.file_name()?))
}

/// Measure `tree`; `lists` gives each package's name and the paths its dpkg file list names.
pub fn measure<'a>(
    tree: &Path,
    lists: impl IntoIterator<Item = (String, Vec<String>)> + 'a,
) -> io::Result<SizeReport> {
    let root = tree.canonicalize()?;
    let files = all_files(&root)?;
    let total = files.values().sum();
    let mut claimed: HashSet<(u64, u64)> = HashSet::new();
    let mut by_package = Vec::new();
    let mut owned_total = 0;
    for (name, paths) in lists {
        let mut bytes = 0;
        for listed in paths {
            let Some(p) = locate(&root, &listed) else {
                continue;
            };
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_file() && claimed.insert((md.dev(), md.ino())) {
                bytes += md.len();
            }
        }
        owned_total += bytes;
        by_package.push((name, bytes));
    }
    by_package.push((UNOWNED.to_string(), total - owned_total.min(total)));
    by_package.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(SizeReport { total, by_package })
}

/// Read the dpkg file list of each package from `info_dir` (`<name>.list` or
/// `<name>:<arch>.list`).
pub fn dpkg_lists(
    info_dir: &Path,
    packages: &[crate::packages::Installed],
) -> io::Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for p in packages {
        let plain = info_dir.join(format!("{}.list", p.name));
        let qualified = info_dir.join(format!("{}:{}.list", p.name, p.arch));
        let text = match fs::read_to_string(&plain) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::read_to_string(&qualified).unwrap_or_default()
            }
            Err(e) => return Err(e),
        };
        out.push((p.name.clone(), text.lines().map(str::to_string).collect()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn sizes_by_package_follow_usrmerge_and_count_hardlinks_once() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("usr/lib/mod")).unwrap();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        fs::write(r.join("usr/lib/mod/big.ko"), vec![0u8; 3000]).unwrap();
        fs::write(r.join("usr/bin/tool"), vec![0u8; 1000]).unwrap();
        fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool2")).unwrap();
        fs::write(r.join("usr/lib/initramfs.img"), vec![0u8; 500]).unwrap();
        let report = measure(
            r,
            vec![
                (
                    "kernel".to_string(),
                    vec!["/lib".into(), "/lib/mod".into(), "/lib/mod/big.ko".into()],
                ),
                (
                    "tools".to_string(),
                    vec![
                        "/usr/bin/tool".into(),
                        "/usr/bin/tool2".into(),
                        "/usr/bin/gone".into(),
                    ],
                ),
                ("empty".to_string(), vec![]),
            ],
        )
        .unwrap();
        assert_eq!(report.total, 4500);
        assert_eq!(
            report.by_package,
            vec![
                ("kernel".to_string(), 3000),
                ("tools".to_string(), 1000),
                (UNOWNED.to_string(), 500),
                ("empty".to_string(), 0),
            ]
        );
        let text = report.render(2);
        assert!(text.contains("2.9 KiB  kernel"), "{text}");
        assert!(!text.contains(UNOWNED), "{text}");
        assert!(text.contains("4.4 KiB  total (3 packages)"), "{text}");
    }
}
