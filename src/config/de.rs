//! The recovering deserializer: every unknown key and every value of the
//! wrong type (or outside a closed set) reported at once. serde stops at
//! the first problem, so each one found is taken out of the parsed
//! document and the rest deserialized again.

use serde_path_to_error::Segment;
use toml::de::{DeTable, DeValue};

use super::ConfigIssue;
use super::raw::Raw;

/// At most this many rounds (one problem each).
const MAX_ROUNDS: usize = 64;

/// What could be read, the problems, and the keys taken out (a required
/// key taken out is not reported again as missing).
pub(super) struct Structure {
    pub(super) raw: Option<Raw>,
    pub(super) issues: Vec<ConfigIssue>,
    pub(super) removed: Vec<String>,
}

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

pub(super) fn deserialize(text: &str) -> Structure {
    let mut doc = match DeTable::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let at = e.span().map(|s| crate::error::line_column(text, s.start));
            let issue = ConfigIssue {
                key: String::new(),
                line: at.map(|(l, _)| l),
                column: at.map(|(_, c)| c),
                message: format!("syntax error: {}", e.message().trim_end()),
                snippet: at.map(|(l, c)| crate::error::caret_snippet(text, l, c)),
            };
            return Structure {
                raw: None,
                issues: vec![issue],
                removed: Vec::new(),
            };
        }
    };
    let mut issues: Vec<ConfigIssue> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let de = toml::Deserializer::from(doc.clone());
        let e = match serde_path_to_error::deserialize::<_, Raw>(de) {
            Ok(raw) => {
                return Structure {
                    raw: Some(raw),
                    issues,
                    removed,
                };
            }
            Err(e) => e,
        };
        let path: Vec<Segment> = e
            .path()
            .iter()
            .filter(|s| !is_span_wrapper(s))
            .cloned()
            .collect();
        let key = path_key(&path);
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            let full = if key == "." {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
            if removed.contains(&full) {
                break;
            }
        }
        issues.push(ConfigIssue {
            key: if key == "." {
                "(top level)".into()
            } else {
                key.clone()
            },
            line: inner.span().map(|s| line_of(text, s.start)),
            column: None,
            message,
            snippet: None,
        });
        if !remove_at(doc.get_mut(), &path) {
            break;
        }
        removed.push(key);
    }
    Structure {
        raw: None,
        issues,
        removed,
    }
}

/// `Spanned<T>` fields show up in serde paths as a private key of their own.
fn is_span_wrapper(s: &Segment) -> bool {
    matches!(s, Segment::Map { key } if key.starts_with("$__serde_spanned"))
}

/// `sinks[1].template`, or `.` for the top level. An element of a list of
/// values is reported as the list (`sinks[2].changes`).
fn path_key(path: &[Segment]) -> String {
    let path = match path.split_last() {
        Some((Segment::Seq { .. }, rest)) if !rest.is_empty() => rest,
        _ => path,
    };
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

/// Take the value at `path` out of a parsed document; false when the path
/// does not lead to a key or a list element.
fn remove_at(table: &mut DeTable<'_>, path: &[Segment]) -> bool {
    let Some((Segment::Map { key }, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(key.as_str()).is_some();
    }
    table
        .get_mut(key.as_str())
        .is_some_and(|v| remove_in(v.get_mut(), rest))
}

fn remove_in(value: &mut DeValue<'_>, path: &[Segment]) -> bool {
    match (value, path.split_first()) {
        (DeValue::Table(t), Some((Segment::Map { .. }, _))) => remove_at(t, path),
        (DeValue::Array(a), Some((Segment::Seq { index }, rest))) => {
            if rest.is_empty() {
                if *index >= a.len() {
                    return false;
                }
                // (A list of values: a list of tables is never cut.)
                let items = std::mem::replace(a, toml::de::DeArray::new());
                *a = items
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| i != index)
                    .map(|(_, v)| v)
                    .collect();
                return true;
            }
            a.get_mut(*index)
                .is_some_and(|e| remove_in(e.get_mut(), rest))
        }
        _ => false,
    }
}
