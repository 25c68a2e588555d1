//! The numbers of the generated estate, in one place: the README's description of the model and
//! the test that checks the generated statistics both read them from here.
//!
//! The model follows an ordinary estate rather than what the detectors like: long-tail secret
//! sets (rarely used secrets are read for the first time weeks into the period), people in eight
//! time zones with cross-team duties and an on-call rotation, services that move to new node
//! subnets on every deploy and upgrade their clients, new services, a team reorganisation, a
//! person joining and one leaving.

/// Services per person: the default 250 principals are 200 services and 50 people.
pub const SERVICES_PER_PERSON: usize = 4;
/// Fewer principals leave too few teams and people for the planted anomalies.
pub const MIN_PRINCIPALS: usize = 40;
/// One service per app; ten apps make a team.
pub const APPS_PER_TEAM: usize = 10;
/// The environment of the app at each index of a team (0 prod, 1 staging, 2 dev).
pub const APP_ENVS: [usize; APPS_PER_TEAM] = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2];
pub const ENVS: [&str; 3] = ["prod", "staging", "dev"];
/// Each app owns these secrets (8 per app).
pub const APP_SECRETS: [&str; 8] = [
    "db-password",
    "api-key",
    "tls-key",
    "queue-credentials",
    "cache-password",
    "signing-key",
    "oauth-client-secret",
    "smtp-password",
];
/// Secrets shared by a team's apps and people (20 per team): twelve in prod, four each in
/// staging and dev.
pub const SHARED_SECRETS: [&str; 20] = [
    "ci-token",
    "registry-password",
    "slack-webhook",
    "pagerduty-key",
    "datadog-api-key",
    "sentry-dsn",
    "github-app-key",
    "terraform-token",
    "backup-key",
    "ldap-bind",
    "kafka-credentials",
    "vendor-api-key",
    "ci-token",
    "registry-password",
    "backup-key",
    "vendor-api-key",
    "ci-token",
    "registry-password",
    "backup-key",
    "vendor-api-key",
];
pub const SHARED_ENVS: [usize; 20] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
/// A service reads its app's secrets and this many of its team's shared ones (same environment).
pub const SERVICE_SHARED: (u64, u64) = (1, 4);
/// Share of services that also read 1–2 shared secrets of another team (same environment).
pub const CROSS_TEAM_SERVICES: f64 = 0.10;
/// A person's set: this many secrets of their team(s), any environment.
pub const PERSON_SET: (u64, u64) = (10, 60);
/// Popularity of the secrets within a person's set: Zipf with this exponent over a random order.
pub const ZIPF_EXPONENT: f64 = 0.9;
/// Share of people with duties in 1–4 extra teams (their set is drawn from all of them).
pub const MULTI_TEAM_PEOPLE: f64 = 0.12;
pub const EXTRA_TEAMS: (u64, u64) = (1, 4);
/// Share of people in the weekly on-call rotation (read at night and on weekends in their week).
pub const ON_CALL_PEOPLE: f64 = 0.10;
/// Home time zones of the people, minutes east of UTC (UTC−8 to UTC+5).
pub const OFFSETS: [i32; 8] = [-480, -420, -360, -300, -240, 0, 60, 300];
/// Share of services that are nightly batch jobs (01:00–03:00 UTC).
pub const NIGHTLY_SERVICES: f64 = 0.10;
/// Share of services that appear during the period (between 30 % and 80 % of it).
pub const NEW_SERVICES: f64 = 0.03;
/// Days between two deploys of a service, uniform; every deploy lands its two replicas on
/// random nodes, whose pod subnets are /24s of the environment's cluster.
pub const DEPLOY_EVERY_DAYS: (u64, u64) = (3, 14);
pub const NODE_SUBNETS: u64 = 32;
/// Share of teams that roll out a new client version to all their services once in the period.
pub const CLIENT_UPGRADE_TEAMS: f64 = 0.6;
/// When (fraction of the period) the reorganisation moves the people of one team to another.
pub const REORG_AT: f64 = 0.55;
/// When the new person starts and the leaving one stops.
pub const JOINS_AT: f64 = 0.40;
pub const LEAVES_AT: f64 = 0.50;
/// A person's weight in a business hour, times their own rate (a service's hour weighs its
/// rate, times 0.3 or 0.2 outside prod and 0.6 at night): people make about 12 % of the calls.
pub const PERSON_RATE: f64 = 1.5;
/// CloudTrail: share of teams that keep their secrets in SSM Parameter Store.
pub const SSM_TEAMS: f64 = 0.25;

/// The operation of a call, before a source gives it its own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Read,
    /// Metadata or policy read (Vault `sys/policies`, `DescribeSecret`, `GetSecret`, ...).
    MetaRead,
    List,
    Update,
    Patch,
    Delete,
    Login,
}

/// Shares of calls per operation, services. Vault names them: read and meta-read `read`,
/// update and login `update`. Overall on the default population (services make about 89 % of
/// the calls) that gives Vault read 83 %, update 11 %, list 4 %, patch and delete 1–2 %.
pub const SERVICE_OPS: [(Op, f64); 7] = [
    (Op::Read, 0.855),
    (Op::MetaRead, 0.0),
    (Op::List, 0.03),
    (Op::Update, 0.035),
    (Op::Patch, 0.004),
    (Op::Delete, 0.001),
    (Op::Login, 0.075),
];
/// Shares of calls per operation, people.
pub const PERSON_OPS: [(Op, f64); 7] = [
    (Op::Read, 0.62),
    (Op::MetaRead, 0.06),
    (Op::List, 0.10),
    (Op::Update, 0.11),
    (Op::Patch, 0.04),
    (Op::Delete, 0.02),
    (Op::Login, 0.05),
];
/// Share of calls refused (a read of a team secret outside the caller's set).
pub const DENIED_PERSON: f64 = 0.02;
pub const DENIED_SERVICE: f64 = 0.003;
/// Share of reads of a version or name that does not exist.
pub const NOT_FOUND: f64 = 0.005;
