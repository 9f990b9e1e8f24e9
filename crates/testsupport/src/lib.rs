//! Test-only helpers shared by Keel's store tests (a dev-dependency; never shipped):
//! a deterministic generator of "tricky" file trees, a tree comparator that reports the first
//! differences by path, and thin drivers for the `ostree` and `keel repo` command lines.

// Test support drives tools and servers as child processes and asserts on their raw exit
// status and output (a failure is the expected result in many tests), which the command
// helper turns into errors.
#![allow(clippy::disallowed_methods)]

pub mod attack;
pub mod checkouts;
pub mod compare;
pub mod gen;
pub mod http;
pub mod process;
pub mod rng;
pub mod schema;
pub mod skip;
pub mod snapshot;
pub mod tls;
pub mod tools;
pub mod xattr;

pub use skip::{require, skip};

/// True when the process runs as root (the store tests need it for ownership and device nodes).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Scratch directory for generated trees and repos: under `/var/tmp` (a real disk filesystem
/// with user xattrs, unlike tmpfs) unless `KEEL_TEST_SCRATCH` names another; removed on drop.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let base = std::env::var_os("KEEL_TEST_SCRATCH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("/var/tmp"));
    tempfile::Builder::new()
        .prefix(&format!("keel-{prefix}-"))
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("cannot create a scratch dir under {}: {e}", base.display()))
}
