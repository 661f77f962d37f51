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

/// Repeats are dropped however long the list (ids are compared one by one
/// while there are few, then through a set), and a string with escapes
/// reads as the same text as without.
#[test]
fn repeated_rooms_and_escaped_strings_read_the_same_at_any_length() {
    let ids: Vec<String> = (0..12).map(|i| format!("omm_{i}")).collect();
    let mut listed: Vec<serde_json::Value> = ids.iter().map(|i| json!(i)).collect();
    // a repeat while few, one of the first eight once there are many, and
    // a repeat of the latest
    listed.insert(3, json!({"open_id": "omm_1"}));
    listed.insert(11, json!("omm_2"));
    listed.push(json!("omm_11"));
    let mut v = seed();
    v["event"]["meeting_rooms"] = json!(listed);
    let want: Vec<RoomId> = ids.iter().map(|i| RoomId::new(i)).collect();
    assert_eq!(room(&v).rooms, want);

    let plain = seed();
    let text = plain.to_string();
    let uid = plain["event"]["uid"].as_str().unwrap();
    let escaped = text
        .replacen(
            &format!("\"{uid}\""),
            &format!("\"\\u{:04x}{}\"", uid.as_bytes()[0], &uid[1..]),
            1,
        )
        .replacen(
            "\"third_party_meeting_room_event_created\"",
            "\"third_party_meeting_room_event\\u005fcreated\"",
            1,
        );
    assert!(
        escaped.contains("event\\u005fcreated")
            && escaped.contains(&format!("\\u00{:02x}", uid.as_bytes()[0])),
        "both strings escaped: {escaped}"
    );
    match (decode(text.as_bytes()), decode(escaped.as_bytes())) {
        (Ok(Decoded::Room(a)), Ok(Decoded::Room(b))) => assert_eq!(a, b),
        other => panic!("expected two equal events, got {other:?}"),
    }
}

