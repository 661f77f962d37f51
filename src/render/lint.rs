//! What `check` and the loader find in a template file before and when
//! the engine parses it: nesting too deep for the parser's stack, partials
//! that include themselves or each other (within a template or across
//! templates), and parse errors put in words a template author can act on,
//! at their place, with the line and a caret.

use super::TemplateIssue;

/// Deepest nesting of blocks a template may have.
pub(super) const MAX_DEPTH: usize = 64;

/// The tags of a template: the text between each `{{` and `}}`.
fn tags(src: &str) -> impl Iterator<Item = &str> {
    src.split("{{")
        .skip(1)
        .filter_map(|t| t.split_once("}}").map(|(tag, _)| tag))
}

/// A tag without its whitespace-control `~` and surrounding blanks.
fn bare(tag: &str) -> &str {
    tag.trim_start_matches('{').trim_start_matches('~').trim()
}

/// The first word of a tag body (a partial's or an inline's name).
fn first_word(s: &str) -> &str {
    s.trim()
        .trim_start_matches('"')
        .split(|c: char| c.is_whitespace() || c == '"' || c == '~' || c == '}')
        .next()
        .unwrap_or("")
}

/// Refuse nesting deeper than [`MAX_DEPTH`] and partials that include
/// themselves (within the template: `{{#*inline "a"}}…{{> a}}…`, or the
/// template itself by its name).
pub(super) fn check(name: &str, src: &str) -> Result<(), String> {
    let mut depth = 0usize;
    // Inline partials being defined, innermost last: (name, depth).
    let mut inline: Vec<(String, usize)> = Vec::new();
    for tag in tags(src) {
        let t = bare(tag);
        if let Some(open) = t.strip_prefix('#') {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(format!(
                    "blocks are nested deeper than {MAX_DEPTH} levels; flatten the template"
                ));
            }
            if let Some(def) = open.strip_prefix("*inline") {
                inline.push((first_word(def).to_string(), depth));
            } else if let Some(partial) = open.strip_prefix('>') {
                refuse_self(name, &inline, first_word(partial))?;
            }
        } else if let Some(inv) = t.strip_prefix('^') {
            if !inv.trim().is_empty() {
                depth += 1;
            }
        } else if t.starts_with('/') {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
        } else if let Some(partial) = t.strip_prefix('>') {
            refuse_self(name, &inline, first_word(partial))?;
        }
    }
    Ok(())
}

/// A template's partial references: `(from, to)`, where `from` is the
/// template or one of its inline partials (`template#inline`) and `to`
/// the partial it includes, resolved the same way (an inline partial of
/// the template first, else a template). A partial named by an
/// expression is refused by [`check`].
#[derive(Debug, Default)]
pub(super) struct Refs {
    pub(super) edges: Vec<(String, String)>,
}

pub(super) fn refs(name: &str, src: &str) -> Refs {
    let mut defined: Vec<String> = Vec::new();
    for tag in tags(src) {
        if let Some(def) = bare(tag)
            .strip_prefix('#')
            .and_then(|o| o.strip_prefix("*inline"))
        {
            defined.push(first_word(def).to_string());
        }
    }
    let node = |partial: &str| {
        if defined.iter().any(|d| d == partial) {
            format!("{name}#{partial}")
        } else {
            partial.to_string()
        }
    };
    let mut out = Refs::default();
    let mut depth = 0usize;
    let mut inline: Vec<(String, usize)> = Vec::new();
    for tag in tags(src) {
        let t = bare(tag);
        let from = inline
            .last()
            .map_or_else(|| name.to_string(), |(n, _)| format!("{name}#{n}"));
        let partial = if let Some(open) = t.strip_prefix('#') {
            depth += 1;
            if let Some(def) = open.strip_prefix("*inline") {
                inline.push((first_word(def).to_string(), depth));
                None
            } else {
                open.strip_prefix('>')
            }
        } else if let Some(inv) = t.strip_prefix('^') {
            if !inv.trim().is_empty() {
                depth += 1;
            }
            None
        } else if t.starts_with('/') {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
            None
        } else {
            t.strip_prefix('>')
        };
        if let Some(p) = partial
            && !first_word(p).is_empty()
        {
            out.edges.push((from, node(first_word(p))));
        }
    }
    out
}

/// A cycle of partial includes across all templates, if any: the file
/// of its first template and the names along it.
pub(super) fn cycle(
    refs: &std::collections::HashMap<String, (String, Refs)>,
) -> Option<(String, Vec<String>)> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (_, r) in refs.values() {
        for (from, to) in &r.edges {
            graph.entry(from.as_str()).or_default().insert(to.as_str());
        }
    }
    // Iterative depth-first search; 1 = on the path, 2 = done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    for &start in graph.keys() {
        if state.contains_key(start) {
            continue;
        }
        let mut path: Vec<&str> = vec![start];
        let mut stack: Vec<Vec<&str>> = vec![graph[start].iter().copied().collect()];
        state.insert(start, 1);
        while let Some(next) = stack.last_mut() {
            match next.pop() {
                Some(n) => match state.get(n) {
                    Some(1) => {
                        let from = path.iter().position(|p| *p == n).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[from..].iter().map(|s| s.to_string()).collect();
                        cycle.push(n.to_string());
                        let owner = n.split('#').next().unwrap_or(n);
                        let origin = refs
                            .get(owner)
                            .map_or_else(|| owner.to_string(), |(o, _)| o.clone());
                        return Some((origin, cycle));
                    }
                    Some(_) => {}
                    None => {
                        state.insert(n, 1);
                        path.push(n);
                        stack.push(
                            graph
                                .get(n)
                                .map(|s| s.iter().copied().collect())
                                .unwrap_or_default(),
                        );
                    }
                },
                None => {
                    stack.pop();
                    if let Some(done) = path.pop() {
                        state.insert(done, 2);
                    }
                }
            }
        }
    }
    None
}

