//! The `keel upgrade` and `keel deploy REV` flows: pull what is wanted from the origin's
//! remote ([`crate::fetch`]), decide, deploy (staged on a booted node), and report what it
//! cost: bytes and objects downloaded, time to pull and time to staged.
//!
//! `keel upgrade` never goes back on its own: the deployment it upgrades is the pull's
//! baseline, so an older or unrelated commit (a replayed summary) is refused before any
//! content is fetched, the ref does not move and nothing is staged; `--allow-downgrade`
//! accepts it. `keel deploy VERSION|COMMIT` is the user naming the commit and is not checked;
//! `keel deploy REMOTE:REF` refuses only the ref moving backwards. Both report how old the
//! remote's summary is (a frozen mirror).

use crate::fetch::{self, split_refspec, Fetched, Policy};
use anyhow::{bail, Context, Result};
use keel_deploy::{DeployOptions, Deployment, Sysroot, UpgradeCheck};
use keel_remote::freshness::{self, Freshness, SummarySeen};
use keel_store::{Checksum, ObjectType, Repo};
use keel_utils::progress::{human_bytes, Mode, Progress};
use serde::Serialize;
use std::time::Instant;

/// How many commits back `keel deploy VERSION` looks in the remote history.
const VERSION_SEARCH_DEPTH: usize = 100;

/// What `upgrade` or `deploy` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    /// The newest commit is already deployed (or staged).
    UpToDate,
    /// An upgrade is available (`--check`).
    Available,
    /// The new deployment is staged: it becomes the default at shutdown.
    Staged,
    /// The new deployment is the default boot entry (not a booted system).
    Deployed,
}

impl OutcomeKind {
    /// Its name in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::UpToDate => "up-to-date",
            OutcomeKind::Available => "available",
            OutcomeKind::Staged => "staged",
            OutcomeKind::Deployed => "deployed",
        }
    }
}

/// What `upgrade` or `deploy` did (printed as text or `--json`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Outcome {
    /// What was found or done.
    pub result: OutcomeKind,
    /// The target commit.
    pub commit: String,
    /// Its version.
    pub version: Option<String>,
    /// The new deployment (`<commit>.<serial>`), when one was made.
    pub deployment: Option<String>,
    /// Staged with finalization locked.
    pub finalization_locked: bool,
    /// The remote fetched from, if any.
    pub remote: Option<String>,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Objects downloaded.
    pub objects: u64,
    /// Milliseconds spent pulling.
    pub pull_ms: u64,
    /// Milliseconds from the start of the command to staged (or deployed).
    pub total_ms: u64,
    /// How old the remote's summary is (HTTP remotes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Freshness>,
}

/// How `keel upgrade` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeHow {
    /// Only report.
    pub check: bool,
    /// Stage with finalization locked.
    pub stage_only: bool,
    /// Accept an older or unrelated commit.
    pub allow_downgrade: bool,
}

impl Outcome {
    fn new(result: OutcomeKind, commit: Checksum, version: Option<String>) -> Outcome {
        Outcome {
            result,
            commit: commit.to_hex(),
            version,
            deployment: None,
            finalization_locked: false,
            remote: None,
            bytes: 0,
            objects: 0,
            pull_ms: 0,
            total_ms: 0,
            summary: None,
        }
    }

    fn with_fetch(mut self, f: &Fetched) -> Outcome {
        self.remote = f.remote.clone();
        self.bytes = f.bytes;
        self.objects = f.objects;
        self.pull_ms = f.elapsed.as_millis() as u64;
        self.with_summary(f.summary.as_ref())
    }

    fn with_summary(mut self, seen: Option<&SummarySeen>) -> Outcome {
        self.summary = seen.map(|s| s.assess(freshness::now()));
        self
    }
}

