use super::view::ViewModel;
use super::*;
use serde_json::json;

#[test]
fn defaults_compile() {
    let t = Templates::load(None).expect("defaults");
    for l in Locale::ALL {
        for n in [
            "panel",
            "text",
            "room",
            "feishu_card",
            "feishu_post",
            "slack",
            "dingtalk",
            "wecom",
            "webhook",
        ] {
            assert!(t.has(n, l), "{n} {l:?}");
        }
    }
}

#[test]
fn file_names() {
    assert_eq!(
        parse_file_name("text.zh-CN.txt.hbs"),
        Ok(("text.zh-CN".into(), Format::Text))
    );
    assert_eq!(
        parse_file_name("panel.json.hbs"),
        Ok(("panel".into(), Format::Json))
    );
    assert!(parse_file_name("panel.hbs").is_err());
    assert!(parse_file_name("panel.fr.txt.hbs").is_err());
    assert!(parse_file_name("panel.json.tpl").is_err());
}

fn dir_with(files: &[(&str, &str)]) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "roomcast-tpl-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    for (f, s) in files {
        std::fs::write(d.join(f), s).unwrap();
    }
    d
}

#[test]
fn override_dir_replaces_and_adds() {
    let d = dir_with(&[
        ("text.en.txt.hbs", "X {{room.name}}"),
        ("mine.md.hbs", "*{{room.name}}*"),
    ]);
    let t = Templates::load(Some(&d)).unwrap();
    let data = json!({"room": {"name": "A<b>"}});
    assert_eq!(
        t.render("text", Locale::En, ViewModel(data.clone()))
            .unwrap()
            .body,
        "X A<b>"
    );
    assert_eq!(
        t.render("mine", Locale::ZhCn, ViewModel(data.clone()))
            .unwrap()
            .body,
        "*A<b>*"
    );
    assert!(t.origin("text.en").unwrap().ends_with("text.en.txt.hbs"));
}

#[test]
fn syntax_errors_name_file_and_line() {
    let d = dir_with(&[
        ("bad.txt.hbs", "line one\n{{#if x}}\nunclosed\n"),
        ("worse.json.hbs", "{{/each}}"),
    ]);
    let issues = Templates::load(Some(&d)).err().expect("errors");
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert!(issues[0].file.ends_with("bad.txt.hbs"));
    assert_eq!(issues[0].at, Some((2, 1)), "{}", issues[0]);
}

/// Issue 13 item 16: template errors read like config errors —
/// `file:line L, column C: message` and the line with a caret — and say
/// what to do, not which grammar rules the parser expected.
#[test]
fn syntax_errors_say_what_to_fix_with_a_caret() {
    let d = dir_with(&[
        ("a.json.hbs", "{\"a\": \"{{#if x}}\"}"),
        ("b.txt.hbs", "{{#each rooms}}\n  {{#if x}}\n {{/each}}\n"),
        ("c.json.hbs", "{\"a\": \"{{foo bar\"}"),
        ("d.txt.hbs", "x {{/if}}"),
    ]);
    let issues = Templates::load(Some(&d)).err().expect("errors");
    let shown: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let find = |f: &str| {
        shown
            .iter()
            .find(|s| s.contains(f))
            .unwrap_or_else(|| panic!("{f}: {shown:#?}"))
            .clone()
    };
    let a = find("a.json.hbs");
    assert!(
        a.contains("a.json.hbs:line 1, column 8: syntax error: the template ends inside this `{{#if}}`; close it with `{{/if}}`"),
        "{a}"
    );
    assert!(
        a.ends_with("    1 | {\"a\": \"{{#if x}}\"}\n      |        ^"),
        "{a}"
    );
    let b = find("b.txt.hbs");
    assert!(
        b.contains("b.txt.hbs:line 3, column 2: syntax error: `{{/each}}` comes while `{{#if}}` (line 2, column 3) is still open"),
        "{b}"
    );
    let c = find("c.json.hbs");
    assert!(
        c.contains("c.json.hbs:line 1, column 17: syntax error: the `{{` at line 1, column 8"),
        "{c}"
    );
    let d = find("d.txt.hbs");
    assert!(d.contains("closes a block that was never opened"), "{d}");
    for s in &shown {
        assert!(
            !s.contains("expected") && !s.contains("helper_block"),
            "jargon: {s}"
        );
    }
}

#[test]
fn json_values_are_escaped_and_output_checked() {
    let d = dir_with(&[
        ("j.json.hbs", "{\"t\": \"{{v}}\"}"),
        ("broken.json.hbs", "{\"t\": {{v}} }"),
    ]);
    let t = Templates::load(Some(&d)).unwrap();
    let body = t
        .render("j", Locale::En, ViewModel(json!({"v": "a \"q\"\n\\ <b>"})))
        .unwrap()
        .body;
    let back: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(back["t"], "a \"q\"\n\\ <b>");
    assert!(matches!(
        t.render("broken", Locale::En, ViewModel(json!({"v": "x y"}))),
        Err(RenderError::NotJson { .. })
    ));
}

