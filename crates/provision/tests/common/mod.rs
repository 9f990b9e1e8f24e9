//! Helpers shared by the provisioning integration tests: seeded scratch roots, running the
//! Ignition 2.14 oracle and keel's stages, and snapshots of trees for comparison.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use keel_provision::cmdline::KernelCmdline;
use keel_provision::sources::{Platform, SourceEnv};
use keel_provision::stages::{self, Stage, StageEnv};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const ORACLE_BIN: &str = "/usr/lib/dracut/modules.d/30ignition/ignition";

/// Why a test cannot run here, or `None` when it can.
pub fn skip_reason(needs_oracle: bool) -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (chown, useradd --root)".into());
    }
    for tool in ["useradd", "groupadd", "usermod", "systemctl"] {
        if !keel_utils::cmd::have(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    if needs_oracle && !Path::new(ORACLE_BIN).exists() {
        return Some(format!(
            "Ignition 2.14 oracle {ORACLE_BIN} missing (apt-get install ignition)"
        ));
    }
    None
}

/// Records a skip (keel_testsupport::skip) and returns true when the test cannot run.
pub fn skip(test: &str, needs_oracle: bool) -> bool {
    match skip_reason(needs_oracle) {
        Some(r) => {
            keel_testsupport::skip(&format!("{test}: {r}"));
            true
        }
        None => false,
    }
}

/// A root seeded like a Debian system: the host's account files, login.defs, skel and
/// useradd defaults, plus `/etc/systemd/system`.
pub fn seeded_root(dir: &Path) -> PathBuf {
    let root = dir.to_path_buf();
    std::fs::create_dir_all(root.join("etc/default")).unwrap();
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    for f in ["passwd", "group", "shadow", "gshadow", "login.defs"] {
        let src = Path::new("/etc").join(f);
        if src.exists() {
            let out = Command::new("cp")
                .arg("-a")
                .arg(&src)
                .arg(root.join("etc"))
                .status()
                .unwrap();
            assert!(out.success());
        }
    }
    if Path::new("/etc/skel").exists() {
        assert!(Command::new("cp")
            .args(["-a", "/etc/skel"])
            .arg(root.join("etc"))
            .status()
            .unwrap()
            .success());
    }
    if Path::new("/etc/default/useradd").exists() {
        std::fs::copy("/etc/default/useradd", root.join("etc/default/useradd")).unwrap();
    }
    root
}

/// Runs the Ignition 2.14 oracle (stages mode) on `config` into `root`.
pub fn run_oracle(config: &Path, root: &Path) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ignition-oracle.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("stages")
        .arg(config)
        .arg(root)
        .env_remove("IGNITION_CONFIG_FILE")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A stage environment for the `file` platform with everything under `work`.
pub fn stage_env(root: &Path, work: &Path, config: &Path) -> StageEnv {
    StageEnv {
        root: root.to_path_buf(),
        sources: SourceEnv {
            platform: Platform::File,
            cmdline: KernelCmdline::default(),
            system_config_dir: work.join("sysconf"),
            sysfs: work.join("sys"),
            config_file: Some(config.to_path_buf()),
        },
        cache: work.join("ignition.json"),
        neednet: work.join("neednet"),
        state: work.join("state"),
        kargs_helper: "false".into(),
        boot_id: PathBuf::from("/proc/sys/kernel/random/boot_id"),
        luks_key_dir: work.join("luks-keys"),
        fetch_timeout: std::time::Duration::from_secs(10),
    }
}

/// Runs keel's fetch-offline, fetch (when needed) and files stages.
pub fn run_keel(env: &StageEnv) -> anyhow::Result<()> {
    stages::run(Stage::FetchOffline, env)?;
    if !env.cache.exists() {
        stages::run(Stage::Fetch, env)?;
    }
    stages::run(Stage::Files, env)
}

/// One node of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub content: Vec<u8>,
    pub target: String,
    /// Other paths sharing the inode (hard links).
    pub links: Vec<String>,
}

