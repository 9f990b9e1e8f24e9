//! docs/src/reference/security.md names the test behind each promise as `path/to/file.rs::function` (or
//! `…::function` for the file named last). Every one must exist, and every `hostile*.rs` test
//! file in the repository must be named on the page, so the page and the suite stay one.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// The code spans of a Markdown text.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// `(file, function)` for every span that names a test.
fn references(text: &str) -> Vec<(String, String)> {
    let mut last: Option<String> = None;
    let mut out = Vec::new();
    for span in code_spans(text) {
        let Some((file, name)) = span.rsplit_once("::") else {
            continue;
        };
        let named = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !named(name) {
            continue;
        }
        let file = if file == "…" {
            last.clone()
                .unwrap_or_else(|| panic!("`{span}` follows no file"))
        } else if file.ends_with(".rs") {
            last = Some(file.to_string());
            file.to_string()
        } else {
            continue;
        };
        out.push((file, name.to_string()));
    }
    out
}

fn hostile_test_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                hostile_test_files(&path, out);
            }
        } else if name.starts_with("hostile") && name.ends_with(".rs") {
            let rel = path.strip_prefix(repo()).unwrap();
            if rel.components().any(|c| c.as_os_str() == "tests") {
                out.push(rel.display().to_string());
            }
        }
    }
}

#[test]
fn every_test_the_security_page_names_exists() {
    let page = std::fs::read_to_string(repo().join("docs/src/reference/security.md")).unwrap();
    let refs = references(&page);
    assert!(refs.len() > 40, "only {} references found", refs.len());
    let mut missing = Vec::new();
    for (file, name) in &refs {
        let source = std::fs::read_to_string(repo().join(file))
            .unwrap_or_else(|e| panic!("docs/src/reference/security.md names {file}: {e}"));
        if !source.contains(&format!("fn {name}(")) {
            missing.push(format!("{file}::{name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "named on the page but not found: {missing:#?}"
    );

    let mut files = Vec::new();
    hostile_test_files(&repo().join("crates"), &mut files);
    hostile_test_files(&repo().join("fuzz"), &mut files);
    assert!(files.len() >= 10, "{files:?}");
    let unnamed: Vec<_> = files
        .iter()
        .filter(|f| !page.contains(f.as_str()))
        .collect();
    assert!(
        unnamed.is_empty(),
        "hostile test files the page does not name: {unnamed:?}"
    );
}

#[test]
fn references_follow_the_last_file() {
    let text = "`a/b.rs::one`, `…::two` and `c.rs::three`; `x::y` and `not a test`";
    assert_eq!(
        references(text),
        [("a/b.rs", "one"), ("a/b.rs", "two"), ("c.rs", "three")]
            .map(|(f, n)| (f.to_string(), n.to_string()))
    );
}
