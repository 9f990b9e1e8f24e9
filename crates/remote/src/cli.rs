//! The `keel repo` subcommands for remotes, pulls, summaries, signatures and serving. The
//! `keel` binary flattens [`RemoteCommand`] next to the store's own subcommands, sharing the
//! global `--repo PATH`.

use crate::config::{self, Remote};
use crate::fetch::FetchOptions;
use crate::freshness;
use crate::pull::{self, PullOptions, PullReport, RefTarget};
use crate::source::{HttpSource, LocalSource, Source};
use crate::{keys, sign, summary};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use keel_http::CaRoots;
use keel_store::Repo;
use keel_utils::progress::{human_bytes, Mode, Progress};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Remote, pull, summary, signing and serving subcommands of `keel repo`.
#[derive(Subcommand)]
pub enum RemoteCommand {
    /// Manage remotes (`[remote "NAME"]` in the repository config).
    #[command(
        subcommand,
        after_help = "Examples:\n  keel repo remote list --show-urls     # the node's /ostree/repo\n  keel repo --repo /var/repo remote add --no-sign-verify dev \\\n      http://127.0.0.1:8080/"
    )]
    Remote(RemoteAction),
    /// Fetch refs and all their objects from a remote (objects are verified before storing).
    #[command(
        after_help = "Examples:\n  keel repo --repo /var/repo pull origin keel/stable/x86_64\n  keel repo --repo mirror --json-progress pull --mirror --depth 2 \\\n      origin keel/stable/x86_64\n  keel repo --repo /var/repo pull --timeout 60 --low-speed-limit-bytes 5000 \\\n      origin keel/stable/x86_64\n\nA ref moves only forward: to a descendant of its commit or, when the history is\nnot all local, to a commit not older by timestamp and version (--allow-downgrade\noverrides). A summary older than summary-max-age-secs (7 days) is warned about."
    )]
    Pull(PullArgs),
    /// Copy refs and their objects from another local repository (objects are verified).
    #[command(
        after_help = "Example:\n  keel repo --repo /var/repo pull-local build/repo keel/stable/x86_64"
    )]
    PullLocal(PullLocalArgs),
    /// Regenerate the repository summary (the list of refs that remotes read).
    #[command(
        after_help = "Examples:\n  keel repo --repo build/repo summary --update --sign-key keys/release\n  keel repo --repo build/repo summary --view"
    )]
    Summary(SummaryArgs),
    /// Sign a commit with an ed25519 key, or verify its signatures.
    #[command(
        after_help = "Examples:\n  keel repo --repo build/repo sign --key keys/release keel/stable/x86_64\n  keel repo --repo build/repo sign --verify --keys keys/release.pub \\\n      keel/stable/x86_64"
    )]
    Sign(SignArgs),
    /// Generate an ed25519 key pair (OUT: secret, mode 0600; OUT.pub: public; base64, libsodium format).
    #[command(
        after_help = "Example:\n  keel repo keygen keys/release   # writes keys/release and keys/release.pub"
    )]
    Keygen(KeygenArgs),
    /// Serve the repository over HTTP on 127.0.0.1 for development (any static server works too).
    #[command(
        after_help = "Examples:\n  keel repo --repo build/repo serve --port 8080\n  keel repo --repo /tmp/client remote add --no-sign-verify \\\n      dev http://127.0.0.1:8080/"
    )]
    Serve(ServeArgs),
}

/// `keel repo remote …`
#[derive(Subcommand)]
pub enum RemoteAction {
    /// Add a remote.
    #[command(
        after_help = "Examples:\n  keel repo --repo /var/repo remote add \\\n      --sign-verify=ed25519=/etc/keel/release.pub \\\n      origin https://updates.example.com/repo\n  keel repo --repo /var/repo remote add --no-sign-verify dev \\\n      http://127.0.0.1:8080/\n  keel repo --repo /var/repo remote add --tls-ca-path /etc/keel/ca.pem \\\n      --no-sign-verify origin https://updates.example.com/repo"
    )]
    Add(RemoteAddArgs),
    /// List remotes (`--show-urls` for their URLs).
    #[command(after_help = "Example:\n  keel repo --repo /var/repo remote list --show-urls")]
    List {
        /// Also print each remote's URL.
        #[arg(short = 'u', long)]
        show_urls: bool,
    },
    /// Delete a remote.
    #[command(after_help = "Example:\n  keel repo --repo /var/repo remote delete dev")]
    Delete {
        /// Remote name.
        name: String,
    },
}

