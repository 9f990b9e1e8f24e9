//! Every `keel` help page, rendered as an 80-column terminal shows it: each has an example
//! section whose lines are whole commands that can be copied (or comments, or continuations
//! of a line ending in ` \`), none wider than 80 columns; `keel --help` lists every visible
//! command under a heading and hides the plumbing that units run.

use clap::CommandFactory;
use std::collections::BTreeSet;

const WIDTH: usize = 80;

/// Commands that systemd units and the initramfs run: hidden from `--help`, still parsed.
const PLUMBING: [&[&str]; 7] = [
    &["prepare-root"],
    &["init-sysroot"],
    &["finalize"],
    &["health", "boot-failed"],
    &["ignition", "stage"],
    &["ignition", "firstboot-complete"],
    &["image", "growfs"],
];

/// Every command below the root (visible and hidden, not clap's `help`), with its path.
fn all_commands() -> Vec<(String, clap::Command)> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let p = format!("{path} {}", sub.get_name());
            out.push((p.clone(), sub.clone()));
            walk(sub, &p, out);
        }
    }
    let mut root = keel::Cli::command();
    root.build();
    let mut out = vec![("keel".to_string(), root.clone())];
    walk(&root, "keel", &mut out);
    out
}

fn long_help(cmd: &clap::Command) -> String {
    cmd.clone().term_width(WIDTH).render_long_help().to_string()
}

/// What is wrong with the example section of one help page.
fn example_problems(path: &str, help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let is_heading = |l: &str| {
        (l.starts_with("Example:") || l.starts_with("Examples:") || l.starts_with("Example ("))
            && l.ends_with(':')
    };
    let Some(start) = lines.iter().position(|l| is_heading(l)) else {
        return vec![format!("`{path} --help` has no Example(s): section")];
    };
    let block: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .copied()
        .collect();
    let mut problems = Vec::new();
    if block.is_empty() {
        problems.push(format!("`{path} --help`: the example section is empty"));
    }
    let mut continued = false;
    for line in &block {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        let ok = if continued {
            indent > 2
        } else {
            indent == 2 && ["keel ", "curl ", "# "].iter().any(|s| text.starts_with(s))
        };
        if !ok {
            problems.push(format!(
                "`{path} --help`: example line is not a command, comment or continuation: {line:?}"
            ));
        }
        if line.chars().count() > WIDTH {
            problems.push(format!(
                "`{path} --help`: example line wider than {WIDTH} columns: {line:?}"
            ));
        }
        continued = line.ends_with(" \\");
    }
    if continued {
        problems.push(format!("`{path} --help`: the last example ends with ` \\`"));
    }
    // `keel repo --repo r init` runs `keel repo init`: the path's words in order.
    let mentions_itself = block.iter().any(|l| {
        let mut words = l.split_whitespace();
        path.split(' ').all(|p| words.any(|w| w == p))
    });
    if path != "keel" && !mentions_itself {
        problems.push(format!(
            "`{path} --help`: no example runs `{path}`: {block:?}"
        ));
    }
    problems
}

#[test]
fn every_help_page_has_examples_that_fit_80_columns() {
    let commands = all_commands();
    assert!(commands.len() > 60, "only {} commands", commands.len());
    let problems: Vec<String> = commands
        .iter()
        .flat_map(|(path, cmd)| example_problems(path, &long_help(cmd)))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_example_check_catches_broken_examples() {
    let good = "Usage: keel x\n\nExamples:\n  keel x --a \\\n      --b\n  # comment\n  keel x\n\nProse (`keel y`) that is not an example.\n";
    assert_eq!(example_problems("keel x", good), Vec::<String>::new());
    let table = [
        ("Usage: keel x\n", "no Example"),
        ("Examples:\n  keel x --a\n  wrapped tail\n", "not a command"),
        ("Examples:\n  keel x \\\n", "ends with"),
        ("Examples:\n  keel y z\n", "no example runs"),
        (
            "Example:\n  keel x https://example.com/a/very/long/url/that/no/terminal/of/eighty/columns/breaks\n",
            "wider than 80",
        ),
    ];
    for (help, want) in table {
        let got = example_problems("keel x", help);
        assert!(got.iter().any(|p| p.contains(want)), "{help:?}: {got:?}");
    }
}

#[test]
fn top_level_help_groups_every_visible_command_and_hides_plumbing() {
    let mut root = keel::Cli::command();
    root.build();
    let help = long_help(&root);
    for heading in [
        "On a node:",
        "Building images and repositories:",
        "Fleet services:",
    ] {
        assert!(help.lines().any(|l| l == heading), "{heading}\n{help}");
    }
    let listing = &help[help.find("On a node:").unwrap()..help.find("\nOptions:").unwrap()];
    let listed: BTreeSet<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let visible: BTreeSet<&str> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name())
        .collect();
    assert_eq!(listed, visible, "the listing in keel --help\n{help}");
    for path in PLUMBING {
        let mut cmd = &root;
        for name in path {
            cmd = cmd
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("{path:?}"));
        }
        assert!(cmd.is_hide_set(), "{path:?} is plumbing and must be hidden");
    }
    for first in ["keel status", "keel update check", "keel butane"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(first)),
            "`{first}` is not among the examples of keel --help\n{help}"
        );
    }
}

#[test]
fn compose_version_option_no_longer_shadows_version() {
    use clap::Parser;
    for args in [["keel", "compose", "-V"], ["keel", "compose", "--version"]] {
        let e = keel::Cli::try_parse_from(args).err().map(|e| e.kind());
        assert_eq!(e, Some(clap::error::ErrorKind::DisplayVersion), "{args:?}");
    }
    let release = ["keel", "compose", "m.toml", "--release-version", "12.1.1.0"];
    assert!(keel::Cli::try_parse_from(release).is_ok());
}

#[test]
fn every_command_and_option_has_help_text() {
    let mut missing = Vec::new();
    for (path, cmd) in all_commands() {
        if cmd.get_about().is_none() && path != "keel" {
            missing.push(path.clone());
        }
        for arg in cmd.get_arguments() {
            let builtin = ["help", "version"].contains(&arg.get_id().as_str());
            if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
    }
    assert!(missing.is_empty(), "no help text: {missing:#?}");
}
