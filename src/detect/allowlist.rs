//! `[[allowlist]]`: findings a team has decided to accept, each entry with a reason and an
//! expiry. An entry matches a finding when every field it sets matches (wildcards for actor and
//! resource, CIDR for network); `detectors` limits it to some codes.

use std::net::IpAddr;

use super::Finding;
use crate::config::Config;

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

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not an address or CIDR range"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("'{text}': prefix length must be 0..={max}"))?,
        None => max,
    };
    Ok((ip, bits))
}

/// True when `ip` is inside `net`.
pub fn in_network(ip: IpAddr, net: (IpAddr, u8)) -> bool {
    match (ip, net.0) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u32::MAX << (32 - net.1)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u128::MAX << (128 - net.1)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl<'a> Allowlist<'a> {
    pub fn from_config(config: &'a Config) -> Allowlist<'a> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n = parse_cidr("10.0.0.0/8").unwrap();
        assert!(in_network("10.200.1.2".parse().unwrap(), n));
        assert!(!in_network("11.0.0.1".parse().unwrap(), n));
        assert!(!in_network("::1".parse().unwrap(), n));
        let n6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(in_network("2001:db8:1::5".parse().unwrap(), n6));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("ten").is_err());
    }
}
