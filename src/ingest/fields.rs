//! Reading typed fields out of a JSON record, with reject reasons that name the field.

use std::borrow::Cow;

use serde_json::Value;

use super::source::Reject;
use super::timestamp::{parse_time, ParsedTime};

/// The value at a dotted path (`request.namespace.path`), if present and not null.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.as_object()?.get(part)?;
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

/// A non-empty string at `path`; other types are treated as absent.
pub fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Owned version of [`str_at`].
pub fn string_at(v: &Value, path: &str) -> Option<String> {
    str_at(v, path).map(str::to_owned)
}

/// A string at `path` that must be there.
pub fn required_str<'a>(v: &'a Value, path: &str) -> Result<&'a str, Reject> {
    match at(v, path) {
        None => Err(Reject::missing(path)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(Reject::missing(path)),
        Some(_) => Err(Reject::type_mismatch(path, "a string")),
    }
}

/// A string at `path` that may be absent but must be a string when present.
pub fn optional_str<'a>(v: &'a Value, path: &str) -> Result<Option<&'a str>, Reject> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(_) => Err(Reject::type_mismatch(path, "a string")),
    }
}

/// A required timestamp string at `path`.
pub fn required_time(v: &Value, path: &str) -> Result<ParsedTime, Reject> {
    let text = required_str(v, path)?;
    parse_time(text).map_err(|why| Reject::bad_timestamp(path, why))
}

/// Number or numeric string as text (sources disagree on which they write).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Strings of an array at `path` (non-strings skipped).
pub fn strings_at(v: &Value, path: &str) -> Vec<String> {
    at(v, path)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The texts joined, in a string of exactly their length (a `format!` of plain texts costs
/// several times this; it was 2 % of a Vault ingest's CPU).
pub fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// Splits a caller address into an IP (port stripped) or a non-IP host marker.
pub fn split_address(addr: &str) -> (Option<String>, Option<String>) {
    let (ip, host) = address_parts(addr);
    (ip.map(Cow::into_owned), host.map(Cow::into_owned))
}

/// [`split_address`], borrowing the text where it is kept as written.
pub fn address_parts(addr: &str) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    let addr = addr.trim();
    if addr.is_empty() {
        return (None, None);
    }
    match addr.parse::<std::net::IpAddr>() {
        // An IPv4 address parses from one text only (no leading zeros, no short forms), so
        // its text is kept as it is; an IPv6 address is written in its canonical form.
        Ok(std::net::IpAddr::V4(_)) => return (Some(Cow::Borrowed(addr)), None),
        Ok(ip) => return (Some(Cow::Owned(ip.to_string())), None),
        Err(_) => {}
    }
    if let Ok(sock) = addr.parse::<std::net::SocketAddr>() {
        return (Some(Cow::Owned(sock.ip().to_string())), None);
    }
    (None, Some(Cow::Borrowed(addr)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn required_fields_name_the_path() {
        let v = json!({"a": {"b": 5, "c": ""}});
        assert_eq!(
            required_str(&v, "a.x").unwrap_err().reason,
            "missing_field:a.x"
        );
        assert_eq!(
            required_str(&v, "a.b").unwrap_err().reason,
            "type_mismatch:a.b"
        );
        assert_eq!(
            required_str(&v, "a.c").unwrap_err().reason,
            "missing_field:a.c"
        );
    }

    #[test]
    fn an_ipv4_address_keeps_the_one_text_it_parses_from() {
        for text in ["0.0.0.0", "10.20.29.179", "255.255.255.255", "192.168.0.1"] {
            let ip: std::net::Ipv4Addr = text.parse().unwrap();
            assert_eq!(split_address(text), (Some(ip.to_string()), None));
        }
        // Texts that are not the one form are no IP (hosts), as before.
        for text in ["010.0.0.1", "10.0.1", "1.2.3.4.5"] {
            assert_eq!(split_address(text), (None, Some(text.to_owned())));
        }
    }

    #[test]
    fn addresses_split_into_ip_or_host() {
        assert_eq!(split_address("10.0.0.1"), (Some("10.0.0.1".into()), None));
        assert_eq!(
            split_address("10.0.0.1:8200"),
            (Some("10.0.0.1".into()), None)
        );
        assert_eq!(
            split_address("[2001:db8::1]:443"),
            (Some("2001:db8::1".into()), None)
        );
        assert_eq!(
            split_address("AWS Internal"),
            (None, Some("AWS Internal".into()))
        );
    }
}

/// A struct of a typed parse read from a JSON object only. serde_json fills a derived struct
/// from an array as well (one element per field, in order), which the exact path, walking
/// objects, never does: `{"policy_results":[false]}` read as a denial, a whole entry written as
/// an array made a row. Wrapped in `Obj`, an array is a parse error (the fast path declines).
#[derive(Debug, Default)]
pub struct Obj<T>(pub T);

impl<T> std::ops::Deref for Obj<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// A JSON string in a typed parse: borrowed from the record's text, owned only when it holds
/// escapes. Needed because `#[serde(borrow)]` borrows a field typed `Cow<str>` and nothing
/// else: an `Option<Cow<str>>` or `Vec<Cow<str>>` is always deserialized as an owned `String`
/// (an allocation and a copy per field, most of the Vault fast path's parse once measured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonStr<'a>(pub std::borrow::Cow<'a, str>);

impl std::ops::Deref for JsonStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for JsonStr<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                s: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(JsonStr(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(std::borrow::Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(JsonStr(std::borrow::Cow::Owned(s)))
            }
        }
        d.deserialize_str(Visit)
    }
}
