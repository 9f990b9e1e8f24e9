//! The agent's configuration: TOML drop-ins from `/usr/lib/keel/agent.d` (the OS),
//! `/etc/keel/agent.d` (the admin) and `/run/keel/agent.d` (runtime), as Zincati and systemd do:
//! files are taken by name across the three directories (a later directory's file shadows a
//! same-named earlier one; a symlink to `/dev/null` masks it), then applied in lexical order of
//! their names, later keys winning. Tables merge key by key; any other value (arrays included,
//! e.g. the list of windows) is replaced whole. Every fragment is checked on its own, so an
//! unknown key is an error naming its file and key.

use crate::window::Schedule;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The drop-in directories, lowest precedence first, relative to the root.
pub const DIRS: [&str; 3] = [
    "usr/lib/keel/agent.d",
    "etc/keel/agent.d",
    "run/keel/agent.d",
];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A fragment is not valid TOML or has an unknown key or a bad value.
    #[error("{path}: {message}")]
    Fragment { path: PathBuf, message: String },
    /// The merged configuration is inconsistent.
    #[error("agent configuration ({files}): {message}")]
    Invalid { files: String, message: String },
}

/// `[agent]`: timing.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// Seconds between polls of the graph; each wait adds 0-10% jitter.
    pub poll_interval_secs: u64,
    /// Longest time an interactive session postpones a reboot.
    pub max_postpone_secs: u64,
    /// Seconds between checks while a reboot is postponed or refused.
    pub retry_interval_secs: u64,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            poll_interval_secs: 300,
            max_postpone_secs: 600,
            retry_interval_secs: 60,
        }
    }
}

/// `[identity]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IdentitySection {
    /// FleetLock group (`^[a-zA-Z0-9.-]+$`), also sent to the graph server.
    pub group: String,
    /// Override of the node id (32 lowercase hex); default: derived from `/etc/machine-id`.
    pub node_uuid: Option<String>,
    /// 0.0 (eager) ..= 1.0 (wary); default: the graph server derives it from `node_uuid`.
    pub rollout_wariness: Option<f64>,
}

impl Default for IdentitySection {
    fn default() -> Self {
        IdentitySection {
            group: "default".into(),
            node_uuid: None,
            rollout_wariness: None,
        }
    }
}

/// `[cincinnati]`: the update graph server.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CincinnatiSection {
    /// Base URL; the agent requests `<base_url>/v1/graph`.
    pub base_url: Option<String>,
}

/// The finalization strategy.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum StrategyKind {
    /// Reboot as soon as the update is staged.
    #[default]
    #[serde(rename = "immediate")]
    Immediate,
    /// Reboot only inside a weekly maintenance window.
    #[serde(rename = "periodic")]
    Periodic,
    /// Reboot only with a FleetLock slot.
    #[serde(rename = "fleet_lock")]
    FleetLock,
    /// Inside a window, and with a FleetLock slot (asked for only inside the window).
    #[serde(rename = "periodic+fleet_lock")]
    PeriodicFleetLock,
}

impl StrategyKind {
    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Immediate => "immediate",
            StrategyKind::Periodic => "periodic",
            StrategyKind::FleetLock => "fleet_lock",
            StrategyKind::PeriodicFleetLock => "periodic+fleet_lock",
        }
    }

    /// Does it use maintenance windows?
    pub fn periodic(self) -> bool {
        matches!(
            self,
            StrategyKind::Periodic | StrategyKind::PeriodicFleetLock
        )
    }

    /// Does it use FleetLock?
    pub fn fleet_lock(self) -> bool {
        matches!(
            self,
            StrategyKind::FleetLock | StrategyKind::PeriodicFleetLock
        )
    }
}

/// `[[updates.periodic.window]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowSection {
    /// Days the window starts on: `Mon`..`Sun` or full English names.
    pub days: Vec<String>,
    /// `HH:MM`, local to the time zone.
    pub start_time: String,
    /// Minutes (> 0); may run past midnight and the end of the week.
    pub length_minutes: u32,
}

/// `[updates.periodic]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PeriodicSection {
    /// `UTC`, `localtime` (the node's `/etc/localtime`) or an IANA name like `Europe/Berlin`.
    pub time_zone: String,
    /// The windows.
    pub window: Vec<WindowSection>,
}

impl Default for PeriodicSection {
    fn default() -> Self {
        PeriodicSection {
            time_zone: "UTC".into(),
            window: Vec::new(),
        }
    }
}

/// `[updates.fleet_lock]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FleetLockSection {
    /// FleetLock server base URL.
    pub base_url: Option<String>,
}

