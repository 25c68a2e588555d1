//! Removing secret material before anything is written: stored rows, rejects, logs.
//!
//! Two tools: structural redaction of parsed records (by field name, or every unhashed string
//! under Vault `data`), and a lexical scrubber for text that did not parse (rejects), which keeps
//! the shape and the values of a short list of harmless fields and blanks every other string.

use serde_json::Value;

pub const REDACTED: &str = "<redacted>";

/// Prefix of Vault audit HMACs: such strings are not secret material.
pub const VAULT_HMAC_PREFIX: &str = "hmac-sha256:";

/// Field names whose values are credentials wherever they appear (compared case-insensitively).
const SECRET_KEYS: [&str; 10] = [
    "sessiontoken",
    "secretaccesskey",
    "secretstring",
    "secretbinary",
    "password",
    "plaintext",
    "privatekey",
    "client_token",
    "clienttoken",
    "token",
];

/// Values that sources already wrote in place of a secret.
const ALREADY_HIDDEN: [&str; 2] = ["HIDDEN_DUE_TO_SECURITY_REASONS", REDACTED];

/// Replaces the value of every credential-named field under `v`; returns the dotted paths of
/// what was removed (for `parse_warnings`).
pub fn redact_secret_keys(v: &mut Value, path: &str, removed: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let lower = k.to_ascii_lowercase();
                if SECRET_KEYS.contains(&lower.as_str()) && is_secret_value(child) {
                    *child = Value::String(REDACTED.into());
                    removed.push(child_path);
                } else {
                    redact_secret_keys(child, &child_path, removed);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                redact_secret_keys(item, path, removed);
            }
        }
        _ => {}
    }
}

fn is_secret_value(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            !s.is_empty()
                && !s.starts_with(VAULT_HMAC_PREFIX)
                && !ALREADY_HIDDEN.contains(&s.as_str())
        }
        Value::Null => false,
        _ => true,
    }
}

/// Replaces every string under `v` that Vault did not HMAC (a device with `log_raw`, or keys
/// excluded from hashing); returns how many were replaced.
pub fn redact_unhashed_strings(v: &mut Value) -> usize {
    match v {
        Value::String(s) if !s.starts_with(VAULT_HMAC_PREFIX) && s != REDACTED => {
            *s = REDACTED.into();
            1
        }
        Value::Object(map) => map.values_mut().map(redact_unhashed_strings).sum(),
        Value::Array(items) => items.iter_mut().map(redact_unhashed_strings).sum(),
        _ => 0,
    }
}

/// Reads one JSON value of a typed parse and tells whether it holds a string value (keys aside)
/// that [`redact_unhashed_strings`] would replace, without building a `Value` (no allocation
/// per key and value: it reads every Vault response's `data` on the fast path).
pub struct Unhashed;

impl<'de> serde::de::DeserializeSeed<'de> for Unhashed {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unhashed {
    type Value = bool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, s: &str) -> Result<bool, E> {
        Ok(!s.starts_with(VAULT_HMAC_PREFIX) && s != REDACTED)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut any = false;
        while let Some(found) = seq.next_element_seed(Unhashed)? {
            any |= found;
        }
        Ok(any)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut any = false;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            any |= map.next_value_seed(Unhashed)?;
        }
        Ok(any)
    }
}

/// Fields whose string values are kept in rejects: identifiers, names, times, codes. Every other
/// string value is blanked, because a record that did not parse cannot be redacted by structure.
const REJECT_SAFE_KEYS: &[&str] = &[
    "time",
    "type",
    "id",
    "operation",
    "path",
    "mount_point",
    "mount_type",
    "mount_class",
    "display_name",
    "entity_id",
    "client_id",
    "remote_address",
    "namespace",
    "policies",
    "token_policies",
    "identity_policies",
    "token_type",
    "error",
    "role",
    "username",
    "service_account_name",
    "service_account_namespace",
    "eventVersion",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestID",
    "eventID",
    "eventType",
    "recipientAccountId",
    "arn",
    "accountId",
    "principalId",
    "userName",
    "invokedBy",
    "secretId",
    "name",
    "eventCategory",
    "kind",
    "apiVersion",
    "auditID",
    "verb",
    "detail-type",
];

