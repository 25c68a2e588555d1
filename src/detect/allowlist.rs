//! `[[allowlist]]`: findings a team has decided to accept, each entry with a reason and an
//! expiry. An entry matches a finding when every field it sets matches (wildcards for actor and
//! resource, CIDR for network); `detectors` limits it to some codes.

use std::net::IpAddr;

use crate::net::in_network;

use super::DetectConfig;
use super::Finding;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub detectors: Vec<String>,
    pub actor: Option<String>,
    pub resource: Option<String>,
    pub network: Option<(IpAddr, u8)>,
    /// End of the day it expires, nanoseconds UTC.
    pub expires: Option<i64>,
    pub reason: String,
}

pub struct Allowlist<'a> {
    entries: &'a [Entry],
}

impl<'a> Allowlist<'a> {
    pub fn from_config(config: &'a DetectConfig) -> Allowlist<'a> {
        Allowlist {
            entries: &config.allowlist,
        }
    }

    /// True when an unexpired entry covers the finding.
    pub fn suppresses(&self, f: &Finding, now: i64) -> bool {
        self.entries.iter().any(|e| {
            e.expires.is_none_or(|x| now < x)
                && (e.detectors.is_empty() || e.detectors.iter().any(|d| d == f.code))
                && e.actor.as_deref().is_none_or(|p| {
                    crate::glob::matches(p, &f.actor_id)
                        || f.actor_name
                            .as_deref()
                            .is_some_and(|n| crate::glob::matches(p, n))
                })
                && e.resource.as_deref().is_none_or(|p| {
                    !f.resources.is_empty()
                        && f.resources.iter().all(|r| crate::glob::matches(p, r))
                })
                && e.network.is_none_or(|net| {
                    f.observed
                        .get("src_ip")
                        .and_then(|v| v.as_str())
                        .and_then(|s| s.parse::<IpAddr>().ok())
                        .is_some_and(|ip| in_network(ip, net))
                })
        })
    }
}
