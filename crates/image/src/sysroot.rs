//! Filling the root filesystem: an OSTree-style sysroot with the commit pulled into
//! `/ostree/repo` and deployed once by keel-deploy (which also puts systemd-boot, the kernel,
//! the initramfs and the BLS entry into `<root>/boot`, the future ESP), plus the first-boot
//! marker.

use crate::loopdev::Mount;
use anyhow::{Context, Result};
use keel_deploy::{DeployOptions, Sysroot};
use keel_proto::node::DEFAULT_REMOTE;
use keel_remote::config::{self, Remote};
use keel_remote::pull::{pull, PullOptions, RefTarget};
use keel_remote::source::LocalSource;
use keel_store::{Checksum, Repo, TreeNode};
use keel_utils::cmd;
use keel_utils::progress::Progress;
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// The stateroot every image uses.
pub const STATEROOT: &str = keel_proto::node::STATEROOT;
/// File in the OS tree listing its default kernel arguments (written by compose).
pub const TREE_KARGS: &str = keel_proto::node::TREE_KARGS;
/// The first-boot marker (karg, and file on the ESP that `keel ignition firstboot-complete`
/// removes).
pub const FIRSTBOOT: &str = keel_proto::node::KARG_FIRSTBOOT;

/// The platform an image is for: decides `ignition.platform.id` and the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    /// QEMU/KVM: config from fw_cfg, serial console on ttyS0.
    Qemu,
    /// Bare metal: config from `ignition.config.url` or the boot partition.
    Metal,
}

impl Platform {
    /// The `ignition.platform.id` value.
    pub fn id(self) -> &'static str {
        match self {
            Platform::Qemu => "qemu",
            Platform::Metal => "metal",
        }
    }
}

/// Kernel arguments of the image's only boot entry: root filesystem, the tree's defaults, the
/// platform (and serial console on qemu) and the first-boot marker.
pub fn kargs(tree_defaults: &str, platform: Platform) -> Vec<String> {
    let mut k: Vec<String> = vec!["root=LABEL=root".into(), "rw".into()];
    k.extend(
        keel_utils::cmdline::words(tree_defaults)
            .into_iter()
            .map(str::to_string),
    );
    if platform == Platform::Qemu && !k.iter().any(|a| a.starts_with("console=ttyS0")) {
        k.push("console=ttyS0,115200n8".into());
    }
    k.push(format!(
        "{}={}",
        keel_proto::node::KARG_PLATFORM_ID,
        platform.id()
    ));
    k.push(FIRSTBOOT.into());
    k
}

/// Read the regular file at `path` (`/`-separated) from `commit`, if it exists.
pub fn read_tree_file(repo: &Repo, commit: &Checksum, path: &str) -> Result<Option<Vec<u8>>> {
    let Some(TreeNode::File(file)) = repo.resolve_path(commit, path)? else {
        return Ok(None);
    };
    let mut r = repo.open_content(&file)?;
    let mut data = Vec::new();
    r.content
        .read_to_end(&mut data)
        .with_context(|| format!("reading {path} from commit {commit}"))?;
    Ok(Some(data))
}

/// Do now what the booted system would do at its first start and what first-boot provisioning
/// (which runs before that, in the initramfs) relies on: the tree's sysusers.d users (such as
/// `core`) in the deployment's /etc, and what tmpfiles.d declares under /var (home directories,
/// /var/lib/…) in the stateroot's shared /var, seen through a bind mount as on a node.
fn populate_var(deployment: &Path, var: &Path) -> Result<()> {
    cmd::run(Command::new("systemd-sysusers").arg(format!("--root={}", deployment.display())))
        .with_context(|| {
            format!(
                "creating the tree's system users in {}/etc",
                deployment.display()
            )
        })?;
    let target = deployment.join("var");
    let _bind = Mount::bind(var, &target)?;
    cmd::run(
        Command::new("systemd-tmpfiles")
            .args(["--create", "--prefix=/var"])
            .arg(format!("--root={}", deployment.display())),
    )
    .with_context(|| {
        format!(
            "creating /var from the tree's tmpfiles.d in {}",
            var.display()
        )
    })?;
    Ok(())
}

/// Make `root` a sysroot holding `commit` from `src` (under `refname`), deployed with its
/// kernel and boot entry in `<root>/boot`. The deployment follows `keel:<refname>` (the ref
/// is stored as `refs/remotes/keel/<refname>`); `remote`, when given, is written to the
/// image's repository config as the definition of remote `keel` (otherwise nodes define it
/// in `/etc/ostree/remotes.d/keel.conf`, e.g. from their Ignition config).
pub fn populate(
    root: &Path,
    src: &Path,
    refname: &str,
    commit: &Checksum,
    platform: Platform,
    remote: Option<&Remote>,
    progress: &Progress,
) -> Result<()> {
    let sysroot = Sysroot::init(root, STATEROOT)
        .with_context(|| format!("creating the sysroot in {}", root.display()))?;
    let repo = sysroot.repo()?;
    if let Some(r) = remote {
        config::add(repo.path(), r)
            .with_context(|| format!("adding remote {} to the image's repository", r.name))?;
    }
    let source = LocalSource::open(src)?;
    let follows = !Checksum::is_hex(refname);
    let opts = PullOptions {
        ref_target: if follows {
            RefTarget::Remote(DEFAULT_REMOTE.to_string())
        } else {
            RefTarget::Local
        },
        ..PullOptions::for_remote(DEFAULT_REMOTE)
    };
    progress.message(&format!(
        "copying {refname} ({commit}) into the image's repository"
    ));
    pull(&repo, &source, &[refname.to_string()], &opts, progress)
        .with_context(|| format!("copying {refname} from {} into the image", src.display()))?;
    let defaults = read_tree_file(&repo, commit, TREE_KARGS)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    progress.message("deploying");
    let dep = sysroot
        .deploy(
            commit,
            &DeployOptions {
                kargs: Some(kargs(&defaults, platform)),
                origin_refspec: follows.then(|| format!("{DEFAULT_REMOTE}:{refname}")),
                stage: false,
                lock_finalization: false,
            },
        )
        .with_context(|| format!("deploying {commit} into the image"))?;
    populate_var(
        &sysroot.deploy_path(&dep.name()),
        &sysroot.stateroot_dir().join("var"),
    )?;
    let marker = root.join("boot").join(FIRSTBOOT);
    std::fs::write(&marker, b"").with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kargs_table() {
        for (defaults, platform, want) in [
            (
                "console=tty0 console=ttyS0,115200n8\n",
                Platform::Qemu,
                "root=LABEL=root rw console=tty0 console=ttyS0,115200n8 ignition.platform.id=qemu ignition.firstboot",
            ),
            (
                "",
                Platform::Qemu,
                "root=LABEL=root rw console=ttyS0,115200n8 ignition.platform.id=qemu ignition.firstboot",
            ),
            (
                "console=tty0",
                Platform::Metal,
                "root=LABEL=root rw console=tty0 ignition.platform.id=metal ignition.firstboot",
            ),
        ] {
            assert_eq!(kargs(defaults, platform).join(" "), want);
        }
    }
}
