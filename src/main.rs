//! The `roomcast` command: parses arguments, sets up logging, wires the
//! library together and maps failures to exit codes. It decides nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use roomcast::app::App;
use roomcast::check;
use roomcast::config::ProcessEnv;
use roomcast::pipeline::{Outcome, Pipeline};

// mimalloc: allocation-heavy paths (decode, view models, rendering) run
// markedly faster than with the system allocator; see BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (also in the README).
mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// A runtime failure (I/O, a sink that could not be opened, …).
    pub const FAILURE: u8 = 1;
    // 2: command-line usage error (clap's own exit code).
    /// The config or a template is invalid.
    pub const CONFIG: u8 = 3;
    /// Input was rejected: malformed replay lines or preview event.
    pub const INPUT: u8 = 4;
    /// The platform refused the connection for good (credentials, app
    /// disabled, connection limit), or reconnecting gave up.
    pub const PLATFORM: u8 = 5;
    /// The store cannot be used: locked by another instance, not a roomcast
    /// store, of a newer schema, corrupt, or a commit failed.
    pub const STORE: u8 = 6;
}

#[derive(Parser)]
#[command(
    name = "roomcast",
    version,
    about = "Third-party meeting-room events from Feishu/Lark → room panels and chat channels"
)]
struct Cli {
    /// Config file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "config.toml",
        env = "ROOMCAST_CONFIG"
    )]
    config: PathBuf,
    /// Log filter (e.g. `info`, `roomcast=debug`); `RUST_LOG` also works.
    #[arg(long, global = true, env = "ROOMCAST_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the main job: receive events, keep schedules, deliver. With
    /// `source.kind = "replay"` it processes the file, prints a summary and
    /// exits.
    Run,
    /// Validate the config and every template; report all problems at once.
    Check,
    /// Show what each sink would receive for an event file (one JSON body,
    /// or JSON lines); nothing is sent.
    Preview {
        /// The event file.
        #[arg(long)]
        event: PathBuf,
        /// Render as if it were this instant (RFC 3339); default: now.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
    },
    /// List queued (pending), failed and dead-letter messages in the store.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
    /// Show each room's view (status, current and next bookings); from the
    /// store when one is configured.
    Rooms {
        /// The instant to show (RFC 3339); default: now.
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// Print the panel JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OutboxAction {
    /// Queue a failed or dead message again; it is sent at the next start.
    Retry {
        /// The message id (first column of `roomcast outbox`).
        id: i64,
    },
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    // One thread runs the app: its work is I/O and short CPU bursts, and one
    // allocator heap keeps the process small (BENCHMARKS.md: same events/s
    // within noise, ~2 MiB less RSS than two workers). Local sinks write on
    // threads of their own.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(code::FAILURE);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(c) => ExitCode::from(c),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code::FAILURE)
        }
    }
}

