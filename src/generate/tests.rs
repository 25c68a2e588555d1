//! The model's stated statistics, measured on the calls it generates (no log written), so the
//! model cannot drift from its description silently.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::model::*;
use super::population::Kind;
use super::traffic::Outcome;
use super::{GenerateOptions, Traffic, NANOS_PER_HOUR};
use crate::event::SourceKind;

const DAY: i64 = 24 * NANOS_PER_HOUR;

struct Measured {
    /// Per kind: calls per operation among successful calls.
    ops: [BTreeMap<Op, u64>; 2],
    /// Per kind: (denied, all calls).
    denied: [(u64, u64); 2],
    /// Per kind: share of the (principal, secret, day) triples read in the last week that were
    /// the principal's first read of that secret.
    first_time: [f64; 2],
    /// Per kind, per principal: distinct secrets read, /24s, user agents.
    secrets: [Vec<usize>; 2],
    subnets: [Vec<usize>; 2],
    agents: [Vec<usize>; 2],
    offsets: BTreeSet<i32>,
    services_appearing: usize,
}

fn kind_index(k: Kind) -> usize {
    match k {
        Kind::Workload => 0,
        Kind::Human => 1,
    }
}

fn median(v: &mut [usize]) -> usize {
    v.sort_unstable();
    v[v.len() / 2]
}

fn measure(principals: usize, calls: u64, seed: u64) -> Measured {
    let opts = GenerateOptions {
        source: SourceKind::CloudTrail,
        events: calls,
        seed,
        days: 31,
        principals,
        start: super::parse_start("2026-03-02").unwrap(),
        out: std::path::PathBuf::new(),
    };
    let mut t = Traffic::new(&opts);
    let start = opts.start;
    let last_week = start + 24 * DAY;
    let mut m = Measured {
        ops: Default::default(),
        denied: Default::default(),
        first_time: Default::default(),
        secrets: Default::default(),
        subnets: Default::default(),
        agents: Default::default(),
        offsets: BTreeSet::new(),
        services_appearing: t.population.changes.new_services.len(),
    };
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    // Per principal: secrets read, /24s, client families.
    type Seen = (HashSet<usize>, HashSet<String>, HashSet<String>);
    let mut per_principal: HashMap<usize, Seen> = HashMap::new();
    let mut day_pairs: HashMap<(i64, usize), HashMap<(usize, usize), bool>> = HashMap::new();
    while let Some(hour) = t.next_hour() {
        for c in hour {
            let k = kind_index(t.population.principals[c.principal].kind);
            m.denied[k].1 += 1;
            if c.outcome == Outcome::Denied {
                m.denied[k].0 += 1;
            }
            if c.outcome != Outcome::Ok {
                continue;
            }
            *m.ops[k].entry(c.op).or_default() += 1;
            let e = per_principal.entry(c.principal).or_default();
            e.1.insert(c.ip.rsplit_once('.').unwrap().0.to_owned());
            e.2.insert(format!("{:?}", c.agent.client));
            if c.op != Op::Read {
                continue;
            }
            e.0.insert(c.secret);
            let pair = (c.principal, c.secret);
            let new = seen.insert(pair);
            if c.time >= last_week {
                let day = (c.time - start) / DAY;
                let entry = day_pairs.entry((day, k)).or_default();
                let first = entry.entry(pair).or_insert(new);
                *first |= new;
            }
        }
    }
    let mut tally = [(0usize, 0usize); 2];
    for ((_, k), pairs) in day_pairs {
        tally[k].0 += pairs.values().filter(|n| **n).count();
        tally[k].1 += pairs.len();
    }
    for (k, (new, all)) in tally.iter().enumerate() {
        m.first_time[k] = *new as f64 / (*all).max(1) as f64;
    }
    for (i, (secrets, subnets, agents)) in per_principal {
        let p = &t.population.principals[i];
        let k = kind_index(p.kind);
        m.secrets[k].push(secrets.len());
        m.subnets[k].push(subnets.len());
        m.agents[k].push(agents.len());
        if p.kind == Kind::Human {
            m.offsets.insert(p.offset_min);
        }
    }
    m
}

