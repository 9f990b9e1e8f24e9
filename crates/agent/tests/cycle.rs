//! The staged phase of the agent's cycle on a fake clock, with a real directory sysroot: a
//! release staged locked waits for the maintenance window, then an interactive session
//! postpones the reboot for at most `max_postpone_secs` of (fake) time, then the agent unlocks
//! finalization and runs the reboot command.

use keel_agent::agent::{Agent, Clock, Mode, OriginPull, Paths};
use keel_agent::graph::Release;
use keel_agent::state::Phase;
use keel_deploy::{DeployOptions, Sysroot};
use keel_store::{CommitOptions, Variant};
use keel_utils::progress::{Mode as ProgressMode, Progress};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

struct FakeClock(Arc<AtomicI64>);

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn at(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn commit(sysroot: &Sysroot, base: &Path, version: &str) -> keel_store::Checksum {
    let t = base.join(format!("tree-{version}"));
    let k = t.join("usr/lib/modules/6.1.0-test");
    fs::create_dir_all(&k).unwrap();
    fs::create_dir_all(t.join("usr/etc")).unwrap();
    fs::write(k.join("vmlinuz"), format!("kernel {version}")).unwrap();
    fs::write(k.join("initramfs.img"), "initramfs").unwrap();
    let opts = CommitOptions {
        branch: Some("keel/test".into()),
        subject: version.into(),
        metadata: vec![("version".into(), Variant::Str(version.into()))],
        ..Default::default()
    };
    let progress = Progress::new(ProgressMode::Lines, "commit", None);
    sysroot
        .repo()
        .unwrap()
        .commit_dir(&t, &opts, &progress)
        .unwrap()
}

#[test]
fn staged_update_waits_for_the_window_then_a_bounded_time_for_sessions() {
    if !keel_testsupport::require("staged_update_waits_for_the_window", &[]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let (root, sysroot_dir) = (base.join("root"), base.join("sysroot"));
    let sysroot = Sysroot::init(&sysroot_dir, "keel").unwrap();
    let c1 = commit(&sysroot, base, "1");
    let d1 = sysroot
        .deploy(
            &c1,
            &DeployOptions {
                origin_refspec: Some("keel/test".into()),
                ..Default::default()
            },
        )
        .unwrap()
        .name();
    let c2 = commit(&sysroot, base, "2");
    let booted = Sysroot::open(&sysroot_dir, "keel")
        .unwrap()
        .with_booted(Some(d1.clone()));
    booted
        .deploy(
            &c2,
            &DeployOptions {
                stage: true,
                lock_finalization: true,
                ..Default::default()
            },
        )
        .unwrap();

    fs::create_dir_all(root.join("etc/keel/agent.d")).unwrap();
    fs::write(
        root.join("etc/machine-id"),
        "0f0e0d0c0b0a09080706050403020100\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/keel/agent.d/50-test.toml"),
        "[agent]\nretry_interval_secs = 60\nmax_postpone_secs = 600\n[cincinnati]\nbase_url = \"http://127.0.0.1:9\"\n\
         [updates]\nstrategy = \"periodic\"\n[updates.periodic]\ntime_zone = \"Europe/Berlin\"\n\
         [[updates.periodic.window]]\ndays = [\"Sun\"]\nstart_time = \"00:30\"\nlength_minutes = 60\n",
    )
    .unwrap();
    let rebooted = base.join("rebooted");
    let time = Arc::new(AtomicI64::new(at("2026-11-25T12:00:00Z")));
    let mut agent = Agent::new(
        Paths {
            root: root.clone(),
            sysroot: sysroot_dir.clone(),
            stateroot: "keel".into(),
            booted: Some(d1.clone()),
            reboot_command: format!("touch {}", rebooted.display()),
        },
        Mode::Service,
        Box::new(OriginPull),
        Box::new(FakeClock(time.clone())),
    )
    .unwrap();
    agent.state.phase = Phase::Staged;
    agent.state.target = Some(Release {
        version: "2".into(),
        commit: c2.to_hex(),
        age_index: 1,
    });
    let sessions = root.join("run/systemd/sessions");
    fs::create_dir_all(&sessions).unwrap();
    fs::write(sessions.join("4"), "CLASS=user\nTTY=pts/0\nUSER=core\n").unwrap();

    // (fake now, phase after the step, summary part, reboot command ran)
    let steps = [
        // Wednesday: the window (Sunday 00:30 Berlin = Saturday 23:30 UTC) is days away.
        (
            "2026-11-25T12:00:00Z",
            Phase::Staged,
            "waits for the maintenance window",
            false,
        ),
        (
            "2026-11-28T23:29:00Z",
            Phase::Staged,
            "waits for the maintenance window",
            false,
        ),
        // In the window, but someone is logged in: postponed...
        (
            "2026-11-28T23:31:00Z",
            Phase::Staged,
            "postponed for interactive session(s) core@pts/0 (at most 600 s more)",
            false,
        ),
        (
            "2026-11-28T23:36:00Z",
            Phase::Staged,
            "(at most 300 s more)",
            false,
        ),
        // ...for at most 600 s, then the reboot goes ahead.
        (
            "2026-11-28T23:41:00Z",
            Phase::Finalized,
            "update 2 finalized; rebooting",
            true,
        ),
    ];
    for (now, phase, summary, ran) in steps {
        time.store(at(now), Ordering::SeqCst);
        let step = agent.tick();
        let st = &agent.state;
        assert_eq!(st.phase, phase, "{now}: {}", st.summary);
        assert!(st.summary.contains(summary), "{now}: {}", st.summary);
        assert_eq!(rebooted.exists(), ran, "{now}");
        assert_eq!(booted.finalization_locked(), !ran, "{now}");
        if phase == Phase::Staged {
            assert!(step.delay.as_secs() <= 60, "{now}: {step:?}");
        }
    }
    assert_eq!(agent.state.next_window, Some(at("2026-11-28T23:30:00Z")));
    let m = agent.metrics.lock().unwrap().clone();
    assert_eq!(
        (m.postponed_finalizations_total, m.finalizations_total),
        (2, 1)
    );
}
