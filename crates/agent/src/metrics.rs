//! Prometheus text metrics on a local Unix socket (`/run/keel/agent/metrics.sock`, like
//! Zincati's `metrics.promsock`): every connection gets the current text and is closed.
//! Read it with `socat - UNIX-CONNECT:/run/keel/agent/metrics.sock` or `keel agent metrics`.

use crate::state::Phase;
use keel_utils::prometheus::{Exposition, Kind};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The socket, relative to the root.
pub const SOCKET: &str = keel_proto::node::AGENT_METRICS_SOCKET;

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

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        use Kind::{Counter, Gauge};
        let mut o = Exposition::new();
        let b = |x: bool| u8::from(x);
        o.single(
            "keel_agent_updates_enabled",
            Gauge,
            "Whether automatic updates are enabled.",
            b(self.updates_enabled),
        );
        o.family(
            "keel_agent_strategy",
            Gauge,
            "The finalization strategy (label).",
        )
        .sample("keel_agent_strategy", &[("strategy", &self.strategy)], 1);
        o.family(
            "keel_agent_state",
            Gauge,
            "1 for the agent's current state.",
        );
        for p in Phase::ALL {
            o.sample(
                "keel_agent_state",
                &[("state", p.name())],
                b(self.phase == Some(p)),
            );
        }
        o.single(
            "keel_agent_last_poll_timestamp",
            Gauge,
            "UNIX time of the last successful graph poll.",
            self.last_poll_timestamp,
        );
        o.single(
            "keel_agent_last_state_change_timestamp",
            Gauge,
            "UNIX time of the last state change.",
            self.last_state_change_timestamp,
        );
        o.single(
            "keel_agent_update_checks_total",
            Counter,
            "Graph polls.",
            self.update_checks_total,
        );
        o.family(
            "keel_agent_update_check_errors_total",
            Counter,
            "Failed graph polls by kind.",
        );
        for (k, v) in &self.update_check_errors_total {
            o.sample("keel_agent_update_check_errors_total", &[("kind", k)], v);
        }
        o.single(
            "keel_agent_update_available",
            Gauge,
            "A newer release is reachable from the booted one.",
            b(self.update_available),
        );
        o.single(
            "keel_agent_booted_release_is_deadend",
            Gauge,
            "The booted release is a dead-end.",
            b(self.booted_release_is_deadend),
        );
        o.single(
            "keel_agent_ignored_failed_targets",
            Gauge,
            "Reachable releases skipped because they failed to boot before.",
            self.ignored_failed_targets,
        );
        o.single(
            "keel_agent_deploy_attempts_total",
            Counter,
            "Attempts to stage a release.",
            self.deploy_attempts_total,
        );
        o.single(
            "keel_agent_deploy_failures_total",
            Counter,
            "Failed attempts to stage a release.",
            self.deploy_failures_total,
        );
        o.family(
            "keel_agent_lock_requests_total",
            Counter,
            "FleetLock requests by API.",
        );
        for (k, v) in &self.lock_requests_total {
            o.sample("keel_agent_lock_requests_total", &[("api", k)], v);
        }
        o.family(
            "keel_agent_lock_errors_total",
            Counter,
            "FleetLock failures by API and kind.",
        );
        for ((a, k), v) in &self.lock_errors_total {
            o.sample(
                "keel_agent_lock_errors_total",
                &[("api", a), ("kind", k)],
                v,
            );
        }
        o.single(
            "keel_agent_postponed_finalizations_total",
            Counter,
            "Reboots postponed for interactive sessions.",
            self.postponed_finalizations_total,
        );
        o.single(
            "keel_agent_finalizations_total",
            Counter,
            "Finalizations (unlock and reboot) started.",
            self.finalizations_total,
        );
        o.into_string()
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

    /// Label values were written unescaped; an error kind with a quote or a line feed broke
    /// the exposition.
    #[test]
    fn label_values_are_escaped() {
        let mut m = Metrics::default();
        m.update_check_errors_total
            .insert("bad \"kind\"\n".into(), 1);
        let text = m.render();
        assert!(
            text.contains("keel_agent_update_check_errors_total{kind=\"bad \\\"kind\\\"\\n\"} 1\n"),
            "{text}"
        );
    }
}
