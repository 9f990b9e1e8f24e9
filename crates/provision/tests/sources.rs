//! Config sources and remote resources through the real stages: HTTP with retries and the total
//! timeout, HTTPS with the config's CA bundle, TFTP against Debian's tftpd-hpa, the kernel
//! command line, QEMU's fw_cfg entry, base configs, and the offline/online stage split.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use keel_provision::cmdline::KernelCmdline;
use keel_provision::sources::{Platform, QEMU_FW_CFG};
use keel_provision::stages::{self, Stage};
use sha2::Digest;
use std::path::Path;
use std::time::{Duration, Instant};

fn config(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn file_config(files: &[(&str, &str)]) -> serde_json::Value {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(p, src)| serde_json::json!({"path": p, "contents": {"source": src}}))
        .collect();
    serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"files": files}})
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn offline_stage_defers_to_fetch_over_http_with_retries_gzip_and_hash() {
    let child = config(file_config(&[("/etc/from-child", "data:,child")]));
    let gz = gzip(&child);
    let server = serve(
        vec![
            Route {
                fail_first: 2,
                ..Route::ok("/child.ign.gz", gz)
            },
            Route::ok("/motd", "served over http\n"),
        ],
        None,
    );
    let base = format!("http://127.0.0.1:{}", server.port);
    let hash = format!("sha512-{}", hex::encode(sha2::Sha512::digest(&child)));
    let mut user = file_config(&[("/etc/motd", &format!("{base}/motd"))]);
    user["ignition"]["config"] = serde_json::json!({"merge": [{"source": format!("{base}/child.ign.gz"), "compression": "gzip", "verification": {"hash": hash}}]});
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = tmp.path().join("user.ign");
    std::fs::write(&cfg_path, config(user)).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let env = stage_env(&root, &tmp.path().join("work"), &cfg_path);

    stages::run(Stage::FetchOffline, &env).unwrap();
    assert!(env.neednet.exists(), "fetch-offline must flag neednet");
    assert!(
        !env.cache.exists(),
        "no cache while the config needs the network"
    );

    stages::run(Stage::Fetch, &env).unwrap();
    assert!(env.cache.exists());
    assert_eq!(
        server.hits.lock().unwrap()["/child.ign.gz"],
        3,
        "two 500s, then success"
    );
    stages::run(Stage::Files, &env).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("etc/from-child")).unwrap(),
        "child"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/motd")).unwrap(),
        "served over http\n"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&env.state).unwrap()).unwrap();
    assert_eq!(state["fetchedConfigs"][1]["kind"], "merge", "{state}");
}

#[test]
fn fetch_failures_name_the_source_and_the_cause() {
    let server = serve(
        vec![Route {
            fail_first: usize::MAX,
            ..Route::ok("/always-500", "x")
        }],
        None,
    );
    let base = format!("http://127.0.0.1:{}", server.port);
    let cases = [
        (
            format!("{base}/missing.ign"),
            30,
            "$.ignition.config.merge.0 (http://127.0.0.1",
            "HTTP 404",
        ),
        (
            format!("{base}/always-500"),
            2,
            "$.ignition.config.merge.0",
            "gave up after",
        ),
        (
            format!("{base}/always-500"),
            2,
            "ignition.timeouts.httpTotal",
            "HTTP 500",
        ),
    ];
    for (url, total, want_where, want_why) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let cfg_path = tmp.path().join("user.ign");
        let user = serde_json::json!({"ignition": {"version": "3.3.0", "timeouts": {"httpTotal": total}, "config": {"merge": [{"source": url}]}}});
        std::fs::write(&cfg_path, config(user)).unwrap();
        let env = stage_env(tmp.path(), &tmp.path().join("work"), &cfg_path);
        let start = Instant::now();
        let err = format!("{:#}", stages::run(Stage::Fetch, &env).unwrap_err());
        assert!(
            start.elapsed() < Duration::from_secs(total as u64 + 5),
            "httpTotal not honoured: {:?}",
            start.elapsed()
        );
        assert!(
            err.contains(want_where) && err.contains(want_why),
            "{url}: {err}"
        );
        assert!(!env.cache.exists());
    }
}