/// Arguments of `remote add`.
#[derive(Args)]
pub struct RemoteAddArgs {
    /// Require commits (and the summary) signed by these keys: `ed25519=KEYFILE`
    /// (base64 public keys, one per line), `ed25519=file:KEYFILE` or `ed25519=inline:BASE64`.
    #[arg(
        long,
        value_name = "ed25519=KEYFILE",
        conflicts_with = "no_sign_verify"
    )]
    sign_verify: Option<String>,
    /// Accept unsigned commits (the default).
    #[arg(long)]
    no_sign_verify: bool,
    /// With --sign-verify: do not require a signed summary (commits are still checked).
    #[arg(long, requires = "sign_verify")]
    no_sign_verify_summary: bool,
    /// Report the remote's summary as stale (a frozen mirror) past this age; 0: never
    /// [default: 604800, 7 days].
    #[arg(long, value_name = "SECS")]
    summary_max_age_secs: Option<u64>,
    /// Trust only the CAs in this PEM bundle for an https:// remote, instead of the node's
    /// trust store (/etc/ssl/certs/ca-certificates.crt); OSTree's tls-ca-path.
    #[arg(long, value_name = "PEMFILE")]
    tls_ca_path: Option<PathBuf>,
    /// Remote name.
    name: String,
    /// Base URL of an archive repository (http://, https:// or file://).
    url: String,
}

/// Arguments of `pull`.
#[derive(Args)]
pub struct PullArgs {
    /// Remote name (see `keel repo remote list`).
    remote: String,
    /// Refs (or full commit checksums) to pull.
    #[arg(required = true)]
    refs: Vec<String>,
    /// Move a ref even to an older commit, or one that does not descend from the one it
    /// points to (refused by default: a mirror may be replaying an old summary).
    #[arg(long)]
    allow_downgrade: bool,
    /// Also fetch this many parent commits (-1: the whole history).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    depth: i64,
    /// Write refs/heads/REF instead of refs/remotes/REMOTE/REF.
    #[arg(long)]
    mirror: bool,
    /// Transfers in flight at once.
    #[arg(long, default_value_t = 12)]
    parallel: usize,
    /// Fail an attempt (then retry) after this long without headers or a byte.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
    /// Fail an attempt (then retry) slower than this on average (0: no limit).
    #[arg(long, value_name = "BYTES/S", default_value_t = 1000)]
    low_speed_limit_bytes: u64,
    /// The window --low-speed-limit-bytes is averaged over (0: no limit).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    low_speed_time_seconds: u64,
}

/// Arguments of `pull-local`.
#[derive(Args)]
pub struct PullLocalArgs {
    /// Repository to copy from.
    src_repo: PathBuf,
    /// Refs (or commits) to copy.
    #[arg(required = true)]
    refs: Vec<String>,
    /// Move a ref even to an older commit, or one that does not descend from the one it
    /// points to.
    #[arg(long)]
    allow_downgrade: bool,
    /// Also copy this many parent commits (-1: the whole history).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    depth: i64,
}

/// Arguments of `summary`.
#[derive(Args)]
pub struct SummaryArgs {
    /// Write `summary` from the current refs (and `summary.sig` with --sign-key).
    #[arg(short, long, required_unless_present = "view")]
    update: bool,
    /// Secret key file(s) to sign the summary with.
    #[arg(long, value_name = "KEYFILE", requires = "update")]
    sign_key: Vec<PathBuf>,
    /// Print the current summary.
    #[arg(long)]
    view: bool,
}

/// Arguments of `sign`.
#[derive(Args)]
pub struct SignArgs {
    /// Commit or ref to sign or verify.
    rev: String,
    /// Secret key file to sign with.
    #[arg(long, value_name = "KEYFILE", required_unless_present = "verify")]
    key: Option<PathBuf>,
    /// Verify instead of signing.
    #[arg(long, requires = "keys", conflicts_with = "key")]
    verify: bool,
    /// Public key file to verify with (base64, one key per line).
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
}

/// Arguments of `keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// Secret key file to create (the public key goes to OUT.pub).
    out: PathBuf,
}

/// Arguments of `serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0: pick a free one and print it).
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

