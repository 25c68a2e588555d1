//! Detection in the service: the detectors judge every hour once it has closed (its end plus
//! `[serve] detect_delay` has passed), each hour exactly once and in order, the hour after the
//! last one judged being kept in `<store>/state/serve.json`. An hour is the window `vigil
//! backtest --step 1h` uses, so the service finds over a day what that replay finds; detectors
//! that count in smaller buckets (VG009 10 minutes, VG011 15) count whole buckets inside it.
//!
//! The cursor moves after the hour's findings are recorded: a crash between the two judges the
//! hour again, and the findings history knows the findings it already holds (nothing is
//! recorded or sent twice).
//!
//! Detectors whose buckets are shorter than an hour (VG009 10 minutes, VG011 15) and the canary
//! (VG013) do not make their alerts wait for the hour's end: once every hour before it has been
//! judged, the open hour so far, `[hour, end)`, is looked at with them at the end of each of
//! their buckets that has closed (`delay` ago), each end once, also kept in `serve.json`. A look
//! sees the hour's events up to its end with the baseline of the hour (history before the hour
//! starts), so what it finds, the hour's judgment finds again, known to the findings history:
//! a sweep that grows after the look is the same key found again in a larger window, which
//! `[alerts] suppress_for` keeps from being mailed twice.

use std::collections::BTreeMap;
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
    /// Per detector code, the end of its last look at an hour not closed yet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    looked_through: BTreeMap<String, String>,
}

/// Where detection stands.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cursor {
    /// The end of the last hour judged, if the service has judged one.
    pub through: Option<i64>,
    /// Per detector code, the end of its last look at the open hour.
    pub looked: BTreeMap<String, i64>,
}

fn path(store: &Store) -> PathBuf {
    store.root().join(STATE_FILE)
}

impl Cursor {
    pub fn load(store: &Store) -> Result<Cursor, String> {
        let p = path(store);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cursor::default()),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        };
        let saved: Saved =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        let through = parse_instant(&saved.detected_through)
            .map_err(|e| format!("{}: detected_through: {e}", p.display()))?;
        let looked = saved
            .looked_through
            .iter()
            .map(|(code, t)| {
                parse_instant(t)
                    .map(|t| (code.clone(), t))
                    .map_err(|e| format!("{}: looked_through.{code}: {e}", p.display()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Cursor {
            through: Some(through),
            looked,
        })
    }

    pub fn save(&self, store: &Store) -> Result<(), String> {
        let Some(through) = self.through else {
            return Ok(());
        };
        let p = path(store);
        if let Some(dir) = p.parent() {
            crate::fsutil::create_dir_all_durable(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let body = serde_json::to_vec_pretty(&Saved {
            detected_through: rfc3339(through),
            // Looks at hours judged since are of no more use.
            looked_through: self
                .looked
                .iter()
                .filter(|(_, t)| **t > through)
                .map(|(code, t)| (code.clone(), rfc3339(*t)))
                .collect(),
        })
        .unwrap_or_default();
        crate::fsutil::write_atomic(&p, &body).map_err(|e| format!("{}: {e}", p.display()))
    }
}

/// The end of the look at the open hour due now for a detector that looks every `every`: the
/// end of its last bucket that closed `delay` ago, when that is inside the hour (its end is the
/// hour's judgment) and after its last look (`looked`). `hour` is the open hour's start.
pub fn look_due(hour: i64, now: i64, delay: i64, every: i64, looked: Option<i64>) -> Option<i64> {
    let closed = now.saturating_sub(delay);
    if every <= 0 || closed <= hour {
        return None;
    }
    let end = hour + (closed - hour) / every * every;
    (end > hour && end < hour + NANOS_PER_HOUR && looked.is_none_or(|l| end > l)).then_some(end)
}

/// The start of the hour `t` is in.
pub fn open_hour(now: i64, delay: i64) -> i64 {
    floor_hour(now.saturating_sub(delay))
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
        let now = 100 * H + 30 * M; // 100:30
        let delay = 2 * M;
        // From the cursor to the last closed hour [99, 100).
        let d = due(Some(97 * H), None, now, delay, 24 * H);
        assert_eq!(
            d.iter().map(|w| w.from / H).collect::<Vec<_>>(),
            [97, 98, 99]
        );
        // 100:01 is within the delay of 100:00: [99, 100) is not closed yet.
        assert_eq!(due(Some(99 * H), None, 100 * H + M, delay, H).len(), 0);
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
        let (now, delay) = (100 * H + 30 * M, 2 * M);
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
        assert_eq!(Cursor::load(&store).unwrap(), Cursor::default());
        let mut c = Cursor {
            through: Some(5 * H),
            looked: [
                ("VG009".to_owned(), 5 * H + 20 * M),
                ("VG011".to_owned(), 4 * H),
            ]
            .into(),
        };
        c.save(&store).unwrap();
        // A look at an hour judged since is dropped.
        c.looked.remove("VG011");
        assert_eq!(Cursor::load(&store).unwrap(), c);
        std::fs::write(dir.path().join(STATE_FILE), "{").unwrap();
        assert!(Cursor::load(&store).unwrap_err().contains("serve.json"));
        // A state file of a service without looks still reads.
        std::fs::write(
            dir.path().join(STATE_FILE),
            r#"{"detected_through": "1970-01-01T05:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(Cursor::load(&store).unwrap().through, Some(5 * H));
    }

    const M: i64 = crate::timerange::NANOS_PER_MINUTE;

    #[test]
    fn a_look_is_due_at_each_closed_bucket_of_the_open_hour_once() {
        let delay = 2 * M;
        // 10:25 with 10-minute buckets: [10:00, 10:20) closed at 10:22.
        assert_eq!(
            look_due(10 * H, 10 * H + 25 * M, delay, 10 * M, None),
            Some(10 * H + 20 * M)
        );
        // Looked at already: not again until 10:30 has closed.
        assert_eq!(
            look_due(
                10 * H,
                10 * H + 25 * M,
                delay,
                10 * M,
                Some(10 * H + 20 * M)
            ),
            None
        );
        assert_eq!(
            look_due(
                10 * H,
                10 * H + 32 * M,
                delay,
                10 * M,
                Some(10 * H + 20 * M)
            ),
            Some(10 * H + 30 * M)
        );
        // 10:01: no bucket has closed `delay` ago.
        assert_eq!(look_due(10 * H, 10 * H + M, delay, 10 * M, None), None);
        // The hour's last bucket is the hour's judgment, not a look.
        assert_eq!(
            look_due(10 * H, 11 * H + M, delay, 10 * M, None),
            Some(10 * H + 50 * M)
        );
        assert_eq!(
            look_due(10 * H, 11 * H + 5 * M, 0, 10 * M, Some(10 * H + 50 * M)),
            None
        );
        // 7-minute buckets from the hour's start.
        assert_eq!(
            look_due(10 * H, 10 * H + 16 * M, 0, 7 * M, None),
            Some(10 * H + 14 * M)
        );
        assert_eq!(open_hour(10 * H + M, delay), 9 * H);
    }
}
