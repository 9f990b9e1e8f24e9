//! OSTree-compatible content store (see ARCHITECTURE.md).
//!
//! A [`Repo`] holds content-addressed objects in OSTree's on-disk format (modes bare,
//! bare-user, bare-user-only and archive); checksums are byte-identical to `ostree` 2022.7.

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
pub use txn::{Transaction, ARCHIVE_LEVEL};
