//! `vigil generate`: deterministic audit logs of an ordinary estate, with labelled anomalies.
//!
//! The population (`model` has its numbers, the README describes it): services in teams of ten
//! apps reading their app's secrets and some of their team's shared ones around the clock,
//! people in eight time zones reading long-tail sets of their team's secrets in business hours,
//! an on-call rotation, and change over the period: deploys that move services to new node
//! subnets, client upgrades, new services, a team reorganisation, a person joining and one
//! leaving. Eleven anomalies are planted (`plants`) and written to `labels.json`. The same seed
//! and options give the same files.

pub mod model;
mod plants;
mod population;
mod render;
mod rng;
mod traffic;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::event::SourceKind;
use crate::timerange::rfc3339;
pub use plants::{Plant, PLANTS};
use population::Population;
use rng::Rng;
pub use traffic::{Call, Outcome};

use crate::timerange::NANOS_PER_HOUR;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub source: SourceKind,
    /// Input records to write (a Vault or Kubernetes call writes two).
    pub events: u64,
    pub seed: u64,
    pub days: u32,
    /// Principals of the estate (services and people, four to one).
    pub principals: usize,
    /// Start of the period, nanoseconds UTC (midnight).
    pub start: i64,
    pub out: PathBuf,
}

/// One planted anomaly, as `vigil backtest --labels` reads it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Label {
    pub kind: String,
    pub actor_id: String,
    pub resources: Vec<String>,
    pub start: String,
    pub end: String,
    /// What was planted, in a few words (backtest lists the labels it missed with it).
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct Labels {
    pub anomalies: Vec<Label>,
    pub seed: u64,
    pub events: u64,
    pub principals: usize,
    pub from: String,
    pub to: String,
}

/// What was written.
#[derive(Debug)]
pub struct Generated {
    pub log: PathBuf,
    pub labels: PathBuf,
    pub records: u64,
    pub anomalies: usize,
    /// `vigil.toml` with the generated people's time zones.
    pub config: PathBuf,
    /// Calls of normal traffic written: 0 when the planted anomalies alone used up `events`.
    pub baseline_calls: u64,
}

/// The calls of a period, in time order: the ordinary traffic and the planted anomalies. The
/// statistics test reads them without writing a log.
pub struct Traffic {
    pub population: Population,
    pub labels: Vec<Label>,
    planted: std::iter::Peekable<std::vec::IntoIter<Call>>,
    rng: Rng,
    hours: i64,
    hour: i64,
    baseline_calls: u64,
    written: u64,
    carry: f64,
    total_weight: f64,
    weights: Vec<f64>,
}

impl Traffic {
    pub fn new(opts: &GenerateOptions) -> Traffic {
        let mut rng = Rng::new(opts.seed);
        let hours = i64::from(opts.days.max(1)) * 24;
        let end = opts.start + hours * NANOS_PER_HOUR;
        let mut population = Population::new(&mut rng, opts.principals, opts.start, end);
        let (planted, labels) = plants::plant(&mut population, &mut rng, opts.source);
        let per_call = render::records_per_call(opts.source);
        let calls_total = (opts.events / per_call).max(1);
        let baseline_calls = calls_total.saturating_sub(planted.len() as u64);
        let weights: Vec<f64> = (0..hours)
            .map(|h| {
                let w = population.hour_weights(opts.start + h * NANOS_PER_HOUR);
                w.last().copied().unwrap_or(0.0)
            })
            .collect();
        Traffic {
            total_weight: weights.iter().sum(),
            weights,
            population,
            labels,
            planted: planted.into_iter().peekable(),
            rng,
            hours,
            hour: 0,
            baseline_calls,
            written: 0,
            carry: 0.0,
        }
    }

    pub fn baseline_calls(&self) -> u64 {
        self.baseline_calls
    }

