//! Walking the tree of a commit: entries with type, mode, owner, size, checksum and xattrs.

use crate::checksum::Checksum;
use crate::error::StoreError;
use crate::objects::Xattrs;
use crate::repo::Repo;
use crate::treepath::{components, TreeNode};

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

/// One entry of a committed tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Absolute path inside the tree (`/` for the root).
    pub path: String,
    /// Type.
    pub kind: EntryKind,
    /// Full mode with type bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Content size (0 for directories and symlinks).
    pub size: u64,
    /// Content checksum for files and symlinks, dirtree checksum for directories.
    pub checksum: Checksum,
    /// Dirmeta checksum for directories.
    pub meta_checksum: Option<Checksum>,
    /// Extended attributes.
    pub xattrs: Xattrs,
    /// Target of a symlink.
    pub symlink_target: Option<String>,
}

impl TreeEntry {
    /// One line in `ostree ls` format: `d00755 0 0      0 /path` (`-> target` for symlinks).
    pub fn ls_line(&self) -> String {
        let t = match self.kind {
            EntryKind::Dir => 'd',
            EntryKind::File => '-',
            EntryKind::Symlink => 'l',
        };
        let mut s = format!(
            "{t}0{:04o} {} {} {:6} {}",
            self.mode & 0o7777,
            self.uid,
            self.gid,
            self.size,
            self.path
        );
        if let Some(target) = &self.symlink_target {
            s.push_str(" -> ");
            s.push_str(target);
        }
        s
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl Repo {
    fn dir_entry(
        &self,
        path: String,
        tree: Checksum,
        meta: Checksum,
    ) -> Result<TreeEntry, StoreError> {
        let m = self.read_dirmeta(&meta)?;
        Ok(TreeEntry {
            path,
            kind: EntryKind::Dir,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            size: 0,
            checksum: tree,
            meta_checksum: Some(meta),
            xattrs: m.xattrs,
            symlink_target: None,
        })
    }

    fn file_entry(&self, path: String, c: Checksum) -> Result<TreeEntry, StoreError> {
        let obj = self.open_content(&c)?;
        let h = obj.header;
        let link = h.is_symlink();
        Ok(TreeEntry {
            path,
            kind: if link {
                EntryKind::Symlink
            } else {
                EntryKind::File
            },
            mode: h.mode,
            uid: h.uid,
            gid: h.gid,
            size: obj.size,
            checksum: c,
            meta_checksum: None,
            xattrs: h.xattrs,
            symlink_target: link.then_some(h.symlink_target),
        })
    }

    /// The entry at `path` (absolute or relative to the root) in a commit's tree.
    pub fn lookup_path(&self, commit: &Checksum, path: &str) -> Result<TreeEntry, StoreError> {
        let c = self.read_commit(commit)?;
        let not_found = || StoreError::PathNotFound {
            path: path.to_string(),
            commit: *commit,
        };
        let shown = components(path).fold("/".to_string(), |cur, part| join(&cur, part));
        match self.resolve_in_tree(c.root_tree, c.root_meta, path)? {
            Some(TreeNode::Dir { tree, meta }) => self.dir_entry(shown, tree, meta),
            Some(TreeNode::File(f)) => self.file_entry(shown, f),
            None => Err(not_found()),
        }
    }

    /// Visit `path` and, if it is a directory, its children (files first, then directories, each
    /// sorted by name, like `ostree ls`); `recursive` descends into subdirectories.
    pub fn walk_tree(
        &self,
        commit: &Checksum,
        path: &str,
        recursive: bool,
        visit: &mut dyn FnMut(&TreeEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let top = self.lookup_path(commit, path)?;
        visit(&top)?;
        if top.kind == EntryKind::Dir {
            self.walk_children(&top, recursive, visit)?;
        }
        Ok(())
    }

    fn walk_children(
        &self,
        dir: &TreeEntry,
        recursive: bool,
        visit: &mut dyn FnMut(&TreeEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let t = self.read_dirtree(&dir.checksum)?;
        for (name, c) in &t.files {
            visit(&self.file_entry(join(&dir.path, name), *c)?)?;
        }
        for (name, dt, dm) in &t.dirs {
            let e = self.dir_entry(join(&dir.path, name), *dt, *dm)?;
            visit(&e)?;
            if recursive {
                self.walk_children(&e, true, visit)?;
            }
        }
        Ok(())
    }

    /// All entries under `path` (see [`Repo::walk_tree`]).
    pub fn ls(
        &self,
        commit: &Checksum,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<TreeEntry>, StoreError> {
        let mut out = Vec::new();
        self.walk_tree(commit, path, recursive, &mut |e| {
            out.push(e.clone());
            Ok(())
        })?;
        Ok(out)
    }
}
