//! Ignition configs, spec 3.0.0 through 3.5.0 (plus 3.6.0-experimental): a positioned JSON
//! parser, a typed model of the newest spec with older versions translated up, validation with
//! `ignition-validate`'s messages, and merging of configs.
//!
//! ```
//! let (cfg, warnings) = keel_ignition_config::parse(br#"{"ignition":{"version":"3.3.0"}}"#).unwrap();
//! assert_eq!(cfg.ignition.version.as_deref(), Some("3.5.0"));
//! assert!(warnings.is_empty());
//! ```

pub mod cli;
mod decode;
pub mod json;
pub mod merge;
pub mod report;
pub mod tree;
pub mod types;
pub mod validate;
pub mod version;

pub use decode::Positions;
pub use merge::merge;
pub use report::{JsonPath, Report, Severity};
pub use types::Config;
pub use version::Version;

use decode::{Decode, Decoder};
use tree::{Node, Value};

/// A config that did not validate; `reports` holds every problem (errors and warnings).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", summary(.reports))]
pub struct InvalidConfig {
    pub reports: Vec<Report>,
}

fn summary(reports: &[Report]) -> String {
    let errors: Vec<&Report> = reports.iter().filter(|r| r.is_error()).collect();
    match errors.as_slice() {
        [one] => format!("invalid Ignition config: {one}"),
        [first, ..] => format!(
            "invalid Ignition config ({} errors; first: {first})",
            errors.len()
        ),
        [] => "invalid Ignition config".into(),
    }
}

/// Everything learned from checking one document.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The spec version the document declared, when it could be read and is supported.
    pub version: Option<Version>,
    /// The config, translated up to the newest spec; `None` when the document could not be
    /// decoded at all (syntax error, missing or unsupported version).
    pub config: Option<Config>,
    pub reports: Vec<Report>,
}

impl Checked {
    pub fn is_valid(&self) -> bool {
        self.config.is_some() && !report::has_errors(&self.reports)
    }
}

/// Parses and validates a config, translating it up to the newest spec. `Ok` carries the
/// warnings; `Err` carries all reports when there is any error.
pub fn parse(bytes: &[u8]) -> Result<(Config, Vec<Report>), InvalidConfig> {
    let checked = check(bytes);
    match checked.config {
        Some(cfg) if !report::has_errors(&checked.reports) => Ok((cfg, checked.reports)),
        _ => Err(InvalidConfig {
            reports: checked.reports,
        }),
    }
}

/// Checks a document and returns every report, whether or not it is valid.
pub fn check(bytes: &[u8]) -> Checked {
    match json::parse(bytes) {
        Ok(node) => check_tree(&node),
        Err(e) => Checked {
            version: None,
            config: None,
            reports: vec![Report {
                severity: Severity::Error,
                path: None,
                pos: Some(e.pos),
                message: e.message,
            }],
        },
    }
}

/// Checks an already-parsed tree, translating the config up to the newest spec.
pub fn check_tree(node: &Node) -> Checked {
    let mut checked = check_tree_as_declared(node);
    if let (Some(cfg), Some(v)) = (checked.config.as_mut(), checked.version) {
        translate_up(cfg, v);
    }
    checked
}

