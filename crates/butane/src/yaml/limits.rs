//! What a Butane document may cost to read: nesting depth, node count, the bytes that anchors
//! and aliases expand to, and the characters YAML allows. Every limit is checked before the
//! work it guards is done, so a hostile document fails fast with the limit and the place.

use super::YamlError;
use keel_ignition_config::tree::{Entry, Node, Pos};

/// Deeper nesting than this is refused.
pub(super) const MAX_DEPTH: usize = 256;
/// Refuse documents with more nodes than this, aliases counted at their expanded size.
pub(super) const MAX_NODES: usize = 1_000_000;
/// Refuse documents whose aliases, taken together, copy more than this many bytes of tree.
pub(super) const MAX_ALIAS_BYTES: usize = 16 << 20;

/// The memory a scalar node holding `text` takes in the tree.
pub(super) fn scalar_bytes(text: &str) -> usize {
    std::mem::size_of::<Node>() + text.len()
}

/// The memory a mapping entry takes beyond its value node.
pub(super) fn entry_bytes(key: &str) -> usize {
    std::mem::size_of::<Entry>() - std::mem::size_of::<Node>() + key.len()
}

/// The size of a subtree: its nodes and the memory they take.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cost {
    pub nodes: usize,
    pub bytes: usize,
}

impl Cost {
    pub fn add(&mut self, other: Cost) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// The running totals of a document being built.
#[derive(Debug, Default)]
pub(super) struct Budget {
    nodes: usize,
    alias_bytes: usize,
}

impl Budget {
    /// Accounts for one node read from the document.
    pub fn node(&mut self, pos: Pos) -> Result<(), YamlError> {
        self.nodes += 1;
        self.check_nodes(pos)
    }

    /// Accounts for an alias at `pos` to an anchor (defined at `anchor_pos`) of size `cost`,
    /// before the anchor's tree is copied.
    pub fn alias(&mut self, pos: Pos, anchor_pos: Pos, cost: Cost) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(cost.nodes);
        self.check_nodes(pos)?;
        self.alias_bytes = self.alias_bytes.saturating_add(cost.bytes);
        if self.alias_bytes > MAX_ALIAS_BYTES {
            return Err(YamlError {
                pos,
                message: format!(
                    "yaml: aliases expand to more than {} MiB (this alias copies {} bytes of the \
                     anchor at line {} col {}, {} bytes in all so far); repeat the content \
                     without anchors and aliases, or use fewer aliases",
                    MAX_ALIAS_BYTES >> 20,
                    cost.bytes,
                    anchor_pos.line,
                    anchor_pos.col,
                    self.alias_bytes
                ),
            });
        }
        Ok(())
    }

    fn check_nodes(&self, pos: Pos) -> Result<(), YamlError> {
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                pos,
                message: format!(
                    "yaml: the document has more than {MAX_NODES} nodes (aliases counted as \
                     copies of their anchors); split the config with `ignition.config.merge`"
                ),
            });
        }
        Ok(())
    }
}

/// Refuses characters that YAML does not allow in a stream (the same set go-yaml, and so
/// upstream Butane, refuses): C0 controls other than tab, LF and CR (NUL among them), DEL,
/// C1 controls other than NEL, and U+FFFE/U+FFFF. The scanner would otherwise take a NUL for
/// the end of the stream and silently drop the rest of the document.
pub(super) fn check_printable(text: &str) -> Result<(), YamlError> {
    let Some(at) = text.find(|c: char| !is_printable(c)) else {
        return Ok(());
    };
    let before = &text[..at];
    let line = 1 + before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = 1 + before[line_start..].chars().count();
    let code = text[at..].chars().next().map_or(0, u32::from);
    Err(YamlError {
        pos: Pos { line, col },
        message: format!(
            "yaml: control character U+{code:04X} is not allowed in a YAML document; remove it, \
             or write it as \"\\u{code:04X}\" inside a double-quoted string"
        ),
    })
}

fn is_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_characters() {
        for ok in ["a\tb\r\nc", "\u{feff}a: 1", "\u{85}", "é €", "\u{10ffff}"] {
            assert!(check_printable(ok).is_ok(), "{ok:?}");
        }
        for (bad, line, col, code) in [
            ("\0", 1, 1, "U+0000"),
            ("a: b\nc: é\u{7f}", 2, 5, "U+007F"),
            ("x\u{1b}", 1, 2, "U+001B"),
            ("\n\n  \u{9f}", 3, 3, "U+009F"),
            ("\u{fffe}", 1, 1, "U+FFFE"),
        ] {
            let e = check_printable(bad).unwrap_err();
            assert_eq!(e.pos, Pos { line, col }, "{bad:?}");
            assert!(e.message.contains(code), "{}", e.message);
        }
    }

    #[test]
    fn alias_budget_is_checked_before_copying() {
        let mut b = Budget::default();
        let at = Pos { line: 3, col: 4 };
        let anchor = Pos { line: 1, col: 1 };
        let half = Cost {
            nodes: 1,
            bytes: MAX_ALIAS_BYTES / 2,
        };
        assert!(b.alias(at, anchor, half).is_ok());
        assert!(b.alias(at, anchor, half).is_ok());
        let e = b
            .alias(at, anchor, Cost { nodes: 1, bytes: 1 })
            .unwrap_err();
        assert_eq!(e.pos, at);
        assert!(e.message.contains("more than 16 MiB"), "{}", e.message);
        assert!(
            e.message.contains("anchor at line 1 col 1"),
            "{}",
            e.message
        );
    }
}
