//! Driving the two implementations of the same repository commands: the real `ostree` CLI and
//! `keel repo`. Both take the same logical operations; only the spelling of the flags differs.

use keel_utils::cmd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Repository modes both tools support.
pub const MODES: [&str; 3] = ["bare", "bare-user", "archive"];

/// One of the two implementations.
#[derive(Clone, Debug)]
pub enum Tool {
    /// The `ostree` CLI on PATH.
    Ostree,
    /// `keel repo` from the given binary.
    Keel(PathBuf),
}

/// Commit options shared by both tools.
#[derive(Clone, Debug, Default)]
pub struct CommitOpts<'a> {
    /// Subject line.
    pub subject: Option<&'a str>,
    /// Body text.
    pub body: Option<&'a str>,
    /// Commit timestamp (seconds since the epoch).
    pub timestamp: Option<u64>,
    /// `--add-metadata-string K=V` pairs.
    pub metadata: Vec<(&'a str, &'a str)>,
    /// Explicit parent (`none` for a root commit).
    pub parent: Option<&'a str>,
}

impl Tool {
    /// Short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Tool::Ostree => "ostree",
            Tool::Keel(_) => "keel",
        }
    }

    /// The command for subcommand `sub` on `repo`, ready for more arguments.
    pub fn command(&self, repo: &Path, sub: &str) -> Command {
        match self {
            Tool::Ostree => {
                let mut c = Command::new("ostree");
                c.arg(sub).arg(format!("--repo={}", repo.display()));
                c
            }
            Tool::Keel(bin) => {
                let mut c = Command::new(bin);
                c.arg("repo").arg("--repo").arg(repo).arg(sub);
                c
            }
        }
    }

    /// Run `sub` with `args`; panic (with the tool's stderr) unless it succeeds; return stdout.
    pub fn ok(&self, repo: &Path, sub: &str, args: &[&str]) -> String {
        let mut c = self.command(repo, sub);
        c.args(args);
        cmd::run_stdout(&mut c).unwrap_or_else(|e| panic!("{}: {e}", self.name()))
    }

    /// Run `sub` with `args` and return the raw output, whatever the exit status.
    pub fn output(&self, repo: &Path, sub: &str, args: &[&str]) -> Output {
        let mut c = self.command(repo, sub);
        c.args(args);
        c.output()
            .unwrap_or_else(|e| panic!("{}: cannot run {}: {e}", self.name(), cmd::display(&c)))
    }

    /// `init --mode MODE`.
    pub fn init(&self, repo: &Path, mode: &str) {
        match self {
            Tool::Ostree => self.ok(repo, "init", &[&format!("--mode={mode}")]),
            Tool::Keel(_) => self.ok(repo, "init", &["--mode", mode]),
        };
    }

    /// The arguments of `commit -b REF … DIR` in this tool's spelling.
    pub fn commit_args(&self, reference: &str, dir: &Path, o: &CommitOpts) -> Vec<String> {
        let mut a = vec!["-b".to_string(), reference.to_string()];
        let mut opt = |flag: &str, value: String| match self {
            Tool::Ostree => a.push(format!("{flag}={value}")),
            Tool::Keel(_) => {
                a.push(flag.to_string());
                a.push(value)
            }
        };
        if let Some(s) = o.subject {
            opt("--subject", s.to_string());
        }
        if let Some(s) = o.body {
            opt("--body", s.to_string());
        }
        if let Some(t) = o.timestamp {
            match self {
                Tool::Ostree => opt("--timestamp", format!("@{t}")),
                Tool::Keel(_) => opt("--timestamp", t.to_string()),
            }
        }
        for (k, v) in &o.metadata {
            opt("--add-metadata-string", format!("{k}={v}"));
        }
        if let Some(p) = o.parent {
            opt("--parent", p.to_string());
        }
        a.push(dir.display().to_string());
        a
    }

    /// `commit -b REF … DIR`; returns the printed commit checksum (checked to be 64 hex chars).
    pub fn commit(&self, repo: &Path, reference: &str, dir: &Path, o: &CommitOpts) -> String {
        let args = self.commit_args(reference, dir, o);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.ok(repo, "commit", &refs);
        let checksum = out.trim().to_string();
        assert!(
            checksum.len() == 64 && checksum.bytes().all(|b| b.is_ascii_hexdigit()),
            "{} commit printed {out:?}, not a checksum",
            self.name()
        );
        checksum
    }

    /// Check out `rev` to `dest`: a normal checkout (hardlinks where the repo allows them), or a
    /// user-mode one (`-U` / `--user-mode`: files owned by the caller, no set-id bits or xattrs).
    pub fn checkout(&self, repo: &Path, rev: &str, dest: &Path, user_mode: bool) {
        let dest = dest.display().to_string();
        let mut args: Vec<&str> = Vec::new();
        if user_mode {
            args.push(match self {
                Tool::Ostree => "-U",
                Tool::Keel(_) => "--user-mode",
            });
        }
        args.extend([rev, dest.as_str()]);
        self.ok(repo, "checkout", &args);
    }

    /// `fsck`, raw output (exit status 0 = clean).
    pub fn fsck(&self, repo: &Path) -> Output {
        self.output(repo, "fsck", &[])
    }

    /// `rev-parse REF`, trimmed.
    pub fn rev_parse(&self, repo: &Path, reference: &str) -> String {
        self.ok(repo, "rev-parse", &[reference]).trim().to_string()
    }
}

/// Panic with both tools' output unless `out` succeeded.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
