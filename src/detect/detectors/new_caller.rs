use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::peers::Peers;
use crate::detect::rows::typed;
use crate::detect::{DetectorSettings, Param};

/// VG001 new-caller-for-secret.
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 30.0,
    doc: "history compared with the window",
};
const MIN_HISTORY_DAYS: Param = Param {
    name: "min_history_days",
    default: 14.0,
    doc: "history a secret needs before novelty counts",
};
const MAX_CALLERS: Param = Param {
    name: "max_callers",
    default: 60.0,
    doc: "secrets with more callers are too noisy: low severity",
};
const MIN_SCORE: Param = Param {
    name: "min_score",
    default: 0.9,
    doc: "medium from this score (P of no new outside caller in a day), low below",
};
const MIN_SHARED_SECRETS: Param = Param {
    name: "min_shared_secrets",
    default: 1.0,
    doc: "secrets two principals both read in the lookback to be peers",
};
const MIN_PEER_CALLERS: Param = Param {
    name: "min_peer_callers",
    default: 1.0,
    doc: "peers among the secret's callers that make a first read ordinary (info)",
};
const MIN_PRINCIPAL_DAYS: Param = Param {
    name: "min_principal_days",
    default: 7.0,
    doc: "history a principal needs before its own novelty counts (info before)",
};
const MAX_GROUP_SHARE_PCT: Param = Param {
                name: "max_group_share_pct",
                default: 25.0,
                doc: "a derived peer group larger than this share of the principals (and 5) is too broad to make peers",
            };

pub struct NewCaller;

