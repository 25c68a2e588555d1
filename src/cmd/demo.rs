//! `vigil demo`: the bundled sample data into a fresh store, the summary, and a few telling
//! queries. Needs no configuration and no server.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{exit, Globals};
use crate::cli::DemoArgs;
use crate::ingest::{ingest, InputSpec};
use crate::query::{run_sql, session};
use crate::report::{self, write_batches_fitted, Format};
use crate::store::Store;
use crate::timerange::{parse_instant, rfc3339, TimeRange};

/// Where the demo store goes unless `--store` names one.
const DEMO_STORE: &str = "./vigil-demo";
/// Marks a directory as a demo store that the next demo may replace.
const DEMO_MARKER: &str = ".vigil-demo";

/// The sample files, built into the binary so the demo runs from any directory.
const SAMPLES: [(&str, &[u8]); 8] = [
    ("vault/audit.log", include_bytes!("../../sample-data/vault/audit.log")),
    (
        "cloudtrail/111122223333_CloudTrail_eu-west-1_20260306T1405Z_a1b2c3d4e5f6g7h8.json.gz",
        include_bytes!(
            "../../sample-data/cloudtrail/111122223333_CloudTrail_eu-west-1_20260306T1405Z_a1b2c3d4e5f6g7h8.json.gz"
        ),
    ),
    (
        "cloudtrail/eventbridge-secretsmanager.jsonl",
        include_bytes!("../../sample-data/cloudtrail/eventbridge-secretsmanager.jsonl"),
    ),
    ("gcp/secretmanager-audit.jsonl", include_bytes!("../../sample-data/gcp/secretmanager-audit.jsonl")),
    ("azure/PT1H.json", include_bytes!("../../sample-data/azure/PT1H.json")),
    ("azure/eventhub-batch.json", include_bytes!("../../sample-data/azure/eventhub-batch.json")),
    ("k8s/audit.log", include_bytes!("../../sample-data/k8s/audit.log")),
    ("k8s/webhook-batch.json", include_bytes!("../../sample-data/k8s/webhook-batch.json")),
];

const QUERIES: [(&str, &str); 1] = [(
    "Secret reads per source: principals, secrets, denials",
    "SELECT source, count(*) AS reads, count(DISTINCT actor_id) AS principals, \
     count(DISTINCT resource_id) AS secrets, sum(CASE WHEN outcome = 'denied' THEN 1 ELSE 0 END) AS denied \
     FROM secret_reads GROUP BY source ORDER BY source",
)];

/// Reports shown on the terminal, then written together as one HTML page.
const REPORTS: [&str; 3] = ["off-hours-access", "cross-environment", "denied-access"];
/// The sample data's week (its dates are fixed).
const SAMPLE_FROM: &str = "2026-03-02";
const SAMPLE_TO: &str = "2026-03-07";
/// Detection window: the second half of the week (the first half is its short history).
const DETECT_FROM: &str = "2026-03-04";
/// The HTML page the demo writes into its store.
const DEMO_PAGE: &str = "demo-report.html";

