//! The one splitter of kernel command lines (`/proc/cmdline`, a BLS entry's `options`), with the
//! kernel's rules (`next_arg` and `parse_args` in the kernel's `lib/cmdline.c` and
//! `kernel/params.c`):
//!
//! - arguments are separated by whitespace outside double quotes;
//! - a double quote opening the argument or its value is dropped, and so is the argument's last
//!   character when it is the closing quote: `foo="a b"` and `"foo=a b"` are both `foo` = `a b`;
//!   quotes elsewhere stay (`foo=a" "b` is `foo` = `a" "b`);
//! - a bare `--` ends the kernel's parameters: what follows is passed to init and is not a
//!   kernel parameter ([`Cmdline::init_args`]);
//! - when a key is given twice, the last value wins.
//!
//! [`words`] keeps each argument as written (quotes included), for code that edits a command
//! line and writes it back.

use std::path::Path;

/// The arguments of `text`, each as written (quotes kept).
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c.is_ascii_whitespace() && !quoted {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
            continue;
        }
        start.get_or_insert(i);
        if c == '"' {
            quoted = !quoted;
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

/// The key and value (`None` for a flag) of one argument, with the kernel's quote removal.
pub fn param(word: &str) -> (&str, Option<&str>) {
    let (body, quoted) = match word.strip_prefix('"') {
        Some(rest) => (rest, true),
        None => (word, false),
    };
    match body.find('=') {
        Some(eq) if eq > 0 => {
            let value = &body[eq + 1..];
            let value = match value.strip_prefix('"') {
                Some(v) => close(v),
                None if quoted => close(value),
                None => value,
            };
            (&body[..eq], Some(value))
        }
        _ if quoted => (close(body), None),
        _ => (body, None),
    }
}

/// `s` without a closing double quote.
fn close(s: &str) -> &str {
    s.strip_suffix('"').unwrap_or(s)
}

/// The key of one argument as written (`key` of `key=value`), for matching words.
pub fn key(word: &str) -> &str {
    param(word).0
}

/// The kernel's parameters in `text` (those before a bare `--`), as key and value with quotes
/// removed, borrowed from `text`.
pub fn kernel_params(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    words(text)
        .into_iter()
        .map(param)
        .take_while(|p| *p != ("--", None))
}

/// The value of the last `key=value` kernel parameter of `text`.
pub fn last_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    kernel_params(text)
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, v)| v)
        .last()
}

/// A parsed kernel command line: the kernel's parameters and init's arguments, quotes removed
/// (`key=value` or `key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmdline {
    params: Vec<String>,
    init: Vec<String>,
}

impl Cmdline {
    /// Splits a command line.
    pub fn parse(text: &str) -> Cmdline {
        let arg = |(k, v): (&str, Option<&str>)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.to_string(),
        };
        let params: Vec<String> = kernel_params(text).map(arg).collect();
        let init = words(text)
            .into_iter()
            .map(param)
            .skip_while(|p| *p != ("--", None))
            .skip(1)
            .map(arg)
            .collect();
        Cmdline { params, init }
    }

    /// Reads and splits a command-line file (normally `/proc/cmdline`).
    pub fn read(path: &Path) -> std::io::Result<Cmdline> {
        Ok(Cmdline::parse(&std::fs::read_to_string(path)?))
    }

    /// The kernel's parameters (`key=value` or `key`), in order.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// The arguments after `--`, passed to init.
    pub fn init_args(&self) -> &[String] {
        &self.init
    }

    /// The value of the last `key=value` parameter.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find_map(|a| a.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }

    /// Whether the parameter `arg` (a flag or `key=value`) is present exactly.
    pub fn contains(&self, arg: &str) -> bool {
        self.params.iter().any(|a| a == arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases where the two splitters (provision's, which honoured quotes anywhere, and
    /// deploy's `split_whitespace`) disagreed, as the kernel reads them.
    #[test]
    fn splits_like_the_kernel() {
        // (text, kernel parameters, init arguments)
        let table: &[(&str, &[&str], &[&str])] = &[
            ("", &[], &[]),
            ("  a b\n", &["a", "b"], &[]),
            ("foo=\"a b\" y", &["foo=a b", "y"], &[]),
            ("\"foo=a b\" y", &["foo=a b", "y"], &[]),
            ("\"flag\"", &["flag"], &[]),
            ("\"\" z", &["", "z"], &[]),
            ("foo=a\" \"b", &["foo=a\" \"b"], &[]),
            ("foo=\"a=b c\"", &["foo=a=b c"], &[]),
            ("foo=\"unterminated x", &["foo=unterminated x"], &[]),
            ("ro -- single x=1", &["ro"], &["single", "x=1"]),
            ("ro \"--\" a", &["ro"], &["a"]),
            ("--=1 a", &["--=1", "a"], &[]),
            ("a\tb\nc", &["a", "b", "c"], &[]),
        ];
        for (text, params, init) in table {
            let c = Cmdline::parse(text);
            assert_eq!(c.params(), *params, "{text:?}");
            assert_eq!(c.init_args(), *init, "{text:?}");
        }
    }

    #[test]
    fn words_keep_what_was_written() {
        assert_eq!(
            words(" ostree=/x foo=\"a b\"  \"k=v w\" -- z"),
            ["ostree=/x", "foo=\"a b\"", "\"k=v w\"", "--", "z"]
        );
        for (word, want) in [
            ("foo=\"a b\"", ("foo", Some("a b"))),
            ("\"foo=a b\"", ("foo", Some("a b"))),
            ("foo=", ("foo", Some(""))),
            ("foo", ("foo", None)),
            ("=x", ("=x", None)),
        ] {
            assert_eq!(param(word), want, "{word}");
        }
    }

    #[test]
    fn lookups_take_the_last_value_before_dashes() {
        let c = Cmdline::parse("ostree=/a ro ostree=\"/b\" -- ostree=/c quiet");
        assert_eq!(c.value("ostree"), Some("/b"));
        assert!(c.contains("ro"));
        assert!(!c.contains("quiet"));
        assert_eq!(c.value("nope"), None);
        let text = "ostree=/a ro ostree=\"/b\" -- ostree=/c quiet";
        assert_eq!(last_value(text, "ostree"), Some("/b"));
        assert_eq!(last_value("ro", "ro"), None);
        assert_eq!(kernel_params(text).count(), 3);
    }
}
