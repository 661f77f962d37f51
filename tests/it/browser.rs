//! The live room page in a real browser: headless Chromium, driven over the
//! DevTools protocol (a WebSocket, spoken here with tokio-tungstenite).
//!
//! The page must render the room in its zone and language, follow an event
//! pushed to the bot within the same page load (server-sent events), and
//! mark itself stale, keeping the last schedule, when the server stops.
//!
//! `.ci/run` installs Debian's `chromium` and sets
//! `ROOMCAST_BROWSER=required`; elsewhere, on a machine without Chromium,
//! the build script marks the test ignored (counted as skipped). `ROOMCAST_CHROMIUM` names another binary;
//! `ROOMCAST_SCREENSHOTS=dir` saves what the browser showed at each step.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

use crate::http::{Webhook, start_fixed};
use crate::support::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long any one step may take before the test fails (and prints the
/// page as the browser has it).
const STEP: Duration = Duration::from_secs(30);

fn chromium_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ROOMCAST_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// A headless Chromium with one page, attached over the DevTools protocol.
struct Browser {
    _child: tokio::process::Child,
    _profile: PathBuf,
    ws: Ws,
    session: String,
    next_id: u64,
}

impl Browser {
    async fn launch(binary: &PathBuf) -> Browser {
        let profile = temp_dir("chromium-profile");
        let mut child = tokio::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--window-size=1280,800",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let url = tokio::time::timeout(STEP, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_string());
                }
                seen.push(line);
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "Chromium did not open its DevTools port:\n{}",
                seen.join("\n")
            )
        });
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("DevTools WebSocket");
        let mut b = Browser {
            _child: child,
            _profile: profile,
            ws,
            session: String::new(),
            next_id: 0,
        };
        let target = b
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        b.call("Page.enable", json!({})).await;
        b
    }

    /// One DevTools command; events that arrive meanwhile are dropped.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send to DevTools");
        loop {
            let m = self
                .ws
                .next()
                .await
                .expect("DevTools closed")
                .expect("DevTools read");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("DevTools sends JSON");
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// Evaluate an expression in the page (awaiting a promise) and return
    /// its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(x) = r.get("exceptionDetails") {
            panic!("`{expr}` threw: {x}");
        }
        r["result"]["value"].clone()
    }

    /// Wait until `cond` (a JS expression) is true in the page. The waiting
    /// happens in the page, re-checked every 50 ms; the test fails after
    /// [`STEP`] with the page's HTML.
    async fn wait_for(&mut self, what: &str, cond: &str) {
        let expr = format!(
            "new Promise(resolve => {{ const check = () => {{ let ok = false; try {{ ok = !!({cond}); }} catch (e) {{}} if (ok) resolve(true); else setTimeout(check, 50); }}; check(); }})"
        );
        let done = tokio::time::timeout(STEP, self.eval(&expr)).await;
        if done.is_err() {
            let html = self.eval("document.documentElement.outerHTML").await;
            panic!(
                "timed out waiting for {what} ({cond}); the page:\n{}",
                html.as_str().unwrap_or_default()
            );
        }
    }

    /// Open `url` and wait until its live page's event stream is up.
    async fn open_live(&mut self, url: &str, what: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for(what, "document.body && document.body.dataset.live === '1'")
            .await;
    }

    /// Evaluate an expression that returns JSON text, parsed.
    async fn json(&mut self, expr: &str) -> Value {
        serde_json::from_str(self.eval(expr).await.as_str().unwrap_or("{}")).expect("JSON")
    }

    async fn text(&mut self, selector: &str) -> String {
        let v = self
            .eval(&format!(
                "(document.querySelector({}) || {{}}).textContent || ''",
                json!(selector)
            ))
            .await;
        v.as_str().unwrap_or_default().trim().to_string()
    }

    async fn screenshot(&mut self, name: &str) {
        let Ok(dir) = std::env::var("ROOMCAST_SCREENSHOTS") else {
            return;
        };
        use base64::Engine as _;
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .expect("PNG base64");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).expect("screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    roomcast_no_chromium,
    ignore = "no chromium on PATH (apt-get install chromium)"
)]
async fn live_room_page_renders_updates_and_goes_stale() {
    let Some(binary) = chromium_binary() else {
        assert!(
            std::env::var("ROOMCAST_BROWSER").as_deref() != Ok("required"),
            "ROOMCAST_BROWSER=required but no chromium on PATH (apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED live_room_page_renders_updates_and_goes_stale: no chromium on PATH (apt-get install chromium)"
        );
        return;
    };
    // 14:30 in Shanghai on a Friday; the room speaks Chinese and has a
    // token, which the tablet's URL carries.
    let rooms = format!(
        "[[rooms]]\nid = \"{ROOM_A}\"\nname = \"Alpha 会议室\"\ntime_zone = \"Asia/Shanghai\"\nlocale = \"zh-CN\"\ntoken_env = \"PANEL\"\n"
    );
    let bot = start_fixed(&rooms, ms(2026, 5, 1, 6, 30)).await;
    let mut browser = Browser::launch(&binary).await;

    // Without the token: refused.
    let url = format!("{}/rooms/{ROOM_A}", bot.base);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 401);

    browser
        .open_live(
            &format!("{url}?token=p4nel"),
            "the page to connect its event stream",
        )
        .await;
    assert_eq!(browser.eval("document.documentElement.lang").await, "zh-CN");
    assert_eq!(browser.text(".name").await, "Alpha 会议室");
    assert_eq!(browser.text(".status").await, "空闲");
    assert_eq!(browser.text(".agenda .none").await, "今日无更多预订");
    assert_eq!(
        browser
            .eval("document.querySelector('#room').className")
            .await,
        "room free"
    );
    // The clock runs on the server's time (14:30 here), in the room's zone.
    let clock = browser.text("#clock").await;
    assert!(clock.starts_with("14:3"), "clock shows {clock:?}");
    // The page writes times as the server does, in each style: zh-CN
    // 12-hour evenings are 晚上 (the browser would say 下午).
    let at = |h: u32, m: u32| ms(2026, 5, 1, h, m); // UTC; Shanghai is +8
    for (lang, cycle, utc, want) in [
        ("zh-CN", "12h", at(13, 34), "晚上9:34"),
        ("zh-CN", "12h", at(4, 5), "中午12:05"),
        ("zh-CN", "12h", at(17, 0), "凌晨1:00"),
        ("en", "12h", at(13, 34), "9:34 PM"),
        ("en", "24h", at(16, 5), "00:05"),
    ] {
        let got = browser
            .eval(&format!(
                "document.documentElement.lang = '{lang}'; document.documentElement.dataset.clock = '{cycle}'; window.roomcastTime({utc})"
            ))
            .await;
        assert_eq!(got, want, "{lang} {cycle}");
    }
    browser
        .eval("document.documentElement.lang = 'zh-CN'; delete document.documentElement.dataset.clock; 0")
        .await;
    assert_eq!(browser.text(".date").await, "5月1日 周五");
    assert_eq!(
        browser
            .eval("document.getElementById('stale').hidden")
            .await,
        true
    );
    browser.screenshot("1-free").await;

    // A booking from 14:00 to 15:00 and one at 16:00: the open page follows.
    for (uuid, uid, from, to) in [
        ("page-1", "m1", ms(2026, 5, 1, 6, 0), ms(2026, 5, 1, 7, 0)),
        ("page-2", "m2", ms(2026, 5, 1, 8, 0), ms(2026, 5, 1, 9, 0)),
    ] {
        let body = event(
            "created",
            uuid,
            ms(2026, 5, 1, 6, 29),
            (uid, 0),
            (from, to),
            &[ROOM_A],
        );
        assert_eq!(bot.post(&body, &[]).await.0, 200);
    }
    browser
        .wait_for(
            "the page to show the booking",
            "document.querySelector('#room.busy') && document.querySelectorAll('.agenda li').length === 1",
        )
        .await;
    assert_eq!(browser.text(".status").await, "使用中");
    assert_eq!(browser.text(".state .range").await, "14:00–15:00");
    assert_eq!(browser.text(".state .remaining").await, "还剩 30 分钟");
    assert_eq!(browser.text(".agenda li .range").await, "16:00–17:00");
    assert_eq!(
        browser.eval("document.title").await,
        "Alpha 会议室 · 使用中"
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('.past').length")
            .await,
        0,
        "nothing shown has ended (by the server's clock)"
    );
    browser.screenshot("2-busy").await;

    // A portrait tablet (issue 13 item 18): a long name takes two lines at
    // most and leaves the status on screen; the agenda's text is at least
    // 5 vmin; no time, range or duration breaks inside itself.
    browser
        .call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 600, "height": 960, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    let layout = browser
        .eval(
            r#"(function () {
  var name = document.querySelector('.name');
  name.textContent = 'Alpha 会议室 — the large board room on the north side of the building, by the lifts '.repeat(3);
  var lh = parseFloat(getComputedStyle(name).lineHeight);
  var lines = Math.round(name.getBoundingClientRect().height / lh);
  var status = document.querySelector('.status').getBoundingClientRect();
  var vmin = Math.min(innerWidth, innerHeight) / 100;
  var small = [];
  document.querySelectorAll('.agenda h2, .agenda li, .agenda li span, .agenda .none, .agenda .more').forEach(function (e) {
    var px = parseFloat(getComputedStyle(e).fontSize);
    if (px < 5 * vmin - 0.5) small.push(e.className || e.tagName);
  });
  var broken = [];
  document.querySelectorAll('.agenda .range, .agenda .duration, .agenda .relative').forEach(function (e) {
    if (e.getClientRects().length !== 1) broken.push(e.textContent);
  });
  return JSON.stringify({lines: lines, statusOnScreen: status.bottom <= innerHeight && status.top >= 0, small: small, broken: broken});
})()"#,
        )
        .await;
    let layout: Value = serde_json::from_str(layout.as_str().unwrap_or("{}")).expect("layout");
    assert_eq!(layout["lines"], 2, "{layout}");
    assert_eq!(layout["statusOnScreen"], true, "{layout}");
    assert_eq!(layout["small"], json!([]), "{layout}");
    assert_eq!(layout["broken"], json!([]), "{layout}");
    browser.screenshot("2b-portrait-long-name").await;

    // The server stops: the page says so and keeps the last schedule.
    let metrics = bot.metrics.clone();
    assert_eq!(
        metrics
            .page_streams
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one live page connected"
    );
    bot.stop_and_read().await;
    browser
        .wait_for(
            "the page to mark itself stale",
            "document.body.classList.contains('stale') && !document.getElementById('stale').hidden",
        )
        .await;
    let banner = browser.text("#stale").await;
    assert!(
        banner.contains("连接中断") && banner.contains("截至 14:3"),
        "banner: {banner:?}"
    );
    assert_eq!(browser.text(".status").await, "使用中", "last state kept");
    assert_eq!(browser.text(".state .range").await, "14:00–15:00");
    assert_eq!(browser.text(".agenda li .range").await, "16:00–17:00");
    assert_eq!(
        metrics
            .page_streams
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "its stream ended with the server"
    );
    browser.screenshot("3-stale").await;
}

