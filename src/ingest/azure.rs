//! Azure Key Vault diagnostic logs, category `AuditEvent`: one record per line (storage account,
//! current format) or `{"records":[...]}` (Event Hubs, older storage blobs).
//!
//! Records have no unique id: the uid is the SHA-256 of the record's canonical JSON (keys
//! lower-cased and sorted, `durationMs` as a string), so the same record delivered by two
//! destinations is stored once. Key names differ in case between destinations, so every key is
//! lower-cased before reading.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::fields::{
    at, required_str, required_time, scalar_text, split_address, str_at, string_at,
};
use super::source::{ParseOptions, Parsed, RecordMeta, Reject, Source};
use crate::event::{Action, ActorType, Event, Outcome, ResourceType, SourceKind};

const FORMAT: &str = "azure_auditevent";

/// Claim keys: the short form and the older full-URI form (lower-cased).
const OID: [&str; 2] = [
    "oid",
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
];
const UPN: [&str; 2] = [
    "upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
];
const NAME: [&str; 3] = [
    "name",
    "unique_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
];

/// A Key Vault `AuditEvent` record.
pub fn recognizes(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    let get = |k: &str| {
        obj.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    let category = get("category")
        .and_then(Value::as_str)
        .is_some_and(|c| c.eq_ignore_ascii_case("AuditEvent"));
    let keyvault = get("resourceId")
        .and_then(Value::as_str)
        .is_some_and(|r| r.to_ascii_uppercase().contains("MICROSOFT.KEYVAULT"));
    category && (keyvault || get("operationName").is_some())
}

pub struct AzureSource {
    opts: ParseOptions,
}

impl AzureSource {
    pub fn new(opts: ParseOptions) -> Self {
        AzureSource { opts }
    }
}

/// The record with every object key lower-cased and `durationms` as a string; its serialization
/// with sorted keys is the canonical form the uid hashes.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, val) in map {
                let key = k.to_lowercase();
                let val = match (key.as_str(), val) {
                    ("durationms", Value::Number(n)) => Value::String(n.to_string()),
                    _ => canonical(val),
                };
                out.insert(key, val);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// JSON text with object keys sorted at every level, whatever map type serde_json uses.
fn sorted_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                sorted_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                sorted_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn first_claim(claims: Option<&Value>, keys: &[&str]) -> Option<String> {
    let claims = claims?;
    keys.iter().find_map(|k| {
        claims
            .get(*k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

impl Source for AzureSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Azure
    }

    fn parse(&mut self, mut record: Value, meta: &RecordMeta) -> Result<Parsed, Reject> {
        if !record.is_object() {
            return Err(Reject::new(
                "not_an_object",
                "an AuditEvent record is a JSON object",
            ));
        }
        let mut removed = Vec::new();
        super::redact::redact_secret_keys(&mut record, "", &mut removed);
        let v = canonical(&record);
        let mut text = String::new();
        sorted_json(&v, &mut text);
        let uid = format!("azure:{}", hex::encode(Sha256::digest(text.as_bytes())));
        let time_field = if at(&v, "time").is_some() {
            "time"
        } else {
            "timegenerated"
        };
        let time = required_time(&v, time_field)?;
        let operation = required_str(&v, "operationname")?;
        let mut e = Event::new(SourceKind::Azure, FORMAT, uid, time.nanos);
        e.parse_warnings = removed
            .into_iter()
            .map(|p| format!("secret_redacted:{p}"))
            .collect();
        if time.assumed_utc {
            e.parse_warnings
                .push("time_without_zone_read_as_utc".into());
        }
        e.request_id = string_at(&v, "correlationid");
        let resource_id = str_at(&v, "resourceid").unwrap_or("");
        e.tenant = subscription_of(resource_id);
        e.region = string_at(&v, "location");
        e.service = "keyvault".into();
        e.operation = operation.to_owned();
        set_outcome(&mut e, &v);
        set_actor(&mut e, &v);
        if let Some(ip) = str_at(&v, "calleripaddress") {
            (e.src_ip, e.src_host) = split_address(ip);
        }
        e.user_agent = string_at(&v, "properties.clientinfo");
        e.via_service = string_at(&v, "properties.trustedservice");
        let (action, secret_read) = classify(operation);
        e.action = action;
        e.is_secret_read = secret_read;
        let vault = resource_id
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
        if action == Action::Login {
            // The SDK's 401 challenge before a call names the URI it will call; the login itself
            // targets no secret, so it does not count against one.
            e.target_count = 0;
            e.resource_scope = vault.clone();
        } else {
            set_target(&mut e, &v, vault.as_deref());
        }
        for (key, path) in [
            ("result_type", "resulttype"),
            ("duration_ms", "durationms"),
            ("is_rbac_authorized", "properties.isrbacauthorized"),
            ("is_access_policy_match", "properties.isaccesspolicymatch"),
            ("tls_version", "properties.tlsversion"),
            ("operation_version", "operationversion"),
        ] {
            if let Some(val) = at(&v, path).and_then(scalar_text) {
                e.attributes.insert(key.into(), val);
            }
        }
        if let Some(vault) = vault {
            e.attributes.insert("vault".into(), vault);
        }
        e.raw_location = meta.location();
        if self.opts.keep_raw {
            e.raw_event = Some(record.to_string());
        }
        Ok(Parsed::rows(vec![e]))
    }
}

/// `/SUBSCRIPTIONS/<id>/RESOURCEGROUPS/...` → `<id>` (lower case).
fn subscription_of(resource_id: &str) -> Option<String> {
    let lower = resource_id.to_lowercase();
    let rest = lower.split("/subscriptions/").nth(1)?;
    rest.split('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn set_outcome(e: &mut Event, v: &Value) {
    let code = at(v, "properties.httpstatuscode")
        .and_then(|c| c.as_i64().or_else(|| c.as_str()?.trim().parse().ok()));
    let signature = str_at(v, "resultsignature");
    // The HTTP status decides, not resultType (which says Success for some failures).
    e.outcome = match (code, signature) {
        (Some(200..=299), _) => Outcome::Success,
        (Some(401 | 403), _) => Outcome::Denied,
        (Some(404), _) => Outcome::NotFound,
        (Some(_), _) => Outcome::Error,
        (None, Some("OK" | "Accepted" | "NoContent")) => Outcome::Success,
        (None, Some("Unauthorized" | "Forbidden")) => Outcome::Denied,
        (None, Some("NotFound")) => Outcome::NotFound,
        (None, Some(_)) => Outcome::Error,
        (None, None) => Outcome::Unknown,
    };
    e.http_status = code.and_then(|c| i32::try_from(c).ok());
    e.status_code = signature.map(str::to_owned);
    e.error_message = string_at(v, "resultdescription");
}

fn set_actor(e: &mut Event, v: &Value) {
    let claims = at(v, "identity.claim").or_else(|| at(v, "identity.claims"));
    let oid = first_claim(claims, &OID);
    let upn = first_claim(claims, &UPN);
    let appid = first_claim(claims, &["appid"]);
    let mirid = first_claim(claims, &["xms_mirid"]);
    let idtyp = first_claim(claims, &["idtyp"]);
    e.actor_type = match (idtyp.as_deref(), &upn, &mirid, &oid, &appid) {
        (Some("user"), ..) | (_, Some(_), ..) => ActorType::Human,
        (Some("app"), ..) | (_, _, Some(_), ..) => ActorType::Workload,
        (_, _, _, None, None) => ActorType::Anonymous,
        _ => ActorType::Unknown,
    };
    let mi_name = mirid
        .as_deref()
        .and_then(|m| m.rsplit('/').next())
        .map(str::to_owned);
    e.actor_name = upn
        .or_else(|| first_claim(claims, &NAME))
        .or(mi_name)
        .or_else(|| appid.clone());
    e.actor_id = oid.or_else(|| appid.clone());
    e.actor_role = mirid;
    e.credential_id = appid;
}

/// Operation names are `<Object><Verb>`: SecretGet, KeyDecrypt, CertificateList, ...
fn classify(op: &str) -> (Action, bool) {
    match op {
        "SecretGet" | "SecretBackup" => (Action::Read, true),
        "KeyDecrypt" | "KeyUnwrap" => (Action::Decrypt, true),
        "Authentication" => (Action::Login, false),
        o if o.ends_with("List") || o.ends_with("ListVersions") || o.ends_with("ListDeleted") => {
            (Action::List, false)
        }
        o if o.ends_with("Get") || o.ends_with("GetDeleted") => (Action::Read, false),
        o if o.ends_with("Delete") || o.ends_with("Purge") => (Action::Delete, false),
        o if o.ends_with("Rotate") || o.contains("RotationPolicy") => (Action::Rotate, false),
        o if o.contains("Policy") || o.contains("Acl") => (Action::Policy, false),
        o if o.ends_with("Set")
            || o.ends_with("Create")
            || o.ends_with("Import")
            || o.ends_with("Update")
            || o.ends_with("Restore")
            || o.ends_with("Recover") =>
        {
            (Action::Write, false)
        }
        _ => (Action::Other, false),
    }
}

/// `https://<vault>.vault.azure.net/secrets/<name>[/<version>]` → canonical id without version.
fn set_target(e: &mut Event, v: &Value, vault_from_resource: Option<&str>) {
    let uri = str_at(v, "properties.id").or_else(|| str_at(v, "properties.requesturi"));
    let Some(uri) = uri else {
        e.target_count = 0;
        return;
    };
    let no_query = uri.split('?').next().unwrap_or(uri);
    let Some((scheme_host, path)) = no_query
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(h, p)| (h.to_lowercase(), p))
    else {
        e.target_count = 0;
        return;
    };
    let vault = scheme_host
        .split('.')
        .next()
        .unwrap_or(&scheme_host)
        .to_owned();
    e.resource_scope = Some(vault_from_resource.map(str::to_owned).unwrap_or(vault));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let kind = match segments.first() {
        Some(&"secrets") | Some(&"deletedsecrets") => ResourceType::AzureKvSecret,
        Some(&"keys") | Some(&"deletedkeys") => ResourceType::AzureKvKey,
        Some(&"certificates") | Some(&"deletedcertificates") => ResourceType::AzureKvCertificate,
        _ => {
            e.target_count = 0;
            return;
        }
    };
    // Collection-level calls put a verb where a name would be (`secrets/restore`).
    const VERBS: [&str; 5] = ["restore", "import", "issuers", "contacts", "backup"];
    let Some(name) = segments.get(1).filter(|n| !VERBS.contains(n)) else {
        // A list of the collection: no single object.
        e.target_count = 0;
        return;
    };
    e.resource_type = kind;
    let collection = segments[0].trim_start_matches("deleted");
    // Key Vault object names are case-insensitive: one canonical id per object.
    e.resource_id = Some(format!(
        "https://{scheme_host}/{collection}/{}",
        name.to_lowercase()
    ));
    e.resource_name = Some((*name).to_owned());
    // A version is a 32-character hex id; other segments there are verbs (`recover`, `rotate`).
    e.resource_version = segments
        .get(2)
        .filter(|v| v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit()))
        .map(|v| (*v).to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_ignores_key_case_order_and_duration_type() {
        let a = json!({"time": "t", "durationMs": "11", "Properties": {"B": 1, "a": 2}});
        let b = json!({"properties": {"a": 2, "b": 1}, "DurationMs": 11, "Time": "t"});
        let text = |v: &Value| {
            let mut s = String::new();
            sorted_json(&canonical(v), &mut s);
            s
        };
        assert_eq!(text(&a), text(&b));
        assert_eq!(
            text(&a),
            r#"{"durationms":"11","properties":{"a":2,"b":1},"time":"t"}"#
        );
    }

    #[test]
    fn operations_classify() {
        assert_eq!(classify("SecretGet"), (Action::Read, true));
        assert_eq!(classify("KeyUnwrap"), (Action::Decrypt, true));
        assert_eq!(classify("SecretList"), (Action::List, false));
        assert_eq!(classify("CertificateGet"), (Action::Read, false));
        assert_eq!(classify("SecretSet"), (Action::Write, false));
        assert_eq!(classify("SecretPurge"), (Action::Delete, false));
        assert_eq!(classify("Authentication"), (Action::Login, false));
    }

    #[test]
    fn subscription_comes_from_the_resource_id() {
        assert_eq!(
            subscription_of(
                "/SUBSCRIPTIONS/0B1C-AB12/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV"
            )
            .as_deref(),
            Some("0b1c-ab12")
        );
    }
}
