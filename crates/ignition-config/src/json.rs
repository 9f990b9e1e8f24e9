//! A small JSON parser that keeps the line and column of every value and key.
//!
//! Error messages follow Go's `encoding/json` wording (which `ignition-validate` prints), so a
//! person sees the same text from both tools.

use crate::tree::{Entry, Node, Pos, Value};
use std::cell::Cell;

/// Nesting deeper than this is refused instead of recursing further.
const MAX_DEPTH: usize = 512;

/// Why the input is not JSON, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one JSON document. Input that is not UTF-8 is refused at the first bad byte.
pub fn parse(input: &[u8]) -> Result<Node, SyntaxError> {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            let valid = &input[..e.valid_up_to()];
            let pos = Parser::new(valid).pos_at(valid.len());
            return Err(SyntaxError {
                pos,
                message: format!(
                    "input is not valid UTF-8 (byte 0x{:02x} at offset {}); save the file as UTF-8",
                    input[e.valid_up_to()],
                    e.valid_up_to()
                ),
            });
        }
    };
    let mut p = Parser::new(text.as_bytes());
    p.skip_ws();
    if p.i == p.s.len() {
        return Err(p.error_at(p.i, "unexpected end of JSON input".into()));
    }
    let node = p.value(0)?;
    p.skip_ws();
    if p.i < p.s.len() {
        return Err(p.unexpected("after top-level value"));
    }
    Ok(node)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// The last position computed, with its byte offset.
    last_pos: Cell<(usize, Pos)>,
}

impl<'a> Parser<'a> {
    fn new(s: &'a [u8]) -> Self {
        Parser {
            s,
            i: 0,
            last_pos: Cell::new((0, Pos { line: 1, col: 1 })),
        }
    }

    /// Position of byte offset `at`. Positions are asked for in increasing order, so scanning
    /// on from the previous answer keeps this linear in the input size.
    fn pos_at(&self, at: usize) -> Pos {
        let (mut from, mut pos) = self.last_pos.get();
        if at < from {
            (from, pos) = (0, Pos { line: 1, col: 1 });
        }
        for b in &self.s[from..at] {
            if *b == b'\n' {
                pos = Pos {
                    line: pos.line + 1,
                    col: 1,
                };
            } else if (*b & 0xC0) != 0x80 {
                pos.col += 1;
            }
        }
        self.last_pos.set((at, pos));
        pos
    }

    fn error_at(&self, at: usize, message: String) -> SyntaxError {
        SyntaxError {
            pos: self.pos_at(at.min(self.s.len())),
            message,
        }
    }

    fn unexpected(&self, context: &str) -> SyntaxError {
        match self.peek_char() {
            None => self.error_at(self.i, "unexpected end of JSON input".into()),
            Some(c) => self.error_at(
                self.i,
                format!("invalid character {} {context}", quote_char(c)),
            ),
        }
    }