/// Run a remote subcommand against the repository at `repo`; `json`: progress as JSON lines.
pub fn run(repo: &Path, json: bool, cmd: RemoteCommand) -> anyhow::Result<()> {
    let mode = Mode::detect(json);
    match cmd {
        RemoteCommand::Remote(a) => remote(repo, a),
        RemoteCommand::Pull(a) => pull_remote(repo, a, mode),
        RemoteCommand::PullLocal(a) => pull_local(repo, a, mode),
        RemoteCommand::Summary(a) => summary_cmd(repo, a),
        RemoteCommand::Sign(a) => sign_cmd(repo, a),
        RemoteCommand::Keygen(a) => {
            let (key, pub_path) = keys::write_new_pair(&a.out)?;
            println!("secret key: {} (mode 0600)", a.out.display());
            println!("public key: {}", pub_path.display());
            println!("{}", keys::public_to_base64(&key.verifying_key()));
            Ok(())
        }
        RemoteCommand::Serve(a) => {
            Repo::open(repo)?;
            let server = crate::serve::Server::bind(repo, a.port)
                .with_context(|| format!("cannot listen on 127.0.0.1:{}", a.port))?;
            println!(
                "serving {} on http://{}/",
                repo.display(),
                server.local_addr()?
            );
            server.run()?;
            Ok(())
        }
    }
}

fn remote(repo: &Path, action: RemoteAction) -> anyhow::Result<()> {
    Repo::open(repo)?;
    match action {
        RemoteAction::Add(a) => {
            let mut r = Remote {
                name: a.name,
                url: a.url,
                sign_verify: false,
                sign_verify_summary: false,
                ed25519_file: None,
                ed25519_key: None,
                summary_max_age: a.summary_max_age_secs.map(|s| s.to_string()),
                tls_ca_path: a.tls_ca_path,
            };
            if let Some(spec) = &a.sign_verify {
                let Some(value) = spec.strip_prefix("ed25519=") else {
                    bail!("--sign-verify={spec}: only ed25519 is supported; use --sign-verify=ed25519=KEYFILE");
                };
                if let Some(inline) = value.strip_prefix("inline:") {
                    r.ed25519_key = Some(inline.to_string());
                } else {
                    let file = Path::new(value.strip_prefix("file:").unwrap_or(value));
                    let abs = file
                        .canonicalize()
                        .with_context(|| format!("--sign-verify: key file {}", file.display()))?;
                    r.ed25519_file = Some(abs);
                }
                r.sign_verify = true;
                r.sign_verify_summary = !a.no_sign_verify_summary;
            }
            config::add(repo, &r)?;
        }
        RemoteAction::List { show_urls } => {
            for r in config::list(repo)? {
                if show_urls {
                    println!("{}  {}", r.name, r.url);
                } else {
                    println!("{}", r.name);
                }
            }
        }
        RemoteAction::Delete { name } => config::delete(repo, &name)?,
    }
    Ok(())
}

fn report(progress_mode: Mode, report: &PullReport, start: Instant, prefix: &str) {
    for (name, c) in &report.refs {
        println!("{prefix}{name} {c}");
    }
    if progress_mode != Mode::Json {
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{} commit(s), {} objects, {} in {secs:.1}s ({}/s)",
            report.commits,
            report.objects,
            human_bytes(report.bytes),
            human_bytes((report.bytes as f64 / secs.max(0.001)) as u64)
        );
    }
}

