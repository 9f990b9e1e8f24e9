//! The QEMU command line for booting a Keel disk image under UEFI, and the accelerator probe.
//!
//! The machine is q35 with OVMF (read-only code + a per-VM writable copy of the variables), one
//! virtio disk, user-mode networking (optionally forwarding a loopback port to the guest's SSH),
//! the Ignition config in fw_cfg (`opt/com.coreos/config`, what the `qemu` platform reads) and
//! the first serial port either on the terminal or in a log file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The QEMU binary Keel runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// Debian's OVMF firmware code (4 MiB flash layout, package `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// The pristine OVMF variable store each VM gets a writable copy of.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// fw_cfg key under which the `qemu` Ignition platform finds its config.
pub const FW_CFG_IGNITION: &str = "opt/com.coreos/config";

/// How the guest's instructions run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// QEMU's software emulation (slow, works everywhere).
    Tcg,
}

impl Accel {
    /// `KEEL_ACCEL=kvm|tcg` forces a choice; otherwise KVM is used only when a guest actually
    /// runs under it here: OVMF is started with `-accel kvm -cpu host` and must write to its
    /// serial port within a few seconds. (Opening /dev/kvm is not enough: nested setups open it
    /// fine and then fail on the first guest instruction or MSR write.)
    pub fn detect() -> Accel {
        match std::env::var("KEEL_ACCEL").as_deref() {
            Ok("kvm") => return Accel::Kvm,
            Ok("tcg") => return Accel::Tcg,
            _ => {}
        }
        if !Path::new("/dev/kvm").exists() {
            return Accel::Tcg;
        }
        match probe_kvm(Duration::from_secs(8)) {
            Ok(()) => Accel::Kvm,
            Err(why) => {
                tracing::info!("KVM is not usable here ({why}); using TCG");
                Accel::Tcg
            }
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Where the guest's first serial port goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serial {
    /// The terminal, multiplexed with the QEMU monitor (Ctrl-a x quits, Ctrl-a c the monitor).
    Terminal,
    /// Appended to a log file (the test harness reads it).
    File(PathBuf),
}

/// Everything that decides the QEMU command line.
#[derive(Clone, Debug)]
pub struct QemuSpec {
    /// The disk (qcow2 overlay or the image itself with `--persist`).
    pub disk: PathBuf,
    /// Format of `disk` (`qcow2` or `raw`).
    pub disk_format: String,
    /// Guest memory in MiB.
    pub memory_mb: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// KVM or TCG.
    pub accel: Accel,
    /// Firmware code (read-only).
    pub ovmf_code: PathBuf,
    /// This VM's writable copy of the firmware variables.
    pub ovmf_vars: PathBuf,
    /// Ignition config passed through fw_cfg.
    pub ignition: Option<PathBuf>,
    /// Loopback port forwarded to the guest's port 22.
    pub ssh_port: Option<u16>,
    /// Serial console destination.
    pub serial: Serial,
    /// Further raw disks after the boot disk; the n-th (from 1) has the serial `keel-disk-<n>`,
    /// so the guest finds it at [`extra_disk_by_id`]`(n)`.
    pub extra_disks: Vec<PathBuf>,
    /// Boot this kernel directly (SeaBIOS, no OVMF, no boot loader): for tests of a guest
    /// kernel's filesystems rather than of the boot path.
    pub direct_boot: Option<DirectBoot>,
}

/// A kernel, initramfs and command line for [`QemuSpec::direct_boot`].
#[derive(Clone, Debug)]
pub struct DirectBoot {
    /// The kernel image (bzImage).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel command line.
    pub append: String,
}

/// The stable guest path of the n-th (from 1) extra disk of a [`QemuSpec`].
pub fn extra_disk_by_id(n: usize) -> String {
    format!("/dev/disk/by-id/virtio-keel-disk-{n}")
}

impl QemuSpec {
    /// The arguments after the program name.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(OsString::from(s));
        push("-machine");
        push(&format!("q35,accel={}", self.accel.arg()));
        if self.accel == Accel::Kvm {
            push("-cpu");
            push("host");
        }
        push("-m");
        push(&self.memory_mb.to_string());
        push("-smp");
        push(&self.cpus.to_string());
        push("-nodefaults");
        push("-display");
        push("none");
        if let Some(d) = &self.direct_boot {
            push("-kernel");
            a.push(d.kernel.clone().into_os_string());
            let mut push = |s: &str| a.push(OsString::from(s));
            push("-initrd");
            a.push(d.initrd.clone().into_os_string());
            a.push("-append".into());
            a.push(d.append.clone().into());
        } else {
            push("-drive");
            push(&format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                escape_opt(&self.ovmf_code)
            ));
            push("-drive");
            push(&format!(
                "if=pflash,format=raw,unit=1,file={}",
                escape_opt(&self.ovmf_vars)
            ));
        }
        let mut push = |s: &str| a.push(OsString::from(s));
        push("-drive");
        push(&format!(
            "if=virtio,format={},discard=unmap,file={}",
            self.disk_format,
            escape_opt(&self.disk)
        ));
        for (i, d) in self.extra_disks.iter().enumerate() {
            let n = i + 1;
            push("-drive");
            push(&format!(
                "if=none,id=disk{n},format=raw,discard=unmap,file={}",
                escape_opt(d)
            ));
            push("-device");
            push(&format!(
                "virtio-blk-pci,drive=disk{n},serial=keel-disk-{n}"
            ));
        }
        push("-netdev");
        push(&match self.ssh_port {
            Some(port) => format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22"),
            None => "user,id=net0".to_string(),
        });
        push("-device");
        push("virtio-net-pci,netdev=net0");
        push("-device");
        push("virtio-rng-pci");
        if let Some(cfg) = &self.ignition {
            push("-fw_cfg");
            push(&format!("name={FW_CFG_IGNITION},file={}", escape_opt(cfg)));
        }
        match &self.serial {
            Serial::Terminal => {
                push("-serial");
                push("mon:stdio");
            }
            Serial::File(log) => {
                push("-chardev");
                push(&format!(
                    "file,id=serial0,path={},append=on",
                    escape_opt(log)
                ));
                push("-serial");
                push("chardev:serial0");
            }
        }
        a
    }

