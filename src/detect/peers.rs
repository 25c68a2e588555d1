//! Peers from behaviour: who reads the same secrets as a principal. A first access is judged
//! against the principal's peers, not only its own past: a person's first read of a secret
//! their teammates read every day is ordinary, one no peer ever touched is not.
//!
//! The relation is computed from the store (the lookback's (principal, secret) read pairs, from
//! the hourly rollups), never kept between runs: a restart or a replay sees the same peers. It
//! needs no metadata, so it works on every source and on estates whose policies, roles and
//! namespaces say nothing about teams (CloudTrail IAM users, most GCP service accounts).
//!
//! Where the logs or `[[peer_groups]]` do say who belongs together (`crate::peer_groups`: Vault
//! policies and auth roles, Kubernetes namespaces, IAM paths, ...), the members of a principal's
//! groups are its peers too, from the principal rollups. A derived group holding more than
//! `max(MIN_GROUP_SIZE, max_group_share x principals)` of its kind (people or workloads) says little about who works together (a
//! Vault OIDC role every person logs in with, a single AWS account) and is left out; a
//! configured group is used whatever its size.

use std::collections::{HashMap, HashSet};

/// A workload's peers are workloads: a service reading what only people read is not explained
/// by those people (they read it by hand; the service never needed it).
const WORKLOAD: &str = "workload";

/// Derived groups this small are always specific enough to make peers.
pub const MIN_GROUP_SIZE: usize = 5;

/// The lookback's read pairs, indexed both ways, and the principals' declared groups.
#[derive(Debug, Default)]
pub struct ReadPairs {
    /// Secret -> (principal, first read in the lookback, UTC nanoseconds).
    callers: HashMap<String, Vec<(String, i64)>>,
    /// Principal -> its secrets.
    secrets: HashMap<String, Vec<String>>,
    /// Principal -> actor type and first read of any secret in the lookback.
    principals: HashMap<String, (Option<String>, i64)>,
    /// Principal -> actor type and declared groups (`crate::peer_groups`).
    declared: HashMap<String, (Option<String>, Vec<String>)>,
    /// Declared group -> its members, and whether `[[peer_groups]]` configured it.
    members: HashMap<String, (Vec<String>, bool)>,
}

/// One principal's peers: each with the number of secrets both read.
#[derive(Debug, Default)]
pub struct Peers {
    shared: HashMap<String, usize>,
    /// The principal's declared groups that made peers (specific enough, with other members).
    pub groups: Vec<String>,
    /// The principal is a workload: only workloads are its peers, and only workloads joining a
    /// secret's callers make a service's first read of it ordinary.
    workload: bool,
}

impl Peers {
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    pub fn contains(&self, actor: &str) -> bool {
        self.shared.contains_key(actor)
    }
}

/// What the history says about a principal's first read of a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretCallers {
    /// Principals that read the secret in the lookback.
    pub callers: usize,
    /// Those that are the principal's peers.
    pub peer_callers: usize,
    /// Callers from outside the peers that came more than `settle` after the secret's first
    /// reader: how often the secret gains callers the principal's group cannot explain (for a
    /// workload, other workloads: people starting to read a secret say nothing about services).
    pub outside_new_callers: usize,
    /// The secret's first read in the lookback (UTC nanoseconds).
    pub first_seen: i64,
}

impl ReadPairs {
    pub fn insert(
        &mut self,
        actor: String,
        actor_type: Option<String>,
        secret: String,
        first: i64,
    ) {
        let p = self
            .principals
            .entry(actor.clone())
            .or_insert((actor_type.clone(), first));
        p.1 = p.1.min(first);
        if p.0.is_none() {
            p.0 = actor_type;
        }
        self.secrets
            .entry(actor.clone())
            .or_default()
            .push(secret.clone());
        self.callers.entry(secret).or_default().push((actor, first));
    }

    /// Records a principal's declared groups (`configured` tells which come from
    /// `[[peer_groups]]`).
    pub fn declare(
        &mut self,
        actor: &str,
        actor_type: Option<String>,
        groups: Vec<String>,
        configured: impl Fn(&str) -> bool,
    ) {
        let entry = self
            .declared
            .entry(actor.to_owned())
            .or_insert((actor_type, Vec::new()));
        for g in groups {
            if entry.1.contains(&g) {
                continue;
            }
            let m = self
                .members
                .entry(g.clone())
                .or_insert_with(|| (Vec::new(), configured(&g)));
            m.0.push(actor.to_owned());
            entry.1.push(g);
        }
    }

