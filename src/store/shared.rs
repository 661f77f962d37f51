//! Several instances on one PostgreSQL store: who does what.
//!
//! Work that must happen once is held under a **lease**, a row of the
//! `lease` table (name, owner, epoch, until): `leader` (the clock's work:
//! panel pushes on the clock, reminders, daily agendas, pruning, the
//! platform sync) and `sink:NAME` for each sink (its messages, so that a
//! sink's order, hold-back and rate limit are one instance's, shared by
//! all). Every instance renews what it holds and takes what has expired,
//! in one statement each round of its change feed (about a second); a
//! lease not renewed for `[ha] lease` passes to the next instance that
//! asks, with its epoch one higher. An instance that could not renew for
//! that long counts itself as holding nothing.
//!
//! The owner of a sink **claims** its pending outbox rows (`FOR UPDATE
//! SKIP LOCKED`): each claim sets `claimed_by` and counts up `claims`. Any
//! instance may have queued them (a commit queues, it does not send); the
//! owner sends them in order. An outcome is recorded only by the instance
//! that holds the row's claim: one whose lease expired cannot mark a row
//! another instance has since taken (that one sends it again, under the
//! same `Idempotency-Key`).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::OutboxRow;
use super::postgres::outbox_columns;

/// The lease of the clock's work.
pub(crate) const LEADER: &str = "leader";

/// This instance's roles, as its last lease round left them.
#[derive(Debug)]
pub struct Roles {
    /// This instance's name in the `lease` and `outbox` tables
    /// (`host:pid:random`).
    pub me: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    held: Mutex<Held>,
    /// The leases to hold or take: the leader's and each configured
    /// sink's (a reload changes the sinks).
    wanted: Mutex<Vec<String>>,
    /// Outbox rows claimed (first claims and takeovers).
    pub claimed: AtomicU64,
}

#[derive(Debug, Default)]
struct Held {
    /// Lease names held, at the last successful round.
    names: BTreeSet<String>,
    leader_epoch: i64,
    /// When that round succeeded.
    renewed: Option<Instant>,
    /// Sinks taken since their past sends were last looked up.
    fresh: BTreeSet<String>,
}