    /// The full command, ready to spawn.
    pub fn command(&self) -> Command {
        let mut c = Command::new(QEMU);
        c.args(self.args());
        c
    }
}

/// Boot OVMF (no disk) under KVM and wait for firmware output on the serial port.
// The VM harness owns QEMU as a long-running child it watches and kills; the command
// helper runs tools to completion.
#[allow(clippy::disallowed_methods)]
fn probe_kvm(timeout: Duration) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let vars = dir.path().join("vars.fd");
    std::fs::copy(OVMF_VARS, &vars).map_err(|e| format!("{OVMF_VARS}: {e}"))?;
    let log = dir.path().join("serial.log");
    let errlog = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&errlog).map_err(|e| e.to_string())?;
    let mut child = Command::new(QEMU)
        .args([
            "-machine",
            "q35,accel=kvm",
            "-cpu",
            "host",
            "-m",
            "256",
            "-nodefaults",
        ])
        .args(["-display", "none", "-drive"])
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            escape_opt(Path::new(OVMF_CODE))
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            escape_opt(&vars)
        ))
        .arg("-chardev")
        .arg(format!("file,id=s0,path={}", escape_opt(&log)))
        .args(["-serial", "chardev:s0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("starting {QEMU}: {e}"))?;
    let start = Instant::now();
    let verdict = loop {
        if std::fs::metadata(&log)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
        {
            break Ok(());
        }
        let err = std::fs::read_to_string(&errlog).unwrap_or_default();
        if err.contains("error") || !matches!(child.try_wait(), Ok(None)) {
            break Err(err
                .lines()
                .find(|l| l.contains("error"))
                .unwrap_or("qemu exited")
                .to_string());
        }
        if start.elapsed() >= timeout {
            break Err(format!("no firmware output within {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    verdict
}

/// QEMU option values are comma-separated; a literal comma in a path is written twice.
pub(crate) fn escape_opt(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> QemuSpec {
        QemuSpec {
            disk: "/vm/overlay.qcow2".into(),
            disk_format: "qcow2".into(),
            memory_mb: 2048,
            cpus: 2,
            accel: Accel::Kvm,
            ovmf_code: OVMF_CODE.into(),
            ovmf_vars: "/vm/vars.fd".into(),
            ignition: None,
            ssh_port: None,
            serial: Serial::Terminal,
            extra_disks: Vec::new(),
            direct_boot: None,
        }
    }

    fn line(s: &QemuSpec) -> String {
        s.args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn command_lines() {
        let base = spec();
        let mut tcg = spec();
        tcg.accel = Accel::Tcg;
        let mut full = spec();
        full.ignition = Some("/vm/config.ign".into());
        full.ssh_port = Some(2222);
        full.serial = Serial::File("/vm/console.log".into());
        full.extra_disks = vec!["/vm/disk-1.raw".into(), "/vm/disk-2.raw".into()];
        let mut comma = spec();
        comma.disk = "/odd,dir/disk.raw".into();
        comma.disk_format = "raw".into();
        let cases: Vec<(&QemuSpec, Vec<&str>, Vec<&str>)> = vec![
            (
                &base,
                vec![
                    "-machine q35,accel=kvm -cpu host -m 2048 -smp 2",
                    "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
                    "-drive if=pflash,format=raw,unit=1,file=/vm/vars.fd",
                    "-drive if=virtio,format=qcow2,discard=unmap,file=/vm/overlay.qcow2",
                    "-netdev user,id=net0 -device virtio-net-pci,netdev=net0",
                    "-serial mon:stdio",
                ],
                vec!["-fw_cfg", "hostfwd", "chardev", "if=none"],
            ),
            (&tcg, vec!["-machine q35,accel=tcg -m 2048"], vec!["-cpu host"]),
            (
                &full,
                vec![
                    "-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
                    "-fw_cfg name=opt/com.coreos/config,file=/vm/config.ign",
                    "-chardev file,id=serial0,path=/vm/console.log,append=on -serial chardev:serial0",
                    "-drive if=none,id=disk1,format=raw,discard=unmap,file=/vm/disk-1.raw -device virtio-blk-pci,drive=disk1,serial=keel-disk-1",
                    "-drive if=none,id=disk2,format=raw,discard=unmap,file=/vm/disk-2.raw -device virtio-blk-pci,drive=disk2,serial=keel-disk-2",
                ],
                vec!["mon:stdio"],
            ),
            (&comma, vec!["format=raw,discard=unmap,file=/odd,,dir/disk.raw"], vec![]),
        ];
        for (s, want, not) in cases {
            let l = line(s);
            for w in want {
                assert!(l.contains(w), "missing {w:?} in {l}");
            }
            for n in not {
                assert!(!l.contains(n), "unexpected {n:?} in {l}");
            }
        }
    }

    #[test]
    fn accel_probe_answers_in_time() {
        if !keel_utils::cmd::have(QEMU) || !Path::new(OVMF_VARS).is_file() {
            keel_testsupport::skip("accel_probe_answers_in_time: needs qemu-system-x86 and ovmf");
            return;
        }
        let start = Instant::now();
        let a = Accel::detect();
        eprintln!("accelerator here: {a:?} (probe took {:?})", start.elapsed());
        assert!(start.elapsed() < Duration::from_secs(15));
    }
}
