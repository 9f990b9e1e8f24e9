//! Changing the sysroot: deploy (now or staged), finalize, rollback, pin, kargs, cleanup.
//! Every change takes the sysroot lock, first finishes any interrupted swap
//! ([`bootconfig::repair`]), checks free space before writing, and retains booted + merge
//! (rollback) + pinned (+ staged) deployments.

use crate::bls::Counter;
use crate::bootconfig::{self, BootState};
use crate::error::{DeployError, IoPath};
use crate::etcmerge;
use crate::kargs::{self, KargEdit};
use crate::origin::Origin;
use crate::space;
use crate::staging::StagedRecord;
use crate::sysroot::{Deployment, Sysroot, BOOT_TRIES};
use crate::tree;
use keel_store::{CheckoutOptions, Checksum, PruneOptions, Repo};
use keel_utils::fsutil::write_atomic;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The unit that finalizes a staged deployment at shutdown.
pub const FINALIZE_UNIT: &str = "keel-finalize-staged.service";

/// Options of [`Sysroot::deploy`].
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Kernel arguments; `None` keeps the merge deployment's (none for the first deployment).
    pub kargs: Option<Vec<String>>,
    /// What upgrades of this deployment follow (`remote:ref` or `ref`); `None` keeps the merge
    /// deployment's origin.
    pub origin_refspec: Option<String>,
    /// Stage: write the deployment now, switch boot entries at shutdown (`keel finalize`).
    /// Needs a booted deployment.
    pub stage: bool,
    /// With `stage`: block finalization until the lock is lifted.
    pub lock_finalization: bool,
}

/// The outcome of [`Sysroot::finalize_staged`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finalized {
    /// Nothing was staged.
    NothingStaged,
    /// Finalization is locked; the staged deployment stays staged (and is lost at reboot).
    Locked,
    /// The staged deployment is now the default boot entry.
    Done(Deployment),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn remove_tree(p: &Path) -> Result<(), DeployError> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(p),
        Ok(m) if m.is_dir() => {
            clear_immutable(p)?;
            fs::remove_dir_all(p).at(p)
        }
        Ok(_) => fs::remove_file(p).at(p),
    }
}

/// ostree marks deployment roots `chattr +i`; clear it so the directory can be deleted.
fn clear_immutable(p: &Path) -> Result<(), DeployError> {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    let f = fs::File::open(p).at(p)?;
    if let Ok(flags) = ioctl_getflags(&f) {
        if flags.contains(IFlags::IMMUTABLE) {
            ioctl_setflags(&f, flags - IFlags::IMMUTABLE).at(p)?;
        }
    }
    Ok(())
}

impl Sysroot {
    /// Finish (or undo) a boot-entry swap that a crash interrupted. Does nothing while another
    /// process holds the sysroot lock (it is changing the sysroot and repairs first itself).
    pub fn repair(&self) -> Result<(), DeployError> {
        let Some(_lock) = self.lock_if_free()? else {
            return Ok(());
        };
        let repo = self.repo()?;
        let state = bootconfig::load(self)?;
        bootconfig::repair(self, &state, &repo)
    }

    /// Lock, repair an interrupted swap, and load the boot state.
    fn begin(&self) -> Result<(fs::File, Repo, BootState), DeployError> {
        let lock = self.lock()?;
        let repo = self.repo()?;
        let state = bootconfig::load(self)?;
        bootconfig::repair(self, &state, &repo)?;
        Ok((lock, repo, bootconfig::load(self)?))
    }

