//! Fetching what a deployment follows from its remote, before it is deployed.
//!
//! An origin refspec `REMOTE:REF` (e.g. `keel:keel/stable/x86_64`) names a remote defined as
//! OSTree defines them: a `[remote "REMOTE"]` section in `/ostree/repo/config`, or in a file
//! `/etc/ostree/remotes.d/*.conf` of the merge deployment (so an Ignition config can add
//! one). A refspec without a remote is resolved in the local repository only.
//!
//! [`pull_origin`] brings a ref or commit with all its objects into the sysroot repository,
//! checking signatures when the remote requires them (nothing is stored and no ref moves
//! otherwise); [`check_origin`] fetches only the commit object, for `keel upgrade --check`;
//! [`find_version`] walks the remote history of the origin ref for `keel deploy VERSION`;
//! [`origin_summary`] reads only the remote's summary, for the update agent's freshness check.
//!
//! A ref, or the node, never moves backwards on its own: [`Policy`] carries the commit the
//! node runs (a pull for `keel upgrade` or the agent refuses anything older, see
//! `keel_remote::downgrade`) and whether the user allowed a downgrade. Every summary read is
//! recorded (`Sysroot::record_summary`) so that `keel status` can say how old it was.

use crate::error::{PullFailure, UpdateError};
use keel_deploy::Sysroot;
use keel_http::{self as http, CaRoots};
use keel_remote::config::{self, Remote};
use keel_remote::fetch::{FetchError, FetchOptions};
use keel_remote::freshness::{self, SummarySeen};
use keel_remote::pull::{self, PullOptions};
use keel_remote::sign;
use keel_remote::source::{HttpSource, LocalSource, Source};
use keel_remote::PullError;
use keel_store::{Checksum, Commit, ObjectType};
use keel_utils::progress::Progress;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use keel_proto::node::{DEFAULT_REMOTE, REMOTES_D};

/// What [`pull_origin`] brought in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fetched {
    /// The remote pulled from; `None` when the target was resolved locally.
    pub remote: Option<String>,
    /// The ref pulled (`None` for a commit given by checksum).
    pub ref_name: Option<String>,
    /// The commit now complete in the sysroot repository.
    #[serde(serialize_with = "hex")]
    pub commit: Checksum,
    /// Its version, when it has one.
    pub version: Option<String>,
    /// Bytes transferred.
    pub bytes: u64,
    /// Objects transferred.
    pub objects: u64,
    /// Time the pull took.
    #[serde(serialize_with = "millis")]
    pub elapsed: Duration,
    /// The remote's summary as read by this pull (HTTP remotes).
    pub summary: Option<SummarySeen>,
}

/// What a pull may do besides moving forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Accept a commit older than (or unrelated to) the ref's or the baseline's.
    pub allow_downgrade: bool,
    /// The commit the node runs, with a label for messages: nothing older is pulled for it.
    pub baseline: Option<(String, Checksum)>,
}

/// A commit seen on a remote without fetching its content ([`check_origin`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteCommit {
    /// The remote.
    pub remote: String,
    /// The commit the ref points to.
    #[serde(serialize_with = "hex")]
    pub commit: Checksum,
    /// Its version.
    pub version: Option<String>,
    /// Bytes transferred for the check.
    pub bytes: u64,
    /// The remote's summary as read by the check (HTTP remotes).
    pub summary: Option<SummarySeen>,
}

fn hex<S: serde::Serializer>(c: &Checksum, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.to_hex())
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// `REMOTE:REF` -> (Some(REMOTE), REF); `REF` -> (None, REF).
pub fn split_refspec(refspec: &str) -> (Option<&str>, &str) {
    match refspec.split_once(':') {
        Some((remote, r)) if !remote.is_empty() => (Some(remote), r),
        _ => (None, refspec),
    }
}

/// The node's CA trust store: `ssl/certs/ca-certificates.crt` in the `/etc` that
/// [`find_remote`] reads remotes from (on a booted node, the running `/etc`);
/// before the first deployment, the running system's.
fn trust_store(s: &Sysroot) -> CaRoots {
    s.merge_etc().map_or(CaRoots::System, |etc| {
        CaRoots::SystemAt(http::node_ca_bundle(&etc))
    })
}

