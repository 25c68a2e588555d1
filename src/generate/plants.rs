//! The planted anomalies: six plain ones that today's detectors are built for, and five hard
//! ones that look like the ordinary traffic around them. They fall in the last 40 % of the
//! period, so that detectors have the history before them as a baseline.

use chrono::{Datelike, Timelike};

use super::model::Op;
use super::population::{Agent, Client, Kind, Population, Secret, SecretSet};
use super::render::identity;
use super::rng::Rng;
use super::traffic::{Call, Outcome};
use super::{Label, NANOS_PER_HOUR};
use crate::event::SourceKind;
use crate::timerange::rfc3339;

/// A planted anomaly: the detector meant to find it, what it is, and whether it is hard (looks
/// like the ordinary traffic of the estate).
#[derive(Debug, Clone, Copy)]
pub struct Plant {
    pub kind: &'static str,
    pub note: &'static str,
    pub hard: bool,
}

const fn plain(kind: &'static str, note: &'static str) -> Plant {
    Plant {
        kind,
        note,
        hard: false,
    }
}

const fn hard(kind: &'static str, note: &'static str) -> Plant {
    Plant {
        kind,
        note,
        hard: true,
    }
}

/// In the order of `labels.json`.
pub const PLANTS: [Plant; 11] = [
    plain(
        "new-caller-for-secret",
        "a service reads another team's production secret",
    ),
    plain(
        "off-hours-burst",
        "a person reads 30 secrets at 03:00 local time",
    ),
    plain(
        "enumeration",
        "a service walks through 40 secrets in 5 minutes",
    ),
    plain("denied-storm", "a person is refused 50 reads in 5 minutes"),
    plain(
        "cross-environment",
        "a staging service reads its team's production secret",
    ),
    plain(
        "dormant-secret-reactivated",
        "a secret unread since the first days is read again",
    ),
    hard(
        "new-caller-for-secret",
        "a person reads one secret of another team, once, in business hours",
    ),
    hard(
        "new-source-network",
        "a service reads its own secrets from an external network",
    ),
    hard(
        "new-user-agent",
        "a service account reads its own secrets with curl",
    ),
    hard(
        "dormant-principal-reactivated",
        "a service silent for 30 days reads its secrets at night",
    ),
    hard(
        "enumeration",
        "a service reads one new secret of another team an hour for a day",
    ),
];

const MINUTE: i64 = crate::timerange::NANOS_PER_MINUTE;

struct Planter<'a> {
    pop: &'a mut Population,
    rng: &'a mut Rng,
    source: SourceKind,
    used: Vec<usize>,
    calls: Vec<Call>,
    labels: Vec<Label>,
}

impl Planter<'_> {
    fn at(&self, fraction: f64) -> i64 {
        self.pop.start + ((self.pop.end - self.pop.start) as f64 * fraction) as i64
    }

    fn usable(&self, i: usize) -> bool {
        !self.used.contains(&i) && !self.pop.is_changed(i)
    }

    /// An unused service of `env`, in `team` if there is one.
    fn service(&mut self, team: usize, env: usize) -> usize {
        let team = team % self.pop.teams.len();
        let ps = &self.pop.principals;
        let fits =
            |i: &usize| ps[*i].kind == Kind::Workload && ps[*i].env == env && !ps[*i].nightly;
        let found = (0..ps.len())
            .filter(|i| fits(i) && self.usable(*i))
            .find(|i| ps[*i].team == team)
            .or_else(|| (0..ps.len()).find(|i| fits(i) && self.usable(*i)))
            .expect("the population has enough services for the anomalies");
        self.used.push(found);
        found
    }

    /// An unused person, preferably outside the rotation and with secrets of their own team
    /// only; in a small estate the conditions are relaxed one by one rather than failing.
    fn person(&mut self) -> usize {
        let pop = &self.pop;
        let human = |i: &usize| pop.principals[*i].kind == Kind::Human;
        let quiet = |i: &usize| pop.principals[*i].on_call.is_none();
        let one_team = |i: &usize| {
            let p = &pop.principals[*i];
            p.sets[0]
                .secrets
                .iter()
                .all(|s| pop.secrets[*s].team == p.team)
        };
        let all = 0..pop.principals.len();
        let found = all
            .clone()
            .find(|i| human(i) && self.usable(*i) && quiet(i) && one_team(i))
            .or_else(|| {
                all.clone()
                    .find(|i| human(i) && self.usable(*i) && quiet(i))
            })
            .or_else(|| all.clone().find(|i| human(i) && self.usable(*i)))
            .or_else(|| {
                all.clone().find(|i| {
                    human(i) && !self.used.contains(i) && pop.principals[*i].until == pop.end
                })
            })
            .or_else(|| all.clone().find(human))
            .expect("the population has people");
        self.used.push(found);
        found
    }

    fn call(&mut self, time: i64, principal: usize, secret: usize, outcome: Outcome) -> Call {
        let p = &self.pop.principals[principal];
        Call {
            time,
            principal,
            secret,
            op: Op::Read,
            outcome,
            ip: p.address(time, self.rng, self.pop),
            agent: p.agent(time, self.rng),
        }
    }

    /// Reads of `secrets`, `step` apart from `t0`, labelled as plant `n`.
    fn plant(
        &mut self,
        n: usize,
        principal: usize,
        secrets: &[usize],
        t0: i64,
        step: i64,
        edit: impl Fn(&mut Call),
    ) {
        // However short the period, every call of the plant falls inside it.
        let span = (secrets.len() as i64) * step + 1_000_000_000;
        let t0 = t0.min(self.pop.end - span).max(self.pop.start);
        let mut resources = Vec::new();
        for (i, s) in secrets.iter().enumerate() {
            let mut c = self.call(t0 + i as i64 * step, principal, *s, Outcome::Ok);
            edit(&mut c);
            self.calls.push(c);
            let p = &self.pop.principals[principal];
            let id = identity(self.source, p, &self.pop.secrets[*s]).1;
            if !resources.contains(&id) {
                resources.push(id);
            }
        }
        let last = t0 + (secrets.len() as i64 - 1).max(0) * step;
        let p = &self.pop.principals[principal];
        self.labels.push(Label {
            kind: PLANTS[n].kind.into(),
            actor_id: identity(self.source, p, &self.pop.secrets[secrets[0]]).0,
            resources,
            start: rfc3339(t0),
            end: rfc3339(last + 1_000_000_000),
            note: PLANTS[n].note.into(),
        });
    }

    /// Unlabelled reads: the normal history a plant is compared with.
    fn history(&mut self, principal: usize, secret: usize, times: &[f64]) {
        for f in times {
            let t = self.at(*f);
            let c = self.call(t, principal, secret, Outcome::Ok);
            self.calls.push(c);
        }
    }
}

