//! Event JSON → [`RoomEvent`].
//!
//! Accepts the v1 `event_callback` envelope the platform uses for
//! third-party meeting-room events and tolerates the v2 (`"schema":"2.0"`)
//! envelope. Timestamps may be millisecond strings or numbers;
//! `original_time` may be an int or a string. Never panics: every problem is
//! a [`DecodeError`] naming the field.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

use crate::model::{BookingKey, EventKind, Organizer, RoomEvent, RoomId};

/// Why a payload could not be turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("field `{field}`: {problem}")]
    Field { field: String, problem: String },
    #[error("missing field `{0}`")]
    Missing(&'static str),
}

/// The outcome of decoding one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A meeting-room event.
    Room(Box<RoomEvent>),
    /// A well-formed event of another type (ignored; logged at debug level).
    Other {
        event_type: String,
        event_id: Option<String>,
    },
    /// A `url_verification` challenge (webhook mode).
    Challenge {
        challenge: String,
        token: Option<String>,
    },
}

/// Epoch milliseconds given as a string or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Millis(i64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("epoch milliseconds as a string or integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
                Ok(Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
                i64::try_from(v)
                    .map(Millis)
                    .map_err(|_| E::custom("timestamp out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Millis, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Millis(v as i64))
                } else {
                    Err(E::custom(format!("`{v}` is not whole milliseconds")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
                v.trim()
                    .parse::<i64>()
                    .map(Millis)
                    .map_err(|_| E::custom(format!("`{v}` is not epoch milliseconds")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    schema: Option<&'a str>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    header: Option<HeaderV2>,
    #[serde(default, borrow)]
    event: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct HeaderV2 {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    create_time: Option<Millis>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize)]
struct EventHead {
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    event_time: Option<Millis>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    original_time: Option<Millis>,
    #[serde(default)]
    start: Option<Stamp>,
    #[serde(default)]
    end: Option<Stamp>,
    #[serde(default)]
    meeting_rooms: Option<Vec<RoomRef>>,
    #[serde(default)]
    organizer: Option<Organizer>,
}

#[derive(Deserialize)]
struct Stamp {
    time_stamp: Millis,
}

/// A room reference: an object with `open_id` (as sent) or a bare string (as
/// the reference page's type column says).
#[derive(Deserialize)]
#[serde(untagged)]
enum RoomRef {
    Object { open_id: String },
    Id(String),
}

fn field_err<E: fmt::Display>(prefix: &str, e: serde_path_to_error::Error<E>) -> DecodeError {
    let path = e.path().to_string();
    let field = if path == "." || path.is_empty() {
        prefix.trim_end_matches('.').to_string()
    } else {
        format!("{prefix}{path}")
    };
    // serde_json appends " at line L column C"; keep only the problem.
    let mut problem = e.into_inner().to_string();
    if let Some(i) = problem.find(" at line ") {
        problem.truncate(i);
    }
    DecodeError::Field { field, problem }
}

/// Deserialize with plain serde_json; only on failure run again through
/// serde_path_to_error to learn which field was wrong (the slow path is
/// for bad input only).
fn parse_with_path<'a, T: Deserialize<'a>>(text: &'a str, prefix: &str) -> Result<T, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(text);
    match T::deserialize(&mut de).and_then(|v| de.end().map(|()| v)) {
        Ok(v) => Ok(v),
        Err(e) if e.is_syntax() || e.is_eof() => Err(DecodeError::Json(e.to_string())),
        Err(_) => {
            let mut de = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => Err(field_err(prefix, e)),
                Ok(_) => Err(DecodeError::Json("inconsistent input".into())),
            }
        }
    }
}

fn to_time(field: &'static str, ms: i64) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(|| DecodeError::Field {
        field: field.into(),
        problem: format!("{ms} is out of range"),
    })
}

/// Decode one event payload (plaintext JSON, after any webhook decryption).
pub fn decode(payload: &[u8]) -> Result<Decoded, DecodeError> {
    let text =
        std::str::from_utf8(payload).map_err(|e| DecodeError::Json(format!("not UTF-8: {e}")))?;
    let env: Envelope = parse_with_path(text, "")?;

    if env.kind.as_deref() == Some("url_verification") {
        let challenge = env.challenge.ok_or(DecodeError::Missing("challenge"))?;
        return Ok(Decoded::Challenge {
            challenge,
            token: env.token,
        });
    }

    let v2 = env.schema.is_some();
    let (event_type, event_id, token, header_time) = if v2 {
        let header = env.header.ok_or(DecodeError::Missing("header"))?;
        let t = header
            .event_type
            .ok_or(DecodeError::Missing("header.event_type"))?;
        (t, header.event_id, header.token, header.create_time)
    } else {
        if let Some(k) = env.kind.as_deref()
            && k != "event_callback"
        {
            return Ok(Decoded::Other {
                event_type: k.to_string(),
                event_id: env.uuid,
            });
        }
        let raw = env.event.ok_or(DecodeError::Missing("event"))?;
        let head: EventHead = parse_with_path(raw.get(), "event.")?;
        let t = head.kind.ok_or(DecodeError::Missing("event.type"))?;
        (t, env.uuid, env.token, None)
    };

    let Some(kind) = EventKind::from_type(&event_type) else {
        return Ok(Decoded::Other {
            event_type,
            event_id,
        });
    };
    let event_id = event_id.ok_or(if v2 {
        DecodeError::Missing("header.event_id")
    } else {
        DecodeError::Missing("uuid")
    })?;
    if event_id.is_empty() {
        return Err(DecodeError::Field {
            field: if v2 { "header.event_id" } else { "uuid" }.into(),
            problem: "is empty".into(),
        });
    }

    let raw = env.event.ok_or(DecodeError::Missing("event"))?;
    let body: Body = parse_with_path(raw.get(), "event.")?;

    let event_ms = match (body.event_time, header_time) {
        (Some(Millis(ms)), _) | (None, Some(Millis(ms))) => ms,
        (None, None) => return Err(DecodeError::Missing("event.event_time")),
    };
    let uid = body.uid.ok_or(DecodeError::Missing("event.uid"))?;
    if uid.is_empty() {
        return Err(DecodeError::Field {
            field: "event.uid".into(),
            problem: "is empty".into(),
        });
    }
    let original_time = body.original_time.map_or(0, |m| m.0);
    let event_time = to_time("event.event_time", event_ms)?;

    // A delete may omit times and rooms; created/updated need them.
    let (start, end) = match (body.start, body.end, kind) {
        (Some(s), Some(e), _) => (
            to_time("event.start.time_stamp", s.time_stamp.0)?,
            to_time("event.end.time_stamp", e.time_stamp.0)?,
        ),
        (None, _, EventKind::Deleted) | (_, None, EventKind::Deleted) => {
            (DateTime::<Utc>::UNIX_EPOCH, DateTime::<Utc>::UNIX_EPOCH)
        }
        (None, _, _) => return Err(DecodeError::Missing("event.start")),
        (_, None, _) => return Err(DecodeError::Missing("event.end")),
    };
    if end < start {
        return Err(DecodeError::Field {
            field: "event.end.time_stamp".into(),
            problem: "ends before event.start.time_stamp".into(),
        });
    }
    let rooms = match body.meeting_rooms {
        Some(list) => {
            let mut rooms: Vec<RoomId> = Vec::with_capacity(list.len());
            for (i, r) in list.into_iter().enumerate() {
                let id = match r {
                    RoomRef::Object { open_id } | RoomRef::Id(open_id) => open_id,
                };
                if id.is_empty() {
                    return Err(DecodeError::Field {
                        field: format!("event.meeting_rooms[{i}].open_id"),
                        problem: "is empty".into(),
                    });
                }
                let id = RoomId::new(&id);
                if !rooms.contains(&id) {
                    rooms.push(id);
                }
            }
            rooms
        }
        None if kind == EventKind::Deleted => Vec::new(),
        None => return Err(DecodeError::Missing("event.meeting_rooms")),
    };

    Ok(Decoded::Room(Box::new(RoomEvent {
        event_id,
        kind,
        event_time,
        key: BookingKey::new(&uid, original_time),
        start,
        end,
        rooms,
        organizer: body.organizer.unwrap_or_default(),
        token,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn seed() -> serde_json::Value {
        json!({
          "ts": "1502199207.7171419",
          "uuid": "bc447199585340d1f3728d26b1c0297a",
          "token": "41a9425ea7df4536a7623e38fa321bae",
          "type": "event_callback",
          "event": {
            "app_id": "cli_xxxxxxxx",
            "tenant_key": "xxxxxxx",
            "type": "third_party_meeting_room_event_created",
            "event_id": "d123a331-e2g2-v4n2-h7g7-xxxx",
            "event_time": "1594979647635",
            "uid": "bff6b51f-b7c1-40c6-b8ef-aef966c9ffc7",
            "original_time": 0,
            "start": { "time_stamp": "1553853600000" },
            "end":   { "time_stamp": "1553860800000" },
            "meeting_rooms": [
              { "open_id": "omm_c4e2da9493fbd2ceea4f37aae6b3ee78" },
              { "open_id": "omm_a5ab469c8e012e2a0b48fe4a8e344f94" }
            ],
            "organizer": {
              "open_id": "ou_xxxxxxxxxxxxxxxxxxxx",
              "user_id": "xxxxxxxx",
              "union_id": "on_xxxxxxxxxxxxx"
            }
          }
        })
    }

    fn dec(v: &serde_json::Value) -> Result<Decoded, DecodeError> {
        decode(v.to_string().as_bytes())
    }

    fn room(v: &serde_json::Value) -> RoomEvent {
        match dec(v) {
            Ok(Decoded::Room(e)) => *e,
            other => panic!("expected a room event, got {other:?}"),
        }
    }

    #[test]
    fn seed_example_decodes() {
        let e = room(&seed());
        assert_eq!(e.event_id, "bc447199585340d1f3728d26b1c0297a");
        assert_eq!(e.kind, EventKind::Created);
        assert_eq!(
            e.key,
            BookingKey::new("bff6b51f-b7c1-40c6-b8ef-aef966c9ffc7", 0)
        );
        assert_eq!(e.start.to_rfc3339(), "2019-03-29T10:00:00+00:00");
        assert_eq!(e.end.to_rfc3339(), "2019-03-29T12:00:00+00:00");
        assert_eq!(e.event_time.timestamp_millis(), 1594979647635);
        assert_eq!(e.rooms.len(), 2);
        assert_eq!(
            e.organizer.open_id.as_deref(),
            Some("ou_xxxxxxxxxxxxxxxxxxxx")
        );
        assert_eq!(e.token.as_deref(), Some("41a9425ea7df4536a7623e38fa321bae"));
    }

    #[test]
    fn numbers_and_strings_are_both_accepted() {
        let mut v = seed();
        v["event"]["event_time"] = json!(1594979647635u64);
        v["event"]["original_time"] = json!("1553853600000");
        v["event"]["start"]["time_stamp"] = json!(1553853600000u64);
        let e = room(&v);
        assert_eq!(e.key.original_time, 1553853600000);
        assert_eq!(e.start.timestamp_millis(), 1553853600000);
        assert_eq!(e.event_time.timestamp_millis(), 1594979647635);
    }

    #[test]
    fn room_ids_as_bare_strings_and_duplicates_are_tolerated() {
        let mut v = seed();
        v["event"]["meeting_rooms"] = json!(["omm_a", {"open_id": "omm_b"}, "omm_a"]);
        let e = room(&v);
        assert_eq!(e.rooms, vec![RoomId::new("omm_a"), RoomId::new("omm_b")]);
    }

    #[test]
    fn v2_envelope_is_tolerated() {
        let v = json!({
            "schema": "2.0",
            "header": {"event_id": "ev-2", "event_type": "third_party_meeting_room_event_updated",
                       "create_time": "1700000000000", "token": "t", "app_id": "cli_x", "tenant_key": "k"},
            "event": {"uid": "u", "original_time": 0,
                      "start": {"time_stamp": "1700000000000"}, "end": {"time_stamp": "1700003600000"},
                      "meeting_rooms": [{"open_id": "omm_a"}]}
        });
        let e = room(&v);
        assert_eq!(e.event_id, "ev-2");
        assert_eq!(e.kind, EventKind::Updated);
        assert_eq!(e.event_time.timestamp_millis(), 1700000000000);
        assert_eq!(e.token.as_deref(), Some("t"));
    }

    #[test]
    fn unknown_types_are_reported_not_errors() {
        let mut v = seed();
        v["event"]["type"] = json!("im.message.receive_v1");
        assert_eq!(
            dec(&v),
            Ok(Decoded::Other {
                event_type: "im.message.receive_v1".into(),
                event_id: Some("bc447199585340d1f3728d26b1c0297a".into())
            })
        );
        let v2 = json!({"schema":"2.0","header":{"event_id":"x","event_type":"contact.user.created_v3"},"event":{"start": 5}});
        assert!(matches!(dec(&v2), Ok(Decoded::Other { .. })));
    }

    #[test]
    fn challenge_is_recognised() {
        let v = json!({"challenge":"ajls384kdjx98XX","token":"xxxxxx","type":"url_verification"});
        assert_eq!(
            dec(&v),
            Ok(Decoded::Challenge {
                challenge: "ajls384kdjx98XX".into(),
                token: Some("xxxxxx".into())
            })
        );
    }

    #[test]
    fn deleted_may_omit_times_and_rooms() {
        let mut v = seed();
        v["event"]["type"] = json!(EventKind::DELETED);
        let ev = v["event"].as_object_mut().unwrap();
        ev.remove("start");
        ev.remove("end");
        ev.remove("meeting_rooms");
        let e = room(&v);
        assert_eq!(e.kind, EventKind::Deleted);
        assert!(e.rooms.is_empty());
    }

    fn err_of(v: &serde_json::Value) -> DecodeError {
        match dec(v) {
            Err(e) => e,
            Ok(d) => panic!("expected an error, got {d:?}"),
        }
    }

    #[test]
    fn each_malformed_field_is_named() {
        type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "event.event_time",
                Box::new(|v| v["event"]["event_time"] = json!("soon")),
            ),
            (
                "event.original_time",
                Box::new(|v| v["event"]["original_time"] = json!([1])),
            ),
            (
                "event.start.time_stamp",
                Box::new(|v| v["event"]["start"]["time_stamp"] = json!("x")),
            ),
            (
                "event.end.time_stamp",
                Box::new(|v| v["event"]["end"]["time_stamp"] = json!(true)),
            ),
            (
                "event.end.time_stamp",
                Box::new(|v| v["event"]["end"]["time_stamp"] = json!("1553850000000")),
            ),
            (
                "event.start.time_stamp",
                Box::new(|v| v["event"]["start"]["time_stamp"] = json!("99999999999999999")),
            ),
            (
                "event.meeting_rooms",
                Box::new(|v| v["event"]["meeting_rooms"] = json!("omm_a")),
            ),
            (
                "event.meeting_rooms[0].open_id",
                Box::new(|v| v["event"]["meeting_rooms"] = json!([{"open_id": ""}])),
            ),
            ("event.uid", Box::new(|v| v["event"]["uid"] = json!(7))),
            ("event.uid", Box::new(|v| v["event"]["uid"] = json!(""))),
            (
                "event.organizer.open_id",
                Box::new(|v| v["event"]["organizer"]["open_id"] = json!(1)),
            ),
            ("uuid", Box::new(|v| v["uuid"] = json!(1))),
            ("uuid", Box::new(|v| v["uuid"] = json!(""))),
        ];
        for (field, mutate) in cases {
            let mut v = seed();
            mutate(&mut v);
            match err_of(&v) {
                DecodeError::Field { field: f, .. } => assert_eq!(f, field, "for {v}"),
                other => panic!("{field}: expected a field error, got {other:?}"),
            }
        }
    }

    #[test]
    fn each_missing_field_is_named() {
        for (path, name) in [
            (&["uuid"][..], "uuid"),
            (&["event", "uid"][..], "event.uid"),
            (&["event", "event_time"][..], "event.event_time"),
            (&["event", "start"][..], "event.start"),
            (&["event", "end"][..], "event.end"),
            (&["event", "meeting_rooms"][..], "event.meeting_rooms"),
            (&["event", "type"][..], "event.type"),
            (&["event"][..], "event"),
        ] {
            let mut v = seed();
            let (last, parents) = path.split_last().unwrap();
            let mut obj = &mut v;
            for p in parents {
                obj = &mut obj[*p];
            }
            obj.as_object_mut().unwrap().remove(*last);
            assert_eq!(err_of(&v), DecodeError::Missing(name), "removing {path:?}");
        }
    }

    #[test]
    fn garbage_is_a_json_error_never_a_panic() {
        for bad in [
            &b""[..],
            b"{",
            b"not json",
            b"\xff\xfe",
            b"[]",
            b"null",
            b"{} trailing",
            b"{\"event\": 5, \"type\":\"event_callback\"}",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
