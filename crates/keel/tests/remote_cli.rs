//! `keel repo` remote commands end to end through the binary, against servers on 127.0.0.1:
//! keygen, sign and verify; remotes; a signed pull through `remote add --sign-verify`, and its
//! refusal with the wrong key; JSON progress; `pull-local --depth`; `pull --mirror --depth -1`;
//! `summary --view`; the dev server; and `--help` examples.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_testsupport::http::PyServer;
use keel_testsupport::tools::{CommitOpts, Tool};
use std::path::Path;
use std::process::{Command, Output};

fn keel() -> Tool {
    Tool::Keel(env!("CARGO_BIN_EXE_keel").into())
}

fn run(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("repo")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An archive repo with three commits on `test/ref`; returns them, oldest first.
fn history(dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    let repo = dir.join("src");
    keel().init(&repo, "archive");
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let mut commits = Vec::new();
    for i in 0..3 {
        std::fs::write(tree.join(format!("file{i}")), format!("content {i}\n")).unwrap();
        let opts = CommitOpts {
            timestamp: Some(1_577_836_800 + i),
            ..CommitOpts::default()
        };
        commits.push(keel().commit(&repo, "test/ref", &tree, &opts));
    }
    (repo, commits)
}

#[test]
fn keys_sign_verify_and_signed_pull() {
    let d = tempfile::tempdir().unwrap();
    let (src, commits) = history(d.path());
    let tip = commits.last().unwrap();
    let key = d.path().join("release");
    let out = run(d.path(), &["keygen", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let public = d.path().join("release.pub");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let sign = run(&src, &["sign", "--key", key.to_str().unwrap(), "test/ref"]);
    assert!(text(&sign).contains("signed by"), "{}", text(&sign));
    let verify = run(
        &src,
        &[
            "sign",
            "--verify",
            "--keys",
            public.to_str().unwrap(),
            "test/ref",
        ],
    );
    assert!(
        verify.status.success() && text(&verify).contains("good ed25519 signature"),
        "{}",
        text(&verify)
    );
    keel().ok(
        &src,
        "summary",
        &["--update", "--sign-key", key.to_str().unwrap()],
    );
    let view = keel().ok(&src, "summary", &["--view"]);
    assert!(
        view.contains("test/ref") && view.contains(tip.as_str()),
        "{view}"
    );
    // The big-endian timestamp is shown as this year's date, not as a swapped number.
    let year: u32 = view
        .lines()
        .find_map(|l| l.strip_prefix("ostree.summary.last-modified: "))
        .and_then(|v| v.get(..4))
        .and_then(|y| y.parse().ok())
        .unwrap_or_else(|| panic!("no last-modified date in:\n{view}"));
    assert!((2024..2200).contains(&year), "{view}");

    let server = PyServer::start(&src);
    let good = d.path().join("good");
    keel().init(&good, "bare-user");
    let spec = format!("--sign-verify=ed25519={}", public.display());
    keel().ok(&good, "remote", &["add", &spec, "origin", &server.url]);
    let cfg = std::fs::read_to_string(good.join("config")).unwrap();
    for line in [
        "[remote \"origin\"]",
        "sign-verify=true",
        "gpg-verify=false",
        "verification-ed25519-file=",
    ] {
        assert!(cfg.contains(line), "{cfg}");
    }
    let out = run(&good, &["--json-progress", "pull", "origin", "test/ref"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "finished" && e["done"].as_u64() > Some(0)),
        "JSON progress: {stderr}"
    );
    assert_eq!(keel().rev_parse(&good, "origin:test/ref"), *tip);

    // The same server with a remote that trusts another key: refused, no ref written.
    let other = d.path().join("other");
    assert!(run(d.path(), &["keygen", other.to_str().unwrap()])
        .status
        .success());
    let bad = d.path().join("bad");
    keel().init(&bad, "bare-user");
    let spec = format!("--sign-verify=ed25519={}.pub", other.display());
    keel().ok(&bad, "remote", &["add", &spec, "origin", &server.url]);
    let out = run(&bad, &["pull", "origin", "test/ref"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refusing summary"), "{}", text(&out));
    assert!(keel().ok(&bad, "refs", &[]).trim().is_empty());
}

#[test]
fn remotes_pull_local_depth_and_mirror() {
    let d = tempfile::tempdir().unwrap();
    let (src, commits) = history(d.path());
    let client = d.path().join("client");
    keel().init(&client, "bare-user");
    keel().ok(
        &client,
        "remote",
        &["add", "--no-sign-verify", "a", "http://127.0.0.1:1/"],
    );
    keel().ok(
        &client,
        "remote",
        &["add", "--no-sign-verify", "b", "file:///srv/repo"],
    );
    assert_eq!(keel().ok(&client, "remote", &["list"]), "a\nb\n");
    let dup = run(
        &client,
        &["remote", "add", "--no-sign-verify", "a", "http://x/"],
    );
    assert!(text(&dup).contains("already exists"), "{}", text(&dup));
    keel().ok(&client, "remote", &["delete", "a"]);
    assert_eq!(
        keel().ok(&client, "remote", &["list", "--show-urls"]),
        "b  file:///srv/repo\n"
    );
    assert!(
        Command::new("ostree")
            .args(["remote", "list", "-u"])
            .arg(format!("--repo={}", client.display()))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("file:///srv/repo"))
            .unwrap_or(true),
        "ostree reads keel's remote config"
    );

    // pull-local with one parent: tip and parent, not the first commit; a local ref.
    let local = d.path().join("local");
    keel().init(&local, "bare-user");
    keel().ok(
        &local,
        "pull-local",
        &["--depth", "1", src.to_str().unwrap(), "test/ref"],
    );
    assert_eq!(keel().rev_parse(&local, "test/ref"), commits[2]);
    let has = |repo: &Path, c: &str| {
        repo.join(format!("objects/{}/{}.commit", &c[..2], &c[2..]))
            .exists()
    };
    assert!(has(&local, &commits[1]) && !has(&local, &commits[0]));
    assert!(keel().fsck(&local).status.success());

    // A file:// remote reads the source repository directly (objects verified as over HTTP).
    let url = format!("file://{}", src.display());
    keel().ok(
        &client,
        "remote",
        &["add", "--no-sign-verify", "local", &url],
    );
    keel().ok(&client, "pull", &["local", "test/ref"]);
    assert_eq!(keel().rev_parse(&client, "local:test/ref"), commits[2]);

    // --mirror --depth -1 over HTTP from the dev server: refs/heads and the whole history.
    let port_file = d.path().join("serve.out");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["repo", "--repo"])
        .arg(&src)
        .args(["serve", "--port", "0"])
        .stdout(std::fs::File::create(&port_file).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = (0..100)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let s = std::fs::read_to_string(&port_file).unwrap_or_default();
            s.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_string)
        })
        .expect("serve printed its URL");
    let mirror = d.path().join("mirror");
    keel().init(&mirror, "archive");
    keel().ok(
        &mirror,
        "remote",
        &["add", "--no-sign-verify", "origin", &url],
    );
    keel().ok(
        &mirror,
        "pull",
        &["--mirror", "--depth=-1", "origin", "test/ref"],
    );
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert_eq!(keel().rev_parse(&mirror, "test/ref"), commits[2]);
    assert!(commits.iter().all(|c| has(&mirror, c)));
    assert!(keel().fsck(&mirror).status.success());
}

#[test]
fn remote_commands_have_help_with_examples() {
    for sub in [
        vec!["remote", "add"],
        vec!["remote", "list"],
        vec!["remote", "delete"],
        vec!["pull"],
        vec!["pull-local"],
        vec!["summary"],
        vec!["sign"],
        vec!["keygen"],
        vec!["serve"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_keel"))
            .arg("repo")
            .args(&sub)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && help.contains("Example"),
            "{sub:?}: {help}"
        );
    }
}
