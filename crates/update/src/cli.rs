//! The node commands (`keel status`, `upgrade`, `deploy`, `rollback`, ...), like rpm-ostree and
//! bootc. They are top-level commands, so this module exports a clap `Subcommand` enum that the
//! binary flattens into its own.

use crate::flows::{deploy_rev, print_outcome, upgrade, UpgradeHow};
use crate::kargs_cli::{self, deploy_kargs};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use keel_deploy::etcmerge::Change;
use keel_deploy::{
    health, prepare_root, DeploymentStatus, Finalized, KargEdit, Status, Sysroot, DEFAULT_STATEROOT,
};
use keel_utils::cmd;
use keel_utils::progress::Mode;
use std::path::PathBuf;
use std::process::Command;

/// Options every node command takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The sysroot: `/` on a booted node, or a directory holding `ostree/` and `boot/` (the ESP).
    #[arg(long, default_value = "/")]
    pub sysroot: PathBuf,
    /// The stateroot (OS name) to operate on.
    #[arg(long, default_value = DEFAULT_STATEROOT)]
    pub stateroot: String,
    /// Treat this deployment (`<commit>.<serial>`) as the booted one: for directory sysroots,
    /// where nothing is booted (tests). On a node the booted deployment is detected.
    #[arg(long, value_name = "DEPLOYMENT", hide = true)]
    pub assume_booted: Option<String>,
}

impl Common {
    fn open(&self) -> Result<Sysroot> {
        Ok(Sysroot::open(&self.sysroot, &self.stateroot)?.with_booted(self.assume_booted.clone()))
    }
}

