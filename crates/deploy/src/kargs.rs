//! Kernel arguments of a deployment: split, edit (append/delete/replace like `rpm-ostree kargs`
//! and `ostree admin kargs edit-in-place`) and join. The `ostree=` argument is owned by Keel and never stored with the user's kargs.

use crate::error::DeployError;
use keel_utils::cmdline::{self, key};

/// One edit of a karg list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KargEdit {
    /// Add `K` or `K=V` at the end (a key may repeat).
    Append(String),
    /// Remove `K` (every value) or exactly `K=V`.
    Delete(String),
    /// `K=V`: replace the value of every `K` (the key must exist). `K=OLD=NEW` where `K=OLD`
    /// is set: replace only that value by `NEW` (ostree's `--replace`).
    Replace(String),
    /// Add `K` or `K=V` unless exactly that argument is already set.
    AppendIfMissing(String),
    /// Remove `K` (every value) or exactly `K=V` if set; nothing if not.
    DeleteIfPresent(String),
    /// `K` or `K=V`: replace every `K` by this one argument, or add it when `K` is not set
    /// (ostree's `deploy --karg`).
    Override(String),
    /// Replace the whole list by this command line (`keel kargs --editor`).
    Set(String),
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
            KargEdit::AppendIfMissing(a) => {
                check(a)?;
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
            KargEdit::Delete(a) => {
                check(a)?;
                if delete(&mut out, a) == 0 {
                    return Err(DeployError::State(format!(
                        "karg `{a}` is not set; `keel kargs` prints the current ones"
                    )));
                }
            }
            KargEdit::DeleteIfPresent(a) => {
                check(a)?;
                delete(&mut out, a);
            }
            KargEdit::Replace(a) => replace(&mut out, a)?,
            KargEdit::Override(a) => {
                check(a)?;
                let k = key(a);
                let at = out.iter().position(|x| key(x) == k);
                out.retain(|x| key(x) != k);
                out.insert(at.unwrap_or(out.len()), a.clone());
            }
            KargEdit::Set(line) => out = split_checked(line)?,
        }
    }
    Ok(out)
}

/// Remove `K` (every value) or exactly `K=V`; how many were removed.
fn delete(out: &mut Vec<String>, arg: &str) -> usize {
    let before = out.len();
    if arg.contains('=') {
        out.retain(|x| x != arg);
    } else {
        out.retain(|x| key(x) != arg);
    }
    before - out.len()
}

/// `K=OLD=NEW` when `K=OLD` is set replaces that one argument (ostree's `--replace`);
/// otherwise `K=V` replaces the value of every `K` (so `root=LABEL=boot` still sets `root`
/// when no `root=LABEL` is set).
fn replace(out: &mut [String], arg: &str) -> Result<(), DeployError> {
    check(arg)?;
    let k = key(arg);
    let Some((_, value)) = arg.split_once('=') else {
        return Err(DeployError::State(format!(
            "--replace `{arg}`: expected KEY=VALUE or KEY=OLD=NEW"
        )));
    };
    // OLD may hold `=` itself (`root=LABEL=root=LABEL=sys`): try every split.
    for (at, _) in value.match_indices('=') {
        let (old, new) = (&value[..at], &value[at + 1..]);
        let from = format!("{k}={old}");
        if let Some(x) = out.iter_mut().find(|x| **x == from) {
            *x = format!("{k}={new}");
            return Ok(());
        }
    }
    if !out.iter().any(|x| key(x) == k) {
        return Err(DeployError::State(format!(
            "--replace `{arg}`: karg `{k}` is not set; use --append"
        )));
    }
    for x in out.iter_mut().filter(|x| key(x) == k) {
        *x = arg.to_string();
    }
    Ok(())
}

/// The arguments of an edited command line, each checked; `ostree=` is refused, not dropped,
/// so that an edit never silently loses what the user wrote.
fn split_checked(line: &str) -> Result<Vec<String>, DeployError> {
    cmdline::words(line)
        .into_iter()
        .map(|a| check(a).map(|()| a.to_string()))
        .collect()
}

fn check(arg: &str) -> Result<(), DeployError> {
    // An odd number of quotes would swallow the arguments after it on the command line.
    let one_word = cmdline::words(arg) == [arg] && arg.matches('"').count().is_multiple_of(2);
    if !one_word || key(arg) == "ostree" {
        return Err(DeployError::State(format!(
            "karg `{arg}`: must be one non-empty word (with balanced quotes) and not `ostree=` (Keel sets that one)"
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
            (vec![Append("a=\"b".into())], Err("one non-empty word")),
            (vec![Append(String::new())], Err("one non-empty word")),
            (
                vec![Append("foo=\"a b\"".into())],
                Ok("root=LABEL=root rw quiet console=tty0 console=ttyS0 foo=\"a b\""),
            ),
            (
                vec![Replace("console=ttyS0=hvc0".into())],
                Ok("root=LABEL=root rw quiet console=tty0 console=hvc0"),
            ),
            (
                vec![Replace("root=LABEL=boot".into())],
                Ok("root=LABEL=boot rw quiet console=tty0 console=ttyS0"),
            ),
            (
                vec![Replace("root=LABEL=root=LABEL=sys".into())],
                Ok("root=LABEL=sys rw quiet console=tty0 console=ttyS0"),
            ),
            (
                vec![AppendIfMissing("quiet".into())],
                Ok("root=LABEL=root rw quiet console=tty0 console=ttyS0"),
            ),
            (
                vec![AppendIfMissing("console=hvc0".into())],
                Ok("root=LABEL=root rw quiet console=tty0 console=ttyS0 console=hvc0"),
            ),
            (
                vec![DeleteIfPresent("nosuch".into())],
                Ok("root=LABEL=root rw quiet console=tty0 console=ttyS0"),
            ),
            (
                vec![DeleteIfPresent("console".into())],
                Ok("root=LABEL=root rw quiet"),
            ),
            (
                vec![DeleteIfPresent("console=tty0".into())],
                Ok("root=LABEL=root rw quiet console=ttyS0"),
            ),
            (vec![Set("rw  foo=\"a b\"\n".into())], Ok("rw foo=\"a b\"")),
            (vec![Set("rw ostree=/x".into())], Err("Keel sets")),
            (vec![Set(String::new())], Ok("")),
            (
                vec![Override("console=hvc0".into())],
                Ok("root=LABEL=root rw quiet console=hvc0"),
            ),
            (
                vec![
                    Override("root=/dev/vda4".into()),
                    Override("mitigations=off".into()),
                ],
                Ok("root=/dev/vda4 rw quiet console=tty0 console=ttyS0 mitigations=off"),
            ),
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
