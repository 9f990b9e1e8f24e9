//! Man pages and the Markdown CLI reference, written by the built `keel docs` and read back:
//! one page per command of the clap tree, pages that `groff` and `man` render without a
//! warning, a reference that names every option, byte-identical output on a second run, and
//! compose's install step putting the gzip-compressed pages into a tree.

// The tests run groff, man and gzip and assert on their raw status and stderr, which the
// command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use clap::CommandFactory;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn keel(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .output()
        .expect("running keel");
    assert!(
        out.status.success(),
        "keel {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `keel docs <what> [extra] --out <fresh dir>`; returns the directory.
fn docs(what: &str, extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut args = vec!["docs", what];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", out]);
    keel(&args);
    dir
}

/// Every file of a directory, by name, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Every command's words, walked here from the clap definitions (not through the library's
/// walker), with whether it is hidden; clap's `help` subcommands are left out.
fn clap_commands() -> Vec<(Vec<String>, bool)> {
    fn walk(
        c: &clap::Command,
        words: Vec<String>,
        hidden: bool,
        out: &mut Vec<(Vec<String>, bool)>,
    ) {
        let hidden = hidden || c.is_hide_set();
        out.push((words.clone(), hidden));
        for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut w = words.clone();
            w.push(sub.get_name().to_string());
            walk(sub, w, hidden, out);
        }
    }
    let mut out = Vec::new();
    walk(&keel::Cli::command(), vec!["keel".into()], false, &mut out);
    out
}

/// groff-base (groff) and man-db (man) are in scripts/debian-packages.txt; without them the
/// test is skipped visibly, which CI does not allow.
fn have_tools(test: &str) -> bool {
    for (tool, package) in [("groff", "groff-base"), ("man", "man-db")] {
        if !keel_utils::cmd::have(tool) {
            keel_testsupport::skip(&format!(
                "{test}: `{tool}` is not installed (apt-get install {package})"
            ));
            return false;
        }
    }
    true
}

#[test]
fn every_command_has_a_man_page() {
    let dir = docs("man", &[]);
    let pages = files(dir.path());
    let commands = clap_commands();
    assert!(commands.len() > 40, "only {} commands", commands.len());
    for (words, hidden) in &commands {
        let name = format!("{}.1", words.join("-"));
        let page = String::from_utf8(
            pages
                .get(&name)
                .cloned()
                .unwrap_or_else(|| panic!("no man page {name} for `{}`", words.join(" "))),
        )
        .unwrap();
        let title = format!(".TH {} 1", words.join("-").to_uppercase());
        assert!(page.starts_with(&title), "{name} starts {:?}", &page[..40]);
        assert!(page.contains(".SH SYNOPSIS"), "{name} has no synopsis");
        assert_eq!(
            page.contains("This is plumbing"),
            *hidden,
            "{name}: the plumbing note must be on hidden commands only"
        );
    }
    assert_eq!(pages.len(), commands.len(), "pages without a command");
    // Some commands the units and the issue name, by their page.
    for name in [
        "keel.1",
        "keel-status.1",
        "keel-repo-pull.1",
        "keel-docs-man.1",
    ] {
        assert!(pages.contains_key(name), "{name} missing");
    }
    let pull = String::from_utf8(pages["keel-repo-pull.1"].clone()).unwrap();
    assert!(
        pull.contains(".SH \"SEE ALSO\"") && pull.contains("keel\\-repo(1)"),
        "{pull}"
    );
    assert!(pull.contains("https://keel.dev/docs/reference/cli/keel\\-repo.html"));
}