/// `n` rooms `omm_r…` named `Room 1…n`, as `[[rooms]]` tables.
fn many_rooms(n: usize) -> (Vec<String>, String) {
    let ids: Vec<String> = (1..=n).map(|i| format!("omm_r{i:031}")).collect();
    let toml = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("[[rooms]]\nid = \"{id}\"\nname = \"Room {}\"\n", i + 1))
        .collect();
    (ids, toml)
}

/// Issue 15: a lobby board in a real browser — a TV's 1920×1080 and a
/// portrait tablet, English and Chinese, 12 rooms and 200: every tile on
/// screen and legible for its size, free rooms green, the clock on the
/// server's time, an event followed within the page load, and the stale
/// mark when the server goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    roomcast_no_chromium,
    ignore = "no chromium on PATH (apt-get install chromium)"
)]
async fn lobby_boards_render_follow_events_fit_the_screen_and_go_stale() {
    let Some(binary) = chromium_binary() else {
        assert!(
            std::env::var("ROOMCAST_BROWSER").as_deref() != Ok("required"),
            "ROOMCAST_BROWSER=required but no chromium on PATH (apt-get install chromium)"
        );
        eprintln!("SKIPPED lobby_boards_…: no chromium on PATH");
        return;
    };
    let (ids, rooms) = many_rooms(200);
    let list = |r: &[String]| {
        r.iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let config = format!(
        "[display]\ntime_zone = \"Asia/Shanghai\"\n{rooms}\
         [[boards]]\nname = \"lobby\"\ntitle = \"Lobby · Building A\"\nlocale = \"en\"\nrooms = [{}]\n\
         [[boards]]\nname = \"tower\"\ntitle = \"A 座全部会议室\"\nlocale = \"zh-CN\"\nrooms = [{}]\n",
        list(&ids[..12]),
        list(&ids)
    );
    let bot = start_fixed(&config, ms(2026, 5, 1, 6, 30)).await;
    // Room 2 busy now, room 3 starting soon.
    for (uuid, room, from, to) in [
        ("b-1", &ids[1], ms(2026, 5, 1, 6, 0), ms(2026, 5, 1, 7, 0)),
        ("b-2", &ids[2], ms(2026, 5, 1, 6, 35), ms(2026, 5, 1, 7, 30)),
    ] {
        let body = event(
            "created",
            uuid,
            ms(2026, 5, 1, 6, 29),
            (uuid, 0),
            (from, to),
            &[room.as_str()],
        );
        assert_eq!(bot.post(&body, &[]).await.0, 200);
    }
    let mut browser = Browser::launch(&binary).await;
    let screen = async |b: &mut Browser, w: u32, h: u32| {
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    };
    // Every tile inside the window, and the smallest name's font size.
    let fit = r#"(function () {
  var tiles = document.querySelectorAll('.tile'), out = 0, minFont = 1e9;
  tiles.forEach(function (t) {
    var r = t.getBoundingClientRect();
    if (r.bottom > innerHeight + 0.5 || r.right > innerWidth + 0.5 || r.top < 0) out++;
    minFont = Math.min(minFont, parseFloat(getComputedStyle(t.querySelector('.name')).fontSize));
  });
  return JSON.stringify({tiles: tiles.length, out: out, minFont: minFont, cls: document.getElementById('board').className});
})()"#;

    screen(&mut browser, 1920, 1080).await;
    browser
        .open_live(
            &format!("{}/boards/lobby", bot.base),
            "the board to connect",
        )
        .await;
    assert_eq!(browser.eval("document.documentElement.lang").await, "en");
    assert_eq!(browser.text(".title").await, "Lobby · Building A");
    assert_eq!(browser.text(".free-count").await, "10 of 12 free");
    assert!(
        browser.text("#clock").await.starts_with("14:3"),
        "the server's time, in Shanghai"
    );
    let tv: Value = browser.json(fit).await;
    assert_eq!(
        (tv["tiles"].as_u64(), tv["out"].as_u64()),
        (Some(12), Some(0)),
        "{tv}"
    );
    assert!(
        tv["cls"].as_str().unwrap_or("").contains("density-full"),
        "{tv}"
    );
    assert!(
        tv["minFont"].as_f64().unwrap_or(0.0) >= 28.0,
        "legible from across a lobby: {tv}"
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('.tile.free').length")
            .await,
        10
    );
    assert_eq!(browser.text(".tile.busy .range").await, "14:00–15:00");
    assert_eq!(browser.text(".tile.starting_soon .name").await, "Room 3");
    browser.screenshot("board-1-en-tv").await;

    // An event for room 5: the open board follows.
    let body = event(
        "created",
        "b-3",
        ms(2026, 5, 1, 6, 29),
        ("b-3", 0),
        (ms(2026, 5, 1, 6, 0), ms(2026, 5, 1, 8, 0)),
        &[ids[4].as_str()],
    );
    assert_eq!(bot.post(&body, &[]).await.0, 200);
    browser
        .wait_for(
            "room 5 to turn busy",
            "document.querySelectorAll('.tile.busy').length === 2",
        )
        .await;
    assert_eq!(browser.text(".free-count").await, "9 of 12 free");
    assert_eq!(
        browser.eval("document.title").await,
        "Lobby · Building A · 9 of 12 free"
    );

    // 200 rooms, in Chinese, on the TV and on a portrait tablet.
    browser
        .open_live(
            &format!("{}/boards/tower", bot.base),
            "the big board to connect",
        )
        .await;
    assert_eq!(browser.eval("document.documentElement.lang").await, "zh-CN");
    assert_eq!(browser.text(".free-count").await, "200 间中 197 间空闲");
    let big: Value = browser.json(fit).await;
    assert_eq!(
        (big["tiles"].as_u64(), big["out"].as_u64()),
        (Some(200), Some(0)),
        "{big}"
    );
    assert!(
        big["minFont"].as_f64().unwrap_or(0.0) >= 10.0,
        "names still readable: {big}"
    );
    browser.screenshot("board-2-zh-tv-200").await;
    screen(&mut browser, 1080, 1920).await;
    browser
        .wait_for(
            "the layout to follow the rotation",
            "document.getElementById('board').style.getPropertyValue('--cols') !== ''",
        )
        .await;
    let portrait: Value = browser.json(fit).await;
    assert_eq!(portrait["out"].as_u64(), Some(0), "{portrait}");
    browser.screenshot("board-3-zh-portrait-200").await;
    screen(&mut browser, 1080, 1920).await;
    browser
        .open_live(
            &format!("{}/boards/lobby", bot.base),
            "the lobby board again",
        )
        .await;
    let tablet: Value = browser.json(fit).await;
    assert_eq!(tablet["out"].as_u64(), Some(0), "{tablet}");
    browser.screenshot("board-4-en-portrait").await;

    // The server stops: the board says so and keeps what it showed.
    bot.stop_and_read().await;
    browser
        .wait_for(
            "the board to mark itself stale",
            "document.body.classList.contains('stale') && !document.getElementById('stale').hidden",
        )
        .await;
    assert!(
        browser
            .text("#stale")
            .await
            .contains("Offline: showing the last schedule received"),
        "{}",
        browser.text("#stale").await
    );
    assert_eq!(
        browser.text(".free-count").await,
        "9 of 12 free",
        "last state kept"
    );
    let stale: Value = browser.json(fit).await;
    assert_eq!(
        stale["out"].as_u64(),
        Some(0),
        "below the banner, on screen: {stale}"
    );
    let under = browser
        .eval("document.querySelector('#board header').getBoundingClientRect().top >= document.getElementById('stale').getBoundingClientRect().bottom")
        .await;
    assert_eq!(under, true, "the banner hides nothing");
    browser.screenshot("board-5-en-stale").await;
}
