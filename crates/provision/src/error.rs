//! Stage failures: one message naming the config path, the operation and the cause, printed to
//! stderr (journald captures the stage unit's stderr) and to the kernel log (`/dev/kmsg`, so it
//! reaches the console even before journald runs).

use std::fmt;
use std::io::Write;
use std::path::Path;

/// An operation on one config entry that failed.
#[derive(Debug)]
pub struct OpError {
    /// JSON path of the entry, e.g. `$.storage.files.3`.
    pub path: String,
    /// What was being done, e.g. `writing file "/etc/hostname"`.
    pub op: String,
    pub cause: anyhow::Error,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {:#}", self.path, self.op, self.cause)
    }
}

impl std::error::Error for OpError {}

/// Builds an [`OpError`] from a result, for `?` in the stage code.
pub trait AtPath<T> {
    fn at(self, path: impl Into<String>, op: impl Into<String>) -> Result<T, OpError>;
}

impl<T, E: Into<anyhow::Error>> AtPath<T> for Result<T, E> {
    fn at(self, path: impl Into<String>, op: impl Into<String>) -> Result<T, OpError> {
        self.map_err(|e| OpError {
            path: path.into(),
            op: op.into(),
            cause: e.into(),
        })
    }
}

/// Copies a stage failure into the kernel log (`kmsg`, when it exists) so it reaches the
/// console before journald runs; the same message goes to stderr from `keel`'s error exit.
pub fn report_failure(err: &anyhow::Error, kmsg: &Path) {
    if !kmsg.exists() {
        return;
    }
    // <3> = error priority; one write is one log record.
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(kmsg) {
        let _ = f.write_all(format!("<3>keel ignition: {err:#}\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_path_op_and_cause() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk full"));
        let e = r
            .at("$.storage.files.3", "writing file \"/etc/x\"")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "$.storage.files.3: writing file \"/etc/x\": disk full"
        );
    }

    #[test]
    fn failure_goes_to_kmsg_file() {
        let d = tempfile::tempdir().unwrap();
        let kmsg = d.path().join("kmsg");
        std::fs::write(&kmsg, "").unwrap();
        report_failure(
            &anyhow::anyhow!("boom").context("stage files failed"),
            &kmsg,
        );
        assert_eq!(
            std::fs::read_to_string(&kmsg).unwrap(),
            "<3>keel ignition: stage files failed: boom\n"
        );
    }
}