/// Redacted, truncated text of a record that could not be parsed, for the rejects file.
pub fn scrub_reject_text(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(max_chars + 16));
    let mut chars = text.char_indices().peekable();
    // Stack of the key that opened each container; the last key seen at the current level.
    let mut keys: Vec<Option<String>> = Vec::new();
    let mut last_key: Option<String> = None;
    let mut expecting_value = false;
    while let Some((_, c)) = chars.next() {
        if out.len() >= max_chars {
            out.push('…');
            break;
        }
        match c {
            '"' => {
                let mut s = String::new();
                let mut escaped = false;
                for (_, d) in chars.by_ref() {
                    if escaped {
                        s.push('\\');
                        s.push(d);
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        break;
                    } else {
                        s.push(d);
                    }
                }
                let in_array = keys
                    .last()
                    .is_some_and(|k| k.as_deref() == Some("\u{0}array"));
                let is_value = expecting_value || in_array;
                if !is_value {
                    out.push('"');
                    out.push_str(&s);
                    out.push('"');
                    last_key = Some(s);
                    continue;
                }
                let owner = if in_array {
                    array_owner(&keys)
                } else {
                    last_key.clone()
                };
                let safe = owner
                    .as_deref()
                    .is_some_and(|k| REJECT_SAFE_KEYS.contains(&k))
                    || s.starts_with(VAULT_HMAC_PREFIX);
                out.push('"');
                out.push_str(if safe { &s } else { REDACTED });
                out.push('"');
                expecting_value = false;
            }
            ':' => {
                expecting_value = true;
                out.push(c);
            }
            '{' => {
                keys.push(last_key.take());
                expecting_value = false;
                out.push(c);
            }
            '[' => {
                keys.push(last_key.clone());
                keys.push(Some("\u{0}array".into()));
                expecting_value = false;
                out.push(c);
            }
            '}' => {
                keys.pop();
                last_key = None;
                expecting_value = false;
                out.push(c);
            }
            ']' => {
                keys.pop();
                keys.pop();
                expecting_value = false;
                out.push(c);
            }
            ',' => {
                expecting_value = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    scrub_token_shapes(&out)
}

fn array_owner(keys: &[Option<String>]) -> Option<String> {
    keys.len().checked_sub(2).and_then(|i| keys[i].clone())
}

/// Blanks strings shaped like live credentials (Vault tokens, AWS access keys) in free text.
pub fn scrub_token_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if looks_like_credential(word) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn looks_like_credential(word: &str) -> bool {
    let vault = ["hvs.", "hvb.", "hvr."]
        .iter()
        .any(|p| word.starts_with(p) && word.len() >= 24);
    let aws_key = (word.starts_with("AKIA") || word.starts_with("ASIA"))
        && word.len() == 20
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    vault || aws_key
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unhashed_strings_are_found_as_redaction_would_find_them() {
        use serde::de::DeserializeSeed;
        for text in [
            r#"{"data":{"password":"hmac-sha256:ab","n":3,"ok":true,"x":null}}"#,
            r#"{"data":{"password":"hunter2"}}"#,
            r#"{"metadata":{"version":2},"list":["hmac-sha256:1","<redacted>"]}"#,
            r#"{"keys":["a","hmac-sha256:b"]}"#,
            r#"{"hunter2":1}"#,
            r#""plain""#,
            r#"{"escaped":"hmac\u002dsha256:x"}"#,
            r#"[]"#,
        ] {
            let mut v: Value = serde_json::from_str(text).unwrap();
            let found = Unhashed
                .deserialize(&mut serde_json::Deserializer::from_str(text))
                .unwrap();
            assert_eq!(found, redact_unhashed_strings(&mut v) > 0, "{text}");
        }
    }

    #[test]
    fn credential_fields_are_replaced_and_reported() {
        let mut v = json!({"responseElements": {"credentials": {
            "accessKeyId": "ASIAEXAMPLE", "sessionToken": "SENTINEL", "secretAccessKey": "S2"}},
            "requestParameters": {"secretString": "HIDDEN_DUE_TO_SECURITY_REASONS"}});
        let mut removed = Vec::new();
        redact_secret_keys(&mut v, "", &mut removed);
        removed.sort();
        assert_eq!(
            removed,
            [
                "responseElements.credentials.secretAccessKey",
                "responseElements.credentials.sessionToken"
            ]
        );
        assert!(!v.to_string().contains("SENTINEL"));
        assert!(v.to_string().contains("ASIAEXAMPLE"));
    }

    #[test]
    fn unhashed_vault_strings_are_replaced() {
        let mut v = json!({"data": {"password": "SENTINEL", "n": 5, "h": "hmac-sha256:ab"}});
        assert_eq!(redact_unhashed_strings(&mut v), 1);
        assert_eq!(
            v,
            json!({"data": {"password": REDACTED, "n": 5, "h": "hmac-sha256:ab"}})
        );
    }

    #[test]
    fn reject_text_keeps_shape_and_safe_fields_only() {
        let text = br#"{"time":"2026-03-02T10:00:00Z","type":"response","request":{"path":"secret/data/x","data":{"password":"SENTINEL","list":["SENT2"]},"policies":["default"]},"auth":{"client_token":"hvs.SENTINEL"#;
        let out = scrub_reject_text(text, 4096);
        assert!(!out.contains("SENTINEL") && !out.contains("SENT2"), "{out}");
        assert!(out.contains(r#""path":"secret/data/x""#), "{out}");
        assert!(out.contains(r#""policies":["default"]"#), "{out}");
        assert!(out.contains(r#""password":"<redacted>""#), "{out}");
    }

    #[test]
    fn token_shapes_are_blanked_in_free_text() {
        let out = scrub_token_shapes(
            "token hvs.CAESIJk3aaaaaaaaaaaaaaaaaaaa and AKIAIOSFODNN7EXAMPLE ok",
        );
        assert_eq!(out, "token <redacted> and <redacted> ok");
    }
}
