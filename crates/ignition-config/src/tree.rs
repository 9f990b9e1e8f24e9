//! A positioned value tree: what the JSON parser (and Butane's YAML front end) produce and what
//! the typed decoder reads. Every node and every object key knows its line and column.

use std::fmt;

/// A 1-based line and column (columns count characters; a tab is one column).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    PartialOrd,
    Ord,
    serde::Serialize,
    schemars::JsonSchema,
)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} col {}", self.line, self.col)
    }
}

/// One value with the position that reports point at.
///
/// For strings, numbers, booleans and null that is where the value starts; for arrays and
/// objects it is just after the opening bracket, as Ignition reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// An object member: the key as written, where the key starts, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// The value of a [`Node`]. Numbers keep their source text so that `420.0` can be told apart
/// from `420`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Node>),
    Object(Vec<Entry>),
}

impl Value {
    /// The JSON type name used in messages (`number`, `string`, `array`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

impl Node {
    pub fn new(pos: Pos, value: Value) -> Self {
        Node { pos, value }
    }

    /// Looks up an object member by exact key (the last one wins, like Ignition).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(entries) => entries
                .iter()
                .rev()
                .find(|e| e.key == key)
                .map(|e| &e.value),
            _ => None,
        }
    }
}
