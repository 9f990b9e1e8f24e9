//! Keel's VM runner and VM test harness.
//!
//! - [`qemu`]: the QEMU command line (q35, OVMF, virtio disk, user networking with an SSH port
//!   forward, Ignition in fw_cfg, serial console) and the KVM probe.
//! - [`drive`]: a VM's writable firmware variables and the qcow2 overlay that keeps images
//!   pristine.
//! - [`console`]: the serial console log and waiting for a line in it.
//! - [`ssh`]: per-run SSH keys and commands over the forwarded port.
//! - [`oci`]: OCI image archives built on the host (busybox) for container tests.
//! - [`cpio`]: newc archives (initramfs additions and the power-cut soak's small initramfs).
//! - [`machine`]: a running VM (QEMU child process, killed on drop).
//! - [`node`]: a booted node over SSH: `keel status`, settling after first boot, reboots.
//! - [`release`]: update tests' releases: derive a commit on the host, serve it on loopback.
//! - [`harness`]: kola-style tests: config, boots, checks, time to ready, report.
//! - [`testmain`]: the one entry point of every VM test file (skips, selection, report, keep).
//! - [`cli`]: `keel run`.
//! - [`baseline`]: the boot benchmark's baseline disk (the same tree booted the plain way).

pub mod baseline;
pub mod cli;
pub mod console;
pub mod cpio;
pub mod drive;
pub mod harness;
pub mod machine;
pub mod node;
pub mod oci;
pub mod qemu;
pub mod release;
pub mod ssh;
pub mod testmain;
