//! `keel deploy REMOTE:REF` and `keel upgrade` on a directory sysroot, pulling from an archive
//! repository served by a real HTTP server on 127.0.0.1: a missing remote, signed commits, the
//! commit-only `--check`, refusal of unsigned and tampered commits (nothing changes), remotes
//! from `/etc/ostree/remotes.d`, a pull that fills the disk, and HTTPS remotes whose CA is in
//! the node's trust store or named by `tls-ca-path`.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use keel_testsupport::http::PyServer;
use keel_testsupport::tls::{Pki, TlsServer};
use keel_testsupport::tools::{CommitOpts, Tool};
use std::fs;
use std::path::{Path, PathBuf};
mod common;

use common::{text, NodeCli, KEEL, REF};
use std::process::Command;

fn keel() -> Tool {
    Tool::Keel(KEEL.into())
}

/// A publisher's archive repository with a signing key, and a client sysroot.
struct Setup {
    _dir: tempfile::TempDir,
    base: PathBuf,
    publish: PathBuf,
    key: PathBuf,
    cli: NodeCli,
}

impl Setup {
    fn new(test: &str, sysroot_in: Option<&Path>) -> Option<Setup> {
        if !keel_testsupport::require(test, &["python3"]) {
            return None;
        }
        let dir = keel_testsupport::scratch_dir("upgrade-remote");
        let base = dir.path().to_path_buf();
        let publish = base.join("publish");
        keel().init(&publish, "archive");
        let key = base.join("release");
        let out = Command::new(KEEL)
            .args(["repo", "keygen"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let sysroot = sysroot_in.map_or_else(|| base.join("sysroot"), Path::to_path_buf);
        let out = Command::new(KEEL)
            .args(["init-sysroot", "--sysroot"])
            .arg(&sysroot)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        Some(Setup {
            _dir: dir,
            base,
            publish,
            key,
            cli: NodeCli { sysroot },
        })
    }

    /// Commit version `v` (a kernel, /usr/etc defaults, and `extra` files) on REF; signed when
    /// `sign`; the summary is re-signed either way.
    fn publish(&self, v: &str, extra: &[(&str, Vec<u8>)], sign: bool) -> String {
        let t = self.base.join(format!("tree-{v}"));
        let k = t.join("usr/lib/modules/6.1.0-test");
        fs::create_dir_all(&k).unwrap();
        fs::create_dir_all(t.join("usr/etc")).unwrap();
        fs::write(k.join("vmlinuz"), "kernel").unwrap();
        fs::write(k.join("initramfs.img"), "initramfs").unwrap();
        fs::write(t.join("usr/etc/os.conf"), format!("version={v}\n")).unwrap();
        for (p, data) in extra {
            let p = t.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }
        let opts = CommitOpts {
            metadata: vec![("version", v)],
            ..CommitOpts::default()
        };
        let c = keel().commit(&self.publish, REF, &t, &opts);
        let key = self.key.to_str().unwrap();
        if sign {
            keel().ok(&self.publish, "sign", &["--key", key, &c]);
        }
        keel().ok(&self.publish, "summary", &["--update", "--sign-key", key]);
        c
    }

    /// Define remote `keel` in the sysroot repository's config (sign-verify with our key).
    fn add_remote(&self, url: &str) {
        let spec = format!("--sign-verify=ed25519={}.pub", self.key.display());
        keel().ok(&self.repo(), "remote", &["add", &spec, "keel", url]);
    }

    fn has_commit(&self, c: &str) -> bool {
        self.repo()
            .join(format!("objects/{}/{}.commit", &c[..2], &c[2..]))
            .exists()
    }
}

fn commitmeta(repo: &Path, c: &str) -> PathBuf {
    repo.join(format!("objects/{}/{}.commitmeta", &c[..2], &c[2..]))
}

#[test]
fn upgrade_pulls_from_the_origin_remote_checks_signatures_and_changes_nothing_on_refusal() {
    let Some(s) = Setup::new("upgrade_pulls_from_the_origin_remote", None) else {
        return;
    };
    let c1 = s.publish("1", &[], true);
    let server = PyServer::start(&s.publish);

    let missing = s.node(&["deploy", "keel:keel/test"]);
    let msg = text(&missing);
    assert!(!missing.status.success(), "{msg}");
    for want in [
        "remote `keel` is not defined",
        "/etc/ostree/remotes.d/keel.conf",
    ] {
        assert!(msg.contains(want), "missing remote: {msg}");
    }

    s.add_remote(&server.url);
    let first = s.node_json(&["deploy", "keel:keel/test", "--json"]);
    assert_eq!(first["result"], "deployed", "{first}");
    assert_eq!(first["commit"], c1.as_str());
    assert!(first["bytes"].as_u64() > Some(0) && first["objects"].as_u64() > Some(0));
    let d1 = s.deployments()[0].clone();
    let origin = fs::read_to_string(
        s.sysroot
            .join(format!("ostree/deploy/keel/deploy/{d1}.origin")),
    );
    assert!(origin.unwrap().contains("refspec=keel:keel/test"));
    let booted = ["--assume-booted", d1.as_str()];

    let none = s.node_ok(&[&["upgrade", "--check"][..], &booted[..]].concat());
    assert!(none.contains("No upgrade available"), "{none}");

    let c2 = s.publish("2", &[("usr/share/new-in-2", b"two".to_vec())], true);
    let check = s.node_json(&[&["upgrade", "--check", "--json"][..], &booted[..]].concat());
    assert_eq!(check["result"], "available", "{check}");
    assert_eq!(check["version"], "2");
    assert_eq!(check["commit"], c2.as_str());
    assert!(!s.has_commit(&c2), "--check stored the commit");
    assert_eq!(s.remote_ref().as_deref(), Some(c1.as_str()));

    // v3 unsigned, then with v2's signature (tampered): refused, nothing changes.
    let c3 = s.publish("3", &[("usr/share/new-in-3", b"three".to_vec())], false);
    let before = s.snapshot();
    let unsigned = s.node(&[&["upgrade"][..], &booted[..]].concat());
    let msg = text(&unsigned);
    assert!(!unsigned.status.success(), "{msg}");
    assert!(
        msg.contains("refusing commit") && msg.contains("remote `keel`"),
        "{msg}"
    );
    assert_eq!(
        s.snapshot(),
        before,
        "an unsigned commit changed the sysroot"
    );
    fs::copy(commitmeta(&s.publish, &c2), commitmeta(&s.publish, &c3)).unwrap();
    let tampered = s.node(&[&["upgrade"][..], &booted[..]].concat());
    let msg = text(&tampered);
    assert!(
        !tampered.status.success() && msg.contains("refusing commit"),
        "{msg}"
    );
    assert_eq!(
        s.snapshot(),
        before,
        "a tampered commit changed the sysroot"
    );
    assert!(!s.has_commit(&c3), "a refused commit was stored");

    let key = s.key.to_str().unwrap();
    fs::remove_file(commitmeta(&s.publish, &c3)).unwrap();
    keel().ok(&s.publish, "sign", &["--key", key, &c3]);
    let up = s.node_json(&[&["upgrade", "--json"][..], &booted[..]].concat());
    assert_eq!(up["result"], "staged", "{up}");
    assert_eq!(up["version"], "3");
    assert!(
        up["bytes"].as_u64() > Some(0) && up["total_ms"].as_u64().is_some(),
        "{up}"
    );
    assert!(s.staged());
    assert_eq!(s.remote_ref().as_deref(), Some(c3.as_str()));
    s.node_ok(&[&["finalize"][..], &booted[..]].concat());
    let d3 = s
        .deployments()
        .into_iter()
        .find(|d| d.starts_with(&c3))
        .unwrap();
    let root3 = s.sysroot.join("ostree/deploy/keel/deploy").join(&d3);
    assert_eq!(
        fs::read(root3.join("usr/share/new-in-3")).unwrap(),
        b"three"
    );

    // The remote from /etc/ostree/remotes.d of the booted deployment, as Ignition writes it.
    keel().ok(&s.repo(), "remote", &["delete", "keel"]);
    let conf = root3.join("etc/ostree/remotes.d/keel.conf");
    fs::create_dir_all(conf.parent().unwrap()).unwrap();
    fs::write(
        &conf,
        format!(
            "[remote \"keel\"]\nurl={}\nsign-verify=true\nverification-ed25519-file={key}.pub\n",
            server.url
        ),
    )
    .unwrap();
    let c4 = s.publish("4", &[], true);
    let booted3 = ["--assume-booted", d3.as_str()];
    let check = s.node_json(&[&["upgrade", "--check", "--json"][..], &booted3[..]].concat());
    assert_eq!(check["commit"], c4.as_str(), "{check}");
    let dep = s.node_json(&[&["deploy", "2", "--json"][..], &booted3[..]].concat());
    assert_eq!(
        dep["commit"],
        c2.as_str(),
        "deploy VERSION from the remote history: {dep}"
    );
    assert_eq!(dep["result"], "staged");
}

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_pull_that_fills_the_disk_names_the_repository_and_changes_nothing() {
    if !keel_testsupport::is_root() {
        keel_testsupport::skip("a_pull_that_fills_the_disk: mounting a small tmpfs needs root");
        return;
    }
    let outer = keel_testsupport::scratch_dir("upgrade-full");
    let mnt = outer.path().join("small");
    fs::create_dir_all(&mnt).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let _mount = Tmpfs(mnt.clone());
    let Some(s) = Setup::new("a_pull_that_fills_the_disk", Some(&mnt)) else {
        return;
    };
    s.publish("1", &[], false);
    let server = PyServer::start(&s.publish);
    keel().ok(
        &s.repo(),
        "remote",
        &["add", "--no-sign-verify", "keel", &server.url],
    );
    s.node_ok(&["deploy", "keel:keel/test"]);
    let d1 = s.deployments()[0].clone();
    let mut rng = keel_testsupport::rng::Rng::new(7);
    let mut big = vec![0u8; 4 << 20];
    rng.fill(&mut big);
    s.publish("2", &[("usr/share/big", big)], false);
    let before = s.snapshot();
    let out = s.node(&["upgrade", "--assume-booted", &d1]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    let repo = s.repo().display().to_string();
    for want in [repo.as_str(), "is full", "free space"] {
        assert!(msg.contains(want), "want {want:?} in: {msg}");
    }
    assert_eq!(s.snapshot(), before, "a failed pull changed the sysroot");
}

/// Writes remote `keel` at `url` (signed commits), with `extra` lines, into the repository
/// config, replacing any earlier definition.
fn set_remote(s: &Setup, url: &str, extra: &str) {
    let _ = keel().output(&s.repo(), "remote", &["delete", "keel"]);
    s.add_remote(url);
    if !extra.is_empty() {
        let config = s.repo().join("config");
        let mut text = fs::read_to_string(&config).unwrap();
        text.push_str(extra);
        fs::write(config, text).unwrap();
    }
}

#[test]
fn upgrade_over_https_trusts_the_nodes_ca_store_and_tls_ca_path() {
    if !keel_testsupport::require("upgrade_over_https", &["openssl"]) {
        return;
    }
    let Some(s) = Setup::new("upgrade_over_https", None) else {
        return;
    };
    let pki = Pki::new(&s.base.join("pki"), "Keel updates CA");
    let other = Pki::new(&s.base.join("other"), "Unrelated CA");
    let ca = fs::read(&pki.ca).unwrap();
    // The image ships the node's store with the in-house CA in it (as update-ca-certificates
    // writes /etc/ssl/certs/ca-certificates.crt).
    let store = "usr/etc/ssl/certs/ca-certificates.crt";
    s.publish("1", &[(store, ca.clone())], true);
    let server = TlsServer::start(&s.publish, &pki);

    // Before the first deployment the node's store is the running system's, without the CA.
    set_remote(&s, &server.url, "");
    let refused = s.node(&["deploy", "keel:keel/test"]);
    let msg = text(&refused);
    assert!(!refused.status.success(), "{msg}");
    for want in [
        server.url.as_str(),
        "TLS certificate refused",
        "not signed by a CA this client trusts",
        "/etc/ssl/certs/ca-certificates.crt",
        "tls-ca-path",
        "nothing was changed",
    ] {
        assert!(msg.contains(want), "want {want:?} in: {msg}");
    }
    assert!(
        !msg.contains("gave up after"),
        "a refused certificate is retried: {msg}"
    );
    assert!(s.remote_ref().is_none() && s.deployments().is_empty());

    // OSTree's tls-ca-path: only that bundle is trusted; a missing one is named.
    let gone = s.base.join("gone.pem");
    set_remote(
        &s,
        &server.url,
        &format!("tls-ca-path={}\n", gone.display()),
    );
    let missing = s.node(&["deploy", "keel:keel/test"]);
    let msg = text(&missing);
    assert!(
        !missing.status.success() && msg.contains("gone.pem"),
        "{msg}"
    );
    set_remote(
        &s,
        &server.url,
        &format!("tls-ca-path={}\n", pki.ca.display()),
    );
    let first = s.node_json(&["deploy", "keel:keel/test", "--json"]);
    assert_eq!(first["result"], "deployed", "{first}");
    let d1 = s.deployments()[0].clone();
    let etc_store = s
        .sysroot
        .join("ostree/deploy/keel/deploy")
        .join(&d1)
        .join("etc/ssl/certs/ca-certificates.crt");
    assert_eq!(fs::read(&etc_store).unwrap(), ca);

    // From now on the node's store is the deployment's /etc: without the CA, refused...
    set_remote(&s, &server.url, "");
    let c2 = s.publish("2", &[(store, ca.clone())], true);
    fs::copy(&other.ca, &etc_store).unwrap();
    let booted = ["--assume-booted", d1.as_str()];
    let before = s.snapshot();
    let untrusted = s.node(&[&["upgrade"][..], &booted[..]].concat());
    let msg = text(&untrusted);
    assert!(!untrusted.status.success(), "{msg}");
    let named = etc_store.display().to_string();
    for want in ["not signed by a CA this client trusts", named.as_str()] {
        assert!(msg.contains(want), "want {want:?} in: {msg}");
    }
    assert_eq!(
        s.snapshot(),
        before,
        "a refused certificate changed the sysroot"
    );

    // ...and with the CA added to it, `keel upgrade` pulls over HTTPS.
    fs::write(&etc_store, [fs::read(&other.ca).unwrap(), ca].concat()).unwrap();
    let up = s.node_json(&[&["upgrade", "--json"][..], &booted[..]].concat());
    assert_eq!(up["result"], "staged", "{up}");
    assert_eq!(up["commit"], c2.as_str(), "{up}");
    assert_eq!(s.remote_ref().as_deref(), Some(c2.as_str()));
    assert!(server.get_paths().iter().any(|p| p.ends_with(".filez")));
}

impl std::ops::Deref for Setup {
    type Target = NodeCli;
    fn deref(&self) -> &NodeCli {
        &self.cli
    }
}
