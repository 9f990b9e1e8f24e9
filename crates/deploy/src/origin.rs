//! The `<commit>.<serial>.origin` file next to each deployment: a GLib key file with
//! `[origin] refspec=<remote>:<ref>` (what upgrades follow) and, when pinned,
//! `[libostree-transient] pinned=true` (the group ostree 2022.7 reads). Unknown groups and keys
//! are kept as they are.

use keel_utils::keyfile::{KeyFile, KeyFileError};

/// A parsed origin file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    keys: KeyFile,
}

const ORIGIN: &str = "origin";
const TRANSIENT: &str = "libostree-transient";

impl Origin {
    /// An origin following `refspec` (`remote:ref` or `ref`), or none (a pinned commit).
    pub fn new(refspec: Option<&str>) -> Origin {
        let mut o = Origin::default();
        if let Some(r) = refspec {
            o.keys.set(ORIGIN, "refspec", Some(r));
        }
        o
    }

    /// Parse key-file text (read as GLib reads it: see `keel_utils::keyfile`); comments and
    /// blank lines are dropped.
    pub fn parse(text: &str) -> Result<Origin, KeyFileError> {
        Ok(Origin {
            keys: KeyFile::parse(text)?,
        })
    }

    /// Key-file text.
    pub fn to_text(&self) -> String {
        self.keys.to_text()
    }

    /// The refspec upgrades follow.
    pub fn refspec(&self) -> Option<&str> {
        self.keys.raw(ORIGIN, "refspec")
    }

    /// Is the deployment pinned (kept by every cleanup)?
    pub fn pinned(&self) -> bool {
        self.keys.boolean(TRANSIENT, "pinned") == Ok(Some(true))
    }

    /// Pin or unpin.
    pub fn set_pinned(&mut self, pinned: bool) {
        self.keys.set(TRANSIENT, "pinned", pinned.then_some("true"));
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
            let mut o = Origin::parse(input).unwrap();
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

    /// The origin file is read as GLib reads it (deploy's own reader took the first of two
    /// values, trimmed trailing spaces and skipped lines it did not understand).
    #[test]
    fn origin_files_are_read_as_glib_reads_them() {
        let o = Origin::parse("[origin]\nrefspec=a\nrefspec=b\n[libostree-transient]\npinned=1\n")
            .unwrap();
        assert_eq!(o.refspec(), Some("b"));
        assert!(o.pinned());
        let e = Origin::parse("refspec=a\n").unwrap_err().to_string();
        assert!(e.contains("before any [group]"), "{e}");
        assert!(Origin::parse("[origin]\ngarbage\n").is_err());
    }
}
