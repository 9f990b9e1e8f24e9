//! `keel butane`: translate Butane YAML to Ignition JSON.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{Read, Write};
use std::path::PathBuf;

/// Translate a Butane config (variant fcos 1.0.0-1.6.0 or keel 1.0.0) to Ignition JSON.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  keel butane --pretty --strict config.bu -o config.ign\n  keel butane --files-dir ./files < config.bu > config.ign\n\nProblems are printed to standard error as `error|warning at $.yaml.path, line L col C: message`.\nExit status: 0 translated, 1 invalid input (or warnings with --strict)."
)]
pub struct ButaneArgs {
    /// Fail on any warning.
    #[arg(short, long)]
    pub strict: bool,
    /// Indent the JSON output.
    #[arg(short, long)]
    pub pretty: bool,
    /// Directory that `local` file references are relative to.
    #[arg(short = 'd', long, value_name = "DIR")]
    pub files_dir: Option<PathBuf>,
    /// Write the output here instead of standard output.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// The Butane file; standard input when absent or `-`.
    pub input: Option<PathBuf>,
}

pub fn run(args: ButaneArgs) -> Result<()> {
    let mut input = Vec::new();
    match &args.input {
        Some(p) if p.as_os_str() != "-" => {
            input = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut input)
                .context("reading the Butane config from standard input")?;
        }
    }
    let opts = crate::Options {
        files_dir: args.files_dir.clone(),
        strict: args.strict,
        pretty: args.pretty,
    };
    let name = args
        .input
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    match crate::translate(&input, &opts) {
        Err(e) => {
            print_reports(&e.reports)?;
            bail!("{name}: {}", e.reason);
        }
        Ok(out) => {
            print_reports(&out.reports)?;
            let mut json = out.json.into_bytes();
            json.push(b'\n');
            match &args.output {
                Some(path) => keel_utils::fsutil::write_output(path, &json, 0o644)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout()
                    .write_all(&json)
                    .context("writing to standard output")?,
            }
            Ok(())
        }
    }
}

/// Prints reports to standard error through one buffer (a config with 200 000 unknown keys
/// has as many warnings; one write per line would take longer than the translation).
fn print_reports(reports: &[keel_ignition_config::Report]) -> Result<()> {
    let mut err = std::io::BufWriter::new(std::io::stderr().lock());
    for r in reports {
        writeln!(err, "{r}").context("writing to standard error")?;
    }
    err.flush().context("writing to standard error")
}