/// The definition of remote `name`: the repository config first, then
/// `/etc/ostree/remotes.d/*.conf` in name order. Returns it with the file it came from.
pub fn find_remote(s: &Sysroot, name: &str) -> Result<(Remote, PathBuf), UpdateError> {
    let repo = s.root().join(keel_proto::node::SYSTEM_REPO);
    let mut files = vec![config::config_path(&repo)];
    // Before the first deployment there is no /etc yet: the repository config only.
    let dir = s.merge_etc().map(|etc| etc.join(REMOTES_D));
    if let Some(entries) = dir.ok().and_then(|d| std::fs::read_dir(d).ok()) {
        let mut confs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        confs.sort();
        files.extend(confs);
    }
    for f in &files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(UpdateError::Io {
                    path: f.clone(),
                    error,
                })
            }
        };
        let remotes = config::parse_remotes(&text).map_err(|e| {
            UpdateError::state(format!(
                "{}: {e}; fix the file (ostree refuses it too)",
                f.display()
            ))
        })?;
        if let Some(r) = remotes.into_iter().find(|r| r.name == name) {
            if r.url.is_empty() {
                return Err(UpdateError::state(format!(
                    "{}: remote `{name}` has no url=; set one (url=https://HOST/repo)",
                    f.display()
                )));
            }
            return Ok((r, f.clone()));
        }
    }
    Err(UpdateError::state(format!(
        "remote `{name}` is not defined: neither {} nor /etc/{REMOTES_D}/*.conf has a \
         [remote \"{name}\"] section. Create /etc/{REMOTES_D}/{name}.conf (e.g. from your \
         Ignition config) with:\n[remote \"{name}\"]\nurl=https://HOST/repo\n\
         sign-verify=true\nverification-ed25519-file=/etc/keel/{name}.pub",
        config::config_path(&repo).display()
    )))
}

/// A remote opened for pulling.
struct Opened {
    /// Where objects come from.
    src: Box<dyn Source>,
    /// Pull options its signature policy (and the caller's [`Policy`]) asks for.
    opts: PullOptions,
    /// Its definition.
    def: Remote,
    /// `summary-max-age-secs`.
    max_age: u64,
}

impl Opened {
    /// What the last resolve read of the summary, recorded for `keel status`.
    fn summary_seen(&self, s: &Sysroot) -> Option<SummarySeen> {
        let read = self.src.summary_read()?;
        let seen = freshness::seen(
            &self.def.name,
            &self.def.url,
            &read,
            self.max_age,
            freshness::now(),
        );
        s.record_summary(&seen);
        Some(seen)
    }
}

/// A pull source for a remote, and the pull options its signature policy asks for.
fn open_remote(s: &Sysroot, name: &str, policy: &Policy) -> Result<Opened, UpdateError> {
    let (remote, file) = find_remote(s, name)?;
    let fail = |source: PullError| pull_error(s, &remote, "the remote", source);
    let keys = remote
        .trusted_keys(&file)
        .map_err(|e| fail(PullError::Config(e)))?;
    let max_age = remote
        .summary_max_age_secs(&file)
        .map_err(|e| fail(PullError::Config(e)))?;
    let mut opts = PullOptions::for_remote(name);
    opts.allow_downgrade = policy.allow_downgrade;
    opts.baseline = policy.baseline.clone();
    if remote.sign_verify {
        opts.commit_keys = Some(keys.clone());
    }
    let src: Box<dyn Source> = match remote.url.strip_prefix("file://") {
        Some(path) => Box::new(LocalSource::open(Path::new(path)).map_err(fail)?),
        None => {
            let fetch = FetchOptions {
                roots: remote.ca_roots(trust_store(s)),
                ..FetchOptions::default()
            };
            let summary_keys = remote.sign_verify_summary.then_some(keys);
            Box::new(HttpSource::new(&remote.url, fetch, summary_keys).map_err(fail)?)
        }
    };
    Ok(Opened {
        src,
        opts,
        def: remote,
        max_age,
    })
}

fn is_no_space(e: &PullError) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                return true;
            }
        }
        cur = err.source();
    }
    e.to_string().contains("No space left on device")
}

