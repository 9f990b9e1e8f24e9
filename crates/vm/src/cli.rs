//! `keel run`: boot a Keel image under QEMU/UEFI with a config, console on the terminal.

use crate::drive::VmDisk;
use crate::harness::Config;
use crate::qemu::{Accel, QemuSpec, Serial, OVMF_CODE, OVMF_VARS};
use crate::ssh::{free_port, SshTarget};
use anyhow::{bail, Context, Result};
use clap::Args;
use keel_utils::cmd::CmdError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Boot a Keel disk image in a VM (QEMU, UEFI) with an Ignition or Butane config.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  keel run keel.qcow2 --butane examples/container.bu --files-dir build --ssh
  keel run keel.qcow2 --ignition config.ign --memory 4096 --cpus 4
  keel run keel.raw --persist     # boot the image itself; changes stay in it

The serial console is on this terminal: Ctrl-a x stops the VM, Ctrl-a c toggles
the QEMU monitor. Without --persist the VM writes to a throwaway qcow2 overlay
and the image stays pristine.")]
pub struct RunArgs {
    /// The disk image (qcow2 or raw).
    pub image: PathBuf,
    /// Ignition config (JSON) passed to the VM through fw_cfg (platform qemu).
    #[arg(long, conflicts_with = "butane")]
    pub ignition: Option<PathBuf>,
    /// Butane config (YAML), translated with `keel butane` first.
    #[arg(long)]
    pub butane: Option<PathBuf>,
    /// Directory for the Butane config's `local:` files (default: the config's directory).
    #[arg(long, requires = "butane")]
    pub files_dir: Option<PathBuf>,
    /// Forward a free loopback port to the VM's SSH port and print the ssh command.
    #[arg(long)]
    pub ssh: bool,
    /// Private key to show in the printed ssh command.
    #[arg(long, requires = "ssh")]
    pub ssh_identity: Option<PathBuf>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u32,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Boot the image file itself instead of a throwaway overlay (changes are kept).
    #[arg(long)]
    pub persist: bool,
}

/// Run `keel run`.
pub fn run(args: RunArgs) -> Result<()> {
    let state = tempfile::Builder::new()
        .prefix("keel-run-")
        .tempdir()
        .context("creating a state directory for the VM")?;
    let disk = VmDisk::prepare(
        &args.image,
        state.path(),
        args.persist,
        Path::new(OVMF_VARS),
        None,
    )?;
    let ignition = config_file(&args, state.path())?;
    let ssh_port = if args.ssh { Some(free_port()?) } else { None };
    let accel = Accel::detect();
    if accel == Accel::Tcg {
        eprintln!("note: KVM is not usable here; using TCG emulation (slower)");
    }
    let spec = QemuSpec {
        disk: disk.disk,
        disk_format: disk.format,
        memory_mb: args.memory,
        cpus: args.cpus,
        accel,
        ovmf_code: OVMF_CODE.into(),
        ovmf_vars: disk.vars,
        ignition,
        ssh_port,
        serial: Serial::Terminal,
        extra_disks: Vec::new(),
        direct_boot: None,
    };
    if let Some(port) = ssh_port {
        let target = SshTarget {
            user: "core".into(),
            port,
            key: args.ssh_identity.clone(),
        };
        eprintln!("SSH, once the VM is up: {}", target.login_command());
    }
    eprintln!("Console follows; Ctrl-a x stops the VM.");
    // A signal stops QEMU first; returning then drops the state directory.
    match keel_utils::cmd::run_inherit_stoppable(&mut spec.command(), Duration::from_secs(10)) {
        Ok(()) => Ok(()),
        Err(CmdError::Interrupted { signal, .. }) => bail!(
            "the VM was stopped: keel received signal {signal}; QEMU was shut down and the VM's \
             temporary files are removed"
        ),
        Err(e) => Err(e).context("QEMU ended with an error"),
    }
}

/// The Ignition file to hand to the VM, translating Butane when given.
fn config_file(args: &RunArgs, state: &Path) -> Result<Option<PathBuf>> {
    if let Some(ign) = &args.ignition {
        if !ign.is_file() {
            bail!("Ignition config {} does not exist", ign.display());
        }
        return Ok(Some(ign.clone()));
    }
    let Some(bu) = &args.butane else {
        return Ok(None);
    };
    let yaml = std::fs::read_to_string(bu)
        .with_context(|| format!("reading Butane config {}", bu.display()))?;
    let out = state.join("config.ign");
    let keel = std::env::current_exe().context("locating the keel binary")?;
    let files_dir = args
        .files_dir
        .clone()
        .or_else(|| bu.parent().map(|p| p.to_path_buf()))
        .filter(|p| !p.as_os_str().is_empty());
    Config::Butane { yaml, files_dir }.write_ignition(&out, &keel)?;
    Ok(Some(out))
}
