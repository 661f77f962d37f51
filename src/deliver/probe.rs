//! `roomcast send-test`: one sample message for one sink, rendered as the
//! running service would render it and really sent, with the receiver's
//! answer — how an operator checks a bot secret, a keyword rule or a
//! panel URL before relying on it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::json;

use super::http::Attempt;
use super::worker;
use crate::config::{Config, Payload, SinkConfig, SinkKind};
use crate::message::Message;
use crate::model::RoomId;
use crate::pipeline::{Outcome, Pipeline};
use crate::render::Templates;

/// Why no sample could be sent.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no sink is named `{name}` (the config has: {known})")]
    NoSink { name: String, known: String },
    #[error("sink `{sink}`: the sample did not render: {reason}")]
    Render { sink: String, reason: String },
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("sink `{sink}`: cannot write the sample: {source}")]
    Write {
        sink: String,
        #[source]
        source: std::io::Error,
    },
}

/// What was sent, and what came back.
#[derive(Debug)]
pub struct Probe {
    pub sink: String,
    pub kind: &'static str,
    pub room: RoomId,
    /// `booked` or `snapshot`.
    pub subject: &'static str,
    /// The request as `preview` shows it (secrets masked); for local sinks
    /// the line written.
    pub request: String,
    /// The receiver's status and body (the body's first 2 KB), if it
    /// answered.
    pub answer: Option<(u16, String)>,
    /// `Ok`: delivered. `Err`: why not, as the sink's worker would log it.
    pub verdict: Result<(), String>,
}

/// The sample booking: the next quarter hour, for half an hour; organizer
/// and title deliberately plain (no `ou_…` id, so no one is mentioned).
fn sample_event(room: &RoomId, now: DateTime<Utc>) -> String {
    let quarter = TimeDelta::minutes(15);
    let start = now.duration_trunc(quarter).unwrap_or(now) + quarter;
    let end = start + TimeDelta::minutes(30);
    json!({
        "uuid": format!("send-test-{}", now.timestamp_millis()),
        "type": "event_callback",
        "event": {
            "type": "third_party_meeting_room_event_created",
            "event_time": now.timestamp_millis().to_string(),
            "uid": "roomcast-send-test",
            "original_time": 0,
            "start": {"time_stamp": start.timestamp_millis().to_string()},
            "end": {"time_stamp": end.timestamp_millis().to_string()},
            "meeting_rooms": [{"open_id": room.as_str()}],
            "organizer": {"open_id": "roomcast-send-test"}
        }
    })
    .to_string()
}

/// The room a sample for `sink` is about: `room` if given, else one the
/// sink shows, else the first configured room.
fn pick_room(config: &Config, sink: &SinkConfig, room: Option<&str>) -> RoomId {
    if let Some(r) = room {
        return RoomId::new(r);
    }
    let mut listed: Vec<&RoomId> = sink.rooms.iter().flatten().collect();
    listed.sort();
    listed
        .first()
        .map(|r| (*r).clone())
        .or_else(|| {
            config
                .rooms
                .iter()
                .find(|r| r.panels.contains(&sink.name))
                .or(config.rooms.first())
                .map(|r| r.id.clone())
        })
        .unwrap_or_else(|| RoomId::new("omm_roomcast_send_test"))
}

/// Render the sample for the sink named `name` (its template, language,
/// zone and privacy; filters, quiet hours and rate limits do not apply)
/// and send it once.
pub async fn send_test(
    config: &Config,
    templates: &Arc<Templates>,
    name: &str,
    room: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Probe, ProbeError> {
    let Some(sink) = config.sink_named(name) else {
        let known: Vec<&str> = config.sinks.iter().map(|s| s.name.as_str()).collect();
        return Err(ProbeError::NoSink {
            name: name.to_string(),
            known: if known.is_empty() {
                "no sinks".into()
            } else {
                known.join(", ")
            },
        });
    };
    let room = pick_room(config, sink, room);
    // This sink alone, showing the room whatever its filters say.
    let mut only = sink.clone();
    only.changes = None;
    only.rooms = Some([room.clone()].into());
    let mut cfg = config.clone();
    cfg.sinks = vec![only.clone()];
    if let Some(p) = cfg.platform.as_mut() {
        p.verification_token = None;
    }
    let mut p = Pipeline::new(Arc::new(cfg), templates.clone());
    let render = |reason: String| ProbeError::Render {
        sink: sink.name.clone(),
        reason,
    };
    let m = match p.handle(sample_event(&room, now).as_bytes(), now) {
        Outcome::Applied(a) => {
            if let Some((_, e)) = a.render_errors.into_iter().next() {
                return Err(render(e.to_string()));
            }
            a.messages
                .into_iter()
                .next()
                .ok_or_else(|| render("no message came of it".into()))?
        }
        other => return Err(render(format!("{other:?}"))),
    };
    let subject = m.subject.as_str();
    let (request, answer, verdict) = match only.kind {
        SinkKind::Stdout | SinkKind::File => {
            let line = local(&only, &m)?;
            (line, None, Ok(()))
        }
        _ => {
            let request = super::preview_request(&only, &m, now).unwrap_or_default();
            let (answer, verdict) = http(&only, &m, now).await?;
            (request, answer, verdict)
        }
    };
    Ok(Probe {
        sink: sink.name.clone(),
        kind: sink.kind.as_str(),
        room,
        subject: if only.payload == Payload::Snapshot {
            "snapshot"
        } else {
            subject
        },
        request,
        answer,
        verdict,
    })
}

/// Write the sample where a local sink writes.
fn local(sink: &SinkConfig, m: &Message) -> Result<String, ProbeError> {
    let write = |source| ProbeError::Write {
        sink: sink.name.clone(),
        source,
    };
    if sink.kind == SinkKind::Stdout {
        return Ok(m.body.trim_end().to_string());
    }
    let line = super::file_line(&sink.name, m);
    let path = sink.path.clone().unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(write)?;
    writeln!(f, "{line}").map_err(write)?;
    Ok(format!("appended to {}:\n{line}", path.display()))
}

type Sent = (Option<(u16, String)>, Result<(), String>);

/// Send the sample once, as the sink's worker would.
async fn http(sink: &SinkConfig, m: &Message, now: DateTime<Utc>) -> Result<Sent, ProbeError> {
    crate::tls::init();
    let client = reqwest::Client::builder()
        .user_agent(concat!("roomcast/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(ProbeError::Client)?;
    let (attempt, answer) = worker::send(&client, sink, m, now).await;
    let answer = answer.map(|a| {
        let body = String::from_utf8_lossy(&a.body[..a.body.len().min(2048)]).into_owned();
        (a.status, body)
    });
    let verdict = match attempt {
        Attempt::Delivered => Ok(()),
        Attempt::Failed { reason } => Err(reason),
        Attempt::Retry { reason, after } => Err(match after {
            Some(a) => format!(
                "{reason} (the service asks to wait {}s; the running service would retry)",
                a.as_secs()
            ),
            None => format!("{reason} (the running service would retry)"),
        }),
    };
    Ok((answer, verdict))
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "--- sink `{}` ({}) · room {} · {} (sample)",
            self.sink, self.kind, self.room, self.subject
        )?;
        writeln!(f, "{}", self.request.trim_end())?;
        if let Some((status, body)) = &self.answer {
            writeln!(f, "\n--- answer: HTTP {status}")?;
            if !body.trim().is_empty() {
                writeln!(f, "{}", body.trim_end())?;
            }
        }
        match &self.verdict {
            Ok(()) => write!(f, "\ndelivered"),
            Err(why) => write!(f, "\nNOT delivered: {why}"),
        }
    }
}
