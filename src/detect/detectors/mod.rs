//! The shipped detectors, one file each, and the registry.
//!
//! Two rules for the SQL, both measured on DataFusion 55: restrict history to the window's
//! principals with a JOIN on a DISTINCT subquery, never `x IN (SELECT ...)` (planned ~40x
//! slower), and put that small subquery on the LEFT of the join: without statistics the hash
//! join builds its table from the left side, and with `events` there it buffered the whole
//! lookback (10 M events: 5.5 s and 3.7 GiB for one detector, 1.4 s when swapped).
//!
//! A third: `count(DISTINCT x)` beside other aggregates takes `arrow_cast(x, 'Utf8')`. The
//! columns are string views (`query::table`), and the per-group distinct set of views costs far
//! more memory (VG009 over a 10 M-event store: 700 MiB peak, 364 MiB with the cast).

mod bulk_retrieval;
mod canary_touched;
mod cross_environment;
mod denial_rate;
mod denied_storm;
mod denied_then_success;
mod dormant_principal;
mod dormant_secret;
mod enumeration;
mod first_secret_read;
mod new_caller;
mod new_network;
mod new_user_agent;
mod off_hours_human;
mod read_burst;
mod sensitive_change;
mod unusual_hour;

use std::collections::BTreeMap;

use datafusion::common::ScalarValue;
use serde_json::Value;

use super::peers::ReadPairs;
use super::rows::{self, typed, Row};
use super::{DetectContext, Detector, Finding, Param, Severity};
use crate::query::QueryError;
use crate::timerange::rfc3339;

/// Every detector, in code order.
pub fn all() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(new_caller::NewCaller),
        Box::new(first_secret_read::FirstSecretRead),
        Box::new(new_network::NewNetwork),
        Box::new(new_user_agent::NewUserAgent),
        Box::new(off_hours_human::OffHoursHuman),
        Box::new(unusual_hour::UnusualHour),
        Box::new(read_burst::ReadBurst),
        Box::new(read_burst::OffHoursBurst),
        Box::new(enumeration::Enumeration),
        Box::new(bulk_retrieval::BulkRetrieval),
        Box::new(denied_storm::DeniedStorm),
        Box::new(denied_then_success::DeniedThenSuccess),
        Box::new(canary_touched::CanaryTouched),
        Box::new(dormant_secret::DormantSecret),
        Box::new(dormant_principal::DormantPrincipal),
        Box::new(cross_environment::CrossEnvironment),
        Box::new(sensitive_change::SensitiveChange),
    ]
}

use crate::timerange::{NANOS_PER_DAY as DAY, NANOS_PER_HOUR as HOUR, NANOS_PER_SECOND};

/// Window bounds and the start of the history before it, as bound parameters.
fn bounds(d: &DetectContext<'_>, lookback: i64) -> Vec<(&'static str, ScalarValue)> {
    vec![
        ("from", rows::ts(d.window.from)),
        ("to", rows::ts(d.window.to)),
        (
            "hist_from",
            rows::ts(d.window.from.saturating_sub(lookback)),
        ),
    ]
}