fn pull_error(s: &Sysroot, remote: &Remote, what: &str, source: PullError) -> UpdateError {
    let repo = s.root().join(keel_proto::node::SYSTEM_REPO);
    let hint = if is_no_space(&source) {
        format!(
            "the filesystem holding {} is full; free space there (`keel cleanup`, or delete \
             data under /var) and retry; objects already received are kept",
            repo.display()
        )
    } else if matches!(source, PullError::Downgrade { .. }) {
        "nothing was changed (`keel deploy VERSION` deploys an older release you choose)"
            .to_string()
    } else if matches!(source, PullError::Fetch(FetchError::Certificate { .. })) {
        "nothing was changed; make the node trust the server's certificate as said above, \
         then retry"
            .to_string()
    } else if matches!(source, PullError::Signature { .. }) {
        "the remote requires commits signed by a trusted key; ask the publisher for a \
         signed commit or check verification-ed25519-file"
            .to_string()
    } else {
        "check the remote's URL and network, then retry".to_string()
    };
    UpdateError::Pull(Box::new(PullFailure {
        what: what.to_string(),
        remote: remote.name.clone(),
        url: remote.url.clone(),
        repo,
        hint,
        error: source,
    }))
}

/// Bring `target` into the sysroot repository with all its objects, from the remote of the
/// merge deployment's origin: `REMOTE:REF`, a ref (on the origin's remote; resolved locally
/// when the origin has no remote) or a full commit checksum. Signatures are checked when the
/// remote requires them, and so is [`Policy`]; on any failure no ref is moved and nothing is
/// deployed.
pub fn pull_origin(
    s: &Sysroot,
    target: &str,
    policy: &Policy,
    progress: &Progress,
) -> Result<Fetched, UpdateError> {
    let start = Instant::now();
    let (remote, name) = match split_refspec(target) {
        (Some(r), name) => (Some(r.to_string()), name.to_string()),
        (None, name) => {
            let origin = s.origin_refspec()?;
            (
                split_refspec(&origin).0.map(str::to_string),
                name.to_string(),
            )
        }
    };
    let repo = s.repo()?;
    let Some(remote) = remote else {
        let commit = repo.resolve_rev(&name)?;
        let parsed = repo.read_commit(&commit)?;
        if !policy.allow_downgrade {
            let mut opts = PullOptions::for_remote("");
            opts.baseline = policy.baseline.clone();
            pull::refuse_backwards(&repo, &opts, &commit.to_hex(), &commit, &parsed)
                .map_err(|e| UpdateError::state(format!("{e}")))?;
        }
        return Ok(Fetched {
            remote: None,
            ref_name: (!Checksum::is_hex(&name)).then_some(name),
            version: parsed.version().map(str::to_string),
            commit,
            bytes: 0,
            objects: 0,
            elapsed: start.elapsed(),
            summary: None,
        });
    };
    let o = open_remote(s, &remote, policy)?;
    let pulled = pull::pull(
        &repo,
        o.src.as_ref(),
        std::slice::from_ref(&name),
        &o.opts,
        progress,
    );
    let summary = o.summary_seen(s);
    let report = pulled.map_err(|e| pull_error(s, &o.def, &name, e))?;
    let commit = report.refs.first().map(|(_, c)| *c).ok_or_else(|| {
        UpdateError::state(format!("remote `{remote}` returned nothing for {name}"))
    })?;
    Ok(Fetched {
        remote: Some(remote),
        ref_name: (!Checksum::is_hex(&name)).then_some(name),
        version: repo.read_commit(&commit)?.version().map(str::to_string),
        commit,
        bytes: report.bytes,
        objects: report.objects,
        elapsed: start.elapsed(),
        summary,
    })
}

/// Fetch and check (checksum, signature when required) one commit object without storing it.
fn remote_commit(
    src: &dyn Source,
    opts: &PullOptions,
    c: &Checksum,
) -> Result<(Commit, u64), PullError> {
    let t = ObjectType::Commit;
    let bytes = src.metadata(t, c)?;
    let got = Checksum::of(&bytes);
    if got != *c {
        return Err(PullError::Corrupt {
            what: format!("commit {c}"),
            location: src.object_location(t, c),
            reason: format!("its bytes hash to {got}"),
        });
    }
    if let Some(keys) = &opts.commit_keys {
        let detached = src.detached_metadata(c)?;
        sign::verify(&bytes, detached.as_deref(), keys).map_err(|source| PullError::Signature {
            what: format!("commit {c}"),
            location: src.object_location(t, c),
            source,
        })?;
    }
    let commit = Commit::parse(&bytes).map_err(|e| PullError::Corrupt {
        what: format!("commit {c}"),
        location: src.object_location(t, c),
        reason: e.0,
    })?;
    Ok((commit, bytes.len() as u64))
}

