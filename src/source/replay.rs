//! The replay source: an event file, one body a line (blank lines and `#`
//! comments skipped), for previews, demos and tests.

use std::path::{Path, PathBuf};

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Inbound, Origin};

/// Why a replay file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read replay file {}", path.display())]
pub struct ReplayError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The event a line of an event file carries: `None` for a blank line or
/// a `#` comment.
pub fn event_body(line: &str) -> Option<&str> {
    let t = line.trim();
    (!t.is_empty() && !t.starts_with('#')).then_some(t)
}

/// Open the file (a start-up error if it cannot be).
pub(crate) async fn open(path: &Path) -> Result<tokio::fs::File, ReplayError> {
    tokio::fs::File::open(path)
        .await
        .map_err(|source| ReplayError {
            path: path.to_path_buf(),
            source,
        })
}

/// Feed the file's events to the core, in order, until the end or `stop`.
pub(crate) async fn run(
    file: tokio::fs::File,
    path: PathBuf,
    tx: mpsc::Sender<Inbound>,
    stop: CancellationToken,
) -> Result<(), ReplayError> {
    let mut lines = tokio::io::BufReader::new(file).lines();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u64;
    loop {
        let line = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            l = lines.next_line() => l.map_err(|source| ReplayError { path: path.clone(), source })?,
        };
        let Some(line) = line else { return Ok(()) };
        n += 1;
        let Some(t) = event_body(&line) else { continue };
        let inb = Inbound {
            payload: t.as_bytes().to_vec().into(),
            origin: Origin::Text(format!("{name}:{n}")),
            ack: None,
        };
        if tx.send(inb).await.is_err() {
            return Ok(());
        }
    }
}
