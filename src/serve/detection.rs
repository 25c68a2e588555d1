//! Detection in the service: the detectors judge every hour once it has closed (its end plus
//! `[serve] detect_delay` has passed), each hour exactly once and in order, the hour after the
//! last one judged being kept in `<store>/state/serve.json`. An hour is the window `vigil
//! backtest --step 1h` uses, so the service finds over a day what that replay finds; detectors
//! that count in smaller buckets (VG009 10 minutes, VG011 15) count whole buckets inside it.
//!
//! The cursor moves after the hour's findings are recorded: a crash between the two judges the
//! hour again, and the findings history knows the findings it already holds (nothing is
//! recorded or sent twice).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::{CommitLog, Store};
use crate::timerange::{parse_instant, rfc3339, TimeRange, NANOS_PER_HOUR};

/// Where the cursor is kept, under the store.
const STATE_FILE: &str = "state/serve.json";

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    /// The end of the last hour judged: the next hour starts here.
    detected_through: String,
}

fn path(store: &Store) -> PathBuf {
    store.root().join(STATE_FILE)
}

/// The end of the last hour judged, if the service has judged one.
pub fn load(store: &Store) -> Result<Option<i64>, String> {
    let p = path(store);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", p.display())),
    };
    let saved: Saved = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    parse_instant(&saved.detected_through)
        .map(Some)
        .map_err(|e| format!("{}: detected_through: {e}", p.display()))
}

pub fn save(store: &Store, through: i64) -> Result<(), String> {
    let p = path(store);
    if let Some(dir) = p.parent() {
        crate::store::fsutil::create_dir_all_durable(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let body = serde_json::to_vec_pretty(&Saved {
        detected_through: rfc3339(through),
    })
    .unwrap_or_default();
    crate::store::fsutil::write_atomic(&p, &body).map_err(|e| format!("{}: {e}", p.display()))
}

fn floor_hour(t: i64) -> i64 {
    t.div_euclid(NANOS_PER_HOUR) * NANOS_PER_HOUR
}

/// The hours to judge at `now`, oldest first: from the cursor (or, on a first start, from the
/// store's earliest event but no more than `backfill` before the last closed hour's end) to
/// the last hour that has closed `delay` ago. None before the store holds an event.
pub fn due(
    cursor: Option<i64>,
    earliest_event: Option<i64>,
    now: i64,
    delay: i64,
    backfill: i64,
) -> Vec<TimeRange> {
    let closed = floor_hour(now.saturating_sub(delay));
    let Some(start) = cursor
        .or_else(|| earliest_event.map(|e| floor_hour(e.max(closed.saturating_sub(backfill)))))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut t = start;
    while t + NANOS_PER_HOUR <= closed {
        out.push(TimeRange {
            from: t,
            to: t + NANOS_PER_HOUR,
        });
        t += NANOS_PER_HOUR;
    }
    out
}

/// Where the cursor goes back to when a commit stores events as old as `oldest` for hours
/// already judged (`cursor`): to the hour of `oldest`, but no further back than `backfill`
/// before the last closed hour; `None` when it stays (nothing to judge again).
pub fn rewind(cursor: i64, oldest: i64, now: i64, delay: i64, backfill: i64) -> Option<i64> {
    let closed = floor_hour(now.saturating_sub(delay));
    let to = floor_hour(oldest).max(floor_hour(closed.saturating_sub(backfill)));
    (to < cursor).then_some(to)
}

/// The time spans of the store's data files: an hour no file overlaps holds no event, and the
/// detectors (which judge the events of their window) have nothing to say about it.
pub struct Spans(Vec<(i64, i64)>);

impl Spans {
    pub fn of(log: &CommitLog) -> Spans {
        Spans(
            log.files()
                .filter_map(|f| {
                    Some((
                        parse_instant(&f.min_time).ok()?,
                        parse_instant(&f.max_time).ok()?,
                    ))
                })
                .collect(),
        )
    }

    pub fn earliest(&self) -> Option<i64> {
        self.0.iter().map(|(min, _)| *min).min()
    }

    pub fn overlap(&self, w: &TimeRange) -> bool {
        self.0
            .iter()
            .any(|(min, max)| *min < w.to && *max >= w.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = NANOS_PER_HOUR;

    #[test]
    fn hours_are_due_once_closed_from_the_cursor_or_the_backfill() {
        let now = 100 * H + 30 * 60_000_000_000; // 100:30
        let delay = 2 * 60_000_000_000;
        // From the cursor to the last closed hour [99, 100).
        let d = due(Some(97 * H), None, now, delay, 24 * H);
        assert_eq!(
            d.iter().map(|w| w.from / H).collect::<Vec<_>>(),
            [97, 98, 99]
        );
        // 100:01 is within the delay of 100:00: [99, 100) is not closed yet.
        assert_eq!(
            due(Some(99 * H), None, 100 * H + 60_000_000_000, delay, H).len(),
            0
        );
        // A first start over old history goes back `backfill` at most.
        let d = due(None, Some(10 * H), now, delay, 3 * H);
        assert_eq!(d.first().map(|w| w.from / H), Some(97));
        // ... and over recent history, from the hour of its earliest event.
        let d = due(None, Some(98 * H + 5), now, delay, 24 * H);
        assert_eq!(d.iter().map(|w| w.from / H).collect::<Vec<_>>(), [98, 99]);
        // Nothing stored: nothing to judge, and no cursor yet.
        assert!(due(None, None, now, delay, 24 * H).is_empty());
    }

    #[test]
    fn late_events_send_the_cursor_back_within_the_backfill() {
        let (now, delay) = (100 * H + 30 * 60_000_000_000, 2 * 60_000_000_000);
        // Events of 97:40 arrive after [97, 100) was judged: from 97 again.
        assert_eq!(
            rewind(100 * H, 97 * H + 40, now, delay, 24 * H),
            Some(97 * H)
        );
        // Older than the backfill: back to its start only.
        assert_eq!(rewind(100 * H, 10 * H, now, delay, 3 * H), Some(97 * H));
        // Not before the cursor: nothing to judge again.
        assert_eq!(rewind(100 * H, 100 * H + 5, now, delay, 24 * H), None);
    }

    #[test]
    fn the_cursor_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(load(&store).unwrap(), None);
        save(&store, 5 * H).unwrap();
        assert_eq!(load(&store).unwrap(), Some(5 * H));
        std::fs::write(dir.path().join(STATE_FILE), "{").unwrap();
        assert!(load(&store).unwrap_err().contains("serve.json"));
    }
}
