//! The boot stages, in Ignition's order: `fetch-offline`, `fetch`, `kargs`, `disks`, `mount`,
//! `files`, `umount`. The fetch stages write the rendered user config to the cache
//! (`/run/ignition.json`); every later stage reads it and merges it over the base configs.

use crate::beneath::Root;
use crate::cmdline::KernelCmdline;
use crate::error::OpError;
use crate::resource::{needs_network, Fetcher};
use crate::sources::{self, AcquireError, Fetched, SourceEnv};
use anyhow::{bail, Context, Result};
use keel_ignition_config::types::{Config, Timeouts};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One boot stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    FetchOffline,
    Fetch,
    Kargs,
    Disks,
    Mount,
    Files,
    Umount,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::FetchOffline => "fetch-offline",
            Stage::Fetch => "fetch",
            Stage::Kargs => "kargs",
            Stage::Disks => "disks",
            Stage::Mount => "mount",
            Stage::Files => "files",
            Stage::Umount => "umount",
        }
    }
}

/// Paths and settings of a stage run (all overridable for tests).
#[derive(Debug, Clone)]
pub struct StageEnv {
    pub root: PathBuf,
    pub sources: SourceEnv,
    pub cache: PathBuf,
    pub neednet: PathBuf,
    pub state: PathBuf,
    /// Program called with `--should-exist A --should-not-exist B` when kernel arguments must change.
    pub kargs_helper: String,
    /// `/proc/sys/kernel/random/boot_id`, for the result file.
    pub boot_id: PathBuf,
    /// Where the disks stage keeps LUKS key files (`/run/ignition/luks-keys`).
    pub luks_key_dir: PathBuf,
    /// How long the fetch stage keeps retrying to get the user config.
    pub fetch_timeout: std::time::Duration,
}

/// What the fetch stages record in the state file.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "fetchedConfigs", default)]
    pub fetched: Vec<Fetched>,
    #[serde(rename = "userConfigProvided", default)]
    pub user_config_provided: bool,
}

/// Runs one stage.
pub fn run(stage: Stage, env: &StageEnv) -> Result<()> {
    match stage {
        Stage::FetchOffline => fetch(env, false),
        Stage::Fetch => fetch(env, true),
        Stage::Kargs => kargs(env, &final_config(env)?),
        Stage::Disks => {
            let cfg = final_config(env)?;
            crate::disks::apply(
                &cfg.storage(),
                &Fetcher::online(&cfg, Vec::new())?,
                &env.luks_key_dir,
            )
            .map_err(Into::into)
        }
        Stage::Mount => {
            crate::mount::mount(&env.root, &final_config(env)?.storage()).map_err(Into::into)
        }
        Stage::Umount => crate::mount::umount(&env.root, &final_config(env)?.storage()),
        Stage::Files => {
            let cfg = final_config(env)?;
            let counts = apply_config(&env.root, &cfg, &Fetcher::online(&cfg, Vec::new())?)?;
            let root = Root::open(&env.root)?;
            crate::crypttab::apply(&root, &cfg.storage().luks, &env.luks_key_dir)?;
            tracing::info!(
                "files stage: {} files, {} directories, {} links",
                counts.files,
                counts.directories,
                counts.links
            );
            write_result(env, &root)
        }
    }
}

/// Applies users/groups, files, directories, links and units of `cfg` into `root`: the files
/// stage without the result file (what `keel ignition apply` does). Nothing is written
/// outside `root` ([`crate::beneath`]).
pub fn apply_config(
    root: &Path,
    cfg: &Config,
    fetcher: &Fetcher,
) -> Result<crate::files::Counts, OpError> {
    let root = &crate::error::AtPath::at(Root::open(root), "$", "opening the target root")?;
    if let Some(p) = &cfg.passwd {
        crate::passwd::apply(root, p)?;
    }
    let accounts = crate::error::AtPath::at(
        crate::rootfs::Accounts::load(root),
        "$.passwd",
        "reading the root's /etc/passwd and /etc/group",
    )?;
    let _ = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let counts = crate::files::apply(root, &cfg.storage(), fetcher, &accounts)?;
    crate::units::apply(root, cfg.units())?;
    Ok(counts)
}

