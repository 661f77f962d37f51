//! Event JSON → [`RoomEvent`].
//!
//! Accepts the v1 `event_callback` envelope the platform uses for
//! third-party meeting-room events and tolerates the v2 (`"schema":"2.0"`)
//! envelope. Timestamps may be millisecond strings or numbers;
//! `original_time` may be an int or a string. Never panics: every problem is
//! a [`DecodeError`] naming the field.

use std::borrow::Cow;
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
    /// A meeting-room event listing more distinct rooms than allowed (how
    /// many entries it listed).
    TooManyRooms {
        event_id: String,
        key: BookingKey,
        listed: usize,
        /// The verification token it carries, if any.
        token: Option<String>,
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

/// The envelope, its `event` read as `E`: a meeting-room [`Body`] in the
/// one pass of the usual path, or kept raw ([`RawValue`]) when that pass
/// failed and the payload is looked at part by part.
#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a, E: Deserialize<'de>"))]
struct Envelope<'a, E> {
    #[serde(default, borrow)]
    schema: Option<&'a str>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    header: Option<HeaderV2>,
    #[serde(default)]
    event: Option<E>,
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
struct Body<'a> {
    /// The v1 event type (v2 has it in the header).
    #[serde(default, rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(default)]
    event_time: Option<Millis>,
    #[serde(default, borrow)]
    uid: Option<Text<'a>>,
    #[serde(default)]
    original_time: Option<Millis>,
    #[serde(default)]
    start: Option<Stamp>,
    #[serde(default)]
    end: Option<Stamp>,
    /// Read apart, with a limit ([`parse_rooms`]).
    #[serde(default, borrow)]
    meeting_rooms: Option<&'a RawValue>,
    #[serde(default)]
    organizer: Option<Organizer>,
}

/// A JSON string, a slice of the payload unless it had escapes (most
/// fields are read only to be compared or copied once).
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Stamp {
    time_stamp: Millis,
}

/// A room reference: an object with `open_id` (as sent) or a bare string (as
/// the reference page's type column says). Read in one pass (serde's
/// untagged enums buffer every element first).
struct RoomRef<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for RoomRef<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RoomRef<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a room id or an object with `open_id`")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<RoomRef<'de>, E> {
                Ok(RoomRef(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RoomRef<'de>, E> {
                Ok(RoomRef(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RoomRef<'de>, E> {
                Ok(RoomRef(Cow::Owned(v)))
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RoomRef<'de>, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if &*key == "open_id" {
                        if id.is_some() {
                            return Err(de::Error::duplicate_field("open_id"));
                        }
                        id = Some(map.next_value::<Text<'de>>()?.0);
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                id.map(RoomRef)
                    .ok_or_else(|| de::Error::missing_field("open_id"))
            }
        }
        d.deserialize_any(V)
    }
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

/// Up to this many rooms, an event's list is de-duplicated by comparing
/// with each (no set to build).
const FEW_ROOMS: usize = 8;

/// An event's `meeting_rooms`: the distinct ids in order, or `Err(n)` when
/// there are more than `limit` (`n`: the entries listed).
fn parse_rooms(raw: &str, limit: usize) -> Result<Result<Vec<RoomId>, usize>, DecodeError> {
    struct Rooms<'c> {
        limit: usize,
        /// The element being read, once inside the list.
        at: &'c std::cell::Cell<Option<usize>>,
    }
    impl<'de> Visitor<'de> for Rooms<'_> {
        type Value = Result<Result<Vec<RoomId>, usize>, DecodeError>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of rooms")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut rooms: Vec<RoomId> = Vec::new();
            // Linear however many rooms an event names: a set of the ids
            // once there are more than a few (most events name one).
            let mut seen: std::collections::HashSet<Cow<'de, str>> =
                std::collections::HashSet::new();
            let mut listed = 0;
            self.at.set(Some(0));
            while let Some(RoomRef(id)) = seq.next_element()? {
                if id.is_empty() {
                    while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                    return Ok(Err(DecodeError::Field {
                        field: format!("event.meeting_rooms[{listed}].open_id"),
                        problem: "is empty".into(),
                    }));
                }
                listed += 1;
                self.at.set(Some(listed));
                let new = if rooms.len() < FEW_ROOMS {
                    !rooms.iter().any(|r| r.as_str() == &*id)
                } else {
                    if seen.is_empty() {
                        seen.extend(rooms.iter().map(|r| Cow::Owned(r.as_str().to_string())));
                    }
                    seen.insert(id.clone())
                };
                if new {
                    if rooms.len() == self.limit {
                        // Over the limit: count the rest, keep nothing.
                        while seq.next_element::<de::IgnoredAny>()?.is_some() {
                            listed += 1;
                        }
                        return Ok(Ok(Err(listed)));
                    }
                    rooms.push(RoomId::new(&id));
                }
            }
            Ok(Ok(Ok(rooms)))
        }
    }
    let at = std::cell::Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(raw);
    match de.deserialize_seq(Rooms { limit, at: &at }) {
        Ok(r) => r,
        Err(e) => {
            let mut problem = e.to_string();
            if let Some(i) = problem.find(" at line ") {
                problem.truncate(i);
            }
            let field = match at.get() {
                Some(i) => format!("event.meeting_rooms[{i}]"),
                None => "event.meeting_rooms".into(),
            };
            Err(DecodeError::Field { field, problem })
        }
    }
}

/// 2000-01-01 UTC.
fn plausible_from() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// 2100-01-01 UTC.
fn plausible_until() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(4_102_444_800, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn to_time(field: &'static str, ms: i64) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(|| DecodeError::Field {
        field: field.into(),
        problem: format!("{ms} is out of range"),
    })
}

