//! First-boot provisioning: Ignition configs fetched, rendered and applied by the initramfs
//! stages (`keel ignition stage …`) or into a mounted root (`keel ignition apply`).
//!
//! - [`stages`]: the stage model (fetch-offline, fetch, kargs, disks, mount, files, umount),
//!   config cache, neednet flag, state and result files.
//! - [`sources`], [`cmdline`], [`resource`], [`tftp`]: where configs come from and how
//!   resources are fetched, decompressed and verified.
//! - [`files`], [`units`], [`passwd`], [`rootfs`]: what the files stage writes into the root.
//! - [`disks`], [`mount`], [`crypttab`]: partitions, RAID, LUKS, filesystems, their mounts,
//!   and the LUKS entries of the root.
//! - [`firstboot`]: the first-boot marker; [`growfs`]: the first-boot step that grows the root
//!   partition and filesystem to the disk (`keel image growfs`, `keel-growfs.service`).

pub mod beneath;
pub mod cli;
pub mod cmdline;
pub mod crypttab;
pub mod disks;
pub mod error;
pub mod files;
pub mod firstboot;
pub mod growfs;
pub mod mount;
pub mod passwd;
pub mod resource;
pub mod rootfs;
pub mod sources;
pub mod stages;
pub mod tftp;
pub mod units;
