//! Who works at the generated company, which secrets they read and when, and the anomalies.

use chrono::{Datelike, Timelike};

use super::render::identity;
use super::rng::Rng;
use super::{Label, NANOS_PER_HOUR};
use crate::event::SourceKind;
use crate::ingest::timestamp::format_nanos;

const TEAMS: [&str; 8] = [
    "payments",
    "orders",
    "billing",
    "identity",
    "analytics",
    "web",
    "search",
    "platform",
];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const SECRET_NAMES: [&str; 5] = ["db", "api-key", "tls", "queue", "cache"];
const PEOPLE: [&str; 24] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "uma", "victor", "wendy", "xavier",
    "yara", "zoe", "quinn",
];
/// UTC offsets of the people's home time zones, in minutes.
const OFFSETS: [i32; 6] = [0, 60, -300, 330, -480, 540];

/// Detector names of the planted anomalies (DESIGN §8).
pub const KINDS: [&str; 6] = [
    "new-caller-for-secret",
    "off-hours-burst",
    "enumeration",
    "denied-storm",
    "cross-environment",
    "dormant-secret-reactivated",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Human,
    Workload,
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub kind: Kind,
    pub team: usize,
    pub env: usize,
    /// Minutes east of UTC (people only).
    pub offset_min: i32,
    pub on_call: bool,
    /// A batch job that runs between 01:00 and 03:00 UTC.
    pub nightly: bool,
    pub secrets: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub team: usize,
    pub env: usize,
    pub name: String,
}

impl Secret {
    /// `prod/payments/db`
    pub fn path(&self) -> String {
        format!("{}/{}/{}", ENVS[self.env], TEAMS[self.team], self.name)
    }

    pub fn env(&self) -> &'static str {
        ENVS[self.env]
    }

    pub fn team(&self) -> &'static str {
        TEAMS[self.team]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Read,
    List,
    Write,
    Login,
    Denied,
    NotFound,
}

/// One audited request before it is written in a source's format.
#[derive(Debug, Clone)]
pub struct Call {
    pub time: i64,
    pub principal: usize,
    pub secret: usize,
    pub kind: CallKind,
}

pub struct Population {
    pub principals: Vec<Principal>,
    pub secrets: Vec<Secret>,
    /// The secret read only early in the period, then by the dormant-reactivation anomaly.
    dormant: usize,
    /// Until when its owner still reads the dormant secret (set with the anomalies).
    dormant_cutoff: i64,
}

impl Principal {
    /// `team-env-role` for services, the first name for people.
    pub fn env(&self) -> &'static str {
        ENVS[self.env]
    }

    pub fn team(&self) -> &'static str {
        TEAMS[self.team]
    }

    fn weight(&self, time: i64) -> f64 {
        let utc = chrono::DateTime::from_timestamp_nanos(time);
        match self.kind {
            Kind::Workload if self.nightly => {
                if (1..3).contains(&utc.hour()) {
                    12.0
                } else {
                    0.02
                }
            }
            Kind::Workload => 1.0,
            Kind::Human => {
                let local = utc + chrono::Duration::minutes(i64::from(self.offset_min));
                let weekday = local.weekday().num_days_from_monday() < 5;
                let hour = local.hour();
                if weekday && (9..18).contains(&hour) {
                    0.8
                } else if self.on_call {
                    0.02
                } else {
                    0.002
                }
            }
        }
    }
}

