//! `vigil serve`: one process that holds the store's write lock for as long as it runs, reads
//! what its inputs append and commits it every `[serve] commit_interval`, runs the detectors
//! over every hour once it has closed, records the findings and sends the alerts (as
//! `vigil detect --notify` does), and answers `/healthz` and `/metrics`.
//!
//! Everything that writes to the store runs on one task, one step after another: the lock the
//! process holds no longer keeps its own transactions apart. A signal is looked at between
//! steps: SIGTERM and SIGINT let the step in progress finish (its commit included) and stop;
//! SIGHUP reloads `vigil.toml`, keeping the old settings if the new file is invalid.

pub mod detection;
pub mod health;
pub mod http;
pub mod inputs;
pub mod metrics;
pub mod schedule;
pub mod tasks;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use self::detection::Spans;
use self::health::Health;
use self::metrics::{FindingLabels, InputLabels, Metrics};
use crate::alert::deliver;
use crate::config::serve::{ServeInput, ServeSettings};
use crate::config::Config;
use crate::detect::{self, DetectContext};
use crate::ingest::run::ingest_found;
use crate::store::{Store, StoreError};
use crate::timerange::rfc3339;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("no [[serve.inputs]] in {0}: say which audit logs the service reads (README, Running vigil as a service)")]
    NoInputs(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("serve.listen {addr}: {error}")]
    Listen { addr: String, error: std::io::Error },
    #[error("{0}")]
    Io(String),
}

/// What the HTTP endpoints read.
pub struct Shared {
    pub metrics: Metrics,
    pub health: Mutex<Health>,
    /// `[serve] commit_interval` in milliseconds (SIGHUP may change it).
    commit_interval_ms: std::sync::atomic::AtomicU64,
    /// `[serve] stuck_after` in milliseconds.
    stuck_after_ms: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // A panic elsewhere while holding it leaves the data as it was: still worth reporting.
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn reasons(&self) -> Vec<String> {
        let interval = Duration::from_millis(self.commit_interval_ms.load(Ordering::Relaxed));
        let stuck = Duration::from_millis(self.stuck_after_ms.load(Ordering::Relaxed));
        self.health().reasons(interval, stuck, Instant::now())
    }
}

/// Where the configuration comes from, for SIGHUP.
pub struct ConfigSource {
    pub path: PathBuf,
    /// Named with `--config` (a missing file is then an error, not the defaults).
    pub explicit: bool,
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(store: Store, config: Config, source: ConfigSource) -> Result<(), ServeError> {
    let settings = serve_settings(&config, &source)?;
    // The address first: a port in use must not leave a store directory behind.
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|error| ServeError::Listen {
            addr: settings.listen.to_string(),
            error,
        })?;
    let store = store.holding_lock()?;
    let shared = Arc::new(Shared {
        metrics: Metrics::new(),
        health: Mutex::new(Health::default()),
        commit_interval_ms: std::sync::atomic::AtomicU64::new(millis(settings.commit_interval)),
        stuck_after_ms: std::sync::atomic::AtomicU64::new(millis(settings.stuck_after)),
    });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(listener, Arc::clone(&shared), async {
        let _ = http_stopped.await;
    }));
    let store_for_slots = store.clone();
    let mut service = Service {
        store,
        config,
        settings,
        shared,
        cursor: Default::default(),
        stop: Arc::new(AtomicBool::new(false)),
        slots: schedule::Slots::load(&store_for_slots).map_err(ServeError::Io)?,
        retry_at: Default::default(),
        polled: Default::default(),
        unreadable: Default::default(),
        pending: Vec::new(),
        sender: None,
        send_wanted: false,
        uids: None,
    };
    service.cursor = detection::Cursor::load(&service.store).map_err(ServeError::Io)?;
    info!(
        store = %service.store.name(),
        listen = %service.settings.listen,
        inputs = service.settings.inputs.len(),
        "vigil serve started"
    );
    let signals = service.run(&source).await;
    let _ = stop_http.send(());
    let _ = http.await;
    signals?;
    info!("vigil serve stopped");
    Ok(())
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn serve_settings(config: &Config, source: &ConfigSource) -> Result<ServeSettings, ServeError> {
    match &config.serve {
        Some(s) if !s.inputs.is_empty() => Ok(s.clone()),
        _ => Err(ServeError::NoInputs(source.path.display().to_string())),
    }
}