/// Node commands.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Show the deployments: booted, staged, rollback; version, commit, origin, pins, boot counting.
    #[command(
        after_help = "Examples:\n  keel status\n  keel status --json\n  keel status -b     # the booted deployment only\n  keel status --sysroot /mnt/sysroot"
    )]
    Status {
        #[command(flatten)]
        common: Common,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Show only the booted deployment (the staged and other ones are left out; --json
        /// keeps its schema with `deployments` filtered).
        #[arg(short, long)]
        booted: bool,
    },
    /// Upgrade to the newest commit of the origin ref, pulled from the origin's remote
    /// (`keel:<ref>`): staged on a booted node (applied at shutdown).
    #[command(
        after_help = "Examples:\n  keel upgrade --check\n  keel upgrade --reboot\n  keel upgrade --json\n  keel upgrade -r     # reboot into it\n  # stage; shutdown applies it only after `keel finalize --unlock`:\n  keel upgrade --stage-only\n  # accept a commit older than the running one:\n  keel upgrade --allow-downgrade\n\nA commit that is not newer than the running one (a mirror replaying an old\nsummary) is refused. A remote summary older than summary-max-age-secs (default\n7 days) or past ostree.summary.expires is reported: the mirror may be frozen.\n\nThe remote named by the origin (`keel status` shows it) is read from\n/ostree/repo/config or /etc/ostree/remotes.d/*.conf, for example\n/etc/ostree/remotes.d/keel.conf:\n  [remote \"keel\"]\n  url=https://updates.example.com/repo\n  sign-verify=true\n  verification-ed25519-file=/etc/keel/keel.pub"
    )]
    Upgrade {
        #[command(flatten)]
        common: Common,
        /// Only say whether an upgrade is available (fetches the commit object, no content).
        #[arg(long)]
        check: bool,
        /// Print the result as JSON (progress as JSON lines on stderr).
        #[arg(long)]
        json: bool,
        /// Stage and lock finalization, so shutdown does not apply it until unlocked.
        #[arg(long)]
        stage_only: bool,
        /// Reboot into it afterwards.
        #[arg(short, long)]
        reboot: bool,
        /// Deploy even a commit older than (or unrelated to) the running one; refused by
        /// default, since a mirror may be replaying an old summary.
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Deploy a given version or commit (staged on a booted node).
    #[command(
        after_help = "Examples:\n  keel deploy 12.20261125.3.0\n  keel deploy 0d7f83d7 --reboot\n  # follow another ref of remote keel from now on:\n  keel deploy keel:keel/testing/x86_64\n  keel deploy 12.20261125.3.0 --karg console=ttyS0 --karg-append quiet\n\nVERSION is looked up in the history of the origin ref (on its remote when it has\none); otherwise REV is a commit, a unique prefix, a ref or REMOTE:REF. What is\nnot in the local repository is pulled from the origin's remote first.\n\nThe new deployment inherits the kernel arguments of the booted one (like\n`ostree admin deploy`): --karg KEY=VALUE replaces every inherited KEY by this\none (or adds it), --karg-append KARG adds one more (a key may repeat)."
    )]
    Deploy {
        #[command(flatten)]
        common: Common,
        /// A version of the origin ref's history, a commit checksum (or unique prefix), a ref or
        /// REMOTE:REF.
        rev: String,
        /// Print the result as JSON (progress as JSON lines on stderr).
        #[arg(long)]
        json: bool,
        /// Set a kernel argument: replaces every inherited argument with the same key, or adds
        /// it (repeatable; ostree's `--karg`).
        #[arg(long = "karg", value_name = "KEY[=VALUE]")]
        kargs: Vec<String>,
        /// Add a kernel argument to the inherited ones (repeatable; ostree's `--karg-append`).
        #[arg(long = "karg-append", value_name = "KARG")]
        karg_append: Vec<String>,
        /// Reboot into it afterwards.
        #[arg(short, long)]
        reboot: bool,
        /// With REMOTE:REF: accept the ref moving to an older commit (a version or commit
        /// named explicitly is always deployed).
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Make the previous deployment the default boot entry (a staged one is dropped).
    #[command(after_help = "Examples:\n  keel rollback\n  keel rollback --reboot")]
    Rollback {
        #[command(flatten)]
        common: Common,
        /// Reboot afterwards.
        #[arg(short, long)]
        reboot: bool,
    },
    /// Remove deployments no boot entry uses and prune the repository; with -p, discard the
    /// staged update instead.
    #[command(
        after_help = "Examples:\n  keel cleanup\n  keel cleanup -p     # drop the staged update (`rpm-ostree cleanup -p`)"
    )]
    Cleanup {
        #[command(flatten)]
        common: Common,
        /// Discard the staged (pending) deployment: its record, finalization lock and
        /// directory, so that shutdown applies nothing.
        #[arg(short, long)]
        pending: bool,
    },
    /// Pin a deployment so that no cleanup removes it.
    #[command(
        after_help = "Example:\n  keel pin 1   # keep the rollback deployment (`keel status` shows indexes)"
    )]
    Pin {
        #[command(flatten)]
        common: Common,
        /// Deployment index (0 = default).
        index: usize,
    },
    /// Unpin a deployment.
    #[command(after_help = "Example:\n  keel unpin 1")]
    Unpin {
        #[command(flatten)]
        common: Common,
        /// Deployment index (0 = default).
        index: usize,
    },
    /// Show or change kernel arguments (a change makes a new default deployment, boot-counted).
    #[command(
        after_help = "Examples:\n  keel kargs\n  keel kargs --append console=ttyS0 --delete quiet\n  keel kargs --replace console=hvc0           # every console= value\n  keel kargs --replace console=ttyS0=hvc0     # only console=ttyS0\n  keel kargs --append-if-missing mitigations=auto --reboot\n  keel kargs --delete-if-present nomodeset\n  keel kargs --editor\n\nEdits apply in this order: --append, --append-if-missing, --delete,\n--delete-if-present, --replace. --editor opens $VISUAL or $EDITOR (default vi)\non the current arguments, one line; the saved line becomes the new arguments."
    )]
    Kargs {
        #[command(flatten)]
        common: Common,
        /// Add KEY or KEY=VALUE (a key may repeat).
        #[arg(long, value_name = "KARG")]
        append: Vec<String>,
        /// Add KEY or KEY=VALUE unless exactly that argument is set.
        #[arg(long, value_name = "KARG")]
        append_if_missing: Vec<String>,
        /// Remove KEY (all values) or KEY=VALUE; an error if it is not set.
        #[arg(long, value_name = "KARG")]
        delete: Vec<String>,
        /// Remove KEY (all values) or KEY=VALUE if set.
        #[arg(long, value_name = "KARG")]
        delete_if_present: Vec<String>,
        /// KEY=VALUE: set every KEY to VALUE. KEY=OLD=NEW: replace the one argument KEY=OLD
        /// by KEY=NEW (when KEY=OLD is not set, the whole is taken as KEY=VALUE).
        #[arg(long, value_name = "KARG")]
        replace: Vec<String>,
        /// Edit the arguments in $VISUAL or $EDITOR.
        #[arg(long, conflicts_with_all = ["append", "append_if_missing", "delete", "delete_if_present", "replace"])]
        editor: bool,
        /// Reboot into the changed arguments afterwards.
        #[arg(short, long)]
        reboot: bool,
    },
    /// Apply the staged deployment (run at shutdown by keel-finalize-staged.service), or lock/unlock it.
    #[command(
        hide = true,
        after_help = "Examples:\n  keel finalize\n  keel finalize --lock     # shutdown will not apply it\n  keel finalize --unlock"
    )]
    Finalize {
        #[command(flatten)]
        common: Common,
        /// Block finalization of the staged deployment (nothing else is done).
        #[arg(long, conflicts_with = "unlock")]
        lock: bool,
        /// Allow finalization again (nothing else is done).
        #[arg(long)]
        unlock: bool,
    },
    /// Show the /etc changes of a deployment against its defaults (like `ostree admin config-diff`).
    #[command(
        after_help = "Example:\n  keel config-diff\n\nM modified, D deleted, A added; these survive upgrades."
    )]
    ConfigDiff {
        #[command(flatten)]
        common: Common,
        /// Deployment index (0 = default).
        #[arg(long, default_value_t = 0)]
        index: usize,
    },
    /// Lay out a new sysroot in a directory (the image builder does this through the library).
    #[command(
        hide = true,
        after_help = "Example:\n  # with the ESP mounted at /mnt/root/boot:\n  keel init-sysroot --sysroot /mnt/root"
    )]
    InitSysroot {
        /// The directory.
        #[arg(long)]
        sysroot: PathBuf,
        /// The stateroot to create.
        #[arg(long, default_value = DEFAULT_STATEROOT)]
        stateroot: String,
    },
    /// In the initramfs: mount the deployment named by `ostree=` as the new root at /sysroot.
    #[command(
        hide = true,
        after_help = "Example (keel-prepare-root.service):\n  keel prepare-root --sysroot /sysroot"
    )]
    PrepareRoot {
        /// Where the physical root filesystem is mounted.
        #[arg(long, default_value = "/sysroot")]
        sysroot: PathBuf,
        /// The kernel command line to read.
        #[arg(long, default_value = "/proc/cmdline")]
        cmdline: PathBuf,
    },
    /// Boot health checks that gate boot-complete.target (and so the blessing of a new entry).
    #[command(subcommand, after_help = "Example:\n  keel health check")]
    Health(HealthCommand),
}

