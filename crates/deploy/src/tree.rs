//! What a commit must hold to be deployable, read from the repository before anything is
//! written: the kernel and initramfs (`usr/lib/modules/<kver>/{vmlinuz,initramfs.img}`), the
//! boot checksum over them, `usr/etc`, and the sizes the space checks need.

use crate::error::DeployError;
use keel_store::checksum::Hasher;
use keel_store::{Checksum, Commit, Repo, TreeNode};
use std::io::Read;

/// Facts about a commit's tree.
#[derive(Debug, Clone)]
pub struct TreeInfo {
    /// Kernel version directory under `usr/lib/modules`.
    pub kver: String,
    /// sha256(kernel ‖ initramfs), hex: names the kernel's directory on the ESP.
    pub bootcsum: String,
    /// Kernel plus initramfs bytes.
    pub boot_bytes: u64,
    /// Bytes of regular files under `usr/etc` (copied into each deployment's `/etc`).
    pub etc_bytes: u64,
    /// Number of directories in the tree (a checkout creates each; files are hardlinks).
    pub dirs: u64,
    /// The commit's `version` metadata.
    pub version: Option<String>,
    /// Commit timestamp, seconds since the epoch.
    pub timestamp: u64,
}

fn bad(commit: &Checksum, reason: impl Into<String>) -> DeployError {
    DeployError::BadTree {
        commit: commit.to_hex(),
        reason: reason.into(),
    }
}

/// The dirtree of the directory `path` in the tree of commit `c`, if it exists.
fn subdir(repo: &Repo, c: &Commit, path: &str) -> Result<Option<Checksum>, DeployError> {
    Ok(
        match repo.resolve_in_tree(c.root_tree, c.root_meta, path)? {
            Some(TreeNode::Dir { tree, .. }) => Some(tree),
            _ => None,
        },
    )
}

fn walk(
    repo: &Repo,
    tree: &Checksum,
    dirs: &mut u64,
    bytes: Option<&mut u64>,
) -> Result<(), DeployError> {
    let t = repo.read_dirtree(tree)?;
    *dirs += 1;
    let mut bytes = bytes;
    if let Some(b) = bytes.as_deref_mut() {
        for (_, c) in &t.files {
            *b += repo.open_content(c)?.size;
        }
    }
    for (_, sub, _) in &t.dirs {
        walk(repo, sub, dirs, bytes.as_deref_mut())?;
    }
    Ok(())
}

/// Inspect `commit` in `repo`.
pub fn inspect(repo: &Repo, commit: &Checksum) -> Result<TreeInfo, DeployError> {
    let c = repo.read_commit(commit)?;
    let modules = subdir(repo, &c, "usr/lib/modules")?
        .ok_or_else(|| bad(commit, "no usr/lib/modules; the tree has no kernel"))?;
    let mut kernels = Vec::new();
    for (kver, sub, _) in repo.read_dirtree(&modules)?.dirs {
        let t = repo.read_dirtree(&sub)?;
        let file = |n: &str| t.files.iter().find(|f| f.0 == n).map(|f| f.1);
        if let (Some(k), Some(i)) = (file("vmlinuz"), file("initramfs.img")) {
            kernels.push((kver, k, i));
        }
    }
    let (kver, kernel, initramfs) = match kernels.len() {
        1 => kernels.remove(0),
        0 => {
            return Err(bad(
                commit,
                "no usr/lib/modules/<kver>/ holds both vmlinuz and initramfs.img",
            ))
        }
        _ => {
            let names: Vec<_> = kernels.iter().map(|k| k.0.as_str()).collect();
            return Err(bad(
                commit,
                format!(
                    "several kernels in usr/lib/modules ({}); ship exactly one",
                    names.join(", ")
                ),
            ));
        }
    };
    let mut h = Hasher::new();
    let mut boot_bytes = 0;
    for obj in [kernel, initramfs] {
        let mut r = repo.open_content(&obj)?;
        boot_bytes += r.size;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = r.content.read(&mut buf).map_err(|error| DeployError::Io {
                path: r.path.clone(),
                error,
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    let etc = subdir(repo, &c, "usr/etc")?.ok_or_else(|| {
        bad(
            commit,
            "no usr/etc; compose the tree with its default configuration in /usr/etc",
        )
    })?;
    let (mut etc_dirs, mut etc_bytes) = (0, 0);
    walk(repo, &etc, &mut etc_dirs, Some(&mut etc_bytes))?;
    let mut dirs = 0;
    walk(repo, &c.root_tree, &mut dirs, None)?;
    Ok(TreeInfo {
        kver,
        bootcsum: h.finish().to_hex(),
        boot_bytes,
        etc_bytes,
        dirs,
        version: c.version().map(str::to_string),
        timestamp: c.timestamp,
    })
}
