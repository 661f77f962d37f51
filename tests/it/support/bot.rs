//! roomcast in-process, the one way every integration test starts it:
//! `TestBot::builder().config(..).rooms(..).sink(..).store(..).start()`.
//! The config is written to a fresh folder (or a given one, to restart on
//! the same store), loaded with `check::load` as the binary does, and run
//! on the given clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roomcast::app::{App, AppError, Reloaded, Reloader};
use roomcast::check;
use roomcast::clock::TimeSource;
use roomcast::metrics::{Metrics, Summary};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{ROOM_A, jsonl, temp_dir, write};

/// The long-connection config the lark tests share: one room (Alpha), a
/// file sink of notices, `extra` appended; no reconciliation with the room
/// APIs unless `extra` has a `[sync]` table.
pub fn lark_config(base_url: &str, extra: &str) -> String {
    let sync = if extra.contains("[sync]") {
        ""
    } else {
        "[sync]\ninterval = \"off\"\n"
    };
    format!(
        r#"[source]
kind = "lark"
[platform]
app_id = "cli_a1b2c3d4e5f60718"
app_secret_env = "APP_SECRET"
domain = "{base_url}"
{sync}[display]
time_zone = "Asia/Shanghai"
locale = "en"
[[rooms]]
id = "{ROOM_A}"
name = "Alpha"
[[sinks]]
name = "notices"
kind = "file"
path = "notices.jsonl"
template = "webhook"
{extra}
"#
    )
}

/// How to start roomcast.
pub struct Builder {
    tag: &'static str,
    dir: Option<PathBuf>,
    config: String,
    env: BTreeMap<String, String>,
    clock: Option<TimeSource>,
    events: Option<Vec<String>>,
}

/// roomcast running in-process.
pub struct TestBot {
    pub dir: PathBuf,
    /// `http://ADDR` when `[http]` is configured.
    pub base: String,
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<Summary, AppError>>,
    env: BTreeMap<String, String>,
    reloader: Reloader,
}

impl TestBot {
    /// The body of `GET {path}` on the bot's HTTP face, as text.
    pub async fn text(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    }

    pub fn builder() -> Builder {
        Builder {
            tag: "bot",
            dir: None,
            config: String::new(),
            env: BTreeMap::new(),
            clock: None,
            events: None,
        }
    }

    /// Request shutdown and wait for the app to finish.
    pub async fn stop(self) -> Result<Summary, AppError> {
        self.shutdown.cancel();
        self.handle.await.expect("app task")
    }

    /// Write `config` over the bot's `config.toml` and reload it as SIGHUP
    /// does (`check::load`, then the running app). `Err`: refused.
    pub async fn reload(&self, config: &str) -> Result<Reloaded, String> {
        write(&self.dir.join("config.toml"), config);
        let checked =
            check::load(&self.dir.join("config.toml"), &self.env).map_err(|p| format!("{p:?}"))?;
        self.reloader.reload(checked).await.expect("running")
    }

    /// Wait for the app to end by itself.
    pub async fn ended(self) -> Result<Summary, AppError> {
        self.handle.await.expect("app task")
    }

    /// A JSONL file the bot wrote, as values.
    pub fn jsonl(&self, name: &str) -> Vec<Value> {
        jsonl(&self.dir.join(name))
    }
}

impl Builder {
    /// Name the temporary folder after the test area.
    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }

    /// Run in this folder (a restart on the same store).
    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// The config's text so far; the methods below append to it.
    pub fn config(mut self, toml: impl AsRef<str>) -> Self {
        self.config.push_str(toml.as_ref());
        if !self.config.ends_with('\n') {
            self.config.push('\n');
        }
        self
    }

    /// `[[rooms]]` tables.
    pub fn rooms(self, toml: impl AsRef<str>) -> Self {
        self.config(toml)
    }

    /// A `[[sinks]]` table.
    pub fn sink(self, toml: impl AsRef<str>) -> Self {
        self.config(toml)
    }

    /// A durable store at `state/roomcast.db` in the bot's folder.
    pub fn store(self) -> Self {
        self.config("[store]\npath = \"state/roomcast.db\"\n")
    }

    /// An environment variable the config may name.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    pub fn clock(mut self, clock: TimeSource) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The replay file `events.jsonl`, one event a line.
    pub fn events(mut self, events: &[String]) -> Self {
        self.events = Some(events.to_vec());
        self
    }

    fn app(&self) -> (PathBuf, App) {
        let dir = self.dir.clone().unwrap_or_else(|| temp_dir(self.tag));
        if let Some(events) = &self.events {
            write(&dir.join("events.jsonl"), &events.join("\n"));
        }
        write(&dir.join("config.toml"), &self.config);
        let checked =
            check::load(&dir.join("config.toml"), &self.env).unwrap_or_else(|e| panic!("{e:?}"));
        let mut app = App::new(checked.config, checked.templates);
        if let Some(c) = self.clock.clone() {
            app = app.with_clock(c);
        }
        (dir, app)
    }

    /// Start it on a task of its own; with `[http]`, once it listens.
    pub async fn start(self) -> TestBot {
        let (dir, app) = self.app();
        let metrics = app.metrics();
        let reloader = app.reloader();
        let mut addr = app.http_addr();
        let http = std::fs::read_to_string(dir.join("config.toml"))
            .unwrap_or_default()
            .contains("[http]");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        let base = if http {
            let a = *addr.wait_for(|a| a.is_some()).await.expect("listening");
            format!("http://{}", a.expect("an address"))
        } else {
            String::new()
        };
        TestBot {
            dir,
            base,
            metrics,
            shutdown,
            handle,
            env: self.env,
            reloader,
        }
    }

    /// Run it to its end (a replay source), without shutdown.
    pub async fn run(self) -> Result<Summary, AppError> {
        let (_, app) = self.app();
        app.run(CancellationToken::new()).await
    }
}
