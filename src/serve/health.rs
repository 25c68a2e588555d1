//! What `/healthz` answers: 200 while the service does its work, 503 with every reason it does
//! not (an input it cannot read, commits failing for three intervals, detection failing,
//! alerts stuck in the outbox, a step or a send of alerts running past `[serve] stuck_after`).

use std::time::{Duration, Instant};

/// Commits may fail this many intervals in a row before the service calls itself unhealthy (one
/// failure can be a file rotated under the reader, retried at the next interval).
const FAILED_INTERVALS: u32 = 3;

#[derive(Debug, Default)]
pub struct Health {
    /// Inputs that cannot be read now: "path: why".
    pub unreadable: Vec<String>,
    /// The ingest error, and since when ingest has failed without a success between.
    pub ingest_failing: Option<(String, Instant)>,
    pub detect_failing: Option<String>,
    /// Alert messages waiting in the outbox, and why the last send failed.
    pub outbox_failing: Option<(usize, String)>,
    /// The step the service is in (a commit, a detection, a scheduled task), since when.
    pub step: Option<(&'static str, Instant)>,
    /// Since when alerts have been sending (it happens beside the steps).
    pub sending_since: Option<Instant>,
}

impl Health {
    /// Why the service is unhealthy; empty when it is healthy.
    pub fn reasons(
        &self,
        commit_interval: Duration,
        stuck_after: Duration,
        now: Instant,
    ) -> Vec<String> {
        let mut out: Vec<String> = self
            .unreadable
            .iter()
            .map(|u| format!("input unreadable: {u}"))
            .collect();
        if let Some((why, since)) = &self.ingest_failing {
            let failing = now.saturating_duration_since(*since);
            if failing >= commit_interval * FAILED_INTERVALS {
                out.push(format!("no commit for {} s: {why}", failing.as_secs()));
            }
        }
        if let Some(why) = &self.detect_failing {
            out.push(format!("detection failing: {why}"));
        }
        if let Some((n, why)) = &self.outbox_failing {
            out.push(format!("outbox backlog: {n} message(s) not sent: {why}"));
        }
        // A step that does not end holds up everything after it (commits, detection), and
        // nothing else would say so: the loop never comes round to report a failure.
        if let Some((what, since)) = self.step {
            let running = now.saturating_duration_since(since);
            if running >= stuck_after {
                out.push(format!("stuck: {what} running for {} s", running.as_secs()));
            }
        }
        if let Some(since) = self.sending_since {
            let running = now.saturating_duration_since(since);
            if running >= stuck_after {
                out.push(format!(
                    "stuck: sending alerts for {} s (the mail server or webhook does not answer)",
                    running.as_secs()
                ));
            }
        }
        out
    }

    pub fn ingest_ok(&mut self) {
        self.ingest_failing = None;
    }

    pub fn ingest_failed(&mut self, why: String, now: Instant) {
        let since = self.ingest_failing.as_ref().map_or(now, |(_, s)| *s);
        self.ingest_failing = Some((why, since));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_failure_turns_unhealthy_only_after_three_intervals() {
        let t0 = Instant::now();
        let iv = Duration::from_secs(10);
        let stuck = Duration::from_secs(900);
        let mut h = Health::default();
        assert!(h.reasons(iv, stuck, t0).is_empty());
        h.ingest_failed("disk full".into(), t0);
        h.ingest_failed("disk full".into(), t0 + iv);
        assert!(h.reasons(iv, stuck, t0 + iv * 2).is_empty());
        let r = h.reasons(iv, stuck, t0 + iv * 3);
        assert_eq!(r, vec!["no commit for 30 s: disk full".to_owned()]);
        h.ingest_ok();
        assert!(h.reasons(iv, stuck, t0 + iv * 4).is_empty());
        h.unreadable
            .push("/var/log/vault: Permission denied".into());
        assert_eq!(
            h.reasons(iv, stuck, t0),
            vec!["input unreadable: /var/log/vault: Permission denied".to_owned()]
        );
    }

    #[test]
    fn a_step_or_a_send_past_stuck_after_is_unhealthy() {
        let t0 = Instant::now();
        let (iv, stuck) = (Duration::from_secs(10), Duration::from_secs(60));
        let mut h = Health {
            step: Some(("detection", t0)),
            sending_since: Some(t0 + Duration::from_secs(30)),
            ..Health::default()
        };
        assert!(h
            .reasons(iv, stuck, t0 + Duration::from_secs(59))
            .is_empty());
        assert_eq!(
            h.reasons(iv, stuck, t0 + Duration::from_secs(61)),
            vec!["stuck: detection running for 61 s".to_owned()]
        );
        assert_eq!(h.reasons(iv, stuck, t0 + Duration::from_secs(95)).len(), 2);
        h.step = None;
        h.sending_since = None;
        assert!(h
            .reasons(iv, stuck, t0 + Duration::from_secs(95))
            .is_empty());
    }
}