/// `keel health` subcommands.
#[derive(Subcommand, Debug)]
pub enum HealthCommand {
    /// Run the built-in checks and the scripts in /usr/lib/keel/health.d and /etc/keel/health.d.
    #[command(
        after_help = "Examples:\n  keel health check\n  keel health check --json\n\nExit status 1 when a check fails."
    )]
    Check {
        /// Root of the system to check.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Only run the scripts.
        #[arg(long)]
        no_builtin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// On failure, reboot while the booted entry still has boot tries (not at first boot),
        /// so that boot counting falls back to the previous deployment.
        #[arg(long)]
        reboot_on_failure: bool,
    },
    /// The boot failed (run by emergency.service in the initramfs): reboot while the booted
    /// entry is still being tried and it is not the first boot; otherwise return, so that
    /// emergency mode shows the failure.
    #[command(hide = true, after_help = "Example:\n  keel health boot-failed")]
    BootFailed {
        /// Where the EFI variables are.
        #[arg(long, default_value = keel_deploy::bootfail::EFIVARS)]
        efivars: PathBuf,
        /// The kernel command line to read.
        #[arg(long, default_value = "/proc/cmdline")]
        cmdline: PathBuf,
    },
}

fn reboot() -> Result<()> {
    cmd::run_inherit(Command::new("systemctl").arg("reboot"))?;
    Ok(())
}