    pub fn has_read(&self, actor: &str, secret: &str) -> bool {
        self.secrets
            .get(actor)
            .is_some_and(|s| s.iter().any(|x| x == secret))
    }

    /// Principals of the lookback of actor type `actor_type`.
    pub fn of_type(&self, actor_type: Option<&str>) -> usize {
        self.principals
            .values()
            .filter(|p| p.0.as_deref() == actor_type)
            .count()
    }

    /// When the principal first read any secret in the lookback.
    pub fn first_seen(&self, actor: &str) -> Option<i64> {
        self.principals.get(actor).map(|p| p.1)
    }

    fn is_workload(&self, actor: &str) -> bool {
        let of = |t: &Option<String>| t.as_deref() == Some(WORKLOAD);
        match self.principals.get(actor) {
            Some(p) => of(&p.0),
            None => self.declared.get(actor).is_some_and(|d| of(&d.0)),
        }
    }

    /// The principals that read at least `min_shared` of the secrets `actor` read, and the
    /// members of its declared groups no larger than `max_group_share` of the principals (a
    /// workload's: workloads only). `actor_type` is the principal's type in the window, for a
    /// principal with no history.
    pub fn peers(
        &self,
        actor: &str,
        actor_type: Option<&str>,
        min_shared: usize,
        max_group_share: f64,
    ) -> Peers {
        let workload = actor_type == Some(WORKLOAD) || self.is_workload(actor);
        let mut shared: HashMap<String, usize> = HashMap::new();
        let mine: HashSet<&String> = self.secrets.get(actor).into_iter().flatten().collect();
        for secret in mine {
            for (other, _) in self.callers.get(secret).into_iter().flatten() {
                if other == actor {
                    continue;
                }
                if workload && !self.is_workload(other) {
                    continue;
                }
                *shared.entry(other.clone()).or_default() += 1;
            }
        }
        shared.retain(|_, n| *n >= min_shared.max(1));
        // A group is judged among principals of the principal's kind: a role every engineer
        // logs in with says nothing about a person's team, however many services the estate
        // has, and a resource group holding a third of the services nothing about a service's.
        let kind = |a: &String| self.is_workload(a) == workload;
        let population = self.declared.keys().filter(|a| kind(a)).count();
        let largest = MIN_GROUP_SIZE.max((max_group_share * population as f64) as usize);
        let mut groups = Vec::new();
        for g in self.declared.get(actor).map(|d| &d.1).into_iter().flatten() {
            let Some((members, configured)) = self.members.get(g) else {
                continue;
            };
            if !configured && members.iter().filter(|a| kind(a)).count() > largest {
                continue;
            }
            // A service's peers are services.
            let members = members.iter().filter(|a| !workload || self.is_workload(a));
            let mut any = false;
            for other in members {
                if other == actor {
                    continue;
                }
                shared.entry(other.clone()).or_insert(0);
                any = true;
            }
            if any {
                groups.push(g.clone());
            }
        }
        Peers {
            shared,
            groups,
            workload,
        }
    }