impl Population {
    pub fn new(rng: &mut Rng) -> Population {
        let mut secrets = Vec::new();
        for team in 0..TEAMS.len() {
            for env in 0..ENVS.len() {
                for name in SECRET_NAMES {
                    secrets.push(Secret {
                        team,
                        env,
                        name: name.into(),
                    });
                }
            }
        }
        let dormant = secrets.len();
        secrets.push(Secret {
            team: 2,
            env: 0,
            name: "legacy-ftp".into(),
        });
        let of = |team: usize, env: usize| -> Vec<usize> {
            secrets
                .iter()
                .enumerate()
                .filter(|(_, s)| s.team == team && s.env == env && s.name != "legacy-ftp")
                .map(|(i, _)| i)
                .collect()
        };
        let mut principals = Vec::new();
        for (team, team_name) in TEAMS.iter().enumerate() {
            for (env, env_name) in ENVS.iter().enumerate() {
                let own = of(team, env);
                for role in ["api", "worker"] {
                    let k = 1 + rng.below(3) as usize;
                    let start = rng.below(own.len() as u64) as usize;
                    let mine: Vec<usize> = (0..k).map(|i| own[(start + i) % own.len()]).collect();
                    let nightly =
                        role == "worker" && (*team_name == "analytics" || *team_name == "billing");
                    principals.push(Principal {
                        name: format!("{team_name}-{env_name}-{role}"),
                        kind: Kind::Workload,
                        team,
                        env,
                        offset_min: 0,
                        on_call: false,
                        nightly,
                        secrets: mine,
                    });
                }
            }
        }
        for (i, person) in PEOPLE.iter().enumerate() {
            let team = i % TEAMS.len();
            let mut mine = of(team, 1);
            mine.extend(of(team, 2));
            let prod = of(team, 0);
            mine.push(prod[rng.below(prod.len() as u64) as usize]);
            principals.push(Principal {
                name: (*person).into(),
                kind: Kind::Human,
                team,
                env: 0,
                offset_min: OFFSETS[i % OFFSETS.len()],
                on_call: i % 4 == 0,
                nightly: false,
                secrets: mine,
            });
        }
        Population {
            principals,
            secrets,
            dormant,
            dormant_cutoff: i64::MIN,
        }
    }

    /// Relative amount of activity in the hour starting at `time`.
    pub fn hour_weight(&self, time: i64) -> f64 {
        let mid = time + NANOS_PER_HOUR / 2;
        self.principals.iter().map(|p| p.weight(mid)).sum()
    }

