//! OSTree-compatible content store (see ARCHITECTURE.md).
//!
//! A [`Repo`] holds content-addressed objects in OSTree's on-disk format (modes bare,
//! bare-user, bare-user-only and archive); checksums are byte-identical to `ostree` 2022.7, and
//! `ostree` reads and verifies these repositories (and the other way round).
//!
//! - Writing: [`Repo::commit_dir`] scans, hashes and compresses a tree on a worker pool and
//!   writes only missing objects; lower-level writers (pull) use a [`Transaction`]
//!   ([`Repo::begin`], [`Transaction::write_metadata`], [`Transaction::write_content`],
//!   [`Transaction::commit`]): objects go to `tmp/staging-*`, one `syncfs`, then renames into
//!   `objects/`. Refs move last, atomically ([`Repo::set_ref`]).
//! - Reading: [`Repo::resolve_rev`], [`Repo::read_commit`], [`Repo::read_dirtree`],
//!   [`Repo::open_content`], [`Repo::walk_tree`], [`Repo::diff`], [`Repo::checkout`].
//! - Maintenance: [`Repo::fsck`], [`Repo::prune`], [`Repo::reachable_objects`].
//!
//! Commit metadata (`a{sv}`) is written in the caller's order; `ostree commit` writes its
//! `--add-metadata-string` keys in argument order followed by `ostree.ref-binding`, which
//! [`CommitOptions`] reproduces (checked with 1–4 custom keys and `version`). Archive objects are
//! deflated at level [`ARCHIVE_LEVEL`] (any level is valid for readers). The repository lock is
//! `flock` on `.lock`: it orders keel processes; ostree 2022.7 uses OFD locks on the same file,
//! which do not interact with `flock`.

mod checkout;
pub mod checksum;
pub mod cli;
mod commit;
mod deflate;
mod diff;
mod error;
mod fsck;
pub mod gvariant;
mod ls;
pub mod objects;
mod prune;
mod read;
mod refs;
mod repo;
mod treepath;
mod txn;
mod xattrs;

pub use checkout::CheckoutOptions;
pub use checksum::Checksum;
pub use commit::{CommitOptions, ParentSpec};
pub use diff::{DiffEntry, DiffKind};
pub use error::StoreError;
pub use fsck::{FsckError, FsckReport};
pub use gvariant::Variant;
pub use ls::{EntryKind, TreeEntry};
pub use objects::{Commit, DirMeta, DirTree, FileHeader, ObjectType};
pub use prune::{PruneOptions, PruneReport};
pub use read::{split_archive_object, ContentReader};
pub use refs::valid_ref_name;
pub use repo::{Repo, RepoLock, RepoMode};
pub use treepath::TreeNode;
pub use txn::{Transaction, ARCHIVE_LEVEL};
