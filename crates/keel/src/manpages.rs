//! Keel's man pages and the command tree they are rendered from.
//!
//! Every command and subcommand of [`crate::Cli`] gets one roff page in section 1, named like
//! its words joined by dashes (`keel.1`, `keel-status.1`, `keel-repo-pull.1`); hidden plumbing
//! commands get a page too, saying that they are plumbing. The pages are rendered from the clap
//! definitions with `clap_mangen`, plus an EXAMPLES section (the command's `after_help`, its
//! example lines kept one command a line) and SEE ALSO (the parent page and the site's CLI
//! reference). Nothing in them depends on the date or the machine, so rendering twice gives
//! the same bytes. Compose installs them gzip-compressed in the OS (`keel docs man --gzip`).
//! [`crate::cli_reference`] renders the site's Markdown from the same tree.

use clap::CommandFactory;
use clap_mangen::roff::{roman, Roff};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The published documentation site, which errors and pages point to.
pub const DOCS_URL: &str = keel_proto::docs_url!("");

/// The note that a hidden page carries at the end of its description.
pub const PLUMBING_NOTE: &str = "This is plumbing, hidden from `keel --help`: Keel's systemd \
units, its initramfs or its build run it; you normally do not run it by hand.";

/// `keel docs`: Keel's own documentation, rendered from its command definitions.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  keel docs man --out build/man   # read one: man -l build/man/keel-status.1\n  keel docs man --gzip --out /usr/share/man/man1\n  keel docs cli-reference --out build/cli-reference"
)]
pub struct DocsArgs {
    #[command(subcommand)]
    pub command: DocsCommand,
}

