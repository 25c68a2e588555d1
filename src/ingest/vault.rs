//! HashiCorp Vault / OpenBao audit device entries (file, socket and syslog devices).
//!
//! Every API call writes a `request` entry and then a `response` entry with the same
//! `request.id`; the response repeats the request, so it alone makes a complete row and the
//! request is counted as merged into it. A request whose response never arrives is stored on
//! its own at the end of the run with outcome `unknown` (or `denied` when the request entry
//! already carries the denial) and the uid suffix `:request`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::fields::{
    at, optional_str, required_str, required_time, split_address, str_at, string_at, strings_at,
};
use super::held::{Held, Recent, MAX_HELD};
use super::redact::{redact_unhashed_strings, VAULT_HMAC_PREFIX};
use super::source::{ParseOptions, Parsed, RecordMeta, Reject, Released, Source};
use super::splitter::RawRecord;
use crate::event::{Action, ActorType, Event, Outcome, ResourceType, SourceKind};

const FORMAT: &str = "vault_audit";

/// A Vault audit entry has `time`, a `type` and a `request` or `auth` object.
pub fn recognizes(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    let typed = obj
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with("request") || t.ends_with("response"));
    typed
        && obj.contains_key("time")
        && (obj.get("request").is_some_and(Value::is_object) || obj.contains_key("auth"))
}

pub struct VaultSource {
    opts: ParseOptions,
    /// Requests waiting for their response, by id.
    held: Held<HeldRequest>,
    /// Request ids whose response was stored recently: a later copy of the request (from a
    /// second audit device) is a duplicate, not a lone request.
    completed: Recent,
}

/// A request entry kept as text: most are completed by their response and never need parsing.
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every held request is Text"
)]
enum HeldRequest {
    Text { record: RawRecord, meta: RecordMeta },
    Parsed(Box<Event>),
}

impl VaultSource {
    pub fn new(opts: ParseOptions) -> Self {
        VaultSource {
            opts,
            held: Held::new(MAX_HELD),
            completed: Recent::new(4 * MAX_HELD),
        }
    }

    fn hold(&mut self, id: String, request: HeldRequest) -> Parsed {
        let (_, released) = self.held.insert(id, request);
        Parsed::Held {
            released: released.map(|r| self.release(r)).into_iter().collect(),
            merged: 0,
        }
    }

    /// A held request that will not be completed: parsed now, stored on its own.
    fn release(&self, request: HeldRequest) -> Released {
        match request {
            HeldRequest::Parsed(e) => Released::Row(e),
            HeldRequest::Text { record, meta } => {
                let parsed = serde_json::from_slice::<Value>(&record.bytes)
                    .map_err(|e| Reject::new("invalid_json", e.to_string()))
                    .and_then(|mut v| normalize(&mut v, &self.opts, &meta, true));
                match parsed {
                    Ok(mut e) => {
                        e.event_uid.push_str(":request");
                        Released::Row(Box::new(e))
                    }
                    Err(reject) => Released::Rejected {
                        reject,
                        record,
                        file: meta.file,
                    },
                }
            }
        }
    }
}

/// The two fields a request entry is recognised by, read without building the whole record.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<PeekRequest<'a>>,
}

#[derive(Deserialize)]
struct PeekRequest<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

enum EntryType {
    Request,
    Response,
}

impl Source for VaultSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Vault
    }

    fn peek(&mut self, record: &RawRecord, meta: &RecordMeta) -> Option<Parsed> {
        if record.problem.is_some() {
            return None;
        }
        let peek: Peek = serde_json::from_slice(&record.bytes).ok()?;
        let id = peek.request?.id?;
        if !peek.kind?.ends_with("request") || id.is_empty() {
            return None;
        }
        if self.completed.contains(&id) || self.held.contains(&id) {
            return Some(Parsed::Duplicate);
        }
        let held = HeldRequest::Text {
            record: record.clone(),
            meta: meta.clone(),
        };
        Some(self.hold(id.into_owned(), held))
    }

    fn parse(&mut self, mut record: Value, meta: &RecordMeta) -> Result<Parsed, Reject> {
        if !record.is_object() {
            return Err(Reject::new(
                "not_an_object",
                "a Vault audit entry is a JSON object",
            ));
        }
        let entry_type = match required_str(&record, "type")? {
            t if t.ends_with("response") => EntryType::Response,
            t if t.ends_with("request") => EntryType::Request,
            other => {
                return Err(Reject::new(
                    "unsupported_record",
                    format!("unknown Vault entry type `{other}`"),
                ))
            }
        };
        let mut event = normalize(
            &mut record,
            &self.opts,
            meta,
            matches!(entry_type, EntryType::Request),
        )?;
        let id = event.request_id.clone();
        match (entry_type, id) {
            (EntryType::Response, Some(id)) => {
                let merged = u64::from(self.held.remove(&id).is_some());
                self.completed.insert(&id);
                Ok(Parsed::Rows {
                    rows: vec![event],
                    merged,
                })
            }
            (EntryType::Response, None) => Ok(Parsed::rows(vec![event])),
            (EntryType::Request, Some(id)) => {
                if self.completed.contains(&id) || self.held.contains(&id) {
                    return Ok(Parsed::Duplicate);
                }
                event.event_uid.push_str(":request");
                Ok(self.hold(id, HeldRequest::Parsed(Box::new(event))))
            }
            (EntryType::Request, None) => Ok(Parsed::rows(vec![event])),
        }
    }

    fn finish(&mut self) -> Vec<Released> {
        let held = self.held.drain();
        held.into_iter().map(|r| self.release(r)).collect()
    }
}

