//! Environments (prod, staging, dev, ...) of secrets and principals, from `[[environments]]`
//! rules, or by naming convention when none are configured.
//!
//! A rule is `kind:pattern` with shell wildcards: `path:` (resource id or name), `account:` (AWS
//! account of an ARN), `project:` (GCP project), `namespace:` (Kubernetes namespace),
//! `tenant:` (the event's tenant column: account, project, subscription, cluster), `actor:`
//! (principal id, name or role), and for `[[peer_groups]]` only `group:` (a Vault policy or a
//! Kubernetes group of the principal). Resources and principals are matched with the facets they have:
//! a role ARN has an account, a GCP service account a project, a Kubernetes service account a
//! namespace. The first environment with a matching rule wins.

#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub facet: Facet,
    pub pattern: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facet {
    Path,
    Account,
    Project,
    Namespace,
    Tenant,
    Actor,
    Group,
}

impl Rule {
    pub fn parse(text: &str) -> Result<Rule, String> {
        let (kind, pattern) = text.split_once(':').ok_or_else(|| {
            format!(
                "'{text}' is not kind:pattern (path, account, project, namespace, tenant, actor, group)"
            )
        })?;
        let facet = match kind {
            "path" => Facet::Path,
            "account" => Facet::Account,
            "project" => Facet::Project,
            "namespace" => Facet::Namespace,
            "tenant" => Facet::Tenant,
            "actor" => Facet::Actor,
            "group" => Facet::Group,
            other => {
                return Err(format!(
                    "'{other}' in '{text}' is not a rule kind (path, account, project, namespace, tenant, actor, group)"
                ))
            }
        };
        if pattern.is_empty() {
            return Err(format!("'{text}' has an empty pattern"));
        }
        Ok(Rule {
            facet,
            pattern: pattern.to_owned(),
        })
    }
}

/// What a rule can look at, for one resource or one principal.
#[derive(Debug, Default)]
pub(crate) struct Facets<'a> {
    paths: Vec<&'a str>,
    account: Option<&'a str>,
    project: Option<&'a str>,
    namespace: Option<&'a str>,
    tenant: Option<&'a str>,
    actors: Vec<&'a str>,
    groups: Vec<&'a str>,
}

impl<'a> Facets<'a> {
    /// A principal's facets: its id, name and role, the account of an ARN among them, the
    /// project of a GCP service account, the namespace of a Kubernetes service account.
    pub(crate) fn of_actor(
        actor_id: Option<&'a str>,
        actor_name: Option<&'a str>,
        actor_role: Option<&'a str>,
    ) -> Facets<'a> {
        let fields: Vec<&str> = [actor_id, actor_name, actor_role]
            .into_iter()
            .flatten()
            .collect();
        Facets {
            account: fields.iter().find_map(|s| arn_account(s)),
            project: fields.iter().find_map(|s| {
                s.split_once('@')
                    .and_then(|(_, d)| d.strip_suffix(".iam.gserviceaccount.com"))
            }),
            namespace: fields.iter().find_map(|s| {
                s.strip_prefix("system:serviceaccount:")
                    .and_then(|r| r.split(':').next())
            }),
            actors: fields,
            ..Facets::default()
        }
    }

    /// With the tenant and groups of the principal's events (for `[[peer_groups]]`).
    pub(crate) fn with_tenant_and_groups(
        mut self,
        tenant: Option<&'a str>,
        groups: Vec<&'a str>,
    ) -> Facets<'a> {
        self.tenant = tenant;
        self.groups = groups;
        self
    }

    pub(crate) fn matches(&self, rule: &Rule) -> bool {
        let m = |v: &str| crate::glob::matches(&rule.pattern, v);
        match rule.facet {
            Facet::Path => self.paths.iter().any(|v| m(v)),
            Facet::Account => self.account.is_some_and(m),
            Facet::Project => self.project.is_some_and(m),
            Facet::Namespace => self.namespace.is_some_and(m),
            Facet::Tenant => self.tenant.is_some_and(m),
            Facet::Actor => self.actors.iter().any(|v| m(v)),
            Facet::Group => self.groups.iter().any(|v| m(v)),
        }
    }

    fn tokens(&self) -> impl Iterator<Item = &str> {
        self.paths
            .iter()
            .chain(self.actors.iter())
            .chain(self.project.iter())
            .chain(self.namespace.iter())
            .flat_map(|s| s.split(|c: char| !c.is_ascii_alphanumeric()))
    }
}

