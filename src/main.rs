//! The `roomcast` command: parses arguments, sets up logging, wires the
//! library together and maps failures to exit codes. It decides nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use roomcast::app::App;
use roomcast::check::{self, Checked};
use roomcast::clock::{self, TimeSource};
use roomcast::config::ProcessEnv;
use roomcast::config::StoreConfig;
use roomcast::error::{Chain, Exit};
use roomcast::pipeline::{Outcome, Pipeline};
use roomcast::source::replay;
use roomcast::store::{self, Sqlite};

// mimalloc: allocation-heavy paths (decode, view models, rendering) run
// markedly faster than with the system allocator; see BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Log lines as text, or as one JSON object a line (for log shippers).
    #[arg(long, global = true, env = "ROOMCAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
        /// Render as if it were this instant: RFC 3339, or
        /// "2026-12-01 14:30" in the display time zone; default: now.
        #[arg(long)]
        at: Option<String>,
    },
    /// List queued (pending), failed and dead-letter messages in the store.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxAction>,
        /// Every message the store still keeps, delivered and superseded
        /// ones too (what each receiver really got).
        #[arg(long)]
        all: bool,
    },
    /// Show each room's view (status, current and next bookings); from the
    /// store when one is configured.
    Rooms {
        #[command(subcommand)]
        action: Option<RoomsAction>,
        /// The instant to show: RFC 3339, or "2026-12-01 14:30" in the
        /// display time zone; default: now.
        #[arg(long)]
        at: Option<String>,
        /// Print the panel JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Call each of the platform's APIs once with the configured
    /// credentials; say per API "ok" or the scope to grant.
    Doctor,
    /// Render a sample booking notice (a snapshot, for a panel sink) for
    /// one sink and really send it; print the request (secrets masked) and
    /// the service's answer. Filters, quiet hours and rate limits do not
    /// apply. Exit 0 only if it was delivered.
    SendTest {
        /// The sink's `name`.
        #[arg(long)]
        sink: String,
        /// The room the sample is about; default: one the sink shows.
        #[arg(long)]
        room: Option<String>,
    },
    /// Copy the store to FILE, consistently, while roomcast runs (SQLite's
    /// online backup); the copy is checked before it is named FILE.
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum RoomsAction {
    /// Print ready-to-paste `[[rooms]]` blocks for every room the app can
    /// see (needs the app's credentials and `vc:room:readonly`).
    Discover,
}

#[derive(Subcommand)]
enum OutboxAction {
    /// Queue a failed or dead message again; it is sent at the next start.
    Retry {
        /// The message id (first column of `roomcast outbox`).
        id: i64,
    },
}

/// `--log LEVEL` is roomcast's own level (dependencies log warnings and
/// errors only: at debug, the template engine alone writes millions of
/// lines); a full filter (`roomcast=debug,hyper=info`) or `RUST_LOG` is
/// taken as it is. Colours only on a terminal (journald and files get
/// plain text).
fn init_logging(filter: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let level = filter.trim().to_ascii_lowercase();
    let filter = if ["trace", "debug", "info", "warn", "error", "off"].contains(&level.as_str()) {
        format!("warn,roomcast={level}")
    } else {
        filter.to_string()
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,roomcast=info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => fmt.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
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
            eprintln!("error: cannot start the runtime: {}", Chain(&e));
            return Exit::Failure.into();
        }
    };
    rt.block_on(dispatch(cli)).into()
}

/// Print an error with its causes; `code` is what it ends the process with.
fn fail(e: &(dyn std::error::Error + 'static), code: Exit) -> Exit {
    eprintln!("error: {}", Chain(e));
    code
}

/// The environment for commands that only read the store (`rooms`,
/// `outbox`): a secret they never use may be unset (an operator on the
/// box need not hold the app secret to look at the queue).
struct InspectEnv;

impl roomcast::config::Env for InspectEnv {
    fn var(&self, name: &str) -> Option<String> {
        ProcessEnv
            .var(name)
            .filter(|v| !v.is_empty())
            .or_else(|| Some("(unset: not needed to read the store)".into()))
    }

    fn file(&self, path: &Path) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(path)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "(unread: not needed to read the store)".into()))
    }
}

/// Load and check config + templates, or print every problem.
fn load(path: &Path, env: &dyn roomcast::config::Env) -> Result<Checked, Exit> {
    check::load(path, env).map_err(|problems| {
        eprintln!(
            "error: {} problem{} found:",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            eprintln!("  {p}");
        }
        Exit::Config
    })
}

