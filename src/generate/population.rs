//! Who works at the generated estate, which secrets each principal reads, and how that changes
//! over the period (see `model` for the numbers).

use super::model::*;
use super::rng::Rng;

use crate::timerange::NANOS_PER_DAY;

const TEAM_WORDS: [&str; 20] = [
    "payments",
    "orders",
    "billing",
    "identity",
    "analytics",
    "web",
    "search",
    "platform",
    "checkout",
    "ledger",
    "fraud",
    "catalog",
    "shipping",
    "pricing",
    "messaging",
    "mobile",
    "partners",
    "risk",
    "support",
    "data",
];
const APP_WORDS: [&str; APPS_PER_TEAM] = [
    "api",
    "worker",
    "gateway",
    "scheduler",
    "sync",
    "reports",
    "notifier",
    "importer",
    "exporter",
    "admin",
];
const PEOPLE: [&str; 50] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "uma", "victor", "wendy", "xavier",
    "yara", "zoe", "quinn", "aaron", "bella", "chen", "dmitri", "elena", "farah", "goran", "hana",
    "igor", "jonas", "kiri", "lena", "mateo", "nadia", "omar", "priya", "rosa", "sven", "tariq",
    "ulla", "vikram", "wei", "ximena", "yusuf", "zara", "kofi",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Human,
    Workload,
}

/// The client a principal calls with; a source gives it its own user-agent string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Go,
    Python,
    Java,
    Node,
    VaultAgent,
    Cli,
    Browser,
    Terraform,
    /// Scripting tools: only the planted anomalies use them.
    Curl,
    PythonRequests,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent {
    pub client: Client,
    pub version: u32,
}

/// The secrets a principal reads from `from` on, with their popularity (cumulative weights).
#[derive(Debug, Clone)]
pub struct SecretSet {
    pub from: i64,
    /// The team whose policies the principal has in this period (refusals come from its secrets).
    pub team: usize,
    pub secrets: Vec<usize>,
    pub(super) cumulative: Vec<f64>,
}

impl SecretSet {
    pub fn new(from: i64, team: usize, secrets: Vec<usize>, weights: &[f64]) -> SecretSet {
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        SecretSet {
            from,
            team,
            secrets,
            cumulative,
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.unit() * total;
        let i = self.cumulative.partition_point(|c| *c <= x);
        self.secrets[i.min(self.secrets.len() - 1)]
    }
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub kind: Kind,
    /// Home team at the start of the period.
    pub team: usize,
    /// A service's environment (its app's); 0 for people.
    pub env: usize,
    /// Minutes east of UTC (people only).
    pub offset_min: i32,
    /// Position in the weekly on-call rotation (people only).
    pub on_call: Option<usize>,
    /// A batch job that runs between 01:00 and 03:00 UTC.
    pub nightly: bool,
    /// Activity relative to an average principal of its kind.
    pub rate: f64,
    /// Active in `[from, until)`.
    pub from: i64,
    pub until: i64,
    /// Secret sets by time, sorted by `from`; the first starts with the period.
    pub sets: Vec<SecretSet>,
    /// Services: times of deploys (each moves the replicas to new nodes).
    pub deploys: Vec<i64>,
    /// Services: the client from each time on; people: the clients they use, all at once.
    pub agents: Vec<(i64, Agent)>,
}

impl Principal {
    pub fn env(&self) -> &'static str {
        ENVS[self.env]
    }

    pub fn active(&self, t: i64) -> bool {
        self.from <= t && t < self.until
    }

    pub fn set_at(&self, t: i64) -> &SecretSet {
        let i = self.sets.partition_point(|s| s.from <= t);
        &self.sets[i.saturating_sub(1)]
    }
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub team: usize,
    pub team_name: String,
    pub env: usize,
    /// The app that owns it, or `shared`.
    pub scope: String,
    pub name: String,
    /// CloudTrail: kept in SSM Parameter Store instead of Secrets Manager (a team's choice).
    pub ssm: bool,
}

