//! systemd's `Exec*=` command lines turned into argument vectors the way systemd does it
//! (systemd.service(5), "Command lines"): prefixes, `;`-separated commands, quoting,
//! specifiers and environment variables. What cannot be resolved is an error that names it,
//! so that a unit using a new specifier or variable fails the test instead of passing it
//! unchecked.

use std::collections::BTreeMap;

/// The settings whose value is a command line.
pub const EXEC_KEYS: [&str; 7] = [
    "ExecStart",
    "ExecStartPre",
    "ExecStartPost",
    "ExecStop",
    "ExecStopPost",
    "ExecReload",
    "ExecCondition",
];

/// Plausible values for the unit specifiers (systemd.unit(5), "Specifiers") of a unit
/// `keel-test@instance.service` run as root.
const SPECIFIERS: [(char, &str); 22] = [
    ('i', "instance"),
    ('I', "instance"),
    ('n', "keel-test@instance.service"),
    ('N', "keel-test@instance"),
    ('p', "keel-test"),
    ('P', "keel-test"),
    ('j', "test"),
    ('J', "test"),
    ('f', "/instance"),
    ('t', "/run"),
    ('S', "/var/lib"),
    ('C', "/var/cache"),
    ('L', "/var/log"),
    ('E', "/etc"),
    ('T', "/tmp"),
    ('V', "/var/tmp"),
    ('h', "/root"),
    ('u', "root"),
    ('U', "0"),
    ('H', "keel-node"),
    ('m', "0123456789abcdef0123456789abcdef"),
    ('%', "%"),
];

/// One command of an `Exec*=` line: its argument vector (argv[0] first) and its prefixes.
#[derive(Debug, PartialEq)]
pub struct Command {
    pub argv: Vec<String>,
    pub prefixes: String,
}

/// Splits the value of an `Exec*=` setting into its commands. `env` holds the variables the
/// unit sets (`Environment=`) and plausible values for the others it uses.
pub fn commands(value: &str, env: &BTreeMap<String, String>) -> Result<Vec<Command>, String> {
    let line = specifiers(value)?;
    let mut out = Vec::new();
    for words in split_commands(&words(&line)?) {
        let Some((first, args)) = words.split_first() else {
            continue;
        };
        let path_start = first
            .find(|c| !"-@+!:|".contains(c))
            .ok_or_else(|| format!("`{value}`: a command of prefixes only"))?;
        let (prefixes, path) = first.split_at(path_start);
        let mut args = args.to_vec();
        if prefixes.contains('@') {
            // `@path name args`: the second word is argv[0]; clap ignores argv[0] anyway.
            if args.is_empty() {
                return Err(format!("`{value}`: `@` without an argv[0] word"));
            }
            args.remove(0);
        }
        let mut argv = vec![path.to_string()];
        for arg in args {
            if prefixes.contains(':') {
                argv.push(arg);
            } else {
                argv.extend(expand(&arg, env)?);
            }
        }
        out.push(Command {
            argv,
            prefixes: prefixes.to_string(),
        });
    }
    Ok(out)
}

/// Replaces `%x` specifiers with the plausible values of [`SPECIFIERS`].
fn specifiers(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let s = chars
            .next()
            .ok_or_else(|| format!("`{value}`: `%` at the end of the line"))?;
        let (_, v) = SPECIFIERS.iter().find(|(k, _)| *k == s).ok_or_else(|| {
            format!("`{value}`: specifier %{s} has no plausible value in SPECIFIERS; add one")
        })?;
        out.push_str(v);
    }
    Ok(out)
}

/// A word as written, and whether any part of it was quoted or escaped (`";"` and `\;` are
/// arguments, not command separators).
#[derive(Debug, Clone, PartialEq)]
struct Word {
    text: String,
    quoted: bool,
}

/// Splits a line into words: whitespace separates, `"…"` and `'…'` quote, `\` escapes.
fn words(line: &str) -> Result<Vec<Word>, String> {
    let mut out = Vec::new();
    let mut cur: Option<Word> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => out.extend(cur.take()),
            '"' | '\'' => {
                let w = cur.get_or_insert(Word {
                    text: String::new(),
                    quoted: true,
                });
                w.quoted = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => w.text.push(unescape(chars.next(), line)?),
                        Some(x) => w.text.push(x),
                        None => return Err(format!("`{line}`: unterminated {c}")),
                    }
                }
            }
            '\\' => {
                let x = unescape(chars.next(), line)?;
                let w = cur.get_or_insert(Word {
                    text: String::new(),
                    quoted: true,
                });
                w.quoted = true;
                w.text.push(x);
            }
            c => cur
                .get_or_insert(Word {
                    text: String::new(),
                    quoted: false,
                })
                .text
                .push(c),
        }
    }
    out.extend(cur);
    Ok(out)
}

fn unescape(c: Option<char>, line: &str) -> Result<char, String> {
    match c {
        Some('n') => Ok('\n'),
        Some('t') => Ok('\t'),
        Some(c) => Ok(c),
        None => Err(format!("`{line}`: `\\` at the end of the line")),
    }
}

/// A lone `;` word separates commands (`\;` is a literal semicolon argument).
fn split_commands(words: &[Word]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    for w in words {
        if w.text == ";" && !w.quoted {
            out.push(Vec::new());
        } else if let Some(last) = out.last_mut() {
            last.push(w.text.clone());
        }
    }
    out
}

/// Environment expansion of one argument: `${FOO}` is replaced inside the word; a word that
/// is exactly `$FOO` becomes the whitespace-separated words of the value; `$$` is a `$`.
fn expand(arg: &str, env: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let lookup = |name: &str| {
        env.get(name).cloned().ok_or_else(|| {
            format!("`{arg}`: ${name} is neither set by the unit nor given a plausible value")
        })
    };
    if let Some(name) = arg.strip_prefix('$').filter(|n| is_name(n)) {
        return Ok(lookup(name)?
            .split_whitespace()
            .map(str::to_string)
            .collect());
    }
    let mut out = String::new();
    let mut rest = arg;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("`{arg}`: unterminated ${{"))?;
            out.push_str(&lookup(&after[..end])?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(vec![out])
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variables a unit sets with `Environment=` (quoted assignments included).
pub fn environment(unit_values: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for value in unit_values {
        for w in words(value)? {
            let (k, v) = w
                .text
                .split_once('=')
                .ok_or_else(|| format!("Environment={value}: `{}` has no `=`", w.text))?;
            env.insert(k.to_string(), v.to_string());
        }
    }
    Ok(env)
}
