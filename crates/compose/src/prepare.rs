//! From a manifest to a prepared root filesystem, ready to commit:
//! mmdebstrap → overlays, keel, config → postprocess → unit states → kernel and initramfs →
//! cleanup → size report → image layout.

use crate::manifest::Manifest;
use crate::mmdebstrap::{Bootstrap, Downloads};
use crate::packages::{self, Installed};
use crate::sizes::{self, SizeReport};
use crate::{initramfs, layout, tree};
use anyhow::{bail, Context};
use keel_utils::progress::{human_bytes, Progress};
use std::path::Path;

/// Steps of a compose shown in its progress: packages, tree additions, kernel and initramfs,
/// cleanup and size report, image layout, and the commit (done by the caller).
pub const STEPS: u64 = 6;

/// How to prepare.
pub struct PrepareOptions<'a> {
    /// Package cache directory.
    pub cache: Option<&'a Path>,
    /// Compose from the cache only, without network.
    pub offline: bool,
    /// `SOURCE_DATE_EPOCH`: timestamps in the tree and the commit.
    pub epoch: u64,
    /// The version written into os-release.
    pub version: &'a str,
}

/// A prepared tree and what was learned while preparing it.
#[derive(Debug)]
pub struct Prepared {
    /// Installed packages, sorted by name.
    pub packages: Vec<Installed>,
    /// The kernel version, when the tree has a kernel.
    pub kernel: Option<String>,
    /// Size of the tree by package.
    pub sizes: SizeReport,
    /// What was downloaded.
    pub downloads: Downloads,
}

/// Fail unless running as root (mmdebstrap --mode=root, chroot and mounts need it).
pub fn require_root() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!("keel compose must run as root (mmdebstrap --mode=root, chroot and dracut need it); run it with sudo");
    }
    Ok(())
}

/// Build the tree for `m` at `root` (which must not exist yet); `staging` is a scratch directory.
pub fn prepare(
    m: &Manifest,
    root: &Path,
    staging: &Path,
    o: &PrepareOptions,
    progress: &Progress,
) -> anyhow::Result<Prepared> {
    require_root()?;
    progress.message("installing packages with mmdebstrap");
    let downloads = Bootstrap {
        manifest: m,
        cache: o.cache,
        offline: o.offline,
        epoch: o.epoch,
        staging,
    }
    .run(root)?;
    progress.message(&format!(
        "downloaded {} packages ({}), {} reused from the cache",
        downloads.packages,
        human_bytes(downloads.bytes),
        downloads.reused
    ));
    layout::check_usrmerge(root)?;
    progress.inc(1, 0);

    progress.message("adding overlays, keel, configuration; running postprocess scripts");
    tree::copy_overlays(m, root)?;
    if m.spec.keel.install {
        tree::install_keel(m, root)?;
    }
    tree::write_config(m, root, o.version)?;
    tree::postprocess(m, root, o.epoch)?;
    tree::set_unit_states(m, root)?;
    progress.inc(1, 0);

    let kernel = initramfs::kernel_version(root)?;
    match (&kernel, m.spec.kernel.initramfs) {
        (Some(kver), build) => {
            initramfs::place_kernel(root, kver)?;
            if build {
                progress.message(&format!("building the initramfs for {kver} with dracut"));
                initramfs::build(root, kver, &m.spec.kernel, o.epoch)?;
            }
        }
        (None, true) => bail!(
            "manifest key kernel.initramfs: the tree has no kernel; add a kernel package (linux-image-amd64) to packages.install"
        ),
        (None, false) => {}
    }
    progress.inc(1, 0);

    progress.message("cleaning up and measuring the tree");
    layout::clean(root)?;
    let dpkg = root.join("var/lib/dpkg");
    let status_path = dpkg.join("status");
    let status = std::fs::read_to_string(&status_path)
        .with_context(|| format!("reading {}", status_path.display()))?;
    let installed = packages::parse_status(&status);
    let mut lists = sizes::dpkg_lists(&dpkg.join("info"), &installed)
        .with_context(|| format!("reading package file lists in {}", dpkg.display()))?;
    if let Some(kver) = &kernel {
        for (_, paths) in &mut lists {
            for p in paths.iter_mut() {
                if let Some(moved) = initramfs::moved_from_boot(p, kver) {
                    *p = moved;
                }
            }
        }
    }
    let sizes = sizes::measure(root, lists).context("measuring the tree")?;
    if let Some(limit) = m.spec.size_limit_mib {
        if sizes.total > limit * 1024 * 1024 {
            bail!(
                "the tree is {} MiB, over the manifest's size-limit-mib of {limit}:\n{}",
                sizes.total / (1024 * 1024),
                sizes.render(20)
            );
        }
    }
    progress.inc(1, 0);
    progress.message("applying the image layout");
    layout::apply(root)?;
    progress.inc(1, 0);
    Ok(Prepared {
        packages: installed,
        kernel,
        sizes,
        downloads,
    })
}
