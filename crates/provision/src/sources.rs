//! Where configs come from and how they are rendered: the user config (kernel command line,
//! the system `user.ign`, or the platform's source), base configs under it, and
//! `ignition.config.merge/replace` resolved recursively with the config's CA bundles.

use crate::cmdline::KernelCmdline;
use crate::resource::{FetchError, Fetcher};
use anyhow::{bail, Context, Result};
use keel_ignition_config::types::{Config, Resource};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Default directory of `user.ign`, `base.d/` and `base.platform.d/`.
pub const SYSTEM_CONFIG_DIR: &str = "/usr/lib/ignition";
/// The fw_cfg entry QEMU exposes the config under (below the sysfs root).
pub const QEMU_FW_CFG: &str = "firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw";
/// Merge/replace nesting deeper than this is refused (a config that includes itself).
const MAX_DEPTH: usize = 10;

/// Platforms keel knows how to read a config from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// QEMU's fw_cfg entry `opt/com.coreos/config`.
    Qemu,
    /// Bare metal: no platform source; the config comes from `ignition.config.url`.
    Metal,
    /// A local file (`$IGNITION_CONFIG_FILE` or `--config-file`), for tests.
    File,
}

impl Platform {
    pub fn parse(id: &str) -> Result<Platform> {
        Ok(match id {
            "qemu" => Platform::Qemu,
            "metal" => Platform::Metal,
            "file" => Platform::File,
            other => bail!("platform {other:?} (ignition.platform.id) is not supported by keel; supported: qemu, metal, file"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Qemu => "qemu",
            Platform::Metal => "metal",
            Platform::File => "file",
        }
    }
}

/// Everything the config sources depend on, all overridable for tests.
#[derive(Debug, Clone)]
pub struct SourceEnv {
    pub platform: Platform,
    pub cmdline: KernelCmdline,
    pub system_config_dir: PathBuf,
    pub sysfs: PathBuf,
    /// The `file` platform's config.
    pub config_file: Option<PathBuf>,
}

/// One config that was read, for the state file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fetched {
    pub kind: String,
    pub source: String,
}

/// Why acquiring a config failed: it needs the network (offline stage), or a real error.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("{0}")]
    NeedsNetwork(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

fn fetch_err(what: &str, e: FetchError) -> AcquireError {
    match e {
        FetchError::NeedsNetwork(url) => {
            AcquireError::NeedsNetwork(format!("{what} needs the network: {url}"))
        }
        e => AcquireError::Failed(anyhow::Error::new(e).context(format!("fetching {what} failed"))),
    }
}

/// Parses config bytes, naming where they came from on failure; empty input is an empty config.
pub fn parse_config(bytes: &[u8], origin: &str) -> Result<Config> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Config::default());
    }
    let (cfg, warnings) = keel_ignition_config::parse(bytes).map_err(|e| {
        let details: Vec<String> = e
            .reports
            .iter()
            .filter(|r| r.is_error())
            .map(|r| r.to_string())
            .collect();
        anyhow::anyhow!(
            "config from {origin} is invalid:\n  {}",
            details.join("\n  ")
        )
    })?;
    for w in warnings {
        tracing::warn!("{origin}: {w}");
    }
    Ok(cfg)
}

/// Reads the user config from the first source that has one: kernel command line, system
/// `user.ign`, then the platform. Returns the raw bytes (empty when no source has a config).
pub fn user_config(
    env: &SourceEnv,
    fetcher: &Fetcher,
    fetched: &mut Vec<Fetched>,
) -> Result<Vec<u8>, AcquireError> {
    let record = |fetched: &mut Vec<Fetched>, source: &str| {
        fetched.push(Fetched {
            kind: "user".into(),
            source: source.into(),
        })
    };
    if let Some(url) = env.cmdline.config_url() {
        let what = format!("the config at ignition.config.url={url} (kernel command line)");
        let data = fetcher
            .fetch_url(url, &[])
            .map_err(|e| fetch_err(&what, e))?;
        record(fetched, "cmdline");
        return Ok(data);
    }
    let system = env.system_config_dir.join("user.ign");
    if system.exists() {
        let data = std::fs::read(&system)
            .with_context(|| format!("reading the system config {}", system.display()))?;
        record(fetched, "system");
        return Ok(data);
    }
    let data = match env.platform {
        Platform::Metal => Vec::new(),
        Platform::Qemu => {
            let path = env.sysfs.join(QEMU_FW_CFG);
            match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::info!("no QEMU fw_cfg config at {} (is qemu_fw_cfg loaded and -fw_cfg name=opt/com.coreos/config given?)", path.display());
                    Vec::new()
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("reading the QEMU fw_cfg config {}", path.display()))
                        .into())
                }
            }
        }
        Platform::File => {
            let path = env
                .config_file
                .clone()
                .or_else(|| std::env::var_os("IGNITION_CONFIG_FILE").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("config.ign"));
            std::fs::read(&path).with_context(|| format!("reading the file platform's config {} (set --config-file or IGNITION_CONFIG_FILE)", path.display()))?
        }
    };
    record(fetched, env.platform.name());
    Ok(data)
}

