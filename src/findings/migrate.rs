//! Alert state from before the findings history: older vigil kept it only in the outbox (each
//! queued message's envelope lists the keys it alerted, and when). The first run that records
//! findings in a store without any turns those into `alerted` rows, so suppression carries over
//! and no alert is sent twice across the upgrade. The envelopes hold keys, not findings: the
//! rows carry the key, its detector code and the time, and say where they came from.

use std::collections::BTreeSet;
use std::path::Path;

use super::{FindingRow, Status};

/// `status_by` of migrated rows.
pub const MIGRATED_BY: &str = "vigil (migrated from the outbox)";

/// One `alerted` row per key and time the outbox at `outbox` recorded.
pub fn from_outbox(outbox: &Path) -> Vec<FindingRow> {
    let sent: BTreeSet<(i64, String)> = crate::mail::envelopes(outbox)
        .into_iter()
        .flat_map(|e| e.keys.into_iter().map(move |k| (e.queued_at, k)))
        .collect();
    sent.into_iter()
        .map(|(at, key)| {
            let code = key.split(':').next().unwrap_or_default().to_owned();
            let detector = crate::detect::all()
                .into_iter()
                .find(|d| d.code() == code)
                .map(|d| d.name().to_owned())
                .unwrap_or_default();
            FindingRow {
                explanation: format!(
                    "Alerted at {} before vigil kept a findings history; only the key was kept.",
                    crate::timerange::rfc3339(at)
                ),
                part_keys: vec![key.clone()],
                key,
                window_start: at,
                window_end: at,
                code,
                detector,
                severity: None,
                actor_id: String::new(),
                actor_name: None,
                resources: Vec::new(),
                score: None,
                observed: None,
                baseline: None,
                investigate_sql: None,
                cold_start: false,
                detected_at: at,
                status: Status::Alerted,
                status_by: Some(MIGRATED_BY.to_owned()),
                status_reason: None,
                status_at: at,
                status_until: None,
                alert_id: None,
                commit_seq: 0,
            }
        })
        .collect()
}
