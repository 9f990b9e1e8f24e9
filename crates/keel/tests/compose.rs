//! `keel compose` end to end: real mmdebstrap, real Debian packages (cached in
//! /var/cache/keel-debs), real dracut, the keel store, and `ostree` as the oracle for the commit.
//!
//! The composes share the package cache, so they run one at a time (a lock in this file, and
//! compose's own lock on the cache).

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

const CACHE: &str = "/var/cache/keel-debs";
/// 2026-11-25 00:00:00 UTC.
const EPOCH: &str = "1795564800";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !rustix_is_root() {
        return Some("compose needs root".into());
    }
    for tool in ["mmdebstrap", "unshare", "chroot", "zstd"] {
        if !keel_on_path(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn rustix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn keel_on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

macro_rules! skip_unless_able {
    ($test:literal) => {
        if let Some(reason) = skip_reason() {
            keel_testsupport::skip(&format!("{}: {reason}", $test));
            return;
        }
    };
}

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .expect("running keel")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Run a compose that must succeed; returns (stdout, stderr).
fn compose_ok(args: &[&str]) -> (String, String) {
    let o = keel(args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "keel {args:?} failed:\n{out}\n{err}");
    (out, err)
}

/// The value of `key: value` in compose's output.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

fn read_ref(repo: &Path, name: &str) -> Option<String> {
    fs::read_to_string(repo.join("refs/heads").join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

fn link(tree: &Path, p: &str) -> String {
    fs::read_link(tree.join(p))
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Assert the image layout every composed tree has.
fn assert_image_layout(tree: &Path) {
    for (p, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("home", "var/home"),
        ("root", "var/roothome"),
        ("opt", "var/opt"),
        ("srv", "var/srv"),
        ("mnt", "var/mnt"),
        ("media", "run/media"),
        ("ostree", "sysroot/ostree"),
        ("usr/local", "../var/usrlocal"),
        ("usr/etc/os-release", "../usr/lib/os-release"),
    ] {
        assert_eq!(link(tree, p), target, "/{p}");
    }
    assert!(
        !tree.join("etc").exists(),
        "/etc must be shipped as /usr/etc"
    );
    for d in ["var", "dev", "proc", "sys", "run", "tmp", "boot", "sysroot"] {
        assert_eq!(
            fs::read_dir(tree.join(d)).unwrap().count(),
            0,
            "/{d} must be empty"
        );
    }
    assert_eq!(fs::read(tree.join("usr/etc/machine-id")).unwrap(), b"");
    let tmpfiles = fs::read_to_string(tree.join("usr/lib/tmpfiles.d/keel-var.conf")).unwrap();
    assert!(
        tmpfiles.contains("L /var/lib/dpkg - - - - ../../usr/lib/sysimage/dpkg"),
        "{tmpfiles}"
    );
    assert!(
        tmpfiles.contains("d /var/roothome 0700 0 0 -"),
        "{tmpfiles}"
    );
    assert!(tree.join("usr/lib/sysimage/dpkg/status").is_file());
    assert!(!tmpfiles.contains("/var/log/apt/history.log"));
}

/// Small manifest: cache, offline reproducibility, layout, respin, diff, and bad manifests.
#[test]
fn small_manifest_end_to_end() {
    skip_unless_able!("small_manifest_end_to_end");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let w = work.path();
    let manifest = repo_root().join("manifests/tests/small.toml");
    let manifest = manifest.to_str().unwrap();
    let (repo_a, repo_b) = (w.join("a"), w.join("b"));
    let (tree_a, tree_b) = (w.join("tree-a"), w.join("tree-b"));
    let workdir = w.to_str().unwrap();
    let version = "12.20261125.1.0";

    // 1. Online (fills the cache), then offline with the network closed to apt: same tree, same commit.
    let (out_a, err_a) = compose_ok(&[
        "compose",
        manifest,
        "--repo",
        repo_a.to_str().unwrap(),
        "--cache",
        CACHE,
        "--release-version",
        version,
        "--workdir",
        workdir,
        "--keep-tree",
        tree_a.to_str().unwrap(),
    ]);
    let (out_b, _) = compose_ok(&[
        "compose",
        manifest,
        "--repo",
        repo_b.to_str().unwrap(),
        "--cache",
        CACHE,
        "--offline",
        "--release-version",
        version,
        "--workdir",
        workdir,
        "--keep-tree",
        tree_b.to_str().unwrap(),
    ]);
    assert!(
        field(&out_b, "downloaded").starts_with("0 packages (0 B)"),
        "{out_b}"
    );
    assert_eq!(
        field(&out_a, "root-tree"),
        field(&out_b, "root-tree"),
        "same input, same tree"
    );
    assert_eq!(
        field(&out_a, "commit"),
        field(&out_b, "commit"),
        "same input, same commit"
    );
    assert_eq!(field(&out_a, "version"), version);
    assert_eq!(field(&out_a, "ref"), "keel/next/x86_64");
    assert!(
        err_a.contains("tree size by package (top 20, largest first):"),
        "{err_a}"
    );
    assert!(err_a.contains("total ("), "{err_a}");

    // 2. The tree.
    assert_image_layout(&tree_a);
    let os = fs::read_to_string(tree_a.join("usr/lib/os-release")).unwrap();
    assert!(
        os.contains("NAME=\"Keel test\"") && os.contains(&format!("VERSION=\"{version}\"")),
        "{os}"
    );
    assert_eq!(
        fs::read_to_string(tree_a.join("usr/share/keel-greeting")).unwrap(),
        "Hello, world!\n"
    );
    assert!(tree_a.join("usr/lib/keel/overlay-marker").is_file());
    let sysusers =
        fs::read_to_string(tree_a.join("usr/lib/sysusers.d/keel-manifest.conf")).unwrap();
    assert!(
        sysusers.contains("u core 1000 \"\" /var/home/core /bin/sh"),
        "{sysusers}"
    );

    // 3. Commit metadata, read by the real ostree.
    if keel_on_path("ostree") {
        let meta = |key: &str| {
            let o = Command::new("ostree")
                .args([
                    "show",
                    "--repo",
                    repo_a.to_str().unwrap(),
                    "keel/next/x86_64",
                ])
                .arg(format!("--print-metadata-key={key}"))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "ostree show {key}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        assert_eq!(meta("version"), format!("'{version}'"));
        assert_eq!(meta("keel.stream"), "'next'");
        assert!(meta("keel.packages").contains("\"hello\":"));
        assert_eq!(meta("keel.manifest-sha256").len(), 66);
    } else {
        keel_testsupport::skip(
            "small_manifest_end_to_end (part): ostree is not installed (apt-get install ostree); commit metadata checked through keel only",
        );
    }

    // 4. A second compose on the same ref and day gets the next respin; diff shows the change.
    let changed = w.join("changed.toml");
    let overlay = repo_root().join("manifests/tests/overlay");
    let changed_text = fs::read_to_string(repo_root().join("manifests/tests/small.toml"))
        .unwrap()
        .replace(
            "overlays = [\"overlay\"]",
            &format!("overlays = [{:?}]", overlay.to_str().unwrap()),
        )
        .replace("install = [\"hello\"]", "install = [\"hello\", \"sl\"]");
    fs::write(&changed, changed_text).unwrap();
    let (out_c, _) = compose_ok(&[
        "compose",
        changed.to_str().unwrap(),
        "--repo",
        repo_a.to_str().unwrap(),
        "--cache",
        CACHE,
        "--workdir",
        workdir,
        "--json",
    ]);
    let result: serde_json::Value =
        serde_json::from_str(out_c.lines().last().expect("a result line")).unwrap();
    keel_testsupport::schema::assert_valid("compose", &result);
    assert_eq!(result["version"], "12.20261125.1.1");
    assert_eq!(
        result["commit"].as_str(),
        read_ref(&repo_a, "keel/next/x86_64").as_deref()
    );
    let o = keel(&[
        "compose",
        "diff",
        "--repo",
        repo_a.to_str().unwrap(),
        "keel/next/x86_64^",
        "keel/next/x86_64",
    ]);
    let (diff, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(diff.lines().any(|l| l.starts_with("+ sl ")), "{diff}");
    assert!(!diff.contains("hello"), "{diff}");

    // 5. Bad manifests stop with an error naming the key or package, and never move the ref.
    let before = read_ref(&repo_a, "keel/next/x86_64").expect("ref exists");
    let base = fs::read_to_string(&changed).unwrap();
    for (name, edit, want) in [
        (
            "unknown-key",
            base.replace("[release]", "colour = \"blue\"\n[release]"),
            "unknown field `colour`",
        ),
        (
            "missing-package",
            base.replace("\"sl\"", "\"no-such-package-keel\""),
            "no-such-package-keel",
        ),
        (
            "unreachable-mirror",
            base.replace("http://deb.debian.org/debian", "http://127.0.0.1:9/debian"),
            "debian.mirrors",
        ),
        (
            "failing-postprocess",
            format!("{base}\n[[postprocess]]\nname = \"fails\"\nscript = \"exit 3\"\n"),
            "postprocess[1] (fails)",
        ),
    ] {
        let p = w.join(format!("{name}.toml"));
        fs::write(&p, edit).unwrap();
        let o = keel(&[
            "compose",
            p.to_str().unwrap(),
            "--repo",
            repo_a.to_str().unwrap(),
            "--cache",
            CACHE,
            "--workdir",
            workdir,
        ]);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{name}: compose should fail");
        assert!(err.contains(want), "{name}: {want:?} not in:\n{err}");
        assert_eq!(
            read_ref(&repo_a, "keel/next/x86_64").as_deref(),
            Some(before.as_str()),
            "{name} moved the ref"
        );
    }
    let leftovers: Vec<_> = fs::read_dir(w)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("keel-compose-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "build directories left behind: {leftovers:?}"
    );
}

/// Names in a newc cpio archive (several concatenated archives are read in turn).
fn cpio_names(data: &[u8]) -> Vec<String> {
    let hex = |b: &[u8]| usize::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let pad4 = |n: usize| (n + 3) & !3;
    let mut names = Vec::new();
    let mut pos = 0;
    while pos + 110 <= data.len() {
        if data[pos] == 0 {
            pos += 1;
            continue;
        }
        assert_eq!(
            &data[pos..pos + 6],
            b"070701",
            "not a newc cpio archive at {pos}"
        );
        let h = &data[pos..pos + 110];
        let filesize = hex(&h[54..62]);
        let namesize = hex(&h[94..102]);
        let name = String::from_utf8_lossy(&data[pos + 110..pos + 110 + namesize - 1]).into_owned();
        pos = pad4(pos + 110 + namesize);
        pos = pad4(pos + filesize);
        if name != "TRAILER!!!" {
            names.push(name);
        }
    }
    names
}

/// The default OS to check: composed by the suite's VM step when `scripts/test.sh` ran that
/// first (`KEEL_TEST_DEFAULT_OS` names its work directory, with `repo`, `compose.out` and
/// `compose.err`: the same compose, not a second one), else composed here with a fixed date.
/// Returns the scratch directory, the tree and compose's stdout and stderr.
fn default_os() -> (tempfile::TempDir, PathBuf, String, String) {
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let w = work.path();
    let tree = w.join("tree");
    if let Some(dir) = std::env::var_os("KEEL_TEST_DEFAULT_OS").map(PathBuf::from) {
        let read = |f: &str| {
            fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{}/{f}: {e}", dir.display()))
        };
        let (out, err) = (read("compose.out"), read("compose.err"));
        let repo = dir.join("repo");
        compose_ok(&[
            "repo",
            "--repo",
            repo.to_str().unwrap(),
            "checkout",
            field(&out, "commit"),
            tree.to_str().unwrap(),
        ]);
        eprintln!("checking the suite's compose in {}", dir.display());
        return (work, tree, out, err);
    }
    let repo = w.join("repo");
    let manifest = repo_root().join("manifests/keel.toml");
    let started = std::time::Instant::now();
    let (out, err) = compose_ok(&[
        "compose",
        manifest.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--cache",
        CACHE,
        "--workdir",
        w.to_str().unwrap(),
        "--keep-tree",
        tree.to_str().unwrap(),
    ]);
    eprintln!(
        "default OS composed in {:.0?}:\n{out}{err}",
        started.elapsed()
    );
    assert_eq!(field(&out, "version"), "12.20261125.3.0");
    (work, tree, out, err)
}

/// The default Keel OS: kernel and initramfs in place, keel's initramfs pieces, size budget.
#[test]
fn default_os_compose() {
    skip_unless_able!("default_os_compose");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_work, tree, out, err) = default_os();
    let version = field(&out, "version");
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 4 && parts[0] == "12" && parts[1].len() == 8 && parts[2] == "3",
        "version {version}"
    );
    assert_eq!(field(&out, "ref"), "keel/stable/x86_64");
    assert_image_layout(&tree);

    // Size: compose enforces size-limit-mib = 900; check the reported total too.
    let total = err
        .lines()
        .find(|l| l.contains(" total ("))
        .expect("size report total");
    let mut parts = total.split_whitespace();
    let (n, unit) = (parts.next().unwrap(), parts.next().unwrap());
    let n: f64 = n.parse().unwrap();
    let mib = match unit {
        "MiB" => n,
        "GiB" => n * 1024.0,
        other => panic!("unexpected unit {other} in {total:?}"),
    };
    assert!(mib < 900.0, "the default OS is {mib} MiB, over 900 MiB");

    // Kernel and initramfs where the deployment code looks for them.
    let modules: Vec<_> = fs::read_dir(tree.join("usr/lib/modules"))
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(modules.len(), 1, "exactly one kernel");
    let kdir = modules[0].path();
    assert!(kdir.join("vmlinuz").is_file());
    let initramfs = kdir.join("initramfs.img");
    assert!(initramfs.is_file());
    let raw = Command::new("zstd")
        .args(["-dc"])
        .arg(&initramfs)
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "initramfs is not zstd: {}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let names = cpio_names(&raw.stdout);
    for want in [
        "usr/bin/keel",
        "usr/lib/systemd/system/keel-prepare-root.service",
        "usr/lib/systemd/system/keel-ignition-fetch-offline.service",
        "usr/lib/systemd/system/keel-ignition-fetch.service",
        "usr/lib/systemd/system/keel-ignition-kargs.service",
        "usr/lib/systemd/system/keel-ignition-disks.service",
        "usr/lib/systemd/system/keel-ignition-mount.service",
        "usr/lib/systemd/system/keel-ignition-files.service",
        "usr/lib/systemd/system/keel-ignition-umount.service",
        "usr/lib/systemd/system/initrd.target.wants/keel-prepare-root.service",
        "usr/lib/systemd/system/initrd.target.wants/keel-ignition-disks.service",
        "usr/lib/systemd/system-generators/keel-ignition-generator",
        "usr/lib/systemd/systemd",
        "usr/sbin/sgdisk",
        "usr/sbin/mkfs.ext4",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from the initramfs ({} entries)",
            names.len()
        );
    }
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("/virtio_blk.ko") || n.ends_with("/virtio_blk.ko.xz")),
        "virtio_blk missing"
    );

    // The practical parts of the default OS.
    let etc = tree.join("usr/etc");
    assert!(
        fs::read_dir(etc.join("ssh")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("ssh_host_")),
        "SSH host keys must not be shipped"
    );
    let sshd = fs::read_to_string(etc.join("ssh/sshd_config.d/40-keel.conf")).unwrap();
    assert!(
        sshd.contains("AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys.d/ignition")
    );
    for wanted in [
        "systemd/system/multi-user.target.wants/ssh.service",
        "systemd/system/multi-user.target.wants/systemd-networkd.service",
        "systemd/system/ssh.service.wants/keel-sshd-keygen.service",
        "systemd/system/local-fs.target.wants/tmp.mount",
    ] {
        assert!(
            fs::symlink_metadata(etc.join(wanted)).is_ok(),
            "{wanted} not enabled"
        );
    }
    assert!(fs::read_to_string(tree.join("usr/bin/docker"))
        .unwrap()
        .contains("exec /usr/bin/podman"));
    for bin in [
        "usr/bin/podman",
        "usr/bin/crun",
        "usr/sbin/sshd",
        "usr/bin/keel",
        "usr/sbin/mkfs.xfs",
        "usr/sbin/cryptsetup",
    ] {
        assert!(tree.join(bin).is_file(), "{bin} missing");
    }
    assert!(tree
        .join("usr/lib/systemd/boot/efi/systemd-bootx64.efi")
        .is_file());
    // keel's man pages, rendered at compose time by the installed keel, and `man` to read
    // them (units say Documentation=man:keel-…(1)); other packages' pages stay excluded.
    for page in ["keel.1.gz", "keel-status.1.gz", "keel-agent.1.gz"] {
        let p = tree.join("usr/share/man/man1").join(page);
        assert!(p.is_file(), "{} missing", p.display());
    }
    assert!(tree.join("usr/bin/man").is_file(), "man-db missing");
    let mut dirs = vec![tree.join("usr/share/man")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(e.path());
            } else if kind.is_file() {
                assert!(
                    e.file_name().to_string_lossy().starts_with("keel"),
                    "{} is shipped although /usr/share/man/* is path-excluded",
                    e.path().display()
                );
            }
        }
    }
    assert_eq!(
        fs::read_to_string(tree.join("usr/lib/keel/kargs")).unwrap(),
        "console=tty0 console=ttyS0,115200n8 panic=10\n"
    );
    // usr/etc/os-release links to ../usr/lib/os-release, which resolves once it is /etc again.
    assert!(fs::read_to_string(tree.join("usr/lib/os-release"))
        .unwrap()
        .contains("ID=\"keel\""));
}
