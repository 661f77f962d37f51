//! The `roomcast` binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

fn roomcast(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("ROOMCAST_CONFIG")
        .output()
        .expect("run roomcast")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The shipped config in a temp dir (so the file sinks write there), with
/// the shipped example events.
fn shipped(tag: &str) -> std::path::PathBuf {
    let d = temp_dir(tag);
    let cfg = std::fs::read_to_string(repo().join("config.toml")).unwrap();
    write(&d.join("config.toml"), &cfg);
    std::fs::copy(repo().join("examples/events.jsonl"), {
        std::fs::create_dir_all(d.join("examples")).unwrap();
        d.join("examples/events.jsonl")
    })
    .unwrap();
    d
}

#[test]
fn shipped_config_runs_offline_and_prints_local_times() {
    let d = shipped("run");
    let out = roomcast(&d, &["run", "--config", "config.toml"]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{so}\nstderr:\n{se}");
    // Shanghai in Chinese, New York in 12-hour English, Auckland across midnight.
    assert!(
        so.contains(
            "【莲花厅 Lotus】已改期：12月1日 周二 14:00–15:00 改为 12月1日 周二 15:00–16:00"
        ),
        "{so}"
    );
    assert!(
        so.contains("[Hudson] Booked Tue, Dec 1 10:00 AM–11:00 AM (1 h, EST)"),
        "{so}"
    );
    assert!(
        so.contains("[Harbour] Booked Tue, Dec 1 22:30–Wed, Dec 2 00:30 (2 h, NZDT)"),
        "{so}"
    );
    assert!(
        so.contains("【莲花厅 Lotus】已取消 12月1日 周二 09:30–09:45"),
        "{so}"
    );
    assert!(se.contains("1 duplicate"), "{se}");
    let notices = jsonl(&d.join("out/notices.jsonl"));
    assert_eq!(notices.len(), 12);
    assert!(
        notices
            .iter()
            .all(|n| n["idempotency_key"].as_str().is_some_and(|k| k.len() == 32))
    );
    let panels = jsonl(&d.join("out/panels.jsonl"));
    assert!(
        panels
            .iter()
            .all(|p| p["subject"] == "snapshot" && p["body"]["room"]["id"].is_string())
    );

    // Replaying the same events gives the same idempotency keys.
    let again = roomcast(&d, &["run"]);
    assert_eq!(again.status.code(), Some(0));
    let all = jsonl(&d.join("out/notices.jsonl"));
    assert_eq!(all.len(), 24);
    let first: Vec<_> = all[..12]
        .iter()
        .map(|n| n["idempotency_key"].clone())
        .collect();
    let second: Vec<_> = all[12..]
        .iter()
        .map(|n| n["idempotency_key"].clone())
        .collect();
    assert_eq!(first, second);
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = roomcast(&repo(), &["check", "--config", "config.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK"));
}

#[test]
fn check_reports_every_problem_with_key_and_line() {
    let d = temp_dir("check");
    write(&d.join("events.jsonl"), "");
    write(
        &d.join("bad.toml"),
        r#"[source]
kind = "replay"
replay_file = "events.jsonl"

[display]
time_zone = "Asia/Shangai"

[[sinks]]
name = "a"
kind = "stdout"
template = "no_such_template"

[[sinks]]
name = "a"
kind = "slack"
url = "hooks.slack.com/x"
secret_env = "ROOMCAST_TEST_UNSET_VAR"
"#,
    );
    let out = roomcast(&d, &["check", "--config", "bad.toml"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{se}");
    for want in [
        "bad.toml:line 6: `display.time_zone`: unknown time zone `Asia/Shangai`",
        "line 14: `sinks[1].name`: duplicate sink name `a`",
        "line 16: `sinks[1].url`",
        "line 17: `sinks[1].secret_env`: environment variable ROOMCAST_TEST_UNSET_VAR is not set",
    ] {
        assert!(se.contains(want), "missing {want:?} in:\n{se}");
    }
}

#[test]
fn check_names_unknown_templates_and_broken_template_files() {
    let d = temp_dir("tpl");
    write(&d.join("events.jsonl"), "");
    write(&d.join("tpl/mine.txt.hbs"), "{{room.name}\n");
    write(&d.join("tpl/strict.txt.hbs"), "{{room.title}}");
    let base = "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n";
    write(
        &d.join("a.toml"),
        &format!("{base}[templates]\ndir = \"tpl\"\n"),
    );
    let out = roomcast(&d, &["check", "--config", "a.toml"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{se}");
    assert!(se.contains("mine.txt.hbs") && se.contains("line 1"), "{se}");

    // A template that compiles but names a variable the view model lacks,
    // and a template that does not exist.
    write(&d.join("tpl/mine.txt.hbs"), "{{room.name}}");
    write(
        &d.join("b.toml"),
        &format!(
            "{base}[templates]\ndir = \"tpl\"\n[[sinks]]\nname = \"s\"\nkind = \"stdout\"\ntemplate = \"strict\"\n[[sinks]]\nname = \"t\"\nkind = \"stdout\"\ntemplate = \"nope\"\n"
        ),
    );
    let out = roomcast(&d, &["check", "--config", "b.toml"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{se}");
    assert!(
        se.contains("b.toml:line 9: sink `s`: template `strict`") && se.contains("room.title"),
        "{se}"
    );
    assert!(
        se.contains("b.toml:line 13: sink `t`: template `nope` (en): no such template"),
        "{se}"
    );
}

/// The live page's templates are checked when the HTTP server is on, and
/// a replacement for its changing part is used by the whole page.
#[test]
fn check_trial_renders_the_live_page_templates() {
    let d = temp_dir("page-tpl");
    write(
        &d.join("tpl/room_panel.html.hbs"),
        "<main id=\"room\">{{room.title}}</main>",
    );
    let cfg = "[source]\nkind = \"webhook\"\n[http]\nlisten = \"127.0.0.1:0\"\nallow_unauthenticated = true\n[templates]\ndir = \"tpl\"\n";
    write(&d.join("c.toml"), cfg);
    let out = roomcast(&d, &["check", "--config", "c.toml"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{se}");
    assert!(
        se.contains("[http] serves template `room_page` (en)") && se.contains("room.title"),
        "{se}"
    );
    write(
        &d.join("tpl/room_panel.html.hbs"),
        "<main id=\"room\">{{room.name}} & co</main>",
    );
    let out = roomcast(&d, &["check", "--config", "c.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn unreadable_or_missing_config_is_a_clear_error() {
    let d = temp_dir("missing");
    let out = roomcast(&d, &["check", "--config", "nope.toml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("cannot read nope.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn malformed_replay_lines_are_reported_and_the_rest_applied() {
    let d = temp_dir("malformed");
    let good = event(
        "created",
        "u1",
        ms(2026, 5, 1, 1, 0),
        ("uid1", 0),
        (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
        &[ROOM_A],
    );
    let bad_field = good
        .replace("\"uid\":\"uid1\"", "\"uid\":7")
        .replace("\"uuid\":\"u1\"", "\"uuid\":\"u2\"");
    write(
        &d.join("events.jsonl"),
        &format!("{good}\nnot json at all\n{bad_field}\n"),
    );
    write(
        &d.join("c.toml"),
        "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n[[sinks]]\nname = \"out\"\nkind = \"stdout\"\n",
    );
    let out = roomcast(&d, &["run", "--config", "c.toml"]);
    let (so, se) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{se}");
    assert!(
        se.contains("events.jsonl:2") && se.contains("not valid JSON"),
        "{se}"
    );
    assert!(
        se.contains("events.jsonl:3") && se.contains("field `event.uid`"),
        "{se}"
    );
    assert!(se.contains("2 malformed"), "{se}");
    assert_eq!(so.lines().count(), 1, "{so}");
}

/// A folder for `preview`: `ev.json`, one booking of room A (06:00–07:00
/// UTC on May 1 2026) delivered as `uuid`; an empty replay file; `config`
/// as `c.toml`.
fn preview_dir(tag: &str, uuid: &str, config: &str) -> std::path::PathBuf {
    let d = temp_dir(tag);
    let ev = event(
        "created",
        uuid,
        ms(2026, 5, 1, 1, 0),
        ("uid1", 0),
        (ms(2026, 5, 1, 6, 0), ms(2026, 5, 1, 7, 0)),
        &[ROOM_A],
    );
    write(&d.join("ev.json"), &ev);
    write(&d.join("events.jsonl"), "");
    write(&d.join("c.toml"), config);
    d
}

/// Issue 13 item 17: preview fills `{room}`, masks a secret path segment
/// and a signature, and shows every header the sink would get (custom ones
/// as the config writes them), never a secret's value.
#[test]
fn preview_shows_the_real_request_with_secrets_masked() {
    let d = preview_dir(
        "preview-request",
        "uuid-preview-2",
        "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n\
         [[sinks]]\nname = \"door\"\nkind = \"webhook\"\n\
         url = \"http://ops:hunter2@panel.example/k3y7s9x2q/{room}/push\"\n\
         headers = { Authorization = \"Bearer ${PREVIEW_TOKEN}\", X-Api-Key = \"literal-key\", X-Site = \"hq\" }\n\
         [[sinks]]\nname = \"bot\"\nkind = \"feishu\"\n\
         url = \"https://open.feishu.cn/open-apis/bot/v2/hook/short1\"\nsecret_env = \"PREVIEW_BOT_SECRET\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["preview", "--config", "c.toml", "--event", "ev.json"])
        .args(["--at", "2026-05-01T05:00:00Z"])
        .current_dir(&d)
        .env_remove("RUST_LOG")
        .env("PREVIEW_TOKEN", "tok-SECRET-123")
        .env("PREVIEW_BOT_SECRET", "bot-SECRET-456")
        .output()
        .expect("run roomcast");
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        so.contains(&format!(
            "POST http://ops:***@panel.example/***/{ROOM_A}/push"
        )),
        "{so}"
    );
    assert!(
        so.contains("Authorization: Bearer ${PREVIEW_TOKEN}"),
        "{so}"
    );
    assert!(so.contains("X-Api-Key: ***"), "{so}");
    assert!(so.contains("X-Site: hq"), "{so}");
    assert!(so.contains("Idempotency-Key: "), "{so}");
    assert!(so.contains("Content-Type: application/json"), "{so}");
    assert!(
        so.contains("POST https://open.feishu.cn/open-apis/bot/v2/hook/***"),
        "{so}"
    );
    assert!(so.contains("\"sign\":\"***\""), "{so}");
    assert!(so.contains("\"timestamp\":"), "{so}");
    for secret in [
        "hunter2",
        "k3y7s9x2q",
        "SECRET",
        "literal-key",
        "short1",
        "{room}",
    ] {
        assert!(!so.contains(secret), "`{secret}` shown:\n{so}");
    }
}

#[test]
fn preview_shows_each_sink_with_trace_headers() {
    let d = preview_dir(
        "preview",
        "uuid-preview",
        &format!(
            "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n[display]\ntime_zone = \"Europe/London\"\n[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Thames\"\n[[sinks]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"https://hooks.example.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX\"\n"
        ),
    );
    let out = roomcast(
        &d,
        &[
            "preview",
            "--config",
            "c.toml",
            "--event",
            "ev.json",
            "--at",
            "2026-05-01T05:00:00Z",
        ],
    );
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        so.contains("--- sink `chat` (slack) · room omm_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa · booked"),
        "{so}"
    );
    assert!(
        so.contains("POST https://hooks.example.com/services/T000/B000/***"),
        "{so}"
    );
    assert!(so.contains("X-Roomcast-Event: uuid-preview"), "{so}");
    assert!(so.contains("Idempotency-Key: "), "{so}");
    assert!(
        so.contains("Booked: Thames, Fri, May 1 07:00–08:00"),
        "{so}"
    );
    assert!(
        !so.contains("XXXXXXXXXXXXXXXXXXXXXXXX"),
        "hook tokens are masked"
    );
}

#[test]
fn rooms_shows_each_room_at_an_instant() {
    let out = roomcast(
        &repo(),
        &[
            "rooms",
            "--config",
            "config.toml",
            "--at",
            "2026-12-01T07:10:00Z",
        ],
    );
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // 15:10 in Shanghai: Lotus is in the moved review (15:00–16:00).
    assert!(
        so.contains("莲花厅 Lotus：使用中，15:00–16:00（剩余 50 分钟，16:00 空闲）"),
        "{so}"
    );
    let json = roomcast(
        &repo(),
        &["rooms", "--json", "--at", "2026-12-01T07:10:00Z"],
    );
    let first: serde_json::Value = serde_json::from_str(
        text(&json.stdout)
            .split("\n}\n")
            .next()
            .map(|s| format!("{s}\n}}"))
            .as_deref()
            .unwrap_or(""),
    )
    .unwrap();
    assert_eq!(first["status"], "busy");
    // The same instant as a local time in the display zone (Shanghai), and
    // a time that is not one.
    let local = roomcast(&repo(), &["rooms", "--at", "2026-12-01 15:10"]);
    assert_eq!(text(&local.stdout), so, "{}", text(&local.stderr));
    let bad = roomcast(&repo(), &["rooms", "--at", "tomorrow"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("2026-12-01 14:30"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn every_command_has_help() {
    for cmd in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["preview", "--help"],
        &["rooms", "--help"],
    ] {
        let out = roomcast(&repo(), cmd);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        assert!(text(&out.stdout).contains("Usage"), "{cmd:?}");
    }
    let out = roomcast(&repo(), &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_panel_presets_in_examples_check_and_render() {
    let out = roomcast(&repo(), &["check", "--config", "examples/panels.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = roomcast(
        &repo(),
        &[
            "preview",
            "--config",
            "examples/panels.toml",
            "--event",
            "examples/events.jsonl",
            "--at",
            "2026-12-01T06:55:00Z",
        ],
    );
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(so.contains("\"merge_variables\""), "{so}");
    assert!(
        so.contains("POST http://192.168.1.50/api/custom?name=***"),
        "{so}"
    );
    assert!(
        so.contains("\"color\": \"#FFAB00\""),
        "starting soon at 14:55 for 15:00: {so}"
    );
}

/// A sink that cannot be reached is logged with the real cause (the
/// connection was refused), not just "error sending request".
#[test]
fn an_unreachable_sink_is_logged_with_its_cause() {
    let d = temp_dir("refused");
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write(
        &d.join("events.jsonl"),
        &event(
            "created",
            "u1",
            ms(2026, 5, 1, 1, 0),
            ("uid1", 0),
            (ms(2026, 5, 1, 2, 0), ms(2026, 5, 1, 3, 0)),
            &[ROOM_A],
        ),
    );
    write(
        &d.join("c.toml"),
        &format!(
            "[source]\nkind = \"replay\"\nreplay_file = \"events.jsonl\"\n[delivery]\ndrain_timeout = \"1s\"\n[[sinks]]\nname = \"wh\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/in\"\n"
        ),
    );
    let out = roomcast(&d, &["run", "--config", "c.toml", "--log", "warn"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{se}");
    let retry = se
        .lines()
        .find(|l| l.contains("delivery failed; will retry"))
        .unwrap_or_else(|| panic!("no retry logged:\n{se}"));
    assert!(
        retry.to_lowercase().contains("connection refused"),
        "the cause is named: {retry}"
    );
    assert!(se.contains("1 failed"), "undelivered at shutdown: {se}");
}

#[test]
fn logs_to_a_pipe_are_plain_and_debug_means_roomcast_at_debug() {
    let d = shipped("logs");
    let out = roomcast(&d, &["run", "--config", "config.toml", "--log", "debug"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{se}");
    assert!(
        !se.contains('\u{1b}'),
        "no terminal colour codes in a pipe:\n{se}"
    );
    assert!(se.contains("DEBUG"), "roomcast's own debug lines:\n{se}");
    assert!(
        !se.contains("Rendering"),
        "the template engine's debug lines stay out:\n{}",
        se.lines().take(5).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn a_webhook_anyone_could_write_to_is_refused_unless_meant() {
    let d = temp_dir("open-webhook");
    let open = "[source]\nkind = \"webhook\"\n[http]\nlisten = \"127.0.0.1:0\"\n";
    write(&d.join("c.toml"), open);
    let out = roomcast(&d, &["check", "--config", "c.toml"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{se}");
    assert!(
        se.contains("http.webhook")
            && se.contains("line 4")
            && se.contains("allow_unauthenticated"),
        "{se}"
    );
    // `run` refuses the same way, before listening.
    let out = roomcast(&d, &["run", "--config", "c.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    // Meant: accepted.
    write(
        &d.join("c.toml"),
        &format!("{open}allow_unauthenticated = true\n"),
    );
    let out = roomcast(&d, &["check", "--config", "c.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn commands_that_read_the_store_need_no_secrets() {
    let d = temp_dir("inspect");
    let cfg = "[source]\nkind = \"lark\"\n[platform]\napp_id = \"cli_a1b2c3d4e5f60718\"\napp_secret_env = \"ROOMCAST_TEST_UNSET_SECRET\"\n[store]\npath = \"state/roomcast.db\"\n[[rooms]]\nid = \"omm_a\"\nname = \"Alpha\"\n";
    write(&d.join("c.toml"), cfg);
    // A store to read: created by a replay with the same store section.
    write(
        &d.join("seed.toml"),
        "[source]\nkind = \"replay\"\nreplay_file = \"none.jsonl\"\n[store]\npath = \"state/roomcast.db\"\n",
    );
    write(&d.join("none.jsonl"), "");
    let out = roomcast(&d, &["run", "--config", "seed.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for args in [
        &["outbox", "--config", "c.toml"][..],
        &["rooms", "--config", "c.toml"][..],
    ] {
        let out = roomcast(&d, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // Commands that use the secret still ask for it.
    let out = roomcast(&d, &["check", "--config", "c.toml"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("ROOMCAST_TEST_UNSET_SECRET"));
}

#[test]
fn check_finds_a_replay_file_that_cannot_be_read() {
    let d = temp_dir("no-replay");
    write(
        &d.join("c.toml"),
        "[source]\nkind = \"replay\"\nreplay_file = \"nope.jsonl\"\n",
    );
    for cmd in ["check", "run"] {
        let out = roomcast(&d, &[cmd, "--config", "c.toml"]);
        let se = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{cmd}: {se}");
        assert!(
            se.contains("source.replay_file") && se.contains("line 3") && se.contains("nope.jsonl"),
            "{cmd}: {se}"
        );
        assert_eq!(se.matches("nope.jsonl").count(), 1, "said once: {se}");
    }
}

#[test]
fn logs_can_be_one_json_object_a_line() {
    let d = shipped("json-logs");
    let out = roomcast(
        &d,
        &[
            "run",
            "--config",
            "config.toml",
            "--log",
            "debug",
            "--log-format",
            "json",
        ],
    );
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{se}");
    let logs: Vec<serde_json::Value> = se
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        logs.iter().any(|l| l["level"] == "DEBUG"
            && l["message"] == "applied"
            && l["event_id"].is_string()),
        "{se}"
    );
}

/// Issue 14: the shipped systemd unit passes `systemd-analyze verify`
/// (with ExecStart pointing at this build).
#[test]
#[cfg_attr(
    roomcast_no_systemd_analyze,
    ignore = "systemd-analyze is not installed (apt-get install systemd)"
)]
fn the_systemd_unit_verifies() {
    let d = temp_dir("unit");
    let unit = std::fs::read_to_string(repo().join("deploy/roomcast.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    let unit = unit.replace("/usr/local/bin/roomcast", env!("CARGO_BIN_EXE_roomcast"));
    write(&d.join("roomcast.service"), &unit);
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(d.join("roomcast.service"))
        .output()
        .expect("systemd-analyze");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && all.trim().is_empty(), "{all}");
}

/// Issue 14: SIGHUP reloads the config and templates in place — the
/// schedule, connection and queues stay; an invalid config is refused with
/// `check`'s messages and the running one stays; a setting that only a
/// restart can change is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_in_place_refuses_bad_configs_and_names_what_needs_a_restart() {
    roomcast::tls::init();
    use std::io::{BufRead, BufReader};
    let d = temp_dir("sighup");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = |name: &str, extra: &str| {
        format!(
            "[source]\nkind = \"webhook\"\n[platform]\napp_id = \"cli_a1b2c3d4e5f60718\"\nverification_token_env = \"VT\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[[rooms]]\nid = \"{ROOM_A}\"\nname = \"{name}\"\n[[sinks]]\nname = \"n\"\nkind = \"file\"\npath = \"n.jsonl\"\n{extra}"
        )
    };
    write(&d.join("c.toml"), &config("Alpha", ""));
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["run", "--config", "c.toml"])
        .current_dir(&d)
        .env("VT", "tok")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(l);
        }
    });
    let wait_for = |what: &str| -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => panic!("no log line with {what:?}"),
            }
        }
    };
    wait_for("HTTP server listening");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let post = async |uuid: &str| {
        let e = event(
            "created",
            uuid,
            ms(2026, 5, 1, 0, 0),
            (uuid, 0),
            (ms(2030, 5, 1, 2, 0), ms(2030, 5, 1, 3, 0)),
            &[ROOM_A],
        );
        let r = client
            .post(format!("{base}/webhook/event"))
            .body(e)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    let room = async || -> serde_json::Value {
        client
            .get(format!("{base}/rooms/{ROOM_A}.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    post("before-reload").await;
    assert_eq!(room().await["room"]["name"], "Alpha");
    let hup = |child: &std::process::Child| send_signal(child.id(), "HUP");

    write(&d.join("c.toml"), &config("Beta", ""));
    hup(&child);
    wait_for("reloaded: rooms, display, schedule rules, templates and sinks");
    assert_eq!(room().await["room"]["name"], "Beta", "applied in place");

    write(&d.join("c.toml"), &config("Gamma", "colour = \"red\"\n"));
    hup(&child);
    let refused = wait_for("reload refused:");
    assert!(refused.contains("colour"), "check's message: {refused}");
    wait_for("the running config stays");
    assert_eq!(
        room().await["room"]["name"],
        "Beta",
        "the running config stays"
    );

    write(
        &d.join("c.toml"),
        &config(
            "Delta",
            "[[sinks]]\nname = \"m\"\nkind = \"file\"\npath = \"m.jsonl\"\ntemplate = \"webhook\"\n[delivery]\ndrain_timeout = \"5s\"\n",
        ),
    );
    hup(&child);
    let named = wait_for("needs_restart");
    assert!(named.contains("[delivery]"), "{named}");
    assert!(named.contains("added m"), "sinks apply in place: {named}");
    assert_eq!(room().await["room"]["name"], "Delta");

    // Nothing was dropped: the booking from before the reloads is there,
    // and events keep being taken.
    post("after-reload").await;
    assert_eq!(
        room().await["next"].as_array().map(Vec::len),
        Some(0),
        "2030 is not today"
    );
    send_signal(child.id(), "TERM");
    let summary = wait_for("received");
    assert!(summary.contains("2 applied"), "{summary}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let m = jsonl(&d.join("m.jsonl"));
    assert_eq!(
        m.iter().map(|l| l["event_id"].as_str()).collect::<Vec<_>>(),
        [Some("after-reload")],
        "the sink added by the reload got what followed it"
    );
}

/// Issue 14: `send-test --sink NAME` renders a sample for that sink and
/// really sends it, printing the request (secrets masked) and the answer;
/// exit 0 only when delivered. The fake bot checks the signature as Feishu
/// does: a wrong secret is reported with the service's code and a hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_sends_one_sample_and_prints_the_answer() {
    let f = Fake::start(roomcast::clock::system()).await;
    let d = temp_dir("send-test");
    let config = format!(
        "[source]\nkind = \"replay\"\nreplay_file = \"none.jsonl\"\n[display]\ntime_zone = \"Asia/Shanghai\"\nlocale = \"en\"\n[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha\"\n[[rooms]]\nid = \"{ROOM_B}\"\nname = \"Beta\"\npanels = [\"door\"]\n\
         [[sinks]]\nname = \"bot\"\nkind = \"feishu\"\nurl = \"{base}/feishu/hook/0123456789abcdef0123\"\nsecret_env = \"BOT_SECRET\"\nchanges = [\"cancelled\"]\n\
         [[sinks]]\nname = \"door\"\nkind = \"panel\"\nurl = \"{base}/panel/{{room}}\"\n",
        base = f.base
    );
    write(&d.join("config.toml"), &config);
    write(&d.join("none.jsonl"), "");
    let run = |args: &'static [&'static str], secret: &'static str| {
        let d = d.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_roomcast"))
                .args(args)
                .current_dir(&d)
                .env("BOT_SECRET", secret)
                .env_remove("RUST_LOG")
                .env_remove("ROOMCAST_CONFIG")
                .output()
                .expect("run roomcast")
        })
    };

    let out = run(&["send-test", "--sink", "bot"], FEISHU_SECRET)
        .await
        .unwrap();
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{so}{}", text(&out.stderr));
    assert!(so.contains("sink `bot` (feishu) · room"), "{so}");
    assert!(so.contains("/hook/***"), "the hook id is masked: {so}");
    assert!(!so.contains("0123456789abcdef0123"), "{so}");
    assert!(
        so.contains("--- answer: HTTP 200") && so.ends_with("delivered\n"),
        "{so}"
    );
    let hits = f.hits("feishu");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].verdict, "ok", "signed as Feishu checks");
    assert!(hits[0].headers["x-roomcast-event"].starts_with("send-test-"));
    assert!(!hits[0].headers["idempotency-key"].is_empty());
    assert!(
        hits[0].raw.contains("Booked") && !hits[0].raw.contains("<at"),
        "a booking notice whatever the sink's change filter, mentioning no one: {}",
        hits[0].raw
    );

    let out = run(&["send-test", "--sink", "bot"], "not-the-secret")
        .await
        .unwrap();
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{so}");
    assert!(
        so.contains("NOT delivered: signature rejected (19021") && so.contains("secret_env"),
        "{so}"
    );
    assert!(!so.contains("not-the-secret"), "{so}");

    let out = run(&["send-test", "--sink", "door"], FEISHU_SECRET)
        .await
        .unwrap();
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{so}{}", text(&out.stderr));
    let panel = f.hits("panel");
    assert_eq!(panel.len(), 1);
    assert_eq!(panel[0].path, ROOM_B, "the room that lists the panel");
    assert_eq!(panel[0].body["room"]["name"], "Beta", "{}", panel[0].raw);

    let out = run(&["send-test", "--sink", "nope"], FEISHU_SECRET)
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no sink is named `nope` (the config has: bot, door)"),
        "{}",
        text(&out.stderr)
    );
}