fn deploy(s: &Sysroot, mut out: Outcome, opts: DeployOptions, start: Instant) -> Result<Outcome> {
    let commit: Checksum = out.commit.parse()?;
    let stage = s.booted_name().is_some();
    let d = s.deploy(
        &commit,
        &DeployOptions {
            stage,
            lock_finalization: stage && opts.lock_finalization,
            ..opts
        },
    )?;
    out.result = if stage {
        OutcomeKind::Staged
    } else {
        OutcomeKind::Deployed
    };
    out.finalization_locked = stage && opts.lock_finalization;
    out.deployment = Some(d.name());
    out.total_ms = start.elapsed().as_millis() as u64;
    Ok(out)
}

/// The pull policy of an upgrade: nothing older than the deployment it upgrades.
fn upgrade_policy(s: &Sysroot, allow_downgrade: bool) -> Result<Policy> {
    let name = s.merge_name()?;
    let baseline = Deployment::parse_name(&name).map(|(c, _)| (format!("deployment {name}"), c));
    Ok(Policy {
        allow_downgrade,
        baseline,
    })
}

/// `keel upgrade [--check] [--stage-only] [--allow-downgrade]`.
pub fn upgrade(s: &Sysroot, how: &UpgradeHow, mode: Mode) -> Result<Outcome> {
    let start = Instant::now();
    let refspec = s.origin_refspec()?;
    let policy = upgrade_policy(s, how.allow_downgrade)?;
    if how.check {
        let (commit, version, remote, bytes, summary) = match split_refspec(&refspec).0 {
            Some(_) => {
                let rc = fetch::check_origin(s, &refspec, &policy)?;
                (rc.commit, rc.version, Some(rc.remote), rc.bytes, rc.summary)
            }
            None => {
                let f = fetch::pull_origin(s, &refspec, &policy, &Progress::quiet("check"))?;
                (f.commit, f.version, None, 0, None)
            }
        };
        let mut out = verdict(s, commit, version)?.with_summary(summary.as_ref());
        out.remote = remote;
        out.bytes = bytes;
        out.total_ms = start.elapsed().as_millis() as u64;
        return Ok(out);
    }
    let progress = Progress::new(mode, "upgrade", None);
    let fetched = fetch::pull_origin(s, &refspec, &policy, &progress)?;
    let out = verdict(s, fetched.commit, fetched.version.clone())?.with_fetch(&fetched);
    if out.result != OutcomeKind::Available {
        return Ok(out);
    }
    let opts = DeployOptions {
        lock_finalization: how.stage_only,
        ..Default::default()
    };
    deploy(s, out, opts, start)
}

fn verdict(s: &Sysroot, commit: Checksum, version: Option<String>) -> Result<Outcome> {
    Ok(match s.classify_upgrade(commit, version)? {
        UpgradeCheck::UpToDate(c) => {
            let v = s
                .repo()?
                .read_commit(&c)
                .ok()
                .and_then(|c| c.version().map(str::to_string));
            Outcome::new(OutcomeKind::UpToDate, c, v)
        }
        UpgradeCheck::PreviouslyFailed { commit, version } => bail!(
            "the newest commit {commit} ({}) failed to boot healthy before; not deploying it on \
             its own. `keel deploy {commit}` overrides.",
            version.as_deref().unwrap_or("no version")
        ),
        UpgradeCheck::Available { commit, version } => {
            Outcome::new(OutcomeKind::Available, commit, version)
        }
    })
}

/// A version in the local history of the origin ref, else any rev the repository resolves.
fn resolve_local(repo: &Repo, origin: Option<&str>, rev: &str) -> Result<Checksum> {
    if let Some(r) = origin {
        let mut next = repo.resolve_rev(r).ok();
        while let Some(c) = next {
            let Ok(commit) = repo.read_commit(&c) else {
                break;
            };
            if commit.version() == Some(rev) {
                return Ok(c);
            }
            next = commit.parent;
        }
    }
    repo.resolve_rev(rev).with_context(|| {
        format!(
            "`{rev}` is neither a version in the origin's history nor a commit or ref in {}",
            repo.path().display()
        )
    })
}