/// `[updates]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UpdatesSection {
    /// `false`: the agent only reports its state.
    pub enabled: bool,
    /// The stream; default: the booted commit's `keel.stream` metadata.
    pub stream: Option<String>,
    /// The finalization strategy.
    pub strategy: StrategyKind,
    /// Windows for `periodic`.
    pub periodic: PeriodicSection,
    /// Server for `fleet_lock`.
    pub fleet_lock: FleetLockSection,
}

impl Default for UpdatesSection {
    fn default() -> Self {
        UpdatesSection {
            enabled: true,
            stream: None,
            strategy: StrategyKind::Immediate,
            periodic: PeriodicSection::default(),
            fleet_lock: FleetLockSection::default(),
        }
    }
}

/// The merged configuration (every key has a default).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[agent]`.
    pub agent: AgentSection,
    /// `[identity]`.
    pub identity: IdentitySection,
    /// `[cincinnati]`.
    pub cincinnati: CincinnatiSection,
    /// `[updates]`.
    pub updates: UpdatesSection,
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged configuration.
    pub config: Config,
    /// The fragments applied, in order.
    pub files: Vec<PathBuf>,
}

impl Loaded {
    fn invalid(&self, message: String) -> ConfigError {
        let files = if self.files.is_empty() {
            "no drop-in files".to_string()
        } else {
            self.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        ConfigError::Invalid { files, message }
    }

    /// The maintenance schedule (periodic strategies) and the FleetLock URL (fleet_lock
    /// strategies), checked for consistency.
    pub fn strategy_parts(&self) -> Result<(Option<Schedule>, Option<String>), ConfigError> {
        let u = &self.config.updates;
        let schedule = if u.strategy.periodic() {
            Some(Schedule::from_config(&u.periodic).map_err(|e| self.invalid(e))?)
        } else {
            None
        };
        let lock = if u.strategy.fleet_lock() {
            Some(u.fleet_lock.base_url.clone().ok_or_else(|| {
                self.invalid(format!(
                    "strategy `{}` needs updates.fleet_lock.base_url",
                    u.strategy.name()
                ))
            })?)
        } else {
            None
        };
        if !valid_group(&self.config.identity.group) {
            return Err(self.invalid(format!(
                "identity.group `{}` must match ^[a-zA-Z0-9.-]+$",
                self.config.identity.group
            )));
        }
        if let Some(w) = self.config.identity.rollout_wariness {
            if !(0.0..=1.0).contains(&w) {
                return Err(self.invalid(format!(
                    "identity.rollout_wariness {w} is outside 0.0..=1.0"
                )));
            }
        }
        Ok((schedule, lock))
    }

    /// The graph server URL.
    pub fn graph_url(&self) -> Result<String, ConfigError> {
        self.config
            .cincinnati
            .base_url
            .clone()
            .ok_or_else(|| self.invalid("cincinnati.base_url is not set".into()))
    }
}

fn valid_group(g: &str) -> bool {
    !g.is_empty()
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// The fragments to apply, in order: by file name across the directories, a later directory
/// shadowing an earlier one's same-named file; masked (`/dev/null`) and empty names dropped.
pub fn fragments(root: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in DIRS {
        let d = root.join(dir);
        let entries = match fs::read_dir(&d) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            r => r.map_err(|source| ConfigError::Io {
                path: d.clone(),
                source,
            })?,
        };
        for e in entries {
            let e = e.map_err(|source| ConfigError::Io {
                path: d.clone(),
                source,
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".toml") && !name.starts_with('.') {
                by_name.insert(name, e.path());
            }
        }
    }
    Ok(by_name
        .into_values()
        .filter(|p| fs::read_link(p).map_or(true, |t| t != Path::new("/dev/null")))
        .collect())
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Load and merge the drop-ins under `root`.
pub fn load(root: &Path) -> Result<Loaded, ConfigError> {
    let files = fragments(root)?;
    let mut merged = toml::Table::new();
    for p in &files {
        let text = fs::read_to_string(p).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        let bad = |message: String| ConfigError::Fragment {
            path: p.clone(),
            message,
        };
        let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
            bad(format!(
                "{e}; the keys are described in `man keel-agent` and {}",
                keel_proto::docs_url!("updates/agent.html")
            ))
        })?;
        merge(&mut merged, table);
    }
    let loaded = Loaded {
        config: Config::default(),
        files,
    };
    let config = Config::deserialize(toml::Value::Table(merged))
        .map_err(|e| loaded.invalid(e.to_string()))?;
    Ok(Loaded { config, ..loaded })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn write(root: &Path, dir: &str, name: &str, text: &str) {
        let d = root.join(dir);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(name), text).unwrap();
    }