    /// The deployment whose `/etc` and kargs a new deployment inherits: the booted one, else
    /// the default.
    pub(crate) fn merge_deployment<'a>(&self, state: &'a BootState) -> Option<&'a Deployment> {
        let booted = self.booted_name();
        state
            .deployments
            .iter()
            .find(|d| Some(d.name()) == booted)
            .or(state.deployments.first())
    }

    /// The origin of a deployment.
    pub fn origin(&self, name: &str) -> Result<Origin, DeployError> {
        let p = self.origin_path(name);
        match fs::read_to_string(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Origin::default()),
            r => Origin::parse(&r.at(&p)?).map_err(|e| DeployError::Layout {
                path: p.clone(),
                reason: format!("{e}; fix or remove the origin file"),
            }),
        }
    }

    fn next_serial(&self, commit: &Checksum) -> Result<u32, DeployError> {
        let hex = commit.to_hex();
        Ok(self
            .deploy_dirs()?
            .iter()
            .filter_map(|n| Deployment::parse_name(n))
            .filter(|(c, _)| c.to_hex() == hex)
            .map(|(_, s)| s + 1)
            .max()
            .unwrap_or(0))
    }

    /// Deploy `commit` from the sysroot repository: check out, write `.origin`, then either
    /// stage it or merge `/etc` and make it the default boot entry (with `+3` boot counting),
    /// keeping booted, merge and pinned deployments and removing the rest.
    pub fn deploy(
        &self,
        commit: &Checksum,
        opts: &DeployOptions,
    ) -> Result<Deployment, DeployError> {
        let (_lock, repo, state) = self.begin()?;
        let info = tree::inspect(&repo, commit)?;
        let booted = self.booted_name();
        if opts.stage && booted.is_none() {
            return Err(DeployError::State(
                "staging needs a booted deployment (or --assume-booted for a directory sysroot); deploy without staging".into(),
            ));
        }
        let merge = self.merge_deployment(&state).cloned();
        space::ensure(
            &self.stateroot_dir(),
            info.etc_bytes + info.dirs * 4096,
            &format!("a checkout of {commit}"),
        )?;
        space::ensure(
            self.boot(),
            bootconfig::esp_bytes_needed(self, &info.bootcsum, info.boot_bytes),
            "kernel and initramfs",
        )?;
        let kargs = match (&opts.kargs, &merge) {
            (Some(k), _) => k.clone(),
            (None, Some(m)) => kargs::inherit(&m.kargs),
            (None, None) => Vec::new(),
        };
        let refspec = match (&opts.origin_refspec, &merge) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(m)) => self.origin(&m.name())?.refspec().map(str::to_string),
            (None, None) => None,
        };
        let dep = Deployment {
            stateroot: self.stateroot().to_string(),
            commit: *commit,
            serial: self.next_serial(commit)?,
            bootcsum: info.bootcsum,
            kargs,
            entry: None,
        };
        let dir = self.deploy_path(&dep.name());
        repo.checkout(commit, &dir, &CheckoutOptions::default())?;
        for d in ["var", "sysroot"] {
            let p = dir.join(d);
            if !p.exists() {
                fs::create_dir(&p).at(&p)?;
            }
        }
        let op = self.origin_path(&dep.name());
        write_atomic(
            &op,
            Origin::new(refspec.as_deref()).to_text().as_bytes(),
            0o644,
        )
        .at(&op)?;
        if opts.stage {
            let rec = StagedRecord {
                stateroot: dep.stateroot.clone(),
                deployment: dep.name(),
                bootcsum: dep.bootcsum.clone(),
                kargs: dep.kargs.clone(),
                merge_deployment: merge.map(|m| m.name()),
                staged_at: now(),
            };
            // The record of a finalization cut after its commit point names a deployment that
            // is already in the entries: that one stays.
            if let Some(old) = self
                .staged()?
                .filter(|o| o.deployment != rec.deployment && !state.contains(&o.deployment))
            {
                remove_tree(&self.deploy_path(&old.deployment))?;
                remove_tree(&self.origin_path(&old.deployment))?;
            }
            self.write_staged(&rec, opts.lock_finalization)?;
            tracing::info!("staged {}; it becomes the default at shutdown", dep.name());
            self.arm_finalize_unit();
            return Ok(dep);
        }
        self.complete(&repo, &state, dep, merge.as_ref())
    }

    /// On a booted node, start `keel-finalize-staged.service` so its stop job finalizes at
    /// shutdown (its `.path` unit does the same when enabled).
    fn arm_finalize_unit(&self) {
        if !keel_proto::node::is_node_sysroot(self.root()) {
            return;
        }
        let r = keel_utils::cmd::run(std::process::Command::new("systemctl").args([
            "start",
            "--no-block",
            FINALIZE_UNIT,
        ]));
        if let Err(e) = r {
            tracing::warn!("could not start {FINALIZE_UNIT}; the staged deployment is finalized only by `keel finalize`: {e}");
        }
    }

    /// `/etc` (new defaults + the merge deployment's changes), then the entry swap and cleanup.
    fn complete(
        &self,
        repo: &Repo,
        state: &BootState,
        dep: Deployment,
        merge: Option<&Deployment>,
    ) -> Result<Deployment, DeployError> {
        self.setup_etc(&dep, merge)?;
        let booted = self.booted_name();
        let mut list = vec![dep.clone()];
        for d in &state.deployments {
            let keep = Some(d.name()) == booted
                || merge.is_some_and(|m| m.name() == d.name())
                || self.origin(&d.name())?.pinned();
            if keep && d.name() != dep.name() {
                list.push(d.clone());
            }
        }
        let written = bootconfig::write(self, state, &list, repo)?;
        self.undeploy_unlisted(&written)?;
        // The new entries are committed: a failed prune costs disk space, not the deployment.
        if let Err(e) = self.prune_repo(repo) {
            tracing::warn!("pruning the repository failed (`keel cleanup` retries): {e}");
        }
        Ok(written
            .into_iter()
            .next()
            .expect("the new deployment is first"))
    }

    fn setup_etc(&self, dep: &Deployment, merge: Option<&Deployment>) -> Result<(), DeployError> {
        let dir = self.deploy_path(&dep.name());
        let (etc, tmp) = (dir.join("etc"), dir.join("etc.tmp"));
        remove_tree(&tmp)?;
        remove_tree(&etc)?;
        etcmerge::copy_tree(&dir.join("usr/etc"), &tmp)?;
        if let Some(m) = merge {
            let mdir = self.deploy_path(&m.name());
            let changes = etcmerge::merge(&mdir.join("usr/etc"), &mdir.join("etc"), &tmp)?;
            tracing::info!(
                "/etc: {} local change(s) carried over from {}",
                changes.len(),
                m.name()
            );
        }
        fs::rename(&tmp, &etc).at(&etc)?;
        keel_utils::fsutil::sync_dir(&dir).at(&dir)
    }

    /// Remove deployment directories (and origins) that are neither listed nor staged.
    fn undeploy_unlisted(&self, list: &[Deployment]) -> Result<usize, DeployError> {
        let staged = self.staged()?.map(|r| r.deployment);
        let mut removed = 0;
        for name in self.deploy_dirs()? {
            if list.iter().any(|d| d.name() == name) || staged.as_deref() == Some(name.as_str()) {
                continue;
            }
            tracing::info!("removing deployment {name}");
            remove_tree(&self.deploy_path(&name))?;
            remove_tree(&self.origin_path(&name))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Finish the staged deployment (run at shutdown by `keel-finalize-staged.service`): merge
    /// `/etc` from the booted deployment as it is now, and swap the boot entries.
    pub fn finalize_staged(&self) -> Result<Finalized, DeployError> {
        let Some(rec) = self.staged()? else {
            return Ok(Finalized::NothingStaged);
        };
        if self.finalization_locked() {
            return Ok(Finalized::Locked);
        }
        let (_lock, repo, state) = self.begin()?;
        if let Some(d) = state
            .deployments
            .iter()
            .find(|d| d.name() == rec.deployment)
        {
            let d = d.clone();
            self.clear_staged()?;
            return Ok(Finalized::Done(d));
        }
        let (commit, serial) =
            Deployment::parse_name(&rec.deployment).ok_or_else(|| DeployError::Layout {
                path: self.run_dir().join("staged-deployment"),
                reason: format!("bad deployment name `{}`", rec.deployment),
            })?;
        let info = tree::inspect(&repo, &commit)?;
        space::ensure(
            self.boot(),
            bootconfig::esp_bytes_needed(self, &info.bootcsum, info.boot_bytes),
            "kernel and initramfs",
        )?;
        let dep = Deployment::staged(&rec, commit, serial);
        let merge = rec
            .merge_deployment
            .as_ref()
            .and_then(|m| state.deployments.iter().find(|d| d.name() == *m))
            .cloned();
        let done = self.complete(&repo, &state, dep, merge.as_ref())?;
        self.clear_staged()?;
        if let Err(e) = self.prune_repo(&repo) {
            tracing::warn!("pruning the repository failed (`keel cleanup` retries): {e}");
        }
        Ok(Finalized::Done(done))
    }

    /// Make the previous deployment the default (or, when a newer one is pending, the booted
    /// one). A staged deployment is discarded.
    pub fn rollback(&self) -> Result<Vec<Deployment>, DeployError> {
        let (_lock, repo, state) = self.begin()?;
        let mut list = state.deployments.clone();
        if list.len() < 2 {
            return Err(DeployError::State("there is no rollback deployment".into()));
        }
        let booted = self.booted_name();
        match list.iter().position(|d| Some(d.name()) == booted) {
            Some(i) if i > 0 => {
                let b = list.remove(i);
                list.insert(0, b);
            }
            _ => list.swap(0, 1),
        }
        if let Some(e) = list[0].entry.as_mut() {
            if e.counter.is_some_and(|c| c.is_bad()) {
                e.counter = Some(Counter {
                    left: BOOT_TRIES,
                    done: None,
                });
            }
        }
        self.clear_staged()?;
        let written = bootconfig::write(self, &state, &list, &repo)?;
        self.undeploy_unlisted(&written)?;
        Ok(written)
    }

    /// Drop `ignition.firstboot` from every boot entry, keeping the deployments, their order,
    /// their entry file names (so this boot can still be blessed) and their boot counters
    /// (systemd-boot has no first-boot flag file as GRUB does, so the flag is
    /// a karg of the first entry). For `keel ignition firstboot-complete`. Returns whether any
    /// entry changed.
    pub fn clear_firstboot(&self) -> Result<bool, DeployError> {
        let (_lock, _repo, state) = self.begin()?;
        if !state
            .deployments
            .iter()
            .any(|d| d.kargs.len() != kargs::inherit(&d.kargs).len())
        {
            return Ok(false);
        }
        let list: Vec<Deployment> = state
            .deployments
            .iter()
            .map(|d| Deployment {
                kargs: kargs::inherit(&d.kargs),
                ..d.clone()
            })
            .collect();
        bootconfig::rewrite_kargs(self, &state, &list)?;
        Ok(true)
    }

    /// Pin (kept by every cleanup) or unpin deployment `index` (0 = default).
    pub fn set_pinned(&self, index: usize, pinned: bool) -> Result<Deployment, DeployError> {
        let (_lock, _repo, state) = self.begin()?;
        let d = state
            .deployments
            .get(index)
            .ok_or(DeployError::NoSuchDeployment(index))?;
        let mut o = self.origin(&d.name())?;
        o.set_pinned(pinned);
        let p = self.origin_path(&d.name());
        write_atomic(&p, o.to_text().as_bytes(), 0o644).at(&p)?;
        Ok(d.clone())
    }

    /// Current kernel arguments of the merge deployment (booted, else default).
    pub fn kargs(&self) -> Result<Vec<String>, DeployError> {
        let state = bootconfig::load(self)?;
        Ok(self
            .merge_deployment(&state)
            .map(|d| d.kargs.clone())
            .unwrap_or_default())
    }

    /// Change kernel arguments: a new deployment of the merge deployment's commit with edited
    /// kargs becomes the default (like `rpm-ostree kargs`), so a bad karg rolls back by boot
    /// counting. Deleting only `ignition.firstboot` is [`Sysroot::clear_firstboot`] instead: the
    /// one-shot flag leaves every entry in place, so no rollback target still carries it.
    pub fn set_kargs(&self, edits: &[KargEdit]) -> Result<Deployment, DeployError> {
        let state = bootconfig::load(self)?;
        let m = self
            .merge_deployment(&state)
            .ok_or_else(|| DeployError::State("no deployment yet; deploy one first".into()))?;
        if kargs::only_clears_firstboot(edits) {
            self.clear_firstboot()?;
            let state = bootconfig::load(self)?;
            let name = m.name();
            return state
                .deployments
                .into_iter()
                .find(|d| d.name() == name)
                .ok_or_else(|| {
                    DeployError::State(format!(
                        "deployment {name} vanished while its entries were rewritten"
                    ))
                });
        }
        let new = kargs::inherit(&kargs::apply(&m.kargs, edits)?);
        self.deploy(
            &m.commit,
            &DeployOptions {
                kargs: Some(new),
                ..DeployOptions::default()
            },
        )
    }

    /// Delete repository objects no ref reaches (deployed commits are held by the `ostree/B/0/i`
    /// refs); skipped while a deployment is staged, since its commit may have no ref.
    fn prune_repo(&self, repo: &Repo) -> Result<u64, DeployError> {
        if self.staged()?.is_some() {
            return Ok(0);
        }
        let report = repo.prune(&PruneOptions {
            refs_only: true,
            ..PruneOptions::default()
        })?;
        Ok(report.objects_deleted)
    }

    /// Remove deployments no entry boots (and that are not staged), leftovers of interrupted
    /// operations, and — when nothing is staged — repository objects no ref reaches.
    pub fn cleanup(&self) -> Result<CleanupReport, DeployError> {
        let (_lock, repo, state) = self.begin()?;
        let removed = self.undeploy_unlisted(&state.deployments)?;
        bootconfig::remove_unused_kernels(self, &state.deployments)?;
        let pruned = self.prune_repo(&repo)?;
        Ok(CleanupReport {
            deployments_removed: removed,
            objects_pruned: pruned,
        })
    }

    /// Discard the staged deployment (`keel cleanup --pending`, like `rpm-ostree cleanup -p`):
    /// its record, its finalization lock and its directory. Returns what was removed, or `None`
    /// when nothing was staged.
    pub fn discard_staged(&self) -> Result<Option<DiscardedStaged>, DeployError> {
        let (_lock, _repo, state) = self.begin()?;
        let Some(record) = self.staged()? else {
            return Ok(None);
        };
        let lock_removed = self.finalization_locked();
        self.clear_staged()?;
        let dirs_removed = self.undeploy_unlisted(&state.deployments)?;
        Ok(Some(DiscardedStaged {
            record,
            lock_removed,
            dirs_removed,
        }))
    }
}

/// What [`Sysroot::discard_staged`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscardedStaged {
    /// The staged-deployment record (removed).
    pub record: StagedRecord,
    /// The finalization lock was set (and is removed).
    pub lock_removed: bool,
    /// Deployment directories removed: the staged one, and any left by an interrupted stage.
    pub dirs_removed: usize,
}

/// What [`Sysroot::cleanup`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupReport {
    /// Deployment directories removed.
    pub deployments_removed: usize,
    /// Repository objects deleted.
    pub objects_pruned: u64,
}
