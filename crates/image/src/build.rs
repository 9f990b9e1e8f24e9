//! `keel image build`: commit → bootable disk image.

use crate::assemble::{assemble, require_root};
use crate::layout::GIB;
use crate::output::{self, Format};
use crate::sysroot::{self, Platform};
use anyhow::{bail, Context, Result};
use keel_store::Repo;
use keel_utils::progress::{Mode, Progress};
use std::path::{Path, PathBuf};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Source repository (any mode).
    pub repo: PathBuf,
    /// Ref (or commit) to put in the image.
    pub refname: String,
    /// Platform of the image.
    pub platform: Platform,
    /// Output file.
    pub output: PathBuf,
    /// Output format.
    pub format: Format,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// Progress rendering.
    pub progress: Mode,
    /// The definition of remote `keel` to write into the image's repository config.
    pub remote: Option<keel_remote::config::Remote>,
}

/// Build the image; returns the output's size in bytes.
pub fn build(spec: &BuildSpec) -> Result<u64> {
    require_root("keel image build")?;
    let src = Repo::open(&spec.repo)
        .with_context(|| format!("opening repository {}", spec.repo.display()))?;
    let commit = src.resolve_rev(&spec.refname).with_context(|| {
        format!(
            "ref {} is not in repository {}; compose it first (keel compose manifests/keel.toml --repo {}) or list refs with `keel repo --repo {} refs`",
            spec.refname,
            spec.repo.display(),
            spec.repo.display(),
            spec.repo.display()
        )
    })?;
    if spec.size < 2 * GIB {
        bail!(
            "--size {} GiB is too small: a Keel image needs at least 2 GiB",
            spec.size / GIB
        );
    }
    let parent = match spec.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let work = tempfile::Builder::new()
        .prefix(".keel-image-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a work directory in {}", parent.display()))?;
    let progress = Progress::new(spec.progress, "image", None);
    progress.message(&format!(
        "building {} ({}, {}) from {} = {commit}",
        spec.output.display(),
        spec.platform.id(),
        format_name(spec.format),
        spec.refname
    ));
    let raw = work.path().join("disk.raw");
    assemble(&raw, spec.size, work.path(), |root: &Path| {
        sysroot::populate(
            root,
            &spec.repo,
            &spec.refname,
            &commit,
            spec.platform,
            spec.remote.as_ref(),
            &progress,
        )
    })?;
    progress.message(&format!("writing {}", format_name(spec.format)));
    output::finish(&raw, &spec.output, spec.format)?;
    progress.finish();
    let size = std::fs::metadata(&spec.output)?.len();
    Ok(size)
}

/// The format's name as the CLI spells it.
pub fn format_name(f: Format) -> &'static str {
    match f {
        Format::Qcow2 => "qcow2",
        Format::Raw => "raw",
        Format::RawXz => "raw.xz",
    }
}