pub async fn run(g: &Globals, _args: DemoArgs) -> anyhow::Result<u8> {
    let root = if g.store_explicit {
        g.store.root().to_owned()
    } else {
        PathBuf::from(DEMO_STORE)
    };
    prepare_store(&root)?;
    let store = Store::new(&root);
    let samples = sample_dir(&root)?;
    let inputs: Vec<InputSpec> = SAMPLES
        .iter()
        .map(|(rel, _)| InputSpec::Path(samples.join(rel)))
        .collect();
    let mut opts = super::ingest::options(g, None, false)?;
    opts.progress = false;
    let report = ingest(&store, &inputs, &opts).context("ingesting the sample data")?;
    std::fs::write(
        root.join(DEMO_MARKER),
        b"created by vigil demo; the next demo replaces this directory\n",
    )?;
    let demo_globals = Globals {
        store: store.clone(),
        store_explicit: true,
        ..clone_globals(g)
    };
    eprintln!(
        "vigil demo: ingesting {} into {}",
        samples.display(),
        root.display()
    );
    super::ingest::print_summary(&report, &demo_globals)?;
    eprintln!("(the rejected records are the malformed samples planted in each file)");

    let ctx = session(&store, &g.config.query).await?;
    let limits = g.config.query.limits();
    let mut out = std::io::stdout().lock();
    for (title, sql) in QUERIES {
        writeln!(
            out,
            "\n== {title}\n$ vigil --store {} sql \"{sql}\"",
            root.display()
        )?;
        let batches = run_sql(&ctx, sql, limits).await?;
        write_batches_fitted(
            &mut out,
            &batches,
            Format::Table,
            crate::report::terminal_width(),
        )?;
    }
    let all = report::catalog::shipped().map_err(anyhow::Error::msg)?;
    let range = TimeRange {
        from: parse_instant(SAMPLE_FROM).map_err(anyhow::Error::msg)?,
        to: parse_instant(SAMPLE_TO).map_err(anyhow::Error::msg)?,
    };
    let mut runs = Vec::new();
    for name in REPORTS {
        let r = report::catalog::find(&all, name).map_err(anyhow::Error::msg)?;
        writeln!(
            out,
            "\n== Report {name}: {}\n$ vigil --store {} report run {name} --from {SAMPLE_FROM} --to {SAMPLE_TO}",
            r.description,
            root.display()
        )?;
        let run = report::run(&ctx, r, range, &[], limits).await?;
        write_batches_fitted(
            &mut out,
            &run.batches,
            Format::Table,
            crate::report::terminal_width(),
        )?;
        runs.push(run);
    }
    // Detection over the last three days of the week, against the two days before them.
    let window = TimeRange {
        from: parse_instant(DETECT_FROM).map_err(anyhow::Error::msg)?,
        to: range.to,
    };
    writeln!(
        out,
        "\n== Findings: what is unusual from {DETECT_FROM} on, against the days before\n$ vigil --store {} detect --from {DETECT_FROM} --to {SAMPLE_TO}",
        root.display()
    )?;
    let d = crate::detect::DetectContext::new(&ctx, window, &g.config.query, &g.config.detect);
    let findings = crate::detect::run(&d, None).await?;
    for f in &findings {
        writeln!(
            out,
            "  {:<8} {} {:<27} {}",
            f.severity.to_string(),
            f.code,
            f.detector,
            report::format::terminal_safe(&f.explanation)
        )?;
    }
    for n in d.take_notes() {
        writeln!(out, "  note: {n}")?;
    }
    let generated = rfc3339(crate::clock::now_nanos().map_err(anyhow::Error::msg)?);
    let sections: Vec<_> = runs.iter().map(|r| r.section()).collect();
    let page = report::html::page("vigil demo: sample week", &sections, &generated)?;
    let page_path = root.join(DEMO_PAGE);
    std::fs::write(&page_path, page).with_context(|| format!("writing {}", page_path.display()))?;
    writeln!(
        out,
        "\nThe three reports are also in {} (open it in a browser; --email sends the same page).\n\
         All reports: vigil report list; all detectors: vigil detectors. The store is {}; query it with: vigil --store {} sql \"SELECT * FROM events LIMIT 5\"",
        page_path.display(),
        root.display(),
        root.display()
    )?;
    Ok(exit::OK)
}

fn clone_globals(g: &Globals) -> Globals {
    Globals {
        config: g.config.clone(),
        store: g.store.clone(),
        store_explicit: g.store_explicit,
        quiet: g.quiet,
        verbose: g.verbose,
        stderr_is_terminal: g.stderr_is_terminal,
        config_path: g.config_path.clone(),
        config_explicit: g.config_explicit,
    }
}

/// Empties a previous demo store; refuses to touch a directory that is not one.
fn prepare_store(root: &Path) -> anyhow::Result<()> {
    if root.exists() {
        let is_demo = root.join(DEMO_MARKER).exists();
        let empty = std::fs::read_dir(root)?.next().is_none();
        if !is_demo && !empty {
            bail!(
                "{} exists and is not a demo store; pass --store with a new directory",
                root.display()
            );
        }
        std::fs::remove_dir_all(root).with_context(|| format!("clearing {}", root.display()))?;
    }
    std::fs::create_dir_all(root)?;
    Ok(())
}

/// `./sample-data` when run from a checkout, else the built-in copy written into the store.
fn sample_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let local = PathBuf::from("sample-data");
    if SAMPLES.iter().all(|(rel, _)| local.join(rel).is_file()) {
        return Ok(local);
    }
    let dir = root.join("sample-data");
    for (rel, bytes) in SAMPLES {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("sample paths have a directory"))?;
        std::fs::write(&path, bytes)?;
    }
    Ok(dir)
}
