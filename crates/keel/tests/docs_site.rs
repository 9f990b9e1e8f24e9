//! The documentation site (`docs/`, an mdBook) is tested like code:
//! - every Butane block (```` ```yaml ````) is translated with `keel butane --strict` and the
//!   result validated with `keel ignition validate`; every Ignition block (```` ```json ```` with an
//!   `ignition` member) is validated;
//! - every update agent drop-in (```` ```toml,agent-config ````) loads with the agent's own loader,
//!   and every OSTree remote definition (```` ```ini,ostree-remote ````) parses as the node
//!   reads it; a `toml` or `ini` block without one of these marks fails the test;
//! - every shell block marked ```` ```sh,tested ```` runs, in order, in a fresh directory per page,
//!   with the built `keel` first on `PATH`; a block marked ```` ```LANG,file=NAME ```` is written to
//!   NAME in that directory first, so later blocks can use it;
//! - every relative link and `#anchor` resolves, and every page is in `SUMMARY.md`;
//! - the site builds with mdBook and works in a real browser (Debian's chromium, headless):
//!   the sidebar links to every chapter, search finds a page, and a screenshot is taken.

// The tests run the built binary, bash, mdbook and chromium, and assert their exit statuses.
#![allow(clippy::disallowed_methods)]

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag, TagEnd};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn src() -> PathBuf {
    docs().join("src")
}

/// Every page below `docs/src`, sorted.
fn pages() -> Vec<PathBuf> {
    let mut v = Vec::new();
    files_below(&src(), &mut v);
    v.retain(|p| p.extension().is_some_and(|x| x == "md"));
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(docs()).unwrap_or(p).display().to_string()
}

/// A fenced code block of a page.
struct Block {
    /// `page:line`, for messages.
    at: String,
    lang: String,
    attrs: Vec<String>,
    text: String,
}

impl Block {
    fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a == attr)
    }

    fn file(&self) -> Option<&str> {
        self.attrs.iter().find_map(|a| a.strip_prefix("file="))
    }
}