impl Secret {
    /// `prod/payments/api/db-password`
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.env(),
            self.team_name,
            self.scope,
            self.name
        )
    }

    /// `payments-api-db-password`: for stores whose names are flat (GCP, Azure).
    pub fn flat_name(&self) -> String {
        format!("{}-{}-{}", self.team_name, self.scope, self.name)
    }

    pub fn env(&self) -> &'static str {
        ENVS[self.env]
    }
}

/// What changes over the period, for the README and the tests.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub joiner: Option<usize>,
    pub leaver: Option<usize>,
    pub new_services: Vec<usize>,
}

pub struct Population {
    pub teams: Vec<String>,
    pub principals: Vec<Principal>,
    pub secrets: Vec<Secret>,
    /// Secrets of each team (app and shared).
    pub team_secrets: Vec<Vec<usize>>,
    pub changes: Changes,
    pub start: i64,
    pub end: i64,
    /// The rotation's length: people with `on_call`.
    pub rotation: usize,
}

pub fn team_name(i: usize) -> String {
    let word = TEAM_WORDS[i % TEAM_WORDS.len()];
    match i / TEAM_WORDS.len() {
        0 => word.to_owned(),
        k => format!("{word}{}", k + 1),
    }
}

fn person_name(i: usize) -> String {
    let word = PEOPLE[i % PEOPLE.len()];
    match i / PEOPLE.len() {
        0 => word.to_owned(),
        k => format!("{word}{}", k + 1),
    }
}

fn between(rng: &mut Rng, (lo, hi): (u64, u64)) -> u64 {
    lo + rng.below(hi - lo + 1)
}