/// The figures the README states about the model (`model` has the inputs).
#[test]
fn the_generated_estate_has_the_stated_statistics() {
    for (principals, seed) in [(250, 1), (250, 2), (1000, 3)] {
        let mut m = measure(principals, principals as u64 * 600, seed);
        let at = format!("{principals} principals, seed {seed}");
        for (k, mix) in [(0, &SERVICE_OPS), (1, &PERSON_OPS)] {
            let total: u64 = m.ops[k].values().sum();
            for (op, share) in mix.iter() {
                let got = *m.ops[k].get(op).unwrap_or(&0) as f64 / total as f64;
                assert!(
                    (got - share).abs() <= 0.02,
                    "{at}, kind {k}: {op:?} {got:.3} against {share}"
                );
            }
        }
        let denied = |k: usize| m.denied[k].0 as f64 / m.denied[k].1 as f64;
        assert!(
            (denied(0) - DENIED_SERVICE).abs() < 0.002,
            "{at}: {}",
            denied(0)
        );
        assert!(
            (denied(1) - DENIED_PERSON).abs() < 0.005,
            "{at}: {}",
            denied(1)
        );
        // First reads in the last week: a person meets a secret of their long tail now and
        // then; services only when new.
        let (people_new, services_new) = (m.first_time[1], m.first_time[0]);
        assert!((0.03..=0.10).contains(&people_new), "{at}: {people_new}");
        assert!(services_new <= 0.02, "{at}: {services_new}");
        // What each principal reads, from where and with what.
        let services_secrets = median(&mut m.secrets[0]);
        assert!(
            (9..=14).contains(&services_secrets),
            "{at}: {services_secrets}"
        );
        let people_secrets = median(&mut m.secrets[1]);
        assert!(
            (15..=45).contains(&people_secrets),
            "{at}: {people_secrets}"
        );
        assert!(
            median(&mut m.subnets[0]) >= 3,
            "{at}: deploys move services"
        );
        assert!(
            median(&mut m.subnets[1]) >= 4,
            "{at}: VPN and office addresses"
        );
        assert!(
            m.agents[0].iter().any(|n| *n >= 2),
            "{at}: a team changes client"
        );
        assert!(m.agents.iter().flatten().all(|n| *n <= 3), "{at}");
        assert!(m.agents[1].contains(&3), "{at}: CLI, browser, Terraform");
        assert_eq!(
            m.offsets.len(),
            OFFSETS.len(),
            "{at}: every time zone has people"
        );
        assert!(m.services_appearing >= 1, "{at}");
    }
}

/// The smallest estates and shortest periods still get every plant, inside the period (and,
/// over a month, in its last 45 %), and every call falls inside the period.
#[test]
fn small_estates_and_short_periods_get_every_plant_inside_the_period() {
    for seed in 1..=25 {
        for (principals, days) in [(MIN_PRINCIPALS, 31), (45, 3), (250, 1)] {
            let opts = GenerateOptions {
                source: SourceKind::CloudTrail,
                events: 3_000,
                seed,
                days,
                principals,
                start: super::parse_start("2026-03-02").unwrap(),
                out: std::path::PathBuf::new(),
            };
            let mut t = Traffic::new(&opts);
            let (start, end) = (t.population.start, t.population.end);
            let at = format!("seed {seed}, {principals} principals, {days} days");
            assert_eq!(t.labels.len(), super::PLANTS.len(), "{at}");
            for l in &t.labels {
                let (s, e) = (
                    crate::timerange::parse_instant(&l.start).unwrap(),
                    crate::timerange::parse_instant(&l.end).unwrap(),
                );
                assert!(start <= s && e <= end + 1_000_000_000, "{at}: {l:?}");
                if days == 31 {
                    assert!(s >= start + (end - start) * 55 / 100, "{at}: {l:?}");
                }
            }
            while let Some(hour) = t.next_hour() {
                assert!(hour.iter().all(|c| start <= c.time && c.time < end), "{at}");
            }
        }
    }
}