/// The source as errors name it: a long data URL by its size, not its bytes.
fn source_of(r: &Resource) -> String {
    let source = r.source.as_deref().unwrap_or("");
    match source.strip_prefix("data:") {
        Some(_) if source.len() > 80 => format!("a data URL of {} bytes", source.len()),
        _ => source.to_string(),
    }
}

/// The CA bundles a config asks to trust, fetched with `fetcher`.
fn ca_bundles(cfg: &Config, fetcher: &Fetcher) -> Result<Vec<Vec<u8>>, AcquireError> {
    let cas = cfg
        .ignition
        .security
        .as_ref()
        .and_then(|s| s.tls.as_ref())
        .map(|t| t.certificate_authorities.clone())
        .unwrap_or_default();
    cas.iter()
        .enumerate()
        .map(|(i, r)| {
            fetcher.fetch(r).map_err(|e| {
                fetch_err(
                    &format!(
                        "$.ignition.security.tls.certificateAuthorities.{i} ({})",
                        source_of(r)
                    ),
                    e,
                )
            })
        })
        .collect()
}

fn fetcher_for(cfg: &Config, online: bool, cas: Vec<Vec<u8>>) -> Result<Fetcher, AcquireError> {
    if online {
        Fetcher::online(cfg, cas).map_err(|e| fetch_err("the HTTP client setup", e))
    } else {
        Ok(Fetcher::offline())
    }
}

/// Resolves `ignition.config.replace` and `merge` of `cfg`, recursively. Online, the fetcher of
/// each level uses that config's timeouts and trusts its CAs plus those of its parents.
pub fn render(
    cfg: Config,
    online: bool,
    fetched: &mut Vec<Fetched>,
) -> Result<Config, AcquireError> {
    render_at(cfg, online, fetched, 0, Vec::new())
}

fn render_at(
    cfg: Config,
    online: bool,
    fetched: &mut Vec<Fetched>,
    depth: usize,
    inherited_cas: Vec<Vec<u8>>,
) -> Result<Config, AcquireError> {
    if depth > MAX_DEPTH {
        return Err(anyhow::anyhow!("ignition.config.merge/replace nested more than {MAX_DEPTH} levels deep (does a config include itself?)").into());
    }
    let refs = cfg.ignition.config.clone().unwrap_or_default();
    let mut cas = inherited_cas.clone();
    cas.extend(ca_bundles(
        &cfg,
        &fetcher_for(&cfg, online, inherited_cas)?,
    )?);
    if refs
        .replace
        .as_ref()
        .and_then(|r| r.source.as_ref())
        .is_none()
        && refs.merge.is_empty()
    {
        return Ok(cfg);
    }
    let fetcher = fetcher_for(&cfg, online, cas.clone())?;
    if let Some(r) = refs.replace.as_ref().filter(|r| r.source.is_some()) {
        let what = format!("$.ignition.config.replace ({})", source_of(r));
        let data = fetcher.fetch(r).map_err(|e| fetch_err(&what, e))?;
        fetched.push(Fetched {
            kind: "replace".into(),
            source: source_of(r),
        });
        let child = parse_config(&data, &what)?;
        return render_at(child, online, fetched, depth + 1, cas);
    }
    let mut out = cfg;
    for (i, r) in refs.merge.iter().enumerate() {
        let what = format!("$.ignition.config.merge.{i} ({})", source_of(r));
        let data = fetcher.fetch(r).map_err(|e| fetch_err(&what, e))?;
        fetched.push(Fetched {
            kind: "merge".into(),
            source: source_of(r),
        });
        let child = render_at(
            parse_config(&data, &what)?,
            online,
            fetched,
            depth + 1,
            cas.clone(),
        )?;
        out = keel_ignition_config::merge(&out, &child);
    }
    Ok(out)
}

