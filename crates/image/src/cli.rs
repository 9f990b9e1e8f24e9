//! `keel image`: build bootable disk images from a commit.

use crate::build::{self, BuildSpec};
use crate::growfs;
use crate::layout::GIB;
use crate::output::Format;
use crate::sysroot::Platform;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use keel_utils::progress::{human_bytes, Mode};
use std::path::PathBuf;

/// Bootable disk images from an OS commit.
#[derive(Args, Debug)]
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
  keel image build --repo build/repo --ref keel/stable/x86_64 --platform metal -o keel.raw.xz
  keel image build --repo build/repo --platform qemu -o keel.raw --size 8

Runs as root (loop devices, mount). The first boot grows the root partition and filesystem to
the size of the disk it runs on, so the image itself can stay small.")]
    Build(BuildArgs),
    /// Grow the root partition and its (mounted) ext4 filesystem to the end of the disk: the
    /// first-boot step of `keel-growfs.service` in the initramfs.
    #[command(after_help = "Example:
  keel image growfs --device /dev/disk/by-label/root

Moves the backup GPT header to the end of the disk, extends the partition (same start, type,
name and GUID), updates the kernel's view (partx) and runs resize2fs. Does nothing when the
partition already fills the disk.")]
    Growfs(GrowfsArgs),
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
    /// Progress as JSON lines.
    #[arg(long)]
    json: bool,
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
            };
            let start = std::time::Instant::now();
            let bytes = build::build(&spec)?;
            println!(
                "{} ({}, {}) in {:.0} s",
                spec.output.display(),
                build::format_name(format),
                human_bytes(bytes),
                start.elapsed().as_secs_f64()
            );
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