const DOC: &str = "\
What: a principal successfully reads a secret it has not read in the lookback (default 30 days)
and that none of its peers read either.
Why: stolen credentials and over-broad policies show up as a known identity touching a secret it
never needed; the Elastic \"First Time Seen GetSecretValue\" rule and Microsoft's new-entity model
are the anchors. A person's first read of a secret their teammates read every day is not one of
those: novelty is judged against the principal's peers, as UEBA products do.
Peers: principals that read at least min_shared_secrets of the same secrets as it in the lookback
(its co-readers, from the store), and the members of its peer groups: those the logs declare
(Vault policies and auth role, Kubernetes namespace and groups, IAM path and account, GCP project,
Azure resource group; see the principals view) holding at most max_group_share_pct of the
principals (or 5), and every [[peer_groups]] it matches. A workload's peers are workloads, so a
service reading what only people read is not explained by them. A first read of a secret that
min_peer_callers or more peers read is info (reported, not alerted) and names them.
Example: role analytics-etl reads prod/payments/db for the first time at 03:10; none of its 6 peers
ever read it.
Scoring (no peer read it): how often the secret gains callers from outside the principal's peers:
lambda = such new callers per day of its history; score = P(no such caller in a day) =
Poisson(lambda) at 0 (statrs). score >= 0.97 is high, >= min_score (0.9) medium, below low. A
secret with more than max_callers callers is noisy and gives low.
Cold start: quiet (and says so) while the store holds less than min_history_days before the
window; a secret first read less than min_history_days ago is new itself and its callers are not
reported; a principal first seen less than min_principal_days ago has too little history of its
own: its first reads are info.
Tuning: lookback_days, min_history_days, max_callers, min_shared_secrets, min_peer_callers,
min_principal_days; allowlist deploy roles by actor.
False positives: re-created roles with new ids, secrets rotated into a new name, a team that
reorganises (its people's new peers read nothing of theirs yet).";

/// The window's (principal, secret) read pairs.
const WINDOW: &str = "
SELECT actor_id, resource_id, max(actor_name) AS actor_name, max(actor_type) AS actor_type,
       min(event_time) AS first_read, max(event_time) AS last_read, count(*) AS reads
FROM secret_reads
WHERE outcome = 'success' AND actor_id IS NOT NULL AND resource_id IS NOT NULL
  AND event_time >= $from AND event_time < $to
GROUP BY actor_id, resource_id
ORDER BY min(event_time), actor_id, resource_id";

#[async_trait::async_trait]
impl Detector for NewCaller {
    fn code(&self) -> &'static str {
        "VG001"
    }
    fn name(&self) -> &'static str {
        "new-caller-for-secret"
    }
    fn summary(&self) -> &'static str {
        "a principal reads a secret that neither it nor its peers read in the lookback"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Medium
    }
    fn params(&self) -> &'static [Param] {
        &[
            LOOKBACK_DAYS,
            MIN_HISTORY_DAYS,
            MAX_CALLERS,
            MIN_SCORE,
            MIN_SHARED_SECRETS,
            MIN_PEER_CALLERS,
            MIN_PRINCIPAL_DAYS,
            MAX_GROUP_SHARE_PCT,
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let lookback = s.days_nanos(LOOKBACK_DAYS);
        let store_days = store_history_days(d).await?;
        if store_days < s.get(MIN_HISTORY_DAYS) {
            d.note(format!(
                "VG001 quiet: the store holds {store_days:.1} days before the window; novelty needs {} (min_history_days)",
                s.get(MIN_HISTORY_DAYS)
            ));
            return Ok(Vec::new());
        }
        let history = read_pairs(d, lookback).await?;
        let window = rows::batches(d.ctx, WINDOW, bounds(d, lookback), d.limits).await?;
        let min_shared = s.get(MIN_SHARED_SECRETS).max(1.0) as usize;
        let max_group_share = s.get(MAX_GROUP_SHARE_PCT) / 100.0;
        // Callers first seen within a day of the secret itself were there from the start: not "new".
        let settle = DAY;
        // The qualifying pairs, grouped by principal in order of their first new read: one
        // principal reading thirty secrets it never read is one story (and one alert), not
        // thirty; an off-hours burst or an enumeration made thirty findings here before. Reads
        // its peers explain are a second, info finding, so the alert lists only the unusual ones.
        let mut groups: Vec<((String, bool), Vec<NewPair>)> = Vec::new();
        // The allowlist applies to each secret before grouping: an accepted pair must neither
        // appear in the alert nor set its severity.
        let allow = crate::detect::allowlist::Allowlist::from_config(d.config);
        let now = crate::clock::now_nanos().unwrap_or(i64::MAX);
        let mut peers_of: std::collections::HashMap<String, Peers> = Default::default();
        for batch in &window {
            let actors = typed::strings(batch, "actor_id")?;
            let resources = typed::strings(batch, "resource_id")?;
            let names = typed::strings(batch, "actor_name")?;
            let types = typed::strings(batch, "actor_type")?;
            let firsts = typed::nanos(batch, "first_read")?;
            let lasts = typed::nanos(batch, "last_read")?;
            let reads = typed::ints(batch, "reads")?;
            for i in 0..batch.num_rows() {
                let (Some(actor), Some(resource)) = (&actors[i], &resources[i]) else {
                    continue;
                };
                if history.has_read(actor, resource) {
                    continue;
                }
                let peers = peers_of.entry(actor.clone()).or_insert_with(|| {
                    history.peers(actor, types[i].as_deref(), min_shared, max_group_share)
                });
                let Some(seen) = history.callers_of(resource, peers, settle) else {
                    // Nobody read it in the lookback: a new secret, whose first callers are
                    // expected (or one dormant for the whole lookback: VG014's case).
                    continue;
                };
                let days = (d.window.from - seen.first_seen) as f64 / DAY as f64;
                // A secret first read less than min_history_days ago is new itself: its first
                // callers are expected, not news.
                if days < s.get(MIN_HISTORY_DAYS) {
                    continue;
                }
                let callers = seen.callers as f64;
                let peer_callers = seen.peer_callers as f64;
                let lambda = seen.outside_new_callers as f64 / days.max(1.0);
                let score = no_new_caller_probability(lambda);
                let actor_days = history
                    .first_seen(actor)
                    .map(|t| (d.window.from - t) as f64 / DAY as f64)
                    .unwrap_or(0.0);
                let why = if actor_days < s.get(MIN_PRINCIPAL_DAYS) {
                    Why::YoungPrincipal(actor_days)
                } else if peer_callers >= s.get(MIN_PEER_CALLERS).max(1.0) {
                    Why::PeersRead
                } else {
                    Why::NoPeer
                };
                let severity = match why {
                    Why::YoungPrincipal(_) | Why::PeersRead => Severity::Info,
                    Why::NoPeer if callers > s.get(MAX_CALLERS) => Severity::Low,
                    Why::NoPeer if score >= 0.97 => Severity::High,
                    Why::NoPeer if score >= s.get(MIN_SCORE) => self.default_severity(),
                    Why::NoPeer => Severity::Low,
                };
                let first_read = firsts[i].map(rfc3339).unwrap_or_default();
                let last_read = lasts[i].map(rfc3339).unwrap_or_default();
                let alone = finding(
                    self,
                    severity,
                    actor,
                    names[i].as_deref(),
                    vec![resource.clone()],
                    &first_read,
                    &last_read,
                    Some(resource),
                );
                if allow.suppresses(&alone, now) {
                    continue;
                }
                let pair = NewPair {
                    resource: resource.clone(),
                    who: crate::detect::display_name(actor, names[i].as_deref()),
                    actor_name: names[i].clone(),
                    first_read,
                    last_read,
                    reads: reads[i].unwrap_or(0) as f64,
                    callers,
                    peers: peers.len() as f64,
                    peer_groups: peers.groups.clone(),
                    peer_callers,
                    why,
                    lambda,
                    days,
                    score,
                    severity,
                };
                let key = (actor.clone(), severity == Severity::Info);
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, pairs)) => pairs.push(pair),
                    None => groups.push((key, vec![pair])),
                }
            }
        }
        let lookback_days = s.get(LOOKBACK_DAYS);
        Ok(groups
            .into_iter()
            .map(|((actor, _), pairs)| self.grouped(&actor, &pairs, lookback_days))
            .collect())
    }
}