async fn query(
    d: &DetectContext<'_>,
    sql: &str,
    params: Vec<(&'static str, ScalarValue)>,
) -> Result<Vec<Row>, QueryError> {
    rows::rows(d.ctx, sql, params, d.limits).await
}

/// Days of history between `first` (UTC nanoseconds) and the window start.
fn history_days(d: &DetectContext<'_>, first: Option<i64>) -> f64 {
    first
        .map(|t| (d.window.from - t) as f64 / DAY as f64)
        .unwrap_or(0.0)
        .max(0.0)
}

/// The common parts of a finding; detectors fill in the numbers and the sentence.
#[allow(clippy::too_many_arguments)]
fn finding(
    det: &dyn Detector,
    severity: Severity,
    actor_id: &str,
    actor_name: Option<&str>,
    resources: Vec<String>,
    start: &str,
    end: &str,
    key_suffix: Option<&str>,
) -> Finding {
    let key = match key_suffix {
        Some(s) => format!("{}:{actor_id}:{s}", det.code()),
        None => format!("{}:{actor_id}", det.code()),
    };
    Finding {
        code: det.code(),
        detector: det.name(),
        severity,
        actor_id: actor_id.to_owned(),
        actor_name: actor_name.map(str::to_owned),
        resources,
        window_start: start.to_owned(),
        window_end: end.to_owned(),
        score: 0.0,
        observed: BTreeMap::new(),
        baseline: BTreeMap::new(),
        explanation: String::new(),
        investigate_sql: super::finding::investigate(actor_id, start, &end_exclusive(end), ""),
        key,
        part_keys: Vec::new(),
        cold_start: false,
    }
}

/// An inclusive end time as the exclusive bound of an investigation query (one second later,
/// so the last event is included whatever its sub-second digits).
fn end_exclusive(end: &str) -> String {
    crate::timerange::parse_instant(end)
        .map(|t| rfc3339(t + NANOS_PER_SECOND))
        .unwrap_or_else(|_| end.to_owned())
}

/// Days from the time in column `earlier` to the one in `later` (0 when either is missing).
fn days_between(row: &Row, earlier: &str, later: &str) -> f64 {
    match (rows::time(row, earlier), rows::time(row, later)) {
        (Some(a), Some(b)) => (b - a) as f64 / DAY as f64,
        _ => 0.0,
    }
}

pub(super) const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 30.0,
    doc: "history compared with the window",
};
pub(super) const MIN_EVENTS: Param = Param {
    name: "min_events",
    default: 20.0,
    doc: "calls a principal needs in the lookback",
};

/// Parameters of the first-seen detectors (VG003, VG004).
const FIRST_SEEN_PARAMS: [Param; 2] = [LOOKBACK_DAYS, MIN_EVENTS];

/// The name people know a principal by, for sentences: an AWS role by its name (its
/// `actor_name` is only a session name), others by `actor_name`, else the id.
fn who(row: &Row) -> String {
    crate::detect::display_name(
        rows::s(row, "actor_id").unwrap_or(""),
        rows::s(row, "actor_name"),
    )
}

/// Baselines more than one detector reads, computed at most once per run (per lookback for the
/// hour profiles): the store's history length (VG001, VG002, VG007, VG008, VG017) and the
/// principals' hour profiles (VG005, VG006, VG007, VG008).
#[derive(Default)]
pub struct Cache {
    history_days: tokio::sync::OnceCell<f64>,
    profiles: tokio::sync::Mutex<BTreeMap<i64, std::sync::Arc<unusual_hour::Profiles>>>,
    /// Names of the registered client-history tables, per lookback.
    clients: tokio::sync::Mutex<BTreeMap<i64, String>>,
    /// Who read which secret, per lookback (VG001, VG017: peers).
    read_pairs: tokio::sync::Mutex<BTreeMap<i64, std::sync::Arc<ReadPairs>>>,
}

/// The lookback's (principal, secret) read pairs, from the hourly rollups (its groups, not its
/// events): one row per pair, a few thousand on an estate of a thousand principals.
const PAIRS: &str = "
SELECT resource_id, actor_id, max(actor_type) AS actor_type, min(first_time) AS first_seen
FROM event_counts
WHERE is_secret_read AND outcome = 'success' AND actor_id IS NOT NULL AND resource_id IS NOT NULL
  AND last_time >= $hist_from AND first_time < $from
GROUP BY resource_id, actor_id";

/// The principals of the lookback and the window with their peer groups (`crate::peer_groups`),
/// from the principal rollups: one row per principal and set of attributes.
const DECLARED: &str = "
WITH p AS (
  SELECT source, actor_id, max(actor_type) AS actor_type, max(actor_name) AS actor_name,
         actor_role, tenant, actor_groups
  FROM principal_counts
  WHERE actor_id IS NOT NULL AND last_time >= $hist_from AND first_time < $to
  GROUP BY source, actor_id, actor_role, tenant, actor_groups)
SELECT actor_id, actor_type,
       vigil_peer_groups(source, actor_id, actor_name, actor_role, tenant, actor_groups) AS peer_groups
FROM p";