/// `keel deploy REV`: REMOTE:REF is pulled (and followed from then on); a version, commit or
/// ref complete in the local repository is deployed as it is; otherwise, with an origin on a
/// remote, a commit or a version of the origin's history is pulled from that remote first.
pub fn deploy_rev(
    s: &Sysroot,
    rev: &str,
    kargs: Option<Vec<String>>,
    allow_downgrade: bool,
    mode: Mode,
) -> Result<Outcome> {
    let start = Instant::now();
    let repo = s.repo()?;
    let origin = s.origin_refspec().ok();
    let remote_origin = origin.as_deref().filter(|o| split_refspec(o).0.is_some());
    let local = resolve_local(&repo, origin.as_deref(), rev);
    let complete = |c: &Checksum| repo.has_object(ObjectType::Commit, c) && !repo.is_partial(c);
    let mut opts = DeployOptions {
        kargs,
        ..Default::default()
    };
    let progress = Progress::new(mode, "deploy", None);
    // The user names what to deploy: only a ref moving backwards on its own is refused.
    let policy = Policy {
        allow_downgrade,
        baseline: None,
    };
    let fetched = match (remote_origin, local) {
        _ if split_refspec(rev).0.is_some() => {
            opts.origin_refspec = Some(rev.to_string());
            fetch::pull_origin(s, rev, &policy, &progress)?
        }
        (_, Ok(c)) if complete(&c) => {
            // Deploying a ref makes upgrades follow it; a version or commit keeps the origin.
            opts.origin_refspec = repo.read_ref(rev).ok().flatten().map(|_| rev.to_string());
            let version = repo.read_commit(&c)?.version().map(str::to_string);
            return deploy(
                s,
                Outcome::new(OutcomeKind::Available, c, version),
                opts,
                start,
            );
        }
        (None, local) => {
            let c = local?;
            bail!("commit {c} is incomplete in {}: the origin has no remote to fetch the rest from; `keel deploy REMOTE:REF` pulls one", repo.path().display())
        }
        (Some(_), _) if Checksum::is_hex(rev) => fetch::pull_origin(s, rev, &policy, &progress)?,
        (Some(o), _) => {
            let found =
                fetch::find_version(s, o, rev, VERSION_SEARCH_DEPTH)?.with_context(|| {
                    format!(
                    "`{rev}` is not a version in the last {VERSION_SEARCH_DEPTH} commits of {o}, \
                     nor a commit or ref in {}; `keel deploy REMOTE:REF` follows another ref",
                    repo.path().display()
                )
                })?;
            fetch::pull_origin(s, &found.to_hex(), &policy, &progress)?
        }
    };
    let out = Outcome::new(
        OutcomeKind::Available,
        fetched.commit,
        fetched.version.clone(),
    )
    .with_fetch(&fetched);
    deploy(s, out, opts, start)
}

/// Print an outcome as text or JSON.
pub fn print_outcome(out: &Outcome, json: bool) -> Result<()> {
    if json {
        let out = keel_proto::output::Versioned::new(out);
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let v = out.version.as_deref().unwrap_or("no version");
    let (c, name) = (&out.commit, out.deployment.as_deref().unwrap_or(""));
    match (out.result, out.finalization_locked) {
        (OutcomeKind::UpToDate, _) => {
            println!("No upgrade available: {v} ({c}) is already deployed.")
        }
        (OutcomeKind::Available, _) => println!("Upgrade available: {v} ({c})"),
        (OutcomeKind::Staged, true) => {
            println!("Staged {v} as {name}; finalization is locked (`keel finalize --unlock`).")
        }
        (OutcomeKind::Staged, false) => {
            println!("Staged {v} as {name}; it becomes the default at the next shutdown.")
        }
        _ => println!("Deployed {v} as {name}; it is the default boot entry."),
    }
    if let Some(f) = &out.summary {
        if f.is_problem() {
            println!("Warning: {}", f.message);
        }
    }
    if let Some(r) = &out.remote {
        println!(
            "Fetched {} objects, {} ({} bytes) from remote {r} in {:.1} s{}.",
            out.objects,
            human_bytes(out.bytes),
            out.bytes,
            out.pull_ms as f64 / 1000.0,
            if out.deployment.is_some() {
                format!(
                    "; {} after {:.1} s",
                    out.result.name(),
                    out.total_ms as f64 / 1000.0
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
