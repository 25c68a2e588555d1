//! What `/metrics` says, in the Prometheus text format, every name `vigil_*`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::store::Tally;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabels {
    pub source: String,
    /// read, stored, merged, duplicates, rejected
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputLabels {
    pub input: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub code: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    /// ingest, detect, alerts
    pub task: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    pub schedule: String,
    /// ok, flagged (verify found a problem), failed (could not run; tried again)
    pub result: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric of the service, registered once.
pub struct Metrics {
    pub registry: Registry,
    pub records: Family<RecordLabels, Counter>,
    pub commits: Counter,
    pub late_commits: Counter,
    pub commit_seconds: Histogram,
    pub last_commit: FloatGauge,
    pub bytes_behind: Family<InputLabels, Gauge>,
    pub inputs_unreadable: Gauge,
    pub detection_seconds: Histogram,
    pub detected_through: FloatGauge,
    pub findings: Family<FindingLabels, Counter>,
    pub alerts_queued: Counter,
    pub alert_messages_sent: Counter,
    pub alert_messages_pending: Gauge,
    pub errors: Family<TaskLabels, Counter>,
    pub schedule_runs: Family<ScheduleLabels, Counter>,
    pub heartbeat: FloatGauge,
    pub dedupe_uids: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vigil");
        let m = Metrics {
            records: Family::default(),
            commits: Counter::default(),
            late_commits: Counter::default(),
            // 5 ms to about 80 s.
            commit_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            last_commit: FloatGauge::default(),
            bytes_behind: Family::default(),
            inputs_unreadable: Gauge::default(),
            detection_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            detected_through: FloatGauge::default(),
            findings: Family::default(),
            alerts_queued: Counter::default(),
            alert_messages_sent: Counter::default(),
            alert_messages_pending: Gauge::default(),
            errors: Family::default(),
            schedule_runs: Family::default(),
            heartbeat: FloatGauge::default(),
            dedupe_uids: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "records",
            "Input records by source and outcome (read = stored + merged + duplicates + rejected, give or take records held for the next commit)",
            m.records.clone(),
        );
        registry.register("commits", "Ingest commits written", m.commits.clone());
        registry.register(
            "heartbeat_timestamp_seconds",
            "When the service's loop last came round between two steps (Unix time): stops moving while a step is stuck",
            m.heartbeat.clone(),
        );
        registry.register(
            "late_commits",
            "Ingest commits that stored events for hours detection had already judged",
            m.late_commits.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to read what arrived and commit it",
            m.commit_seconds.clone(),
        );
        registry.register(
            "last_commit_timestamp_seconds",
            "When the last ingest commit was written (Unix time)",
            m.last_commit.clone(),
        );
        registry.register(
            "input_bytes_behind",
            "Bytes of each input file not yet read (gzip files not counted)",
            m.bytes_behind.clone(),
        );
        registry.register(
            "inputs_unreadable",
            "Configured inputs that cannot be read now",
            m.inputs_unreadable.clone(),
        );
        registry.register(
            "detection_seconds",
            "Time to run the detectors over one closed hour and record the findings",
            m.detection_seconds.clone(),
        );
        registry.register(
            "detected_through_timestamp_seconds",
            "End of the last hour the detectors judged (Unix time)",
            m.detected_through.clone(),
        );
        registry.register(
            "findings",
            "Findings recorded, by detector code and severity",
            m.findings.clone(),
        );
        registry.register(
            "alerts_queued",
            "Alerts written to the outbox",
            m.alerts_queued.clone(),
        );
        registry.register(
            "alert_messages_sent",
            "Alert emails sent from the outbox",
            m.alert_messages_sent.clone(),
        );
        registry.register(
            "alert_messages_pending",
            "Alert emails waiting in the outbox after the last send",
            m.alert_messages_pending.clone(),
        );
        registry.register(
            "dedupe_uids",
            "Event uids the dedupe index holds in memory (about 30 bytes each): the minutes of event time being written, and older ones up to the budget",
            m.dedupe_uids.clone(),
        );
        registry.register("errors", "Failed runs of a task", m.errors.clone());
        registry.register(
            "schedule_runs",
            "Scheduled task runs by schedule and result",
            m.schedule_runs.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Adds one commit's accounting.
    pub fn count_records(&self, counts: &std::collections::BTreeMap<String, Tally>) {
        for (source, t) in counts {
            for (outcome, n) in [
                ("read", t.read),
                ("stored", t.stored),
                ("merged", t.merged),
                ("duplicates", t.duplicates),
                ("rejected", t.rejected),
            ] {
                self.records
                    .get_or_create(&RecordLabels {
                        source: source.clone(),
                        outcome,
                    })
                    .inc_by(n);
            }
        }
    }

    pub fn error(&self, task: &'static str) {
        self.errors.get_or_create(&TaskLabels { task }).inc();
    }

    /// The text `/metrics` serves.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