/// Builds the row for one entry. `is_request` entries have no response part.
fn normalize(
    record: &mut Value,
    opts: &ParseOptions,
    meta: &RecordMeta,
    is_request: bool,
) -> Result<Event, Reject> {
    let time = required_time(record, "time")?;
    if !at(record, "request").is_some_and(Value::is_object) {
        return Err(Reject::missing("request"));
    }
    let mut warnings = Vec::new();
    if time.assumed_utc {
        warnings.push("time_without_zone_read_as_utc".to_owned());
    }
    let redacted = redact_raw_values(record);
    if redacted > 0 {
        warnings.push(format!("secret_redacted:log_raw_values={redacted}"));
    }
    let v: &Value = record;
    let request_id = optional_str(v, "request.id")?.map(str::to_owned);
    let cluster = &opts.vault_cluster;
    let uid = match &request_id {
        Some(id) => format!("vault:{cluster}:{id}"),
        None => format!(
            "vault:{cluster}:sha256:{}",
            hex::encode(sha2_of(&v.to_string()))
        ),
    };
    let mut e = Event::new(SourceKind::Vault, FORMAT, uid, time.nanos);
    e.parse_warnings = warnings;
    e.source_event_id = request_id.clone();
    e.request_id = request_id;

    let ns_path = str_at(v, "request.namespace.path")
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty());
    e.tenant = Some(match ns_path {
        Some(ns) => format!("{cluster}/{ns}"),
        None => cluster.clone(),
    });

    let operation = optional_str(v, "request.operation")?.unwrap_or("unknown");
    let path = optional_str(v, "request.path")?.unwrap_or("");
    let mount_type = str_at(v, "request.mount_type").or_else(|| str_at(v, "response.mount_type"));
    e.service = match mount_type {
        Some(m) => format!("vault:{m}"),
        None => "vault".to_owned(),
    };
    e.operation = operation.to_owned();

    // Outcome: the request or response `error`, or an explicit policy decision.
    let error = optional_str(v, "error")?;
    let allowed = at(v, "auth.policy_results.allowed").and_then(Value::as_bool);
    e.outcome = match (error, allowed) {
        (Some(err), _) if err.contains("permission denied") => Outcome::Denied,
        (_, Some(false)) => Outcome::Denied,
        (Some(err), _)
            if err.contains("no handler for route") || err.contains("unsupported path") =>
        {
            Outcome::NotFound
        }
        (Some(_), _) => Outcome::Error,
        (None, _) if is_request => Outcome::Unknown,
        (None, _) => Outcome::Success,
    };
    if let Some(err) = error {
        e.status_code = Some(short_error(err));
        e.error_message = Some(err.to_owned());
    }
    if e.outcome == Outcome::Denied {
        e.http_status = Some(403);
    }

    set_actor(&mut e, v);
    set_target(&mut e, v, cluster, path, operation, mount_type);

    if let Some(addr) = str_at(v, "request.remote_address") {
        (e.src_ip, e.src_host) = split_address(addr);
    }
    e.user_agent = at(v, "request.headers.user-agent")
        .and_then(|h| h.as_array().and_then(|a| a.first()).or(Some(h)))
        .and_then(Value::as_str)
        .map(str::to_owned);
    for (key, path) in [
        ("entry_type", "type"),
        ("mount_type", "request.mount_type"),
        ("mount_accessor", "request.mount_accessor"),
        ("namespace_id", "request.namespace.id"),
        ("token_type", "auth.token_type"),
        ("forwarded_from", "forwarded_from"),
    ] {
        if let Some(val) = str_at(v, path) {
            e.attributes.insert(key.to_owned(), val.to_owned());
        }
    }
    if let Some(port) = at(v, "request.remote_port").and_then(Value::as_u64) {
        e.attributes.insert("remote_port".into(), port.to_string());
    }
    e.raw_location = meta.location.clone();
    if let Some(prefix) = &meta.prefix {
        e.attributes
            .insert("line_prefix".into(), prefix.trim().to_owned());
    }
    if opts.keep_raw {
        e.raw_event = Some(v.to_string());
    }
    Ok(e)
}