fn print_deployment(d: &DeploymentStatus, booted: bool) {
    let mark = if booted { '●' } else { ' ' };
    let idx = d.index.map_or("-".to_string(), |i| i.to_string());
    let role = format!("{:?}", d.role).to_lowercase();
    println!(
        "{mark} {idx} {role:<8} {}",
        d.version.as_deref().unwrap_or("(no version)")
    );
    println!("      commit: {}  deployment: {}", d.commit, d.deployment);
    if let Some(t) = &d.timestamp {
        println!("      date: {t}");
    }
    if let Some(o) = &d.origin {
        println!("      origin: {o}");
    }
    if d.pinned {
        println!("      pinned: yes");
    }
    if let Some(c) = &d.boot_counting {
        if c.tries_left == 0 {
            println!("      boot counting: FAILED after {} tries", c.tries_done);
        } else {
            println!(
                "      boot counting: {} tries left, {} done (not yet blessed)",
                c.tries_left, c.tries_done
            );
        }
    }
}

fn print_status(st: &Status) {
    if let Some(n) = &st.rolled_back {
        println!(
            "Rolled back from {} ({}): {}",
            n.from_version.as_deref().unwrap_or("?"),
            n.from_deployment,
            n.reason
        );
    }
    if let Some(s) = &st.staged {
        let lock = if st.finalization_locked {
            " (finalization locked)"
        } else {
            ""
        };
        println!("Staged{lock}:");
        print_deployment(s, false);
    }
    println!("Deployments ({}):", st.stateroot);
    if st.deployments.is_empty() {
        println!("  none");
    }
    for d in &st.deployments {
        print_deployment(d, st.booted.as_deref() == Some(d.deployment.as_str()));
    }
    if let Some(n) = &st.next_boot {
        println!("Next boot: {n}");
    }
    for f in &st.failed {
        println!(
            "Failed before: {} ({}): {}",
            f.commit,
            f.version.as_deref().unwrap_or("?"),
            f.reason
        );
    }
    for f in &st.remote_summaries {
        let mark = if f.is_problem() { "WARNING: " } else { "" };
        println!("Remote summary: {mark}{}", f.message);
    }
    if let Some(a) = &st.agent {
        println!("Update agent: {} ({})", a.phase.name(), a.summary);
    }
}