/// Base configs (`base.d/*`, then `base.platform.d/<platform>/*`, each in file-name order)
/// merged into one.
pub fn base_config(env: &SourceEnv, fetched: &mut Vec<Fetched>) -> Result<Config> {
    let mut base = Config::default();
    let dirs = [
        env.system_config_dir.join("base.d"),
        env.system_config_dir
            .join("base.platform.d")
            .join(env.platform.name()),
    ];
    for dir in dirs {
        for path in sorted_files(&dir)? {
            let data = std::fs::read(&path)
                .with_context(|| format!("reading base config {}", path.display()))?;
            let cfg = parse_config(&data, &path.display().to_string())?;
            let cfg = render(cfg, false, fetched)
                .map_err(|e| anyhow::anyhow!("base config {}: {e}", path.display()))?;
            base = keel_ignition_config::merge(&base, &cfg);
            fetched.push(Fetched {
                kind: "base".into(),
                source: path.display().to_string(),
            });
        }
    }
    Ok(base)
}

fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut files = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        if e.file_type()?.is_file() {
            files.push(e.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Every resource source a config references, with its JSON path (for the "needs network"
/// decision of the offline stage).
pub fn referenced_sources(cfg: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let storage = cfg.storage();
    for (i, f) in storage.files.iter().enumerate() {
        if let Some(s) = f.contents.as_ref().and_then(|c| c.source.clone()) {
            out.push((format!("$.storage.files.{i}.contents"), s));
        }
        for (j, a) in f.append.iter().enumerate() {
            if let Some(s) = &a.source {
                out.push((format!("$.storage.files.{i}.append.{j}"), s.clone()));
            }
        }
    }
    for (i, l) in storage.luks.iter().enumerate() {
        if let Some(s) = l.key_file.as_ref().and_then(|k| k.source.clone()) {
            out.push((format!("$.storage.luks.{i}.keyFile"), s));
        }
        if l.clevis.as_ref().is_some_and(|c| !c.tang.is_empty()) {
            out.push((format!("$.storage.luks.{i}.clevis.tang"), "tang".into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &Path, platform: Platform, cmdline: &str) -> SourceEnv {
        SourceEnv {
            platform,
            cmdline: KernelCmdline::parse(cmdline),
            system_config_dir: dir.join("sys"),
            sysfs: dir.join("sysfs"),
            config_file: Some(dir.join("cfg.ign")),
        }
    }

    #[test]
    fn source_precedence_table() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cfg.ign"), "FILE").unwrap();
        let fw = d.path().join("sysfs").join(QEMU_FW_CFG);
        std::fs::create_dir_all(fw.parent().unwrap()).unwrap();
        std::fs::write(&fw, "QEMU").unwrap();
        let cases = [
            (Platform::File, "", "FILE", "file"),
            (Platform::Qemu, "", "QEMU", "qemu"),
            (Platform::Metal, "", "", "metal"),
            (
                Platform::Qemu,
                "ignition.config.url=data:,CMDLINE",
                "CMDLINE",
                "cmdline",
            ),
        ];
        for (platform, cmdline, want, source) in cases {
            let mut fetched = Vec::new();
            let got = user_config(
                &env(d.path(), platform, cmdline),
                &Fetcher::offline(),
                &mut fetched,
            )
            .unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                want,
                "{platform:?} {cmdline}"
            );
            assert_eq!(fetched[0].source, source);
        }
        std::fs::create_dir_all(d.path().join("sys")).unwrap();
        std::fs::write(d.path().join("sys/user.ign"), "SYSTEM").unwrap();
        let got = user_config(
            &env(d.path(), Platform::Qemu, ""),
            &Fetcher::offline(),
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(got, b"SYSTEM");
        let err = user_config(
            &env(
                d.path(),
                Platform::Qemu,
                "ignition.config.url=http://127.0.0.1:9/c.ign",
            ),
            &Fetcher::offline(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(err, AcquireError::NeedsNetwork(_)), "{err}");
    }

    #[test]
    fn platform_names() {
        for p in [Platform::Qemu, Platform::Metal, Platform::File] {
            assert_eq!(Platform::parse(p.name()).unwrap(), p);
        }
        assert!(Platform::parse("aws")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }
}