fn blocks(page: &Path) -> Vec<Block> {
    let text = fs::read_to_string(page).unwrap();
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (ev, range) in Parser::new(&text).into_offset_iter() {
        match ev {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let mut words = info.split(|c: char| c == ',' || c.is_whitespace());
                let lang = words.next().unwrap_or("").to_string();
                let line = text[..range.start].lines().count() + 1;
                current = Some(Block {
                    at: format!("{}:{line}", rel(page)),
                    lang,
                    attrs: words.filter(|w| !w.is_empty()).map(String::from).collect(),
                    text: String::new(),
                });
            }
            Event::Text(t) => {
                if let Some(b) = current.as_mut() {
                    b.text.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => out.extend(current.take()),
            _ => {}
        }
    }
    out
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Files for the `local:` references (`local: NAME`, and the items of `*_local:` lists) of a
/// Butane example: each gets a placeholder (an SSH public key line, which every use accepts).
fn local_files(dir: &Path, butane: &str) {
    let mut names = Vec::new();
    let mut in_list = false;
    for line in butane.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("local:") {
            names.push(name.trim().to_string());
            in_list = false;
        } else if t.ends_with("_local:") {
            in_list = true;
        } else if let Some(name) = t.strip_prefix("- ").filter(|_| in_list) {
            names.push(name.trim().to_string());
        } else {
            in_list = false;
        }
    }
    for name in names {
        let name = name.split_whitespace().next().unwrap_or_default();
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(
            &p,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtlZWwtZG9jcy1leGFtcGxlLWtleS0wMDAwMDAw docs\n",
        )
        .unwrap();
    }
}

#[test]
fn butane_and_ignition_examples_are_valid() {
    let mut checked = 0;
    for page in pages() {
        for b in blocks(&page) {
            let work = tempfile::tempdir().unwrap();
            let ign = work.path().join("config.ign");
            match b.lang.as_str() {
                "yaml" => {
                    assert!(
                        b.text.contains("variant:"),
                        "{}: a yaml block that is not Butane (no `variant:`)",
                        b.at
                    );
                    let bu = work.path().join("config.bu");
                    fs::write(&bu, &b.text).unwrap();
                    local_files(work.path(), &b.text);
                    let o = run(Command::new(KEEL)
                        .args(["butane", "--strict", "--files-dir"])
                        .arg(work.path())
                        .arg(&bu)
                        .arg("-o")
                        .arg(&ign));
                    assert!(
                        o.status.success(),
                        "{}: keel butane --strict failed:\n{}",
                        b.at,
                        text(&o)
                    );
                }
                "json" => {
                    let v: serde_json::Value = serde_json::from_str(&b.text)
                        .unwrap_or_else(|e| panic!("{}: not JSON: {e}", b.at));
                    if v.get("ignition").is_none() {
                        continue;
                    }
                    fs::write(&ign, &b.text).unwrap();
                }
                _ => continue,
            }
            let o = run(Command::new(KEEL).args(["ignition", "validate"]).arg(&ign));
            assert!(
                o.status.success(),
                "{}: keel ignition validate failed:\n{}",
                b.at,
                text(&o)
            );
            assert!(
                !text(&o).contains("warning"),
                "{}: validation warns:\n{}",
                b.at,
                text(&o)
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} configs found in docs/src");
}

#[test]
fn config_file_examples_load() {
    let mut checked = 0;
    for page in pages() {
        for b in blocks(&page) {
            match b.lang.as_str() {
                "toml" => {
                    assert!(b.has("agent-config"), "{}: an untested toml block", b.at);
                    let root = tempfile::tempdir().unwrap();
                    let d = root.path().join("etc/keel/agent.d");
                    fs::create_dir_all(&d).unwrap();
                    fs::write(d.join("50-docs.toml"), &b.text).unwrap();
                    let loaded = keel_agent::config::load(root.path())
                        .unwrap_or_else(|e| panic!("{}: the agent refuses it: {e}", b.at));
                    loaded
                        .strategy_parts()
                        .unwrap_or_else(|e| panic!("{}: the agent refuses it: {e}", b.at));
                }
                "ini" => {
                    assert!(b.has("ostree-remote"), "{}: an untested ini block", b.at);
                    let remotes = keel_remote::config::parse_remotes(&b.text)
                        .unwrap_or_else(|e| panic!("{}: not a remote definition: {e}", b.at));
                    assert!(!remotes.is_empty(), "{}: defines no remote", b.at);
                }
                _ => continue,
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "only {checked} config file examples found in docs/src"
    );
}

#[test]
fn tested_shell_blocks_run() {
    let keel_dir = Path::new(KEEL).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        keel_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for page in pages() {
        let work = tempfile::tempdir().unwrap();
        for b in blocks(&page) {
            if let Some(name) = b.file() {
                let p = work.path().join(name);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, &b.text).unwrap();
            }
            if !b.has("tested") {
                continue;
            }
            assert!(
                matches!(b.lang.as_str(), "sh" | "bash"),
                "{}: only sh blocks can be tested",
                b.at
            );
            let o = run(Command::new("bash")
                .args(["-euo", "pipefail", "-c", &b.text])
                .current_dir(work.path())
                .env("PATH", &path));
            assert!(
                o.status.success(),
                "{}: the tested block failed ({}):\n{}\n--- output:\n{}",
                b.at,
                o.status,
                b.text,
                text(&o)
            );
            ran += 1;
        }
    }
    assert!(ran >= 2, "only {ran} tested blocks found in docs/src");
}

/// The anchor mdBook gives a heading: lower case, spaces to `-`, other punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Headings' anchors and link targets of a page.
fn anchors_and_links(page: &Path) -> (BTreeSet<String>, Vec<String>) {
    let text = fs::read_to_string(page).unwrap();
    let (mut anchors, mut links) = (BTreeSet::new(), Vec::new());
    let mut heading: Option<String> = None;
    for ev in Parser::new(&text) {
        match ev {
            Event::Start(Tag::Heading { level, .. }) if level != HeadingLevel::H6 => {
                heading = Some(String::new())
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    anchors.insert(slug(&h));
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) => links.push(dest_url.to_string()),
            _ => {}
        }
    }
    (anchors, links)
}

#[test]
fn links_resolve_and_every_page_is_in_the_summary() {
    let pages = pages();
    let anchors: BTreeMap<PathBuf, BTreeSet<String>> = pages
        .iter()
        .map(|p| (p.canonicalize().unwrap(), anchors_and_links(p).0))
        .collect();
    let mut broken = Vec::new();
    for page in &pages {
        for link in anchors_and_links(page).1 {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            match target.canonicalize().ok().and_then(|t| anchors.get(&t)) {
                None => broken.push(format!("{}: {link}: no such page", rel(page))),
                Some(a) if !anchor.is_empty() && !a.contains(anchor) => {
                    broken.push(format!("{}: {link}: no heading #{anchor}", rel(page)))
                }
                Some(_) => {}
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    let summary = src().join("SUMMARY.md");
    let listed: BTreeSet<PathBuf> = anchors_and_links(&summary)
        .1
        .iter()
        .map(|l| src().join(l).canonicalize().unwrap())
        .collect();
    for page in &pages {
        if page.ends_with("SUMMARY.md") {
            continue;
        }
        assert!(
            listed.contains(&page.canonicalize().unwrap()),
            "{} is not in docs/src/SUMMARY.md",
            rel(page)
        );
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn dump_dom(browser: &str, url: &str) -> String {
    let o = run(Command::new(browser).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]));
    assert!(o.status.success(), "{browser} {url}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_site_builds_and_works_in_a_browser() {
    let mdbook_ok = Command::new("mdbook")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let Some(browser) = chromium().filter(|_| mdbook_ok) else {
        keel_testsupport::skip(
            "docs_site::the_site_builds_and_works_in_a_browser: needs mdbook and chromium \
             (scripts/install-deps.sh installs both)",
        );
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let site = out.path().join("site");
    let o = run(Command::new("mdbook")
        .arg("build")
        .arg(docs())
        .arg("--dest-dir")
        .arg(&site));
    assert!(o.status.success(), "mdbook build: {}", text(&o));
    assert!(
        !text(&o).contains("WARN"),
        "mdbook build warns:\n{}",
        text(&o)
    );
    for page in pages() {
        let r = page.strip_prefix(src()).unwrap().with_extension("html");
        if !page.ends_with("SUMMARY.md") {
            assert!(site.join(&r).is_file(), "{} was not built", r.display());
        }
    }

    let index = format!("file://{}/index.html", site.display());
    let dom = dump_dom(browser, &index);
    for chapter in [
        "getting-started.html",
        "provisioning/butane.html",
        "troubleshooting.html",
    ] {
        assert!(
            dom.contains(&format!("href=\"{chapter}\"")),
            "the sidebar of index.html does not link {chapter}"
        );
    }
    let dom = dump_dom(
        browser,
        &format!(
            "file://{}/introduction.html?search=rollback",
            site.display()
        ),
    );
    // mdBook's search list (`<ul id="mdbook-searchresults">`), filled from `?search=`.
    let results = dom
        .split("searchresults\"><li>")
        .nth(1)
        .unwrap_or_else(|| panic!("searching `rollback` found nothing"));
    assert!(
        results.contains("how-updates-work.html"),
        "searching `rollback` does not find the updates page: {}",
        &results[..results.len().min(2000)]
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs-site.png");
    let o = run(Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}/getting-started.html", site.display())));
    assert!(o.status.success(), "screenshot: {}", text(&o));
    let png = fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "the screenshot {} is not a rendered page ({} bytes)",
        shot.display(),
        png.len()
    );
}

/// Every file below `dir`, `target` directories left out.
fn files_below(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if !p.ends_with("target") {
                files_below(&p, out);
            }
        } else {
            out.push(p);
        }
    }
}

#[test]
fn every_site_url_the_product_shows_is_a_page() {
    let repo = docs().join("..");
    let mut files = Vec::new();
    for d in ["crates", "manifests"] {
        files_below(&repo.join(d), &mut files);
    }
    let mut named = 0;
    let mut missing = Vec::new();
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        let urls = text
            .match_indices("https://keel.dev/docs/")
            .map(|(i, m)| &text[i + m.len()..])
            .chain(
                text.match_indices("docs_url!(\"")
                    .map(|(i, m)| &text[i + m.len()..]),
            );
        for rest in urls {
            let page: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || "-_./".contains(*c))
                .collect();
            let Some(stem) = page.strip_suffix(".html") else {
                continue;
            };
            // Generated man page cross-references name `keel\-repo`: roff escapes.
            let stem = stem.replace('\\', "");
            named += 1;
            if !src().join(format!("{stem}.md")).is_file() {
                missing.push(format!("{}: {page}", rel(&f)));
            }
        }
    }
    assert!(named >= 3, "only {named} site URLs found");
    assert!(
        missing.is_empty(),
        "URLs of the documentation site with no page in docs/src:\n{}",
        missing.join("\n")
    );
}

/// The site's command-line reference (`docs/src/reference/cli/`) is generated from the clap
/// tree by `keel docs cli-reference`; it must match what the built binary generates, so a
/// changed option or help text cannot ship with a stale page. `KEEL_UPDATE_DOCS=1` rewrites it.
#[test]
fn the_cli_reference_is_generated_from_the_binary() {
    let dir = src().join("reference/cli");
    let fresh = tempfile::tempdir().unwrap();
    let o = run(Command::new(KEEL)
        .args(["docs", "cli-reference", "--out"])
        .arg(fresh.path()));
    assert!(o.status.success(), "{}", text(&o));
    if std::env::var_os("KEEL_UPDATE_DOCS").is_some() {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for e in fs::read_dir(fresh.path()).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let names = |d: &Path| -> BTreeSet<String> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&dir),
        names(fresh.path()),
        "docs/src/reference/cli is out of date; run `KEEL_UPDATE_DOCS=1 cargo test -p keel \
         --test docs_site` and add the new pages to SUMMARY.md"
    );
    for name in names(fresh.path()) {
        assert_eq!(
            fs::read_to_string(dir.join(&name)).unwrap(),
            fs::read_to_string(fresh.path().join(&name)).unwrap(),
            "docs/src/reference/cli/{name} is out of date; run `KEEL_UPDATE_DOCS=1 cargo test \
             -p keel --test docs_site`"
        );
    }
}
