//! Declared peer groups: the principals that the logs, or `[[peer_groups]]` in `vigil.toml`, say
//! belong together. With the co-readers of `detect::peers` they are a principal's peers, against
//! which its first accesses are judged.
//!
//! Derived from what each source writes about a principal (the principal rollup keeps it per
//! hour, so this is computed from the store at every run):
//!
//! | source | groups |
//! |---|---|
//! | Vault | `vault-policy:<tenant>/<policy>` for each policy but `default` and `root`; `vault-role:<tenant>/<auth role>` |
//! | Kubernetes | `k8s-namespace:<cluster>/<ns>` of a service account; `k8s-group:<cluster>/<group>` but the built-in `system:authenticated`, `system:unauthenticated`, `system:serviceaccounts[:ns]` |
//! | CloudTrail | `aws-account:<account>` of an IAM ARN; `aws-path:<account>/<path>` of a role or user path |
//! | GCP | `gcp-project:<project>` of a service account `x@<project>.iam.gserviceaccount.com` |
//! | Azure | `azure-resource-group:<subscription>/<group>` of a managed identity |
//!
//! A configured group (`name`, `match` rules as `[[environments]]` has them, plus `group:` for a
//! Vault policy or a Kubernetes group) holds every principal one of its rules matches, and a
//! principal can be in several. Azure principals reading the same vault are peers through the
//! secrets they share (`detect::peers`), not through a declared group.

use crate::environments::{arn_account, Facets, Rule};

/// A `[[peer_groups]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// The configured groups; the derived ones need no configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerGroups {
    pub configured: Vec<PeerGroup>,
}

/// What the log says a principal is (a row of the principal rollup).
#[derive(Debug, Clone, Copy, Default)]
pub struct Principal<'a> {
    pub source: Option<&'a str>,
    pub actor_id: Option<&'a str>,
    pub actor_name: Option<&'a str>,
    pub actor_role: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub groups: &'a [Option<&'a str>],
}

/// Kubernetes groups every authenticated caller or service account has: they say nothing about
/// who works together.
fn builtin_k8s_group(g: &str) -> bool {
    matches!(
        g,
        "system:authenticated" | "system:unauthenticated" | "system:serviceaccounts"
    ) || g.starts_with("system:serviceaccounts:")
}

