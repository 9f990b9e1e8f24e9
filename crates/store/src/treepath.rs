//! The one lookup of a path in a commit's tree, used by `keel repo ls`, checkouts of a subpath,
//! deployment checks and the image builder. A path is split on `/`; empty components and `.`
//! are skipped, so `/usr/lib`, `usr/lib/` and `./usr//lib` name the same directory; every other
//! component (`..` included) is a name looked up in its directory. A file may only be the last
//! component.

use crate::checksum::Checksum;
use crate::error::StoreError;
use crate::repo::Repo;

/// What a path names in a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeNode {
    /// A directory: its dirtree and dirmeta objects.
    Dir {
        /// The dirtree object.
        tree: Checksum,
        /// The dirmeta object.
        meta: Checksum,
    },
    /// A file or symbolic link: its content object.
    File(Checksum),
}

/// The components of `path` that name something.
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|p| !p.is_empty() && *p != ".")
}

impl Repo {
    /// What `path` names below the directory (`tree`, `meta`); `None` when nothing is there.
    pub fn resolve_in_tree(
        &self,
        tree: Checksum,
        meta: Checksum,
        path: &str,
    ) -> Result<Option<TreeNode>, StoreError> {
        let mut node = TreeNode::Dir { tree, meta };
        for part in components(path) {
            let TreeNode::Dir { tree, .. } = node else {
                return Ok(None);
            };
            let t = self.read_dirtree(&tree)?;
            node = if let Some(d) = t.dirs.iter().find(|d| d.0 == part) {
                TreeNode::Dir {
                    tree: d.1,
                    meta: d.2,
                }
            } else if let Some(f) = t.files.iter().find(|f| f.0 == part) {
                TreeNode::File(f.1)
            } else {
                return Ok(None);
            };
        }
        Ok(Some(node))
    }

    /// What `path` names in the tree of `commit`; `None` when nothing is there.
    pub fn resolve_path(
        &self,
        commit: &Checksum,
        path: &str,
    ) -> Result<Option<TreeNode>, StoreError> {
        let c = self.read_commit(commit)?;
        self.resolve_in_tree(c.root_tree, c.root_meta, path)
    }
}
