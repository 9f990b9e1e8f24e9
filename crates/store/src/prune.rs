//! Deleting objects no ref (or, without `refs_only`, no commit) reaches.

use crate::checksum::Checksum;
use crate::error::{IoPath, StoreError};
use crate::objects::ObjectType;
use crate::repo::Repo;
use std::collections::HashSet;
use std::fs;
use std::time::{Duration, SystemTime};

/// Options for [`Repo::prune`].
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Only refs are roots; commits no ref reaches are deleted too.
    pub refs_only: bool,
    /// Delete commits older than this (never a commit a ref points to) before pruning.
    pub keep_younger_than: Option<Duration>,
    /// History depth kept behind each root commit (`None`: all).
    pub depth: Option<u32>,
    /// Report what would be deleted without deleting.
    pub dry_run: bool,
}

/// The result of [`Repo::prune`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Objects in the repository before pruning.
    pub objects_total: u64,
    /// Objects deleted (or that would be, with `dry_run`).
    pub objects_deleted: u64,
    /// Commits among them.
    pub commits_deleted: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

impl Repo {
    /// Every object reachable from `commit`: its tree and, following parents up to `depth`
    /// generations (`None`: all), its history. Missing parents end the walk (shallow history);
    /// other missing objects are errors.
    pub fn reachable_objects(
        &self,
        commit: &Checksum,
        depth: Option<u32>,
    ) -> Result<HashSet<(ObjectType, Checksum)>, StoreError> {
        let mut out = HashSet::new();
        self.add_reachable(commit, depth, &HashSet::new(), &mut out)?;
        Ok(out)
    }

    fn add_reachable(
        &self,
        commit: &Checksum,
        depth: Option<u32>,
        expired: &HashSet<Checksum>,
        out: &mut HashSet<(ObjectType, Checksum)>,
    ) -> Result<(), StoreError> {
        let mut next = Some(*commit);
        let mut left = depth;
        while let Some(c) = next {
            if expired.contains(&c) || !out.insert((ObjectType::Commit, c)) {
                break;
            }
            out.insert((ObjectType::CommitMeta, c));
            let commit = self.read_commit(&c)?;
            self.add_tree(&commit.root_tree, &commit.root_meta, out)?;
            next = match left {
                Some(0) => None,
                _ => commit
                    .parent
                    .filter(|p| self.has_object(ObjectType::Commit, p)),
            };
            left = left.map(|l| l.saturating_sub(1));
        }
        Ok(())
    }

    fn add_tree(
        &self,
        tree: &Checksum,
        meta: &Checksum,
        out: &mut HashSet<(ObjectType, Checksum)>,
    ) -> Result<(), StoreError> {
        out.insert((ObjectType::DirMeta, *meta));
        if !out.insert((ObjectType::DirTree, *tree)) {
            return Ok(());
        }
        let t = self.read_dirtree(tree)?;
        for (_, c) in &t.files {
            out.insert((ObjectType::File, *c));
        }
        for (_, dt, dm) in &t.dirs {
            self.add_tree(dt, dm, out)?;
        }
        Ok(())
    }

    /// Delete unreachable objects (takes the exclusive repository lock).
    pub fn prune(&self, opts: &PruneOptions) -> Result<PruneReport, StoreError> {
        let _lock = self.lock(true)?;
        let objects = self.list_objects()?;
        let refs = self.list_refs()?;
        let tips: HashSet<Checksum> = refs.iter().map(|(_, c)| *c).collect();
        let mut expired = HashSet::new();
        if let Some(age) = opts.keep_younger_than {
            let cutoff = SystemTime::now()
                .checked_sub(age)
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            for (t, c) in &objects {
                if *t == ObjectType::Commit
                    && !tips.contains(c)
                    && self.read_commit(c)?.timestamp < cutoff
                {
                    expired.insert(*c);
                }
            }
        }
        let mut roots: Vec<Checksum> = tips.iter().copied().collect();
        if !opts.refs_only {
            roots.extend(
                objects
                    .iter()
                    .filter(|(t, c)| *t == ObjectType::Commit && !expired.contains(c))
                    .map(|(_, c)| *c),
            );
        }
        let mut keep = HashSet::new();
        for root in &roots {
            self.add_reachable(root, opts.depth, &expired, &mut keep)?;
        }
        let mut report = PruneReport {
            objects_total: objects.len() as u64,
            ..PruneReport::default()
        };
        for (t, c) in &objects {
            if keep.contains(&(*t, *c)) || *t == ObjectType::CommitTombstone {
                continue;
            }
            let p = self.object_path(*t, c);
            report.bytes_freed += fs::symlink_metadata(&p).map(|m| m.len()).unwrap_or(0);
            report.objects_deleted += 1;
            if *t == ObjectType::Commit {
                report.commits_deleted += 1;
            }
            if !opts.dry_run {
                fs::remove_file(&p).at(&p)?;
            }
        }
        Ok(report)
    }
}