#[test]
fn user_config_fetch_gives_up_after_the_fetch_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let mut env = stage_env(
        tmp.path(),
        &tmp.path().join("work"),
        &tmp.path().join("unused.ign"),
    );
    env.sources.platform = Platform::Metal;
    env.sources.cmdline = KernelCmdline::parse(&format!(
        "ignition.config.url=http://127.0.0.1:{port}/user.ign"
    ));
    env.fetch_timeout = Duration::from_secs(2);
    let start = Instant::now();
    let err = format!("{:#}", stages::run(Stage::Fetch, &env).unwrap_err());
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.contains("ignition.config.url=http://127.0.0.1") && err.contains("gave up after"),
        "{err}"
    );
}

#[test]
fn http_proxy_with_no_proxy_exceptions() {
    let child = config(file_config(&[("/etc/via-proxy", "data:,proxied")]));
    // The proxy is a plain server on 127.0.0.1 that answers the absolute URL; the proxied host
    // name is never resolved or contacted.
    let proxy = serve(
        vec![Route::ok("http://config.example.invalid/child.ign", child)],
        None,
    );
    let direct = serve(vec![Route::ok("/direct", "direct\n")], None);
    let mut user = file_config(&[(
        "/etc/direct",
        &format!("http://127.0.0.1:{}/direct", direct.port),
    )]);
    user["ignition"]["proxy"] = serde_json::json!({"httpProxy": format!("http://127.0.0.1:{}", proxy.port), "noProxy": ["127.0.0.1"]});
    user["ignition"]["config"] =
        serde_json::json!({"merge": [{"source": "http://config.example.invalid/child.ign"}]});
    let tmp = tempfile::tempdir().unwrap();
    let cfg_path = tmp.path().join("user.ign");
    std::fs::write(&cfg_path, config(user)).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let env = stage_env(&root, &tmp.path().join("work"), &cfg_path);
    stages::run(Stage::Fetch, &env).unwrap();
    stages::run(Stage::Files, &env).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("etc/via-proxy")).unwrap(),
        "proxied"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/direct")).unwrap(),
        "direct\n"
    );
    assert_eq!(
        proxy
            .hits
            .lock()
            .unwrap()
            .get("http://config.example.invalid/child.ign"),
        Some(&1)
    );
    assert_eq!(
        direct.hits.lock().unwrap().get("/direct"),
        Some(&1),
        "noProxy host fetched directly"
    );
}

#[test]
fn https_uses_the_configs_ca_bundle() {
    let (ca_pem, tls) = test_ca();
    let child = config(file_config(&[("/etc/tls-child", "data:,over%20tls")]));
    let server = serve(vec![Route::ok("/child.ign", child)], Some(tls));
    let url = format!("https://127.0.0.1:{}/child.ign", server.port);
    for with_ca in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let mut ign = serde_json::json!({"version": "3.3.0", "timeouts": {"httpTotal": 2}, "config": {"merge": [{"source": url}]}});
        if with_ca {
            ign["security"] = serde_json::json!({"tls": {"certificateAuthorities": [{"source": data_url(ca_pem.as_bytes())}]}});
        }
        let cfg_path = tmp.path().join("user.ign");
        std::fs::write(&cfg_path, config(serde_json::json!({"ignition": ign}))).unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let env = stage_env(&root, &tmp.path().join("work"), &cfg_path);
        let result = stages::run(Stage::Fetch, &env).and_then(|_| stages::run(Stage::Files, &env));
        if with_ca {
            result.unwrap();
            assert_eq!(
                std::fs::read_to_string(root.join("etc/tls-child")).unwrap(),
                "over tls"
            );
        } else {
            let err = format!("{:#}", result.unwrap_err());
            assert!(
                err.contains("certificate") || err.contains("UnknownIssuer"),
                "{err}"
            );
        }
    }
}

