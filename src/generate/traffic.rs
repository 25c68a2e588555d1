//! The ordinary traffic of the generated estate: when each principal is active, what it calls,
//! from which address and with which client.

use chrono::{Datelike, Timelike};

use super::model::*;
use super::population::{Agent, Client, Kind, Population, Principal};
use super::rng::{fnv1a, Rng, FNV_BASIS};
use crate::timerange::NANOS_PER_HOUR;

const NANOS_PER_WEEK: i64 = 7 * 24 * NANOS_PER_HOUR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Denied,
    NotFound,
}

/// One audited request before it is written in a source's format.
#[derive(Debug, Clone)]
pub struct Call {
    pub time: i64,
    pub principal: usize,
    pub secret: usize,
    pub op: Op,
    pub outcome: Outcome,
    pub ip: String,
    pub agent: Agent,
}

/// FNV-1a of a name and two numbers: stable per principal, deploy, day.
fn mix(name: &str, a: u64, b: u64) -> u64 {
    let h = fnv1a(FNV_BASIS, name.as_bytes());
    Rng::new(h ^ a.wrapping_mul(0x9E37_79B9) ^ b.rotate_left(32)).next_u64()
}

impl Principal {
    /// Relative activity in the hour around `t`.
    pub fn weight(&self, t: i64, pop: &Population) -> f64 {
        if !self.active(t) {
            return 0.0;
        }
        let utc = chrono::DateTime::from_timestamp_nanos(t);
        match self.kind {
            Kind::Workload if self.nightly => {
                if (1..3).contains(&utc.hour()) {
                    12.0 * self.rate
                } else {
                    0.02 * self.rate
                }
            }
            Kind::Workload => {
                let env = [1.0, 0.3, 0.2][self.env];
                let day = if (8..20).contains(&utc.hour()) {
                    1.0
                } else {
                    0.6
                };
                self.rate * env * day
            }
            Kind::Human => {
                let local = utc + chrono::Duration::minutes(i64::from(self.offset_min));
                let workday = local.weekday().num_days_from_monday() < 5;
                let h = local.hour();
                let w: f64 = match (workday, h) {
                    (true, 9..=11 | 14..=17) => 1.0,
                    (true, 12 | 13) => 0.5,
                    (true, 8 | 18) => 0.3,
                    (true, 19..=21) => 0.03,
                    (false, 10..=18) => 0.01,
                    _ => 0.003,
                };
                let w = if self.on_call_in(t, pop) {
                    w.max(0.06)
                } else {
                    w
                };
                w * self.rate * PERSON_RATE
            }
        }
    }

    /// In the on-call rotation, and it is this person's week.
    fn on_call_in(&self, t: i64, pop: &Population) -> bool {
        match self.on_call {
            Some(k) if pop.rotation > 0 => {
                ((t - pop.start) / NANOS_PER_WEEK) as usize % pop.rotation == k
            }
            _ => false,
        }
    }

    /// The caller's address at `t`: a service's replica on its current nodes, a person on the
    /// VPN or in the office (a new address every day).
    pub fn address(&self, t: i64, rng: &mut Rng, pop: &Population) -> String {
        match self.kind {
            Kind::Workload => {
                let deploy = self.deploys.partition_point(|d| *d <= t) as u64;
                let replica = rng.below(2);
                let node = mix(&self.name, deploy, replica);
                format!(
                    "10.{}.{}.{}",
                    [20, 30, 40][self.env],
                    node % NODE_SUBNETS,
                    2 + (node >> 8) % 250
                )
            }
            Kind::Human => {
                let day = ((t - pop.start) / (24 * NANOS_PER_HOUR)) as u64;
                let h = mix(&self.name, day, 0);
                if h % 10 < 3 {
                    format!("172.16.{}.{}", 1 + h % 2, 10 + (h >> 8) % 200)
                } else {
                    format!("100.64.{}.{}", (h >> 4) % 4, 2 + (h >> 16) % 250)
                }
            }
        }
    }

    /// The client at `t`: a service's current one, one of a person's.
    pub fn agent(&self, t: i64, rng: &mut Rng) -> Agent {
        match self.kind {
            Kind::Workload => {
                let i = self.agents.partition_point(|a| a.0 <= t);
                self.agents[i.saturating_sub(1)].1
            }
            Kind::Human => {
                let roll = rng.unit();
                let pick = |c: Client| self.agents.iter().find(|a| a.1.client == c);
                let chosen = match roll {
                    r if r < 0.1 => pick(Client::Terraform),
                    r if r < 0.3 => pick(Client::Browser),
                    _ => None,
                };
                chosen.unwrap_or(&self.agents[0]).1
            }
        }
    }
}

fn draw_op(rng: &mut Rng, mix: &[(Op, f64)]) -> Op {
    let mut x = rng.unit();
    for (op, share) in mix {
        if x < *share {
            return *op;
        }
        x -= share;
    }
    Op::Read
}

impl Population {
    /// Cumulative activity of the principals in the hour starting at `hour_start`.
    pub fn hour_weights(&self, hour_start: i64) -> Vec<f64> {
        let mid = hour_start + NANOS_PER_HOUR / 2;
        let mut acc = 0.0;
        self.principals
            .iter()
            .map(|p| {
                acc += p.weight(mid, self);
                acc
            })
            .collect()
    }

    /// One ordinary call in the hour starting at `hour_start`, by a principal drawn from the
    /// cumulative weights of that hour.
    pub fn baseline_call(&self, rng: &mut Rng, hour_start: i64, cumulative: &[f64]) -> Call {
        let time = hour_start + rng.below(NANOS_PER_HOUR as u64) as i64;
        // Weights are per hour: a principal that starts or stops within it calls only while it
        // exists.
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = rng.unit() * total;
        let principal = cumulative
            .partition_point(|c| *c <= x)
            .min(self.principals.len() - 1);
        let p = &self.principals[principal];
        let time = time.clamp(p.from, p.until - 1);
        let (ops, denied): (&[(Op, f64)], f64) = match p.kind {
            Kind::Workload => (&SERVICE_OPS, DENIED_SERVICE),
            Kind::Human => (&PERSON_OPS, DENIED_PERSON),
        };
        let roll = rng.unit();
        let (op, outcome, secret) = if roll < denied {
            // A secret of the caller's team outside what it may read (its set), if one is left.
            let set = p.set_at(time);
            let team = &self.team_secrets[set.team];
            let mut s = *rng.pick(team);
            for _ in 0..8 {
                if !set.secrets.contains(&s) {
                    break;
                }
                s = *rng.pick(team);
            }
            (Op::Read, Outcome::Denied, s)
        } else if roll < denied + NOT_FOUND {
            (Op::Read, Outcome::NotFound, p.set_at(time).sample(rng))
        } else {
            (draw_op(rng, ops), Outcome::Ok, p.set_at(time).sample(rng))
        };
        Call {
            time,
            principal,
            secret,
            op,
            outcome,
            ip: p.address(time, rng, self),
            agent: p.agent(time, rng),
        }
    }
}