#[test]
fn rooms_over_the_limit_are_counted_not_kept() {
    let with_rooms = |rooms: serde_json::Value| {
        let mut v = seed();
        v["event"]["meeting_rooms"] = rooms;
        serde_json::to_vec(&v).unwrap()
    };
    let many: Vec<serde_json::Value> = (0..300)
        .map(|i| json!({"open_id": format!("omm_{i}")}))
        .collect();
    match decode_limited(&with_rooms(json!(many)), 200).unwrap() {
        Decoded::TooManyRooms { listed, key, .. } => {
            assert_eq!(listed, 300);
            assert_eq!(key.uid.as_ref(), seed()["event"]["uid"].as_str().unwrap());
        }
        other => panic!("expected TooManyRooms, got {other:?}"),
    }
    // Exactly at the limit, and repeats of one room, are an event.
    let at_limit: Vec<serde_json::Value> = (0..200).map(|i| json!(format!("omm_{i}"))).collect();
    match decode_limited(&with_rooms(json!(at_limit)), 200).unwrap() {
        Decoded::Room(ev) => assert_eq!(ev.rooms.len(), 200),
        other => panic!("expected an event, got {other:?}"),
    }
    let repeats = vec![json!({"open_id": "omm_same"}); 1000];
    match decode_limited(&with_rooms(json!(repeats)), 200).unwrap() {
        Decoded::Room(ev) => assert_eq!(ev.rooms, vec![RoomId::new("omm_same")]),
        other => panic!("expected an event, got {other:?}"),
    }
    // A bad element is named by its index.
    match decode_limited(&with_rooms(json!(["omm_a", 7])), 200) {
        Err(DecodeError::Field { field, .. }) => assert_eq!(field, "event.meeting_rooms[1]"),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn a_delete_whose_end_is_before_its_start_is_still_a_delete() {
    let mut v = seed();
    v["event"]["type"] = json!("third_party_meeting_room_event_deleted");
    v["event"]["start"]["time_stamp"] = json!("1700000600000");
    v["event"]["end"]["time_stamp"] = json!("1700000000000");
    match decode(&serde_json::to_vec(&v).unwrap()).unwrap() {
        Decoded::Room(ev) => assert_eq!(ev.kind, EventKind::Deleted),
        other => panic!("expected a delete, got {other:?}"),
    }
    // A create or an update with such times is still malformed.
    v["event"]["type"] = json!("third_party_meeting_room_event_created");
    assert!(matches!(
        decode(&serde_json::to_vec(&v).unwrap()),
        Err(DecodeError::Field { .. })
    ));
}

#[test]
fn booking_times_outside_2000_to_2100_are_malformed_naming_the_field() {
    for (field, key, value) in [
        ("event.start.time_stamp", "start", "0"),
        ("event.end.time_stamp", "end", "4102444800001"),
    ] {
        let mut v = seed();
        if key == "start" {
            v["event"]["start"]["time_stamp"] = json!(value);
            v["event"]["end"]["time_stamp"] = json!("0");
        } else {
            v["event"]["end"]["time_stamp"] = json!(value);
        }
        match decode(&serde_json::to_vec(&v).unwrap()) {
            Err(DecodeError::Field { field: f, problem }) => {
                assert_eq!(f, field, "{problem}");
                assert!(problem.contains("2000 and 2100"), "{problem}");
            }
            other => panic!("{field}: expected a field error, got {other:?}"),
        }
    }
    // A delete carrying such times is still a delete.
    let mut v = seed();
    v["event"]["type"] = json!("third_party_meeting_room_event_deleted");
    v["event"]["start"]["time_stamp"] = json!("0");
    v["event"]["end"]["time_stamp"] = json!("0");
    assert!(matches!(
        decode(&serde_json::to_vec(&v).unwrap()),
        Ok(Decoded::Room(_))
    ));
}

/// The one-pass read of the usual path and the part-by-part read it falls
/// back to give the same answer for every payload the first can read (and
/// the first does read the usual payloads).
#[test]
fn the_one_pass_and_the_part_by_part_reads_agree() {
    let mut cases = vec![seed()];
    let mut v = seed();
    v["event"]["event_time"] = json!(1594979647635u64);
    v["event"]["meeting_rooms"] = json!(["omm_a", {"open_id": "omm_b"}, "omm_a", "omm_c"]);
    cases.push(v);
    let mut v = seed();
    v["event"]["type"] = json!(EventKind::DELETED);
    v["event"].as_object_mut().unwrap().remove("start");
    cases.push(v);
    let mut v = seed();
    v["event"]["type"] = json!("im.message.receive_v1");
    cases.push(v);
    let mut v = seed();
    v["event"].as_object_mut().unwrap().remove("uid");
    cases.push(v);
    let mut v = seed();
    v["event"].as_object_mut().unwrap().remove("type");
    cases.push(v);
    let mut v = seed();
    v["uuid"] = json!("");
    cases.push(v);
    let mut v = seed();
    v["event"]["uid"] = json!("a\"quoted\\uid\u{e9}");
    cases.push(v);
    cases.push(json!({"schema":"2.0","header":{"event_id":"x","event_type":"contact.user.created_v3"},"event":{"uid": "u"}}));
    cases.push(json!({
        "schema": "2.0",
        "header": {"event_id": "ev-2", "event_type": EventKind::UPDATED, "create_time": "1700000000000"},
        "event": {"uid": "u", "start": {"time_stamp": "1700000000000"}, "end": {"time_stamp": "1700003600000"},
                  "meeting_rooms": [{"open_id": "omm_a"}]}
    }));
    cases
        .push(json!({"schema":"2.0","header":{"event_id":"ev-3","event_type":EventKind::CREATED}}));
    cases.push(json!({"challenge":"c","token":"t","type":"url_verification"}));
    let mut one_pass = 0;
    for (i, v) in cases.iter().enumerate() {
        let text = v.to_string();
        for max_rooms in [1, 200] {
            let parts = parse_with_path::<Envelope<&RawValue>>(&text, "")
                .and_then(|env| decode_envelope(env, max_rooms));
            if let Ok(env) = serde_json::from_str::<Envelope<Body>>(&text) {
                one_pass += 1;
                assert_eq!(decode_envelope(env, max_rooms), parts, "case {i}: {text}");
            }
            assert_eq!(
                decode_limited(text.as_bytes(), max_rooms),
                parts,
                "case {i}"
            );
        }
    }
    // All but the v2 event of another type whose body is not a booking's.
    assert!(
        one_pass >= 2 * (cases.len() - 1),
        "{one_pass} read in one pass"
    );
}

#[test]
fn an_organizers_ids_may_be_null_or_absent() {
    let mut v = seed();
    v["event"]["organizer"] = json!({"open_id": "ou_a", "union_id": null, "name": "Ann"});
    let e = room(&v);
    assert_eq!(e.organizer.open_id.as_deref(), Some("ou_a"));
    assert_eq!(e.organizer.union_id, None);
    assert_eq!(e.organizer.user_id, None);
    assert_eq!(e.organizer.name.as_deref(), Some("Ann"));
    v["event"]["organizer"] = json!({});
    assert!(room(&v).organizer.is_unknown());
    v["event"]["organizer"] = json!({"open_id": "ou_\u{e9}\"x"});
    assert_eq!(room(&v).organizer.open_id.as_deref(), Some("ou_\u{e9}\"x"));
}