    /// The secret's callers as seen from a principal with `peers`; `None` when nobody read it
    /// in the lookback.
    pub fn callers_of(&self, secret: &str, peers: &Peers, settle: i64) -> Option<SecretCallers> {
        let callers = self.callers.get(secret)?;
        let first_seen = callers.iter().map(|c| c.1).min()?;
        let mut out = SecretCallers {
            callers: 0,
            peer_callers: 0,
            outside_new_callers: 0,
            first_seen,
        };
        let mut seen = HashSet::new();
        for (actor, first) in callers {
            if !seen.insert(actor) {
                continue;
            }
            out.callers += 1;
            if peers.contains(actor) {
                out.peer_callers += 1;
            } else if *first >= first_seen.saturating_add(settle)
                && (!peers.workload || self.is_workload(actor))
            {
                out.outside_new_callers += 1;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = crate::timerange::NANOS_PER_DAY;

    fn pairs(rows: &[(&str, &str, &str, i64)]) -> ReadPairs {
        let mut p = ReadPairs::default();
        for (actor, ty, secret, day) in rows {
            p.insert(
                (*actor).into(),
                Some((*ty).into()),
                (*secret).into(),
                day * DAY,
            );
        }
        p
    }

    #[test]
    fn peers_share_secrets_and_a_workload_has_only_workload_peers() {
        let p = pairs(&[
            ("alice", "human", "team/a", 0),
            ("alice", "human", "team/b", 0),
            ("bob", "human", "team/a", 1),
            ("svc", "workload", "team/a", 0),
            ("svc", "workload", "team/c", 0),
            ("svc2", "workload", "team/c", 3),
            ("svc2", "workload", "other/x", 3),
            ("carol", "human", "other/x", 9),
            ("svc3", "workload", "other/x", 8),
        ]);
        let alice = p.peers("alice", Some("human"), 1, 0.25);
        assert!(alice.contains("bob") && alice.contains("svc") && alice.len() == 2);
        assert!(p.peers("alice", Some("human"), 2, 0.25).is_empty());
        // svc shares team/a with alice and bob, but people do not explain a service.
        let svc = p.peers("svc", Some("workload"), 1, 0.25);
        assert!(svc.contains("svc2") && svc.len() == 1, "{svc:?}");
        // other/x: its caller svc2 is svc's peer; svc3 and carol came later from outside, but
        // only the service counts against a service.
        let seen = p.callers_of("other/x", &svc, DAY).unwrap();
        assert_eq!(
            seen,
            SecretCallers {
                callers: 3,
                peer_callers: 1,
                outside_new_callers: 1,
                first_seen: 3 * DAY
            }
        );
        // From alice's side nobody who reads other/x is a peer, and both newcomers count.
        let seen = p.callers_of("other/x", &alice, DAY).unwrap();
        assert_eq!((seen.peer_callers, seen.outside_new_callers), (0, 2));
        assert_eq!(p.callers_of("nobody/reads", &alice, DAY), None);
        assert!(p.has_read("bob", "team/a") && !p.has_read("bob", "team/b"));
        assert_eq!(p.first_seen("carol"), Some(9 * DAY));
    }

    #[test]
    fn members_of_a_specific_declared_group_are_peers_and_a_broad_one_is_left_out() {
        let mut p = pairs(&[
            ("alice", "human", "team/a", 0),
            ("dan", "human", "team/d", 0),
            ("svc", "workload", "team/s", 0),
        ]);
        let no = |_: &str| false;
        p.declare(
            "alice",
            Some("human".into()),
            vec!["policy:pay".into(), "role:all".into()],
            no,
        );
        p.declare(
            "dan",
            Some("human".into()),
            vec!["policy:pay".into(), "role:all".into()],
            no,
        );
        p.declare(
            "svc",
            Some("workload".into()),
            vec!["policy:pay".into()],
            no,
        );
        // Eight more people log in with the same role: it holds all 10 people.
        for i in 0..8 {
            p.declare(
                &format!("p{i}"),
                Some("human".into()),
                vec!["role:all".into()],
                no,
            );
        }
        let alice = p.peers("alice", Some("human"), 1, 0.25);
        // dan shares no secret with alice but her policy; svc is in it too. The role is too broad.
        assert!(
            alice.contains("dan") && alice.contains("svc") && alice.len() == 2,
            "{alice:?}"
        );
        assert_eq!(alice.groups, ["policy:pay"]);
        // A service's group peers are services: none here.
        let svc = p.peers("svc", Some("workload"), 1, 0.25);
        assert!(svc.is_empty() && svc.groups.is_empty(), "{svc:?}");
        // A service's group is measured among services: six of eight services in one resource
        // group is broad, however many people the estate has.
        let mut q = ReadPairs::default();
        for i in 0..8 {
            let g = if i < 6 {
                vec!["rg:prod".to_owned()]
            } else {
                vec![]
            };
            q.declare(&format!("w{i}"), Some("workload".into()), g, no);
        }
        for i in 0..30 {
            q.declare(&format!("h{i}"), Some("human".into()), vec![], no);
        }
        assert!(q.peers("w0", Some("workload"), 1, 0.25).is_empty());
        // A role all 12 people share is broad among people, however many services there are.
        let mut r = ReadPairs::default();
        for i in 0..12 {
            r.declare(
                &format!("h{i}"),
                Some("human".into()),
                vec!["role:eng".into()],
                no,
            );
        }
        for i in 0..60 {
            r.declare(&format!("w{i}"), Some("workload".into()), vec![], no);
        }
        assert!(r.peers("h0", Some("human"), 1, 0.25).is_empty());
        // Configured, the same broad group counts.
        p.declare("q", Some("human".into()), vec!["team:all".into()], |_| true);
        p.declare(
            "alice",
            Some("human".into()),
            vec!["team:all".into()],
            |_| true,
        );
        let alice = p.peers("alice", Some("human"), 1, 0.25);
        assert!(alice.contains("q") && alice.groups.contains(&"team:all".to_owned()));
    }
}