#[test]
fn kernel_cmdline_qemu_fw_cfg_and_base_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut env = stage_env(&root, &work, &tmp.path().join("unused.ign"));
    // Base configs: base.d then base.platform.d/<platform>, under the user config.
    let sys = &env.sources.system_config_dir;
    std::fs::create_dir_all(sys.join("base.d")).unwrap();
    std::fs::create_dir_all(sys.join("base.platform.d/qemu")).unwrap();
    std::fs::write(
        sys.join("base.d/10-base.ign"),
        config(file_config(&[
            ("/etc/base", "data:,base"),
            ("/etc/shared", "data:,base"),
        ])),
    )
    .unwrap();
    std::fs::write(
        sys.join("base.platform.d/qemu/10-qemu.ign"),
        config(file_config(&[("/etc/platform", "data:,qemu")])),
    )
    .unwrap();
    // The qemu platform reads fw_cfg under the sysfs root.
    let fw = env.sources.sysfs.join(QEMU_FW_CFG);
    std::fs::create_dir_all(fw.parent().unwrap()).unwrap();
    let mut user = file_config(&[("/etc/shared", "data:,user")]);
    user["storage"]["files"][0]["overwrite"] = serde_json::json!(true);
    std::fs::write(&fw, config(user)).unwrap();
    env.sources.platform = Platform::Qemu;
    stages::run(Stage::FetchOffline, &env).unwrap();
    stages::run(Stage::Files, &env).unwrap();
    for (path, want) in [
        ("etc/base", "base"),
        ("etc/platform", "qemu"),
        ("etc/shared", "user"),
    ] {
        assert_eq!(
            std::fs::read_to_string(root.join(path)).unwrap(),
            want,
            "{path}"
        );
    }
    // ignition.config.url on the kernel command line wins over the platform.
    std::fs::remove_file(&env.cache).unwrap();
    let root = tmp.path().join("root2");
    env.root = root.clone();
    env.sources.cmdline = KernelCmdline::parse(&format!(
        "quiet ignition.config.url={}",
        data_url(&config(file_config(&[("/etc/cmdline", "data:,cmdline")])))
    ));
    stages::run(Stage::FetchOffline, &env).unwrap();
    stages::run(Stage::Files, &env).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("etc/cmdline")).unwrap(),
        "cmdline"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&env.state).unwrap()).unwrap();
    assert_eq!(state["fetchedConfigs"][0]["source"], "cmdline");
}

/// A tftpd-hpa serving `dir` on a free port of 127.0.0.1, stopped on drop.
struct Tftpd(std::process::Child, u16);

impl Drop for Tftpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tftpd(dir: &Path) -> Option<Tftpd> {
    let bin = Path::new("/usr/sbin/in.tftpd");
    if !bin.exists() {
        return None;
    }
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(bin)
        .args([
            "--foreground",
            "--address",
            &format!("127.0.0.1:{port}"),
            "--user",
            "root",
            "--secure",
        ])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Some(Tftpd(child, port))
}

#[test]
fn tftp_config_url_against_tftpd_hpa() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = tmp.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    // Larger than one 512-byte block, and an exact multiple edge (1024 bytes) for the file.
    let mut user = file_config(&[("/etc/tftp", &format!("data:,{}", "x".repeat(700)))]);
    user["storage"]["files"][0]["mode"] = serde_json::json!(384);
    std::fs::write(srv.join("user.ign"), config(user)).unwrap();
    std::fs::write(srv.join("exact"), vec![b'y'; 1024]).unwrap();
    let Some(server) = tftpd(&srv) else {
        keel_testsupport::skip("tftp_config_url_against_tftpd_hpa: /usr/sbin/in.tftpd missing (apt-get install tftpd-hpa)");
        return;
    };
    let exact = keel_provision::tftp::fetch(
        &format!("tftp://127.0.0.1:{}/exact", server.1),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(exact.len(), 1024);
    let missing = keel_provision::tftp::fetch(
        &format!("tftp://127.0.0.1:{}/nope", server.1),
        Duration::from_secs(2),
    )
    .unwrap_err();
    assert!(missing.to_string().contains("server error"), "{missing}");
    // Through the fetcher (streamed): a missing file is final, not retried forever.
    let fetcher = keel_provision::resource::Fetcher::online(
        &keel_ignition_config::types::Config::default(),
        Vec::new(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let missing = fetcher
        .fetch_url(&format!("tftp://127.0.0.1:{}/nope", server.1), &[])
        .unwrap_err();
    assert!(missing.to_string().contains("server error"), "{missing}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut env = stage_env(
        &root,
        &tmp.path().join("work"),
        &tmp.path().join("unused.ign"),
    );
    env.sources.platform = Platform::Metal;
    env.sources.cmdline = KernelCmdline::parse(&format!(
        "ignition.config.url=tftp://127.0.0.1:{}/user.ign",
        server.1
    ));
    stages::run(Stage::FetchOffline, &env).unwrap();
    assert!(env.neednet.exists());
    stages::run(Stage::Fetch, &env).unwrap();
    stages::run(Stage::Files, &env).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("etc/tftp"))
            .unwrap()
            .len(),
        700
    );
}
