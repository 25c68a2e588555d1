use super::*;
use crate::detect::finding::{numbers, round};
use crate::detect::{DetectorSettings, Param};

/// VG017 sensitive-change.
const LOOKBACK_DAYS: Param = Param {
    name: "lookback_days",
    default: 14.0,
    doc: "history in which the principal made such changes",
};
const MIN_PEER_CHANGERS: Param = Param {
    name: "min_peer_changers",
    default: 1.0,
    doc: "peers making such changes in the lookback that make one routine (info)",
};
const COMMON_SHARE_PCT: Param = Param {
    name: "common_share_pct",
    default: 10.0,
    doc: "share of principals of its type making such changes that makes one common (low)",
};
const MAX_GROUP_SHARE_PCT: Param = Param {
                name: "max_group_share_pct",
                default: 25.0,
                doc: "a derived peer group larger than this share of the principals (and 5) is too broad to make peers",
            };

pub struct SensitiveChange;

const DOC: &str = "\
What: a destructive or protective change (delete, purge, policy change, rotation cancelled, key
disabled or scheduled for deletion) by a principal that made no such change on that store
(tenant) in the lookback (default 14 days), and none of whose peers did either.
Peers: principals that read at least one of the same secrets in the lookback, and the members
of its peer groups no larger than max_group_share_pct of the principals (a workload's:
workloads), as VG001 defines them. When min_peer_changers of them made such changes in the
lookback, the change is routine for its group: info, naming how many. When common_share_pct of
the estate's principals of its type (people, workloads) made such changes in the lookback, a
first one is common for its kind (when at least three did): low. Otherwise high.
Why: deleting secrets and loosening policies is how attackers cover tracks and widen access;
the change itself is routine for a few administrators, so novelty of the actor is what matters
(Elastic \"Azure Key Vault Modified\" with new terms over 14 days, Sigma Key Vault and Kubernetes
rules).
Tuning: lookback_days, min_peer_changers, common_share_pct; allowlist Terraform pipelines by actor.
False positives: a new administrator, infrastructure re-deploys.";

/// The change operations beside the `delete` and `policy` actions.
const CHANGE: &str = "(action IN ('delete', 'policy')
         OR operation IN ('CancelRotateSecret', 'DisableKey', 'ScheduleKeyDeletion', 'SecretPurge',
                          'KeyPurge', 'DestroySecretVersion', 'SetIamPolicy', 'VaultPatch', 'VaultPut'))";

/// Everyone who made such a change in the lookback, per tenant: one scan answers both whether
/// the principal itself made one there and whether its peers made any.
const CHANGERS: &str = "
SELECT actor_id, tenant, max(actor_type) AS actor_type FROM events
WHERE actor_id IS NOT NULL AND outcome = 'success' AND event_time >= $hist_from AND event_time < $from
  AND vigil_change
GROUP BY actor_id, tenant";

const SQL: &str = "
WITH win AS (
  SELECT actor_id, max(actor_name) AS actor_name, max(actor_type) AS actor_type, tenant, min(event_time) AS first_seen,
         max(event_time) AS last_seen, count(*) AS changes,
         array_agg(DISTINCT operation) AS operations, array_agg(DISTINCT resource_id) AS resources
  FROM events
  WHERE actor_id IS NOT NULL AND outcome = 'success' AND event_time >= $from AND event_time < $to
    AND vigil_change
  GROUP BY actor_id, tenant)
SELECT * FROM win ORDER BY first_seen, actor_id";

