//! What compose writes into the tree besides packages: overlays, the keel binary, its man pages
//! and its dracut module, os-release, sysusers.d and tmpfiles.d lines for the manifest's users
//! and groups, the default kernel arguments, and systemd unit states.

use crate::chroot;
use crate::manifest::{Group, Manifest, User};
use keel_utils::cmd;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The keel dracut module, installed at [`DRACUT_MODULE_DIR`]: (file name, content, mode).
pub const DRACUT_MODULE: &[(&str, &str, u32)] = &[
    (
        "module-setup.sh",
        include_str!("../dracut/50keel/module-setup.sh"),
        0o755,
    ),
    (
        "keel-ignition-generator",
        include_str!("../dracut/50keel/keel-ignition-generator"),
        0o755,
    ),
    (
        "keel-ignition-fetch-offline.service",
        include_str!("../dracut/50keel/keel-ignition-fetch-offline.service"),
        0o644,
    ),
    (
        "keel-ignition-fetch.service",
        include_str!("../dracut/50keel/keel-ignition-fetch.service"),
        0o644,
    ),
    (
        "keel-initrd-network.service",
        include_str!("../dracut/50keel/keel-initrd-network.service"),
        0o644,
    ),
    (
        "90-keel-initrd-dhcp.network",
        include_str!("../dracut/50keel/90-keel-initrd-dhcp.network"),
        0o644,
    ),
    (
        "keel-ignition-kargs.service",
        include_str!("../dracut/50keel/keel-ignition-kargs.service"),
        0o644,
    ),
    (
        "keel-ignition-disks.service",
        include_str!("../dracut/50keel/keel-ignition-disks.service"),
        0o644,
    ),
    (
        "keel-ignition-mount.service",
        include_str!("../dracut/50keel/keel-ignition-mount.service"),
        0o644,
    ),
    (
        "keel-ignition-files.service",
        include_str!("../dracut/50keel/keel-ignition-files.service"),
        0o644,
    ),
    (
        "keel-ignition-umount.service",
        include_str!("../dracut/50keel/keel-ignition-umount.service"),
        0o644,
    ),
    (
        "keel-prepare-root.service",
        include_str!("../dracut/50keel/keel-prepare-root.service"),
        0o644,
    ),
    (
        "keel-boot-failed.conf",
        include_str!("../dracut/50keel/keel-boot-failed.conf"),
        0o644,
    ),
];

/// Where the keel dracut module goes in the tree.
pub const DRACUT_MODULE_DIR: &str = "usr/lib/dracut/modules.d/50keel";

fn write(tree: &Path, rel: &str, content: &str, mode: u32) -> anyhow::Result<()> {
    use anyhow::Context;
    let p = tree.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode of {}", p.display()))
}