/// Run a node command.
pub fn run(command: NodeCommand) -> Result<()> {
    match command {
        NodeCommand::Status {
            common,
            json,
            booted,
        } => {
            let mut st = common.open()?.status()?;
            if booted {
                st.staged = None;
                let b = st.booted.clone();
                st.deployments
                    .retain(|d| b.as_deref() == Some(d.deployment.as_str()));
            }
            if json {
                let out = keel_proto::output::Versioned::new(&st);
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_status(&st);
            }
        }
        NodeCommand::Upgrade {
            common,
            check,
            json,
            stage_only,
            reboot: do_reboot,
            allow_downgrade,
        } => {
            let how = UpgradeHow {
                check,
                stage_only,
                allow_downgrade,
            };
            let out = upgrade(&common.open()?, &how, Mode::detect(json))?;
            print_outcome(&out, json)?;
            if do_reboot && out.deployment.is_some() {
                reboot()?;
            }
        }
        NodeCommand::Deploy {
            common,
            rev,
            json,
            kargs,
            karg_append,
            reboot: do_reboot,
            allow_downgrade,
        } => {
            let s = common.open()?;
            let kargs = deploy_kargs(&s, kargs, karg_append)?;
            let out = deploy_rev(&s, &rev, kargs, allow_downgrade, Mode::detect(json))?;
            print_outcome(&out, json)?;
            if do_reboot {
                reboot()?;
            }
        }
        NodeCommand::Rollback {
            common,
            reboot: do_reboot,
        } => {
            let list = common.open()?.rollback()?;
            println!(
                "Default boot entry is now {}; reboot to use it.",
                list[0].name()
            );
            if do_reboot {
                reboot()?;
            }
        }
        NodeCommand::Cleanup {
            common,
            pending: true,
        } => match common.open()?.discard_staged()? {
            Some(d) => {
                let lock = if d.lock_removed {
                    ", its finalization lock"
                } else {
                    ""
                };
                println!(
                    "Discarded the staged deployment {}: removed its record{lock} and {} \
                     deployment director{}; shutdown applies nothing.",
                    d.record.deployment,
                    d.dirs_removed,
                    if d.dirs_removed == 1 { "y" } else { "ies" }
                );
            }
            None => println!("Nothing is staged; nothing to discard."),
        },
        NodeCommand::Cleanup {
            common,
            pending: false,
        } => {
            let r = common.open()?.cleanup()?;
            println!(
                "Removed {} deployment(s), pruned {} object(s).",
                r.deployments_removed, r.objects_pruned
            );
        }
        NodeCommand::Pin { common, index } => {
            let d = common.open()?.set_pinned(index, true)?;
            println!("Pinned {}.", d.name());
        }
        NodeCommand::Unpin { common, index } => {
            let d = common.open()?.set_pinned(index, false)?;
            println!("Unpinned {}.", d.name());
        }
        NodeCommand::Kargs {
            common,
            append,
            append_if_missing,
            delete,
            delete_if_present,
            replace,
            editor,
            reboot: do_reboot,
        } => {
            let edits: Vec<KargEdit> = append
                .into_iter()
                .map(KargEdit::Append)
                .chain(append_if_missing.into_iter().map(KargEdit::AppendIfMissing))
                .chain(delete.into_iter().map(KargEdit::Delete))
                .chain(delete_if_present.into_iter().map(KargEdit::DeleteIfPresent))
                .chain(replace.into_iter().map(KargEdit::Replace))
                .collect();
            let changed = kargs_cli::run(&common.open()?, edits, editor)?;
            if do_reboot && changed {
                reboot()?;
            }
        }
        NodeCommand::Finalize {
            common,
            lock,
            unlock,
        } => {
            let s = common.open()?;
            if lock || unlock {
                s.set_finalization_locked(lock)?;
                println!("Finalization {}.", if lock { "locked" } else { "unlocked" });
                return Ok(());
            }
            match s.finalize_staged()? {
                Finalized::NothingStaged => println!("Nothing is staged."),
                Finalized::Locked => {
                    println!("Finalization is locked; the staged deployment is not applied.")
                }
                Finalized::Done(d) => {
                    println!("Finalized {}: it is the default boot entry.", d.name())
                }
            }
        }
        NodeCommand::ConfigDiff { common, index } => {
            let changes = common.open()?.etc_diff(index)?;
            if changes.is_empty() {
                println!("No changes: /etc of deployment {index} matches its defaults.");
            }
            for kind in [Change::Modified, Change::Removed, Change::Added] {
                for c in changes.iter().filter(|c| c.change == kind) {
                    println!("{}    {}", kind.letter(), c.path);
                }
            }
        }
        NodeCommand::InitSysroot { sysroot, stateroot } => {
            Sysroot::init(&sysroot, &stateroot)?;
            println!("Initialized {} (stateroot {stateroot}).", sysroot.display());
        }
        NodeCommand::PrepareRoot { sysroot, cmdline } => {
            let t = prepare_root::prepare_root(&sysroot, &cmdline)?;
            println!(
                "Mounted deployment {} ({}) at {}.",
                t.name,
                t.stateroot,
                sysroot.display()
            );
        }
        NodeCommand::Health(HealthCommand::Check {
            root,
            no_builtin,
            json,
            reboot_on_failure,
        }) => {
            let results = health::run_checks(&root, !no_builtin);
            if json {
                let out = keel_proto::output::Versioned::new(health::Report::new(&results));
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for r in &results {
                    println!(
                        "{} {}: {}",
                        if r.ok { "ok  " } else { "FAIL" },
                        r.name,
                        r.detail
                    );
                }
            }
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.name.as_str())
                .collect();
            if !failed.is_empty() {
                health::after_failure(&root, &results, reboot_on_failure)?;
                bail!("health checks failed: {}", failed.join(", "));
            }
        }
        NodeCommand::Health(HealthCommand::BootFailed { efivars, cmdline }) => {
            match keel_deploy::bootfail::handle_failed_boot(&efivars, &cmdline, None)? {
                keel_deploy::bootfail::Decision::Reboot(why) => println!("Rebooting: {why}"),
                keel_deploy::bootfail::Decision::Stay(why) => println!("Not rebooting: {why}"),
            }
        }
    }
    Ok(())
}
