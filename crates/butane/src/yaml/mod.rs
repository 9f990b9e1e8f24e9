//! YAML front end: turns a Butane document into the positioned tree that the Ignition decoder
//! reads. Plain scalars are resolved like go-yaml does for Butane (`scalar`); anchors and
//! aliases are supported within the bounds of `limits`; duplicate keys and multiple documents
//! are errors.

mod limits;
mod scalar;

use keel_ignition_config::tree::{Entry, Node, Pos, Value};
use limits::{Budget, Cost, MAX_DEPTH};
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput};
use std::collections::{HashMap, HashSet};

/// A YAML syntax or structure error, or a limit the document exceeds.
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
    limits::check_printable(text)?;
    let mut b = Builder {
        events: Parser::new_from_str(text),
        peeked: None,
        anchors: HashMap::new(),
        plain_decimal_ints: HashSet::new(),
        budget: Budget::default(),
    };
    let root = b.document()?;
    Ok(Document {
        root,
        plain_decimal_ints: b.plain_decimal_ints,
    })
}

fn scan_error(e: &ScanError) -> YamlError {
    let m = e.marker();
    YamlError {
        pos: Pos {
            line: m.line(),
            col: m.col() + 1,
        },
        message: scan_error_message(e.info()),
    }
}

/// The parser's message, with what to do when it is the parser's nesting limit.
fn scan_error_message(info: &str) -> String {
    if info == "recursion limit exceeded" {
        "yaml: flow collections (`[...]`, `{...}`) nested deeper than 255 levels; flatten the \
         document"
            .into()
    } else {
        format!("yaml: {info}")
    }
}

/// An anchored subtree, where it was defined and what a copy of it costs.
struct Anchor {
    node: Node,
    pos: Pos,
    cost: Cost,
}

/// Builds the tree from the parser's events as they come (they are not collected first).
struct Builder<'a> {
    events: Parser<'a, StrInput<'a>>,
    peeked: Option<(Event<'a>, Span)>,
    anchors: HashMap<usize, Anchor>,
    plain_decimal_ints: HashSet<Pos>,
    budget: Budget,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<Option<(Event<'a>, Span)>, YamlError> {
        match self.peeked.take() {
            Some(ev) => Ok(Some(ev)),
            None => self.events.next().transpose().map_err(|e| scan_error(&e)),
        }
    }

    /// Whether the next event closes the current collection (or the events ran out); a
    /// closing event is consumed.
    fn at_end_of_collection(&mut self) -> Result<bool, YamlError> {
        let Some(ev) = self.next()? else {
            return Ok(true);
        };
        if matches!(ev.0, Event::SequenceEnd | Event::MappingEnd) {
            return Ok(true);
        }
        self.peeked = Some(ev);
        Ok(false)
    }

    fn document(&mut self) -> Result<Node, YamlError> {
        let mut root = None;
        while let Some((ev, span)) = self.next()? {
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) if root.is_some() => {
                    return Err(YamlError {
                        pos: pos_of(&span),
                        message: "expected a single YAML document, found several".into(),
                    });
                }
                Event::DocumentStart(_) => root = Some(self.node(0)?.0),
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

    /// Builds the next node and returns it with its cost.
    fn node(&mut self, depth: usize) -> Result<(Node, Cost), YamlError> {
        let Some((ev, span)) = self.next()? else {
            return Err(YamlError {
                pos: Pos::default(),
                message: "unexpected end of YAML".into(),
            });
        };
        let pos = pos_of(&span);
        if depth > MAX_DEPTH {
            return Err(YamlError {
                pos,
                message: format!(
                    "yaml: nesting deeper than {MAX_DEPTH} levels; flatten the document"
                ),
            });
        }
        if let Event::Alias(id) = ev {
            return self.alias(id, pos);
        }
        self.budget.node(pos)?;
        let (node, cost, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let (value, decimal) =
                    scalar::resolve(&text, style != ScalarStyle::Plain || forced_str);
                if decimal {
                    self.plain_decimal_ints.insert(pos);
                }
                let cost = Cost {
                    nodes: 1,
                    bytes: limits::scalar_bytes(&text),
                };
                (Node::new(pos, value), cost, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let (items, cost) = self.sequence(depth)?;
                (Node::new(pos, Value::Array(items)), cost, anchor)
            }
            Event::MappingStart(anchor, _) => {
                let (entries, cost) = self.mapping(depth)?;
                (Node::new(pos, Value::Object(entries)), cost, anchor)
            }
            _ => {
                return Err(YamlError {
                    pos,
                    message: "unexpected YAML structure".into(),
                })
            }
        };
        if anchor != 0 {
            let anchored = Anchor {
                node: node.clone(),
                pos,
                cost,
            };
            self.anchors.insert(anchor, anchored);
        }
        Ok((node, cost))
    }

    /// A copy of an anchored subtree, once the budget allows for it.
    fn alias(&mut self, id: usize, pos: Pos) -> Result<(Node, Cost), YamlError> {
        let Some(anchor) = self.anchors.get(&id) else {
            return Err(YamlError {
                pos,
                message: "yaml: alias of an anchor that is not complete yet (an anchor \
                          cannot refer to itself)"
                    .into(),
            });
        };
        self.budget.alias(pos, anchor.pos, anchor.cost)?;
        Ok((anchor.node.clone(), anchor.cost))
    }

    fn sequence(&mut self, depth: usize) -> Result<(Vec<Node>, Cost), YamlError> {
        let mut items = Vec::new();
        let mut cost = Cost {
            nodes: 1,
            bytes: std::mem::size_of::<Node>(),
        };
        while !self.at_end_of_collection()? {
            let (item, c) = self.node(depth + 1)?;
            cost.add(c);
            items.push(item);
        }
        Ok((items, cost))
    }

    /// Reads a mapping's entries; duplicate keys are found with a hash set so that a mapping
    /// with many keys is read in linear time.
    fn mapping(&mut self, depth: usize) -> Result<(Vec<Entry>, Cost), YamlError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut cost = Cost {
            nodes: 1,
            bytes: std::mem::size_of::<Node>(),
        };
        while !self.at_end_of_collection()? {
            let (key_node, _) = self.node(depth + 1)?;
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
            if let Some(line) = seen.get(&key) {
                return Err(YamlError {
                    pos: key_node.pos,
                    message: format!("yaml: mapping key {key:?} already defined at line {line}"),
                });
            }
            seen.insert(key.clone(), key_node.pos.line);
            let (value, c) = self.node(depth + 1)?;
            cost.add(c);
            cost.add(Cost {
                nodes: 0,
                bytes: limits::entry_bytes(&key),
            });
            entries.push(Entry {
                key,
                key_pos: key_node.pos,
                value,
            });
        }
        Ok((entries, cost))
    }
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
