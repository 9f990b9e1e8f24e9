//! Butane: human-friendly YAML that translates to Ignition JSON.
//!
//! Accepts variant `fcos` 1.0.0–1.6.0 (mapped to Ignition 3.0.0–3.5.0 like upstream Butane) and
//! keel's own variant `keel` 1.0.0 (fcos 1.6.0's sugar, Ignition 3.5.0). Problems are reported
//! like Ignition's, at the YAML path and line/column.
//!
//! ```
//! let out = keel_butane::translate(b"variant: keel\nversion: 1.0.0\n", &Default::default()).unwrap();
//! assert_eq!(out.json, r#"{"ignition":{"version":"3.5.0"}}"#);
//! ```

pub mod cli;
mod dataurl;
mod desugar;
mod files;
mod sugar;
mod variant;
mod yaml;

pub use variant::{lookup, Target};

use desugar::{Desugar, Extras};
use files::FilesDir;
use keel_ignition_config::report::{has_errors, Segment};
use keel_ignition_config::tree::{Entry, Node, Pos, Value};
use keel_ignition_config::{merge, Config, JsonPath, Report, Severity};
use std::path::PathBuf;

/// How to translate.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Directory that `local`, `contents_local`, `ssh_authorized_keys_local` and trees are read from.
    pub files_dir: Option<PathBuf>,
    /// Treat warnings as errors.
    pub strict: bool,
    /// Indent the JSON output.
    pub pretty: bool,
}

/// A successful translation.
#[derive(Debug, Clone)]
pub struct Output {
    pub config: Config,
    pub json: String,
    /// Warnings (there are no errors in a successful translation).
    pub reports: Vec<Report>,
}

/// A failed translation with every report.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct TranslateError {
    pub reason: String,
    pub reports: Vec<Report>,
}

fn fail(reason: &str, reports: Vec<Report>) -> TranslateError {
    TranslateError {
        reason: reason.to_string(),
        reports,
    }
}

fn error_at(path: Option<JsonPath>, pos: Pos, message: String) -> Report {
    Report {
        severity: Severity::Error,
        path,
        pos: Some(pos),
        message,
    }
}

/// Shows Ignition JSON paths with Butane's snake_case keys.
fn to_yaml_path(mut r: Report) -> Report {
    if let Some(key) = r.message.strip_prefix("Unused key ") {
        r.message = format!("Unused key {}", desugar::to_snake(key));
    }
    if let Some(p) = r.path.as_mut() {
        for seg in p.0.iter_mut() {
            if let Segment::Key(k) = seg {
                *k = desugar::to_snake(k);
            }
        }
    }
    r
}

fn root_string(root: &Node, key: &str) -> Result<String, Report> {
    match root.get(key) {
        Some(Node {
            value: Value::String(s),
            ..
        }) => Ok(s.clone()),
        Some(n) => Err(error_at(
            Some(JsonPath::root().key(key)),
            n.pos,
            format!("{key} must be a string"),
        )),
        None => Err(error_at(
            Some(JsonPath::root().key(key)),
            root.pos,
            format!("{key} is required (for example `variant: keel` and `version: 1.0.0`)"),
        )),
    }
}

