//! `keel repo`: the command-line front end of the store, with OSTree's command names.

use crate::{
    CheckoutOptions, CommitOptions, EntryKind, ParentSpec, PruneOptions, Repo, RepoMode, Variant,
};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use keel_utils::progress::{human_bytes, Mode, Progress};
use std::io::Write;
use std::path::PathBuf;

/// Examples shown by `keel repo --help`.
pub const EXAMPLES: &str = "Examples:
  keel repo --repo build/repo init --mode archive
  keel repo --repo build/repo commit -b keel/stable/x86_64 -s 'first' rootfs/
  keel repo --repo build/repo checkout keel/stable/x86_64 /tmp/co
  keel repo --repo build/repo fsck

The repository format is OSTree's: `ostree --repo=build/repo ...` works on the same repository.";

/// Content-addressed OS trees in an OSTree-compatible repository.
#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct RepoArgs {
    /// Path to the repository.
    #[arg(long, global = true, default_value = ".")]
    pub repo: PathBuf,
    /// Progress as JSON lines on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: RepoCommand,
}

/// `keel repo` subcommands.
#[derive(Subcommand)]
pub enum RepoCommand {
    /// Create a repository.
    #[command(
        after_help = "Modes: bare (real owners, needs root; for deployments), bare-user \
(metadata in the user.ostreemeta xattr), bare-user-only, archive (compressed, servable over HTTP).

Example:
  keel repo --repo build/repo init --mode archive"
    )]
    Init {
        /// Storage mode: bare, bare-user, bare-user-only or archive (archive-z2).
        #[arg(long, default_value = "bare", value_parser = parse_mode)]
        mode: RepoMode,
    },
    /// Commit a directory tree and print the new commit checksum.
    #[command(
        after_help = "Ownership, modes and all xattrs are taken from disk. With the same \
tree, ref, subject, body, timestamp and metadata the checksum equals `ostree commit`'s.

Example:
  keel repo --repo build/repo commit -b keel/stable/x86_64 -s 'Release 1' \\
      --timestamp 1577836800 \\
      --add-metadata-string version=12.20261125.3.0 rootfs/"
    )]
    Commit(CommitArgs),
    /// Check out a commit into a new directory.
    #[command(
        after_help = "From bare repositories files are hardlinked to the objects (do not edit \
them in place); --copy makes independent copies. Archive repositories are always copied.

Example:
  keel repo --repo build/repo checkout -U keel/stable/x86_64 /tmp/tree"
    )]
    Checkout {
        /// Do not apply owners or xattrs; strip setuid/setgid (for unprivileged use).
        #[arg(short = 'U', long)]
        user_mode: bool,
        /// Copy file contents instead of hardlinking objects.
        #[arg(long, alias = "force-copy")]
        copy: bool,
        /// Check out only this directory of the tree.
        #[arg(long)]
        subpath: Option<String>,
        /// Commit, ref or checksum prefix.
        rev: String,
        /// Destination directory (must not exist).
        dest: PathBuf,
    },
    /// List the contents of a commit.
    #[command(
        after_help = "Output matches `ostree ls`: type+mode, uid, gid, size, path.

Example:
  keel repo --repo build/repo ls -R keel/stable/x86_64 /usr/lib"
    )]
    Ls {
        /// Recurse into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Print checksums too.
        #[arg(short = 'C', long)]
        checksum: bool,
        /// Commit, ref or checksum prefix.
        rev: String,
        /// Path inside the tree.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Print a file from a commit to stdout.
    #[command(
        after_help = "Example:\n  keel repo --repo build/repo cat keel/stable/x86_64 /usr/lib/os-release"
    )]
    Cat {
        /// Commit, ref or checksum prefix.
        rev: String,
        /// Path of a regular file in the tree.
        path: String,
    },
    /// Show the history of a ref, newest first.
    #[command(after_help = "Example:\n  keel repo --repo build/repo log keel/stable/x86_64")]
    Log {
        /// Ref or commit.
        rev: String,
    },
    /// Show one commit and its metadata.
    #[command(after_help = "Example:\n  keel repo --repo build/repo show keel/stable/x86_64^")]
    Show {
        /// Ref or commit.
        rev: String,
    },
    /// Print the full checksum a rev resolves to.
    #[command(
        after_help = "Revs: a full checksum, a unique prefix, a ref, remote:ref, each with \
optional ^ (parent) suffixes.

