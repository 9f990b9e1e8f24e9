//! Deterministic generators of file trees for store tests: a "tricky" tree that exercises every
//! corner of the OSTree format, and a bulk tree of many ordinary files (for crash tests).

use crate::rng::Rng;
use crate::xattr;
use std::fs;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// What to put in a tricky tree.
#[derive(Clone, Debug)]
pub struct TrickyOptions {
    /// Seed for every random choice (names, sizes, content).
    pub seed: u64,
    /// Number of extra small files with random sizes (0..32 KiB) spread over a few directories.
    pub small_files: usize,
    /// Size of the one large file (random blocks separated by holes); 0 for none.
    pub large_file_bytes: u64,
    /// Nesting depth of the deep directory chain.
    pub depth: usize,
}

impl Default for TrickyOptions {
    fn default() -> Self {
        TrickyOptions {
            seed: 2,
            small_files: 200,
            large_file_bytes: 30 << 20,
            depth: 100,
        }
    }
}

/// A generated tree and which optional parts the filesystem allowed.
#[derive(Clone, Debug)]
pub struct Generated {
    /// Root of the tree.
    pub root: PathBuf,
    /// xattr namespaces that were used (`user`, `security`, `trusted`; each only if supported).
    pub xattr_namespaces: Vec<&'static str>,
}

