use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;
use crate::locale::Locale;
use crate::model::RoomId;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(text: &str) -> Config {
    match parse(text, Path::new("."), &env(&[("SECRET", "s3cr3t-value")])) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    }
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    match parse(text, Path::new("."), &env(&[("SECRET", "s3cr3t-value")])) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => e,
    }
}

const MIN: &str = "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n";

#[test]
fn minimal_config_gets_defaults() {
    let c = ok(MIN);
    assert_eq!(c.source.kind, SourceKind::Replay);
    assert_eq!(c.display.tz, chrono_tz::UTC);
    assert_eq!(c.schedule.starting_soon, chrono::Duration::minutes(10));
    assert!(c.sinks.is_empty());
}

#[test]
fn shipped_config_is_valid() {
    let text = include_str!("../../config.toml");
    let c = parse(text, Path::new(env!("CARGO_MANIFEST_DIR")), &env(&[])).expect("shipped config");
    assert_eq!(c.source.kind, SourceKind::Replay);
    assert!(!c.rooms.is_empty());
}

#[test]
fn unknown_key_names_key_and_line() {
    let i = issues(&format!(
        "{MIN}\n[display]\ntime_zone = \"UTC\"\ncolour = \"red\"\n"
    ));
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].line, Some(7));
    assert!(i[0].message.contains("colour"), "{:?}", i[0]);
    assert_eq!(i[0].key, "display.colour");
}

#[test]
fn wrong_type_names_key_and_line() {
    let i = issues(&format!(
        "{MIN}[schedule]\nignore_unknown_rooms = \"yes\"\n"
    ));
    assert_eq!(i[0].key, "schedule.ignore_unknown_rooms");
    assert_eq!(i[0].line, Some(5));
}

#[test]
fn every_structural_problem_is_reported_at_once() {
    let i = issues(&format!(
        "{MIN}[display]\ncolour = \"red\"\n[schedule]\nignore_unknown_rooms = \"yes\"\n[[sinks]]\nname = \"a\"\nkind = \"stdout\"\n[[sinks]]\nname = \"b\"\nkind = \"stdout\"\ntemplat = \"text\"\n"
    ));
    let got: Vec<(&str, Option<usize>)> = i.iter().map(|x| (x.key.as_str(), x.line)).collect();
    assert_eq!(
        got,
        [
            ("display.colour", Some(5)),
            ("schedule.ignore_unknown_rooms", Some(7)),
            ("sinks[1].templat", Some(14)),
        ],
        "{i:?}"
    );
    // Structural and semantic problems come in the same round.
    let i = issues(&format!(
        "{MIN}bogus = 1\n[display]\ntime_zone = \"Mars/Base\"\n"
    ));
    let got: Vec<&str> = i.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(got, ["source.bogus", "display.time_zone"], "{i:?}");
    // A required key of the wrong type is reported once, not again as
    // missing; a typo for a required key shows both the typo and the
    // missing key.
    let i = issues("[source]\nkind = 5\n");
    assert_eq!(i.len(), 1, "{i:?}");
    assert_eq!(i[0].key, "source.kind");
    let i = issues("[source]\nkidn = \"replay\"\n");
    let keys: Vec<&str> = i.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["source", "source.kidn"], "by line: {i:?}");
    assert!(i[0].message.contains("missing field `kind`"), "{i:?}");
}