Example:
  keel repo --repo build/repo rev-parse keel/stable/x86_64^"
    )]
    RevParse {
        /// The rev to resolve.
        rev: String,
    },
    /// List refs, or delete one.
    #[command(
        after_help = "Examples:\n  keel repo --repo build/repo refs\n  keel repo --repo build/repo refs --delete old/branch"
    )]
    Refs {
        /// Delete this ref (the commits stay until `prune`).
        #[arg(long, value_name = "REF")]
        delete: Option<String>,
    },
    /// List paths that differ between two commits (M modified, D deleted, A added).
    #[command(
        after_help = "Example:\n  keel repo --repo build/repo diff keel/stable/x86_64^ keel/stable/x86_64"
    )]
    Diff {
        /// Old commit.
        from: String,
        /// New commit.
        to: String,
    },
    /// Verify every object and that every commit's tree is complete.
    #[command(
        after_help = "Exit status: 0 when no problems were found, 1 otherwise. Each problem \
is printed as `<kind> <checksum>: <message>`.

Example:
  keel repo --repo build/repo fsck"
    )]
    Fsck,
    /// Delete objects that are no longer reachable.
    #[command(
        after_help = "Without --refs-only every commit is kept and only objects no commit \
reaches are deleted. With --refs-only, commits no ref reaches are deleted too.

Examples:
  keel repo --repo build/repo prune --refs-only
  keel repo --repo build/repo prune --refs-only --keep-younger-than '30 days'"
    )]
    Prune {
        /// Only refs keep commits alive.
        #[arg(long)]
        refs_only: bool,
        /// Delete commits older than this (e.g. `30d`, `2 weeks`) unless a ref points at them.
        #[arg(long, value_parser = humantime::parse_duration)]
        keep_younger_than: Option<std::time::Duration>,
        /// Keep only this many parents behind each kept commit.
        #[arg(long)]
        depth: Option<u32>,
        /// Only report what would be deleted.
        #[arg(long)]
        no_prune: bool,
    },
}

/// `keel repo commit` options (OSTree's names).
#[derive(Args)]
pub struct CommitArgs {
    /// Ref to move to the new commit.
    #[arg(short = 'b', long)]
    branch: Option<String>,
    /// One-line subject.
    #[arg(short = 's', long, default_value = "")]
    subject: String,
    /// Longer description.
    #[arg(short = 'm', long, default_value = "")]
    body: String,
    /// Commit time: seconds since the epoch, or RFC 3339 (default: now).
    #[arg(long, value_parser = parse_timestamp)]
    timestamp: Option<u64>,
    /// Add a string to the commit metadata (repeatable; kept in this order).
    #[arg(long = "add-metadata-string", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Parent commit, or `none` (default: the branch's current commit).
    #[arg(long)]
    parent: Option<String>,
    /// Do not add `ostree.ref-binding` metadata.
    #[arg(long)]
    no_bindings: bool,
    /// Force this owner uid on every entry.
    #[arg(long)]
    owner_uid: Option<u32>,
    /// Force this owner gid on every entry.
    #[arg(long)]
    owner_gid: Option<u32>,
    /// Owner 0:0 and permissions masked to 0755.
    #[arg(long)]
    canonical_permissions: bool,
    /// Directory to commit.
    dir: PathBuf,
}

fn parse_mode(s: &str) -> Result<RepoMode, String> {
    RepoMode::parse(s)
        .ok_or_else(|| format!("unknown mode `{s}` (bare, bare-user, bare-user-only, archive)"))
}

