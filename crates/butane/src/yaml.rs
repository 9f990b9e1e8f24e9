//! YAML front end: turns a Butane document into the positioned tree that the Ignition decoder
//! reads. Plain scalars are resolved like go-yaml does for Butane (`0644` is octal, `true` a
//! bool, `~` null); quoted and block scalars are strings. Anchors and aliases are supported;
//! duplicate keys and multiple documents are errors.

use keel_ignition_config::tree::{Entry, Node, Pos, Value};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::{HashMap, HashSet};

/// Deeper nesting than this is refused.
const MAX_DEPTH: usize = 256;
/// Refuse alias expansion beyond this many nodes (a "billion laughs" document).
const MAX_NODES: usize = 1_000_000;

/// A YAML syntax or structure error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// A parsed document plus the positions of integers written in plain decimal (for the
/// "mode looks like it should be octal" warning).
pub struct Document {
    pub root: Node,
    pub plain_decimal_ints: HashSet<Pos>,
}

pub fn parse(text: &str) -> Result<Document, YamlError> {
    let mut events = Vec::new();
    for item in Parser::new_from_str(text) {
        match item {
            Ok(ev) => events.push(ev),
            Err(e) => {
                let m = e.marker();
                return Err(YamlError {
                    pos: Pos {
                        line: m.line(),
                        col: m.col() + 1,
                    },
                    message: format!("yaml: {}", e.info()),
                });
            }
        }
    }
    let mut b = Builder {
        events,
        i: 0,
        anchors: HashMap::new(),
        plain_decimal_ints: HashSet::new(),
        nodes: 0,
    };
    let root = b.document()?;
    Ok(Document {
        root,
        plain_decimal_ints: b.plain_decimal_ints,
    })
}

struct Builder<'a> {
    events: Vec<(Event<'a>, Span)>,
    i: usize,
    anchors: HashMap<usize, Node>,
    plain_decimal_ints: HashSet<Pos>,
    nodes: usize,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Option<(Event<'a>, Span)> {
        let ev = self.events.get(self.i).cloned();
        self.i += 1;
        ev
    }

    fn document(&mut self) -> Result<Node, YamlError> {
        let mut root = None;
        while let Some((ev, span)) = self.next() {
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) if root.is_some() => {
                    return Err(YamlError {
                        pos: pos_of(&span),
                        message: "expected a single YAML document, found several".into(),
                    });
                }
                Event::DocumentStart(_) => root = Some(self.node(0)?),
                _ => {
                    return Err(YamlError {
                        pos: pos_of(&span),
                        message: "unexpected YAML structure".into(),
                    })
                }
            }
        }
        Ok(root.unwrap_or(Node::new(Pos { line: 1, col: 1 }, Value::Null)))
    }

    fn node(&mut self, depth: usize) -> Result<Node, YamlError> {
        let Some((ev, span)) = self.next() else {
            return Err(YamlError {
                pos: Pos::default(),
                message: "unexpected end of YAML".into(),
            });
        };
        let pos = pos_of(&span);
        if depth > MAX_DEPTH {
            return Err(YamlError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                pos,
                message: "document expands to too many nodes (alias loop?)".into(),
            });
        }
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                (
                    Node::new(pos, self.scalar(&text, style, forced_str, pos)),
                    anchor,
                )
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                while !matches!(
                    self.events.get(self.i),
                    Some((Event::SequenceEnd, _)) | None
                ) {
                    items.push(self.node(depth + 1)?);
                }
                self.i += 1;
                (Node::new(pos, Value::Array(items)), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<Entry> = Vec::new();
                while !matches!(self.events.get(self.i), Some((Event::MappingEnd, _)) | None) {
                    let key_node = self.node(depth + 1)?;
                    let key = match key_node.value {
                        Value::String(s) | Value::Number(s) => s,
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".into(),
                        _ => {
                            return Err(YamlError {
                                pos: key_node.pos,
                                message: "mapping keys must be scalars".into(),
                            })
                        }
                    };
                    if let Some(prev) = entries.iter().find(|e| e.key == key) {
                        return Err(YamlError {
                            pos: key_node.pos,
                            message: format!(
                                "yaml: mapping key {key:?} already defined at line {}",
                                prev.key_pos.line
                            ),
                        });
                    }
                    let value = self.node(depth + 1)?;
                    entries.push(Entry {
                        key,
                        key_pos: key_node.pos,
                        value,
                    });
                }
                self.i += 1;
                (Node::new(pos, Value::Object(entries)), anchor)
            }
            Event::Alias(id) => {
                let target = self.anchors.get(&id).cloned().ok_or(YamlError {
                    pos,
                    message: "unknown anchor".into(),
                })?;
                self.nodes += count_nodes(&target);
                if self.nodes > MAX_NODES {
                    return Err(YamlError {
                        pos,
                        message: "document expands to too many nodes (alias loop?)".into(),
                    });
                }
                (target, 0)
            }
            _ => {
                return Err(YamlError {
                    pos,
                    message: "unexpected YAML structure".into(),
                })
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn scalar(&mut self, text: &str, style: ScalarStyle, forced_str: bool, pos: Pos) -> Value {
        if style != ScalarStyle::Plain || forced_str {
            return Value::String(text.to_string());
        }
        match text {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            _ => {}
        }
        if let Some(n) = parse_int(text) {
            if text.trim_start_matches(['+', '-']).len() == 1
                || !text.trim_start_matches(['+', '-']).starts_with('0')
            {
                self.plain_decimal_ints.insert(pos);
            }
            return Value::Number(n.to_string());
        }
        if is_float(text) {
            return Value::Number(text.to_string());
        }
        Value::String(text.to_string())
    }
}