fn fetch(env: &StageEnv, online: bool) -> Result<()> {
    if env.cache.exists() {
        tracing::info!(
            "config cache {} exists; nothing to fetch",
            env.cache.display()
        );
        return Ok(());
    }
    let mut fetched = Vec::new();
    let result = (|| -> Result<Config, AcquireError> {
        let fetcher = if online {
            // The user config itself: retried until --fetch-timeout (Ignition's -fetch-timeout).
            let mut bootstrap = Config::default();
            bootstrap.ignition.timeouts = Some(Timeouts {
                http_total: Some(env.fetch_timeout.as_secs().max(1) as i64),
                ..Default::default()
            });
            Fetcher::online(&bootstrap, Vec::new()).map_err(anyhow::Error::from)?
        } else {
            Fetcher::offline()
        };
        let raw = sources::user_config(&env.sources, &fetcher, &mut fetched)?;
        let origin = fetched.last().map_or("the user config".to_string(), |f| {
            format!("the {} user config", f.source)
        });
        let cfg = sources::parse_config(&raw, &origin)?;
        sources::render(cfg, online, &mut fetched)
    })();
    let cfg = match result {
        Ok(cfg) => cfg,
        Err(AcquireError::NeedsNetwork(why)) if !online => return signal_neednet(env, &why),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    if !online {
        if let Some((path, url)) = sources::referenced_sources(&cfg)
            .into_iter()
            .find(|(_, u)| needs_network(u))
        {
            return signal_neednet(env, &format!("{path} needs the network: {url}"));
        }
    }
    let provided = cfg != Config::default();
    let mut cfg = cfg;
    cfg.ignition
        .version
        .get_or_insert_with(|| keel_ignition_config::version::NEWEST.to_string());
    write_private(&env.cache, &serde_json::to_vec(&cfg)?, 0o640)?;
    let state = State {
        fetched,
        user_config_provided: provided,
    };
    write_private(&env.state, &serde_json::to_vec(&state)?, 0o640)?;
    tracing::info!("wrote the rendered config to {}", env.cache.display());
    Ok(())
}

fn signal_neednet(env: &StageEnv, why: &str) -> Result<()> {
    tracing::info!("{why}; leaving the config to the fetch stage");
    write_private(&env.neednet, b"", 0o644)
}

fn write_private(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    keel_utils::fsutil::write_atomic(path, data, mode)
        .with_context(|| format!("writing {}", path.display()))
}

/// The cached user config merged over the base configs, validated.
pub fn final_config(env: &StageEnv) -> Result<Config> {
    let data = match std::fs::read(&env.cache) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no config cache at {}: the fetch-offline/fetch stages must run first",
            env.cache.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", env.cache.display())),
    };
    let user: Config = serde_json::from_slice(&data).with_context(|| {
        format!(
            "{} is not a rendered config (delete it and re-run the fetch stages)",
            env.cache.display()
        )
    })?;
    let base = sources::base_config(&env.sources, &mut Vec::new())?;
    let cfg = keel_ignition_config::merge(&base, &user);
    let errors: Vec<String> = keel_ignition_config::validate_config(&cfg)
        .into_iter()
        .filter(|r| r.is_error())
        .map(|r| r.to_string())
        .collect();
    if !errors.is_empty() {
        bail!(
            "the merged config (base configs + {}) is invalid:\n  {}",
            env.cache.display(),
            errors.join("\n  ")
        );
    }
    Ok(cfg)
}

/// Kernel arguments: when the running command line lacks one that should exist, or has one
/// that should not, the helper is called (it must change the boot entry and reboot).
fn kargs(env: &StageEnv, cfg: &Config) -> Result<()> {
    let Some(k) = &cfg.kernel_arguments else {
        return Ok(());
    };
    let current: &KernelCmdline = &env.sources.cmdline;
    let missing = k.should_exist.iter().any(|a| !current.contains(a));
    let present = k.should_not_exist.iter().any(|a| current.contains(a));
    if !missing && !present {
        tracing::info!("kernel arguments already as configured");
        return Ok(());
    }
    let mut c = std::process::Command::new(&env.kargs_helper);
    for a in &k.should_exist {
        c.args(["--should-exist", a]);
    }
    for a in &k.should_not_exist {
        c.args(["--should-not-exist", a]);
    }
    keel_utils::cmd::run(&mut c).context("$.kernelArguments: updating kernel arguments")?;
    Ok(())
}

/// `/etc/.ignition-result.json` (0600), like Ignition.
fn write_result(env: &StageEnv, root: &Root) -> Result<()> {
    let state: State = std::fs::read(&env.state)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    let boot_id = std::fs::read_to_string(&env.boot_id)
        .unwrap_or_default()
        .trim()
        .to_string();
    let result = serde_json::json!({
        "provisioningBootID": boot_id,
        "provisioningDate": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        "userConfigProvided": state.user_config_provided,
    });
    root.write_atomic(
        "/etc/.ignition-result.json",
        &serde_json::to_vec(&result)?,
        0o600,
    )
}