impl Roles {
    pub fn new(lease: Duration) -> Roles {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        Roles {
            me: format!(
                "{host}:{}:{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            lease,
            held: Mutex::default(),
            wanted: Mutex::default(),
            claimed: AtomicU64::new(0),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Does this instance hold lease `name` now?
    fn holds(&self, name: &str) -> bool {
        let h = self.held();
        h.renewed.is_some_and(|t| t.elapsed() < self.lease) && h.names.contains(name)
    }

    /// Hold (or take) the leader's lease and those of `sinks` from the next
    /// round on; a sink no longer named is let go when its lease lapses.
    pub fn want_sinks<'a>(&self, sinks: impl IntoIterator<Item = &'a str>) {
        let names: Vec<String> = std::iter::once(LEADER.to_string())
            .chain(sinks.into_iter().map(sink_lease))
            .collect();
        *self
            .wanted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = names;
    }

    /// The leases to renew or take.
    pub(crate) fn wanted(&self) -> Vec<String> {
        self.wanted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Does this instance do the clock's work now?
    pub fn leader(&self) -> bool {
        self.holds(LEADER)
    }

    /// Does this instance send `sink`'s messages now?
    pub fn owns(&self, sink: &str) -> bool {
        self.holds(&sink_lease(sink))
    }

    /// The sinks this instance sends for now.
    pub fn sinks(&self) -> Vec<String> {
        let h = self.held();
        if h.renewed.is_none_or(|t| t.elapsed() >= self.lease) {
            return Vec::new();
        }
        h.names
            .iter()
            .filter_map(|n| n.strip_prefix("sink:").map(str::to_string))
            .collect()
    }

    /// Seconds since the last successful lease round (`None`: none yet).
    pub fn lease_age(&self) -> Option<Duration> {
        self.held().renewed.map(|t| t.elapsed())
    }

    /// The leader's epoch, when this instance leads.
    pub fn leader_epoch(&self) -> Option<i64> {
        let h = self.held();
        h.names.contains(LEADER).then_some(h.leader_epoch)
    }

    /// The sinks taken since the last call (their past sends to look up).
    fn take_fresh(&self) -> Vec<String> {
        std::mem::take(&mut self.held().fresh).into_iter().collect()
    }

    /// Record a successful round: what is held now.
    pub(super) fn renewed(&self, names: BTreeSet<String>, leader_epoch: Option<i64>) {
        let mut h = self.held();
        let was_leader = h.names.contains(LEADER);
        if let Some(e) = leader_epoch {
            if !was_leader {
                tracing::info!(instance = %self.me, epoch = e, "took the leader's lease: this instance does the clock's work");
            }
            h.leader_epoch = e;
        } else if was_leader {
            tracing::warn!(instance = %self.me, "lost the leader's lease");
        }
        let gained: Vec<&String> = names
            .difference(&h.names)
            .filter(|n| n.starts_with("sink:"))
            .collect();
        if !gained.is_empty() {
            tracing::info!(instance = %self.me, leases = ?gained, "took sink leases");
        }
        let gained: Vec<String> = gained
            .into_iter()
            .filter_map(|n| n.strip_prefix("sink:").map(str::to_string))
            .collect();
        h.fresh.extend(gained);
        h.names = names;
        h.renewed = Some(Instant::now());
    }
}

/// The lease a sink's messages are sent under.
pub(crate) fn sink_lease(sink: &str) -> String {
    format!("sink:{sink}")
}

/// Renew what `me` holds and take what has expired, of `names`; the names
/// held now and the leader's epoch if among them.
pub(crate) async fn lease_round(
    client: &tokio_postgres::Client,
    roles: &Roles,
) -> Result<(), tokio_postgres::Error> {
    let ttl = roles.lease.as_secs_f64();
    let names = roles.wanted();
    let rows = client
        .query(
            "INSERT INTO lease (name, owner, epoch, until)
               SELECT n, $1, 1, now() + make_interval(secs => $3) FROM unnest($2::text[]) AS n
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until,
               epoch = CASE WHEN lease.owner = excluded.owner THEN lease.epoch ELSE lease.epoch + 1 END
             WHERE lease.owner = excluded.owner OR lease.until < now()
             RETURNING name, epoch",
            &[&roles.me, &names, &ttl],
        )
        .await?;
    let mut held = BTreeSet::new();
    let mut leader = None;
    for r in rows {
        let name: String = r.get(0);
        if name == LEADER {
            leader = Some(r.get::<_, i64>(1));
        }
        held.insert(name);
    }
    roles.renewed(held, leader);
    Ok(())
}

/// Sends other instances made for sinks this one has just taken: each
/// sink's latest deliveries within the hour (the longest rate-limit
/// window), how long ago each (the database's clock against the
/// recording instance's). The new owner's rate limiter counts them: a
/// sink's limit is its receiver's, whichever instance sends.
#[derive(Debug, Default, PartialEq)]
pub struct SentBefore(pub Vec<(String, Vec<Duration>)>);

/// Look up [`SentBefore`] for the sinks taken since the last call (`None`
/// when none was).
pub(crate) async fn sent_before(
    client: &tokio_postgres::Client,
    roles: &Roles,
) -> Result<Option<SentBefore>, tokio_postgres::Error> {
    let fresh = roles.take_fresh();
    if fresh.is_empty() {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT s.sink, d.ago FROM unnest($1::text[]) AS s(sink)
             CROSS JOIN LATERAL (
               SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint - done_at AS ago
               FROM outbox
               WHERE outbox.sink = s.sink AND state = 'delivered'
                 AND done_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 3600000
               ORDER BY done_at DESC LIMIT 1000) d",
            &[&fresh],
        )
        .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            // Looked up again on the next connection.
            roles.held().fresh.extend(fresh);
            return Err(e);
        }
    };
    let mut out: Vec<(String, Vec<Duration>)> =
        fresh.into_iter().map(|s| (s, Vec::new())).collect();
    for r in rows {
        let (sink, ago): (String, i64) = (r.get(0), r.get(1));
        if let Some((_, v)) = out.iter_mut().find(|(s, _)| *s == sink) {
            v.push(Duration::from_millis(u64::try_from(ago).unwrap_or(0)));
        }
    }
    out.retain(|(_, v)| !v.is_empty());
    Ok((!out.is_empty()).then_some(SentBefore(out)))
}

/// Claim the pending rows of the sinks `me` owns that it has not claimed
/// yet (queued by any instance, or left by one whose lease expired), in
/// order.
pub(crate) async fn claim(
    client: &tokio_postgres::Client,
    roles: &Roles,
) -> Result<Vec<OutboxRow>, tokio_postgres::Error> {
    let sinks = roles.sinks();
    if sinks.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "UPDATE outbox SET claimed_by = $1, claims = claims + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE state = 'pending' AND sink = ANY($2) AND claimed_by IS DISTINCT FROM $1
                          ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1000)
             RETURNING id, sink, room, subject, booking, event_id, idempotency_key, format, body, created, state, attempts, last_error, claims",
            &[&roles.me, &sinks],
        )
        .await?;
    let mut out: Vec<(OutboxRow, i64)> = rows
        .iter()
        .map(|r| (outbox_columns(r), r.get(13)))
        .collect();
    out.sort_by_key(|(r, _)| r.id);
    roles.claimed.fetch_add(out.len() as u64, Ordering::Relaxed);
    Ok(out
        .into_iter()
        .map(|(mut row, claims)| {
            // A first claim is a fresh message; one taken over may have
            // reached its receiver already: sent again, never replaced
            // unsent (see `Message::restored`).
            row.message.restored = claims > 1;
            row
        })
        .collect())
}

/// At a stop: one last lease round and claim, on a connection and a
/// runtime of its own (blocking; call it from `spawn_blocking`), so what
/// this instance's sinks have pending is sent before it goes (within the
/// drain timeout; the rest stays queued for the sinks' next owners).
pub fn last_claims(cfg: &crate::config::PgConfig, roles: &Roles) -> Result<Vec<OutboxRow>, String> {
    blocking(cfg, async |client| {
        lease_round(client, roles).await?;
        claim(client, roles).await
    })
}

/// At the end of a stop: give up this instance's leases, so the next
/// instance to ask takes them at once (not a lease's length later).
pub fn release(cfg: &crate::config::PgConfig, roles: &Roles) -> Result<(), String> {
    blocking(cfg, async |client| {
        client
            .execute(
                "UPDATE lease SET until = now() - interval '1 second' WHERE owner = $1",
                &[&roles.me],
            )
            .await
            .map(|_| ())
    })
}

/// Run `f` on a connection and a runtime of their own (blocking).
fn blocking<T>(
    cfg: &crate::config::PgConfig,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pc = super::postgres::client_config(cfg).map_err(|e| e.to_string())?;
    let pg = |e: tokio_postgres::Error| crate::error::Chain(&e).to_string();
    rt.block_on(async {
        let client = if pc.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
            let (c, conn) = pc.connect(tokio_postgres::NoTls).await.map_err(pg)?;
            tokio::spawn(conn);
            c
        } else {
            let (c, conn) = pc.connect(super::postgres::tls(cfg)?).await.map_err(pg)?;
            tokio::spawn(conn);
            c
        };
        f(&client).await.map_err(pg)
    })
}