/// Checks an already-parsed tree (the Butane front end builds one from YAML) and keeps the
/// config at the version it declares.
pub fn check_tree_as_declared(node: &Node) -> Checked {
    let fail = |path: Option<JsonPath>, pos, message: String| Checked {
        version: None,
        config: None,
        reports: vec![Report {
            severity: Severity::Error,
            path,
            pos: Some(pos),
            message,
        }],
    };
    let Value::Object(entries) = &node.value else {
        return fail(
            None,
            node.pos,
            format!(
                "json: cannot unmarshal {} into a config (expected an object)",
                node.value.type_name()
            ),
        );
    };
    let ignition = entries
        .iter()
        .rev()
        .find(|e| e.key.eq_ignore_ascii_case("ignition"))
        .map(|e| &e.value);
    let version_node = ignition.and_then(|n| match &n.value {
        Value::Object(es) => es
            .iter()
            .rev()
            .find(|e| e.key.eq_ignore_ascii_case("version"))
            .map(|e| &e.value),
        _ => None,
    });
    let vpath = JsonPath::root().key("ignition").key("version");
    let version = match version_node.map(|n| (&n.value, n.pos)) {
        Some((Value::String(s), pos)) => match Version::parse_supported(s) {
            Ok(v) => v,
            Err(version::VersionError::Unsupported) => {
                return fail(Some(vpath), pos, format!("unsupported config version {s:?}; this tool accepts 3.0.0 through {} and {}", version::NEWEST, version::EXPERIMENTAL));
            }
            Err(e) => return fail(Some(vpath), pos, e.to_string()),
        },
        Some((v, pos)) => return fail(Some(vpath), pos, format!("json: cannot unmarshal {} into a value of type string; the version must be a string such as \"3.5.0\"", v.type_name())),
        None => return fail(Some(vpath), ignition.map_or(node.pos, |n| n.pos), "invalid config version (couldn't parse)".into()),
    };
    let mut d = Decoder::new(version);
    let mut config = Config::decode(node, &JsonPath::root(), &mut d).unwrap_or_default();
    if !version.at_least(1) {
        drop_pre_31_compression(&mut config, &mut d);
    }
    let mut reports = d.reports;
    reports.extend(validate::validate(&config, version, &d.positions));
    reports.sort_by_key(|r| r.pos.map_or((usize::MAX, usize::MAX), |p| (p.line, p.col)));
    Checked {
        version: Some(version),
        config: Some(config),
        reports,
    }
}

/// Validates a config built in memory (for example a merge result), at its declared version.
pub fn validate_config(cfg: &Config) -> Vec<Report> {
    let raw = cfg.ignition.version.as_deref().unwrap_or("");
    match Version::parse_supported(raw) {
        Ok(v) => validate::validate(cfg, v, &Positions::default()),
        Err(e) => vec![Report {
            severity: Severity::Error,
            path: Some(JsonPath::root().key("ignition").key("version")),
            pos: None,
            message: e.to_string(),
        }],
    }
}

/// Spec 3.0.0 only has `compression` on file contents; elsewhere it is an unused key.
fn drop_pre_31_compression(cfg: &mut Config, d: &mut Decoder) {
    let ign = JsonPath::root().key("ignition");
    let mut refs: Vec<(JsonPath, &mut types::Resource)> = Vec::new();
    if let Some(c) = cfg.ignition.config.as_mut() {
        refs.extend(
            c.merge
                .iter_mut()
                .enumerate()
                .map(|(i, r)| (ign.key("config").key("merge").index(i), r)),
        );
        if let Some(r) = c.replace.as_mut() {
            refs.push((ign.key("config").key("replace"), r));
        }
    }
    if let Some(tls) = cfg.ignition.security.as_mut().and_then(|s| s.tls.as_mut()) {
        let p = ign.key("security").key("tls").key("certificateAuthorities");
        refs.extend(
            tls.certificate_authorities
                .iter_mut()
                .enumerate()
                .map(|(i, r)| (p.index(i), r)),
        );
    }
    for (path, r) in refs {
        if r.compression.take().is_some() {
            let at = path.key("compression");
            let pos = d.positions.find(&at);
            d.reports.push(Report {
                severity: Severity::Warning,
                path: Some(at),
                pos,
                message: "Unused key compression".into(),
            });
        }
    }
}

/// Rewrites a decoded config of an older spec as the newest spec. Specs before 3.4.0 cannot
/// express setuid/setgid/sticky bits (Ignition strips them, with a warning at validation).
fn translate_up(cfg: &mut Config, from: Version) {
    if from.experimental {
        return;
    }
    if !from.at_least(4) {
        if let Some(s) = cfg.storage.as_mut() {
            for m in s
                .files
                .iter_mut()
                .map(|f| &mut f.mode)
                .chain(s.directories.iter_mut().map(|d| &mut d.mode))
                .flatten()
            {
                *m &= 0o777;
            }
        }
    }
    cfg.ignition.version = Some(version::NEWEST.to_string());
}