/// Translates a Butane document to an Ignition config.
pub fn translate(input: &[u8], opts: &Options) -> Result<Output, TranslateError> {
    let text = std::str::from_utf8(input).map_err(|e| {
        let line = 1 + input[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        fail(
            "source config is invalid",
            vec![error_at(
                None,
                Pos { line, col: 1 },
                format!(
                    "input is not valid UTF-8 (offset {}); save the file as UTF-8",
                    e.valid_up_to()
                ),
            )],
        )
    })?;
    let doc = yaml::parse(text).map_err(|e| {
        fail(
            "source config is invalid",
            vec![error_at(None, e.pos, e.message)],
        )
    })?;
    let root = doc.root;
    let Value::Object(entries) = &root.value else {
        return Err(fail(
            "source config is invalid",
            vec![error_at(
                None,
                root.pos,
                "the document must be a mapping with `variant` and `version`".into(),
            )],
        ));
    };
    let (variant, version) = match (root_string(&root, "variant"), root_string(&root, "version")) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            return Err(fail(
                "source config is invalid",
                [a.err(), b.err()].into_iter().flatten().collect(),
            ))
        }
    };
    let target = variant::lookup(&variant, &version).map_err(|e| {
        let at = if matches!(e, variant::VariantError::Variant(_)) {
            "variant"
        } else {
            "version"
        };
        let pos = root.get(at).map_or(root.pos, |n| n.pos);
        fail(
            "source config is invalid",
            vec![error_at(Some(JsonPath::root().key(at)), pos, e.to_string())],
        )
    })?;

    let body: Vec<Entry> = entries
        .iter()
        .filter(|e| e.key != "variant" && e.key != "version")
        .cloned()
        .collect();
    let mut d = Desugar {
        target,
        files: FilesDir(opts.files_dir.as_deref()),
        plain_decimal_ints: &doc.plain_decimal_ints,
        reports: Vec::new(),
        extras: Extras::default(),
    };
    let mut tree = d.document(&Node::new(root.pos, Value::Object(body)));
    set_version(&mut tree, &target);

    let checked = keel_ignition_config::check_tree_as_declared(&tree);
    let mut reports = std::mem::take(&mut d.reports);
    reports.extend(checked.reports.into_iter().map(to_yaml_path));
    let Some(user) = checked.config else {
        return Err(fail("source config is invalid", reports));
    };
    let mut generated = Config::default();
    let mut mirrored = Vec::new();
    if let Some((node, at)) = d.extras.boot_device.take() {
        let boot = sugar::boot_device(&mut d, &node, &at);
        mirrored = boot
            .storage
            .iter()
            .flat_map(|s| s.disks.iter())
            .filter_map(|disk| disk.device.clone())
            .collect();
        generated = merge(&generated, &boot);
    }
    sugar::reuse_by_label(&mut d, &user, &tree, &mirrored);
    if let Some((node, at)) = d.extras.grub.take() {
        generated = merge(&generated, &sugar::grub(&mut d, &node, &at));
    }
    generated = merge(&generated, &sugar::trees(&mut d, &user));
    generated = merge(
        &generated,
        &sugar::mount_units(
            &mut d,
            &user,
            &JsonPath::root().key("storage").key("filesystems"),
        ),
    );
    reports.extend(std::mem::take(&mut d.reports));
    reports.sort_by_key(|r| r.pos.map_or((usize::MAX, usize::MAX), |p| (p.line, p.col)));
    let mut config = merge(&generated, &user);
    config.ignition.version = Some(target.spec.to_string());
    if has_errors(&reports) {
        return Err(fail("source config is invalid", reports));
    }
    let generated_reports = keel_ignition_config::validate_config(&config);
    if has_errors(&generated_reports) {
        reports.extend(generated_reports);
        return Err(fail("config generated was invalid", reports));
    }
    if opts.strict && !reports.is_empty() {
        return Err(fail(
            "config produced warnings and --strict was specified",
            reports,
        ));
    }
    let json = if opts.pretty {
        serde_json::to_string_pretty(&config)
    } else {
        serde_json::to_string(&config)
    }
    .map_err(|e| fail(&format!("serializing the config: {e}"), Vec::new()))?;
    Ok(Output {
        config,
        json,
        reports,
    })
}

/// The node of the converted tree at a (snake_case) report path, for positions of reports that
/// are made after decoding.
fn node_at<'t>(tree: &'t Node, path: &JsonPath) -> Option<&'t Node> {
    let mut node = tree;
    for seg in &path.0 {
        node = match (seg, &node.value) {
            (Segment::Key(k), Value::Object(_)) => node.get(&desugar::to_camel(k))?,
            (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Writes `ignition.version` into the converted tree.
fn set_version(tree: &mut Node, target: &Target) {
    let Value::Object(entries) = &mut tree.value else {
        return;
    };
    let pos = tree.pos;
    let version = Entry {
        key: "version".into(),
        key_pos: pos,
        value: Node::new(pos, Value::String(target.spec.to_string())),
    };
    match entries.iter_mut().find(|e| e.key == "ignition") {
        Some(Entry {
            value:
                Node {
                    value: Value::Object(ign),
                    ..
                },
            ..
        }) => {
            ign.retain(|e| !e.key.eq_ignore_ascii_case("version"));
            ign.push(version);
        }
        _ => {
            entries.retain(|e| e.key != "ignition");
            entries.push(Entry {
                key: "ignition".into(),
                key_pos: pos,
                value: Node::new(pos, Value::Object(vec![version])),
            });
        }
    }
}
