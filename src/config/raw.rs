//! The file's shape as serde reads it. Closed sets are enums (serde names
//! the accepted values when one is wrong); values that need more than a
//! type check stay strings with their spans, for [`super::validate`].
//! Keys that are required but may be taken out by the recovering
//! deserializer (a wrong value of a closed set) are `Option`s: their
//! absence is reported by the section that needs them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{Payload, SinkKind, SourceKind, SyncMode};
use crate::locale::Privacy;
use crate::model::ChangeKind;

pub(super) type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) source: Spanned<RawSource>,
    #[serde(default)]
    pub(super) platform: Option<RawPlatform>,
    #[serde(default)]
    pub(super) display: RawDisplay,
    #[serde(default)]
    pub(super) schedule: RawSchedule,
    #[serde(default)]
    pub(super) templates: RawTemplates,
    #[serde(default)]
    pub(super) lark: RawLark,
    #[serde(default)]
    pub(super) delivery: RawDelivery,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) ha: RawHa,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) sync: RawSync,
    #[serde(default)]
    pub(super) rooms_from: Option<Spanned<RawRoomsFrom>>,
    #[serde(default)]
    pub(super) rooms: Vec<Spanned<RawRoom>>,
    #[serde(default)]
    pub(super) sinks: Vec<Spanned<RawSink>>,
    #[serde(default)]
    pub(super) boards: Vec<Spanned<RawBoard>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBoard {
    pub(super) name: Text,
    pub(super) title: Option<Text>,
    pub(super) rooms: Option<Vec<Text>>,
    pub(super) levels: Option<Vec<Text>>,
    pub(super) group_by: Option<Text>,
    pub(super) time_zone: Option<Text>,
    pub(super) locale: Option<Text>,
    pub(super) clock: Option<Text>,
    pub(super) privacy: Option<Privacy>,
    pub(super) token_env: Option<Text>,
    pub(super) token_file: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) kind: Option<Spanned<SourceKind>>,
    pub(super) replay_file: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlatform {
    pub(super) app_id: Text,
    pub(super) app_secret_env: Option<Text>,
    pub(super) app_secret_file: Option<Text>,
    pub(super) domain: Option<Text>,
    pub(super) verification_token_env: Option<Text>,
    pub(super) verification_token_file: Option<Text>,
    pub(super) encrypt_key_env: Option<Text>,
    pub(super) encrypt_key_file: Option<Text>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisplay {
    pub(super) time_zone: Option<Text>,
    pub(super) locale: Option<Text>,
    pub(super) clock: Option<Text>,
    pub(super) privacy: Option<Privacy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    pub(super) interval: Option<Text>,
    pub(super) days: Option<Spanned<u64>>,
    pub(super) stale_after: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoomsFrom {
    pub(super) levels: Vec<Text>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    #[serde(default)]
    pub(super) ignore_unknown_rooms: bool,
    pub(super) starting_soon: Option<Text>,
    pub(super) dedup_capacity: Option<Spanned<u64>>,
    pub(super) max_rooms_per_event: Option<Spanned<u64>>,
    pub(super) max_unknown_rooms: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplates {
    pub(super) dir: Option<Text>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLark {
    pub(super) liveness_factor: Option<Spanned<u32>>,
    pub(super) max_message_bytes: Option<Spanned<u64>>,
    pub(super) max_pending_messages: Option<Spanned<u64>>,
    pub(super) fragment_ttl: Option<Text>,
    pub(super) request_timeout: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoom {
    pub(super) id: Text,
    pub(super) name: Option<Text>,
    pub(super) time_zone: Option<Text>,
    pub(super) locale: Option<Text>,
    pub(super) clock: Option<Text>,
    #[serde(default)]
    pub(super) panels: Vec<Text>,
    pub(super) token_env: Option<Text>,
    pub(super) token_file: Option<Text>,
    pub(super) privacy: Option<Privacy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
    pub(super) name: Text,
    pub(super) kind: Option<Spanned<SinkKind>>,
    pub(super) url: Option<Text>,
    pub(super) path: Option<Text>,
    pub(super) template: Option<Text>,
    pub(super) payload: Option<Spanned<Payload>>,
    pub(super) secret_env: Option<Text>,
    pub(super) secret_file: Option<Text>,
    pub(super) method: Option<Text>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Text>,
    pub(super) rooms: Option<Vec<Text>>,
    pub(super) changes: Option<Vec<Spanned<ChangeKind>>>,
    pub(super) time_zone: Option<Text>,
    pub(super) locale: Option<Text>,
    pub(super) clock: Option<Text>,
    pub(super) rate_limit: Option<Vec<Text>>,
    pub(super) quiet_hours: Option<Text>,
    pub(super) timeout: Option<Text>,
    pub(super) max_age: Option<Text>,
    pub(super) privacy: Option<Privacy>,
    pub(super) min_interval: Option<Text>,
    pub(super) reminders: Option<Vec<Text>>,
    pub(super) digest: Option<Text>,
    pub(super) digest_days: Option<Vec<Text>>,
    pub(super) digest_template: Option<Text>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: Option<Text>,
    pub(super) webhook: Option<bool>,
    pub(super) webhook_path: Option<Text>,
    pub(super) max_body_bytes: Option<Spanned<u64>>,
    pub(super) allow_unauthenticated: Option<Spanned<bool>>,
    pub(super) max_push_age: Option<Text>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) path: Option<Text>,
    pub(super) retention: Option<Text>,
    pub(super) sync: Option<Spanned<SyncMode>>,
    pub(super) url: Option<Text>,
    pub(super) password_env: Option<Text>,
    pub(super) password_file: Option<Text>,
    pub(super) schema: Option<Text>,
    pub(super) pool_size: Option<Spanned<u64>>,
    pub(super) ca_file: Option<Text>,
    pub(super) reconnect_for: Option<Text>,
}

/// Several instances on one PostgreSQL store.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHa {
    pub(super) lease: Option<Text>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) heartbeat: Option<Text>,
    pub(super) drain_timeout: Option<Text>,
}
