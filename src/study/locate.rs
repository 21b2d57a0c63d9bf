//! Where each value sits in the study file: a map from field path (`model.sizes[2].heads`)
//! to line and column, so that semantic errors found after parsing still point at the text.
//!
//! serde forgets positions once a value is deserialised; rather than wrapping every field in
//! a span type, we walk the YAML event stream once more and record the position of every node.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Positions of every node of a YAML document, by field path.
#[derive(Debug, Default)]
pub struct PositionMap {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, index: usize },
}

impl PositionMap {
    /// Record every node's position. A document the parser rejects yields a partial map
    /// (the deserialiser reports the syntax error itself).
    pub fn build(text: &str) -> Self {
        let mut map = PositionMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Mapping { path, key }) = stack.last_mut()
                        && key.is_none()
                    {
                        let child = join_key(path, &value);
                        map.keys.insert(child, pos);
                        *key = Some(value.into_owned());
                        continue;
                    }
                    if let Some(path) = next_child(&mut stack) {
                        map.values.insert(path, pos);
                    }
                }
                Event::Alias(_) => {
                    if let Some(path) = next_child(&mut stack) {
                        map.values.insert(path, pos);
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    let path = if stack.is_empty() {
                        Some(String::new())
                    } else {
                        next_child(&mut stack)
                    };
                    // A mapping used as a key has no path; track it under a placeholder.
                    let path = path.unwrap_or_else(|| "?".to_string());
                    map.values.insert(path.clone(), pos);
                    stack.push(if is_map {
                        Frame::Mapping { path, key: None }
                    } else {
                        Frame::Sequence { path, index: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    // The finished collection was the value of its parent's pending key.
                    if let Some(Frame::Mapping { key, .. }) = stack.last_mut() {
                        *key = None;
                    }
                }
                _ => {}
            }
        }
        map
    }

    /// Position of the value at `path`, or of the nearest enclosing value that exists
    /// (a missing key is reported at its parent mapping).
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some(pos) = self.values.get(current) {
                return Some(*pos);
            }
            if current.is_empty() {
                return None;
            }
            current = parent(current);
        }
    }

    /// Position of the key at `path` (for unknown-key messages), falling back to [`find`].
    ///
    /// [`find`]: PositionMap::find
    pub fn find_key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.find(path))
    }
}

/// The path of the next child of the innermost collection, advancing it.
fn next_child(stack: &mut [Frame]) -> Option<String> {
    match stack.last_mut()? {
        Frame::Mapping { path, key } => {
            // Value of the pending key; the key is cleared once the value is complete.
            let name = key.take()?;
            Some(join_key(path, &name))
        }
        Frame::Sequence { path, index } => {
            let child = format!("{path}[{index}]");
            *index += 1;
            Some(child)
        }
    }
}

fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
version: 1
model:
  context: 128
  sizes:
    - { layers: 2, d_model: 64, heads: 4 }
    - layers: 4
      d_model: 128
      heads: 3
tokens: [1e5, 2e5]
";

    #[test]
    fn finds_nested_values() {
        let map = PositionMap::build(DOC);
        assert_eq!(
            map.find("version"),
            Some(Position {
                line: 1,
                column: 10
            })
        );
        assert_eq!(
            map.find("model.context"),
            Some(Position {
                line: 3,
                column: 12
            })
        );
        assert_eq!(
            map.find("model.sizes[0].heads"),
            Some(Position {
                line: 5,
                column: 40
            })
        );
        assert_eq!(
            map.find("model.sizes[1].heads"),
            Some(Position {
                line: 8,
                column: 14
            })
        );
        assert_eq!(
            map.find("tokens[1]"),
            Some(Position {
                line: 9,
                column: 15
            })
        );
        assert_eq!(
            map.find_key("model.sizes[1].heads"),
            Some(Position { line: 8, column: 7 })
        );
    }

    #[test]
    fn missing_paths_fall_back_to_the_parent() {
        let map = PositionMap::build(DOC);
        assert_eq!(map.find("model.sizes[1].name"), map.find("model.sizes[1]"));
        assert_eq!(map.find("train.lr"), map.find(""));
    }
}
