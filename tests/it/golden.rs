//! Golden files for every default template, in several zones and both
//! locales, including both DST switch days in New York and a booking that
//! crosses local midnight in Auckland (ahead of UTC across the date line).
//!
//! Regenerate after an intended change: `UPDATE_GOLDEN=1 cargo test golden`.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use roomcast::locale::{HourCycle, Locale, Privacy, Style};
use roomcast::model::{
    Booking, BookingKey, Change, ChangeKind, EventKind, Organizer, RoomEvent, RoomId,
};
use roomcast::render::Templates;
use roomcast::render::view;
use roomcast::schedule::Schedule;

struct Case {
    name: &'static str,
    tz: chrono_tz::Tz,
    /// Booking start and end (UTC).
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn cases() -> Vec<Case> {
    vec![
        // The seed example: 2019-03-29 18:00–20:00 in Shanghai.
        Case {
            name: "shanghai",
            tz: chrono_tz::Asia::Shanghai,
            start: utc(2019, 3, 29, 10, 0),
            end: utc(2019, 3, 29, 12, 0),
        },
        // 2026-03-08: clocks jump 02:00 EST → 03:00 EDT. 01:00 EST – 04:00 EDT is 2 h.
        Case {
            name: "new_york_spring_forward",
            tz: chrono_tz::America::New_York,
            start: utc(2026, 3, 8, 6, 0),
            end: utc(2026, 3, 8, 8, 0),
        },
        // 2026-11-01: clocks fall back 02:00 EDT → 01:00 EST. 01:00 EDT – 01:00 EST is 1 h.
        Case {
            name: "new_york_fall_back",
            tz: chrono_tz::America::New_York,
            start: utc(2026, 11, 1, 5, 0),
            end: utc(2026, 11, 1, 6, 0),
        },
        Case {
            name: "london",
            tz: chrono_tz::Europe::London,
            start: utc(2026, 7, 15, 13, 0),
            end: utc(2026, 7, 15, 14, 30),
        },
        // 23:30 NZDT Mon 2 Mar – 01:00 Tue 3 Mar; in UTC still Mon 10:30–12:00.
        Case {
            name: "auckland_date_line",
            tz: chrono_tz::Pacific::Auckland,
            start: utc(2026, 3, 2, 10, 30),
            end: utc(2026, 3, 2, 12, 0),
        },
    ]
}

const NOTICE_TEMPLATES: &[&str] = &[
    "text",
    "feishu_card",
    "feishu_post",
    "slack",
    "dingtalk",
    "wecom",
    "webhook",
];
const SNAPSHOT_TEMPLATES: &[&str] = &["panel", "room", "room_panel"];

fn render_case(t: &Templates, case: &Case, locale: Locale) -> String {
    let style = Style {
        tz: case.tz,
        locale,
        hour_cycle: if locale == Locale::En {
            HourCycle::H12
        } else {
            HourCycle::H24
        },
        privacy: Privacy::Organizer,
    };
    let room = RoomId::new("omm_golden");
    let name = Some("Golden Room");
    let booking = Booking {
        key: BookingKey::new("golden-uid", 0),
        start: case.start,
        end: case.end,
        rooms: vec![room.clone()].into(),
        organizer: Arc::new(Organizer {
            open_id: Some(Arc::from("ou_golden")),
            name: Some(Arc::from("Li Lei 李雷")),
            ..Organizer::default()
        }),
        title: None,
    };
    let now = case.start - Duration::minutes(20);
    let mut out = String::new();
    for kind in [
        ChangeKind::Booked,
        ChangeKind::Rescheduled,
        ChangeKind::Cancelled,
    ] {
        let change = Change {
            room: room.clone(),
            kind,
            booking: Arc::new(booking.clone()),
            previous: (kind == ChangeKind::Rescheduled).then(|| {
                (
                    case.start - Duration::hours(1),
                    case.end - Duration::hours(1),
                )
            }),
            event_id: Arc::from("golden-event"),
        };

        for tpl in NOTICE_TEMPLATES {
            let r = t
                .render(
                    tpl,
                    locale,
                    view::notice(&style, &change, &view::RoomMeta::named(name), now),
                )
                .unwrap_or_else(|e| panic!("{tpl}: {e}"));
            out.push_str(&format!(
                "=== {tpl} · {}\n{}\n",
                kind.as_str(),
                r.body.trim_end()
            ));
        }
    }
    // Snapshots: before (starting soon), during, and after the booking.
    let mut s = Schedule::new();
    s.apply(&RoomEvent {
        event_id: "e".into(),
        kind: EventKind::Created,
        event_time: now,
        key: booking.key.clone(),
        start: booking.start,
        end: booking.end,
        rooms: booking.rooms.to_vec(),
        organizer: (*booking.organizer).clone(),
        token: None,
    })
    .unwrap();
    for (label, at) in [
        ("before", case.start - Duration::minutes(5)),
        ("during", case.start + Duration::minutes(10)),
        ("after", case.end + Duration::minutes(1)),
    ] {
        let day_end = style.next_midnight(at);
        let v = s.view(&room, at, day_end, Duration::minutes(10));

        for tpl in SNAPSHOT_TEMPLATES {
            let r = t
                .render(
                    tpl,
                    locale,
                    view::snapshot(&style, &room, &view::RoomMeta::named(name), &v, at),
                )
                .unwrap_or_else(|e| panic!("{tpl}: {e}"));
            out.push_str(&format!("=== {tpl} · {label}\n{}\n", r.body.trim_end()));
        }
    }
    out
}

#[test]
fn default_templates_match_golden_files() {
    let t = Templates::load(None).expect("built-in templates");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for case in cases() {
        for locale in Locale::ALL {
            let got = render_case(&t, &case, locale);
            let path = dir.join(format!("{}.{}.txt", case.name, locale.tag()));
            if update {
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if got != want {
                mismatches.push(format!("{} differs:\n{got}", path.display()));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(UPDATE_GOLDEN=1 regenerates)",
        mismatches.join("\n\n")
    );
}

#[test]
fn dst_and_date_line_facts_hold_in_golden_output() {
    // Independent of the golden files: the facts the cases exist for.
    let t = Templates::load(None).unwrap();
    let c = &cases();
    let spring = render_case(&t, &c[1], Locale::En);
    assert!(
        spring.contains("1:00 AM–4:00 AM (2 h, EST→EDT)"),
        "{spring}"
    );
    // The live page counts real time left across the jump (1 h 50 min at
    // 1:10 AM EST until 4:00 AM EDT), not wall-clock hours.
    assert!(
        spring.contains(r#"<div class="remaining">1 h 50 min left</div>"#),
        "{spring}"
    );
    let fall = render_case(&t, &c[2], Locale::En);
    assert!(fall.contains("1:00 AM–1:00 AM (1 h, EDT→EST)"), "{fall}");
    let akl = render_case(&t, &c[4], Locale::En);
    assert!(
        akl.contains("Booked Mon, Mar 2 11:30 PM–Tue, Mar 3 1:00 AM (1 h 30 min, NZDT)"),
        "{akl}"
    );
    // The page's clock and date for Auckland are already the next day
    // while UTC is still on Monday.
    assert!(
        akl.contains(r#"datetime="2026-03-03T01:01:00+13:00">1:01 AM</time>"#)
            && akl.contains(r#"<div class="date">Tue, Mar 3</div>"#),
        "{akl}"
    );
    let sh = render_case(&t, &c[0], Locale::ZhCn);
    assert!(
        sh.contains("【Golden Room】新预订 3月29日 周五 18:00–20:00（2 小时）"),
        "{sh}"
    );
}
