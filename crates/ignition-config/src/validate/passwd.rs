//! Users and groups: names the shadow tools (`useradd`, `groupadd`) accept on Debian, and ids
//! in the range a `uid_t`/`gid_t` can hold (2^32-1 is `-1`, "no change", for chown).

use super::Checker;
use crate::report::JsonPath;
use crate::types::Passwd;

/// The largest user or group id a config may set.
pub const MAX_ID: i64 = u32::MAX as i64 - 1;
/// Debian's shadow tools refuse longer user and group names.
const NAME_MAX: usize = 32;

/// Why `useradd`/`groupadd` would refuse `name`, if they would. The rule is the one both
/// Debian 12 and Debian 13 accept: letters, digits, `_`, `.` and `-` (not first), an optional
/// final `$`, at most 32 bytes, not only digits, not `.` or `..`. So a name never looks
/// like an option (`--help`) or holds a `/`, `:` or `,`.
pub fn account_name_problem(name: &str) -> Option<&'static str> {
    let body = name.strip_suffix('$').unwrap_or(name);
    let first_ok = body
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    let rest_ok = body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() {
        Some("name is required")
    } else if name.len() > NAME_MAX {
        Some("names may not be longer than 32 characters (useradd/groupadd refuse them)")
    } else if !first_ok || !rest_ok {
        Some("invalid name: use letters, digits, \"_\", \".\" and \"-\" (not first), and an optional final \"$\" (useradd/groupadd refuse others)")
    } else if name == "." || name == ".." || name.chars().all(|c| c.is_ascii_digit()) {
        Some("invalid name: \".\", \"..\" and names of only digits are refused by useradd/groupadd")
    } else {
        None
    }
}

fn check_id(c: &mut Checker, id: Option<i64>, at: &JsonPath) {
    if id.is_some_and(|id| !(0..=MAX_ID).contains(&id)) {
        c.error(at, &format!("id out of range: ids are 0 to {MAX_ID}"));
    }
}

/// A group reference (`primaryGroup`, `groups[]`): a name, or a numeric gid.
fn check_group_ref(c: &mut Checker, group: &str, at: &JsonPath) {
    if !group.is_empty() && group.chars().all(|ch| ch.is_ascii_digit()) {
        check_id(c, group.parse().ok().or(Some(-1)), at);
    } else if let Some(msg) = account_name_problem(group) {
        c.error(at, msg);
    }
}

/// A field `useradd` writes into `/etc/passwd` or `/etc/shadow` may not hold the field
/// separator or a line break; a home directory must be an absolute path, a shell one when set.
fn check_field(c: &mut Checker, value: Option<&str>, absolute: Absolute, at: &JsonPath) {
    let Some(v) = value else { return };
    if v.contains([':', '\n', '\r', '\0']) {
        c.error(
            at,
            "invalid value: \":\" and line breaks are refused by useradd (they would corrupt /etc/passwd)",
        );
    } else if absolute != Absolute::No
        && !v.starts_with('/')
        && !(v.is_empty() && absolute == Absolute::UnlessEmpty)
    {
        c.error(at, "must be an absolute path (useradd refuses others)");
    }
}

/// Whether a field must be an absolute path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Absolute {
    No,
    Yes,
    UnlessEmpty,
}

pub fn check(c: &mut Checker, pw: &Passwd, p: &JsonPath) {
    for (i, u) in pw.users.iter().enumerate() {
        let at = p.key("users").index(i);
        if let Some(msg) = account_name_problem(u.name.as_deref().unwrap_or("")) {
            c.error(&at.key("name"), msg);
        }
        check_field(c, u.gecos.as_deref(), Absolute::No, &at.key("gecos"));
        check_field(c, u.home_dir.as_deref(), Absolute::Yes, &at.key("homeDir"));
        check_field(
            c,
            u.shell.as_deref(),
            Absolute::UnlessEmpty,
            &at.key("shell"),
        );
        let hash = u.password_hash.as_deref();
        check_field(c, hash, Absolute::No, &at.key("passwordHash"));
        check_id(c, u.uid, &at.key("uid"));
        if let Some(g) = &u.primary_group {
            check_group_ref(c, g, &at.key("primaryGroup"));
        }
        for (j, g) in u.groups.iter().enumerate() {
            check_group_ref(c, g, &at.key("groups").index(j));
        }
    }
    for (i, g) in pw.groups.iter().enumerate() {
        let at = p.key("groups").index(i);
        if let Some(msg) = account_name_problem(g.name.as_deref().unwrap_or("")) {
            c.error(&at.key("name"), msg);
        }
        check_id(c, g.gid, &at.key("gid"));
        let hash = g.password_hash.as_deref();
        check_field(c, hash, Absolute::No, &at.key("passwordHash"));
    }
}

/// Checks a file, directory or link owner id (`user.id`, `group.id`).
pub fn check_owner_id(c: &mut Checker, id: Option<i64>, at: &JsonPath) {
    check_id(c, id, at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names() {
        let ok = ["core", "Core", "_x", "a.b", "a-b", "1abc", "samba$", ".x"];
        for n in ok {
            assert_eq!(account_name_problem(n), None, "{n}");
        }
        let bad = [
            "", "--help", "-x", "+x", "~x", "a:b", "a,b", "a b", "a/b", ".", "..", "123", "a$b",
            "é", "x\\y",
        ];
        for n in bad {
            assert!(account_name_problem(n).is_some(), "{n}");
        }
        assert!(account_name_problem(&"a".repeat(32)).is_none());
        assert!(account_name_problem(&"a".repeat(33)).is_some());
    }
}
