//! Prometheus text metrics on a local Unix socket (`/run/keel/agent/metrics.sock`, like
//! Zincati's `metrics.promsock`): every connection gets the current text and is closed.
//! Read it with `socat - UNIX-CONNECT:/run/keel/agent/metrics.sock` or `keel agent metrics`.

use crate::state::Phase;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The socket, relative to the root.
pub const SOCKET: &str = "run/keel/agent/metrics.sock";

/// Counters and gauges.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// 1 when updates are enabled.
    pub updates_enabled: bool,
    /// The strategy name.
    pub strategy: String,
    /// Current phase.
    pub phase: Option<Phase>,
    /// UNIX time of the last successful poll.
    pub last_poll_timestamp: i64,
    /// UNIX time of the last phase change.
    pub last_state_change_timestamp: i64,
    /// Polls.
    pub update_checks_total: u64,
    /// Failed polls by error kind.
    pub update_check_errors_total: BTreeMap<String, u64>,
    /// A newer release is reachable.
    pub update_available: bool,
    /// The booted release is a dead-end.
    pub booted_release_is_deadend: bool,
    /// Reachable releases skipped because they failed before.
    pub ignored_failed_targets: u64,
    /// Stage attempts and failures.
    pub deploy_attempts_total: u64,
    /// Failed stage attempts.
    pub deploy_failures_total: u64,
    /// FleetLock requests by API (`pre-reboot`, `steady-state`).
    pub lock_requests_total: BTreeMap<String, u64>,
    /// FleetLock failures by API and error kind.
    pub lock_errors_total: BTreeMap<(String, String), u64>,
    /// Times finalization was postponed for interactive sessions.
    pub postponed_finalizations_total: u64,
    /// Finalizations (unlock + reboot) started.
    pub finalizations_total: u64,
}

fn line(out: &mut String, name: &str, help: &str, kind: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn one(v: impl ToString) -> Vec<(String, String)> {
    vec![(String::new(), v.to_string())]
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let b = |x: bool| u8::from(x);
        line(
            &mut o,
            "keel_agent_updates_enabled",
            "Whether automatic updates are enabled.",
            "gauge",
            &one(b(self.updates_enabled)),
        );
        line(
            &mut o,
            "keel_agent_strategy",
            "The finalization strategy (label).",
            "gauge",
            &[(format!("{{strategy=\"{}\"}}", self.strategy), "1".into())],
        );
        let states: Vec<(String, String)> = Phase::ALL
            .iter()
            .map(|p| {
                (
                    format!("{{state=\"{}\"}}", p.name()),
                    b(self.phase == Some(*p)).to_string(),
                )
            })
            .collect();
        line(
            &mut o,
            "keel_agent_state",
            "1 for the agent's current state.",
            "gauge",
            &states,
        );
        line(
            &mut o,
            "keel_agent_last_poll_timestamp",
            "UNIX time of the last successful graph poll.",
            "gauge",
            &one(self.last_poll_timestamp),
        );
        line(
            &mut o,
            "keel_agent_last_state_change_timestamp",
            "UNIX time of the last state change.",
            "gauge",
            &one(self.last_state_change_timestamp),
        );
        line(
            &mut o,
            "keel_agent_update_checks_total",
            "Graph polls.",
            "counter",
            &one(self.update_checks_total),
        );
        let errs: Vec<(String, String)> = self
            .update_check_errors_total
            .iter()
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), v.to_string()))
            .collect();
        line(
            &mut o,
            "keel_agent_update_check_errors_total",
            "Failed graph polls by kind.",
            "counter",
            &errs,
        );
        line(
            &mut o,
            "keel_agent_update_available",
            "A newer release is reachable from the booted one.",
            "gauge",
            &one(b(self.update_available)),
        );
        line(
            &mut o,
            "keel_agent_booted_release_is_deadend",
            "The booted release is a dead-end.",
            "gauge",
            &one(b(self.booted_release_is_deadend)),
        );
        line(
            &mut o,
            "keel_agent_ignored_failed_targets",
            "Reachable releases skipped because they failed to boot before.",
            "gauge",
            &one(self.ignored_failed_targets),
        );
        line(
            &mut o,
            "keel_agent_deploy_attempts_total",
            "Attempts to stage a release.",
            "counter",
            &one(self.deploy_attempts_total),
        );
        line(
            &mut o,
            "keel_agent_deploy_failures_total",
            "Failed attempts to stage a release.",
            "counter",
            &one(self.deploy_failures_total),
        );
        let reqs: Vec<(String, String)> = self
            .lock_requests_total
            .iter()
            .map(|(k, v)| (format!("{{api=\"{k}\"}}"), v.to_string()))
            .collect();
        line(
            &mut o,
            "keel_agent_lock_requests_total",
            "FleetLock requests by API.",
            "counter",
            &reqs,
        );
        let lerrs: Vec<(String, String)> = self
            .lock_errors_total
            .iter()
            .map(|((a, k), v)| (format!("{{api=\"{a}\",kind=\"{k}\"}}"), v.to_string()))
            .collect();
        line(
            &mut o,
            "keel_agent_lock_errors_total",
            "FleetLock failures by API and kind.",
            "counter",
            &lerrs,
        );
        line(
            &mut o,
            "keel_agent_postponed_finalizations_total",
            "Reboots postponed for interactive sessions.",
            "counter",
            &one(self.postponed_finalizations_total),
        );
        line(
            &mut o,
            "keel_agent_finalizations_total",
            "Finalizations (unlock and reboot) started.",
            "counter",
            &one(self.finalizations_total),
        );
        o
    }
}

/// Serve `metrics` on the socket `path` from a background thread (a stale socket is replaced).
pub fn serve(path: &Path, metrics: Arc<Mutex<Metrics>>) -> io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let text = metrics.lock().map(|m| m.render()).unwrap_or_default();
            if let Err(e) = conn.write_all(text.as_bytes()) {
                tracing::debug!("metrics client went away: {e}");
            }
        }
    });
    Ok(())
}

/// Read the metrics text from the socket.
pub fn scrape(path: &Path) -> io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_on_a_unix_socket() {
        let t = tempfile::tempdir().unwrap();
        let sock = t.path().join(SOCKET);
        let m = Arc::new(Mutex::new(Metrics {
            strategy: "fleet_lock".into(),
            phase: Some(Phase::Staged),
            last_poll_timestamp: 1_790_000_000,
            ..Default::default()
        }));
        m.lock()
            .unwrap()
            .lock_errors_total
            .insert(("pre-reboot".into(), "slots_full".into()), 2);
        serve(&sock, m.clone()).unwrap();
        let text = scrape(&sock).unwrap();
        for want in [
            "keel_agent_last_poll_timestamp 1790000000\n",
            "keel_agent_state{state=\"staged\"} 1\n",
            "keel_agent_state{state=\"polling\"} 0\n",
            "keel_agent_strategy{strategy=\"fleet_lock\"} 1\n",
            "keel_agent_lock_errors_total{api=\"pre-reboot\",kind=\"slots_full\"} 2\n",
            "# TYPE keel_agent_update_checks_total counter\n",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        m.lock().unwrap().update_checks_total = 5;
        assert!(scrape(&sock)
            .unwrap()
            .contains("keel_agent_update_checks_total 5\n"));
    }
}