/// Load and check config + templates, or print every problem.
fn load(path: &Path) -> Result<check::Checked, u8> {
    check::load(path, &ProcessEnv).map_err(|problems| {
        eprintln!(
            "error: {} problem{} found:",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            eprintln!("  {p}");
        }
        code::CONFIG
    })
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let checked = match load(&cli.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match cli.command {
        Command::Check => {
            let c = &checked.config;
            println!(
                "{}: OK ({} rooms, {} sinks, source {:?})",
                cli.config.display(),
                c.rooms.len(),
                c.sinks.len(),
                c.source.kind
            );
            Ok(code::OK)
        }
        Command::Run => {
            let shutdown = CancellationToken::new();
            tokio::spawn(watch_signals(shutdown.clone()));
            let app = App::new(checked.config, checked.templates);
            let summary = match app.run(shutdown).await {
                Ok(s) => s,
                Err(e @ roomcast::app::AppError::Lark(_)) => {
                    eprintln!("error: {e}");
                    return Ok(code::PLATFORM);
                }
                Err(e @ roomcast::app::AppError::Store(_)) => {
                    eprintln!("error: {e}");
                    return Ok(code::STORE);
                }
                Err(e) => return Err(e.into()),
            };
            eprintln!("{summary}");
            Ok(if summary.malformed > 0 {
                code::INPUT
            } else {
                code::OK
            })
        }
        Command::Preview { event, at } => {
            let text = std::fs::read_to_string(&event)
                .with_context(|| format!("cannot read {}", event.display()))?;
            let now = at.unwrap_or_else(Utc::now);
            let mut p = Pipeline::new(checked.config.clone(), checked.templates.clone());
            let mut rc = code::OK;
            let bodies: Vec<&str> = if text.trim_start().starts_with('{')
                && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok()
            {
                vec![text.as_str()]
            } else {
                text.lines()
                    .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
                    .collect()
            };
            for body in bodies {
                match p.handle(body.as_bytes(), now) {
                    Outcome::Applied {
                        event_id,
                        messages,
                        render_errors,
                        ..
                    } => {
                        println!("# event {event_id}: {} message(s)", messages.len());
                        for m in &messages {
                            let sink = &checked.config.sinks[m.sink];
                            println!(
                                "--- sink `{}` ({}) · room {} · {}",
                                sink.name,
                                sink.kind.as_str(),
                                m.room,
                                m.subject.as_str()
                            );
                            if let Some(url) = &sink.url {
                                println!("{} {}", sink.method, roomcast::deliver::redact_url(url));
                            }
                            println!("Content-Type: {}", m.format.content_type());
                            println!("Idempotency-Key: {}", m.idempotency_key);
                            println!("X-Roomcast-Event: {}\n", m.event_id);
                            println!("{}", m.body.trim_end());
                        }
                        for (sink, e) in render_errors {
                            eprintln!("error: sink `{sink}`: {e}");
                            rc = code::CONFIG;
                        }
                    }
                    Outcome::Skipped { event_id, why } => {
                        println!("# event {event_id}: skipped ({why:?})")
                    }
                    Outcome::Ignored { event_type } => {
                        println!("# not a meeting-room event ({event_type}); nothing to send")
                    }
                    Outcome::Rejected { event_id } => {
                        eprintln!("error: event {event_id}: verification token does not match");
                        rc = code::INPUT;
                    }
                    Outcome::Malformed(e) => {
                        eprintln!("error: {}: {e}", event.display());
                        rc = code::INPUT;
                    }
                    Outcome::Challenge { .. } => {
                        println!("# url_verification challenge; nothing to send")
                    }
                }
            }
            Ok(rc)
        }
        Command::Outbox { action } => {
            let Some(sc) = &checked.config.store else {
                eprintln!("error: the config has no [store]; there is no outbox");
                return Ok(code::CONFIG);
            };
            let store = match roomcast::store::Store::open_read_only(&sc.path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(code::STORE);
                }
            };
            match action {
                Some(OutboxAction::Retry { id }) => match store.retry(id) {
                    Ok(true) => {
                        println!("message {id} queued again; it is sent at the next start");
                        Ok(code::OK)
                    }
                    Ok(false) => {
                        eprintln!("error: no failed or dead message with id {id}");
                        Ok(code::INPUT)
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        Ok(code::STORE)
                    }
                },
                None => {
                    let rows = match store.outbox() {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("error: {e}");
                            return Ok(code::STORE);
                        }
                    };
                    println!(
                        "{:>8}  {:<8}  {:<16}  {:<11}  {:>8}  {:<20}  booking / last error",
                        "id", "state", "sink", "subject", "attempts", "queued"
                    );
                    for r in &rows {
                        println!(
                            "{:>8}  {:<8}  {:<16}  {:<11}  {:>8}  {:<20}  {} {}",
                            r.id,
                            r.state,
                            r.sink,
                            r.message.subject.as_str(),
                            r.attempts,
                            r.created.format("%Y-%m-%d %H:%M:%S"),
                            r.message
                                .booking
                                .as_deref()
                                .unwrap_or(r.message.room.as_str()),
                            r.last_error.as_deref().unwrap_or("")
                        );
                    }
                    println!("{} message(s)", rows.len());
                    Ok(code::OK)
                }
            }
        }
        Command::Rooms { at, json } => {
            let now = at.unwrap_or_else(Utc::now);
            let p = match roomcast::app::load_schedule(&checked).await {
                Ok(p) => p,
                Err(e @ roomcast::app::AppError::Store(_)) => {
                    eprintln!("error: {e}");
                    return Ok(code::STORE);
                }
                Err(e) => return Err(e.into()),
            };
            for room in p.all_rooms() {
                let vm = p.snapshot_vm(None, &room, now);
                let locale = checked
                    .config
                    .style(checked.config.room(&room), None)
                    .locale;
                let name = if json { "panel" } else { "room" };
                match checked.templates.render(name, locale, vm) {
                    Ok(r) => println!("{}", r.body.trim_end()),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(code::CONFIG);
                    }
                }
            }
            Ok(code::OK)
        }
    }
}

async fn watch_signals(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}
