//! CLI tests for `keel ignition validate` and `keel butane`, run against the built binary.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn keel(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn validate_exit_codes_and_report_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, i32, &[&str])] = &[
        (r#"{"ignition":{"version":"3.4.0"}}"#, 0, &[]),
        (r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/a","colour":"x"}]}}"#, 0, &["warning at $.storage.files.0.colour, line 1 col 66: Unused key colour"]),
        (
            "{\"ignition\":{\"version\":\"3.3.0\"},\n \"storage\":{\"files\":[{\"path\":\"rel\"},{\"path\":\"/b\",\"mode\":\"644\"}]}}",
            1,
            &["error at $.storage.files.0.path, line 2 col 30: path not absolute", "error at $.storage.files.1.mode, line 2 col 57: json: cannot unmarshal string into a value of type int"],
        ),
        ("{\"ignition\":{\"version\":\"9.0.0\"}}", 1, &["error at $.ignition.version, line 1 col 24: unsupported config version \"9.0.0\"; this tool accepts 3.0.0 through 3.5.0 and 3.6.0-experimental"]),
        ("{} trailing", 1, &["error at line 1 col 4: invalid character 't' after top-level value"]),
    ];
    for (i, (config, code, lines)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("c{i}.ign"));
        std::fs::write(&file, config).unwrap();
        for out in [
            keel(&["ignition", "validate", file.to_str().unwrap()], b""),
            keel(&["ignition", "validate", "-"], config.as_bytes()),
        ] {
            assert_eq!(
                out.status.code(),
                Some(*code),
                "{config}: {}",
                text(&out.stderr)
            );
            let got: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
            assert_eq!(got, *lines, "{config}");
            if *code == 1 {
                assert!(
                    text(&out.stderr).contains("the config is invalid"),
                    "{}",
                    text(&out.stderr)
                );
            }
        }
    }
    let missing = keel(&["ignition", "validate", "/nonexistent/x.ign"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("/nonexistent/x.ign"));
}

#[test]
fn validate_json_is_one_document() {
    let config =
        "{\"ignition\":{\"version\":\"3.3.0\"},\"storage\":{\"files\":[{\"path\":\"rel\"}]}}";
    let out = keel(&["ignition", "validate", "--json", "-"], config.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    keel_testsupport::schema::assert_valid("ignition-validate", &v);
    assert_eq!(
        text(&out.stdout),
        "{\"schema_version\":1,\"valid\":false,\"reports\":[{\"severity\":\"error\",\"path\":\"$.storage.files.0.path\",\"pos\":{\"line\":1,\"col\":61},\"message\":\"path not absolute\"}]}\n"
    );
}

const BUTANE: &str = "variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /etc/motd\n      mode: 0644\n      contents:\n        local: motd\npasswd:\n  users:\n    - name: core\n      ssh_authorized_keys: [ssh-ed25519 AAAA]\n";

#[test]
fn butane_translates_and_output_validates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("motd"), "welcome to keel\n").unwrap();
    let files = dir.path().to_str().unwrap();
    let out = keel(&["butane", "--files-dir", files], BUTANE.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json = text(&out.stdout);
    assert_eq!(
        json,
        "{\"ignition\":{\"version\":\"3.3.0\"},\"passwd\":{\"users\":[{\"name\":\"core\",\"sshAuthorizedKeys\":[\"ssh-ed25519 AAAA\"]}]},\"storage\":{\"files\":[{\"contents\":{\"compression\":\"\",\"source\":\"data:,welcome%20to%20keel%0A\"},\"mode\":420,\"path\":\"/etc/motd\"}]}}\n"
    );
    let check = keel(&["ignition", "validate", "-"], json.as_bytes());
    assert!(check.status.success(), "{}", text(&check.stdout));
    if Path::new("/usr/bin/ignition-validate").exists() {
        let file = dir.path().join("out.ign");
        std::fs::write(&file, &json).unwrap();
        let oracle = Command::new("/usr/bin/ignition-validate")
            .arg(&file)
            .output()
            .unwrap();
        assert!(oracle.status.success(), "{}", text(&oracle.stdout));
    } else {
        keel_testsupport::skip("butane_translates_and_output_validates (part): ignition-validate not installed (apt-get install ignition); not cross-checking the butane output");
    }

    let input = dir.path().join("config.bu");
    std::fs::write(&input, BUTANE).unwrap();
    let output = dir.path().join("config.ign");
    let written = keel(
        &[
            "butane",
            "-p",
            "-d",
            files,
            "-o",
            output.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert!(written.status.success(), "{}", text(&written.stderr));
    assert!(written.stdout.is_empty());
    let pretty = std::fs::read_to_string(&output).unwrap();
    assert!(
        pretty.starts_with("{\n  \"ignition\": {\n    \"version\": \"3.3.0\"\n  },"),
        "{pretty}"
    );
    assert!(pretty.contains("\"mode\": 420,"), "{pretty}");
    assert!(
        keel(&["ignition", "validate", output.to_str().unwrap()], b"")
            .status
            .success()
    );
}

/// `-o` onto a device or FIFO writes through it: a rename would replace `-o /dev/null` with a
/// regular file for the whole machine. Tried with a FIFO and a null device made in a temp dir.
#[test]
fn butane_output_to_a_device_or_fifo_writes_through_it() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("config.bu");
    std::fs::write(&input, "variant: keel\nversion: 1.0.0\n").unwrap();

    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = keel(
        &[
            "butane",
            "-o",
            fifo.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(reader.join().unwrap().contains("\"ignition\""));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    let null = dir.path().join("null");
    let made = Command::new("mknod")
        .args(["-m", "666"])
        .arg(&null)
        .args(["c", "1", "3"])
        .status();
    assert!(
        made.unwrap().success(),
        "mknod needs root: run the suite as root"
    );
    let out = keel(
        &[
            "butane",
            "-o",
            null.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::metadata(&null)
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn butane_strict_and_errors() {
    let warns =
        "variant: keel\nversion: 1.0.0\nstorage:\n  files:\n    - path: /etc/a\n      mode: 600\n";
    let lax = keel(&["butane"], warns.as_bytes());
    assert!(lax.status.success());
    assert!(text(&lax.stderr).contains("warning at $.storage.files.0.mode, line 6 col 13: unreasonable mode would be reasonable if specified in octal"), "{}", text(&lax.stderr));
    let strict = keel(&["butane", "--strict"], warns.as_bytes());
    assert_eq!(strict.status.code(), Some(1));
    assert!(strict.stdout.is_empty());
    assert!(text(&strict.stderr).contains("config produced warnings and --strict was specified"));

    let bad = "variant: keel\nversion: 1.0.0\nstorage:\n  files:\n    - path: relative\n      contents:\n        local: x\n";
    let out = keel(&["butane"], bad.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error at $.storage.files.0.path, line 5 col 13: path not absolute"),
        "{err}"
    );
    assert!(err.contains("error at $.storage.files.0.contents.local, line 7 col 16: local file paths are relative to a files directory that must be specified with -d/--files-dir"), "{err}");
}