/// Ownership, mode and xattrs to apply to a path once its content exists.
struct Meta {
    path: PathBuf,
    uid: u32,
    gid: u32,
    mode: Option<u32>,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Builds a tree, deferring metadata so that ownership is set before modes (chown clears the
/// set-id bits) and directories get their final modes after they are filled.
struct Builder {
    rng: Rng,
    namespaces: Vec<&'static str>,
    meta: Vec<Meta>,
}

impl Builder {
    /// Record ownership and mode (None for symlinks) to apply in `finish`.
    fn later(&mut self, path: &Path, uid: u32, gid: u32, mode: Option<u32>) {
        self.meta.push(Meta {
            path: path.to_owned(),
            uid,
            gid,
            mode,
            xattrs: Vec::new(),
        });
    }

    fn dir(&mut self, path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
        fs::create_dir_all(path)?;
        self.later(path, uid, gid, Some(mode));
        Ok(())
    }

    fn file(
        &mut self,
        path: &Path,
        content: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> io::Result<()> {
        fs::write(path, content)?;
        self.later(path, uid, gid, Some(mode));
        Ok(())
    }

    fn random_file(&mut self, path: &Path, max_len: u64, mode: u32) -> io::Result<()> {
        let mut buf = vec![0u8; self.rng.below(max_len + 1) as usize];
        self.rng.fill(&mut buf);
        self.file(path, &buf, 0, 0, mode)
    }

    fn symlink(&mut self, path: &Path, target: &str, uid: u32, gid: u32) -> io::Result<()> {
        symlink(target, path)?;
        self.later(path, uid, gid, None);
        Ok(())
    }

    /// Add an xattr to the most recently created path if its namespace is supported (and, for
    /// symlinks, if the namespace allows it: `user.*` does not).
    fn xattr(&mut self, name: &str, value: &[u8]) {
        let ns = name.split('.').next().unwrap_or_default();
        let last = self.meta.last_mut().expect("xattr() after a create");
        let on_symlink = last.mode.is_none();
        if self.namespaces.contains(&ns) && !(on_symlink && ns == "user") {
            last.xattrs.push((name.to_owned(), value.to_vec()));
        }
    }

    fn finish(self) -> io::Result<()> {
        for m in self.meta.iter().rev() {
            for (name, value) in &m.xattrs {
                xattr::set(&m.path, name, value).map_err(|e| {
                    io::Error::new(e.kind(), format!("{}: {name}: {e}", m.path.display()))
                })?;
            }
            lchown(&m.path, Some(m.uid), Some(m.gid))?;
            if let Some(mode) = m.mode {
                fs::set_permissions(&m.path, fs::Permissions::from_mode(mode))?;
            }
        }
        Ok(())
    }
}

/// Generate the tricky tree under `root` (created; must not exist or be empty). Needs root
/// privileges for the ownership parts. Covers: unicode and 255-byte names, names that sort
/// differently by bytes and by locale, a `depth`-level chain, setuid/setgid/sticky bits, odd
/// modes (0000, 0400), non-zero uids/gids on files, directories and symlinks, xattrs in the
/// `user`, `security` and `trusted` namespaces (as supported; empty and binary values, on
/// directories and symlinks too), absolute/relative/dangling/long symlinks, hardlinks, empty
/// files and directories, duplicate content, and one large sparse-ish file.
pub fn tricky_tree(root: &Path, opts: &TrickyOptions) -> io::Result<Generated> {
    fs::create_dir_all(root)?;
    let namespaces: Vec<&'static str> = ["user", "security", "trusted"]
        .into_iter()
        .filter(|ns| xattr::supported(root, ns))
        .collect();
    let mut b = Builder {
        rng: Rng::new(opts.seed),
        namespaces: namespaces.clone(),
        meta: Vec::new(),
    };
    let r = |p: &str| root.join(p);

    b.dir(root, 0, 0, 0o755)?;
    b.xattr("user.keel.root", b"top");

    // Names: unicode, 255 bytes (ASCII and multi-byte), byte-order edge cases.
    b.dir(&r("names"), 0, 0, 0o755)?;
    let long_ascii = "n".repeat(255);
    let long_utf8 = format!("{}x", "é".repeat(127));
    let names = [
        "héllo wörld",
        "日本語のファイル名",
        "emoji-🚀-✓",
        "Ωmega",
        "A",
        "a",
        "a.b",
        "a-b",
        "a_b",
        "ä",
        "-leading-dash",
        " leading space",
        "trailing space ",
        "tab\there",
        "quote'\"",
        long_ascii.as_str(),
        long_utf8.as_str(),
    ];
    for name in names {
        b.random_file(&r("names").join(name), 300, 0o644)?;
    }
    b.dir(&r("names").join("d".repeat(255)), 0, 0, 0o755)?;
    b.random_file(
        &r("names").join("d".repeat(255)).join(&long_utf8),
        10,
        0o644,
    )?;

    // Deep nesting.
    let mut deep = r("deep");
    for level in 0..opts.depth {
        deep.push(format!("l{level:03}"));
    }
    fs::create_dir_all(&deep)?;
    b.file(&deep.join("bottom.txt"), b"at the bottom\n", 0, 0, 0o644)?;

    // Modes and owners.
    b.dir(&r("modes"), 0, 0, 0o755)?;
    for (name, uid, gid, mode) in [
        ("setuid", 0, 0, 0o4755),
        ("setgid", 0, 50, 0o2755),
        ("setuid-setgid-user", 1000, 1000, 0o6750),
        ("sticky-file", 0, 0, 0o1644),
        ("zero", 0, 0, 0o000),
        ("readonly", 0, 0, 0o400),
        ("nobody", 65534, 65534, 0o640),
        ("big-ids", 4_000_000, 3_000_000, 0o604),
    ] {
        let content = format!("mode {mode:o} owner {uid}:{gid}\n");
        b.file(&r("modes").join(name), content.as_bytes(), uid, gid, mode)?;
    }
    b.dir(&r("modes/sticky-dir"), 0, 0, 0o1777)?;
    b.dir(&r("modes/setgid-dir"), 0, 100, 0o2775)?;
    b.dir(&r("modes/private-dir"), 1000, 1000, 0o700)?;
    b.dir(&r("modes/no-access-dir"), 0, 0, 0o000)?;
    b.file(
        &r("modes/setgid-dir/inside"),
        b"in a setgid dir\n",
        1000,
        100,
        0o664,
    )?;

    // Xattrs.
    b.dir(&r("xattrs"), 0, 0, 0o755)?;
    b.xattr("user.dir", b"D");
    b.xattr("trusted.keel.dir", b"trusted dir");
    b.file(&r("xattrs/many"), b"hi\n", 0, 0, 0o644)?;
    b.xattr("user.zeta", b"Z");
    b.xattr("user.alpha", b"AAA");
    b.xattr("user.empty", b"");
    b.xattr("user.binary", &[0, 1, 2, 255, 0, 10]);
    b.xattr("security.keel", b"security value");
    b.xattr("trusted.keel", b"trusted value");
    let mut big = vec![0u8; 2000];
    b.rng.fill(&mut big);
    b.file(&r("xattrs/big-value"), b"big xattr\n", 0, 0, 0o644)?;
    b.xattr("user.big", &big);
    b.symlink(&r("xattrs/link-with-xattr"), "many", 0, 0)?;
    b.xattr("trusted.link", b"on a symlink");
    b.xattr("security.link", b"sec on a symlink");
    b.file(&r("xattrs/same-content-other-xattr"), b"hi\n", 0, 0, 0o644)?;
    b.xattr("user.alpha", b"different");

    // Symlinks.
    b.dir(&r("links"), 0, 0, 0o755)?;
    let long_target = format!("{}/end", "segment/".repeat(120));
    for (name, target) in [
        ("absolute", "/etc/passwd"),
        ("relative", "../names/a"),
        ("dangling", "does/not/exist"),
        ("to-dir", "../deep"),
        ("dot", "."),
        ("long", long_target.as_str()),
        ("unicode-target", "../names/日本語のファイル名"),
    ] {
        b.symlink(&r("links").join(name), target, 0, 0)?;
    }
    b.symlink(&r("links/owned"), "absolute", 1000, 1001)?;

    // Hardlinks, empty files and directories, duplicate content.
    b.dir(&r("hard"), 0, 0, 0o755)?;
    b.dir(&r("hard/other"), 0, 0, 0o755)?;
    b.file(&r("hard/one"), b"hardlinked content\n", 0, 0, 0o644)?;
    fs::hard_link(r("hard/one"), r("hard/two"))?;
    fs::hard_link(r("hard/one"), r("hard/other/three"))?;
    b.dir(&r("empty/a/b/c"), 0, 0, 0o755)?;
    b.dir(&r("empty/owned"), 1234, 5678, 0o750)?;
    b.file(&r("empty/file"), b"", 0, 0, 0o644)?;
    b.file(&r("empty/exec"), b"", 0, 0, 0o755)?;
    b.file(&r("hard/dup-a"), b"duplicate\n", 0, 0, 0o644)?;
    b.file(&r("hard/dup-b"), b"duplicate\n", 0, 0, 0o644)?;

    // Bulk of small files.
    for i in 0..opts.small_files {
        let dir = r(&format!("bulk/d{}", i % 7));
        if i < 7 {
            b.dir(&dir, 0, 0, 0o755)?;
        }
        let mode = if i % 5 == 0 { 0o755 } else { 0o644 };
        b.random_file(&dir.join(format!("f{i:05}")), 32 << 10, mode)?;
    }

    if opts.large_file_bytes > 0 {
        b.dir(&r("large"), 0, 0, 0o755)?;
        let path = r("large/sparse.bin");
        sparse_file(&path, opts.large_file_bytes, &mut b.rng)?;
        b.later(&path, 0, 0, Some(0o644));
    }

    b.finish()?;
    Ok(Generated {
        root: root.to_owned(),
        xattr_namespaces: namespaces,
    })
}

/// A file of `len` bytes made of 64 KiB random blocks separated by holes (about a third data).
fn sparse_file(path: &Path, len: u64, rng: &mut Rng) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    let mut block = vec![0u8; 64 << 10];
    let mut off = 0u64;
    while off < len {
        let n = (block.len() as u64).min(len - off) as usize;
        if rng.below(3) == 0 || off + n as u64 == len {
            rng.fill(&mut block[..n]);
            f.seek(SeekFrom::Start(off))?;
            f.write_all(&block[..n])?;
        }
        off += n as u64;
    }
    f.set_len(len)?;
    f.sync_all()
}

/// Generate `files` regular files of random content (sizes up to `max_len`) under `root`, in
/// directories of 100 files: a tree whose commit takes time proportional to its size.
pub fn bulk_tree(root: &Path, seed: u64, files: usize, max_len: u64) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; max_len as usize];
    for i in 0..files {
        let dir = root.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&dir)?;
        }
        let n = rng.below(max_len + 1) as usize;
        rng.fill(&mut buf[..n]);
        fs::write(dir.join(format!("f{i:06}")), &buf[..n])?;
    }
    Ok(())
}

/// File types the store must refuse to commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// A character device (1:3, like /dev/null).
    CharDevice,
    /// A block device (7:200, a loop device number nothing uses).
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A unix-domain socket, bound and left behind.
    Socket,
}

/// Create a special file of type `kind` at `path` (device nodes need root).
pub fn special_file(path: &Path, kind: Special) -> io::Result<()> {
    use rustix::fs::{makedev, mknodat, FileType, Mode, CWD};
    let mode = Mode::from_raw_mode(0o644);
    match kind {
        Special::CharDevice => mknodat(CWD, path, FileType::CharacterDevice, mode, makedev(1, 3))?,
        Special::BlockDevice => mknodat(CWD, path, FileType::BlockDevice, mode, makedev(7, 200))?,
        Special::Fifo => mknodat(CWD, path, FileType::Fifo, mode, 0)?,
        Special::Socket => drop(std::os::unix::net::UnixListener::bind(path)?),
    }
    Ok(())
}