#[derive(clap::Subcommand)]
pub enum DocsCommand {
    /// Write one man page per command and subcommand (keel.1, keel-repo-pull.1, ...).
    #[command(
        after_help = "Examples:\n  keel docs man --out build/man   # read one: man -l build/man/keel-repo-pull.1\n  keel docs man --gzip --out /usr/share/man/man1"
    )]
    Man {
        /// Directory for the pages (created if missing; existing pages are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Compress each page with gzip (keel.1.gz), as Debian installs man pages.
        #[arg(long)]
        gzip: bool,
    },
    /// Write the Markdown CLI reference: index.md and one page per top-level command.
    #[command(
        after_help = "Examples:\n  keel docs cli-reference --out build/cli-reference   # index.md, keel-*.md"
    )]
    CliReference {
        /// Directory for the pages (created if missing; existing pages are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Runs `keel docs`.
pub fn run(args: DocsArgs) -> anyhow::Result<()> {
    match args.command {
        DocsCommand::Man { out, gzip } => {
            let written = write_man_pages(&out, gzip)?;
            println!("wrote {written} man pages to {}", out.display());
        }
        DocsCommand::CliReference { out } => {
            let written = crate::cli_reference::write(&out)?;
            println!("wrote {written} Markdown pages to {}", out.display());
        }
    }
    Ok(())
}

/// One command of the tree: its words (`["keel", "repo", "pull"]`) and its built definition.
pub struct Entry {
    pub words: Vec<String>,
    pub command: clap::Command,
    /// Hidden from `--help`, itself or through a hidden parent.
    pub hidden: bool,
}

impl Entry {
    /// The page name without section: the words joined by dashes (`keel-repo-pull`).
    pub fn page_name(&self) -> String {
        self.words.join("-")
    }

    /// The command line that runs it (`keel repo pull`).
    pub fn command_line(&self) -> String {
        self.words.join(" ")
    }

    /// `about`, falling back to the first line of `long_about`.
    pub fn about(&self) -> String {
        let c = &self.command;
        c.get_about()
            .or_else(|| c.get_long_about())
            .map(|s| s.to_string().lines().next().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    /// The help text after the options (examples and notes), if any.
    pub fn after_help(&self) -> Option<String> {
        let c = &self.command;
        c.get_after_long_help()
            .or_else(|| c.get_after_help())
            .map(|s| s.to_string())
    }
}

/// Every command of `keel`, depth first in definition order, starting with `keel` itself.
/// clap's generated `help` subcommands are left out (each command has `--help`).
pub fn command_tree() -> Vec<Entry> {
    fn no_help_subcommand(cmd: clap::Command) -> clap::Command {
        cmd.disable_help_subcommand(true)
            .mut_subcommands(no_help_subcommand)
    }
    fn walk(cmd: &clap::Command, words: Vec<String>, hidden: bool, out: &mut Vec<Entry>) {
        let hidden = hidden || cmd.is_hide_set();
        out.push(Entry {
            words: words.clone(),
            command: cmd.clone(),
            hidden,
        });
        for sub in cmd.get_subcommands() {
            let mut w = words.clone();
            w.push(sub.get_name().to_string());
            walk(sub, w, hidden, out);
        }
    }
    let mut root = no_help_subcommand(crate::Cli::command());
    root.build();
    let mut out = Vec::new();
    walk(&root, vec![root.get_name().to_string()], false, &mut out);
    out
}

/// The site's reference page for a command line's top-level command.
pub fn reference_url(words: &[String]) -> String {
    match words.get(1) {
        Some(top) => format!("{DOCS_URL}reference/cli/keel-{top}.html"),
        None => format!("{DOCS_URL}reference/cli/index.html"),
    }
}

/// One command's man page (roff).
pub fn render_man(entry: &Entry) -> std::io::Result<Vec<u8>> {
    let mut cmd = entry.command.clone();
    if entry.hidden {
        let description = cmd
            .get_long_about()
            .or_else(|| cmd.get_about())
            .map(|s| s.to_string())
            .unwrap_or_default();
        cmd = cmd.long_about(format!("{description}\n\n{PLUMBING_NOTE}"));
    }
    let has_args = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = clap_mangen::Man::new(cmd);
    // The title line is written here: the roff writer drops the empty date argument (no date,
    // so that the page is the same whenever it is rendered), which would shift the others.
    let mut page = format!(
        ".TH {} 1 \"\" \"Keel {version}\" \"Keel Manual\"\n",
        entry.page_name().to_uppercase()
    )
    .into_bytes();
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if has_args {
        man.render_options_section(&mut page)?;
    }
    if has_subcommands {
        man.render_subcommands_section(&mut page)?;
    }
    let mut roff = Roff::default();
    if let Some(text) = entry.after_help() {
        examples_section(&mut roff, &text);
    }
    roff.control("SH", ["SEE ALSO"]);
    if entry.words.len() > 1 {
        let parent = entry.words[..entry.words.len() - 1].join("-");
        roff.text([roman(format!("{parent}(1),"))]);
    }
    roff.text([roman(reference_url(&entry.words))]);
    roff.to_writer(&mut page)?;
    Ok(finish(&page).into_bytes())
}

/// Typographic characters of the help texts as roff escapes, which groff renders on any
/// terminal (`...`, `--`): in an ASCII locale a raw `…` is a warning and a blank.
const TYPOGRAPHY: &[(char, &str)] = &[
    ('…', "\\&..."),
    ('—', "\\(em"),
    ('–', "\\(en"),
    ('‘', "\\(oq"),
    ('’', "\\(cq"),
    ('“', "\\(lq"),
    ('”', "\\(rq"),
    ('→', "\\(->"),
];

/// The rendered page with one roff preamble (each section rendered on its own starts with the
/// writer's `Aq` string definition) and its typography escaped ([`TYPOGRAPHY`]).
fn finish(page: &[u8]) -> String {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(page);
    let text = match text.split_once(PREAMBLE) {
        Some((head, rest)) => format!("{head}{PREAMBLE}{}", rest.replace(PREAMBLE, "")),
        None => text.into_owned(),
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match TYPOGRAPHY.iter().find(|(t, _)| *t == c) {
            Some((_, escape)) => out.push_str(escape),
            None => out.push(c),
        }
    }
    out
}

/// `after_help` as EXAMPLES (when it starts with "Examples:") or NOTES. Indented lines are
/// examples: kept verbatim (one command a line, continuations as written) without their
/// two-space indent, which the section's indent replaces; other lines are prose, filled.
fn examples_section(roff: &mut Roff, text: &str) {
    let (heading, body) = match text.strip_prefix("Examples:") {
        Some(rest) => ("EXAMPLES", rest.trim_start_matches('\n')),
        None => ("NOTES", text),
    };
    roff.control("SH", [heading]);
    let mut verbatim = false;
    for line in body.trim_end().lines() {
        if line.trim().is_empty() {
            if verbatim {
                roff.control("fi", []);
                verbatim = false;
            }
            roff.control("PP", []);
            continue;
        }
        let example = line.starts_with(' ');
        if example != verbatim {
            roff.control(if example { "nf" } else { "fi" }, []);
            verbatim = example;
        }
        let line = if example {
            line.strip_prefix("  ").unwrap_or(line)
        } else {
            line
        };
        roff.text([roman(line)]);
    }
    if verbatim {
        roff.control("fi", []);
    }
}

/// Writes every command's page into `out` (`<name>.1`, or `<name>.1.gz` with `gzip`);
/// returns how many.
pub fn write_man_pages(out: &Path, gzip: bool) -> anyhow::Result<usize> {
    use anyhow::Context;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating the man page directory {}", out.display()))?;
    let tree = command_tree();
    for entry in &tree {
        let page = render_man(entry)
            .with_context(|| format!("rendering the man page of {}", entry.command_line()))?;
        let (name, bytes) = if gzip {
            (format!("{}.1.gz", entry.page_name()), gzipped(&page)?)
        } else {
            (format!("{}.1", entry.page_name()), page)
        };
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(tree.len())
}

/// gzip with a fixed header (no name, no time), so the same page gives the same bytes.
fn gzipped(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data)?;
    z.finish()
}

#[cfg(test)]
mod tests {
    use super::finish;

    #[test]
    fn finish_keeps_one_preamble_and_escapes_typography() {
        let pre = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
        for (page, want) in [
            (".TH X 1\n".to_string(), ".TH X 1\n".to_string()),
            (
                format!(".TH X 1\n{pre}.SH NAME\n{pre}.SH SYNOPSIS\n"),
                format!(".TH X 1\n{pre}.SH NAME\n.SH SYNOPSIS\n"),
            ),
            (
                "3f2a….0 — a–b\n".into(),
                "3f2a\\&....0 \\(em a\\(enb\n".into(),
            ),
            (
                "‘x’ “y” a→b\n".into(),
                "\\(oqx\\(cq \\(lqy\\(rq a\\(->b\n".into(),
            ),
        ] {
            assert_eq!(finish(page.as_bytes()), want, "{page:?}");
        }
    }
}
