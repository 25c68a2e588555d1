//! Runs `[[serve.schedule]]` (read by `config::schedule`) at the slots of its cron expression.
//!
//! Each slot runs once: the last slot run per schedule is kept in `<store>/state/schedule.json`
//! once its work is done, and a report's message carries the slot in its outbox id, so a crash
//! after queueing and before recording does not mail it twice. A schedule seen for the first
//! time starts from its next slot. Slots missed while the service was stopped run once at
//! start (`missed = "latest"`, the default: one run for the latest of them) or not at all
//! (`missed = "skip"`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

pub use crate::config::schedule::{Schedule, Task};
use crate::store::Store;
use crate::timerange::{parse_instant, rfc3339, NANOS_PER_MINUTE, NANOS_PER_SECOND};

/// A slot is on time when the service sees it within this long; later, it was missed.
const ON_TIME: i64 = NANOS_PER_MINUTE;

/// The latest slot of `s` at or before `now` (nanoseconds), in `tz` unless it has its own.
pub fn latest_slot(s: &Schedule, tz: Tz, now: i64) -> Option<i64> {
    let zone = s.timezone.unwrap_or(tz);
    // Slots are whole seconds: croner keeps the fraction of the time it searches from, and a
    // slot must not move with the moment it is looked at.
    let whole = now.div_euclid(NANOS_PER_SECOND) * NANOS_PER_SECOND;
    let at: DateTime<Tz> =
        zone.from_utc_datetime(&DateTime::<Utc>::from_timestamp_nanos(whole).naive_utc());
    let slot = s.cron.find_previous_occurrence(&at, true).ok()?;
    slot.with_timezone(&Utc).timestamp_nanos_opt()
}

/// What to do about a schedule at `now`, given the last slot it ran (or was judged) for.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing new.
    No,
    /// Run for this slot.
    Run(i64),
    /// Record this slot without running (first sight, or missed with `missed = "skip"`).
    Mark(i64),
}

pub fn due(s: &Schedule, tz: Tz, last: Option<i64>, now: i64) -> Due {
    let Some(slot) = latest_slot(s, tz, now) else {
        return Due::No;
    };
    match last {
        None => Due::Mark(slot),
        Some(l) if slot <= l => Due::No,
        Some(_) if s.run_missed || now - slot <= ON_TIME => Due::Run(slot),
        Some(_) => Due::Mark(slot),
    }
}

/// The last slot of each schedule, by name.
pub struct Slots {
    path: PathBuf,
    pub last: BTreeMap<String, i64>,
}

const STATE_FILE: &str = "state/schedule.json";

impl Slots {
    pub fn load(store: &Store) -> Result<Slots, String> {
        let path = store.root().join(STATE_FILE);
        let last = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let saved: BTreeMap<String, String> =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                saved
                    .into_iter()
                    .map(|(k, v)| {
                        parse_instant(&v)
                            .map(|t| (k.clone(), t))
                            .map_err(|e| format!("{}: {k}: {e}", path.display()))
                    })
                    .collect::<Result<_, _>>()?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(Slots { path, last })
    }