fn refuse_self(name: &str, inline: &[(String, usize)], partial: &str) -> Result<(), String> {
    if partial.starts_with('(') {
        return Err(
            "a partial named by an expression (`{{> (…)}}`) cannot be checked for recursion; name the partial"
                .to_string(),
        );
    }
    if partial.is_empty() {
        return Ok(());
    }
    if partial == name || inline.iter().any(|(n, _)| n == partial) {
        return Err(format!(
            "partial `{partial}` includes itself: recursion is not allowed in templates"
        ));
    }
    Ok(())
}

/// A parse error in words a template author can act on, at its place,
/// with the line and a caret (the parser's own text lists grammar rules).
pub(super) fn syntax_issue(file: &str, src: &str, e: &handlebars::TemplateError) -> TemplateIssue {
    use handlebars::TemplateErrorReason as R;
    let mut at = e.pos();
    let offset = at.map_or(src.len(), |(l, c)| offset_of(src, l, c));
    let message = match e.reason() {
        R::MismatchingClosedHelper(open, close) | R::MismatchingClosedDecorator(open, close) => {
            format!(
                "syntax error: `{{{{/{close}}}}}` closes `{{{{#{open}}}}}`; blocks close in the reverse order they open"
            )
        }
        R::InvalidSyntax(_) => {
            let (message, place) = syntax_hint(src, offset);
            if let Some(p) = place {
                at = Some(crate::error::line_column(src, p));
            }
            message
        }
        other => format!("syntax error: {other}"),
    };
    TemplateIssue {
        file: file.to_string(),
        at,
        message,
        snippet: at.map(|(l, c)| crate::error::caret_snippet(src, l, c)),
    }
}

/// Byte offset of a 1-based (line, column in characters).
fn offset_of(src: &str, line: usize, column: usize) -> usize {
    let start: usize = src
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = src.get(start..).unwrap_or("");
    start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i)
}

/// What most likely went wrong where the parser stopped: a block closed
/// out of order or still open at the end (with that tag's offset, a better
/// place to point at), an expression not closed with `}}`, or something
/// else inside `{{…}}`.
fn syntax_hint(src: &str, offset: usize) -> (String, Option<usize>) {
    let before = src.get(..offset).unwrap_or(src);
    let at_end = src.get(offset..).is_none_or(|rest| rest.trim().is_empty());
    // Blocks as far as the tag the parser stopped in.
    let scan = src
        .get(offset..)
        .and_then(|r| r.find("}}"))
        .and_then(|k| src.get(..offset + k + 2))
        .unwrap_or(before);
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while let Some(j) = scan.get(i..).and_then(|r| r.find("{{")) {
        let at = i + j;
        i = at + 2;
        let tag = scan[i..].trim_start_matches('~').trim_start();
        let name = |t: &str| -> String {
            t.split(|c: char| c.is_whitespace() || c == '}' || c == '~')
                .next()
                .unwrap_or("")
                .to_string()
        };
        if let Some(t) = tag.strip_prefix('#') {
            open.push((name(t.trim_start_matches(['>', '*'])), at));
        } else if let Some(t) = tag.strip_prefix('/') {
            let closing = name(t);
            match open.pop() {
                Some((o, _)) if o == closing => {}
                Some((o, o_at)) => {
                    let (ol, oc) = crate::error::line_column(src, o_at);
                    let m = format!(
                        "syntax error: `{{{{/{closing}}}}}` comes while `{{{{#{o}}}}}` (line {ol}, column {oc}) is still open; close that first with `{{{{/{o}}}}}`"
                    );
                    return (m, Some(at));
                }
                None => {
                    let m = format!(
                        "syntax error: `{{{{/{closing}}}}}` closes a block that was never opened"
                    );
                    return (m, Some(at));
                }
            }
        }
    }
    if at_end && let Some((name, at)) = open.last() {
        let m = format!(
            "syntax error: the template ends inside this `{{{{#{name}}}}}`; close it with `{{{{/{name}}}}}`"
        );
        return (m, Some(*at));
    }
    if let Some(k) = before.rfind("{{")
        && !before[k..].contains("}}")
    {
        let (l, c) = crate::error::line_column(src, k);
        let m = format!(
            "syntax error: the `{{{{` at line {l}, column {c} starts an expression that is not valid or not closed with `}}}}`"
        );
        return (m, None);
    }
    (
        "syntax error: not valid handlebars here (check the `{{…}}` around it)".to_string(),
        None,
    )
}
