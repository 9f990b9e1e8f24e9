//! Hostile configs against the files stage (`keel ignition apply --root DIR`): nothing may be
//! created, changed or linked outside DIR. Every case puts a canary directory beside the root
//! and compares a snapshot of everything outside the root (contents, kind, mode, owner, link
//! count, mtime, link targets) before and after.
//!
//! Names systemd or useradd would refuse are validation errors naming the JSON path; the same
//! configs are also applied with validation bypassed (deserialized straight into the model), so
//! the stage itself is shown to refuse them. Symlinks already in the root (`/etc`,
//! `/etc/systemd/system`, `~/.ssh`, pointing outside) pass validation and are followed inside
//! the root only. These tests need root (chown, useradd --root): they fail, not skip, without.

mod common;

use keel_ignition_config::types::Config;
use keel_provision::resource::Fetcher;
use keel_provision::stages;
use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

/// A scratch directory holding `root/` (the target) and `canary/` (outside it).
struct Scene {
    tmp: tempfile::TempDir,
    root: PathBuf,
    canary: PathBuf,
}

fn scene(seeded: bool) -> Scene {
    if let Some(why) = common::skip_reason(false) {
        panic!("hostile provisioning tests cannot run here: {why}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    if seeded {
        common::seeded_root(&root);
    } else {
        std::fs::create_dir(&root).unwrap();
    }
    let canary = tmp.path().join("canary");
    std::fs::create_dir_all(canary.join("sub")).unwrap();
    std::fs::write(canary.join("secret"), "secret\n").unwrap();
    std::fs::write(canary.join("sub/file"), "file\n").unwrap();
    Scene { tmp, root, canary }
}

/// Everything outside the root: path → a line with kind, mode, owner, links, mtime and
/// contents or link target.
fn outside(s: &Scene) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![s.tmp.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let what = if m.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                let child = e.unwrap().path();
                if child != s.root {
                    stack.push(child);
                }
            }
            "dir".to_string()
        } else {
            format!("{:?}", String::from_utf8_lossy(&std::fs::read(&p).unwrap()))
        };
        let rel = p.strip_prefix(s.tmp.path()).unwrap().display().to_string();
        out.insert(
            format!("/{rel}"),
            format!(
                "{:o} {}:{} nlink={} mtime={}.{} {what}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.nlink(),
                m.mtime(),
                m.mtime_nsec()
            ),
        );
    }
    out
}

/// The config's validation errors, one line each.
fn validation_errors(cfg: &serde_json::Value) -> Vec<String> {
    match keel_ignition_config::parse(cfg.to_string().as_bytes()) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .reports
            .iter()
            .filter(|r| r.is_error())
            .map(|r| r.to_string())
            .collect(),
    }
}

/// Asserts validation refuses `cfg` with an error at each of `paths` (and `words` in them).
fn assert_refused(cfg: &serde_json::Value, paths: &[(&str, &str)]) {
    let errors = validation_errors(cfg);
    for (path, word) in paths {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("error at {path},")) && e.contains(word)),
            "no validation error at {path} mentioning {word:?}; errors: {errors:#?}"
        );
    }
}