/// What one ingest step found and did.
struct Tick {
    unreadable: Vec<String>,
    /// `None` when no input had a file.
    report: Option<Result<crate::ingest::IngestReport, String>>,
    /// The log after the step.
    log: Option<crate::store::CommitLog>,
    /// Where each plain input stands after the step.
    pending: Vec<Pending>,
    /// The dedupe index, for the next step (`None` after a step that did not commit it).
    uids: Option<crate::store::dedupe::UidIndex>,
}

/// How far a plain input file has been read, to tell how much it holds beyond that.
#[derive(Debug, Clone)]
struct Pending {
    display: String,
    path: PathBuf,
    /// Bytes read and committed.
    offset: u64,
    /// Bytes per record so far (a guess for a file not read yet).
    bytes_per_record: f64,
}

/// A record's size before a file has any read: Vault's request and response lines are 0.4 to
/// 2 KB (a guess on the small side commits early rather than late).
const GUESSED_RECORD_BYTES: f64 = 512.0;

impl Pending {
    /// Its bytes and records beyond what was read, now.
    fn waiting(&self) -> (u64, f64) {
        let size = std::fs::metadata(&self.path).map_or(self.offset, |m| m.len());
        let bytes = size.saturating_sub(self.offset);
        (bytes, bytes as f64 / self.bytes_per_record)
    }
}

/// Where each plain input stands after a step (gzip files are read whole or not at all, and
/// are not counted).
fn pending_inputs(
    log: &crate::store::CommitLog,
    files: &[crate::ingest::inputs::InputFile],
) -> Vec<Pending> {
    use crate::ingest::checkpoints::{Checkpoints, Start};
    let checkpoints = Checkpoints::from_log(log);
    files
        .iter()
        .filter(|f| f.path.extension().is_none_or(|e| e != "gz"))
        .filter_map(|f| {
            let id = crate::ingest::inputs::identify(&f.path).ok()?;
            // A file with no checkpoint after the step (a digest, one rejected whole) has no
            // place the next commit would read from: it does not count.
            let offset = match checkpoints.start(&f.path, &id).ok()? {
                Start::Done { .. } => id.size,
                Start::Resume { checkpoint, .. } => checkpoint.offset,
                Start::Fresh => return None,
            };
            let bytes_per_record = checkpoints
                .of(&id)
                .filter(|c| c.index > 0)
                .map_or(GUESSED_RECORD_BYTES, |c| c.offset as f64 / c.index as f64);
            Some(Pending {
                display: f.display.clone(),
                path: f.path.clone(),
                offset,
                bytes_per_record: bytes_per_record.max(1.0),
            })
        })
        .collect()
}

struct Service {
    store: Store,
    config: Config,
    settings: ServeSettings,
    shared: Arc<Shared>,
    /// The end of the last hour judged, and of the last looks at the open hour.
    cursor: detection::Cursor,
    /// Set by SIGTERM or SIGINT.
    stop: Arc<AtomicBool>,
    /// The last slot of each schedule.
    slots: schedule::Slots,
    /// Schedules whose last run failed, and when to try again.
    retry_at: std::collections::HashMap<String, Instant>,
    /// When each input (by name) was last looked at, for `poll_every`.
    polled: std::collections::HashMap<String, Instant>,
    /// What the last look at each input found wrong ("name: why"): an input polled less often
    /// than the service commits stays unhealthy between its looks.
    unreadable: std::collections::HashMap<String, String>,
    /// Where the plain input files stood after the last step: looked at between commits for
    /// `commit_records`.
    pending: Vec<Pending>,
    /// Alerts being sent, beside the steps: a mail server that does not answer must not hold
    /// up commits and detection.
    sender: Option<tokio::task::JoinHandle<Result<crate::alert::Sent, String>>>,
    /// Something was queued since the running send started: send again when it ends.
    send_wanted: bool,
    /// The dedupe index of the last commit: the service is the store's only writer while it
    /// runs, so the uids of the slots it writes need not be read back at every commit.
    uids: Option<crate::store::dedupe::UidIndex>,
}

