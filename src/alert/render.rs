//! The alert email: subject from our own words only (counts, severity, detector names; never log
//! content), HTML and plain text grouped by principal, every log value escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::detect::{Finding, Severity};
use crate::report::html::escape;

fn by_principal<'a>(
    findings: &[&'a Finding],
) -> BTreeMap<(std::cmp::Reverse<Severity>, String), Vec<&'a Finding>> {
    let mut groups: BTreeMap<String, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        groups.entry(f.actor_id.clone()).or_default().push(f);
    }
    groups
        .into_iter()
        .map(|(actor, fs)| {
            let top = fs
                .iter()
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Info);
            ((std::cmp::Reverse(top), actor), fs)
        })
        .collect()
}

pub fn subject(findings: &[&Finding]) -> String {
    let top = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Info);
    let principals: std::collections::BTreeSet<&str> =
        findings.iter().map(|f| f.actor_id.as_str()).collect();
    let mut detectors: Vec<&str> = findings.iter().map(|f| f.detector).collect();
    detectors.sort();
    detectors.dedup();
    format!(
        "[vigil] {}: {} finding{} for {} principal{} ({})",
        top.to_string().to_uppercase(),
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        principals.len(),
        if principals.len() == 1 { "" } else { "s" },
        detectors.join(", ")
    )
}

fn name(f: &Finding) -> String {
    let shown = crate::detect::display_name(&f.actor_id, f.actor_name.as_deref());
    if shown == f.actor_id {
        shown
    } else {
        format!("{shown} ({})", f.actor_id)
    }
}

fn numbers(m: &BTreeMap<String, serde_json::Value>) -> String {
    m.iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keeps text on its lines: control characters other than newlines and tabs are replaced.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

pub fn text(findings: &[&Finding], window: &str) -> String {
    let mut t = format!(
        "vigil found {} new finding(s) in {window}.\n",
        findings.len()
    );
    for ((_, _), fs) in by_principal(findings) {
        let _ = write!(t, "\n== {}\n", clean(&name(fs[0])));
        for f in fs {
            let _ = write!(
                t,
                "\n[{}] {} {} ({} to {})\n{}\nobserved: {}\nbaseline: {}{}\nresources: {}\ninvestigate: vigil sql \"{}\"\n",
                f.severity.to_string().to_uppercase(),
                f.code,
                f.detector,
                f.window_start,
                f.window_end,
                clean(&f.explanation),
                clean(&numbers(&f.observed)),
                clean(&numbers(&f.baseline)),
                if f.cold_start { " (cold start: less history than the detector wants)" } else { "" },
                clean(&f.resources.join(", ")),
                clean(&f.investigate_sql.replace('"', "\\\"")),
            );
        }
    }
    t.push_str("\nFindings are deduplicated per (detector, key): the same one is not sent again within [alerts] suppress_for.\n");
    t
}

pub fn html(findings: &[&Finding], window: &str) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>vigil findings</title></head>\
         <body style=\"font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1f2328;max-width:1000px\">\n",
    );
    let _ = write!(h, "<h1 style=\"font-size:20px\">vigil: {} new finding{}</h1><p style=\"color:#59636e\">{}</p>",
        findings.len(), if findings.len() == 1 { "" } else { "s" }, escape(window));
    for ((_, _), fs) in by_principal(findings) {
        let _ = write!(
            h,
            "<h2 style=\"font-size:17px;border-bottom:1px solid #d0d7de\">{}</h2>",
            escape(&name(fs[0]))
        );
        for f in fs {
            let colour = match f.severity {
                Severity::Critical => "#82071e",
                Severity::High => "#cf222e",
                Severity::Medium => "#9a6700",
                _ => "#59636e",
            };
            let _ = write!(
                h,
                "<div style=\"margin:10px 0 18px\"><b style=\"color:{colour}\">{}</b> <b>{} {}</b> \
                 <span style=\"color:#59636e\">{} to {}</span><p style=\"margin:4px 0\">{}</p>\
                 <table style=\"border-collapse:collapse;font-size:13px\">\
                 <tr><td style=\"color:#59636e;padding-right:12px\">observed</td><td>{}</td></tr>\
                 <tr><td style=\"color:#59636e;padding-right:12px\">baseline</td><td>{}{}</td></tr>\
                 <tr><td style=\"color:#59636e;padding-right:12px\">resources</td><td>{}</td></tr></table>\
                 <pre style=\"background:#f6f8fa;padding:6px;white-space:pre-wrap;font-size:12px\">vigil sql \"{}\"</pre></div>",
                f.severity.to_string().to_uppercase(),
                f.code,
                f.detector,
                escape(&f.window_start),
                escape(&f.window_end),
                escape(&f.explanation),
                escape(&numbers(&f.observed)),
                escape(&numbers(&f.baseline)),
                if f.cold_start { " <i>(cold start)</i>" } else { "" },
                escape(&f.resources.join(", ")),
                escape(&f.investigate_sql),
            );
        }
    }
    h.push_str("<p style=\"color:#8c959f;font-size:12px\">Findings are deduplicated per (detector, key); the same one is not sent again within [alerts] suppress_for. findings.json holds them all.</p></body></html>\n");
    h
}
