//! Releases for update tests, made on the host: an archive repository that starts as a copy of
//! the image's compose repository, new commits derived from one of its commits (check out,
//! change, commit with a new version, sign, update the summary), and a static HTTP server for
//! it on 127.0.0.1 that guests reach at `10.0.2.2:<port>` (QEMU user networking).

use crate::ssh::free_port;
use anyhow::{bail, ensure, Context, Result};
use keel_utils::cmd;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The address of the host's loopback as QEMU user networking shows it to the guest.
pub const HOST_FROM_GUEST: &str = "10.0.2.2";

/// An archive repository that releases are published to.
pub struct ReleaseRepo {
    /// The repository.
    pub path: PathBuf,
    /// Secret signing key (`keel repo keygen`); `<key>.pub` is its public half.
    pub key: Option<PathBuf>,
    keel: PathBuf,
}

impl ReleaseRepo {
    /// A copy of the archive repository `src` at `dest` (hardlinks when both are on one
    /// filesystem, so it costs nothing; objects are never modified in place).
    pub fn copy_of(keel: &Path, src: &Path, dest: &Path) -> Result<ReleaseRepo> {
        ensure!(!dest.exists(), "{} exists already", dest.display());
        let linked = cmd::run(Command::new("cp").arg("-al").arg(src).arg(dest));
        if linked.is_err() {
            let _ = std::fs::remove_dir_all(dest);
            cmd::run(Command::new("cp").arg("-a").arg(src).arg(dest))
                .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
        }
        Ok(ReleaseRepo {
            path: dest.to_path_buf(),
            key: None,
            keel: keel.to_path_buf(),
        })
    }

    /// Generate a signing key at `key` (and `key.pub`); later commits and summaries are signed.
    pub fn with_new_key(mut self, key: &Path) -> Result<ReleaseRepo> {
        cmd::run(Command::new(&self.keel).args(["repo", "keygen"]).arg(key))?;
        self.key = Some(key.to_path_buf());
        Ok(self)
    }

    /// The public key file, when signing.
    pub fn public_key(&self) -> Option<PathBuf> {
        self.key.as_ref().map(|k| k.with_extension("pub"))
    }

    fn repo_cmd(&self, args: &[&str]) -> Result<String> {
        let out = cmd::run(
            Command::new(&self.keel)
                .args(["repo", "--repo"])
                .arg(&self.path)
                .args(args),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The commit `rev` names.
    pub fn rev_parse(&self, rev: &str) -> Result<String> {
        self.repo_cmd(&["rev-parse", rev])
    }

    /// Derive a release from `base`: check it out under `work`, let `change` edit the
    /// checkout (replace files, never write into them: checked-out files may share storage),
    /// commit it on `refname` (its parent is the ref's commit) with `version`, sign it and
    /// update the summary. Returns the new commit.
    pub fn derive(
        &self,
        base: &str,
        refname: &str,
        version: &str,
        work: &Path,
        change: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<String> {
        let tree = work.join(format!("tree-{version}"));
        if tree.exists() {
            std::fs::remove_dir_all(&tree)
                .with_context(|| format!("removing {}", tree.display()))?;
        }
        let t = tree.to_string_lossy().into_owned();
        self.repo_cmd(&["checkout", base, &t])?;
        change(&tree).with_context(|| format!("changing {}", tree.display()))?;
        let commit = self.repo_cmd(&[
            "commit",
            "-b",
            refname,
            "-s",
            version,
            "--add-metadata-string",
            &format!("version={version}"),
            &t,
        ])?;
        std::fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
        let commit = commit.lines().last().unwrap_or_default().to_string();
        ensure!(
            commit.len() == 64 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "keel repo commit printed {commit:?}, not a checksum"
        );
        if let Some(k) = &self.key {
            self.repo_cmd(&["sign", "--key", &k.to_string_lossy(), &commit])?;
        }
        self.update_summary()?;
        Ok(commit)
    }

    /// Regenerate the summary (signed when there is a key).
    pub fn update_summary(&self) -> Result<()> {
        let mut args = vec!["summary".to_string(), "--update".to_string()];
        if let Some(k) = &self.key {
            args.push("--sign-key".into());
            args.push(k.to_string_lossy().into_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.repo_cmd(&args)?;
        Ok(())
    }
}

/// `keel repo serve` for a repository on a free port of 127.0.0.1; stopped on drop.
pub struct Served {
    /// The port.
    pub port: u16,
    child: Child,
}

impl Served {
    /// Serve `repo` with the `keel` binary; returns once the port accepts connections.
    // A server child kept running while the VM test needs it and killed on drop; the
    // command helper runs tools to completion.
    #[allow(clippy::disallowed_methods)]
    pub fn start(keel: &Path, repo: &Path) -> Result<Served> {
        let port = free_port()?;
        let child = Command::new(keel)
            .args(["repo", "--repo"])
            .arg(repo)
            .args(["serve", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} repo serve", keel.display()))?;
        let mut served = Served { port, child };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = served.child.try_wait() {
                bail!("keel repo serve for {} exited: {status}", repo.display());
            }
            ensure!(
                start.elapsed() < Duration::from_secs(30),
                "keel repo serve did not listen on 127.0.0.1:{port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(served)
    }

    /// Its URL as the guest sees it.
    pub fn guest_url(&self) -> String {
        format!("http://{HOST_FROM_GUEST}:{}/", self.port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