    fn peek_char(&self) -> Option<char> {
        std::str::from_utf8(&self.s[self.i..]).ok()?.chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(&b) = self.s.get(self.i) {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                _ => break,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error_at(self.i, format!("exceeded max depth of {MAX_DEPTH}")));
        }
        let start = self.i;
        match self.s.get(self.i) {
            None => Err(self.error_at(self.i, "unexpected end of JSON input".into())),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => {
                let pos = self.pos_at(start);
                let s = self.string()?;
                Ok(Node::new(pos, Value::String(s)))
            }
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.unexpected("looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Node, SyntaxError> {
        let pos = self.pos_at(self.i);
        for expected in word.bytes() {
            match self.s.get(self.i) {
                Some(&b) if b == expected => self.i += 1,
                Some(_) => {
                    return Err(self.unexpected(&format!(
                        "in literal {word} (expecting '{}')",
                        expected as char
                    )))
                }
                None => return Err(self.error_at(self.i, "unexpected end of JSON input".into())),
            }
        }
        Ok(Node::new(pos, value))
    }

    fn number(&mut self) -> Result<Node, SyntaxError> {
        let start = self.i;
        let pos = self.pos_at(start);
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.unexpected("in numeric literal")),
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !matches!(self.s.get(self.i), Some(b'0'..=b'9')) {
                return Err(self.unexpected("after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.s.get(self.i), Some(b'0'..=b'9')) {
                return Err(self.unexpected("in exponent of numeric literal"));
            }
            self.digits();
        }
        let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        Ok(Node::new(pos, Value::Number(text)))
    }

    fn digits(&mut self) {
        while matches!(self.s.get(self.i), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.i;
            while let Some(&b) = self.s.get(self.i) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[run_start..self.i]).unwrap_or_default());
            match self.s.get(self.i) {
                None => return Err(self.error_at(self.i, "unexpected end of JSON input".into())),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(_) => return Err(self.unexpected("in string literal")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, SyntaxError> {
        let b = match self.s.get(self.i) {
            None => return Err(self.error_at(self.i, "unexpected end of JSON input".into())),
            Some(b) => *b,
        };
        let simple = match b {
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'/' => Some('/'),
            b'b' => Some('\u{8}'),
            b'f' => Some('\u{c}'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'u' => None,
            _ => return Err(self.unexpected("in string escape code")),
        };
        self.i += 1;
        if let Some(c) = simple {
            return Ok(c);
        }
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi)
            && self.s.get(self.i) == Some(&b'\\')
            && self.s.get(self.i + 1) == Some(&b'u')
        {
            let save = self.i;
            self.i += 2;
            let lo = self.hex4()?;
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.i = save;
        }
        Ok(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.s.get(self.i) {
                None => return Err(self.error_at(self.i, "unexpected end of JSON input".into())),
                Some(b) => (*b as char).to_digit(16),
            };
            match d {
                Some(d) => v = v * 16 + d,
                None => return Err(self.unexpected("in \\u hexadecimal character escape")),
            }
            self.i += 1;
        }
        Ok(v)
    }

    fn array(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.i += 1;
        let pos = self.pos_at(self.i);
        let mut items = Vec::new();
        self.skip_ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Node::new(pos, Value::Array(items)));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Node::new(pos, Value::Array(items)));
                }
                _ => return Err(self.unexpected("after array element")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.i += 1;
        let pos = self.pos_at(self.i);
        let mut entries = Vec::new();
        self.skip_ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Node::new(pos, Value::Object(entries)));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.unexpected("looking for beginning of object key string"));
            }
            let key_pos = self.pos_at(self.i);
            let key = self.string()?;
            self.skip_ws();
            if self.s.get(self.i) != Some(&b':') {
                return Err(self.unexpected("after object key"));
            }
            self.i += 1;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            entries.push(Entry {
                key,
                key_pos,
                value,
            });
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Node::new(pos, Value::Object(entries)));
                }
                _ => return Err(self.unexpected("after object key:value pair")),
            }
        }
    }
}

fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '"' => "'\"'".into(),
        c if (c as u32) < 0x20 => format!("'\\x{:02x}'", c as u32),
        '\u{feff}' => "U+FEFF (a byte order mark; save the file as UTF-8 without BOM)".into(),
        c if c.is_whitespace() || c.is_control() => format!("U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_errors() {
        type Want = Result<(usize, usize), (&'static str, usize, usize)>;
        let cases: &[(&str, Want)] = &[
            (r#"{"a": 1}"#, Ok((1, 2))),
            ("\n  [1]", Ok((2, 4))),
            (
                r#"{"a": 1,}"#,
                Err((
                    "invalid character '}' looking for beginning of object key string",
                    1,
                    9,
                )),
            ),
            (
                r#"{"a": 1} x"#,
                Err(("invalid character 'x' after top-level value", 1, 10)),
            ),
            ("", Err(("unexpected end of JSON input", 1, 1))),
            (
                r#"{"a": tru}"#,
                Err((
                    "invalid character '}' in literal true (expecting 'e')",
                    1,
                    10,
                )),
            ),
            (
                r#"["é", x]"#,
                Err(("invalid character 'x' looking for beginning of value", 1, 7)),
            ),
            (
                r#"[01]"#,
                Err(("invalid character '1' after array element", 1, 3)),
            ),
            (
                "[\"a\nb\"]",
                Err(("invalid character '\\x0a' in string literal", 1, 4)),
            ),
        ];
        for (input, want) in cases {
            let got = parse(input.as_bytes())
                .map(|n| (n.pos.line, n.pos.col))
                .map_err(|e| (e.message, e.pos.line, e.pos.col));
            let want = want.map_err(|(m, l, c)| (m.to_string(), l, c));
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn values_and_escapes() {
        let n = parse(br#"{"s": "a\u00e9\n\ud83d\ude00", "n": -1.5e3, "b": [true, false, null]}"#)
            .unwrap();
        assert_eq!(
            n.get("s").unwrap().value,
            Value::String("a\u{e9}\n\u{1F600}".into())
        );
        assert_eq!(n.get("n").unwrap().value, Value::Number("-1.5e3".into()));
        assert_eq!(n.get("b").unwrap().pos, Pos { line: 1, col: 51 });
    }

    #[test]
    fn non_utf8_is_refused_with_position() {
        let e = parse(b"{\"a\":\n \"\xff\"}").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (2, 3));
        assert!(e.message.contains("not valid UTF-8"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(MAX_DEPTH + 10);
        assert!(parse(deep.as_bytes())
            .unwrap_err()
            .message
            .contains("max depth"));
    }
}
