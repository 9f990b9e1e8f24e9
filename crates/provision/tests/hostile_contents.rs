//! Hostile file contents against `keel ignition apply`, run through the built `keel` binary
//! (`cargo build -p keel` first; a missing or stale binary fails these tests): gzip bombs from
//! a data URL, a loopback HTTP server and `append`, under a virtual-memory cap far below the
//! inflated size; a hash mismatch found while streaming; and a target filesystem too small for
//! the inflated contents. They need root (tmpfs mount, chown) and fail without it. One more
//! case runs in-process: an HTTP body cut off mid-stream is retried from the file's start.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

mod common;

use sha2::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// The cap on the `keel` process's address space (`ulimit -v`, KiB): 128 MiB.
const MEMORY_CAP_KIB: u64 = 128 * 1024;

/// The `keel` binary next to this test's directory (`target/debug/keel`), refusing one older
/// than the provisioning sources it is built from.
fn keel_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("keel");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo build -p keel` first", bin.display()));
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for src in ["provision/src", "ignition-config/src", "utils/src"] {
        let newest = newest_mtime(&crates.join(src));
        assert!(
            newest <= built,
            "{} is older than {src}; run `cargo build -p keel` first",
            bin.display()
        );
    }
    bin
}

fn newest_mtime(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let t = if p.is_dir() {
            newest_mtime(&p)
        } else {
            std::fs::metadata(&p).unwrap().modified().unwrap()
        };
        newest = newest.max(t);
    }
    newest
}

fn need_root() {
    if let Some(why) = common::skip_reason(false) {
        panic!("hostile contents tests cannot run here: {why}");
    }
}

/// gzip (best compression) of `len` zero bytes, by the `gzip` tool.
fn gzip_zeros(len: u64) -> Vec<u8> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("head -c {len} /dev/zero | gzip -9"))
        .output()
        .unwrap();
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

fn data_url(data: &[u8]) -> String {
    use base64::Engine;
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    )
}

/// `sha256-…`/`sha512-…` of `len` zero bytes.
fn zeros_hash<D: Digest>(name: &str, len: u64) -> String {
    let mut h = D::new();
    let chunk = vec![0u8; MIB as usize];
    for _ in 0..len / MIB {
        h.update(&chunk);
    }
    format!("{name}-{}", hex::encode(h.finalize()))
}

/// Runs `keel ignition apply --root ROOT CONFIG [extra]` under the memory cap.
fn apply_capped(root: &Path, config: &Path, extra: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_CAP_KIB} && exec \"$0\" ignition apply --root \"$1\" \"$2\" {}",
            extra.join(" ")
        ))
        .arg(keel_bin())
        .arg(root)
        .arg(config)
        .env_remove("IGNITION_CONFIG_FILE")
        .output()
        .unwrap();
    (out, start.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_config(dir: &Path, files: serde_json::Value) -> PathBuf {
    let path = dir.join("config.ign");
    let cfg = serde_json::json!({"ignition": {"version": "3.4.0"}, "storage": {"files": files}});
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

/// Every file under `dir` (paths relative to it).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn gzip_bombs_stream_to_disk_under_a_memory_cap() {
    need_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let big = gzip_zeros(1024 * MIB);
    assert!(
        big.len() < 2 * MIB as usize,
        "the bomb is {} bytes",
        big.len()
    );
    let quarter = gzip_zeros(256 * MIB);
    let server = common::serve(
        vec![common::Route::ok("/quarter.gz", quarter.clone())],
        None,
    );
    let config = write_config(
        tmp.path(),
        serde_json::json!([
            {"path": "/big", "contents": {"source": data_url(&big), "compression": "gzip",
                "verification": {"hash": zeros_hash::<sha2::Sha256>("sha256", 1024 * MIB)}}},
            {"path": "/remote", "contents": {"source": format!("http://127.0.0.1:{}/quarter.gz", server.port),
                "compression": "gzip",
                "verification": {"hash": zeros_hash::<sha2::Sha512>("sha512", 256 * MIB)}}},
            {"path": "/appended", "append": [{"source": data_url(&quarter), "compression": "gzip"}]}
        ]),
    );
    let (out, took) = apply_capped(&root, &config, &[]);
    assert!(
        out.status.success(),
        "keel under a {MEMORY_CAP_KIB} KiB address-space cap failed: {}",
        stderr(&out)
    );
    for (name, len) in [
        ("big", 1024 * MIB),
        ("remote", 256 * MIB),
        ("appended", 256 * MIB),
    ] {
        assert_eq!(
            std::fs::metadata(root.join(name)).unwrap().len(),
            len,
            "/{name}"
        );
    }
    let mut head = [1u8; 4096];
    std::fs::File::open(root.join("appended"))
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    assert!(head.iter().all(|b| *b == 0));
    assert!(took < Duration::from_secs(600), "took {took:?}");
    eprintln!("1.5 GiB inflated under a {MEMORY_CAP_KIB} KiB cap in {took:?}");
}

#[test]
fn hash_mismatch_is_found_while_streaming_and_nothing_is_kept() {
    need_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let config = write_config(
        tmp.path(),
        serde_json::json!([
            {"path": "/etc/f", "contents": {"source": data_url(&gzip_zeros(64 * MIB)), "compression": "gzip",
                "verification": {"hash": format!("sha256-{}", "0".repeat(64))}}}
        ]),
    );
    let (out, _) = apply_capped(&root, &config, &["--offline"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("$.storage.files.0: writing file \"/etc/f\"")
            && err.contains("hash verification failed"),
        "{err}"
    );
    assert_eq!(files_under(&root), Vec::<String>::new());
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_target_filesystem_is_a_clear_error() {
    need_root();
    let tmp = tempfile::tempdir().unwrap();
    let small = Tmpfs::mount(&tmp.path().join("small"), "16m");
    let config = write_config(
        tmp.path(),
        serde_json::json!([
            {"path": "/data/big", "contents": {"source": data_url(&gzip_zeros(64 * MIB)), "compression": "gzip"}}
        ]),
    );
    let (out, _) = apply_capped(&small.0, &config, &["--offline"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    for want in [
        "$.storage.files.0: writing file \"/data/big\"",
        "\"/data/big\" in",
        "the target filesystem is full",
    ] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    assert_eq!(
        files_under(&small.0),
        Vec::<String>::new(),
        "temp file left"
    );
}

/// A server whose first answer breaks off in the middle of the body: the retry must start the
/// file over, never keep the broken start in front of the full body.
#[test]
fn a_body_cut_off_mid_stream_is_retried_from_the_start() {
    use std::io::Write;
    let body: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = body.clone();
    let server = std::thread::spawn(move || {
        for attempt in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                served.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            let part = if attempt == 0 {
                served.len() / 3
            } else {
                served.len()
            };
            s.write_all(&served[..part]).unwrap();
        }
    });
    let cfg = keel_ignition_config::types::Config::default();
    let fetcher = keel_provision::resource::Fetcher::online(&cfg, Vec::new()).unwrap();
    let resource = keel_ignition_config::types::Resource {
        source: Some(format!("http://127.0.0.1:{port}/f")),
        ..Default::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp.path().join("f"))
        .unwrap();
    f.write_all(b"before|").unwrap();
    let n = fetcher
        .fetch_to(
            &resource,
            &mut keel_provision::resource::FileSink::new(&mut f).unwrap(),
        )
        .unwrap();
    server.join().unwrap();
    assert_eq!(n, body.len() as u64);
    let got = std::fs::read(tmp.path().join("f")).unwrap();
    assert_eq!(&got[..7], b"before|");
    assert!(
        got[7..] == body[..],
        "the file is not the full body after the retry"
    );
}

/// A merged config (as a CA bundle or key file would) is held in memory, so its source is bounded:
/// a gzip data URL inflating to 256 MiB fails with a clear error under the memory cap instead of
/// taking the machine's memory, and nothing is written to the root.
#[test]
fn an_oversized_merged_config_is_refused_under_the_memory_cap() {
    need_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let merged = serde_json::json!({
        "source": data_url(&gzip_zeros(256 * MIB)),
        "compression": "gzip"
    });
    let cfg = serde_json::json!({
        "ignition": {"version": "3.4.0", "config": {"merge": [merged]}},
        "storage": {"files": [{"path": "/etc/never", "contents": {"source": "data:,x"}}]}
    });
    let config = dir.path().join("config.ign");
    std::fs::write(&config, cfg.to_string()).unwrap();
    let (out, took) = apply_capped(&root, &config, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("too large"), "{err}");
    assert!(
        err.contains("ignition.config.merge"),
        "names the config key: {err}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    assert!(files_under(&root).is_empty(), "{:?}", files_under(&root));
}
