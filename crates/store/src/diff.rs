//! Differences between two commits' trees, like `ostree diff`.

use crate::checksum::Checksum;
use crate::error::StoreError;
use crate::repo::Repo;

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    /// Only in the new tree.
    Added,
    /// In both, with different content or metadata.
    Modified,
    /// Only in the old tree.
    Deleted,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// The change.
    pub kind: DiffKind,
    /// Absolute path.
    pub path: String,
}

impl DiffEntry {
    /// `ostree diff` line: `M    /path`.
    pub fn line(&self) -> String {
        let c = match self.kind {
            DiffKind::Added => 'A',
            DiffKind::Modified => 'M',
            DiffKind::Deleted => 'D',
        };
        format!("{c}    {}", self.path)
    }
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

#[derive(Default)]
struct Acc {
    modified: Vec<DiffEntry>,
    deleted: Vec<DiffEntry>,
    added: Vec<DiffEntry>,
}

impl Repo {
    /// Paths that differ from commit `a` to commit `b`: modified, then deleted, then added (the
    /// order `ostree diff` prints). An added directory lists its whole contents.
    pub fn diff(&self, a: &Checksum, b: &Checksum) -> Result<Vec<DiffEntry>, StoreError> {
        let (ca, cb) = (self.read_commit(a)?, self.read_commit(b)?);
        let mut acc = Acc::default();
        self.diff_dirs("/", &ca.root_tree, &cb.root_tree, &mut acc)?;
        let mut out = acc.modified;
        out.extend(acc.deleted);
        out.extend(acc.added);
        Ok(out)
    }

    fn diff_dirs(
        &self,
        path: &str,
        a: &Checksum,
        b: &Checksum,
        acc: &mut Acc,
    ) -> Result<(), StoreError> {
        if a == b {
            return Ok(());
        }
        let (ta, tb) = (self.read_dirtree(a)?, self.read_dirtree(b)?);
        let entry = |kind, p: String| DiffEntry { kind, path: p };
        for (name, ca) in &ta.files {
            let p = join(path, name);
            match tb.files.iter().find(|f| &f.0 == name) {
                Some((_, cb)) if cb != ca => acc.modified.push(entry(DiffKind::Modified, p)),
                Some(_) => {}
                None => acc.deleted.push(entry(DiffKind::Deleted, p)),
            }
        }
        for (name, da, ma) in &ta.dirs {
            let p = join(path, name);
            match tb.dirs.iter().find(|d| &d.0 == name) {
                Some((_, db, mb)) => {
                    if ma != mb {
                        acc.modified.push(entry(DiffKind::Modified, p.clone()));
                    }
                    self.diff_dirs(&p, da, db, acc)?;
                }
                None => acc.deleted.push(entry(DiffKind::Deleted, p)),
            }
        }
        for (name, _) in &tb.files {
            if !ta.files.iter().any(|f| &f.0 == name) {
                acc.added.push(entry(DiffKind::Added, join(path, name)));
            }
        }
        for (name, db, _) in &tb.dirs {
            if !ta.dirs.iter().any(|d| &d.0 == name) {
                let p = join(path, name);
                acc.added.push(entry(DiffKind::Added, p.clone()));
                self.add_all(&p, db, acc)?;
            }
        }
        Ok(())
    }

    fn add_all(&self, path: &str, tree: &Checksum, acc: &mut Acc) -> Result<(), StoreError> {
        let t = self.read_dirtree(tree)?;
        for (name, _) in &t.files {
            acc.added.push(DiffEntry {
                kind: DiffKind::Added,
                path: join(path, name),
            });
        }
        for (name, dt, _) in &t.dirs {
            let p = join(path, name);
            acc.added.push(DiffEntry {
                kind: DiffKind::Added,
                path: p.clone(),
            });
            self.add_all(&p, dt, acc)?;
        }
        Ok(())
    }
}