/// The instant a command shows: `--at`, or now.
fn instant(at: Option<&str>, tz: chrono_tz::Tz, clock: &TimeSource) -> Result<DateTime<Utc>, Exit> {
    let Some(at) = at else { return Ok(clock()) };
    parse_at(at, tz).map_err(|e| {
        eprintln!("error: --at {e}");
        Exit::Usage
    })
}

/// RFC 3339, or a local date and time in `tz` (`2026-12-01 14:30`,
/// seconds and a `T` allowed).
fn parse_at(at: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, String> {
    use chrono::TimeZone;
    if let Ok(t) = DateTime::parse_from_rfc3339(at.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(at.trim(), f).ok())
        .ok_or_else(|| {
            format!("`{at}` is not an instant: write RFC 3339 (2026-12-01T06:30:00Z) or a local time (2026-12-01 14:30, in {tz})")
        })?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("`{at}` does not exist in {tz} (a clock change skips it)"))
}

async fn dispatch(cli: Cli) -> Exit {
    let inspect_only = matches!(
        cli.command,
        Command::Outbox { .. } | Command::Rooms { action: None, .. } | Command::Backup { .. }
    );
    let env: &dyn roomcast::config::Env = if inspect_only {
        &InspectEnv
    } else {
        &ProcessEnv
    };
    let checked = match load(&cli.config, env) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let clock = clock::system();
    match cli.command {
        Command::Check => {
            let c = &checked.config;
            // A PostgreSQL store is reached (nothing changed): a wrong
            // host, role or password shows here, not at the first start.
            if let Some(sc) = &c.store
                && matches!(sc.backend, roomcast::config::StoreBackend::Postgres(_))
            {
                match store::probe(sc).await {
                    Ok(line) => println!("store: {line}"),
                    Err(e) => return fail(&e, Exit::Store),
                }
            }
            println!(
                "{}: OK ({} rooms, {} sinks, source {:?})",
                cli.config.display(),
                c.rooms.len(),
                c.sinks.len(),
                c.source.kind
            );
            Exit::Ok
        }
        Command::Run => run(checked, cli.config.clone()).await,
        Command::Preview { event, at } => {
            match instant(at.as_deref(), checked.config.display.tz, &clock) {
                Ok(at) => preview(&checked, &event, at),
                Err(code) => code,
            }
        }
        Command::Outbox { action, all } => outbox(&checked, action, all).await,
        Command::Backup { file } => backup(&checked, &file),
        Command::Rooms {
            action: Some(RoomsAction::Discover),
            ..
        } => discover(&checked).await,
        Command::Rooms { at, json, .. } => {
            match instant(at.as_deref(), checked.config.display.tz, &clock) {
                Ok(at) => rooms(&checked, at, json, &clock).await,
                Err(code) => code,
            }
        }
        Command::Doctor => doctor(&checked, clock()).await,
        Command::SendTest { sink, room } => {
            send_test(&checked, &sink, room.as_deref(), clock()).await
        }
    }
}

async fn send_test(checked: &Checked, sink: &str, room: Option<&str>, now: DateTime<Utc>) -> Exit {
    use roomcast::deliver::probe::{self, ProbeError};
    match probe::send_test(&checked.config, &checked.templates, sink, room, now).await {
        Ok(p) => {
            println!("{p}");
            if p.verdict.is_ok() {
                Exit::Ok
            } else {
                Exit::Failure
            }
        }
        Err(e @ ProbeError::NoSink { .. }) => fail(&e, Exit::Usage),
        Err(e @ ProbeError::Render { .. }) => fail(&e, Exit::Config),
        Err(e) => fail(&e, Exit::Failure),
    }
}

async fn discover(checked: &Checked) -> Exit {
    match roomcast::sync::tools::discover(&checked.config).await {
        Ok(text) => {
            print!("{text}");
            Exit::Ok
        }
        Err(e) => fail(&e, Exit::Platform),
    }
}

async fn doctor(checked: &Checked, now: DateTime<Utc>) -> Exit {
    let mut store_failed = false;
    if let Some(sc) = &checked.config.store {
        match store::probe(sc).await {
            Ok(line) => println!("ok  store: {line}"),
            Err(e) => {
                println!("ERR store: {}", Chain(&e));
                store_failed = true;
            }
        }
    }
    let code = doctor_platform(checked, now).await;
    if store_failed && code == Exit::Ok {
        Exit::Store
    } else {
        code
    }
}

