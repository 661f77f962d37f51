//! The operator's tools around the room APIs: `roomcast rooms discover`
//! (ready-to-paste `[[rooms]]` blocks for every room the app can see) and
//! `roomcast doctor` (each API called once with the configured
//! credentials: "ok", or the scope to grant).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::fetch_directory;
use crate::config::Config;
use crate::directory::Directory;
use crate::error::Chain;
use crate::lark::api::{Api, ApiError, Endpoint};
use crate::metrics::ApiStats;

/// Why a tool cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "the room APIs need the app's credentials: [platform] app_id and app_secret_env (and its variable set)"
    )]
    NoCredentials,
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
}

fn api(config: &Config) -> Result<Api, ToolError> {
    let platform = config.platform.as_ref().ok_or(ToolError::NoCredentials)?;
    Api::new(
        platform,
        config.lark.request_timeout,
        Arc::new(ApiStats::default()),
    )
    .map_err(ToolError::Client)?
    .ok_or(ToolError::NoCredentials)
}

/// `[[rooms]]` blocks for every room the app can see, by building, floor
/// and name, each with its building and floor as a comment.
pub async fn discover(config: &Config) -> Result<String, ToolError> {
    let api = api(config)?;
    let d = fetch_directory(&api).await?;
    Ok(rooms_toml(&d))
}

/// The directory as config text.
pub fn rooms_toml(d: &Directory) -> String {
    let mut rooms: Vec<_> = d.rooms.iter().collect();
    rooms.sort_by(|(ia, a), (ib, b)| {
        (&a.building, &a.floor, &a.name, ia).cmp(&(&b.building, &b.floor, &b.name, ib))
    });
    let mut out = format!(
        "# {} room(s) the app can see; paste the ones to show.\n",
        rooms.len()
    );
    for (id, r) in rooms {
        out.push('\n');
        let place: Vec<&str> = [r.building.as_deref(), r.floor.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let mut comment = Vec::new();
        if !place.is_empty() {
            comment.push(place.join(" · "));
        }
        if let Some(c) = r.capacity {
            comment.push(format!("{c} seats"));
        }
        if r.disabled.is_some() {
            comment.push("out of service".into());
        }
        if !comment.is_empty() {
            // A comment cannot break out of its line.
            let line = comment.join(", ").replace(['\n', '\r'], " ");
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str("[[rooms]]\n");
        out.push_str(&format!("id = {}\n", toml::Value::from(id.as_str())));
        if !r.name.is_empty() {
            out.push_str(&format!("name = {}\n", toml::Value::from(r.name.as_str())));
        }
    }
    out
}

/// One API's verdict.
pub struct Check {
    pub api: Endpoint,
    /// `Ok(detail)` or `Err(what to do)`.
    pub result: Result<String, String>,
    /// Needed for the configured features (titles only where asked for).
    pub required: bool,
}

/// Call each API once. Titles are required only when some room or sink
/// shows them.
pub async fn doctor(
    config: &Config,
    titles_wanted: bool,
    now: DateTime<Utc>,
) -> Result<Vec<Check>, ToolError> {
    let api = api(config)?;
    let verdict = |e: ApiError| match e.missing_scope() {
        Some(scope) => format!("{}; grant the scope `{scope}` to the app", Chain(&e)),
        None => Chain(&e).to_string(),
    };
    let mut checks = Vec::new();
    let rooms = api.rooms(None).await;
    let (room_ids, level_ids) = match &rooms {
        Ok(r) => (
            r.iter().map(|x| x.room_id.clone()).collect::<Vec<_>>(),
            r.iter()
                .filter_map(|x| x.room_level_id.clone())
                .take(1)
                .collect::<Vec<_>>(),
        ),
        Err(_) => (Vec::new(), Vec::new()),
    };
    let token_ok = !matches!(
        &rooms,
        Err(ApiError::Code {
            api: Endpoint::Token,
            ..
        })
    );
    checks.push(Check {
        api: Endpoint::Token,
        result: if token_ok {
            Ok("ok".into())
        } else {
            Err("the app id or secret is wrong".into())
        },
        required: true,
    });
    checks.push(Check {
        api: Endpoint::Rooms,
        result: rooms
            .map(|r| format!("ok ({} rooms)", r.len()))
            .map_err(verdict),
        required: true,
    });
    checks.push(Check {
        api: Endpoint::RoomLevels,
        result: api
            .levels(&level_ids)
            .await
            .map(|_| "ok".into())
            .map_err(verdict),
        required: true,
    });
    let probe: Vec<&str> = config
        .rooms
        .iter()
        .map(|r| r.id.as_str())
        .chain(room_ids.iter().map(String::as_str))
        .take(1)
        .collect();
    checks.push(Check {
        api: Endpoint::FreeBusy,
        result: if probe.is_empty() {
            Err("no room to ask about: list one in [[rooms]]".into())
        } else {
            api.freebusy(&probe, now, now + Duration::days(1))
                .await
                .map(|_| "ok".into())
                .map_err(verdict)
        },
        required: true,
    });
    checks.push(Check {
        api: Endpoint::Summary,
        result: api
            .summaries(&[("roomcast-doctor", 0)])
            .await
            .map(|_| "ok".into())
            .map_err(verdict),
        required: titles_wanted,
    });
    Ok(checks)
}
