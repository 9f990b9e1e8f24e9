//! `keel kargs` (edits, `--editor`) and the kernel arguments of `keel deploy --karg`.

use anyhow::{bail, Context, Result};
use keel_deploy::{kargs, KargEdit, Sysroot};
use keel_utils::cmd;
use std::process::Command;

/// Show the kernel arguments (no edits), or apply `edits` (or what the user writes in the
/// editor) as a new default deployment. Returns whether the arguments changed.
pub fn run(s: &Sysroot, edits: Vec<KargEdit>, editor: bool) -> Result<bool> {
    let current = s.kargs()?;
    let edits = if editor {
        vec![KargEdit::Set(edit_in_editor(&current)?)]
    } else {
        edits
    };
    if edits.is_empty() {
        println!("{}", current.join(" "));
        return Ok(false);
    }
    if kargs::apply(&current, &edits)? == current {
        println!("Kernel arguments unchanged: {}", current.join(" "));
        return Ok(false);
    }
    let before = s
        .status()?
        .deployments
        .first()
        .map(|d| d.deployment.clone());
    let d = s.set_kargs(&edits)?;
    let how = if before.as_deref() == Some(d.name().as_str()) {
        format!("Boot entries of {} updated in place", d.name())
    } else {
        format!("New default deployment {}", d.name())
    };
    println!("{how}: {}", d.kargs.join(" "));
    Ok(true)
}

/// The kernel arguments of `keel deploy`: the inherited ones (the booted or default
/// deployment's, without the first-boot flag), each `--karg` replacing every argument of its
/// key (or added), each `--karg-append` added; `None` without either (inherit unchanged).
pub fn deploy_kargs(
    s: &Sysroot,
    set: Vec<String>,
    append: Vec<String>,
) -> Result<Option<Vec<String>>> {
    if set.is_empty() && append.is_empty() {
        return Ok(None);
    }
    let edits: Vec<KargEdit> = set
        .into_iter()
        .map(KargEdit::Override)
        .chain(append.into_iter().map(KargEdit::Append))
        .collect();
    Ok(Some(kargs::apply(&kargs::inherit(&s.kargs()?), &edits)?))
}

/// Open `$VISUAL` or `$EDITOR` (else `vi`) on the arguments as one line and return the saved
/// text. Like git, the editor variable is a shell command line.
fn edit_in_editor(current: &[String]) -> Result<String> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string());
    let dir = tempfile::tempdir().context("creating a directory for the kargs file")?;
    let file = dir.path().join("kargs");
    let text = format!(
        "{}\n# Kernel arguments of the new default deployment, on the line above.\n\
         # Lines starting with # are ignored; save an empty line to cancel.\n",
        current.join(" ")
    );
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    cmd::run_inherit(
        Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&file),
    )
    .with_context(|| format!("running the editor `{editor}` (set $VISUAL or $EDITOR)"))?;
    let edited = std::fs::read_to_string(&file)
        .with_context(|| format!("reading the edited {}", file.display()))?;
    let line: Vec<&str> = edited
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if line.is_empty() {
        bail!("the edited kernel arguments are empty: nothing changed (write them on one line)");
    }
    Ok(line.join(" "))
}
