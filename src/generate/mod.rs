//! `vigil generate`: deterministic, realistic audit logs with labelled anomalies.
//!
//! A population of teams, environments, services (24×7, some nightly batch jobs) and people
//! (weekday business hours in their own time zone, some on call) reads its own secrets; about
//! 1 % of calls are denied or miss, and there are lists, writes and logins around the reads.
//! Six anomalies are planted and written to `labels.json` in the format of DESIGN §8. The same
//! seed gives the same files.

mod population;
mod render;
mod rng;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use serde::Serialize;

use crate::event::SourceKind;
use crate::ingest::timestamp::format_nanos;
use population::{Call, Population};
use rng::Rng;

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub source: SourceKind,
    /// Input records to write (a Vault or Kubernetes call writes two).
    pub events: u64,
    pub seed: u64,
    pub days: u32,
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
}

#[derive(Debug, Serialize)]
pub struct Labels {
    pub anomalies: Vec<Label>,
    pub seed: u64,
    pub events: u64,
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

pub fn generate(opts: &GenerateOptions) -> io::Result<Generated> {
    std::fs::create_dir_all(&opts.out)?;
    let mut rng = Rng::new(opts.seed);
    let mut population = Population::new(&mut rng);
    let hours = i64::from(opts.days.max(1)) * 24;
    let end = opts.start + hours * NANOS_PER_HOUR;
    let per_call = render::records_per_call(opts.source);
    let calls_total = (opts.events / per_call).max(1);

    let (planted, labels) = population.anomalies(opts.start, end, opts.source);
    let planted_calls = planted.len() as u64;
    let baseline_calls = calls_total.saturating_sub(planted_calls);

    let log = opts.out.join(format!("{}-audit.log", opts.source.as_str()));
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&log)?);
    let mut renderer = render::Renderer::new(opts.source, opts.seed);
    let weights: Vec<f64> = (0..hours)
        .map(|h| population.hour_weight(opts.start + h * NANOS_PER_HOUR))
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let mut carry = 0.0;
    let mut records = 0u64;
    let mut planted = planted.into_iter().peekable();
    let mut written_calls = 0u64;
    for (h, w) in weights.iter().enumerate() {
        let hour_start = opts.start + h as i64 * NANOS_PER_HOUR;
        let exact = baseline_calls as f64 * w / total_weight + carry;
        let mut n = exact.floor() as u64;
        carry = exact - n as f64;
        if h as i64 == hours - 1 {
            // The last hour takes what rounding left, so the total is exact.
            n = baseline_calls.saturating_sub(written_calls);
        }
        written_calls += n;
        let mut calls: Vec<Call> = (0..n)
            .map(|_| population.baseline_call(&mut rng, hour_start))
            .collect();
        while let Some(c) = planted.next_if(|c| c.time < hour_start + NANOS_PER_HOUR) {
            calls.push(c);
        }
        calls.sort_by_key(|c| c.time);
        for call in &calls {
            records += renderer.write(&mut out, &population, call)?;
        }
    }
    out.flush()?;
    let labels_path = opts.out.join("labels.json");
    let labels = Labels {
        anomalies: labels,
        seed: opts.seed,
        events: records,
        from: format_nanos(opts.start),
        to: format_nanos(end),
    };
    let count = labels.anomalies.len();
    let config = opts.out.join("vigil.toml");
    write_calendar(&config, &population, opts.source)?;
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

pub use population::KINDS as ANOMALY_KINDS;

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