/// How often the loop looks at the stop flag while it waits.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// How often schedules are looked at: slots can be a second apart.
const SCHEDULE_CHECK: Duration = Duration::from_millis(500);
/// How long a failed scheduled task waits before it is tried again.
const SCHEDULE_RETRY: Duration = Duration::from_secs(60);
/// How often the inputs' sizes are looked at between commits, for `commit_records` (a stat
/// per file).
const PEEK_EVERY: Duration = Duration::from_secs(1);
/// How long a stop waits for a send of alerts in progress: a message the server has not
/// accepted stays in the outbox and is sent at the next start.
const SEND_GRACE: Duration = Duration::from_secs(3);

impl Service {
    async fn run(&mut self, source: &ConfigSource) -> Result<(), ServeError> {
        let sig = |kind: SignalKind| {
            signal(kind).map_err(|e| ServeError::Io(format!("installing a signal handler: {e}")))
        };
        let mut term = sig(SignalKind::terminate())?;
        let mut int = sig(SignalKind::interrupt())?;
        let mut hup = sig(SignalKind::hangup())?;
        // The stop request is a flag as well as an event: a long step (a backlog of hours to
        // judge) looks at it between its parts.
        let stop = Arc::clone(&self.stop);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: stopping after the step in progress"),
                _ = int.recv() => info!("SIGINT: stopping after the step in progress"),
            }
            stop.store(true, Ordering::SeqCst);
            // A second signal does not wait for the step: the store is safe at any moment
            // (what a step staged and did not commit is set aside by the next writer).
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            warn!("second signal: exiting now, without finishing the step in progress");
            std::process::exit(2);
        });
        let now = tokio::time::Instant::now;
        let mut next_commit = now();
        let mut next_detect = now();
        let mut next_peek = now() + PEEK_EVERY;
        let mut tick = tokio::time::interval(STOP_CHECK);
        let mut next_schedule = now();
        while !self.stopping() {
            self.shared.metrics.heartbeat.set(unix_seconds());
            // Schedules before commits: a backlog read in many commits must not delay the
            // Monday report. Detection last: it waits for a backlog to be stored.
            tokio::select! {
                biased;
                _ = tick.tick() => self.collect_sent().await,
                _ = hup.recv() => self.reload(source),
                _ = tokio::time::sleep_until(next_schedule) => {
                    self.begin("a scheduled task");
                    if self.run_schedules().await {
                        self.send_alerts().await;
                    }
                    self.end();
                    next_schedule = now() + SCHEDULE_CHECK;
                }
                _ = tokio::time::sleep_until(next_commit) => {
                    self.begin("a commit");
                    let more = self.ingest().await;
                    self.end();
                    // What `commit_records` left is read right away, a commit at a time.
                    next_commit = now() + if more { Duration::ZERO } else { self.settings.commit_interval };
                    next_peek = now() + PEEK_EVERY;
                }
                _ = tokio::time::sleep_until(next_peek) => {
                    if self.records_waiting() >= self.settings.commit_records as f64 {
                        next_commit = now();
                    }
                    next_peek = now() + PEEK_EVERY;
                }
                _ = tokio::time::sleep_until(next_detect) => {
                    // A backlog of hours is judged a part at a time, so that commits go on.
                    self.begin("detection");
                    let more = self.detect(next_commit.into_std()).await;
                    self.end();
                    next_detect = now()
                        + if more { Duration::ZERO } else { self.settings.detect_every };
                }
            }
        }
        self.stop_sending().await;
        Ok(())
    }

    fn begin(&self, what: &'static str) {
        self.shared.health().step = Some((what, Instant::now()));
    }

    fn end(&self) {
        self.shared.health().step = None;
    }

    /// Records the plain inputs hold beyond what was committed, by their sizes now.
    fn records_waiting(&self) -> f64 {
        self.pending.iter().map(|p| p.waiting().1).sum()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn reload(&mut self, source: &ConfigSource) {
        let loaded = Config::load(&source.path, source.explicit)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                let s = serve_settings(&c, source).map_err(|e| e.to_string())?;
                Ok((c, s))
            });
        match loaded {
            Ok((config, settings)) => {
                if settings.listen != self.settings.listen {
                    warn!(listen = %settings.listen, "serve.listen changes at the next start");
                }
                self.shared
                    .commit_interval_ms
                    .store(millis(settings.commit_interval), Ordering::Relaxed);
                self.shared
                    .stuck_after_ms
                    .store(millis(settings.stuck_after), Ordering::Relaxed);
                self.config = config;
                self.settings = settings;
                info!(config = %source.path.display(), "SIGHUP: configuration reloaded");
            }
            Err(e) => error!(error = %e, "SIGHUP: configuration not reloaded, the old one stays"),
        }
    }

    /// Reads what the inputs hold beyond the last commit (`commit_records` at most) and commits
    /// it; true if `commit_records` left input to read.
    async fn ingest(&mut self) -> bool {
        let started = Instant::now();
        // The inputs due for a look (a bucket is listed every `poll_every`, not every commit).
        let configured: Vec<ServeInput> = self
            .settings
            .inputs
            .iter()
            .filter(|i| {
                self.polled
                    .get(&i.name())
                    .is_none_or(|at| started.duration_since(*at) >= i.poll_every())
            })
            .cloned()
            .collect();
        let looked_at: Vec<String> = configured.iter().map(ServeInput::name).collect();
        for name in &looked_at {
            self.polled.insert(name.clone(), started);
        }
        let store = self.store.clone();
        let config = self.config.clone();
        let max_records = self.settings.commit_records;
        let mut uids = self.uids.take();
        // Listing, reading, committing and measuring touch the disk and the network: off the
        // async threads.
        let tick = tokio::task::spawn_blocking(move || -> Result<Tick, String> {
            let found = inputs::find(&configured.iter().collect::<Vec<_>>(), &config.object_store);
            if found.files.is_empty() && found.objects.is_empty() {
                return Ok(Tick {
                    unreadable: found.unreadable,
                    report: None,
                    log: None,
                    pending: Vec::new(),
                    uids,
                });
            }
            let now = crate::clock::now_nanos()?;
            let mut opts = config.ingest_options(None, false, now);
            opts.max_records = Some(max_records);
            let report = ingest_found(
                &store,
                &found.files,
                &found.objects,
                found.skipped,
                &opts,
                &mut uids,
            )
            .map_err(|e| e.to_string());
            let log = store.log().ok();
            let pending = log
                .as_ref()
                .map(|l| pending_inputs(l, &found.files))
                .unwrap_or_default();
            Ok(Tick {
                unreadable: found.unreadable,
                report: Some(report),
                log,
                pending,
                uids,
            })
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|t| t);
        let tick = match tick {
            Ok(t) => t,
            Err(e) => {
                self.shared.metrics.error("ingest");
                error!(error = %e, "ingest failed; retried at the next interval");
                self.shared.health().ingest_failed(e, Instant::now());
                return false;
            }
        };
        let m = &self.shared.metrics;
        for u in &tick.unreadable {
            warn!(input = %u, "input unreadable");
        }
        // The inputs looked at now replace what their last look said; the others (a bucket
        // polled every minute while commits come every ten seconds) keep it until their next.
        self.unreadable.retain(|name, _| !looked_at.contains(name));
        for u in &tick.unreadable {
            if let Some(name) = looked_at.iter().find(|n| u.starts_with(&format!("{n}: "))) {
                self.unreadable.insert(name.clone(), u.clone());
            }
        }
        let mut unreadable = tick.unreadable;
        unreadable.extend(
            self.unreadable
                .iter()
                .filter(|(name, _)| !looked_at.contains(name))
                .map(|(_, u)| u.clone()),
        );
        unreadable.sort();
        m.inputs_unreadable.set(unreadable.len() as i64);
        self.shared.health().unreadable = unreadable;
        for p in &tick.pending {
            m.bytes_behind
                .get_or_create(&InputLabels {
                    input: p.display.clone(),
                })
                .set(i64::try_from(p.waiting().0).unwrap_or(i64::MAX));
        }
        self.pending = tick.pending;
        if let Some(uids) = &tick.uids {
            m.dedupe_uids
                .set(i64::try_from(uids.uids_in_memory()).unwrap_or(i64::MAX));
        }
        self.uids = tick.uids;
        match tick.report {
            None => {
                self.shared.health().ingest_ok();
                false
            }
            Some(Ok(report)) => {
                self.shared.health().ingest_ok();
                if report.more {
                    // The next step, right away, looks at every input again (a bucket too).
                    self.polled.clear();
                }
                for w in &report.warnings {
                    warn!(warning = %w, "ingest");
                }
                if let Some(seq) = report.commit {
                    m.commits.inc();
                    m.commit_seconds.observe(started.elapsed().as_secs_f64());
                    m.last_commit.set(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0.0, |d| d.as_secs_f64()),
                    );
                    m.count_records(&report.counts);
                    info!(
                        commit = seq,
                        read = report.total.read,
                        stored = report.total.stored,
                        rejected = report.total.rejected,
                        held = report.total.held,
                        "committed"
                    );
                    for r in &report.rejects {
                        warn!(at = %r.location(), reason = %r.reason, "record rejected");
                    }
                    if let Some(log) = &tick.log {
                        self.note_late_events(log);
                    }
                }
                report.more
            }
            Some(Err(e)) => {
                m.error("ingest");
                error!(error = %e, "ingest failed; retried at the next interval");
                self.shared.health().ingest_failed(e, Instant::now());
                false
            }
        }
    }

    /// Events the newest commit stored for hours already judged (a source that delivers later
    /// than `[serve] detect_delay`, an input that was unreadable, a backfill of old logs): those
    /// hours are judged again, back to `detect_backfill` at most. The findings history knows
    /// what it already holds, so nothing is recorded or sent twice.
    fn note_late_events(&mut self, log: &crate::store::CommitLog) {
        let (Some(cursor), Some(head)) = (self.cursor.through, log.head()) else {
            return;
        };
        let Some(oldest) = head
            .commit
            .files
            .iter()
            .filter_map(|f| crate::timerange::parse_instant(&f.min_time).ok())
            .min()
            .filter(|t| *t < cursor)
        else {
            return;
        };
        self.shared.metrics.late_commits.inc();
        let Ok(now) = crate::clock::now_nanos() else {
            return;
        };
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let back = detection::rewind(
            cursor,
            oldest,
            now,
            nanos(self.settings.detect_delay),
            nanos(self.settings.detect_backfill),
        );
        match back {
            Some(to) => {
                warn!(
                    commit = head.commit.seq,
                    oldest = %rfc3339(oldest),
                    judged_through = %rfc3339(cursor),
                    judged_again_from = %rfc3339(to),
                    "the commit stored events for hours already judged: those hours are judged again (raise [serve] detect_delay if the source delivers this late)"
                );
                self.cursor.through = Some(to);
                if let Err(e) = self.cursor.save(&self.store) {
                    error!(error = %e, "could not record the hours to judge again");
                }
            }
            None => warn!(
                commit = head.commit.seq,
                oldest = %rfc3339(oldest),
                "the commit stored events older than [serve] detect_backfill: they count in later baselines, their hours are not judged"
            ),
        }
    }

    /// Judges the hours that have closed since the last one judged, until `until` (the next
    /// commit) or a stop request, then sends what waits in the outbox; true if hours remain.
    async fn detect(&mut self, until: Instant) -> bool {
        let judged = match self.judge_closed_hours(until).await {
            Ok(false) => self.look_at_open_hour().await.map(|()| false),
            more => more,
        };
        let more = match judged {
            Ok(more) => {
                self.shared.health().detect_failing = None;
                more
            }
            Err(e) => {
                self.shared.metrics.error("detect");
                error!(error = %e, "detection failed; retried at the next look");
                self.shared.health().detect_failing = Some(e);
                false
            }
        };
        self.send_alerts().await;
        more
    }

    async fn judge_closed_hours(&mut self, until: Instant) -> Result<bool, String> {
        let now = crate::clock::now_nanos()?;
        let log = self.store.log().map_err(|e| e.to_string())?;
        let spans = Spans::of(&log);
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let hours = detection::due(
            self.cursor.through,
            spans.earliest(),
            now,
            nanos(self.settings.detect_delay),
            nanos(self.settings.detect_backfill),
        );
        if hours.is_empty() {
            // A first start whose events are all in the open hour (or a backfill of 0): there
            // is nothing to judge before it, so judging starts with it, and looks can begin.
            if self.cursor.through.is_none() && spans.earliest().is_some() {
                self.cursor.through =
                    Some(detection::open_hour(now, nanos(self.settings.detect_delay)));
                self.cursor.save(&self.store)?;
            }
            return Ok(false);
        }
        let ctx = crate::query::session(&self.store, &self.config.query)
            .await
            .map_err(|e| e.to_string())?;
        let last = hours.last().map(|w| w.to);
        for window in hours {
            if self.stopping() || Instant::now() >= until {
                return Ok(true);
            }
            if spans.overlap(&window) {
                self.judge(&ctx, window, None).await?;
            }
            self.cursor.through = Some(window.to);
            self.cursor.save(&self.store)?;
            self.shared
                .metrics
                .detected_through
                .set(window.to as f64 / 1e9);
        }
        Ok(self.cursor.through != last)
    }

    /// Once every closed hour is judged: the open hour so far, with each detector whose
    /// buckets are shorter than an hour, at the end of each of its buckets that has closed.
    async fn look_at_open_hour(&mut self) -> Result<(), String> {
        let now = crate::clock::now_nanos()?;
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let delay = nanos(self.settings.detect_delay);
        let hour = detection::open_hour(now, delay);
        if self.cursor.through != Some(hour) {
            return Ok(());
        }
        // Detectors due at the same end are looked at together.
        let mut due: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for det in detect::all() {
            let s = detect::params::settings(&self.config.detect, det.as_ref());
            let Some(every) = det.look_every(&s).filter(|_| s.enabled) else {
                continue;
            };
            let looked = self.cursor.looked.get(det.code()).copied();
            if let Some(end) = detection::look_due(hour, now, delay, every, looked) {
                due.entry(end).or_default().push(det.code().to_owned());
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let log = self.store.log().map_err(|e| e.to_string())?;
        let spans = Spans::of(&log);
        let ctx = crate::query::session(&self.store, &self.config.query)
            .await
            .map_err(|e| e.to_string())?;
        for (end, codes) in due {
            if self.stopping() {
                break;
            }
            let window = crate::timerange::TimeRange {
                from: hour,
                to: end,
            };
            if spans.overlap(&window) {
                self.judge(&ctx, window, Some(&codes)).await?;
            }
            for code in codes {
                self.cursor.looked.insert(code, end);
            }
            self.cursor.save(&self.store)?;
        }
        Ok(())
    }

    /// Runs the detectors (all, or `only`) over `window`, records the findings and queues the
    /// alerts.
    async fn judge(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        window: crate::timerange::TimeRange,
        only: Option<&[String]>,
    ) -> Result<(), String> {
        let started = Instant::now();
        let d = DetectContext::new(ctx, window, &self.config.query, &self.config.detect);
        let findings = detect::run(&d, only).await.map_err(|e| e.to_string())?;
        let period = format!("{} to {}", rfc3339(window.from), rfc3339(window.to));
        let recorded = deliver::record_and_queue(
            &self.store,
            &self.config,
            &findings,
            &period,
            true,
            Duration::ZERO,
            || {},
        )
        .await
        .map_err(|e| format!("recording the findings of {period}: {e}"))?;
        let m = &self.shared.metrics;
        m.detection_seconds.observe(started.elapsed().as_secs_f64());
        for f in &findings {
            m.findings
                .get_or_create(&FindingLabels {
                    code: f.code.to_owned(),
                    severity: f.severity.to_string(),
                })
                .inc();
        }
        for w in &recorded.warnings {
            warn!(warning = %w, "detect");
        }
        let plan = &recorded.plan;
        if let Some(q) = &recorded.queued {
            m.alerts_queued.inc_by(q.alerts as u64);
        }
        info!(
            window = %period,
            detectors = %only.map_or_else(|| "all".to_owned(), |o| o.join(",")),
            findings = findings.len(),
            recorded = plan.recorded,
            alert = plan.send.len(),
            suppressed = plan.suppressed,
            "judged"
        );
        Ok(())
    }

    /// Runs every schedule that has a slot due; true if one ran.
    async fn run_schedules(&mut self) -> bool {
        let Ok(now) = crate::clock::now_nanos() else {
            return false;
        };
        let tz = self.config.query.calendar.timezone;
        let mut ran = false;
        for s in self.settings.schedules.clone() {
            if self.stopping() {
                break;
            }
            let last = self.slots.last.get(&s.name).copied();
            let slot = match schedule::due(&s, tz, last, now) {
                schedule::Due::No => continue,
                schedule::Due::Mark(slot) => slot,
                schedule::Due::Run(slot) => {
                    if self
                        .retry_at
                        .get(&s.name)
                        .is_some_and(|at| Instant::now() < *at)
                    {
                        continue;
                    }
                    ran = true;
                    let result = tasks::run(&self.store, &self.config, &s, slot).await;
                    let outcome = match &result {
                        Ok(r) if r.flagged => "flagged",
                        Ok(_) => "ok",
                        Err(_) => "failed",
                    };
                    self.shared
                        .metrics
                        .schedule_runs
                        .get_or_create(&metrics::ScheduleLabels {
                            schedule: s.name.clone(),
                            result: outcome,
                        })
                        .inc();
                    match result {
                        Ok(r) => {
                            self.retry_at.remove(&s.name);
                            if r.flagged {
                                warn!(schedule = %s.name, slot = %rfc3339(slot), result = %r.text, "scheduled task found a problem");
                            } else {
                                info!(schedule = %s.name, slot = %rfc3339(slot), result = %r.text, "scheduled task ran");
                            }
                        }
                        Err(e) => {
                            // Not recorded: the slot is tried again a while later (and once
                            // at the next start), until a later slot replaces it.
                            self.retry_at
                                .insert(s.name.clone(), Instant::now() + SCHEDULE_RETRY);
                            error!(schedule = %s.name, slot = %rfc3339(slot), error = %e, retry_in_s = SCHEDULE_RETRY.as_secs(), "scheduled task failed");
                            continue;
                        }
                    }
                    slot
                }
            };
            if let Err(e) = self.slots.record(&s.name, slot) {
                error!(schedule = %s.name, error = %e, "could not record the slot; it may run again");
            }
        }
        ran
    }

    /// Sends what waits in the outbox, beside the steps (network I/O, off the async threads);
    /// a send already running is followed by another once it ends.
    async fn send_alerts(&mut self) {
        self.send_wanted = true;
        self.collect_sent().await;
    }

    /// Takes the result of a send that has ended, and starts the next one if one is wanted.
    async fn collect_sent(&mut self) {
        if self.sender.as_ref().is_some_and(|h| h.is_finished()) {
            if let Some(h) = self.sender.take() {
                let sent = h.await.map_err(|e| e.to_string()).and_then(|r| r);
                self.sent(sent);
            }
        }
        if self.sender.is_none() && self.send_wanted && !self.stopping() {
            self.send_wanted = false;
            let config = self.config.clone();
            let root = self.store.root().to_owned();
            self.shared.health().sending_since = Some(Instant::now());
            // The send says when it ends itself: a long step may run before it is collected.
            let shared = Arc::clone(&self.shared);
            self.sender = Some(tokio::task::spawn_blocking(move || {
                let sent = crate::alert::send(&config, &root).map_err(|e| e.to_string());
                shared.health().sending_since = None;
                sent
            }));
        }
    }

    /// At a stop: waits a moment for a send in progress, and leaves it to the next start if it
    /// does not end (the outbox keeps every message the server has not accepted).
    async fn stop_sending(&mut self) {
        let Some(h) = self.sender.take() else {
            return;
        };
        match tokio::time::timeout(SEND_GRACE, h).await {
            Ok(sent) => self.sent(sent.map_err(|e| e.to_string()).and_then(|r| r)),
            Err(_) => warn!(
                waited_s = SEND_GRACE.as_secs(),
                "stopping while alerts are being sent: what the mail server has not accepted stays in the outbox for the next start"
            ),
        }
    }

    /// Counts what a send did, and says in `/healthz` if it failed.
    fn sent(&self, sent: Result<crate::alert::Sent, String>) {
        let m = &self.shared.metrics;
        match sent {
            Ok(sent) => {
                m.alert_messages_sent.inc_by(sent.mail.sent as u64);
                m.alert_messages_pending
                    .set(i64::try_from(sent.mail.still_pending).unwrap_or(i64::MAX));
                if sent.mail.sent > 0 {
                    info!(messages = sent.mail.sent, "alerts sent");
                }
                let webhook_error = sent.webhook.as_ref().and_then(|w| w.error.clone());
                let failure = sent.mail.error.clone().or(webhook_error);
                match failure {
                    Some(why) => {
                        m.error("alerts");
                        error!(error = %why, waiting = sent.mail.still_pending, "alerts not sent; retried at the next look");
                        self.shared.health().outbox_failing = Some((sent.mail.still_pending, why));
                    }
                    None => self.shared.health().outbox_failing = None,
                }
            }
            Err(e) => {
                m.error("alerts");
                error!(error = %e, "alerts not sent");
                self.shared.health().outbox_failing = Some((0, e));
            }
        }
    }
}