    pub fn record(&mut self, name: &str, slot: i64) -> Result<(), String> {
        self.last.insert(name.to_owned(), slot);
        let saved: BTreeMap<&String, String> =
            self.last.iter().map(|(k, v)| (k, rfc3339(*v))).collect();
        if let Some(dir) = self.path.parent() {
            crate::fsutil::create_dir_all_durable(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        crate::fsutil::write_atomic(
            &self.path,
            &serde_json::to_vec_pretty(&saved).unwrap_or_default(),
        )
        .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schedule::parse;

    fn schedule(text: &str) -> Result<Schedule, String> {
        parse(0, toml::from_str(text).map_err(|e| e.to_string())?)
    }

    fn t(s: &str) -> i64 {
        parse_instant(s).unwrap()
    }

    #[test]
    fn slots_follow_the_zone_across_daylight_saving_time() {
        let s = schedule(
            "name = \"w\"\ncron = \"0 7 * * 1\"\ntimezone = \"Europe/Paris\"\nreport = [\"denied-access\"]\nemail_to = [\"a@example.com\"]",
        )
        .unwrap();
        let utc = chrono_tz::UTC;
        // 07:00 in Paris is 06:00 UTC in winter and 05:00 UTC in summer.
        assert_eq!(
            latest_slot(&s, utc, t("2026-03-23T12:00:00Z")),
            Some(t("2026-03-23T06:00:00Z"))
        );
        assert_eq!(
            latest_slot(&s, utc, t("2026-03-30T12:00:00Z")),
            Some(t("2026-03-30T05:00:00Z"))
        );
    }

    #[test]
    fn each_slot_once_missed_ones_by_setting() {
        let mut s =
            schedule("name = \"c\"\ncron = \"*/10 * * * * *\"\ntask = \"compact\"").unwrap();
        let utc = chrono_tz::UTC;
        let now = t("2026-03-23T12:00:05Z");
        let slot = t("2026-03-23T12:00:00Z");
        assert_eq!(
            due(&s, utc, None, now),
            Due::Mark(slot),
            "first sight starts from the next slot"
        );
        assert_eq!(due(&s, utc, Some(slot), now), Due::No);
        assert_eq!(
            due(&s, utc, Some(slot - 10_000_000_000), now),
            Due::Run(slot)
        );
        // Looked at again a fraction of a second later: the same slot, not a new one.
        assert_eq!(due(&s, utc, Some(slot), now + 999_999_999), Due::No);
        assert_eq!(latest_slot(&s, utc, now + 123_456_789), Some(slot));
        // Stopped from 10:05 to 12:30: one run for the 12:00 slot, or none with skip.
        let mut h = schedule("name = \"h\"\ncron = \"0 * * * *\"\ntask = \"verify\"").unwrap();
        let (last, now) = (t("2026-03-23T10:00:00Z"), t("2026-03-23T12:30:00Z"));
        assert_eq!(
            due(&h, utc, Some(last), now),
            Due::Run(t("2026-03-23T12:00:00Z"))
        );
        h.run_missed = false;
        assert_eq!(
            due(&h, utc, Some(last), now),
            Due::Mark(t("2026-03-23T12:00:00Z"))
        );
        // A slot seen on time runs whatever the setting.
        s.run_missed = false;
        assert_eq!(
            due(
                &s,
                utc,
                Some(slot - 10_000_000_000),
                t("2026-03-23T11:59:55Z")
            ),
            Due::No
        );
        assert_eq!(
            due(
                &s,
                utc,
                Some(slot - 10_000_000_000),
                t("2026-03-23T12:00:05Z")
            ),
            Due::Run(slot)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = schedule("name = \"x\"\ncron = \"61 * * * *\"\ntask = \"verify\"").unwrap_err();
        assert!(e.starts_with("serve.schedule[0].cron: '61 * * * *'"), "{e}");
        let e = schedule("name = \"x\"\ncron = \"0 0 30 2 *\"\ntask = \"verify\"").unwrap_err();
        assert!(e.ends_with("never matches a date"), "{e}");
        let e = schedule("name = \"x\"\ncron = \"0 7 * * 1\"\nreport = [\"nope\"]\nemail_to = [\"a@example.com\"]").unwrap_err();
        assert!(e.starts_with("serve.schedule[0].report:"), "{e}");
        let e = schedule("name = \"x\"\ncron = \"0 7 * * 1\"\nreport = [\"denied-access\"]")
            .unwrap_err();
        assert!(e.starts_with("serve.schedule[0].email_to:"), "{e}");
        let e = schedule("name = \"x\"\ncron = \"0 7 * * 1\"\ntask = \"vacuum\"").unwrap_err();
        assert!(e.contains("not compact or verify"), "{e}");
        let e = schedule(
            "name = \"x\"\ncron = \"0 7 * * 1\"\ntimezone = \"Mars/Olympus\"\ntask = \"verify\"",
        )
        .unwrap_err();
        assert!(e.starts_with("serve.schedule[0].timezone:"), "{e}");
    }
}