    /// One ordinary call in the hour starting at `hour_start`.
    pub fn baseline_call(&self, rng: &mut Rng, hour_start: i64) -> Call {
        let time = hour_start + rng.below(NANOS_PER_HOUR as u64) as i64;
        let weights: Vec<f64> = self.principals.iter().map(|p| p.weight(time)).collect();
        let total: f64 = weights.iter().sum();
        let mut x = rng.unit() * total;
        let mut principal = self.principals.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                principal = i;
                break;
            }
            x -= w;
        }
        let p = &self.principals[principal];
        let roll = rng.unit();
        let (kind, secret) = match p.kind {
            _ if roll < 0.007 => (CallKind::Denied, rng.below(self.dormant as u64) as usize),
            _ if roll < 0.010 => (CallKind::NotFound, *rng.pick(&p.secrets)),
            Kind::Human if roll < 0.04 => (CallKind::List, *rng.pick(&p.secrets)),
            Kind::Human if roll < 0.06 => (CallKind::Write, *rng.pick(&p.secrets)),
            Kind::Human if roll < 0.08 => (CallKind::Login, *rng.pick(&p.secrets)),
            Kind::Workload if roll < 0.02 => (CallKind::Login, *rng.pick(&p.secrets)),
            _ => (CallKind::Read, *rng.pick(&p.secrets)),
        };
        // The dormant secret's owner reads it only in the first days.
        let secret = if p.team == 2
            && p.env == 0
            && p.kind == Kind::Workload
            && time < self.dormant_cutoff
        {
            if rng.chance(0.05) {
                self.dormant
            } else {
                secret
            }
        } else {
            secret
        };
        Call {
            time,
            principal,
            secret,
            kind,
        }
    }

    fn find(&self, name: &str) -> usize {
        self.principals
            .iter()
            .position(|p| p.name == name)
            .expect("generated principal exists")
    }

    fn secret_of(&self, team: &str, env: &str, name: &str) -> usize {
        self.secrets
            .iter()
            .position(|s| s.team() == team && s.env() == env && s.name == name)
            .expect("generated secret exists")
    }

    /// The planted anomalies as calls (sorted by time) and their labels. They fall in the last
    /// 40 % of the period, so that detectors have the history before them as a baseline.
    pub fn anomalies(
        &mut self,
        start: i64,
        end: i64,
        source: SourceKind,
    ) -> (Vec<Call>, Vec<Label>) {
        let span = end - start;
        let at = |fraction: f64| start + (span as f64 * fraction) as i64;
        let minute = 60_000_000_000i64;
        let mut calls = Vec::new();
        let mut labels = Vec::new();
        let mut plant = |calls: &mut Vec<Call>,
                         kind: &str,
                         principal: usize,
                         secrets: &[usize],
                         call_kind: CallKind,
                         t0: i64,
                         step: i64| {
            let mut resources = Vec::new();
            for (i, s) in secrets.iter().enumerate() {
                calls.push(Call {
                    time: t0 + i as i64 * step,
                    principal,
                    secret: *s,
                    kind: call_kind,
                });
                let id = identity(source, &self.principals[principal], &self.secrets[*s]).1;
                if !resources.contains(&id) {
                    resources.push(id);
                }
            }
            let last = t0 + (secrets.len() as i64 - 1).max(0) * step;
            labels.push(Label {
                kind: kind.into(),
                actor_id: identity(
                    source,
                    &self.principals[principal],
                    &self.secrets[secrets[0]],
                )
                .0,
                resources,
                start: format_nanos(t0),
                end: format_nanos(last + 1_000_000_000),
            });
        };
        // A service reads another team's production secret.
        let intruder = self.find("search-prod-api");
        let target = self.secret_of("payments", "prod", "db");
        plant(
            &mut calls,
            KINDS[0],
            intruder,
            &[target; 3],
            CallKind::Read,
            at(0.62),
            3 * minute,
        );
        // A person reads thirty secrets at three in the morning, local time.
        let person = self.find("carol");
        let night = local_hour_near(at(0.68), self.principals[person].offset_min, 3);
        let many: Vec<usize> = (0..30).map(|i| (i * 7) % self.dormant).collect();
        plant(
            &mut calls,
            KINDS[1],
            person,
            &many,
            CallKind::Read,
            night,
            20_000_000_000,
        );
        // A service walks through forty secrets in five minutes.
        let walker = self.find("web-prod-worker");
        let forty: Vec<usize> = (0..40).map(|i| (i * 3 + 1) % self.dormant).collect();
        plant(
            &mut calls,
            KINDS[2],
            walker,
            &forty,
            CallKind::Read,
            at(0.74),
            7_500_000_000,
        );
        // Fifty denied reads in five minutes.
        let denied = self.find("mallory");
        let targets: Vec<usize> = (0..50)
            .map(|i| self.secret_of("payments", "prod", SECRET_NAMES[i % 5]))
            .collect();
        plant(
            &mut calls,
            KINDS[3],
            denied,
            &targets,
            CallKind::Denied,
            at(0.8),
            6_000_000_000,
        );
        // A staging service reads its team's production secret.
        let staging = self.find("orders-staging-api");
        let prod = self.secret_of("orders", "prod", "db");
        plant(
            &mut calls,
            KINDS[4],
            staging,
            &[prod; 5],
            CallKind::Read,
            at(0.86),
            6 * minute,
        );
        // A secret untouched since the first days is read again.
        let reader = self.find("frank");
        let dormant = self.dormant;
        plant(
            &mut calls,
            KINDS[5],
            reader,
            &[dormant],
            CallKind::Read,
            at(0.93),
            minute,
        );
        self.dormant_cutoff = at(0.05);
        // Its owner's reads before the cutoff, so that it was known before it went quiet
        // (not labelled: they are the normal history the reactivation is compared with).
        let owner = self
            .principals
            .iter()
            .position(|p| p.team == 2 && p.env == 0 && p.kind == Kind::Workload)
            .expect("the generated population has a billing prod service");
        for f in [0.01, 0.03] {
            calls.push(Call {
                time: at(f),
                principal: owner,
                secret: dormant,
                kind: CallKind::Read,
            });
        }
        calls.sort_by_key(|c| c.time);
        (calls, labels)
    }
}

/// The last moment at or before `near` when the local clock (offset in minutes) shows `hour`:00
/// on a weekday night.
fn local_hour_near(near: i64, offset_min: i32, hour: u32) -> i64 {
    let mut t = near - near.rem_euclid(NANOS_PER_HOUR);
    for _ in 0..24 * 14 {
        let local = chrono::DateTime::from_timestamp_nanos(t)
            + chrono::Duration::minutes(i64::from(offset_min));
        if local.hour() == hour && local.weekday().num_days_from_monday() < 5 && local.minute() == 0
        {
            return t;
        }
        // Backwards: the anomaly stays inside the period, however short.
        t -= NANOS_PER_HOUR / 2;
    }
    near
}
