//! Committed insta snapshots that sit beside their test inputs (`DIR/NAME.snap`). A difference
//! is returned, after insta has printed it and written `NAME.snap.new`, instead of ending the
//! test, so that one run lists every difference. `INSTA_UPDATE=always` rewrites the snapshots
//! (then review the diff).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Compares `got` with the snapshot `dir/NAME.snap` of the test input `input`.
pub fn check(dir: &Path, input: &Path, name: &str, got: &str) -> Result<(), String> {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_input_file(input);
    settings.set_omit_expression(true);
    catch_unwind(AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!(name, got))
    }))
    .map_err(|_| format!("{} differs (diff above)", dir.join(name).display()))
}
