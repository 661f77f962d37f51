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
    assert!(issues[0].message.contains("line"), "{}", issues[0].message);
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
