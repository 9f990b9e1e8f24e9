//! Comparison presets for checkouts against their source tree, shared by the store and pull
//! interop tests.

use crate::compare::{ModeRule, Options};

/// A normal (root) checkout must reproduce everything but the root's own metadata (the
/// destination directory is created by the tool) and empty-valued xattrs (ostree drops them).
pub fn exact() -> Options {
    Options {
        root_meta: false,
        skip_empty_xattrs: true,
        ..Options::exact()
    }
}

/// A user-mode checkout (`ostree checkout -U` / `keel repo checkout --user-mode`): files belong
/// to the caller and carry no xattrs, so type, content, link targets and permission bits by
/// [`ModeRule::UserMode`] are compared.
pub fn user_mode() -> Options {
    Options {
        owner: false,
        modes: ModeRule::UserMode,
        xattrs: false,
        ignore_xattrs: vec![b"user.ostreemeta".to_vec()],
        skip_empty_xattrs: true,
        root_meta: false,
        max_diffs: 20,
    }
}