/// Snapshot of every node under `root` (except `root` itself and paths `ignore` accepts).
pub fn snapshot(root: &Path, ignore: &dyn Fn(&str) -> bool) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = format!("/{}", p.strip_prefix(root).unwrap().display());
            if ignore(&rel) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let (kind, content, target) = if ft.is_symlink() {
                (
                    'l',
                    Vec::new(),
                    std::fs::read_link(&p).unwrap().display().to_string(),
                )
            } else if ft.is_dir() {
                stack.push(p.clone());
                ('d', Vec::new(), String::new())
            } else {
                ('f', std::fs::read(&p).unwrap(), String::new())
            };
            if kind == 'f' && m.nlink() > 1 {
                inodes.entry(m.ino()).or_default().push(rel.clone());
            }
            out.insert(
                rel,
                Node {
                    kind,
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    content,
                    target,
                    links: Vec::new(),
                },
            );
        }
    }
    for paths in inodes.values() {
        for p in paths {
            let mut others: Vec<String> = paths.iter().filter(|o| *o != p).cloned().collect();
            others.sort();
            out.get_mut(p).unwrap().links = others;
        }
    }
    out
}

/// Differences between two snapshots, one line each, `path: what (keel) vs (oracle)`.
pub fn diff(keel: &BTreeMap<String, Node>, oracle: &BTreeMap<String, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, k) in keel {
        let Some(o) = oracle.get(p) else {
            out.push(format!("{p}: only in keel ({})", k.kind));
            continue;
        };
        if k.kind != o.kind {
            out.push(format!("{p}: type {} vs {}", k.kind, o.kind));
            continue;
        }
        if k.mode != o.mode {
            out.push(format!("{p}: mode {:o} vs {:o}", k.mode, o.mode));
        }
        if (k.uid, k.gid) != (o.uid, o.gid) {
            out.push(format!(
                "{p}: owner {}:{} vs {}:{}",
                k.uid, k.gid, o.uid, o.gid
            ));
        }
        if k.content != o.content {
            out.push(format!(
                "{p}: content {:?} vs {:?}",
                String::from_utf8_lossy(&k.content),
                String::from_utf8_lossy(&o.content)
            ));
        }
        if k.target != o.target {
            out.push(format!("{p}: link target {} vs {}", k.target, o.target));
        }
        if k.links != o.links {
            out.push(format!("{p}: hard links {:?} vs {:?}", k.links, o.links));
        }
    }
    for p in oracle.keys().filter(|p| !keel.contains_key(*p)) {
        out.push(format!("{p}: only in oracle"));
    }
    out
}

/// One canned answer of the test HTTP server: status and body, served for `path`.
#[derive(Clone)]
pub struct Route {
    pub path: String,
    /// Answer 500 this many times before answering normally.
    pub fail_first: usize,
    pub status: u16,
    pub body: Vec<u8>,
}

impl Route {
    pub fn ok(path: &str, body: impl Into<Vec<u8>>) -> Route {
        Route {
            path: path.into(),
            fail_first: 0,
            status: 200,
            body: body.into(),
        }
    }
}

/// A small HTTP/1.1 server on 127.0.0.1 (plain, or TLS with `tls`), answering `routes` until
/// the returned server is dropped. It counts requests per path.
pub struct TestServer {
    pub port: u16,
    pub hits: std::sync::Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn handle(
    stream: &mut (impl std::io::Read + std::io::Write),
    routes: &[Route],
    hits: &std::sync::Mutex<BTreeMap<String, usize>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let req = String::from_utf8_lossy(&buf).to_string();
    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
    let n = {
        let mut h = hits.lock().unwrap();
        let c = h.entry(path.clone()).or_insert(0);
        *c += 1;
        *c
    };
    let (status, body) = match routes.iter().find(|r| r.path == path) {
        Some(r) if n <= r.fail_first => (500, b"try again".to_vec()),
        Some(r) => (r.status, r.body.clone()),
        None => (404, b"not found".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

/// Starts the server; with `tls`, connections are TLS with that server config.
pub fn serve(routes: Vec<Route>, tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> TestServer {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (h, s) = (hits.clone(), stop.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if s.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut tcp) = stream else { continue };
            let _ = tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            match &tls {
                Some(cfg) => {
                    let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                    let mut t = rustls::StreamOwned::new(conn, tcp);
                    handle(&mut t, &routes, &h);
                    t.conn.send_close_notify();
                    let _ = t.conn.complete_io(&mut t.sock);
                }
                None => handle(&mut tcp, &routes, &h),
            }
        }
    });
    TestServer { port, hits, stop }
}

/// A fresh CA and a server certificate for 127.0.0.1 signed by it: (CA PEM, server config).
pub fn test_ca() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "keel test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), std::sync::Arc::new(cfg))
}

/// A data URL for arbitrary bytes.
pub fn data_url(bytes: &[u8]) -> String {
    use base64::Engine;
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}
