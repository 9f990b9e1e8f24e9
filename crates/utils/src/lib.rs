//! Shared helpers used by every Keel crate.
//!
//! - [`cmd`]: the one way Keel runs a system tool (mkfs, mmdebstrap, qemu-img, …): stderr is
//!   captured and put into the error, together with the command line.
//! - [`fsutil`]: crash-safe file replacement (temp file, fsync, rename, fsync of the directory).
//! - [`fatfile`]: the same for vfat (the EFI system partition), where `chmod` fails.
//! - [`progress`]: progress reporting for long work: a bar on a terminal, plain lines otherwise,
//!   JSON lines with `--json`.
//! - [`logging`]: `tracing` initialisation shared by the binary.
//! - [`skip_log`]: skipped tests, recorded where `scripts/test.sh` counts them.
//! - [`keyfile`]: GLib key files (OSTree repo and remote config, origin files), read as GLib does.
//! - [`cmdline`]: kernel command lines split as the kernel does (quotes, `--`).
//! - [`partitions`]: partition tables, read with `sfdisk --json`.
//! - [`prometheus`]: the Prometheus text exposition with escaped label values.

pub mod cmd;
pub mod cmdline;
pub mod fatfile;
pub mod fsutil;
pub mod keyfile;
pub mod logging;
pub mod partitions;
pub mod progress;
pub mod prometheus;
pub mod skip_log;
