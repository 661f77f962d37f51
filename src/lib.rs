//! roomcast: third-party meeting-room events from Feishu/Lark → each room's
//! schedule → booking summaries in the room's own time zone and locale →
//! room panels and chat channels.
//!
//! ```text
//!  sources                 intake            state                  render             deliver
//!  lark WS client ─json─▶ decode ─RoomEvent─▶ schedule (pure) ─Δ─▶ handlebars ─msg─▶ per-sink ordered
//!  webhook (http)         dedup               + store              view models       workers ─HTTP─▶
//!  replay (file)                                                                       panels, chat bots
//! ```
//!
//! Module map (one job each):
//!
//! | module | job |
//! | --- | --- |
//! | [`config`] | TOML → validated [`config::Config`]; errors name key and line |
//! | [`model`] | typed ids, [`model::RoomEvent`], [`model::Booking`], [`model::Change`]; no I/O |
//! | [`decode`] | event JSON (v1 envelope, v2 tolerated) → `RoomEvent`; never panics |
//! | [`schedule`] | pure state: `apply(event) → changes`, `view(room, now)`; dedup and staleness rules |
//! | [`locale`] | local dates, times, spans, relative times in `zh-CN` and `en` |
//! | [`render`] | template registry (embedded defaults + override dir) and view models |
//! | [`pipeline`] | decode → token check → apply → render for one payload; pure but for the schedule it owns |
//! | [`lark`] | the platform edge: endpoint discovery, protobuf frames, the long-connection client (ping, watchdog, fragments, acks, reconnect) |
//! | [`source`] | what every source hands the core ([`source::Inbound`]) and the answer ([`source::Ack`]) |
//! | [`retry`] | the one retry policy: pure delay schedules, what is retryable |
//! | [`tls`] | rustls provider setup |
//! | [`store`] | durable schedule, seen ids and delivery outbox in SQLite (WAL); one transaction per batch of events, acks after commit |
//! | [`deliver`] | sink kinds, one ordered worker per sink |
//! | [`http`] | axum: webhook intake, pull endpoints, the live room page, health, readiness, metrics; [`http::live`]: the page's event streams and per-room change signals |
//! | [`app`] | the run loop: sources → pipeline → sinks, shutdown as an input |
//! | [`check`] | `roomcast check`: config + templates + trial renders, every problem at once |
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
pub mod error;
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
pub mod tls;
