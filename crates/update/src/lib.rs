//! Keel node updates: what needs the network, on top of the offline deployment engine
//! (`keel-deploy`). The CLI's node commands and the update agent call this crate.
//!
//! # Public API
//!
//! ```text
//! fetch::pull_origin(&sysroot, target, &Policy, &Progress) -> Fetched { remote, ref_name,
//!                                        commit, version, bytes, objects, elapsed, summary };
//!                                        target is `REMOTE:REF`, a ref or a commit checksum
//!                                        (from the origin's remote); signatures checked as the
//!                                        remote requires; nothing older than the ref's commit
//!                                        or Policy.baseline unless Policy.allow_downgrade; on
//!                                        error no ref moves (UpdateError::Pull)
//! fetch::check_origin(&sysroot, refspec, &Policy) -> RemoteCommit { remote, commit, version,
//!                                        bytes, summary } (the commit object only, not stored)
//! fetch::origin_summary(&sysroot)        -> Option<SummarySeen> (summary only; recorded)
//! fetch::find_version(&sysroot, refspec, version, max) -> Option<Checksum>
//! fetch::find_remote(&sysroot, name)     [remote "NAME"] from ostree/repo/config, then
//!                                        /etc/ostree/remotes.d/*.conf -> (Remote, file)
//! flows::upgrade(&sysroot, &UpgradeHow, Mode) -> Outcome   `keel upgrade [--check]`
//! flows::deploy_rev(&sysroot, rev, kargs, allow_downgrade, Mode) -> Outcome   `keel deploy`
//! cli::{NodeCommand, run}                the node commands (status, upgrade, deploy, ...)
//! ```
//!
//! Every summary a fetch reads is recorded in the sysroot (`Sysroot::record_summary`), so that
//! `keel status` can say offline how old it was.

pub mod cli;
mod error;
pub mod fetch;
pub mod flows;
mod kargs_cli;

pub use error::{PullFailure, UpdateError};
pub use keel_remote::freshness;