/// The lookback's read pairs (principal, secret, first read) and the principals' declared
/// groups, read once per run and lookback.
async fn read_pairs(
    d: &DetectContext<'_>,
    lookback: i64,
) -> Result<std::sync::Arc<ReadPairs>, QueryError> {
    let mut cache = d.cache.read_pairs.lock().await;
    if let Some(p) = cache.get(&lookback) {
        return Ok(p.clone());
    }
    let mut out = ReadPairs::default();
    for batch in rows::batches(d.ctx, PAIRS, bounds(d, lookback), d.limits).await? {
        let actors = typed::strings(&batch, "actor_id")?;
        let types = typed::strings(&batch, "actor_type")?;
        let resources = typed::strings(&batch, "resource_id")?;
        let firsts = typed::nanos(&batch, "first_seen")?;
        for (((actor, ty), resource), first) in
            actors.into_iter().zip(types).zip(resources).zip(firsts)
        {
            if let (Some(actor), Some(resource), Some(first)) = (actor, resource, first) {
                out.insert(actor, ty, resource, first);
            }
        }
    }
    for batch in rows::batches(d.ctx, DECLARED, bounds(d, lookback), d.limits).await? {
        let actors = typed::strings(&batch, "actor_id")?;
        let types = typed::strings(&batch, "actor_type")?;
        let groups = typed::string_lists(&batch, "peer_groups")?;
        for ((actor, ty), groups) in actors.into_iter().zip(types).zip(groups) {
            if let Some(actor) = actor {
                out.declare(&actor, ty, groups, |g| d.query.peer_groups.is_configured(g));
            }
        }
    }
    let out = std::sync::Arc::new(out);
    cache.insert(lookback, out.clone());
    Ok(out)
}

/// Calls of the window's secret readers in the lookback, per source address and user agent:
/// the history both first-seen detectors (VG003 networks, VG004 user agents) compare with, read
/// from the store once per run instead of once each, and from the client rollups
/// (`client_counts`): the lookback's hours per principal and client, not its events.
const CLIENT_HISTORY: &str = "
SELECT c.actor_id, c.src_ip, c.user_agent, sum(c.events) AS n
FROM (SELECT DISTINCT actor_id AS wanted FROM secret_reads
      WHERE actor_id IS NOT NULL AND event_time >= $from AND event_time < $to) w
JOIN client_counts c ON c.actor_id = w.wanted
WHERE c.last_time >= $hist_from AND c.first_time < $from
  AND (c.src_ip IS NOT NULL OR c.user_agent IS NOT NULL)
GROUP BY c.actor_id, c.src_ip, c.user_agent";

/// The name of the table holding [`CLIENT_HISTORY`] for `lookback`, computed and registered in
/// the session on first use (columns `actor_id`, `src_ip`, `user_agent`, `n`).
async fn client_history(d: &DetectContext<'_>, lookback: i64) -> Result<String, QueryError> {
    let mut cache = d.cache.clients.lock().await;
    if let Some(name) = cache.get(&lookback) {
        return Ok(name.clone());
    }
    let name = materialize(
        d,
        &format!("vigil_client_history_{}", cache.len()),
        CLIENT_HISTORY,
        bounds(d, lookback),
    )
    .await?;
    cache.insert(lookback, name.clone());
    Ok(name)
}

/// Runs `sql` once and registers its result in the session as table `name` (returned), for a
/// detector whose query reads one intermediate result several times: DataFusion inlines a CTE
/// at each use, so each would scan the store again. A backtest runs window after window on one
/// session: each run's table replaces the last of the same name.
async fn materialize(
    d: &DetectContext<'_>,
    name: &str,
    sql: &str,
    params: Vec<(&'static str, ScalarValue)>,
) -> Result<String, QueryError> {
    let df = crate::query::plan(
        d.ctx,
        sql,
        Some(datafusion::common::ParamValues::from(params)),
    )
    .await?;
    let schema = df.schema().inner().clone();
    let batches = crate::query::collect(df, d.limits).await?;
    let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
    d.ctx.deregister_table(name)?;
    d.ctx.register_table(name, std::sync::Arc::new(table))?;
    Ok(name.to_owned())
}

/// Days of history the store holds before the window (0 when none).
async fn store_history_days(d: &DetectContext<'_>) -> Result<f64, QueryError> {
    d.cache
        .history_days
        .get_or_try_init(|| first_event_days(d))
        .await
        .copied()
}

async fn first_event_days(d: &DetectContext<'_>) -> Result<f64, QueryError> {
    let first = query(
        d,
        "SELECT min(event_time) AS first FROM events WHERE event_time < $from",
        vec![("from", rows::ts(d.window.from))],
    )
    .await?;
    Ok(history_days(
        d,
        first.first().and_then(|r| rows::time(r, "first")),
    ))
}

fn int(v: f64) -> Value {
    Value::from(v as i64)
}