async fn doctor_platform(checked: &Checked, now: DateTime<Utc>) -> Exit {
    let titles = roomcast::sync::titles_wanted(&checked.config);
    let checks = match roomcast::sync::tools::doctor(&checked.config, titles, now).await {
        Ok(c) => c,
        Err(e) => return fail(&e, Exit::Config),
    };
    let mut code = Exit::Ok;
    for c in &checks {
        let (mark, text) = match &c.result {
            Ok(t) => ("ok ", t.as_str()),
            Err(t) if c.required => {
                code = Exit::Platform;
                ("ERR", t.as_str())
            }
            Err(t) => ("-- ", t.as_str()),
        };
        let scope = c.api.scope();
        let scope = if scope.is_empty() {
            String::new()
        } else {
            format!(" [{scope}]")
        };
        println!("{mark} {:<22}{scope}: {text}", c.api.name());
    }
    if !titles {
        println!("(titles are not shown by any room or sink: meeting_room/summary is optional)");
    }
    code
}

async fn run(checked: Checked, config_path: PathBuf) -> Exit {
    let shutdown = CancellationToken::new();
    // Exit 4 says "some of your input was malformed": it belongs to a
    // replay (its file is the input). A service that received a malformed
    // push and stopped on SIGTERM stopped cleanly: 0.
    let replay = checked.config.source.kind == roomcast::config::SourceKind::Replay;
    let app = App::new(checked.config, checked.templates);
    tokio::spawn(watch_signals(shutdown.clone(), app.reloader(), config_path));
    match app.run(shutdown).await {
        Err(e) => fail(&e, e.exit()),
        Ok(summary) => {
            eprintln!("{summary}");
            if replay && summary.malformed > 0 {
                Exit::Input
            } else {
                Exit::Ok
            }
        }
    }
}

/// The bodies of an event file: one JSON body, or JSON lines.
fn bodies(text: &str) -> Vec<&str> {
    if text.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    {
        vec![text]
    } else {
        text.lines().filter_map(replay::event_body).collect()
    }
}

fn preview(checked: &Checked, event: &Path, now: DateTime<Utc>) -> Exit {
    let text = match std::fs::read_to_string(event) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {}", event.display(), Chain(&e));
            return Exit::Failure;
        }
    };
    let config = &checked.config;
    let mut p = Pipeline::new(config.clone(), checked.templates.clone());
    let mut rc = Exit::Ok;
    for body in bodies(&text) {
        match p.handle(body.as_bytes(), now) {
            Outcome::Applied(a) => {
                println!("# event {}: {} message(s)", a.event_id, a.messages.len());
                for m in &a.messages {
                    let Some(sink) = config.sink_named(&m.sink) else {
                        continue;
                    };
                    println!(
                        "--- sink `{}` ({}) · room {} · {}",
                        sink.name,
                        sink.kind.as_str(),
                        m.room,
                        m.subject.as_str()
                    );
                    match roomcast::deliver::preview_request(sink, m, now) {
                        Some(request) => println!("{request}"),
                        None => {
                            println!("Idempotency-Key: {}", m.idempotency_key);
                            println!("X-Roomcast-Event: {}\n", m.event_id);
                            println!("{}", m.body.trim_end());
                        }
                    }
                }
                for (sink, e) in a.render_errors {
                    eprintln!("error: sink `{sink}`: {e}");
                    rc = Exit::Config;
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
                rc = Exit::Input;
            }
            Outcome::Malformed(e) => {
                eprintln!("error: {}: {e}", event.display());
                rc = Exit::Input;
            }
            Outcome::Challenge { .. } => {
                println!("# url_verification challenge; nothing to send")
            }
            Outcome::OverCap {
                event_id,
                rooms,
                cap,
                ..
            } => {
                println!(
                    "# event {event_id}: over the [schedule] cap {} ({rooms} rooms); not applied",
                    cap.as_str()
                )
            }
        }
    }
    rc
}

/// The configured store, or `None` (said on stderr) without a `[store]`;
/// `missing` says what there is not then.
fn store_config<'a>(checked: &'a Checked, missing: &str) -> Option<&'a StoreConfig> {
    let sc = checked.config.store.as_ref();
    if sc.is_none() {
        eprintln!("error: the config has no [store]; {missing}");
    }
    sc
}