impl PeerGroups {
    /// The principal's groups, derived and configured, sorted and without repeats.
    pub fn of(&self, p: &Principal) -> Vec<String> {
        let mut out = derived(p);
        let groups: Vec<&str> = p.groups.iter().flatten().copied().collect();
        let facets = Facets::of_actor(p.actor_id, p.actor_name, p.actor_role)
            .with_tenant_and_groups(p.tenant, groups);
        for g in &self.configured {
            if g.rules.iter().any(|r| facets.matches(r)) {
                out.push(g.name.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether `group` is one of `[[peer_groups]]` (a team said so: used whatever its size).
    pub fn is_configured(&self, group: &str) -> bool {
        self.configured.iter().any(|g| g.name == group)
    }
}

fn derived(p: &Principal) -> Vec<String> {
    let tenant = p.tenant.unwrap_or("");
    let mut out = Vec::new();
    let groups = p.groups.iter().flatten();
    match p.source.unwrap_or("") {
        "vault" => {
            out.extend(
                groups
                    .filter(|g| !matches!(**g, "default" | "root"))
                    .map(|g| format!("vault-policy:{tenant}/{g}")),
            );
            out.extend(p.actor_role.map(|r| format!("vault-role:{tenant}/{r}")));
        }
        "k8s" => {
            let namespace = p
                .actor_id
                .and_then(|id| id.strip_prefix("system:serviceaccount:"))
                .and_then(|rest| rest.split(':').next());
            out.extend(namespace.map(|ns| format!("k8s-namespace:{tenant}/{ns}")));
            out.extend(
                groups
                    .filter(|g| !builtin_k8s_group(g))
                    .map(|g| format!("k8s-group:{tenant}/{g}")),
            );
        }
        "cloudtrail" => {
            if let Some(arn) = p.actor_id.filter(|a| a.starts_with("arn:")) {
                if let Some(account) = arn_account(arn) {
                    out.push(format!("aws-account:{account}"));
                    out.extend(iam_path(arn).map(|path| format!("aws-path:{account}/{path}")));
                }
            }
        }
        "gcp" => {
            let project = p
                .actor_id
                .and_then(|id| id.split_once('@'))
                .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"));
            out.extend(project.map(|x| format!("gcp-project:{x}")));
        }
        "azure" => {
            out.extend(p.actor_role.and_then(azure_resource_group));
        }
        _ => {}
    }
    out
}

/// The path of an IAM role or user ARN (`arn:aws:iam::1:role/teams/payments/api` →
/// `teams/payments`), when it has one.
fn iam_path(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let rest = resource
        .strip_prefix("role/")
        .or_else(|| resource.strip_prefix("user/"))?;
    let (path, _name) = rest.rsplit_once('/')?;
    (!path.is_empty()).then_some(path)
}

/// `azure-resource-group:<subscription>/<group>` of a resource id.
fn azure_resource_group(id: &str) -> Option<String> {
    let lower = id.to_ascii_lowercase();
    let mut parts = lower.split('/').filter(|s| !s.is_empty());
    let (mut sub, mut rg) = (None, None);
    while let Some(p) = parts.next() {
        match p {
            "subscriptions" => sub = parts.next().map(str::to_owned),
            "resourcegroups" => rg = parts.next().map(str::to_owned),
            _ => {}
        }
    }
    Some(format!("azure-resource-group:{}/{}", sub?, rg?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(groups: &PeerGroups, p: Principal) -> Vec<String> {
        groups.of(&p)
    }

    #[test]
    fn groups_come_from_what_each_source_says() {
        let none = PeerGroups::default();
        let policies = [Some("default"), Some("payments-engineer")];
        assert_eq!(
            of(
                &none,
                Principal {
                    source: Some("vault"),
                    actor_id: Some("e1"),
                    actor_role: Some("engineer"),
                    tenant: Some("default"),
                    groups: &policies,
                    ..Principal::default()
                }
            ),
            [
                "vault-policy:default/payments-engineer",
                "vault-role:default/engineer"
            ]
        );
        let k8s = [
            Some("system:serviceaccounts"),
            Some("system:serviceaccounts:payments"),
            Some("system:authenticated"),
        ];
        assert_eq!(
            of(
                &none,
                Principal {
                    source: Some("k8s"),
                    actor_id: Some("system:serviceaccount:payments:api"),
                    tenant: Some("prod-eu"),
                    groups: &k8s,
                    ..Principal::default()
                }
            ),
            ["k8s-namespace:prod-eu/payments"]
        );
        assert_eq!(
            of(
                &none,
                Principal {
                    source: Some("cloudtrail"),
                    actor_id: Some("arn:aws:iam::111122223333:user/teams/payments/alice"),
                    ..Principal::default()
                }
            ),
            [
                "aws-account:111122223333",
                "aws-path:111122223333/teams/payments"
            ]
        );
        assert_eq!(
            of(
                &none,
                Principal {
                    source: Some("cloudtrail"),
                    actor_id: Some("arn:aws:iam::111122223333:role/api"),
                    ..Principal::default()
                }
            ),
            ["aws-account:111122223333"]
        );
        assert_eq!(
            of(
                &none,
                Principal {
                    source: Some("gcp"),
                    actor_id: Some("etl@acme-prod.iam.gserviceaccount.com"),
                    ..Principal::default()
                }
            ),
            ["gcp-project:acme-prod"]
        );
        assert_eq!(
            of(&none, Principal {
                source: Some("azure"),
                actor_role: Some("/subscriptions/0B1C/resourceGroups/rg-prod/providers/Microsoft.ManagedIdentity/userAssignedIdentities/api-mi"),
                ..Principal::default()
            }),
            ["azure-resource-group:0b1c/rg-prod"]
        );
        // A person on GCP or Azure: nothing declared.
        assert!(of(
            &none,
            Principal {
                source: Some("gcp"),
                actor_id: Some("alice@acme.example"),
                ..Principal::default()
            }
        )
        .is_empty());
    }

    #[test]
    fn configured_groups_match_ids_names_and_groups() {
        let configured = PeerGroups {
            configured: vec![
                PeerGroup {
                    name: "payments".into(),
                    rules: vec![
                        Rule::parse("actor:*payments*").unwrap(),
                        Rule::parse("group:pay-*").unwrap(),
                    ],
                },
                PeerGroup {
                    name: "sre".into(),
                    rules: vec![Rule::parse("actor:*@sre.acme.example").unwrap()],
                },
            ],
        };
        let groups = [Some("default"), Some("pay-oncall")];
        assert_eq!(
            of(
                &configured,
                Principal {
                    source: Some("vault"),
                    actor_id: Some("e2"),
                    actor_name: Some("bob@acme.example"),
                    groups: &groups,
                    ..Principal::default()
                }
            ),
            ["payments", "vault-policy:/pay-oncall"]
        );
        assert_eq!(
            of(
                &configured,
                Principal {
                    source: Some("gcp"),
                    actor_id: Some("carol@sre.acme.example"),
                    ..Principal::default()
                }
            ),
            ["sre"]
        );
        assert!(configured.is_configured("sre") && !configured.is_configured("payments-x"));
    }
}
