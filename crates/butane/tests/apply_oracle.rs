//! End-to-end check of the translation with the real Ignition 2.14: a keel Butane config with
//! inline, local, appended, compressed and tree contents is translated, applied with
//! `ignition-apply --offline` into a scratch root, and every written file, mode, link and unit
//! must be exactly what the Butane config asked for. Checks that the data URLs (percent,
//! base64 and gzip+base64) decode in Ignition's fetcher to the original bytes.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_butane::{translate, Options};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const IGNITION: &str = "/usr/lib/dracut/modules.d/30ignition/ignition";

const BUTANE: &str = r##"variant: keel
version: 1.0.0
storage:
  files:
    - path: /etc/printable
      contents:
        inline: "ASCII !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~ and ünïcödé\n"
    - path: /etc/repetitive
      mode: 0600
      contents:
        inline: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
    - path: /opt/binary
      contents:
        local: binary
    - path: /etc/appended
      contents:
        inline: "first\n"
      append:
        - local: tail.txt
        - inline: "last\n"
  trees:
    - local: tree
      path: /usr/local/lib/demo
  directories:
    - path: /var/lib/demo
      mode: 0750
  links:
    - path: /etc/demo-link
      target: /usr/local/lib/demo/run.sh
systemd:
  units:
    - name: demo.service
      contents_local: demo.service
      dropins:
        - name: env.conf
          contents: "[Service]\nEnvironment=A=1\n"
"##;

#[test]
fn ignition_writes_exactly_what_butane_asked_for() {
    if !Path::new(IGNITION).exists() {
        keel_testsupport::skip(&format!(
            "ignition_writes_exactly_what_butane_asked_for: {IGNITION} not installed (apt-get install ignition)"
        ));
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("files");
    std::fs::create_dir_all(files.join("tree/sub")).unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    std::fs::write(files.join("binary"), &binary).unwrap();
    std::fs::write(files.join("tail.txt"), "middle 100%\n").unwrap();
    std::fs::write(
        files.join("demo.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    std::fs::write(files.join("tree/run.sh"), "#!/bin/sh\necho demo\n").unwrap();
    std::fs::set_permissions(
        files.join("tree/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(files.join("tree/sub/data.txt"), "x".repeat(5000)).unwrap();
    std::os::unix::fs::symlink("sub/data.txt", files.join("tree/data-link")).unwrap();

    let out = translate(
        BUTANE.as_bytes(),
        &Options {
            files_dir: Some(files),
            strict: true,
            pretty: false,
        },
    )
    .unwrap();
    // 2.14 knows 3.4.0-experimental, which has every field this config uses.
    let mut cfg = out.config.clone();
    cfg.ignition.version = Some("3.4.0-experimental".into());
    let ign = work.path().join("config.ign");
    std::fs::write(&ign, serde_json::to_string(&cfg).unwrap()).unwrap();
    assert!(
        out.json.contains("\"compression\":\"gzip\""),
        "the test should cover gzip: {}",
        out.json
    );

    let stubs = work.path().join("stubs");
    std::fs::create_dir(&stubs).unwrap();
    std::os::unix::fs::symlink(IGNITION, stubs.join("ignition-apply")).unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Command::new(stubs.join("ignition-apply"))
        .env("PATH", path)
        .env("container", "1")
        .arg("--offline")
        .arg("--root")
        .arg(&root)
        .arg(&ign)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "ignition-apply failed:\n{}",
        String::from_utf8_lossy(&run.stdout)
    );

    let read = |p: &str| std::fs::read(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mode = |p: &str| {
        std::fs::symlink_metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(
        read("etc/printable"),
        "ASCII !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~ and ünïcödé\n".as_bytes()
    );
    assert_eq!(
        read("etc/repetitive"),
        "0123456789abcdef"
            .repeat(6)
            .into_bytes()
            .into_iter()
            .chain(*b"\n")
            .collect::<Vec<u8>>()
    );
    assert_eq!(mode("etc/repetitive"), 0o600);
    assert_eq!(read("opt/binary"), binary);
    assert_eq!(mode("opt/binary"), 0o644);
    assert_eq!(read("etc/appended"), b"first\nmiddle 100%\nlast\n");
    assert_eq!(read("usr/local/lib/demo/run.sh"), b"#!/bin/sh\necho demo\n");
    assert_eq!(mode("usr/local/lib/demo/run.sh"), 0o755);
    assert_eq!(
        read("usr/local/lib/demo/sub/data.txt"),
        "x".repeat(5000).into_bytes()
    );
    assert_eq!(
        std::fs::read_link(root.join("usr/local/lib/demo/data-link")).unwrap(),
        Path::new("sub/data.txt")
    );
    assert_eq!(
        std::fs::read_link(root.join("etc/demo-link")).unwrap(),
        Path::new("/usr/local/lib/demo/run.sh")
    );
    assert_eq!(mode("var/lib/demo"), 0o750);
    assert_eq!(
        read("etc/systemd/system/demo.service"),
        b"[Service]\nExecStart=/bin/true\n"
    );
    assert_eq!(
        read("etc/systemd/system/demo.service.d/env.conf"),
        b"[Service]\nEnvironment=A=1\n"
    );
}
