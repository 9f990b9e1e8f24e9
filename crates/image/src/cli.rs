//! `keel image`: build bootable disk images from a commit.

use crate::build::{self, BuildSpec};
use crate::layout::GIB;
use crate::output::Format;
use crate::sysroot::Platform;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use keel_proto::node::DEFAULT_REMOTE;
use keel_provision::growfs;
use keel_remote::config::Remote;
use keel_utils::progress::{human_bytes, Mode};
use std::path::{Path, PathBuf};

/// Bootable disk images from an OS commit.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  keel image build --repo build/repo --platform qemu -o keel.qcow2"
)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Build a disk image (GPT, EFI system partition with systemd-boot, root filesystem with
    /// the sysroot and one deployment of the commit).
    #[command(after_help = "Examples:
  keel image build --repo build/repo --platform qemu -o keel.qcow2
  keel image build --repo build/repo --ref keel/stable/x86_64 \\
      --platform metal -o keel.raw.xz
  keel image build --repo build/repo --platform qemu -o keel.raw --size 8
  keel image build --repo build/repo --platform metal -o keel.raw.xz \\
      --remote-url https://updates.example.com/repo \\
      --sign-verify keys/release.pub

Runs as root (loop devices, mount). The first boot grows the root partition and
filesystem to the size of the disk it runs on, so the image itself can stay
small.")]
    Build(BuildArgs),
    /// Grow the root partition and its (mounted) ext4 filesystem to the end of the disk: the
    /// first-boot step of `keel-growfs.service`.
    #[command(
        hide = true,
        after_help = "Example:
  keel image growfs --device /dev/disk/by-label/root

Moves the backup GPT header to the end of the disk, extends the partition (same
start, type, name and GUID), updates the kernel's view (partx) and runs
resize2fs. Does nothing when the partition already fills the disk."
    )]
    Growfs(GrowfsArgs),
}

/// `keel image build --json`: the image written.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct BuildResult {
    /// The image file.
    pub output: String,
    /// `qcow2`, `raw` or `raw.xz`.
    pub format: &'static str,
    /// Its size in bytes.
    pub bytes: u64,
    /// How long the build took.
    pub seconds: f64,
}

/// `keel image growfs` options.
#[derive(Args, Debug)]
struct GrowfsArgs {
    /// The root filesystem's partition.
    #[arg(long, default_value = "/dev/disk/by-label/root")]
    device: PathBuf,
}

/// `keel image build` options.
#[derive(Args, Debug)]
struct BuildArgs {
    /// Repository holding the commit (made by `keel compose`).
    #[arg(long)]
    repo: PathBuf,
    /// Ref or commit to put in the image.
    #[arg(long = "ref", default_value = "keel/stable/x86_64")]
    refname: String,
    /// Platform: sets ignition.platform.id (and the serial console for qemu).
    #[arg(long, value_enum)]
    platform: Platform,
    /// Output file.
    #[arg(short, long)]
    output: PathBuf,
    /// Output format (default: from the output's name: .qcow2, .raw/.img, .raw.xz).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Virtual disk size in GiB.
    #[arg(long, default_value_t = 3)]
    size: u64,
    /// Print the result as one JSON document on stdout (progress as JSON lines on stderr).
    #[arg(long)]
    json: bool,
    /// URL of the update repository: written to the image's /ostree/repo/config as remote
    /// `keel`, which the deployment follows (`keel:<ref>`). Without it, nodes define the
    /// remote in /etc/ostree/remotes.d/keel.conf (e.g. from their Ignition config).
    #[arg(long, value_name = "URL")]
    remote_url: Option<String>,
    /// With --remote-url: require commits (and the summary) signed by a key of this public
    /// key file (base64, as `keel repo keygen` writes it); the keys are written inline.
    #[arg(long, value_name = "KEYFILE", requires = "remote_url")]
    sign_verify: Option<PathBuf>,
}

/// The remote `keel` of `--remote-url` / `--sign-verify`.
fn remote(url: Option<String>, keys: Option<&Path>) -> Result<Option<Remote>> {
    let Some(url) = url else { return Ok(None) };
    let key = match keys {
        Some(f) => {
            let keys = keel_remote::keys::load_public_file(f)
                .with_context(|| format!("--sign-verify: reading {}", f.display()))?;
            let Some(k) = keys.first() else {
                anyhow::bail!("--sign-verify: {} holds no public key", f.display())
            };
            Some(keel_remote::keys::public_to_base64(k))
        }
        None => None,
    };
    Ok(Some(Remote {
        name: DEFAULT_REMOTE.to_string(),
        url,
        sign_verify: key.is_some(),
        sign_verify_summary: key.is_some(),
        ed25519_file: None,
        ed25519_key: key,
        summary_max_age: None,
        tls_ca_path: None,
    }))
}

/// Run `keel image`.
pub fn run(args: ImageArgs) -> Result<()> {
    match args.command {
        ImageCommand::Build(b) => {
            let format = match b.format.or_else(|| Format::from_name(&b.output)) {
                Some(f) => f,
                None => anyhow::bail!(
                    "cannot tell the format from {}; pass --format qcow2|raw|raw.xz or name the file *.qcow2, *.raw, *.raw.xz",
                    b.output.display()
                ),
            };
            let spec = BuildSpec {
                repo: b.repo,
                refname: b.refname,
                platform: b.platform,
                output: b.output,
                format,
                size: b.size.checked_mul(GIB).context("--size is too large")?,
                progress: Mode::detect(b.json),
                remote: remote(b.remote_url, b.sign_verify.as_deref())?,
            };
            let start = std::time::Instant::now();
            let bytes = build::build(&spec)?;
            let seconds = start.elapsed().as_secs_f64();
            if spec.progress == Mode::Json {
                let out = keel_proto::output::Versioned::new(BuildResult {
                    output: spec.output.display().to_string(),
                    format: build::format_name(format),
                    bytes,
                    seconds,
                });
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!(
                    "{} ({}, {}) in {seconds:.0} s",
                    spec.output.display(),
                    build::format_name(format),
                    human_bytes(bytes),
                );
            }
            Ok(())
        }
        ImageCommand::Growfs(g) => {
            match growfs::grow(&g.device)? {
                Some(bytes) => println!("{} grown to {}", g.device.display(), human_bytes(bytes)),
                None => println!("{} already fills its disk", g.device.display()),
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_url_and_sign_verify_make_remote_keel() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keel_remote::keys::write_new_pair(&dir.path().join("k")).unwrap();
        let inline = keel_remote::keys::public_to_base64(&key.verifying_key());
        let url = || Some("http://10.0.2.2:8080/".to_string());
        // (url, key file, want: (sign_verify, inline key))
        for (u, k, want) in [
            (None, None, None),
            (url(), None, Some((false, None))),
            (
                url(),
                Some(public.as_path()),
                Some((true, Some(inline.clone()))),
            ),
        ] {
            let r = remote(u, k).unwrap();
            assert_eq!(
                r.as_ref().map(|r| (r.sign_verify, r.ed25519_key.clone())),
                want
            );
            if let Some(r) = r {
                assert_eq!(
                    (r.name.as_str(), r.url.as_str()),
                    ("keel", "http://10.0.2.2:8080/")
                );
            }
        }
        let empty = dir.path().join("empty.pub");
        std::fs::write(&empty, "").unwrap();
        let e = remote(url(), Some(&empty)).unwrap_err();
        assert!(format!("{e:#}").contains("empty.pub"), "{e:#}");
    }
}
