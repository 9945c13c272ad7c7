//! Located YAML: a small document tree in which every node keeps the line
//! and column it came from, plus the scalar rules Envoy's own YAML reader
//! applies. The YAML emitter for output is in `emit`.
//!
//! Envoy turns YAML into JSON before the protobuf JSON parser sees it, so a
//! plain `123` or `yes` is a number or a bool, never a string. [`Scalar`]
//! keeps the raw text and style so the decoder can apply exactly those rules
//! for the field it fills.

mod emit;

pub use emit::to_yaml;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;
use std::fmt;

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1.
    pub col: u32,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One node of a YAML document with its source position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where the node starts.
    pub mark: Mark,
}

/// The three shapes a YAML node can take.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// A scalar, uninterpreted.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order (duplicate keys are kept for the decoder to report).
    Map(Vec<(Node, Node)>),
}

/// A scalar's text and whether it was quoted (quoted scalars are always strings).
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The scalar's text after YAML unescaping.
    pub text: String,
    /// True for plain (unquoted, non-block) scalars.
    pub plain: bool,
}

/// What a scalar means to Envoy's YAML reader (yaml-cpp, then JSON).
#[derive(Clone, Debug, PartialEq)]
pub enum ScalarValue<'a> {
    /// `~`, `null`, empty.
    Null,
    /// yaml-cpp booleans: `true`, `yes`, `on`, `y` and their negatives, any of three casings.
    Bool(bool),
    /// An integer that fits in 32 bits (decimal, `0x` hex or `0o` octal).
    Int(i64),
    /// Everything else, including floats and 64-bit integers, as text.
    Str(&'a str),
}

impl Scalar {
    /// Interprets the scalar as Envoy's YAML loader does.
    pub fn value(&self) -> ScalarValue<'_> {
        if !self.plain {
            return ScalarValue::Str(&self.text);
        }
        let t = self.text.as_str();
        if matches!(t, "" | "~" | "null" | "Null" | "NULL") {
            return ScalarValue::Null;
        }
        if let Some(b) = yaml_cpp_bool(t) {
            return ScalarValue::Bool(b);
        }
        match parse_yaml_int(t) {
            Some(i) if i32::try_from(i).is_ok() => ScalarValue::Int(i),
            _ => ScalarValue::Str(t),
        }
    }

    /// True when the text is an integer spelled in hex or octal.
    pub fn is_non_decimal_int(&self) -> bool {
        let t = self.text.trim_start_matches(['+', '-']);
        self.plain
            && (t.starts_with("0x") || t.starts_with("0o"))
            && parse_yaml_int(&self.text).is_some()
    }
}

fn yaml_cpp_bool(t: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["y", "yes", "true", "on"];
    const FALSE: [&str; 4] = ["n", "no", "false", "off"];
    let lower = t.to_ascii_lowercase();
    let casing_ok = t == lower || t == t.to_ascii_uppercase() || {
        let mut c = t.chars();
        c.next().is_some_and(|f| f.is_ascii_uppercase()) && c.as_str() == &lower[1..]
    };
    if !casing_ok {
        return None;
    }
    if TRUE.contains(&lower.as_str()) {
        Some(true)
    } else if FALSE.contains(&lower.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// Parses an integer the way yaml-cpp does: optional sign, then decimal, `0x` hex or `0o` octal.
pub fn parse_yaml_int(t: &str) -> Option<i64> {
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let magnitude = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -magnitude } else { magnitude })
}