fn pull_remote(repo_path: &Path, a: PullArgs, mode: Mode) -> anyhow::Result<()> {
    let repo = Repo::open(repo_path)?;
    let r = config::get(repo_path, &a.remote)?;
    let keys = r.trusted_keys(&config::config_path(repo_path))?;
    let mut opts = PullOptions::for_remote(&a.remote);
    opts.depth = a.depth;
    opts.allow_downgrade = a.allow_downgrade;
    if a.mirror {
        opts.ref_target = RefTarget::Local;
    }
    if r.sign_verify {
        opts.commit_keys = Some(keys.clone());
    }
    let progress = Progress::new(mode, &format!("pull {}", a.remote), None);
    let start = Instant::now();
    let src: Box<dyn Source> = match r.url.strip_prefix("file://") {
        Some(path) => Box::new(LocalSource::open(Path::new(path))?),
        None => {
            let fetch = FetchOptions {
                parallel: a.parallel,
                read_timeout: Duration::from_secs(a.timeout.max(1)),
                low_speed_limit: a.low_speed_limit_bytes,
                low_speed_time: Duration::from_secs(a.low_speed_time_seconds),
                roots: r.ca_roots(CaRoots::System),
                ..FetchOptions::default()
            };
            let summary_keys = r.sign_verify_summary.then_some(keys);
            Box::new(HttpSource::new(&r.url, fetch, summary_keys)?)
        }
    };
    let rep = pull::pull(&repo, src.as_ref(), &a.refs, &opts, &progress).with_context(|| {
        format!(
            "pull from {} ({}) failed; no ref was changed",
            a.remote, r.url
        )
    })?;
    let prefix = if a.mirror {
        String::new()
    } else {
        format!("{}:", a.remote)
    };
    report(mode, &rep, start, &prefix);
    if let Some(read) = src.summary_read() {
        let max_age = r.summary_max_age_secs(&config::config_path(repo_path))?;
        let now = freshness::now();
        let f = freshness::seen(&a.remote, &r.url, &read, max_age, now).assess(now);
        if f.is_problem() {
            eprintln!("warning: {}", f.message);
        }
    }
    Ok(())
}

fn pull_local(repo_path: &Path, a: PullLocalArgs, mode: Mode) -> anyhow::Result<()> {
    let repo = Repo::open(repo_path)?;
    let src = LocalSource::open(&a.src_repo)?;
    let mut opts = PullOptions::for_remote("");
    opts.depth = a.depth;
    opts.allow_downgrade = a.allow_downgrade;
    opts.ref_target = RefTarget::Local;
    let progress = Progress::new(mode, "pull-local", None);
    let start = Instant::now();
    let rep = pull::pull(&repo, &src, &a.refs, &opts, &progress).with_context(|| {
        format!(
            "pull-local from {} failed; no ref was changed",
            a.src_repo.display()
        )
    })?;
    report(mode, &rep, start, "");
    Ok(())
}

fn summary_cmd(repo_path: &Path, a: SummaryArgs) -> anyhow::Result<()> {
    let repo = Repo::open(repo_path)?;
    if a.update {
        let mut secret = Vec::new();
        for f in &a.sign_key {
            secret.extend(keys::load_secret_file(f)?);
        }
        let s = summary::update(&repo, &secret)?;
        eprintln!(
            "summary: {} ref(s){}",
            s.refs.len(),
            if secret.is_empty() {
                String::new()
            } else {
                format!(", signed with {} key(s)", secret.len())
            }
        );
    }
    if a.view {
        let p = repo_path.join("summary");
        let bytes = std::fs::read(&p)
            .with_context(|| format!("{}: run `keel repo summary --update` first", p.display()))?;
        let s = summary::Summary::parse(&bytes)
            .with_context(|| format!("{} is corrupt", p.display()))?;
        for r in &s.refs {
            println!(
                "* {}\n    Latest Commit ({} bytes):\n      {}",
                r.name, r.commit_size, r.checksum
            );
            for (k, v) in &r.meta {
                println!("    {k}: {}", summary::display_value(k, v));
            }
        }
        for (k, v) in &s.meta {
            println!("{k}: {}", summary::display_value(k, v));
        }
    }
    Ok(())
}

fn sign_cmd(repo_path: &Path, a: SignArgs) -> anyhow::Result<()> {
    let repo = Repo::open(repo_path)?;
    let c = repo.resolve_rev(&a.rev)?;
    if a.verify {
        let file = a.keys.as_deref().context("--verify needs --keys FILE")?;
        let trusted = keys::load_public_file(file)?;
        let k = sign::verify_commit(&repo, &c, &trusted)?;
        println!(
            "commit {c}: good ed25519 signature by {}",
            keys::public_to_base64(&k)
        );
        return Ok(());
    }
    let file = a
        .key
        .as_deref()
        .context("give --key KEYFILE (or --verify --keys FILE)")?;
    for key in keys::load_secret_file(file)? {
        let added = sign::sign_commit(&repo, &c, &key)?;
        let pk = keys::public_to_base64(&key.verifying_key());
        if added {
            println!("commit {c}: signed by {pk}");
        } else {
            println!("commit {c}: already signed by {pk}");
        }
    }
    Ok(())
}