/// Plants the anomalies into `pop` (a dormant secret and a dormant service change it) and
/// returns their calls, sorted by time, and their labels.
pub fn plant(pop: &mut Population, rng: &mut Rng, source: SourceKind) -> (Vec<Call>, Vec<Label>) {
    let mut p = Planter {
        pop,
        rng,
        source,
        used: Vec::new(),
        calls: Vec::new(),
        labels: Vec::new(),
    };
    let teams = p.pop.teams.len();

    // The dormant secret: its owner reads it only in the first 5 % of the period.
    let owner = p.service(2, 0);
    let dormant_team = p.pop.principals[owner].team;
    let ssm = p.pop.secrets[p.pop.app_secret(owner, 0)].ssm;
    p.pop.secrets.push(Secret {
        ssm,
        team: dormant_team,
        team_name: p.pop.teams[dormant_team].clone(),
        env: 0,
        scope: "shared".into(),
        name: "legacy-ftp-password".into(),
    });
    let dormant = p.pop.secrets.len() - 1;
    let cutoff = p.at(0.05);
    let first = p.pop.principals[owner].sets[0].clone();
    let mut with = first.secrets.clone();
    with.push(dormant);
    let weights = vec![1.0; with.len()];
    p.pop.principals[owner].sets = vec![
        SecretSet::new(first.from, first.team, with, &weights),
        SecretSet {
            from: cutoff,
            ..first
        },
    ];
    p.history(owner, dormant, &[0.01, 0.03]);
    // The dormant service: active only in the first 1 % of the period.
    let retired = p.service(6, 0);
    p.pop.principals[retired].until = p.at(0.01);
    let own = p.pop.app_secret(retired, 0);
    p.history(retired, own, &[0.002, 0.005, 0.008]);

    // Plain: a service reads another team's production secret.
    let caller = p.service(1, 0);
    let other = (p.pop.principals[caller].team + 1) % teams;
    let target_service = p.pop.service(other, 0).unwrap_or(0);
    let target = p.pop.app_secret(target_service, 0);
    p.plant(0, caller, &[target; 3], p.at(0.62), 3 * MINUTE, |_| ());
    // Plain: a person reads thirty of their team's secrets at three in the morning.
    let night_owl = p.person();
    let team = p.pop.principals[night_owl].team;
    let pool = p.pop.team_secrets[team].clone();
    let thirty: Vec<usize> = (0..30).map(|i| pool[(i * 7) % pool.len()]).collect();
    let t = local_hour_near(
        p.at(0.68),
        p.pop.end,
        p.pop.principals[night_owl].offset_min,
        3,
    );
    p.plant(1, night_owl, &thirty, t, 20_000_000_000, |_| ());
    // Plain: a service walks through forty secrets in five minutes.
    let walker = p.service(2, 0);
    let n = p.pop.secrets.len() - 1;
    let forty: Vec<usize> = (0..40).map(|i| (i * 37 + 1) % n).collect();
    p.plant(2, walker, &forty, p.at(0.74), 7_500_000_000, |_| ());
    // Plain: fifty denied reads in five minutes.
    let refused = p.person();
    let victim = p.pop.service(0, 0).unwrap_or(0);
    let fifty: Vec<usize> = (0..50).map(|i| p.pop.app_secret(victim, i)).collect();
    p.plant(3, refused, &fifty, p.at(0.80), 6_000_000_000, |c| {
        c.outcome = Outcome::Denied;
    });
    // Plain: a staging service reads its team's production secret.
    let staging = p.service(3, 1);
    let team = p.pop.principals[staging].team;
    let prod = p.pop.service(team, 0).unwrap_or(0);
    let prod_secret = p.pop.app_secret(prod, 0);
    p.plant(
        4,
        staging,
        &[prod_secret; 5],
        p.at(0.86),
        6 * MINUTE,
        |_| (),
    );
    // Plain: the dormant secret is read again.
    let reader = p.person();
    let t = local_hour_near(
        p.at(0.93),
        p.pop.end,
        p.pop.principals[reader].offset_min,
        10,
    );
    p.plant(5, reader, &[dormant], t, MINUTE, |_| ());

    // Hard: a person reads one secret of another team, once, in business hours.
    let curious = p.person();
    let other = (p.pop.principals[curious].team + 1) % teams;
    let there = p.pop.service(other, 0).unwrap_or(0);
    let secret = p.pop.app_secret(there, 3);
    let t = local_hour_near(
        p.at(0.66),
        p.pop.end,
        p.pop.principals[curious].offset_min,
        11,
    );
    p.plant(6, curious, &[secret], t, MINUTE, |_| ());
    // Hard: a service reads its own secrets from an external network.
    let moved = p.service(4, 0);
    let own: Vec<usize> = (0..4).map(|k| p.pop.app_secret(moved, k)).collect();
    p.plant(7, moved, &own, p.at(0.71), 10 * MINUTE, |c| {
        c.ip = "198.51.100.23".into();
    });
    // Hard: a service account reads its own secrets with curl.
    let scripted = p.service(5, 0);
    let own: Vec<usize> = (0..4).map(|k| p.pop.app_secret(scripted, k)).collect();
    p.plant(8, scripted, &own, p.at(0.77), 4 * MINUTE, |c| {
        c.agent = Agent {
            client: Client::Curl,
            version: 8,
        };
    });
    // Hard: the dormant service is back at night: 02:00 UTC of the day near the end.
    let near = p.at(0.985);
    let day = 24 * NANOS_PER_HOUR;
    let night = near - near.rem_euclid(day) + 2 * NANOS_PER_HOUR;
    let night = if night > near { night - day } else { night };
    let own: Vec<usize> = (0..6).map(|k| p.pop.app_secret(retired, k)).collect();
    p.plant(9, retired, &own, night, 2 * MINUTE, |_| ());
    // Hard: one new secret of another team an hour, for a day.
    let slow = p.service(7, 0);
    let team = p.pop.principals[slow].team;
    let others: Vec<usize> = (0..p.pop.secrets.len())
        .filter(|s| p.pop.secrets[*s].team != team && p.pop.secrets[*s].env == 0)
        .filter(|s| p.pop.secrets[*s].scope != "shared")
        .collect();
    let day: Vec<usize> = (0..24)
        .map(|i| others[(i * 53 + 7) % others.len()])
        .collect();
    p.plant(10, slow, &day, p.at(0.83), NANOS_PER_HOUR, |_| ());

    let mut calls = p.calls;
    calls.sort_by_key(|c| c.time);
    (calls, p.labels)
}

/// The first moment from `near` on (else the last before it) when the local clock (offset in
/// minutes) shows `hour`:00 on a weekday: the plant stays late in the period and inside it.
fn local_hour_near(near: i64, end: i64, offset_min: i32, hour: u32) -> i64 {
    let fits = |t: i64| {
        let local = chrono::DateTime::from_timestamp_nanos(t)
            + chrono::Duration::minutes(i64::from(offset_min));
        local.hour() == hour && local.weekday().num_days_from_monday() < 5 && local.minute() == 0
    };
    let start = near - near.rem_euclid(NANOS_PER_HOUR);
    let half = NANOS_PER_HOUR / 2;
    (0..24 * 14)
        .map(|k| start + k * half)
        .take_while(|t| *t + NANOS_PER_HOUR < end)
        .find(|t| fits(*t))
        .or_else(|| (1..24 * 14).map(|k| start - k * half).find(|t| fits(*t)))
        .unwrap_or(near)
}