fn parse_timestamp(s: &str) -> Result<u64, String> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("`{s}` is neither seconds since the epoch nor an RFC 3339 date: {e}"))
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .map_err(|_| format!("`{s}` is before 1970"))
        })
}

fn format_date(ts: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} +0000", s.trim_end_matches('Z').replacen('T', " ", 1))
}

/// Run a `keel repo` command.
pub fn run(args: RepoArgs) -> Result<()> {
    match run_command(args) {
        // A reader that went away (`keel repo ls -R ... | head`) is not a failure.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn run_command(args: RepoArgs) -> Result<()> {
    let path = args.repo.clone();
    let mode = Mode::detect(args.json);
    let repo = match args.command {
        RepoCommand::Init { mode } => Repo::init(&path, mode)?,
        _ => Repo::open(&path)?,
    };
    let out = &mut std::io::stdout().lock();
    match args.command {
        RepoCommand::Init { .. } => {}
        RepoCommand::Commit(c) => commit(&repo, c, mode, out)?,
        RepoCommand::Checkout {
            user_mode,
            copy,
            subpath,
            rev,
            dest,
        } => {
            let c = repo.resolve_rev(&rev)?;
            repo.checkout(
                &c,
                &dest,
                &CheckoutOptions {
                    user_mode,
                    copy,
                    subpath,
                },
            )
            .with_context(|| format!("checking out {c} to {}", dest.display()))?;
        }
        RepoCommand::Ls {
            recursive,
            checksum,
            rev,
            path,
        } => {
            let c = repo.resolve_rev(&rev)?;
            repo.walk_tree(&c, &path, recursive, &mut |e| {
                let line = if checksum {
                    let sum = match (e.kind, e.meta_checksum) {
                        (EntryKind::Dir, Some(m)) => format!("{} {}", e.checksum, m),
                        _ => e.checksum.to_string(),
                    };
                    let l = e.ls_line();
                    let (head, tail) = l.split_at(l.find(" /").unwrap_or(l.len()));
                    format!("{head} {sum}{tail}")
                } else {
                    e.ls_line()
                };
                writeln!(out, "{line}").map_err(|source| crate::StoreError::Io {
                    path: PathBuf::from("<stdout>"),
                    source,
                })
            })?;
        }
        RepoCommand::Cat { rev, path } => {
            let c = repo.resolve_rev(&rev)?;
            let e = repo.lookup_path(&c, &path)?;
            if e.kind != EntryKind::File {
                bail!("{path} in {c} is not a regular file");
            }
            let mut obj = repo.open_content(&e.checksum)?;
            std::io::copy(&mut obj.content, out).context("writing to stdout")?;
        }
        RepoCommand::Log { rev } => {
            let mut next = Some(repo.resolve_rev(&rev)?);
            while let Some(c) = next {
                if !repo.has_object(crate::ObjectType::Commit, &c) {
                    writeln!(out, "<< History beyond this commit not fetched >>")?;
                    break;
                }
                next = print_commit(&repo, &c, out)?;
            }
        }
        RepoCommand::Show { rev } => {
            let c = repo.resolve_rev(&rev)?;
            print_commit(&repo, &c, out)?;
            let commit = repo.read_commit(&c)?;
            for (k, v) in &commit.metadata {
                writeln!(out, "{k}: {}", v.display())?;
            }
        }
        RepoCommand::RevParse { rev } => writeln!(out, "{}", repo.resolve_rev(&rev)?)?,
        RepoCommand::Refs { delete } => match delete {
            Some(r) => repo.set_ref(&r, None)?,
            None => {
                for (name, _) in repo.list_refs()? {
                    writeln!(out, "{name}")?;
                }
            }
        },
        RepoCommand::Diff { from, to } => {
            let (a, b) = (repo.resolve_rev(&from)?, repo.resolve_rev(&to)?);
            for d in repo.diff(&a, &b)? {
                writeln!(out, "{}", d.line())?;
            }
        }
        RepoCommand::Fsck => {
            let progress = Progress::new(mode, "fsck", None);
            let report = repo.fsck(&progress)?;
            for e in &report.errors {
                writeln!(out, "{e}")?;
            }
            if !report.errors.is_empty() {
                bail!(
                    "fsck of {}: {} problem(s) in {} objects",
                    path.display(),
                    report.errors.len(),
                    report.objects
                );
            }
            writeln!(
                out,
                "object fsck of {} commits ({} objects) completed successfully - no errors found.",
                report.commits, report.objects
            )?;
        }
        RepoCommand::Prune {
            refs_only,
            keep_younger_than,
            depth,
            no_prune,
        } => {
            let r = repo.prune(&PruneOptions {
                refs_only,
                keep_younger_than,
                depth,
                dry_run: no_prune,
            })?;
            writeln!(
                out,
                "Total objects: {}\n{} {} objects ({} commits), {} freed",
                r.objects_total,
                if no_prune { "Would delete" } else { "Deleted" },
                r.objects_deleted,
                r.commits_deleted,
                human_bytes(r.bytes_freed)
            )?;
        }
    }
    Ok(())
}

fn commit(repo: &Repo, c: CommitArgs, mode: Mode, out: &mut impl Write) -> Result<()> {
    let mut metadata = Vec::new();
    for kv in &c.metadata {
        let (k, v) = kv.split_once('=').with_context(|| {
            format!("--add-metadata-string `{kv}`: missing `=` (use KEY=VALUE)")
        })?;
        metadata.push((k.to_string(), Variant::Str(v.to_string())));
    }
    let parent = match c.parent.as_deref() {
        None => ParentSpec::Auto,
        Some("none") => ParentSpec::None,
        Some(r) => ParentSpec::Rev(r.to_string()),
    };
    if let Some(b) = &c.branch {
        repo.ref_path(b)?;
    }
    let opts = CommitOptions {
        branch: c.branch,
        subject: c.subject,
        body: c.body,
        timestamp: c.timestamp,
        metadata,
        parent,
        ref_binding: !c.no_bindings,
        owner_uid: c.owner_uid,
        owner_gid: c.owner_gid,
        canonical_permissions: c.canonical_permissions,
    };
    let progress = Progress::new(mode, "commit", None);
    let checksum = repo
        .commit_dir(&c.dir, &opts, &progress)
        .with_context(|| format!("committing {}", c.dir.display()))?;
    writeln!(out, "{checksum}")?;
    Ok(())
}

fn print_commit(
    repo: &Repo,
    c: &crate::Checksum,
    out: &mut impl Write,
) -> Result<Option<crate::Checksum>> {
    let commit = repo.read_commit(c)?;
    writeln!(out, "commit {c}")?;
    if let Some(p) = &commit.parent {
        writeln!(out, "Parent:  {p}")?;
    }
    writeln!(out, "ContentChecksum:  {}", commit.content_checksum())?;
    writeln!(out, "Date:  {}", format_date(commit.timestamp))?;
    if let Some(v) = commit.version() {
        writeln!(out, "Version: {v}")?;
    }
    writeln!(out)?;
    if !commit.subject.is_empty() {
        writeln!(out, "    {}", commit.subject)?;
        writeln!(out)?;
    }
    if !commit.body.is_empty() {
        for line in commit.body.lines() {
            writeln!(out, "    {line}")?;
        }
        writeln!(out)?;
    }
    Ok(commit.parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_and_date_table() {
        for (input, want) in [
            ("1577836800", Some(1_577_836_800)),
            ("2020-01-01T00:00:00Z", Some(1_577_836_800)),
            ("yesterday", None),
        ] {
            assert_eq!(parse_timestamp(input).ok(), want, "{input}");
        }
        assert_eq!(format_date(1_577_836_800), "2020-01-01 00:00:00 +0000");
    }
}