    #[test]
    fn merges_by_name_and_key_with_later_directories_shadowing() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            DIRS[0],
            "10-default.toml",
            "[cincinnati]\nbase_url = \"http://a\"\n[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Sat\"]\nstart_time = \"01:00\"\nlength_minutes = 60\n",
        );
        write(r, DIRS[0], "20-group.toml", "[identity]\ngroup = \"os\"\n");
        write(
            r,
            DIRS[0],
            "30-masked.toml",
            "[identity]\ngroup = \"masked\"\n",
        );
        write(
            r,
            DIRS[1],
            "20-group.toml",
            "[identity]\nrollout_wariness = 0.5\n",
        );
        write(
            r,
            DIRS[1],
            "50-windows.toml",
            "[updates.periodic]\ntime_zone = \"Europe/Berlin\"\n[[updates.periodic.window]]\ndays = [\"Sun\"]\nstart_time = \"02:00\"\nlength_minutes = 30\n",
        );
        write(
            r,
            DIRS[2],
            "90-now.toml",
            "[cincinnati]\nbase_url = \"http://b\"\n",
        );
        fs::create_dir_all(r.join(DIRS[1])).unwrap();
        symlink("/dev/null", r.join(DIRS[1]).join("30-masked.toml")).unwrap();
        write(r, DIRS[1], "notes.txt", "ignored = true");

        let l = load(r).unwrap();
        let names: Vec<String> = l
            .files
            .iter()
            .map(|p| p.strip_prefix(r).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "usr/lib/keel/agent.d/10-default.toml",
                "etc/keel/agent.d/20-group.toml",
                "etc/keel/agent.d/50-windows.toml",
                "run/keel/agent.d/90-now.toml"
            ]
        );
        let c = &l.config;
        // Shadowed: /usr/lib's 20-group.toml is not applied, so the group keeps its default.
        assert_eq!(c.identity.group, "default");
        assert_eq!(c.identity.rollout_wariness, Some(0.5));
        assert_eq!(c.cincinnati.base_url.as_deref(), Some("http://b"));
        assert_eq!(c.updates.strategy, StrategyKind::Periodic);
        // Arrays are replaced whole, tables merged per key.
        assert_eq!(c.updates.periodic.time_zone, "Europe/Berlin");
        assert_eq!(c.updates.periodic.window.len(), 1);
        assert_eq!(c.updates.periodic.window[0].days, ["Sun"]);
        assert!(c.updates.enabled);
        assert_eq!(c.agent.poll_interval_secs, 300);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_key() {
        let cases = [
            ("[updates]\nenabeld = false\n", "enabeld"),
            ("[updates.fleet_lock]\nbase_url = \"x\"\nwindow = []\n", "window"),
            ("[identity]\ngroup = 3\n", "group"),
            ("[updates]\nstrategy = \"weekly\"\n", "weekly"),
            ("[nonsense]\nx = 1\n", "nonsense"),
            ("[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart = \"01:00\"\nlength_minutes = 5\n", "start"),
            ("not toml", "not toml"),
        ];
        for (text, key) in cases {
            let t = tempfile::tempdir().unwrap();
            write(t.path(), DIRS[1], "60-bad.toml", text);
            let e = load(t.path()).unwrap_err().to_string();
            assert!(
                e.contains("etc/keel/agent.d/60-bad.toml") && e.contains(key),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn the_shipped_defaults_load() {
        let overlay = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/overlays/keel");
        let l = load(&overlay).unwrap();
        assert_eq!(l.files.len(), 1, "{:?}", l.files);
        assert_eq!(l.config, Config::default());
        l.strategy_parts().unwrap();
    }

    #[test]
    fn strategy_parts_are_checked() {
        let cases: [(&str, Option<&str>); 6] = [
            ("[updates]\nstrategy = \"immediate\"\n", None),
            ("[updates]\nstrategy = \"fleet_lock\"\n", Some("fleet_lock.base_url")),
            (
                "[updates]\nstrategy = \"fleet_lock\"\n[updates.fleet_lock]\nbase_url = \"http://l\"\n",
                None,
            ),
            ("[updates]\nstrategy = \"periodic\"\n", Some("no window")),
            (
                "[updates]\nstrategy = \"periodic+fleet_lock\"\n[updates.fleet_lock]\nbase_url = \"http://l\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"25:00\"\nlength_minutes = 5\n",
                Some("25:00"),
            ),
            ("[identity]\ngroup = \"a b\"\n", Some("identity.group")),
        ];
        for (text, err) in cases {
            let t = tempfile::tempdir().unwrap();
            write(t.path(), DIRS[0], "10-x.toml", text);
            let l = load(t.path()).unwrap();
            match (l.strategy_parts(), err) {
                (Ok(_), None) => {}
                (Err(e), Some(want)) => {
                    let e = e.to_string();
                    assert!(e.contains(want) && e.contains("10-x.toml"), "{text:?}: {e}")
                }
                (r, want) => panic!("{text:?}: got {r:?}, wanted error {want:?}"),
            }
        }
    }
}