#[async_trait::async_trait]
impl Detector for SensitiveChange {
    fn code(&self) -> &'static str {
        "VG017"
    }
    fn name(&self) -> &'static str {
        "sensitive-change"
    }
    fn summary(&self) -> &'static str {
        "a delete, policy change or disabled rotation by a principal that does not usually make one"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::High
    }
    fn params(&self) -> &'static [Param] {
        &[
            LOOKBACK_DAYS,
            MIN_PEER_CHANGERS,
            COMMON_SHARE_PCT,
            MAX_GROUP_SHARE_PCT,
        ]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let store_days = store_history_days(d).await?;
        let cold = store_days < s.get(LOOKBACK_DAYS);
        if cold {
            d.note(format!(
                "VG017 on its static rule: the store holds {store_days:.1} days before the window (less than lookback_days = {}), so every sensitive change is reported, at medium",
                s.get(LOOKBACK_DAYS)
            ));
        }
        let lookback = s.days_nanos(LOOKBACK_DAYS);
        let mut changers: std::collections::HashMap<String, String> = Default::default();
        let mut changed_on: std::collections::HashSet<(String, Option<String>)> =
            Default::default();
        for r in query(
            d,
            &CHANGERS.replace("vigil_change", CHANGE),
            bounds(d, lookback),
        )
        .await?
        {
            let actor = rows::text(&r, "actor_id");
            changed_on.insert((actor.clone(), rows::s(&r, "tenant").map(str::to_owned)));
            changers.insert(actor, rows::text(&r, "actor_type"));
        }
        let pairs = read_pairs(d, lookback).await?;
        let mut out = Vec::new();
        for r in query(d, &SQL.replace("vigil_change", CHANGE), bounds(d, lookback)).await? {
            let actor = rows::text(&r, "actor_id");
            // Its own change on that tenant in the lookback: nothing new.
            if changed_on.contains(&(actor.clone(), rows::s(&r, "tenant").map(str::to_owned))) {
                continue;
            }
            let tenant = rows::text(&r, "tenant");
            let peers = pairs.peers(
                &actor,
                rows::s(&r, "actor_type"),
                1,
                s.get(MAX_GROUP_SHARE_PCT) / 100.0,
            );
            let peer_changers = changers.keys().filter(|c| peers.contains(c)).count();
            let routine = peer_changers as f64 >= s.get(MIN_PEER_CHANGERS).max(1.0);
            // How common such changes are among principals of its type across the estate.
            let ty = rows::s(&r, "actor_type");
            let type_changers = changers.values().filter(|t| Some(t.as_str()) == ty).count();
            let of_type = pairs.of_type(ty).max(type_changers);
            let type_share = 100.0 * type_changers as f64 / of_type.max(1) as f64;
            // A share of a handful is no evidence: at least three of its kind made such changes.
            let common = !routine && type_changers >= 3 && type_share >= s.get(COMMON_SHARE_PCT);
            let ops = rows::list(&r, "operations").join(", ");
            let resources = rows::list(&r, "resources");
            let mut f = finding(
                self,
                self.default_severity(),
                &actor,
                rows::s(&r, "actor_name"),
                resources.clone(),
                rows::s(&r, "first_seen").unwrap_or(""),
                rows::s(&r, "last_seen").unwrap_or(""),
                Some(&tenant),
            );
            if cold {
                f.severity = Severity::Medium;
                f.cold_start = true;
            }
            if routine {
                f.severity = Severity::Info;
            } else if common {
                f.severity = Severity::Low;
            }
            f.score = if routine {
                0.2
            } else if common {
                0.4
            } else if cold {
                0.6
            } else {
                0.8
            };
            f.observed = numbers([
                ("changes", int(rows::n(&r, "changes"))),
                ("operations", ops.clone().into()),
            ]);
            f.baseline = numbers([
                ("such_changes_in_lookback", int(0.0)),
                ("peers", int(peers.len() as f64)),
                ("peers_making_such_changes", int(peer_changers as f64)),
                ("same_type_share_pct", round(type_share, 1)),
            ]);
            let days = store_days.min(s.get(LOOKBACK_DAYS));
            let n = rows::n(&r, "changes");
            let plural = if n == 1.0 { "" } else { "s" };
            f.explanation = if routine {
                format!(
                    "{} made {n} sensitive change{plural} ({ops}) on {tenant}, none there in the previous {days:.0} days, but {peer_changers} of its {} peers (principals reading the same secrets{}) made such changes in that time: routine for its group.",
                    who(&r), peers.len(), PeerNames(&peers.groups)
                )
            } else {
                let peers = match peers.len() {
                    0 => "it has no peers (principals reading the same secrets or sharing a peer group)".to_owned(),
                    n => format!(
                        "none of its {n} peers (principals reading the same secrets{}) made any",
                        PeerNames(&peers.groups)
                    ),
                };
                // With no history there is no share to speak of.
                let share = if of_type == 0 {
                    String::new()
                } else {
                    format!(
                        ", and {type_changers} of {of_type} {} principals ({type_share:.0} %) made such changes in that time",
                        ty.unwrap_or("unknown")
                    )
                };
                format!(
                    "{} made {n} sensitive change{plural} ({ops}) on {tenant}; it made none there in the previous {days:.0} days, {peers}{share}.",
                    who(&r)
                )
            };
            out.push(f);
        }
        Ok(out)
    }
}

/// `" or in <groups>"` when declared groups gave the principal peers.
struct PeerNames<'a>(&'a [String]);

impl std::fmt::Display for PeerNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " or in {}", self.0.join(", "))
        }
    }
}
