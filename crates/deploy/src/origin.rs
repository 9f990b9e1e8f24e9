//! The `<commit>.<serial>.origin` file next to each deployment: a GLib key file with
//! `[origin] refspec=<remote>:<ref>` (what upgrades follow) and, when pinned,
//! `[libostree-transient] pinned=true` (the group ostree 2022.7 reads). Unknown groups and keys
//! are kept as they are.

/// A parsed origin file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    groups: Vec<(String, Vec<(String, String)>)>,
}

const ORIGIN: &str = "origin";
const TRANSIENT: &str = "libostree-transient";

impl Origin {
    /// An origin following `refspec` (`remote:ref` or `ref`), or none (a pinned commit).
    pub fn new(refspec: Option<&str>) -> Origin {
        let mut o = Origin::default();
        if let Some(r) = refspec {
            o.set(ORIGIN, "refspec", Some(r));
        }
        o
    }

    /// Parse key-file text; comments and blank lines are dropped.
    pub fn parse(text: &str) -> Origin {
        let mut o = Origin::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(g) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                o.groups.push((g.to_string(), Vec::new()));
            } else if let (Some((k, v)), Some(g)) = (line.split_once('='), o.groups.last_mut()) {
                g.1.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        o
    }

    /// Key-file text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (i, (g, kv)) in self.groups.iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push_str(&format!("[{g}]\n"));
            for (k, v) in kv {
                s.push_str(&format!("{k}={v}\n"));
            }
        }
        s
    }

    fn get(&self, group: &str, key: &str) -> Option<&str> {
        self.groups
            .iter()
            .filter(|(g, _)| g == group)
            .flat_map(|(_, kv)| kv.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, group: &str, key: &str, value: Option<&str>) {
        for (_, kv) in self.groups.iter_mut().filter(|(g, _)| g == group) {
            kv.retain(|(k, _)| k != key);
        }
        if let Some(v) = value {
            match self.groups.iter_mut().find(|(g, _)| g == group) {
                Some((_, kv)) => kv.push((key.to_string(), v.to_string())),
                None => self
                    .groups
                    .push((group.to_string(), vec![(key.to_string(), v.to_string())])),
            }
        }
        self.groups.retain(|(_, kv)| !kv.is_empty());
    }

    /// The refspec upgrades follow.
    pub fn refspec(&self) -> Option<&str> {
        self.get(ORIGIN, "refspec")
    }

    /// Is the deployment pinned (kept by every cleanup)?
    pub fn pinned(&self) -> bool {
        self.get(TRANSIENT, "pinned") == Some("true")
    }

    /// Pin or unpin.
    pub fn set_pinned(&mut self, pinned: bool) {
        self.set(TRANSIENT, "pinned", pinned.then_some("true"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_files_parse_edit_and_print() {
        // (input, pin?, refspec, expected output)
        let table = [
            ("[origin]\nrefspec=keel/test\n", None, Some("keel/test"), "[origin]\nrefspec=keel/test\n"),
            (
                "[origin]\nrefspec=origin:keel/stable/x86_64\n",
                Some(true),
                Some("origin:keel/stable/x86_64"),
                "[origin]\nrefspec=origin:keel/stable/x86_64\n\n[libostree-transient]\npinned=true\n",
            ),
            (
                "[origin]\nrefspec=r\n\n[libostree-transient]\npinned=true\n",
                Some(false),
                Some("r"),
                "[origin]\nrefspec=r\n",
            ),
            ("# c\n[origin]\nrefspec = r\ncustom=1\n[x]\ny=z\n", None, Some("r"), "[origin]\nrefspec=r\ncustom=1\n\n[x]\ny=z\n"),
        ];
        for (input, pin, refspec, want) in table {
            let mut o = Origin::parse(input);
            if let Some(p) = pin {
                o.set_pinned(p);
                assert_eq!(o.pinned(), p);
            }
            assert_eq!(o.refspec(), refspec, "{input}");
            assert_eq!(o.to_text(), want, "{input}");
        }
        assert_eq!(
            Origin::new(Some("a:b")).to_text(),
            "[origin]\nrefspec=a:b\n"
        );
    }
}
