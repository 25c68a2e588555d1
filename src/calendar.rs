//! Working time: a time zone, business hours, workdays and holidays, per principal where the
//! config names one. Decides "off hours" for reports and detectors, DST-correct (chrono-tz).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub timezone: Tz,
    /// Start and end of the working day in local time; `end < start` spans midnight.
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub workdays: [bool; 7],
    pub holidays: Vec<NaiveDate>,
    /// Time zone per principal (`actor_id` or `actor_name`).
    pub principal_timezones: BTreeMap<String, Tz>,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            timezone: Tz::UTC,
            start: NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
            end: NaiveTime::from_hms_opt(19, 0, 0).expect("valid"),
            workdays: [true, true, true, true, true, false, false],
            holidays: Vec::new(),
            principal_timezones: BTreeMap::new(),
        }
    }
}

/// Parses `"08:00-19:00"`.
pub fn parse_hours(text: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let (a, b) = text
        .split_once('-')
        .ok_or_else(|| format!("'{text}' is not HH:MM-HH:MM"))?;
    let t = |s: &str| {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| format!("'{}' is not a time HH:MM", s.trim()))
    };
    let (start, end) = (t(a)?, t(b)?);
    if start == end {
        return Err(format!("'{text}' is an empty range"));
    }
    Ok((start, end))
}

pub fn parse_weekday(text: &str) -> Result<Weekday, String> {
    text.parse::<Weekday>()
        .map_err(|_| format!("'{text}' is not a weekday (mon, tue, ...)"))
}

pub fn parse_tz(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>()
        .map_err(|_| format!("'{text}' is not an IANA time zone (e.g. Europe/Paris)"))
}

impl Calendar {
    /// The time zone of a principal: its own when configured, else the calendar's.
    pub fn zone_of(&self, actor_id: Option<&str>, actor_name: Option<&str>) -> Tz {
        [actor_id, actor_name]
            .into_iter()
            .flatten()
            .find_map(|k| self.principal_timezones.get(k))
            .copied()
            .unwrap_or(self.timezone)
    }

    /// True when `nanos` (UTC) falls outside the principal's working time: a non-workday, a
    /// holiday, or outside business hours, all in the principal's local time.
    pub fn is_off_hours(
        &self,
        nanos: i64,
        actor_id: Option<&str>,
        actor_name: Option<&str>,
    ) -> bool {
        let local = self.local(nanos, actor_id, actor_name);
        let time = local.time();
        let in_hours = if self.start < self.end {
            time >= self.start && time < self.end
        } else {
            time >= self.start || time < self.end
        };
        // A shift that started before midnight belongs to the previous day's calendar.
        let day = if self.end < self.start && time < self.end {
            local.date_naive().pred_opt().unwrap_or(local.date_naive())
        } else {
            local.date_naive()
        };
        !(in_hours && self.is_workday(day))
    }

    /// A working day of the calendar: a workday that is not a holiday.
    pub fn is_workday(&self, day: NaiveDate) -> bool {
        self.workdays[day.weekday().num_days_from_monday() as usize]
            && !self.holidays.contains(&day)
    }

    /// The instant in the principal's zone.
    pub fn local(
        &self,
        nanos: i64,
        actor_id: Option<&str>,
        actor_name: Option<&str>,
    ) -> DateTime<Tz> {
        let utc: DateTime<Utc> = DateTime::from_timestamp_nanos(nanos);
        self.zone_of(actor_id, actor_name)
            .from_utc_datetime(&utc.naive_utc())
    }

    /// `Sat 23:14 Europe/Paris`: how a person reads an event time.
    pub fn local_label(
        &self,
        nanos: i64,
        actor_id: Option<&str>,
        actor_name: Option<&str>,
    ) -> String {
        let l = self.local(nanos, actor_id, actor_name);
        format!(
            "{} {:02}:{:02} {}",
            l.weekday(),
            l.hour(),
            l.minute(),
            l.timezone().name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    #[test]
    fn business_hours_in_the_principal_zone_across_dst() {
        let mut c = Calendar::default();
        c.principal_timezones
            .insert("alice".into(), parse_tz("Europe/Paris").unwrap());
        // 2026-03-27 (Fri) 06:30 UTC = 07:30 CET: before hours. After the switch to CEST on
        // 2026-03-29, 06:30 UTC on Monday = 08:30 local: in hours.
        assert!(c.is_off_hours(nanos("2026-03-27T06:30:00Z"), None, Some("alice")));
        assert!(!c.is_off_hours(nanos("2026-03-30T06:30:00Z"), None, Some("alice")));
        // The same instants in UTC for someone without a zone: both before 08:00.
        assert!(c.is_off_hours(nanos("2026-03-30T06:30:00Z"), Some("bob"), None));
        // Saturday noon is off hours; a holiday too.
        assert!(c.is_off_hours(nanos("2026-03-28T12:00:00Z"), None, None));
        c.holidays
            .push(NaiveDate::from_ymd_opt(2026, 12, 25).unwrap());
        assert!(c.is_off_hours(nanos("2026-12-25T12:00:00Z"), None, None));
        assert!(!c.is_off_hours(nanos("2026-12-24T12:00:00Z"), None, None));
        assert_eq!(
            c.local_label(nanos("2026-03-30T06:30:00Z"), None, Some("alice")),
            "Mon 08:30 Europe/Paris"
        );
    }

    #[test]
    fn night_shift_spans_midnight() {
        let c = Calendar {
            start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(6, 0, 0).unwrap(),
            ..Calendar::default()
        };
        // Friday 23:00 and Saturday 02:00 (Friday's shift) are working time; Saturday 23:00 not.
        assert!(!c.is_off_hours(nanos("2026-03-27T23:00:00Z"), None, None));
        assert!(!c.is_off_hours(nanos("2026-03-28T02:00:00Z"), None, None));
        assert!(c.is_off_hours(nanos("2026-03-28T23:00:00Z"), None, None));
        assert!(parse_hours("08:00-08:00").is_err());
        assert!(parse_hours("8-19").is_err());
    }
}
