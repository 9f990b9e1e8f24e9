//! `keel compose MANIFEST --repo REPO` and `keel compose diff A B --repo REPO`.

use crate::commit::{self, PACKAGES_KEY};
use crate::manifest::Manifest;
use crate::packages;
use crate::prepare::{self, PrepareOptions};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use keel_store::{CommitOptions, ParentSpec, Repo};
use keel_utils::progress::{human_bytes, Mode, Progress};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Compose an OS commit from a manifest of Debian packages.
#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  keel compose manifests/keel.toml --repo build/repo \\
      --cache /var/cache/keel-debs
  keel compose manifests/keel.toml --repo build/repo \\
      --release-version 12.20261125.3.0
  keel compose manifests/keel.toml --repo build/repo \\
      --cache /var/cache/keel-debs --offline
  keel compose diff --repo build/repo keel/stable/x86_64^ keel/stable/x86_64

Prints the commit checksum, version, ref and root tree. Runs as root (mmdebstrap,
chroot, dracut). The manifest format:
https://keel.dev/docs/building/manifest.html"
)]
pub struct ComposeArgs {
    #[command(subcommand)]
    command: Option<ComposeCommand>,
    /// The manifest (TOML) to compose.
    manifest: Option<PathBuf>,
    #[command(flatten)]
    opts: ComposeOpts,
}

/// Options of a compose.
#[derive(Args, Debug)]
pub struct ComposeOpts {
    /// Repository to commit to (created as an archive repository if missing).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Directory caching downloaded .deb files and package lists across composes.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Version to give the commit instead of <debian major>.<date>.<stream code>.<next respin>.
    #[arg(long, value_name = "V")]
    release_version: Option<String>,
    /// Use only the cache: no package lists or packages are downloaded.
    #[arg(long)]
    offline: bool,
    /// Where the tree is built (a fresh directory is made inside and removed afterwards).
    #[arg(long, default_value = "/var/tmp")]
    workdir: PathBuf,
    /// Also leave a copy of the committed tree at this path (must not exist).
    #[arg(long)]
    keep_tree: Option<PathBuf>,
    /// Print the result as one JSON document on stdout (progress as JSON lines on stderr).
    #[arg(long)]
    json: bool,
}

/// `keel compose --json`: the result, the one line on stdout.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ComposeResult {
    /// The new commit.
    pub commit: String,
    /// Its version.
    pub version: String,
    /// The ref it was committed to.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// The commit's root tree (dirtree checksum).
    pub root_tree: String,
    /// The kernel version in the tree.
    pub kernel: Option<String>,
    /// How many packages the tree holds.
    pub packages: usize,
    /// The tree's size in bytes (hard links counted once).
    pub size_bytes: u64,
    /// The largest packages: `[name, bytes]`, largest first (at most 20).
    pub sizes: Vec<(String, u64)>,
    /// Packages downloaded by this run.
    pub downloaded_packages: u64,
    /// Bytes downloaded by this run.
    pub downloaded_bytes: u64,
    /// Packages taken from the cache.
    pub reused_packages: u64,
    /// The commit metadata key listing the packages.
    pub metadata_packages_key: &'static str,
}

#[derive(Subcommand, Debug)]
enum ComposeCommand {
    /// Show the package changes between two commits made by keel compose.
    #[command(
        after_help = "Example:\n  keel compose diff --repo build/repo keel/stable/x86_64^ keel/stable/x86_64\n\n\
        Lines: `+ name version` added, `- name version` removed, `~ name old -> new` changed."
    )]
    Diff(DiffArgs),
}

/// `keel compose diff`
#[derive(Args, Debug)]
struct DiffArgs {
    /// Repository holding both commits.
    #[arg(long)]
    repo: PathBuf,
    /// The older commit (checksum, ref, or ref^).
    from: String,
    /// The newer commit.
    to: String,
}

/// Run `keel compose`.
pub fn run(args: ComposeArgs) -> anyhow::Result<()> {
    match (args.command, args.manifest) {
        (Some(ComposeCommand::Diff(d)), _) => diff(&d),
        (None, Some(manifest)) => compose(&manifest, &args.opts),
        (None, None) => {
            bail!("give a manifest (keel compose MANIFEST --repo REPO) or `keel compose diff`")
        }
    }
}

