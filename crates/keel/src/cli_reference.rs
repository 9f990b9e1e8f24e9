//! The documentation site's CLI reference in Markdown, rendered from the same command tree as
//! the man pages ([`crate::manpages::command_tree`]): `index.md` (synopsis and global options
//! of `keel`, a table of its commands) and one `keel-<command>.md` per top-level command with a
//! section for it and each of its subcommands: synopsis, description, arguments and options
//! with their help, and the examples from its `after_help`. Hidden plumbing is included and
//! marked. No dates: rendering twice gives the same bytes.

use crate::manpages::{command_tree, Entry, PLUMBING_NOTE};
use clap::Arg;
use std::fmt::Write;
use std::path::Path;

/// Writes `index.md` and every top-level command's page into `out`; returns how many pages.
pub fn write(out: &Path) -> anyhow::Result<usize> {
    use anyhow::Context;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating the reference directory {}", out.display()))?;
    let pages = render();
    for (name, text) in &pages {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(pages.len())
}

/// Every page as (file name, Markdown): `index.md` first, then one per top-level command.
pub fn render() -> Vec<(String, String)> {
    let tree = command_tree();
    let mut pages = Vec::new();
    let Some(root) = tree.first() else {
        return pages;
    };
    pages.push(("index.md".to_string(), index(root, &tree)));
    for top in tree.iter().filter(|e| e.words.len() == 2) {
        let mut page = format!("# {}\n", top.command_line());
        for entry in tree.iter().filter(|e| e.words.starts_with(&top.words)) {
            section(&mut page, entry);
        }
        pages.push((format!("{}.md", top.page_name()), page));
    }
    pages
}

/// `index.md`: `keel` itself, then its commands (visible ones, then plumbing) with links.
fn index(root: &Entry, tree: &[Entry]) -> String {
    let mut page = String::from("# Command-line reference\n");
    section(&mut page, root);
    let tops: Vec<&Entry> = tree.iter().filter(|e| e.words.len() == 2).collect();
    for (heading, hidden) in [("Commands", false), ("Plumbing", true)] {
        let rows: Vec<&&Entry> = tops.iter().filter(|e| e.hidden == hidden).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(page, "\n## {heading}\n");
        if hidden {
            page.push_str(
                "Hidden from `keel --help`: Keel's systemd units, its initramfs or its build run \
                 these; you normally do not run them by hand.\n\n",
            );
        }
        page.push_str("| Command | What it does |\n| --- | --- |\n");
        for e in rows {
            let _ = writeln!(
                page,
                "| [{}]({}.md) | {} |",
                e.command_line(),
                e.page_name(),
                escape(&e.about()).replace('|', "\\|")
            );
        }
    }
    page
}

/// One command's section: heading (for a subcommand; a page's title names its command),
/// synopsis, description, arguments, options, subcommands, examples.
fn section(page: &mut String, entry: &Entry) {
    let mut cmd = entry.command.clone();
    if entry.words.len() > 2 {
        let _ = writeln!(page, "\n## {}", entry.command_line());
    }
    let usage = cmd.render_usage().to_string();
    let usage: Vec<&str> = usage
        .trim_start_matches("Usage: ")
        .lines()
        .map(str::trim)
        .collect();
    let _ = writeln!(page, "\n```text\n{}\n```\n", usage.join("\n"));
    let description = cmd
        .get_long_about()
        .or_else(|| cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default();
    if !description.is_empty() {
        let _ = writeln!(page, "{}", escape(description.trim_end()));
    }
    if entry.hidden {
        let _ = writeln!(page, "\n{}", escape(PLUMBING_NOTE));
    }
    let visible: Vec<&Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    let (positionals, options): (Vec<&Arg>, Vec<&Arg>) =
        visible.into_iter().partition(|a| a.is_positional());
    arguments(page, "Arguments", &positionals);
    arguments(page, "Options", &options);
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    // The root's commands are the index's table; a command's subcommands are sections of its
    // page, linked by their headings' anchors.
    if !subs.is_empty() && entry.words.len() > 1 {
        let _ = writeln!(page, "\n{}\n", bold_heading("Subcommands"));
        for s in subs {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            let _ = writeln!(
                page,
                "- [`{} {}`](#{}-{}): {}",
                entry.command_line(),
                s.get_name(),
                entry.page_name(),
                s.get_name(),
                escape(&about)
            );
        }
    }
    if let Some(text) = entry.after_help() {
        let (heading, body) = match text.strip_prefix("Examples:") {
            Some(rest) => ("Examples", rest.trim_start_matches('\n')),
            None => ("Notes", text.as_str()),
        };
        // Without the help's two-space indent, so that a copied line starts with the command.
        let body: Vec<&str> = body
            .trim_end()
            .lines()
            .map(|l| l.strip_prefix("  ").unwrap_or(l))
            .collect();
        let _ = writeln!(
            page,
            "\n{}\n\n```text\n{}\n```",
            bold_heading(heading),
            body.join("\n")
        );
    }
}

/// A label inside a command's section (sections are headings, so labels stay bold text).
fn bold_heading(label: &str) -> String {
    format!("**{label}**")
}

/// A list of arguments or options: spelling in code, then the help, indented under it.
fn arguments(page: &mut String, heading: &str, args: &[&Arg]) {
    if args.is_empty() {
        return;
    }
    let _ = writeln!(page, "\n{}\n", bold_heading(heading));
    for arg in args {
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|s| s.to_string())
            .unwrap_or_default();
        let mut text = escape(help.trim_end());
        if let Some(facts) = value_facts(arg) {
            text = if text.is_empty() {
                facts
            } else {
                format!("{text} ({facts})")
            };
        }
        let _ = writeln!(
            page,
            "- `{}`: {}",
            spelling(arg),
            text.replace('\n', "\n  ")
        );
    }
}

/// How an argument is written: `<REF>` for a positional, `-r, --repo <PATH>` for an option.
fn spelling(arg: &Arg) -> String {
    let names: Vec<String> = arg
        .get_value_names()
        .map(|v| v.iter().map(|n| format!("<{n}>")).collect())
        .unwrap_or_else(|| vec![format!("<{}>", arg.get_id().as_str().to_uppercase())]);
    let takes_values = arg.get_num_args().is_some_and(|n| n.takes_values());
    let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1);
    let values = format!("{}{}", names.join(" "), if many { "..." } else { "" });
    if arg.is_positional() {
        return values;
    }
    let mut flags = Vec::new();
    if let Some(s) = arg.get_short() {
        flags.push(format!("-{s}"));
    }
    if let Some(l) = arg.get_long() {
        flags.push(format!("--{l}"));
    }
    let flags = flags.join(", ");
    if takes_values {
        format!("{flags} {values}")
    } else {
        flags
    }
}

