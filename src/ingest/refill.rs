//! Writing a row's text fields over what they held before.
//!
//! A parsing thread builds every Vault response row into the same [`Event`](crate::event::Event)
//! and appends it to the batch's columns, so the row's strings keep their buffers from one row
//! to the next instead of each field being allocated, copied and freed on every row (a field
//! absent in one row and present in the next, and the rare texts made by a formatter, still
//! allocate). Each helper leaves its slot exactly as a freshly built one would be.

use std::collections::BTreeMap;

/// `slot` becomes the parts joined.
pub fn text(slot: &mut String, parts: &[&str]) {
    slot.clear();
    for p in parts {
        slot.push_str(p);
    }
}

/// `slot` becomes `value` (its buffer kept when both are present).
pub fn opt(slot: &mut Option<String>, value: Option<&str>) {
    match value {
        Some(v) => opt_parts(slot, &[v]),
        None => *slot = None,
    }
}

/// `slot` becomes the parts joined, present.
pub fn opt_parts(slot: &mut Option<String>, parts: &[&str]) {
    text(slot.get_or_insert_with(String::new), parts);
}

/// `slot` becomes the items, in order.
pub fn list<'a>(slot: &mut Vec<String>, items: impl IntoIterator<Item = &'a str>) {
    let mut n = 0;
    for item in items {
        match slot.get_mut(n) {
            Some(s) => text(s, &[item]),
            None => slot.push(item.to_owned()),
        }
        n += 1;
    }
    slot.truncate(n);
}

/// The attribute `key` becomes `value`, or is removed when there is none.
pub fn attribute(map: &mut BTreeMap<String, String>, key: &str, value: Option<&str>) {
    match (value, map.get_mut(key)) {
        (Some(v), Some(s)) => text(s, &[v]),
        (Some(v), None) => {
            map.insert(key.to_owned(), v.to_owned());
        }
        (None, _) => {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_end_as_if_new_whatever_they_held() {
        let mut s = String::from("a longer value");
        text(&mut s, &["ab", "", "c"]);
        assert_eq!(s, "abc");

        let mut o = Some("old".to_owned());
        opt(&mut o, Some("new"));
        assert_eq!(o.as_deref(), Some("new"));
        opt(&mut o, None);
        assert_eq!(o, None);
        opt_parts(&mut o, &["x", "y"]);
        assert_eq!(o.as_deref(), Some("xy"));

        let mut l = vec!["1".to_owned(), "2".to_owned(), "3".to_owned()];
        list(&mut l, ["a", "b"]);
        assert_eq!(l, ["a", "b"]);
        list(&mut l, ["c", "d", "e", "f"]);
        assert_eq!(l, ["c", "d", "e", "f"]);
        list(&mut l, []);
        assert!(l.is_empty());

        let mut m = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
        attribute(&mut m, "k", Some("w"));
        attribute(&mut m, "a", Some("b"));
        attribute(&mut m, "gone", None);
        assert_eq!(
            m,
            BTreeMap::from([("a".into(), "b".into()), ("k".into(), "w".into())])
        );
        attribute(&mut m, "k", None);
        assert_eq!(m, BTreeMap::from([("a".into(), "b".into())]));
    }
}
