use super::*;
use crate::detect::finding::numbers;
use crate::detect::{DetectorSettings, Param};

/// VG003 new-source-network.
const MIN_NETWORK_PRINCIPALS: Param = Param {
    name: "min_network_principals",
    default: 3.0,
    doc: "other principals whose use of a network in the lookback makes it the estate's (info)",
};

pub struct NewNetwork;

const DOC: &str = "\
What: a principal calls from a network (IPv4 /24, IPv6 /48) it did not use in the lookback, and
that fewer than min_network_principals other principals of the estate used either.
Why: credentials used from somewhere new are the classic sign of theft (GuardDuty's
InstanceCredentialExfiltration, Elastic's access-key-from-new-IP). A workload that always came
from private addresses and now comes from a public one is the strongest case (severity high).
A network that many other principals call from is the estate's own (a pod subnet a deploy
moved to, a VPN pool, an office NAT): new to the principal, not to its peers, so info.
Example: role payments-api-task, always 10.20.x.x, reads a secret from 198.51.100.23, which no
other principal ever used.
Cold start: a principal with fewer than min_events calls with an address in the lookback stays
quiet (there is nothing to compare with).
Tuning: lookback_days, min_events, min_network_principals; allowlist CI runners by actor and
network.
False positives: a new office or VPN pool before others use it, laptops on the road. No ASN
data offline.";

const SQL: &str = "
WITH win_ips AS (
  SELECT actor_id, src_ip, max(actor_name) AS actor_name, max(actor_type) AS actor_type,
         min(event_time) AS first_seen, max(event_time) AS last_seen, count(*) AS events,
         array_agg(DISTINCT resource_id) AS resources
  FROM secret_reads
  WHERE actor_id IS NOT NULL AND src_ip IS NOT NULL AND event_time >= $from AND event_time < $to
  GROUP BY actor_id, src_ip),
win AS (
  SELECT actor_id, vigil_network(src_ip) AS network, max(actor_name) AS actor_name,
         max(actor_type) AS actor_type, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
         sum(events) AS events, min(src_ip) AS src_ip, flatten(array_agg(resources)) AS resources
  FROM win_ips GROUP BY actor_id, vigil_network(src_ip)),
hist_ips AS (
  SELECT actor_id, src_ip, sum(n) AS n FROM vigil_client_history
  WHERE src_ip IS NOT NULL
  GROUP BY actor_id, src_ip),
hist AS (
  SELECT actor_id, vigil_network(src_ip) AS network, sum(n) AS n FROM hist_ips
  GROUP BY actor_id, vigil_network(src_ip)),
-- who else called from each network: the estate's own networks are not news
net_ips AS (
  SELECT DISTINCT actor_id, src_ip FROM client_counts
  WHERE src_ip IS NOT NULL AND actor_id IS NOT NULL AND last_time >= $hist_from AND first_time < $from),
net_users AS (
  SELECT vigil_network(src_ip) AS network, count(DISTINCT arrow_cast(actor_id, 'Utf8')) AS users
  FROM net_ips GROUP BY vigil_network(src_ip)),
actors AS (
  SELECT actor_id, sum(n) AS events, count(*) AS networks,
         bool_and(vigil_is_private(network)) AS all_private
  FROM hist GROUP BY actor_id)
SELECT w.actor_id, w.network, w.actor_name, w.actor_type, w.first_seen, w.last_seen, w.events,
       w.src_ip, w.resources, a.events AS hist_events, a.networks AS hist_networks, a.all_private,
       coalesce(u.users, 0) AS network_principals
FROM win w
JOIN actors a ON a.actor_id = w.actor_id
LEFT JOIN hist h ON h.actor_id = w.actor_id AND h.network = w.network
LEFT JOIN net_users u ON u.network = w.network
WHERE h.actor_id IS NULL AND a.events >= $min_events
ORDER BY w.first_seen, w.actor_id, w.network";

#[async_trait::async_trait]
impl Detector for NewNetwork {
    fn code(&self) -> &'static str {
        "VG003"
    }
    fn name(&self) -> &'static str {
        "new-source-network"
    }
    fn summary(&self) -> &'static str {
        "a principal reads secrets from a network it never used in the lookback"
    }
    fn doc(&self) -> &'static str {
        DOC
    }
    fn default_severity(&self) -> Severity {
        Severity::Medium
    }
    fn params(&self) -> &'static [Param] {
        &[LOOKBACK_DAYS, MIN_EVENTS, MIN_NETWORK_PRINCIPALS]
    }
    async fn detect(
        &self,
        d: &DetectContext<'_>,
        s: &DetectorSettings,
    ) -> Result<Vec<Finding>, QueryError> {
        let mut params = bounds(d, s.days_nanos(LOOKBACK_DAYS));
        params.push(("min_events", rows::int(s.get(MIN_EVENTS))));
        let mut out = Vec::new();
        let history = client_history(d, s.days_nanos(LOOKBACK_DAYS)).await?;
        let days = store_history_days(d).await?.min(s.get(LOOKBACK_DAYS));
        let sql = SQL.replace("vigil_client_history", &history);
        for r in query(d, &sql, params).await? {
            let actor = rows::text(&r, "actor_id");
            let network = rows::text(&r, "network");
            let ip = rows::text(&r, "src_ip");
            let public = !crate::net::is_private_network(&network);
            let workload = rows::s(&r, "actor_type") == Some("workload");
            let escalate = public && workload && rows::flag(&r, "all_private") == Some(true);
            let others = rows::n(&r, "network_principals");
            let shared = others >= s.get(MIN_NETWORK_PRINCIPALS).max(1.0);
            let severity = if shared {
                Severity::Info
            } else if escalate {
                Severity::High
            } else {
                self.default_severity()
            };
            let resources = rows::list(&r, "resources");
            let mut f = finding(
                self,
                severity,
                &actor,
                rows::s(&r, "actor_name"),
                resources,
                rows::s(&r, "first_seen").unwrap_or(""),
                rows::s(&r, "last_seen").unwrap_or(""),
                Some(&network),
            );
            f.score = if shared {
                0.2
            } else if escalate {
                0.9
            } else {
                0.7
            };
            f.observed = numbers([
                ("network", network.clone().into()),
                ("src_ip", ip.clone().into()),
                ("reads", int(rows::n(&r, "events"))),
            ]);
            f.baseline = numbers([
                ("known_networks", int(rows::n(&r, "hist_networks"))),
                ("events", int(rows::n(&r, "hist_events"))),
                ("network_principals", int(others)),
            ]);
            let known = rows::n(&r, "hist_networks");
            let plural = if known == 1.0 { "" } else { "s" };
            let private = if escalate {
                ", all private until now"
            } else {
                ""
            };
            f.explanation = if shared {
                format!(
                    "{} read secrets from {ip} ({network}), a network not seen for it in {days:.0} days ({known} known network{plural}{private}), but {others} other principals called from it in that time: the estate's own network.",
                    who(&r)
                )
            } else {
                format!(
                    "{} read secrets from {ip} ({network}), a network not seen for it in {days:.0} days ({known} known network{plural}{private}) and used by {} other principal{} in that time.",
                    who(&r),
                    others,
                    if others == 1.0 { "" } else { "s" }
                )
            };
            out.push(f);
        }
        Ok(out)
    }
}
