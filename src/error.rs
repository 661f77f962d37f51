//! Error plumbing shared by every edge: [`Chain`] shows an error with its
//! causes ("request failed: error sending request: client error (Connect):
//! tcp connect error: Connection refused (os error 111)"), for log lines
//! and messages; [`Exit`] is the process's exit code, derived from what
//! went wrong (the README's table).

use std::fmt;

/// An error and its causes, joined by `": "`. A cause whose text the
/// message already shows is skipped (some errors repeat their source).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !text.is_empty() && !shown.contains(&text) {
                shown.push_str(": ");
                shown.push_str(&text);
            }
            cause = c.source();
        }
        f.write_str(&shown)
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Line `line` of `text` with a caret under column `column` (both
/// 1-based), indented to sit under a message:
///
/// ```text
///       |
///     6 | name = "A
///       |        ^
/// ```
///
/// Tabs show as one space each, so the caret lines up; a long line is cut
/// to the 80 characters around the column.
pub fn caret_snippet(text: &str, line: usize, column: usize) -> String {
    let src: String = text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let chars: Vec<char> = src.chars().collect();
    let col = column.saturating_sub(1);
    let from = col.saturating_sub(60);
    let to = (from + 80).min(chars.len()).max(from);
    let shown: String = chars.get(from..to).unwrap_or(&[]).iter().collect();
    let lead = if from > 0 { "…" } else { "" };
    let caret_at = col - from + lead.chars().count();
    let num = line.to_string();
    let pad = " ".repeat(num.len());
    format!(
        "    {pad} |\n    {num} | {lead}{shown}\n    {pad} | {}^",
        " ".repeat(caret_at)
    )
}

/// The process's exit codes (the README has the same table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A runtime failure (I/O, a sink that could not be opened, …).
    Failure = 1,
    /// A command-line usage error (also clap's own exit code).
    Usage = 2,
    /// The config or a template is invalid.
    Config = 3,
    /// Input was rejected: malformed replay lines or preview event.
    Input = 4,
    /// The platform refused the connection for good (credentials, app
    /// disabled, connection limit), or reconnecting gave up.
    Platform = 5,
    /// The store cannot be used: locked by another instance, not a roomcast
    /// store, of a newer schema, corrupt, or a commit failed.
    Store = 6,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner: {0}")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn chain_shows_each_cause_once() {
        let e = Outer(Inner(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        )));
        // Inner already prints the io error: it is not repeated.
        assert_eq!(Chain(&e).to_string(), "outer: inner: connection refused");
    }
}
