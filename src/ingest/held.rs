//! Records a parser holds until a later record completes them (a Vault request until its
//! response, a Kubernetes stage until the final one), bounded: past the cap the oldest is
//! released to be stored on its own, so a log that never completes its requests cannot exhaust
//! memory.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use foldhash::HashMap;

/// Held records at most, per source (a held Vault request keeps its text, about 2 KB).
pub const MAX_HELD: usize = 50_000;

pub struct Held<T> {
    map: HashMap<String, (u64, T)>,
    /// Arrival order; entries whose arrival no longer matches the map are stale.
    order: VecDeque<(u64, String)>,
    arrivals: u64,
    cap: usize,
}

impl<T> Held<T> {
    pub fn new(cap: usize) -> Held<T> {
        Held {
            map: HashMap::default(),
            order: VecDeque::new(),
            arrivals: 0,
            cap,
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn remove(&mut self, key: &str) -> Option<T> {
        self.map.remove(key).map(|(_, e)| e)
    }

    /// Holds `event` under `key`; returns whether it replaced a held record, and the oldest
    /// record released to make room.
    pub fn insert(&mut self, key: String, event: T) -> (bool, Option<T>) {
        self.arrivals += 1;
        // Records completed and removed leave their place in `order` behind; dropping those
        // places when they outnumber the held ones keeps memory bounded by the cap, not by the
        // run (it grew by ~100 bytes per Vault request before).
        if self.order.len() >= 2 * self.map.len().max(1024) {
            let map = &self.map;
            self.order
                .retain(|(arrival, key)| map.get(key).is_some_and(|(a, _)| a == arrival));
        }
        self.order.push_back((self.arrivals, key.clone()));
        let replaced = self.map.insert(key, (self.arrivals, event)).is_some();
        let released = if self.map.len() > self.cap {
            self.pop_oldest()
        } else {
            None
        };
        (replaced, released)
    }

    fn pop_oldest(&mut self) -> Option<T> {
        self.pop_oldest_keyed().map(|(_, e)| e)
    }

    fn pop_oldest_keyed(&mut self) -> Option<(String, T)> {
        while let Some((arrival, key)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|(a, _)| *a == arrival) {
                return self.map.remove(&key).map(|(_, e)| (key, e));
            }
        }
        None
    }

    /// Everything still held with its key, oldest first.
    pub fn drain(&mut self) -> Vec<(String, T)> {
        let mut out = Vec::with_capacity(self.map.len());
        while let Some(e) = self.pop_oldest_keyed() {
            out.push(e);
        }
        out
    }
}

/// Keys seen recently, at most `cap` of them (oldest forgotten first): enough to recognise a
/// record that arrives shortly after the one that completed it, in bounded memory.
pub struct Recent {
    set: foldhash::HashSet<u64>,
    /// Seeded per process: ids cannot be chosen to collide.
    state: foldhash::quality::RandomState,
    order: VecDeque<u64>,
    cap: usize,
}

impl Recent {
    pub fn new(cap: usize) -> Recent {
        Recent {
            set: foldhash::HashSet::default(),
            state: foldhash::quality::RandomState::default(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn hash(&self, key: &str) -> u64 {
        self.state.hash_one(key)
    }

    pub fn insert(&mut self, key: &str) {
        let h = self.hash(key);
        if self.set.insert(h) {
            self.order.push_back(h);
            if self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.set.contains(&self.hash(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, SourceKind};

    fn ev(uid: &str) -> Event {
        Event::new(SourceKind::Vault, "t", uid.into(), 0)
    }

    #[test]
    fn oldest_is_released_past_the_cap_and_drain_keeps_order() {
        let mut h = Held::new(2);
        assert_eq!(h.insert("a".into(), ev("a")), (false, None));
        h.insert("b".into(), ev("b"));
        // Re-holding a makes it the newest.
        assert!(h.insert("a".into(), ev("a2")).0);
        let (_, released) = h.insert("c".into(), ev("c"));
        assert_eq!(released.unwrap().event_uid, "b");
        let rest: Vec<(String, String)> = h
            .drain()
            .into_iter()
            .map(|(k, e)| (k, e.event_uid))
            .collect();
        assert_eq!(rest, [("a".into(), "a2".into()), ("c".into(), "c".into())]);
    }

    #[test]
    fn completed_records_leave_nothing_behind() {
        let mut h = Held::new(10);
        for i in 0..100_000 {
            let key = format!("r{i}");
            h.insert(key.clone(), ev(&key));
            assert!(h.remove(&key).is_some());
        }
        h.insert("last".into(), ev("last"));
        assert!(h.order.len() <= 2048, "order kept {} places", h.order.len());
        let rest: Vec<String> = h.drain().into_iter().map(|(_, e)| e.event_uid).collect();
        assert_eq!(rest, ["last"]);
    }
}
