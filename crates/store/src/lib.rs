//! OSTree-compatible content store (see ARCHITECTURE.md).

pub mod checksum;
pub mod cli;
pub mod gvariant;
pub mod objects;

pub use checksum::Checksum;
pub use gvariant::Variant;
pub use objects::{Commit, DirMeta, DirTree, FileHeader, ObjectType};