/// Decode one event payload (plaintext JSON, after any webhook decryption).
pub fn decode(payload: &[u8]) -> Result<Decoded, DecodeError> {
    decode_limited(payload, usize::MAX)
}

/// [`decode`], keeping at most `max_rooms` distinct rooms: an event that
/// lists more is [`Decoded::TooManyRooms`], and the rest of its list is
/// only checked to be JSON, never kept (its cost stays bounded by the
/// limit, not by what the sender chose to list).
pub fn decode_limited(payload: &[u8], max_rooms: usize) -> Result<Decoded, DecodeError> {
    let text =
        std::str::from_utf8(payload).map_err(|e| DecodeError::Json(format!("not UTF-8: {e}")))?;
    // One pass on the usual path: the envelope with its body read as a
    // meeting-room event. Anything else (another event type with another
    // shape, a malformed payload) is read again part by part, which also
    // names the field at fault.
    match serde_json::from_str::<Envelope<Body>>(text) {
        Ok(env) => decode_envelope(env, max_rooms),
        Err(_) => decode_envelope(parse_with_path::<Envelope<&RawValue>>(text, "")?, max_rooms),
    }
}

/// An envelope's `event` as read so far.
trait EventPart<'a> {
    /// As a meeting-room event's body.
    fn body(self) -> Result<Body<'a>, DecodeError>;
    /// A v1 body: a meeting-room event's, or the type of another event.
    fn typed(self) -> Result<(Cow<'a, str>, Option<Body<'a>>), DecodeError>;
}

impl<'a> EventPart<'a> for Body<'a> {
    fn body(self) -> Result<Body<'a>, DecodeError> {
        Ok(self)
    }
    fn typed(mut self) -> Result<(Cow<'a, str>, Option<Body<'a>>), DecodeError> {
        match self.kind.take() {
            Some(t) => Ok((t.0, Some(self))),
            None => Err(DecodeError::Missing("event.type")),
        }
    }
}

impl<'a> EventPart<'a> for &'a RawValue {
    fn body(self) -> Result<Body<'a>, DecodeError> {
        parse_with_path(self.get(), "event.")
    }
    fn typed(self) -> Result<(Cow<'a, str>, Option<Body<'a>>), DecodeError> {
        match self.body() {
            Ok(b) => b.typed(),
            // Only if that fails is the type read alone (another event
            // type has another shape, and is ignored rather than
            // malformed).
            Err(e) => {
                let head: EventHead = parse_with_path(self.get(), "event.")?;
                let t = head.kind.ok_or(DecodeError::Missing("event.type"))?;
                if EventKind::from_type(&t).is_some() {
                    return Err(e);
                }
                Ok((Cow::Owned(t), None))
            }
        }
    }
}

fn decode_envelope<'a, E: EventPart<'a>>(
    env: Envelope<'a, E>,
    max_rooms: usize,
) -> Result<Decoded, DecodeError> {
    if env.kind.as_deref() == Some("url_verification") {
        let challenge = env.challenge.ok_or(DecodeError::Missing("challenge"))?;
        return Ok(Decoded::Challenge {
            challenge,
            token: env.token,
        });
    }

    let v2 = env.schema.is_some();
    // `rest`: a v2 body, read once the type is known to be ours.
    let (event_type, event_id, token, header_time, body, rest) = if v2 {
        let header = env.header.ok_or(DecodeError::Missing("header"))?;
        let t = header
            .event_type
            .ok_or(DecodeError::Missing("header.event_type"))?;
        (
            Cow::Owned(t),
            header.event_id,
            header.token,
            header.create_time,
            None,
            env.event,
        )
    } else {
        if let Some(k) = env.kind.as_deref()
            && k != "event_callback"
        {
            return Ok(Decoded::Other {
                event_type: k.to_string(),
                event_id: env.uuid,
            });
        }
        let (t, body) = env.event.ok_or(DecodeError::Missing("event"))?.typed()?;
        (t, env.uuid, env.token, None, body, None)
    };

    let Some(kind) = EventKind::from_type(&event_type) else {
        return Ok(Decoded::Other {
            event_type: event_type.into_owned(),
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

    let body: Body = match (body, rest) {
        (Some(b), _) => b,
        (None, Some(e)) => e.body()?,
        (None, None) => return Err(DecodeError::Missing("event")),
    };

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
    // A booking's times must be plausible: 2000 to 2100 (a 1970 zero-length
    // booking is a sender's bug, not a meeting). A delete is exempt: it
    // needs only its key.
    if kind != EventKind::Deleted {
        for (field, t) in [
            ("event.start.time_stamp", start),
            ("event.end.time_stamp", end),
        ] {
            if !(plausible_from()..plausible_until()).contains(&t) {
                return Err(DecodeError::Field {
                    field: field.into(),
                    problem: format!("{} is not between 2000 and 2100", t.to_rfc3339()),
                });
            }
        }
    }
    // A delete needs only its key: times it carries do not matter (a
    // cancellation refused here would be lost, redelivery or not).
    if end < start && kind != EventKind::Deleted {
        return Err(DecodeError::Field {
            field: "event.end.time_stamp".into(),
            problem: "ends before event.start.time_stamp".into(),
        });
    }
    let rooms = match body.meeting_rooms.filter(|r| r.get() != "null") {
        Some(raw) => match parse_rooms(raw.get(), max_rooms)? {
            Ok(rooms) => rooms,
            Err(listed) => {
                return Ok(Decoded::TooManyRooms {
                    event_id,
                    key: BookingKey::new(&uid, original_time),
                    listed,
                    token,
                });
            }
        },
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
mod tests;
