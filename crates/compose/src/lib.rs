//! Compose: a manifest of Debian packages becomes a versioned, reproducible OS commit.
//!
//! The pipeline ([`prepare`]): `mmdebstrap` installs the packages ([`mmdebstrap`], with a
//! package cache), compose adds overlays, the keel binary and its dracut module, os-release,
//! users and kernel arguments ([`tree`]), sets unit states and runs postprocess scripts in the
//! tree ([`chroot`]), moves the kernel and builds the initramfs ([`initramfs`]), removes what
//! makes builds differ ([`layout::clean`]), measures the tree by package ([`sizes`]), and gives
//! it the image layout ([`layout::apply`], [`tmpfiles`]). The result is committed to the store
//! with the version, stream, manifest checksum and package list as commit metadata.

pub mod chroot;
pub mod cli;
pub mod commit;
pub mod initramfs;
pub mod layout;
pub mod manifest;
pub mod mmdebstrap;
pub mod packages;
pub mod prepare;
pub mod sizes;
pub mod tmpfiles;
pub mod tree;
pub mod version;
