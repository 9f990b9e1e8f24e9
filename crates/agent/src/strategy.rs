//! When a staged update may be finalized: `immediate` always; `periodic` inside a maintenance
//! window; `fleet_lock` with a FleetLock slot (`POST /v1/pre-reboot`); `periodic+fleet_lock`
//! inside a window and with a slot, the slot being asked for only inside the window so a node
//! never holds one while it may not reboot. After boot the slot is released with
//! `POST /v1/steady-state` (all FleetLock strategies).

use crate::config::StrategyKind;
use crate::fleetlock::{FleetLockClient, FleetLockError};
use crate::metrics::Metrics;
use crate::window::Schedule;

/// The reboot lock (FleetLock's two calls).
pub trait Lock: Send {
    /// Take (or keep) a slot.
    fn pre_reboot(&self) -> Result<(), FleetLockError>;
    /// Release the slot if held.
    fn steady_state(&self) -> Result<(), FleetLockError>;
}

impl Lock for FleetLockClient {
    fn pre_reboot(&self) -> Result<(), FleetLockError> {
        FleetLockClient::pre_reboot(self)
    }
    fn steady_state(&self) -> Result<(), FleetLockError> {
        FleetLockClient::steady_state(self)
    }
}

/// Whether finalization may go ahead now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Outside every window; the next one opens then (UNIX seconds).
    OutsideWindow { next: Option<i64> },
    /// The FleetLock server gave no slot (or could not be reached).
    LockRefused { kind: String, message: String },
}

/// A configured strategy.
pub struct Strategy {
    /// Which one.
    pub kind: StrategyKind,
    /// Windows (periodic kinds).
    pub schedule: Option<Schedule>,
    /// The lock (FleetLock kinds).
    pub lock: Option<Box<dyn Lock>>,
}

fn count_lock(m: &mut Metrics, api: &str, r: &Result<(), FleetLockError>) {
    *m.lock_requests_total.entry(api.into()).or_default() += 1;
    if let Err(e) = r {
        *m.lock_errors_total
            .entry((api.into(), e.kind().to_string()))
            .or_default() += 1;
    }
}

impl Strategy {
    /// May the node finalize at `now`? `ignore_window` (`keel update now`) skips the window
    /// but never the lock.
    pub fn can_finalize(&self, now: i64, ignore_window: bool, m: &mut Metrics) -> Decision {
        if let Some(s) = &self.schedule {
            if !ignore_window && !s.contains(now) {
                return Decision::OutsideWindow {
                    next: s.next_start(now),
                };
            }
        }
        if let Some(l) = &self.lock {
            let r = l.pre_reboot();
            count_lock(m, "pre-reboot", &r);
            if let Err(e) = r {
                return Decision::LockRefused {
                    kind: e.kind().to_string(),
                    message: e.to_string(),
                };
            }
        }
        Decision::Allow
    }

    /// Report that the node is up and healthy (releases the FleetLock slot).
    pub fn report_steady(&self, m: &mut Metrics) -> Result<(), FleetLockError> {
        match &self.lock {
            None => Ok(()),
            Some(l) => {
                let r = l.steady_state();
                count_lock(m, "steady-state", &r);
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PeriodicSection, WindowSection};
    use std::sync::{Arc, Mutex};

    /// A lock that answers from a script and records the calls.
    struct Scripted {
        grant: bool,
        calls: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Lock for Scripted {
        fn pre_reboot(&self) -> Result<(), FleetLockError> {
            self.calls.lock().unwrap().push("pre-reboot");
            if self.grant {
                Ok(())
            } else {
                Err(FleetLockError::Refused {
                    status: 423,
                    kind: "slots_full".into(),
                    value: "all 1 slots of group default are held".into(),
                })
            }
        }
        fn steady_state(&self) -> Result<(), FleetLockError> {
            self.calls.lock().unwrap().push("steady-state");
            Ok(())
        }
    }

    #[test]
    fn decisions_on_a_fake_clock() {
        // Saturday 2026-11-28 23:30-00:30 UTC.
        let sat_2345 = 1_795_909_500; // 2026-11-28T23:45:00Z
        let wed_1200 = 1_795_608_000; // 2026-11-25T12:00:00Z
        let next = 1_795_908_600; // 2026-11-28T23:30:00Z
        let schedule = || {
            Schedule::from_config(&PeriodicSection {
                time_zone: "UTC".into(),
                window: vec![WindowSection {
                    days: vec!["Sat".into()],
                    start_time: "23:30".into(),
                    length_minutes: 60,
                }],
            })
            .unwrap()
        };
        use StrategyKind::*;
        // (kind, lock grants?, now, ignore window, decision, lock calls)
        let cases: Vec<(StrategyKind, bool, i64, bool, Decision, usize)> = vec![
            (Immediate, true, wed_1200, false, Decision::Allow, 0),
            (Periodic, true, sat_2345, false, Decision::Allow, 0),
            (Periodic, true, wed_1200, false, Decision::OutsideWindow { next: Some(next) }, 0),
            (Periodic, true, wed_1200, true, Decision::Allow, 0),
            (FleetLock, true, wed_1200, false, Decision::Allow, 1),
            (
                FleetLock,
                false,
                wed_1200,
                false,
                Decision::LockRefused {
                    kind: "slots_full".into(),
                    message: "FleetLock server refused (423 slots_full): all 1 slots of group default are held".into(),
                },
                1,
            ),
            // Window and lock: no lock request outside the window.
            (PeriodicFleetLock, true, wed_1200, false, Decision::OutsideWindow { next: Some(next) }, 0),
            (PeriodicFleetLock, true, sat_2345, false, Decision::Allow, 1),
            (PeriodicFleetLock, false, sat_2345, false, Decision::LockRefused {
                kind: "slots_full".into(),
                message: "FleetLock server refused (423 slots_full): all 1 slots of group default are held".into(),
            }, 1),
            // `keel update now`: skips the window, still takes the lock.
            (PeriodicFleetLock, true, wed_1200, true, Decision::Allow, 1),
        ];
        for (kind, grant, now, ignore, want, calls) in cases {
            let log = Arc::new(Mutex::new(Vec::new()));
            let s = Strategy {
                kind,
                schedule: kind.periodic().then(schedule),
                lock: kind.fleet_lock().then(|| {
                    Box::new(Scripted {
                        grant,
                        calls: log.clone(),
                    }) as Box<dyn Lock>
                }),
            };
            let mut m = Metrics::default();
            assert_eq!(
                s.can_finalize(now, ignore, &mut m),
                want,
                "{kind:?} at {now} ignore={ignore}"
            );
            assert_eq!(log.lock().unwrap().len(), calls, "{kind:?} at {now}");
            assert_eq!(
                m.lock_requests_total
                    .get("pre-reboot")
                    .copied()
                    .unwrap_or(0),
                calls as u64
            );
            s.report_steady(&mut m).unwrap();
            assert_eq!(
                log.lock().unwrap().last() == Some(&"steady-state"),
                kind.fleet_lock(),
                "{kind:?}: steady state is reported to FleetLock only"
            );
        }
    }
}