/// groff with all warnings on, and man-db's `man -l` in a UTF-8 and in an ASCII locale (as on
/// a node's serial console), render every page without a warning; the top page, a
/// subcommand's and a hidden one's read as they should.
#[test]
fn man_renders_pages_without_warnings() {
    if !have_tools("man_renders_pages_without_warnings") {
        return;
    }
    let dir = docs("man", &[]);
    let render = |page: &Path, locale: &str| {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(page)
            .env("LC_ALL", locale)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success(), "man -l {} failed", page.display());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "man ({locale}) warns about {}",
            page.display()
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let pages = files(dir.path());
    for name in pages.keys() {
        let page = dir.path().join(name);
        let groff = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(groff.status.success(), "groff failed on {name}");
        assert_eq!(
            String::from_utf8_lossy(&groff.stderr),
            "",
            "groff warns about {name}"
        );
        render(&page, "C");
        render(&page, "C.UTF-8");
    }
    for (name, heading) in [
        ("keel.1", "keel - Keel"),
        ("keel-repo-pull.1", "keel-repo-pull -"),
        ("keel-prepare-root.1", "keel-prepare-root -"),
        ("keel-agent.1", "keel-agent -"),
    ] {
        let text = render(&dir.path().join(name), "C");
        // Justification pads words; compare with single spaces.
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains(heading), "{name} renders as:\n{text}");
        assert!(text.contains("SYNOPSIS") && text.contains("SEE ALSO"));
        assert!(
            text.lines().last().is_some_and(|l| l.starts_with("Keel ")),
            "{name}: the footer names Keel and its version:\n{text}"
        );
    }
    // The examples stay one command a line, as `keel repo --help` shows them.
    let man = Command::new("man")
        .args(["-l"])
        .arg(dir.path().join("keel-repo.1"))
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(text.contains("EXAMPLES"), "{text}");
    let help = String::from_utf8(keel(&["repo", "--help"]).stdout).unwrap();
    let first_example = help
        .lines()
        .skip_while(|l| *l != "Examples:")
        .nth(1)
        .unwrap()
        .trim();
    assert!(
        text.lines().any(|l| l.trim() == first_example),
        "{first_example:?} is not one line of:\n{text}"
    );
}

/// Every visible argument and option of a sample command is in its reference page, and the
/// index links every top-level command's page.
#[test]
fn cli_reference_mentions_every_option() {
    let dir = docs("cli-reference", &[]);
    let pages = files(dir.path());
    let text = |name: &str| String::from_utf8(pages[name].clone()).unwrap();
    let repo = text("keel-repo.md");
    let pull_section = repo
        .split("\n## keel repo pull\n")
        .nth(1)
        .expect("a section for keel repo pull")
        .split("\n## ")
        .next()
        .unwrap();
    let mut root = keel::Cli::command();
    root.build();
    let pull = root
        .find_subcommand("repo")
        .and_then(|r| r.find_subcommand("pull"))
        .unwrap();
    let mut checked = 0;
    for arg in pull.get_arguments().filter(|a| !a.is_hide_set()) {
        let spelled = match (arg.get_long(), arg.get_value_names()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(names)) => format!("<{}>", names[0]),
            (None, None) => format!("<{}>", arg.get_id().as_str().to_uppercase()),
        };
        assert!(
            pull_section.contains(&format!("`{spelled}")) || pull_section.contains(&spelled),
            "{spelled} missing from keel repo pull's reference:\n{pull_section}"
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} options checked");
    assert!(
        pull_section.contains("```text\nkeel repo pull"),
        "{pull_section}"
    );

    let index = text("index.md");
    let tops: Vec<(Vec<String>, bool)> = clap_commands()
        .into_iter()
        .filter(|(w, _)| w.len() == 2)
        .collect();
    for (words, _) in &tops {
        let file = format!("{}.md", words.join("-"));
        assert!(
            index.contains(&format!("]({file})")),
            "index.md does not link {file}"
        );
        let page = text(&file);
        assert!(
            page.starts_with(&format!("# {}\n", words.join(" "))),
            "{file}"
        );
    }
    assert_eq!(pages.len(), tops.len() + 1, "pages: {:?}", pages.keys());
    assert!(
        index.contains("## Plumbing"),
        "hidden commands are listed apart"
    );
    // Help text that looks like HTML (`<REF>`) stays visible text: outside code, no raw `<`.
    for name in pages.keys() {
        let page = text(name);
        let prose: String = page
            .split("```")
            .step_by(2)
            .flat_map(|outside| outside.split('`').step_by(2))
            .collect();
        assert!(
            !prose.contains('<'),
            "{name} has raw markup outside code:\n{prose}"
        );
    }
}

