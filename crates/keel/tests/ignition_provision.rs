//! CLI tests of `keel ignition apply|stage|firstboot-complete`, run through the built binary.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output};

fn keel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env_remove("IGNITION_CONFIG_FILE")
        .env_remove("IGNITION_SYSTEM_CONFIG_DIR")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Records a skip and returns true when not root.
fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    keel_testsupport::skip(&format!("{test}: needs root (chown)"));
    true
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Runs `keel ignition stage NAME` with every path under `work`; extra args appended.
fn stage(name: &str, root: &Path, work: &Path, extra: &[&str]) -> Output {
    let p = |f: &str| work.join(f).display().to_string();
    let mut args = vec!["ignition", "stage", name, "--root"];
    let root_s = root.display().to_string();
    args.push(&root_s);
    let owned = [
        ("--config-cache", p("ignition.json")),
        ("--neednet", p("neednet")),
        ("--state-file", p("state")),
        ("--system-config-dir", p("sysconf")),
        ("--kmsg", p("kmsg")),
        ("--sysfs", p("sys")),
        ("--luks-key-dir", p("keys")),
    ];
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    for (k, v) in owned {
        all.push(k.into());
        all.push(v);
    }
    all.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    keel(&refs)
}

#[test]
fn stages_run_with_platform_from_the_kernel_command_line() {
    if skip_unless_root("stages_run_with_platform_from_the_kernel_command_line") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (root, work) = (tmp.path().join("root"), tmp.path().join("work"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let cfg = tmp.path().join("cfg.ign");
    std::fs::write(&cfg, r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/hostname","mode":420,"contents":{"source":"data:,node1"}}]}}"#).unwrap();
    let cmdline = tmp.path().join("cmdline");
    std::fs::write(
        &cmdline,
        "root=/dev/vda ignition.firstboot ignition.platform.id=file\n",
    )
    .unwrap();
    std::fs::write(work.join("kmsg"), "").unwrap();
    let extra = [
        "--cmdline",
        cmdline.to_str().unwrap(),
        "--config-file",
        cfg.to_str().unwrap(),
    ];
    for name in [
        "fetch-offline",
        "kargs",
        "disks",
        "mount",
        "files",
        "umount",
    ] {
        let out = stage(name, &root, &work, &extra);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "node1"
    );
    assert!(root.join("etc/.ignition-result.json").exists());
    assert_eq!(
        std::fs::read_to_string(work.join("kmsg")).unwrap(),
        "",
        "nothing logged on success"
    );

    // No platform anywhere: a clear error.
    std::fs::write(&cmdline, "root=/dev/vda\n").unwrap();
    let out = stage(
        "files",
        &root,
        &work,
        &["--cmdline", cmdline.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ignition.platform.id="),
        "{}",
        stderr(&out)
    );
}

#[test]
fn failing_stage_is_loud_and_keeps_the_firstboot_marker() {
    if skip_unless_root("failing_stage_is_loud_and_keeps_the_firstboot_marker") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (root, work, boot) = (
        tmp.path().join("root"),
        tmp.path().join("work"),
        tmp.path().join("boot"),
    );
    for d in [&root, &work, &boot] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(boot.join("ignition.firstboot"), "").unwrap();
    std::fs::write(work.join("kmsg"), "").unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/motd"), "existing").unwrap();
    let cfg = tmp.path().join("cfg.ign");
    std::fs::write(&cfg, r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/ok","contents":{"source":"data:,ok"}},{"path":"/etc/motd","contents":{"source":"data:,new"}}]}}"#).unwrap();
    let extra = ["--platform", "file", "--config-file", cfg.to_str().unwrap()];
    assert!(stage("fetch-offline", &root, &work, &extra)
        .status
        .success());
    let out = stage("files", &root, &work, &extra);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let want = "stage files failed: $.storage.files.1: writing file \"/etc/motd\": a file exists there already with other contents and overwrite is false";
    assert!(err.contains(want), "{err}");
    assert_eq!(
        err.matches("$.storage.files.1").count(),
        1,
        "one message: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("kmsg")).unwrap(),
        format!("<3>keel ignition: {want}\n")
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "existing"
    );
    // The unit that completes first boot only runs after every stage succeeded; the failed
    // stage itself never touches the marker.
    assert!(boot.join("ignition.firstboot").exists());

    std::fs::write(&cfg, r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/motd","overwrite":true,"contents":{"source":"data:,new"}}]}}"#).unwrap();
    std::fs::remove_file(work.join("ignition.json")).unwrap();
    assert!(stage("fetch-offline", &root, &work, &extra)
        .status
        .success());
    assert!(stage("files", &root, &work, &extra).status.success());
    let done = keel(&[
        "ignition",
        "firstboot-complete",
        "--boot",
        boot.to_str().unwrap(),
    ]);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(!boot.join("ignition.firstboot").exists());
    let again = keel(&[
        "ignition",
        "firstboot-complete",
        "--boot",
        boot.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("does not exist"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn apply_into_a_root() {
    if skip_unless_root("apply_into_a_root") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let cfg = tmp.path().join("cfg.ign");
    std::fs::write(&cfg, r#"{"ignition":{"version":"3.3.0"},"passwd":{"groups":[{"name":"devs","gid":3000}]},"storage":{"files":[{"path":"/etc/x","contents":{"source":"data:,x"}}],"links":[{"path":"/etc/l","target":"/etc/x"}]},"systemd":{"units":[{"name":"m.service","mask":true}]}}"#).unwrap();
    let out = keel(&[
        "ignition",
        "apply",
        "--root",
        root.to_str().unwrap(),
        "--offline",
        cfg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(root.join("etc/x")).unwrap(), "x");
    assert_eq!(
        std::fs::read_link(root.join("etc/l")).unwrap(),
        Path::new("/etc/x")
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/systemd/system/m.service")).unwrap(),
        Path::new("/dev/null")
    );
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("devs:") && l.ends_with(":3000:")),
        "{group}"
    );
    assert!(
        !root.join("etc/.ignition-result.json").exists(),
        "apply writes no result file"
    );

    std::fs::write(&cfg, r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/y","contents":{"source":"http://127.0.0.1:9/y"}}]}}"#).unwrap();
    let out = keel(&[
        "ignition",
        "apply",
        "--root",
        root.to_str().unwrap(),
        "--offline",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("$.storage.files.0") && stderr(&out).contains("requires networking"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_has_examples() {
    for sub in ["apply", "stage", "firstboot-complete"] {
        let out = keel(&["ignition", sub, "--help"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{sub}: {text}");
    }
}
