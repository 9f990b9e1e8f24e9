//! Where `keel` command lines live outside Rust: unit files and drop-ins of the dracut module
//! and the overlays; and unit text embedded in Rust sources (string literals, some of them
//! `format!` templates).

use std::path::{Path, PathBuf};

/// One `Exec*=` setting found somewhere, with what is needed to expand it.
#[derive(Debug)]
pub struct ExecLine {
    /// `path:line` for messages.
    pub at: String,
    pub value: String,
    /// The values of the `Environment=` settings of the same file.
    pub environment: Vec<String>,
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every regular file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The `Exec*=` settings of a unit file or drop-in: continuation lines joined, comments
/// skipped, empty values (which reset the list) left out.
pub fn unit_exec_lines(path: &Path, text: &str) -> Vec<ExecLine> {
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let (start, mut acc) = pending.take().unwrap_or((n + 1, String::new()));
        let trimmed = line.trim();
        if acc.is_empty() && (trimmed.starts_with('#') || trimmed.starts_with(';')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                acc.push_str(part);
                acc.push(' ');
                pending = Some((start, acc));
            }
            None => {
                acc.push_str(trimmed);
                logical.push((start, acc));
            }
        }
    }
    logical.extend(pending);
    let environment: Vec<String> = logical
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("Environment="))
        .map(str::to_string)
        .collect();
    logical
        .into_iter()
        .filter_map(|(n, l)| {
            let (key, value) = l.split_once('=')?;
            (super::exec::EXEC_KEYS.contains(&key.trim()) && !value.trim().is_empty()).then(|| {
                ExecLine {
                    at: format!("{}:{n}", path.display()),
                    value: value.trim().to_string(),
                    environment: environment.clone(),
                }
            })
        })
        .collect()
}

/// Plausible values for `{name}` placeholders of `format!` templates that build unit text.
const FORMAT_ARGS: [(&str, &str); 1] = [("stage", "files")];

/// `Exec*=` settings that mention `keel` inside string literals of a Rust source: the text
/// from `ExecX=` to the end of the literal or an escaped newline, with templates (`{stage}`,
/// `{{`) filled in.
pub fn rust_exec_lines(path: &Path, text: &str) -> Result<Vec<ExecLine>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for key in super::exec::EXEC_KEYS {
            let pat = format!("{key}=");
            let mut rest = line;
            while let Some(at) = rest.find(&pat) {
                let after = &rest[at + pat.len()..];
                let end = [after.find("\\n"), after.find('"')]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(after.len());
                let raw = &after[..end];
                rest = &after[end..];
                if !raw.contains("keel") {
                    continue;
                }
                let value =
                    fill_template(raw).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
                if !value.trim().is_empty() {
                    out.push(ExecLine {
                        at: format!("{}:{}", path.display(), n + 1),
                        value: value.trim().to_string(),
                        environment: Vec::new(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// `{{` and `}}` to braces, `{name}` to the plausible value of [`FORMAT_ARGS`].
fn fill_template(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if let Some(end) = tail.find('}').filter(|_| tail.starts_with('{')) {
            let name = &tail[1..end];
            let (_, v) = FORMAT_ARGS
                .iter()
                .find(|(k, _)| *k == name)
                .ok_or_else(|| {
                    format!("`{s}`: {{{name}}} has no plausible value in FORMAT_ARGS")
                })?;
            out.push_str(v);
            rest = &tail[end + 1..];
        } else {
            return Err(format!("`{s}`: unbalanced brace"));
        }
    }
    out.push_str(rest);
    Ok(out)
}
