//! Kernel arguments of a deployment: split, edit (append/delete/replace like `rpm-ostree kargs`)
//! and join. The `ostree=` argument is owned by Keel and never stored with the user's kargs.

use crate::error::DeployError;
use keel_utils::cmdline::{self, key};

/// One edit of a karg list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KargEdit {
    /// Add `K` or `K=V` at the end (a key may repeat).
    Append(String),
    /// Remove `K` (every value) or exactly `K=V`.
    Delete(String),
    /// `K=V`: replace the value of every `K` (the key must exist).
    Replace(String),
}

/// Split a command line into arguments as the kernel does (each kept as written), dropping
/// `ostree=`.
pub fn split(options: &str) -> Vec<String> {
    cmdline::words(options)
        .into_iter()
        .filter(|a| key(a) != "ostree")
        .map(str::to_string)
        .collect()
}

/// The karg that makes the initramfs run Ignition: it belongs to the first boot of the first
/// deployment only.
pub const FIRSTBOOT: &str = keel_proto::node::KARG_FIRSTBOOT;

/// Kargs a new deployment takes over from the one it replaces: all but [`FIRSTBOOT`], so that
/// an upgrade never provisions again.
pub fn inherit(kargs: &[String]) -> Vec<String> {
    kargs
        .iter()
        .filter(|a| key(a) != FIRSTBOOT)
        .cloned()
        .collect()
}

/// Do `edits` only delete [`FIRSTBOOT`]?
pub fn only_clears_firstboot(edits: &[KargEdit]) -> bool {
    !edits.is_empty()
        && edits
            .iter()
            .all(|e| matches!(e, KargEdit::Delete(a) if key(a) == FIRSTBOOT))
}

/// Apply edits in order.
pub fn apply(kargs: &[String], edits: &[KargEdit]) -> Result<Vec<String>, DeployError> {
    let mut out = kargs.to_vec();
    for edit in edits {
        match edit {
            KargEdit::Append(a) => {
                check(a)?;
                out.push(a.clone());
            }
            KargEdit::Delete(a) => {
                check(a)?;
                let before = out.len();
                if a.contains('=') {
                    out.retain(|x| x != a);
                } else {
                    out.retain(|x| key(x) != a);
                }
                if out.len() == before {
                    return Err(DeployError::State(format!(
                        "karg `{a}` is not set; `keel kargs` prints the current ones"
                    )));
                }
            }
            KargEdit::Replace(a) => {
                check(a)?;
                if !a.contains('=') {
                    return Err(DeployError::State(format!(
                        "--replace `{a}`: expected KEY=VALUE"
                    )));
                }
                let k = key(a);
                if !out.iter().any(|x| key(x) == k) {
                    return Err(DeployError::State(format!(
                        "--replace `{a}`: karg `{k}` is not set; use --append"
                    )));
                }
                for x in out.iter_mut().filter(|x| key(x) == k) {
                    *x = a.clone();
                }
            }
        }
    }
    Ok(out)
}

fn check(arg: &str) -> Result<(), DeployError> {
    if arg.is_empty() || arg.contains(char::is_whitespace) || key(arg) == "ostree" {
        return Err(DeployError::State(format!(
            "karg `{arg}`: must be one non-empty word and not `ostree=` (Keel sets that one)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firstboot_only_edits_are_recognized() {
        use KargEdit::*;
        let table = [
            (vec![Delete("ignition.firstboot".into())], true),
            (vec![Delete("ignition.firstboot=1".into())], true),
            (vec![], false),
            (
                vec![Delete("ignition.firstboot".into()), Delete("quiet".into())],
                false,
            ),
            (vec![Append("ignition.firstboot".into())], false),
        ];
        for (edits, want) in table {
            assert_eq!(only_clears_firstboot(&edits), want, "{edits:?}");
        }
    }

    /// `split_whitespace` cut a quoted argument in two (`foo="a` and `b"`); the kernel's
    /// splitting keeps it whole and as written, so a rewritten entry keeps it too.
    #[test]
    fn quoted_kargs_stay_whole() {
        assert_eq!(
            split("ostree=/x foo=\"a b\" \"bar=c d\" \"ostree=/y\" quiet"),
            ["foo=\"a b\"", "\"bar=c d\"", "quiet"]
        );
    }

    #[test]
    fn inherited_kargs_drop_the_firstboot_flag() {
        let table = [
            (
                "root=LABEL=root rw ignition.firstboot ignition.platform.id=qemu",
                "root=LABEL=root rw ignition.platform.id=qemu",
            ),
            ("ignition.firstboot=1 quiet", "quiet"),
            ("quiet", "quiet"),
        ];
        for (from, want) in table {
            assert_eq!(inherit(&split(from)).join(" "), want, "{from}");
        }
    }

    #[test]
    fn edits_apply_in_order() {
        use KargEdit::*;
        let base =
            "root=LABEL=root rw quiet console=tty0 console=ttyS0 ostree=/ostree/boot.1/keel/x/0";
        let table: Vec<(Vec<KargEdit>, Result<&str, &str>)> = vec![
            (
                vec![],
                Ok("root=LABEL=root rw quiet console=tty0 console=ttyS0"),
            ),
            (
                vec![Append("a=1".into())],
                Ok("root=LABEL=root rw quiet console=tty0 console=ttyS0 a=1"),
            ),
            (
                vec![Delete("console".into())],
                Ok("root=LABEL=root rw quiet"),
            ),
            (
                vec![Delete("console=tty0".into())],
                Ok("root=LABEL=root rw quiet console=ttyS0"),
            ),
            (
                vec![Replace("console=hvc0".into())],
                Ok("root=LABEL=root rw quiet console=hvc0 console=hvc0"),
            ),
            (
                vec![Append("x".into()), Delete("x".into())],
                Ok("root=LABEL=root rw quiet console=tty0 console=ttyS0"),
            ),
            (vec![Delete("nosuch".into())], Err("not set")),
            (vec![Replace("nosuch=1".into())], Err("use --append")),
            (vec![Replace("quiet".into())], Err("KEY=VALUE")),
            (vec![Append("ostree=/x".into())], Err("Keel sets")),
            (vec![Append("a b".into())], Err("one non-empty word")),
        ];
        for (edits, want) in table {
            let got = apply(&split(base), &edits).map(|v| v.join(" "));
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{edits:?}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{edits:?}: {e}"),
                (g, w) => panic!("{edits:?}: got {g:?}, want {w:?}"),
            }
        }
    }
}