fn remote_parts(refspec: &str) -> Result<(String, String), UpdateError> {
    match split_refspec(refspec) {
        (Some(r), name) => Ok((r.to_string(), name.to_string())),
        (None, _) => Err(UpdateError::state(format!(
            "the origin refspec `{refspec}` names no remote (REMOTE:REF), so there is nothing to \
             fetch; `keel deploy {DEFAULT_REMOTE}:{refspec}` makes upgrades follow remote \
             `{DEFAULT_REMOTE}`"
        ))),
    }
}

/// Where the remote's `REMOTE:REF` points, fetching only the commit object (checked, not
/// stored): what `keel upgrade --check` reports. A commit that would be a move backwards
/// (against the local ref and the [`Policy`] baseline) is refused as a pull would refuse it.
pub fn check_origin(
    s: &Sysroot,
    refspec: &str,
    policy: &Policy,
) -> Result<RemoteCommit, UpdateError> {
    let (remote, name) = remote_parts(refspec)?;
    let o = open_remote(s, &remote, policy)?;
    let fail = |e| pull_error(s, &o.def, &name, e);
    let resolved = o.src.resolve(std::slice::from_ref(&name));
    let summary = o.summary_seen(s);
    let (_, c) = resolved
        .map_err(fail)?
        .into_iter()
        .next()
        .ok_or_else(|| UpdateError::state(format!("remote `{remote}` has no ref {name}")))?;
    let (commit, bytes) = remote_commit(o.src.as_ref(), &o.opts, &c).map_err(fail)?;
    if !policy.allow_downgrade {
        pull::refuse_backwards(&s.repo()?, &o.opts, &name, &c, &commit).map_err(fail)?;
    }
    Ok(RemoteCommit {
        remote,
        commit: c,
        version: commit.version().map(str::to_string),
        bytes,
        summary,
    })
}

/// The summary the origin's remote offers now (only `summary` and `summary.sig` are
/// fetched), recorded for `keel status`; `None` when the origin has no remote or the remote
/// has no summary to speak of (`file://`).
pub fn origin_summary(s: &Sysroot) -> Result<Option<SummarySeen>, UpdateError> {
    let refspec = s.origin_refspec()?;
    let (Some(remote), name) = split_refspec(&refspec) else {
        return Ok(None);
    };
    let o = open_remote(s, remote, &Policy::default())?;
    let resolved = o.src.resolve(&[name.to_string()]);
    let seen = o.summary_seen(s);
    resolved.map_err(|e| pull_error(s, &o.def, name, e))?;
    Ok(seen)
}

/// The commit of version `version` in the remote history of `refspec` (`REMOTE:REF`), looking
/// at most `max` commits back; commit objects only are fetched.
pub fn find_version(
    s: &Sysroot,
    refspec: &str,
    version: &str,
    max: usize,
) -> Result<Option<Checksum>, UpdateError> {
    let (remote, name) = remote_parts(refspec)?;
    let o = open_remote(s, &remote, &Policy::default())?;
    let fail = |e| pull_error(s, &o.def, &name, e);
    let resolved = o.src.resolve(std::slice::from_ref(&name));
    o.summary_seen(s);
    let mut next = resolved.map_err(fail)?.first().map(|(_, c)| *c);
    for _ in 0..max {
        let Some(c) = next else { break };
        let (commit, _) = remote_commit(o.src.as_ref(), &o.opts, &c).map_err(fail)?;
        if commit.version() == Some(version) {
            return Ok(Some(c));
        }
        next = commit.parent;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refspecs_split_into_remote_and_ref() {
        for (input, want) in [
            (
                "keel:keel/stable/x86_64",
                (Some("keel"), "keel/stable/x86_64"),
            ),
            ("keel/stable/x86_64", (None, "keel/stable/x86_64")),
            (":odd", (None, ":odd")),
            ("a:b:c", (Some("a"), "b:c")),
        ] {
            assert_eq!(split_refspec(input), want, "{input}");
        }
    }
}