impl Node {
    /// The scalar, when the node is one.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Appends the text of every scalar value below this node (map keys,
    /// which name fields, are not values).
    pub fn scalar_texts(&self, out: &mut Vec<String>) {
        match &self.kind {
            NodeKind::Scalar(s) => out.push(s.text.clone()),
            NodeKind::Seq(items) => items.iter().for_each(|item| item.scalar_texts(out)),
            NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| v.scalar_texts(out)),
        }
    }

    /// The scalar text when the node is a scalar that reads as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self.as_scalar()?.value() {
            ScalarValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, when the node is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value of the first entry whose key text is `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The first `(key, value)` entry whose key text is `key`.
    pub fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
    }

    /// True for an empty document or an explicit null.
    pub fn is_null(&self) -> bool {
        self.as_scalar()
            .is_some_and(|s| s.value() == ScalarValue::Null)
    }

    /// A short description of the node's shape, for error messages.
    pub fn shape(&self) -> &'static str {
        match &self.kind {
            NodeKind::Map(_) => "a mapping",
            NodeKind::Seq(_) => "a list",
            NodeKind::Scalar(s) => match s.value() {
                ScalarValue::Null => "null",
                ScalarValue::Bool(_) => "a bool",
                ScalarValue::Int(_) => "a number",
                ScalarValue::Str(_) => "a string",
            },
        }
    }
}

impl Node {
    /// The JSON value Envoy's YAML reader makes of this node.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar(s) => match s.value() {
                ScalarValue::Null => Value::Null,
                ScalarValue::Bool(b) => Value::Bool(b),
                ScalarValue::Int(i) => Value::from(i),
                ScalarValue::Str(t) => Value::String(t.to_string()),
            },
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_scalar().map_or_else(String::new, |s| s.text.clone()),
                            v.to_json(),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

/// A YAML syntax error or a document that exceeds the loader's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// Where the problem is.
    pub mark: Mark,
    /// What it is.
    pub message: String,
}

/// NestingLimits that keep a hostile file from exhausting memory or stack.
#[derive(Clone, Copy, Debug)]
pub struct NestingLimits {
    /// Maximum nesting of mappings and sequences.
    pub max_depth: usize,
    /// Maximum number of nodes in one file, counting alias expansions.
    pub max_nodes: usize,
}

impl Default for NestingLimits {
    fn default() -> Self {
        // Envoy's own protobuf parser stops at a depth of 100; aliases are
        // expanded, so the node budget is what stops a "billion laughs".
        NestingLimits {
            max_depth: 100,
            max_nodes: 2_000_000,
        }
    }
}

/// Parses every document of a YAML (or JSON) text. Empty documents come back as null nodes.
pub fn parse_documents(text: &str, limits: NestingLimits) -> Result<Vec<Node>, YamlError> {
    parse_documents_at(text, limits, 1)
}

/// [`parse_documents`] of a part of a file that starts on line `first_line`:
/// every mark is that file's line and column.
pub fn parse_documents_at(
    text: &str,
    limits: NestingLimits,
    first_line: u32,
) -> Result<Vec<Node>, YamlError> {
    let mut builder = TreeBuilder {
        limits,
        lines_before: first_line.saturating_sub(1),
        ..TreeBuilder::default()
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| YamlError {
            mark: mark_of(*e.marker(), builder.lines_before),
            message: e.info().to_string(),
        })?;
        builder.push(event, span)?;
    }
    Ok(builder.documents)
}

/// Where the documents of a file start, split at `---` lines, so that each
/// can be parsed (and its result kept) on its own: `(first line, text)`.
/// The whole text is one part when it has directives or `...` end markers,
/// whose meaning spans documents.
pub fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let mut parts = Vec::new();
    let (mut start, mut start_line, mut line) = (0, 1u32, 1u32);
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        if raw.starts_with('%') || raw.starts_with("...") {
            return vec![(1, text)];
        }
        let marker = raw
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']));
        if marker && offset > start {
            parts.push((start_line, &text[start..offset]));
            (start, start_line) = (offset, line);
        }
        offset += raw.len();
        line = line.saturating_add(1);
    }
    if offset > start || parts.is_empty() {
        parts.push((start_line, &text[start..]));
    }
    parts
}

fn mark_of(m: saphyr_parser::Marker, lines_before: u32) -> Mark {
    let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Mark {
        line: clamp(m.line()).saturating_add(lines_before),
        col: clamp(m.col() + 1),
    }
}

enum Frame {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

#[derive(Default)]
struct TreeBuilder {
    limits: NestingLimits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    documents: Vec<Node>,
    documents_before: usize,
    /// Lines of the file before the text being parsed.
    lines_before: u32,
    nodes: usize,
}

impl TreeBuilder {
    fn push(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let mark = mark_of(span.start, self.lines_before);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                let node = Node {
                    kind: NodeKind::Scalar(Scalar {
                        text: text.into_owned(),
                        plain,
                    }),
                    mark,
                };
                self.finish(node, anchor, 1)
            }
            Event::SequenceStart(anchor, _) => {
                self.open(mark)?;
                self.stack.push(Frame::Seq(
                    Node {
                        kind: NodeKind::Seq(Vec::new()),
                        mark,
                    },
                    anchor,
                ));
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.open(mark)?;
                self.stack.push(Frame::Map(
                    Node {
                        kind: NodeKind::Map(Vec::new()),
                        mark,
                    },
                    anchor,
                    None,
                ));
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(node, anchor)) | Some(Frame::Map(node, anchor, None)) => {
                    self.finish(node, anchor, 1)
                }
                _ => Err(YamlError {
                    mark,
                    message: "unbalanced YAML structure".into(),
                }),
            },
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id).cloned() else {
                    return Err(YamlError {
                        mark,
                        message: "alias refers to an unknown anchor".into(),
                    });
                };
                let mut node = node;
                node.mark = mark;
                self.finish(node, 0, size)
            }
            Event::DocumentStart(_) => {
                self.anchors.clear();
                self.documents_before = self.documents.len();
                Ok(())
            }
            Event::DocumentEnd => {
                if self.documents.len() == self.documents_before {
                    // A document with no content at all.
                    self.documents.push(Node {
                        kind: NodeKind::Scalar(Scalar {
                            text: String::new(),
                            plain: true,
                        }),
                        mark,
                    });
                }
                Ok(())
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => Ok(()),
        }
    }

    fn open(&self, mark: Mark) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(YamlError {
                mark,
                message: format!("nesting deeper than {} levels", self.limits.max_depth),
            });
        }
        Ok(())
    }

    /// Attaches a completed node to its parent (or ends the document),
    /// charging `size` nodes against the budget.
    fn finish(&mut self, node: Node, anchor: usize, size: usize) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(size);
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError {
                mark: node.mark,
                message: format!(
                    "document expands to more than {} nodes (alias bomb?)",
                    self.limits.max_nodes
                ),
            });
        }
        if anchor != 0 {
            let subtree = count_nodes(&node);
            self.anchors.insert(anchor, (node.clone(), subtree));
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq(seq, _)) => {
                if let NodeKind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let NodeKind::Map(entries) = &mut map.kind {
                        entries.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar(_) => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

/// Equal documents, but for where an empty block scalar (`key: |` with no
/// content) is placed: the parser puts it where it stopped looking for
/// content, which is the next document marker when a file is parsed whole
/// and the end of the part when it is split. Either is a place on that value.
#[cfg(test)]
pub(crate) fn same_documents(a: &[Node], b: &[Node]) -> bool {
    fn same(a: &Node, b: &Node) -> bool {
        let empty_block =
            |n: &Node| matches!(&n.kind, NodeKind::Scalar(s) if s.text.is_empty() && !s.plain);
        if !(a.mark == b.mark || empty_block(a) && empty_block(b)) {
            return false;
        }
        match (&a.kind, &b.kind) {
            (NodeKind::Scalar(x), NodeKind::Scalar(y)) => x == y,
            (NodeKind::Seq(x), NodeKind::Seq(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (NodeKind::Map(x), NodeKind::Map(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
            }
            _ => false,
        }
    }
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
}

#[cfg(test)]
mod tests;
