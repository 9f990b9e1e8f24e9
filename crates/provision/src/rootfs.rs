//! Owners inside the target root: user and group names are looked up in the root's own
//! `/etc/passwd` and `/etc/group` (read beneath the root, see [`crate::beneath`]).

use crate::beneath::Root;
use anyhow::Result;
use std::collections::HashMap;

/// Users and groups of the target root, by name.
#[derive(Debug, Default, Clone)]
pub struct Accounts {
    /// name → (uid, primary gid, home)
    users: HashMap<String, (u32, u32, String)>,
    groups: HashMap<String, u32>,
}

impl Accounts {
    /// Reads `/etc/passwd` and `/etc/group` of `root` (missing files mean no entries).
    pub fn load(root: &Root) -> Result<Accounts> {
        let mut a = Accounts::default();
        for line in read_lines(root, "/etc/passwd")? {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(name), Some(uid), Some(gid)) = (
                f.first(),
                f.get(2).and_then(|s| s.parse().ok()),
                f.get(3).and_then(|s| s.parse().ok()),
            ) {
                a.users.insert(
                    name.to_string(),
                    (uid, gid, f.get(5).unwrap_or(&"").to_string()),
                );
            }
        }
        for line in read_lines(root, "/etc/group")? {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(name), Some(gid)) = (f.first(), f.get(2).and_then(|s| s.parse().ok())) {
                a.groups.insert(name.to_string(), gid);
            }
        }
        Ok(a)
    }

    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users.get(name).map(|u| u.0)
    }

    /// The user's primary group id.
    pub fn primary_gid(&self, name: &str) -> Option<u32> {
        self.users.get(name).map(|u| u.1)
    }

    /// The user's home directory as written in the root's `/etc/passwd`.
    pub fn home(&self, name: &str) -> Option<&str> {
        self.users.get(name).map(|u| u.2.as_str())
    }

    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.get(name).copied()
    }

    pub fn has_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }
}

fn read_lines(root: &Root, path: &str) -> Result<Vec<String>> {
    let text = root.read(path)?.unwrap_or_default();
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_from_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ncore:x:1000:1001::/home/core:/bin/bash\nbad\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\ncore:x:1001:\n").unwrap();
        let a = Accounts::load(&Root::open(d.path()).unwrap()).unwrap();
        assert_eq!(a.uid("core"), Some(1000));
        assert_eq!(a.primary_gid("core"), Some(1001));
        assert_eq!(a.home("core"), Some("/home/core"));
        assert_eq!(a.gid("core"), Some(1001));
        assert_eq!(a.uid("nobody"), None);
        std::fs::create_dir(d.path().join("none")).unwrap();
        let empty = Accounts::load(&Root::open(&d.path().join("none")).unwrap()).unwrap();
        assert!(!empty.has_user("root"));
    }
}
