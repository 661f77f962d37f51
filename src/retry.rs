//! The one retry policy: pure delay schedules and the one list of what is
//! worth retrying; and the one pacing rule (sliding-window rate limits).
//! Shared by the long-connection reconnect, the sinks and the platform's
//! REST calls.
//! Randomness is passed in (`unit` in `[0, 1)`), so every schedule is
//! table-tested.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How long to wait before retry number `attempt` (0 = the first retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The platform's reconnect rule: a random wait in `[0, nonce)` before
    /// the first attempt (so a fleet does not reconnect in step), then
    /// `interval` between attempts.
    Platform { interval: Duration, nonce: Duration },
    /// Exponential backoff with jitter: `base · 2^attempt`, capped, then a
    /// random point in its upper half (never less than half the step).
    Exponential { base: Duration, cap: Duration },
}

impl Policy {
    pub(crate) fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match *self {
            Policy::Platform { interval, nonce } => {
                if attempt == 0 {
                    nonce.mul_f64(unit)
                } else {
                    interval
                }
            }
            Policy::Exponential { base, cap } => {
                let step = base.saturating_mul(1u32 << attempt.min(30)).min(cap);
                step.mul_f64(0.5 + unit / 2.0)
            }
        }
    }
}

/// A fresh random unit for [`Policy::delay`].
pub(crate) fn jitter() -> f64 {
    rand::random::<f64>()
}

/// Is an HTTP status worth retrying? 5xx, 408 (timeout) and 429 (throttled);
/// any other 4xx is the request's own fault and will fail again.
pub(crate) fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// At most `count` requests in any `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub period: Duration,
}

impl RateLimit {
    /// `"5/s"`, `"100/min"`, `"20/m"`, `"1000/h"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a rate like \"5/s\", \"100/min\" or \"1000/h\"");
        let (n, per) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let period = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(RateLimit { count, period })
    }
}

/// Sliding-window rate limits: remembers the last `count` send times per
/// limit.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: Vec<(RateLimit, VecDeque<Instant>)>,
}

impl Limiter {
    pub(crate) fn new(limits: &[RateLimit]) -> Self {
        Limiter {
            limits: limits.iter().map(|l| (*l, VecDeque::new())).collect(),
        }
    }

    /// The earliest instant the next request may go: a full window after
    /// the oldest one it counts, plus a margin (a twentieth of the window,
    /// at most 2 s). The receiver counts arrivals on its own clock, and a
    /// request sent exactly one window later can land inside it (the
    /// Feishu bot answered 11232 to the 6th of 5/s sent at +1,000 ms).
    pub(crate) fn next_free(&self, now: Instant) -> Instant {
        self.limits
            .iter()
            .filter(|(l, sent)| sent.len() >= l.count as usize)
            .filter_map(|(l, sent)| {
                sent.front()
                    .map(|first| *first + l.period + margin(l.period))
            })
            .fold(now, Instant::max)
    }

    /// Count sends made before this limiter existed (by the instance that
    /// held the sink before this one): merged with its own, in time order.
    pub(crate) fn seed(&mut self, past: &[Instant]) {
        for (l, sent) in &mut self.limits {
            let mut all: Vec<Instant> = sent.iter().chain(past).copied().collect();
            all.sort();
            let drop = all.len().saturating_sub(l.count as usize);
            *sent = all.into_iter().skip(drop).collect();
        }
    }

    pub(crate) fn record(&mut self, now: Instant) {
        for (l, sent) in &mut self.limits {
            sent.push_back(now);
            while sent.len() > l.count as usize {
                sent.pop_front();
            }
        }
    }
}

/// How much later than a full window the next request goes.
fn margin(period: Duration) -> Duration {
    (period / 20).min(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn platform_schedule() {
        let p = Policy::Platform {
            interval: S(120),
            nonce: S(30),
        };
        for (attempt, unit, want) in [
            (0, 0.0, S(0)),
            (0, 0.5, S(15)),
            (0, 0.999, MS(29_970)),
            (1, 0.0, S(120)),
            (1, 0.9, S(120)),
            (50, 0.3, S(120)),
        ] {
            assert_eq!(
                p.delay(attempt, unit),
                want,
                "attempt {attempt} unit {unit}"
            );
        }
        let none = Policy::Platform {
            interval: S(0),
            nonce: S(0),
        };
        assert_eq!(none.delay(0, 0.7), S(0));
    }

    #[test]
    fn exponential_schedule() {
        let p = Policy::Exponential {
            base: MS(500),
            cap: S(60),
        };
        for (attempt, unit, want) in [
            (0, 0.0, MS(250)),
            (0, 1.0, MS(500)),
            (1, 0.0, MS(500)),
            (3, 1.0, S(4)),
            (7, 1.0, S(60)),
            (7, 0.0, S(30)),
            (40, 0.5, S(45)),
            (u32::MAX, 1.0, S(60)),
        ] {
            assert_eq!(
                p.delay(attempt, unit),
                want,
                "attempt {attempt} unit {unit}"
            );
        }
        assert_eq!(
            p.delay(0, f64::NAN),
            MS(250),
            "bad randomness is not a panic"
        );
    }

    #[test]
    fn retryable_statuses() {
        for (s, want) in [
            (200, false),
            (400, false),
            (401, false),
            (404, false),
            (408, true),
            (413, false),
            (429, true),
            (500, true),
            (502, true),
            (503, true),
        ] {
            assert_eq!(retryable_status(s), want, "{s}");
        }
    }
}
