//! The health checks' records: each check's result (`keel health check --json`) and the last
//! failed run (`/var/lib/keel/health-failure.json`, see [`crate::node::HEALTH_FAILURE_RECORD`]),
//! which `keel status` on the deployment booted after a rollback reads to say why.

use serde::{Deserialize, Serialize};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckResult {
    /// Check name (built-in name or script file name).
    pub name: String,
    /// Passed?
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// The last failed run of the checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFailure {
    /// The deployment (`<commit>.<serial>`) that was booted.
    pub deployment: Option<String>,
    /// The checks that failed.
    pub failed: Vec<CheckResult>,
}

impl HealthFailure {
    /// One line: `name: detail; name: detail`.
    pub fn summary(&self) -> String {
        self.failed
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `keel health check --json`: every check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Report {
    /// Every check passed.
    pub ok: bool,
    /// The checks in the order they ran.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// The report of `checks`.
    pub fn new(checks: &[CheckResult]) -> Report {
        Report {
            ok: checks.iter().all(|c| c.ok),
            checks: checks.to_vec(),
        }
    }
}
