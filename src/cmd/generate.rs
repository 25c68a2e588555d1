//! `vigil generate --source S --events N --seed K --days D --out DIR`

use anyhow::Context;

use super::{exit, Globals};
use crate::cli::GenerateArgs;
use crate::generate::{generate, parse_start, GenerateOptions};

pub fn run(g: &Globals, args: GenerateArgs) -> anyhow::Result<u8> {
    let source = args.source;
    let opts = GenerateOptions {
        source,
        events: args.events,
        seed: args.seed,
        days: args.days,
        principals: args.principals as usize,
        start: parse_start(&args.start).map_err(anyhow::Error::msg)?,
        out: args.out,
    };
    let done = generate(&opts).with_context(|| format!("writing to {}", opts.out.display()))?;
    if !g.quiet {
        eprintln!(
            "wrote {} records to {}, {} labelled anomalies to {} and the people's time zones to {} (pass it with --config)",
            done.records,
            done.log.display(),
            done.anomalies,
            done.labels.display(),
            done.config.display()
        );
        if done.baseline_calls == 0 {
            eprintln!(
                "warning: the planted anomalies alone take {} records, more than --events {}: there is no normal traffic to compare them with; ask for at least {} events",
                done.records,
                args.events,
                done.records * 20
            );
        }
    }
    Ok(exit::OK)
}
