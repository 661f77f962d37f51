//! The time source. Everything that needs "now" at run time gets a
//! [`TimeSource`] passed in (tests pass one that follows tokio's paused
//! clock); nothing else calls `Utc::now()`. The pure middle takes `now` as
//! a plain argument and never sees this module.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

/// A source of "now".
pub type TimeSource = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system's wall clock.
pub fn system() -> TimeSource {
    Arc::new(Utc::now)
}

/// A clock stopped at `t`.
pub fn fixed(t: DateTime<Utc>) -> TimeSource {
    Arc::new(move || t)
}

/// `t` rounded down to its minute: views change by the minute at most.
pub(crate) fn minute_start(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

/// How long from `t` until the next minute starts (a full minute on the
/// minute itself).
pub(crate) fn until_next_minute(t: DateTime<Utc>) -> Duration {
    let into = Duration::from_secs(u64::from(t.second()))
        + Duration::from_nanos(u64::from(t.nanosecond()));
    Duration::from_secs(60).saturating_sub(into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            minute_start(t("2026-05-01T07:30:59.999Z")),
            t("2026-05-01T07:30:00Z")
        );
        assert_eq!(
            minute_start(t("2026-05-01T07:30:00Z")),
            t("2026-05-01T07:30:00Z")
        );
        assert_eq!(
            until_next_minute(t("2026-05-01T07:30:45.5Z")),
            Duration::from_millis(14_500)
        );
        assert_eq!(
            until_next_minute(t("2026-05-01T07:30:00Z")),
            Duration::from_secs(60)
        );
        assert_eq!(
            fixed(t("2026-05-01T07:30:00Z"))(),
            t("2026-05-01T07:30:00Z")
        );
    }
}
