//! roomcast: third-party meeting-room events from Feishu/Lark → each room's
//! schedule → booking summaries in the room's own time zone and locale →
//! room panels and chat channels.
//!
//! ```text
//!  sources                 intake            state                  render             deliver
//!  lark WS client ─json─▶ decode ─RoomEvent─▶ schedule (pure) ─Δ─▶ handlebars ─msg─▶ per-sink ordered
//!  webhook (http)         dedup               + store              view models       workers ─HTTP─▶
//!  replay (file)                               ▲                                       panels, chat bots
//!  room APIs (sync) ── Fetch ─────────────────┘ merge, same rules
//! ```
//!
//! Module map (one job each), from the bottom up; a module imports only
//! modules above it in this table, never the run loop (`app`). Why, and
//! what is deliberately absent: `ARCHITECTURE.md`.
//!
//! | module | job |
//! | --- | --- |
//! | [`model`] | typed ids, [`model::RoomEvent`], [`model::Booking`], [`model::Change`]; no I/O |
//! | [`clock`] | the time source ([`clock::TimeSource`]) the edges are given; minute arithmetic |
//! | [`error`] | [`error::Chain`] (an error with its causes, for logs) and the exit codes ([`error::Exit`]) |
//! | [`metrics`] | counters of the core, the sinks and the long connection; the run summary; Prometheus text |
//! | `retry` | the one retry policy: pure delay schedules, what is retryable |
//! | [`tls`] | rustls provider setup |
//! | [`locale`] | local dates, times, spans, relative times in `zh-CN` and `en` |
//! | [`source`] | what every source hands the core (`source::Inbound`), the answer (`source::Ack`); the replay source |
//! | [`decode`] | event JSON (v1 envelope, v2 tolerated) → `RoomEvent`; never panics |
//! | [`schedule`] | pure state: `apply(event) → changes`, `view(room, now)`; dedup and staleness rules |
//! | [`render`] | template registry (embedded defaults + override dir; values escaped per format, and made inert markup for chat targets), view models, `render::ics` (a room's bookings as an iCalendar feed) and `render::lint` (what a template file may not do, and its parse errors in words) |
//! | [`config`] | TOML → validated [`config::Config`], one file per section; every problem with key and line |
//! | [`message`] | an outgoing message and its idempotency key |
//! | [`directory`] | what the platform says about each room (name, building, floor, capacity, out of service); pure data |
//! | [`lark`] | the platform edge: endpoint discovery, protobuf frames (built with prost; a received one read in place, [`lark::received`]), the long-connection client, webhook verification; [`lark::api`]: the REST client (token, free/busy, titles, rooms), knowing nothing of schedules |
//! | [`store`] | durable schedule, seen ids and delivery outbox behind one trait (`store::Store`): SQLite (WAL, appended in arrival order; `sqlite.rs`) or PostgreSQL (`postgres.rs`); `store::writer`: the thread that owns the store (commits, outcomes, folds), so the disk and the database are never on the runtime's thread; several instances on one PostgreSQL store: `store::feed` (the change feed: other instances' commits into this one's schedule) and `store::shared` (leases for the leader and each sink, outbox claims) |
//! | [`pipeline`] | decode → token check → apply → render for one payload, handing back all a commit needs; pure but for the schedule it owns; `pipeline::timed`: what the clock makes (reminders, daily agendas); `pipeline::boards`: a board's tiles |
//! | [`sync`] | backfill and reconciliation: a task that fetches what the platform says is booked and hands it to the core (which merges it with `Schedule::merge`, the events' rules); `rooms discover`, `doctor` |
//! | [`deliver`] | sink kinds, one ordered worker per sink (reconfigured in place on reload; `min_interval` per panel); pure request building in `deliver::http`; `deliver::probe`: `send-test` |
//! | `http` | axum: webhook intake, pull endpoints, the live room page and boards (`http::live`: their event streams and change signals), health, readiness, metrics |
//! | [`check`] | `roomcast check`: config + templates + trial renders, every problem at once, typed |
//! | [`app`] | the run loop: wiring (`mod.rs`), the core's `select!` (`core.rs`), the clock's timers (panel pushes, reminders, daily agendas, pruning; their marks kept with their messages), queries and reloads (SIGHUP), restore, systemd's notify protocol (`systemd.rs`) |
//! | `fuzz` | entry points for the fuzz targets (`fuzz/`) and their stable smoke test: bytes into each decoder (event JSON, frames and reassembly, webhook, config, templates) |
//!
//! The middle (decode, schedule, locale, render, pipeline) is pure: data in,
//! data out, `now` passed in. Only the edges touch sockets, files and the
//! clock.
#![forbid(unsafe_code)]

pub mod app;
pub mod check;
pub mod clock;
pub mod config;
pub mod decode;
pub mod deliver;
pub mod directory;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod http;
pub mod lark;
pub mod locale;
pub mod message;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod render;
pub(crate) mod retry;
pub mod schedule;
pub mod source;
pub mod store;
pub mod sync;
pub mod tls;