fn backup(checked: &Checked, file: &Path) -> Exit {
    let Some(sc) = store_config(checked, "there is nothing to back up") else {
        return Exit::Config;
    };
    let Some(path) = sc.sqlite_path() else {
        eprintln!(
            "error: `roomcast backup` copies a SQLite store; the store is PostgreSQL ({}): back it up with the database's own tools (pg_dump)",
            sc.describe()
        );
        return Exit::Config;
    };
    let store = match Sqlite::open_read_only(path) {
        Ok(s) => s,
        Err(e) => return fail(&e, Exit::Store),
    };
    match store.backup_to(file) {
        Ok(r) => {
            println!(
                "{} → {}: {} bytes, integrity {}; {} booking rows, {} log rows not yet folded, {} message(s) pending",
                path.display(),
                file.display(),
                r.bytes,
                r.integrity,
                r.bookings,
                r.log_rows,
                r.pending
            );
            Exit::Ok
        }
        Err(e) => fail(&e, Exit::Store),
    }
}

async fn outbox(checked: &Checked, action: Option<OutboxAction>, all: bool) -> Exit {
    let Some(sc) = store_config(checked, "there is no outbox") else {
        return Exit::Config;
    };
    if let Some(OutboxAction::Retry { id }) = action {
        return match store::read(sc, move |s| s.retry(id)).await {
            Ok(true) => {
                println!("message {id} queued again; it is sent at the next start");
                Exit::Ok
            }
            Ok(false) => {
                eprintln!("error: no failed or dead message with id {id}");
                Exit::Input
            }
            Err(e) => fail(&e, Exit::Store),
        };
    }
    let rows = match store::read(sc, move |s| if all { s.outbox_all() } else { s.outbox() }).await {
        Ok(r) => r,
        Err(e) => return fail(&e, Exit::Store),
    };
    println!(
        "{:>8}  {:<10}  {:<16}  {:<11}  {:>8}  {:<20}  booking / last error",
        "id", "state", "sink", "subject", "attempts", "queued"
    );
    for r in &rows {
        println!(
            "{:>8}  {:<10}  {:<16}  {:<11}  {:>8}  {:<20}  {} {}",
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
    Exit::Ok
}

async fn rooms(checked: &Checked, now: DateTime<Utc>, json: bool, clock: &TimeSource) -> Exit {
    let p = match roomcast::app::load_schedule(&checked.config, &checked.templates, clock).await {
        Ok(p) => p,
        Err(e) => {
            let e = roomcast::app::AppError::from(e);
            return fail(&e, e.exit());
        }
    };
    let name = if json {
        roomcast::render::names::PANEL
    } else {
        roomcast::render::names::ROOM
    };
    for room in p.all_rooms() {
        let vm = p.snapshot_vm(None, &room, now);
        let locale = checked
            .config
            .style(checked.config.room(&room), None)
            .locale;
        match checked.templates.render(name, locale, vm) {
            Ok(r) => println!("{}", r.body.trim_end()),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Config;
            }
        }
    }
    Exit::Ok
}

/// SIGTERM and SIGINT stop roomcast; SIGHUP reloads the config file and
/// its templates (validated as `check` does; refused with the same messages
/// when invalid, the running config staying).
async fn watch_signals(
    shutdown: CancellationToken,
    reloader: roomcast::app::Reloader,
    config_path: PathBuf,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: shutting down");
                    break;
                }
                _ = hup.recv() => reload(&reloader, &config_path).await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (reloader, config_path);
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}

async fn reload(reloader: &roomcast::app::Reloader, path: &Path) {
    let shown = path.display().to_string();
    tracing::info!(config = %shown, "SIGHUP: reloading the config and templates");
    let p = path.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || check::load(&p, &ProcessEnv)).await;
    let checked = match checked {
        Ok(Ok(c)) => c,
        Ok(Err(problems)) => {
            for p in &problems {
                tracing::error!("reload refused: {p}");
            }
            tracing::error!(
                config = %shown,
                problems = problems.len(),
                "reload refused; the running config stays"
            );
            return;
        }
        Err(e) => {
            tracing::error!(error = %Chain(&e), "reload failed; the running config stays");
            return;
        }
    };
    match reloader.reload(checked).await {
        None => tracing::warn!("reload: roomcast is stopping"),
        Some(Err(e)) => {
            tracing::error!(config = %shown, error = %e, "reload refused; the running config stays")
        }
        Some(Ok(r)) if r.restart.is_empty() => {
            tracing::info!(config = %shown, sinks = %r.sinks, "reloaded: rooms, display, schedule rules, templates and sinks")
        }
        Some(Ok(r)) => tracing::warn!(
            config = %shown,
            sinks = %r.sinks,
            needs_restart = %r.restart.join(", "),
            "reloaded: rooms, display, schedule rules, templates and sinks; changes to the settings named take effect only at a restart"
        ),
    }
}
