//! The benches' plain helpers, with no fake gateway behind them: shared
//! by `support` (which re-exports them) and `intake` (which has a gateway
//! of its own).

#![allow(dead_code)]

use std::time::Duration;

pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`th bench room's id.
pub fn room(i: usize) -> String {
    format!("omm_{i:032x}")
}

/// A `/proc/{pid}/status` figure in KiB (`VmHWM:` peak RSS, `VmRSS:` now).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time so far (user + system), in ms (100 ticks/s).
pub fn cpu_ms(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name's closing parenthesis.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let (u, k): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
            Some((u + k) * 10.0)
        })
        .unwrap_or(0.0)
}

/// The `q` quantile of sorted latencies (zero when there are none).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}
