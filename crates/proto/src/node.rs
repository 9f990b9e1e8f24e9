//! A Keel node's contracts with itself: the paths and kernel arguments that one program writes
//! and another reads (the image builder and the boot loader entries, the initramfs and the
//! deployment tools, the agent and `keel status`). Paths are relative to the root they live in.

use std::path::Path;

/// The OSTree stateroot (`/ostree/deploy/<STATEROOT>`) Keel deploys into.
pub const STATEROOT: &str = "keel";

/// The remote an image's first deployment follows (`keel:<ref>`, like Fedora CoreOS's
/// `fedora:fedora/x86_64/coreos/stable`).
pub const DEFAULT_REMOTE: &str = "keel";

/// Where remote definitions live besides the repository config, relative to `/etc`.
pub const REMOTES_D: &str = "ostree/remotes.d";

/// The system repository, below the sysroot (`/ostree/repo` on a booted node).
pub const SYSTEM_REPO: &str = "ostree/repo";

/// Where the sysroot is mounted while the initramfs (or a unit before the switch) runs; a
/// root of this path means "the node itself", not a directory being prepared.
pub const SYSROOT_MOUNT: &str = "/sysroot";

/// In the OS tree: the default kernel arguments the composer records for the image builder.
pub const TREE_KARGS: &str = "usr/lib/keel/kargs";

/// Kernel argument present only on the first boot (provisioning runs; removed after it).
pub const KARG_FIRSTBOOT: &str = "ignition.firstboot";
/// Kernel argument naming the platform (`qemu`, `metal`, …) the first boot fetches config for.
pub const KARG_PLATFORM_ID: &str = "ignition.platform.id";
/// Kernel argument naming a URL to fetch the Ignition config from.
pub const KARG_CONFIG_URL: &str = "ignition.config.url";

/// The agent's published state (`keel agent status`, `keel status`), under the root.
pub const AGENT_STATE_FILE: &str = "run/keel/agent/state.json";
/// The agent's metrics socket, under the root.
pub const AGENT_METRICS_SOCKET: &str = "run/keel/agent/metrics.sock";
/// The last health-check failure, under the root (kept across boots).
pub const HEALTH_FAILURE_RECORD: &str = "var/lib/keel/health-failure.json";

/// Whether `root` is the running node's sysroot rather than a directory being prepared.
pub fn is_node_sysroot(root: &Path) -> bool {
    root == Path::new(SYSROOT_MOUNT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_relative_and_kargs_are_names() {
        for p in [
            TREE_KARGS,
            AGENT_STATE_FILE,
            AGENT_METRICS_SOCKET,
            HEALTH_FAILURE_RECORD,
            REMOTES_D,
            SYSTEM_REPO,
        ] {
            assert!(!p.starts_with('/'), "{p}");
        }
        for k in [KARG_FIRSTBOOT, KARG_PLATFORM_ID, KARG_CONFIG_URL] {
            assert!(!k.contains('=') && !k.contains(' '), "{k}");
        }
        assert!(is_node_sysroot(Path::new("/sysroot")));
        assert!(!is_node_sysroot(Path::new("/tmp/sysroot")));
    }
}
