//! Where a setting is written in the config file. The positions come from a
//! JSON5 syntax tree (`jsonc-parser`, which gives every node its byte range
//! and reads every JSON5 extension), so a key is found by its path: a
//! `port:` inside `gateway.admin` is never taken for `gateway.port`, and text
//! in comments or strings is never taken for a key.

use std::collections::HashMap;

use jsonc_parser::ast::{ObjectProp, Value};
use jsonc_parser::common::Ranged;

/// Positions (1-based line and column, in characters) of every key and
/// array element of one config text, by dotted path (`gateway.port`,
/// `gateway.trustedProxies[1]`). Built once per text.
#[derive(Debug, Default)]
pub struct Positions {
    at: HashMap<String, (usize, usize)>,
}

impl Positions {
    /// Reads `text`. A text that does not parse, or nests deeper than the
    /// config limit, has no positions (its error is reported by the parse
    /// that loads it).
    pub fn of(text: &str) -> Positions {
        let mut offsets = Vec::new();
        if super::depth::check(text, super::depth::MAX_DEPTH).is_ok() {
            let options = jsonc_parser::ParseOptions {
                allow_missing_commas: false,
                ..Default::default()
            };
            if let Ok(parsed) = jsonc_parser::parse_to_ast(text, &Default::default(), &options) {
                if let Some(value) = &parsed.value {
                    walk(value, &mut String::new(), &mut offsets);
                }
            }
        }
        let lines = LineIndex::new(text);
        Positions {
            at: offsets
                .into_iter()
                .map(|(path, offset)| (path, lines.position(text, offset)))
                .collect(),
        }
    }

    /// The position of `path` (a key, or an array element as `key[i]`; an
    /// element not written as such, e.g. one split out of a comma list,
    /// falls back to its key).
    pub fn get(&self, path: &str) -> Option<(usize, usize)> {
        self.at.get(path).copied().or_else(|| {
            let base = path.split_once('[')?.0;
            self.at.get(base).copied()
        })
    }
}

/// Records the byte offset of every key (its name) and array element under
/// `prefix`. A repeated key keeps its last occurrence, the one the parse
/// keeps. Recursion is bounded by the depth check.
fn walk(v: &Value, prefix: &mut String, out: &mut Vec<(String, usize)>) {
    match v {
        Value::Object(o) => {
            for p in &o.properties {
                let len = prefix.len();
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(&prop_name(p));
                out.push((prefix.clone(), p.range.start));
                walk(&p.value, prefix, out);
                prefix.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, e) in a.elements.iter().enumerate() {
                let len = prefix.len();
                prefix.push_str(&format!("[{i}]"));
                out.push((prefix.clone(), e.start()));
                walk(e, prefix, out);
                prefix.truncate(len);
            }
        }
        _ => {}
    }
}

fn prop_name(p: &ObjectProp) -> String {
    p.name.as_str().to_string()
}

/// Byte offsets of line starts, for offset → (line, column).
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    fn position(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.0.partition_point(|&s| s <= offset);
        let start = self.0[line - 1];
        let column = text.get(start..offset).map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sections_with_repeated_key_names() {
        // the issue's own example: gateway.port and gateway.bind come after
        // gateway.admin's port and bind
        let text = "{\n  gateway: {\n    admin: { port: 18788, bind: \"127.0.0.1\" },\n    port: \"eighteen\",\n    bind: \"loopbak\",\n  },\n}\n";
        let p = Positions::of(text);
        assert_eq!(p.get("gateway.admin.port"), Some((3, 14)));
        assert_eq!(p.get("gateway.admin.bind"), Some((3, 27)));
        assert_eq!(p.get("gateway.port"), Some((4, 5)));
        assert_eq!(p.get("gateway.bind"), Some((5, 5)));
    }

    #[test]
    fn comments_and_strings_are_not_keys() {
        let text = "{\n  // port: 1 is the old setting\n  /* gateway: { port: 2 } */\n  note: 'port: 3',\n  gateway: {\n    'port': 4,\n  },\n}\n";
        let p = Positions::of(text);
        assert_eq!(p.get("gateway.port"), Some((6, 5)));
        assert_eq!(p.get("gateway"), Some((5, 3)));
        assert_eq!(p.get("port"), None);
    }

    #[test]
    fn array_elements_quoted_keys_and_json5_extensions() {
        let text = "{\n  \"gateway\": {\n    trustedProxies: [\n      '10.0.0.0/8',\n      \"bad\",\n    ],\n    limits: { maxPayload: 0x10, handshakeTimeoutMs: +5., x: Infinity },\n  },\n}\n";
        let p = Positions::of(text);
        assert_eq!(p.get("gateway.trustedProxies[1]"), Some((5, 7)));
        assert_eq!(p.get("gateway.limits.handshakeTimeoutMs"), Some((7, 33)));
        assert_eq!(p.get("gateway.limits.x"), Some((7, 58)));
    }

    #[test]
    fn the_last_of_a_repeated_key_wins_and_columns_count_characters() {
        let text = "{ gateway: { port: 1, port: 2 }, ünïcode: { port: 3 } }";
        let p = Positions::of(text);
        assert_eq!(p.get("gateway.port"), Some((1, 23)));
        assert_eq!(p.get("ünïcode.port"), Some((1, 45)));
    }

    #[test]
    fn broken_or_too_deep_text_has_no_positions() {
        let broken = Positions::of("{ gateway: { port: 1,, } }");
        assert_eq!(broken.get("gateway.port"), None);
        let deep = format!("{{a:{}1{}}}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(Positions::of(&deep).get("a"), None);
    }
}