fn diff(d: &DiffArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&d.repo).with_context(|| format!("opening {}", d.repo.display()))?;
    let old = commit::package_list(&repo, &d.from)?;
    let new = commit::package_list(&repo, &d.to)?;
    for change in packages::diff(&old, &new) {
        println!("{change}");
    }
    Ok(())
}

fn epoch() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds")),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()),
    }
}

fn open_or_init(path: &Path) -> anyhow::Result<Repo> {
    if path.join("config").exists() {
        Repo::open(path).with_context(|| format!("opening repository {}", path.display()))
    } else {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        Repo::init(path, keel_store::RepoMode::Archive)
            .with_context(|| format!("creating repository {}", path.display()))
    }
}

fn compose(manifest_path: &Path, o: &ComposeOpts) -> anyhow::Result<()> {
    let m = Manifest::load(manifest_path)?;
    let Some(repo_path) = &o.repo else {
        bail!("--repo REPO is required: the repository the commit goes to");
    };
    prepare::require_root()?;
    let epoch = epoch()?;
    let repo = open_or_init(repo_path)?;
    let version = commit::choose_version(&repo, &m, epoch, o.release_version.as_deref())?;
    let mode = Mode::detect(o.json);
    let progress = Progress::new(mode, "compose", Some(prepare::STEPS));
    progress.message(&format!("composing {} {version}", m.ref_name()));

    std::fs::create_dir_all(&o.workdir)
        .with_context(|| format!("creating {}", o.workdir.display()))?;
    let work = tempfile::Builder::new()
        .prefix("keel-compose-")
        .tempdir_in(&o.workdir)
        .with_context(|| format!("creating a build directory in {}", o.workdir.display()))?;
    let root = work.path().join("rootfs");
    let staging = work.path().join("staging");
    std::fs::create_dir(&staging)?;
    let prepared = prepare::prepare(
        &m,
        &root,
        &staging,
        &PrepareOptions {
            cache: o.cache.as_deref(),
            offline: o.offline,
            epoch,
            version: &version,
        },
        &progress,
    )?;

    progress.message(&format!("committing to {}", repo_path.display()));
    let metadata = commit::metadata(&m, &prepared, &version)?;
    let commit_progress = Progress::new(mode, "commit", None);
    let checksum = repo
        .commit_dir(
            &root,
            &CommitOptions {
                branch: Some(m.ref_name()),
                subject: format!(
                    "{} {version}",
                    m.spec.os_release.get("NAME").map_or("Keel", String::as_str)
                ),
                body: format!("Composed from manifest sha256 {}", m.sha256),
                timestamp: Some(epoch),
                metadata,
                parent: ParentSpec::Auto,
                ..CommitOptions::default()
            },
            &commit_progress,
        )
        .with_context(|| format!("committing the tree to {}", repo_path.display()))?;
    let root_tree = repo.read_commit(&checksum)?.root_tree;
    progress.inc(1, 0);
    progress.finish();
    if let Some(keep) = &o.keep_tree {
        std::fs::rename(&root, keep).with_context(|| {
            format!(
                "moving the tree to {} (it must be on the same filesystem as --workdir)",
                keep.display()
            )
        })?;
    }

    if !o.json {
        // With --json the sizes are in the result; stderr carries only JSON lines.
        eprint!("{}", prepared.sizes.render(20));
    }
    let d = &prepared.downloads;
    if o.json {
        let out = keel_proto::output::Versioned::new(ComposeResult {
            commit: checksum.to_hex(),
            version: version.clone(),
            ref_name: m.ref_name(),
            root_tree: root_tree.to_hex(),
            kernel: prepared.kernel.clone(),
            packages: prepared.packages.len(),
            size_bytes: prepared.sizes.total,
            sizes: prepared.sizes.by_package.iter().take(20).cloned().collect(),
            downloaded_packages: d.packages,
            downloaded_bytes: d.bytes,
            reused_packages: d.reused,
            metadata_packages_key: PACKAGES_KEY,
        });
        let out = serde_json::to_string(&out)?;
        println!("{out}");
    } else {
        println!("commit: {}", checksum.to_hex());
        println!("version: {version}");
        println!("ref: {}", m.ref_name());
        println!("root-tree: {}", root_tree.to_hex());
        println!(
            "downloaded: {} packages ({}), {} reused from the cache",
            d.packages,
            human_bytes(d.bytes),
            d.reused
        );
    }
    Ok(())
}