    /// The calls of the next hour, sorted by time; `None` after the last hour.
    pub fn next_hour(&mut self) -> Option<Vec<Call>> {
        if self.hour >= self.hours {
            return None;
        }
        let h = self.hour;
        self.hour += 1;
        let hour_start = self.population.start + h * NANOS_PER_HOUR;
        let exact =
            self.baseline_calls as f64 * self.weights[h as usize] / self.total_weight + self.carry;
        let mut n = exact.floor() as u64;
        self.carry = exact - n as f64;
        if h == self.hours - 1 {
            // The last hour takes what rounding left, so the total is exact.
            n = self.baseline_calls.saturating_sub(self.written);
        }
        self.written += n;
        let cumulative = self.population.hour_weights(hour_start);
        let mut calls: Vec<Call> = (0..n)
            .map(|_| {
                self.population
                    .baseline_call(&mut self.rng, hour_start, &cumulative)
            })
            .collect();
        while let Some(c) = self
            .planted
            .next_if(|c| c.time < hour_start + NANOS_PER_HOUR)
        {
            calls.push(c);
        }
        calls.sort_by_key(|c| c.time);
        Some(calls)
    }
}

pub fn generate(opts: &GenerateOptions) -> io::Result<Generated> {
    std::fs::create_dir_all(&opts.out)?;
    let mut traffic = Traffic::new(opts);
    let end = traffic.population.end;
    let baseline_calls = traffic.baseline_calls();
    let log = opts.out.join(format!("{}-audit.log", opts.source.as_str()));
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&log)?);
    let mut renderer = render::Renderer::new(opts.source, opts.seed);
    let mut records = 0u64;
    while let Some(calls) = traffic.next_hour() {
        for call in &calls {
            records += renderer.write(&mut out, &traffic.population, call)?;
        }
    }
    out.flush()?;
    let labels_path = opts.out.join("labels.json");
    let labels = Labels {
        anomalies: std::mem::take(&mut traffic.labels),
        seed: opts.seed,
        events: records,
        principals: traffic.population.principals.len(),
        from: rfc3339(opts.start),
        to: rfc3339(end),
    };
    let count = labels.anomalies.len();
    let config = opts.out.join("vigil.toml");
    write_calendar(&config, &traffic.population, opts.source)?;
    let mut f = BufWriter::new(File::create(&labels_path)?);
    serde_json::to_writer_pretty(&mut f, &labels)?;
    writeln!(f)?;
    f.flush()?;
    Ok(Generated {
        log,
        labels: labels_path,
        records,
        anomalies: count,
        config,
        baseline_calls,
    })
}

/// Parses `YYYY-MM-DD` to midnight UTC in nanoseconds.
pub fn parse_start(date: &str) -> Result<i64, String> {
    crate::ingest::timestamp::parse_time(&format!("{date}T00:00:00Z"))
        .map(|t| t.nanos)
        .map_err(|e| format!("--start: {e}"))
}

/// Detector names of the planted anomalies, in the order of `labels.json`.
pub const ANOMALY_KINDS: [&str; PLANTS.len()] = {
    let mut kinds = [""; PLANTS.len()];
    let mut i = 0;
    while i < PLANTS.len() {
        kinds[i] = PLANTS[i].kind;
        i += 1;
    }
    kinds
};

/// IANA name of a fixed UTC offset the generator uses for people (POSIX sign: Etc/GMT+5 is UTC-5).
fn zone_of(offset_min: i32) -> String {
    match offset_min {
        0 => "Etc/UTC".into(),
        330 => "Asia/Kolkata".into(),
        m => format!("Etc/GMT{:+}", -m / 60),
    }
}

/// `vigil.toml` beside the data: the people's home time zones, as a team would configure them,
/// so off-hours reports and detectors judge each person in their own time (`--config`).
fn write_calendar(
    path: &std::path::Path,
    population: &Population,
    source: SourceKind,
) -> io::Result<()> {
    let mut f = BufWriter::new(File::create(path)?);
    writeln!(
        f,
        "# Written by vigil generate: the generated people's home time zones. Use with --config."
    )?;
    writeln!(f, "[calendar.principal_timezones]")?;
    let any_secret = &population.secrets[0];
    let people: Vec<_> = population
        .principals
        .iter()
        .filter(|p| p.kind == population::Kind::Human)
        .collect();
    for p in people {
        let actor = render::identity(source, p, any_secret).0;
        writeln!(
            f,
            "{} = {}",
            toml_str(&actor),
            toml_str(&zone_of(p.offset_min))
        )?;
    }
    f.flush()
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests;
