//! The `keel graph serve` configuration file (TOML).
//!
//! ```toml
//! listen = "127.0.0.1:8080"          # default
//! reload_interval_secs = 30          # how often sources are checked for changes (default 30)
//! source_timeout_secs = 60           # a source read or fetch taking longer fails (default 60)
//! max_source_bytes = 33554432        # a larger source document fails (default 32 MiB)
//!
//! [streams.stable]
//! release_index = "stable/releases.json"                          # path (relative to this file) or http(s) URL
//! updates = "https://builds.example.org/updates/stable.json"
//! architectures = ["x86_64", "aarch64"]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// Where a metadata document comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Url(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(u),
        }
    }
}

impl Source {
    /// URLs stay URLs; other strings are paths, relative ones taken from `base`.
    fn parse(value: &str, base: &Path) -> Source {
        if value.starts_with("http://") || value.starts_with("https://") {
            Source::Url(value.to_string())
        } else {
            Source::File(base.join(value))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default = "default_reload")]
    reload_interval_secs: u64,
    #[serde(default = "default_source_timeout")]
    source_timeout_secs: u64,
    #[serde(default = "default_max_source_bytes")]
    max_source_bytes: u64,
    streams: BTreeMap<String, RawStream>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    release_index: String,
    updates: String,
    architectures: Vec<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_reload() -> u64 {
    30
}

fn default_source_timeout() -> u64 {
    60
}

fn default_max_source_bytes() -> u64 {
    32 * 1024 * 1024
}

/// One configured stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    pub name: String,
    pub release_index: Source,
    pub updates: Source,
    pub architectures: Vec<String>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub reload_interval_secs: u64,
    /// A source read or fetch that takes longer fails (the thread doing it is abandoned).
    pub source_timeout_secs: u64,
    /// A source document larger than this fails.
    pub max_source_bytes: u64,
    pub streams: Vec<StreamConfig>,
}

impl Config {
    /// Reads and validates the configuration at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading graph server config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base)
            .with_context(|| format!("in graph server config {}", path.display()))
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Config> {
        let raw: RawConfig = toml::from_str(text)?;
        if raw.streams.is_empty() {
            bail!("no [streams.<name>] table: configure at least one stream");
        }
        if raw.reload_interval_secs == 0 {
            bail!("reload_interval_secs must be at least 1");
        }
        if raw.source_timeout_secs == 0 {
            bail!("source_timeout_secs must be at least 1");
        }
        if raw.max_source_bytes == 0 {
            bail!("max_source_bytes must be at least 1");
        }
        let mut streams = Vec::new();
        for (name, s) in raw.streams {
            if s.architectures.is_empty() {
                bail!(
                    "streams.{name}.architectures is empty: list at least one (e.g. [\"x86_64\"])"
                );
            }
            streams.push(StreamConfig {
                release_index: Source::parse(&s.release_index, base),
                updates: Source::parse(&s.updates, base),
                architectures: s.architectures,
                name,
            });
        }
        Ok(Config {
            listen: raw.listen,
            reload_interval_secs: raw.reload_interval_secs,
            source_timeout_secs: raw.source_timeout_secs,
            max_source_bytes: raw.max_source_bytes,
            streams,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let base = Path::new("/etc/keel");
        let good = r#"
            listen = "0.0.0.0:9000"
            [streams.stable]
            release_index = "stable/releases.json"
            updates = "https://example.org/updates/stable.json"
            architectures = ["x86_64"]
        "#;
        let c = Config::parse(good, base).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.reload_interval_secs, 30);
        assert_eq!(
            c.streams[0].release_index,
            Source::File("/etc/keel/stable/releases.json".into())
        );
        assert_eq!(
            c.streams[0].updates,
            Source::Url("https://example.org/updates/stable.json".into())
        );
        for (text, needle) in [
            ("", "streams"),
            ("[streams.s]\nrelease_index='a'\nupdates='b'\narchitectures=[]", "architectures is empty"),
            ("[streams.s]\nrelease_index='a'\nupdates='b'\narchitectures=['x']\ntypo=1", "typo"),
            ("reload_interval_secs=0\n[streams.s]\nrelease_index='a'\nupdates='b'\narchitectures=['x']", "at least 1"),
            ("source_timeout_secs=0\n[streams.s]\nrelease_index='a'\nupdates='b'\narchitectures=['x']", "source_timeout_secs"),
            ("max_source_bytes=0\n[streams.s]\nrelease_index='a'\nupdates='b'\narchitectures=['x']", "max_source_bytes"),
            ("listen='nowhere'\n[streams.s]\nrelease_index='a'\nupdates='b'\narchitectures=['x']", "listen"),
        ] {
            let err = format!("{:#}", Config::parse(text, base).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
