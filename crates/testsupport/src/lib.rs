//! Test-only helpers shared by Keel's store tests (a dev-dependency; never shipped):
//! a deterministic generator of "tricky" file trees, a tree comparator that reports the first
//! differences by path, and thin drivers for the `ostree` and `keel repo` command lines.

pub mod attack;
pub mod checkouts;
pub mod compare;
pub mod gen;
pub mod http;
pub mod process;
pub mod rng;
pub mod snapshot;
pub mod tools;
pub mod xattr;

/// True when the process runs as root (the store tests need it for ownership and device nodes).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Print a visible `SKIP: <reason>` line to stderr (tests then return early).
pub fn skip(reason: &str) {
    eprintln!("SKIP: {reason}");
}

/// True when running as root and every program in `tools` is on PATH; otherwise prints
/// `SKIP: <test>: <reason>` and returns false.
pub fn require(test: &str, tools: &[&str]) -> bool {
    if !is_root() {
        skip(&format!(
            "{test}: needs root (ownership, set-id bits, device nodes)"
        ));
        return false;
    }
    if let Some(missing) = tools.iter().find(|t| !keel_utils::cmd::have(t)) {
        skip(&format!(
            "{test}: `{missing}` is not installed (apt-get install {})",
            keel_utils::cmd::package_for(missing)
        ));
        return false;
    }
    true
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