/// `k` distinct items of `from`, in random order.
fn choose(rng: &mut Rng, from: &[usize], k: usize) -> Vec<usize> {
    let mut pool = from.to_vec();
    let k = k.min(pool.len());
    for i in 0..k {
        let j = i + rng.below((pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

fn zipf_weights(n: usize) -> Vec<f64> {
    (1..=n).map(|r| (r as f64).powf(-ZIPF_EXPONENT)).collect()
}

/// A person's set from the secrets of `teams`: Zipf popularity over a random order.
fn person_set(rng: &mut Rng, team_secrets: &[Vec<usize>], teams: &[usize], from: i64) -> SecretSet {
    let pool: Vec<usize> = teams
        .iter()
        .flat_map(|t| team_secrets[*t].iter().copied())
        .collect();
    let k = between(rng, PERSON_SET) as usize;
    let secrets = choose(rng, &pool, k);
    let weights = zipf_weights(secrets.len());
    SecretSet::new(from, teams[0], secrets, &weights)
}

impl Population {
    /// The estate of `principals` principals over `[start, end)`.
    pub fn new(rng: &mut Rng, principals: usize, start: i64, end: i64) -> Population {
        let principals = principals.max(MIN_PRINCIPALS);
        let people = principals / (SERVICES_PER_PERSON + 1);
        let services = principals - people;
        let n_teams = services.div_ceil(APPS_PER_TEAM);
        let span = end - start;
        let at = |f: f64| start + (span as f64 * f) as i64;
        let teams: Vec<String> = (0..n_teams).map(team_name).collect();
        let team_ssm: Vec<bool> = (0..n_teams).map(|_| rng.chance(SSM_TEAMS)).collect();

        // Secrets: 8 per app that exists, 20 shared per team.
        let mut secrets = Vec::new();
        let mut team_secrets = vec![Vec::new(); n_teams];
        let mut app_secrets = Vec::new();
        for s in 0..services {
            let (team, app) = (s / APPS_PER_TEAM, s % APPS_PER_TEAM);
            let mine: Vec<usize> = APP_SECRETS
                .iter()
                .map(|name| {
                    secrets.push(Secret {
                        team,
                        team_name: teams[team].clone(),
                        env: APP_ENVS[app],
                        scope: APP_WORDS[app].to_owned(),
                        name: (*name).to_owned(),
                        ssm: team_ssm[team],
                    });
                    team_secrets[team].push(secrets.len() - 1);
                    secrets.len() - 1
                })
                .collect();
            app_secrets.push(mine);
        }
        let mut shared = vec![Vec::new(); n_teams];
        for (team, name) in teams.iter().enumerate() {
            for (k, s) in SHARED_SECRETS.iter().enumerate() {
                secrets.push(Secret {
                    team,
                    team_name: name.clone(),
                    env: SHARED_ENVS[k],
                    scope: "shared".into(),
                    name: (*s).to_owned(),
                    ssm: team_ssm[team],
                });
                team_secrets[team].push(secrets.len() - 1);
                shared[team].push(secrets.len() - 1);
            }
        }
        let shared_in = |team: usize, env: usize| -> Vec<usize> {
            shared[team]
                .iter()
                .copied()
                .filter(|s| secrets[*s].env == env)
                .collect()
        };

        // Client families per team (its services share a stack), and the teams that upgrade.
        let stacks = [
            Client::Go,
            Client::Python,
            Client::Java,
            Client::Node,
            Client::VaultAgent,
        ];
        let team_client: Vec<Client> = (0..n_teams).map(|_| *rng.pick(&stacks)).collect();
        let team_version: Vec<u32> = (0..n_teams).map(|_| 10 + rng.below(20) as u32).collect();
        let team_upgrade: Vec<Option<i64>> = (0..n_teams)
            .map(|_| {
                rng.chance(CLIENT_UPGRADE_TEAMS)
                    .then(|| at(0.1 + 0.8 * rng.unit()))
            })
            .collect();
        // One Python team moves to the Go client: a new client family for all its services.
        let migrating = team_client.iter().position(|c| *c == Client::Python);
        let migration_at = at(0.45);

        let mut list = Vec::with_capacity(principals);
        for (s, mine) in app_secrets.iter().enumerate() {
            let (team, app) = (s / APPS_PER_TEAM, s % APPS_PER_TEAM);
            let env = APP_ENVS[app];
            let mut set = mine.clone();
            let own = shared_in(team, env);
            let k = between(rng, SERVICE_SHARED) as usize;
            set.extend(choose(rng, &own, k));
            if n_teams > 1 && rng.chance(CROSS_TEAM_SERVICES) {
                let other = (team + 1 + rng.below(n_teams as u64 - 1) as usize) % n_teams;
                let theirs = shared_in(other, env);
                let k = between(rng, (1, 2)) as usize;
                set.extend(choose(rng, &theirs, k));
            }
            // App secrets are read more often than the shared ones.
            let weights: Vec<f64> = set
                .iter()
                .map(|x| {
                    if secrets[*x].scope == "shared" {
                        0.4
                    } else {
                        1.0
                    }
                })
                .collect();
            let mut deploys = Vec::new();
            let mut t = start + rng.below(DEPLOY_EVERY_DAYS.1 * NANOS_PER_DAY as u64) as i64;
            while t < end {
                deploys.push(t);
                t += between(rng, DEPLOY_EVERY_DAYS) as i64 * NANOS_PER_DAY
                    + rng.below(NANOS_PER_DAY as u64) as i64;
            }
            let base = Agent {
                client: team_client[team],
                version: team_version[team],
            };
            let mut agents = vec![(start, base)];
            // (A migrating team's upgrade is the migration.)
            if let Some(u) = team_upgrade[team].filter(|_| Some(team) != migrating) {
                let jitter = rng.below(2 * NANOS_PER_DAY as u64) as i64;
                agents.push((
                    u + jitter,
                    Agent {
                        version: base.version + 1,
                        ..base
                    },
                ));
            }
            if Some(team) == migrating {
                let jitter = rng.below(NANOS_PER_DAY as u64) as i64;
                agents.push((
                    migration_at + jitter,
                    Agent {
                        client: Client::Go,
                        version: 20,
                    },
                ));
                agents.sort_by_key(|a| a.0);
            }
            list.push(Principal {
                name: format!("{}-{}-{}", teams[team], APP_WORDS[app], ENVS[env]),
                kind: Kind::Workload,
                team,
                env,
                offset_min: 0,
                on_call: None,
                nightly: rng.chance(NIGHTLY_SERVICES),
                // Log-uniform between a third and three times the average.
                rate: (3f64).powf(2.0 * rng.unit() - 1.0),
                from: start,
                until: end,
                sets: vec![SecretSet::new(start, team, set, &weights)],
                deploys,
                agents,
            });
        }
        let mut rotation = 0;
        for i in 0..people {
            let team = i % n_teams;
            let mut teams_of = vec![team];
            if n_teams > 1 && rng.chance(MULTI_TEAM_PEOPLE) {
                let extra = between(rng, EXTRA_TEAMS).min(n_teams as u64 - 1);
                let others: Vec<usize> = (0..n_teams).filter(|t| *t != team).collect();
                teams_of.extend(choose(rng, &others, extra as usize));
            }
            let on_call = rng.chance(ON_CALL_PEOPLE).then(|| {
                rotation += 1;
                rotation - 1
            });
            let mut agents = vec![(
                start,
                Agent {
                    client: Client::Cli,
                    version: 14 + rng.below(3) as u32,
                },
            )];
            // Some also use a browser and Terraform: (client, share, first version, versions).
            for (client, share, first, span) in [
                (Client::Browser, 0.6, 120, 5),
                (Client::Terraform, 0.3, 5, 3),
            ] {
                if rng.chance(share) {
                    let version = first + rng.below(span) as u32;
                    agents.push((start, Agent { client, version }));
                }
            }
            list.push(Principal {
                name: person_name(i),
                kind: Kind::Human,
                team,
                env: 0,
                offset_min: OFFSETS[rng.below(OFFSETS.len() as u64) as usize],
                on_call,
                nightly: false,
                rate: (2f64).powf(2.0 * rng.unit() - 1.0),
                from: start,
                until: end,
                sets: vec![person_set(rng, &team_secrets, &teams_of, start)],
                deploys: Vec::new(),
                agents,
            });
        }

        let mut changes = Changes::default();
        // New services: the last apps of the first teams appear during the period.
        let n_new = ((services as f64 * NEW_SERVICES).round() as usize).max(1);
        for k in 0..n_new {
            let s = (k * APPS_PER_TEAM + APPS_PER_TEAM - 1).min(services - 1);
            list[s].from = at(0.3 + 0.5 * rng.unit());
            if !changes.new_services.contains(&s) {
                changes.new_services.push(s);
            }
        }
        // The reorganisation: the people of team 1 join team 2.
        if n_teams >= 3 {
            let when = at(REORG_AT);
            for p in list.iter_mut().skip(services) {
                if p.team == 1 {
                    let set = person_set(rng, &team_secrets, &[2], when);
                    p.sets.push(set);
                }
            }
        }
        // The last person joins during the period, the one before leaves.
        let joiner = list.len() - 1;
        list[joiner].from = at(JOINS_AT);
        list[joiner].sets[0].from = at(JOINS_AT);
        let leaver = list.len() - 2;
        list[leaver].until = at(LEAVES_AT);
        changes.joiner = Some(joiner);
        changes.leaver = Some(leaver);

        Population {
            teams,
            principals: list,
            secrets,
            team_secrets,
            changes,
            start,
            end,
            rotation,
        }
    }

    /// Index of the service `team-app-env` whose app has index `app` in `team`.
    pub fn service(&self, team: usize, app: usize) -> Option<usize> {
        let i = team * APPS_PER_TEAM + app;
        (i < self.principals.len() && self.principals[i].kind == Kind::Workload).then_some(i)
    }

    pub fn app_secret(&self, service: usize, k: usize) -> usize {
        self.principals[service].sets[0].secrets[k % APP_SECRETS.len()]
    }

    pub fn is_changed(&self, i: usize) -> bool {
        let c = &self.changes;
        c.joiner == Some(i)
            || c.leaver == Some(i)
            || c.new_services.contains(&i)
            || self.principals[i].sets.len() > 1
    }
}
