//! `keel repo --help` and every subcommand's `--help` exit 0 and show an example.

// Tests run tools, servers and keel itself and assert on their raw exit status and
// output (failures included), which the command helper would turn into errors.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

const SUBCOMMANDS: [&str; 12] = [
    "init",
    "commit",
    "checkout",
    "ls",
    "cat",
    "log",
    "show",
    "rev-parse",
    "refs",
    "diff",
    "fsck",
    "prune",
];

#[test]
fn every_repo_help_exits_zero_with_an_example() {
    let mut pages: Vec<Vec<&str>> = vec![vec!["repo", "--help"]];
    pages.extend(SUBCOMMANDS.iter().map(|s| vec!["repo", s, "--help"]));
    for args in pages {
        let out = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(&args)
            .output()
            .expect("run keel");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "keel {args:?} exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("Example") && text.contains("keel repo"),
            "keel {args:?} shows no example (`Example` and a `keel repo` command line):\n{text}"
        );
    }
}
