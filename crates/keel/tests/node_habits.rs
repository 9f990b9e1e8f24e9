//! The rpm-ostree and ostree habits of the node commands, on directory sysroots
//! (`--assume-booted` names the deployment a node would run): `status -b`, `cleanup -p`,
//! `deploy --karg`/`--karg-append`, `kargs --replace KEY=OLD=NEW`, `--append-if-missing`,
//! `--delete-if-present`, `--editor`, and `config-diff` with nothing changed.

// Tests run keel and assert on its raw exit status and output (failures included).
#![allow(clippy::disallowed_methods)]

#[path = "common/dir_sysroot.rs"]
mod dir_sysroot;

use dir_sysroot::{ok, run, DirSysroot, KEEL};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Run `keel WORDS --sysroot SYSROOT` (words split at spaces), which must succeed.
fn keel_line(f: &DirSysroot, words: &str) -> String {
    ok(&mut f.keel(&words.split(' ').collect::<Vec<_>>()))
}

/// The default deployment's kargs, as `keel kargs` prints them.
fn kargs(f: &DirSysroot) -> String {
    ok(&mut f.keel(&["kargs"])).trim().to_string()
}

#[test]
fn status_booted_shows_only_the_booted_deployment() {
    let Some(f) = DirSysroot::new("status_booted") else {
        return;
    };
    f.commit("1", |_| {});
    ok(&mut f.keel(&["deploy", "keel/test"]));
    f.commit("2", |_| {});
    ok(&mut f.keel(&["upgrade"]));
    let names = f.names();
    assert_eq!(names.len(), 2, "{names:?}");
    let rollback = &names[1];

    let all = f.status(Some(rollback));
    let only: serde_json::Value = serde_json::from_str(&ok(&mut f.keel(&[
        "status",
        "-b",
        "--json",
        "--assume-booted",
        rollback,
    ])))
    .unwrap();
    keel_testsupport::schema::assert_valid("status", &only);
    assert_eq!(only["deployments"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["deployments"][0], all["deployments"][1]);
    assert_eq!(only["booted"], all["booted"]);

    let text = ok(&mut f.keel(&["status", "--booted", "--assume-booted", rollback]));
    assert!(text.contains(rollback.as_str()), "{text}");
    assert!(
        !text.contains(&format!("deployment: {}", names[0])),
        "{text}"
    );
    // Nothing is booted on a directory sysroot: no deployment to show.
    let none: serde_json::Value =
        serde_json::from_str(&ok(&mut f.keel(&["status", "-b", "--json"]))).unwrap();
    assert_eq!(none["deployments"], serde_json::json!([]));
}

#[test]
fn cleanup_pending_discards_the_staged_deployment() {
    let Some(f) = DirSysroot::new("cleanup_pending") else {
        return;
    };
    f.commit("1", |_| {});
    ok(&mut f.keel(&["deploy", "keel/test"]));
    let booted = f.names()[0].clone();
    let out = ok(&mut f.keel(&["cleanup", "-p", "--assume-booted", &booted]));
    assert!(out.contains("Nothing is staged"), "{out}");

    f.commit("2", |_| {});
    ok(&mut f.keel(&["upgrade", "--stage-only", "--assume-booted", &booted]));
    let staged = f.status(Some(&booted))["staged"]["deployment"]
        .as_str()
        .expect("a staged deployment")
        .to_string();
    let run_dir = f.sysroot.join("run/keel");
    let deploy_dir = f.sysroot.join("ostree/deploy/keel/deploy").join(&staged);
    for p in [
        run_dir.join("staged-deployment"),
        run_dir.join("staged-deployment-locked"),
        deploy_dir.clone(),
    ] {
        assert!(p.exists(), "{} before cleanup -p", p.display());
    }

    let out = ok(&mut f.keel(&["cleanup", "--pending", "--assume-booted", &booted]));
    assert!(
        out.contains(&format!(
            "Discarded the staged deployment {staged}: removed its record, its finalization \
             lock and 1 deployment directory"
        )),
        "{out}"
    );
    for p in [
        run_dir.join("staged-deployment"),
        run_dir.join("staged-deployment-locked"),
        deploy_dir,
    ] {
        assert!(!p.exists(), "{} after cleanup -p", p.display());
    }
    let st = f.status(Some(&booted));
    assert!(st["staged"].is_null(), "{st}");
    assert_eq!(f.names(), [booted.as_str()], "the booted deployment stays");
    let out = ok(&mut f.keel(&["finalize", "--assume-booted", &booted]));
    assert!(out.contains("Nothing is staged"), "{out}");
}

#[test]
fn deploy_karg_overrides_inherited_ones_and_karg_append_adds() {
    let Some(f) = DirSysroot::new("deploy_karg") else {
        return;
    };
    f.commit("1", |_| {});
    keel_line(
        &f,
        "deploy keel/test --karg root=LABEL=root --karg console=tty0 \
         --karg-append console=ttyS0 --karg ignition.firstboot",
    );
    assert_eq!(
        kargs(&f),
        "root=LABEL=root console=tty0 ignition.firstboot console=ttyS0"
    );
    f.commit("2", |_| {});
    // Inherited (without the first-boot flag); --karg replaces both console= values; as with
    // ostree, every --karg applies before every --karg-append.
    keel_line(
        &f,
        "deploy keel/test --karg console=hvc0 --karg-append quiet --karg mitigations=off",
    );
    assert_eq!(
        kargs(&f),
        "root=LABEL=root console=hvc0 mitigations=off quiet"
    );
    ok(&mut f.keel(&["deploy", "keel/test"]));
    assert_eq!(
        kargs(&f),
        "root=LABEL=root console=hvc0 mitigations=off quiet",
        "no --karg: inherited as they are"
    );
}

/// An `$EDITOR` script running `sed EXPR` on the file it is given.
fn editor(dir: &Path, name: &str, sed: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\nsed -i '{sed}' \"$1\"\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[test]
fn kargs_edits_like_ostree_and_in_an_editor() {
    let Some(f) = DirSysroot::new("kargs_habits") else {
        return;
    };
    f.commit("1", |_| {});
    keel_line(
        &f,
        "deploy keel/test --karg root=LABEL=root --karg-append console=tty0 \
         --karg-append console=ttyS0 --karg-append quiet",
    );
    ok(&mut f.keel(&["kargs", "--replace", "console=ttyS0=hvc0"]));
    assert_eq!(kargs(&f), "root=LABEL=root console=tty0 console=hvc0 quiet");

    let names = f.names();
    for args in [
        ["--append-if-missing", "quiet"],
        ["--delete-if-present", "nomodeset"],
    ] {
        let out = ok(&mut f.keel(&["kargs", args[0], args[1]]));
        assert!(out.contains("unchanged"), "{args:?}: {out}");
    }
    assert_eq!(f.names(), names, "no change, no new deployment");
    keel_line(
        &f,
        "kargs --delete-if-present quiet --append-if-missing mitigations=auto",
    );
    assert_eq!(
        kargs(&f),
        "root=LABEL=root console=tty0 console=hvc0 mitigations=auto"
    );
    let out = run(&mut f.keel(&["kargs", "--delete", "quiet"]));
    assert!(!out.status.success(), "--delete of a missing karg fails");

    let edit = |script: String| {
        let mut c = f.keel(&["kargs", "--editor"]);
        c.env_remove("VISUAL").env("EDITOR", script);
        run(&mut c)
    };
    let out = edit(editor(&f.base, "tty1", "1s/console=tty0/console=tty1/"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        kargs(&f),
        "root=LABEL=root console=tty1 console=hvc0 mitigations=auto"
    );
    let out = edit(editor(&f.base, "empty", "1s/.*//"));
    assert!(!out.status.success(), "an emptied line cancels");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("empty"),
        "{out:?}"
    );
    assert_eq!(
        kargs(&f),
        "root=LABEL=root console=tty1 console=hvc0 mitigations=auto"
    );
}

#[test]
fn config_diff_says_when_nothing_changed() {
    let Some(f) = DirSysroot::new("config_diff_none") else {
        return;
    };
    f.commit("1", |_| {});
    ok(&mut f.keel(&["deploy", "keel/test"]));
    let out = ok(&mut f.keel(&["config-diff"]));
    assert!(out.starts_with("No changes"), "{out}");
}

#[test]
fn repo_without_repo_uses_the_current_directory_or_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let keel_repo =
        |cwd: &Path, args: &[&str]| run(Command::new(KEEL).current_dir(cwd).arg("repo").args(args));
    // (No /ostree/repo on a build machine: else it would be the default.)
    if Path::new("/ostree/repo").exists() {
        eprintln!("skipping: this machine has /ostree/repo");
        return;
    }
    let out = keel_repo(dir.path(), &["refs"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("repository . (--repo not given"), "{err}");
    let repo = dir.path().join("r");
    ok(Command::new(KEEL)
        .args(["repo", "--repo"])
        .arg(&repo)
        .args(["init", "--mode", "archive"]));
    let out = keel_repo(&repo, &["refs"]);
    assert!(out.status.success(), "{out:?}");
}
