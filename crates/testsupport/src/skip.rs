//! Skipping a test visibly and countably: [`skip`] records `<test>: <reason>` in the skip
//! log that `scripts/test.sh` reads (see [`keel_utils::skip_log`]); [`require`] checks the
//! usual preconditions (root, tools on PATH) and skips when one is missing.

/// Reports that a test, or part of it, did not run (`<test>: <reason>`, with the package or
/// setting that would make it run). Panics when the skip log cannot be written, so a skip
/// never goes unrecorded.
pub fn skip(what: &str) {
    if let Err(e) = keel_utils::skip_log::record(what) {
        panic!(
            "cannot record the skip `{what}` in ${}: {e}",
            keel_utils::skip_log::SKIP_LOG_ENV
        );
    }
}

/// True when running as root and every program in `tools` is on PATH; otherwise reports
/// `SKIP: <test>: <reason>` and returns false.
pub fn require(test: &str, tools: &[&str]) -> bool {
    if !super::is_root() {
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
