//! `keel ignition apply|stage|firstboot-complete`: the provisioning subcommands, flattened into
//! `keel ignition` next to `validate`.

use crate::cmdline::{KernelCmdline, PROC_CMDLINE};
use crate::resource::Fetcher;
use crate::sources::{self, Platform, SourceEnv};
use crate::stages::{self, Stage, StageEnv};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Provisioning subcommands.
#[derive(Subcommand)]
pub enum ProvisionCommand {
    /// Apply a config's users, groups, files, directories, links and units into a mounted root.
    #[command(
        after_help = "Examples:\n  keel ignition apply --root /mnt/sysroot config.ign\n  # data: URLs only, nothing fetched:\n  keel ignition apply --root build/rootfs --offline config.ign"
    )]
    Apply(ApplyArgs),
    /// Run one first-boot stage (what the initramfs units call).
    #[command(
        hide = true,
        after_help = "Stages run in this order: fetch-offline, fetch, kargs, disks, mount, files,\numount.\n\nExamples:\n  keel ignition stage fetch-offline --root /sysroot --platform qemu\n  keel ignition stage files --root /sysroot --platform metal\n  keel ignition stage files --root /tmp/root --platform file \\\n      --config-file cfg.ign --config-cache /tmp/w/ignition.json \\\n      --state-file /tmp/w/state --neednet /tmp/w/neednet"
    )]
    Stage(Box<StageArgs>),
    /// Remove the first-boot marker (`ignition.firstboot` on the boot partition) after all stages succeeded.
    #[command(
        hide = true,
        after_help = "Example:\n  keel ignition firstboot-complete --boot /boot"
    )]
    FirstbootComplete(FirstbootArgs),
}

#[derive(Args)]
pub struct ApplyArgs {
    /// The mounted root to provision.
    #[arg(long)]
    pub root: PathBuf,
    /// Only use data: URLs; fail on anything that needs the network.
    #[arg(long)]
    pub offline: bool,
    /// The config file (Ignition JSON, spec 3.0.0-3.5.0).
    pub config: PathBuf,
}

#[derive(Args)]
pub struct StageArgs {
    /// The stage to run.
    #[arg(value_enum)]
    pub stage: Stage,
    /// The root being provisioned.
    #[arg(long, default_value = "/sysroot")]
    pub root: PathBuf,
    /// Platform id (qemu, metal, file); default: ignition.platform.id from the kernel command line.
    #[arg(long)]
    pub platform: Option<String>,
    /// The kernel command line to read.
    #[arg(long, default_value = PROC_CMDLINE)]
    pub cmdline: PathBuf,
    /// Cache of the rendered user config.
    #[arg(long, default_value = "/run/ignition.json")]
    pub config_cache: PathBuf,
    /// Flag file written when the config needs the network.
    #[arg(long, default_value = "/run/ignition/neednet")]
    pub neednet: PathBuf,
    /// State file (which configs were fetched).
    #[arg(long, default_value = "/run/ignition/state")]
    pub state_file: PathBuf,
    /// Directory with user.ign, base.d/ and base.platform.d/ [default: $IGNITION_SYSTEM_CONFIG_DIR or /usr/lib/ignition].
    #[arg(long)]
    pub system_config_dir: Option<PathBuf>,
    /// sysfs mount point (the qemu platform reads fw_cfg below it).
    #[arg(long, default_value = "/sys")]
    pub sysfs: PathBuf,
    /// The file platform's config [default: $IGNITION_CONFIG_FILE].
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Kernel log device failures are also written to.
    #[arg(long, default_value = "/dev/kmsg")]
    pub kmsg: PathBuf,
    /// Program that changes kernel arguments (called with --should-exist/--should-not-exist).
    #[arg(long, default_value = "ignition-kargs-helper")]
    pub kargs_helper: String,
    /// Where the boot id is read for the result file.
    #[arg(long, default_value = "/proc/sys/kernel/random/boot_id")]
    pub boot_id: PathBuf,
    /// Where LUKS key files are kept between the disks and files stages.
    #[arg(long, default_value = "/run/ignition/luks-keys")]
    pub luks_key_dir: PathBuf,
    /// Seconds the fetch stage keeps retrying to get the user config from the network.
    #[arg(long, default_value_t = 120)]
    pub fetch_timeout: u64,
}

#[derive(Args)]
pub struct FirstbootArgs {
    /// The mounted boot partition holding the marker.
    #[arg(long, default_value = "/boot")]
    pub boot: PathBuf,
}

/// Runs a provisioning subcommand.
pub fn run(cmd: ProvisionCommand) -> Result<()> {
    match cmd {
        ProvisionCommand::Apply(a) => apply(a),
        ProvisionCommand::Stage(s) => stage(*s),
        ProvisionCommand::FirstbootComplete(f) => crate::firstboot::complete(&f.boot),
    }
}

fn apply(a: ApplyArgs) -> Result<()> {
    let data =
        std::fs::read(&a.config).with_context(|| format!("reading {}", a.config.display()))?;
    let origin = a.config.display().to_string();
    let cfg = sources::parse_config(&data, &origin)?;
    let cfg = sources::render(cfg, !a.offline, &mut Vec::new()).map_err(anyhow::Error::new)?;
    let fetcher = if a.offline {
        Fetcher::offline()
    } else {
        Fetcher::online(&cfg, Vec::new())?
    };
    let counts = stages::apply_config(&a.root, &cfg, &fetcher).map_err(anyhow::Error::new)?;
    tracing::info!(
        "applied {} files, {} directories, {} links to {}",
        counts.files,
        counts.directories,
        counts.links,
        a.root.display()
    );
    Ok(())
}

fn stage(s: StageArgs) -> Result<()> {
    let stage = s.stage;
    let kmsg = s.kmsg.clone();
    let result = stage_env(s).and_then(|env| stages::run(stage, &env));
    result.map_err(|e| {
        let e = e.context(format!("stage {} failed", stage.name()));
        crate::error::report_failure(&e, &kmsg);
        e
    })
}

fn stage_env(s: StageArgs) -> Result<StageEnv> {
    let cmdline = KernelCmdline::read(&s.cmdline)
        .with_context(|| format!("reading the kernel command line {}", s.cmdline.display()))?;
    let platform = match s.platform.as_deref().filter(|p| !p.is_empty()).or(cmdline.platform()) {
        Some(p) => Platform::parse(p)?,
        None => anyhow::bail!("no platform: pass --platform or boot with ignition.platform.id= on the kernel command line ({})", s.cmdline.display()),
    };
    let system_config_dir = s
        .system_config_dir
        .or_else(|| std::env::var_os("IGNITION_SYSTEM_CONFIG_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(sources::SYSTEM_CONFIG_DIR));
    Ok(StageEnv {
        root: s.root,
        sources: SourceEnv {
            platform,
            cmdline,
            system_config_dir,
            sysfs: s.sysfs,
            config_file: s.config_file,
        },
        cache: s.config_cache,
        neednet: s.neednet,
        state: s.state_file,
        kargs_helper: s.kargs_helper,
        boot_id: s.boot_id,
        luks_key_dir: s.luks_key_dir,
        fetch_timeout: std::time::Duration::from_secs(s.fetch_timeout),
    })
}