fn count_nodes(n: &Node) -> usize {
    1 + match &n.value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(entries) => entries.iter().map(|e| count_nodes(&e.value)).sum(),
        _ => 0,
    }
}

/// Integers as go-yaml resolves them: decimal, `0o`/leading-`0` octal, `0x` hex, `0b` binary,
/// optional sign and `_` separators.
fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || (radix == 10 && digits.contains('_'))
    {
        return None;
    }
    let v = i64::from_str_radix(&digits.replace('_', ""), radix).ok()?;
    Some(if neg { -v } else { v })
}

fn is_float(text: &str) -> bool {
    let t = text.trim_start_matches(['+', '-']);
    let digits_ok = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && t.chars().any(|c| c.is_ascii_digit());
    digits_ok
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && t.parse::<f64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars() {
        let cases: &[(&str, Value)] = &[
            ("0644", Value::Number("420".into())),
            ("0o755", Value::Number("493".into())),
            ("420", Value::Number("420".into())),
            ("0x10", Value::Number("16".into())),
            ("-3", Value::Number("-3".into())),
            ("1.5", Value::Number("1.5".into())),
            ("'0644'", Value::String("0644".into())),
            ("true", Value::Bool(true)),
            ("~", Value::Null),
            ("hello world", Value::String("hello world".into())),
            ("!!str 12", Value::String("12".into())),
            ("|\n  a\n  b\n", Value::String("a\nb\n".into())),
            ("3.0.0", Value::String("3.0.0".into())),
        ];
        for (yaml, want) in cases {
            let doc = parse(&format!("k: {yaml}")).unwrap();
            assert_eq!(doc.root.get("k").unwrap().value, *want, "{yaml}");
        }
    }

    #[test]
    fn positions_anchors_and_errors() {
        let doc = parse("a: 1\nb:\n  - &x {c: 2}\n  - *x\n").unwrap();
        let b = doc.root.get("b").unwrap();
        let Value::Array(items) = &b.value else {
            panic!("not an array")
        };
        assert_eq!(items[0].value, items[1].value);
        assert_eq!(doc.root.get("a").unwrap().pos, Pos { line: 1, col: 4 });
        assert!(doc.plain_decimal_ints.contains(&Pos { line: 1, col: 4 }));
        let dup = parse("a: 1\na: 2\n").err().unwrap();
        assert_eq!(dup.pos.line, 2);
        assert!(parse("a: [1\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }
}