#[test]
fn strict_mode_rejects_missing_variables() {
    let d = dir_with(&[("s.txt.hbs", "{{room.nope}}")]);
    let t = Templates::load(Some(&d)).unwrap();
    assert!(matches!(
        t.render("s", Locale::En, ViewModel(json!({"room": {}}))),
        Err(RenderError::Failed { .. })
    ));
    assert!(matches!(
        t.render("absent", Locale::En, ViewModel(json!({}))),
        Err(RenderError::Unknown { .. })
    ));
}

#[test]
fn an_instant_on_another_local_day_names_its_day() {
    use chrono::TimeZone;
    let style = crate::locale::Style {
        tz: chrono_tz::Asia::Shanghai,
        locale: Locale::En,
        hour_cycle: crate::locale::HourCycle::H24,
        privacy: Default::default(),
    };
    // Tuesday 10:00 in Shanghai; busy until Wednesday 17:00.
    let now = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
    let wed = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
    let today = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    assert_eq!(view::time(&style, wed, now)["when"], "Wed, Dec 2 17:00");
    assert_eq!(view::time(&style, today, now)["when"], "17:00");
}

#[test]
fn recursion_and_deep_nesting_are_refused_not_a_stack_overflow() {
    let dir = std::env::temp_dir().join(format!("roomcast-tpl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let refused = |file: &str, src: &str| {
        std::fs::write(dir.join(file), src).unwrap();
        let issues = match Templates::load(Some(&dir)) {
            Err(issues) => issues,
            Ok(_) => panic!("{file} should be refused"),
        };
        std::fs::remove_file(dir.join(file)).unwrap();
        issues
            .iter()
            .map(|i| i.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let m = refused(
        "loop.txt.hbs",
        r#"{{#*inline "a"}}x{{> a}}{{/inline}}{{> a}}"#,
    );
    assert!(m.contains("includes itself"), "{m}");
    let m = refused("selfie.txt.hbs", "{{> selfie}}");
    assert!(m.contains("includes itself"), "{m}");
    let deep = format!("{}x{}", "{{#if a}}".repeat(4000), "{{/if}}".repeat(4000));
    let m = refused("deep.txt.hbs", &deep);
    assert!(m.contains("nested deeper than 64"), "{m}");
    // Ordinary partials and nesting are fine.
    std::fs::write(
        dir.join("fine.txt.hbs"),
        r#"{{#*inline "row"}}{{name}}{{/inline}}{{#each next}}{{#if name}}{{> row}}{{/if}}{{/each}}"#,
    )
    .unwrap();
    assert!(Templates::load(Some(&dir)).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13 item 12: text from an event (an unknown room's id, the
/// organizer's id) or the directory (a title) must not become markup,
/// links or mentions in any chat service's message, built-in template or
/// not; data sinks get it as it is.
#[test]
fn event_text_is_inert_in_every_chat_format() {
    use crate::model::{Booking, BookingKey, Change, ChangeKind, Organizer, RoomId};
    use crate::render::Target;
    use chrono::TimeZone;
    use std::sync::Arc;

    let hostile_room = RoomId::new("<img src=x onerror=alert(1)>");
    let hostile_title = "<at id=all></at> **big** [click](http://evil.example) <!channel> <font color=red>x</font> ~~y~~ `z` # h & @all";
    let now = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
    let change = |open_id: &str| Change {
        room: hostile_room.clone(),
        kind: ChangeKind::Rescheduled,
        booking: Arc::new(Booking {
            key: BookingKey::new("uid-<b>", 0),
            start: now,
            end: now + chrono::Duration::hours(1),
            rooms: vec![hostile_room.clone()].into(),
            organizer: Arc::new(Organizer {
                open_id: Some(Arc::from(open_id)),
                name: Some(Arc::from("<at id=all></at>")),
                ..Organizer::default()
            }),
            title: Some(hostile_title.into()),
        }),
        previous: Some((now - chrono::Duration::hours(1), now)),
        event_id: Arc::from("ev-1"),
    };
    let t = Templates::load(None).unwrap();
    for locale in Locale::ALL {
        let style = crate::locale::Style {
            tz: chrono_tz::America::New_York,
            locale,
            hour_cycle: crate::locale::HourCycle::H24,
            privacy: crate::locale::Privacy::Title,
        };
        for name in [
            names::FEISHU_CARD,
            names::FEISHU_POST,
            names::SLACK,
            names::DINGTALK,
            names::WECOM,
            names::TEXT,
        ] {
            let vm = view::notice(&style, &change("all"), &view::RoomMeta::default(), now);
            let body = t.render_for(name, locale, vm, Target::Chat).unwrap().body;
            // Every string the receiver will read, after JSON decoding.
            let text = match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(v) => strings(&v).join("\n"),
                Err(_) => body.clone(),
            };
            for bad in [
                "<img",
                "<at id=all",
                "\"user_id\":\"all\"",
                "**big",
                "](",
                "<!channel>",
                "<font color=red",
                "~~y",
                "`z`",
                "# h",
                "@all",
            ] {
                assert!(
                    !text.contains(bad) && !body.contains(bad),
                    "{name} {locale:?} lets `{bad}` through:\n{text}"
                );
            }
            assert!(
                text.contains("＜img src=x onerror=alert(1)＞"),
                "{name}: {text}"
            );
            assert!(
                text.contains("America/New_York") || !body.contains("New"),
                "{name}: {text}"
            );
        }
        // A well-formed open id is still mentioned.
        let vm = view::notice(
            &style,
            &change("ou_1a2b3c"),
            &view::RoomMeta::default(),
            now,
        );
        let card = t
            .render_for(names::FEISHU_CARD, locale, vm, Target::Chat)
            .unwrap()
            .body;
        assert!(card.contains("<at id=ou_1a2b3c></at>"), "{card}");
        // Data sinks get the text as it is (JSON-escaped only).
        let vm = view::notice(&style, &change("all"), &view::RoomMeta::default(), now);
        let hook = t.render(names::WEBHOOK, locale, vm).unwrap().body;
        let v: serde_json::Value = serde_json::from_str(&hook).unwrap();
        assert_eq!(v["room"]["id"], "<img src=x onerror=alert(1)>");
        assert_eq!(v["booking"]["title"], hostile_title);
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a.iter().flat_map(strings).collect(),
        serde_json::Value::Object(o) => o
            .iter()
            .flat_map(|(k, v)| {
                let mut out = strings(v);
                if v.is_string() {
                    out.push(format!("\"{k}\":{v}"));
                }
                out
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn inert_keeps_underscores_inside_words_only() {
    assert_eq!(inert("America/New_York ou_1a"), "America/New_York ou_1a");
    assert_eq!(inert("_x_ a_ _b"), "＿x＿ a＿ ＿b");
    assert_eq!(inert(&inert("<a>_b_")), inert("<a>_b_"));
}

/// Issue 13 item 18: an instant in another year names its year.
#[test]
fn an_instant_in_another_year_names_its_year() {
    use chrono::TimeZone;
    let style = |locale| crate::locale::Style {
        tz: chrono_tz::Asia::Shanghai,
        locale,
        hour_cycle: crate::locale::HourCycle::H24,
        privacy: Default::default(),
    };
    // Thursday Dec 31 2026, 10:00 in Shanghai.
    let now = chrono::Utc.with_ymd_and_hms(2026, 12, 31, 2, 0, 0).unwrap();
    let next_year = chrono::Utc.with_ymd_and_hms(2027, 1, 2, 1, 0, 0).unwrap();
    let tomorrow = chrono::Utc.with_ymd_and_hms(2026, 12, 30, 1, 0, 0).unwrap();
    assert_eq!(
        view::time(&style(Locale::En), next_year, now)["when"],
        "Sat, Jan 2, 2027 09:00"
    );
    assert_eq!(
        view::time(&style(Locale::ZhCn), next_year, now)["date"],
        "2027年1月2日 周六"
    );
    assert_eq!(
        view::time(&style(Locale::En), tomorrow, now)["date"],
        "Wed, Dec 30"
    );
    // A span over New Year names the end's year.
    let late = chrono::Utc
        .with_ymd_and_hms(2026, 12, 31, 15, 0, 0)
        .unwrap();
    assert_eq!(
        style(Locale::En).range(late, late + chrono::Duration::hours(2)),
        "23:00–Fri, Jan 1, 2027 01:00"
    );
}

/// Issue 13 item 14b (rest): partials that include each other, across
/// templates or between inline partials, are refused at load (`check`),
/// not left to overflow the stack at render; so is a partial named by an
/// expression, which no check can follow. Plain partial use still loads.
#[test]
fn mutual_recursion_between_partials_is_refused() {
    for (files, want) in [
        (
            vec![
                ("a.txt.hbs", "A {{> b}}"),
                ("b.txt.hbs", "B {{> c}}"),
                ("c.txt.hbs", "C {{> a}}"),
            ],
            "partials include each other (a → b → c → a)",
        ),
        (
            vec![(
                "i.txt.hbs",
                "{{#*inline \"x\"}}{{> y}}{{/inline}}{{#*inline \"y\"}}{{> x}}{{/inline}}{{> x}}",
            )],
            "partials include each other (i#x → i#y → i#x)",
        ),
        (
            vec![("d.txt.hbs", "{{> (lookup . \"p\")}}")],
            "a partial named by an expression",
        ),
    ] {
        let d = dir_with(&files);
        let issues = Templates::load(Some(&d)).err().expect("refused");
        let shown: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        assert!(shown.iter().any(|s| s.contains(want)), "{want}: {shown:#?}");
    }
    let d = dir_with(&[
        ("outer.txt.hbs", "[{{> inner}}] [{{> inner}}]"),
        ("inner.txt.hbs", "{{#*inline \"z\"}}z{{/inline}}{{> z}}"),
    ]);
    let t = Templates::load(Some(&d)).expect("partials without a cycle load");
    assert_eq!(
        t.render("outer", Locale::En, ViewModel(json!({})))
            .unwrap()
            .body,
        "[z] [z]"
    );
}