/// Applies `cfg` with validation bypassed (as a config that reached the stage anyway).
fn apply_unvalidated(s: &Scene, cfg: serde_json::Value) -> Result<(), String> {
    let cfg: Config = serde_json::from_value(cfg).unwrap();
    stages::apply_config(&s.root, &cfg, &Fetcher::offline())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Applies `cfg` after validation, as `keel ignition apply` does.
fn apply_validated(s: &Scene, cfg: &serde_json::Value) -> Result<(), String> {
    let errors = validation_errors(cfg);
    assert!(errors.is_empty(), "config should be valid: {errors:#?}");
    apply_unvalidated(s, cfg.clone())
}

fn ign(rest: serde_json::Value) -> serde_json::Value {
    let mut cfg = serde_json::json!({"ignition": {"version": "3.4.0"}});
    for (k, v) in rest.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    cfg
}

fn assert_outside_unchanged(s: &Scene, before: &BTreeMap<String, String>, case: &str) {
    let after = outside(s);
    let mut diff = Vec::new();
    for (p, b) in before {
        match after.get(p) {
            Some(a) if a == b => {}
            Some(a) => diff.push(format!("{p}: {b} -> {a}")),
            None => diff.push(format!("{p}: removed")),
        }
    }
    for p in after.keys().filter(|p| !before.contains_key(*p)) {
        diff.push(format!("{p}: created ({})", after[p]));
    }
    assert!(
        diff.is_empty(),
        "{case}: the config changed things outside the root:\n{}",
        diff.join("\n")
    );
}

/// The host path `path` (absolute, inside the root) lands on when the root is `/`.
fn in_root(s: &Scene, path: &Path) -> PathBuf {
    s.root.join(path.strip_prefix("/").unwrap())
}

#[test]
fn unit_and_dropin_names_with_dotdot_are_refused() {
    let s = scene(true);
    let before = outside(&s);
    let escape = "../../../../canary/evil.service";
    let units = [
        serde_json::json!({"name": escape, "contents": "[Service]\nExecStart=/bin/true\n"}),
        serde_json::json!({"name": "a.service", "dropins": [{"name": "../../../../../canary/evil.conf", "contents": "[Service]\n"}]}),
        serde_json::json!({"name": escape, "mask": true}),
        serde_json::json!({"name": escape, "enabled": true}),
        serde_json::json!({"name": "x/../../../../../canary/x.service", "contents": "[Unit]\n"}),
    ];
    let paths = [
        "$.systemd.units.0.name",
        "$.systemd.units.0.dropins.0.name",
        "$.systemd.units.0.name",
        "$.systemd.units.0.name",
        "$.systemd.units.0.name",
    ];
    for (unit, path) in units.iter().zip(paths) {
        let cfg = ign(serde_json::json!({"systemd": {"units": [unit]}}));
        assert_refused(&cfg, &[(path, "invalid systemd")]);
        let err = apply_unvalidated(&s, cfg).expect_err("the stage must refuse it too");
        assert!(err.contains("not a single file name"), "{err}");
    }
    assert_outside_unchanged(&s, &before, "unit and drop-in names");
}

#[test]
fn install_values_with_dotdot_are_refused() {
    let s = scene(true);
    let before = outside(&s);
    let install = "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=../../../../canary/w\nRequiredBy=../../../../canary/r\nAlias=../../../../canary/a.service\n";
    let cfg = ign(serde_json::json!({"systemd": {"units": [
        {"name": "x.service", "enabled": true, "contents": install}
    ]}}));
    assert_refused(
        &cfg,
        &[
            (
                "$.systemd.units.0.contents",
                "WantedBy=../../../../canary/w",
            ),
            ("$.systemd.units.0.contents", "RequiredBy="),
            ("$.systemd.units.0.contents", "Alias="),
        ],
    );
    let err = apply_unvalidated(&s, cfg).expect_err("the stage must refuse it too");
    assert!(
        err.contains("[Install] WantedBy=../../../../canary/w"),
        "{err}"
    );
    // The same unit file written as a plain file: validation cannot see its [Install]
    // section, so enabling it must fail in the stage.
    let cfg = ign(serde_json::json!({
        "storage": {"files": [{"path": "/etc/systemd/system/y.service",
            "contents": {"source": format!("data:,{}", urlencode(install))}}]},
        "systemd": {"units": [{"name": "y.service", "enabled": true}]}
    }));
    let err = apply_validated(&s, &cfg).expect_err("enabling must refuse the link names");
    assert!(
        err.contains("$.systemd.units.0: enabling \"y.service\""),
        "{err}"
    );
    assert!(err.contains("is not a unit name"), "{err}");
    assert_outside_unchanged(&s, &before, "[Install] values");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A config that writes everything the files stage can write under /etc.
fn everything_under_etc() -> serde_json::Value {
    ign(serde_json::json!({
        "storage": {
            "files": [
                {"path": "/etc/hostname", "contents": {"source": "data:,pwned"}, "mode": 420},
                {"path": "/etc/secret", "append": [{"source": "data:,more"}]},
                {"path": "/etc/deep/new/file", "contents": {"source": "data:,x"}}
            ],
            "directories": [{"path": "/etc/dir", "mode": 511}],
            "links": [
                {"path": "/etc/link", "target": "/etc/secret"},
                {"path": "/etc/hard", "target": "/etc/secret", "hard": true}
            ]
        },
        "systemd": {"units": [
            {"name": "a.service", "enabled": true,
             "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=b.service\n",
             "dropins": [{"name": "10-x.conf", "contents": "[Service]\n"}]},
            {"name": "m.service", "mask": true},
            {"name": "d.service", "enabled": false}
        ]}
    }))
}

#[test]
fn etc_linked_outside_is_followed_inside_the_root() {
    for relative in [false, true] {
        let s = scene(false);
        let target = if relative {
            PathBuf::from("../canary")
        } else {
            s.canary.clone()
        };
        symlink(&target, s.root.join("etc")).unwrap();
        let before = outside(&s);
        apply_validated(&s, &everything_under_etc()).unwrap();
        assert_outside_unchanged(&s, &before, &format!("/etc -> {}", target.display()));
        // With the root as `/`, the link leads to a place inside the root.
        let etc = if relative {
            s.root.join("canary")
        } else {
            in_root(&s, &s.canary)
        };
        assert_eq!(std::fs::read(etc.join("hostname")).unwrap(), b"pwned");
        assert!(etc.join("systemd/system/a.service").is_file());
        assert!(etc
            .join("systemd/system/multi-user.target.wants/a.service")
            .is_symlink());
        assert!(etc
            .join("systemd/system-preset/20-ignition.preset")
            .is_file());
    }
}

#[test]
fn unit_directory_linked_outside_is_followed_inside_the_root() {
    let s = scene(false);
    std::fs::create_dir_all(s.root.join("etc/systemd")).unwrap();
    symlink(&s.canary, s.root.join("etc/systemd/system")).unwrap();
    symlink(&s.canary, s.root.join("etc/systemd/system-preset")).unwrap();
    let before = outside(&s);
    apply_validated(&s, &everything_under_etc()).unwrap();
    assert_outside_unchanged(&s, &before, "/etc/systemd/system -> outside");
    let units = in_root(&s, &s.canary);
    assert!(units.join("a.service.d/10-x.conf").is_file());
    assert_eq!(
        std::fs::read_link(units.join("m.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert_eq!(
        std::fs::read_link(units.join("b.service")).unwrap(),
        Path::new("/etc/systemd/system/a.service")
    );
}

#[test]
fn ssh_directory_linked_outside_is_never_chowned() {
    let s = scene(true);
    let passwd = s.root.join("etc/passwd");
    let mut text = std::fs::read_to_string(&passwd).unwrap();
    text.push_str("kcore:x:4242:4242::/home/kcore:/bin/sh\n");
    std::fs::write(&passwd, text).unwrap();
    std::fs::create_dir_all(s.root.join("home/kcore")).unwrap();
    symlink(&s.canary, s.root.join("home/kcore/.ssh")).unwrap();
    let before = outside(&s);
    let cfg = ign(serde_json::json!({"passwd": {"users": [
        {"name": "kcore", "sshAuthorizedKeys": ["ssh-ed25519 AAAA test"]}
    ]}}));
    apply_validated(&s, &cfg).unwrap();
    assert_outside_unchanged(&s, &before, "~/.ssh -> outside");
    let keys = in_root(&s, &s.canary).join("authorized_keys.d/ignition");
    let m = std::fs::metadata(&keys).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (4242, 0o600));
}

#[test]
fn existing_links_to_outside_are_replaced_or_refused_never_followed() {
    let s = scene(false);
    std::fs::create_dir_all(s.root.join("etc")).unwrap();
    for name in ["motd", "issue", "dir", "link"] {
        symlink(s.canary.join("secret"), s.root.join("etc").join(name)).unwrap();
    }
    symlink(&s.canary, s.root.join("etc/subdir")).unwrap();
    let before = outside(&s);
    let cases = [
        // Appending to a file that is a link: refused (overwrite is false).
        (
            serde_json::json!({"storage": {"files": [{"path": "/etc/motd", "append": [{"source": "data:,x"}]}]}}),
            Some("a non-file exists there already"),
        ),
        // Overwriting it replaces the link itself.
        (
            serde_json::json!({"storage": {"files": [{"path": "/etc/issue", "overwrite": true, "contents": {"source": "data:,x"}, "mode": 511}]}}),
            None,
        ),
        (
            serde_json::json!({"storage": {"directories": [{"path": "/etc/dir", "overwrite": true, "mode": 511}]}}),
            None,
        ),
        (
            serde_json::json!({"storage": {"links": [{"path": "/etc/link", "target": "/x", "overwrite": true}]}}),
            None,
        ),
        // A hard link to a file outside, by `..` or through a link: not found inside the root.
        (
            serde_json::json!({"storage": {"links": [{"path": "/etc/h1", "target": "/etc/subdir/secret", "hard": true}]}}),
            Some("does not exist"),
        ),
        (
            serde_json::json!({"storage": {"links": [{"path": "/etc/h2", "target": "/../../canary/secret", "hard": true}]}}),
            Some("does not exist"),
        ),
    ];
    for (cfg, want) in cases {
        let result = apply_unvalidated(&s, ign(cfg.clone()));
        match (want, result) {
            (None, Ok(())) => {}
            (Some(w), Err(e)) if e.contains(w) => {}
            (w, r) => panic!("{cfg}: want {w:?}, got {r:?}"),
        }
    }
    assert_outside_unchanged(&s, &before, "links already in the root");
    assert!(!s.root.join("etc/issue").is_symlink());
    assert!(s.root.join("etc/dir").is_dir());
}

#[test]
fn ids_outside_the_uid_range_are_refused() {
    let s = scene(true);
    for bad in [-5i64, 4294967295, 4294967296] {
        let cfg = ign(serde_json::json!({
            "storage": {"files": [{"path": "/f", "contents": {"source": "data:,x"},
                "user": {"id": bad}, "group": {"id": bad}}]},
            "passwd": {"users": [{"name": "u1", "uid": bad}], "groups": [{"name": "g1", "gid": bad}]}
        }));
        assert_refused(
            &cfg,
            &[
                ("$.storage.files.0.user.id", "out of range"),
                ("$.storage.files.0.group.id", "out of range"),
                ("$.passwd.users.0.uid", "out of range"),
                ("$.passwd.groups.0.gid", "out of range"),
            ],
        );
        let file_only = ign(serde_json::json!({"storage": {"files": [
            {"path": "/f", "contents": {"source": "data:,x"}, "user": {"id": bad}}
        ]}}));
        let err = apply_unvalidated(&s, file_only).expect_err("the stage must refuse it");
        assert!(err.contains("outside 0..=4294967294"), "{err}");
        assert!(!s.root.join("f").exists(), "id {bad}: file written anyway");
    }
    let top = ign(serde_json::json!({"storage": {"files": [
        {"path": "/f", "contents": {"source": "data:,x"}, "user": {"id": 4294967294u32}}
    ]}}));
    assert!(validation_errors(&top).is_empty());
}

#[test]
fn account_names_useradd_refuses_are_validation_errors_and_never_silent() {
    let s = scene(true);
    let accounts = |s: &Scene| {
        (
            std::fs::read(s.root.join("etc/passwd")).unwrap(),
            std::fs::read(s.root.join("etc/group")).unwrap(),
        )
    };
    for name in [
        "--help",
        "-x",
        "a:b",
        "a b",
        "a/b",
        "..",
        "123",
        &"a".repeat(33),
    ] {
        let cfg = ign(serde_json::json!({"passwd": {
            "users": [{"name": name, "primaryGroup": name, "groups": [name]}],
            "groups": [{"name": name}]
        }}));
        assert_refused(
            &cfg,
            &[
                ("$.passwd.users.0.name", "name"),
                ("$.passwd.groups.0.name", "name"),
            ],
        );
        if !name.chars().all(|c| c.is_ascii_digit()) {
            // Digits alone are a gid, which the tools take as a group reference.
            assert_refused(&cfg, &[("$.passwd.users.0.groups.0", "name")]);
        }
    }
    let before = accounts(&s);
    for cfg in [
        serde_json::json!({"passwd": {"users": [{"name": "--help"}]}}),
        serde_json::json!({"passwd": {"groups": [{"name": "--help"}]}}),
    ] {
        let err = apply_unvalidated(&s, ign(cfg.clone()))
            .expect_err("an option-like name must fail, not do nothing");
        assert!(
            err.contains("--help") && err.contains("failed"),
            "{cfg}: {err}"
        );
    }
    assert_eq!(accounts(&s), before);
    // Names the rule accepts are created by the real tools.
    let cfg = ign(serde_json::json!({"passwd": {
        "users": [{"name": "k.user_1", "noCreateHome": true}],
        "groups": [{"name": "k-group$"}]
    }}));
    apply_validated(&s, &cfg).unwrap();
    let (passwd, group) = accounts(&s);
    assert!(String::from_utf8_lossy(&passwd).contains("\nk.user_1:"));
    assert!(String::from_utf8_lossy(&group).contains("\nk-group$:"));
}

#[test]
fn passwd_fields_useradd_refuses_are_validation_errors() {
    let cfg = ign(serde_json::json!({"passwd": {
        "users": [{"name": "u", "gecos": "a:b", "homeDir": "rel", "shell": "sh",
                   "passwordHash": "x\nroot::0:0::/:/bin/sh"}],
        "groups": [{"name": "g", "passwordHash": "a:b"}]
    }}));
    assert_refused(
        &cfg,
        &[
            ("$.passwd.users.0.gecos", "\":\""),
            ("$.passwd.users.0.homeDir", "absolute"),
            ("$.passwd.users.0.shell", "absolute"),
            ("$.passwd.users.0.passwordHash", "line breaks"),
            ("$.passwd.groups.0.passwordHash", "\":\""),
        ],
    );
    let fine = ign(serde_json::json!({"passwd": {"users": [
        {"name": "u", "gecos": "Core User", "homeDir": "/var/home/u", "shell": "", "passwordHash": "$6$abc$def"}
    ]}}));
    assert!(validation_errors(&fine).is_empty());
}