fn sha2_of(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// Removes values a `log_raw` device wrote in clear: every unhashed string in request and
/// response data, and unhashed tokens. Returns how many values were removed.
fn redact_raw_values(record: &mut Value) -> usize {
    let mut n = 0;
    for path in [
        ["request", "data"],
        ["response", "data"],
        ["response", "auth"],
        ["response", "wrap_info"],
    ] {
        if let Some(part) = record.get_mut(path[0]).and_then(|p| p.get_mut(path[1])) {
            n += match path[1] {
                "data" => redact_unhashed_strings(part),
                _ => redact_token_fields(part),
            };
        }
    }
    for part in ["auth", "request"] {
        if let Some(p) = record.get_mut(part) {
            n += redact_token_fields(p);
        }
    }
    n
}

/// Unhashed `client_token` / `token` fields (a `log_raw` device writes live tokens).
fn redact_token_fields(v: &mut Value) -> usize {
    let Some(map) = v.as_object_mut() else {
        return 0;
    };
    let mut n = 0;
    for key in ["client_token", "token"] {
        if let Some(Value::String(s)) = map.get_mut(key) {
            if !s.is_empty() && !s.starts_with(VAULT_HMAC_PREFIX) && s != super::redact::REDACTED {
                *s = super::redact::REDACTED.into();
                n += 1;
            }
        }
    }
    n
}

/// `1 error occurred:\n\t* permission denied\n\n` → `permission denied`.
fn short_error(err: &str) -> String {
    let items: Vec<&str> = err
        .lines()
        .filter_map(|l| l.trim().strip_prefix("* "))
        .collect();
    if items.is_empty() {
        err.trim().to_owned()
    } else {
        items.join("; ")
    }
}

fn set_actor(e: &mut Event, v: &Value) {
    // A login request carries no caller yet; its response names who logged in.
    let auth_path =
        if str_at(v, "auth.display_name").is_some() || str_at(v, "auth.entity_id").is_some() {
            "auth"
        } else {
            "response.auth"
        };
    let get = |field: &str| string_at(v, &format!("{auth_path}.{field}"));
    let display = get("display_name");
    e.actor_id = get("entity_id")
        .or_else(|| display.clone())
        .or_else(|| string_at(v, "request.client_id"));
    e.actor_name = get("metadata.username").or_else(|| display.clone());
    e.actor_role = get("metadata.role").or_else(|| get("metadata.role_name"));
    e.credential_id = get("accessor");
    let mut groups = strings_at(v, &format!("{auth_path}.policies"));
    if groups.is_empty() {
        groups = strings_at(v, &format!("{auth_path}.token_policies"));
        groups.extend(strings_at(v, &format!("{auth_path}.identity_policies")));
        groups.dedup();
    }
    e.actor_type = actor_type(display.as_deref(), &groups, e.actor_id.is_some());
    e.actor_groups = groups;
}

fn actor_type(display: Option<&str>, policies: &[String], known: bool) -> ActorType {
    if policies.iter().any(|p| p == "root") || display == Some("root") {
        return ActorType::Root;
    }
    let Some(d) = display else {
        return if known {
            ActorType::Unknown
        } else {
            ActorType::Anonymous
        };
    };
    const HUMAN: [&str; 8] = [
        "oidc-",
        "ldap-",
        "userpass-",
        "okta-",
        "saml-",
        "github-",
        "radius-",
        "oidc_",
    ];
    const WORKLOAD: [&str; 8] = [
        "kubernetes-",
        "approle",
        "aws-",
        "gcp-",
        "azure-",
        "cert-",
        "jwt-",
        "cf-",
    ];
    if HUMAN.iter().any(|p| d.starts_with(p)) {
        ActorType::Human
    } else if WORKLOAD.iter().any(|p| d.starts_with(p)) {
        ActorType::Workload
    } else {
        ActorType::Unknown
    }
}

/// KV version 2 puts an API segment between the mount and the key.
const KV2_SEGMENTS: [&str; 5] = ["data/", "metadata/", "delete/", "undelete/", "destroy/"];

fn set_target(
    e: &mut Event,
    v: &Value,
    cluster: &str,
    path: &str,
    operation: &str,
    mount_type: Option<&str>,
) {
    let mount = str_at(v, "request.mount_point")
        .filter(|m| path.starts_with(m))
        .map(str::to_owned)
        .or_else(|| {
            // Older Vault versions do not log the mount: take the first path segment.
            path.split_once('/').map(|(first, _)| format!("{first}/"))
        });
    let mount = mount.unwrap_or_default();
    let rest = &path[mount.len().min(path.len())..];
    let is_kv = mount_type == Some("kv");
    // Without a mount type, a `data/` or `metadata/` segment is taken as KV v2 (and flagged).
    let kv2_segment = KV2_SEGMENTS.iter().find(|s| rest.starts_with(**s)).copied();
    let (segment, key) = match kv2_segment {
        Some(seg) if is_kv || (mount_type.is_none() && matches!(seg, "data/" | "metadata/")) => {
            if !is_kv {
                e.parse_warnings
                    .push("kv_version_inferred_from_path".into());
            }
            (Some(seg), &rest[seg.len()..])
        }
        _ => (None, rest),
    };
    let class = classify(path, operation, segment, mount_type);
    e.action = class.0;
    e.is_secret_read = class.1;
    if path.is_empty() {
        return;
    }
    let ns = str_at(v, "request.namespace.path").unwrap_or("");
    e.resource_type = ResourceType::VaultPath;
    e.resource_name = Some(format!("{mount}{key}"));
    e.resource_id = Some(format!("vault:{cluster}/{ns}{mount}{key}"));
    e.resource_scope = Some(format!("{ns}{mount}"));
    e.resource_version = at(v, "response.data.metadata.version")
        .or_else(|| at(v, "request.data.version"))
        .and_then(super::fields::scalar_text);
}

/// The action, and whether the request asked for secret material.
fn classify(
    path: &str,
    operation: &str,
    kv2_segment: Option<&str>,
    mount_type: Option<&str>,
) -> (Action, bool) {
    let system =
        path.starts_with("sys/") || path.starts_with("identity/") || path.starts_with("auth/");
    if path.starts_with("auth/token/") {
        return (Action::Token, false);
    }
    if path.starts_with("auth/")
        && (path.ends_with("/login") || path.contains("/login/") || path.ends_with("/callback"))
    {
        return (Action::Login, false);
    }
    if path.starts_with("sys/policy/") || path.starts_with("sys/policies/") {
        return (
            if operation == "read" || operation == "list" {
                Action::Read
            } else {
                Action::Policy
            },
            false,
        );
    }
    if path.contains("/rotate") {
        return (Action::Rotate, false);
    }
    if mount_type == Some("transit") && path.contains("/decrypt/") {
        return (Action::Decrypt, !system);
    }
    match kv2_segment {
        Some("delete/") | Some("destroy/") => return (Action::Delete, false),
        Some("undelete/") => return (Action::Write, false),
        Some("metadata/") => {
            let action = match operation {
                "list" => Action::List,
                "delete" => Action::Delete,
                "read" => Action::Read,
                _ => Action::Write,
            };
            return (action, false);
        }
        _ => {}
    }
    let issues_credentials =
        path.contains("/creds/") || path.contains("/issue/") || path.contains("/sts/");
    match operation {
        "read" => (Action::Read, !system),
        "list" => (Action::List, false),
        "create" | "update" | "patch" if issues_credentials && !system => (Action::Read, true),
        "create" | "update" | "patch" => (Action::Write, false),
        "delete" => (Action::Delete, false),
        _ => (Action::Other, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_of_common_paths() {
        assert_eq!(
            classify("secret/data/a", "read", Some("data/"), Some("kv")),
            (Action::Read, true)
        );
        assert_eq!(
            classify("secret/metadata/a", "list", Some("metadata/"), Some("kv")),
            (Action::List, false)
        );
        assert_eq!(
            classify("database/creds/ro", "read", None, Some("database")),
            (Action::Read, true)
        );
        assert_eq!(
            classify("auth/approle/login", "update", None, None),
            (Action::Login, false)
        );
        assert_eq!(
            classify("sys/policy/p", "update", None, Some("system")),
            (Action::Policy, false)
        );
        assert_eq!(
            classify("sys/mounts", "read", None, Some("system")),
            (Action::Read, false)
        );
    }

    #[test]
    fn error_lists_are_shortened() {
        assert_eq!(
            short_error("1 error occurred:\n\t* permission denied\n\n"),
            "permission denied"
        );
        assert_eq!(short_error("permission denied"), "permission denied");
    }
}