/// Copy each overlay directory over the tree (content, modes and symlinks; owned by root).
pub fn copy_overlays(m: &Manifest, tree: &Path) -> anyhow::Result<()> {
    for dir in &m.spec.overlays {
        let src = m.resolve(dir);
        if !src.is_dir() {
            anyhow::bail!(
                "manifest key overlays: {} is not a directory (paths are relative to the manifest)",
                src.display()
            );
        }
        let mut from = src.into_os_string();
        from.push("/.");
        cmd::run(
            Command::new("cp")
                .args(["-a", "--no-preserve=ownership", "--no-target-directory"])
                .arg(&from)
                .arg(tree),
        )
        .map_err(|e| anyhow::anyhow!("manifest key overlays: copying {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Install the node-side keel binary, its man pages and the keel dracut module.
pub fn install_keel(m: &Manifest, tree: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let src = match &m.spec.keel.binary {
        Some(p) => m.resolve(p),
        None => std::env::current_exe().context("finding the running keel binary")?,
    };
    let dest = tree.join("usr/bin/keel");
    fs::copy(&src, &dest).with_context(|| {
        format!(
            "manifest key keel.binary: copying {} to {}",
            src.display(),
            dest.display()
        )
    })?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;
    // Debug info is of no use on a node (and a debug build carries tens of MB of it).
    if cmd::have("strip") {
        cmd::run(Command::new("strip").arg("--strip-debug").arg(&dest))
            .context("stripping debug info from the keel binary")?;
    }
    for (name, content, mode) in DRACUT_MODULE {
        write(tree, &format!("{DRACUT_MODULE_DIR}/{name}"), content, *mode)?;
    }
    install_man_pages(&src, tree)
}

/// Where keel's man pages go in the tree (gzip-compressed, as Debian installs them). dpkg's
/// `path-exclude` of /usr/share/man applies to packages only, so these stay.
pub const MAN_DIR: &str = "usr/share/man/man1";

/// Install keel's man pages, rendered by the binary being installed (`keel docs man`), so
/// that they describe exactly the commands the node has.
fn install_man_pages(keel: &Path, tree: &Path) -> anyhow::Result<()> {
    let dir = tree.join(MAN_DIR);
    cmd::run(
        Command::new(keel)
            .args(["docs", "man", "--gzip", "--out"])
            .arg(&dir),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "manifest key keel.binary: {} could not write its man pages to {} (it needs \
             `keel docs man`): {e}",
            keel.display(),
            dir.display()
        )
    })?;
    Ok(())
}

/// Quote a value for os-release (shell-compatible double quotes).
fn quote(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The os-release file: the manifest's fields plus the version fields.
pub fn os_release(m: &Manifest, version: &str) -> String {
    let mut fields = m.spec.os_release.clone();
    let prefix = m.version_prefix().unwrap_or_default().to_string();
    fields.insert("VERSION".into(), version.into());
    fields.insert("VERSION_ID".into(), prefix);
    fields.insert("IMAGE_VERSION".into(), version.into());
    fields.insert("OSTREE_VERSION".into(), version.into());
    fields.insert("KEEL_STREAM".into(), m.spec.release.stream.clone());
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}\n", quote(v)))
        .collect()
}

/// sysusers.d lines for the manifest's groups and users.
pub fn sysusers(users: &[User], groups: &[Group]) -> String {
    let id = |n: Option<u32>| n.map_or("-".to_string(), |n| n.to_string());
    let mut s = String::from("# Generated by keel compose from the manifest's users and groups.\n");
    for g in groups {
        s.push_str(&format!("g {} {}\n", g.name, id(g.gid)));
    }
    for u in users {
        s.push_str(&format!(
            "u {} {} {} {} {}\n",
            u.name,
            id(u.uid),
            quote(&u.gecos),
            u.home.as_deref().unwrap_or("-"),
            u.shell.as_deref().unwrap_or("-")
        ));
        for g in &u.groups {
            s.push_str(&format!("m {} {g}\n", u.name));
        }
    }
    s
}

/// tmpfiles.d lines creating the manifest users' home directories.
pub fn user_homes(users: &[User]) -> String {
    let mut s =
        String::from("# Generated by keel compose: home directories of the manifest's users.\n");
    for u in users {
        if let Some(home) = &u.home {
            s.push_str(&format!("d {home} 0700 {} {} -\n", u.name, u.name));
        }
    }
    s
}

/// Write os-release, sysusers.d, the users' tmpfiles.d and the kernel arguments.
pub fn write_config(m: &Manifest, tree: &Path, version: &str) -> anyhow::Result<()> {
    write(tree, "usr/lib/os-release", &os_release(m, version), 0o644)?;
    let etc_os_release = tree.join("etc/os-release");
    let _ = fs::remove_file(&etc_os_release);
    std::os::unix::fs::symlink("../usr/lib/os-release", &etc_os_release)?;
    if !m.spec.users.is_empty() || !m.spec.groups.is_empty() {
        write(
            tree,
            "usr/lib/sysusers.d/keel-manifest.conf",
            &sysusers(&m.spec.users, &m.spec.groups),
            0o644,
        )?;
        write(
            tree,
            "usr/lib/tmpfiles.d/keel-users.conf",
            &user_homes(&m.spec.users),
            0o644,
        )?;
    }
    if !m.spec.kernel.args.is_empty() {
        write(
            tree,
            keel_proto::node::TREE_KARGS,
            &format!("{}\n", m.spec.kernel.args.join(" ")),
            0o644,
        )?;
    }
    Ok(())
}

/// Enable, disable and mask the manifest's units with the tree's own systemctl.
pub fn set_unit_states(m: &Manifest, tree: &Path) -> anyhow::Result<()> {
    let u = &m.spec.systemd;
    for (verb, key, units) in [
        ("enable", "systemd.enable", &u.enable),
        ("disable", "systemd.disable", &u.disable),
        ("mask", "systemd.mask", &u.mask),
    ] {
        if units.is_empty() {
            continue;
        }
        let mut argv = vec!["systemctl", verb];
        argv.extend(units.iter().map(String::as_str));
        chroot::run(tree, &argv, &[]).map_err(|e| anyhow::anyhow!("manifest key {key}: {e}"))?;
    }
    Ok(())
}

/// Run the manifest's postprocess scripts inside the tree, in order.
pub fn postprocess(m: &Manifest, tree: &Path, epoch: u64) -> anyhow::Result<()> {
    use anyhow::Context;
    for (i, p) in m.spec.postprocess.iter().enumerate() {
        let script = match (&p.script, &p.file) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => {
                let f = m.resolve(f);
                fs::read_to_string(&f).with_context(|| {
                    format!(
                        "manifest key postprocess[{i}] ({}): reading {}",
                        p.name,
                        f.display()
                    )
                })?
            }
            (None, None) => unreachable!("checked when the manifest was loaded"),
        };
        tracing::info!("postprocess {}", p.name);
        chroot::run(
            tree,
            &["sh", "-euc", &script, &p.name],
            &[("SOURCE_DATE_EPOCH", epoch.to_string())],
        )
        .map_err(|e| anyhow::anyhow!("manifest key postprocess[{i}] ({}) failed: {e}", p.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `ignition.*` kernel argument the initramfs module and the OS overlay read is one
    /// `keel_proto::node` declares, so the boot loader entries, the image builder and the units
    /// cannot drift apart.
    #[test]
    fn kernel_arguments_read_by_the_boot_are_declared_contracts() {
        use keel_proto::node::{KARG_CONFIG_URL, KARG_FIRSTBOOT, KARG_PLATFORM_ID};
        let declared = [KARG_FIRSTBOOT, KARG_PLATFORM_ID, KARG_CONFIG_URL];
        let mut texts: Vec<(String, String)> = DRACUT_MODULE
            .iter()
            .map(|(name, text, _)| (name.to_string(), text.to_string()))
            .collect();
        let overlays = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/overlays");
        let mut dirs = vec![overlays];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if let Ok(text) = std::fs::read_to_string(&p) {
                    texts.push((p.display().to_string(), text));
                }
            }
        }
        let mut found = 0;
        for (name, text) in &texts {
            for (i, _) in text.match_indices("ignition.") {
                let word: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                    .collect();
                let word = word.trim_end_matches('.');
                if !word.contains('.') {
                    continue; // prose ending a sentence with "ignition."
                }
                found += 1;
                assert!(
                    declared.contains(&word),
                    "{name} reads kernel argument {word}, which keel_proto::node does not declare"
                );
            }
        }
        assert!(found >= 10, "only {found} uses found");
    }

    #[test]
    fn generated_files() {
        let users = vec![User {
            name: "core".into(),
            uid: Some(1000),
            gecos: "Keel \"admin\"".into(),
            home: Some("/var/home/core".into()),
            shell: Some("/bin/bash".into()),
            groups: vec!["sudo".into(), "adm".into()],
        }];
        let groups = vec![Group {
            name: "docker".into(),
            gid: None,
        }];
        let s = sysusers(&users, &groups);
        assert!(s.contains("g docker -\n"), "{s}");
        assert!(
            s.contains("u core 1000 \"Keel \\\"admin\\\"\" /var/home/core /bin/bash\n"),
            "{s}"
        );
        assert!(s.contains("m core sudo\nm core adm\n"), "{s}");
        assert!(user_homes(&users).contains("d /var/home/core 0700 core core -\n"));

        let text = "[release]\nstream = \"testing\"\n[debian]\nsuite = \"bookworm\"\nmirrors = [\"http://m\"]\n[os-release]\nNAME = \"Keel\"\nID = \"keel\"\n";
        let m = Manifest::parse(text.as_bytes(), Path::new("m.toml"), "/".into()).unwrap();
        let r = os_release(&m, "12.20261125.2.0");
        for want in [
            "NAME=\"Keel\"\n",
            "ID=\"keel\"\n",
            "VERSION=\"12.20261125.2.0\"\n",
            "VERSION_ID=\"12\"\n",
            "OSTREE_VERSION=\"12.20261125.2.0\"\n",
            "KEEL_STREAM=\"testing\"\n",
        ] {
            assert!(r.contains(want), "{want:?} missing from {r}");
        }
        assert_eq!(quote("a$b`c"), "\"a\\$b\\`c\"");
    }

    #[test]
    fn dracut_module_files_match_the_unit_names_of_module_setup() {
        let setup = DRACUT_MODULE[0].1;
        for (name, content, _) in DRACUT_MODULE
            .iter()
            .filter(|(n, _, _)| n.ends_with(".service"))
        {
            let stem = name.trim_end_matches(".service");
            assert!(
                setup.contains(stem),
                "module-setup.sh does not install {name}"
            );
            assert!(content.contains("\nExecStart=/usr/"), "{name}");
            if let Some(stage) = stem.strip_prefix("keel-ignition-") {
                assert!(
                    content.contains("ConditionKernelCommandLine=ignition.firstboot"),
                    "{name}"
                );
                assert!(
                    content.contains(&format!(
                        "ExecStart=/usr/bin/keel ignition stage {stage} --root /sysroot --platform ${{PLATFORM}}"
                    )),
                    "{name}"
                );
            }
        }
    }
}