/// Default and possible values, as clap's help shows them.
fn value_facts(arg: &Arg) -> Option<String> {
    let mut facts = Vec::new();
    let takes_values = arg.get_num_args().is_some_and(|n| n.takes_values());
    if takes_values && !arg.is_hide_default_value_set() && !arg.get_default_values().is_empty() {
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect();
        facts.push(format!("default: {}", defaults.join(", ")));
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| format!("`{}`", p.get_name()))
        .collect();
    if takes_values && !arg.is_hide_possible_values_set() && !possible.is_empty() {
        facts.push(format!("possible values: {}", possible.join(", ")));
    }
    (!facts.is_empty()).then(|| facts.join("; "))
}

/// Help text as Markdown: code spans (`...`) stay as they are; elsewhere the characters that
/// Markdown or HTML would take as markup are escaped, so `<REF>` or `*.toml` show as typed.
pub fn escape(text: &str) -> String {
    let spans_balanced = text.matches('`').count().is_multiple_of(2);
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        if c == '`' && spans_balanced {
            in_code = !in_code;
            out.push(c);
            continue;
        }
        if in_code {
            out.push(c);
            continue;
        }
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '*' | '_' | '[' | ']' | '`' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_keeps_code_spans_and_escapes_markup_elsewhere() {
        for (text, want) in [
            ("plain words", "plain words"),
            ("pull <REF> into *.toml", "pull &lt;REF&gt; into \\*.toml"),
            ("run `keel <cmd> --help`", "run `keel <cmd> --help`"),
            ("a_b [x] & c", "a\\_b \\[x\\] &amp; c"),
            ("odd ` tick <x>", "odd \\` tick &lt;x&gt;"),
        ] {
            assert_eq!(escape(text), want, "{text}");
        }
    }
}