/// P(no caller from outside the principal's peers in a day) when the secret gains such callers
/// at `lambda` a day (a Poisson process): 1 for a secret that never does.
fn no_new_caller_probability(lambda: f64) -> f64 {
    use statrs::distribution::{Discrete, Poisson};
    if lambda <= 0.0 {
        return 1.0;
    }
    Poisson::new(lambda).map(|p| p.pmf(0)).unwrap_or(0.0)
}

/// Why a first read has the severity it has.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Why {
    /// No peer read the secret: novelty, scored by the secret's stability.
    NoPeer,
    /// Peers read it: ordinary for the principal's group.
    PeersRead,
    /// The principal was first seen this many days ago: too little history of its own.
    YoungPrincipal(f64),
}

/// A principal's first read of one secret in the window, with the secret's caller history.
struct NewPair {
    resource: String,
    who: String,
    actor_name: Option<String>,
    first_read: String,
    last_read: String,
    reads: f64,
    callers: f64,
    /// Peers of the principal, and those among the secret's callers.
    peers: f64,
    /// The declared groups its peers come from (besides co-readers).
    peer_groups: Vec<String>,
    peer_callers: f64,
    why: Why,
    lambda: f64,
    days: f64,
    score: f64,
    severity: Severity,
}

impl NewCaller {
    /// One finding for all the secrets a principal read for the first time in the window: the
    /// highest severity and score among them; the baseline numbers are those of the most
    /// stable secret (the strongest evidence), the others are listed in `resources`.
    fn grouped(&self, actor: &str, pairs: &[NewPair], lookback_days: f64) -> Finding {
        let first = &pairs[0];
        let best = pairs
            .iter()
            .max_by(|a, b| {
                (a.severity, a.score)
                    .partial_cmp(&(b.severity, b.score))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .expect("a group has a pair");
        let severity = pairs
            .iter()
            .map(|p| p.severity)
            .max()
            .unwrap_or(first.severity);
        // Times compare as times: RFC 3339 text sorts "…:00Z" after "…:00.5Z".
        let at = |t: &str| crate::timerange::parse_instant(t).ok();
        let start = pairs
            .iter()
            .map(|p| p.first_read.as_str())
            .min_by_key(|t| at(t).unwrap_or(i64::MAX))
            .unwrap_or("");
        let end = pairs
            .iter()
            .map(|p| p.last_read.as_str())
            .max_by_key(|t| at(t).unwrap_or(i64::MIN))
            .unwrap_or("");
        let mut f = finding(
            self,
            severity,
            actor,
            first.actor_name.as_deref(),
            pairs.iter().map(|p| p.resource.clone()).collect(),
            start,
            end,
            Some(&first.resource),
        );
        f.score = best.score;
        if pairs.len() > 1 {
            f.part_keys = pairs
                .iter()
                .map(|p| format!("{}:{actor}:{}", self.code(), p.resource))
                .collect();
        }
        let reads: f64 = pairs.iter().map(|p| p.reads).sum();
        f.observed = if pairs.len() == 1 {
            numbers([("reads", int(reads))])
        } else {
            numbers([
                ("reads", int(reads)),
                ("new_secrets", int(pairs.len() as f64)),
            ])
        };
        f.baseline = numbers([
            ("secret_callers", int(best.callers)),
            ("peers", int(best.peers)),
            ("peer_callers", int(best.peer_callers)),
            ("outside_new_callers_per_day", round(best.lambda, 3)),
            ("history_days", round(best.days, 1)),
        ]);
        let days = best.days.min(lookback_days);
        let plural = |n: f64, one: &str| {
            if n == 1.0 {
                format!("{n} {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        // What was read: one secret, or how many with the first and the one the numbers are of.
        let what = if pairs.len() == 1 {
            first.resource.clone()
        } else if best.resource == first.resource {
            format!("{} secrets ({} first)", pairs.len(), first.resource)
        } else {
            format!(
                "{} secrets ({} first; figures for {})",
                pairs.len(),
                first.resource,
                best.resource
            )
        };
        let peers = if best.peers == 0.0 {
            "peers (no principal read any of the same secrets or shares a peer group)".to_owned()
        } else if best.peer_groups.is_empty() {
            format!(
                "{} (principals reading the same secrets)",
                plural(best.peers, "peer")
            )
        } else {
            format!(
                "{} (principals reading the same secrets or in {})",
                plural(best.peers, "peer"),
                best.peer_groups.join(", ")
            )
        };
        f.explanation = match best.why {
            Why::NoPeer if best.peers == 0.0 => format!(
                "{} read {what} for the first time in {days:.0} days, and it has no {peers}; the secret had {} and gains {:.2} new callers per day.",
                first.who, plural(best.callers, "caller"), best.lambda
            ),
            Why::NoPeer => format!(
                "{} read {what} for the first time in {days:.0} days, and none of its {peers} read it; the secret had {} and gains {:.2} callers from outside those peers per day.",
                first.who, plural(best.callers, "caller"), best.lambda
            ),
            Why::PeersRead => format!(
                "{} read {what} for the first time in {days:.0} days; {} of its {peers} read it too, of {}: ordinary for its group.",
                first.who, best.peer_callers, plural(best.callers, "caller")
            ),
            Why::YoungPrincipal(age) if age <= 0.0 => format!(
                "{} read {what}, but it read no secret in the {lookback_days:.0} days before: nothing of its own to compare with (VG002 judges new principals).",
                first.who
            ),
            Why::YoungPrincipal(age) => format!(
                "{} read {what} for the first time; it was first seen {age:.1} days ago, too little history of its own to call its reads new ({} of its {peers} read it).",
                first.who, best.peer_callers
            ),
        };
        f
    }
}
