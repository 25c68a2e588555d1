//! What the fast path needs of an entry's `data` objects and `headers`, read inside the entry's
//! one typed parse (they were kept as raw text and parsed again, twice for `data`; reading them
//! once took 2 % off the instructions of a Vault ingest). Each answers what the exact path
//! would find in a `Value` of the same text, or says "decline" and the entry takes the exact
//! path.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::entry::is_credential_header;
use crate::ingest::fields::JsonStr;
use crate::ingest::redact::Unhashed;

/// A request's or response's `data`: whether a string in it was not HMAC'd (the exact path
/// redacts it, so the fast path declines), and the KV version it names.
#[derive(Debug, Default, PartialEq)]
pub struct DataScan {
    pub clear: bool,
    /// `metadata.version` (KV v2 reads), present and not null.
    pub metadata_version: Option<Value>,
    /// The top-level `version` (KV v2 writes), present and not null.
    pub top_version: Option<Value>,
}

impl DataScan {
    /// The version as the exact path takes it: the first of `metadata.version` and `version`
    /// that is there.
    pub fn version(&self) -> Option<&Value> {
        self.metadata_version.as_ref().or(self.top_version.as_ref())
    }
}

impl<'de> serde::Deserialize<'de> for DataScan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = DataScan;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    // Not an object: no version; its strings still count.
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DataScan, E> {
        Ok(DataScan {
            clear: Unhashed.visit_str(s)?,
            ..DataScan::default()
        })
    }
    fn visit_bool<E>(self, _: bool) -> Result<DataScan, E> {
        Ok(DataScan::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<DataScan, E> {
        Ok(DataScan::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<DataScan, E> {
        Ok(DataScan::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<DataScan, E> {
        Ok(DataScan::default())
    }
    fn visit_unit<E>(self) -> Result<DataScan, E> {
        Ok(DataScan::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<DataScan, A::Error> {
        Ok(DataScan {
            clear: Unhashed.visit_seq(seq)?,
            ..DataScan::default()
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataScan, A::Error> {
        let mut scan = DataScan::default();
        // A key given twice keeps its last value, as in a `Value`; but a string not HMAC'd in
        // any copy counts (the raw text keeps every copy, so the entry must not be stored as
        // it is).
        while let Some(key) = map.next_key::<JsonStr>()? {
            match &*key {
                "metadata" => {
                    let (clear, version) = map.next_value_seed(MetadataSeed)?;
                    scan.clear |= clear;
                    scan.metadata_version = version;
                }
                "version" => {
                    let v: Value = map.next_value()?;
                    scan.clear |= has_unhashed(&v);
                    scan.top_version = (!v.is_null()).then_some(v);
                }
                _ => scan.clear |= map.next_value_seed(Unhashed)?,
            }
        }
        Ok(scan)
    }
}

/// `data.metadata`: whether a string in it was not HMAC'd, and its `version` if it is an
/// object with one.
struct MetadataSeed;

impl<'de> DeserializeSeed<'de> for MetadataSeed {
    type Value = (bool, Option<Value>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let scan = d.deserialize_any(DataVisitor)?;
        // The metadata object's own `version` (a `metadata.metadata.version` is not it).
        Ok((scan.clear, scan.top_version))
    }
}

fn has_unhashed(v: &Value) -> bool {
    // Reading a `Value` cannot fail.
    Unhashed.deserialize(v).unwrap_or(true)
}

/// A request's `headers`: whether a credential header holds a value not HMAC'd (the exact
/// path redacts it), and the `user-agent` as the exact path reads it (a list's first string, or
/// a string). `decline` when the exact path must decide: a `user-agent` of another shape, or
/// given twice.
#[derive(Debug, Default, PartialEq)]
pub struct HeadersScan<'a> {
    pub clear_credential: bool,
    pub user_agent: Option<Cow<'a, str>>,
    pub decline: bool,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for HeadersScan<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Headers that are not an object fail the entry's parse: rare, and the exact path
        // decides.
        d.deserialize_map(HeadersVisitor)
    }
}

struct HeadersVisitor;

impl<'de> Visitor<'de> for HeadersVisitor {
    type Value = HeadersScan<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut scan = HeadersScan::default();
        let mut agents = 0;
        while let Some(name) = map.next_key::<JsonStr>()? {
            if is_credential_header(&name) {
                scan.clear_credential |= map.next_value_seed(Unhashed)?;
            } else if &*name == "user-agent" {
                agents += 1;
                match map.next_value::<Agent>()? {
                    Agent::Text(a) => scan.user_agent = a,
                    Agent::Other => scan.decline = true,
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        scan.decline |= agents > 1;
        Ok(scan)
    }
}

/// A `user-agent` header's value: null, a string or a list of strings (the first one counts),
/// or something else (`Other`: the exact path decides).
enum Agent<'a> {
    Text(Option<Cow<'a, str>>),
    Other,
}

impl<'de> serde::Deserialize<'de> for Agent<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AgentVisitor)
    }
}

struct AgentVisitor;

impl<'de> Visitor<'de> for AgentVisitor {
    type Value = Agent<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Agent<'de>, E> {
        Ok(Agent::Text(None))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Agent<'de>, E> {
        Ok(Agent::Text(Some(Cow::Borrowed(s))))
    }
    fn visit_str<E>(self, s: &str) -> Result<Agent<'de>, E> {
        Ok(Agent::Text(Some(Cow::Owned(s.to_owned()))))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Agent<'de>, E> {
        Ok(Agent::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Agent<'de>, E> {
        Ok(Agent::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Agent<'de>, E> {
        Ok(Agent::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Agent<'de>, E> {
        Ok(Agent::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Agent<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Agent::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Agent<'de>, A::Error> {
        // Every element must be a string, as `Vec<String>` reads them (another value than
        // null fails the entry's parse); the first one counts.
        let mut first = None;
        let mut strings = true;
        while let Some(item) = seq.next_element::<Option<JsonStr>>()? {
            match item {
                Some(text) => {
                    first.get_or_insert(text.0);
                }
                None => strings = false,
            }
        }
        Ok(if strings {
            Agent::Text(first)
        } else {
            Agent::Other
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::fields::at;

    fn data(text: &str) -> DataScan {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn data_versions_are_the_ones_the_exact_path_finds() {
        for (text, version) in [
            (r#"{"metadata":{"version":3},"version":9}"#, Some("3")),
            (
                r#"{"metadata":{"created_time":"hmac-sha256:ab"},"version":2}"#,
                Some("2"),
            ),
            (r#"{"metadata":"hmac-sha256:ab","version":"7"}"#, Some("7")),
            (r#"{"metadata":{"version":null},"version":4}"#, Some("4")),
            (r#"{"metadata":{"version":1},"metadata":{}}"#, None),
            (r#"{"version":{"a":1}}"#, None),
            (r#"{"data":{"version":5}}"#, None),
            (
                r#"{"metadata":{"metadata":{"version":1}},"version":2}"#,
                Some("2"),
            ),
            (r#"{"version":1,"version":2}"#, Some("2")),
            (r#"{"metad\u0061ta":{"version":6}}"#, Some("6")),
            (r#"["version"]"#, None),
            (r#""hmac-sha256:ab""#, None),
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let exact = ["metadata.version", "version"]
                .iter()
                .find_map(|p| at(&value, p))
                .and_then(crate::ingest::fields::scalar_text);
            let fast = data(text)
                .version()
                .and_then(crate::ingest::fields::scalar_text);
            assert_eq!(fast, exact, "{text}");
            assert_eq!(fast.as_deref(), version, "{text}");
        }
    }

    #[test]
    fn a_string_not_hmacd_anywhere_in_data_is_found() {
        for (text, clear) in [
            (r#"{"data":{"password":"hunter2"}}"#, true),
            (
                r#"{"data":{"password":"hmac-sha256:ab"},"metadata":{"version":1}}"#,
                false,
            ),
            (r#"{"metadata":{"custom":"plain","version":1}}"#, true),
            (r#"{"version":"plain"}"#, true),
            (r#"["hmac-sha256:ab","<redacted>"]"#, false),
            (r#""plain""#, true),
            (r#"{"plain":1}"#, false),
            // A shadowed copy still counts: the raw text keeps it.
            (r#"{"password":"live","password":"hmac-sha256:ab"}"#, true),
        ] {
            assert_eq!(data(text).clear, clear, "{text}");
        }
    }

    #[test]
    fn headers_give_the_agent_and_credentials_not_hmacd() {
        fn scan(text: &str) -> HeadersScan<'_> {
            serde_json::from_str(text).unwrap()
        }
        let s = scan(r#"{"user-agent":["curl/8","x"],"x-vault-token":["hmac-sha256:ab"]}"#);
        assert_eq!(
            (s.user_agent.as_deref(), s.clear_credential, s.decline),
            (Some("curl/8"), false, false)
        );
        let s = scan(r#"{"User-Agent":"not read","Authorization":["Bearer abc"]}"#);
        assert_eq!((s.user_agent.as_deref(), s.clear_credential), (None, true));
        assert_eq!(
            scan(r#"{"user-agent":"a"}"#).user_agent.as_deref(),
            Some("a")
        );
        assert!(scan(r#"{"user-agent":5}"#).decline);
        // A list with another value than a string or null fails the entry's parse.
        assert!(serde_json::from_str::<HeadersScan>(r#"{"user-agent":["a",1]}"#).is_err());
        assert!(scan(r#"{"user-agent":"a","user-agent":"b"}"#).decline);
        assert_eq!(scan(r#"{"user-agent":null}"#), HeadersScan::default());
        assert_eq!(scan(r#"{"user-agent":[]}"#), HeadersScan::default());
        assert!(scan(r#"{"user-agent":[null,"a"]}"#).decline);
        assert_eq!(
            scan(r#"{"user\u002dagent":["a\"b"]}"#)
                .user_agent
                .as_deref(),
            Some("a\"b")
        );
        // Escaped names are the names they spell.
        assert!(scan(r#"{"\u0061uthorization":["Bearer live"]}"#).clear_credential);
        // Headers that are not an object fail the entry's parse (the exact path decides).
        for text in [r#"["curl/8"]"#, r#""curl/8""#] {
            assert!(serde_json::from_str::<HeadersScan>(text).is_err(), "{text}");
        }
    }
}