#[test]
fn syntax_error_has_a_line() {
    let i = issues("[source\nkind = 1\n");
    assert_eq!(i[0].line, Some(1));
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    let text = format!(
        r#"{MIN}
[display]
time_zone = "Mars/Olympus"
locale = "fr"
clock = "25h"

[schedule]
starting_soon = "soonish"

[[rooms]]
id = "omm_a"
panels = ["nope", "chat"]

[[rooms]]
id = "omm_a"
time_zone = "Nowhere/Land"

[[sinks]]
name = "chat"
kind = "slack"
url = "not a url"

[[sinks]]
name = "chat"
kind = "carrier-pigeon"

[[sinks]]
name = "bot"
kind = "feishu"
url = "ftp://example.com/x"
secret_env = "MISSING_SECRET"
changes = ["booked", "exploded"]

[[sinks]]
name = "f"
kind = "file"

[[sinks]]
name = "p"
kind = "panel"
"#
    );
    let got: Vec<(String, Option<usize>)> =
        issues(&text).into_iter().map(|i| (i.key, i.line)).collect();
    let want: Vec<(&str, usize)> = vec![
        ("display.time_zone", 6),
        ("display.locale", 7),
        ("display.clock", 8),
        ("schedule.starting_soon", 11),
        ("rooms[0].panels", 15),
        ("rooms[0].panels", 15),
        ("rooms[1].id", 18),
        ("rooms[1].time_zone", 19),
        ("sinks[0].url", 24),
        ("sinks[1].name", 27),
        ("sinks[1].kind", 28),
        ("sinks[2].url", 33),
        ("sinks[2].secret_env", 34),
        ("sinks[2].changes", 35),
        ("sinks[3].path", 39),
        ("sinks[4].url", 43),
    ];
    let want: Vec<(String, Option<usize>)> = want
        .into_iter()
        .map(|(k, l)| (k.to_string(), Some(l)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn missing_env_names_the_variable_not_a_value() {
    let text = "[source]\nkind = \"lark\"\n[platform]\napp_id = \"cli_a\"\napp_secret_env = \"APP_SECRET\"\n";
    let i = issues(text);
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].key, "platform.app_secret_env");
    assert_eq!(i[0].line, Some(5));
    assert!(i[0].message.contains("APP_SECRET"));
    let c = parse(text, Path::new("."), &env(&[("APP_SECRET", "hunter2")])).unwrap();
    let p = c.platform.unwrap();
    assert_eq!(p.base_url.as_str(), "https://open.feishu.cn/");
    assert!(
        !format!("{p:?}").contains("hunter2"),
        "secrets are redacted in Debug"
    );
}

#[test]
fn domains() {
    let with = |d: &str| {
        ok(&format!(
            "{MIN}[platform]\napp_id = \"cli_a\"\ndomain = \"{d}\"\n"
        ))
        .platform
        .unwrap()
        .base_url
        .to_string()
    };
    assert_eq!(with("lark"), "https://open.larksuite.com/");
    assert_eq!(with("http://127.0.0.1:9000"), "http://127.0.0.1:9000/");
    let i = issues(&format!(
        "{MIN}[platform]\napp_id = \"cli_a\"\ndomain = \"larkk\"\n"
    ));
    assert_eq!(i[0].key, "platform.domain");
}

#[test]
fn style_precedence_sink_over_room_over_default() {
    let c = ok(&format!(
        r#"{MIN}[display]
time_zone = "Asia/Shanghai"
locale = "zh-CN"
[[rooms]]
id = "omm_ny"
time_zone = "America/New_York"
locale = "en"
[[sinks]]
name = "london"
kind = "stdout"
time_zone = "Europe/London"
"#
    ));
    let room = c.room(&RoomId::new("omm_ny"));
    assert_eq!(c.style(None, None).tz, chrono_tz::Asia::Shanghai);
    assert_eq!(c.style(room, None).tz, chrono_tz::America::New_York);
    let s = c.style(room, Some(&c.sinks[0]));
    assert_eq!(s.tz, chrono_tz::Europe::London);
    assert_eq!(s.locale, Locale::En);
    assert_eq!(c.locales(), vec![Locale::ZhCn, Locale::En]);
}

#[test]
fn rates_and_quiet_hours() {
    assert_eq!(
        RateLimit::parse("5/s"),
        Ok(RateLimit {
            count: 5,
            period: Duration::from_secs(1)
        })
    );
    assert_eq!(
        RateLimit::parse("100/min").map(|r| r.period),
        Ok(Duration::from_secs(60))
    );
    for bad in ["5", "0/s", "x/s", "5/fortnight"] {
        assert!(RateLimit::parse(bad).is_err(), "{bad}");
    }
    let q = QuietHours::parse("22:00-07:00").unwrap();
    let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
    assert!(q.contains(t(23, 0)) && q.contains(t(0, 0)) && q.contains(t(6, 59)));
    assert!(!q.contains(t(7, 0)) && !q.contains(t(12, 0)) && !q.contains(t(21, 59)));
    let day = QuietHours::parse("12:00-13:30").unwrap();
    assert!(day.contains(t(12, 0)) && !day.contains(t(13, 30)));
    assert!(QuietHours::parse("22:00").is_err() && QuietHours::parse("25:00-01:00").is_err());
    let c = ok(&format!(
        "{MIN}[[sinks]]\nname = \"f\"\nkind = \"feishu\"\nurl = \"https://open.feishu.cn/open-apis/bot/v2/hook/x\"\n"
    ));
    assert_eq!(
        c.sinks[0].rate_limits.len(),
        2,
        "Feishu defaults: 5/s and 100/min"
    );
    let i = issues(&format!(
        "{MIN}[[sinks]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nrate_limit = [\"fast\"]\nquiet_hours = \"late\"\n"
    ));
    let keys: Vec<_> = i.iter().map(|x| (x.key.as_str(), x.line)).collect();
    assert_eq!(
        keys,
        [
            ("sinks[0].rate_limit", Some(8)),
            ("sinks[0].quiet_hours", Some(9))
        ]
    );
}

/// Issue 15: `min_interval` spaces panel pushes; a chat sink cannot have
/// one (named with its line), nor can a duration be malformed.
#[test]
fn min_interval_is_for_panel_sinks() {
    let c = ok(&format!(
        "{MIN}[[sinks]]\nname = \"p\"\nkind = \"panel\"\nurl = \"http://127.0.0.1/x\"\nmin_interval = \"3m\"\n"
    ));
    assert_eq!(c.sinks[0].min_interval, Some(Duration::from_secs(180)));
    let i = issues(&format!(
        "{MIN}[[sinks]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nmin_interval = \"3m\"\n[[sinks]]\nname = \"p\"\nkind = \"panel\"\nurl = \"http://127.0.0.1/x\"\nmin_interval = \"soon\"\n"
    ));
    let keys: Vec<_> = i.iter().map(|x| (x.key.as_str(), x.line)).collect();
    assert_eq!(
        keys,
        [
            ("sinks[0].min_interval", Some(8)),
            ("sinks[1].min_interval", Some(13))
        ]
    );
    assert!(
        i[0].message.contains("payload = \"snapshot\""),
        "{}",
        i[0].message
    );
}

/// Issue 15: `reminders` and `digest` belong to notice sinks; every
/// mistake is named with its key and line.
#[test]
fn reminders_and_digests_are_checked() {
    let c = ok(&format!(
        "{MIN}[[sinks]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nreminders = [\"10m\", \"1h\", \"10m\"]\ndigest = \"08:30\"\ndigest_days = [\"Mon\", \"saturday\"]\n"
    ));
    let s = &c.sinks[0];
    assert_eq!(
        s.reminders,
        [Duration::from_secs(3600), Duration::from_secs(600)],
        "longest first, once each"
    );
    let d = s.digest.as_ref().unwrap();
    assert_eq!(d.at, chrono::NaiveTime::from_hms_opt(8, 30, 0).unwrap());
    assert_eq!(d.days, [chrono::Weekday::Mon, chrono::Weekday::Sat]);
    assert_eq!(d.template, "digest_slack");
    let i = issues(&format!(
        "{MIN}[[sinks]]\nname = \"p\"\nkind = \"panel\"\nurl = \"http://127.0.0.1/x\"\nreminders = [\"10m\"]\ndigest = \"08:30\"\n\
         [[sinks]]\nname = \"s\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nreminders = [\"0s\", \"soon\"]\ndigest = \"8.30\"\n\
         [[sinks]]\nname = \"t\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\ndigest = \"08:30\"\ndigest_days = [\"funday\"]\n\
         [[sinks]]\nname = \"u\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\ndigest_days = [\"mon\"]\n"
    ));
    let keys: Vec<_> = i.iter().map(|x| (x.key.as_str(), x.line)).collect();
    assert_eq!(
        keys,
        [
            ("sinks[0].reminders", Some(8)),
            ("sinks[0].digest", Some(9)),
            ("sinks[1].reminders", Some(14)),
            ("sinks[1].reminders", Some(14)),
            ("sinks[1].digest", Some(15)),
            ("sinks[2].digest_days", Some(21)),
            ("sinks[3].digest_days", Some(26)),
        ],
        "{i:#?}"
    );
}

/// Issue 15: boards name their rooms or levels, are reachable by a URL
/// segment, and never show for free a room that needs a token.
#[test]
fn boards_are_checked() {
    let room = |id: &str, extra: &str| format!("[[rooms]]\nid = \"{id}\"\n{extra}");
    let c = ok(&format!(
        "{MIN}{}{}[[boards]]\nname = \"lobby-1\"\ntitle = \"Lobby\"\nrooms = [\"omm_a\", \"omm_b\"]\nlocale = \"zh-CN\"\ngroup_by = \"floor\"\n",
        room("omm_a", ""),
        room("omm_b", "")
    ));
    let b = &c.boards[0];
    assert_eq!(b.name, "lobby-1");
    assert_eq!(b.rooms.len(), 2);
    assert!(b.group_by_floor);
    assert_eq!(c.board_style(b, None).locale, crate::locale::Locale::ZhCn);
    let i = issues(&format!(
        "{MIN}{}[[boards]]\nname = \"lobby 1\"\nrooms = [\"omm_x\"]\n\
         [[boards]]\nname = \"empty\"\n\
         [[boards]]\nname = \"secret\"\nrooms = [\"omm_a\"]\n\
         [[boards]]\nname = \"floors\"\nlevels = [\"omb_1\"]\ngroup_by = \"wing\"\n",
        room("omm_a", "token_env = \"SECRET\"\n")
    ));
    let keys: Vec<_> = i.iter().map(|x| (x.key.as_str(), x.line)).collect();
    assert_eq!(
        keys,
        [
            ("boards[0].name", Some(8)),
            ("boards[1]", Some(10)),
            ("boards[2]", Some(12)),
            ("boards[3]", Some(15)),
            ("boards[3].levels", Some(17)),
            ("boards[3].group_by", Some(18)),
        ],
        "{i:#?}"
    );
}

#[test]
fn panel_headers_read_env() {
    let c = ok(&format!(
        "{MIN}[[sinks]]\nname = \"p\"\nkind = \"panel\"\nurl = \"http://127.0.0.1/x\"\nheaders = {{ Authorization = \"Bearer ${{SECRET}}\", X-A = \"b\" }}\n"
    ));
    assert_eq!(c.sinks[0].payload, Payload::Snapshot);
    let auth = c.sinks[0]
        .headers
        .iter()
        .find(|h| h.name == "Authorization")
        .unwrap();
    assert_eq!(
        ExposeSecret::expose_secret(&auth.value),
        "Bearer s3cr3t-value"
    );
    assert_eq!(auth.shown, "Bearer ${SECRET}");
    assert!(!format!("{:?}", c.sinks[0]).contains("s3cr3t"));
}

#[test]
fn sync_is_on_with_credentials_and_checked() {
    let lark =
        "[source]\nkind = \"lark\"\n[platform]\napp_id = \"cli_a\"\napp_secret_env = \"SECRET\"\n";
    let c = ok(lark);
    let s = c.sync.expect("on by default with credentials");
    assert_eq!(
        (s.interval, s.days, s.stale_after),
        (Duration::from_secs(300), 7, Duration::from_secs(900))
    );
    assert!(ok(MIN).sync.is_none(), "no credentials: off");
    assert!(
        ok(&format!("{lark}[sync]\ninterval = \"off\"\n"))
            .sync
            .is_none()
    );
    let c = ok(&format!(
        "{lark}[sync]\ninterval = \"2m\"\ndays = 14\nstale_after = \"1h\"\n"
    ));
    let s = c.sync.unwrap();
    assert_eq!(
        (s.interval.as_secs(), s.days, s.stale_after.as_secs()),
        (120, 14, 3600)
    );
    let i = issues(&format!("{lark}[sync]\ninterval = \"5s\"\ndays = 31\n"));
    let got: Vec<(&str, Option<usize>)> = i.iter().map(|x| (x.key.as_str(), x.line)).collect();
    assert_eq!(
        got,
        [("sync.interval", Some(7)), ("sync.days", Some(8))],
        "{i:?}"
    );
    let i = issues(&format!("{MIN}[sync]\ninterval = \"5m\"\n"));
    assert_eq!(i[0].key, "sync.interval");
    assert!(i[0].message.contains("app_secret_env"), "{i:?}");
    let i = issues(&format!("{MIN}[rooms_from]\nlevels = [\"omb_1\"]\n"));
    assert_eq!(i[0].key, "rooms_from", "{i:?}");
}

#[test]
fn privacy_room_and_sink_the_stricter_wins() {
    let c = ok(&format!(
        "{MIN}[display]\nprivacy = \"busy\"\n[[rooms]]\nid = \"omm_t\"\nprivacy = \"title\"\n[[rooms]]\nid = \"omm_d\"\n[[sinks]]\nname = \"s\"\nkind = \"stdout\"\nprivacy = \"organizer\"\n"
    ));
    use crate::locale::Privacy;
    let t = c.room(&RoomId::new("omm_t"));
    let d = c.room(&RoomId::new("omm_d"));
    let s = Some(&c.sinks[0]);
    assert_eq!(c.style(t, None).privacy, Privacy::Title);
    assert_eq!(
        c.style(t, s).privacy,
        Privacy::Organizer,
        "a sink shows less"
    );
    assert_eq!(c.style(d, None).privacy, Privacy::Busy, "the default");
    assert_eq!(
        c.style(d, s).privacy,
        Privacy::Busy,
        "never more than the room"
    );
    let i = issues(&format!(
        "{MIN}[[rooms]]\nid = \"omm_x\"\nprivacy = \"everything\"\n"
    ));
    assert_eq!(
        (i[0].key.as_str(), i[0].line),
        ("rooms[0].privacy", Some(6))
    );
    assert!(i[0].message.contains("busy"), "{i:?}");
}

#[test]
fn listen_takes_addresses_as_people_write_them() {
    let at = |listen: &str| {
        ok(&format!("{MIN}[http]\nlisten = \"{listen}\"\n"))
            .http
            .map(|h| h.listen.to_string())
    };
    assert_eq!(at("127.0.0.1:8080").as_deref(), Some("127.0.0.1:8080"));
    assert_eq!(at(":8080").as_deref(), Some("0.0.0.0:8080"));
    assert_eq!(at("[::1]:8080").as_deref(), Some("[::1]:8080"));
    let local = at("localhost:8080").unwrap_or_default();
    assert!(
        local == "127.0.0.1:8080" || local == "[::1]:8080",
        "{local}"
    );
    let bad = issues(&format!("{MIN}[http]\nlisten = \"8080\"\n"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    let text = format!("{:?}", bad[0]);
    assert!(
        text.contains("http.listen") && text.contains(":8080"),
        "{text}"
    );
}

/// Issue 13 item 16: a sink naming a room `[[rooms]]` does not list is a
/// problem with its line and the closest id.
#[test]
fn a_typo_in_a_sinks_rooms_is_caught() {
    let text = format!(
        "{MIN}[[rooms]]\nid = \"omm_lobby_east\"\n[[rooms]]\nid = \"omm_board\"\n[[sinks]]\nname = \"s\"\nkind = \"stdout\"\nrooms = [\"omm_board\", \"omm_loby_east\"]\n"
    );
    let i = issues(&text);
    assert_eq!(i.len(), 1, "{i:?}");
    assert_eq!(i[0].key, "sinks[0].rooms");
    assert_eq!(i[0].line, Some(11));
    assert!(
        i[0].message.contains(
            "`omm_loby_east` is not a room in [[rooms]] (did you mean `omm_lobby_east`?)"
        ),
        "{}",
        i[0].message
    );
    // Nothing to check against without [[rooms]].
    ok(&format!(
        "{MIN}[[sinks]]\nname = \"s\"\nkind = \"stdout\"\nrooms = [\"omm_anything\"]\n"
    ));
}

/// Issue 13 item 16: a TOML syntax error names line and column and shows
/// the line with a caret.
#[test]
fn a_syntax_error_has_a_column_and_a_caret() {
    let i = issues(&format!(
        "{MIN}[display]\ntime_zone = \"Europe/Paris\nlocale = \"en\"\n"
    ));
    assert_eq!(i.len(), 1, "{i:?}");
    let shown = i[0].to_string();
    assert!(
        shown.starts_with("line 5, column 26: syntax error: "),
        "{shown}"
    );
    assert!(
        shown.ends_with("    5 | time_zone = \"Europe/Paris\n      |                          ^"),
        "{shown}"
    );
}

/// Issue 14: every `*_env` secret has a `*_file` twin (container secrets,
/// systemd credentials): a relative path is looked up in
/// `$CREDENTIALS_DIRECTORY` first, then next to the config; one trailing
/// newline is dropped; both keys at once, a missing or empty file are
/// problems that name the key and the path, never the contents.
#[test]
fn secrets_can_come_from_files_and_systemd_credentials() {
    let dir = std::env::temp_dir().join(format!("roomcast-cred-{}", std::process::id()));
    let creds = dir.join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("app_secret"), "from-credentials\n").unwrap();
    std::fs::write(dir.join("bot.secret"), "from-beside-config\n").unwrap();
    std::fs::write(dir.join("empty"), "\n").unwrap();
    let env = env(&[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())]);
    let text = "[source]\nkind = \"lark\"\n[platform]\napp_id = \"cli_a\"\napp_secret_file = \"app_secret\"\n[[rooms]]\nid = \"omm_a\"\ntoken_file = \"bot.secret\"\n[[sinks]]\nname = \"b\"\nkind = \"feishu\"\nurl = \"https://open.feishu.cn/open-apis/bot/v2/hook/x\"\nsecret_file = \"bot.secret\"\n";
    let c = parse(text, &dir, &env).unwrap_or_else(|e| panic!("{e:?}"));
    let expose = |s: &SecretString| ExposeSecret::expose_secret(s).to_string();
    assert_eq!(
        expose(c.platform.as_ref().unwrap().app_secret.as_ref().unwrap()),
        "from-credentials"
    );
    assert_eq!(
        expose(c.rooms[0].token.as_ref().unwrap()),
        "from-beside-config"
    );
    assert_eq!(
        expose(c.sinks[0].secret.as_ref().unwrap()),
        "from-beside-config"
    );

    let bad = "[source]\nkind = \"lark\"\n[platform]\napp_id = \"cli_a\"\napp_secret_env = \"SECRET\"\napp_secret_file = \"app_secret\"\nverification_token_file = \"nope\"\nencrypt_key_file = \"empty\"\n";
    let i = match parse(bad, &dir, &env) {
        Ok(_) => panic!("accepted"),
        Err(i) => i,
    };
    let shown: Vec<String> = i.iter().map(|x| x.to_string()).collect();
    assert!(
        shown.iter().any(|s| s.contains("line 6: `platform.app_secret_file`: set `platform.app_secret_env` or `platform.app_secret_file`, not both")),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(
            |s| s.contains("`platform.verification_token_file`: cannot read") && s.contains("nope")
        ),
        "{shown:#?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.contains("`platform.encrypt_key_file`:") && s.contains("is empty")),
        "{shown:#?}"
    );
    assert!(
        !shown.iter().any(|s| s.contains("from-")),
        "no secret shown"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_postgres_store_takes_its_password_from_the_environment_only() {
    let c = ok(&format!(
        "{MIN}[store]\nurl = \"postgres://roomcast@db.internal:6432/rooms?sslmode=require\"\npassword_env = \"SECRET\"\nschema = \"rc_prod\"\npool_size = 8\nreconnect_for = \"30s\"\n"
    ));
    assert!(!format!("{c:?}").contains("s3cr3t"), "never in Debug");
    let sc = c.store.expect("a store");
    let StoreBackend::Postgres(pg) = &sc.backend else {
        panic!("{:?}", sc.backend)
    };
    assert_eq!(pg.target(), "db.internal:6432/rooms");
    assert_eq!(sc.describe(), "db.internal:6432/rooms");
    assert_eq!(pg.schema, "rc_prod");
    assert_eq!(pg.pool_size, 8);
    assert_eq!(pg.reconnect_for, Duration::from_secs(30));
    assert_eq!(
        pg.password.as_ref().map(|p| p.expose_secret().to_string()),
        Some("s3cr3t-value".into())
    );
    // Defaults.
    let c = ok(&format!(
        "{MIN}[store]\nurl = \"postgres://roomcast@db/rooms\"\n"
    ));
    let Some(StoreBackend::Postgres(pg)) = c.store.map(|s| s.backend) else {
        panic!()
    };
    assert_eq!((pg.schema.as_str(), pg.pool_size), ("roomcast", 4));
    assert_eq!(pg.reconnect_for, DEFAULT_RECONNECT_FOR);
    assert!(pg.password.is_none());
}

#[test]
fn a_bad_postgres_store_is_named_by_key_and_line() {
    let cases = [
        (
            "url = \"postgres://roomcast:hunter2@db/rooms\"\n",
            "line 5: `store.url`: holds a password; give it in `password_env` or `password_file`",
        ),
        (
            "url = \"postgres://db/rooms\"\n",
            "line 5: `store.url`: names no user",
        ),
        (
            "url = \"mysql://x@db/rooms\"\n",
            "line 5: `store.url`: not a PostgreSQL connection string",
        ),
        (
            "path = \"rc.db\"\nurl = \"postgres://x@db/rooms\"\n",
            "line 6: `store.url`: set `path` (SQLite) or `url` (PostgreSQL), not both",
        ),
        (
            "url = \"postgres://x@db/rooms\"\nsync = \"normal\"\n",
            "line 6: `store.sync`: applies to SQLite",
        ),
        (
            "url = \"postgres://x@db/rooms\"\nschema = \"Rooms; DROP\"\n",
            "line 6: `store.schema`: must be a plain lowercase identifier",
        ),
        (
            "url = \"postgres://x@db/rooms\"\npassword_env = \"NOT_SET_ANYWHERE\"\n",
            "line 6: `store.password_env`: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "path = \"rc.db\"\npool_size = 3\n",
            "line 6: `store.pool_size`: applies to a PostgreSQL store",
        ),
        (
            "path = \"rc.db\"\nreconnect_for = \"5s\"\n",
            "line 6: `store.reconnect_for`: applies to a PostgreSQL store",
        ),
        (
            "url = \"postgres://x@db/rooms\"\nreconnect_for = \"1h\"\n",
            "line 6: `store.reconnect_for`: must be at most 5m",
        ),
    ];
    for (store, want) in cases {
        let shown: Vec<String> = issues(&format!("{MIN}[store]\n{store}"))
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert!(shown.iter().any(|s| s.contains(want)), "{want}\n{shown:#?}");
        assert!(!shown.iter().any(|s| s.contains("hunter2")), "{shown:#?}");
    }
}
