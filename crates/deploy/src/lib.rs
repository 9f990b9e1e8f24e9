//! Keel's node deployments, the offline engine (the `ostree admin` part): an OSTree-layout
//! sysroot, deployments checked out from `/ostree/repo`, BLS type 1 boot entries for
//! systemd-boot with boot counting, the three-way `/etc` merge, staging with finalization at
//! shutdown, rollback, retention, and `prepare-root` for the initramfs.
//!
//! Nothing here touches the network: fetching from remotes and the upgrade/deploy flows live in
//! `keel-update`, which drives this engine.
//!
//! # Public API (a contract: the image builder, `keel-update` and the update agent use it)
//!
//! ```text
//! Sysroot::init(path, stateroot)         lay out <path>/ostree/{repo (bare),deploy/<stateroot>/{deploy,var}},
//!                                        <path>/boot/loader/entries (the ESP is mounted at <path>/boot)
//! Sysroot::open(path, stateroot)         "/" on a booted system = physical root /sysroot + ESP /boot
//!   .with_booted(Some(name))             treat a deployment as booted (directory sysroots, tests)
//! sysroot.deploy(&commit, &DeployOptions { kargs, origin_refspec, stage, lock_finalization })
//!                                        -> Deployment; checkout + .origin; then staged, or /etc
//!                                        merge + kernel on the ESP + entry swap + cleanup
//! sysroot.finalize_staged()              -> Finalized::{NothingStaged, Locked, Done(Deployment)}
//! sysroot.status()                       -> Status (serde): deployments with role/version/origin/
//!                                        pin/boot counting, staged, rolled_back notice, failed commits
//! sysroot.rollback()                     previous (or booted) deployment becomes the default
//! sysroot.set_kargs(&[KargEdit]) / kargs()
//! sysroot.set_pinned(index, bool)
//! sysroot.cleanup()                      undeploy unlisted, prune the repo (refs only)
//! sysroot.classify_upgrade(commit, version) -> UpgradeCheck (deployed/staged, failed, available)
//! sysroot.origin_refspec()               what the merge deployment follows (`keel:<ref>`)
//! sysroot.record_summary(&seen), remote_summaries(now) -> Vec<Freshness> (keel status)
//! sysroot.set_finalization_locked(bool), staged(), failed_commits(), etc_diff(index)
//! sysroot.clear_firstboot()              drop ignition.firstboot from the entries (after provisioning)
//! prepare_root::{resolve, prepare_root}  the initramfs step
//! etcmerge::{diff, merge}                the /etc three-way merge on plain directories
//! ```
//!
//! # On-disk contract (ostree 2022.7 reads it; see ARCHITECTURE.md "Deployments and boot")
//! - `ostree/deploy/<stateroot>/deploy/<commit>.<serial>` (+ `.origin`), shared `.../var`.
//! - `ostree/boot.<B> -> boot.<B>.0`, `boot.<B>.0/<stateroot>/<bootcsum>/<n> -> ../../../deploy/...`.
//! - ESP: `loader/entries/ostree-<serial>-<stateroot>[+<left>[-<done>]].conf` (`version` =
//!   serial, `sort-key keel`), kernels at `ostree/<stateroot>-<bootcsum>/{vmlinuz,initramfs.img}`,
//!   `EFI/BOOT/BOOTX64.EFI`, `EFI/systemd/systemd-bootx64.efi`, `loader/loader.conf`.
//! - `<run>/staged-deployment` (JSON) and `<run>/staged-deployment-locked`; run = `/run/keel`.
//! - `ostree/deploy/<stateroot>/keel-failed.json`: commits whose boot tries ran out.
//! - `ostree/deploy/<stateroot>/keel-remote-summaries.json`: the last summary read per remote.
//!
//! Only one stateroot is managed per sysroot at a time; entries of other stateroots are left alone.

pub mod bls;
pub mod bootconfig;
pub mod bootfail;
mod error;
pub mod esp;
pub mod etcmerge;
pub mod health;
pub mod kargs;
mod ops;
pub mod origin;
pub mod prepare_root;
mod remote_summary;
pub mod space;
mod staging;
mod status;
mod sysroot;
pub mod tree;
mod upgrade;

pub use error::DeployError;
pub use kargs::KargEdit;
pub use keel_proto::freshness::{Freshness, State as FreshnessState, SummarySeen};
pub use ops::{CleanupReport, DeployOptions, DiscardedStaged, Finalized, FINALIZE_UNIT};
pub use remote_summary::SUMMARIES_FILE;
pub use staging::StagedRecord;
pub use status::{
    BootCounting, DeploymentStatus, FailedCommit, Role, RollbackNotice, Status, AGENT_STATE_FILE,
};
pub use sysroot::{Deployment, Sysroot, BOOT_TRIES, DEFAULT_STATEROOT};
pub use upgrade::UpgradeCheck;