/// Two runs write the same bytes: nothing depends on the date, the clock or the directory.
#[test]
fn generating_twice_gives_identical_output() {
    for (what, extra) in [
        ("man", &[][..]),
        ("man", &["--gzip"][..]),
        ("cli-reference", &[][..]),
    ] {
        let a = docs(what, extra);
        let b = docs(what, extra);
        let (fa, fb) = (files(a.path()), files(b.path()));
        assert!(!fa.is_empty());
        assert_eq!(
            fa.keys().collect::<Vec<_>>(),
            fb.keys().collect::<Vec<_>>(),
            "{what} {extra:?}: different files"
        );
        for (name, bytes) in &fa {
            assert!(bytes == &fb[name], "{what} {extra:?}: {name} differs");
        }
    }
}

/// Compose's install step puts keel, its gzip-compressed man pages (rendered by that same
/// binary) and the dracut module into the tree.
#[test]
fn compose_installs_the_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    let text = format!(
        "[release]\nstream = \"stable\"\n[debian]\nsuite = \"bookworm\"\nmirrors = [\"http://deb.debian.org/debian\"]\n[keel]\ninstall = true\nbinary = \"{}\"\n",
        env!("CARGO_BIN_EXE_keel")
    );
    let m = keel_compose::manifest::Manifest::parse(
        text.as_bytes(),
        Path::new("m.toml"),
        PathBuf::from("/"),
    )
    .unwrap();
    keel_compose::tree::install_keel(&m, &tree).unwrap();
    assert!(tree.join("usr/bin/keel").is_file());
    let man1 = tree.join(keel_compose::tree::MAN_DIR);
    assert_eq!(keel_compose::tree::MAN_DIR, "usr/share/man/man1");
    let installed = files(&man1);
    assert_eq!(installed.len(), clap_commands().len());
    assert!(
        installed.keys().all(|n| n.ends_with(".1.gz")),
        "{installed:?}"
    );
    let page = tree.join("usr/share/man/man1/keel.1.gz");
    let unzipped = Command::new("gzip").arg("-dc").arg(&page).output().unwrap();
    assert!(unzipped.status.success());
    assert!(String::from_utf8_lossy(&unzipped.stdout).starts_with(".TH KEEL 1"));
    // Exactly the uncompressed page `keel docs man` writes.
    let plain = docs("man", &[]);
    assert_eq!(
        unzipped.stdout,
        fs::read(plain.path().join("keel.1")).unwrap()
    );
}

/// Every `Documentation=man:keel…(1)` of keel's units (the OS overlay and the initramfs
/// module) names a page that exists.
#[test]
fn unit_documentation_names_existing_pages() {
    let pages: Vec<String> = clap_commands()
        .into_iter()
        .map(|(w, _)| w.join("-"))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut units: Vec<(String, String)> = keel_compose::tree::DRACUT_MODULE
        .iter()
        .map(|(name, text, _)| (name.to_string(), text.to_string()))
        .collect();
    let mut dirs = vec![root.join("manifests/overlays/keel/usr/lib/systemd/system")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if let Ok(text) = fs::read_to_string(&p) {
                units.push((p.display().to_string(), text));
            }
        }
    }
    let mut named = 0;
    for (unit, text) in &units {
        let docs = text
            .lines()
            .filter_map(|l| l.strip_prefix("Documentation="))
            .flat_map(str::split_whitespace);
        for doc in docs {
            let Some(page) = doc
                .strip_prefix("man:keel")
                .and_then(|p| p.strip_suffix("(1)"))
            else {
                continue;
            };
            let page = format!("keel{page}");
            assert!(pages.contains(&page), "{unit}: no man page {page}(1)");
            named += 1;
        }
        if text.contains("ExecStart=/usr/bin/keel") || text.contains("ExecStop=/usr/bin/keel") {
            assert!(
                text.contains("Documentation=man:keel"),
                "{unit} runs keel but has no Documentation=man:keel-…(1)"
            );
        }
    }
    assert!(named >= 10, "only {named} keel man pages named by units");
}
