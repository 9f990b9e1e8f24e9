//! `keel ignition ...`: a subcommand group. This crate provides `validate`; the provisioning
//! crate (which depends on this one) adds `apply` and the boot stages as its own subcommand enum,
//! which `keel`'s main flattens next to [`IgnitionCommand`] with `#[command(flatten)]`, so every
//! Ignition subcommand lives under the same `keel ignition` group.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::PathBuf;

/// Work with Ignition configs (spec 3.0.0 to 3.5.0, and 3.6.0-experimental).
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  keel ignition validate config.ign\n  butane-output | keel ignition validate -"
)]
pub struct IgnitionArgs {
    #[command(subcommand)]
    pub command: IgnitionCommand,
}

/// The subcommands this crate implements.
#[derive(Subcommand, Debug)]
pub enum IgnitionCommand {
    /// Check a config; print every problem as `error|warning at $.path, line L col C: message`.
    Validate(ValidateArgs),
}

/// Exit status 0 when the config is valid (warnings allowed), 1 when it is not.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  keel ignition validate /boot/ignition/config.ign\n  keel ignition validate - < config.ign\n  keel ignition validate --json config.ign | jq '.reports[].message'\n\nExit status: 0 valid (warnings allowed), 1 invalid."
)]
pub struct ValidateArgs {
    /// The config file, or `-` for standard input.
    pub file: PathBuf,
    /// Print one JSON document: `{"schema_version","valid","reports":[{"severity","path",
    /// "pos":{"line","col"},"message"}]}`.
    #[arg(long)]
    pub json: bool,
}

/// `keel ignition validate --json`: whether the config is valid, and every problem found.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ValidateResult<'a> {
    /// The config is valid (warnings allowed): the exit status is 0.
    pub valid: bool,
    /// Errors and warnings, in document order.
    pub reports: &'a [crate::report::Report],
}

pub fn run(args: IgnitionArgs) -> Result<()> {
    match args.command {
        IgnitionCommand::Validate(v) => validate(v),
    }
}

/// Reads a file argument where `-` means standard input.
fn read_input(path: &PathBuf) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the config from standard input")?;
    } else {
        buf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(buf)
}

fn validate(args: ValidateArgs) -> Result<()> {
    let bytes = read_input(&args.file)?;
    let checked = crate::check(&bytes);
    if args.json {
        let out = keel_proto::output::Versioned::new(ValidateResult {
            valid: checked.is_valid(),
            reports: &checked.reports,
        });
        println!(
            "{}",
            serde_json::to_string(&out).context("serializing the reports")?
        );
    } else {
        for r in &checked.reports {
            println!("{r}");
        }
    }
    if !checked.is_valid() {
        let errors = checked.reports.iter().filter(|r| r.is_error()).count();
        bail!(
            "{}: the config is invalid ({errors} error{})",
            args.file.display(),
            if errors == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
