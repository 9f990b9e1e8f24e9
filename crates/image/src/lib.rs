//! Keel's disk images: a GPT disk with an EFI system partition and a root filesystem holding an
//! OSTree-style sysroot.
//!
//! - [`layout`]: the partition table and filesystem labels (the fixed design).
//! - [`loopdev`]: loop devices and mounts as guards that undo themselves.
//! - [`esp`]: the FAT EFI system partition, written with mtools (no vfat mount needed).
//! - [`assemble`]: the disk pipeline: file, GPT, root filesystem, caller's content, ESP.
//! - [`output`]: qcow2 / raw / raw.xz, written crash-safely.
//! - [`sysroot`]: the root filesystem's content: pulled commit, one deployment, kargs.
//! - [`build`] and [`cli`]: `keel image build`.

pub mod assemble;
pub mod build;
pub mod cli;
pub mod esp;
pub use keel_proto::disk as layout;
pub mod loopdev;
pub mod output;
pub mod sysroot;