/// Account of an ARN (`arn:aws:iam::111122223333:role/x`).
pub(crate) fn arn_account(s: &str) -> Option<&str> {
    let mut parts = s.strip_prefix("arn:")?.split(':');
    let account = parts.nth(3)?;
    (!account.is_empty()).then_some(account)
}

/// Names every environment can be recognised by when no rules are configured.
const CONVENTION: [(&str, &str); 11] = [
    ("prod", "prod"),
    ("production", "prod"),
    ("prd", "prod"),
    ("staging", "staging"),
    ("stage", "staging"),
    ("stg", "staging"),
    ("dev", "dev"),
    ("development", "dev"),
    ("test", "test"),
    ("qa", "qa"),
    ("sandbox", "sandbox"),
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environments {
    /// Empty: environments come from names by convention.
    pub configured: Vec<Environment>,
}

impl Environments {
    pub fn of_resource(
        &self,
        resource_id: Option<&str>,
        resource_name: Option<&str>,
        tenant: Option<&str>,
    ) -> Option<String> {
        let id = resource_id.unwrap_or("");
        let f = Facets {
            paths: [resource_id, resource_name].into_iter().flatten().collect(),
            account: arn_account(id),
            project: id
                .strip_prefix("projects/")
                .and_then(|r| r.split('/').next()),
            namespace: id.strip_prefix("k8s:").and_then(|r| r.split('/').nth(1)),
            tenant,
            ..Facets::default()
        };
        self.resolve(&f)
    }

    pub fn of_actor(
        &self,
        actor_id: Option<&str>,
        actor_name: Option<&str>,
        actor_role: Option<&str>,
    ) -> Option<String> {
        self.resolve(&Facets::of_actor(actor_id, actor_name, actor_role))
    }

    fn resolve(&self, f: &Facets) -> Option<String> {
        if self.configured.is_empty() {
            return f.tokens().find_map(|t| {
                let lower = t.to_ascii_lowercase();
                CONVENTION
                    .iter()
                    .find(|(k, _)| *k == lower)
                    .map(|(_, env)| (*env).to_owned())
            });
        }
        self.configured
            .iter()
            .find(|e| e.rules.iter().any(|r| f.matches(r)))
            .map(|e| e.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convention_reads_names() {
        let e = Environments::default();
        assert_eq!(
            e.of_resource(Some("vault:default/secret/prod/payments/db"), None, None)
                .as_deref(),
            Some("prod")
        );
        assert_eq!(
            e.of_resource(
                Some("https://kv-staging.vault.azure.net/secrets/x"),
                None,
                None
            )
            .as_deref(),
            Some("staging")
        );
        assert_eq!(
            e.of_actor(
                Some("payments-dev-api@acme-dev.iam.gserviceaccount.com"),
                None,
                None
            )
            .as_deref(),
            Some("dev")
        );
        assert_eq!(
            e.of_actor(Some("alice"), Some("alice@example.com"), None),
            None
        );
        // "production-like" words inside a token do not count.
        assert_eq!(e.of_resource(Some("secret/products/key"), None, None), None);
    }

    #[test]
    fn rules_use_facets() {
        let e = Environments {
            configured: vec![
                Environment {
                    name: "prod".into(),
                    rules: ["path:*/prod/*", "account:111122223333", "namespace:prod-*"]
                        .iter()
                        .map(|r| Rule::parse(r).unwrap())
                        .collect(),
                },
                Environment {
                    name: "dev".into(),
                    rules: vec![Rule::parse("actor:ci-*").unwrap()],
                },
            ],
        };
        assert_eq!(
            e.of_resource(
                Some("arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf"),
                None,
                None
            )
            .as_deref(),
            Some("prod")
        );
        assert_eq!(
            e.of_actor(Some("arn:aws:iam::111122223333:role/app"), None, None)
                .as_deref(),
            Some("prod")
        );
        assert_eq!(
            e.of_actor(Some("system:serviceaccount:prod-web:api"), None, None)
                .as_deref(),
            Some("prod")
        );
        assert_eq!(
            e.of_actor(Some("ci-runner"), None, None).as_deref(),
            Some("dev")
        );
        assert_eq!(
            e.of_resource(Some("vault:default/secret/dev/x"), None, None),
            None
        );
        assert!(Rule::parse("host:x").is_err());
        assert!(Rule::parse("path:").is_err());
    }
}
